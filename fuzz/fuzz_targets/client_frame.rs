//! Client frames as the server receives them: a byte stream split with `split_frame`, each
//! body opened with `decode::<ClientFrame>`. The whole input is also decoded as a bare body.
//! Must never panic; whatever decodes must survive an encode/decode round trip unchanged.
#![no_main]

use coord_proto::frame::{self, DEFAULT_MAX_FRAME, HEADER_LEN};
use coord_proto::{ClientFrame, Request, validate_path};
use libfuzzer_sys::fuzz_target;

fn check(f: &ClientFrame) {
    let bytes = frame::encode(f).expect("a decoded frame re-encodes");
    let back: ClientFrame = frame::decode(&bytes[HEADER_LEN..]).expect("a re-encoded frame decodes");
    assert_eq!(&back, f);
    // What the server does next with the paths: validation must not panic either.
    if let ClientFrame::Request { request, .. } = f {
        let _ = request.is_write();
        match request {
            Request::Multi { ops } => ops.iter().for_each(|op| drop(validate_path(op.path()))),
            Request::SetWatches { data, exist, child, persistent, persistent_recursive, .. } => {
                for p in data.iter().chain(exist).chain(child).chain(persistent).chain(persistent_recursive) {
                    let _ = validate_path(p);
                }
            }
            Request::Create { path, .. }
            | Request::Delete { path, .. }
            | Request::Exists { path, .. }
            | Request::GetData { path, .. }
            | Request::SetData { path, .. }
            | Request::GetChildren { path, .. }
            | Request::GetAcl { path }
            | Request::SetAcl { path, .. }
            | Request::GetAllChildrenNumber { path }
            | Request::Sync { path }
            | Request::AddWatch { path, .. }
            | Request::RemoveWatches { path, .. } => drop(validate_path(path)),
            _ => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = frame::decode::<ClientFrame>(data) {
        check(&f);
    }
    // A stream of frames, under the default limit and under a small one (the limit path).
    for limit in [DEFAULT_MAX_FRAME, 64] {
        let mut rest = data;
        while let Ok(Some((body, tail))) = frame::split_frame(rest, limit) {
            assert!(body.len() <= limit);
            assert_eq!(body.len() + tail.len() + HEADER_LEN, rest.len());
            if let Ok(f) = frame::decode::<ClientFrame>(body) {
                check(&f);
            }
            rest = tail;
        }
    }
});
