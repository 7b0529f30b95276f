//! Recycled memory for large received frames.
//!
//! A large frame is read into a buffer that later becomes the binary the receiving process
//! gets (see `in_place`). Fresh memory for it costs page faults and the kernel's zeroing of
//! every page, about as much as the copy out of the socket; when many receivers hold on to
//! their messages for a while, the VM's allocator hands out fresh memory for nearly every frame.
//! So the buffers are kept: a frame's binary is a resource binary, and when the VM frees it the
//! buffer comes back here, up to a bounded amount of idle memory.

use std::alloc::Layout;

use parking_lot::Mutex;

/// Most idle memory kept for reuse.
const IDLE_BYTES_MAX: usize = 32 * 1024 * 1024;
/// A buffer is reused for a frame only if it wastes at most a quarter of the frame's length.
fn fits(capacity: usize, len: usize) -> bool {
    capacity >= len && capacity - len <= len / 4
}

struct Idle {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
}

static IDLE: Mutex<Idle> = Mutex::new(Idle {
    buffers: Vec::new(),
    bytes: 0,
});

/// A zero-initialised buffer of at least `len` bytes (its whole length is usable memory);
/// `None` if memory for it cannot be had (the frame is then read into the engine's own buffer).
pub fn take(len: usize) -> Option<Vec<u8>> {
    {
        let mut idle = IDLE.lock();
        let best = idle
            .buffers
            .iter()
            .enumerate()
            .filter(|(_, b)| fits(b.len(), len))
            .min_by_key(|(_, b)| b.len())
            .map(|(i, _)| i);
        if let Some(i) = best {
            let buf = idle.buffers.swap_remove(i);
            idle.bytes -= buf.len();
            return Some(buf);
        }
    }
    zeroed(len)
}

/// Like `vec![0; len]` (fresh pages from the OS come zeroed, so this costs no writes), but
/// without aborting the VM when the allocation fails: `len` comes from a peer's frame header.
fn zeroed(len: usize) -> Option<Vec<u8>> {
    let layout = Layout::array::<u8>(len).ok()?;
    if layout.size() == 0 {
        return Some(Vec::new());
    }
    // Safety: the layout has a non-zero size; on success the memory is initialised (zeroed),
    // allocated by the global allocator with this layout, and handed to a Vec whose length and
    // capacity are both `len`.
    unsafe {
        let ptr = std::alloc::alloc_zeroed(layout);
        if ptr.is_null() {
            return None;
        }
        Some(Vec::from_raw_parts(ptr, len, len))
    }
}

/// Gives a buffer back; it is kept if idle memory stays within the bound, else freed.
pub fn put(buf: Vec<u8>) {
    if buf.is_empty() {
        return;
    }
    let mut idle = IDLE.lock();
    if idle.bytes + buf.len() <= IDLE_BYTES_MAX {
        idle.bytes += buf.len();
        idle.buffers.push(buf);
        return;
    }
    drop(idle);
    drop(buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_when_they_fit_and_kept_within_the_bound() {
        let a = take(1 << 20).unwrap();
        let ptr = a.as_ptr();
        put(a);
        let b = take((1 << 20) - 100).unwrap();
        assert_eq!(b.as_ptr(), ptr, "a slightly larger idle buffer is reused");
        put(b);
        let c = take(100_000).unwrap();
        assert_ne!(c.as_ptr(), ptr, "a buffer ten times too large is not");
        put(c);
        for _ in 0..64 {
            put(vec![0; 1 << 20]);
        }
        assert!(IDLE.lock().bytes <= IDLE_BYTES_MAX);
    }
}
