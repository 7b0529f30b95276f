//! Property tests of the frame codec and handshake: round trips hold, and no input, however
//! malformed, makes a decoder panic.

use bytes::BytesMut;
use partisan_core::membership::{ChannelSpec, Compression, NodeSpec};
use partisan_core::wire::{
    encode_data_frame, encode_frame, parse_pid_text, read_preamble, AckStatus, FrameDecoder,
    FrameKind, Hello, HelloAck, NodeId, PidNaming, Preamble, Reader, Target, WireError,
};
use proptest::prelude::*;

fn node_name() -> impl Strategy<Value = String> {
    ("[a-z][a-z0-9_]{0,20}", "[a-z0-9.]{1,20}").prop_map(|(l, h)| format!("{l}@{h}"))
}

fn channel() -> impl Strategy<Value = ChannelSpec> {
    (
        "[a-z_]{1,12}",
        1u16..64,
        any::<bool>(),
        prop_oneof![
            Just(Compression::Off),
            Just(Compression::On),
            (0u8..=9).prop_map(Compression::Level)
        ],
    )
        .prop_map(|(name, parallelism, monotonic, compression)| ChannelSpec {
            name,
            parallelism,
            monotonic,
            compression,
        })
}

fn node_spec() -> impl Strategy<Value = NodeSpec> {
    (
        node_name(),
        prop::collection::vec((any::<[u8; 4]>(), any::<u16>()), 0..4),
        prop::collection::vec(channel(), 0..6),
    )
        .prop_map(|(name, addrs, mut channels)| {
            channels.sort();
            NodeSpec {
                name,
                listen_addrs: addrs.into_iter().map(|(ip, p)| (ip, p).into()).collect(),
                channels,
            }
        })
}

proptest! {
    #[test]
    fn frames_round_trip_in_any_chunking(bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..20), cut in 1usize..64) {
        let mut stream = Vec::new();
        for b in &bodies {
            stream.extend_from_slice(&encode_frame(FrameKind::Gossip, b));
        }
        let dec = FrameDecoder::new(1024);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in stream.chunks(cut) {
            buf.extend_from_slice(chunk);
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                prop_assert_eq!(f.kind, FrameKind::Gossip);
                out.push(f.body.to_vec());
            }
        }
        prop_assert_eq!(out, bodies);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn decoder_never_panics_on_garbage(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        let dec = FrameDecoder::new(512);
        let mut buf = BytesMut::from(&bytes[..]);
        // Either frames, a clean error, or a wait for more input; never a panic or an endless loop.
        for _ in 0..bytes.len() + 1 {
            match dec.decode(&mut buf) {
                Ok(Some(f)) => {
                    let _ = Hello::decode(&f.body);
                    let _ = HelloAck::decode(&f.body);
                    let _ = partisan_core::membership::State::decode(&f.body);
                    let _ = Target::decode(&mut Reader::new(&f.body));
                }
                Ok(None) | Err(_) => break,
            }
        }
    }

    #[test]
    fn hello_round_trips(spec in node_spec(), inc in any::<u64>(), ch in "[a-z_]{1,20}", idx in any::<u16>(), c in any::<u32>()) {
        let h = Hello { spec, incarnation: inc, pids: pids(c), channel: ch, index: idx, capabilities: 0 };
        prop_assert_eq!(Hello::decode(&h.encode()).unwrap(), h);
    }

    #[test]
    fn truncated_hello_is_an_error(spec in node_spec(), cut in 0usize..100) {
        let h = Hello { spec, incarnation: 9, pids: pids(5), channel: "undefined".into(), index: 0, capabilities: 0 };
        let bytes = h.encode();
        let cut = cut.min(bytes.len().saturating_sub(1));
        prop_assert!(Hello::decode(&bytes[..cut]).is_err());
    }

    #[test]
    fn ack_round_trips(name in node_name(), inc in any::<u64>(), c in any::<u32>()) {
        let a = HelloAck { status: AckStatus::Duplicate, name, incarnation: inc, pids: pids(c), capabilities: 3 };
        prop_assert_eq!(HelloAck::decode(&a.encode()).unwrap(), a);
    }

    #[test]
    fn targets_round_trip(name in "[a-z_]{1,255}", n in any::<u32>(), s in any::<u32>(), payload in prop::collection::vec(any::<u8>(), 0..64)) {
        let pids = [
            Target::Pid { number: n, serial: s, creation: None },
            Target::Pid { number: n, serial: s, creation: Some(n ^ s) },
            Target::Call((u64::from(n) << 32) | u64::from(s)),
        ];
        for t in [Target::Name(name.clone())].into_iter().chain(pids) {
            let frame = encode_data_frame(&t, &payload, 1 << 20).unwrap();
            let mut buf = BytesMut::from(&frame[..]);
            let f = FrameDecoder::new(1 << 20).decode(&mut buf).unwrap().unwrap();
            let mut r = Reader::new(&f.body);
            prop_assert_eq!(Target::decode(&mut r).unwrap(), t);
            prop_assert_eq!(r.rest(), &payload[..]);
        }
    }
}

#[test]
fn oversized_frames_are_refused_before_buffering() {
    let dec = FrameDecoder::new(100);
    let mut buf = BytesMut::from(&[0u8, 0, 1, 0, 1][..]);
    assert_eq!(
        dec.decode(&mut buf),
        Err(WireError::FrameTooLarge { len: 256, max: 100 })
    );
    let mut empty = BytesMut::from(&[0u8, 0, 0, 0][..]);
    assert!(dec.decode(&mut empty).is_err());
    let mut unknown = BytesMut::from(&[0u8, 0, 0, 1, 99][..]);
    assert_eq!(dec.decode(&mut unknown), Err(WireError::UnknownKind(99)));
    assert!(encode_data_frame(&Target::Name("x".into()), &[0u8; 200], 100).is_err());
}

#[test]
fn preamble_checks_magic_and_version() {
    assert!(read_preamble(&Preamble::ours()).is_ok());
    assert_eq!(read_preamble(b"HTTP/"), Err(WireError::BadMagic));
    assert_eq!(
        read_preamble(&[b'P', b'T', b'S', b'N', 9]),
        Err(WireError::UnsupportedVersion(9))
    );
}

#[test]
fn node_names_are_validated() {
    use partisan_core::wire::validate_node_name;
    assert!(validate_node_name("a@127.0.0.1").is_ok());
    for bad in [
        "",
        "noat",
        "@host",
        "name@",
        "a@b@c",
        "a b@c",
        "a'@b",
        &"x".repeat(300),
    ] {
        assert!(validate_node_name(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn pid_text_parses() {
    assert_eq!(parse_pid_text(b"<0.123.4>"), Some((123, 4)));
    assert_eq!(parse_pid_text(b"#Pid<0.7.0>"), Some((7, 0)));
    assert_eq!(parse_pid_text(b"<5.7.0>"), Some((7, 0)));
    for bad in [
        &b"<0.1>"[..],
        b"0.1.2",
        b"<0.1.2.3>",
        b"<a.b.c>",
        b"<0.99999999999.0>",
    ] {
        assert_eq!(parse_pid_text(bad), None);
    }
}

/// A node without Distributed Erlang names its pids `nonode@nohost`, creation 0.
fn pids(creation: u32) -> PidNaming {
    PidNaming {
        vm: NodeId::new("nonode@nohost", 0),
        creation,
    }
}
