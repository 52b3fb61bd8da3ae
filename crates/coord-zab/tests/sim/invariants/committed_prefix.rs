//! Committed prefixes agree: every server's delivered sequence (since its last restart or
//! snapshot install, which resumes at a point of the sequence) is a prefix of the longest
//! one, txn bytes included.

use coord_zab::Zxid;

use super::{Invariants, primary_order, txn_hash};

/// Server `id`, which has delivered `global[..*pos]`, delivers `(zxid, txn)`.
pub fn on_deliver(
    inv: &mut Invariants,
    id: u64,
    pos: &mut usize,
    zxid: Zxid,
    txn: &[u8],
) -> Result<(), String> {
    let hash = txn_hash(txn);
    if *pos < inv.global.len() {
        let (gz, gh) = inv.global[*pos];
        if gz != zxid || gh != hash {
            return Err(format!(
                "committed prefix: server {id} delivered {zxid} (hash {hash:x}) at position \
                 {pos} where the others delivered {gz} (hash {gh:x})"
            ));
        }
    } else {
        primary_order::on_extend(inv.global.last().map(|g| g.0), zxid)?;
        inv.global.push((zxid, hash));
    }
    *pos += 1;
    Ok(())
}

/// Server `id` resumes delivery after `zxid` (restart from a snapshot, or InstallSnapshot).
pub fn on_resume(inv: &Invariants, id: u64, zxid: Zxid) -> Result<usize, String> {
    inv.position_after(zxid).ok_or_else(|| {
        format!("committed prefix: server {id} holds a snapshot at {zxid}, never delivered")
    })
}
