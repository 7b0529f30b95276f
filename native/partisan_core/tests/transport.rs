//! End-to-end tests of the engine over real loopback sockets, without a VM.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use partisan_core::membership::{ChannelSpec, Compression};
use partisan_core::transport::{
    CloseReason, Config, Delivery, Engine, Event, FrameBuf, Handler, Origin, OutFrame, Queued,
    Resume, SendError, SendMode, LARGE_FRAME_BODY,
};
use partisan_core::wire::{encode_data_frame, encode_data_head, Target};

#[derive(Default)]
struct Recorder {
    delivered: Mutex<Vec<(Target, Vec<u8>)>>,
    events: Mutex<Vec<Event>>,
}

impl Handler for Recorder {
    fn deliver(&self, _: &Origin, target: &Target, payload: bytes::Bytes) -> Delivery {
        self.delivered
            .lock()
            .push((target.clone(), payload.to_vec()));
        Delivery::Delivered
    }
    fn event(&self, event: Event) {
        self.events.lock().push(event);
    }
}

fn config(name: &str) -> Config {
    let mut c = Config::local(name);
    c.connection_interval = Duration::from_millis(100);
    c.connection_jitter = Duration::from_millis(10);
    c.periodic_interval = Duration::from_millis(200);
    c.channels = vec![ChannelSpec {
        name: "data".into(),
        parallelism: 4,
        monotonic: false,
        compression: Compression::Off,
    }];
    c
}

fn start(name: &str) -> (Engine, Arc<Recorder>) {
    let rec = Arc::new(Recorder::default());
    (
        Engine::start(config(name), rec.clone()).expect("engine starts"),
        rec,
    )
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn names(e: &Engine) -> Vec<String> {
    e.members().into_iter().map(|s| s.name).collect()
}

#[test]
fn three_nodes_converge_and_exchange_messages() {
    let (a, _ra) = start("a@127.0.0.1");
    let (b, rb) = start("b@127.0.0.1");
    let (c, _rc) = start("c@127.0.0.1");
    b.join(a.local().clone()).unwrap();
    c.join(a.local().clone()).unwrap();
    let all = vec![
        "a@127.0.0.1".to_string(),
        "b@127.0.0.1".into(),
        "c@127.0.0.1".into(),
    ];
    for e in [&a, &b, &c] {
        wait_until("membership", || names(e) == all);
        wait_until("full mesh", || e.nodes().len() == 2);
    }
    wait_until("data pool", || {
        a.is_fully_connected("b@127.0.0.1") && b.is_fully_connected("a@127.0.0.1")
    });
    // Exactly one connection per (peer, channel, index), seen the same from both ends.
    let ab: Vec<_> = a
        .connections()
        .into_iter()
        .filter(|(n, _, _)| &**n == "b@127.0.0.1")
        .collect();
    assert_eq!(ab.len(), 1 + 1 + 4, "control + default + 4 data: {ab:?}");

    let data = a.channel_id("data").unwrap();
    let peer = a.peer("b@127.0.0.1").unwrap();
    for i in 0..1000u32 {
        let frame = encode_data_frame(
            &Target::Name("sink".into()),
            &i.to_be_bytes(),
            a.max_frame_size(),
        )
        .unwrap();
        a.send(&peer, data, Some(7), frame.into(), SendMode::NoSuspend)
            .unwrap();
    }
    wait_until("1000 messages", || rb.delivered.lock().len() == 1000);
    let got: Vec<u32> = rb
        .delivered
        .lock()
        .iter()
        .map(|(_, p)| u32::from_be_bytes([p[0], p[1], p[2], p[3]]))
        .collect();
    assert_eq!(
        got,
        (0..1000).collect::<Vec<_>>(),
        "one partition key keeps order"
    );
    for e in [&a, &b, &c] {
        e.stop();
    }
}

#[test]
fn leave_is_not_undone_by_stale_gossip() {
    let (a, _) = start("a@127.0.0.1");
    let (b, rb) = start("b@127.0.0.1");
    let (c, _) = start("c@127.0.0.1");
    b.join(a.local().clone()).unwrap();
    c.join(a.local().clone()).unwrap();
    for e in [&a, &b, &c] {
        wait_until("membership", || names(e).len() == 3);
    }
    // Membership can converge before b's connections to c are up; without a nodeup there is
    // no nodedown to look for.
    wait_until("b sees c up", || {
        rb.events
            .lock()
            .iter()
            .any(|e| matches!(e, Event::NodeUp(n) if &**n == "c@127.0.0.1"))
    });
    a.leave("c@127.0.0.1");
    for e in [&a, &b] {
        wait_until("c removed", || {
            !names(e).contains(&"c@127.0.0.1".to_string())
        });
    }
    wait_until("c alone", || names(&c) == vec!["c@127.0.0.1".to_string()]);
    // Several gossip periods later, c is still gone.
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        names(&a),
        vec!["a@127.0.0.1".to_string(), "b@127.0.0.1".into()]
    );
    assert_eq!(
        names(&b),
        vec!["a@127.0.0.1".to_string(), "b@127.0.0.1".into()]
    );
    let events = rb.events.lock().clone();
    assert!(
        events
            .iter()
            // Removed (its gossip came first) or connection_closed (one of its sockets closed
            // or was reset first): both are how a leaving node goes down.
            .any(|e| matches!(e, Event::NodeDown(n, CloseReason::Removed | CloseReason::PeerClosed) if &**n == "c@127.0.0.1")),
        "{events:?}"
    );
    // c may come back by joining again.
    c.join(b.local().clone()).unwrap();
    wait_until("c back", || names(&a).len() == 3);
    for e in [&a, &b, &c] {
        e.stop();
    }
}

#[test]
fn self_join_is_refused_and_oversized_frames_are_refused() {
    let (a, _) = start("a@127.0.0.1");
    assert!(a.join(a.local().clone()).is_err());
    let big = vec![0u8; 2048];
    assert!(encode_data_frame(&Target::Name("x".into()), &big, 1024).is_err());
    a.stop();
    a.stop();
}

#[test]
fn restart_with_same_name_rejoins() {
    let (a, ra) = start("a@127.0.0.1");
    let (b, _) = start("b@127.0.0.1");
    b.join(a.local().clone()).unwrap();
    wait_until("up", || a.nodes().len() == 1);
    b.stop();
    wait_until("down event", || {
        ra.events
            .lock()
            .iter()
            .any(|e| matches!(e, Event::NodeDown(n, CloseReason::PeerClosed | CloseReason::Io) if &**n == "b@127.0.0.1"))
    });
    wait_until("b not in nodes", || a.nodes().is_empty());
    let mut cfg = config("b@127.0.0.1");
    cfg.incarnation = 2;
    let b2 = Engine::start(cfg, Arc::new(Recorder::default())).unwrap();
    b2.join(a.local().clone()).unwrap();
    wait_until("b back", || {
        a.nodes().len() == 1 && a.is_fully_connected("b@127.0.0.1")
    });
    a.stop();
    b2.stop();
}

/// A peer that completes handshakes by hand and then never reads: the queue must fill, senders
/// must be refused (`nosuspend`) or suspended, and suspended senders resumed when it closes.
#[test]
fn back_pressure_suspends_and_refuses_when_a_peer_stops_reading() {
    use partisan_core::membership::NodeSpec;
    use partisan_core::wire::{
        self, encode_frame, AckStatus, AuthChallenge, AuthInit, FrameDecoder, FrameKind, HelloAck,
        NodeId, PidNaming, Preamble, Side,
    };
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicBool, Ordering};

    let secret = Config::local("x").secret;

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let held2 = held.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let mut s = stream.unwrap();
            let mut pre = [0u8; 5];
            s.read_exact(&mut pre).unwrap();
            s.write_all(&Preamble::ours()).unwrap();
            let mut buf = bytes::BytesMut::new();
            let dec = FrameDecoder::new(1 << 16);
            let mut chunk = [0u8; 4096];
            // Authenticate as the engine's test secret says, then take the hello.
            loop {
                let Some(frame) = dec.decode(&mut buf).unwrap() else {
                    let n = s.read(&mut chunk).unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                    continue;
                };
                match frame.kind {
                    FrameKind::AuthInit => {
                        let init = AuthInit::decode(&frame.body).unwrap();
                        let mine = wire::nonce();
                        let proof = wire::prove(&secret, Side::Acceptor, &init.nonce, &mine);
                        let c = AuthChallenge { nonce: mine, proof };
                        s.write_all(&encode_frame(FrameKind::AuthChallenge, &c.encode()))
                            .unwrap();
                    }
                    FrameKind::Hello => break,
                    _ => {}
                }
            }
            let ack = HelloAck {
                status: AckStatus::Accepted,
                name: "mute@127.0.0.1".into(),
                incarnation: 1,
                pids: PidNaming {
                    vm: NodeId::new("mute@127.0.0.1", 1),
                    creation: 1,
                },
                capabilities: 0,
            };
            s.write_all(&encode_frame(FrameKind::HelloAck, &ack.encode()))
                .unwrap();
            held2.lock().push(s); // keep it open, never read again
        }
    });

    let mut cfg = config("a@127.0.0.1");
    cfg.send_queue_limit = 256 * 1024;
    cfg.channels.clear();
    let a = Engine::start(cfg, Arc::new(Recorder::default())).unwrap();
    let spec = NodeSpec {
        name: "mute@127.0.0.1".into(),
        listen_addrs: vec![addr],
        channels: vec![],
    };
    a.join(spec).unwrap();
    wait_until("connected", || a.is_fully_connected("mute@127.0.0.1"));
    let peer = a.peer("mute@127.0.0.1").unwrap();
    let ch = a.channel_id("undefined").unwrap();
    let frame = encode_data_frame(&Target::Name("x".into()), &[7u8; 65536], 1 << 20).unwrap();

    let mut sent = 0usize;
    let refused = loop {
        match a.send(&peer, ch, None, frame.clone().into(), SendMode::NoSuspend) {
            Ok(_) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent < 10_000, "the queue never filled");
        if sent.is_multiple_of(64) {
            std::thread::sleep(Duration::from_millis(5)); // let the writer fill the socket buffers
        }
    };
    assert_eq!(refused, SendError::Busy);

    let resumed = Arc::new(AtomicBool::new(false));
    let r = resumed.clone();
    let mut resume = move || {
        let r = r.clone();
        Resume::new(move || r.store(true, Ordering::SeqCst))
    };
    assert_eq!(
        a.send(
            &peer,
            ch,
            None,
            frame.clone().into(),
            SendMode::Suspend(&mut resume)
        ),
        Ok(Queued::Suspended)
    );
    assert!(!resumed.load(Ordering::SeqCst), "nothing drained yet");
    a.kill_connections(&["mute@127.0.0.1"]);
    wait_until("resumed on close", || resumed.load(Ordering::SeqCst));
    a.stop();
    drop(held);
}

/// A member that removed a node can add it back (the removed node did not ask to rejoin): its
/// gossip knows the node left, so the node takes it, unlike stale gossip that thinks it alive.
#[test]
fn a_removed_node_can_be_re_added_by_a_member() {
    let (a, _) = start("a@127.0.0.1");
    let (b, _) = start("b@127.0.0.1");
    b.join(a.local().clone()).unwrap();
    wait_until("joined", || names(&a).len() == 2 && names(&b).len() == 2);
    a.leave("b@127.0.0.1");
    wait_until("b alone", || names(&b) == vec!["b@127.0.0.1".to_string()]);
    wait_until("a alone", || names(&a) == vec!["a@127.0.0.1".to_string()]);
    a.join(b.local().clone()).unwrap();
    let both = vec!["a@127.0.0.1".to_string(), "b@127.0.0.1".into()];
    wait_until("b re-added", || names(&a) == both && names(&b) == both);
    a.stop();
    b.stop();
}

/// Lends plain vectors for large frames and records which messages came through them.
#[derive(Default)]
struct Lender {
    delivered: Mutex<Vec<(Vec<u8>, bool)>>,
}

struct VecBuf(Vec<u8>);

impl FrameBuf for VecBuf {
    fn as_slice(&self) -> &[u8] {
        &self.0
    }
    fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl Handler for Lender {
    fn deliver(&self, _: &Origin, _: &Target, payload: bytes::Bytes) -> Delivery {
        self.delivered.lock().push((payload.to_vec(), false));
        Delivery::Delivered
    }
    fn frame_buf(&self, len: usize) -> Option<Box<dyn FrameBuf>> {
        Some(Box::new(VecBuf(vec![0; len])))
    }
    fn deliver_buf(&self, _: &Origin, _: &Target, buf: Box<dyn FrameBuf>, at: usize) -> Delivery {
        self.delivered
            .lock()
            .push((buf.as_slice()[at..].to_vec(), true));
        Delivery::Delivered
    }
    fn event(&self, _: Event) {}
}

/// Large frames are read into memory the handler lends, small ones are not, and a stream that
/// mixes them (sent as one buffer or as head and parts) arrives intact and in order.
#[test]
fn large_frames_are_read_into_lent_memory_in_order() {
    mixed_stream_arrives_intact("lend", Duration::ZERO).stop();
}

/// With pauses between sends the writer task sleeps, so large frames are written on the
/// sender's own thread, the socket taking some of them only in part: the stream is still intact
/// and in order.
#[test]
fn large_frames_written_by_the_sender_arrive_intact() {
    let a = mixed_stream_arrives_intact("direct", Duration::from_millis(3));
    let written = stat(&a, "written_directly");
    assert!(
        written > 0,
        "some frames were written by the sender ({written})"
    );
    a.stop();
}

fn stat(e: &Engine, name: &str) -> u64 {
    e.stats().0.iter().find(|(k, _)| *k == name).unwrap().1
}

/// Sends a stream of small and large messages from one engine to another, `pause` apart, and
/// checks what arrives; returns the sending engine.
fn mixed_stream_arrives_intact(prefix: &str, pause: Duration) -> Engine {
    let (a_name, b_name) = (
        format!("{prefix}_a@127.0.0.1"),
        format!("{prefix}_b@127.0.0.1"),
    );
    let (a, _ra) = start(&a_name);
    let lender = Arc::new(Lender::default());
    let b = Engine::start(config(&b_name), lender.clone()).expect("engine starts");
    b.join(a.local().clone()).unwrap();
    wait_until("data pool", || {
        a.is_fully_connected(&b_name) && b.is_fully_connected(&a_name)
    });
    let peer = a.peer(&b_name).unwrap();
    let data = a.channel_id("data").unwrap();
    let target = Target::Name("sink".into());
    let sizes = [
        10,
        LARGE_FRAME_BODY,
        3,
        1 << 20,
        LARGE_FRAME_BODY - 20,
        5 << 20,
        1,
        200_000,
    ];
    let payloads: Vec<Vec<u8>> = (0..64)
        .map(|i| {
            let n = sizes[i % sizes.len()];
            (0..n).map(|j| (i * 31 + j * 7) as u8).collect()
        })
        .collect();
    for (i, p) in payloads.iter().enumerate() {
        let frame = if i % 3 == 0 && p.len() > 100 {
            // Head with the first bytes, then the rest as separate parts.
            let mut head = encode_data_head(&target, p.len(), a.max_frame_size(), 50).unwrap();
            head.extend_from_slice(&p[..50]);
            let rest = bytes::Bytes::copy_from_slice(&p[50..]);
            let mid = rest.len() / 2;
            OutFrame {
                head: head.into(),
                body: vec![rest.slice(..mid), rest.slice(mid..)],
            }
        } else {
            encode_data_frame(&target, p, a.max_frame_size())
                .unwrap()
                .into()
        };
        a.send(
            &peer,
            data,
            Some(1),
            frame,
            SendMode::Suspend(&mut || Resume::new(|| {})),
        )
        .unwrap();
        // Every other pause is skipped, so frames also meet a busy writer or a full socket.
        if i % 2 == 0 {
            std::thread::sleep(pause);
        }
    }
    wait_until("all delivered", || {
        lender.delivered.lock().len() == payloads.len()
    });
    let got = lender.delivered.lock();
    for (i, (p, lent)) in got.iter().enumerate() {
        assert_eq!(p, &payloads[i], "message {i} intact and in order");
        let target_len = 1 + 1 + 4; // tag, length, "sink"
        assert_eq!(
            *lent,
            p.len() + target_len >= LARGE_FRAME_BODY,
            "message {i} of {} bytes",
            p.len()
        );
    }
    b.stop();
    a
}

#[test]
fn nodes_with_different_secrets_never_connect() {
    let rec_a = Arc::new(Recorder::default());
    let mut ca = config("auth_a@127.0.0.1");
    ca.secret = Arc::from(&b"one secret"[..]);
    let a = Engine::start(ca, rec_a.clone()).unwrap();
    let mut cb = config("auth_b@127.0.0.1");
    cb.secret = Arc::from(&b"another secret"[..]);
    let b = Engine::start(cb, Arc::new(Recorder::default())).unwrap();
    b.join(a.local().clone()).unwrap();
    // The dialer finds that a does not prove its secret and gives up before saying anything;
    // a sees a handshake that ended unfinished.
    wait_until("the failed authentication", || {
        stat(&b, "auth_failures") > 0 && stat(&a, "handshake_failures") > 0
    });
    // Nothing of b reached a: no peer, no member, no connection, no event but the failure.
    assert_eq!(names(&a), vec!["auth_a@127.0.0.1".to_owned()]);
    assert!(a.connections().is_empty() && b.connections().is_empty());
    assert!(a.peer("auth_b@127.0.0.1").is_none());
    let events = rec_a.events.lock().clone();
    assert!(
        events.iter().all(|e| matches!(
            e,
            Event::AuthFailed {
                as_dialer: false,
                ..
            }
        )),
        "{events:?}"
    );
    a.stop();
    b.stop();
}

#[test]
fn a_stranger_speaking_the_old_handshake_learns_nothing() {
    use partisan_core::wire::{
        encode_frame, FrameKind, Hello, NodeId, PidNaming, Preamble, CAPABILITIES,
    };
    use std::io::{Read, Write};
    let (a, rec) = start("auth_c@127.0.0.1");
    let hello = Hello {
        spec: partisan_core::membership::NodeSpec {
            name: "evil@127.0.0.1".into(),
            listen_addrs: vec![],
            channels: vec![],
        },
        incarnation: u64::MAX,
        pids: PidNaming {
            vm: NodeId::new("evil@127.0.0.1", 1),
            creation: 1,
        },
        channel: "partisan_membership".into(),
        index: 0,
        capabilities: CAPABILITIES,
    };
    let mut s = std::net::TcpStream::connect(a.listen_addrs()[0]).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = Preamble::ours().to_vec();
    out.extend_from_slice(&encode_frame(FrameKind::Hello, &hello.encode()));
    s.write_all(&out).unwrap();
    // The node answers with its preamble only, then closes: no name, no incarnation.
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert_eq!(got, Preamble::ours().to_vec());
    wait_until("the refused handshake counted", || {
        stat(&a, "handshake_failures") > 0
    });
    assert!(a.peer("evil@127.0.0.1").is_none());
    assert!(rec.events.lock().is_empty());
    a.stop();
}

#[test]
fn half_open_handshakes_beyond_the_limit_are_closed_at_once() {
    use std::io::Read;
    let mut c = config("limit_a@127.0.0.1");
    c.handshake_limit = 4;
    let a = Engine::start(c, Arc::new(Recorder::default())).unwrap();
    // Four silent connections take every permit; the next ones are closed at once.
    let silent: Vec<_> = (0..4)
        .map(|_| std::net::TcpStream::connect(a.listen_addrs()[0]).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = std::net::TcpStream::connect(a.listen_addrs()[0]).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(
        extra.read(&mut buf).unwrap_or(0),
        0,
        "closed without a byte"
    );
    wait_until("the refusal counted", || {
        stat(&a, "handshakes_over_limit") >= 1
    });
    // A legitimate peer still gets in once the silent ones are gone.
    drop(silent);
    let (b, _) = start("limit_b@127.0.0.1");
    b.join(a.local().clone()).unwrap();
    wait_until("b connected", || a.is_connected("limit_b@127.0.0.1", None));
    a.stop();
    b.stop();
}

/// A TCP relay to `to` that can go silent: it then swallows the bytes of both directions but
/// keeps both sockets open, as a peer whose machine froze does.
struct Relay {
    addr: std::net::SocketAddr,
    silent: Arc<std::sync::atomic::AtomicBool>,
}

fn relay(to: std::net::SocketAddr) -> Relay {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    let listener = TcpListener::bind("127.0.0.1:0").expect("relay binds");
    let addr = listener.local_addr().expect("relay address");
    let silent = Arc::new(AtomicBool::new(false));
    let quiet = silent.clone();
    let pipe = |mut from: TcpStream, mut to: TcpStream, silent: Arc<AtomicBool>| {
        std::thread::spawn(move || {
            let mut buf = [0u8; 16384];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 || (!silent.load(SeqCst) && to.write_all(&buf[..n]).is_err()) {
                    break;
                }
            }
        });
    };
    std::thread::spawn(move || {
        for inbound in listener.incoming() {
            let Ok(a) = inbound else { break };
            let Ok(b) = TcpStream::connect(to) else {
                continue;
            };
            let (a2, b2) = (a.try_clone().expect("clone"), b.try_clone().expect("clone"));
            pipe(a, b, quiet.clone());
            pipe(b2, a2, quiet.clone());
        }
    });
    Relay { addr, silent }
}

#[test]
fn pings_keep_an_idle_connection_and_close_a_silent_one() {
    use std::sync::atomic::Ordering::SeqCst;
    let ping = partisan_core::control::PingConfig {
        enabled: true,
        idle_timeout: Duration::from_millis(300),
        timeout: Duration::from_millis(200),
        max_attempts: 2,
    };
    let engine = |name: &str| {
        let mut c = config(name);
        c.ping = ping.clone();
        Engine::start(c, Arc::new(Recorder::default())).expect("engine starts")
    };
    let a = engine("a@127.0.0.1");
    let b = engine("b@127.0.0.1");
    // b reaches a through the relay first (a's own gossip then gives b a's real address).
    let r = relay(a.listen_addrs()[0]);
    let mut spec = a.local().clone();
    spec.listen_addrs = vec![r.addr];
    b.join(spec).unwrap();
    wait_until("b sees a up", || b.nodes().len() == 1);
    // Idle far past idle_timeout: every ping is answered, nothing is closed.
    std::thread::sleep(ping.detection_bound() * 3);
    let timeouts = || stat(&a, "ping_timeouts") + stat(&b, "ping_timeouts");
    assert_eq!(timeouts(), 0, "an idle but live connection was closed");
    // The relayed connection goes silent: closed by ping, not before idle_timeout.
    let silent_at = Instant::now();
    r.silent.store(true, SeqCst);
    wait_until("a ping timeout", || timeouts() > 0);
    let took = silent_at.elapsed();
    assert!(
        took >= ping.idle_timeout && took <= ping.detection_bound() + Duration::from_secs(1),
        "closed after {took:?}, bound {:?}",
        ping.detection_bound()
    );
    a.stop();
    b.stop();
}
