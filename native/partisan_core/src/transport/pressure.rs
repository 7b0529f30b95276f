//! Back-pressure of one connection: the bytes it holds (queued or being written) and the senders
//! waiting for them to drain. Lock-free on the send path; the waiter list is locked only by a
//! sender that must wait and by the writer when waiters exist. Tested with loom
//! (`tests/loom_pressure.rs`): a waiting sender is always resumed exactly once.

#[cfg(not(partisan_loom))]
mod sync {
    pub use parking_lot::Mutex;
    pub use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
}

#[cfg(partisan_loom)]
mod sync {
    pub use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// loom's mutex behind parking_lot's API.
    pub struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub fn new(t: T) -> Self {
            Mutex(loom::sync::Mutex::new(t))
        }

        pub fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
    }
}

use sync::{AtomicBool, AtomicUsize, Mutex, Ordering::SeqCst};

/// Called once a suspended sender may go on: its connection drained to the low-water mark, or
/// the connection closed (so nobody waits forever).
pub struct Resume(Box<dyn FnOnce() + Send>);

impl Resume {
    /// Wraps `f`, the callback that lets the sender go on.
    pub fn new(f: impl FnOnce() + Send + 'static) -> Resume {
        Resume(Box::new(f))
    }

    fn fire(self) {
        (self.0)()
    }
}

pub(crate) struct Pressure {
    bytes: AtomicUsize,
    has_waiters: AtomicBool,
    closed: AtomicBool,
    waiters: Mutex<Vec<Resume>>,
}

impl Default for Pressure {
    fn default() -> Self {
        Pressure {
            bytes: AtomicUsize::new(0),
            has_waiters: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            waiters: Mutex::new(Vec::new()),
        }
    }
}

impl Pressure {
    pub fn bytes(&self) -> usize {
        self.bytes.load(SeqCst)
    }

    /// Counts `n` more bytes held; returns the new total.
    pub fn add(&self, n: usize) -> usize {
        self.bytes.fetch_add(n, SeqCst) + n
    }

    /// Counts `n` bytes written, and resumes the waiting senders once at most `low` remain.
    pub fn drained(&self, n: usize, low: usize) {
        let now = self.bytes.fetch_sub(n, SeqCst).saturating_sub(n);
        if now <= low && self.has_waiters.load(SeqCst) {
            self.release();
        }
    }

    /// Parks `resume` until the bytes drop to `low`. If they already have (the writer may have
    /// drained between the caller's check and now), or the connection is closed, it runs at once.
    pub fn wait(&self, resume: Resume, low: usize) {
        {
            let mut waiters = self.waiters.lock();
            if self.closed.load(SeqCst) {
                drop(waiters);
                resume.fire();
                return;
            }
            waiters.push(resume);
            self.has_waiters.store(true, SeqCst);
        }
        // Pairs with `drained`, which subtracts (a read-modify-write) then looks for waiters. Our
        // look at the bytes is a read-modify-write too, so the two are ordered on the counter:
        // if ours comes first, the writer's subtraction synchronizes with it and sees our
        // registration; if the writer's comes first, we see the drained count. No wake-up is
        // lost under acquire/release alone (which is what loom checks).
        if self.bytes.fetch_add(0, SeqCst) <= low {
            self.release();
        }
    }

    /// Resumes every waiter now and every later one at once: the connection is gone.
    pub fn close(&self) {
        self.closed.store(true, SeqCst);
        self.release();
    }

    fn release(&self) {
        let waiters = {
            let mut w = self.waiters.lock();
            self.has_waiters.store(false, SeqCst);
            std::mem::take(&mut *w)
        };
        waiters.into_iter().for_each(Resume::fire);
    }
}

impl Drop for Pressure {
    fn drop(&mut self) {
        self.release();
    }
}
