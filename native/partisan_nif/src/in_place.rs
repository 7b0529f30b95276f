//! Large frames are read into a buffer that becomes a binary of the VM, and the message is
//! decoded in place: large binaries in it become sub-binaries of that binary rather than copies,
//! as Distributed Erlang does with the buffer of a received message (`wire::plan_in_place`
//! says which). Everything else is decoded by the caller's leaf decoder (`decode::decode_term`:
//! pids rewritten, atoms within the budget). Buffers of 256 KiB or more come from `frame_pool` and go back to it when the VM
//! frees the binary.

use std::mem::MaybeUninit;

use partisan_core::frame_pool::{self, Pages};
use partisan_core::transport::{Delivery, FrameBuf};
use partisan_core::wire::{plan_in_place, Shape};
use rustler::types::tuple::make_tuple;
use rustler::{Binary, Env, OwnedBinary, ResourceArc, Term};

const VERSION: u8 = 131;

/// Frames from this size are read into pooled buffers; smaller ones into binaries of the VM,
/// whose allocator serves them from memory it keeps (mapping and unmapping a 64 KiB buffer per
/// frame cost the 64 KiB rows 10-15 %).
const POOLED_MIN: usize = 256 * 1024;

/// The body of a large frame. Each variant holds its memory in an `Option` so that `decode`
/// can hand it to the VM (`None` afterwards).
pub enum BeamFrame {
    /// A binary of the VM's.
    Vm(Option<OwnedBinary>),
    /// The first `len` bytes of a pooled buffer.
    Pooled { buf: Option<Pages>, len: usize },
}

impl BeamFrame {
    /// `None` if no memory can be had for `len` bytes.
    pub fn alloc(len: usize) -> Option<BeamFrame> {
        if len >= POOLED_MIN {
            return Some(BeamFrame::Pooled {
                buf: Some(frame_pool::take(len)?),
                len,
            });
        }
        let mut raw = MaybeUninit::uninit();
        // SAFETY: `enif_alloc_binary` may be called from any thread and initialises `raw` when
        // it succeeds; the binary is then owned (and released on drop) by `OwnedBinary`.
        unsafe {
            if rustler::sys::enif_alloc_binary(len, raw.as_mut_ptr()) == 0 {
                return None;
            }
            Some(BeamFrame::Vm(Some(OwnedBinary::from_raw(
                raw.assume_init(),
            ))))
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        match self {
            BeamFrame::Vm(bin) => bin.as_ref().map_or(&[], |b| b.as_slice()),
            BeamFrame::Pooled { buf, len } => buf.as_ref().map_or(&[], |b| &b.as_slice()[..*len]),
        }
    }

    /// Gives the frame's memory to the VM as one binary; `None` if it was given already.
    fn hand_to_vm<'a>(&mut self, env: Env<'a>) -> Option<Binary<'a>> {
        match self {
            BeamFrame::Vm(bin) => Some(bin.take()?.release(env)),
            BeamFrame::Pooled { buf, len } => {
                let len = *len;
                let memory = ResourceArc::new(FrameMemory(Some(buf.take()?)));
                Some(
                    memory.make_binary(env, |m| m.0.as_ref().map_or(&[], |b| &b.as_slice()[..len])),
                )
            }
        }
    }
}

impl Drop for BeamFrame {
    fn drop(&mut self) {
        if let BeamFrame::Pooled { buf, .. } = self {
            if let Some(buf) = buf.take() {
                frame_pool::put(buf);
            }
        }
    }
}

impl FrameBuf for BeamFrame {
    fn as_slice(&self) -> &[u8] {
        BeamFrame::as_slice(self)
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        match self {
            BeamFrame::Vm(bin) => bin.as_mut().map_or(&mut [], |b| b.as_mut_slice()),
            BeamFrame::Pooled { buf, len } => {
                let len = *len;
                buf.as_mut()
                    .map_or(&mut [], |b| &mut b.as_mut_slice()[..len])
            }
        }
    }
}

/// A frame's buffer owned by the VM, as a resource: the memory of the frame's binary, which
/// sub-binaries in the message refer to. Back to the pool when the VM frees it.
pub struct FrameMemory(Option<Pages>);

#[rustler::resource_impl]
impl rustler::Resource for FrameMemory {}

impl Drop for FrameMemory {
    fn drop(&mut self) {
        if let Some(buf) = self.0.take() {
            frame_pool::put(buf);
        }
    }
}

/// A decoded part of the message: a term, a binary to reference in the frame, or a tuple of
/// parts.
enum Part<'a> {
    Term(Term<'a>),
    Reference { at: usize, len: usize },
    Tuple(Vec<Part<'a>>),
}

/// Decodes one term that starts (version byte first) at the front of a slice; returns it and
/// the bytes it used.
pub type Leaf<'d> = dyn for<'a> Fn(Env<'a>, &[u8]) -> Result<(Term<'a>, usize), Delivery> + 'd;

/// Decodes the uncompressed external term in `frame` from `at` on (as `wire::plan_in_place`
/// plans it), its terms with `leaf`.
pub fn decode<'a>(
    env: Env<'a>,
    mut frame: BeamFrame,
    at: usize,
    leaf: &Leaf<'_>,
) -> Result<Term<'a>, Delivery> {
    let data = FrameBuf::as_mut_slice(&mut frame);
    let shape = plan_in_place(data, at).map_err(|_| Delivery::Undecodable)?;
    let part = match decode_terms(env, data, shape, leaf)? {
        // Nothing refers to the frame: its buffer goes back to the pool (drop).
        Part::Term(term) => return Ok(term),
        part => part,
    };
    let whole = frame.hand_to_vm(env).ok_or(Delivery::Undecodable)?;
    build(env, &whole, part).ok_or(Delivery::Undecodable)
}

/// Decodes the plain terms of a shape with `leaf`, which wants the version byte in front: the
/// byte before each is lent for it and put back.
fn decode_terms<'a>(
    env: Env<'a>,
    data: &mut [u8],
    shape: Shape,
    leaf: &Leaf<'_>,
) -> Result<Part<'a>, Delivery> {
    Ok(match shape {
        Shape::Term { start, end } => {
            let before = start.checked_sub(1).ok_or(Delivery::Undecodable)?;
            let kept = std::mem::replace(&mut data[before], VERSION);
            let decoded = leaf(env, &data[before..end]);
            data[before] = kept;
            let (term, used) = decoded?;
            if used != end - before {
                return Err(Delivery::Undecodable);
            }
            Part::Term(term)
        }
        Shape::Binary { at, len } => Part::Reference { at, len },
        Shape::Tuple(parts) => Part::Tuple(
            parts
                .into_iter()
                .map(|p| decode_terms(env, data, p, leaf))
                .collect::<Result<_, _>>()?,
        ),
    })
}

fn build<'a>(env: Env<'a>, whole: &Binary<'a>, part: Part<'a>) -> Option<Term<'a>> {
    Some(match part {
        Part::Term(term) => term,
        Part::Reference { at, len } => whole.make_subbinary(at, len).ok()?.to_term(env),
        Part::Tuple(parts) => {
            let terms = parts
                .into_iter()
                .map(|p| build(env, whole, p))
                .collect::<Option<Vec<_>>>()?;
            make_tuple(env, &terms)
        }
    })
}
