//! A decoder of the external term format's plain subset: the terms most messages are made of
//! (atoms, integers, floats, binaries, tuples, lists, strings and maps), built through `BuildTerm`.
//!
//! The NIF builds these terms itself instead of calling the VM's `binary_to_term`, to take atoms
//! from its per-thread memo: every atom `binary_to_term` decodes is a lookup in the VM's atom
//! table (a lock and a hash of the text), which in the 16×64 B burst was most of the decoding
//! time of a `{Tag, Binary}` message. Anything outside the subset (pids, references, ports,
//! funs, bit strings, integers beyond 64 bits), an atom the builder does not have, or input this
//! decoder finds malformed gives `None`: the caller then decodes with the VM, whose answer
//! (including its refusal) stands. So this decoder never decides what a message means, only
//! how fast the common one is built.

use super::AtomText;

const VERSION: u8 = 131;
const NEW_FLOAT: u8 = 70;
const SMALL_INTEGER: u8 = 97;
const INTEGER: u8 = 98;
const ATOM: u8 = 100;
const SMALL_TUPLE: u8 = 104;
const LARGE_TUPLE: u8 = 105;
const NIL: u8 = 106;
const STRING: u8 = 107;
const LIST: u8 = 108;
const BINARY: u8 = 109;
const SMALL_BIG: u8 = 110;
const SMALL_ATOM: u8 = 115;
const MAP: u8 = 116;
const ATOM_UTF8: u8 = 118;
const SMALL_ATOM_UTF8: u8 = 119;

/// Deepest nesting decoded here (deeper terms go to the VM's decoder, which does not recurse).
pub const MAX_DEPTH: usize = 64;

/// Makes the terms of a decoded message. `None` from a method sends the message to the VM's
/// decoder.
pub trait BuildTerm {
    /// A term made by the builder.
    type Term: Copy;
    /// An atom that already exists; `None` if it does not (or the text is not a valid atom).
    fn atom(&mut self, enc: AtomText, text: &[u8]) -> Option<Self::Term>;
    /// An integer (small or not).
    fn int(&mut self, v: i64) -> Self::Term;
    /// An integer above `i64::MAX`.
    fn uint(&mut self, v: u64) -> Self::Term;
    /// A finite float.
    fn float(&mut self, v: f64) -> Self::Term;
    /// A binary holding a copy of `bytes`.
    fn binary(&mut self, bytes: &[u8]) -> Self::Term;
    /// A list of the integers `bytes` (`STRING_EXT`).
    fn string(&mut self, bytes: &[u8]) -> Self::Term;
    /// A tuple of `elems`.
    fn tuple(&mut self, elems: &[Self::Term]) -> Self::Term;
    /// `elems` (at least one) in front of `tail`.
    fn list(&mut self, elems: &[Self::Term], tail: Self::Term) -> Self::Term;
    /// The empty list.
    fn nil(&mut self) -> Self::Term;
    /// The map of `keys` to `values`; `None` if the keys are not distinct.
    fn map(&mut self, keys: &[Self::Term], values: &[Self::Term]) -> Option<Self::Term>;
}

/// Decodes the term at the start of `etf` (version byte first; bytes after the term are
/// ignored): the term and the bytes it used, or `None` (see the module's documentation).
pub fn decode_plain<B: BuildTerm>(b: &mut B, etf: &[u8]) -> Option<(B::Term, usize)> {
    if etf.first() != Some(&VERSION) {
        return None;
    }
    let mut r = Reader {
        b,
        buf: etf,
        at: 1,
        stack: Vec::new(),
    };
    let t = r.term(0)?;
    Some((t, r.at))
}

struct Reader<'r, B: BuildTerm> {
    b: &'r mut B,
    buf: &'r [u8],
    at: usize,
    /// Decoded elements of the compounds being decoded, innermost last.
    stack: Vec<B::Term>,
}

impl<'r, B: BuildTerm> Reader<'r, B> {
    fn take(&mut self, n: usize) -> Option<&'r [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.buf.get(self.at..end)?;
        self.at = end;
        Some(s)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u16(&mut self) -> Option<usize> {
        let s = self.take(2)?;
        Some(u16::from_be_bytes([s[0], s[1]]) as usize)
    }

    fn u32(&mut self) -> Option<usize> {
        let s = self.take(4)?;
        Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize)
    }

    fn left(&self) -> usize {
        self.buf.len() - self.at
    }

    fn term(&mut self, depth: usize) -> Option<B::Term> {
        if depth >= MAX_DEPTH {
            return None;
        }
        let t = match self.u8()? {
            SMALL_INTEGER => {
                let v = self.u8()?;
                self.b.int(v as i64)
            }
            INTEGER => {
                let s = self.take(4)?;
                self.b
                    .int(i32::from_be_bytes([s[0], s[1], s[2], s[3]]) as i64)
            }
            NEW_FLOAT => {
                let s = self.take(8)?;
                let v = f64::from_be_bytes(s.try_into().ok()?);
                // The VM refuses what is not a finite float: let it.
                if !v.is_finite() {
                    return None;
                }
                self.b.float(v)
            }
            SMALL_BIG => self.small_big()?,
            ATOM => self.atom(AtomText::Latin1, 2)?,
            SMALL_ATOM => self.atom(AtomText::Latin1, 1)?,
            ATOM_UTF8 => self.atom(AtomText::Utf8, 2)?,
            SMALL_ATOM_UTF8 => self.atom(AtomText::Utf8, 1)?,
            SMALL_TUPLE => {
                let n = self.u8()? as usize;
                self.tuple(n, depth)?
            }
            LARGE_TUPLE => {
                let n = self.u32()?;
                self.tuple(n, depth)?
            }
            NIL => self.b.nil(),
            STRING => {
                let n = self.u16()?;
                let s = self.take(n)?;
                self.b.string(s)
            }
            LIST => self.list(depth)?,
            BINARY => {
                let n = self.u32()?;
                let s = self.take(n)?;
                self.b.binary(s)
            }
            MAP => self.map(depth)?,
            _ => return None,
        };
        Some(t)
    }

    fn atom(&mut self, enc: AtomText, len_bytes: usize) -> Option<B::Term> {
        let n = if len_bytes == 1 {
            self.u8()? as usize
        } else {
            self.u16()?
        };
        let text = self.take(n)?;
        self.b.atom(enc, text)
    }

    /// An integer of at most 64 bits (wider ones are left to the VM).
    fn small_big(&mut self) -> Option<B::Term> {
        let n = self.u8()? as usize;
        let sign = self.u8()?;
        if n > 8 || sign > 1 {
            return None;
        }
        let digits = self.take(n)?;
        let magnitude = digits
            .iter()
            .rev()
            .fold(0u64, |acc, &d| (acc << 8) | d as u64);
        Some(match (sign, i64::try_from(magnitude)) {
            (0, Ok(v)) => self.b.int(v),
            (0, Err(_)) => self.b.uint(magnitude),
            (_, Ok(v)) => self.b.int(-v),
            (_, Err(_)) if magnitude == 1 << 63 => self.b.int(i64::MIN),
            _ => return None,
        })
    }

    /// Decodes `n` terms onto the stack; false if one is not plain.
    fn elems(&mut self, n: usize, depth: usize) -> Option<()> {
        // Every term takes a byte at least: a count beyond what is left is a lie.
        if n > self.left() {
            return None;
        }
        for _ in 0..n {
            let t = self.term(depth + 1)?;
            self.stack.push(t);
        }
        Some(())
    }

    fn tuple(&mut self, n: usize, depth: usize) -> Option<B::Term> {
        let base = self.stack.len();
        self.elems(n, depth)?;
        let t = self.b.tuple(&self.stack[base..]);
        self.stack.truncate(base);
        Some(t)
    }

    fn list(&mut self, depth: usize) -> Option<B::Term> {
        let n = self.u32()?;
        if n == 0 {
            return None;
        }
        let base = self.stack.len();
        self.elems(n, depth)?;
        let tail = self.term(depth + 1)?;
        let t = self.b.list(&self.stack[base..], tail);
        self.stack.truncate(base);
        Some(t)
    }

    fn map(&mut self, depth: usize) -> Option<B::Term> {
        let n = self.u32()?;
        let base = self.stack.len();
        self.elems(n.checked_mul(2)?, depth)?;
        let pairs = &self.stack[base..];
        let keys: Vec<B::Term> = pairs.iter().step_by(2).copied().collect();
        let values: Vec<B::Term> = pairs.iter().skip(1).step_by(2).copied().collect();
        let t = self.b.map(&keys, &values);
        self.stack.truncate(base);
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A term as the tests see it.
    #[derive(Debug, Clone, PartialEq)]
    enum T {
        Atom(AtomText, Vec<u8>),
        Int(i128),
        Float(u64),
        Bin(Vec<u8>),
        Str(Vec<u8>),
        Tuple(Vec<T>),
        List(Vec<T>, Box<T>),
        Nil,
        Map(Vec<(T, T)>),
    }

    /// Builds `T`s in an arena (terms must be `Copy`); atoms named "missing" do not exist.
    #[derive(Default)]
    struct Arena(Vec<T>);

    impl Arena {
        fn put(&mut self, t: T) -> usize {
            self.0.push(t);
            self.0.len() - 1
        }
        fn get(&self, i: usize) -> T {
            self.0[i].clone()
        }
    }

    impl BuildTerm for Arena {
        type Term = usize;
        fn atom(&mut self, enc: AtomText, text: &[u8]) -> Option<usize> {
            (text != b"missing").then(|| self.put(T::Atom(enc, text.to_vec())))
        }
        fn int(&mut self, v: i64) -> usize {
            self.put(T::Int(v as i128))
        }
        fn uint(&mut self, v: u64) -> usize {
            self.put(T::Int(v as i128))
        }
        fn float(&mut self, v: f64) -> usize {
            self.put(T::Float(v.to_bits()))
        }
        fn binary(&mut self, bytes: &[u8]) -> usize {
            self.put(T::Bin(bytes.to_vec()))
        }
        fn string(&mut self, bytes: &[u8]) -> usize {
            self.put(T::Str(bytes.to_vec()))
        }
        fn tuple(&mut self, elems: &[usize]) -> usize {
            let t = T::Tuple(elems.iter().map(|&i| self.get(i)).collect());
            self.put(t)
        }
        fn list(&mut self, elems: &[usize], tail: usize) -> usize {
            let t = T::List(
                elems.iter().map(|&i| self.get(i)).collect(),
                Box::new(self.get(tail)),
            );
            self.put(t)
        }
        fn nil(&mut self) -> usize {
            self.put(T::Nil)
        }
        fn map(&mut self, keys: &[usize], values: &[usize]) -> Option<usize> {
            let pairs: Vec<(T, T)> = keys
                .iter()
                .zip(values)
                .map(|(&k, &v)| (self.get(k), self.get(v)))
                .collect();
            for (i, (k, _)) in pairs.iter().enumerate() {
                if pairs[..i].iter().any(|(k2, _)| k2 == k) {
                    return None;
                }
            }
            Some(self.put(T::Map(pairs)))
        }
    }

    /// The external format of `t`, as `term_to_binary` writes it.
    fn encode(t: &T, out: &mut Vec<u8>) {
        match t {
            T::Atom(enc, text) => {
                let small = text.len() < 256;
                out.push(match (enc, small) {
                    (AtomText::Latin1, true) => SMALL_ATOM,
                    (AtomText::Latin1, false) => ATOM,
                    (AtomText::Utf8, true) => SMALL_ATOM_UTF8,
                    (AtomText::Utf8, false) => ATOM_UTF8,
                });
                if small {
                    out.push(text.len() as u8);
                } else {
                    out.extend_from_slice(&(text.len() as u16).to_be_bytes());
                }
                out.extend_from_slice(text);
            }
            T::Int(v) if (0..=255).contains(v) => {
                out.push(SMALL_INTEGER);
                out.push(*v as u8);
            }
            T::Int(v) if i32::try_from(*v).is_ok() => {
                out.push(INTEGER);
                out.extend_from_slice(&(*v as i32).to_be_bytes());
            }
            T::Int(v) => {
                let mut m = v.unsigned_abs();
                let mut digits = Vec::new();
                while m > 0 {
                    digits.push(m as u8);
                    m >>= 8;
                }
                out.push(SMALL_BIG);
                out.push(digits.len() as u8);
                out.push((*v < 0) as u8);
                out.extend_from_slice(&digits);
            }
            T::Float(bits) => {
                out.push(NEW_FLOAT);
                out.extend_from_slice(&bits.to_be_bytes());
            }
            T::Bin(b) => {
                out.push(BINARY);
                out.extend_from_slice(&(b.len() as u32).to_be_bytes());
                out.extend_from_slice(b);
            }
            T::Str(s) => {
                out.push(STRING);
                out.extend_from_slice(&(s.len() as u16).to_be_bytes());
                out.extend_from_slice(s);
            }
            T::Tuple(es) => {
                if es.len() < 256 {
                    out.push(SMALL_TUPLE);
                    out.push(es.len() as u8);
                } else {
                    out.push(LARGE_TUPLE);
                    out.extend_from_slice(&(es.len() as u32).to_be_bytes());
                }
                es.iter().for_each(|e| encode(e, out));
            }
            T::List(es, tail) => {
                out.push(LIST);
                out.extend_from_slice(&(es.len() as u32).to_be_bytes());
                es.iter().for_each(|e| encode(e, out));
                encode(tail, out);
            }
            T::Nil => out.push(NIL),
            T::Map(pairs) => {
                out.push(MAP);
                out.extend_from_slice(&(pairs.len() as u32).to_be_bytes());
                for (k, v) in pairs {
                    encode(k, out);
                    encode(v, out);
                }
            }
        }
    }

    fn etf(t: &T) -> Vec<u8> {
        let mut out = vec![VERSION];
        encode(t, &mut out);
        out
    }

    fn decode(bytes: &[u8]) -> Option<(T, usize)> {
        let mut a = Arena::default();
        decode_plain(&mut a, bytes).map(|(i, used)| (a.get(i), used))
    }

    fn any_int() -> impl Strategy<Value = i128> {
        prop_oneof![
            0i128..=255,
            (i32::MIN as i128)..=(i32::MAX as i128),
            (i64::MIN as i128)..=(u64::MAX as i128),
            Just(i64::MIN as i128),
            Just(u64::MAX as i128),
        ]
    }

    fn leaf() -> impl Strategy<Value = T> {
        prop_oneof![
            "[a-z_@.]{1,20}".prop_map(|s| T::Atom(AtomText::Utf8, s.into_bytes())),
            "[a-z]{1,8}".prop_map(|s| T::Atom(AtomText::Latin1, s.into_bytes())),
            any_int().prop_map(T::Int),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| T::Float(f.to_bits())),
            proptest::collection::vec(any::<u8>(), 0..80).prop_map(T::Bin),
            proptest::collection::vec(any::<u8>(), 1..20).prop_map(T::Str),
            Just(T::Nil),
        ]
    }

    fn term() -> impl Strategy<Value = T> {
        leaf().prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(T::Tuple),
                (
                    proptest::collection::vec(inner.clone(), 1..6),
                    prop_oneof![Just(T::Nil), inner.clone()]
                )
                    .prop_map(|(es, tail)| T::List(es, Box::new(tail))),
                proptest::collection::vec((any::<u32>(), inner), 0..5).prop_map(|kvs| {
                    // Distinct keys, as a map has.
                    let mut seen = std::collections::HashSet::new();
                    T::Map(
                        kvs.into_iter()
                            .filter(|(k, _)| seen.insert(*k))
                            .map(|(k, v)| (T::Int(k as i128), v))
                            .collect(),
                    )
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn plain_terms_decode_to_themselves(t in term(), trailing in proptest::collection::vec(any::<u8>(), 0..4)) {
            let mut bytes = etf(&t);
            let len = bytes.len();
            bytes.extend_from_slice(&trailing);
            prop_assert_eq!(decode(&bytes), Some((t, len)));
        }

        #[test]
        fn a_cut_term_is_never_decoded(t in term(), cut in any::<prop::sample::Index>()) {
            let bytes = etf(&t);
            let cut = cut.index(bytes.len());
            prop_assert_eq!(decode(&bytes[..cut]), None);
        }

        #[test]
        fn any_bytes_decode_or_not_without_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Some(b) = bytes.first_mut() {
                *b = VERSION;
            }
            if let Some((_, used)) = decode(&bytes) {
                prop_assert!(used <= bytes.len());
            }
        }
    }

    #[test]
    fn what_is_not_plain_goes_to_the_vm() {
        // A pid, a reference, a fun, a bit string, a 9-byte integer, no version byte.
        for bytes in [
            &[
                VERSION, 88, 119, 1, b'a', 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1,
            ][..],
            &[VERSION, 90, 0, 1, 119, 1, b'a', 0, 0, 0, 1, 0, 0, 0, 0][..],
            &[VERSION, 112, 0, 0, 0, 0][..],
            &[VERSION, 77, 0, 0, 0, 1, 3, 0xff][..],
            &[VERSION, SMALL_BIG, 9, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0][..],
            &[SMALL_INTEGER, 1][..],
        ] {
            assert_eq!(decode(bytes), None, "{bytes:?}");
        }
        // Non-finite floats and an atom the builder does not have.
        let nan = etf(&T::Float(f64::NAN.to_bits()));
        assert_eq!(decode(&nan), None);
        let missing = etf(&T::Tuple(vec![T::Atom(
            AtomText::Utf8,
            b"missing".to_vec(),
        )]));
        assert_eq!(decode(&missing), None);
        // Duplicate map keys (the builder refuses them).
        let dup = etf(&T::Map(vec![(T::Nil, T::Nil), (T::Nil, T::Int(1))]));
        assert_eq!(decode(&dup), None);
    }

    #[test]
    fn integers_at_the_edges() {
        for v in [
            -1i128,
            256,
            i32::MAX as i128 + 1,
            i32::MIN as i128 - 1,
            i64::MAX as i128,
            i64::MAX as i128 + 1,
            u64::MAX as i128,
            i64::MIN as i128,
        ] {
            assert_eq!(decode(&etf(&T::Int(v))).map(|d| d.0), Some(T::Int(v)));
        }
        // Below i64::MIN is beyond 64 bits of the builder.
        assert_eq!(decode(&etf(&T::Int(i64::MIN as i128 - 1))), None);
    }

    #[test]
    fn nesting_past_the_limit_goes_to_the_vm() {
        let mut t = T::Nil;
        for _ in 0..MAX_DEPTH {
            t = T::Tuple(vec![t]);
        }
        assert_eq!(decode(&etf(&t)), None);
        let mut t = T::Nil;
        for _ in 0..MAX_DEPTH - 1 {
            t = T::Tuple(vec![t]);
        }
        assert!(decode(&etf(&t)).is_some());
    }

    #[test]
    fn counts_beyond_the_input_are_refused_before_any_work() {
        let bytes = [VERSION, LARGE_TUPLE, 0xff, 0xff, 0xff, 0xff, NIL];
        assert_eq!(decode(&bytes), None);
        let bytes = [VERSION, MAP, 0x80, 0, 0, 0, NIL, NIL];
        assert_eq!(decode(&bytes), None);
    }
}
