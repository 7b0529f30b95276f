//! Writer coalescing: how a batch of queued frames becomes few, large writes.
//!
//! Small pieces (frame heads, small messages) are copied one after another into a gathering
//! buffer, so that thousands of small frames become a handful of buffers; pieces of at least
//! [`GATHER_MAX`] bytes (large payloads, often the VM's own binaries) are written from where
//! they are. The result is the list of buffers for vectored writes, in order.

/// Pieces at least this large are written where they are instead of being gathered.
pub const GATHER_MAX: usize = 8 * 1024;

/// The buffers that write `pieces` in order: runs of small pieces copied into `out` (cleared
/// first), large pieces as they are.
pub fn coalesce<'a>(pieces: &[&'a [u8]], out: &'a mut Vec<u8>) -> Vec<&'a [u8]> {
    out.clear();
    // First copy, recording each buffer as a range of `out` or as a large piece.
    let mut plan: Vec<Result<(usize, usize), &'a [u8]>> = Vec::new();
    let mut run_from = 0;
    for &piece in pieces {
        if piece.len() < GATHER_MAX {
            out.extend_from_slice(piece);
            continue;
        }
        if out.len() > run_from {
            plan.push(Ok((run_from, out.len())));
            run_from = out.len();
        }
        plan.push(Err(piece));
    }
    if out.len() > run_from {
        plan.push(Ok((run_from, out.len())));
    }
    // Then borrow: `out` no longer grows, so its ranges are stable.
    let out: &'a [u8] = out;
    plan.into_iter()
        .map(|p| match p {
            Ok((a, b)) => &out[a..b],
            Err(piece) => piece,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gathers_small_pieces_and_keeps_large_ones_in_place() {
        let big = vec![7u8; GATHER_MAX];
        let pieces: Vec<&[u8]> = vec![b"ab", b"c", &big, b"", b"de", &big];
        let mut out = Vec::new();
        let bufs = coalesce(&pieces, &mut out);
        assert_eq!(bufs.len(), 4);
        assert_eq!(bufs[0], b"abc");
        assert!(std::ptr::eq(bufs[1], &big[..]), "large piece not copied");
        assert_eq!(bufs[2], b"de");
        assert_eq!(bufs.concat(), pieces.concat());
    }

    #[test]
    fn nothing_in_nothing_out() {
        let mut out = Vec::new();
        assert!(coalesce(&[], &mut out).is_empty());
        assert!(coalesce(&[b"", b""], &mut out).is_empty());
    }
}
