//! The checks behind the fuzz targets in `fuzz_targets/`: each takes arbitrary bytes, runs one of
//! partisan_core's decoders on them and asserts what must hold for every input: no panic, and
//! for inputs that decode, that encoding the value and decoding it again gives the same value
//! (plus a few cheap invariants of each codec). A failed assertion is a panic, which libFuzzer
//! reports as a crash. The frames target feeds each frame body it decodes to the check of its
//! kind, so the checks live here rather than in the targets.
//!
//! Two codecs have no public path from the crate root: the Plumtree frame codec
//! (`transport/broadcast.rs`, a private module) and the HyParView message codec
//! (`control/overlay.rs`, private). The overlay decoder is driven through the public
//! `control::Node` (an overlay frame on a control connection); for the round trip, and for the
//! broadcast codec, which nothing public reaches without sockets, the very source files of
//! partisan_core are compiled into this crate (`#[path]` modules below, not copies), their
//! `crate::` imports resolved by the re-export modules `wire`, `membership`, `hyparview` and
//! `plumtree`. Once partisan_core exports them, these modules can go.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use partisan_core::control::{Action, Input, Membership, Node, Settings, CONTROL_CHANNEL};
use partisan_core::membership::{NodeSpec, State};
use partisan_core::wire::{
    self as pw, encode_data_frame, encode_frame, for_each_atom, parse_pid, parse_pid_text,
    plan_in_place, prove, read_preamble, rewrite_payload, uncompressed_term, validate_channel_name,
    validate_node_name, verify, walk, AckStatus, AuthChallenge, AuthInit, AuthResponse, Frame,
    FrameDecoder, FrameKind, Hello, HelloAck, Kinds, NodeId, Preamble, Reader, Rewrite, Shape,
    Side, Target, TermError, WireError, FRAME_HEADER_LEN, MAGIC, MAX_ADDRS, MAX_ARITY,
    MAX_CHANNELS, PREAMBLE_LEN, REFERENCE_MIN, VERSION,
};

// ---- partisan_core's private codecs, compiled from its own source files ------------------

/// `crate::wire` for the included files.
mod wire {
    pub use partisan_core::wire::*;
}
/// `crate::membership` for the included files.
mod membership {
    pub use partisan_core::membership::*;
}
/// `crate::hyparview` for the included files.
mod hyparview {
    pub use partisan_core::hyparview::*;
}
/// `crate::plumtree` for the included files.
mod plumtree {
    pub use partisan_core::plumtree::*;
}

/// partisan_core's `transport::broadcast` (the Plumtree frame codec and the trees per module).
#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../../partisan_core/src/transport/broadcast.rs"]
pub mod broadcast;

/// partisan_core's `control::overlay` (the HyParView message codec and its directory of specs).
#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../../partisan_core/src/control/overlay.rs"]
mod overlay;

// ---- helpers ----------------------------------------------------------------------------

/// One instant for every run, so that runs are deterministic.
fn t0() -> Instant {
    static T0: OnceLock<Instant> = OnceLock::new();
    *T0.get_or_init(Instant::now)
}

/// Splits `data` into records of a big-endian u16 length and that many bytes (the last record
/// takes what is left when its length runs past the end). How targets that feed a sequence of
/// messages to one state machine cut their input.
pub fn records(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while data.len() >= 2 {
        let n = u16::from_be_bytes([data[0], data[1]]) as usize;
        let rest = &data[2..];
        let n = n.min(rest.len());
        out.push(&rest[..n]);
        data = &rest[n..];
    }
    out
}

/// Writes records for [`records`] (used by the seed generator).
pub fn join_records(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(&(p.len() as u16).to_be_bytes());
        out.extend_from_slice(p);
    }
    out
}

/// What docs/wire.md says a node name is, written independently of `validate_node_name`:
/// 1..=255 printable ASCII bytes, no quote, exactly one `@` with text on both sides.
pub fn spec_node_name(s: &str) -> bool {
    let b = s.as_bytes();
    let printable = b.iter().all(|&c| (0x21..=0x7e).contains(&c) && c != b'\'');
    let ats: Vec<usize> = (0..b.len()).filter(|&i| b[i] == b'@').collect();
    !b.is_empty()
        && b.len() <= 255
        && printable
        && ats.len() == 1
        && ats[0] > 0
        && ats[0] + 1 < b.len()
}

/// What docs/wire.md says a channel name is: 1..=255 printable ASCII bytes.
pub fn spec_channel_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && s.bytes().all(|c| (0x21..=0x7e).contains(&c))
}

/// A decoded node spec obeys the limits it was decoded under.
fn check_spec(s: &NodeSpec) {
    assert!(validate_node_name(&s.name).is_ok());
    assert!(s.listen_addrs.len() <= MAX_ADDRS);
    assert!(s.channels.len() <= MAX_CHANNELS);
    assert!(
        s.channels.windows(2).all(|w| w[0] <= w[1]),
        "channels sorted"
    );
    for c in &s.channels {
        assert!(validate_channel_name(&c.name).is_ok());
        assert!(c.parallelism >= 1);
    }
}

// ---- preamble ---------------------------------------------------------------------------

/// `read_preamble` accepts exactly our own five bytes and says why it refuses others.
pub fn check_preamble(data: &[u8]) {
    let Some(head) = data.first_chunk::<PREAMBLE_LEN>() else {
        return;
    };
    match read_preamble(head) {
        Ok(p) => {
            assert_eq!(*head, Preamble::ours());
            assert_eq!(p.version, VERSION);
        }
        Err(WireError::BadMagic) => assert_ne!(head[..4], MAGIC),
        Err(WireError::UnsupportedVersion(v)) => {
            assert_eq!(head[..4], MAGIC);
            assert_eq!(v, head[4]);
            assert_ne!(v, VERSION);
        }
        Err(e) => panic!("read_preamble gave {e:?}"),
    }
}

// ---- frames -----------------------------------------------------------------------------

/// The frame limits a target picks from.
pub const FRAME_LIMITS: [usize; 8] = [
    1,
    2,
    5,
    40,
    300,
    4096,
    pw::MAX_HANDSHAKE_FRAME,
    pw::DEFAULT_MAX_FRAME,
];

/// What a decoder made of a stream: the frames, the error that stopped it (if any) and the
/// bytes left waiting (when no error).
#[derive(Debug, PartialEq, Eq)]
pub struct Decoded {
    /// Every frame, in order.
    pub frames: Vec<(FrameKind, Bytes)>,
    /// The error the decoder stopped at.
    pub error: Option<WireError>,
    /// The bytes of an incomplete last frame.
    pub rest: Vec<u8>,
}

/// Feeds `stream` to `dec` in chunks of the sizes `cut` gives (cycled), taking every frame
/// after each chunk, as a connection's reader does; checks `peek` and `wanted` against `decode`
/// and that each frame is the bytes it came from.
pub fn decode_stream(dec: &FrameDecoder, stream: &[u8], cut: &mut dyn FnMut() -> usize) -> Decoded {
    let mut buf = BytesMut::new();
    let mut fed = 0;
    let mut taken = 0;
    let mut frames = Vec::new();
    loop {
        let n = cut().clamp(1, stream.len().max(1));
        let end = (fed + n).min(stream.len());
        buf.extend_from_slice(&stream[fed..end]);
        fed = end;
        loop {
            let peeked = dec.peek(&buf);
            let wanted = dec.wanted(&buf);
            let before = buf.len();
            match dec.decode(&mut buf) {
                Ok(Some(Frame { kind, body })) => {
                    assert_eq!(peeked, Ok(Some((kind, body.len()))));
                    assert_eq!(wanted, 0);
                    let used = before - buf.len();
                    assert_eq!(used, FRAME_HEADER_LEN + body.len());
                    assert_eq!(&encode_frame(kind, &body)[..], &stream[taken..taken + used]);
                    taken += used;
                    frames.push((kind, body));
                }
                Ok(None) => {
                    assert!(wanted > 0, "decode waits, so more bytes are wanted");
                    assert_eq!(buf.len(), before);
                    if let Ok(Some((_, len))) = peeked {
                        assert!(buf.len() < FRAME_HEADER_LEN + len);
                    }
                    break;
                }
                Err(e) => {
                    // Whatever decode refuses, peek refuses too once the kind byte is in.
                    if before >= FRAME_HEADER_LEN {
                        assert_eq!(peeked, Err(e.clone()));
                    }
                    return Decoded {
                        frames,
                        error: Some(e),
                        rest: Vec::new(),
                    };
                }
            }
        }
        if fed == stream.len() {
            return Decoded {
                frames,
                error: None,
                rest: buf.to_vec(),
            };
        }
    }
}

/// Runs the check of a frame's kind on its body, as the receiving side would decode it.
pub fn check_frame_body(kind: FrameKind, body: &[u8]) {
    match kind {
        FrameKind::Data => check_target(body),
        FrameKind::Ping | FrameKind::Pong => {}
        FrameKind::Gossip => {
            check_gossip(body);
        }
        FrameKind::Overlay => check_overlay_codec(body),
        FrameKind::Broadcast => check_broadcast(body),
        FrameKind::Hello => check_hello(body),
        FrameKind::HelloAck => check_hello_ack(body),
        FrameKind::AuthInit | FrameKind::AuthChallenge | FrameKind::AuthResponse => {
            check_auth(body)
        }
    }
}

// ---- authentication ---------------------------------------------------------------------

/// The secret the auth check proves and verifies with (the seeds carry proofs made with it).
pub const SECRET: &[u8] = b"fuzz-cookie";
/// The dialer's nonce of the auth check.
pub const DIALER_NONCE: [u8; 32] = [0x5a; 32];

/// The three fixed-size frames decode exactly when their size is right, and re-encode to the
/// same bytes; a proof passes `verify` exactly when it is the one `prove` makes.
pub fn check_auth(body: &[u8]) {
    let init = AuthInit::decode(body);
    assert_eq!(init.is_ok(), body.len() == 32);
    if let Ok(i) = init {
        assert_eq!(i.encode(), body);
    }
    let response = AuthResponse::decode(body);
    assert_eq!(response.is_ok(), body.len() == 32);
    if let Ok(r) = response {
        assert_eq!(r.encode(), body);
        let want = prove(SECRET, Side::Dialer, &DIALER_NONCE, &DIALER_NONCE);
        let ok = verify(SECRET, Side::Dialer, &DIALER_NONCE, &DIALER_NONCE, &r.proof);
        assert_eq!(ok, r.proof == want);
    }
    let challenge = AuthChallenge::decode(body);
    assert_eq!(challenge.is_ok(), body.len() == 64);
    if let Ok(c) = challenge {
        assert_eq!(c.encode(), body);
        let want = prove(SECRET, Side::Acceptor, &DIALER_NONCE, &c.nonce);
        let ok = verify(SECRET, Side::Acceptor, &DIALER_NONCE, &c.nonce, &c.proof);
        assert_eq!(ok, c.proof == want);
        // An acceptor's proof never passes for a dialer's.
        assert!(!verify(
            SECRET,
            Side::Dialer,
            &DIALER_NONCE,
            &c.nonce,
            &want
        ));
    }
}

// ---- handshake --------------------------------------------------------------------------

/// `Hello::decode` validates what it returns; the value survives encode and decode, a byte
/// less or more is an error.
pub fn check_hello(body: &[u8]) {
    let Ok(h) = Hello::decode(body) else {
        return;
    };
    check_spec(&h.spec);
    assert!(validate_node_name(std::str::from_utf8(&h.pids.vm.name).unwrap()).is_ok()); // ok-unwrap: fuzz harness, not a NIF path; a panic here is a finding
    assert!(validate_channel_name(&h.channel).is_ok());
    let enc = h.encode();
    // The same records, the channels perhaps in another order.
    assert_eq!(enc.len(), body.len());
    let again = Hello::decode(&enc).expect("an encoded Hello decodes");
    assert_eq!(again, h);
    assert_eq!(again.encode(), enc);
    assert!(Hello::decode(&body[..body.len() - 1]).is_err());
    let mut longer = body.to_vec();
    longer.push(0);
    assert!(Hello::decode(&longer).is_err());
}

/// `HelloAck` has no field whose order can change: it re-encodes to the very bytes.
pub fn check_hello_ack(body: &[u8]) {
    let Ok(a) = HelloAck::decode(body) else {
        return;
    };
    assert!(validate_node_name(&a.name).is_ok());
    assert!(matches!(
        a.status,
        AckStatus::Accepted
            | AckStatus::Duplicate
            | AckStatus::UnknownChannel
            | AckStatus::Removed
            | AckStatus::Refused
    ));
    assert_eq!(a.encode(), body);
    assert!(HelloAck::decode(&body[..body.len() - 1]).is_err());
}

/// The name validators agree with docs/wire.md's rules.
pub fn check_names(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        assert_eq!(validate_node_name(s).is_ok(), spec_node_name(s), "{s:?}");
        assert_eq!(
            validate_channel_name(s).is_ok(),
            spec_channel_name(s),
            "{s:?}"
        );
    }
}

// ---- membership gossip ------------------------------------------------------------------

/// A decoded membership state is sorted, valid and survives encode and decode; its encoding
/// is canonical (encode ∘ decode ∘ encode = encode).
pub fn check_gossip(body: &[u8]) -> Option<State> {
    let s = State::decode(body).ok()?;
    let count = u32::from_be_bytes(body[..4].try_into().unwrap()) as usize; // ok-unwrap: fuzz harness, not a NIF path; a panic here is a finding
    assert!(s.len() <= count);
    let mut last: Option<&str> = None;
    for e in s.entries() {
        check_spec(&e.spec);
        assert!(
            last.is_none_or(|l| l < e.spec.name.as_str()),
            "sorted, unique"
        );
        last = Some(&e.spec.name);
    }
    let enc = s.encode();
    assert!(enc.len() <= body.len());
    let again = State::decode(&enc).expect("an encoded state decodes");
    assert_eq!(again, s);
    assert_eq!(again.encode(), enc);
    Some(s)
}

/// The CRDT laws on decoded states: merge is commutative, associative and idempotent, and
/// `merge_delta` returns exactly what changed.
pub fn check_merge(a: &State, b: &State, c: &State) {
    let merged = |x: &State, y: &State| {
        let mut m = x.clone();
        m.merge(y);
        m
    };
    let ab = merged(a, b);
    assert_eq!(ab, merged(b, a), "commutative");
    assert_eq!(merged(&ab, c), merged(a, &merged(b, c)), "associative");
    assert!(!ab.clone().merge(a) && !ab.clone().merge(b), "idempotent");
    let mut a2 = a.clone();
    let delta = a2.merge_delta(b);
    assert_eq!(a2, ab);
    for e in delta.entries() {
        assert_ne!(a.get(&e.spec.name), Some(e), "news is new");
        assert_eq!(ab.get(&e.spec.name), Some(e), "news is what was kept");
    }
    for e in ab.entries() {
        if a.get(&e.spec.name) != Some(e) {
            assert_eq!(delta.get(&e.spec.name), Some(e), "every change is news");
        }
    }
}

// ---- data frame target ------------------------------------------------------------------

/// `Target::decode` reads exactly its encoding's bytes, and a data frame of the target and the
/// rest of the body gives both back; pid texts parse back from their own printing.
pub fn check_target(body: &[u8]) {
    if let Some((n, s)) = parse_pid_text(body) {
        assert_eq!(
            parse_pid_text(format!("<0.{n}.{s}>").as_bytes()),
            Some((n, s))
        );
    }
    let mut r = Reader::new(body);
    let Ok(t) = Target::decode(&mut r) else {
        return;
    };
    let used = body.len() - r.remaining();
    let payload = r.rest();
    assert_eq!(t.encoded_len(), used);
    let mut enc = Vec::new();
    t.encode_into(&mut enc);
    assert_eq!(enc, &body[..used]);
    if let Target::Name(n) = &t {
        assert_eq!(Target::name(n).as_ref(), Ok(&t));
    }
    let frame = encode_data_frame(&t, payload, pw::DEFAULT_MAX_FRAME).expect("fits");
    let mut buf = BytesMut::from(&frame[..]);
    let f = FrameDecoder::new(pw::DEFAULT_MAX_FRAME)
        .decode(&mut buf)
        .expect("a data frame decodes")
        .expect("whole");
    assert!(buf.is_empty());
    assert_eq!(f.kind, FrameKind::Data);
    assert_eq!(&f.body[..], body);
    // Too small a limit is refused before anything is built.
    assert!(encode_data_frame(&t, payload, used + payload.len()).is_err());
}

// ---- term rewrite -----------------------------------------------------------------------

/// Nodes of the rewrite rules: 0 and 1 are rewritten into 2 and 3. Node 1's creation is that of
/// the OTP samples in `seeds/etf_samples.txt` (a@127.0.0.1), so their pids match a rule.
const NODES: [(&str, u32); 4] = [
    ("nonode@nohost", 0),
    ("a@127.0.0.1", 0x6b10_31c5),
    ("p@some.host", 0x1234_5678),
    ("b@127.0.0.1", 9),
];

fn node(i: usize) -> NodeId {
    NodeId::new(NODES[i].0, NODES[i].1)
}

/// The rules a flags byte picks: which of the two rules, and of which kinds.
pub fn rules(flags: u8) -> Vec<Rewrite> {
    let kinds = |bits: u8| Kinds {
        pids: bits & 1 != 0,
        refs: bits & 2 != 0,
    };
    let mut out = Vec::new();
    if flags & 0x10 == 0 {
        out.push(Rewrite {
            from: node(0),
            to: node(2),
            kinds: kinds(flags ^ 3),
        });
    }
    if flags & 0x20 == 0 {
        out.push(Rewrite {
            from: node(1),
            to: node(3),
            kinds: kinds((flags >> 2) ^ 3),
        });
    }
    out
}

fn atoms(term: &[u8], start: usize) -> Result<(usize, usize), TermError> {
    let mut n = 0;
    let w = walk(term, start, &[], &mut |_, _| n += 1)?;
    Ok((w.end, n))
}

/// Walks and rewrites of arbitrary terms: a walk ends inside its input, and only its own
/// bytes matter; `rewrite_payload`, `for_each_atom` and `walk` agree on what is a whole term;
/// a rewritten term is a valid term with as many atoms, and rewriting it again by the same
/// rules changes nothing (no rule rewrites into a node another rule rewrites).
pub fn check_term_rewrite(flags: u8, term: &[u8]) {
    let rules = rules(flags);
    let mut payload = Vec::with_capacity(term.len() + 1);
    payload.push(131);
    payload.extend_from_slice(term);
    if let Some(p) = parse_pid(&payload) {
        assert!(p.numbers_at + 8 <= payload.len());
        let at = p.numbers_at;
        assert_eq!(payload[at..at + 4], p.number.to_be_bytes());
        assert_eq!(payload[at + 4..at + 8], p.serial.to_be_bytes());
    }
    let mut seen = 0usize;
    let walked = walk(term, 0, &rules, &mut |_, _| seen += 1);
    let whole = rewrite_payload(&payload, &rules);
    let listed = for_each_atom(&payload, &mut |_, _| {});
    assert_eq!(whole.is_ok(), listed.is_ok());
    match &walked {
        Ok(w) => {
            assert!(w.end <= term.len());
            assert_eq!(whole.is_ok(), w.end == term.len());
            // The bytes after the term do not change the walk.
            let again = walk(&term[..w.end], 0, &rules, &mut |_, _| {}).expect("its own bytes");
            assert_eq!(&again, w);
            if let Some(out) = &w.rewritten {
                assert!(!rules.is_empty());
                let (end, n) = atoms(out, 0).expect("a rewritten term is a term");
                assert_eq!(end, out.len());
                assert_eq!(n, seen, "as many atoms");
                let twice = walk(out, 0, &rules, &mut |_, _| {}).unwrap(); // ok-unwrap: fuzz harness, not a NIF path; a panic here is a finding
                assert_eq!(twice.rewritten, None, "nothing left to rewrite");
            }
        }
        Err(_) => assert!(whole.is_err()),
    }
    if let Ok(out) = whole {
        let w = walked.as_ref().unwrap(); // ok-unwrap: fuzz harness, not a NIF path; a panic here is a finding
        match (&out, &w.rewritten) {
            (std::borrow::Cow::Borrowed(b), None) => assert_eq!(*b, &payload[..]),
            (std::borrow::Cow::Owned(o), Some(r)) => {
                assert_eq!(o[0], 131);
                assert_eq!(&o[1..], &r[..]);
            }
            _ => panic!("rewrite_payload and walk disagree on whether anything changed"),
        }
    }
}

// ---- the receive path: inflate, rewrite, plan in place ------------------------------------

/// Largest inflated term the receive check accepts.
pub const MAX_TERM: usize = 1 << 20;

/// Checks a plan's parts: in order, inside the frame, each plain term after the byte the NIF
/// lends for its version byte; binaries are `BINARY_EXT`s of at least `REFERENCE_MIN` bytes.
fn check_shape(shape: &Shape, data: &[u8], cursor: &mut usize, depth: u32) {
    match shape {
        Shape::Term { start, end } => {
            assert!(*start >= 1 && *start >= *cursor && start < end && *end <= data.len());
            *cursor = *end;
        }
        Shape::Binary { at, len } => {
            assert!(*at >= 5 && at - 5 >= *cursor);
            assert_eq!(data[at - 5], 109);
            assert_eq!(data[at - 4..*at], (*len as u32).to_be_bytes());
            assert!(*len >= REFERENCE_MIN);
            assert!(at + len <= data.len());
            *cursor = at + len;
        }
        Shape::Tuple(parts) => {
            assert!(depth > 0, "tuples only {} deep", pw::MAX_DEPTH);
            assert!(!parts.is_empty() && parts.len() <= MAX_ARITY);
            assert!(parts.iter().any(|p| !matches!(p, Shape::Term { .. })));
            parts
                .iter()
                .for_each(|p| check_shape(p, data, cursor, depth - 1));
        }
    }
}

/// Every plain term of a plan that came from a valid message is one whole term.
fn check_terms_walk(shape: &Shape, data: &[u8]) {
    match shape {
        Shape::Term { start, end } => {
            assert_eq!(
                walk(data, *start, &[], &mut |_, _| {}).map(|w| w.end),
                Ok(*end)
            );
        }
        Shape::Binary { .. } => {}
        Shape::Tuple(parts) => parts.iter().for_each(|p| check_terms_walk(p, data)),
    }
}

/// The receive path of a data frame's payload at `frame[at..]`: `uncompressed_term` inflates
/// within its bound (and a compressed term compressed again inflates to the same), the term is
/// rewritten, and `plan_in_place` plans only within the frame and, for a valid message, only
/// whole terms.
pub fn check_receive(flags: u8, frame: &[u8], at: usize) {
    let payload = &frame[at.min(frame.len())..];
    match uncompressed_term(payload, MAX_TERM) {
        Ok(std::borrow::Cow::Borrowed(t)) => {
            assert!(!pw::is_compressed(payload));
            assert_eq!(t, payload);
        }
        Ok(std::borrow::Cow::Owned(t)) => {
            assert!(pw::is_compressed(payload));
            assert_eq!(t[0], 131);
            assert!(t.len() <= MAX_TERM + 1);
            assert_eq!(
                t.len() - 1,
                u32::from_be_bytes(payload[2..6].try_into().unwrap()) as usize // ok-unwrap: fuzz harness, not a NIF path; a panic here is a finding
            );
            let again = compress(&t[1..]);
            assert_eq!(&*uncompressed_term(&again, MAX_TERM).unwrap(), &t[..]); // ok-unwrap: fuzz harness; what we compressed must inflate
            let _ = rewrite_payload(&t, &rules(flags));
            if t.len() > 1 {
                check_plan(&t, 0);
            }
        }
        Err(_) => assert!(pw::is_compressed(payload)),
    }
    if !pw::is_compressed(payload) {
        check_plan(frame, at);
    }
}

fn check_plan(frame: &[u8], at: usize) {
    let plan = plan_in_place(frame, at);
    let valid = frame.get(at) == Some(&131)
        && walk(frame, at + 1, &[], &mut |_, _| {}).is_ok_and(|w| w.end == frame.len());
    if valid {
        assert!(plan.is_ok(), "a valid message can be planned: {plan:?}");
    }
    if let Ok(shape) = &plan {
        let mut cursor = at + 1;
        check_shape(shape, frame, &mut cursor, pw::MAX_DEPTH);
        assert_eq!(cursor, frame.len(), "the plan covers the message");
        if valid {
            check_terms_walk(shape, frame);
        }
    }
}

/// `term` compressed as `term_to_binary(T, [compressed])` writes it (at zlib's fastest level).
pub fn compress(term: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(term).unwrap(); // ok-unwrap: writing into a Vec cannot fail
    let mut out = vec![131, 80];
    out.extend_from_slice(&(term.len() as u32).to_be_bytes());
    out.extend_from_slice(&e.finish().unwrap()); // ok-unwrap: writing into a Vec cannot fail
    out
}

// ---- overlay (HyParView) ------------------------------------------------------------------

fn spec(name: &str) -> NodeSpec {
    NodeSpec {
        name: name.to_owned(),
        listen_addrs: vec![([127, 0, 0, 1], 10_000).into()],
        channels: vec![],
    }
}

/// The local node of the overlay checks, and the peer whose control connection sends.
pub const OVERLAY_LOCAL: &str = "me@127.0.0.1";
/// See [`OVERLAY_LOCAL`].
pub const OVERLAY_PEER: &str = "peer@127.0.0.1";

/// docs/wire.md's overlay message format, checked independently of partisan_core's codec
/// (node specs go through `NodeSpec::decode`, which the other checks cover).
pub fn spec_overlay_valid(body: &[u8]) -> bool {
    fn sample(r: &mut Reader<'_>) -> Result<(), WireError> {
        let n = r.u16()?;
        if n > 64 {
            return Err(WireError::Invalid("sample"));
        }
        for _ in 0..n {
            NodeSpec::decode(r)?;
        }
        Ok(())
    }
    // A node tag: flag 0, or flag 1 with a u8 length and UTF-8; `needed` refuses flag 0.
    fn node_tag(r: &mut Reader<'_>, needed: bool) -> Result<(), WireError> {
        match r.u8()? {
            0 if !needed => Ok(()),
            1 => {
                let n = r.u8()? as usize;
                std::str::from_utf8(r.bytes(n)?).map_err(|_| WireError::Invalid("utf-8"))?;
                Ok(())
            }
            _ => Err(WireError::Invalid("node tag")),
        }
    }
    fn flag(r: &mut Reader<'_>) -> Result<(), WireError> {
        match r.u8()? {
            0 | 1 => Ok(()),
            _ => Err(WireError::Invalid("flag")),
        }
    }
    let mut r = Reader::new(body);
    let parsed = (|| -> Result<(), WireError> {
        match r.u8()? {
            1 => node_tag(&mut r, false)?,
            2 => {
                r.u32()?;
                NodeSpec::decode(&mut r)?;
                node_tag(&mut r, false)?;
            }
            3 | 4 => {
                flag(&mut r)?;
                node_tag(&mut r, false)?;
            }
            5 => flag(&mut r)?,
            6 => {
                r.u32()?;
                NodeSpec::decode(&mut r)?;
                sample(&mut r)?;
            }
            7 => sample(&mut r)?,
            8 => node_tag(&mut r, true)?,
            // X-BOT: an exchange id, then the nodes named and the flags.
            9 | 11 => {
                r.u64()?;
                NodeSpec::decode(&mut r)?;
                node_tag(&mut r, false)?;
            }
            10 => {
                r.u64()?;
                NodeSpec::decode(&mut r)?;
                NodeSpec::decode(&mut r)?;
            }
            12 | 14 => {
                r.u64()?;
                flag(&mut r)?;
                node_tag(&mut r, false)?;
            }
            13 => {
                r.u64()?;
                flag(&mut r)?;
            }
            _ => return Err(WireError::Invalid("kind")),
        }
        r.finish()
    })();
    parsed.is_ok()
}

/// The overlay codec compiled from partisan_core's source: it accepts what the format allows,
/// and a decoded message encodes to bytes that decode to it again.
pub fn check_overlay_codec(body: &[u8]) {
    let local = spec(OVERLAY_LOCAL);
    let cfg = partisan_core::hyparview::Config::default();
    let mut o = overlay::Overlay::new(&local, cfg.clone(), 1000, t0());
    let mut refused = 0;
    let got = o.decode(body, &mut refused);
    assert_eq!(got.is_ok(), spec_overlay_valid(body), "{got:?}");
    let Ok(got) = got else {
        return;
    };
    assert_eq!(refused, 0, "room for every node");
    let msg = got.expect("room for the subject");
    let enc = o.encode(&msg).expect("every node it names is known");
    let mut fresh = overlay::Overlay::new(&local, cfg, 1000, t0());
    let again = fresh
        .decode(&enc, &mut refused)
        .expect("an encoded message decodes");
    assert_eq!(again.as_ref(), Some(&msg));
    assert_eq!(fresh.encode(&msg).as_deref(), Some(&enc[..]));
}

/// Overlay frames arriving on a control connection of a node in HyParView mode, through the
/// public `control::Node`: each is refused with a protocol error exactly when the format says it
/// is malformed (and nothing panics in HyParView's handling of the rest). The node's directory
/// holds few specs, so that learning from samples prunes and refuses.
pub fn check_overlay_node(bodies: &[&[u8]]) {
    let now = t0();
    let settings = Settings {
        local: spec(OVERLAY_LOCAL),
        incarnation: 1,
        connection_interval: Duration::from_millis(500),
        connection_jitter: Duration::from_millis(100),
        periodic_interval: Duration::from_secs(2),
        gossip_fanout: 8,
        seed: 7,
        membership: Membership::HyParView(partisan_core::hyparview::Config::default()),
        max_members: 6,
        member_name_rate: partisan_core::control::DEFAULT_MEMBER_NAME_RATE,
    };
    let mut node = Node::new(settings, now);
    let conn = 1;
    let admitted = node.admit(conn, &spec(OVERLAY_PEER), 1, CONTROL_CHANNEL, 0, now);
    assert_eq!(admitted.status, AckStatus::Accepted);
    while node.poll_action().is_some() {}
    let mut t = now;
    // Why the node closed the connection, if it did.
    let closes = |node: &mut Node| {
        let mut closed = None;
        while let Some(a) = node.poll_action() {
            if let Action::Close { conn: c, reason } = a {
                if c == conn {
                    closed = Some(reason);
                }
            }
        }
        closed
    };
    for body in bodies {
        node.handle(
            Input::Overlay {
                conn,
                body: Bytes::copy_from_slice(body),
            },
            t,
        );
        let closed = closes(&mut node);
        let refused = closed == Some(partisan_core::control::CloseReason::ProtocolError);
        assert_eq!(refused, !spec_overlay_valid(body), "closed: {closed:?}");
        if closed.is_some() {
            return;
        }
        t += Duration::from_millis(700);
        if node.poll_timeout().is_some_and(|at| at <= t) {
            node.handle_timeout(t);
            if closes(&mut node).is_some() {
                // Idle, or a neighbour no longer: later frames would find no connection.
                return;
            }
        }
    }
}

// ---- broadcast (Plumtree) ---------------------------------------------------------------

/// The module whose tree the broadcast checks feed.
pub const BROADCAST_MODULE: &str = "kv";

/// The Plumtree frame codec: a decoded body re-encodes to the very bytes (no field has a
/// choice of encoding), and a byte less is an error.
pub fn check_broadcast(body: &[u8]) {
    let Ok((module, msg)) = broadcast::decode(body) else {
        return;
    };
    assert_eq!(broadcast::encode(&module, &msg), body);
    assert!(broadcast::decode(&body[..body.len() - 1]).is_err());
}

/// Whether the fuzz targets step around the bugs they found that are not fixed yet (so that
/// they go on looking for others, and `make test` stays green meanwhile): unless the
/// environment variable `PARTISAN_FUZZ_KNOWN_BUGS` is set, in which case they crash on them.
pub fn skip_known_bugs() -> bool {
    static SKIP: OnceLock<bool> = OnceLock::new();
    *SKIP.get_or_init(|| std::env::var_os("PARTISAN_FUZZ_KNOWN_BUGS").is_none())
}

/// Broadcast frames from two neighbours fed to the trees of one node: `received` fails exactly
/// when the codec does, and everything the trees send decodes again.
pub fn check_broadcast_trees(bodies: &[&[u8]]) {
    let now = t0();
    let me: Arc<str> = Arc::from("me@h");
    let peers: [Arc<str>; 2] = [Arc::from("a@h"), Arc::from("b@h")];
    let modules = [BROADCAST_MODULE.to_owned(), "other".to_owned()];
    let mut trees = broadcast::Broadcasts::new(
        me,
        &modules,
        partisan_core::plumtree::Config::default(),
        now,
    );
    peers.iter().for_each(|p| trees.neighbour(p, true, now));
    let mut t = now;
    for (i, body) in bodies.iter().enumerate() {
        check_broadcast(body);
        let decoded = broadcast::decode(body);
        let got = trees.received(&peers[i % 2], body, t);
        match (&decoded, &got) {
            (Ok((m, _)), Ok(known)) => assert_eq!(*known, modules.contains(m)),
            (Err(a), Err(b)) => assert_eq!(a, b),
            _ => panic!("received {got:?} for decode {decoded:?}"),
        }
        t += Duration::from_millis(300);
        trees.handle_timeout(t);
        for out in trees.poll() {
            if let broadcast::Out::Send { body: sent, .. } = out {
                let (m, msg) = broadcast::decode(&sent).expect("what a tree sends decodes");
                assert_eq!(broadcast::encode(&m, &msg), sent);
            }
        }
    }
    if bodies.len() > 1 {
        // A neighbour leaves and the lazy ticks run on.
        trees.neighbour(&peers[0], false, t);
        trees.handle_timeout(t + Duration::from_secs(5));
        let _ = trees.poll();
    }
}
