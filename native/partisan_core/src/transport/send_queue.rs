//! The send side of one connection, lock-free for senders.
//!
//! Senders push frames on a crossbeam channel and wake the writer task only if it sleeps. One
//! party at a time may write to the socket, whoever holds `writing`: normally the writer task,
//! which drains everything queued at once; but a sender finding nothing queued ahead of it may
//! write its frame itself, without blocking, which saves a thread hand-off (and, on a small
//! machine, the core the woken writer would compete for). Small frames are written this way
//! only after the connection was idle for a while (latency-bound traffic: back-to-back small
//! frames are better gathered by the writer); large ones (up to about 1 MiB) whenever the
//! writer sleeps, as the VM's own distribution writes from the sending scheduler. What such a
//! write leaves over goes in `front`, ahead of the channel.

use std::io::IoSlice;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;

use super::pressure::{Pressure, Resume};
use super::small_frames::{self, Head};
use crate::wire::{put_data_head, Target, WireError};

/// Frames up to this size are small: a sender writes one itself only after `DIRECT_AFTER_IDLE`.
const SMALL_FRAME_MAX: usize = 64 * 1024;
/// A sender writes a small frame directly only if the previous send on the connection is at
/// least this old: back-to-back sends are better gathered by the writer task into few syscalls.
const DIRECT_AFTER_IDLE: Duration = Duration::from_micros(30);
/// Smallest large frame a sender writes itself: below it, a frame's write is too short for the
/// hand-off it saves to matter, and with many senders direct writes contend with the writer.
const DIRECT_LARGE_MIN: usize = 256 * 1024;
/// Largest frame a sender writes itself. One non-blocking write of this much on loopback takes
/// a few hundred microseconds, within a scheduler's budget for one NIF call; larger frames go
/// to the writer task, which paces them.
const DIRECT_WRITE_MAX: usize = 1024 * 1024 + 4096;
/// Most buffers in one direct write (a frame's head and its parts).
const DIRECT_IOVECS: usize = 512;

/// A frame ready to queue: one buffer, or a head followed by parts that stay where they are
/// (for example large binaries owned by the VM), so they are never copied.
pub struct OutFrame {
    /// The start of the frame (at least its length and kind), or the whole frame.
    pub head: Head,
    /// The parts that follow `head`, written in order from where they are; empty for a
    /// frame in one buffer.
    pub body: Vec<Bytes>,
}

impl OutFrame {
    /// A data frame (header, target, payload) in one buffer, refusing one over `max` bytes;
    /// a small one's buffer comes from the pool of [`small_frames`].
    pub fn data(target: &Target, payload: &[u8], max: usize) -> Result<OutFrame, WireError> {
        let total = crate::wire::data_frame_len(target, payload.len());
        match small_frames::take(total) {
            Some(mut buf) => {
                put_data_head(target, payload.len(), max, buf.as_vec())?;
                buf.extend_from_slice(payload);
                Ok(Head::from(buf).into())
            }
            None => crate::wire::encode_data_frame(target, payload, max).map(OutFrame::from),
        }
    }

    /// The frame's length in bytes, head and parts.
    pub fn len(&self) -> usize {
        self.head.len() + self.body.iter().map(Bytes::len).sum::<usize>()
    }

    /// True when the frame has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffers of the frame, in order.
    pub fn pieces(&self) -> impl Iterator<Item = &[u8]> {
        std::iter::once(&self.head[..]).chain(self.body.iter().map(|b| &b[..]))
    }

    /// What is left of the frame once its first `n` bytes are written; `None` if nothing is.
    fn rest_after(self, mut n: usize) -> Option<OutFrame> {
        let mut rest = Vec::new();
        if n < self.head.len() {
            rest.push(self.head.into_bytes_from(n));
            n = 0;
        } else {
            n -= self.head.len();
        }
        for mut part in self.body {
            if n >= part.len() {
                n -= part.len();
                continue;
            }
            part.advance(n);
            n = 0;
            rest.push(part);
        }
        let mut parts = rest.into_iter();
        let head = parts.next()?;
        Some(OutFrame {
            head: head.into(),
            body: parts.collect(),
        })
    }
}

impl From<Bytes> for OutFrame {
    fn from(head: Bytes) -> OutFrame {
        Head::from(head).into()
    }
}

impl From<Head> for OutFrame {
    fn from(head: Head) -> OutFrame {
        OutFrame {
            head,
            body: Vec::new(),
        }
    }
}

/// How a send behaves when the connection holds more than its byte limit.
pub enum SendMode<'a> {
    /// Queue the frame; if the connection is now over the limit, keep the `Resume` the function
    /// makes for when it drains and report `Suspended`. Made only then: nearly every send goes
    /// on at once, and a `Resume` is an allocation.
    Suspend(&'a mut dyn FnMut() -> Resume),
    /// Refuse the frame with `Busy` while the connection is over the limit.
    NoSuspend,
}

/// What happened to a frame handed to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// Queued for the connection's writer task; the sender may go on.
    Sent,
    /// Written on the caller's thread (what the socket did not take at once is queued first).
    Written,
    /// Queued, and the sender should wait for its `Resume` before sending again.
    Suspended,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    Closed,
    Busy,
}

/// Work for the writer task: the rest of a partial direct write, then queued frames.
pub(crate) struct Batch {
    pub front: Option<OutFrame>,
    pub frames: Vec<OutFrame>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.front.as_ref().map_or(0, OutFrame::len)
            + self.frames.iter().map(OutFrame::len).sum::<usize>()
    }
}

pub(crate) struct SendQueue {
    tx: Sender<OutFrame>,
    rx: Receiver<OutFrame>,
    front: Mutex<Option<OutFrame>>,
    writing: AtomicBool,
    writer_idle: AtomicBool,
    closed: AtomicBool,
    wake: Notify,
    pub pressure: Pressure,
    socket: OnceLock<Arc<OwnedWriteHalf>>,
    last_push: AtomicU64,
}

thread_local! {
    /// When the calling thread last pushed a frame to any connection (see `push`).
    static THREAD_LAST_PUSH: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// `t` in nanoseconds since a fixed moment, without reading the clock.
fn clock_ns(t: Instant) -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    t.saturating_duration_since(*ORIGIN.get_or_init(Instant::now))
        .as_nanos() as u64
}

impl SendQueue {
    pub fn new() -> SendQueue {
        // Fixes the clock's origin before any send's time is measured from it.
        let _ = clock_ns(Instant::now());
        let (tx, rx) = crossbeam_channel::unbounded();
        SendQueue {
            tx,
            rx,
            front: Mutex::new(None),
            writing: AtomicBool::new(false),
            writer_idle: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            wake: Notify::new(),
            pressure: Pressure::default(),
            socket: OnceLock::new(),
            last_push: AtomicU64::new(0),
        }
    }

    /// Gives senders the socket for direct writes, once the connection runs.
    pub fn attach(&self, socket: Arc<OwnedWriteHalf>) {
        let _ = self.socket.set(socket);
    }

    /// Queues a control frame (gossip, ping): never refused for size; false if closing.
    pub fn push_control(&self, frame: Bytes) -> bool {
        if self.closed.load(SeqCst) {
            return false;
        }
        self.pressure.add(frame.len());
        self.enqueue(frame.into());
        true
    }

    /// Queues (or writes) a user frame, applying back-pressure at `limit` bytes; `now` is the
    /// time of the send, which tells whether the connection was quiet. A large frame
    /// of at most `direct_max()` bytes may be written on the caller's thread (asked only for
    /// large frames: small sends are the hot path).
    pub fn push(
        &self,
        frame: OutFrame,
        mode: SendMode<'_>,
        limit: usize,
        direct_max: impl FnOnce() -> usize,
        now: Instant,
    ) -> Result<Queued, PushError> {
        if self.closed.load(SeqCst) {
            return Err(PushError::Closed);
        }
        let now = clock_ns(now);
        let idle = DIRECT_AFTER_IDLE.as_nanos() as u64;
        // Quiet means this connection and this thread: a sender that sends to many
        // connections in turn (all-to-all) finds each one quiet, yet its frames are a stream,
        // better gathered by the writers than written one syscall (and one wake-up of the
        // receiving I/O thread) each.
        let thread_quiet = THREAD_LAST_PUSH.with(|t| now.saturating_sub(t.replace(now)) >= idle);
        // A load, and a store only once a microsecond: the line is shared by every sender to
        // this connection, and a read-modify-write per frame would bounce it between them.
        let last = self.last_push.load(Relaxed);
        if now.saturating_sub(last) >= 1_000 {
            self.last_push.store(now, Relaxed);
        }
        let quiet = now.saturating_sub(last) >= idle && thread_quiet;
        let len = frame.len();
        let direct = if len <= SMALL_FRAME_MAX {
            quiet
        } else {
            // Only while the writer sleeps: when it is busy, its frames and ours would take
            // turns at the socket, and the writer, woken for our rest, competes for a core.
            (DIRECT_LARGE_MIN..=DIRECT_WRITE_MAX).contains(&len)
                && self.writer_idle.load(SeqCst)
                && len <= direct_max()
        };
        let frame = if direct {
            match self.try_direct(frame) {
                Ok(()) => return Ok(Queued::Written),
                Err(frame) => frame,
            }
        } else {
            frame
        };
        if matches!(mode, SendMode::NoSuspend) && self.pressure.bytes() >= limit {
            return Err(PushError::Busy);
        }
        let total = self.pressure.add(frame.len());
        self.enqueue(frame);
        match mode {
            SendMode::Suspend(resume) if total > limit => {
                self.pressure.wait(resume(), limit / 2);
                Ok(Queued::Suspended)
            }
            _ => Ok(Queued::Sent),
        }
    }

    fn enqueue(&self, frame: OutFrame) {
        // The receiver lives as long as `self`: sending cannot fail.
        let _ = self.tx.send(frame);
        self.kick();
    }

    /// Wakes the writer task if it sleeps (at most one notification per sleep).
    fn kick(&self) {
        // Our frame is queued: the fence orders that before the look at `writer_idle`, and
        // `idle` fences between marking itself idle and looking at the queue, so one of the
        // two sees the other (no lost wake-up). Looking first, without writing, keeps the line
        // shared while the writer is busy, instead of every send taking it exclusively.
        fence(SeqCst);
        if self.writer_idle.load(SeqCst) && self.writer_idle.swap(false, SeqCst) {
            self.wake.notify_one();
        }
    }

    fn has_work(&self) -> bool {
        !self.rx.is_empty() || self.front.lock().is_some()
    }

    /// Writes `frame` on the caller's thread, with one non-blocking syscall, if nothing is
    /// queued and nobody writes. `Ok` if the frame was taken (written, with any rest left in
    /// `front` for the writer task), else the frame back.
    fn try_direct(&self, frame: OutFrame) -> Result<(), OutFrame> {
        let Some(socket) = self.socket.get() else {
            return Err(frame);
        };
        if !self.rx.is_empty()
            || self
                .writing
                .compare_exchange(false, true, SeqCst, SeqCst)
                .is_err()
        {
            return Err(frame);
        }
        if self.has_work() {
            self.release_writing();
            return Err(frame);
        }
        // An error other than WouldBlock is left for the writer task to meet and report.
        let n = if frame.body.is_empty() {
            socket.try_write(&frame.head)
        } else {
            let iov: Vec<IoSlice> = frame
                .pieces()
                .take(DIRECT_IOVECS)
                .map(IoSlice::new)
                .collect();
            socket.try_write_vectored(&iov)
        }
        .unwrap_or(0);
        if let Some(rest) = frame.rest_after(n) {
            self.pressure.add(rest.len());
            *self.front.lock() = Some(rest);
        }
        self.release_writing();
        Ok(())
    }

    fn release_writing(&self) {
        self.writing.store(false, SeqCst);
        if self.has_work() {
            self.kick();
        }
    }

    /// For the writer task: takes the right to write and everything waiting (up to `max`
    /// frames). `None` if there is nothing, or a sender is writing directly.
    pub fn claim_batch(&self, max: usize) -> Option<Batch> {
        if self
            .writing
            .compare_exchange(false, true, SeqCst, SeqCst)
            .is_err()
        {
            return None;
        }
        let front = self.front.lock().take();
        let frames: Vec<OutFrame> = self.rx.try_iter().take(max).collect();
        if front.is_none() && frames.is_empty() {
            self.writing.store(false, SeqCst);
            return None;
        }
        Some(Batch { front, frames })
    }

    /// For the writer task: the batch of `written` bytes is on the socket.
    pub fn finish_batch(&self, written: usize, low_water: usize) {
        self.writing.store(false, SeqCst);
        self.pressure.drained(written, low_water);
    }

    /// For the writer task: true once closed and nothing is left to write.
    pub fn finished(&self) -> bool {
        self.closed.load(SeqCst) && !self.has_work()
    }

    /// For the writer task: sleeps until a sender kicks it (returns at once if work arrived).
    pub async fn idle(&self) {
        if self.writing.load(SeqCst) {
            // A sender is writing directly: it kicks us after, if anything is left.
            tokio::task::yield_now().await;
        }
        // swap (not store) so that a sender's earlier kick is seen: see `kick`.
        self.writer_idle.swap(true, SeqCst);
        fence(SeqCst);
        if (self.has_work() || self.closed.load(SeqCst)) && self.writer_idle.swap(false, SeqCst) {
            return;
        }
        self.wake.notified().await;
    }

    /// Starts a graceful close: no new frames, queued ones still go out, waiting senders resume.
    pub fn close(&self) {
        self.closed.store(true, SeqCst);
        self.pressure.close();
        self.kick();
        self.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(parts: &[&'static [u8]]) -> OutFrame {
        OutFrame {
            head: Bytes::from_static(parts[0]).into(),
            body: parts[1..].iter().map(|p| Bytes::from_static(p)).collect(),
        }
    }

    #[test]
    fn the_rest_of_a_partial_write_keeps_order_and_parts() {
        let f = || frame(&[b"head", b"alpha", b"", b"beta"]);
        let all: Vec<u8> = f().pieces().flatten().copied().collect();
        for n in 0..=all.len() {
            let rest = f().rest_after(n);
            let got: Vec<u8> = rest
                .iter()
                .flat_map(|r| r.pieces().flatten().copied())
                .collect();
            assert_eq!(got, all[n..], "after {n} bytes");
            assert_eq!(rest.is_none(), n == all.len());
        }
        // A cut inside a part slices that part and keeps the later ones (empty ones dropped).
        let rest = f().rest_after(6).unwrap();
        assert_eq!(&rest.head[..], b"pha");
        assert_eq!(rest.body, vec![Bytes::from_static(b"beta")]);
    }
}
