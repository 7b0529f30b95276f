//! Writes the seed corpus of every fuzz target: `seeds <corpus dir>` (run.sh --seeds) replaces
//! `<corpus dir>/<target>/` with a few small inputs, made with partisan_core's own encoders and
//! from the real `term_to_binary` output in `seeds/etf_samples.txt`. The inputs are named after
//! what they hold; the same program writes the same bytes every time.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use partisan_core::membership::{ChannelSpec, Compression, NodeSpec, State};
use partisan_core::plumtree::Message as Broadcast;
use partisan_core::wire::{
    encode_data_frame, encode_frame, prove, AckStatus, AuthChallenge, AuthInit, AuthResponse,
    FrameKind, Hello, HelloAck, NodeId, PidNaming, Preamble, Side, Target, Writer,
    DEFAULT_MAX_FRAME,
};
use partisan_fuzz::{
    broadcast, compress, join_records, BROADCAST_MODULE, DIALER_NONCE, OVERLAY_LOCAL, OVERLAY_PEER,
    SECRET,
};

/// The OTP samples: (node, name, bytes).
fn samples() -> Vec<(String, String, Vec<u8>)> {
    include_str!("../seeds/etf_samples.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut f = l.split_whitespace();
            let (node, name, hex) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            (node.to_owned(), name.to_owned(), bytes)
        })
        .collect()
}

fn sample(all: &[(String, String, Vec<u8>)], node: &str, name: &str) -> Vec<u8> {
    all.iter()
        .find(|(n, m, _)| n == node && m == name)
        .unwrap_or_else(|| panic!("no sample {node} {name}"))
        .2
        .clone()
}

fn channel(name: &str, parallelism: u16, monotonic: bool, compression: Compression) -> ChannelSpec {
    ChannelSpec {
        name: name.to_owned(),
        parallelism,
        monotonic,
        compression,
    }
}

fn specs() -> [NodeSpec; 3] {
    [
        NodeSpec {
            name: "a@127.0.0.1".into(),
            listen_addrs: vec![([127, 0, 0, 1], 10_100).into()],
            channels: vec![
                channel("data", 4, true, Compression::Level(6)),
                channel("partisan_membership", 1, false, Compression::Off),
                channel("undefined", 1, false, Compression::Off),
            ],
        },
        NodeSpec {
            name: "b@host.example".into(),
            listen_addrs: vec![
                "[::1]:10200".parse().unwrap(),
                ([10, 0, 0, 2], 10_201).into(),
            ],
            channels: vec![channel("undefined", 2, false, Compression::On)],
        },
        NodeSpec {
            name: "c@h".into(),
            listen_addrs: vec![],
            channels: vec![],
        },
    ]
}

fn spec_named(name: &str) -> NodeSpec {
    NodeSpec {
        name: name.into(),
        listen_addrs: vec![([127, 0, 0, 1], 10_000).into()],
        channels: vec![],
    }
}

struct Corpus {
    dir: PathBuf,
}

impl Corpus {
    fn target(root: &Path, name: &str) -> Corpus {
        let dir = root.join(name);
        if dir.exists() {
            fs::remove_dir_all(&dir).unwrap();
        }
        fs::create_dir_all(&dir).unwrap();
        Corpus { dir }
    }

    fn put(&self, name: &str, bytes: &[u8]) {
        fs::write(self.dir.join(name), bytes).unwrap();
    }
}

fn nonode_naming(creation: u32) -> PidNaming {
    PidNaming {
        vm: NodeId::new("nonode@nohost", 0),
        creation,
    }
}

fn main() {
    let root = PathBuf::from(std::env::args().nth(1).expect("usage: seeds <corpus dir>"));
    let etf = samples();
    let [a, b, c] = specs();

    // ---- preamble
    let p = Corpus::target(&root, "preamble");
    p.put("ours", &Preamble::ours());
    p.put("http", b"HTTP/1.1 200 OK");
    p.put("version_2", b"PTSN\x02");
    let mut start = Preamble::ours().to_vec();
    start.extend_from_slice(&encode_frame(FrameKind::AuthInit, &[7; 32]));
    p.put("ours_then_auth_init", &start);

    // ---- auth
    let nonce_a = [0xa5u8; 32];
    let init = AuthInit {
        nonce: DIALER_NONCE,
    };
    let challenge = AuthChallenge {
        nonce: nonce_a,
        proof: prove(SECRET, Side::Acceptor, &DIALER_NONCE, &nonce_a),
    };
    let response = AuthResponse {
        proof: prove(SECRET, Side::Dialer, &DIALER_NONCE, &DIALER_NONCE),
    };
    let au = Corpus::target(&root, "auth");
    au.put("init", &init.encode());
    au.put("challenge", &challenge.encode());
    au.put("response", &response.encode());
    au.put("short", &[1; 31]);

    // ---- handshake
    let hello = |spec: &NodeSpec, pids: PidNaming, ch: &str, index: u16, caps: u32| Hello {
        spec: spec.clone(),
        incarnation: 0x0102_0304_0506_0708,
        pids,
        channel: ch.into(),
        index,
        capabilities: caps,
    };
    let ack = |status, name: &str, pids| HelloAck {
        status,
        name: name.into(),
        incarnation: 42,
        pids,
        capabilities: 2,
    };
    let hellos = [
        hello(&a, nonode_naming(0x1234), "undefined", 0, 0),
        hello(
            &b,
            PidNaming {
                vm: NodeId::new("b@host.example", 7),
                creation: 7,
            },
            "partisan_membership",
            1,
            1,
        ),
        hello(&c, nonode_naming(1), "data", 3, 2),
    ];
    let acks = [
        ack(AckStatus::Accepted, "a@127.0.0.1", nonode_naming(9)),
        ack(AckStatus::Duplicate, "b@host.example", nonode_naming(3)),
        ack(AckStatus::Removed, "c@h", nonode_naming(0)),
    ];
    let hs = Corpus::target(&root, "handshake");
    for (i, h) in hellos.iter().enumerate() {
        hs.put(&format!("hello_{i}"), &h.encode());
    }
    for (i, x) in acks.iter().enumerate() {
        hs.put(&format!("ack_{i}"), &x.encode());
    }
    hs.put("name_ok", b"node@host.example");
    hs.put("name_two_ats", b"a@b@c");

    // ---- gossip: cut points, then three states
    let state = |entries: &[(&NodeSpec, u64, bool)]| {
        let mut s = State::new();
        for (spec, inc, removed) in entries {
            s.add((*spec).clone(), *inc);
            if *removed {
                s.remove(&spec.name);
            }
        }
        s.encode()
    };
    let s1 = state(&[(&a, 1, false), (&b, 2, false)]);
    let s2 = state(&[(&a, 1, true), (&c, 5, false)]);
    let s3 = state(&[(&b, 3, false), (&c, 4, false)]);
    let three = |x: &[u8], y: &[u8], z: &[u8]| {
        let mut v = Vec::new();
        v.extend_from_slice(&(x.len() as u16).to_be_bytes());
        v.extend_from_slice(&((x.len() + y.len()) as u16).to_be_bytes());
        v.extend_from_slice(x);
        v.extend_from_slice(y);
        v.extend_from_slice(z);
        v
    };
    let g = Corpus::target(&root, "gossip");
    g.put("three_states", &three(&s1, &s2, &s3));
    g.put("three_states_empty_first", &three(&state(&[]), &s3, &s1));
    g.put("one_state", &three(&[], &[], &s2));

    // ---- data frame targets
    let pid_payload = sample(&etf, "nonode@nohost", "pid");
    let t = Corpus::target(&root, "target");
    let body = |t: &Target, payload: &[u8]| {
        let mut v = Vec::new();
        t.encode_into(&mut v);
        v.extend_from_slice(payload);
        v
    };
    t.put(
        "name",
        &body(&Target::Name("my_server".into()), &pid_payload),
    );
    let pid = Target::Pid {
        number: 123,
        serial: 4,
        creation: None,
    };
    t.put("pid", &body(&pid, &[131, 106]));
    let pid_of_life = Target::Pid {
        number: 77,
        serial: 0,
        creation: Some(0x6b10_31c5),
    };
    t.put("pid_of_life", &body(&pid_of_life, &pid_payload));
    t.put("pid_text", b"#Pid<0.123.4>");

    // ---- the term rewrite: flags byte (0: both rules, every kind), then a term without its
    // version byte
    let tr = Corpus::target(&root, "term_rewrite");
    let small = [
        "pid",
        "ref",
        "port",
        "fun_with_pid",
        "export",
        "tuple_mixed",
        "big_ints",
        "unicode_atom",
        "nested_list",
        "gen_call",
        "old_encodings",
    ];
    for (node, tag) in [("a@127.0.0.1", "dist"), ("nonode@nohost", "nonode")] {
        for name in small {
            let mut v = vec![0u8];
            v.extend_from_slice(&sample(&etf, node, name)[1..]);
            tr.put(&format!("{tag}_{name}"), &v);
        }
    }
    // pids only for one rule, references only for the other
    let mut v = vec![0x09u8];
    v.extend_from_slice(&sample(&etf, "a@127.0.0.1", "nested_list")[1..]);
    tr.put("dist_nested_list_kinds", &v);

    // ---- the receive path: flags byte (low bits: where the payload starts), then the frame
    let rx = Corpus::target(&root, "term_receive");
    let with = |flags: u8, prefix: &[u8], payload: &[u8]| {
        let mut v = vec![flags];
        v.extend_from_slice(prefix);
        v.extend_from_slice(payload);
        v
    };
    rx.put(
        "partisan_payload",
        &with(0, &[], &sample(&etf, "a@127.0.0.1", "partisan_msg")),
    );
    rx.put(
        "after_target",
        &with(
            9,
            &body(&pid, &[])[..9],
            &sample(&etf, "nonode@nohost", "gen_call"),
        ),
    );
    rx.put(
        "compressed_list",
        &with(0, &[], &sample(&etf, "nonode@nohost", "compressed_list")),
    );
    rx.put(
        "compressed_big_binary",
        &with(
            0,
            &[],
            &sample(&etf, "a@127.0.0.1", "compressed_big_binary"),
        ),
    );
    rx.put(
        "compressed_tuple",
        &with(1, &[0], &compress(&sample(&etf, "a@127.0.0.1", "pid")[1..])),
    );
    // {meta, {small, <<0:70000/unit:8>>}}, the binary's bytes from the 70,000 zero bytes that
    // flag 0x80 appends: referenced in place.
    let mut big = vec![131, 104, 2, 119, 4];
    big.extend_from_slice(b"meta");
    big.extend_from_slice(&[104, 2, 97, 5, 109]);
    big.extend_from_slice(&70_000u32.to_be_bytes());
    rx.put("big_binary_in_place", &with(0x80, &[], &big));

    // ---- overlay: records of overlay frame bodies
    let local = spec_named(OVERLAY_LOCAL);
    let peer = spec_named(OVERLAY_PEER);
    let others: Vec<NodeSpec> = (0..4)
        .map(|i| spec_named(&format!("n{i}@10.0.0.{i}")))
        .collect();
    let ov = |tag: u8, f: &dyn Fn(&mut Writer)| {
        let mut w = Writer::new();
        w.u8(tag);
        f(&mut w);
        w.buf
    };
    let sample_of = |w: &mut Writer, nodes: &[&NodeSpec]| {
        w.u16(nodes.len() as u16);
        nodes.iter().for_each(|s| s.encode(w));
    };
    // A node tag: none (0), or 1, a length and the text.
    let tagged = |w: &mut Writer, t: Option<&str>| match t {
        None => {
            w.u8(0);
        }
        Some(t) => {
            w.u8(1).u8(t.len() as u8).bytes(t.as_bytes());
        }
    };
    let join = ov(1, &|w| tagged(w, None));
    let forward_join = ov(2, &|w| {
        w.u32(5);
        others[0].encode(w);
        tagged(w, Some("hub"));
    });
    let neighbor = ov(3, &|w| {
        w.u8(1);
        tagged(w, Some("db"));
    });
    let reply = ov(4, &|w| {
        w.u8(1);
        tagged(w, None);
    });
    let join_reply = ov(8, &|w| tagged(w, Some("hub")));
    let disconnect = ov(5, &|w| {
        w.u8(1);
    });
    let shuffle = ov(6, &|w| {
        w.u32(0);
        peer.encode(w);
        sample_of(w, &[&others[1], &others[2], &b, &local]);
    });
    let shuffle_reply = ov(7, &|w| sample_of(w, &[&others[3], &a, &c]));
    // X-BOT's steps: exchange id 7, the nodes they name, their flags and tags.
    let optimize = ov(9, &|w| {
        w.u64(7);
        others[0].encode(w);
        tagged(w, None);
    });
    let replace = ov(10, &|w| {
        w.u64(7);
        others[1].encode(w);
        others[2].encode(w);
    });
    let switch = ov(11, &|w| {
        w.u64(7);
        others[3].encode(w);
        tagged(w, Some("db"));
    });
    let switch_reply = ov(12, &|w| {
        w.u64(7).u8(1);
        tagged(w, None);
    });
    let replace_reply = ov(13, &|w| {
        w.u64(7).u8(0);
    });
    let optimize_reply = ov(14, &|w| {
        w.u64(7).u8(1);
        tagged(w, Some("hub"));
    });
    let o = Corpus::target(&root, "overlay");
    for (name, m) in [
        ("join", &join),
        ("forward_join", &forward_join),
        ("neighbor", &neighbor),
        ("neighbor_reply", &reply),
        ("join_reply", &join_reply),
        ("disconnect", &disconnect),
        ("shuffle", &shuffle),
        ("shuffle_reply", &shuffle_reply),
        ("optimize", &optimize),
        ("replace", &replace),
        ("switch", &switch),
        ("switch_reply", &switch_reply),
        ("replace_reply", &replace_reply),
        ("optimize_reply", &optimize_reply),
    ] {
        o.put(name, &join_records(&[m]));
    }
    o.put(
        "session",
        &join_records(&[
            &join,
            &join_reply,
            &neighbor,
            &forward_join,
            &shuffle,
            &shuffle_reply,
            &optimize,
            &switch,
            &replace,
            &optimize_reply,
            &switch_reply,
            &replace_reply,
            &disconnect,
        ]),
    );

    // ---- broadcast: records of broadcast frame bodies
    let root_a: Arc<str> = Arc::from("a@h");
    let id = Bytes::from(sample(&etf, "nonode@nohost", "ref"));
    let data = Bytes::from(sample(&etf, "nonode@nohost", "tuple_mixed"));
    let enc = |m: &Broadcast<Arc<str>, Bytes, Bytes>| broadcast::encode(BROADCAST_MODULE, m);
    let gossip = enc(&Broadcast::Gossip {
        root: root_a.clone(),
        id: id.clone(),
        data: data.clone(),
        round: 0,
    });
    let ihave = enc(&Broadcast::IHave {
        root: Arc::from("b@h"),
        ids: vec![Bytes::from_static(&[131, 97, 1]), id.clone()],
    });
    let graft = enc(&Broadcast::Graft {
        root: root_a.clone(),
        id: id.clone(),
    });
    let prune = enc(&Broadcast::Prune {
        root: root_a.clone(),
    });
    let other_module = broadcast::encode("other", &Broadcast::Prune { root: root_a });
    let bc = Corpus::target(&root, "broadcast");
    for (name, m) in [
        ("gossip", &gossip),
        ("ihave", &ihave),
        ("graft", &graft),
        ("prune", &prune),
    ] {
        bc.put(name, &join_records(&[m]));
    }
    // the same payload from both neighbours (the second prunes), then an unknown id announced
    bc.put(
        "session",
        &join_records(&[&gossip, &gossip, &ihave, &graft, &other_module, &prune]),
    );

    // ---- frames: a config byte, a seed byte, then a stream of frames
    let frame = |k: FrameKind, body: &[u8]| encode_frame(k, body).to_vec();
    let data_frame = encode_data_frame(
        &Target::Name("my_server".into()),
        &sample(&etf, "a@127.0.0.1", "gen_call"),
        DEFAULT_MAX_FRAME,
    )
    .unwrap()
    .to_vec();
    let dialer = [
        frame(FrameKind::AuthInit, &init.encode()),
        frame(FrameKind::AuthResponse, &response.encode()),
        frame(FrameKind::Hello, &hellos[0].encode()),
        frame(FrameKind::Gossip, &s1),
        data_frame.clone(),
        frame(FrameKind::Ping, &[1, 2, 3, 4, 5, 6, 7, 8]),
    ]
    .concat();
    let acceptor = [
        frame(FrameKind::AuthChallenge, &challenge.encode()),
        frame(FrameKind::HelloAck, &acks[0].encode()),
        frame(FrameKind::Pong, &[1, 2, 3, 4, 5, 6, 7, 8]),
        frame(FrameKind::Overlay, &shuffle),
        frame(FrameKind::Broadcast, &gossip),
    ]
    .concat();
    let fr = Corpus::target(&root, "frames");
    let with_cfg = |cfg: u8, seed: u8, stream: &[u8]| {
        let mut v = vec![cfg, seed];
        v.extend_from_slice(stream);
        v
    };
    // limit 7: the default 64 MiB; 6: the handshake's 64 KiB; 4: 300 bytes
    fr.put("dialer", &with_cfg(0x07, 1, &dialer));
    fr.put("acceptor_bytewise", &with_cfg(0x26, 2, &acceptor));
    fr.put("acceptor_small_limit", &with_cfg(0x0c, 3, &acceptor));
    fr.put(
        "truncated_data",
        &with_cfg(0x17, 4, &data_frame[..data_frame.len() - 3]),
    );
    fr.put("unknown_kind", &with_cfg(0x07, 5, &[0, 0, 0, 2, 99, 0]));

    println!("seed corpus written to {}", root.display());
}
