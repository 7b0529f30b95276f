//! A remote node as the send path sees it: one slot per (channel, index), each holding at most
//! one live connection, and each connection a queue drained by its writer task.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use super::close::{CloseCell, CloseReason};
use super::pacer::Interactive;
use super::send_queue::{OutFrame, PushError, Queued, SendMode, SendQueue};
use super::Origin;

use crate::membership::NodeSpec;

/// One established connection.
pub(crate) struct Conn {
    pub id: u64,
    pub channel: usize,
    pub index: u16,
    pub remote_incarnation: u64,
    pub dialed_by_me: bool,
    /// The remote node as its messages' handler needs it.
    pub origin: Origin,
    pub queue: SendQueue,
    /// Why it closed, once it did.
    pub(crate) closed: CloseCell,
    /// Tells the reader to stop.
    pub stop_reader: watch::Sender<bool>,
}

impl Conn {
    pub fn new(
        id: u64,
        channel: usize,
        index: u16,
        remote_incarnation: u64,
        dialed_by_me: bool,
        origin: Origin,
    ) -> Conn {
        Conn {
            id,
            channel,
            index,
            remote_incarnation,
            dialed_by_me,
            origin,
            queue: SendQueue::new(),
            closed: CloseCell::default(),
            stop_reader: watch::channel(false).0,
        }
    }

    /// Queues a control frame (gossip, ping); false if the connection is closing.
    pub fn enqueue(&self, frame: Bytes) -> bool {
        self.queue.push_control(frame)
    }

    /// Starts a graceful close: queued frames still go out, then the socket is shut down. The
    /// first reason given is the connection's.
    pub fn close(&self, reason: CloseReason) {
        self.closed.set(reason);
        self.queue.close();
        let _ = self.stop_reader.send(true);
    }
}

/// One (channel, index) position in a peer's pool.
pub(crate) struct Slot {
    pub conn: RwLock<Option<Arc<Conn>>>,
    pub dialing: AtomicBool,
    pub failures: AtomicU32,
    /// Earliest time of the next dial attempt (backoff, and grace for the non-preferred dialer).
    pub not_before: Mutex<Instant>,
}

impl Slot {
    fn new(not_before: Instant) -> Slot {
        Slot {
            conn: RwLock::new(None),
            dialing: AtomicBool::new(false),
            failures: AtomicU32::new(0),
            not_before: Mutex::new(not_before),
        }
    }

    pub fn current(&self) -> Option<Arc<Conn>> {
        self.conn.read().clone()
    }
}

/// A remote node known to this one (a member, a join target, or a node that dialed us).
pub struct Peer {
    pub name: Arc<str>,
    pub(crate) spec: RwLock<NodeSpec>,
    /// `slots[channel][index]`, shaped by the local channel configuration.
    pub(crate) slots: Vec<Box<[Slot]>>,
    round_robin: Box<[AtomicUsize]>,
    pub(crate) removed: AtomicBool,
    /// The one state behind `nodes()`, `is_connected`, `on_up` / `on_down` and the send path:
    /// true while the control channel and the default channel both have a connection to the
    /// peer's newest life. Changed only by `cluster::refresh_up`, under `up_changes`, which
    /// also emits the event, so events and the state never disagree.
    pub(crate) up: AtomicBool,
    pub(crate) up_changes: Mutex<()>,
    /// Counts the times the peer came up: names the current connection life, so that a late
    /// `node_down` of an earlier one can be told apart (`Engine::up_generation`).
    pub(crate) generation: AtomicU64,
    /// The newest life of the peer seen on any connection: connections of older lives are
    /// closed when a newer one arrives, and refused after.
    pub(crate) incarnation: AtomicU64,
}

impl Peer {
    pub(crate) fn new(
        spec: NodeSpec,
        parallelism: &[u16],
        first_dial: impl Fn(usize) -> Instant,
    ) -> Peer {
        let slots = parallelism
            .iter()
            .enumerate()
            .map(|(ch, &n)| {
                (0..n.max(1))
                    .map(|_| Slot::new(first_dial(ch)))
                    .collect::<Box<[Slot]>>()
            })
            .collect();
        Peer {
            name: Arc::from(spec.name.as_str()),
            spec: RwLock::new(spec),
            slots,
            round_robin: parallelism.iter().map(|_| AtomicUsize::new(0)).collect(),
            removed: AtomicBool::new(false),
            up: AtomicBool::new(false),
            up_changes: Mutex::new(()),
            generation: AtomicU64::new(0),
            incarnation: AtomicU64::new(0),
        }
    }

    /// False once the peer was dropped (removed from the cluster or the engine stopped); a cached
    /// handle must then be looked up again.
    pub fn is_live(&self) -> bool {
        !self.removed.load(Ordering::Acquire)
    }

    pub fn spec(&self) -> NodeSpec {
        self.spec.read().clone()
    }

    /// Queues a frame on `channel`: on the slot picked by `key` if given (so one key keeps one
    /// order), else round robin; a slot that is down passes the frame to the next live one.
    pub(crate) fn push(
        &self,
        channel: usize,
        key: Option<u64>,
        frame: OutFrame,
        mode: SendMode,
        limit: usize,
        interactive: &Interactive,
    ) -> Result<Queued, PushError> {
        let conn = self.pick(channel, key).ok_or(PushError::Closed)?;
        conn.queue
            .push(frame, mode, limit, || interactive.syscall_max(conn.id))
    }

    fn pick(&self, channel: usize, key: Option<u64>) -> Option<Arc<Conn>> {
        let slots = self.slots.get(channel)?;
        let n = slots.len();
        let start = match key {
            Some(k) => (k % n as u64) as usize,
            None => self.round_robin[channel].fetch_add(1, Ordering::Relaxed) % n,
        };
        (0..n).find_map(|i| slots[(start + i) % n].current())
    }

    pub(crate) fn all_conns(&self) -> Vec<Arc<Conn>> {
        self.slots
            .iter()
            .flat_map(|ch| ch.iter().filter_map(Slot::current))
            .collect()
    }

    /// Whether `channel` has at least one connection.
    pub(crate) fn has_connection(&self, channel: usize) -> bool {
        self.slots
            .get(channel)
            .is_some_and(|ch| ch.iter().any(|s| s.conn.read().is_some()))
    }

    /// Up (see `up`), and for a given channel also connected on it.
    pub(crate) fn is_connected(&self, channel: Option<usize>) -> bool {
        self.up.load(Ordering::Acquire) && channel.is_none_or(|c| self.has_connection(c))
    }

    pub(crate) fn is_fully_connected(&self) -> bool {
        self.slots
            .iter()
            .all(|ch| ch.iter().all(|s| s.conn.read().is_some()))
    }
}
