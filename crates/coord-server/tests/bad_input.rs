//! Bad input: malformed, oversized and out-of-order frames close only the offending stream;
//! the server keeps serving everyone else and loses nothing.

mod common;
use common::*;
use coord_client::CreateOptions;
use coord_proto::*;

async fn expect_closed_with(raw: &mut RawSession, want: ErrorCode) {
    let mut saw = None;
    while let Some(f) = raw.next().await {
        if let ServerFrame::Closing { code, .. } | ServerFrame::Refused { code, .. } = f {
            saw = Some(code);
        }
    }
    assert_eq!(saw, Some(want));
}

#[test]
fn garbage_frames_close_only_that_stream() {
    let server = Coordd::start("max_frame_bytes = 65536\nmax_data_bytes = 1024");
    runtime().block_on(async {
        let good = server.client().await;
        good.create("/before", b"1", CreateOptions::persistent())
            .await
            .unwrap();

        // Garbage as the handshake.
        let mut raw = RawSession::open(&server).await;
        let mut junk = 64u32.to_le_bytes().to_vec();
        junk.extend((0..64u8).map(|i| i.wrapping_mul(37)));
        raw.send_bytes(&junk).await;
        expect_closed_with(&mut raw, ErrorCode::MarshallingError).await;

        // A valid session, then a frame that fails validation.
        let mut raw = RawSession::open(&server).await;
        raw.connect(2000).await;
        let mut bytes = frame::encode(&ClientFrame::Request {
            xid: 1,
            request: Request::Ping,
        })
        .unwrap();
        // Every body byte 0xff: the enum tags are out of range, so validation must fail.
        for b in &mut bytes[frame::HEADER_LEN..] {
            *b = 0xff;
        }
        raw.send_bytes(&bytes).await;
        expect_closed_with(&mut raw, ErrorCode::MarshallingError).await;

        // An oversized length prefix is refused before its body is read.
        let mut raw = RawSession::open(&server).await;
        raw.connect(2000).await;
        raw.send_bytes(&(10_000_000u32).to_le_bytes()).await;
        expect_closed_with(&mut raw, ErrorCode::MarshallingError).await;

        // Connect twice.
        let mut raw = RawSession::open(&server).await;
        raw.connect(2000).await;
        raw.send(&connect_frame(0, vec![], 1000)).await;
        expect_closed_with(&mut raw, ErrorCode::MarshallingError).await;

        // A request before the handshake.
        let mut raw = RawSession::open(&server).await;
        raw.send(&ClientFrame::Request {
            xid: 1,
            request: Request::Ping,
        })
        .await;
        expect_closed_with(&mut raw, ErrorCode::MarshallingError).await;

        // The well-behaved client never noticed.
        good.create("/after", b"2", CreateOptions::persistent())
            .await
            .unwrap();
        assert_eq!(good.get_data("/before").await.unwrap().0, b"1");
        assert_eq!(good.get_data("/after").await.unwrap().0, b"2");
    });
}

#[test]
fn wrong_protocol_version_and_a_client_ahead_of_the_server_are_refused() {
    let server = Coordd::start("");
    runtime().block_on(async {
        let mut raw = RawSession::open(&server).await;
        raw.send(&ClientFrame::Connect(ConnectRequest {
            protocol_version: 99,
            last_zxid_seen: 0,
            timeout_ms: 1000,
            session_id: 0,
            password: vec![],
            read_only: false,
        }))
        .await;
        expect_closed_with(&mut raw, ErrorCode::VersionMismatch).await;
        let mut raw = RawSession::open(&server).await;
        raw.send(&ClientFrame::Connect(ConnectRequest {
            protocol_version: CLIENT_PROTOCOL_VERSION,
            last_zxid_seen: u64::MAX,
            timeout_ms: 1000,
            session_id: 0,
            password: vec![],
            read_only: false,
        }))
        .await;
        expect_closed_with(&mut raw, ErrorCode::NotServing).await;
    });
}

#[test]
fn random_bytes_from_many_streams_never_hurt_the_server() {
    let server = Coordd::start("");
    runtime().block_on(async {
        let good = server.client().await;
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for round in 0..40 {
            let mut raw = RawSession::open(&server).await;
            if round % 2 == 1 {
                raw.connect(2000).await;
            }
            let len = 4 + (round * 13) % 300;
            let mut bytes = ((len - 4) as u32).to_le_bytes().to_vec();
            for _ in 4..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                bytes.push(seed as u8);
            }
            raw.send_bytes(&bytes).await;
            let _ = raw.send.finish();
            while raw.next().await.is_some() {}
            good.set_data("/", format!("{round}").as_bytes(), None)
                .await
                .unwrap();
        }
        assert_eq!(good.get_data("/").await.unwrap().0, b"39");
    });
}

#[test]
fn too_many_sessions_from_one_address_are_throttled() {
    let server = Coordd::start("max_sessions_per_ip = 3");
    runtime().block_on(async {
        let mut held = Vec::new();
        for _ in 0..3 {
            // The readiness check's session may still count until the server sees it close.
            let mut raw = None;
            for _ in 0..100 {
                match RawSession::try_open_at(server.addr, &server.ca_path()).await {
                    Ok(r) => {
                        raw = Some(r);
                        break;
                    }
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
                }
            }
            let mut raw = raw.expect("a connection within the limit");
            raw.connect(2000).await;
            held.push(raw);
        }
        // A new connection from that address is refused before any TLS work...
        let refused = RawSession::try_open_at(server.addr, &server.ca_path()).await;
        assert!(
            matches!(refused, Err(quinn::ConnectionError::ConnectionClosed(_))),
            "refused before the handshake: {:?}",
            refused.as_ref().err()
        );
        // ...and a fourth session stream on a connection it holds gets a clear Throttled.
        let (mut send, mut recv) = held[0].another_stream().await;
        let bytes = frame::encode(&connect_frame(0, vec![], 1000)).unwrap();
        send.write_all(&bytes).await.unwrap();
        let mut buf = rkyv::util::AlignedVec::<16>::new();
        let got = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            coord_proto::io::read_frame(&mut recv, &mut buf, 1 << 24),
        )
        .await;
        assert!(matches!(got, Ok(Ok(true))), "an answer: {got:?}");
        match frame::decode_aligned::<ServerFrame>(&buf).unwrap() {
            ServerFrame::Refused { code, .. } => assert_eq!(code, ErrorCode::Throttled),
            other => panic!("expected Throttled, got {other:?}"),
        }
        // A slot frees when a stream ends.
        let gone = held.pop().unwrap();
        drop(gone);
        let mut ok = false;
        for _ in 0..100 {
            // Refused before TLS until the server has seen the stream end.
            let Ok(mut raw) = RawSession::try_open_at(server.addr, &server.ca_path()).await else {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            };
            raw.send(&connect_frame(0, vec![], 1000)).await;
            if matches!(raw.next().await, Some(ServerFrame::Connected(_))) {
                ok = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(ok, "the freed slot was never reusable");
    });
}

#[test]
fn a_client_that_stops_reading_is_cut_off_and_others_carry_on() {
    let server = Coordd::start("max_queued_frames_per_session = 500");
    runtime().block_on(async {
        let good = server.client().await;
        good.create("/flood", b"", CreateOptions::persistent())
            .await
            .unwrap();
        // A raw session watches everything below /flood and then never reads again.
        let mut slow = RawSession::open(&server).await;
        slow.connect(20_000).await;
        let r = slow
            .request(
                1,
                Request::AddWatch {
                    path: "/flood".into(),
                    mode: AddWatchMode::PersistentRecursive,
                },
            )
            .await;
        assert_eq!(r, ReplyBody::Ok(Response::Empty));
        // Long names make each event big, so the client's flow-control window fills fast.
        let long = "x".repeat(2000);
        let mut n = 0;
        let mut tasks = Vec::new();
        for i in 0..3000 {
            let g = good.clone();
            let path = format!("/flood/{long}-{i}");
            tasks.push(tokio::spawn(async move {
                g.create(&path, b"", CreateOptions::persistent()).await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
            n += 1;
        }
        assert_eq!(n, 3000);
        assert_eq!(good.get_all_children_number("/flood").await.unwrap(), 3000);
        // The slow stream was reset: reading it now ends (after whatever was in flight).
        let mut frames = 0;
        while slow.next().await.is_some() {
            frames += 1;
        }
        assert!(
            frames < 3000,
            "the slow stream got every event ({frames}); it was never cut off"
        );
        let log = server.log_tail();
        assert!(server_log_has(&server, "client not reading"), "{log}");
    });
}

fn server_log_has(server: &Coordd, needle: &str) -> bool {
    std::fs::read_to_string(server.dir.join("coordd.log"))
        .unwrap_or_default()
        .contains(needle)
}
