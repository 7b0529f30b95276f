//! Micro-benchmarks of the engine's pure parts: frame encoding and decoding (the per-message
//! work of the send and receive paths), writer coalescing (how a batch of queued frames becomes
//! few buffers), inflating compressed terms, the membership CRDT, the rewrite of pids in
//! received messages, and the HyParView core handling messages.
//! `make bench-rust`; figures are recorded in docs/benchmarks.md.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use partisan_core::membership::{NodeSpec, State};
use partisan_core::transport::coalesce;
use partisan_core::wire::{
    encode_data_frame, encode_data_head, rewrite_payload, FrameDecoder, Kinds, NodeId, Reader,
    Rewrite, Target,
};

fn frames(c: &mut Criterion) {
    let target = Target::Pid {
        number: 1234,
        serial: 0,
        creation: Some(7),
    };
    let mut g = c.benchmark_group("frame");
    for size in [64usize, 1024, 64 * 1024] {
        let payload = vec![7u8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("encode_copy", size), &payload, |b, p| {
            b.iter(|| encode_data_frame(black_box(&target), black_box(p), 1 << 30))
        });
        g.bench_with_input(
            BenchmarkId::new("encode_head_only", size),
            &payload,
            |b, p| b.iter(|| encode_data_head(black_box(&target), black_box(p.len()), 1 << 30, 0)),
        );
        // A read buffer holding 256 frames, split and their targets read, as the reader does.
        let one = encode_data_frame(&target, &payload, 1 << 30).unwrap();
        let stream: Vec<u8> = (0..256).flat_map(|_| one.iter().copied()).collect();
        g.throughput(Throughput::Elements(256));
        g.bench_with_input(BenchmarkId::new("decode_256", size), &stream, |b, s| {
            let dec = FrameDecoder::new(1 << 30);
            b.iter_batched(
                || BytesMut::from(&s[..]), // the filled read buffer (not timed)
                |mut buf| {
                    while let Some(f) = dec.decode(&mut buf).unwrap() {
                        black_box(Target::decode(&mut Reader::new(&f.body)).unwrap());
                    }
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

fn membership(c: &mut Criterion) {
    let spec = |i: u32| NodeSpec {
        name: format!("node{i}@10.0.{}.{}", i / 256, i % 256),
        listen_addrs: vec![([10, 0, (i / 256) as u8, (i % 256) as u8], 9090).into()],
        channels: vec![],
    };
    let mut g = c.benchmark_group("membership");
    for n in [16u32, 256, 4096] {
        let mut a = State::new();
        let mut b = State::new();
        for i in 0..n {
            a.add(spec(i), 1);
            b.add(spec(i), if i % 2 == 0 { 2 } else { 1 });
        }
        let encoded = b.encode();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(
            BenchmarkId::new("merge", n),
            &(a.clone(), b.clone()),
            |bch, (a, b)| {
                bch.iter(|| {
                    let mut x = a.clone();
                    x.merge(black_box(b))
                })
            },
        );
        g.bench_with_input(BenchmarkId::new("decode_gossip", n), &encoded, |bch, e| {
            bch.iter(|| State::decode(black_box(e)).unwrap())
        });
    }
    g.finish();
}

/// A writer's batch: 4096 small frames (gathered into one buffer), and 64 frames with 1 MiB
/// payloads held elsewhere (heads gathered, payloads referenced).
fn coalescing(c: &mut Criterion) {
    let target = Target::Name("sink".into());
    let mut g = c.benchmark_group("coalesce");
    for (label, count, size) in [("4096x64B", 4096usize, 64usize), ("64x1MiB", 64, 1 << 20)] {
        let payload = vec![7u8; size];
        let heads: Vec<Vec<u8>> = (0..count)
            .map(|_| encode_data_head(&target, size, 1 << 30, 0).unwrap())
            .collect();
        let small: Vec<Vec<u8>> = heads
            .iter()
            .map(|h| [&h[..], &payload[..]].concat())
            .collect();
        let pieces: Vec<&[u8]> = if size < 8192 {
            small.iter().map(|f| &f[..]).collect()
        } else {
            heads.iter().flat_map(|h| [&h[..], &payload[..]]).collect()
        };
        let bytes: usize = pieces.iter().map(|p| p.len()).sum();
        g.throughput(Throughput::Bytes(bytes as u64));
        let mut out = Vec::with_capacity(256 * 1024);
        g.bench_function(label, |b| {
            b.iter(|| coalesce(black_box(&pieces), &mut out).len())
        });
    }
    g.finish();
}

/// The receive-side walk of a message from a node without Distributed Erlang: a 64 B payload
/// with nothing to rewrite, and `{bench_req, Pid, Ref, <<64 bytes>>}` whose pid and reference
/// are rewritten.
fn pid_rewrite(c: &mut Criterion) {
    let rules = [
        Rewrite {
            from: NodeId::new("nonode@nohost", 0),
            to: NodeId::new("a@127.0.0.1", 77),
            kinds: Kinds::ALL,
        },
        Rewrite {
            from: NodeId::new("b@127.0.0.1", 99),
            to: NodeId::new("nonode@nohost", 0),
            kinds: Kinds::ALL,
        },
    ];
    let atom = |out: &mut Vec<u8>, t: &str| {
        out.extend_from_slice(&[119, t.len() as u8]);
        out.extend_from_slice(t.as_bytes());
    };
    let bin = |out: &mut Vec<u8>| {
        out.extend_from_slice(&[109, 0, 0, 0, 64]);
        out.extend_from_slice(&[7u8; 64]);
    };
    // {bench_data, <<64 bytes>>}
    let mut plain = vec![131, 104, 2];
    atom(&mut plain, "bench_data");
    bin(&mut plain);
    // {bench_req, Pid, Ref, <<64 bytes>>}
    let mut with_pid = vec![131, 104, 4];
    atom(&mut with_pid, "bench_req");
    with_pid.push(88);
    atom(&mut with_pid, "nonode@nohost");
    with_pid.extend_from_slice(&[0, 0, 0, 90, 0, 0, 0, 0, 0, 0, 0, 0]);
    with_pid.extend_from_slice(&[90, 0, 3]);
    atom(&mut with_pid, "nonode@nohost");
    with_pid.extend_from_slice(&[0; 4 + 12]);
    bin(&mut with_pid);
    let mut g = c.benchmark_group("pid_rewrite");
    g.bench_function("64B_nothing_to_rewrite", |b| {
        b.iter(|| rewrite_payload(black_box(&plain), &rules).map(|t| t.len()))
    });
    g.bench_function("64B_pid_and_ref", |b| {
        b.iter(|| rewrite_payload(black_box(&with_pid), &rules).map(|t| t.len()))
    });
    g.finish();
}

/// A full HyParView node handling the messages of its busiest moments: a shuffle that ends
/// here (reply and integration into the passive view) and a neighbour request it accepts.
fn hyparview(c: &mut Criterion) {
    use partisan_core::hyparview::{Config, HyParView, Input, Message};
    let now = std::time::Instant::now();
    let full = || {
        let mut hv = HyParView::new(0u32, Config::default(), now);
        for p in 1..=6u32 {
            hv.handle(
                Input::Received(
                    p,
                    Message::Neighbor {
                        high: true,
                        tag: None,
                    },
                ),
                now,
            );
        }
        for p in 100..130u32 {
            hv.handle(
                Input::Received(
                    1,
                    Message::Shuffle {
                        origin: 1,
                        ttl: 0,
                        nodes: vec![p],
                    },
                ),
                now,
            );
        }
        while hv.poll_action().is_some() {}
        hv
    };
    let mut g = c.benchmark_group("hyparview");
    g.bench_function("shuffle_ending_here", |b| {
        b.iter_batched(
            full,
            |mut hv| {
                let nodes = (200..208).collect();
                let msg = Message::Shuffle {
                    origin: 9,
                    ttl: 0,
                    nodes,
                };
                hv.handle(Input::Received(3, msg), now);
                while hv.poll_action().is_some() {}
                hv
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("neighbor_accepted_when_full", |b| {
        b.iter_batched(
            full,
            |mut hv| {
                hv.handle(
                    Input::Received(
                        500,
                        Message::Neighbor {
                            high: true,
                            tag: None,
                        },
                    ),
                    now,
                );
                while hv.poll_action().is_some() {}
                hv
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// A Plumtree node with six neighbours: a new payload (delivered, pushed to five eager peers,
/// queued for the lazy one), a duplicate (pruned), and the lazy tick's flush.
fn plumtree(c: &mut Criterion) {
    use partisan_core::plumtree::{Config, Input, Message, Plumtree};
    let now = std::time::Instant::now();
    let node = || {
        let mut pt: Plumtree<u32, u64, Vec<u8>> = Plumtree::new(0, Config::default(), now);
        for p in 1..=6u32 {
            pt.handle(Input::NeighborUp(p), now);
        }
        // One duplicate from peer 6 makes it lazy for root 9.
        for (from, id) in [(1, 1u64), (6, 1)] {
            let msg = Message::Gossip {
                root: 9,
                id,
                data: vec![0; 64],
                round: 1,
            };
            pt.handle(Input::Received(from, msg), now);
        }
        while pt.poll_action().is_some() {}
        pt
    };
    let gossip = |id: u64| Message::Gossip {
        root: 9u32,
        id,
        data: vec![0u8; 64],
        round: 2,
    };
    let mut g = c.benchmark_group("plumtree");
    g.bench_function("new_payload", |b| {
        b.iter_batched(
            node,
            |mut pt| {
                pt.handle(Input::Received(1, gossip(2)), now);
                while pt.poll_action().is_some() {}
                pt
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("duplicate_pruned", |b| {
        b.iter_batched(
            node,
            |mut pt| {
                pt.handle(Input::Received(2, gossip(1)), now);
                while pt.poll_action().is_some() {}
                pt
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("lazy_tick_of_100_ids", |b| {
        b.iter_batched(
            || {
                let mut pt = node();
                for id in 10..110 {
                    pt.handle(Input::Received(1, gossip(id)), now);
                }
                while pt.poll_action().is_some() {}
                pt
            },
            |mut pt| {
                pt.handle_timeout(now + std::time::Duration::from_secs(2));
                while pt.poll_action().is_some() {}
                pt
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(
    benches,
    frames,
    coalescing,
    membership,
    pid_rewrite,
    hyparview,
    plumtree
);
criterion_main!(benches);
