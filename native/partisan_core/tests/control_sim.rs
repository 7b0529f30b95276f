//! Deterministic simulation of the control core: many nodes, each the real `control::Node` with
//! a `Liveness` per connection, driven as the tokio transport drives them, over a simulated
//! network with virtual time, delays, lost dials, connection resets, partitions, frozen (silent)
//! nodes, restarts and leaves. Connections are reliable and ordered while they last, as TCP is.
//!
//! Checked at every step: a peer reported up has a connection installed on the control and the
//! default channel (connected implies sendable), ups and downs alternate, a left node is never
//! a member again, and a restarted node's old connections go the moment its new life is
//! installed. Checked once the dust settles: every live node has the same members, and every
//! pair of them exactly one connection per (channel, index), the same one at both ends. A
//! frozen node is detected by every peer within the `connection_ping` bound.
//!
//! `SIM_NODES` and `SIM_SEED` override the size and the seed. `make test` runs 300 nodes
//! (about 10 s); `make sim` runs 1,000 (minutes: a full mesh of n nodes has n² connections,
//! and a joiner's whole state goes to each of them). A failure prints the seed and the last
//! events.

use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use partisan_core::control::{
    Action, ConnId, Input, Liveness, Membership, Node, PingConfig, Settings, SlotKey, Verdict,
    CONTROL_CHANNEL, DEFAULT_CHANNEL,
};
use partisan_core::hyparview;
use partisan_core::membership::{ChannelSpec, Compression, NodeSpec, State};
use partisan_core::wire::AckStatus;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

type Host = usize;
type LinkId = u64;

const MS: Duration = Duration::from_millis(1);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// What the network does.
#[derive(Clone)]
struct Net {
    /// One-way delay, uniform in this range (ms).
    delay: (u64, u64),
    /// Probability that a dial is lost (it fails after `dial_timeout`).
    dial_loss: f64,
    dial_timeout: Duration,
    /// Probability that a frame resets its connection instead of arriving.
    reset: f64,
}

#[derive(Debug, Clone)]
enum Frame {
    Gossip(Arc<State>),
    Overlay(Vec<u8>),
    Ping,
    Pong,
}

#[derive(Debug)]
enum Ev {
    Command(Host, Input),
    Timer(Host, u32),
    Ping(Host, u32, ConnId),
    DialArrives {
        to: Host,
        from: Host,
        from_life: u32,
        slot: SlotKey,
        incarnation: u64,
    },
    AckArrives {
        to: Host,
        life: u32,
        slot: SlotKey,
        name: String,
        status: AckStatus,
        incarnation: u64,
        link: Option<LinkId>,
    },
    DialFails(Host, u32, SlotKey),
    Frame(LinkId, usize, Frame),
    Fin(LinkId, usize),
    Freeze(Host, bool),
    Partition(Vec<u8>),
    Restart(Host, Host),
}

/// An event due at `at`; `seq` keeps events of the same time in the order they were made.
struct Scheduled {
    at: Duration,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    /// Reversed, so that the heap's top is the earliest event.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Width of a slot of the far queue.
const SLOT: Duration = Duration::from_millis(100);

fn slot_of(at: Duration) -> u64 {
    (at.as_nanos() / SLOT.as_nanos()) as u64
}

fn slot_start(slot: u64) -> Duration {
    SLOT * slot as u32
}

/// One end of a link: the node's connection id and its ping state.
struct End {
    host: Host,
    life: u32,
    conn: ConnId,
    liveness: Liveness,
    ping_at: Option<Instant>,
}

struct Link {
    /// The dialer (side 0) and the acceptor (side 1).
    hosts: [Host; 2],
    ends: [Option<End>; 2],
    /// Delivery time of the last frame sent each way, so frames arrive in order.
    last: [Duration; 2],
}

struct Machine {
    name: Arc<str>,
    spec: NodeSpec,
    node: Node,
    life: u32,
    frozen: bool,
    /// Events that reached the machine while it was frozen, in order.
    held: Vec<Ev>,
    next_conn: ConnId,
    /// The driver's view, as the transport keeps it: routes and up peers.
    routes: BTreeMap<SlotKey, ConnId>,
    route_of: HashMap<ConnId, SlotKey>,
    up: BTreeMap<Arc<str>, u64>,
    /// Open connection ends of the current life: conn -> (link, side).
    conns: HashMap<ConnId, (LinkId, usize)>,
    timer_at: Option<Instant>,
}

struct Sim {
    seed: u64,
    rng: SmallRng,
    t0: Instant,
    now: Duration,
    seq: u64,
    /// Events of the next two slots, in time order; later ones wait in `far`, by slot, so
    /// that the heap stays small (most far events are ping deadlines).
    queue: BinaryHeap<Scheduled>,
    far: BTreeMap<u64, Vec<Scheduled>>,
    machines: Vec<Machine>,
    links: HashMap<LinkId, Link>,
    next_link: LinkId,
    net: Net,
    ping: PingConfig,
    channels: Vec<ChannelSpec>,
    side: Vec<u8>,
    trace: VecDeque<String>,
    /// (name, incarnation) of lives that left or were removed, and which nodes heard of it.
    left: Vec<(String, u64)>,
    knows_left: BTreeSet<(Host, usize)>,
    /// Nodes frozen at a time; each peer's detection time of them.
    frozen_at: HashMap<Host, Duration>,
    detected: HashMap<(Host, Host), Duration>,
    events_run: u64,
    membership: Membership,
}

fn spec_of(i: Host, channels: &[ChannelSpec]) -> NodeSpec {
    NodeSpec {
        name: format!("n{i:05}@10.{}.{}.1", i / 256, i % 256),
        listen_addrs: vec![SocketAddr::from((
            [10, (i / 256) as u8, (i % 256) as u8, 1],
            9090,
        ))],
        channels: channels.to_vec(),
    }
}

impl Sim {
    fn new(seed: u64, n: usize, net: Net, ping: PingConfig, channels: Vec<ChannelSpec>) -> Sim {
        Sim::with_membership(seed, n, net, ping, channels, Membership::FullMesh)
    }

    fn with_membership(
        seed: u64,
        n: usize,
        net: Net,
        ping: PingConfig,
        channels: Vec<ChannelSpec>,
        membership: Membership,
    ) -> Sim {
        let t0 = Instant::now();
        let mut sim = Sim {
            seed,
            rng: SmallRng::seed_from_u64(seed),
            t0,
            now: Duration::ZERO,
            seq: 0,
            queue: BinaryHeap::new(),
            far: BTreeMap::new(),
            machines: Vec::new(),
            links: HashMap::new(),
            next_link: 1,
            net,
            ping,
            channels,
            side: vec![0; n],
            trace: VecDeque::new(),
            left: Vec::new(),
            knows_left: BTreeSet::new(),
            frozen_at: HashMap::new(),
            detected: HashMap::new(),
            events_run: 0,
            membership,
        };
        for i in 0..n {
            let m = sim.machine(i, 1, 1_000_000 + i as u64);
            sim.machines.push(m);
            sim.pump(i);
        }
        sim
    }

    fn machine(&self, i: Host, life: u32, incarnation: u64) -> Machine {
        let spec = spec_of(i, &self.channels);
        let node = Node::new(
            Settings {
                local: spec.clone(),
                incarnation,
                connection_interval: ms(500),
                connection_jitter: ms(200),
                periodic_interval: ms(2_000),
                gossip_fanout: 8,
                seed: self.seed ^ (i as u64) << 20 ^ life as u64,
                membership: self.membership.clone(),
                max_members: partisan_core::control::DEFAULT_MAX_MEMBERS,
                member_name_rate: partisan_core::control::DEFAULT_MEMBER_NAME_RATE,
            },
            self.t0 + self.now,
        );
        Machine {
            name: Arc::from(spec.name.as_str()),
            spec: node.local().clone(),
            node,
            life,
            frozen: false,
            held: Vec::new(),
            next_conn: 1,
            routes: BTreeMap::new(),
            route_of: HashMap::new(),
            up: BTreeMap::new(),
            conns: HashMap::new(),
            timer_at: None,
        }
    }

    fn at(&self) -> Instant {
        self.t0 + self.now
    }

    fn schedule(&mut self, after: Duration, ev: Ev) {
        self.seq += 1;
        let at = self.now + after;
        let e = Scheduled {
            at,
            seq: self.seq,
            ev,
        };
        let slot = slot_of(at);
        if slot > slot_of(self.now) + 1 {
            self.far.entry(slot).or_default().push(e);
        } else {
            self.queue.push(e);
        }
    }

    /// The next event, if it is due by `end`.
    fn next_event(&mut self, end: Duration) -> Option<Scheduled> {
        loop {
            let limit = self.queue.peek().map_or(Duration::MAX, |e| e.at);
            match self.far.first_key_value() {
                Some((&slot, _)) if slot_start(slot) <= limit => {
                    let (_, batch) = self.far.pop_first()?;
                    self.queue.extend(batch);
                }
                _ => break,
            }
        }
        if self.queue.peek()?.at > end {
            return None;
        }
        self.queue.pop()
    }

    fn delay(&mut self) -> Duration {
        let (lo, hi) = self.net.delay;
        Duration::from_micros(self.rng.gen_range(lo * 1000..=hi * 1000))
    }

    fn cut(&self, a: Host, b: Host) -> bool {
        self.side[a] != self.side[b]
    }

    /// The machine an event happens on, if it is one that waits while the machine is frozen.
    fn target(&self, ev: &Ev) -> Option<Host> {
        match ev {
            Ev::Command(h, _) | Ev::Timer(h, _) | Ev::Ping(h, _, _) | Ev::DialFails(h, _, _) => {
                Some(*h)
            }
            Ev::AckArrives { to, .. } => Some(*to),
            Ev::Frame(link, side, _) | Ev::Fin(link, side) => {
                self.links.get(link).map(|l| l.hosts[*side])
            }
            _ => None,
        }
    }

    fn note(&mut self, what: String) {
        if self.trace.len() == 400 {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("{:>10.3?} {what}", self.now));
    }

    fn fail(&self, what: &str) -> ! {
        let trace: Vec<&String> = self.trace.iter().collect();
        panic!(
            "seed {:#x}, at {:?} after {} events: {what}\nlast events:\n{}",
            self.seed,
            self.now,
            self.events_run,
            trace
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    // ---- the driver -----------------------------------------------------------------------

    /// Carries out the actions of machine `h` in order, checking the invariants as it goes.
    fn pump(&mut self, h: Host) {
        while let Some(action) = self.machines[h].node.poll_action() {
            self.carry_out(h, action);
        }
        let due = self.machines[h].node.poll_timeout();
        let m = &mut self.machines[h];
        if let Some(at) = due {
            if m.timer_at.is_none_or(|t| at < t) {
                m.timer_at = Some(at);
                let life = m.life;
                let after = at.saturating_duration_since(self.t0 + self.now);
                self.schedule(after, Ev::Timer(h, life));
            }
        }
    }

    fn carry_out(&mut self, h: Host, action: Action) {
        match action {
            Action::Dial {
                slot, incarnation, ..
            } => {
                let to = self.host_of(&slot.peer);
                let life = self.machines[h].life;
                let unreachable = to.is_none_or(|to| self.cut(h, to) || self.machines[to].frozen);
                if unreachable || self.rng.gen_bool(self.net.dial_loss) {
                    let t = self.net.dial_timeout;
                    self.schedule(t, Ev::DialFails(h, life, slot));
                } else if let Some(to) = to {
                    let d = self.delay();
                    self.schedule(
                        d,
                        Ev::DialArrives {
                            to,
                            from: h,
                            from_life: life,
                            slot,
                            incarnation,
                        },
                    );
                }
            }
            Action::Install { conn, slot } => {
                if !self.machines[h].conns.contains_key(&conn) {
                    let name = self.machines[h].name.clone();
                    self.fail(&format!("{name} installs unknown conn {conn}"));
                }
                let m = &mut self.machines[h];
                if let Some(old) = m.routes.insert(slot.clone(), conn) {
                    m.route_of.remove(&old);
                }
                m.route_of.insert(conn, slot);
            }
            Action::Close { conn, reason } => {
                let m = &mut self.machines[h];
                if let Some(slot) = m.route_of.remove(&conn) {
                    m.routes.remove(&slot);
                    // Connected implies sendable: a peer that is up keeps both routes.
                    if m.up.contains_key(&slot.peer) && !self.routable(h, &slot.peer) {
                        let name = self.machines[h].name.clone();
                        self.fail(&format!(
                            "{name}: {} is up but not sendable after closing {conn} ({reason})",
                            slot.peer
                        ));
                    }
                }
                self.drop_end(h, conn, true);
                // The reader reports the close it caused, as the transport's does; the core
                // has forgotten the connection already.
                self.machines[h]
                    .node
                    .handle(Input::Closed { conn, reason }, self.t0 + self.now);
            }
            Action::Gossip { conn, state } => self.send(h, conn, Frame::Gossip(state)),
            Action::Overlay { conn, body } => self.send(h, conn, Frame::Overlay(body)),
            Action::Up { peer, generation } => {
                let name = self.machines[h].name.clone();
                if !self.routable(h, &peer) {
                    self.fail(&format!("{name}: {peer} up before it is sendable"));
                }
                if self.machines[h]
                    .up
                    .insert(peer.clone(), generation)
                    .is_some()
                {
                    self.fail(&format!("{name}: {peer} up twice"));
                }
                self.note(format!("{name} up {peer} #{generation}"));
            }
            Action::Down { peer, reason } => {
                let name = self.machines[h].name.clone();
                if self.machines[h].up.remove(&peer).is_none() {
                    self.fail(&format!("{name}: {peer} down while not up"));
                }
                self.note(format!("{name} down {peer} {reason}"));
                if let Some(p) = self.host_of(&peer) {
                    if let Some(&t) = self.frozen_at.get(&p) {
                        self.detected.entry((h, p)).or_insert(self.now - t);
                    }
                }
            }
            Action::Members(_) => self.check_members_of_left(h),
            Action::Left => {
                let name = self.machines[h].name.clone();
                self.note(format!("{name} left"));
            }
            Action::Forget(peer) => {
                let m = &mut self.machines[h];
                let from = SlotKey {
                    peer: peer.clone(),
                    channel: 0,
                    index: 0,
                };
                let gone: Vec<SlotKey> = m
                    .routes
                    .range(from..)
                    .take_while(|(k, _)| k.peer == peer)
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in gone {
                    if let Some(c) = m.routes.remove(&k) {
                        m.route_of.remove(&c);
                    }
                }
            }
        }
    }

    fn routable(&self, h: Host, peer: &Arc<str>) -> bool {
        let m = &self.machines[h];
        let has = |ch: usize| {
            m.routes
                .range(
                    SlotKey {
                        peer: peer.clone(),
                        channel: ch,
                        index: 0,
                    }..,
                )
                .next()
                .is_some_and(|(k, _)| k.peer == *peer && k.channel == ch)
        };
        has(m.node.control_channel()) && has(m.node.default_channel())
    }

    fn host_of(&self, name: &str) -> Option<Host> {
        let i: usize = name.get(1..6)?.parse().ok()?;
        (i < self.machines.len()).then_some(i)
    }

    /// Sends a frame on a connection end; it arrives in order unless the link is cut.
    fn send(&mut self, h: Host, conn: ConnId, frame: Frame) {
        let Some(&(link, side)) = self.machines[h].conns.get(&conn) else {
            return;
        };
        let d = self.delay();
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        let at = (self.now + d).max(l.last[side]);
        l.last[side] = at;
        let after = at - self.now;
        self.schedule(after, Ev::Frame(link, 1 - side, frame));
    }

    /// Forgets a connection end; tells the other end with a FIN when `fin`.
    fn drop_end(&mut self, h: Host, conn: ConnId, fin: bool) {
        let Some((link, side)) = self.machines[h].conns.remove(&conn) else {
            return;
        };
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        l.ends[side] = None;
        if l.ends[1 - side].is_none() {
            self.links.remove(&link);
        } else if fin {
            let d = self.delay();
            let l = self.links.get_mut(&link).expect("link");
            let at = (self.now + d).max(l.last[side]);
            l.last[side] = at;
            let after = at - self.now;
            self.schedule(after, Ev::Fin(link, 1 - side));
        }
    }

    fn open_end(&mut self, h: Host, link: LinkId, side: usize) -> ConnId {
        let now = self.at();
        let m = &mut self.machines[h];
        let conn = m.next_conn;
        m.next_conn += 1;
        m.conns.insert(conn, (link, side));
        let l = self.links.get_mut(&link).expect("link");
        l.ends[side] = Some(End {
            host: h,
            life: m.life,
            conn,
            liveness: Liveness::new(self.ping.clone(), now),
            ping_at: None,
        });
        conn
    }

    fn arm_ping(&mut self, link: LinkId, side: usize) {
        let Some(end) = self
            .links
            .get_mut(&link)
            .and_then(|l| l.ends[side].as_mut())
        else {
            return;
        };
        let Some(at) = end.liveness.deadline() else {
            return;
        };
        if end.ping_at.is_some_and(|t| t <= at) {
            return;
        }
        end.ping_at = Some(at);
        let (h, life, conn) = (end.host, end.life, end.conn);
        let after = at.saturating_duration_since(self.t0 + self.now);
        self.schedule(after, Ev::Ping(h, life, conn));
    }

    // ---- the world --------------------------------------------------------------------------

    fn run_until(&mut self, end: Duration) {
        while let Some(e) = self.next_event(end) {
            self.now = e.at;
            self.events_run += 1;
            self.step(e.ev);
        }
        self.now = end;
    }

    fn step(&mut self, ev: Ev) {
        let now = self.at();
        if let Some(h) = self.target(&ev).filter(|&h| self.machines[h].frozen) {
            self.machines[h].held.push(ev);
            return;
        }
        match ev {
            Ev::Command(h, input) => {
                self.note(format!("{} command {input:?}", self.machines[h].name));
                self.machines[h].node.handle(input, now);
                self.pump(h);
            }
            Ev::Timer(h, life) => {
                let m = &mut self.machines[h];
                if m.life != life {
                    return;
                }
                if m.timer_at.is_some_and(|t| t <= now) {
                    m.timer_at = None;
                }
                m.node.handle_timeout(now);
                self.pump(h);
            }
            Ev::Ping(h, life, conn) => {
                if self.machines[h].life != life {
                    return;
                }
                let Some(&(link, side)) = self.machines[h].conns.get(&conn) else {
                    return;
                };
                let Some(end) = self
                    .links
                    .get_mut(&link)
                    .and_then(|l| l.ends[side].as_mut())
                else {
                    return;
                };
                end.ping_at = None;
                match end.liveness.timeout(now) {
                    Some(Verdict::Ping(_)) => {
                        self.send(h, conn, Frame::Ping);
                        self.arm_ping(link, side);
                    }
                    Some(Verdict::Dead) => {
                        let name = self.machines[h].name.clone();
                        self.note(format!("{name} ping timeout on {conn}"));
                        self.drop_end(h, conn, true);
                        self.machines[h].node.handle(
                            Input::Closed {
                                conn,
                                reason: partisan_core::control::CloseReason::PingTimeout,
                            },
                            now,
                        );
                        self.pump(h);
                    }
                    None => self.arm_ping(link, side),
                }
            }
            Ev::DialArrives {
                to,
                from,
                from_life,
                slot,
                incarnation,
            } => {
                if self.cut(from, to) || self.machines[to].frozen {
                    let t = self.net.dial_timeout;
                    self.schedule(t, Ev::DialFails(from, from_life, slot));
                    return;
                }
                let link = self.next_link;
                self.next_link += 1;
                self.links.insert(
                    link,
                    Link {
                        hosts: [from, to],
                        ends: [None, None],
                        last: [self.now; 2],
                    },
                );
                let conn = self.open_end(to, link, 1);
                let from_spec = self.machines[from].spec.clone();
                let channel = self.channels_sorted(slot.channel);
                let admission = self.machines[to].node.admit(
                    conn,
                    &from_spec,
                    incarnation,
                    &channel,
                    slot.index,
                    now,
                );
                let accepted = admission.status == AckStatus::Accepted;
                if !accepted {
                    self.drop_end(to, conn, false);
                }
                self.pump(to);
                if accepted {
                    self.arm_ping(link, 1);
                    let peer = self.machines[from].name.clone();
                    self.check_no_stale_lives(to, &peer);
                }
                let d = self.delay();
                let name = self.machines[to].name.to_string();
                let ack = Ev::AckArrives {
                    to: from,
                    life: from_life,
                    slot,
                    name,
                    status: admission.status,
                    incarnation: admission.incarnation,
                    link: accepted.then_some(link),
                };
                let at = match self.links.get_mut(&link) {
                    Some(l) => {
                        let at = (self.now + d).max(l.last[1]);
                        l.last[1] = at;
                        at
                    }
                    None => self.now + d,
                };
                let after = at - self.now;
                self.schedule(after, ack);
            }
            Ev::AckArrives {
                to,
                life,
                slot,
                name,
                status,
                incarnation,
                link,
            } => {
                if self.machines[to].life != life {
                    return; // the dialer restarted: its socket is gone
                }
                let link = link.filter(|l| self.links.get(l).is_some_and(|l| l.ends[1].is_some()));
                let Some(link) = link else {
                    if status == AckStatus::Accepted {
                        // Accepted, but the acceptor closed it meanwhile: the dial failed.
                        self.machines[to].node.handle(Input::DialFailed(slot), now);
                    } else {
                        self.machines[to]
                            .node
                            .dialed(&slot, 0, &name, status, incarnation, now);
                    }
                    self.pump(to);
                    return;
                };
                let conn = self.open_end(to, link, 0);
                let installed =
                    self.machines[to]
                        .node
                        .dialed(&slot, conn, &name, status, incarnation, now);
                if installed {
                    self.arm_ping(link, 0);
                    self.check_no_stale_lives(to, &slot.peer);
                } else {
                    self.drop_end(to, conn, true);
                }
                self.pump(to);
            }
            Ev::DialFails(h, life, slot) => {
                if self.machines[h].life == life {
                    self.machines[h].node.handle(Input::DialFailed(slot), now);
                    self.pump(h);
                }
            }
            Ev::Frame(link, side, frame) => {
                let Some(l) = self.links.get(&link) else {
                    return;
                };
                let Some(end) = l.ends[side].as_ref() else {
                    return;
                };
                let (h, life, conn) = (end.host, end.life, end.conn);
                // Lost in a partition (the connection dies of it), or sent to a dead life.
                if self.cut(l.hosts[0], l.hosts[1]) || self.machines[h].life != life {
                    return;
                }
                if self.rng.gen_bool(self.net.reset) {
                    self.note(format!("reset link {link}"));
                    self.drop_end(h, conn, true);
                    self.machines[h].node.handle(
                        Input::Closed {
                            conn,
                            reason: partisan_core::control::CloseReason::Io,
                        },
                        now,
                    );
                    self.pump(h);
                    return;
                }
                if let Some(end) = self
                    .links
                    .get_mut(&link)
                    .and_then(|l| l.ends[side].as_mut())
                {
                    end.liveness.received(now);
                }
                match frame {
                    Frame::Gossip(state) => {
                        self.machines[h]
                            .node
                            .handle(Input::Gossip { conn, state }, now);
                        self.pump(h);
                        self.check_members_of_left(h);
                    }
                    Frame::Overlay(body) => {
                        let body = body.into();
                        self.machines[h]
                            .node
                            .handle(Input::Overlay { conn, body }, now);
                        self.pump(h);
                    }
                    Frame::Ping => self.send(h, conn, Frame::Pong),
                    Frame::Pong => {}
                }
                self.arm_ping(link, side);
            }
            Ev::Fin(link, side) => {
                let Some(l) = self.links.get(&link) else {
                    return;
                };
                let Some(end) = l.ends[side].as_ref() else {
                    return;
                };
                let (h, life, conn) = (end.host, end.life, end.conn);
                if self.cut(l.hosts[0], l.hosts[1]) || self.machines[h].life != life {
                    return;
                }
                self.drop_end(h, conn, false);
                self.machines[h].node.handle(
                    Input::Closed {
                        conn,
                        reason: partisan_core::control::CloseReason::PeerClosed,
                    },
                    now,
                );
                self.pump(h);
            }
            Ev::Freeze(h, on) => {
                self.note(format!("{} frozen {on}", self.machines[h].name));
                self.machines[h].frozen = on;
                if on {
                    self.frozen_at.insert(h, self.now);
                    // A peer that has it down already has nothing left to notice.
                    let name = self.machines[h].name.clone();
                    for o in 0..self.machines.len() {
                        if o != h && !self.machines[o].up.contains_key(&name) {
                            self.detected.insert((o, h), Duration::ZERO);
                        }
                    }
                } else {
                    // It runs again: what reached it meanwhile happens now, in order.
                    let held = std::mem::take(&mut self.machines[h].held);
                    for (i, ev) in held.into_iter().enumerate() {
                        self.schedule(Duration::from_nanos(i as u64), ev);
                    }
                }
            }
            Ev::Partition(side) => {
                self.note(format!(
                    "partition {:?}",
                    side.iter().filter(|s| **s != 0).count()
                ));
                self.side = side;
            }
            Ev::Restart(h, contact) => {
                // The process dies with its sockets, and no FIN reaches its peers: they learn of
                // the new life only when it connects.
                let ends: Vec<ConnId> = self.machines[h].conns.keys().copied().collect();
                for c in ends {
                    self.drop_end(h, c, false);
                }
                let life = self.machines[h].life + 1;
                let incarnation = self.machines[h].node.incarnation() + 1_000_000;
                self.note(format!("{} restarts as life {life}", self.machines[h].name));
                self.machines[h] = self.machine(h, life, incarnation);
                let spec = self.machines[contact].spec.clone();
                self.machines[h].node.handle(Input::Join(spec), now);
                self.pump(h);
            }
        }
    }

    fn channels_sorted(&self, ch: usize) -> String {
        self.machines[0].spec.channels[ch].name.clone()
    }

    /// A restarted peer's new life replaces every connection of its old one at once.
    fn check_no_stale_lives(&self, h: Host, peer: &str) {
        let Some(view) = self.machines[h].node.peer(peer) else {
            return;
        };
        if let Some((_, _, c, life)) = view.connections.iter().find(|c| c.3 < view.newest) {
            self.fail(&format!(
                "{}: connection {c} to {peer} of life {life} outlived newer life {}",
                self.machines[h].name, view.newest
            ));
        }
    }

    /// Once a node has heard that a life left, it never takes that life for alive again.
    fn check_members_of_left(&mut self, h: Host) {
        for (j, (name, inc)) in self.left.iter().enumerate() {
            let Some(e) = self.machines[h].node.state().get(name) else {
                continue;
            };
            if e.removed && e.incarnation >= *inc {
                self.knows_left.insert((h, j));
            } else if e.incarnation <= *inc && self.knows_left.contains(&(h, j)) {
                self.fail(&format!(
                    "{}: {name} is alive again in its old life",
                    self.machines[h].name
                ));
            }
        }
    }

    // ---- checks once the dust settled --------------------------------------------------------

    /// Whether every node in `expect` has them all as members, up and fully connected.
    fn settled(&self, expect: &BTreeSet<Host>) -> bool {
        expect.iter().all(|&h| {
            let m = &self.machines[h];
            m.node.state().members().count() == expect.len()
                && m.up.len() == expect.len() - 1
                && expect
                    .iter()
                    .all(|&o| o == h || m.node.is_fully_connected(&self.machines[o].name))
        })
    }

    /// Every live node in `expect` has exactly `expect` as members, and each pair one connection
    /// per (channel, index), the same at both ends.
    fn check_settled(&self, expect: &BTreeSet<Host>) {
        let names: BTreeSet<&str> = expect.iter().map(|&h| &*self.machines[h].name).collect();
        for &h in expect {
            let m = &self.machines[h];
            let members: BTreeSet<String> = m.node.members().into_iter().map(|s| s.name).collect();
            let members: BTreeSet<&str> = members.iter().map(|s| s.as_str()).collect();
            if members != names {
                let missing: Vec<_> = names.difference(&members).take(5).collect();
                let extra: Vec<_> = members.difference(&names).take(5).collect();
                self.fail(&format!(
                    "{} has {} members, expected {} (missing {missing:?}, extra {extra:?})",
                    m.name,
                    members.len(),
                    names.len()
                ));
            }
            if m.up.len() != expect.len() - 1 {
                self.fail(&format!(
                    "{} has {} peers up, expected {}",
                    m.name,
                    m.up.len(),
                    expect.len() - 1
                ));
            }
            for &o in expect.iter().filter(|&&o| o != h) {
                for (ch, c) in m.spec.channels.iter().enumerate() {
                    for idx in 0..c.parallelism {
                        let key = SlotKey {
                            peer: self.machines[o].name.clone(),
                            channel: ch,
                            index: idx,
                        };
                        let Some(&conn) = m.routes.get(&key) else {
                            self.fail(&format!(
                                "{} has no connection to {} on {}/{idx}; the core has {:?}",
                                m.name,
                                key.peer,
                                c.name,
                                m.node.peer(&key.peer)
                            ));
                        };
                        let (link, side) = m.conns[&conn];
                        let other = self.links[&link].ends[1 - side].as_ref();
                        let back = SlotKey {
                            peer: m.name.clone(),
                            channel: ch,
                            index: idx,
                        };
                        let theirs = self.machines[o].routes.get(&back);
                        if other.is_none_or(|e| e.host != o || Some(&e.conn) != theirs) {
                            self.fail(&format!(
                                "{} and {} disagree on their connection on {}/{idx}",
                                m.name, key.peer, c.name
                            ));
                        }
                    }
                }
            }
            // Nothing open beyond the installed connections.
            let installed: BTreeSet<ConnId> = m.routes.values().copied().collect();
            if m.conns.len() != installed.len() {
                self.fail(&format!(
                    "{} has {} open connections but {} installed",
                    m.name,
                    m.conns.len(),
                    installed.len()
                ));
            }
        }
    }
}

impl Sim {
    /// Every node but the first joins through a random earlier one within two seconds: many
    /// joins at once, simultaneous dials on every control slot.
    fn join_randomly(&mut self, n: usize) {
        for i in 1..n {
            let contact = self.rng.gen_range(0..i);
            let at = Duration::from_micros(self.rng.gen_range(0..2_000_000));
            let spec = self.machines[contact].spec.clone();
            self.schedule(at, Ev::Command(i, Input::Join(spec)));
        }
    }

    /// With HyParView: `None` once every node in `live` has an active view within bounds that
    /// holds only live nodes, views are symmetric, a peer is up exactly when it is a neighbour
    /// (with a connection on every slot), and the overlay is connected; else what is not so.
    fn overlay_unsettled(&self, live: &BTreeSet<Host>, min: usize, max: usize) -> Option<String> {
        let host: HashMap<&str, Host> =
            live.iter().map(|&h| (&*self.machines[h].name, h)).collect();
        let mut views: HashMap<Host, BTreeSet<Host>> = HashMap::new();
        for &h in live {
            let m = &self.machines[h];
            let mut view = BTreeSet::new();
            for p in m.node.active_view() {
                let Some(&o) = host.get(&*p) else {
                    return Some(format!("{} has {p}, not live, as a neighbour", m.name));
                };
                view.insert(o);
            }
            if view.len() < min.min(live.len() - 1) || view.len() > max {
                return Some(format!(
                    "{} has {} neighbours {:?}, passive {:?}, core {:?}",
                    m.name,
                    view.len(),
                    m.node.active_view(),
                    m.node.passive_view(),
                    m.node.peer_names().collect::<Vec<_>>()
                ));
            }
            let up: BTreeSet<Host> =
                m.up.keys()
                    .filter_map(|p| host.get(&**p).copied())
                    .collect();
            if up != view || m.up.len() != view.len() {
                return Some(format!(
                    "{}: up {:?} but neighbours {view:?}",
                    m.name,
                    m.up.keys()
                ));
            }
            if let Some(&o) = view
                .iter()
                .find(|&&o| !m.node.is_fully_connected(&self.machines[o].name))
            {
                return Some(format!("{} is not fully connected to {o}", m.name));
            }
            views.insert(h, view);
        }
        for (&h, view) in &views {
            if let Some(o) = view.iter().find(|o| !views[o].contains(&h)) {
                return Some(format!(
                    "{h} has {o} as a neighbour but not the other way round"
                ));
            }
        }
        let first = *live.iter().next()?;
        let mut seen = BTreeSet::from([first]);
        let mut todo = vec![first];
        while let Some(h) = todo.pop() {
            for &o in &views[&h] {
                if seen.insert(o) {
                    todo.push(o);
                }
            }
        }
        (seen.len() != live.len())
            .then(|| format!("the overlay reaches {} of {} nodes", seen.len(), live.len()))
    }

    /// Runs until the overlay of `live` is settled; the time it took.
    fn settle_overlay(&mut self, live: &BTreeSet<Host>, cfg: &hyparview::Config, limit: Duration) {
        let mut t = self.now + ms(1_000);
        loop {
            self.run_until(t);
            let Some(why) = self.overlay_unsettled(live, cfg.active_min, cfg.active_max) else {
                return;
            };
            if t > limit {
                let passive: usize = live
                    .iter()
                    .map(|&h| self.machines[h].node.passive_view().len())
                    .sum();
                let why = format!("{why}; {passive} passive entries in all");
                self.fail(&format!("the overlay did not settle: {why}"));
            }
            t += ms(500);
        }
    }
}

/// `n` nodes running HyParView (`cfg`) on the real control core and its connections, joined
/// through random contacts and settled.
fn hyparview_sim(seed: u64, n: usize, cfg: &hyparview::Config) -> Sim {
    let ping = PingConfig {
        enabled: true,
        idle_timeout: ms(4_000),
        timeout: ms(1_000),
        max_attempts: 2,
    };
    let net = Net {
        delay: (1, 8),
        dial_loss: 0.01,
        dial_timeout: ms(1_000),
        reset: 0.0,
    };
    let membership = Membership::HyParView(cfg.clone());
    let mut sim = Sim::with_membership(seed, n, net, ping, channels(false), membership);
    sim.join_randomly(n);
    let all: BTreeSet<Host> = (0..n).collect();
    sim.settle_overlay(&all, cfg, ms(120_000));
    sim
}

/// HyParView on the control core: `n` nodes join, then a quarter of them fail silently; the
/// survivors must settle both times.
fn hyparview_scenario(seed: u64, n: usize) -> (Duration, Duration, u64) {
    let cfg = hyparview::Config::default();
    let mut sim = hyparview_sim(seed, n, &cfg);
    let joined = sim.now;
    let start = sim.now;
    let failed: BTreeSet<Host> = (0..n).filter(|h| h % 4 == 3).collect();
    for &h in &failed {
        sim.schedule(ms(10), Ev::Freeze(h, true));
    }
    let live: BTreeSet<Host> = (0..n).filter(|h| !failed.contains(h)).collect();
    sim.run_until(sim.now + ms(100));
    sim.settle_overlay(&live, &cfg, sim.now + ms(180_000));
    (joined, sim.now - start, sim.events_run)
}

#[test]
fn hyparview_on_the_control_core_settles_and_heals() {
    let n = env("SIM_HV_CORE_NODES", 200) as usize;
    let seed = env("SIM_SEED", 0x4e1_9b0e);
    let wall = std::time::Instant::now();
    let (joined, healed, events) = hyparview_scenario(seed, n);
    println!(
        "control sim, HyParView: {n} nodes, seed {seed:#x}: views settled at {joined:.1?} \
         (virtual); with a quarter failed, healed in {healed:.1?}; {events} events in {:.1?}",
        wall.elapsed()
    );
}

/// X-BOT on the real control core: with exchanges every 5 s per node, `n` nodes join and
/// settle, then keep rewiring for a minute. The views must settle again (symmetric, within
/// bounds, every neighbour up on every slot, one overlay), and must have changed.
#[test]
fn hyparview_exchanges_on_the_control_core_rewire_and_settle() {
    let n = env("SIM_HV_CORE_NODES", 200) as usize / 2;
    let seed = env("SIM_SEED", 0x0b07);
    let cfg = hyparview::Config {
        xbot_interval: ms(5_000),
        ..hyparview::Config::default()
    };
    let mut sim = hyparview_sim(seed, n, &cfg);
    let all: BTreeSet<Host> = (0..n).collect();
    let edges = |sim: &Sim| -> BTreeSet<(String, String)> {
        sim.machines
            .iter()
            .flat_map(|m| {
                let me = m.name.to_string();
                m.node
                    .active_view()
                    .into_iter()
                    .map(move |p| (me.clone(), p.to_string()))
            })
            .collect()
    };
    let before = edges(&sim);
    sim.run_until(sim.now + ms(60_000));
    sim.settle_overlay(&all, &cfg, sim.now + ms(60_000));
    let after = edges(&sim);
    let changed = before.difference(&after).count();
    println!(
        "control sim, X-BOT: {n} nodes: {changed} of {} directed edges changed in a minute",
        before.len()
    );
    assert!(
        changed * 10 > before.len(),
        "the exchanges did not rewire the overlay"
    );
}

fn channels(extra: bool) -> Vec<ChannelSpec> {
    let ch = |name: &str, parallelism| ChannelSpec {
        name: name.to_owned(),
        parallelism,
        monotonic: false,
        compression: Compression::Off,
    };
    let mut v = vec![ch(DEFAULT_CHANNEL, 1), ch(CONTROL_CHANNEL, 1)];
    if extra {
        v.push(ch("data", 2));
    }
    v
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Figures {
    nodes: usize,
    events: u64,
    join_converged: Duration,
    connections: usize,
    detection_max: Duration,
}

/// The whole scenario: joins, then faults, then quiet; returns the figures for the log.
fn scenario(seed: u64, n: usize, extra_channel: bool) -> Figures {
    let ping = PingConfig {
        enabled: true,
        idle_timeout: ms(8_000),
        timeout: ms(1_000),
        max_attempts: 3,
    };
    let net = Net {
        delay: (1, 8),
        dial_loss: 0.02,
        dial_timeout: ms(1_000),
        reset: 0.0002,
    };
    let mut sim = Sim::new(seed, n, net, ping.clone(), channels(extra_channel));

    // 1. Everyone joins (see `join_randomly`).
    sim.join_randomly(n);
    let all: BTreeSet<Host> = (0..n).collect();
    let mut t = ms(4_000);
    loop {
        sim.run_until(t);
        if sim.settled(&all) {
            break;
        }
        if t > ms(60_000) {
            sim.check_settled(&all);
        }
        t += ms(500);
    }
    let join_converged = sim.now;
    sim.check_settled(&all);

    // 2. Faults. A tenth of the nodes cut off for 12.5 s (longer than the ping bound: both sides
    //    see it), a few restarted with no FIN reaching their peers, a few leaving, one removed
    //    by another node, and one frozen (silent but connected) until every peer noticed.
    let start = sim.now;
    let k = (n / 10).max(1);
    let mut side = vec![0u8; n];
    for s in side.iter_mut().take(n).skip(n - k) {
        *s = 1;
    }
    sim.schedule(ms(100), Ev::Partition(side));
    sim.schedule(ms(12_600), Ev::Partition(vec![0; n]));
    let restarts: Vec<Host> = (1..=3.min(n - 2)).map(|i| i * (n / 7).max(1) % n).collect();
    for (i, &h) in restarts.iter().enumerate() {
        sim.schedule(ms(13_000 + 300 * i as u64), Ev::Restart(h, 0));
    }
    let frozen = n / 2 + 1;
    sim.schedule(ms(15_000), Ev::Freeze(frozen, true));
    let leavers: Vec<Host> = vec![n / 3, n / 3 + 1];
    let removed = n / 4;
    let remover = n / 4 + 2;
    for (i, &h) in leavers.iter().enumerate() {
        let name = sim.machines[h].name.to_string();
        sim.schedule(
            ms(16_000 + 10 * i as u64),
            Ev::Command(h, Input::Leave(name)),
        );
    }
    let removed_name = sim.machines[removed].name.to_string();
    sim.schedule(ms(16_500), Ev::Command(remover, Input::Leave(removed_name)));
    for &h in leavers.iter().chain([&removed]) {
        let life = (
            sim.machines[h].name.to_string(),
            sim.machines[h].node.incarnation(),
        );
        sim.left.push(life);
    }

    // The frozen node: every live peer must notice within the bound (plus a round trip).
    let bound = ping.detection_bound() + ms(2 * sim.net.delay.1) + ms(100);
    sim.run_until(start + ms(15_000) + bound + ms(500));
    let survivors: BTreeSet<Host> = all
        .iter()
        .copied()
        .filter(|h| !leavers.contains(h) && *h != removed && *h != frozen)
        .collect();
    let mut detection_max = Duration::ZERO;
    for &h in &survivors {
        match sim.detected.get(&(h, frozen)) {
            Some(&d) if d <= bound => detection_max = detection_max.max(d),
            Some(&d) => sim.fail(&format!(
                "{} took {d:?} to notice the frozen node (bound {bound:?})",
                sim.machines[h].name
            )),
            None => sim.fail(&format!(
                "{} never noticed the frozen node",
                sim.machines[h].name
            )),
        }
    }
    sim.schedule(ms(100), Ev::Freeze(frozen, false));

    // 3. Quiet: the survivors (the thawed node included) settle into one cluster again; the
    //    nodes that left are each alone.
    let mut expect = survivors.clone();
    expect.insert(frozen);
    // The network turns reliable, so that the dust can settle for good.
    let faulty = sim.net.clone();
    sim.net.dial_loss = 0.0;
    sim.net.reset = 0.0;
    let mut t = sim.now + ms(5_000);
    loop {
        sim.run_until(t);
        if sim.settled(&expect) || t > start + ms(120_000) {
            break;
        }
        t += ms(1_000);
    }
    sim.check_settled(&expect);
    // And it stays so.
    sim.run_until(t + ms(5_000));
    sim.check_settled(&expect);
    sim.net = faulty;
    for &h in leavers.iter().chain([&removed]) {
        let m = &sim.machines[h];
        if m.node.members().len() != 1 {
            sim.fail(&format!(
                "{} left but has {} members",
                m.name,
                m.node.members().len()
            ));
        }
    }
    Figures {
        nodes: n,
        events: sim.events_run,
        join_converged,
        connections: sim.links.len(),
        detection_max,
    }
}

fn report(f: &Figures, seed: u64, wall: Duration) {
    println!(
        "control sim: {} nodes, seed {seed:#x}: joins converged at {:.1?} (virtual), {} connections, \
         frozen node noticed within {:.1?}, {} events in {:.1?}",
        f.nodes, f.join_converged, f.connections, f.detection_max, f.events, wall
    );
}

#[test]
fn a_cluster_converges_and_keeps_one_connection_per_slot_through_faults() {
    let n = env("SIM_NODES", 300) as usize;
    let seed = env("SIM_SEED", 0x5eed_c0de);
    let wall = std::time::Instant::now();
    let f = scenario(seed, n, false);
    report(&f, seed, wall.elapsed());
}

#[test]
fn parallel_connections_of_extra_channels_pair_up() {
    let seed = env("SIM_SEED", 0x00c0_ffee);
    let wall = std::time::Instant::now();
    let f = scenario(seed, 60, true);
    report(&f, seed, wall.elapsed());
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let a = scenario(7, 30, true);
    let b = scenario(7, 30, true);
    assert_eq!(a.events, b.events);
    assert_eq!(a.join_converged, b.join_converged);
    let _ = MS;
}
