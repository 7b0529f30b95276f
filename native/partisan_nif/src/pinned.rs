//! Large payloads are not copied into frames: the binary made by `term_to_binary` is kept alive
//! in an owned environment and its bytes are written straight from the VM's memory.

use bytes::Bytes;
use rustler::{Binary, OwnedEnv, Term};

/// Payloads at least this large are pinned rather than copied. Below it a copy is cheaper than
/// an environment, and the binary might live on a process heap, where it can move.
pub const PIN_MIN: usize = 64 * 1024;

/// A reference-counted VM binary held by a process-independent environment.
struct PinnedBinary {
    /// Owns the copied term, hence one reference to the binary; freed on drop (any thread).
    _env: OwnedEnv,
    ptr: *const u8,
    len: usize,
}

// The bytes of a reference-counted binary never move and are immutable while referenced; the
// environment that holds the reference may be freed from any thread.
unsafe impl Send for PinnedBinary {}
unsafe impl Sync for PinnedBinary {}

impl AsRef<[u8]> for PinnedBinary {
    fn as_ref(&self) -> &[u8] {
        // Safety: `ptr`/`len` describe the binary kept alive by `_env` (see above).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// The payload as `Bytes` without copying it; `None` if `term` is not a binary.
pub fn pin(term: Term) -> Option<Bytes> {
    let env = OwnedEnv::new();
    let saved = env.save(term);
    let (ptr, len) = env.run(|e| {
        let bin: Binary = saved.load(e).decode().ok()?;
        let s = bin.as_slice();
        Some((s.as_ptr(), s.len()))
    })?;
    Some(Bytes::from_owner(PinnedBinary {
        _env: env,
        ptr,
        len,
    }))
}
