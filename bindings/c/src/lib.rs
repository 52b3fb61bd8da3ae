//! libcoord: Coord's C API, a thin layer over [`coord_client`] and [`coord_recipes`].
//!
//! ```text
//!   C threads ──blocking calls──> tokio runtime (1 worker) ──> session task ──> QUIC
//!        │                              │ async ops, watches, session events
//!        │                              v
//!        └── callbacks <── ONE callback thread per client ("coord-callbacks")
//! ```
//!
//! Every exported function is `unsafe extern "C"`: its pointer arguments must be NULL or
//! valid as `coord.h` describes; NULL, non-UTF-8 strings and unknown flags or enum values
//! are checked and refused (`COORD_EBADARGUMENTS`), dangling pointers cannot be.
//!
//! Rules this layer keeps (each is a promise in `coord.h`):
//! - no Rust panic crosses the boundary: every exported function runs inside
//!   `catch_unwind` and a panic becomes `COORD_EPANIC`;
//! - a NULL pointer, a string that is not UTF-8, or a bad flag gives `COORD_EBADARGUMENTS`;
//! - every completion and every watch callback is called exactly once, and every callback
//!   of a client (completions, watches, session events) runs on that client's one callback
//!   thread, in order;
//! - memory handed to the caller is freed only by the matching `coord_*_free` function;
//!   memory passed in is only borrowed for the duration of the call.
#![warn(missing_docs)]
#![allow(non_camel_case_types)]

mod aops;
mod client;
mod ffi;
mod multi;
mod ops;
mod recipes;

pub use aops::*;
pub use client::*;
pub use ffi::*;
pub use multi::*;
pub use ops::*;
pub use recipes::*;
