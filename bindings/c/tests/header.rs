//! The checked-in `include/coord.h` must be exactly what cbindgen generates from the source
//! now, so C users never compile against a stale header.
//! Regenerate with `COORD_BLESS=1 cargo test -p coord-c --test header`.

use std::path::Path;

#[test]
fn checked_in_header_is_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut generated);
    let path = dir.join("include/coord.h");
    if std::env::var_os("COORD_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write include/coord.h");
    }
    let checked_in = std::fs::read(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "include/coord.h is stale: run COORD_BLESS=1 cargo test -p coord-c --test header"
    );
}
