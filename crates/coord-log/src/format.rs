//! Byte layout of segments, records and snapshots: pure encode/decode, no IO.
//!
//! Every decoder takes untrusted bytes and returns a typed failure instead of panicking or
//! allocating from a length field: lengths are checked against the bytes actually present
//! and against `max_record` before any slice is taken.

use std::fmt;

/// Format version written into every segment and snapshot header.
pub const FORMAT_VERSION: u32 = 1;
/// First 8 bytes of a log segment.
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"COORDLOG";
/// First 8 bytes of a snapshot file.
pub(crate) const SNAPSHOT_MAGIC: [u8; 8] = *b"COORDSNP";
/// Bytes in a segment header.
pub const SEGMENT_HEADER_LEN: usize = 32;
/// Bytes in front of each record's payload: `[u32 len][u32 crc][u64 zxid]`.
pub const RECORD_HEADER_LEN: usize = 16;
/// Bytes in a snapshot header.
pub const SNAPSHOT_HEADER_LEN: usize = 40;

/// File name of the segment whose records all have zxid >= `base`.
pub(crate) fn segment_name(base: u64) -> String {
    format!("log.{base:016x}")
}

/// File name of the snapshot of the state at `zxid`.
pub(crate) fn snapshot_name(zxid: u64) -> String {
    format!("snap.{zxid:016x}")
}

/// Parses `<prefix><16 lowercase hex digits>`; anything else is not ours.
pub(crate) fn parse_name(name: &str, prefix: &str) -> Option<u64> {
    let hex = name.strip_prefix(prefix)?;
    if hex.len() != 16
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    u32::from_le_bytes(b)
}

fn u64_at(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Segment header: `magic[8] | version u32 | base u64 | crc32c(bytes 0..20) u32 | zero[8]`.
pub(crate) fn encode_segment_header(base: u64) -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    h[0..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&base.to_le_bytes());
    let crc = crc32c::crc32c(&h[0..20]);
    h[20..24].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Why a segment header was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeaderError {
    /// Fewer bytes than a header: a segment whose creation was torn.
    Short,
    /// Not our magic.
    BadMagic,
    /// A version this build does not read.
    Version(u32),
    /// Header checksum mismatch.
    BadCrc,
    /// The base in the header disagrees with the file name.
    BaseMismatch(u64),
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::Short => {
                write!(f, "segment header shorter than {SEGMENT_HEADER_LEN} bytes")
            }
            HeaderError::BadMagic => write!(f, "bad segment magic"),
            HeaderError::Version(v) => write!(f, "unsupported segment version {v}"),
            HeaderError::BadCrc => write!(f, "segment header checksum mismatch"),
            HeaderError::BaseMismatch(b) => write!(f, "header base {b:#x} differs from file name"),
        }
    }
}

/// Validates a segment header against the base taken from the file name.
pub(crate) fn decode_segment_header(buf: &[u8], base: u64) -> Result<(), HeaderError> {
    if buf.len() < SEGMENT_HEADER_LEN {
        return Err(HeaderError::Short);
    }
    if buf[0..8] != SEGMENT_MAGIC {
        return Err(HeaderError::BadMagic);
    }
    let version = u32_at(buf, 8);
    if version != FORMAT_VERSION {
        return Err(HeaderError::Version(version));
    }
    if crc32c::crc32c(&buf[0..20]) != u32_at(buf, 20) {
        return Err(HeaderError::BadCrc);
    }
    let found = u64_at(buf, 12);
    if found != base {
        return Err(HeaderError::BaseMismatch(found));
    }
    Ok(())
}

/// CRC of one record: crc32c over `zxid.to_le_bytes() ++ payload`.
pub(crate) fn record_crc(zxid: u64, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&zxid.to_le_bytes()), payload)
}

/// Appends `[u32 len][u32 crc][u64 zxid][payload]` (little endian) to `out`.
/// The caller has checked `payload.len() <= max_record <= u32::MAX`.
pub(crate) fn encode_record(out: &mut Vec<u8>, zxid: u64, payload: &[u8]) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&record_crc(zxid, payload).to_le_bytes());
    out.extend_from_slice(&zxid.to_le_bytes());
    out.extend_from_slice(payload);
}

/// Why the record scan stopped before the end of the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadRecord {
    /// Fewer than 16 bytes left for a record header.
    ShortHeader {
        /// Bytes left.
        have: usize,
    },
    /// The length field exceeds `max_record`.
    TooLong {
        /// The length field.
        len: u32,
    },
    /// The payload runs past the end of the bytes.
    ShortPayload {
        /// The length field.
        len: u32,
        /// Payload bytes present.
        have: usize,
    },
    /// The CRC does not match zxid ++ payload.
    BadCrc {
        /// The zxid field (untrusted).
        zxid: u64,
    },
    /// The zxid is not greater than the previous one (or below the segment base).
    NotIncreasing {
        /// The zxid field.
        zxid: u64,
        /// The previous zxid (or base - 1).
        prev: u64,
    },
}

impl fmt::Display for BadRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadRecord::ShortHeader { have } => write!(f, "short record header ({have} bytes)"),
            BadRecord::TooLong { len } => write!(f, "record length {len} over the limit"),
            BadRecord::ShortPayload { len, have } => {
                write!(f, "short record: length {len}, {have} bytes present")
            }
            BadRecord::BadCrc { zxid } => write!(f, "bad CRC (zxid field {zxid:#x})"),
            BadRecord::NotIncreasing { zxid, prev } => {
                write!(f, "zxid {zxid:#x} not greater than {prev:#x}")
            }
        }
    }
}

/// One step of a record scan.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step<'a> {
    /// A valid record; `end` is the offset just past it.
    Record {
        /// Its zxid.
        zxid: u64,
        /// Its payload, borrowed from the scanned bytes.
        payload: &'a [u8],
        /// Offset just past the record.
        end: usize,
    },
    /// The bytes end exactly on a record boundary.
    End,
    /// The record at `offset` is invalid; nothing from `offset` on can be trusted.
    Bad {
        /// Where the bad record starts.
        offset: usize,
        /// What is wrong with it.
        reason: BadRecord,
    },
}

/// Walks records in `buf[pos..]`, each zxid required to be greater than `prev`.
pub(crate) struct RecordScan<'a> {
    buf: &'a [u8],
    pos: usize,
    prev: u64,
    max_record: u32,
}

impl<'a> RecordScan<'a> {
    /// Starts at `pos`; records must have zxid > `prev` and length <= `max_record`.
    pub(crate) fn new(buf: &'a [u8], pos: usize, prev: u64, max_record: u32) -> Self {
        RecordScan {
            buf,
            pos,
            prev,
            max_record,
        }
    }

    /// Decodes the next record, or says why it cannot.
    pub(crate) fn step(&mut self) -> Step<'a> {
        let offset = self.pos;
        let rest = self.buf.get(offset..).unwrap_or(&[]);
        if rest.is_empty() {
            return Step::End;
        }
        let bad = |reason| Step::Bad { offset, reason };
        if rest.len() < RECORD_HEADER_LEN {
            return bad(BadRecord::ShortHeader { have: rest.len() });
        }
        let len = u32_at(rest, 0);
        let crc = u32_at(rest, 4);
        let zxid = u64_at(rest, 8);
        if len > self.max_record {
            return bad(BadRecord::TooLong { len });
        }
        // len <= max_record <= u32::MAX, so this cannot truncate on 64-bit targets.
        let len_us = len as usize;
        let have = rest.len() - RECORD_HEADER_LEN;
        if have < len_us {
            return bad(BadRecord::ShortPayload { len, have });
        }
        let payload = &rest[RECORD_HEADER_LEN..RECORD_HEADER_LEN + len_us];
        if record_crc(zxid, payload) != crc {
            return bad(BadRecord::BadCrc { zxid });
        }
        if zxid <= self.prev {
            return bad(BadRecord::NotIncreasing {
                zxid,
                prev: self.prev,
            });
        }
        self.prev = zxid;
        self.pos = offset + RECORD_HEADER_LEN + len_us;
        Step::Record {
            zxid,
            payload,
            end: self.pos,
        }
    }
}

/// Snapshot header: `magic[8] | version u32 | crc32c(bytes 16..40 ++ payload) u32 |
/// zxid u64 | payload len u64 | zero[8]`.
pub(crate) fn encode_snapshot_header(zxid: u64, payload: &[u8]) -> [u8; SNAPSHOT_HEADER_LEN] {
    let mut h = [0u8; SNAPSHOT_HEADER_LEN];
    h[0..8].copy_from_slice(&SNAPSHOT_MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&zxid.to_le_bytes());
    h[24..32].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&h[16..40]), payload);
    h[12..16].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Validates a whole snapshot file and returns the payload range within it.
pub(crate) fn decode_snapshot(buf: &[u8], zxid: u64) -> Result<std::ops::Range<usize>, String> {
    if buf.len() < SNAPSHOT_HEADER_LEN {
        return Err(format!(
            "snapshot shorter than its {SNAPSHOT_HEADER_LEN}-byte header"
        ));
    }
    if buf[0..8] != SNAPSHOT_MAGIC {
        return Err("bad snapshot magic".into());
    }
    let version = u32_at(buf, 8);
    if version != FORMAT_VERSION {
        return Err(format!("unsupported snapshot version {version}"));
    }
    let found = u64_at(buf, 16);
    if found != zxid {
        return Err(format!("header zxid {found:#x} differs from file name"));
    }
    let len = u64_at(buf, 24);
    let have = (buf.len() - SNAPSHOT_HEADER_LEN) as u64;
    if len != have {
        return Err(format!("length field {len} but {have} payload bytes"));
    }
    let payload = &buf[SNAPSHOT_HEADER_LEN..];
    let crc = crc32c::crc32c_append(crc32c::crc32c(&buf[16..40]), payload);
    if crc != u32_at(buf, 12) {
        return Err("snapshot checksum mismatch".into());
    }
    Ok(SNAPSHOT_HEADER_LEN..buf.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_reject_foreign_files() {
        assert_eq!(segment_name(0x1_0000_0001), "log.0000000100000001");
        assert_eq!(
            parse_name("log.0000000100000001", "log."),
            Some(0x1_0000_0001)
        );
        assert_eq!(parse_name("log.0000000100000001.tmp", "log."), None);
        assert_eq!(parse_name("log.00000001000000AB", "log."), None);
        assert_eq!(parse_name("log.+000000100000001", "log."), None);
        assert_eq!(parse_name("snap.0000000000000007", "snap."), Some(7));
    }

    #[test]
    fn record_round_trip_and_every_prefix_is_refused() {
        let mut buf = Vec::new();
        encode_record(&mut buf, 5, b"hello");
        let mut scan = RecordScan::new(&buf, 0, 4, 1024);
        assert_eq!(
            scan.step(),
            Step::Record {
                zxid: 5,
                payload: b"hello",
                end: buf.len()
            }
        );
        assert_eq!(scan.step(), Step::End);
        for cut in 1..buf.len() {
            let mut scan = RecordScan::new(&buf[..cut], 0, 4, 1024);
            assert!(
                matches!(scan.step(), Step::Bad { offset: 0, .. }),
                "cut at {cut}"
            );
        }
        let mut scan = RecordScan::new(&buf, 0, 5, 1024);
        assert!(matches!(
            scan.step(),
            Step::Bad {
                reason: BadRecord::NotIncreasing { .. },
                ..
            }
        ));
    }

    #[test]
    fn huge_length_field_is_refused_without_allocation() {
        let mut buf = vec![0xFF; 4];
        buf.extend_from_slice(&[0; 12]);
        let mut scan = RecordScan::new(&buf, 0, 0, 8 << 20);
        assert_eq!(
            scan.step(),
            Step::Bad {
                offset: 0,
                reason: BadRecord::TooLong { len: u32::MAX }
            }
        );
    }

    #[test]
    fn headers_round_trip_and_detect_damage() {
        let h = encode_segment_header(9);
        assert_eq!(decode_segment_header(&h, 9), Ok(()));
        assert_eq!(
            decode_segment_header(&h, 10),
            Err(HeaderError::BaseMismatch(9))
        );
        assert_eq!(decode_segment_header(&h[..31], 9), Err(HeaderError::Short));
        let mut bad = h;
        bad[13] ^= 1;
        assert_eq!(decode_segment_header(&bad, 9), Err(HeaderError::BadCrc));

        let mut snap = encode_snapshot_header(7, b"state").to_vec();
        snap.extend_from_slice(b"state");
        assert_eq!(
            decode_snapshot(&snap, 7),
            Ok(SNAPSHOT_HEADER_LEN..snap.len())
        );
        assert!(decode_snapshot(&snap, 8).is_err());
        assert!(decode_snapshot(&snap[..snap.len() - 1], 7).is_err());
        let last = snap.len() - 1;
        snap[last] ^= 0x40;
        assert!(decode_snapshot(&snap, 7).is_err());
    }
}
