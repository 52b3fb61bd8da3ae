//! Sequencers (Chubby): an opaque byte string a lock holder hands to another service, which
//! asks any Coord server whether it still names a held lock before acting on the holder's
//! behalf (fencing).
//!
//! ```text
//!   [u8 version = 1][u8 mode][u64 czxid][u64 session][u16 path length][path][u32 crc32c]
//!   (little-endian; the crc covers every byte before it)
//! ```
//!
//! A sequencer names the node that stands for one hold of a lock (its path), the hold's
//! generation (the node's czxid: a node deleted and created again at the same path has
//! another), the mode, and the holding session. It is valid while that node exists with that
//! czxid and is owned by that session. The checksum only catches truncated and garbled
//! sequencers early; validity is always decided by the server against the tree, so a forged
//! sequencer that decodes names some other hold and is judged on that.

use crate::path::validate_path;

/// How a lock is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockMode {
    /// The only holder (exclusive lock, write lock, leader).
    Exclusive,
    /// One of several holders (read lock, semaphore lease).
    Shared,
}

/// A decoded sequencer; see the module doc.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sequencer {
    /// The node that stands for this hold.
    pub path: String,
    /// Exclusive or shared.
    pub mode: LockMode,
    /// The node's czxid: the hold's generation, increasing from one holder to the next.
    pub czxid: u64,
    /// The holding session (the node's ephemeral owner).
    pub session_id: u64,
}

/// Why bytes are not a sequencer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SequencerError {
    /// Shorter than its fixed fields or its stated path length.
    #[error("sequencer truncated: {0} bytes")]
    Truncated(usize),
    /// Longer than its stated path length.
    #[error("sequencer has {0} trailing bytes")]
    Trailing(usize),
    /// An encoding version this build does not know.
    #[error("sequencer version {0} is not supported")]
    Version(u8),
    /// A mode byte other than 0 or 1.
    #[error("sequencer mode {0} is not known")]
    Mode(u8),
    /// The checksum does not match (garbled or forged).
    #[error("sequencer checksum mismatch")]
    Checksum,
    /// The path is not a valid znode path.
    #[error("sequencer path is invalid: {0}")]
    Path(String),
}

const VERSION: u8 = 1;
/// version + mode + czxid + session + path length.
const FIXED: usize = 1 + 1 + 8 + 8 + 2;
const CRC: usize = 4;

impl Sequencer {
    /// The bytes to hand to another service.
    pub fn encode(&self) -> Vec<u8> {
        let path = self.path.as_bytes();
        let path_len = u16::try_from(path.len()).unwrap_or(u16::MAX);
        let path = &path[..usize::from(path_len)];
        let mut out = Vec::with_capacity(FIXED + path.len() + CRC);
        out.push(VERSION);
        out.push(match self.mode {
            LockMode::Exclusive => 0,
            LockMode::Shared => 1,
        });
        out.extend_from_slice(&self.czxid.to_le_bytes());
        out.extend_from_slice(&self.session_id.to_le_bytes());
        out.extend_from_slice(&path_len.to_le_bytes());
        out.extend_from_slice(path);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Opens bytes made by [`Sequencer::encode`]; never panics on any input.
    pub fn decode(bytes: &[u8]) -> Result<Sequencer, SequencerError> {
        if bytes.len() < FIXED + CRC {
            return Err(SequencerError::Truncated(bytes.len()));
        }
        if bytes[0] != VERSION {
            return Err(SequencerError::Version(bytes[0]));
        }
        let path_len = usize::from(u16::from_le_bytes([bytes[18], bytes[19]]));
        let total = FIXED + path_len + CRC;
        if bytes.len() < total {
            return Err(SequencerError::Truncated(bytes.len()));
        }
        if bytes.len() > total {
            return Err(SequencerError::Trailing(bytes.len() - total));
        }
        let (body, crc) = bytes.split_at(total - CRC);
        let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if crc32c::crc32c(body) != crc {
            return Err(SequencerError::Checksum);
        }
        let mode = match body[1] {
            0 => LockMode::Exclusive,
            1 => LockMode::Shared,
            m => return Err(SequencerError::Mode(m)),
        };
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&body[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let path =
            std::str::from_utf8(&body[FIXED..]).map_err(|e| SequencerError::Path(e.to_string()))?;
        validate_path(path).map_err(|e| SequencerError::Path(e.to_string()))?;
        Ok(Sequencer {
            path: path.to_string(),
            mode,
            czxid: u64_at(2),
            session_id: u64_at(10),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Sequencer {
        Sequencer {
            path: "/locks/db/holder".into(),
            mode: LockMode::Exclusive,
            czxid: 0x0000_0003_0000_0042,
            session_id: 0x0000_0001_0000_0007,
        }
    }

    #[test]
    fn round_trips_both_modes() {
        for mode in [LockMode::Exclusive, LockMode::Shared] {
            let s = Sequencer { mode, ..sample() };
            assert_eq!(Sequencer::decode(&s.encode()), Ok(s));
        }
    }

    #[test]
    fn every_truncation_and_extension_is_refused() {
        let bytes = sample().encode();
        for n in 0..bytes.len() {
            assert!(
                Sequencer::decode(&bytes[..n]).is_err(),
                "prefix of {n} bytes accepted"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Sequencer::decode(&longer), Err(SequencerError::Trailing(1)));
    }

    #[test]
    fn every_single_bit_flip_is_refused() {
        let bytes = sample().encode();
        for i in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[i / 8] ^= 1 << (i % 8);
            assert!(
                Sequencer::decode(&b).is_err(),
                "bit {i} flipped was accepted"
            );
        }
    }

    #[test]
    fn a_well_formed_sequencer_with_a_bad_path_is_refused() {
        let s = Sequencer {
            path: "no-slash".into(),
            ..sample()
        };
        assert!(matches!(
            Sequencer::decode(&s.encode()),
            Err(SequencerError::Path(_))
        ));
    }

    #[test]
    fn random_bytes_never_panic() {
        // A small xorshift so the test needs no RNG crate.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 64) as usize;
            let bytes: Vec<u8> = (0..len).map(|i| (x >> (i % 8 * 8)) as u8).collect();
            let _ = Sequencer::decode(&bytes);
        }
    }
}
