//! Length-prefixed rkyv frames: `[u32 LE length][archive]`.
//!
//! Decoding copies the body into an [`AlignedVec`] and opens it with validated access
//! (bytecheck); malformed bytes produce [`FrameError`], never a panic or unchecked read.

use rkyv::api::high::{HighDeserializer, HighSerializer, HighValidator};
use rkyv::bytecheck::CheckBytes;
use rkyv::rancor;
use rkyv::ser::allocator::ArenaHandle;
use rkyv::util::AlignedVec;
use thiserror::Error;

/// Bytes of the length prefix.
pub const HEADER_LEN: usize = 4;

/// Default largest frame accepted: 1 MiB of data plus room for paths, ACLs and framing.
pub const DEFAULT_MAX_FRAME: usize = 1024 * 1024 + 64 * 1024;

/// Why a frame could not be encoded or decoded.
#[derive(Debug, Error)]
pub enum FrameError {
    /// The length prefix announces more than the limit.
    #[error("frame of {len} bytes is over the limit of {limit}")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// Configured limit.
        limit: usize,
    },
    /// The bytes are not a valid archive of the expected type.
    #[error("frame failed validation: {0}")]
    Invalid(String),
    /// Encoding failed.
    #[error("frame could not be encoded: {0}")]
    Encode(String),
    /// The input ended inside a frame.
    #[error("frame truncated: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Bytes present.
        have: usize,
    },
}

/// Serializes `value` into a frame: length prefix plus archive.
pub fn encode<T>(value: &T) -> Result<Vec<u8>, FrameError>
where
    T: for<'a> rkyv::Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>,
{
    let body =
        rkyv::to_bytes::<rancor::Error>(value).map_err(|e| FrameError::Encode(e.to_string()))?;
    let len =
        u32::try_from(body.len()).map_err(|_| FrameError::Encode("frame over 4 GiB".into()))?;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Serializes `value` as a bare archive (no length prefix), e.g. for a log record.
pub fn encode_body<T>(value: &T) -> Result<AlignedVec, FrameError>
where
    T: for<'a> rkyv::Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>,
{
    rkyv::to_bytes::<rancor::Error>(value).map_err(|e| FrameError::Encode(e.to_string()))
}

/// Reads the length prefix and checks it against `limit`.
pub fn body_len(header: [u8; HEADER_LEN], limit: usize) -> Result<usize, FrameError> {
    let len = u32::from_le_bytes(header) as usize;
    if len > limit {
        return Err(FrameError::TooLarge { len, limit });
    }
    Ok(len)
}

/// Validates and deserializes a frame body (without the length prefix). The bytes may sit at
/// any alignment: they are copied into an aligned buffer first.
pub fn decode<T>(body: &[u8]) -> Result<T, FrameError>
where
    T: rkyv::Archive,
    T::Archived: for<'a> CheckBytes<HighValidator<'a, rancor::Error>>
        + rkyv::Deserialize<T, HighDeserializer<rancor::Error>>,
{
    let mut aligned = AlignedVec::<16>::with_capacity(body.len());
    aligned.extend_from_slice(body);
    decode_aligned(&aligned)
}

/// Like [`decode`], for a body already in an aligned buffer.
pub fn decode_aligned<T>(body: &AlignedVec) -> Result<T, FrameError>
where
    T: rkyv::Archive,
    T::Archived: for<'a> CheckBytes<HighValidator<'a, rancor::Error>>
        + rkyv::Deserialize<T, HighDeserializer<rancor::Error>>,
{
    rkyv::from_bytes::<T, rancor::Error>(body).map_err(|e| FrameError::Invalid(e.to_string()))
}

/// One whole frame's body and the bytes after it.
pub type Split<'a> = (&'a [u8], &'a [u8]);

/// Splits one whole frame off the front of `buf`, returning the body and the rest, or `None`
/// when `buf` does not yet hold a whole frame.
pub fn split_frame(buf: &[u8], limit: usize) -> Result<Option<Split<'_>>, FrameError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let len = body_len([buf[0], buf[1], buf[2], buf[3]], limit)?;
    if buf.len() < HEADER_LEN + len {
        return Ok(None);
    }
    Ok(Some((
        &buf[HEADER_LEN..HEADER_LEN + len],
        &buf[HEADER_LEN + len..],
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::*;

    fn sample_frames() -> Vec<ClientFrame> {
        vec![
            ClientFrame::Connect(ConnectRequest {
                protocol_version: CLIENT_PROTOCOL_VERSION,
                last_zxid_seen: 7,
                timeout_ms: 10_000,
                session_id: 0,
                password: vec![],
                read_only: false,
            }),
            ClientFrame::Request {
                xid: 1,
                request: Request::Create {
                    path: "/a".into(),
                    data: b"hello".to_vec(),
                    acl: Acl::open_unsafe(),
                    mode: CreateMode::EphemeralSequential,
                    ttl_ms: 0,
                },
            },
            ClientFrame::Request {
                xid: 2,
                request: Request::Multi {
                    ops: vec![
                        MultiOp::Check {
                            path: "/a".into(),
                            version: 3,
                        },
                        MultiOp::Delete {
                            path: "/b".into(),
                            version: ANY_VERSION,
                        },
                    ],
                },
            },
        ]
    }

    #[test]
    fn round_trip() {
        for f in sample_frames() {
            let bytes = encode(&f).unwrap();
            let (body, rest) = split_frame(&bytes, DEFAULT_MAX_FRAME).unwrap().unwrap();
            assert!(rest.is_empty());
            let back: ClientFrame = decode(body).unwrap();
            assert_eq!(back, f);
        }
    }

    #[test]
    fn unaligned_input_decodes() {
        let f = &sample_frames()[1];
        let bytes = encode(f).unwrap();
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&bytes[HEADER_LEN..]);
        let back: ClientFrame = decode(&shifted[1..]).unwrap();
        assert_eq!(&back, f);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..512 {
            let mut junk = Vec::with_capacity(len);
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                junk.push(seed as u8);
            }
            let _ = decode::<ClientFrame>(&junk);
            let _ = decode::<ServerFrame>(&junk);
        }
        // Every truncation and every single-bit flip of a real frame is refused or decodes.
        let bytes = encode(&sample_frames()[1]).unwrap();
        let body = &bytes[HEADER_LEN..];
        for cut in 0..body.len() {
            assert!(decode::<ClientFrame>(&body[..cut]).is_err());
        }
        for i in 0..body.len() * 8 {
            let mut b = body.to_vec();
            b[i / 8] ^= 1 << (i % 8);
            let _ = decode::<ClientFrame>(&b);
        }
    }

    #[test]
    fn oversized_prefix_is_refused() {
        let mut buf = (10_000u32).to_le_bytes().to_vec();
        buf.extend_from_slice(&[0; 16]);
        assert!(matches!(
            split_frame(&buf, 1000),
            Err(FrameError::TooLarge {
                len: 10_000,
                limit: 1000
            })
        ));
    }
}
