//! The in-memory view of this server's txn history: the recent records it can serve as DIFF
//! and every record it has not delivered yet.

use std::collections::VecDeque;

use coord_proto::Zxid;

/// Recent history. Invariants: `records` are strictly increasing by zxid, all `> base`;
/// `base` is a zxid of this server's history (or zero) and `records[0]` is the txn right
/// after it, so the history is known contiguously from `base` on. Within one epoch the
/// counters of `records` are contiguous.
#[derive(Debug, Clone, Default)]
pub(crate) struct TxnLog {
    pub(crate) base: Zxid,
    pub(crate) records: VecDeque<(Zxid, Vec<u8>)>,
}

impl TxnLog {
    /// The last zxid of the history (pending writes included).
    pub(crate) fn last(&self) -> Zxid {
        self.records.back().map_or(self.base, |r| r.0)
    }

    fn index_of(&self, zxid: Zxid) -> Result<usize, usize> {
        self.records.binary_search_by(|r| r.0.cmp(&zxid))
    }

    /// True if `zxid` is a point of the known history (`base` or a record).
    pub(crate) fn contains(&self, zxid: Zxid) -> bool {
        zxid == self.base || (zxid > self.base && self.index_of(zxid).is_ok())
    }

    /// The first record after `zxid`; `None` if there is none or the history right after
    /// `zxid` is not held in memory (`zxid < base`).
    pub(crate) fn next_after(&self, zxid: Zxid) -> Option<&(Zxid, Vec<u8>)> {
        if zxid < self.base {
            return None;
        }
        let i = match self.index_of(zxid) {
            Ok(i) => i + 1,
            Err(i) => i,
        };
        self.records.get(i)
    }

    /// Records in `(after, upto]`; `after` must be `>= base`.
    pub(crate) fn range(&self, after: Zxid, upto: Zxid) -> impl Iterator<Item = &(Zxid, Vec<u8>)> {
        let start = match self.index_of(after) {
            Ok(i) => i + 1,
            Err(i) => i,
        };
        self.records
            .iter()
            .skip(start)
            .take_while(move |r| r.0 <= upto)
    }

    /// Appends; the caller checked `zxid > last()`.
    pub(crate) fn append(&mut self, zxid: Zxid, txn: Vec<u8>) {
        debug_assert!(zxid > self.last(), "append {zxid} after {}", self.last());
        self.records.push_back((zxid, txn));
    }

    /// Drops every record after `to`; if `to` is older than `base`, the history restarts
    /// at `to`.
    pub(crate) fn truncate_after(&mut self, to: Zxid) {
        if to < self.base {
            self.reset(to);
            return;
        }
        while self.records.back().is_some_and(|r| r.0 > to) {
            self.records.pop_back();
        }
    }

    /// Forgets everything; the history is now known only up to `base` (a snapshot).
    pub(crate) fn reset(&mut self, base: Zxid) {
        self.records.clear();
        self.base = base;
    }

    /// The largest point of the history in `zxid`'s epoch that is `<= upto`, counter >= 1.
    /// Such a point is in every history that holds `zxid` (counters are contiguous per
    /// epoch), hence a safe common point with a server whose last zxid is `zxid`.
    pub(crate) fn last_in_epoch_at_most(&self, zxid: Zxid, upto: Zxid) -> Option<Zxid> {
        let limit = zxid.min(upto);
        let i = match self.index_of(limit) {
            Ok(i) => Some(i),
            Err(0) => None,
            Err(i) => Some(i - 1),
        };
        let candidate = i.map(|i| self.records[i].0).unwrap_or(self.base);
        (candidate <= limit && candidate.epoch() == zxid.epoch() && candidate.counter() >= 1)
            .then_some(candidate)
    }

    /// Drops delivered records beyond `keep` so the log stays bounded.
    pub(crate) fn trim(&mut self, delivered: Zxid, keep: usize) {
        while self.records.len() > keep && self.records.front().is_some_and(|r| r.0 <= delivered) {
            let (zxid, _) = self
                .records
                .pop_front()
                .expect("checked non-empty just above");
            self.base = zxid;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(base: Zxid, zxids: &[Zxid]) -> TxnLog {
        TxnLog {
            base,
            records: zxids.iter().map(|z| (*z, vec![])).collect(),
        }
    }

    #[test]
    fn last_in_epoch() {
        let z = Zxid::new;
        let l = log(z(1, 2), &[z(1, 3), z(1, 4), z(3, 1)]);
        assert_eq!(l.last_in_epoch_at_most(z(1, 9), z(9, 9)), Some(z(1, 4)));
        assert_eq!(l.last_in_epoch_at_most(z(1, 2), z(9, 9)), Some(z(1, 2)));
        assert_eq!(l.last_in_epoch_at_most(z(2, 5), z(9, 9)), None);
        assert_eq!(l.last_in_epoch_at_most(z(3, 7), z(9, 9)), Some(z(3, 1)));
        assert_eq!(l.last_in_epoch_at_most(z(1, 9), z(1, 3)), Some(z(1, 3)));
        assert_eq!(l.last_in_epoch_at_most(z(1, 1), z(9, 9)), None);
    }

    #[test]
    fn truncate_trim_range() {
        let z = Zxid::new;
        let mut l = log(Zxid::ZERO, &[z(1, 1), z(1, 2), z(1, 3)]);
        assert_eq!(l.range(z(1, 1), z(1, 2)).count(), 1);
        assert!(l.contains(Zxid::ZERO) && l.contains(z(1, 2)) && !l.contains(z(1, 4)));
        l.trim(z(1, 2), 1);
        assert_eq!(l.base, z(1, 2));
        assert_eq!(l.next_after(z(1, 1)), None);
        l.truncate_after(z(1, 2));
        assert_eq!(l.last(), z(1, 2));
        l.truncate_after(z(1, 1));
        assert_eq!((l.base, l.records.len()), (z(1, 1), 0));
    }
}
