//! No server advertises a zxid it has not persisted, nor acks an epoch or NEWLEADER before
//! the epoch is on its disk.

use coord_zab::{PeerState, ZabMessage};

use crate::sim::disk::Disk;

/// The claim `msg` makes about the sender's disk, if that claim is false.
fn false_claim(id: u64, disk: &Disk, msg: &ZabMessage) -> Option<String> {
    let claim_ok = match msg {
        ZabMessage::Notification { vote, state, .. }
            if vote.leader == id && matches!(state, PeerState::Looking | PeerState::Leading) =>
        {
            disk.holds(vote.zxid)
        }
        ZabMessage::FollowerInfo {
            accepted_epoch,
            last_zxid,
            ..
        } => disk.holds(*last_zxid) && *accepted_epoch <= disk.accepted_epoch,
        ZabMessage::AckEpoch {
            current_epoch,
            last_zxid,
            ..
        } => disk.holds(*last_zxid) && *current_epoch == disk.current_epoch,
        ZabMessage::AckNewLeader { epoch, zxid } => {
            disk.covers(*zxid) && disk.current_epoch == *epoch && disk.last_zxid() >= *zxid
        }
        ZabMessage::Ack { zxid } => disk.holds(*zxid),
        ZabMessage::LeaderInfo { new_epoch, .. } => disk.accepted_epoch == *new_epoch,
        _ => true,
    };
    (!claim_ok).then(|| format!("{msg:?}"))
}

pub fn on_send(id: u64, disk: &Disk, msg: &ZabMessage) -> Result<(), String> {
    match false_claim(id, disk, msg) {
        None => Ok(()),
        Some(what) => Err(format!(
            "advertised: server {id} sent {what} not backed by its disk (last {}, epochs {}/{})",
            disk.last_zxid(),
            disk.accepted_epoch,
            disk.current_epoch
        )),
    }
}
