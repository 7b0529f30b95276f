//! The driver of the control core: feeds it the connections' events and the time, and carries
//! out its actions on the routing table, the connections and the handler.
//!
//! Lock order: `core` (the state machine and the connection registry), then `routes`, then a
//! slot of a routing peer. The send path takes only the last two, for reading. Actions are
//! carried out under `core`, in the order the core emits them, so events reach the handler in
//! order and the routing table never shows a peer up that it cannot send to.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{mpsc, watch, Notify};

use super::broadcast::{Broadcasts, Out};
use super::close::CloseReason;
use super::config::Config;
use super::pacer::Interactive;
use super::peer::{Conn, Peer};
use super::stats::Stats;
use super::{Event, Handler, Origin};
use crate::control::{Action, Admission, ConnId, Input, Node, Role, Settings, SlotKey};
use crate::membership::{NodeSpec, State};
use crate::wire::{encode_frame, AckStatus, FrameKind, Hello, HelloAck, WireError, CAPABILITIES};

/// A dial the core asked for, carried out by the connection tasks.
pub(crate) struct DialRequest {
    pub slot: SlotKey,
    pub addrs: Vec<std::net::SocketAddr>,
    pub hello: Hello,
}

struct Core {
    node: Node,
    /// Connections the core may name in its actions.
    conns: HashMap<ConnId, Arc<Conn>>,
    /// Plumtree, over the peers the node reports up.
    broadcasts: Broadcasts,
}

/// The state shared by the engine handle and its tasks.
pub(crate) struct Driver {
    cfg: Config,
    local: NodeSpec,
    local_name: Arc<str>,
    handler: Arc<dyn Handler>,
    stats: Stats,
    interactive: Interactive,
    channel_ids: HashMap<String, usize>,
    parallelism: Vec<u16>,
    /// The channel index of each broadcast module that has its own channel.
    broadcast_channels: HashMap<Arc<str>, usize>,
    core: Mutex<Core>,
    routes: RwLock<HashMap<Arc<str>, Arc<Peer>>>,
    dials: mpsc::UnboundedSender<DialRequest>,
    timer: Notify,
    shutdown: watch::Sender<bool>,
    next_conn: AtomicU64,
    /// This node's client-server role (fixed at start).
    role: Role,
}

impl Driver {
    /// A driver for `cfg` (whose listen addresses are the bound ones); dial requests go to the
    /// returned receiver.
    pub fn new(
        cfg: Config,
        handler: Arc<dyn Handler>,
    ) -> (Arc<Driver>, mpsc::UnboundedReceiver<DialRequest>) {
        let now = Instant::now();
        let node = Node::new(
            Settings {
                local: NodeSpec {
                    name: cfg.name.clone(),
                    listen_addrs: cfg.listen_addrs.clone(),
                    channels: cfg.channels.clone(),
                },
                incarnation: cfg.incarnation,
                connection_interval: cfg.connection_interval,
                connection_jitter: cfg.connection_jitter,
                periodic_interval: cfg.periodic_interval,
                gossip_fanout: cfg.gossip_fanout,
                seed: cfg.incarnation ^ 0x7061_7274_6973_616e,
                membership: cfg.membership.clone(),
                max_members: cfg.max_members,
                member_name_rate: cfg.member_name_rate,
            },
            now,
        );
        let local = node.local().clone();
        let broadcasts = Broadcasts::new(
            Arc::from(local.name.as_str()),
            &cfg.broadcast_mods,
            cfg.plumtree.clone(),
            now,
        );
        // (A channel this node does not have leaves the module on the control channel.)
        let broadcast_channels = cfg
            .broadcast_channels
            .iter()
            .filter_map(|(m, ch)| {
                let i = local.channels.iter().position(|c| &c.name == ch)?;
                Some((Arc::from(m.as_str()), i))
            })
            .collect();
        let (dials, requests) = mpsc::unbounded_channel();
        let driver = Driver {
            channel_ids: local
                .channels
                .iter()
                .enumerate()
                .map(|(i, c)| (c.name.clone(), i))
                .collect(),
            parallelism: local.channels.iter().map(|c| c.parallelism).collect(),
            broadcast_channels,
            local_name: Arc::from(local.name.as_str()),
            local,
            handler,
            stats: Stats::default(),
            interactive: Interactive::default(),
            core: Mutex::new(Core {
                broadcasts,
                node,
                conns: HashMap::new(),
            }),
            routes: RwLock::new(HashMap::new()),
            dials,
            timer: Notify::new(),
            shutdown: watch::channel(false).0,
            next_conn: AtomicU64::new(1),
            role: match cfg.membership {
                crate::control::Membership::ClientServer(r) => r,
                _ => Role::Undefined,
            },
            cfg,
        };
        (Arc::new(driver), requests)
    }

    // ---- what the tasks read ----------------------------------------------------------------

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// This node's spec, channels normalised.
    pub fn local(&self) -> &NodeSpec {
        &self.local
    }

    pub fn local_name(&self) -> &Arc<str> {
        &self.local_name
    }

    pub fn handler(&self) -> &dyn Handler {
        &*self.handler
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn interactive(&self) -> &Interactive {
        &self.interactive
    }

    pub fn channel_id(&self, name: &str) -> Option<usize> {
        self.channel_ids.get(name).copied()
    }

    pub fn channels(&self) -> usize {
        self.parallelism.len()
    }

    pub fn is_stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    pub fn route(&self, name: &str) -> Option<Arc<Peer>> {
        self.routes.read().get(name).cloned()
    }

    pub fn routes(&self) -> Vec<Arc<Peer>> {
        self.routes.read().values().cloned().collect()
    }

    /// Runs `f` on the core (for queries).
    pub fn with_node<T>(&self, f: impl FnOnce(&Node) -> T) -> T {
        f(&self.core.lock().node)
    }

    /// Runs `f` on the core for a change that answers at once, then carries out what it asks.
    pub fn with_node_mut<T>(&self, f: impl FnOnce(&mut Node) -> T) -> T {
        let mut core = self.core.lock();
        let out = f(&mut core.node);
        self.carry_out(&mut core);
        out
    }

    // ---- events in --------------------------------------------------------------------------

    /// Feeds one event to the core and carries out what it asks.
    pub fn input(&self, input: Input) {
        let mut core = self.core.lock();
        core.node.handle(input, Instant::now());
        self.carry_out(&mut core);
    }

    /// The acceptor's half of a handshake: the core's answer to `hello`, and the connection to
    /// run if it was installed.
    pub fn admit(&self, hello: &Hello) -> (HelloAck, Option<Arc<Conn>>) {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let conn = self.channel_id(&hello.channel).map(|ch| {
            Arc::new(Conn::new(
                id,
                ch,
                hello.index,
                self.origin(&hello.spec.name, hello),
            ))
        });
        let mut core = self.core.lock();
        if let Some(c) = &conn {
            core.conns.insert(id, c.clone());
        }
        let theirs = Role::from_capabilities(hello.capabilities);
        let admission = if core.node.accepts_role(theirs) {
            core.node.admit(
                id,
                &hello.spec,
                hello.incarnation,
                &hello.channel,
                hello.index,
                Instant::now(),
            )
        } else {
            self.handler.event(Event::RoleRefused {
                peer: Arc::from(hello.spec.name.as_str()),
                theirs,
            });
            Admission {
                status: AckStatus::Refused,
                incarnation: core.node.incarnation(),
            }
        };
        let installed = admission.status == AckStatus::Accepted;
        if !installed {
            core.conns.remove(&id);
            self.stats.count_refusal(admission.status);
        }
        self.carry_out(&mut core);
        let ack = HelloAck {
            status: admission.status,
            name: self.local_name.to_string(),
            incarnation: admission.incarnation,
            pids: self.cfg.pids.clone(),
            capabilities: self.capabilities(),
        };
        (ack, conn.filter(|_| installed))
    }

    /// The dialer's half: the ack for `slot` arrived; the connection to run if it was installed.
    pub fn dialed(&self, slot: &SlotKey, ack: &HelloAck) -> Option<Arc<Conn>> {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let origin = Origin::new(
            &slot.peer,
            &ack.pids,
            &self.local_name,
            &self.cfg.pids,
            self.cfg.rewrite,
        );
        let conn = Arc::new(Conn::new(id, slot.channel, slot.index, origin));
        let mut core = self.core.lock();
        core.conns.insert(id, conn.clone());
        let theirs = Role::from_capabilities(ack.capabilities);
        // Both ends check the roles: the acceptor refuses, the dialer drops the join.
        let refused = matches!(ack.status, AckStatus::Accepted | AckStatus::Refused)
            && !core.node.accepts_role(theirs);
        let status = if refused {
            AckStatus::Refused
        } else {
            ack.status
        };
        let now = Instant::now();
        let installed = core
            .node
            .dialed(slot, id, &ack.name, status, ack.incarnation, now);
        if !installed {
            core.conns.remove(&id);
        }
        if refused && ack.name == *slot.peer {
            // Never a member: no redials (Partisan 5 keeps such a node pending for ever).
            core.node.handle(Input::Leave(ack.name.clone()), now);
            self.handler.event(Event::RoleRefused {
                peer: slot.peer.clone(),
                theirs,
            });
        }
        self.carry_out(&mut core);
        installed.then_some(conn)
    }

    /// The hello this node sends when it dials `slot`.
    fn hello(&self, slot: &SlotKey, incarnation: u64) -> Hello {
        Hello {
            spec: self.local.clone(),
            incarnation,
            pids: self.cfg.pids.clone(),
            channel: self.local.channels[slot.channel].name.clone(),
            index: slot.index,
            capabilities: self.capabilities(),
        }
    }

    /// The feature bits of this node's handshakes: its client-server role.
    fn capabilities(&self) -> u32 {
        CAPABILITIES | self.role.capabilities()
    }

    fn origin(&self, node: &str, hello: &Hello) -> Origin {
        Origin::new(
            node,
            &hello.pids,
            &self.local_name,
            &self.cfg.pids,
            self.cfg.rewrite,
        )
    }

    /// A connection's reader ended; `reason` is the first one anybody gave.
    pub fn closed(&self, conn: &Conn, reason: CloseReason) {
        self.stats.count_close(reason);
        self.input(Input::Closed {
            conn: conn.id,
            reason,
        });
    }

    /// An overlay (HyParView) message arrived on `conn`.
    pub fn overlay(&self, conn: &Conn, body: Bytes) {
        self.input(Input::Overlay {
            conn: conn.id,
            body,
        });
    }

    pub fn gossip(&self, conn: &Conn, state: State) {
        self.input(Input::Gossip {
            conn: conn.id,
            state: Arc::new(state),
        });
    }

    /// Fires the core's timers as they come due, until the engine stops.
    pub async fn timer_loop(self: Arc<Driver>) {
        let mut shutdown = self.shutdown_signal();
        loop {
            let due = {
                let core = self.core.lock();
                let b = core.broadcasts.poll_timeout();
                match (core.node.poll_timeout(), b) {
                    (Some(n), Some(b)) => Some(n.min(b)),
                    (n, b) => n.or(b),
                }
            };
            let sleep = async {
                match due {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = sleep => {
                    let mut core = self.core.lock();
                    let now = Instant::now();
                    core.node.handle_timeout(now);
                    core.broadcasts.handle_timeout(now);
                    self.carry_out(&mut core);
                }
                _ = self.timer.notified() => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Stops the core (every connection closes) and signals every task to end.
    pub fn stop(&self) {
        self.input(Input::Stop);
        let _ = self.shutdown.send(true);
    }

    // ---- actions out --------------------------------------------------------------------------

    fn carry_out(&self, core: &mut Core) {
        // One encoding per gossiped state, however many connections it goes to.
        let mut encoded: Option<(Arc<State>, Bytes)> = None;
        while let Some(action) = core.node.poll_action() {
            match action {
                Action::Dial {
                    slot,
                    addrs,
                    incarnation,
                } => {
                    let hello = self.hello(&slot, incarnation);
                    let _ = self.dials.send(DialRequest { slot, addrs, hello });
                }
                Action::Install { conn, slot } => {
                    let Some(c) = core.conns.get(&conn) else {
                        continue;
                    };
                    let mut routes = self.routes.write();
                    let peer = routes
                        .entry(slot.peer.clone())
                        .or_insert_with(|| Arc::new(Peer::new(slot.peer, &self.parallelism)));
                    peer.install(c.clone());
                }
                Action::Close { conn, reason } => {
                    if let Some(c) = core.conns.remove(&conn) {
                        c.close(reason);
                        if let Some(p) = self.route(&c.origin.node) {
                            p.vacate(&c);
                        }
                    }
                }
                Action::Gossip { conn, state } => {
                    let frame = match &encoded {
                        Some((last, f)) if Arc::ptr_eq(last, &state) => f.clone(),
                        _ => {
                            let f = encode_frame(FrameKind::Gossip, &state.encode());
                            encoded = Some((state, f.clone()));
                            f
                        }
                    };
                    if let Some(c) = core.conns.get(&conn) {
                        c.enqueue(frame);
                    }
                }
                Action::Up { peer, generation } => {
                    if let Some(p) = self.route(&peer) {
                        p.set_up_life(Some(generation));
                    }
                    core.broadcasts.neighbour(&peer, true, Instant::now());
                    self.handler.event(Event::NodeUp(peer));
                }
                Action::Down { peer, reason } => {
                    if let Some(p) = self.route(&peer) {
                        p.set_up_life(None);
                    }
                    core.broadcasts.neighbour(&peer, false, Instant::now());
                    self.handler.event(Event::NodeDown(peer, reason));
                }
                Action::Overlay { conn, body } => {
                    if let Some(c) = core.conns.get(&conn) {
                        c.enqueue(encode_frame(FrameKind::Overlay, &body));
                    }
                }
                Action::Members(members) => self.handler.event(Event::Membership(members)),
                Action::Left => self.handler.event(Event::Left(self.local_name.clone())),
                Action::Forget(peer) => {
                    if let Some(p) = self.routes.write().remove(&peer) {
                        p.retire();
                    }
                }
            }
        }
        self.carry_out_broadcasts(core);
        self.timer.notify_one();
    }

    /// Sends what the Plumtree cores ask to the peers, on the module's channel (the control
    /// channel for a module that names none, or while the peer's connection on its channel is
    /// not up), and hands new payloads to the handler. A peer that is gone by now simply misses
    /// the message (the tree repairs itself: the peer is no longer a neighbour).
    fn carry_out_broadcasts(&self, core: &mut Core) {
        let control = core.node.control_channel();
        for out in core.broadcasts.poll() {
            match out {
                Out::Send { to, module, body } => {
                    let channel = self.broadcast_channels.get(&module).copied();
                    let conn = self.route(&to).and_then(|p| {
                        let conns = p.all_conns();
                        let on = |ch: usize| conns.iter().find(|c| c.channel == ch).cloned();
                        channel.and_then(on).or_else(|| on(control))
                    });
                    if let Some(c) = conn {
                        c.enqueue(encode_frame(FrameKind::Broadcast, &body));
                    }
                }
                Out::Deliver {
                    module,
                    root,
                    id,
                    data,
                } => self.handler.event(Event::Broadcast {
                    module,
                    root,
                    id,
                    data,
                }),
            }
        }
    }

    /// A Plumtree message arrived on `conn` (from its authenticated peer), on whichever
    /// channel its module uses there. A malformed one closes the connection; one for a module
    /// this node has no handler for is counted.
    pub fn broadcast_received(&self, conn: &Conn, body: &[u8]) -> Result<(), WireError> {
        let mut core = self.core.lock();
        if conn.channel != core.node.control_channel() {
            self.stats.count_broadcast_on_own_channel();
        }
        let from = Arc::from(conn.origin.node.as_ref());
        if !core.broadcasts.received(&from, body, Instant::now())? {
            self.stats.count_unknown_broadcast();
        }
        self.carry_out_broadcasts(&mut core);
        self.timer.notify_one();
        Ok(())
    }

    /// Broadcasts a message of handler `module` from this node; false for an unknown module.
    pub fn broadcast(&self, module: &str, id: Bytes, data: Bytes) -> bool {
        let mut core = self.core.lock();
        let known = core.broadcasts.broadcast(module, id, data, Instant::now());
        self.carry_out_broadcasts(&mut core);
        self.timer.notify_one();
        known
    }

    /// The eager and lazy peers of `root`'s tree for `module`.
    pub fn broadcast_peers(&self, module: &str, root: &str) -> Option<super::broadcast::TreePeers> {
        self.core.lock().broadcasts.peers(module, root)
    }

    /// A peer at `addr` did not prove the cluster's secret (`as_dialer`: the node we dialed).
    pub fn auth_failed(&self, addr: Option<std::net::SocketAddr>, as_dialer: bool) {
        self.handler.event(Event::AuthFailed { addr, as_dialer });
    }

    pub fn tls_failed(&self, addr: Option<std::net::SocketAddr>, as_dialer: bool, why: String) {
        self.handler.event(Event::TlsFailed {
            addr,
            as_dialer,
            why,
        });
    }

    /// A dial failed before its handshake completed.
    pub fn dial_failed(&self, slot: SlotKey) {
        self.input(Input::DialFailed(slot));
    }
}
