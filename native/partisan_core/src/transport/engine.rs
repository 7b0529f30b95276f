//! The engine: the public handle; owns the tokio runtime, whose tasks drive the control core.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;

use super::config::Config;
use super::driver::Driver;
use super::io_runtime::IoRuntime;
use super::peer::Peer;
use super::send_queue::{OutFrame, PushError, Queued, SendMode};
use super::stats::{Stats, StatsSnapshot};
use super::Handler;
use crate::control::Input;
use crate::membership::{ChannelSpec, NodeSpec};

/// Why a message was not queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// No live connection to the node on that channel.
    NotConnected,
    /// The channel is not configured on this node.
    UnknownChannel,
    /// The queue is over its limit and the caller asked not to be suspended (`nosuspend`).
    Busy,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SendError::NotConnected => "no connection to the node on that channel",
            SendError::UnknownChannel => "no such channel on this node",
            SendError::Busy => "the connection's queue is over its limit",
        })
    }
}

impl std::error::Error for SendError {}

/// Why [`Engine::join`] refused a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinError {
    /// The spec names this node itself.
    SelfJoin,
    /// The engine is stopping or stopped.
    Stopped,
}

impl std::fmt::Display for JoinError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            JoinError::SelfJoin => "a node cannot join itself",
            JoinError::Stopped => "the engine is stopped",
        })
    }
}

impl std::error::Error for JoinError {}

/// A running partisan node engine. Dropping it stops it.
pub struct Engine {
    driver: Arc<Driver>,
    runtime: Mutex<Option<IoRuntime>>,
    bound: Vec<SocketAddr>,
}

impl Engine {
    /// Binds the listeners (so the caller learns bound ports and bind errors at once), then starts
    /// the I/O threads, the accept loops and the maintenance and gossip tasks.
    pub fn start(mut cfg: Config, handler: Arc<dyn Handler>) -> io::Result<Engine> {
        crate::wire::validate_node_name(&cfg.name)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let listeners = cfg
            .listen_addrs
            .iter()
            .map(|a| {
                std::net::TcpListener::bind(a).and_then(|l| l.set_nonblocking(true).map(|_| l))
            })
            .collect::<io::Result<Vec<_>>>()?;
        let bound = listeners
            .iter()
            .map(|l| l.local_addr())
            .collect::<io::Result<Vec<_>>>()?;
        let nice = cfg.io_nice;
        let runtime = IoRuntime::start(cfg.io_threads.clamp(1, 64), move || set_thread_nice(nice))?;
        cfg.listen_addrs = bound.clone();
        let (driver, dials) = Driver::new(cfg, handler);

        let io = runtime.handle().clone();
        let _guard = io.enter();
        for l in listeners {
            let listener = tokio::net::TcpListener::from_std(l)?;
            io.spawn(super::conn::accept_loop(driver.clone(), listener));
        }
        io.spawn(super::conn::dial_loop(driver.clone(), dials));
        io.spawn(driver.clone().timer_loop());
        Ok(Engine {
            driver,
            runtime: Mutex::new(Some(runtime)),
            bound,
        })
    }

    /// Closes every socket and joins the I/O threads. Blocks for at most a few seconds; idempotent.
    pub fn stop(&self) {
        let Some(rt) = self.runtime.lock().take() else {
            return;
        };
        self.driver.stop();
        rt.shutdown(Duration::from_secs(2));
    }

    /// Whether the engine runs: false once [`Engine::stop`] was called.
    pub fn is_running(&self) -> bool {
        self.runtime.lock().is_some()
    }

    /// This node's spec: its name, bound listen addresses and normalised channels (their
    /// order defines the channel ids).
    pub fn local(&self) -> &NodeSpec {
        self.driver.local()
    }

    /// The addresses the listeners are bound to, ephemeral ports resolved.
    pub fn listen_addrs(&self) -> &[SocketAddr] {
        &self.bound
    }

    /// The largest frame this node sends or accepts, in bytes of kind and body.
    pub fn max_frame_size(&self) -> usize {
        self.driver.config().max_frame_size
    }

    /// The id of the channel called `name` (its index in [`Engine::local`]'s channels), if
    /// it is configured.
    pub fn channel_id(&self, name: &str) -> Option<usize> {
        self.driver.channel_id(name)
    }

    /// The spec of the channel with id `id`, if there is one.
    pub fn channel(&self, id: usize) -> Option<&ChannelSpec> {
        self.driver.local().channels.get(id)
    }

    /// The handle the send path uses; cache it and look again once `Peer::is_live` is false.
    pub fn peer(&self, name: &str) -> Option<Arc<Peer>> {
        self.driver.route(name)
    }

    /// Queues a complete frame for `peer` on `channel`, with back-pressure as `mode` says.
    pub fn send(
        &self,
        peer: &Peer,
        channel: usize,
        key: Option<u64>,
        frame: OutFrame,
        mode: SendMode<'_>,
    ) -> Result<Queued, SendError> {
        self.send_at(peer, channel, key, frame, mode, Instant::now())
    }

    /// [`Engine::send`] for a caller that has just read the clock: `now` tells the connection
    /// whether it has been quiet (a clock read is a sizeable part of a small send).
    pub fn send_at(
        &self,
        peer: &Peer,
        channel: usize,
        key: Option<u64>,
        frame: OutFrame,
        mode: SendMode<'_>,
        now: Instant,
    ) -> Result<Queued, SendError> {
        if channel >= self.driver.channels() {
            return Err(SendError::UnknownChannel);
        }
        let len = frame.len() as u64;
        let stats = self.driver.stats();
        match peer.push(
            channel,
            key,
            frame,
            mode,
            self.driver.config().send_queue_limit,
            self.driver.interactive(),
            now,
        ) {
            Ok(queued) => {
                stats.sent.fetch_add(1, Ordering::Relaxed);
                stats.bytes_sent.fetch_add(len, Ordering::Relaxed);
                match queued {
                    Queued::Suspended => Stats::incr(&stats.senders_suspended),
                    Queued::Written => Stats::incr(&stats.written_directly),
                    Queued::Sent => {}
                }
                Ok(queued)
            }
            Err(PushError::Busy) => {
                Stats::incr(&stats.busy_refusals);
                Err(SendError::Busy)
            }
            Err(PushError::Closed) => {
                Stats::incr(&stats.dropped_no_connection);
                Err(SendError::NotConnected)
            }
        }
    }

    /// Counts a message the caller refused before it reached a queue (e.g. over the size limit).
    pub fn count_too_large(&self) {
        Stats::incr(&self.driver.stats().frames_too_large);
    }

    /// Counts a message to a node with no peer entry at all.
    pub fn count_no_connection(&self) {
        Stats::incr(&self.driver.stats().dropped_no_connection);
    }

    /// Joins the cluster of `spec`'s node: the control core records the node and dials it.
    /// Returns at once, before any connection is up; refuses this node itself and a stopping
    /// engine.
    pub fn join(&self, spec: NodeSpec) -> Result<(), JoinError> {
        if spec.name == **self.driver.local_name() {
            return Err(JoinError::SelfJoin);
        }
        if self.driver.is_stopping() {
            return Err(JoinError::Stopped);
        }
        self.driver.input(Input::Join(spec));
        Ok(())
    }

    /// Leaves the cluster (`name` is this node) or removes `name` from it everywhere.
    pub fn leave(&self, name: &str) {
        self.driver.input(Input::Leave(name.to_owned()));
    }

    /// Makes the membership equal to `specs` (plus this node): joins the new, removes the missing.
    pub fn update_members(&self, specs: Vec<NodeSpec>) {
        self.driver.input(Input::SetMembers(specs));
    }

    /// Live members, including this node, sorted by name.
    pub fn members(&self) -> Vec<NodeSpec> {
        self.driver.with_node(|n| n.members())
    }

    /// Broadcasts a message of the Plumtree handler `module` (its id and payload are opaque
    /// bytes); false if `module` is not one of the configured `broadcast_mods`.
    pub fn broadcast(&self, module: &str, id: Bytes, data: Bytes) -> bool {
        self.driver.broadcast(module, id, data)
    }

    /// The eager and the lazy peers of `root`'s broadcast tree for `module`.
    pub fn broadcast_peers(&self, module: &str, root: &str) -> Option<super::broadcast::TreePeers> {
        self.driver.broadcast_peers(module, root)
    }

    /// HyParView's active and passive views (empty for other memberships).
    pub fn overlay_views(&self) -> (Vec<Arc<str>>, Vec<Arc<str>>) {
        self.driver
            .with_node(|n| (n.active_view(), n.passive_view()))
    }

    /// Reserves a slot of HyParView's active view for a neighbour tagged `tag` (Partisan's
    /// `reserve/1`); `Err` when every slot is reserved, or the membership is not HyParView.
    pub fn overlay_reserve(&self, tag: &str) -> Result<(), crate::hyparview::NoAvailableSlots> {
        self.driver.with_node_mut(|n| n.overlay_reserve(tag))
    }

    /// The neighbour in the slot reserved for `tag`: `Some(None)` while it is open, `None` if
    /// no slot is reserved for it.
    pub fn overlay_reserved(&self, tag: &str) -> Option<Option<Arc<str>>> {
        self.driver.with_node(|n| n.overlay_reserved(tag))
    }

    /// Members that are up (this node excluded), sorted: a message to any of them is taken at
    /// once (see `Peer::up_life`).
    pub fn nodes(&self) -> Vec<Arc<str>> {
        self.driver.with_node(|n| n.nodes())
    }

    /// Whether `name` is up and, if `channel` is given, has a connection on that channel.
    pub fn is_connected(&self, name: &str, channel: Option<usize>) -> bool {
        self.driver
            .route(name)
            .is_some_and(|p| p.is_connected(channel))
    }

    /// Whether every (channel, index) slot to `name` holds a live connection.
    pub fn is_fully_connected(&self, name: &str) -> bool {
        self.driver
            .route(name)
            .is_some_and(|p| p.is_fully_connected())
    }

    /// Live connections as (node, channel name, index).
    pub fn connections(&self) -> Vec<(Arc<str>, String, u16)> {
        let channels = &self.driver.local().channels;
        let mut v = Vec::new();
        for p in self.driver.routes() {
            for c in p.all_conns() {
                v.push((p.name.clone(), channels[c.channel].name.clone(), c.index));
            }
        }
        v.sort();
        v
    }

    /// Closes every connection to these nodes; members are redialled after a backoff.
    pub fn kill_connections(&self, names: &[&str]) {
        self.driver.input(Input::KillConnections(
            names.iter().map(|n| n.to_string()).collect(),
        ));
    }

    /// A copy of the engine's counters (see [`Stats`]).
    pub fn stats(&self) -> StatsSnapshot {
        let mut snapshot = self.driver.stats().snapshot();
        let (refused, over_rate) = self
            .driver
            .with_node(|n| (n.refused_members(), n.names_over_rate()));
        snapshot.0.push(("refused_members", refused));
        snapshot.0.push(("names_over_rate", over_rate));
        snapshot
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.lock().take() {
            self.driver.stop();
            // Drop may run on a thread that must not block (a VM scheduler): let the runtime's
            // threads wind down on their own.
            rt.shutdown_background();
        }
    }
}

/// Lowers (or raises) the OS priority of the calling thread; 0 leaves it alone. On a machine
/// with few cores, a positive value lets the VM's schedulers win when they and the I/O threads
/// want the same core. Failure (e.g. no right to raise priority) leaves the thread as it was.
fn set_thread_nice(nice: i32) {
    if nice != 0 {
        // SAFETY: on Linux, PRIO_PROCESS with who = 0 applies to the calling thread only.
        unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    }
}
