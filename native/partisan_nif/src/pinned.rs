//! Large payloads are not copied into frames: the binaries are kept alive in an owned
//! environment and their bytes are written straight from the VM's memory.

use std::sync::Arc;

use bytes::Bytes;
use rustler::{Binary, OwnedEnv, Term};

/// A payload given as one binary is pinned from this size. Below it a copy is cheaper than an
/// environment, and the binary might live on a process heap, where it can move.
pub const PIN_MIN: usize = 64 * 1024;

/// A part of a payload given as a list of binaries is pinned from this size: the list already
/// costs one environment, so only the per-part reference counts for a part.
pub const PIN_PART_MIN: usize = 4 * 1024;

/// A copy of the caller's term in a process-independent environment: it holds one reference
/// to every binary in the term. Freed on drop, from any thread.
struct Holder(#[allow(dead_code)] OwnedEnv);

// SAFETY: the environment is private and never used through a shared reference; it is only
// dropped, by whichever thread lets go of the last part.
unsafe impl Sync for Holder {}

/// The bytes of one pinned binary.
struct PinnedPart {
    _holder: Arc<Holder>,
    ptr: *const u8,
    len: usize,
}

// SAFETY: the bytes of a reference-counted binary never move and are immutable while
// referenced; the environment that holds the reference may be freed from any thread.
unsafe impl Send for PinnedPart {}
// SAFETY: as above: shared access only reads immutable bytes.
unsafe impl Sync for PinnedPart {}

impl AsRef<[u8]> for PinnedPart {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `ptr`/`len` describe a binary kept alive by `_holder` (see above).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// The binary `term` as `Bytes` without copying it; `None` if `term` is not a binary.
pub fn pin(term: Term) -> Option<Bytes> {
    pin_parts(term, 0)?.pop()
}

/// Pins, in order, every binary of at least `min` bytes in `term`, which is a binary or a list
/// of binaries; `None` if it is neither.
pub fn pin_parts(term: Term, min: usize) -> Option<Vec<Bytes>> {
    let env = OwnedEnv::new();
    let saved = env.save(term);
    let spans = env.run(|e| {
        let copy = saved.load(e);
        let mut spans = Vec::new();
        let mut note = |bin: Binary| {
            if bin.len() >= min {
                let s = bin.as_slice();
                spans.push((s.as_ptr(), s.len()));
            }
        };
        if copy.is_binary() {
            note(copy.decode().ok()?);
        } else {
            for part in copy.into_list_iterator().ok()? {
                note(part.decode().ok()?);
            }
        }
        Some(spans)
    })?;
    let holder = Arc::new(Holder(env));
    Some(
        spans
            .into_iter()
            .map(|(ptr, len)| {
                Bytes::from_owner(PinnedPart {
                    _holder: holder.clone(),
                    ptr,
                    len,
                })
            })
            .collect(),
    )
}
