//! `coord_multi`: several ops applied atomically, with one result per op.

use crate::client::{coord_client, handle};
use crate::ffi::*;
use crate::ops::create_opts;
use ::coord_client as cc;
use cc::{MultiOp, MultiResult};
use std::ffi::{c_char, c_int};

/// The kind of one op of `coord_multi`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum coord_op_kind {
    /// Create `path` with `data`, `flags` and `ttl_ms` as `coord_create` (open ACL).
    COORD_OP_CREATE = 1,
    /// Delete `path` at `version`.
    COORD_OP_DELETE = 2,
    /// Set `path`'s data at `version`.
    COORD_OP_SET = 3,
    /// Fail unless `path` has `version`.
    COORD_OP_CHECK = 4,
    /// Fail with `COORD_ESTALESEQUENCER` unless the sequencer in `data` names a held lock.
    COORD_OP_CHECK_SEQUENCER = 5,
}

/// One op of `coord_multi`; every pointer is borrowed for the call.
#[repr(C)]
#[derive(Debug)]
pub struct coord_op {
    /// What to do: a `coord_op_kind` (an `int`, so that an unknown value is refused with
    /// `COORD_EBADARGUMENTS` rather than being undefined behaviour).
    pub kind: c_int,
    /// The node (unused by `COORD_OP_CHECK_SEQUENCER`).
    pub path: *const c_char,
    /// Data (create, set) or the sequencer bytes.
    pub data: *const u8,
    /// Length of `data`.
    pub data_len: usize,
    /// Expected version (delete, set, check).
    pub version: i32,
    /// `COORD_CREATE_*` (create).
    pub flags: c_int,
    /// TTL or lock-delay (create).
    pub ttl_ms: i64,
}

/// The outcome of one op of `coord_multi`. `path` (creates only) belongs to the caller:
/// free it with `coord_op_results_free` (or `coord_string_free`).
#[repr(C)]
#[derive(Debug)]
pub struct coord_op_result {
    /// `COORD_OK`, the failing op's code, or `COORD_ERUNTIMEINCONSISTENCY` for ops not
    /// applied because another failed.
    pub rc: coord_rc,
    /// The created path, else NULL.
    pub path: *mut c_char,
    /// The Stat (create, set), else zero.
    pub stat: coord_stat,
}

pub(crate) fn multi_op(op: &coord_op) -> Result<MultiOp, coord_rc> {
    use coord_op_kind::*;
    let data = bytes_arg(op.data, op.data_len)?;
    let is = |k: coord_op_kind| op.kind == k as c_int;
    Ok(if is(COORD_OP_CREATE) {
        create_opts(op.flags, op.ttl_ms, cc::Acl::open_unsafe())?
            .to_op(str_arg(op.path)?, data)
            .map_err(rc)?
    } else if is(COORD_OP_DELETE) {
        MultiOp::Delete {
            path: str_arg(op.path)?.into(),
            version: op.version,
        }
    } else if is(COORD_OP_SET) {
        MultiOp::SetData {
            path: str_arg(op.path)?.into(),
            data: data.to_vec(),
            version: op.version,
        }
    } else if is(COORD_OP_CHECK) {
        MultiOp::Check {
            path: str_arg(op.path)?.into(),
            version: op.version,
        }
    } else if is(COORD_OP_CHECK_SEQUENCER) {
        MultiOp::CheckSequencer {
            sequencer: data.to_vec(),
        }
    } else {
        return Err(coord_rc::COORD_EBADARGUMENTS);
    })
}

pub(crate) fn op_result(r: MultiResult) -> coord_op_result {
    let ok = |path: *mut c_char, stat: coord_stat| coord_op_result {
        rc: coord_rc::COORD_OK,
        path,
        stat,
    };
    match r {
        MultiResult::Create { path, stat } => ok(into_cstring(path), stat.into()),
        MultiResult::SetData { stat } => ok(std::ptr::null_mut(), stat.into()),
        MultiResult::Delete | MultiResult::Check => ok(std::ptr::null_mut(), coord_stat::default()),
        MultiResult::Error { code } => coord_rc_result(code.into()),
    }
}

fn coord_rc_result(rc: coord_rc) -> coord_op_result {
    coord_op_result {
        rc,
        path: std::ptr::null_mut(),
        stat: coord_stat::default(),
    }
}

/// Applies `n` ops atomically. `ops[i].kind` must be a `coord_op_kind` value. `results` (may
/// be NULL) has room for `n` entries and receives one per op, on success and when an op
/// failed (then the return value is the failing op's code).
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_multi(
    c: *const coord_client,
    ops: *const coord_op,
    n: usize,
    results: *mut coord_op_result,
) -> coord_rc {
    guard(|| {
        let h = handle(c)?;
        if n == 0 {
            return Ok(());
        }
        if ops.is_null() {
            return Err(coord_rc::COORD_EBADARGUMENTS);
        }
        // SAFETY: the header requires `n` ops at `ops`.
        let ops = unsafe { std::slice::from_raw_parts(ops, n) };
        let ops = ops.iter().map(multi_op).collect::<Result<Vec<_>, _>>()?;
        let (out, code) = match h.run(h.client.multi(ops))? {
            Ok(rs) => (rs, coord_rc::COORD_OK),
            Err(e) => (e.results().to_vec(), rc(e)),
        };
        if !results.is_null() {
            for i in 0..n {
                let r = out
                    .get(i)
                    .cloned()
                    .map(op_result)
                    .unwrap_or_else(|| coord_rc_result(code));
                // SAFETY: the header requires room for `n` results.
                unsafe { results.add(i).write(r) };
            }
        }
        match code {
            coord_rc::COORD_OK => Ok(()),
            e => Err(e),
        }
    })
}

/// Frees the paths in `n` results filled by `coord_multi` (not the array itself, which is
/// the caller's) and sets them NULL.
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_op_results_free(results: *mut coord_op_result, n: usize) {
    if results.is_null() {
        return;
    }
    for i in 0..n {
        // SAFETY: the caller passes the array coord_multi filled.
        let r = unsafe { &mut *results.add(i) };
        // SAFETY: the path is NULL or one `coord_multi` made with `into_cstring`.
        unsafe { coord_string_free(r.path) };
        r.path = std::ptr::null_mut();
    }
}
