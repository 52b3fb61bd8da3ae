//! The blocking data-model calls (create, delete, exists, get, set, children, ACLs, sync,
//! add_auth, check_sequencer) and their watch-leaving variants. Each runs the Rust client's
//! future to completion on the calling C thread (`Inner::run`).

use crate::client::{coord_client, coord_watch_cb, handle, out_ok};
use crate::ffi::*;
use ::coord_client as cc;
use cc::{CreateMode, CreateOptions};
use std::ffi::{c_char, c_int, c_void};
use std::time::Duration;

/// Create flag: the node is deleted when the session ends.
pub const COORD_CREATE_EPHEMERAL: c_int = 1;
/// Create flag: a 10-digit sequence suffix is appended to the name.
pub const COORD_CREATE_SEQUENTIAL: c_int = 2;
/// Create flag: a container node (removed after its last child goes).
pub const COORD_CREATE_CONTAINER: c_int = 4;
/// Create flag: a lock node (ephemeral, with Chubby's lock-delay given in `ttl_ms`; 0 = 1 s).
pub const COORD_CREATE_LOCK: c_int = 8;
/// Read flag: the read is linearizable (sees every write acknowledged before it was sent).
/// Never from the cache, even on a handle connected with `coord_options.cache`.
pub const COORD_READ_LINEARIZABLE: c_int = 1;
/// Read flag: the read is served from the session's cache while the server-granted lease of
/// its entry lasts (about 0.9 s), else fetched linearizably and cached; never staler than
/// `COORD_READ_LINEARIZABLE`. What 0 means on a handle connected with `coord_options.cache`.
/// Not together with `COORD_READ_LINEARIZABLE`.
pub const COORD_READ_CACHED: c_int = 2;
/// The `version` argument meaning "any version".
pub const COORD_ANY_VERSION: i32 = -1;

pub(crate) fn create_opts(
    flags: c_int,
    ttl_ms: i64,
    acl: Vec<cc::Acl>,
) -> Result<CreateOptions, coord_rc> {
    let bad = coord_rc::COORD_EBADARGUMENTS;
    let all = COORD_CREATE_EPHEMERAL
        | COORD_CREATE_SEQUENTIAL
        | COORD_CREATE_CONTAINER
        | COORD_CREATE_LOCK;
    if flags & !all != 0 || ttl_ms < 0 {
        return Err(bad);
    }
    let ms = Duration::from_millis(ttl_ms as u64);
    if flags & COORD_CREATE_LOCK != 0 {
        if flags != COORD_CREATE_LOCK {
            return Err(bad);
        }
        return Ok(CreateOptions::lock(ms).with_acl(acl));
    }
    let mode = CreateMode::from_flags(
        flags & COORD_CREATE_EPHEMERAL != 0,
        flags & COORD_CREATE_SEQUENTIAL != 0,
        flags & COORD_CREATE_CONTAINER != 0,
        ttl_ms > 0,
    )
    .ok_or(bad)?;
    let opts = CreateOptions::default().with_mode(mode).with_acl(acl);
    Ok(if ttl_ms > 0 { opts.with_ttl(ms) } else { opts })
}

/// Creates a node. `flags`: `COORD_CREATE_*` (0 = persistent); `ttl_ms` > 0 makes a
/// persistent (sequential) node a TTL node, and is the lock-delay of a `COORD_CREATE_LOCK`
/// node. `acl`/`nacl`: the ACL (NULL/0: open to everyone), borrowed. `path_out` (may be
/// NULL) receives the created path, freed with `coord_string_free`; `stat_out` (may be NULL)
/// the Stat.
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_create(
    c: *const coord_client,
    path: *const c_char,
    data: *const u8,
    len: usize,
    flags: c_int,
    ttl_ms: i64,
    acl: *const coord_acl,
    nacl: usize,
    path_out: *mut *mut c_char,
    stat_out: *mut coord_stat,
) -> coord_rc {
    guard(|| {
        let h = handle(c)?;
        let (path, data) = (str_arg(path)?, bytes_arg(data, len)?);
        let opts = create_opts(flags, ttl_ms, acl_arg(acl, nacl)?)?;
        let (p, s) = h.run(h.client.create2(path, data, opts))?.map_err(rc)?;
        put(stat_out, s.into());
        if !path_out.is_null() {
            put(path_out, into_cstring(p));
        }
        Ok(())
    })
}

/// Deletes a node if its version is `version` (`COORD_ANY_VERSION`: any).
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_delete(
    c: *const coord_client,
    path: *const c_char,
    version: i32,
) -> coord_rc {
    guard(|| {
        let h = handle(c)?;
        let path = str_arg(path)?;
        h.run(h.client.delete(path, Some(version)))?.map_err(rc)
    })
}

/// Fills `*stat_out` (may be NULL) if the node exists; `COORD_ENONODE` if it does not.
/// `read_flags`: 0 (the handle's mode: served by the connected server, or from the cache
/// when connected with `coord_options.cache`), `COORD_READ_LINEARIZABLE` or
/// `COORD_READ_CACHED`; the same for `coord_get`, `coord_children` and the async forms.
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_exists(
    c: *const coord_client,
    path: *const c_char,
    read_flags: c_int,
    stat_out: *mut coord_stat,
) -> coord_rc {
    guard(|| {
        let h = handle(c)?;
        let path = str_arg(path)?;
        let r = h.reader(read_flags)?;
        match h.run(r.exists(path))?.map_err(rc)? {
            Some(s) => {
                put(stat_out, s.into());
                Ok(())
            }
            None => Err(coord_rc::COORD_ENONODE),
        }
    })
}

/// Reads a node's data into `*data_out` (required; free with `coord_buf_free`) and its Stat
/// into `*stat_out` (may be NULL).
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_get(
    c: *const coord_client,
    path: *const c_char,
    read_flags: c_int,
    data_out: *mut coord_buf,
    stat_out: *mut coord_stat,
) -> coord_rc {
    guard(|| {
        let h = handle(c)?;
        out_ok(data_out)?;
        let path = str_arg(path)?;
        let r = h.reader(read_flags)?;
        let (d, s) = h.run(r.get_data(path))?.map_err(rc)?;
        put(data_out, into_buf(d));
        put(stat_out, s.into());
        Ok(())
    })
}

/// Replaces a node's data if its version is `version` (`COORD_ANY_VERSION`: any); the new
/// Stat goes to `*stat_out` (may be NULL).
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_set(
    c: *const coord_client,
    path: *const c_char,
    data: *const u8,
    len: usize,
    version: i32,
    stat_out: *mut coord_stat,
) -> coord_rc {
    guard(|| {
        let h = handle(c)?;
        let (path, data) = (str_arg(path)?, bytes_arg(data, len)?);
        let s = h
            .run(h.client.set_data(path, data, Some(version)))?
            .map_err(rc)?;
        put(stat_out, s.into());
        Ok(())
    })
}

/// Lists a node's children (sorted) into `*out` (required; free with `coord_strings_free`).
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_children(
    c: *const coord_client,
    path: *const c_char,
    read_flags: c_int,
    out: *mut coord_strings,
    stat_out: *mut coord_stat,
) -> coord_rc {
    guard(|| {
        let h = handle(c)?;
        out_ok(out)?;
        let path = str_arg(path)?;
        let r = h.reader(read_flags)?;
        let (kids, s) = h.run(r.get_children(path))?.map_err(rc)?;
        put(out, into_strings(kids));
        put(stat_out, s.into());
        Ok(())
    })
}

/// Like `coord_exists`, leaving a one-shot watch: `cb(event, path, ctx)` runs once on the
/// callback thread when the node is created, changed or deleted (or with
/// `COORD_EVENT_LOST`). The watch is armed also when the result is `COORD_ENONODE`; on any
/// other error it is not, and `cb` never runs.
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_wexists(
    c: *const coord_client,
    path: *const c_char,
    cb: coord_watch_cb,
    ctx: *mut c_void,
    stat_out: *mut coord_stat,
) -> coord_rc {
    guard(|| {
        let h = handle(c)?;
        let path = str_arg(path)?;
        let cb = cb.ok_or(coord_rc::COORD_EBADARGUMENTS)?;
        let (stat, w) = h.run(h.client.exists_w(path))?.map_err(rc)?;
        h.arm(w, cb, ctx)?;
        match stat {
            Some(s) => {
                put(stat_out, s.into());
                Ok(())
            }
            None => Err(coord_rc::COORD_ENONODE),
        }
    })
}

/// Like `coord_get`, leaving a one-shot watch (see `coord_wexists`) that fires when the data
/// changes or the node is deleted. Armed only on `COORD_OK`.
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_wget(
    c: *const coord_client,
    path: *const c_char,
    cb: coord_watch_cb,
    ctx: *mut c_void,
    data_out: *mut coord_buf,
    stat_out: *mut coord_stat,
) -> coord_rc {
    guard(|| {
        let h = handle(c)?;
        out_ok(data_out)?;
        let path = str_arg(path)?;
        let cb = cb.ok_or(coord_rc::COORD_EBADARGUMENTS)?;
        let (d, s, w) = h.run(h.client.get_data_w(path))?.map_err(rc)?;
        h.arm(w, cb, ctx)?;
        put(data_out, into_buf(d));
        put(stat_out, s.into());
        Ok(())
    })
}

/// Like `coord_children`, leaving a one-shot watch (see `coord_wexists`) that fires when a
/// child is created or deleted, or the node is deleted. Armed only on `COORD_OK`.
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_wchildren(
    c: *const coord_client,
    path: *const c_char,
    cb: coord_watch_cb,
    ctx: *mut c_void,
    out: *mut coord_strings,
    stat_out: *mut coord_stat,
) -> coord_rc {
    guard(|| {
        let h = handle(c)?;
        out_ok(out)?;
        let path = str_arg(path)?;
        let cb = cb.ok_or(coord_rc::COORD_EBADARGUMENTS)?;
        let (kids, s, w) = h.run(h.client.get_children_w(path))?.map_err(rc)?;
        h.arm(w, cb, ctx)?;
        put(out, into_strings(kids));
        put(stat_out, s.into());
        Ok(())
    })
}

/// Reads a node's ACL into `*out` (required; free with `coord_acl_list_free`).
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_get_acl(
    c: *const coord_client,
    path: *const c_char,
    out: *mut coord_acl_list,
    stat_out: *mut coord_stat,
) -> coord_rc {
    guard(|| {
        let h = handle(c)?;
        out_ok(out)?;
        let path = str_arg(path)?;
        let (acl, s) = h.run(h.client.get_acl(path))?.map_err(rc)?;
        put(out, into_acl_list(acl));
        put(stat_out, s.into());
        Ok(())
    })
}

/// Replaces a node's ACL (`acl`/`nacl` borrowed; `nacl` > 0) if its ACL version is
/// `version` (`COORD_ANY_VERSION`: any).
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_set_acl(
    c: *const coord_client,
    path: *const c_char,
    acl: *const coord_acl,
    nacl: usize,
    version: i32,
    stat_out: *mut coord_stat,
) -> coord_rc {
    guard(|| {
        let h = handle(c)?;
        let path = str_arg(path)?;
        if nacl == 0 {
            return Err(coord_rc::COORD_EINVALIDACL);
        }
        let acl = acl_arg(acl, nacl)?;
        let s = h
            .run(h.client.set_acl(path, &acl, Some(version)))?
            .map_err(rc)?;
        put(stat_out, s.into());
        Ok(())
    })
}

/// Waits until the connected server has applied everything committed before the call.
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_sync(c: *const coord_client, path: *const c_char) -> coord_rc {
    guard(|| {
        let h = handle(c)?;
        let path = str_arg(path)?;
        h.run(h.client.sync(path))?.map_err(rc)
    })
}

/// Adds an identity to the session (`"digest"`, `"user:password"`), re-sent on reconnects.
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_add_auth(
    c: *const coord_client,
    scheme: *const c_char,
    auth: *const u8,
    len: usize,
) -> coord_rc {
    guard(|| {
        let h = handle(c)?;
        let (scheme, auth) = (str_arg(scheme)?, bytes_arg(auth, len)?);
        h.run(h.client.add_auth(scheme, auth))?.map_err(rc)
    })
}

/// Whether a sequencer (from `coord_lock_sequencer`) still names a held lock, into
/// `*valid`; linearizable. `COORD_EBADARGUMENTS` when the bytes are not a sequencer.
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_check_sequencer(
    c: *const coord_client,
    seq: *const u8,
    len: usize,
    valid: *mut bool,
) -> coord_rc {
    guard(|| {
        let h = handle(c)?;
        out_ok(valid)?;
        let seq = bytes_arg(seq, len)?;
        put(valid, h.run(h.client.check_sequencer(seq))?.map_err(rc)?);
        Ok(())
    })
}
