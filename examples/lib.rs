//! Coord's example programs live in `rust/` (this library is empty on purpose: the crate
//! exists for its `[[example]]` targets). Run one with `cargo run -p coord-examples --example
//! NAME`; the C and Python examples are in `c/` and `python/`.
