//! Frame encode / validate / decode: what every request and reply costs on the wire path.
//!
//! - `encode`: `frame::encode` (length prefix + rkyv archive) of a fresh value;
//! - `validate`: bytecheck of an aligned body (`rkyv::access`), no deserialization — what a
//!   zero-copy reader would pay;
//! - `decode`: `frame::decode` from an unaligned slice (copy into an aligned buffer,
//!   validate, deserialize) — what the server and client do today.
//!
//! Peer frames (`ZabMessage::Proposal` carrying an encoded SetData txn) are measured when the
//! `zab` feature (default) is on.

use coord_benches::{data_reply, set_data_request};
use coord_proto::frame::HEADER_LEN;
use coord_proto::{ClientFrame, ServerFrame};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rkyv::rancor;
use rkyv::util::AlignedVec;
use std::hint::black_box;

const DATA_LEN: usize = 100;

fn aligned(body: &[u8]) -> AlignedVec<16> {
    let mut v = AlignedVec::<16>::with_capacity(body.len());
    v.extend_from_slice(body);
    v
}

fn client_request(c: &mut Criterion) {
    let frame = set_data_request(DATA_LEN);
    let bytes = coord_proto::encode(&frame).expect("sample frame encodes");
    let body = &bytes[HEADER_LEN..];
    let al = aligned(body);
    let mut g = c.benchmark_group("frame/client_request_set_data_100B");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("encode", |b| {
        b.iter(|| coord_proto::encode(black_box(&frame)).expect("encodes"))
    });
    g.bench_function("validate", |b| {
        b.iter(|| {
            rkyv::access::<<ClientFrame as rkyv::Archive>::Archived, rancor::Error>(black_box(&al))
                .is_ok()
        })
    });
    g.bench_function("decode", |b| {
        b.iter(|| coord_proto::decode::<ClientFrame>(black_box(body)).expect("decodes"))
    });
    g.finish();
}

fn server_reply(c: &mut Criterion) {
    let frame = data_reply(DATA_LEN);
    let bytes = coord_proto::encode(&frame).expect("sample frame encodes");
    let body = &bytes[HEADER_LEN..];
    let al = aligned(body);
    let mut g = c.benchmark_group("frame/server_reply_data_100B");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("encode", |b| {
        b.iter(|| coord_proto::encode(black_box(&frame)).expect("encodes"))
    });
    g.bench_function("validate", |b| {
        b.iter(|| {
            rkyv::access::<<ServerFrame as rkyv::Archive>::Archived, rancor::Error>(black_box(&al))
                .is_ok()
        })
    });
    g.bench_function("decode", |b| {
        b.iter(|| coord_proto::decode::<ServerFrame>(black_box(body)).expect("decodes"))
    });
    g.finish();
}

#[cfg(feature = "zab")]
fn peer_proposal(c: &mut Criterion) {
    use coord_benches::set_data_txn_bytes;
    use coord_zab::{ZabMessage, Zxid};
    let msg = ZabMessage::Proposal {
        zxid: Zxid::new(3, 0x9f31),
        txn: set_data_txn_bytes(DATA_LEN),
    };
    let body = msg.encode();
    let al = aligned(&body);
    let mut g = c.benchmark_group("frame/peer_proposal_set_data_100B");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("encode", |b| b.iter(|| black_box(&msg).encode()));
    g.bench_function("validate", |b| {
        b.iter(|| {
            rkyv::access::<<ZabMessage as rkyv::Archive>::Archived, rancor::Error>(black_box(&al))
                .is_ok()
        })
    });
    g.bench_function("decode", |b| {
        b.iter(|| ZabMessage::decode(black_box(&body)).expect("decodes"))
    });
    g.finish();
}

#[cfg(not(feature = "zab"))]
fn peer_proposal(_c: &mut Criterion) {
    eprintln!("frame/peer_proposal: skipped (built without the `zab` feature)");
}

criterion_group!(benches, client_request, server_reply, peer_proposal);
criterion_main!(benches);
