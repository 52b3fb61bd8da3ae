//! Behaviour tests of coord-tree through its public API (one test binary).

mod acl;
mod common;
mod locks;
mod multi;
mod ops;
mod prop;
mod replay;
mod sessions_reap;
mod snapshot;
mod watch;
