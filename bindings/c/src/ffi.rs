//! The C-facing value types, the error enum, and the helpers that turn C arguments into
//! Rust values and Rust results into C ones.

use coord_client::{ErrorCode, Stat};
use std::ffi::{CStr, CString, c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// A result code: `COORD_OK` (0) or an error, numbered as ZooKeeper's C client numbers them
/// (`ZNONODE` = -101 is `COORD_ENONODE`), Coord's own codes at -200 and below.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum coord_rc {
    /// Success.
    COORD_OK = 0,
    /// An unexpected server-side failure.
    COORD_ESYSTEMERROR = -1,
    /// A multi op not applied because another op of the same multi failed.
    COORD_ERUNTIMEINCONSISTENCY = -2,
    /// Replicas disagree (a bug).
    COORD_EDATAINCONSISTENCY = -3,
    /// The connection was lost before the reply: the call may or may not have been applied.
    COORD_ECONNECTIONLOSS = -4,
    /// A frame could not be encoded or decoded.
    COORD_EMARSHALLINGERROR = -5,
    /// Not implemented.
    COORD_EUNIMPLEMENTED = -6,
    /// The operation timed out.
    COORD_EOPERATIONTIMEOUT = -7,
    /// Invalid arguments: a NULL pointer, a string that is not UTF-8, a bad flag.
    COORD_EBADARGUMENTS = -8,
    /// The session id is unknown.
    COORD_EUNKNOWNSESSION = -12,
    /// API misuse (for example a call on a closed client).
    COORD_EAPIERROR = -100,
    /// The node does not exist.
    COORD_ENONODE = -101,
    /// Not authorized.
    COORD_ENOAUTH = -102,
    /// The expected version does not match.
    COORD_EBADVERSION = -103,
    /// Ephemeral nodes may not have children.
    COORD_ENOCHILDRENFOREPHEMERALS = -108,
    /// The node already exists.
    COORD_ENODEEXISTS = -110,
    /// The node has children.
    COORD_ENOTEMPTY = -111,
    /// The session has expired.
    COORD_ESESSIONEXPIRED = -112,
    /// Invalid callback.
    COORD_EINVALIDCALLBACK = -113,
    /// Invalid ACL.
    COORD_EINVALIDACL = -114,
    /// Authentication failed.
    COORD_EAUTHFAILED = -115,
    /// The session moved to another server.
    COORD_ESESSIONMOVED = -118,
    /// A write was sent to a read-only server.
    COORD_ENOTREADONLY = -119,
    /// No watch matched.
    COORD_ENOWATCHER = -121,
    /// The request timed out.
    COORD_EREQUESTTIMEOUT = -122,
    /// The server is throttling this client.
    COORD_ETHROTTLED = -127,
    /// The path is malformed.
    COORD_EINVALIDPATH = -200,
    /// A value or request is over a configured limit.
    COORD_ETOOLARGE = -201,
    /// The protocol version is not supported.
    COORD_EVERSIONMISMATCH = -202,
    /// The server is not serving (no quorum, shutting down).
    COORD_ENOTSERVING = -203,
    /// A lock node's path is held back by its lock-delay.
    COORD_ELOCKDELAY = -204,
    /// A sequencer no longer names a held lock.
    COORD_ESTALESEQUENCER = -205,
    /// The server's disk is nearly full (`min_free_disk_bytes`); reads go on.
    COORD_EDISKFULL = -206,
    /// A bug inside libcoord was caught before it could cross into C (please report it).
    COORD_EPANIC = -300,
}

impl From<ErrorCode> for coord_rc {
    fn from(code: ErrorCode) -> coord_rc {
        use coord_rc::*;
        match code {
            ErrorCode::Ok => COORD_OK,
            ErrorCode::SystemError => COORD_ESYSTEMERROR,
            ErrorCode::RuntimeInconsistency => COORD_ERUNTIMEINCONSISTENCY,
            ErrorCode::DataInconsistency => COORD_EDATAINCONSISTENCY,
            ErrorCode::ConnectionLoss => COORD_ECONNECTIONLOSS,
            ErrorCode::MarshallingError => COORD_EMARSHALLINGERROR,
            ErrorCode::Unimplemented => COORD_EUNIMPLEMENTED,
            ErrorCode::OperationTimeout => COORD_EOPERATIONTIMEOUT,
            ErrorCode::BadArguments => COORD_EBADARGUMENTS,
            ErrorCode::UnknownSession => COORD_EUNKNOWNSESSION,
            ErrorCode::ApiError => COORD_EAPIERROR,
            ErrorCode::NoNode => COORD_ENONODE,
            ErrorCode::NoAuth => COORD_ENOAUTH,
            ErrorCode::BadVersion => COORD_EBADVERSION,
            ErrorCode::NoChildrenForEphemerals => COORD_ENOCHILDRENFOREPHEMERALS,
            ErrorCode::NodeExists => COORD_ENODEEXISTS,
            ErrorCode::NotEmpty => COORD_ENOTEMPTY,
            ErrorCode::SessionExpired => COORD_ESESSIONEXPIRED,
            ErrorCode::InvalidCallback => COORD_EINVALIDCALLBACK,
            ErrorCode::InvalidAcl => COORD_EINVALIDACL,
            ErrorCode::AuthFailed => COORD_EAUTHFAILED,
            ErrorCode::SessionMoved => COORD_ESESSIONMOVED,
            ErrorCode::NotReadOnly => COORD_ENOTREADONLY,
            ErrorCode::NoWatcher => COORD_ENOWATCHER,
            ErrorCode::RequestTimeout => COORD_EREQUESTTIMEOUT,
            ErrorCode::Throttled => COORD_ETHROTTLED,
            ErrorCode::InvalidPath => COORD_EINVALIDPATH,
            ErrorCode::TooLarge => COORD_ETOOLARGE,
            ErrorCode::VersionMismatch => COORD_EVERSIONMISMATCH,
            ErrorCode::NotServing => COORD_ENOTSERVING,
            ErrorCode::LockDelay => COORD_ELOCKDELAY,
            ErrorCode::StaleSequencer => COORD_ESTALESEQUENCER,
            ErrorCode::DiskFull => COORD_EDISKFULL,
        }
    }
}

impl From<&coord_client::Error> for coord_rc {
    fn from(e: &coord_client::Error) -> coord_rc {
        e.code().into()
    }
}

/// The metadata of a znode, field for field as ZooKeeper's `Stat`; always passed by value
/// or into caller-owned storage, never allocated by the library.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct coord_stat {
    /// zxid of the change that created the node.
    pub czxid: u64,
    /// zxid of the change that last modified its data.
    pub mzxid: u64,
    /// zxid of the change that last modified its children.
    pub pzxid: u64,
    /// Creation time, ms since the Unix epoch.
    pub ctime: i64,
    /// Last data change, ms since the Unix epoch.
    pub mtime: i64,
    /// Number of data changes.
    pub version: i32,
    /// Number of children changes.
    pub cversion: i32,
    /// Number of ACL changes.
    pub aversion: i32,
    /// Owner session if ephemeral, else 0.
    pub ephemeral_owner: u64,
    /// Data length in bytes.
    pub data_length: u32,
    /// Number of children.
    pub num_children: u32,
}

impl From<Stat> for coord_stat {
    fn from(s: Stat) -> coord_stat {
        coord_stat {
            czxid: s.czxid,
            mzxid: s.mzxid,
            pzxid: s.pzxid,
            ctime: s.ctime,
            mtime: s.mtime,
            version: s.version,
            cversion: s.cversion,
            aversion: s.aversion,
            ephemeral_owner: s.ephemeral_owner,
            data_length: s.data_length,
            num_children: s.num_children,
        }
    }
}

/// Bytes owned by the library: free them with `coord_buf_free` (exactly once).
#[repr(C)]
#[derive(Debug)]
pub struct coord_buf {
    /// The bytes (NULL when `len` is 0).
    pub data: *mut u8,
    /// How many.
    pub len: usize,
}

/// NUL-terminated strings owned by the library: free them with `coord_strings_free`.
#[repr(C)]
#[derive(Debug)]
pub struct coord_strings {
    /// `count` strings (NULL when `count` is 0).
    pub items: *mut *mut c_char,
    /// How many.
    pub count: usize,
}

/// One ACL entry. In `coord_set_acl` and `coord_create_acl` the strings are borrowed from the
/// caller; in a `coord_acl_list` they belong to the list.
#[repr(C)]
#[derive(Debug)]
pub struct coord_acl {
    /// `COORD_PERM_*` bits.
    pub perms: u32,
    /// `world`, `auth`, `digest`, `ip`, `x509` or `super`.
    pub scheme: *const c_char,
    /// The id within the scheme (`anyone`, `user:hash`, ...).
    pub id: *const c_char,
}

/// ACL entries owned by the library: free them with `coord_acl_list_free`.
#[repr(C)]
#[derive(Debug)]
pub struct coord_acl_list {
    /// `count` entries.
    pub items: *mut coord_acl,
    /// How many.
    pub count: usize,
}

/// May read data and list children.
pub const COORD_PERM_READ: u32 = 1;
/// May set data.
pub const COORD_PERM_WRITE: u32 = 2;
/// May create children.
pub const COORD_PERM_CREATE: u32 = 4;
/// May delete children.
pub const COORD_PERM_DELETE: u32 = 8;
/// May set the ACL.
pub const COORD_PERM_ADMIN: u32 = 16;
/// Every permission.
pub const COORD_PERM_ALL: u32 = 31;

/// The message of `rc` (a `coord_rc`; an `int` so that any value is safe to pass): a static
/// string, never freed, never NULL (unknown codes included).
#[unsafe(no_mangle)]
pub extern "C" fn coord_strerror(rc: c_int) -> *const c_char {
    let s: &'static CStr = match rc {
        0 => c"ok",
        -1 => c"system error",
        -2 => c"not applied: another op of the multi failed",
        -3 => c"data inconsistency",
        -4 => c"connection lost",
        -5 => c"malformed frame",
        -6 => c"not implemented",
        -7 => c"operation timed out",
        -8 => c"bad arguments",
        -12 => c"unknown session",
        -100 => c"API error",
        -101 => c"no such node",
        -102 => c"not authorized",
        -103 => c"version mismatch",
        -108 => c"ephemeral nodes may not have children",
        -110 => c"node already exists",
        -111 => c"node has children",
        -112 => c"session expired",
        -113 => c"invalid callback",
        -114 => c"invalid ACL",
        -115 => c"authentication failed",
        -118 => c"session moved to another server",
        -119 => c"server is read-only",
        -121 => c"no such watcher",
        -122 => c"request timed out",
        -127 => c"throttled",
        -200 => c"invalid path",
        -201 => c"over the configured limit",
        -202 => c"unsupported protocol version",
        -203 => c"server is not serving",
        -204 => c"the lock's previous holder expired; its lock-delay has not run out",
        -205 => c"the sequencer no longer names a held lock",
        -300 => c"internal error in libcoord (a caught panic)",
        _ => c"unknown error code",
    };
    s.as_ptr()
}

/// Frees a `coord_buf` the library filled, and sets it empty (so a second free is harmless).
/// NULL is ignored.
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_buf_free(buf: *mut coord_buf) {
    let _ = guard(|| {
        // SAFETY: the caller passes a buf the library filled (or zeroed); see the header.
        let Some(buf) = (unsafe { buf.as_mut() }) else {
            return Ok(());
        };
        if !buf.data.is_null() {
            // SAFETY: `data`/`len` came from `into_buf`, a leaked boxed slice.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(buf.data, buf.len)) });
        }
        buf.data = std::ptr::null_mut();
        buf.len = 0;
        Ok(())
    });
}

/// Frees a `coord_strings` the library filled and sets it empty. NULL is ignored.
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_strings_free(list: *mut coord_strings) {
    let _ = guard(|| {
        // SAFETY: as in coord_buf_free.
        let Some(list) = (unsafe { list.as_mut() }) else {
            return Ok(());
        };
        if !list.items.is_null() {
            // SAFETY: items/count came from `into_strings`.
            let items = unsafe {
                Box::from_raw(std::ptr::slice_from_raw_parts_mut(list.items, list.count))
            };
            for s in items.iter() {
                // SAFETY: each item is a string from `into_cstring`.
                unsafe { coord_string_free(*s) };
            }
        }
        list.items = std::ptr::null_mut();
        list.count = 0;
        Ok(())
    });
}

/// Frees one string the library returned (a created path). NULL is ignored.
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_string_free(s: *mut c_char) {
    if !s.is_null() {
        // SAFETY: every string the library hands out is a `CString::into_raw`.
        drop(unsafe { CString::from_raw(s) });
    }
}

/// Frees a `coord_acl_list` the library filled and sets it empty. NULL is ignored.
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_acl_list_free(list: *mut coord_acl_list) {
    let _ = guard(|| {
        // SAFETY: as in coord_buf_free.
        let Some(list) = (unsafe { list.as_mut() }) else {
            return Ok(());
        };
        if !list.items.is_null() {
            // SAFETY: items/count came from `into_acl_list`.
            let items = unsafe {
                Box::from_raw(std::ptr::slice_from_raw_parts_mut(list.items, list.count))
            };
            for a in items.iter() {
                // SAFETY: both strings are from `into_cstring`.
                unsafe {
                    coord_string_free(a.scheme as *mut c_char);
                    coord_string_free(a.id as *mut c_char);
                }
            }
        }
        list.items = std::ptr::null_mut();
        list.count = 0;
        Ok(())
    });
}

/// What a failed argument check or call turns into.
pub(crate) type CResult = Result<(), coord_rc>;

/// Runs `f`, turning a panic into `COORD_EPANIC`: the one place unwinding stops.
pub(crate) fn guard(f: impl FnOnce() -> CResult) -> coord_rc {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => coord_rc::COORD_OK,
        Ok(Err(rc)) => rc,
        Err(_) => coord_rc::COORD_EPANIC,
    }
}

/// Converts a client error for C.
pub(crate) fn rc(e: coord_client::Error) -> coord_rc {
    (&e).into()
}

/// A borrowed C string as UTF-8; NULL or not UTF-8 is `COORD_EBADARGUMENTS`.
pub(crate) fn str_arg<'a>(p: *const c_char) -> Result<&'a str, coord_rc> {
    if p.is_null() {
        return Err(coord_rc::COORD_EBADARGUMENTS);
    }
    // SAFETY: the header requires a NUL-terminated string that outlives the call.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| coord_rc::COORD_EBADARGUMENTS)
}

/// An optional borrowed C string (NULL is `None`).
pub(crate) fn opt_str_arg<'a>(p: *const c_char) -> Result<Option<&'a str>, coord_rc> {
    if p.is_null() {
        Ok(None)
    } else {
        str_arg(p).map(Some)
    }
}

/// Borrowed bytes; NULL is allowed only with `len` 0.
pub(crate) fn bytes_arg<'a>(p: *const u8, len: usize) -> Result<&'a [u8], coord_rc> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(coord_rc::COORD_EBADARGUMENTS);
    }
    // SAFETY: the header requires `len` readable bytes at `p` for the call's duration.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// Writes `v` to an optional out pointer.
pub(crate) fn put<T>(out: *mut T, v: T) {
    if !out.is_null() {
        // SAFETY: the header requires a valid, writable out pointer or NULL.
        unsafe { out.write(v) };
    }
}

/// A string for C; an interior NUL (impossible for znode paths) is cut there.
pub(crate) fn into_cstring(s: String) -> *mut c_char {
    let s = match CString::new(s) {
        Ok(s) => s,
        Err(e) => {
            let pos = e.nul_position();
            let mut v = e.into_vec();
            v.truncate(pos);
            // The NUL and everything after it are gone, so this cannot fail.
            CString::new(v).unwrap_or_default()
        }
    };
    s.into_raw()
}

pub(crate) fn into_buf(v: Vec<u8>) -> coord_buf {
    if v.is_empty() {
        return coord_buf {
            data: std::ptr::null_mut(),
            len: 0,
        };
    }
    let len = v.len();
    let data = Box::into_raw(v.into_boxed_slice()) as *mut u8;
    coord_buf { data, len }
}

pub(crate) fn into_strings(v: Vec<String>) -> coord_strings {
    if v.is_empty() {
        return coord_strings {
            items: std::ptr::null_mut(),
            count: 0,
        };
    }
    let items: Box<[*mut c_char]> = v.into_iter().map(into_cstring).collect();
    let count = items.len();
    coord_strings {
        items: Box::into_raw(items) as *mut *mut c_char,
        count,
    }
}

pub(crate) fn into_acl_list(v: Vec<coord_client::Acl>) -> coord_acl_list {
    let items: Box<[coord_acl]> = v
        .into_iter()
        .map(|a| coord_acl {
            perms: a.perms,
            scheme: into_cstring(a.id.scheme),
            id: into_cstring(a.id.id),
        })
        .collect();
    let count = items.len();
    coord_acl_list {
        items: Box::into_raw(items) as *mut coord_acl,
        count,
    }
}

/// Reads a caller's ACL array (`NULL`/0 means "open to everyone").
pub(crate) fn acl_arg(p: *const coord_acl, n: usize) -> Result<Vec<coord_client::Acl>, coord_rc> {
    if n == 0 {
        return Ok(coord_client::Acl::open_unsafe());
    }
    if p.is_null() {
        return Err(coord_rc::COORD_EBADARGUMENTS);
    }
    // SAFETY: the header requires `n` entries at `p`.
    let entries = unsafe { std::slice::from_raw_parts(p, n) };
    entries
        .iter()
        .map(|a| {
            Ok(coord_client::Acl {
                perms: a.perms,
                id: coord_client::Id::new(str_arg(a.scheme)?, str_arg(a.id)?),
            })
        })
        .collect()
}
