//! Pacing of streams, against head-of-line blocking across connections.
//!
//! On a small machine a stream of large frames keeps an I/O thread busy for milliseconds at a
//! time: small messages on other connections then wait for the runtime (which polls for I/O only
//! between tasks) and for a core (which the stream's reader and writer hold). A task that has
//! been busy for `BUSY_MAX` without waiting therefore yields the runtime, and, while other
//! connections carry small messages, also the core, and it moves at most `SYSCALL_SHARED` bytes
//! per syscall. A lone stream, or a stream whose only other traffic is its own acknowledgements,
//! keeps the core and makes the largest syscalls it can.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Most bytes one syscall moves while other connections carry small messages, so that no single
/// read or write is long. Otherwise syscalls are as large as the socket allows: on a 1 MiB
/// stream, 1 MiB syscalls move about a third more than 256 KiB ones.
const SYSCALL_SHARED: usize = 256 * 1024;
/// How long a reader or writer may keep its I/O thread busy before it lets others run.
const BUSY_MAX: Duration = Duration::from_micros(50);
/// Small messages seen this recently on another connection make streams yield.
const INTERACTIVE_FOR: Duration = Duration::from_millis(5);

fn clock_ns() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// The two connections that most recently received a small message, and when. Two, because a
/// stream's own acknowledgements come back on a connection of its own (or on the stream's), and
/// must not hide the small messages of a third.
#[derive(Default)]
pub(crate) struct Interactive {
    slots: [Slot; 2],
}

#[derive(Default)]
struct Slot {
    conn: AtomicU64,
    at_ns: AtomicU64,
}

impl Interactive {
    /// A small message arrived on connection `conn`.
    pub fn note(&self, conn: u64) {
        // Relaxed and racy by design: this is a hint, and a stale value costs one late or early
        // yield.
        let now = clock_ns().max(1);
        let [first, second] = &self.slots;
        if first.conn.load(Relaxed) != conn {
            second.conn.store(first.conn.load(Relaxed), Relaxed);
            second.at_ns.store(first.at_ns.load(Relaxed), Relaxed);
            first.conn.store(conn, Relaxed);
        }
        first.at_ns.store(now, Relaxed);
    }

    /// Most bytes one read or write of a large frame on `conn` should move.
    pub fn syscall_max(&self, conn: u64) -> usize {
        if self.elsewhere(conn) {
            SYSCALL_SHARED
        } else {
            usize::MAX
        }
    }

    /// True if a connection other than `conn` received a small message lately.
    fn elsewhere(&self, conn: u64) -> bool {
        let now = clock_ns();
        self.slots.iter().any(|s| {
            let at = s.at_ns.load(Relaxed);
            at != 0
                && s.conn.load(Relaxed) != conn
                && now.saturating_sub(at) < INTERACTIVE_FOR.as_nanos() as u64
        })
    }
}

/// The pacing of one reader or writer task.
pub(crate) struct Pacer<'a> {
    interactive: &'a Interactive,
    conn: u64,
    busy_since: Instant,
}

impl<'a> Pacer<'a> {
    pub fn new(interactive: &'a Interactive, conn: u64) -> Pacer<'a> {
        Pacer {
            interactive,
            conn,
            busy_since: Instant::now(),
        }
    }

    /// Most bytes the next read or write of a large frame should move.
    pub fn syscall_max(&self) -> usize {
        self.interactive.syscall_max(self.conn)
    }

    /// The task ran out of work (a short read, a full socket): it is about to wait anyway.
    pub fn rested(&mut self) {
        self.busy_since = Instant::now();
    }

    /// Call before each read or write. A task busy for `BUSY_MAX` yields its worker to other
    /// tasks (cheap: the other tasks include this connection's own reader, with the
    /// acknowledgements a flow-controlled stream waits for), and also the CPU to other threads
    /// if other connections carry small messages.
    pub async fn pace(&mut self) {
        if self.busy_since.elapsed() >= BUSY_MAX {
            if self.interactive.elsewhere(self.conn) {
                std::thread::yield_now();
            }
            tokio::task::yield_now().await;
            self.busy_since = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_messages_on_other_connections_make_streams_yield() {
        let i = Interactive::default();
        assert!(!i.elsewhere(1), "nothing seen yet");
        i.note(1);
        assert!(!i.elsewhere(1), "a connection's own messages do not count");
        assert!(i.elsewhere(2));
        // A stream's acknowledgements on its own connection do not hide the other one.
        i.note(2);
        i.note(2);
        assert!(i.elsewhere(2));
        assert!(i.elsewhere(1));
        std::thread::sleep(INTERACTIVE_FOR + Duration::from_millis(1));
        assert!(!i.elsewhere(3), "stale");
    }
}
