//! The external term format of small plain messages, written by the send NIF itself.
//!
//! `term_to_binary` of a 64 B message, the binary it allocates and that binary's later free
//! were a quarter of the sending scheduler's time in the 16-sender burst profile; the NIF
//! writes the same format straight into a reused buffer instead, and the frame is made from it.
//! Only small terms are written here, so that no call holds its scheduler for long: past
//! [`MAX_BYTES`], [`MAX_TERMS`] or [`MAX_DEPTH`], or for a term holding a fun, an integer
//! beyond 64 bits, a bit string, an improper list or an atom outside Latin-1, [`encode`] gives
//! up and the caller uses `term_to_binary` (which yields on large terms). The receiver decodes
//! with `binary_to_term` either way, and gets the same term.

use std::cell::RefCell;

use rustler::sys::{
    enif_get_atom, enif_get_atom_length, enif_get_tuple, ErlNifCharEncoding, ErlNifTerm,
};
use rustler::types::map::MapIterator;
use rustler::{Binary, Term, TermType};

/// Most bytes of external format written here.
pub const MAX_BYTES: usize = 16 * 1024;
/// Most terms (every element of every tuple, list and map counts) written here.
const MAX_TERMS: usize = 4096;
/// Deepest nesting written here.
const MAX_DEPTH: usize = 64;

const VERSION: u8 = 131;
const NEW_FLOAT_EXT: u8 = 70;
const SMALL_INTEGER_EXT: u8 = 97;
const INTEGER_EXT: u8 = 98;
const SMALL_TUPLE_EXT: u8 = 104;
const LARGE_TUPLE_EXT: u8 = 105;
const NIL_EXT: u8 = 106;
const LIST_EXT: u8 = 108;
const BINARY_EXT: u8 = 109;
const SMALL_BIG_EXT: u8 = 110;
const SMALL_ATOM_EXT: u8 = 115;
const MAP_EXT: u8 = 116;
const SMALL_ATOM_UTF8_EXT: u8 = 119;

/// Atoms seen by this thread, by their term (an atom's term is the same for the VM's life), with
/// their external format: looking an atom's text up takes the atom table's lock.
const ATOM_SLOTS: usize = 256;

/// An atom's term word and its external format.
type AtomSlot = Option<(usize, Vec<u8>)>;

thread_local! {
    static ATOMS: RefCell<Vec<AtomSlot>> = RefCell::new(vec![None; ATOM_SLOTS]);
}

/// Writes `term` in external format (with the version byte) to `out`, which it clears first.
/// False when the term is not one written here (see the module doc); `out` is then garbage.
pub fn encode(term: Term, out: &mut Vec<u8>) -> bool {
    out.clear();
    out.push(VERSION);
    let mut terms = MAX_TERMS;
    put(term, out, 0, &mut terms) && out.len() <= MAX_BYTES
}

fn put(term: Term, out: &mut Vec<u8>, depth: usize, terms: &mut usize) -> bool {
    if depth > MAX_DEPTH || *terms == 0 || out.len() > MAX_BYTES {
        return false;
    }
    *terms -= 1;
    match term.get_type() {
        TermType::Integer => integer(term, out),
        TermType::Float => match term.decode::<f64>() {
            Ok(f) => {
                out.push(NEW_FLOAT_EXT);
                out.extend_from_slice(&f.to_bits().to_be_bytes());
                true
            }
            Err(_) => false,
        },
        TermType::Atom => atom(term, out),
        TermType::Binary => match Binary::from_term(term) {
            Ok(b) if out.len() + b.len() <= MAX_BYTES => {
                out.push(BINARY_EXT);
                out.extend_from_slice(&(b.len() as u32).to_be_bytes());
                out.extend_from_slice(b.as_slice());
                true
            }
            _ => false,
        },
        TermType::Tuple => {
            let Some(elems) = tuple(term) else {
                return false;
            };
            if elems.len() < 256 {
                out.push(SMALL_TUPLE_EXT);
                out.push(elems.len() as u8);
            } else {
                out.push(LARGE_TUPLE_EXT);
                out.extend_from_slice(&(elems.len() as u32).to_be_bytes());
            }
            let env = term.get_env();
            // SAFETY: the words are elements of a live tuple of `env`.
            elems
                .iter()
                .all(|&e| put(unsafe { Term::new(env, e) }, out, depth + 1, terms))
        }
        TermType::List => {
            if term.is_empty_list() {
                out.push(NIL_EXT);
                return true;
            }
            // The length is patched in after the walk: asking the VM for it would walk the
            // whole list first, however long it is.
            out.push(LIST_EXT);
            let at = out.len();
            out.extend_from_slice(&[0; 4]);
            let mut n: u32 = 0;
            let mut rest = term;
            while let Ok((head, tail)) = rest.list_get_cell() {
                if !put(head, out, depth + 1, terms) {
                    return false;
                }
                n += 1;
                rest = tail;
            }
            // An improper list is left to term_to_binary.
            if !rest.is_empty_list() {
                return false;
            }
            out[at..at + 4].copy_from_slice(&n.to_be_bytes());
            out.push(NIL_EXT);
            true
        }
        TermType::Map => {
            let n = match term.map_size() {
                Ok(n) if 2 * n <= *terms => n,
                _ => return false,
            };
            let Some(pairs) = MapIterator::new(term) else {
                return false;
            };
            out.push(MAP_EXT);
            out.extend_from_slice(&(n as u32).to_be_bytes());
            for (k, v) in pairs {
                if !put(k, out, depth + 1, terms) || !put(v, out, depth + 1, terms) {
                    return false;
                }
            }
            true
        }
        // Small and bounded: their own term_to_binary, less the version byte.
        TermType::Pid | TermType::Ref | TermType::Port => {
            let bin = term.to_binary();
            out.extend_from_slice(&bin.as_slice()[1..]);
            true
        }
        // A fun's environment may be large; anything else is unknown here.
        TermType::Fun | TermType::Unknown => false,
    }
}

fn integer(term: Term, out: &mut Vec<u8>) -> bool {
    if let Ok(i) = term.decode::<i64>() {
        if (0..=255).contains(&i) {
            out.push(SMALL_INTEGER_EXT);
            out.push(i as u8);
        } else if let Ok(i) = i32::try_from(i) {
            out.push(INTEGER_EXT);
            out.extend_from_slice(&i.to_be_bytes());
        } else {
            big(i < 0, i.unsigned_abs(), out);
        }
        return true;
    }
    match term.decode::<u64>() {
        Ok(u) => {
            big(false, u, out);
            true
        }
        Err(_) => false,
    }
}

/// SMALL_BIG_EXT: the magnitude's bytes, least significant first.
fn big(negative: bool, magnitude: u64, out: &mut Vec<u8>) {
    let bytes = magnitude.to_le_bytes();
    let n = 8 - (magnitude.leading_zeros() / 8) as usize;
    out.push(SMALL_BIG_EXT);
    out.push(n as u8);
    out.push(negative as u8);
    out.extend_from_slice(&bytes[..n]);
}

fn atom(term: Term, out: &mut Vec<u8>) -> bool {
    // SAFETY: `ErlNifTerm` is a transparent wrapper of the term's word.
    let word: usize = unsafe { std::mem::transmute(term.as_c_arg()) };
    ATOMS.with(|slots| {
        let mut slots = slots.borrow_mut();
        let slot = &mut slots[(word >> 6) % ATOM_SLOTS];
        if let Some((w, bytes)) = slot {
            if *w == word {
                out.extend_from_slice(bytes);
                return true;
            }
        }
        let Some(bytes) = atom_ext(term) else {
            return false;
        };
        out.extend_from_slice(&bytes);
        *slot = Some((word, bytes));
        true
    })
}

/// An atom's external format: UTF-8 when its text is ASCII, else Latin-1 (which
/// `binary_to_term` reads as well). `None` for an atom outside Latin-1.
fn atom_ext(term: Term) -> Option<Vec<u8>> {
    let env = term.get_env().as_c_arg();
    let mut len: std::os::raw::c_uint = 0;
    let latin1 = ErlNifCharEncoding::ERL_NIF_LATIN1;
    // SAFETY: `term` is an atom of `env`; the buffer has room for the text and its NUL.
    unsafe {
        if enif_get_atom_length(env, term.as_c_arg(), &mut len, latin1) == 0 {
            return None;
        }
        let mut text = vec![0u8; len as usize + 1];
        let got = enif_get_atom(
            env,
            term.as_c_arg(),
            text.as_mut_ptr() as *mut std::os::raw::c_char,
            text.len() as std::os::raw::c_uint,
            latin1,
        );
        if got != text.len() as i32 {
            return None;
        }
        text.truncate(len as usize);
        let tag = if text.is_ascii() {
            SMALL_ATOM_UTF8_EXT
        } else {
            SMALL_ATOM_EXT
        };
        let mut ext = Vec::with_capacity(2 + text.len());
        ext.push(tag);
        ext.push(text.len() as u8);
        ext.extend_from_slice(&text);
        Some(ext)
    }
}

/// A tuple's element words, without copying them out (each is made a `Term` of the tuple's env
/// where it is used).
pub(crate) fn tuple<'a>(term: Term<'a>) -> Option<&'a [ErlNifTerm]> {
    let mut arity: std::os::raw::c_int = 0;
    let mut elems: *const ErlNifTerm = std::ptr::null();
    // SAFETY: on success `elems` points at `arity` terms owned by the tuple, which lives as
    // long as its env does.
    unsafe {
        if enif_get_tuple(
            term.get_env().as_c_arg(),
            term.as_c_arg(),
            &mut arity,
            &mut elems,
        ) == 0
        {
            return None;
        }
        Some(std::slice::from_raw_parts(elems, arity as usize))
    }
}
