//! `coord_lock_*` and `coord_election_*`: C handles over [`coord_recipes::Lock`] and
//! [`coord_recipes::Election`] (the algorithms live there, not here).

use crate::client::{Inner, coord_client, handle, out_ok};
use crate::ffi::*;
use coord_recipes::{Election, Lock, LockOptions};
use std::ffi::c_char;
use std::sync::Arc;
use std::time::Duration;

/// An opaque distributed lock on one client's session (`coord_lock_new`, `coord_lock_free`).
pub struct coord_lock {
    inner: Arc<Inner>,
    lock: Lock,
}

/// An opaque leader-election candidate (`coord_election_new`, `coord_election_free`).
pub struct coord_election {
    inner: Arc<Inner>,
    election: Election,
}

fn timeout(ms: i64) -> Option<Duration> {
    u64::try_from(ms).ok().map(Duration::from_millis)
}

fn client_arc(c: *const coord_client) -> Result<Arc<Inner>, coord_rc> {
    handle(c)?;
    // SAFETY: checked non-NULL above; a live handle per the header.
    Ok(unsafe { &*c }.inner.clone())
}

/// A lock at directory `path` (created on first use) on `c`'s session, with the lock-delay
/// `lock_delay_ms` (0: 1 s; at most 60000) and holder data (`data`/`len`, borrowed, readable
/// by others). `*out` is the caller's: free it with `coord_lock_free` (before or after
/// `coord_close`; after it every call fails with `COORD_EAPIERROR`).
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_lock_new(
    c: *const coord_client,
    path: *const c_char,
    lock_delay_ms: u32,
    data: *const u8,
    len: usize,
    out: *mut *mut coord_lock,
) -> coord_rc {
    guard(|| {
        out_ok(out)?;
        let inner = client_arc(c)?;
        let path = str_arg(path)?;
        let delay = match lock_delay_ms {
            0 => coord_recipes::lock::DEFAULT_LOCK_DELAY,
            ms => Duration::from_millis(ms.into()),
        };
        let opts = LockOptions {
            lock_delay: delay,
            data: bytes_arg(data, len)?.to_vec(),
        };
        let lock = Lock::with_options(inner.client.clone(), path, opts).map_err(rc)?;
        put(out, Box::into_raw(Box::new(coord_lock { inner, lock })));
        Ok(())
    })
}

fn lock_ref<'a>(l: *const coord_lock) -> Result<&'a coord_lock, coord_rc> {
    // SAFETY: NULL or a live lock from coord_lock_new (header contract).
    unsafe { l.as_ref() }.ok_or(coord_rc::COORD_EBADARGUMENTS)
}

/// Takes the lock, waiting at most `timeout_ms` (negative: forever; 0: only if free now).
/// `*acquired` is true when held (reentrant: each acquire needs a release), false when the
/// time ran out (nothing left behind). Blocks the calling thread.
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_lock_acquire(
    l: *const coord_lock,
    timeout_ms: i64,
    acquired: *mut bool,
) -> coord_rc {
    guard(|| {
        out_ok(acquired)?;
        let l = lock_ref(l)?;
        let got = l
            .inner
            .run(l.lock.acquire(timeout(timeout_ms)))?
            .map_err(rc)?;
        put(acquired, got);
        Ok(())
    })
}

/// Releases one acquire. `COORD_EBADARGUMENTS` if not held; `COORD_ESTALESEQUENCER` or
/// `COORD_ESESSIONEXPIRED` if the hold had been lost before (the critical section may have
/// overlapped another holder's).
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_lock_release(l: *const coord_lock) -> coord_rc {
    guard(|| {
        let l = lock_ref(l)?;
        l.inner.run(l.lock.release())?.map_err(rc)
    })
}

/// Whether this handle holds the lock with its session connected.
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_lock_is_held(l: *const coord_lock) -> bool {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        lock_ref(l).map(|l| l.lock.is_held()).unwrap_or(false)
    }))
    .unwrap_or(false)
}

/// The hold's sequencer into `*out` (free with `coord_buf_free`): pass it to services that
/// check it (`coord_check_sequencer`, `COORD_OP_CHECK_SEQUENCER`). `COORD_EBADARGUMENTS` when
/// not held.
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_lock_sequencer(
    l: *const coord_lock,
    out: *mut coord_buf,
) -> coord_rc {
    guard(|| {
        out_ok(out)?;
        let l = lock_ref(l)?;
        let seq = l.lock.sequencer().ok_or(coord_rc::COORD_EBADARGUMENTS)?;
        put(out, into_buf(seq));
        Ok(())
    })
}

/// Frees a lock handle. A held lock is NOT released (the hold lasts until the session ends);
/// release it first. NULL is ignored.
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_lock_free(l: *mut coord_lock) {
    if !l.is_null() {
        let _ = guard(|| {
            // SAFETY: a lock from coord_lock_new, freed once.
            drop(unsafe { Box::from_raw(l) });
            Ok(())
        });
    }
}

/// A candidate in the election at directory `path` campaigning with `value` (borrowed; what
/// `coord_election_leader` reports, e.g. an address). Free with `coord_election_free`.
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_election_new(
    c: *const coord_client,
    path: *const c_char,
    value: *const u8,
    len: usize,
    out: *mut *mut coord_election,
) -> coord_rc {
    guard(|| {
        out_ok(out)?;
        let inner = client_arc(c)?;
        let path = str_arg(path)?;
        let election =
            Election::new(inner.client.clone(), path, bytes_arg(value, len)?).map_err(rc)?;
        put(
            out,
            Box::into_raw(Box::new(coord_election { inner, election })),
        );
        Ok(())
    })
}

fn election_ref<'a>(e: *const coord_election) -> Result<&'a coord_election, coord_rc> {
    // SAFETY: NULL or a live election from coord_election_new (header contract).
    unsafe { e.as_ref() }.ok_or(coord_rc::COORD_EBADARGUMENTS)
}

/// Campaigns until leading (`*leading` true) or `timeout_ms` passed (false, candidacy
/// withdrawn; negative: forever). Blocks the calling thread.
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_election_campaign(
    e: *const coord_election,
    timeout_ms: i64,
    leading: *mut bool,
) -> coord_rc {
    guard(|| {
        out_ok(leading)?;
        let e = election_ref(e)?;
        let won = e
            .inner
            .run(e.election.campaign(timeout(timeout_ms)))?
            .map_err(rc)?;
        put(leading, won);
        Ok(())
    })
}

/// Gives up leadership (nothing when not leading); the next candidate takes over at once.
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_election_resign(e: *const coord_election) -> coord_rc {
    guard(|| {
        let e = election_ref(e)?;
        e.inner.run(e.election.resign())?.map_err(rc)
    })
}

/// The current leader: its value into `*value_out` (free with `coord_buf_free`) and its term
/// into `*term_out` (may be NULL). `COORD_ENONODE` when there is no leader.
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_election_leader(
    e: *const coord_election,
    value_out: *mut coord_buf,
    term_out: *mut u64,
) -> coord_rc {
    guard(|| {
        out_ok(value_out)?;
        let e = election_ref(e)?;
        let leader = e.inner.run(e.election.leader())?.map_err(rc)?;
        let leader = leader.ok_or(coord_rc::COORD_ENONODE)?;
        put(term_out, leader.term);
        put(value_out, into_buf(leader.value));
        Ok(())
    })
}

/// Frees a candidate (not resigning: leadership lasts until the session ends). NULL is
/// ignored.
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_election_free(e: *mut coord_election) {
    if !e.is_null() {
        let _ = guard(|| {
            // SAFETY: from coord_election_new, freed once.
            drop(unsafe { Box::from_raw(e) });
            Ok(())
        });
    }
}
