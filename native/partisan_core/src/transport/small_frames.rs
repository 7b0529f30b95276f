//! Recycled buffers for small outgoing frames.
//!
//! A frame is made on a VM scheduler and freed by the I/O thread that writes it. With the system
//! allocator, each such free takes the lock of the allocating thread's arena once the freeing
//! thread's own cache of free chunks is full, and the allocating thread takes that same lock for
//! its next frame. In a profile of one sender's burst of 100k 64 B messages, a fifth of the
//! writer's time went to `free` (most of it waiting for that lock, or waking its other user)
//! and a seventh of the sender's to `malloc`. So the buffers of small frames go back to a
//! bounded lock-free pool once written and are taken from it for the next frames: in a steady
//! stream neither thread allocates.
//!
//! Buffers come in a few sizes, powers of two, so that a queued frame holds at most about twice
//! its length, and each size's pool keeps at most `POOL_BYTES` of idle memory.

use std::ops::Deref;
use std::sync::OnceLock;

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};

/// The smallest buffer; sizes double from here up to `MAX`.
const MIN: usize = 128;
/// Frames larger than this are allocated on their own.
pub const MAX: usize = 2048;
const SIZES: usize = (MAX / MIN).trailing_zeros() as usize + 1;
/// Most idle memory a size's pool keeps.
const POOL_BYTES: usize = 256 * 1024;

struct Pool {
    tx: Sender<Vec<u8>>,
    rx: Receiver<Vec<u8>>,
}

fn pools() -> &'static [Pool; SIZES] {
    static POOLS: OnceLock<[Pool; SIZES]> = OnceLock::new();
    POOLS.get_or_init(|| {
        std::array::from_fn(|i| {
            let (tx, rx) = crossbeam_channel::bounded(POOL_BYTES / (MIN << i));
            Pool { tx, rx }
        })
    })
}

/// The size class of a frame of `len` bytes, if it is small.
fn class(len: usize) -> Option<usize> {
    (len <= MAX).then(|| len.max(MIN).next_power_of_two().trailing_zeros() as usize - 7)
}

/// An empty buffer with room for `len` bytes, from the pool when it has one; `None` if `len`
/// is over [`MAX`].
pub fn take(len: usize) -> Option<PooledBuf> {
    let i = class(len)?;
    let buf = pools()[i]
        .rx
        .try_recv()
        .unwrap_or_else(|_| Vec::with_capacity(MIN << i));
    Some(PooledBuf { buf, class: i })
}

/// A small frame's buffer; it goes back to its pool when dropped (or is freed if the pool is
/// full).
pub struct PooledBuf {
    buf: Vec<u8>,
    class: usize,
}

impl PooledBuf {
    /// Appends `bytes`. The buffer was taken for the frame's whole length, so this never
    /// reallocates in correct use; if it had to, the buffer would simply not be pooled again.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The buffer itself, for encoders that write into a `Vec`.
    pub fn as_vec(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }
}

impl Deref for PooledBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.buf);
        if buf.capacity() == MIN << self.class {
            buf.clear();
            let _ = pools()[self.class].tx.try_send(buf);
        }
    }
}

/// The first buffer of an outgoing frame: shared bytes, or a pooled buffer.
pub enum Head {
    Shared(Bytes),
    Pooled(PooledBuf),
}

impl Head {
    /// The bytes from `n` on, as shared bytes (a partial write's rest: a pooled buffer's rest
    /// is copied, and the buffer goes back to its pool).
    pub(crate) fn into_bytes_from(self, n: usize) -> Bytes {
        match self {
            Head::Shared(mut b) => {
                bytes::Buf::advance(&mut b, n);
                b
            }
            Head::Pooled(p) => Bytes::copy_from_slice(&p[n..]),
        }
    }
}

impl Deref for Head {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Head::Shared(b) => b,
            Head::Pooled(p) => p,
        }
    }
}

impl From<Bytes> for Head {
    fn from(b: Bytes) -> Head {
        Head::Shared(b)
    }
}

impl From<Vec<u8>> for Head {
    fn from(v: Vec<u8>) -> Head {
        Head::Shared(v.into())
    }
}

impl From<PooledBuf> for Head {
    fn from(p: PooledBuf) -> Head {
        Head::Pooled(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_double_from_min_to_max() {
        assert_eq!(class(0), Some(0));
        assert_eq!(class(MIN), Some(0));
        assert_eq!(class(MIN + 1), Some(1));
        assert_eq!(class(MAX), Some(SIZES - 1));
        assert_eq!(class(MAX + 1), None);
        for len in [1, 100, 128, 129, 700, 1024, 2000, 2048] {
            let b = take(len).unwrap();
            assert!(b.buf.capacity() >= len && b.buf.capacity() < 2 * len.max(MIN));
        }
        assert!(take(MAX + 1).is_none());
    }

    #[test]
    fn a_dropped_buffer_is_taken_again_empty() {
        // 400 bytes: a size no other test takes, so the pool holds only what this test gives.
        let mut b = take(400).unwrap();
        b.extend_from_slice(b"frame");
        let ptr = b.buf.as_ptr();
        drop(b);
        let again = take(400).unwrap();
        assert_eq!(
            again.buf.as_ptr(),
            ptr,
            "the buffer came back from the pool"
        );
        assert!(again.is_empty());
    }

    #[test]
    fn a_grown_buffer_is_not_pooled() {
        let mut b = take(10).unwrap();
        b.extend_from_slice(&[1; 1000]);
        assert!(b.buf.capacity() > MIN);
        drop(b); // freed, not pooled: its capacity is not its class's
        let next = take(10).unwrap();
        assert_eq!(next.buf.capacity(), MIN);
    }

    #[test]
    fn the_rest_of_a_head_after_a_partial_write() {
        let mut p = take(5).unwrap();
        p.extend_from_slice(b"hello");
        assert_eq!(&Head::from(p).into_bytes_from(2)[..], b"llo");
        assert_eq!(
            &Head::from(Bytes::from_static(b"hello")).into_bytes_from(4)[..],
            b"o"
        );
    }
}
