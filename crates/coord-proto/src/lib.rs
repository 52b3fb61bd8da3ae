//! Coord's wire vocabulary: the types every client and server speaks, and the frames that
//! carry them.
//!
//! ```text
//!   frame = [u32 little-endian length][rkyv archive of ClientFrame | ServerFrame | ...]
//! ```
//!
//! Nothing here does IO. Frames are opened only through [`frame::decode`], which copies the
//! body into an aligned buffer and validates it with bytecheck before anything reads it: bytes
//! from the network are never accessed unchecked.
//!
//! Invariants kept by this crate:
//! - a zxid is `epoch << 32 | counter` ([`Zxid`]);
//! - every path that reaches the tree has passed [`path::validate_path`];
//! - a frame longer than the caller's limit is refused before its body is read.
#![warn(missing_docs)]

// rkyv's derive emits undocumented helper structs for enum variants with fields; every
// item written here is documented.
#[allow(missing_docs)]
pub mod client;
pub mod frame;
#[cfg(feature = "tokio-io")]
pub mod io;
pub mod path;
pub mod sequencer;
pub mod types;

pub use client::*;
pub use frame::{FrameError, decode, encode};
pub use path::{PathError, validate_path};
pub use sequencer::{LockMode, Sequencer, SequencerError};
pub use types::*;

/// Version of the client protocol spoken in the first frame of every connection.
pub const CLIENT_PROTOCOL_VERSION: u32 = 2;
