//! Nothing acknowledged is lost: a txn any server delivered (a leader's delivery is where a
//! client gets its answer) is on the durable disk of a quorum of voters from then on.

use coord_zab::Zxid;

use super::Invariants;
use crate::sim::disk::Disk;

fn holders<'a>(voter_disks: impl Iterator<Item = &'a Disk>, zxid: Zxid) -> usize {
    voter_disks.filter(|d| d.covers(zxid)).count()
}

/// A server just delivered `zxid`.
pub fn on_acknowledge<'a>(
    inv: &mut Invariants,
    voter_disks: impl Iterator<Item = &'a Disk>,
    zxid: Zxid,
) -> Result<(), String> {
    let n = holders(voter_disks, zxid);
    if n < inv.quorum {
        return Err(format!(
            "acknowledged: {zxid} delivered while durable on {n} voters only"
        ));
    }
    if inv.acknowledged.last().is_none_or(|l| *l < zxid) {
        inv.acknowledged.push(zxid);
    }
    Ok(())
}

/// A disk may have lost data (crash, truncation, snapshot install).
pub fn check_all<'a>(
    inv: &Invariants,
    voter_disks: impl Iterator<Item = &'a Disk> + Clone,
) -> Result<(), String> {
    for z in &inv.acknowledged {
        let n = holders(voter_disks.clone(), *z);
        if n < inv.quorum {
            return Err(format!(
                "acknowledged: {z} is durable on {n} voters only (quorum {})",
                inv.quorum
            ));
        }
    }
    Ok(())
}
