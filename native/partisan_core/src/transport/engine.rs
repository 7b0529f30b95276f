//! The engine: owns the tokio runtime and the shared state every task works on.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::runtime::Runtime;
use tokio::sync::{watch, Notify};

use super::close::CloseReason;
use super::cluster::Cluster;
use super::config::{Config, CONTROL_CHANNEL};
use super::pacer::Interactive;
use super::peer::Peer;
use super::send_queue::{OutFrame, PushError, Queued, SendMode};
use super::stats::{Stats, StatsSnapshot};
use super::Handler;
use crate::membership::{ChannelSpec, Compression, NodeSpec};

/// Why a message was not queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// No live connection to the node on that channel.
    NotConnected,
    /// The channel is not configured on this node.
    UnknownChannel,
    /// The queue is over its limit and the caller asked not to be suspended (`nosuspend`).
    Busy,
    /// The engine was stopped.
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinError {
    SelfJoin,
    Stopped,
}

/// State shared by the engine handle and all its tasks.
pub(crate) struct Inner {
    pub cfg: Config,
    pub local: NodeSpec,
    pub local_name: Arc<str>,
    pub handler: Arc<dyn Handler>,
    pub stats: Stats,
    pub channel_ids: HashMap<String, usize>,
    pub parallelism: Vec<u16>,
    pub control: usize,
    /// Partisan's default channel, which a node must be connected on to be up.
    pub default: usize,
    pub peers: RwLock<HashMap<Arc<str>, Arc<Peer>>>,
    pub cluster: Mutex<Cluster>,
    pub wake_maintenance: Notify,
    pub shutdown: watch::Sender<bool>,
    pub next_conn_id: AtomicU64,
    /// Recent small messages, which make streams on other connections yield.
    pub interactive: Interactive,
}

impl Inner {
    pub fn is_stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    pub fn peer(&self, name: &str) -> Option<Arc<Peer>> {
        self.peers.read().get(name).cloned()
    }
}

/// A running partisan node engine. Dropping it stops it.
pub struct Engine {
    inner: Arc<Inner>,
    runtime: Mutex<Option<Runtime>>,
    bound: Vec<SocketAddr>,
}

impl Engine {
    /// Binds the listeners (so the caller learns bound ports and bind errors at once), then starts
    /// the I/O threads, the accept loops and the maintenance and gossip tasks.
    pub fn start(mut cfg: Config, handler: Arc<dyn Handler>) -> io::Result<Engine> {
        crate::wire::validate_node_name(&cfg.name)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        normalise_channels(&mut cfg.channels);
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
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cfg.io_threads.clamp(1, 64))
            .max_blocking_threads(1)
            .thread_name("partisan-io")
            .on_thread_start(move || set_thread_nice(nice))
            .enable_all()
            .build()?;

        let local = NodeSpec {
            name: cfg.name.clone(),
            listen_addrs: bound.clone(),
            channels: cfg.channels.clone(),
        };
        let channel_ids = cfg
            .channels
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect::<HashMap<_, _>>();
        let control = channel_ids[CONTROL_CHANNEL];
        let default = channel_ids[super::DEFAULT_CHANNEL];
        let inner = Arc::new(Inner {
            local_name: Arc::from(cfg.name.as_str()),
            parallelism: cfg.channels.iter().map(|c| c.parallelism.max(1)).collect(),
            cluster: Mutex::new(Cluster::new(local.clone(), cfg.incarnation)),
            local,
            handler,
            stats: Stats::default(),
            channel_ids,
            control,
            default,
            peers: RwLock::new(HashMap::new()),
            wake_maintenance: Notify::new(),
            shutdown: watch::channel(false).0,
            next_conn_id: AtomicU64::new(1),
            interactive: Interactive::default(),
            cfg,
        });

        let _guard = runtime.enter();
        for l in listeners {
            let listener = tokio::net::TcpListener::from_std(l)?;
            runtime.spawn(super::conn::accept_loop(inner.clone(), listener));
        }
        runtime.spawn(super::cluster::maintenance_loop(inner.clone()));
        runtime.spawn(super::cluster::gossip_loop(inner.clone()));
        Ok(Engine {
            inner,
            runtime: Mutex::new(Some(runtime)),
            bound,
        })
    }

    /// Closes every socket and joins the I/O threads. Blocks for at most a few seconds; idempotent.
    pub fn stop(&self) {
        let Some(rt) = self.runtime.lock().take() else {
            return;
        };
        let _ = self.inner.shutdown.send(true);
        let peers: Vec<_> = self.inner.peers.write().drain().map(|(_, p)| p).collect();
        for p in peers {
            p.removed.store(true, Ordering::Release);
            p.all_conns()
                .iter()
                .for_each(|c| c.close(CloseReason::LocalStop));
        }
        rt.shutdown_timeout(Duration::from_secs(2));
    }

    pub fn is_running(&self) -> bool {
        self.runtime.lock().is_some()
    }

    pub fn local(&self) -> &NodeSpec {
        &self.inner.local
    }

    pub fn listen_addrs(&self) -> &[SocketAddr] {
        &self.bound
    }

    pub fn max_frame_size(&self) -> usize {
        self.inner.cfg.max_frame_size
    }

    pub fn channel_id(&self, name: &str) -> Option<usize> {
        self.inner.channel_ids.get(name).copied()
    }

    pub fn channel(&self, id: usize) -> Option<&ChannelSpec> {
        self.inner.cfg.channels.get(id)
    }

    /// The handle the send path uses; cache it and look again once `Peer::is_live` is false.
    pub fn peer(&self, name: &str) -> Option<Arc<Peer>> {
        self.inner.peer(name)
    }

    /// Queues a complete frame for `peer` on `channel`, with back-pressure as `mode` says.
    pub fn send(
        &self,
        peer: &Peer,
        channel: usize,
        key: Option<u64>,
        frame: OutFrame,
        mode: SendMode,
    ) -> Result<Queued, SendError> {
        if channel >= self.inner.parallelism.len() {
            return Err(SendError::UnknownChannel);
        }
        let len = frame.len() as u64;
        let stats = &self.inner.stats;
        match peer.push(
            channel,
            key,
            frame,
            mode,
            self.inner.cfg.send_queue_limit,
            &self.inner.interactive,
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
        Stats::incr(&self.inner.stats.frames_too_large);
    }

    /// Counts a message to a node with no peer entry at all.
    pub fn count_no_connection(&self) {
        Stats::incr(&self.inner.stats.dropped_no_connection);
    }

    pub fn join(&self, spec: NodeSpec) -> Result<(), JoinError> {
        if spec.name == self.inner.cfg.name {
            return Err(JoinError::SelfJoin);
        }
        if self.inner.is_stopping() {
            return Err(JoinError::Stopped);
        }
        super::cluster::join(&self.inner, spec);
        Ok(())
    }

    /// Leaves the cluster (`name` is this node) or removes `name` from it everywhere.
    pub fn leave(&self, name: &str) {
        super::cluster::leave(&self.inner, name);
    }

    /// Makes the membership equal to `specs` (plus this node): joins the new, removes the missing.
    pub fn update_members(&self, specs: Vec<NodeSpec>) {
        let keep: std::collections::HashSet<String> =
            specs.iter().map(|s| s.name.clone()).collect();
        for spec in specs {
            if spec.name != self.inner.cfg.name
                && !self.inner.cluster.lock().state.is_member(&spec.name)
            {
                super::cluster::join(&self.inner, spec);
            }
        }
        let gone: Vec<String> = self
            .members()
            .into_iter()
            .map(|s| s.name)
            .filter(|n| *n != self.inner.cfg.name && !keep.contains(n))
            .collect();
        gone.iter()
            .for_each(|n| super::cluster::leave(&self.inner, n));
    }

    /// Live members, including this node, sorted by name.
    pub fn members(&self) -> Vec<NodeSpec> {
        self.inner
            .cluster
            .lock()
            .state
            .members()
            .map(|e| e.spec.clone())
            .collect()
    }

    /// Members that are up (this node excluded), sorted: a message to any of them is taken at
    /// once (see `Peer::up`).
    pub fn nodes(&self) -> Vec<Arc<str>> {
        let cluster = self.inner.cluster.lock();
        let peers = self.inner.peers.read();
        let mut v: Vec<Arc<str>> = cluster
            .state
            .members()
            .filter_map(|e| peers.get(e.spec.name.as_str()))
            .filter(|p| p.up.load(Ordering::Acquire))
            .map(|p| p.name.clone())
            .collect();
        v.sort();
        v
    }

    pub fn is_connected(&self, name: &str, channel: Option<usize>) -> bool {
        self.inner
            .peer(name)
            .is_some_and(|p| p.is_connected(channel))
    }

    /// While the node is up, the number of times it came up (its current connection life).
    pub fn up_generation(&self, name: &str) -> Option<u64> {
        let peer = self.inner.peer(name)?;
        let _stable = peer.up_changes.lock();
        peer.up
            .load(Ordering::Acquire)
            .then(|| peer.generation.load(Ordering::Acquire))
    }

    pub fn is_fully_connected(&self, name: &str) -> bool {
        self.inner
            .peer(name)
            .is_some_and(|p| p.is_fully_connected())
    }

    /// Live connections as (node, channel name, index).
    pub fn connections(&self) -> Vec<(Arc<str>, String, u16)> {
        let peers = self.inner.peers.read();
        let mut v = Vec::new();
        for p in peers.values() {
            for c in p.all_conns() {
                v.push((
                    p.name.clone(),
                    self.inner.cfg.channels[c.channel].name.clone(),
                    c.index,
                ));
            }
        }
        v.sort();
        v
    }

    /// Closes every connection to these nodes; members are redialled by the maintenance task.
    pub fn kill_connections(&self, names: &[&str]) {
        for n in names {
            if let Some(p) = self.inner.peer(n) {
                p.all_conns()
                    .iter()
                    .for_each(|c| c.close(CloseReason::Killed));
            }
        }
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.inner.stats.snapshot()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.lock().take() {
            let _ = self.inner.shutdown.send(true);
            self.inner.peers.write().clear();
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

/// Sorts channels by name, drops duplicates and makes sure the default and control channels exist.
fn normalise_channels(channels: &mut Vec<ChannelSpec>) {
    for (name, compression) in [
        (super::DEFAULT_CHANNEL, Compression::Off),
        (CONTROL_CHANNEL, Compression::Off),
    ] {
        if !channels.iter().any(|c| c.name == name) {
            channels.push(ChannelSpec {
                name: name.to_owned(),
                parallelism: 1,
                monotonic: false,
                compression,
            });
        }
    }
    channels.sort_by(|a, b| a.name.cmp(&b.name));
    channels.dedup_by(|a, b| a.name == b.name);
    for c in channels.iter_mut() {
        c.parallelism = c.parallelism.max(1);
    }
}
