//! Property tests of the rewrite of pids, ports and references inside external terms: random
//! terms in every encoding `term_to_binary` uses (and the old ones it still reads) are rewritten
//! exactly where a rule matches, a rewrite and its inverse give the term back, and no input
//! makes the walker panic.

use partisan_core::wire::{for_each_atom, rewrite_payload, walk, Kinds, NodeId, Rewrite};
use proptest::prelude::*;

const NODES: [(&str, u32); 4] = [
    ("nonode@nohost", 0),
    ("a@127.0.0.1", 0x1234_5678),
    ("b@127.0.0.1", 9),
    ("c@host", 3),
];

#[derive(Debug, Clone)]
enum Kind {
    Pid { id: u32, serial: u32 },
    Port { id: u64 },
    Ref { ids: Vec<u32> },
}

#[derive(Debug, Clone)]
enum T {
    Small(u8),
    Int(i32),
    Float(u64),
    Atom(String, bool),
    Str(Vec<u8>),
    Bin(Vec<u8>),
    Bits(Vec<u8>, u8),
    Big(Vec<u8>),
    Nil,
    /// A node reference: which of `NODES`, what it is, whether in an old encoding (8-bit
    /// creation) and its atom in latin-1.
    NodeRef(usize, Kind, bool),
    Tuple(Vec<T>),
    List(Vec<T>, Box<T>),
    Map(Vec<(T, T)>),
    Fun(Box<T>, Vec<T>),
    Export(String, String, u8),
}

fn leaf() -> impl Strategy<Value = T> {
    prop_oneof![
        any::<u8>().prop_map(T::Small),
        any::<i32>().prop_map(T::Int),
        any::<u64>().prop_map(T::Float),
        ("[a-z_]{0,12}", any::<bool>()).prop_map(|(s, u)| T::Atom(s, u)),
        prop::collection::vec(any::<u8>(), 0..20).prop_map(T::Str),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(T::Bin),
        (prop::collection::vec(any::<u8>(), 1..8), 1u8..8).prop_map(|(b, n)| T::Bits(b, n)),
        prop::collection::vec(any::<u8>(), 1..12).prop_map(T::Big),
        Just(T::Nil),
        (0..NODES.len(), kind(), any::<bool>()).prop_map(|(n, k, old)| T::NodeRef(n, k, old)),
        ("[a-z]{1,8}", "[a-z]{1,8}", any::<u8>()).prop_map(|(m, f, a)| T::Export(m, f, a)),
    ]
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        (any::<u32>(), any::<u32>()).prop_map(|(id, serial)| Kind::Pid { id, serial }),
        any::<u64>().prop_map(|id| Kind::Port { id }),
        prop::collection::vec(any::<u32>(), 1..5).prop_map(|ids| Kind::Ref { ids }),
    ]
}

fn term() -> impl Strategy<Value = T> {
    leaf().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(T::Tuple),
            (prop::collection::vec(inner.clone(), 1..6), inner.clone())
                .prop_map(|(e, t)| T::List(e, Box::new(t))),
            prop::collection::vec((inner.clone(), inner.clone()), 0..4).prop_map(T::Map),
            (
                (0..NODES.len(), any::<u32>()),
                prop::collection::vec(inner, 0..3)
            )
                .prop_map(|((n, id), free)| T::Fun(
                    Box::new(T::NodeRef(n, Kind::Pid { id, serial: 0 }, false)),
                    free
                )),
        ]
    })
}

fn atom(out: &mut Vec<u8>, text: &str, utf8: bool) {
    let b = text.as_bytes();
    match (utf8, b.len() < 256) {
        (true, true) => out.extend_from_slice(&[119, b.len() as u8]),
        (true, false) => out.extend_from_slice(&[118, 0, b.len() as u8]),
        (false, true) => out.extend_from_slice(&[115, b.len() as u8]),
        (false, false) => out.extend_from_slice(&[100, 0, b.len() as u8]),
    }
    out.extend_from_slice(b);
}

/// Encodes `t`; node references whose node has a rule are written as the rewriter writes them
/// (its target node, current tags, small UTF-8 atom) when `rules` is given.
fn enc(t: &T, rules: &[(usize, usize)], out: &mut Vec<u8>) {
    match t {
        T::Small(v) => out.extend_from_slice(&[97, *v]),
        T::Int(v) => {
            out.push(98);
            out.extend_from_slice(&v.to_be_bytes());
        }
        T::Float(v) => {
            out.push(70);
            out.extend_from_slice(&v.to_be_bytes());
        }
        T::Atom(s, u) => atom(out, s, *u),
        T::Str(b) => {
            out.push(107);
            out.extend_from_slice(&(b.len() as u16).to_be_bytes());
            out.extend_from_slice(b);
        }
        T::Bin(b) => {
            out.push(109);
            out.extend_from_slice(&(b.len() as u32).to_be_bytes());
            out.extend_from_slice(b);
        }
        T::Bits(b, n) => {
            out.push(77);
            out.extend_from_slice(&(b.len() as u32).to_be_bytes());
            out.push(*n);
            out.extend_from_slice(b);
        }
        T::Big(b) => {
            out.extend_from_slice(&[110, b.len() as u8, 0]);
            out.extend_from_slice(b);
        }
        T::Nil => out.push(106),
        T::NodeRef(n, kind, old) => {
            // Old encodings carry 8 bits of creation: only generated when it fits.
            let was_old = *old && NODES[*n].1 < 256;
            let (node, creation, old, latin1) = match rules.iter().find(|(f, _)| f == n) {
                Some(&(_, to)) => (NODES[to].0, NODES[to].1, false, false),
                None => (NODES[*n].0, NODES[*n].1, was_old, *old),
            };
            match kind {
                Kind::Pid { id, serial } => {
                    out.push(if old { 103 } else { 88 });
                    atom(out, node, !latin1);
                    out.extend_from_slice(&id.to_be_bytes());
                    out.extend_from_slice(&serial.to_be_bytes());
                    creation_field(out, creation, old);
                }
                Kind::Port { id } => {
                    if was_old {
                        // PORT_EXT, or NEW_PORT_EXT once rewritten: a 32-bit id either way.
                        out.push(if old { 102 } else { 89 });
                        atom(out, node, !latin1);
                        out.extend_from_slice(&(*id as u32).to_be_bytes());
                    } else {
                        out.push(120);
                        atom(out, node, !latin1);
                        out.extend_from_slice(&id.to_be_bytes());
                    }
                    creation_field(out, creation, old);
                }
                Kind::Ref { ids } => {
                    out.push(if old { 114 } else { 90 });
                    out.extend_from_slice(&(ids.len() as u16).to_be_bytes());
                    atom(out, node, !latin1);
                    creation_field(out, creation, old);
                    ids.iter()
                        .for_each(|i| out.extend_from_slice(&i.to_be_bytes()));
                }
            }
        }
        T::Tuple(es) => {
            out.extend_from_slice(&[104, es.len() as u8]);
            es.iter().for_each(|e| enc(e, rules, out));
        }
        T::List(es, tail) => {
            out.push(108);
            out.extend_from_slice(&(es.len() as u32).to_be_bytes());
            es.iter().for_each(|e| enc(e, rules, out));
            enc(tail, rules, out);
        }
        T::Map(kvs) => {
            out.push(116);
            out.extend_from_slice(&(kvs.len() as u32).to_be_bytes());
            for (k, v) in kvs {
                enc(k, rules, out);
                enc(v, rules, out);
            }
        }
        T::Fun(pid, free) => {
            out.push(112);
            let size_at = out.len();
            out.extend_from_slice(&[0; 4]);
            out.push(1);
            out.extend_from_slice(&[7; 16]);
            out.extend_from_slice(&3u32.to_be_bytes());
            out.extend_from_slice(&(free.len() as u32).to_be_bytes());
            atom(out, "mod", true);
            out.extend_from_slice(&[97, 3, 98, 0, 0, 0, 5]);
            enc(pid, rules, out);
            free.iter().for_each(|e| enc(e, rules, out));
            let size = (out.len() - size_at) as u32;
            out[size_at..size_at + 4].copy_from_slice(&size.to_be_bytes());
        }
        T::Export(m, f, a) => {
            out.push(113);
            atom(out, m, true);
            atom(out, f, true);
            out.extend_from_slice(&[97, *a]);
        }
    }
}

fn creation_field(out: &mut Vec<u8>, creation: u32, old: bool) {
    if old {
        out.push(creation as u8);
    } else {
        out.extend_from_slice(&creation.to_be_bytes());
    }
}

fn payload(t: &T, rules: &[(usize, usize)]) -> Vec<u8> {
    let mut out = vec![131];
    enc(t, rules, &mut out);
    out
}

fn rule(from: usize, to: usize) -> Rewrite {
    Rewrite {
        from: NodeId::new(NODES[from].0, NODES[from].1),
        to: NodeId::new(NODES[to].0, NODES[to].1),
        kinds: Kinds::ALL,
    }
}

/// Makes every node reference current-format and UTF-8, as the rewriter writes them, so that
/// a rewrite and its inverse meet on the same bytes.
fn modern(t: &T) -> T {
    match t {
        T::NodeRef(n, k, _) => T::NodeRef(*n, k.clone(), false),
        T::Tuple(es) => T::Tuple(es.iter().map(modern).collect()),
        T::List(es, tail) => T::List(es.iter().map(modern).collect(), Box::new(modern(tail))),
        T::Map(kvs) => T::Map(kvs.iter().map(|(k, v)| (modern(k), modern(v))).collect()),
        T::Fun(p, free) => T::Fun(Box::new(modern(p)), free.iter().map(modern).collect()),
        other => other.clone(),
    }
}

/// 512 cases, or `PROPTEST_CASES` (`make fuzz` runs many more).
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}

proptest! {
    // Rejects (two rules for one node) grow with the cases: allow them in proportion.
    #![proptest_config(ProptestConfig {
        cases: cases(),
        max_global_rejects: cases().max(1024),
        ..ProptestConfig::default()
    })]

    /// Exactly the references of the ruled nodes change, into the rule's node.
    #[test]
    fn rewrites_exactly_the_matching_references(t in term(), from in 0..NODES.len(), to in 0..NODES.len()) {
        prop_assume!(from != to);
        let input = payload(&t, &[]);
        let got = rewrite_payload(&input, &[rule(from, to)]).unwrap();
        prop_assert_eq!(&*got, &payload(&t, &[(from, to)])[..]);
    }

    /// Out to the wire and home again gives the original bytes (for terms in current encodings).
    #[test]
    fn a_rewrite_and_its_inverse_give_the_term_back(t in term()) {
        let t = modern(&t);
        let home = payload(&t, &[]);
        // 0 is this node's VM identity, 1 its partisan one; 2 and 3 are other nodes.
        let out = rewrite_payload(&home, &[rule(0, 1)]).unwrap().into_owned();
        let back = rewrite_payload(&out, &[rule(1, 0)]).unwrap();
        // Any reference that was already of node 1 comes "home" as node 0 too: compare with that.
        prop_assert_eq!(&*back, &payload(&t, &[(1, 0)])[..]);
    }

    /// The walker sees every atom the encoder wrote, in order.
    #[test]
    fn atoms_are_counted(t in term()) {
        let input = payload(&t, &[]);
        let mut n = 0usize;
        for_each_atom(&input, &mut |_, _| n += 1).unwrap();
        prop_assert_eq!(n, count_atoms(&t));
    }

    /// A valid term cut anywhere is an error, never a panic or a wrong end.
    #[test]
    fn truncations_are_errors(t in term(), cut in any::<prop::sample::Index>()) {
        let input = payload(&t, &[]);
        let at = 1 + cut.index(input.len() - 1);
        let walked = walk(&input[..at], 1, &[rule(0, 1)], &mut |_, _| {});
        prop_assert!(walked.is_err(), "cut at {} of {}", at, input.len());
    }

    /// Arbitrary bytes never panic, and a successful walk ends inside the input.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(w) = walk(&bytes, 0, &[rule(0, 1), rule(2, 3)], &mut |_, _| {}) {
            prop_assert!(w.end <= bytes.len());
        }
        let mut with_version = vec![131];
        with_version.extend_from_slice(&bytes);
        let _ = rewrite_payload(&with_version, &[rule(1, 0)]);
    }

    /// Bytes flipped in a valid term never panic either.
    #[test]
    fn corrupted_terms_never_panic(t in term(), at in any::<prop::sample::Index>(), b in any::<u8>()) {
        let mut input = payload(&t, &[]);
        let i = at.index(input.len());
        input[i] = b;
        let _ = rewrite_payload(&input, &[rule(0, 1)]);
    }
}

fn count_atoms(t: &T) -> usize {
    match t {
        T::Atom(..) | T::NodeRef(..) => 1,
        T::Export(..) => 2,
        T::Tuple(es) => es.iter().map(count_atoms).sum(),
        T::List(es, tail) => es.iter().map(count_atoms).sum::<usize>() + count_atoms(tail),
        T::Map(kvs) => kvs
            .iter()
            .map(|(k, v)| count_atoms(k) + count_atoms(v))
            .sum(),
        // the module, the creator pid's node, the free variables
        T::Fun(p, free) => 1 + count_atoms(p) + free.iter().map(count_atoms).sum::<usize>(),
        _ => 0,
    }
}
