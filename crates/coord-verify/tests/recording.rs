//! The recorder against a real ensemble: a watch event is recorded before the completion of
//! any operation whose reply reflects the change, replies carry their zxids, and a session's
//! start and end bracket its entries.

mod common;
use coord_check::history::{EntryKind, Notice, OkResult, Op, Outcome};
use coord_client::{AddWatchMode, Client, CreateOptions};
use coord_testkit::Cluster;
use coord_verify::record::Recorder;
use coord_verify::session::Session;
use std::sync::Arc;
use std::time::Duration;

#[test]
fn watch_events_precede_the_replies_that_reflect_them() {
    let cluster = Cluster::builder(common::coordd())
        .voters(3)
        .start()
        .expect("start the ensemble");
    let rt = coord_testkit::runtime();
    let rec = Arc::new(Recorder::new());
    let mut written = Vec::new();
    rt.block_on(async {
        cluster.wait_stable().await;
        let writer = cluster.client().await;
        for p in ["/verify", "/verify/k", "/verify/k/0"] {
            writer
                .create(p, b"", CreateOptions::persistent())
                .await
                .expect("create");
        }
        let cfg = cluster
            .client_config()
            .session_timeout(Duration::from_secs(3));
        let mut s = Session::open(cfg, 1, rec.clone(), Duration::from_secs(4))
            .await
            .expect("a session");
        s.run_quiet(
            |c: Client| async move { c.add_watch("/verify/k/0", AddWatchMode::Persistent).await },
            false,
            |_, zxid| {
                Some(Notice::WatchAdded {
                    key: "0".into(),
                    zxid,
                })
            },
        )
        .await
        .expect("add the watch");
        for i in 0..30 {
            let stat = writer
                .set_data("/verify/k/0", format!("v{i}").as_bytes(), None)
                .await
                .expect("write");
            written.push(stat.mzxid);
            let sync = i % 2 == 0;
            s.run_op(
                Op::Read {
                    key: "0".into(),
                    sync,
                },
                move |c: Client| async move {
                    if sync {
                        c.sync("/verify/k/0").await?;
                    }
                    c.get_data("/verify/k/0").await
                },
                |(data, stat): &(Vec<u8>, coord_client::Stat)| OkResult::Read {
                    value: data.clone(),
                    version: stat.version,
                    mzxid: stat.mzxid,
                },
            )
            .await
            .expect("read");
        }
        s.end("closed").await;
        writer.close().await.expect("close");
    });
    let h = rec.history();
    let kinds: Vec<&EntryKind> = h.entries.iter().map(|e| &e.kind).collect();
    assert!(matches!(
        kinds.first(),
        Some(EntryKind::Notice(Notice::SessionStarted { .. }))
    ));
    assert!(matches!(
        kinds.last(),
        Some(EntryKind::Notice(Notice::SessionEnded { reason, .. })) if reason == "closed"
    ));
    let mut events = Vec::new();
    let mut reads = 0;
    for k in &kinds {
        match k {
            EntryKind::Notice(Notice::WatchEvent { key, zxid }) => {
                assert_eq!(key, "0");
                events.push(*zxid);
            }
            EntryKind::Complete {
                outcome:
                    Outcome::Ok {
                        result: OkResult::Read { mzxid, .. },
                        zxid,
                    },
                ..
            } => {
                reads += 1;
                assert!(zxid >= mzxid, "the reply's zxid covers what it read");
                // Every write the reply reflects was already announced by its event.
                for w in written.iter().filter(|w| *w <= zxid) {
                    assert!(
                        events.contains(w),
                        "event {w:#x} not recorded before a reply at {zxid:#x}: {h:#?}"
                    );
                }
            }
            _ => {}
        }
    }
    assert_eq!(reads, 30);
    assert_eq!(events, written, "one event per write, in zxid order");
}
