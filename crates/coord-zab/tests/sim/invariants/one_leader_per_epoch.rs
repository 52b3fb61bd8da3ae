//! At most one leader is established per epoch.

use coord_zab::{Role, Status};

use super::Invariants;

pub fn on_status(inv: &mut Invariants, id: u64, status: &Status) -> Result<(), String> {
    if status.role == Role::Leading && status.established {
        let leader = *inv.leaders.entry(status.epoch).or_insert(id);
        if leader != id {
            return Err(format!(
                "one leader per epoch: servers {leader} and {id} both established epoch {}",
                status.epoch
            ));
        }
    }
    Ok(())
}
