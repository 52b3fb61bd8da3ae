//! The async data-model calls: each returns at once; its completion callback runs exactly
//! once on the client's callback thread (with `COORD_EAPIERROR` if the client is closed
//! first).

use crate::client::{Done, coord_client, coord_completion, cstr, handle};
use crate::ffi::*;
use crate::multi::{coord_op, multi_op};
use crate::ops::create_opts;
use ::coord_client as cc;
use cc::ErrorCode;
use std::ffi::{c_char, c_int, c_void};

/// Async `coord_create` (open ACL): `cb` gets the created path and Stat.
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_acreate(
    c: *const coord_client,
    path: *const c_char,
    data: *const u8,
    len: usize,
    flags: c_int,
    ttl_ms: i64,
    cb: coord_completion,
    ctx: *mut c_void,
) -> coord_rc {
    guard(|| {
        let h = handle(c)?;
        let cb = cb.ok_or(coord_rc::COORD_EBADARGUMENTS)?;
        let (path, data) = (str_arg(path)?.to_string(), bytes_arg(data, len)?.to_vec());
        let opts = create_opts(flags, ttl_ms, cc::Acl::open_unsafe())?;
        let client = h.client.clone();
        h.spawn(cb, ctx, async move {
            let (p, s) = client.create2(&path, &data, opts).await?;
            Ok(Done {
                path: Some(cstr(p)),
                stat: Some(s),
                ..Done::default()
            })
        })
    })
}

/// Async `coord_delete`.
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_adelete(
    c: *const coord_client,
    path: *const c_char,
    version: i32,
    cb: coord_completion,
    ctx: *mut c_void,
) -> coord_rc {
    guard(|| {
        let h = handle(c)?;
        let cb = cb.ok_or(coord_rc::COORD_EBADARGUMENTS)?;
        let path = str_arg(path)?.to_string();
        let client = h.client.clone();
        h.spawn(cb, ctx, async move {
            client.delete(&path, Some(version)).await?;
            Ok(Done::default())
        })
    })
}

/// Async `coord_exists`: `COORD_ENONODE` when the node does not exist.
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_aexists(
    c: *const coord_client,
    path: *const c_char,
    read_flags: c_int,
    cb: coord_completion,
    ctx: *mut c_void,
) -> coord_rc {
    guard(|| {
        let h = handle(c)?;
        let cb = cb.ok_or(coord_rc::COORD_EBADARGUMENTS)?;
        let path = str_arg(path)?.to_string();
        let client = h.reader(read_flags)?;
        h.spawn(cb, ctx, async move {
            match client.exists(&path).await? {
                Some(s) => Ok(Done {
                    stat: Some(s),
                    ..Done::default()
                }),
                None => Err(cc::Error::new(ErrorCode::NoNode)),
            }
        })
    })
}

/// Async `coord_get`: `cb` gets the data and Stat.
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_aget(
    c: *const coord_client,
    path: *const c_char,
    read_flags: c_int,
    cb: coord_completion,
    ctx: *mut c_void,
) -> coord_rc {
    guard(|| {
        let h = handle(c)?;
        let cb = cb.ok_or(coord_rc::COORD_EBADARGUMENTS)?;
        let path = str_arg(path)?.to_string();
        let client = h.reader(read_flags)?;
        h.spawn(cb, ctx, async move {
            let (d, s) = client.get_data(&path).await?;
            Ok(Done {
                data: d,
                stat: Some(s),
                ..Done::default()
            })
        })
    })
}

/// Async `coord_set`: `cb` gets the new Stat.
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_aset(
    c: *const coord_client,
    path: *const c_char,
    data: *const u8,
    len: usize,
    version: i32,
    cb: coord_completion,
    ctx: *mut c_void,
) -> coord_rc {
    guard(|| {
        let h = handle(c)?;
        let cb = cb.ok_or(coord_rc::COORD_EBADARGUMENTS)?;
        let (path, data) = (str_arg(path)?.to_string(), bytes_arg(data, len)?.to_vec());
        let client = h.client.clone();
        h.spawn(cb, ctx, async move {
            let s = client.set_data(&path, &data, Some(version)).await?;
            Ok(Done {
                stat: Some(s),
                ..Done::default()
            })
        })
    })
}

/// Async `coord_children`: `cb` gets the children and Stat.
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_achildren(
    c: *const coord_client,
    path: *const c_char,
    read_flags: c_int,
    cb: coord_completion,
    ctx: *mut c_void,
) -> coord_rc {
    guard(|| {
        let h = handle(c)?;
        let cb = cb.ok_or(coord_rc::COORD_EBADARGUMENTS)?;
        let path = str_arg(path)?.to_string();
        let client = h.reader(read_flags)?;
        h.spawn(cb, ctx, async move {
            let (kids, s) = client.get_children(&path).await?;
            Ok(Done {
                children: kids.into_iter().map(cstr).collect(),
                stat: Some(s),
                ..Done::default()
            })
        })
    })
}

/// Async `coord_sync`.
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_async(
    c: *const coord_client,
    path: *const c_char,
    cb: coord_completion,
    ctx: *mut c_void,
) -> coord_rc {
    guard(|| {
        let h = handle(c)?;
        let cb = cb.ok_or(coord_rc::COORD_EBADARGUMENTS)?;
        let path = str_arg(path)?.to_string();
        let client = h.client.clone();
        h.spawn(cb, ctx, async move {
            client.sync(&path).await?;
            Ok(Done::default())
        })
    })
}

/// Async `coord_get_acl`: `cb` gets the ACL (`acl`, `acl_count`) and Stat.
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_aget_acl(
    c: *const coord_client,
    path: *const c_char,
    cb: coord_completion,
    ctx: *mut c_void,
) -> coord_rc {
    guard(|| {
        let h = handle(c)?;
        let cb = cb.ok_or(coord_rc::COORD_EBADARGUMENTS)?;
        let path = str_arg(path)?.to_string();
        let client = h.client.clone();
        h.spawn(cb, ctx, async move {
            let (acl, s) = client.get_acl(&path).await?;
            Ok(Done {
                acl,
                stat: Some(s),
                ..Done::default()
            })
        })
    })
}

/// Async `coord_set_acl` (`acl`/`nacl` copied before the call returns; `nacl` > 0): `cb`
/// gets the new Stat.
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_aset_acl(
    c: *const coord_client,
    path: *const c_char,
    acl: *const coord_acl,
    nacl: usize,
    version: i32,
    cb: coord_completion,
    ctx: *mut c_void,
) -> coord_rc {
    guard(|| {
        let h = handle(c)?;
        let cb = cb.ok_or(coord_rc::COORD_EBADARGUMENTS)?;
        let path = str_arg(path)?.to_string();
        if nacl == 0 {
            return Err(coord_rc::COORD_EINVALIDACL);
        }
        let acl = acl_arg(acl, nacl)?;
        let client = h.client.clone();
        h.spawn(cb, ctx, async move {
            let s = client.set_acl(&path, &acl, Some(version)).await?;
            Ok(Done {
                stat: Some(s),
                ..Done::default()
            })
        })
    })
}

/// Async `coord_multi` (`ops` copied before the call returns): `cb` gets one result per op
/// (`results`, `results_count` = `n`, paths borrowed for the callback), also when an op
/// failed (then `rc` is the failing op's code).
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_amulti(
    c: *const coord_client,
    ops: *const coord_op,
    n: usize,
    cb: coord_completion,
    ctx: *mut c_void,
) -> coord_rc {
    guard(|| {
        let h = handle(c)?;
        let cb = cb.ok_or(coord_rc::COORD_EBADARGUMENTS)?;
        if n > 0 && ops.is_null() {
            return Err(coord_rc::COORD_EBADARGUMENTS);
        }
        let ops: &[coord_op] = if n == 0 {
            &[]
        } else {
            // SAFETY: the header requires `n` ops at `ops`.
            unsafe { std::slice::from_raw_parts(ops, n) }
        };
        let ops = ops.iter().map(multi_op).collect::<Result<Vec<_>, _>>()?;
        let client = h.client.clone();
        h.spawn_outcome(cb, ctx, async move {
            if ops.is_empty() {
                return Ok(Done::default());
            }
            match client.multi(ops).await {
                Ok(results) => Ok(Done {
                    results,
                    ..Done::default()
                }),
                Err(e) => {
                    let mut results = e.results().to_vec();
                    results.resize(n, cc::MultiResult::Error { code: e.code() });
                    Err((
                        rc(e),
                        Some(Done {
                            results,
                            ..Done::default()
                        }),
                    ))
                }
            }
        })
    })
}

/// Async `coord_add_auth` (`auth` copied before the call returns).
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_aadd_auth(
    c: *const coord_client,
    scheme: *const c_char,
    auth: *const u8,
    len: usize,
    cb: coord_completion,
    ctx: *mut c_void,
) -> coord_rc {
    guard(|| {
        let h = handle(c)?;
        let cb = cb.ok_or(coord_rc::COORD_EBADARGUMENTS)?;
        let (scheme, auth) = (str_arg(scheme)?.to_string(), bytes_arg(auth, len)?.to_vec());
        let client = h.client.clone();
        h.spawn(cb, ctx, async move {
            client.add_auth(&scheme, &auth).await?;
            Ok(Done::default())
        })
    })
}

/// Async `coord_check_sequencer` (`seq` copied before the call returns): `cb` gets `valid`.
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_acheck_sequencer(
    c: *const coord_client,
    seq: *const u8,
    len: usize,
    cb: coord_completion,
    ctx: *mut c_void,
) -> coord_rc {
    guard(|| {
        let h = handle(c)?;
        let cb = cb.ok_or(coord_rc::COORD_EBADARGUMENTS)?;
        let seq = bytes_arg(seq, len)?.to_vec();
        let client = h.client.clone();
        h.spawn(cb, ctx, async move {
            let valid = client.check_sequencer(&seq).await?;
            Ok(Done {
                valid,
                ..Done::default()
            })
        })
    })
}
