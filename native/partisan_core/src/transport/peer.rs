//! Connections and the routing table of the send path: one slot per (peer, channel, index),
//! each holding at most one live connection, each connection a queue drained by its writer.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::{MappedRwLockReadGuard, RwLock, RwLockReadGuard};
use tokio::sync::watch;

use super::close::{CloseCell, CloseReason};
use super::pacer::Interactive;
use super::send_queue::{OutFrame, PushError, Queued, SendMode, SendQueue};
use super::Origin;

/// One established connection.
pub(crate) struct Conn {
    pub id: u64,
    pub channel: usize,
    pub index: u16,
    /// The remote node as its messages' handler needs it.
    pub origin: Origin,
    pub queue: SendQueue,
    /// Why it closed, once it did.
    pub(crate) closed: CloseCell,
    /// Tells the reader to stop.
    pub stop_reader: watch::Sender<bool>,
}

impl Conn {
    pub fn new(id: u64, channel: usize, index: u16, origin: Origin) -> Conn {
        Conn {
            id,
            channel,
            index,
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

/// One (channel, index) position of a peer: the connection sends go through, if any.
type Route = RwLock<Option<Arc<Conn>>>;

/// A remote node as the send path sees it: the connections the control core installed, and
/// whether it is up. Written only by the driver, as the core's actions say.
pub struct Peer {
    /// The remote node's partisan name.
    pub name: Arc<str>,
    /// `slots[channel][index]`, shaped by the local channel configuration.
    slots: Vec<Box<[Route]>>,
    round_robin: Box<[AtomicUsize]>,
    live: AtomicBool,
    /// The one state behind `nodes()`, `is_connected`, `on_up` / `on_down` and the send path:
    /// while the node is up, the generation of its current connection life (it counts the
    /// ups, so a late `node_down` of an earlier life can be told apart); 0 while it is down.
    up_life: AtomicU64,
}

impl Peer {
    pub(crate) fn new(name: Arc<str>, parallelism: &[u16]) -> Peer {
        Peer {
            name,
            slots: parallelism
                .iter()
                .map(|&n| (0..n.max(1)).map(|_| RwLock::new(None)).collect())
                .collect(),
            round_robin: parallelism.iter().map(|_| AtomicUsize::new(0)).collect(),
            live: AtomicBool::new(true),
            up_life: AtomicU64::new(0),
        }
    }

    /// False once the peer was dropped (removed from the cluster or the engine stopped); a cached
    /// handle must then be looked up again.
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    pub(crate) fn retire(&self) {
        self.live.store(false, Ordering::Release);
        self.up_life.store(0, Ordering::Release);
    }

    /// While the peer is up, the number of times it came up (its current connection life).
    pub fn up_life(&self) -> Option<u64> {
        Some(self.up_life.load(Ordering::Acquire)).filter(|g| *g != 0)
    }

    pub(crate) fn set_up_life(&self, generation: Option<u64>) {
        self.up_life
            .store(generation.unwrap_or(0), Ordering::Release);
    }

    /// Routes `channel`/`index` through `conn`.
    pub(crate) fn install(&self, conn: Arc<Conn>) {
        if let Some(slot) = self.slot(conn.channel, conn.index) {
            *slot.write() = Some(conn);
        }
    }

    /// Stops routing through `conn`, if it is the one in its slot.
    pub(crate) fn vacate(&self, conn: &Conn) {
        if let Some(slot) = self.slot(conn.channel, conn.index) {
            let mut cur = slot.write();
            if cur.as_ref().is_some_and(|c| c.id == conn.id) {
                *cur = None;
            }
        }
    }

    fn slot(&self, channel: usize, index: u16) -> Option<&Route> {
        self.slots.get(channel)?.get(index as usize)
    }

    /// Queues a frame on `channel`: on the slot picked by `key` if given (so one key keeps one
    /// order), else round robin; a slot that is down passes the frame to the next live one.
    #[allow(clippy::too_many_arguments)] // one send's arguments, passed through to the queue
    pub(crate) fn push(
        &self,
        channel: usize,
        key: Option<u64>,
        frame: OutFrame,
        mode: SendMode<'_>,
        limit: usize,
        interactive: &Interactive,
        now: Instant,
    ) -> Result<Queued, PushError> {
        let conn = self.pick(channel, key).ok_or(PushError::Closed)?;
        conn.queue
            .push(frame, mode, limit, || interactive.syscall_max(conn.id), now)
    }

    /// The connection for the next frame, borrowed from its slot (held through the push: a
    /// connection being installed or vacated waits that long; cloning the `Arc` instead would
    /// cost every send two more read-modify-writes of a line the other schedulers share).
    fn pick(&self, channel: usize, key: Option<u64>) -> Option<MappedRwLockReadGuard<'_, Conn>> {
        let slots = self.slots.get(channel)?;
        let n = slots.len();
        let start = match key {
            Some(k) => (k % n as u64) as usize,
            None if n == 1 => 0,
            None => self.round_robin[channel].fetch_add(1, Ordering::Relaxed) % n,
        };
        (0..n).find_map(|i| {
            RwLockReadGuard::try_map(slots[(start + i) % n].read(), |c| c.as_deref()).ok()
        })
    }

    pub(crate) fn all_conns(&self) -> Vec<Arc<Conn>> {
        self.slots
            .iter()
            .flat_map(|ch| ch.iter().filter_map(|s| s.read().clone()))
            .collect()
    }

    /// Whether `channel` has at least one connection.
    pub(crate) fn has_connection(&self, channel: usize) -> bool {
        self.slots
            .get(channel)
            .is_some_and(|ch| ch.iter().any(|s| s.read().is_some()))
    }

    /// Up (see `up_life`), and for a given channel also connected on it.
    pub(crate) fn is_connected(&self, channel: Option<usize>) -> bool {
        self.up_life().is_some() && channel.is_none_or(|c| self.has_connection(c))
    }

    pub(crate) fn is_fully_connected(&self) -> bool {
        self.slots
            .iter()
            .all(|ch| ch.iter().all(|s| s.read().is_some()))
    }
}
