//! Recycled memory for large received frames.
//!
//! A large frame is read into a buffer that later becomes the binary the receiving process
//! gets (in the NIF, `in_place`). Fresh memory for it costs page faults and the kernel's zeroing of
//! every page, about as much as the copy out of the socket; when many receivers hold on to
//! their messages for a while, the VM's allocator hands out fresh memory for nearly every frame.
//! So the buffers are kept: a frame's binary is a resource binary, and when the VM frees it the
//! buffer comes back here, up to a bounded amount of idle memory (the least recently returned
//! buffers are let go first, so the pool follows the sizes in use).
//!
//! Buffers are mapped straight from the OS: their pages are zero-filled by the kernel as they
//! are first written, during the reads, so a fresh buffer is never cleared in one go (as
//! `calloc` does with memory it reuses) while a reader holds its I/O thread.

use std::collections::VecDeque;
use std::ptr::NonNull;

use parking_lot::Mutex;

/// Most idle memory kept for reuse.
const IDLE_BYTES_MAX: usize = 32 * 1024 * 1024;

/// A buffer is reused for a frame only if it wastes at most a quarter of the frame's length.
fn fits(capacity: usize, len: usize) -> bool {
    capacity >= len && capacity - len <= len / 4
}

/// Anonymous memory mapped from the OS: zero-filled, unmapped on drop.
pub struct Pages {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: `Pages` owns its mapping exclusively, like a `Vec<u8>`.
unsafe impl Send for Pages {}
// SAFETY: shared access is read-only (`as_slice`), like a `Vec<u8>`'s.
unsafe impl Sync for Pages {}

impl Pages {
    fn map(len: usize) -> Option<Pages> {
        if len == 0 {
            return None;
        }
        // SAFETY: a fresh private anonymous mapping; the kernel picks the address.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return None;
        }
        Some(Pages {
            ptr: NonNull::new(ptr.cast())?,
            len,
        })
    }

    /// The length of the mapping in bytes: at least what [`take`] was asked for, possibly
    /// more for a reused buffer.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true: a mapping has at least one byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The whole mapping, read-only.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `len` mapped, readable bytes (zero-filled at first) owned by `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The whole mapping, writable: a frame body is read into it.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

struct Idle {
    buffers: VecDeque<Pages>,
    bytes: usize,
}

static IDLE: Mutex<Idle> = Mutex::new(Idle {
    buffers: VecDeque::new(),
    bytes: 0,
});

/// A buffer of at least `len` bytes; `None` if no memory can be had (the frame is then read
/// into the engine's own buffer).
pub fn take(len: usize) -> Option<Pages> {
    {
        let mut idle = IDLE.lock();
        let best = idle
            .buffers
            .iter()
            .enumerate()
            .filter(|(_, b)| fits(b.len(), len))
            .min_by_key(|(_, b)| b.len())
            .map(|(i, _)| i);
        if let Some(buf) = best.and_then(|i| idle.buffers.remove(i)) {
            idle.bytes -= buf.len();
            return Some(buf);
        }
    }
    Pages::map(len)
}

/// Gives a buffer back for reuse, letting the oldest idle ones go to stay within the bound.
pub fn put(buf: Pages) {
    if buf.len() > IDLE_BYTES_MAX {
        return;
    }
    let evicted: Vec<Pages> = {
        let mut idle = IDLE.lock();
        idle.bytes += buf.len();
        idle.buffers.push_back(buf);
        let mut evicted = Vec::new();
        while idle.bytes > IDLE_BYTES_MAX {
            let Some(old) = idle.buffers.pop_front() else {
                break;
            };
            idle.bytes -= old.len();
            evicted.push(old);
        }
        evicted
    };
    // Unmapped outside the lock.
    drop(evicted);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_when_they_fit_and_kept_within_the_bound() {
        let mut a = take(1 << 20).unwrap();
        assert!(
            a.as_slice().iter().all(|&b| b == 0),
            "fresh memory is zeroed"
        );
        a.as_mut_slice()[7] = 1;
        let ptr = a.as_slice().as_ptr();
        put(a);
        let b = take((1 << 20) - 100).unwrap();
        assert_eq!(
            b.as_slice().as_ptr(),
            ptr,
            "a slightly larger idle buffer is reused"
        );
        put(b);
        let c = take(100_000).unwrap();
        assert_ne!(
            c.as_slice().as_ptr(),
            ptr,
            "a buffer ten times too large is not"
        );
        put(c);
        for _ in 0..40 {
            put(Pages::map(1 << 20).unwrap());
        }
        let idle = IDLE.lock();
        assert!(idle.bytes <= IDLE_BYTES_MAX);
        assert_eq!(
            idle.bytes,
            idle.buffers.iter().map(Pages::len).sum::<usize>()
        );
    }
}
