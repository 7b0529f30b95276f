//! Where a large received message can share its frame's memory: the plan for decoding it in
//! place. Large binaries in the message become references into the frame (the NIF makes them
//! sub-binaries of the frame's binary, as Distributed Erlang does with the buffer of a received
//! message); everything else is decoded as usual. Only small tuples are looked into, and only
//! a few levels deep, so a plan costs little whatever the frame holds.

use super::term_rewrite::{walk, TermError};

/// A binary is referenced from this size, provided it is also at least a quarter of the frame:
/// a binary the receiver keeps then never holds on to much more memory than its own.
pub const REFERENCE_MIN: usize = 64 * 1024;
/// Tuples are looked through to this depth; anything deeper is one term. `partisan_payload`
/// splices binaries two tuples deep; the bound also caps what a hostile frame can cost.
pub const MAX_DEPTH: u32 = 3;
/// Tuples with more elements than this are one term.
pub const MAX_ARITY: usize = 16;

const VERSION: u8 = 131;
const SMALL_TUPLE_EXT: u8 = 104;
const BINARY_EXT: u8 = 109;

/// How to decode (part of) a message in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// Bytes `start..end` of the frame are one term in the external format (without the version
    /// byte, which is at `start - 1` only for the whole message), decoded as usual.
    Term {
        /// The term's first byte.
        start: usize,
        /// One past its last byte.
        end: usize,
    },
    /// A binary whose contents are bytes `at..at + len` of the frame: referenced, not copied.
    Binary {
        /// The first byte of the contents.
        at: usize,
        /// Their length.
        len: usize,
    },
    /// A tuple of parts, at least one of which references the frame.
    Tuple(Vec<Shape>),
}

/// Plans the decoding of the message in `data` whose version byte is at `at` and which runs
/// to the end of `data`.
pub fn plan(data: &[u8], at: usize) -> Result<Shape, TermError> {
    if data.get(at) != Some(&VERSION) {
        return Err(TermError::Truncated);
    }
    let min = REFERENCE_MIN.max((data.len() - at) / 4);
    let (shape, end) = part(data, at + 1, Some(data.len()), MAX_DEPTH, min)?;
    if end != data.len() {
        return Err(TermError::BadSize);
    }
    Ok(shape)
}

/// The shape of the term at `pos` and where it ends; `end` is known when the term is the last
/// thing in the message.
fn part(
    data: &[u8],
    pos: usize,
    end: Option<usize>,
    depth: u32,
    min: usize,
) -> Result<(Shape, usize), TermError> {
    match data.get(pos).copied() {
        Some(BINARY_EXT) => {
            if let Some(b) = data.get(pos + 1..pos + 5) {
                let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
                let at = pos + 5;
                let fits = at.checked_add(len).is_some_and(|e| e <= data.len());
                if len >= min && fits {
                    return Ok((Shape::Binary { at, len }, at + len));
                }
            }
        }
        Some(SMALL_TUPLE_EXT) if depth > 0 => {
            let arity = *data.get(pos + 1).ok_or(TermError::Truncated)? as usize;
            if arity <= MAX_ARITY {
                let mut next = pos + 2;
                let mut parts = Vec::with_capacity(arity);
                for i in 0..arity {
                    let last = if i + 1 == arity { end } else { None };
                    let (shape, e) = part(data, next, last, depth - 1, min)?;
                    parts.push(shape);
                    next = e;
                }
                let shape = if parts.iter().all(|p| matches!(p, Shape::Term { .. })) {
                    // Nothing to reference inside: the tuple is one term.
                    Shape::Term {
                        start: pos,
                        end: next,
                    }
                } else {
                    Shape::Tuple(parts)
                };
                return Ok((shape, next));
            }
        }
        _ => {}
    }
    let end = match end {
        Some(e) => e,
        None => walk(data, pos, &[], &mut |_, _| {})?.end,
    };
    if end <= pos {
        return Err(TermError::Truncated);
    }
    Ok((Shape::Term { start: pos, end }, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary(len: usize) -> Vec<u8> {
        let mut v = vec![BINARY_EXT];
        v.extend_from_slice(&(len as u32).to_be_bytes());
        v.extend(std::iter::repeat_n(7u8, len));
        v
    }

    #[test]
    fn a_large_binary_two_tuples_deep_is_referenced() {
        // {meta, {small, <<big>>}}, as partisan_payload splices it.
        let mut t = vec![VERSION, SMALL_TUPLE_EXT, 2, 119, 4];
        t.extend_from_slice(b"meta");
        t.extend_from_slice(&[SMALL_TUPLE_EXT, 2, 97, 5]);
        let at = t.len() + 5;
        t.extend(binary(100_000));
        let shape = plan(&t, 0).unwrap();
        assert_eq!(
            shape,
            Shape::Tuple(vec![
                Shape::Term { start: 3, end: 9 },
                Shape::Tuple(vec![
                    Shape::Term { start: 11, end: 13 },
                    Shape::Binary { at, len: 100_000 },
                ]),
            ])
        );
    }

    #[test]
    fn small_binaries_and_plain_terms_are_one_term() {
        let mut t = vec![VERSION, SMALL_TUPLE_EXT, 2, 97, 1];
        t.extend(binary(10));
        assert_eq!(
            plan(&t, 0).unwrap(),
            Shape::Term {
                start: 1,
                end: t.len()
            }
        );
        let list = [VERSION, 106];
        assert_eq!(plan(&list, 0).unwrap(), Shape::Term { start: 1, end: 2 });
    }

    #[test]
    fn lies_are_errors_not_panics() {
        let mut t = vec![VERSION, SMALL_TUPLE_EXT, 3, 97, 1];
        t.extend(binary(70_000));
        // The tuple claims a third element that is not there.
        assert!(plan(&t, 0).is_err());
        assert!(plan(&[VERSION], 0).is_err());
        assert!(plan(&[1, 2, 3], 0).is_err());
        // A binary that claims more bytes than the frame has is a term, which then fails
        // to decode in the NIF, not a reference past the end.
        let mut b = vec![VERSION, SMALL_TUPLE_EXT, 1];
        b.extend_from_slice(&[BINARY_EXT, 0, 1, 0, 0]);
        assert_eq!(
            plan(&b, 0).unwrap(),
            Shape::Term {
                start: 1,
                end: b.len()
            }
        );
    }
}
