//! Peer messages as a server receives them from other servers: frames split with
//! `split_frame`, each body's first byte picks the sender (1..=3) and an event (connect,
//! disconnect, timeout), the rest is opened with `ZabMessage::decode` and fed to a live ZAB
//! core (server 1 of 3 voters). Persist actions complete at once so hostile sequences reach
//! every phase. Must never panic; whatever decodes must survive an encode/decode round trip.
#![no_main]

use coord_proto::Zxid;
use coord_proto::frame::{self, DEFAULT_MAX_FRAME};
use coord_zab::{Action, Persisted, Zab, ZabConfig, ZabMessage};
use libfuzzer_sys::fuzz_target;

fn drain(z: &mut Zab, now: u64) {
    // Bounded: a core never emits unboundedly many actions for one input.
    for _ in 0..10_000 {
        match z.poll_action() {
            Some(Action::Persist { token, .. }) => z.handle_persisted(now, token),
            Some(Action::TakeSnapshot { for_peer }) => {
                z.handle_snapshot(now, for_peer, Zxid(0), coord_tree::DataTree::new().snapshot())
            }
            Some(_) => {}
            None => return,
        }
    }
    panic!("the core kept emitting actions");
}

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = ZabMessage::decode(data) {
        assert_eq!(ZabMessage::decode(&m.encode()).expect("re-encoded message decodes"), m);
    }
    let mut z = Zab::new(ZabConfig::new(1, vec![1, 2, 3], vec![], 7), Persisted::default(), 0);
    let mut now = 0u64;
    drain(&mut z, now);
    let mut rest = data;
    while let Ok(Some((body, tail))) = frame::split_frame(rest, DEFAULT_MAX_FRAME) {
        rest = tail;
        let Some((&sel, msg)) = body.split_first() else { continue };
        let from = 1 + (sel % 3) as u64;
        now += 1 + (sel / 16) as u64 * 50;
        match sel & 0x0c {
            0x04 => z.handle_connected(now, from),
            0x08 => z.handle_disconnected(now, from),
            0x0c => z.handle_timeout(now),
            _ => {}
        }
        drain(&mut z, now);
        if let Ok(m) = ZabMessage::decode(msg) {
            z.handle_message(now, from, m);
            drain(&mut z, now);
        }
        if sel & 1 == 1 {
            let _ = z.propose(now, b"txn".to_vec());
            drain(&mut z, now);
        }
    }
});
