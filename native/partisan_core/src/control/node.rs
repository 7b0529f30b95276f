//! The node state machine: membership, slot admission and the tie-break, dialing with backoff,
//! gossip, leave and removal (see the module documentation of `control` for the call order).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::overlay::Overlay;
use super::reason::CloseReason;
use super::{ConnId, SlotKey, CONTROL_CHANNEL, DEFAULT_CHANNEL};
use crate::hyparview;
use crate::membership::{ChannelSpec, Compression, NodeSpec, State};
use crate::wire::AckStatus;

mod overlay_mode;

/// Peers a change learned from gossip is passed on to, and that periodic gossip goes to: an
/// epidemic, so every member hears of it within a few hops, at a cost per change that grows
/// with the cluster and not with its square. Members also hear directly from the node a change
/// is about, and from the node that made it.
pub const DEFAULT_GOSSIP_FANOUT: usize = 8;

/// What a node is started with (already validated by the caller).
#[derive(Debug, Clone)]
pub struct Settings {
    /// This node: its name, bound listen addresses and channels. The control and the default
    /// channel are added when missing.
    pub local: NodeSpec,
    /// Unique per start of the node; orders its lives in the membership CRDT.
    pub incarnation: u64,
    /// Base of the dial backoff, and the grace before the non-preferred side dials data slots.
    pub connection_interval: Duration,
    /// Most random time added to each backoff.
    pub connection_jitter: Duration,
    /// Period of the anti-entropy gossip.
    pub periodic_interval: Duration,
    /// See [`DEFAULT_GOSSIP_FANOUT`].
    pub gossip_fanout: usize,
    /// Seed of the node's random choices (jitter, gossip targets).
    pub seed: u64,
    /// How members are found: by gossip (full mesh) or only by explicit joins (static).
    pub membership: Membership,
    /// Most nodes (members and removed ones) the membership may hold (`max_members`): even a
    /// faulty member cannot make it, or the atoms naming its nodes, grow without bound.
    pub max_members: usize,
    /// New node names one member's gossip may bring per second (`member_name_rate`), with a
    /// burst of [`NAME_BURST_SECONDS`] worth: names past it wait for a later gossip round.
    pub member_name_rate: u32,
}

#[cfg(test)]
impl Node {
    /// The settings of a test node, to vary one of them.
    fn settings_for_test(&self) -> Settings {
        Settings {
            local: self.local.clone(),
            incarnation: self.incarnation,
            connection_interval: self.interval,
            connection_jitter: self.jitter,
            periodic_interval: self.periodic,
            gossip_fanout: self.fanout,
            seed: 1,
            membership: self.membership.clone(),
            max_members: self.max_members,
            member_name_rate: self.member_name_rate,
        }
    }
}

/// Default of [`Settings::max_members`].
pub const DEFAULT_MAX_MEMBERS: usize = 10_000;

/// Default of [`Settings::member_name_rate`].
pub const DEFAULT_MEMBER_NAME_RATE: u32 = 1_000;

/// Seconds of `member_name_rate` a member may spend at once: with the defaults, a node joining
/// through one contact learns a cluster of `max_members` in one gossip.
pub const NAME_BURST_SECONDS: u32 = 10;

/// A member's allowance of new names (a token bucket).
#[derive(Debug, Clone, Copy)]
struct NameAllowance {
    tokens: f64,
    at: Instant,
}

/// How a node's members are found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Membership {
    /// Members gossip their state: every member learns every other and connects to it.
    #[default]
    FullMesh,
    /// No gossip: the members are the nodes this one joined and the nodes that joined it
    /// (`partisan_static_peer_service_manager`).
    Static,
    /// The members are HyParView's active view (`partisan_hyparview_peer_service_manager`):
    /// a few neighbours each, found by random walks and shuffles, repaired from the passive
    /// view when one fails.
    HyParView(hyparview::Config),
    /// Static membership between clients and servers
    /// (`partisan_client_server_peer_service_manager`): as `Static`, and a node joins or admits
    /// another only if [`Role::accepts`] says the two roles may be connected.
    ClientServer(Role),
}

/// A node's part in a client-server cluster (Partisan's `tag`), announced in the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    /// No tag: such nodes connect only to each other.
    #[default]
    Undefined,
    /// Connects to servers only.
    Client,
    /// Connects to servers and clients.
    Server,
}

impl Role {
    /// The role bits of a hello's `capabilities` (bits 0 and 1; see `docs/wire.md`).
    pub fn from_capabilities(bits: u32) -> Role {
        match bits & 3 {
            1 => Role::Client,
            2 => Role::Server,
            _ => Role::Undefined,
        }
    }

    /// The role as `capabilities` bits.
    pub fn capabilities(self) -> u32 {
        match self {
            Role::Undefined => 0,
            Role::Client => 1,
            Role::Server => 2,
        }
    }

    /// Partisan 5's accept matrix: servers take anybody tagged, clients only servers, and
    /// untagged nodes only untagged ones (Partisan 5 crashes on the combinations it lacks;
    /// here they are refused).
    pub fn accepts(self, theirs: Role) -> bool {
        matches!(
            (self, theirs),
            (Role::Server, Role::Server | Role::Client)
                | (Role::Client, Role::Server)
                | (Role::Undefined, Role::Undefined)
        )
    }
}

/// Something the state machine asks of its driver, in the order it is to be carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a connection for `slot` to one of `addrs` and say hello as `incarnation`; report the
    /// outcome with [`Node::dialed`] or [`Input::DialFailed`].
    Dial {
        /// The slot to fill.
        slot: SlotKey,
        /// The peer's listen addresses, tried in order.
        addrs: Vec<SocketAddr>,
        /// This node's incarnation, for the hello.
        incarnation: u64,
    },
    /// Route sends for `slot` through `conn` from now on (replacing whatever was there).
    Install {
        /// The connection, as the driver named it.
        conn: ConnId,
        /// Where it goes.
        slot: SlotKey,
    },
    /// Close `conn` (queued frames still go out first) and stop routing through it.
    Close {
        /// The connection.
        conn: ConnId,
        /// Why; counted and, if the loss takes the peer down, reported with the `Down`.
        reason: CloseReason,
    },
    /// Send this membership state (all of it, or news) on `conn`, a control connection.
    Gossip {
        /// The control connection.
        conn: ConnId,
        /// The state; one value is shared by every connection it goes to.
        state: Arc<State>,
    },
    /// The peer is up: a connection to its newest life on the control and the default channel
    /// is installed. `generation` counts its ups, naming this connection life.
    Up {
        /// The peer's name.
        peer: Arc<str>,
        /// How many times the peer came up, this time included.
        generation: u64,
    },
    /// The peer is no longer up, for the reason the connection whose loss took it down closed.
    Down {
        /// The peer's name.
        peer: Arc<str>,
        /// Why the connection whose loss took it down closed.
        reason: CloseReason,
    },
    /// The live members changed (sorted, this node included).
    Members(Vec<Arc<str>>),
    /// This node left or was removed; it now forms a cluster of one under a new incarnation.
    Left,
    /// The peer is no longer known: drop whatever the driver keeps for it.
    Forget(Arc<str>),
    /// Send this overlay (HyParView) message body on `conn`, a control connection.
    Overlay {
        /// The control connection.
        conn: ConnId,
        /// The frame body (see `docs/wire.md`).
        body: Vec<u8>,
    },
}

/// Events fed to [`Node::handle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Join the cluster of this node (`partisan_peer_service:join/1`).
    Join(NodeSpec),
    /// Leave the cluster (this node's name) or remove another node from it.
    Leave(String),
    /// Make the membership these nodes plus this one: join the new, remove the missing.
    SetMembers(Vec<NodeSpec>),
    /// Close every connection to these nodes; members are dialled again after a backoff.
    KillConnections(Vec<String>),
    /// A [`Action::Dial`] failed before the handshake completed.
    DialFailed(SlotKey),
    /// A connection the node knows ended, for `reason` (the first one its driver saw).
    Closed {
        /// The connection.
        conn: ConnId,
        /// The first reason anybody gave for its end.
        reason: CloseReason,
    },
    /// A membership state arrived on `conn` (shared: one state may go to many nodes).
    Gossip {
        /// The connection it arrived on; the core knows its peer.
        conn: ConnId,
        /// The state, whole or news only.
        state: Arc<State>,
    },
    /// An overlay (HyParView) message arrived on `conn`.
    Overlay {
        /// The connection it arrived on; only control connections carry overlay messages.
        conn: ConnId,
        /// The frame body.
        body: bytes::Bytes,
    },
    /// The node stops: every connection closes.
    Stop,
}

/// The acceptor's answer to a hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// Granted, or why not.
    pub status: AckStatus,
    /// This node's incarnation, told to the dialer.
    pub incarnation: u64,
}

/// What a peer looks like from here (for introspection and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerView {
    /// Whether the peer is up (see [`Action::Up`]).
    pub up: bool,
    /// How many times it came up.
    pub generation: u64,
    /// The newest life of the peer seen on any connection.
    pub newest: u64,
    /// Installed connections: (channel, index, connection, the peer's life it belongs to).
    pub connections: Vec<(usize, u16, ConnId, u64)>,
}

#[derive(Debug, Clone, Copy)]
struct Held {
    id: ConnId,
    life: u64,
    dialed_by_me: bool,
}

#[derive(Debug)]
struct Slot {
    conn: Option<Held>,
    dialing: bool,
    failures: u32,
    /// Earliest time of the next dial (backoff, or grace for the non-preferred dialer).
    not_before: Instant,
}

#[derive(Debug)]
struct Peer {
    name: Arc<str>,
    spec: NodeSpec,
    newest: u64,
    /// `slots[channel][index]`, shaped by this node's channels.
    slots: Vec<Box<[Slot]>>,
    up: bool,
    generation: u64,
    /// The time of the pending dial timer, if one is set.
    dial_at: Option<Instant>,
}

impl Peer {
    fn has_connection(&self, channel: usize) -> bool {
        self.slots[channel].iter().any(|s| s.conn.is_some())
    }

    fn held(&self) -> impl Iterator<Item = Held> + '_ {
        self.slots
            .iter()
            .flat_map(|ch| ch.iter().filter_map(|s| s.conn))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Gossip,
    Dial(Arc<str>),
    /// Close the connections of a peer outside the active view if they are idle.
    Linger(Arc<str>),
    /// Join the overlay through a contact again (the last try failed).
    Rejoin(Arc<str>),
    /// The overlay's shuffle or promotion is due.
    Overlay,
}

/// The cluster rules of one node, with no I/O: see the module documentation.
#[derive(Debug)]
pub struct Node {
    local: NodeSpec,
    name: Arc<str>,
    incarnation: u64,
    parallelism: Vec<u16>,
    control: usize,
    default: usize,
    interval: Duration,
    jitter: Duration,
    periodic: Duration,
    fanout: usize,
    membership: Membership,
    max_members: usize,
    /// Nodes left out of the membership because it was full.
    refused_members: u64,
    member_name_rate: u32,
    /// Per member whose gossip brought new names: what it may still bring.
    name_allowance: HashMap<Arc<str>, NameAllowance>,
    /// New names left out of a merge because their sender had spent its allowance.
    names_over_rate: u64,
    rng: SmallRng,
    state: State,
    /// Nodes this one was asked to join and has not yet heard about from the cluster.
    pending: BTreeMap<String, NodeSpec>,
    peers: BTreeMap<Arc<str>, Peer>,
    /// Installed connections and their slots.
    conns: HashMap<ConnId, SlotKey>,
    /// Connections replaced in their slot and not yet reported closed, and their peers: what
    /// was queued on them still arrives, and an overlay message among it must not be lost.
    retired: HashMap<ConnId, SlotKey>,
    timers: BinaryHeap<Reverse<(Instant, Timer)>>,
    gossip_at: Instant,
    actions: VecDeque<Action>,
    // Work of the current input, finished by `settle` in an order that keeps the driver's view
    // consistent: ups and downs after installs and before closes.
    touched: BTreeMap<Arc<str>, CloseReason>,
    closing: Vec<(ConnId, CloseReason)>,
    forgotten: Vec<Arc<str>>,
    members_dirty: bool,
    last_members: Vec<Arc<str>>,
    /// Gossip targets and the full state, cached between membership changes.
    targets: Option<Vec<Arc<str>>>,
    full: Option<Arc<State>>,
    /// HyParView, when it chooses the members.
    overlay: Option<Overlay>,
    /// The time of the pending overlay timer, if one is set.
    overlay_at: Option<Instant>,
    stopped: bool,
}

/// Sorts the channels by name, drops duplicates and adds the control and the default channel
/// when missing: every node has both.
pub fn normalise_channels(channels: &mut Vec<ChannelSpec>) {
    for name in [DEFAULT_CHANNEL, CONTROL_CHANNEL] {
        if !channels.iter().any(|c| c.name == name) {
            channels.push(ChannelSpec {
                name: name.to_owned(),
                parallelism: 1,
                monotonic: false,
                compression: Compression::Off,
            });
        }
    }
    channels.sort_by(|a, b| a.name.cmp(&b.name));
    channels.dedup_by(|a, b| a.name == b.name);
    for c in channels.iter_mut() {
        c.parallelism = c.parallelism.max(1);
    }
}

impl Node {
    /// A node alone in its cluster at time `now`.
    pub fn new(settings: Settings, now: Instant) -> Node {
        let mut local = settings.local;
        normalise_channels(&mut local.channels);
        let index = |n: &str| local.channels.iter().position(|c| c.name == n).unwrap_or(0);
        let (control, default) = (index(CONTROL_CHANNEL), index(DEFAULT_CHANNEL));
        let mut state = State::new();
        state.add(local.clone(), settings.incarnation);
        let name: Arc<str> = Arc::from(local.name.as_str());
        let periodic = settings.periodic_interval.max(Duration::from_millis(1));
        let overlay = match &settings.membership {
            Membership::HyParView(cfg) => Some(Overlay::new(
                &local,
                hyparview::Config {
                    seed: cfg.seed ^ settings.seed,
                    ..cfg.clone()
                },
                settings.max_members,
                now,
            )),
            _ => None,
        };
        let mut node = Node {
            parallelism: local.channels.iter().map(|c| c.parallelism).collect(),
            control,
            default,
            last_members: vec![name.clone()],
            name,
            local,
            incarnation: settings.incarnation,
            interval: settings.connection_interval,
            jitter: settings.connection_jitter,
            periodic,
            fanout: settings.gossip_fanout.max(1),
            membership: settings.membership,
            max_members: settings.max_members.max(1),
            refused_members: 0,
            member_name_rate: settings.member_name_rate.max(1),
            name_allowance: HashMap::new(),
            names_over_rate: 0,
            rng: SmallRng::seed_from_u64(settings.seed),
            state,
            pending: BTreeMap::new(),
            peers: BTreeMap::new(),
            conns: HashMap::new(),
            retired: HashMap::new(),
            timers: BinaryHeap::new(),
            gossip_at: now + periodic,
            actions: VecDeque::new(),
            touched: BTreeMap::new(),
            closing: Vec::new(),
            forgotten: Vec::new(),
            members_dirty: false,
            targets: None,
            full: None,
            overlay,
            overlay_at: None,
            stopped: false,
        };
        node.timers.push(Reverse((node.gossip_at, Timer::Gossip)));
        node
    }

    // ---- queries ------------------------------------------------------------------------

    /// This node's spec, with its channels normalised (the order defines channel ids).
    pub fn local(&self) -> &NodeSpec {
        &self.local
    }

    /// The current incarnation (it grows when the node leaves or is removed).
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The channel id of the control channel.
    pub fn control_channel(&self) -> usize {
        self.control
    }

    /// The channel id of Partisan's default channel.
    pub fn default_channel(&self) -> usize {
        self.default
    }

    /// The membership state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Live members, this node included, sorted by name.
    pub fn members(&self) -> Vec<NodeSpec> {
        self.state.members().map(|e| e.spec.clone()).collect()
    }

    /// Members that are up, this node excluded, sorted by name.
    pub fn nodes(&self) -> Vec<Arc<str>> {
        self.peers
            .values()
            .filter(|p| p.up && self.state.is_member(&p.name))
            .map(|p| p.name.clone())
            .collect()
    }

    /// The peer as this node sees it, if it is known.
    pub fn peer(&self, name: &str) -> Option<PeerView> {
        let p = self.peers.get(name)?;
        let mut connections = Vec::new();
        for (ch, slots) in p.slots.iter().enumerate() {
            for (i, s) in slots.iter().enumerate() {
                if let Some(h) = s.conn {
                    connections.push((ch, i as u16, h.id, h.life));
                }
            }
        }
        Some(PeerView {
            up: p.up,
            generation: p.generation,
            newest: p.newest,
            connections,
        })
    }

    /// Names of every known peer, sorted.
    pub fn peer_names(&self) -> impl Iterator<Item = &Arc<str>> {
        self.peers.keys()
    }

    /// Whether every slot of the peer holds a connection.
    pub fn is_fully_connected(&self, name: &str) -> bool {
        self.peers
            .get(name)
            .is_some_and(|p| p.slots.iter().all(|ch| ch.iter().all(|s| s.conn.is_some())))
    }

    // ---- the driver's side: events in, actions out --------------------------------------

    /// The next action to carry out; call until `None` after every `handle*` call.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Node::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, timer))) = self.timers.pop() else {
                break;
            };
            match timer {
                Timer::Gossip if at == self.gossip_at && !self.stopped => {
                    let full = self.full_state();
                    self.spread(full, None, true);
                    self.gossip_at = now + self.periodic;
                    self.timers.push(Reverse((self.gossip_at, Timer::Gossip)));
                }
                Timer::Dial(name) => {
                    let due = self.peers.get_mut(&name).is_some_and(|p| {
                        let due = p.dial_at == Some(at);
                        if due {
                            p.dial_at = None;
                        }
                        due
                    });
                    if due {
                        self.dial_due(&name, now);
                    }
                }
                Timer::Gossip => {}
                other => self.overlay_timer(other, at, now),
            }
        }
        self.finish(now);
    }

    /// Feeds one event.
    pub fn handle(&mut self, input: Input, now: Instant) {
        match input {
            Input::Join(spec) if self.overlay.is_some() => self.overlay_join(spec, now),
            Input::Join(spec) => self.join(spec, now),
            Input::Leave(name) if name.as_str() == &*self.name && self.overlay.is_some() => {
                self.overlay_leave(now)
            }
            Input::Leave(name) if name.as_str() == &*self.name => self.leave_self(),
            Input::Leave(name) if self.overlay.is_some() => self.overlay_remove(&name, now),
            Input::Leave(name) => self.remove(&name),
            Input::SetMembers(specs) => self.set_members(specs, now),
            Input::KillConnections(names) => {
                for n in names {
                    self.kill(&n, now);
                }
            }
            Input::DialFailed(slot) => self.dial_failed(&slot, now),
            Input::Closed { conn, reason } => self.closed(conn, reason, now),
            Input::Gossip { conn, state } => self.gossip(conn, state, now),
            Input::Overlay { conn, body } => self.overlay_received(conn, &body, now),
            Input::Stop => self.stop(),
        }
        self.finish(now);
    }

    /// The acceptor's decision on a hello from `spec` (at `incarnation`) for slot
    /// (`channel`, `index`), to be sent back in the hello ack. When accepted, connection `conn`
    /// is installed (see the actions).
    pub fn admit(
        &mut self,
        conn: ConnId,
        spec: &NodeSpec,
        incarnation: u64,
        channel: &str,
        index: u16,
        now: Instant,
    ) -> Admission {
        let ch = self.local.channels.iter().position(|c| c.name == channel);
        let mut status = match ch {
            _ if spec.name == *self.name => AckStatus::Refused,
            None => AckStatus::UnknownChannel,
            Some(ch) if index >= self.parallelism[ch] => AckStatus::UnknownChannel,
            Some(_) if self.state.is_removed(&spec.name, incarnation) => AckStatus::Removed,
            Some(_) if self.stopped => AckStatus::Refused,
            Some(_) => AckStatus::Accepted,
        };
        if let (AckStatus::Accepted, Some(ch)) = (status, ch) {
            if let Some(o) = self.overlay.as_mut() {
                if o.learn(spec).is_none() {
                    self.refused_members += 1;
                }
            }
            if self.is_static() && !self.state.is_member(&spec.name) && self.has_room(&spec.name) {
                // A node that joined this one is a member of it.
                self.state.add(spec.clone(), incarnation);
                self.state_changed();
            }
            self.ensure_peer(spec, now);
            let slot = SlotKey {
                peer: Arc::from(spec.name.as_str()),
                channel: ch,
                index,
            };
            if self.install(conn, &slot, incarnation, false) {
                self.overlay_connected(&slot, conn, now);
            } else {
                status = AckStatus::Duplicate;
            }
        }
        self.finish(now);
        Admission {
            status,
            incarnation: self.incarnation,
        }
    }

    /// The dialer's side: the hello ack for `slot` arrived on `conn`, from node `name` at
    /// `incarnation`. True if the connection is installed (and is to run); false if the driver
    /// is to drop it.
    pub fn dialed(
        &mut self,
        slot: &SlotKey,
        conn: ConnId,
        name: &str,
        status: AckStatus,
        incarnation: u64,
        now: Instant,
    ) -> bool {
        if let Some(s) = self.slot_mut(slot) {
            s.dialing = false;
        }
        let installed = match status {
            // Another node answers at that address (the peer moved): not the node we want.
            _ if name != &*slot.peer => {
                self.dial_failed(slot, now);
                false
            }
            AckStatus::Accepted if self.install(conn, slot, incarnation, true) => {
                self.overlay_connected(slot, conn, now);
                true
            }
            AckStatus::Accepted | AckStatus::Duplicate => {
                // The other side holds the connection the tie-break prefers.
                let retry = now + self.interval;
                self.retry_at(slot, retry);
                false
            }
            AckStatus::UnknownChannel | AckStatus::Removed | AckStatus::Refused => {
                self.dial_failed(slot, now);
                false
            }
        };
        self.finish(now);
        installed
    }

    // ---- membership -----------------------------------------------------------------------

    fn join(&mut self, spec: NodeSpec, now: Instant) {
        if spec.name == *self.name || self.stopped {
            return;
        }
        self.pending.insert(spec.name.clone(), spec.clone());
        self.targets = None;
        if self.is_static() && !self.state.is_member(&spec.name) && self.has_room(&spec.name) {
            self.state.add(spec.clone(), 0);
            self.state_changed();
        }
        let name = self.ensure_peer(&spec, now);
        self.schedule_dial(&name, now);
    }

    fn set_members(&mut self, specs: Vec<NodeSpec>, now: Instant) {
        let keep: std::collections::BTreeSet<&str> =
            specs.iter().map(|s| s.name.as_str()).collect();
        let gone: Vec<String> = self
            .state
            .members()
            .map(|e| e.spec.name.clone())
            .filter(|n| *n != *self.name && !keep.contains(n.as_str()))
            .collect();
        for spec in &specs {
            if !self.state.is_member(&spec.name) {
                self.join(spec.clone(), now);
            }
        }
        gone.iter().for_each(|n| self.remove(n));
    }

    fn leave_self(&mut self) {
        if !self.state.remove(&self.name) {
            return;
        }
        let mut news = State::new();
        if let Some(e) = self.state.get(&self.name) {
            news.apply(e.clone());
        }
        // Tell everyone before the connections close: drivers send queued frames first.
        self.spread(Arc::new(news), None, false);
        self.start_alone();
    }

    fn remove(&mut self, name: &str) {
        self.pending.remove(name);
        self.targets = None;
        if self.state.remove(name) {
            self.state_changed();
            let mut news = State::new();
            if let Some(e) = self.state.get(name) {
                news.apply(e.clone());
            }
            let news = Arc::new(news);
            self.spread(news.clone(), None, false);
            // The removed node is no longer a member, but it must hear the news too.
            self.send_to(name, &news);
        }
        self.forget(name, CloseReason::Removed);
    }

    /// Starts a new life alone: after leaving, or after learning that this node was removed.
    fn start_alone(&mut self) {
        let names: Vec<Arc<str>> = self.peers.keys().cloned().collect();
        for n in names {
            self.forget(&n, CloseReason::Removed);
        }
        self.incarnation += 1;
        self.state = State::new();
        self.state.add(self.local.clone(), self.incarnation);
        self.pending.clear();
        self.state_changed();
        self.actions.push_back(Action::Left);
    }

    fn gossip(&mut self, conn: ConnId, remote: Arc<State>, now: Instant) {
        if self.membership != Membership::FullMesh {
            return;
        }
        // Membership travels on the control channel only: a state on any other connection is
        // not the peer's gossip (and is ignored).
        let Some(from) = self
            .conns
            .get(&conn)
            .filter(|k| k.channel == self.control)
            .map(|k| k.peer.clone())
        else {
            return;
        };
        if !self.accepts_gossip(&from, &remote) {
            return;
        }
        let remote = self.within_name_rate(&from, remote, now);
        let remote = self.within_capacity(remote);
        let news = self.state.merge_delta(&remote);
        if news.is_empty() {
            return;
        }
        self.state_changed();
        let removed_me = self
            .state
            .get(&self.name)
            .is_some_and(|e| e.removed && e.incarnation >= self.incarnation);
        if removed_me {
            self.start_alone();
            return;
        }
        // A sender that is news to us has just joined through us: it learns the cluster from
        // our whole state (the rest hear of it from the news).
        let sender_is_new = news.get(&from).is_some_and(|e| !e.removed);
        for e in news.entries() {
            let name = e.spec.name.as_str();
            if name == &*self.name {
                continue;
            }
            self.pending.remove(name);
            if e.removed {
                self.forget(name, CloseReason::Removed);
            } else {
                let name = self.ensure_peer(&e.spec, now);
                self.schedule_dial(&name, now);
            }
        }
        if sender_is_new {
            let full = self.full_state();
            self.send_to(&from, &full);
        }
        self.spread(Arc::new(news), Some(&from), true);
    }

    /// `remote` without the names new to this node that `from` may not bring yet (beyond its
    /// `member_name_rate` allowance; counted): even a faulty member adds atoms slowly. The
    /// names left out come again with its later gossip.
    fn within_name_rate(
        &mut self,
        from: &Arc<str>,
        remote: Arc<State>,
        now: Instant,
    ) -> Arc<State> {
        let fresh = remote
            .entries()
            .filter(|e| self.state.get(&e.spec.name).is_none())
            .count();
        if fresh == 0 {
            return remote;
        }
        let rate = f64::from(self.member_name_rate);
        let burst = rate * f64::from(NAME_BURST_SECONDS);
        let allowance = self
            .name_allowance
            .entry(from.clone())
            .or_insert(NameAllowance {
                tokens: burst,
                at: now,
            });
        let refill = now.saturating_duration_since(allowance.at).as_secs_f64() * rate;
        allowance.tokens = (allowance.tokens + refill).min(burst);
        allowance.at = now;
        if fresh as f64 <= allowance.tokens {
            allowance.tokens -= fresh as f64;
            return remote;
        }
        let room = allowance.tokens.floor() as usize;
        allowance.tokens -= room as f64;
        let (kept, left_out) = self.known_and_first_new(&remote, room);
        self.names_over_rate += left_out;
        kept
    }

    /// The entries of `remote` this node knows, and the first `room` it does not; and how
    /// many were left out.
    fn known_and_first_new(&self, remote: &State, mut room: usize) -> (Arc<State>, u64) {
        let mut kept = State::new();
        let mut left_out = 0;
        for e in remote.entries() {
            if self.state.get(&e.spec.name).is_some() {
                kept.apply(e.clone());
            } else if room > 0 {
                room -= 1;
                kept.apply(e.clone());
            } else {
                left_out += 1;
            }
        }
        (Arc::new(kept), left_out)
    }

    /// `remote` without the nodes that would take the membership past `max_members` (those
    /// are counted); the state itself when it fits, which is almost always.
    fn within_capacity(&mut self, remote: Arc<State>) -> Arc<State> {
        if self.state.len() + remote.len() <= self.max_members {
            return remote;
        }
        let room = self.max_members.saturating_sub(self.state.len());
        let (kept, left_out) = self.known_and_first_new(&remote, room);
        self.refused_members += left_out;
        kept
    }

    /// Whether the membership has room for another node.
    fn has_room(&mut self, name: &str) -> bool {
        let room = self.state.get(name).is_some() || self.state.len() < self.max_members;
        if !room {
            self.refused_members += 1;
        }
        room
    }

    /// Whether members are only the nodes joined and the nodes that joined (no gossip).
    fn is_static(&self) -> bool {
        matches!(
            self.membership,
            Membership::Static | Membership::ClientServer(_)
        )
    }

    /// Whether this node may be connected to a node of role `theirs`: always, but in a
    /// client-server cluster (see [`Role::accepts`]).
    pub fn accepts_role(&self, theirs: Role) -> bool {
        match self.membership {
            Membership::ClientServer(ours) => ours.accepts(theirs),
            _ => true,
        }
    }

    /// This node's role in a client-server cluster (`Undefined` otherwise).
    pub fn role(&self) -> Role {
        match self.membership {
            Membership::ClientServer(r) => r,
            _ => Role::Undefined,
        }
    }

    /// Nodes left out of the membership because it held `max_members` already.
    pub fn refused_members(&self) -> u64 {
        self.refused_members
    }

    /// New names left out of gossip merges because their sender exceeded `member_name_rate`.
    pub fn names_over_rate(&self) -> u64 {
        self.names_over_rate
    }

    /// Gossip that thinks this node alive in an older life is stale: its sender has not heard
    /// that we left (or were removed, or restarted) and would pull us back into a cluster we
    /// are no longer part of. It is taken only from a node we asked to join. Gossip that knows
    /// we left comes from a node that dials us on purpose (it is re-adding us) and is taken.
    fn accepts_gossip(&self, from: &str, remote: &State) -> bool {
        let stale = remote
            .get(&self.name)
            .is_some_and(|e| !e.removed && e.incarnation < self.incarnation);
        !stale || self.pending.contains_key(from)
    }

    fn should_dial(&self, name: &str) -> bool {
        if self.overlay.is_some() {
            return self.overlay_wants(name);
        }
        (self.state.is_member(name) && name != &*self.name) || self.pending.contains_key(name)
    }

    fn state_changed(&mut self) {
        self.members_dirty = true;
        self.targets = None;
        self.full = None;
    }

    fn full_state(&mut self) -> Arc<State> {
        self.full
            .get_or_insert_with(|| Arc::new(self.state.clone()))
            .clone()
    }

    /// Sends `state` to the members and join targets, but `except`: to all of them, or to
    /// `fanout` picked at random when `epidemic`.
    fn spread(&mut self, state: Arc<State>, except: Option<&str>, epidemic: bool) {
        if self.membership != Membership::FullMesh {
            return;
        }
        if self.targets.is_none() {
            let t = self
                .peers
                .keys()
                .filter(|n| self.should_dial(n))
                .cloned()
                .collect();
            self.targets = Some(t);
        }
        let targets = self.targets.take().unwrap_or_default();
        let others: Vec<&Arc<str>> = targets.iter().filter(|n| Some(&***n) != except).collect();
        let chosen: Vec<Arc<str>> = if epidemic && others.len() > self.fanout {
            rand::seq::index::sample(&mut self.rng, others.len(), self.fanout)
                .iter()
                .map(|i| others[i].clone())
                .collect()
        } else {
            others.into_iter().cloned().collect()
        };
        chosen.iter().for_each(|n| self.send_to(n, &state));
        self.targets = Some(targets);
    }

    /// Queues `state` on every control connection of `name`.
    fn send_to(&mut self, name: &str, state: &Arc<State>) {
        let Some(p) = self
            .peers
            .get(name)
            .filter(|_| self.membership == Membership::FullMesh)
        else {
            return;
        };
        for s in p.slots[self.control].iter() {
            if let Some(h) = s.conn {
                self.actions.push_back(Action::Gossip {
                    conn: h.id,
                    state: state.clone(),
                });
            }
        }
    }

    // ---- peers, slots and connections -----------------------------------------------------

    /// The peer entry for `spec`, created if new; a changed spec (a restart on new addresses)
    /// replaces the old one.
    fn ensure_peer(&mut self, spec: &NodeSpec, now: Instant) -> Arc<str> {
        if let Some(p) = self.peers.get_mut(spec.name.as_str()) {
            if p.spec != *spec {
                p.spec = spec.clone();
            }
            return p.name.clone();
        }
        // The node with the smaller name dials data channels; the other waits a grace period
        // first so that simultaneous dials rarely happen (the tie-break settles them when they
        // do). Both dial the control channel at once.
        let preferred = *self.name < *spec.name;
        let slots = self
            .parallelism
            .iter()
            .enumerate()
            .map(|(ch, &n)| {
                let first = if ch == self.control || preferred {
                    now
                } else {
                    now + self.interval
                };
                (0..n)
                    .map(|_| Slot {
                        conn: None,
                        dialing: false,
                        failures: 0,
                        not_before: first,
                    })
                    .collect()
            })
            .collect();
        let name: Arc<str> = Arc::from(spec.name.as_str());
        self.peers.insert(
            name.clone(),
            Peer {
                name: name.clone(),
                spec: spec.clone(),
                newest: 0,
                slots,
                up: false,
                generation: 0,
                dial_at: None,
            },
        );
        self.targets = None;
        name
    }

    /// Drops the peer: its connections close for `why` and the driver forgets it.
    fn forget(&mut self, name: &str, why: CloseReason) {
        let Some(p) = self.peers.remove(name) else {
            return;
        };
        self.name_allowance.remove(name);
        self.targets = None;
        if p.up {
            self.actions.push_back(Action::Down {
                peer: p.name.clone(),
                reason: why,
            });
        }
        for h in p.held() {
            self.conns.remove(&h.id);
            self.closing.push((h.id, why));
        }
        self.touched.remove(name);
        self.forgotten.push(p.name);
    }

    fn slot_mut(&mut self, key: &SlotKey) -> Option<&mut Slot> {
        self.peers
            .get_mut(&key.peer)?
            .slots
            .get_mut(key.channel)?
            .get_mut(key.index as usize)
    }

    /// Puts an established connection into its slot, or refuses it.
    fn install(&mut self, id: ConnId, key: &SlotKey, life: u64, dialed_by_me: bool) -> bool {
        if self.stopped {
            return false;
        }
        let new = Held {
            id,
            life,
            dialed_by_me,
        };
        let i_am_smaller = *self.name < *key.peer;
        let Some(p) = self.peers.get_mut(&key.peer) else {
            return false;
        };
        if key.channel >= p.slots.len() || key.index as usize >= p.slots[key.channel].len() {
            return false;
        }
        // A peer whose clock stepped back restarts with a smaller incarnation: once no
        // connection of the newest life is left, the life it offers now is the newest.
        if life < p.newest && p.held().next().is_none() {
            p.newest = life;
        }
        if life < p.newest {
            return false;
        }
        // Would `new` replace the connection in its slot? A newer remote life always wins; for
        // the same life, the connection dialed by the node with the smaller name wins, so both
        // ends keep the same one. Two connections dialed the same way mean the older one is
        // stale: the new one wins.
        let old = p.slots[key.channel][key.index as usize].conn;
        if let Some(old) = old {
            let wins = if new.life != old.life {
                new.life > old.life
            } else if new.dialed_by_me == old.dialed_by_me {
                true
            } else {
                new.dialed_by_me == i_am_smaller
            };
            if !wins {
                return false;
            }
        }
        let mut replaced = Vec::new();
        if life > p.newest {
            // A restarted peer: every connection of its older lives goes at once.
            p.newest = life;
            for s in p.slots.iter_mut().flat_map(|ch| ch.iter_mut()) {
                if let Some(h) = s.conn.filter(|h| h.life < life) {
                    s.conn = None;
                    replaced.push((h.id, CloseReason::Restarted));
                }
            }
        }
        let slot = &mut p.slots[key.channel][key.index as usize];
        if let Some(old) = slot.conn {
            replaced.push((old.id, CloseReason::Superseded));
        }
        slot.conn = Some(new);
        slot.failures = 0;
        for (old, why) in replaced {
            if let Some(k) = self.conns.remove(&old) {
                self.retired.insert(old, k);
            }
            self.closing.push((old, why));
        }
        self.conns.insert(id, key.clone());
        self.actions.push_back(Action::Install {
            conn: id,
            slot: key.clone(),
        });
        if key.channel == self.control
            && self.membership == Membership::FullMesh
            && self.should_dial(&key.peer)
        {
            let full = self.full_state();
            self.actions.push_back(Action::Gossip {
                conn: id,
                state: full,
            });
        }
        // Only a connection of an older life can have been lost here.
        self.touch(&key.peer, CloseReason::Restarted);
        true
    }

    fn closed(&mut self, conn: ConnId, why: CloseReason, now: Instant) {
        self.retired.remove(&conn);
        let Some(key) = self.conns.remove(&conn) else {
            return;
        };
        let retry = now + self.backoff(0).min(self.interval / 2);
        if let Some(s) = self.slot_mut(&key) {
            if s.conn.is_some_and(|h| h.id == conn) {
                s.conn = None;
                s.not_before = retry;
            }
        }
        self.closing.push((conn, why));
        self.touch(&key.peer, why);
        self.schedule_dial(&key.peer, retry);
        self.overlay_closed(&key, why, now);
    }

    fn kill(&mut self, name: &str, now: Instant) {
        let Some(p) = self.peers.get(name) else {
            return;
        };
        let held: Vec<ConnId> = p.held().map(|h| h.id).collect();
        held.into_iter()
            .for_each(|c| self.closed(c, CloseReason::Killed, now));
    }

    fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let names: Vec<Arc<str>> = self.peers.keys().cloned().collect();
        for n in names {
            self.forget(&n, CloseReason::LocalStop);
        }
        self.timers.clear();
    }

    fn dial_failed(&mut self, key: &SlotKey, now: Instant) {
        let Some(s) = self.slot_mut(key) else {
            return;
        };
        s.dialing = false;
        s.failures = s.failures.saturating_add(1);
        let failures = s.failures;
        let retry = now + self.backoff(failures);
        self.retry_at(key, retry);
        self.overlay_dial_failed(key, retry, now);
    }

    fn retry_at(&mut self, key: &SlotKey, at: Instant) {
        if let Some(s) = self.slot_mut(key) {
            s.dialing = false;
            s.not_before = at;
        }
        self.schedule_dial(&key.peer, at);
    }

    /// Exponential backoff from the connection interval, capped at 8x, plus random jitter.
    fn backoff(&mut self, failures: u32) -> Duration {
        let base = self.interval * (1u32 << failures.min(3));
        let jitter_ms = self.jitter.as_millis() as u64;
        let jitter = if jitter_ms == 0 {
            0
        } else {
            self.rng.gen_range(0..=jitter_ms)
        };
        base + Duration::from_millis(jitter)
    }

    fn schedule_dial(&mut self, name: &str, at: Instant) {
        let Some(p) = self.peers.get_mut(name) else {
            return;
        };
        if p.dial_at.is_none_or(|t| at < t) {
            p.dial_at = Some(at);
            self.timers.push(Reverse((at, Timer::Dial(p.name.clone()))));
        }
    }

    /// Dials every empty slot of the peer whose time has come; sets a timer for the others.
    fn dial_due(&mut self, name: &str, now: Instant) {
        if self.stopped || !self.should_dial(name) {
            return;
        }
        let incarnation = self.incarnation;
        // The overlay talks to nodes outside its active view on the control channel only.
        let control_only = self.overlay.is_some() && !self.state.is_member(name);
        let control = self.control;
        let Some(p) = self.peers.get_mut(name) else {
            return;
        };
        let mut next: Option<Instant> = None;
        for (ch, slots) in p.slots.iter_mut().enumerate() {
            if control_only && ch != control {
                continue;
            }
            for (i, s) in slots.iter_mut().enumerate() {
                if s.conn.is_some() || s.dialing {
                    continue;
                }
                if s.not_before <= now {
                    s.dialing = true;
                    self.actions.push_back(Action::Dial {
                        slot: SlotKey {
                            peer: p.name.clone(),
                            channel: ch,
                            index: i as u16,
                        },
                        addrs: p.spec.listen_addrs.clone(),
                        incarnation,
                    });
                } else {
                    next = Some(next.map_or(s.not_before, |t| t.min(s.not_before)));
                }
            }
        }
        if let Some(at) = next {
            self.schedule_dial(name, at);
        }
    }

    /// Marks the peer for an up/down check at the end of the current input.
    fn touch(&mut self, name: &Arc<str>, why: CloseReason) {
        self.touched.entry(name.clone()).or_insert(why);
    }

    /// Finishes the current input: the overlay's actions, then [`Node::settle`].
    fn finish(&mut self, now: Instant) {
        self.run_overlay(now);
        self.settle();
    }

    /// Finishes the current input: ups and downs of the peers it touched (after the installs
    /// that make a peer up, before the closes that take it down), then the closes, the
    /// forgotten peers and the new member list.
    fn settle(&mut self) {
        let touched = std::mem::take(&mut self.touched);
        for (name, why) in touched {
            let Some(p) = self.peers.get_mut(&name) else {
                continue;
            };
            // With an overlay, only neighbours are up (others get a control connection only).
            let member = self.overlay.is_none() || self.state.is_member(&name);
            let up = !self.stopped
                && member
                && p.has_connection(self.control)
                && p.has_connection(self.default);
            if up == p.up {
                continue;
            }
            p.up = up;
            if up {
                p.generation += 1;
                self.actions.push_back(Action::Up {
                    peer: name,
                    generation: p.generation,
                });
            } else {
                self.actions.push_back(Action::Down {
                    peer: name,
                    reason: why,
                });
            }
        }
        for (conn, reason) in self.closing.drain(..) {
            self.actions.push_back(Action::Close { conn, reason });
        }
        for name in self.forgotten.drain(..) {
            self.actions.push_back(Action::Forget(name));
        }
        if std::mem::take(&mut self.members_dirty) {
            // Names are shared with the peer entries: a big cluster changes often while it forms.
            let now: Vec<Arc<str>> = self
                .state
                .members()
                .map(|e| match self.peers.get_key_value(e.spec.name.as_str()) {
                    Some((name, _)) => name.clone(),
                    None if e.spec.name == *self.name => self.name.clone(),
                    None => Arc::from(e.spec.name.as_str()),
                })
                .collect();
            if now != self.last_members {
                self.last_members = now.clone();
                self.actions.push_back(Action::Members(now));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::NodeSpec;

    fn spec(name: &str) -> NodeSpec {
        NodeSpec {
            name: name.to_owned(),
            listen_addrs: vec![([127, 0, 0, 1], 1).into()],
            channels: vec![],
        }
    }

    fn node(name: &str, now: Instant) -> Node {
        Node::new(
            Settings {
                local: spec(name),
                incarnation: 1,
                connection_interval: Duration::from_millis(100),
                connection_jitter: Duration::ZERO,
                periodic_interval: Duration::from_secs(10),
                gossip_fanout: DEFAULT_GOSSIP_FANOUT,
                seed: 1,
                membership: Membership::FullMesh,
                max_members: 3,
                member_name_rate: DEFAULT_MEMBER_NAME_RATE,
            },
            now,
        )
    }

    #[test]
    fn the_client_server_matrix_and_its_wire_bits() {
        use Role::*;
        let allowed: Vec<(Role, Role)> = [Undefined, Client, Server]
            .into_iter()
            .flat_map(|a| [Undefined, Client, Server].map(|b| (a, b)))
            .filter(|(a, b)| a.accepts(*b))
            .collect();
        assert_eq!(
            allowed,
            vec![
                (Undefined, Undefined),
                (Client, Server),
                (Server, Client),
                (Server, Server)
            ]
        );
        for r in [Undefined, Client, Server] {
            assert_eq!(Role::from_capabilities(r.capabilities() | 0x100), r);
        }
    }

    #[test]
    fn gossip_counts_only_on_the_control_channel() {
        let now = Instant::now();
        let mut a = node("a@h", now);
        let control = a.control_channel();
        let data = a.default_channel();
        let b = spec("b@h");
        let name = |c: usize| a.local().channels[c].name.clone();
        let (dc, cc) = (name(data), name(control));
        assert_eq!(a.admit(1, &b, 5, &dc, 0, now).status, AckStatus::Accepted);
        assert_eq!(a.admit(2, &b, 5, &cc, 0, now).status, AckStatus::Accepted);
        while a.poll_action().is_some() {}
        let mut claim = State::new();
        claim.add(b.clone(), 5);
        claim.add(spec("c@h"), 1);
        let claim = Arc::new(claim);
        a.handle(
            Input::Gossip {
                conn: 1,
                state: claim.clone(),
            },
            now,
        );
        assert!(
            !a.state().is_member("c@h"),
            "a state on a data connection is not gossip"
        );
        a.handle(
            Input::Gossip {
                conn: 2,
                state: claim,
            },
            now,
        );
        assert!(a.state().is_member("c@h"));
        // The membership holds at most max_members (3) nodes: a claim of more is cut short.
        let mut flood = State::new();
        for i in 0..100 {
            flood.add(spec(&format!("n{i}@h")), 1);
        }
        a.handle(
            Input::Gossip {
                conn: 2,
                state: Arc::new(flood),
            },
            now,
        );
        assert_eq!(a.state().len(), 3);
        assert_eq!(a.refused_members(), 100);
    }

    #[test]
    fn a_member_brings_new_names_at_its_rate() {
        let t0 = Instant::now();
        let mut a = Node::new(
            Settings {
                max_members: 1_000,
                member_name_rate: 2,
                ..node("a@h", t0).settings_for_test()
            },
            t0,
        );
        let b = spec("b@h");
        let cc = a.local().channels[a.control_channel()].name.clone();
        assert_eq!(a.admit(2, &b, 5, &cc, 0, t0).status, AckStatus::Accepted);
        let flood = |from: usize| {
            let mut s = State::new();
            s.add(b.clone(), 5);
            for i in from..from + 100 {
                s.add(spec(&format!("n{i}@h")), 1);
            }
            Arc::new(s)
        };
        // Rate 2 per second, a burst of 20: b itself and 19 of its names now.
        a.handle(
            Input::Gossip {
                conn: 2,
                state: flood(0),
            },
            t0,
        );
        assert_eq!(a.state().len(), 21);
        assert_eq!(a.names_over_rate(), 81);
        // Five seconds later, ten more; names already known cost nothing.
        let t1 = t0 + Duration::from_secs(5);
        a.handle(
            Input::Gossip {
                conn: 2,
                state: flood(0),
            },
            t1,
        );
        assert_eq!(a.state().len(), 31);
        assert_eq!(a.names_over_rate(), 81 + 71);
    }
}
