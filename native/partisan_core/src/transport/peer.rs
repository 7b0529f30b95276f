//! A remote node as the send path sees it: one slot per (channel, index), each holding at most
//! one live connection, and each connection a queue drained by its writer task.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard, RwLock};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{watch, Notify};

use crate::membership::NodeSpec;

/// Called once a suspended sender may go on: its connection's queue drained below the low-water
/// mark, or the connection closed (so nobody waits forever).
pub struct Resume(Box<dyn FnOnce() + Send>);

impl Resume {
    pub fn new(f: impl FnOnce() + Send + 'static) -> Resume {
        Resume(Box::new(f))
    }

    fn fire(self) {
        (self.0)()
    }
}

/// A frame ready to queue: one buffer, or a head followed by a payload that stays where it is
/// (for example a large binary owned by the VM), so it is never copied.
pub struct OutFrame {
    pub head: Bytes,
    pub body: Option<Bytes>,
}

impl OutFrame {
    pub fn len(&self) -> usize {
        self.head.len() + self.body.as_ref().map_or(0, Bytes::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<Bytes> for OutFrame {
    fn from(head: Bytes) -> OutFrame {
        OutFrame { head, body: None }
    }
}

/// How a send behaves when the connection's queue is over its byte limit.
pub enum SendMode {
    /// Queue the frame; if the queue is now over the limit, keep `Resume` and report `Suspended`.
    Suspend(Resume),
    /// Refuse the frame with `Busy` while the queue is over the limit.
    NoSuspend,
}

/// What happened to a frame handed to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    Sent,
    /// Queued, and the sender should wait for its `Resume` before sending again.
    Suspended,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    Closed,
    Busy,
}

/// Largest frame a sender writes itself; larger ones always go through the writer task.
const DIRECT_WRITE_MAX: usize = 64 * 1024;

/// Frames waiting for a connection's writer.
#[derive(Default)]
pub(crate) struct SendQueue {
    pub frames: VecDeque<Bytes>,
    /// Bytes queued or being written: what back-pressure limits.
    pub bytes: usize,
    /// Set when the connection is closing: no new frames, the writer drains what is left.
    pub closed: bool,
    /// Someone (the writer task, or a sender writing directly) is writing to the socket; only
    /// one may, so that frames keep their order.
    pub writing: bool,
    waiters: Vec<Resume>,
}

impl SendQueue {
    /// Accounts for bytes the writer has put on the socket; returns the senders to resume.
    pub fn written(&mut self, n: usize, low_water: usize) -> Vec<Resume> {
        self.bytes = self.bytes.saturating_sub(n);
        if self.bytes <= low_water {
            std::mem::take(&mut self.waiters)
        } else {
            Vec::new()
        }
    }
}

impl Drop for SendQueue {
    fn drop(&mut self) {
        self.waiters.drain(..).for_each(Resume::fire);
    }
}

/// Runs resumptions outside any lock.
pub(crate) fn resume_all(waiters: Vec<Resume>) {
    waiters.into_iter().for_each(Resume::fire);
}

/// One established connection.
pub(crate) struct Conn {
    pub id: u64,
    pub channel: usize,
    pub index: u16,
    pub remote_incarnation: u64,
    pub dialed_by_me: bool,
    pub queue: Mutex<SendQueue>,
    /// Wakes the writer when the queue goes from empty to non-empty, or on close.
    pub wake_writer: Notify,
    /// Tells the reader to stop.
    pub stop_reader: watch::Sender<bool>,
    /// The socket's write half, set once the connection runs; senders write to it directly when
    /// nothing is queued ahead of them (saving the hand-off to the writer task).
    pub socket: OnceLock<Arc<OwnedWriteHalf>>,
}

impl Conn {
    pub fn new(
        id: u64,
        channel: usize,
        index: u16,
        remote_incarnation: u64,
        dialed_by_me: bool,
    ) -> Conn {
        Conn {
            id,
            channel,
            index,
            remote_incarnation,
            dialed_by_me,
            queue: Mutex::new(SendQueue::default()),
            wake_writer: Notify::new(),
            stop_reader: watch::channel(false).0,
            socket: OnceLock::new(),
        }
    }

    /// Queues a control frame (gossip, ping): never refused for size, false if closing.
    pub fn enqueue(&self, frame: Bytes) -> bool {
        let mut q = self.queue.lock();
        if q.closed {
            return false;
        }
        self.push_locked(&mut q, frame);
        true
    }

    /// Queues a user frame, applying back-pressure at `limit` queued bytes.
    pub fn push(&self, frame: OutFrame, mode: SendMode, limit: usize) -> Result<Queued, PushError> {
        let mut q = self.queue.lock();
        if q.closed {
            return Err(PushError::Closed);
        }
        if q.frames.is_empty()
            && !q.writing
            && frame.body.is_none()
            && frame.head.len() <= DIRECT_WRITE_MAX
        {
            if let Some(socket) = self.socket.get() {
                self.write_direct(q, socket, frame.head);
                return Ok(Queued::Sent);
            }
        }
        match mode {
            SendMode::NoSuspend if q.bytes >= limit => Err(PushError::Busy),
            SendMode::NoSuspend => {
                self.push_frame(&mut q, frame);
                Ok(Queued::Sent)
            }
            SendMode::Suspend(resume) => {
                self.push_frame(&mut q, frame);
                if q.bytes > limit {
                    q.waiters.push(resume);
                    Ok(Queued::Suspended)
                } else {
                    Ok(Queued::Sent)
                }
            }
        }
    }

    /// Writes `frame` on the caller's thread without blocking: whatever the socket does not take
    /// now goes to the front of the queue for the writer task.
    fn write_direct(
        &self,
        mut q: MutexGuard<'_, SendQueue>,
        socket: &OwnedWriteHalf,
        frame: Bytes,
    ) {
        q.writing = true;
        drop(q);
        // An error other than WouldBlock is left for the writer task to meet and report.
        let n = socket.try_write(&frame).unwrap_or(0);
        let mut q = self.queue.lock();
        q.writing = false;
        if n < frame.len() {
            q.bytes += frame.len() - n;
            q.frames.push_front(frame.slice(n..));
        }
        if !q.frames.is_empty() {
            self.wake_writer.notify_one();
        }
    }

    fn push_frame(&self, q: &mut SendQueue, frame: OutFrame) {
        self.push_locked(q, frame.head);
        if let Some(body) = frame.body {
            self.push_locked(q, body);
        }
    }

    fn push_locked(&self, q: &mut SendQueue, frame: Bytes) {
        let was_empty = q.frames.is_empty();
        q.bytes += frame.len();
        q.frames.push_back(frame);
        if was_empty {
            self.wake_writer.notify_one();
        }
    }

    /// Starts a graceful close: queued frames still go out, then the socket is shut down.
    pub fn close(&self) {
        let waiters = {
            let mut q = self.queue.lock();
            q.closed = true;
            std::mem::take(&mut q.waiters)
        };
        resume_all(waiters);
        self.wake_writer.notify_one();
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
    pub(crate) control_up: AtomicBool,
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
            control_up: AtomicBool::new(false),
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
    ) -> Result<Queued, PushError> {
        let conn = self.pick(channel, key).ok_or(PushError::Closed)?;
        conn.push(frame, mode, limit)
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

    pub(crate) fn is_connected(&self, channel: Option<usize>) -> bool {
        let has = |ch: &[Slot]| ch.iter().any(|s| s.conn.read().is_some());
        match channel {
            Some(c) => self.slots.get(c).is_some_and(|ch| has(ch)),
            None => self.slots.iter().any(|ch| has(ch)),
        }
    }

    pub(crate) fn is_fully_connected(&self) -> bool {
        self.slots
            .iter()
            .all(|ch| ch.iter().all(|s| s.conn.read().is_some()))
    }
}
