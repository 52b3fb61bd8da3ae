//! Writes the seed corpora, `seeds/<target>/`, from real encoded values: a client frame of
//! every `Request` variant, a server frame of every `Response`/`ServerFrame` variant, a txn
//! of every `TxnBody` variant, real tree snapshots, and segment/snapshot files written by
//! `FileLog` itself. Deterministic: rerunning gives the same files.
//!
//! Run from `fuzz/`: `cargo run --example make_seeds` (no fuzzing flags needed).

use std::path::{Path, PathBuf};

use coord_fuzz::*;
use coord_log::{FileLog, LogOptions, LogStorage};
use coord_proto::frame::encode;
use coord_proto::*;
use coord_tree::DataTree;

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(format!("{name}.bin")), bytes).expect("write seed");
}

fn reset(root: &Path, target: &str) -> PathBuf {
    let dir = root.join(target);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create seed dir");
    dir
}

fn client_frames(tree: &DataTree) -> Vec<(&'static str, ClientFrame)> {
    let _ = tree;
    let acl = sample_acls();
    let req = |xid, request| ClientFrame::Request { xid, request };
    vec![
        (
            "connect_new",
            ClientFrame::Connect(ConnectRequest {
                protocol_version: CLIENT_PROTOCOL_VERSION,
                last_zxid_seen: 0,
                timeout_ms: 30_000,
                session_id: 0,
                password: vec![],
                read_only: false,
            }),
        ),
        (
            "connect_resume",
            ClientFrame::Connect(ConnectRequest {
                protocol_version: CLIENT_PROTOCOL_VERSION,
                last_zxid_seen: 0x1_0000_0007,
                timeout_ms: 10_000,
                session_id: 0x1_0000_0001,
                password: b"0123456789abcdef".to_vec(),
                read_only: false,
            }),
        ),
        (
            "create",
            req(1, Request::Create {
                path: "/app/lock-".into(),
                data: b"owner".to_vec(),
                acl: acl[3].clone(),
                mode: CreateMode::EphemeralSequential,
                ttl_ms: 0,
            }),
        ),
        (
            "create_ttl",
            req(2, Request::Create {
                path: "/app/t".into(),
                data: vec![],
                acl: acl[4].clone(),
                mode: CreateMode::PersistentWithTtl,
                ttl_ms: 60_000,
            }),
        ),
        ("delete", req(3, Request::Delete { path: "/app/x".into(), version: ANY_VERSION })),
        ("exists", req(4, Request::Exists { path: "/app".into(), watch: true })),
        ("get_data", req(5, Request::GetData { path: "/app/cfg".into(), watch: true })),
        ("set_data", req(6, Request::SetData { path: "/app/cfg".into(), data: b"v=2".to_vec(), version: 1 })),
        ("get_children", req(7, Request::GetChildren { path: "/".into(), watch: false })),
        ("get_acl", req(8, Request::GetAcl { path: "/secret".into() })),
        ("set_acl", req(9, Request::SetAcl { path: "/secret".into(), acl: acl[2].clone(), version: 0 })),
        ("get_ephemerals", req(10, Request::GetEphemerals { prefix: "/app".into() })),
        ("all_children_number", req(11, Request::GetAllChildrenNumber { path: "/app".into() })),
        ("sync", req(12, Request::Sync { path: "/".into() })),
        (
            "multi",
            req(13, Request::Multi {
                ops: vec![
                    MultiOp::Check { path: "/app".into(), version: 0 },
                    MultiOp::Create {
                        path: "/app/m".into(),
                        data: b"1".to_vec(),
                        acl: acl[0].clone(),
                        mode: CreateMode::Persistent,
                        ttl_ms: 0,
                    },
                    MultiOp::SetData { path: "/app/m".into(), data: b"2".to_vec(), version: 0 },
                    MultiOp::Delete { path: "/app/m".into(), version: ANY_VERSION },
                ],
            }),
        ),
        (
            "multi_read",
            req(14, Request::MultiRead {
                ops: vec![ReadOp::GetData { path: "/app/cfg".into() }, ReadOp::GetChildren { path: "/app".into() }],
            }),
        ),
        ("add_watch", req(15, Request::AddWatch { path: "/app".into(), mode: AddWatchMode::PersistentRecursive })),
        ("remove_watches", req(16, Request::RemoveWatches { path: "/app".into(), kind: WatcherKind::Any })),
        (
            "set_watches",
            req(17, Request::SetWatches {
                relative_zxid: 0x1_0000_0005,
                data: vec!["/app/cfg".into()],
                exist: vec!["/app/new".into()],
                child: vec!["/app".into()],
                persistent: vec!["/p".into()],
                persistent_recursive: vec!["/".into()],
            }),
        ),
        ("add_auth", req(18, Request::AddAuth { scheme: "digest".into(), auth: b"alice:secret".to_vec() })),
        ("ping", req(19, Request::Ping)),
        ("close_session", req(20, Request::CloseSession)),
    ]
}

fn server_frames(tree: &DataTree) -> Vec<(&'static str, ServerFrame)> {
    let stat = tree.stat("/a/b").expect("populated tree has /a/b");
    let root = tree.stat("/").expect("root exists");
    let (acl, _) = tree.get_acl("/secret", &session_auth()).expect("/secret readable by its owner");
    let reply = |xid, body| ServerFrame::Reply { xid, zxid: tree.last_applied().0, body };
    let ok = |xid, r| reply(xid, ReplyBody::Ok(r));
    vec![
        (
            "connected",
            ServerFrame::Connected(ConnectResponse {
                protocol_version: CLIENT_PROTOCOL_VERSION,
                timeout_ms: 10_000,
                session_id: 0x1_0000_0001,
                password: b"0123456789abcdef".to_vec(),
                last_zxid: 0x1_0000_000d,
                server_id: 2,
                epoch: 1,
                read_only: false,
            }),
        ),
        (
            "refused",
            ServerFrame::Refused { code: ErrorCode::VersionMismatch, message: "protocol version 9 is not supported".into() },
        ),
        ("closing", ServerFrame::Closing { code: ErrorCode::SessionExpired, message: "session expired".into() }),
        (
            "event",
            ServerFrame::Event(WatchedEvent { event_type: EventType::NodeDataChanged, path: "/a/b".into(), zxid: 14 }),
        ),
        ("reply_empty", ok(1, Response::Empty)),
        ("reply_pong", ok(2, Response::Pong)),
        ("reply_create", ok(3, Response::Create { path: "/a/q-0000000001".into(), stat })),
        ("reply_exists", ok(4, Response::Exists { stat: Some(stat) })),
        ("reply_exists_none", ok(5, Response::Exists { stat: None })),
        ("reply_data", ok(6, Response::Data { data: b"hello".to_vec(), stat })),
        ("reply_stat", ok(7, Response::Stat { stat })),
        (
            "reply_children",
            ok(8, Response::Children { children: tree.get_children("/", &[]).expect("root readable").0, stat: root }),
        ),
        ("reply_acl", ok(9, Response::Acl { acl, stat })),
        ("reply_paths", ok(10, Response::Paths { paths: tree.get_ephemerals(SESSION, "/") })),
        ("reply_count", ok(11, Response::Count { count: tree.node_count() as u64 - 1 })),
        ("reply_sync", ok(12, Response::Sync { path: "/".into() })),
        (
            "reply_multi",
            ok(13, Response::Multi {
                results: vec![
                    MultiResult::Create { path: "/a/m".into(), stat },
                    MultiResult::Delete,
                    MultiResult::SetData { stat },
                    MultiResult::Check,
                ],
            }),
        ),
        (
            "reply_multi_read",
            ok(14, Response::MultiRead {
                results: vec![
                    ReadResult::Data { data: b"hello".to_vec(), stat },
                    ReadResult::Children { children: vec!["b".into(), "q-0000000001".into()] },
                    ReadResult::Error { code: ErrorCode::NoNode },
                ],
            }),
        ),
        ("reply_err", reply(15, ReplyBody::Err(ErrorCode::NoAuth))),
        (
            "reply_multi_err",
            reply(16, ReplyBody::MultiErr {
                code: ErrorCode::NoNode,
                results: vec![
                    MultiResult::Error { code: ErrorCode::Ok },
                    MultiResult::Error { code: ErrorCode::NoNode },
                    MultiResult::Error { code: ErrorCode::RuntimeInconsistency },
                ],
            }),
        ),
    ]
}

/// The log_recover target's input: `flags | base_sel | len1 u16 | len2 u16 | snap_sel | ...`.
fn log_input(flags: u8, base_sel: u8, seg1: &[u8], seg2: &[u8], snap_sel: u8, snap: &[u8]) -> Vec<u8> {
    let mut out = vec![flags, base_sel];
    out.extend_from_slice(&(seg1.len() as u16).to_le_bytes());
    out.extend_from_slice(&(seg2.len() as u16).to_le_bytes());
    out.push(snap_sel);
    out.extend_from_slice(seg1);
    out.extend_from_slice(seg2);
    out.extend_from_slice(snap);
    out
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let tree = populated_tree();

    let dir = reset(&root, "client_frame");
    let frames = client_frames(&tree);
    let mut stream = Vec::new();
    for (name, f) in &frames {
        let bytes = encode(f).expect("encode client frame");
        if matches!(*name, "connect_resume" | "get_data" | "ping") {
            stream.extend_from_slice(&bytes);
        }
        write(&dir, name, &bytes);
    }
    write(&dir, "stream_connect_get_ping", &stream);

    let dir = reset(&root, "server_frame");
    let mut stream = Vec::new();
    for (name, f) in server_frames(&tree) {
        let bytes = encode(&f).expect("encode server frame");
        if matches!(name, "connected" | "event" | "reply_data") {
            stream.extend_from_slice(&bytes);
        }
        write(&dir, name, &bytes);
    }
    write(&dir, "stream_connected_event_reply", &stream);

    let dir = reset(&root, "tree_txn");
    for (name, t) in sample_txns() {
        write(&dir, name, &t.encode());
    }

    let dir = reset(&root, "tree_snapshot");
    let fresh = DataTree::new();
    write(&dir, "fresh_fixcrc", &[&[SNAPSHOT_FIX_CRC][..], &fresh.snapshot()].concat());
    write(&dir, "populated_fixcrc", &[&[SNAPSHOT_FIX_CRC][..], &tree.snapshot()].concat());
    write(&dir, "populated_raw", &[&[0u8][..], &tree.snapshot()].concat());

    // Real files written by FileLog: records are encoded txns at zxids 1.., as the server
    // logs them; 64-byte segments make it roll after every record or two.
    let dir = reset(&root, "log_recover");
    let scratch = std::env::temp_dir().join(format!("coord-make-seeds-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let mut txns = vec![create_session()];
    txns.extend(populate_txns().into_iter().take(4));
    let mut snap_tree = DataTree::new();
    {
        let (mut log, _) = FileLog::open(&scratch, LogOptions { segment_bytes: 1 << 20, max_record: 1024 })
            .expect("open scratch log");
        for (i, t) in txns.iter().enumerate() {
            let zxid = i as u64 + 1;
            log.append(zxid, &t.encode()).expect("append");
            if zxid <= 2 {
                snap_tree.apply(Zxid(zxid), t);
            }
        }
        log.sync().expect("sync");
        log.save_snapshot(2, &snap_tree.snapshot()).expect("save snapshot");
    }
    let seg = std::fs::read(scratch.join(segment_name(1))).expect("segment written by FileLog");
    let snap_file = std::fs::read(scratch.join(snapshot_name(2))).expect("snapshot written by FileLog");
    assert_eq!(&seg[..32], &segment_header(1), "documented segment header matches FileLog's");
    assert_eq!(snap_file, snapshot_file(2, &snap_tree.snapshot()), "documented snapshot file matches FileLog's");
    let body = &seg[32..];
    // Whole segment file as FileLog wrote it (raw bytes, base 1).
    write(&dir, "segment_raw", &log_input(0, 0, &seg, &[], 0, &[]));
    // Generated header + real records, then append and reopen.
    write(&dir, "segment_records_append", &log_input(1 | 64, 0, body, &[], 0, &[]));
    // Torn tail: the last record cut in half.
    write(&dir, "segment_torn_tail", &log_input(1, 0, &body[..body.len() - 20], &[], 0, &[]));
    // Two segments: zxids 1..=3 then 4..=5 (base2 = base1 + 1 + 2).
    let rec: Vec<Vec<u8>> = txns.iter().enumerate().map(|(i, t)| record(i as u64 + 1, &t.encode())).collect();
    let (s1, s2) = (rec[..3].concat(), rec[3..].concat());
    write(&dir, "two_segments", &log_input(1 | 2 | 4, 2 << 3, &s1, &s2, 0, &[]));
    // Snapshot at zxid 2 as FileLog wrote it (raw), and with a generated header; records
    // after it are recovered, the tmp file removed, tiny segments make the append roll.
    write(&dir, "snapshot_raw", &log_input(1 | 8, 0, body, &[], 2, &snap_file));
    write(
        &dir,
        "snapshot_generated_tmp_roll",
        &log_input(1 | 2 | 8 | 16 | 32 | 64 | 128, 0, body, &[], 2, &snap_tree.snapshot()),
    );
    // A high epoch base.
    let high: Vec<u8> = [record(0x1_0000_0001, b"e1"), record(0x1_0000_0002, b"e2")].concat();
    write(&dir, "epoch1_base", &log_input(1 | 64, 2, &high, &[], 0, &[]));
    let _ = std::fs::remove_dir_all(&scratch);

    // Peer messages: every ZabMessage variant, framed; the first body byte picks the sender
    // and an event (see fuzz_targets/peer_message.rs).
    let dir = reset(&root, "peer_message");
    let z = |e: u32, c: u32| coord_proto::Zxid::new(e, c);
    let vote = coord_zab::Vote { leader: 2, zxid: z(1, 3), peer_epoch: 1 };
    let messages = vec![
        ("notification", coord_zab::ZabMessage::Notification { vote, round: 1, state: coord_zab::PeerState::Looking }),
        ("follower_info", coord_zab::ZabMessage::FollowerInfo { attempt: 7, accepted_epoch: 1, last_zxid: z(1, 3), observer: false }),
        ("leader_info", coord_zab::ZabMessage::LeaderInfo { attempt: 7, new_epoch: 2 }),
        ("ack_epoch", coord_zab::ZabMessage::AckEpoch { current_epoch: 1, last_zxid: z(1, 3), last_committed: z(1, 2) }),
        ("diff", coord_zab::ZabMessage::Diff { from: z(1, 1) }),
        ("trunc", coord_zab::ZabMessage::Trunc { to: z(1, 1) }),
        ("snap", coord_zab::ZabMessage::Snap { zxid: z(1, 2), bytes: DataTree::new().snapshot() }),
        ("sync_txn", coord_zab::ZabMessage::SyncTxn { zxid: z(1, 2), txn: txns[0].encode() }),
        ("new_leader", coord_zab::ZabMessage::NewLeader { epoch: 2, zxid: z(1, 3), committed: z(1, 2) }),
        ("ack_new_leader", coord_zab::ZabMessage::AckNewLeader { epoch: 2, zxid: z(1, 3) }),
        ("up_to_date", coord_zab::ZabMessage::UpToDate { committed: z(1, 3) }),
        ("proposal", coord_zab::ZabMessage::Proposal { zxid: z(2, 1), txn: txns[0].encode() }),
        ("ack", coord_zab::ZabMessage::Ack { zxid: z(2, 1) }),
        ("commit", coord_zab::ZabMessage::Commit { zxid: z(2, 1) }),
        ("inform", coord_zab::ZabMessage::Inform { zxid: z(2, 1), txn: txns[0].encode() }),
        ("ping", coord_zab::ZabMessage::Ping),
        ("ping_ack", coord_zab::ZabMessage::PingAck),
    ];
    let mut all = Vec::new();
    for (name, m) in &messages {
        let mut body = vec![2u8];
        body.extend_from_slice(&m.encode());
        let mut framed = (body.len() as u32).to_le_bytes().to_vec();
        framed.extend_from_slice(&body);
        write(&dir, name, &framed);
        all.extend_from_slice(&framed);
    }
    write(&dir, "all_in_a_row", &all);

    for target in ["client_frame", "server_frame", "tree_txn", "tree_snapshot", "log_recover", "peer_message"] {
        let d = root.join(target);
        let (n, bytes) = std::fs::read_dir(&d)
            .expect("seed dir")
            .map(|e| e.expect("entry").metadata().expect("metadata").len())
            .fold((0, 0), |(n, b), l| (n + 1, b + l));
        println!("{target}: {n} seeds, {bytes} bytes");
    }
}
