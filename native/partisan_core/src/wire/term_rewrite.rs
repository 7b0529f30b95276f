//! Pids, references and ports inside messages keep their identity across nodes.
//!
//! In the external term format a pid, port or reference names its node (an atom) and that node's
//! `creation`. A node without Distributed Erlang writes its own pids as `nonode@nohost`, creation
//! 0, which would alias a process of the receiver; so the receiver rewrites them, knowing from
//! the handshake which names the sender uses (see `docs/wire.md`, "Pids and references"):
//!
//! - the sender's own pids (its VM's node name and creation) become pids of the sender's
//!   partisan name and wire creation: genuine pids of another node, which name their origin;
//! - pids of the receiver's partisan name and wire creation come home as its VM's local pids,
//!   `=:=` to the originals.
//!
//! [`walk`] also lists the atoms of a term (so the caller can count those it would create). It
//! works on untrusted bytes: iterative (no recursion a deep term could overflow), bounded by the
//! input, and every malformed input is an error, never a panic.

use std::borrow::Cow;

/// A node as the external term format names it in pids, ports and references.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeId {
    /// The text of the node's atom.
    pub name: Box<[u8]>,
    /// The node's creation, as its pids, ports and references carry it.
    pub creation: u32,
}

impl NodeId {
    /// The node `name` with `creation`.
    pub fn new(name: &str, creation: u32) -> NodeId {
        NodeId {
            name: name.as_bytes().into(),
            creation,
        }
    }
}

/// Pids, ports and references of `from` become those of `to` (those of the `kinds` given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrite {
    /// The node whose pids, ports and references the rule rewrites.
    pub from: NodeId,
    /// The node they are rewritten to.
    pub to: NodeId,
    /// Which of them the rule applies to.
    pub kinds: Kinds,
}

/// Which node references a rule rewrites: pids (and ports), references, or both (Partisan's
/// `pid_encoding` and `ref_encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kinds {
    /// Rewrite pids and ports (`pid_encoding`).
    pub pids: bool,
    /// Rewrite references (`ref_encoding`).
    pub refs: bool,
}

impl Kinds {
    /// Pids, ports and references alike.
    pub const ALL: Kinds = Kinds {
        pids: true,
        refs: true,
    };
}

/// How an atom's text is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtomText {
    /// Latin-1 (`ATOM_EXT`, `SMALL_ATOM_EXT`).
    Latin1,
    /// UTF-8 (`ATOM_UTF8_EXT`, `SMALL_ATOM_UTF8_EXT`).
    Utf8,
}

/// Why a term could not be walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TermError {
    /// The input ended inside the term.
    Truncated,
    /// A tag this walker does not accept (unknown, or one `term_to_binary` never writes, such as
    /// atom cache references).
    BadTag(u8),
    /// A length or size field that contradicts the bytes (e.g. a fun's size).
    BadSize,
    /// Compound terms nested deeper than [`MAX_NESTING`] (not counting last elements, which
    /// cost no depth).
    TooDeep,
}

impl std::fmt::Display for TermError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TermError::Truncated => write!(f, "external term truncated"),
            TermError::BadTag(t) => write!(f, "external term tag {t} not accepted"),
            TermError::BadSize => write!(f, "external term size field inconsistent"),
            TermError::TooDeep => write!(f, "external term nested too deep"),
        }
    }
}

impl std::error::Error for TermError {}

/// The outcome of [`walk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walked {
    /// Where the term ends in the input.
    pub end: usize,
    /// The term's bytes after rewriting (from the term's first byte, no version byte), or
    /// `None` when nothing needed rewriting.
    pub rewritten: Option<Vec<u8>>,
}

/// Deepest nesting walked: bounds the walker's memory (a few words a level) whatever the input.
/// A compound term that is the last element of its parent takes its parent's place, so long
/// chains such as `{a, {b, {c, ...}}}` or nested list tails cost no depth.
pub const MAX_NESTING: usize = 1 << 20;

const VERSION: u8 = 131;

const NEW_FLOAT_EXT: u8 = 70;
const BIT_BINARY_EXT: u8 = 77;
const NEW_PID_EXT: u8 = 88;
const NEW_PORT_EXT: u8 = 89;
const NEWER_REFERENCE_EXT: u8 = 90;
const SMALL_INTEGER_EXT: u8 = 97;
const INTEGER_EXT: u8 = 98;
const FLOAT_EXT: u8 = 99;
const ATOM_EXT: u8 = 100;
const REFERENCE_EXT: u8 = 101;
const PORT_EXT: u8 = 102;
const PID_EXT: u8 = 103;
const SMALL_TUPLE_EXT: u8 = 104;
const LARGE_TUPLE_EXT: u8 = 105;
const NIL_EXT: u8 = 106;
const STRING_EXT: u8 = 107;
const LIST_EXT: u8 = 108;
const BINARY_EXT: u8 = 109;
const SMALL_BIG_EXT: u8 = 110;
const LARGE_BIG_EXT: u8 = 111;
const NEW_FUN_EXT: u8 = 112;
const EXPORT_EXT: u8 = 113;
const NEW_REFERENCE_EXT: u8 = 114;
const SMALL_ATOM_EXT: u8 = 115;
const MAP_EXT: u8 = 116;
const ATOM_UTF8_EXT: u8 = 118;
const SMALL_ATOM_UTF8_EXT: u8 = 119;
const V4_PORT_EXT: u8 = 120;

/// A pid's parts, from `term_to_binary(Pid)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidParts<'a> {
    /// The text of the node's atom.
    pub node: &'a [u8],
    /// The pid's number.
    pub number: u32,
    /// The pid's serial.
    pub serial: u32,
    /// The creation of the pid's node.
    pub creation: u32,
    /// Where `number` starts in the input (`serial` follows), to make pids from a template.
    pub numbers_at: usize,
}

/// Parses `term_to_binary(Pid)` (`NEW_PID_EXT` or `PID_EXT`, version byte first).
pub fn parse_pid(etf: &[u8]) -> Option<PidParts<'_>> {
    if etf.first() != Some(&VERSION) {
        return None;
    }
    let mut w = Walker {
        data: etf,
        pos: 2,
        start: 1,
        out: None,
        copied: 1,
    };
    let tag = *etf.get(1)?;
    if tag != NEW_PID_EXT && tag != PID_EXT {
        return None;
    }
    let (node, _) = w.atom().ok()?;
    let numbers_at = w.pos;
    let number = w.u32().ok()?;
    let serial = w.u32().ok()?;
    let creation = if tag == NEW_PID_EXT {
        w.u32().ok()?
    } else {
        w.u8().ok()? as u32
    };
    (w.pos == etf.len()).then_some(PidParts {
        node,
        number,
        serial,
        creation,
        numbers_at,
    })
}

/// Rewrites a whole payload (version byte first) by `rules`; borrowed when nothing changes.
pub fn rewrite_payload<'a>(
    payload: &'a [u8],
    rules: &[Rewrite],
) -> Result<Cow<'a, [u8]>, TermError> {
    if payload.first() != Some(&VERSION) {
        return Err(TermError::Truncated);
    }
    let walked = walk(payload, 1, rules, &mut |_, _| {})?;
    if walked.end != payload.len() {
        return Err(TermError::BadSize);
    }
    Ok(match walked.rewritten {
        None => Cow::Borrowed(payload),
        Some(body) => {
            let mut out = Vec::with_capacity(body.len() + 1);
            out.push(VERSION);
            out.extend_from_slice(&body);
            Cow::Owned(out)
        }
    })
}

/// Calls `atom` for every atom of a whole payload (version byte first), node names of pids,
/// ports and references included.
pub fn for_each_atom<'a>(
    payload: &'a [u8],
    atom: &mut dyn FnMut(&'a [u8], AtomText),
) -> Result<(), TermError> {
    if payload.first() != Some(&VERSION) {
        return Err(TermError::Truncated);
    }
    let walked = walk(payload, 1, &[], atom)?;
    if walked.end != payload.len() {
        return Err(TermError::BadSize);
    }
    Ok(())
}

/// Walks the one term that starts at `data[start]` (a tag, not the version byte): reports its
/// atoms to `atom` and rewrites its pids, ports and references by the first matching rule.
pub fn walk<'a>(
    data: &'a [u8],
    start: usize,
    rules: &[Rewrite],
    atom: &mut dyn FnMut(&'a [u8], AtomText),
) -> Result<Walked, TermError> {
    let mut w = Walker {
        data,
        pos: start,
        start,
        out: None,
        copied: start,
    };
    // Terms still to read at each level; a fun's frame closes after its parts.
    let mut stack: Vec<Frame> = vec![Frame::Items(1)];
    while let Some(top) = stack.last_mut() {
        match top {
            Frame::Items(0) => {
                stack.pop();
            }
            Frame::Items(n) => {
                *n -= 1;
                w.term(rules, atom, &mut stack)?;
            }
            Frame::Fun { .. } => {
                if let Some(Frame::Fun {
                    size_at,
                    size_out,
                    end,
                }) = stack.pop()
                {
                    w.close_fun(size_at, size_out, end)?;
                }
            }
        }
    }
    let end = w.pos;
    let rewritten = w.out.map(|mut out| {
        out.extend_from_slice(&data[w.copied..end]);
        out
    });
    Ok(Walked { end, rewritten })
}

enum Frame {
    Items(u64),
    /// A fun whose size field is at input position `size_at` and output position `size_out`,
    /// and which must end at input position `end`.
    Fun {
        size_at: usize,
        size_out: usize,
        end: usize,
    },
}

struct Walker<'a> {
    data: &'a [u8],
    pos: usize,
    start: usize,
    /// The rewritten term so far, once something was rewritten: `data[start..copied]` with the
    /// rewrites applied.
    out: Option<Vec<u8>>,
    /// Input up to here is in `out` (or identical to it while `out` is `None`).
    copied: usize,
}

impl<'a> Walker<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TermError> {
        let end = self.pos.checked_add(n).ok_or(TermError::Truncated)?;
        let b = self.data.get(self.pos..end).ok_or(TermError::Truncated)?;
        self.pos = end;
        Ok(b)
    }

    fn u8(&mut self) -> Result<u8, TermError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, TermError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, TermError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn skip(&mut self, n: usize) -> Result<(), TermError> {
        self.take(n).map(|_| ())
    }

    /// Reads one term's own bytes; a compound term pushes the frame of its elements.
    fn term(
        &mut self,
        rules: &[Rewrite],
        atom: &mut dyn FnMut(&'a [u8], AtomText),
        stack: &mut Vec<Frame>,
    ) -> Result<(), TermError> {
        let at = self.pos;
        let tag = self.u8()?;
        match tag {
            SMALL_INTEGER_EXT => self.skip(1)?,
            INTEGER_EXT => self.skip(4)?,
            NEW_FLOAT_EXT => self.skip(8)?,
            FLOAT_EXT => self.skip(31)?,
            ATOM_EXT | SMALL_ATOM_EXT | ATOM_UTF8_EXT | SMALL_ATOM_UTF8_EXT => {
                self.pos = at;
                let (text, enc) = self.atom()?;
                atom(text, enc);
            }
            NIL_EXT => {}
            STRING_EXT => {
                let n = self.u16()? as usize;
                self.skip(n)?;
            }
            BINARY_EXT => {
                let n = self.u32()? as usize;
                self.skip(n)?;
            }
            BIT_BINARY_EXT => {
                let n = self.u32()? as usize;
                self.skip(1 + n)?;
            }
            SMALL_BIG_EXT => {
                let n = self.u8()? as usize;
                self.skip(1 + n)?;
            }
            LARGE_BIG_EXT => {
                let n = self.u32()? as usize;
                self.skip(1 + n)?;
            }
            SMALL_TUPLE_EXT => push(stack, Frame::Items(self.u8()? as u64))?,
            LARGE_TUPLE_EXT => push(stack, Frame::Items(self.u32()? as u64))?,
            // The elements, then the tail.
            LIST_EXT => push(stack, Frame::Items(self.u32()? as u64 + 1))?,
            MAP_EXT => push(stack, Frame::Items(self.u32()? as u64 * 2))?,
            EXPORT_EXT => push(stack, Frame::Items(3))?,
            NEW_FUN_EXT => {
                let size_at = self.pos;
                let size = self.u32()? as usize;
                // arity, uniq, index
                self.skip(1 + 16 + 4)?;
                let free = self.u32()? as u64;
                let end = size_at.checked_add(size).ok_or(TermError::BadSize)?;
                if end > self.data.len() || end < self.pos {
                    return Err(TermError::BadSize);
                }
                // The fun's frame stays under its parts: module, old index, old uniq, pid, free
                // variables.
                let fun = Frame::Fun {
                    size_at,
                    size_out: self.out_pos(size_at),
                    end,
                };
                push(stack, fun)?;
                push(stack, Frame::Items(4 + free))?;
            }
            NEW_PID_EXT | PID_EXT | NEW_PORT_EXT | PORT_EXT | V4_PORT_EXT | NEWER_REFERENCE_EXT
            | NEW_REFERENCE_EXT | REFERENCE_EXT => self.node_ref(at, tag, rules, atom)?,
            other => return Err(TermError::BadTag(other)),
        }
        Ok(())
    }

    /// An atom at the current position (node names are atoms too): its text and encoding.
    fn atom(&mut self) -> Result<(&'a [u8], AtomText), TermError> {
        let tag = self.u8()?;
        let (len, enc) = match tag {
            ATOM_EXT => (self.u16()? as usize, AtomText::Latin1),
            SMALL_ATOM_EXT => (self.u8()? as usize, AtomText::Latin1),
            ATOM_UTF8_EXT => (self.u16()? as usize, AtomText::Utf8),
            SMALL_ATOM_UTF8_EXT => (self.u8()? as usize, AtomText::Utf8),
            other => return Err(TermError::BadTag(other)),
        };
        Ok((self.take(len)?, enc))
    }

    /// A pid, port or reference (tag already read at `at`): rewritten if a rule matches.
    fn node_ref(
        &mut self,
        at: usize,
        tag: u8,
        rules: &[Rewrite],
        atom: &mut dyn FnMut(&'a [u8], AtomText),
    ) -> Result<(), TermError> {
        // References carry their id length before the node.
        let words = match tag {
            NEWER_REFERENCE_EXT | NEW_REFERENCE_EXT => self.u16()? as usize,
            _ => 0,
        };
        let (node, enc) = self.atom()?;
        atom(node, enc);
        let (ids, creation) = match tag {
            NEW_PID_EXT => (self.take(8)?, self.u32()?),
            PID_EXT => (self.take(8)?, self.u8()? as u32),
            NEW_PORT_EXT => (self.take(4)?, self.u32()?),
            PORT_EXT => (self.take(4)?, self.u8()? as u32),
            V4_PORT_EXT => (self.take(8)?, self.u32()?),
            NEWER_REFERENCE_EXT => {
                let c = self.u32()?;
                (
                    self.take(words.checked_mul(4).ok_or(TermError::BadSize)?)?,
                    c,
                )
            }
            NEW_REFERENCE_EXT => {
                let c = self.u8()? as u32;
                (
                    self.take(words.checked_mul(4).ok_or(TermError::BadSize)?)?,
                    c,
                )
            }
            // REFERENCE_EXT: one id word, then the creation byte
            _ => {
                let id = self.take(4)?;
                (id, self.u8()? as u32)
            }
        };
        let is_ref = matches!(tag, NEWER_REFERENCE_EXT | NEW_REFERENCE_EXT | REFERENCE_EXT);
        let Some(rule) = rules.iter().find(|r| {
            *r.from.name == *node
                && r.from.creation == creation
                && if is_ref { r.kinds.refs } else { r.kinds.pids }
        }) else {
            return Ok(());
        };
        let out = self.begin_edit(at);
        // Always the current encodings, whose creation field has 32 bits.
        let (new_tag, ref_words) = match tag {
            NEW_PID_EXT | PID_EXT => (NEW_PID_EXT, None),
            NEW_PORT_EXT | PORT_EXT => (NEW_PORT_EXT, None),
            V4_PORT_EXT => (V4_PORT_EXT, None),
            _ => (NEWER_REFERENCE_EXT, Some((ids.len() / 4) as u16)),
        };
        out.push(new_tag);
        if let Some(n) = ref_words {
            out.extend_from_slice(&n.to_be_bytes());
        }
        encode_atom(out, &rule.to.name);
        if ref_words.is_some() {
            out.extend_from_slice(&rule.to.creation.to_be_bytes());
            out.extend_from_slice(ids);
        } else {
            out.extend_from_slice(ids);
            out.extend_from_slice(&rule.to.creation.to_be_bytes());
        }
        self.copied = self.pos;
        Ok(())
    }

    /// The output buffer, with everything before input position `at` copied into it.
    fn begin_edit(&mut self, at: usize) -> &mut Vec<u8> {
        // The input after the term may be much longer (a leaf of a large frame): start small.
        let room = (self.data.len() - self.start).min(4096) + 64;
        let out = self.out.get_or_insert_with(|| Vec::with_capacity(room));
        out.extend_from_slice(&self.data[self.copied..at]);
        self.copied = at;
        out
    }

    /// Where input position `p` (at or after `copied`) lands in the output.
    fn out_pos(&self, p: usize) -> usize {
        match &self.out {
            Some(out) => out.len() + (p - self.copied),
            None => p - self.start,
        }
    }

    /// Checks that the fun ended where its size said, and fixes its size if rewrites inside it
    /// changed its length.
    fn close_fun(&mut self, size_at: usize, size_out: usize, end: usize) -> Result<(), TermError> {
        if self.pos != end {
            return Err(TermError::BadSize);
        }
        let new_size = self.out_pos(end) - size_out;
        if new_size == end - size_at {
            return Ok(());
        }
        // The length changed, so a rewrite came after the size field, which is in `out` then.
        let size = u32::try_from(new_size).map_err(|_| TermError::BadSize)?;
        let field = self
            .out
            .as_mut()
            .and_then(|out| out.get_mut(size_out..size_out + 4))
            .ok_or(TermError::BadSize)?;
        field.copy_from_slice(&size.to_be_bytes());
        Ok(())
    }
}

/// Pushes the frame of a compound term's elements, in place of a parent that has none left.
fn push(stack: &mut Vec<Frame>, frame: Frame) -> Result<(), TermError> {
    if matches!(stack.last(), Some(Frame::Items(0))) {
        stack.pop();
    }
    if stack.len() >= MAX_NESTING {
        return Err(TermError::TooDeep);
    }
    stack.push(frame);
    Ok(())
}

/// Appends an atom in the smallest UTF-8 encoding.
fn encode_atom(out: &mut Vec<u8>, text: &[u8]) {
    match u8::try_from(text.len()) {
        Ok(n) => {
            out.push(SMALL_ATOM_UTF8_EXT);
            out.push(n);
        }
        Err(_) => {
            out.push(ATOM_UTF8_EXT);
            out.extend_from_slice(&(text.len() as u16).to_be_bytes());
        }
    }
    out.extend_from_slice(text);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nonode() -> NodeId {
        NodeId::new("nonode@nohost", 0)
    }

    fn a() -> NodeId {
        NodeId::new("a@127.0.0.1", 77)
    }

    /// What `term_to_binary(self())` gives on OTP 25 without Distributed Erlang.
    fn nonode_pid(id: u32) -> Vec<u8> {
        let mut v = vec![NEW_PID_EXT, ATOM_EXT, 0, 13];
        v.extend_from_slice(b"nonode@nohost");
        v.extend_from_slice(&id.to_be_bytes());
        v.extend_from_slice(&0u32.to_be_bytes());
        v.extend_from_slice(&0u32.to_be_bytes());
        v
    }

    fn a_pid(id: u32) -> Vec<u8> {
        let mut v = vec![NEW_PID_EXT, SMALL_ATOM_UTF8_EXT, 11];
        v.extend_from_slice(b"a@127.0.0.1");
        v.extend_from_slice(&id.to_be_bytes());
        v.extend_from_slice(&0u32.to_be_bytes());
        v.extend_from_slice(&77u32.to_be_bytes());
        v
    }

    fn payload(body: &[u8]) -> Vec<u8> {
        let mut v = vec![VERSION];
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn a_pid_in_a_tuple_is_rewritten_both_ways() {
        let out_rule = [Rewrite {
            from: nonode(),
            to: a(),
            kinds: Kinds::ALL,
        }];
        let home_rule = [Rewrite {
            from: a(),
            to: nonode(),
            kinds: Kinds::ALL,
        }];
        let mut body = vec![SMALL_TUPLE_EXT, 2, SMALL_INTEGER_EXT, 7];
        body.extend(nonode_pid(42));
        let mut want = vec![SMALL_TUPLE_EXT, 2, SMALL_INTEGER_EXT, 7];
        want.extend(a_pid(42));
        let sent = payload(&body);
        let out = rewrite_payload(&sent, &out_rule).unwrap();
        assert_eq!(&*out, &payload(&want)[..]);
        let home = rewrite_payload(&out, &home_rule).unwrap();
        // Home again, in the smallest atom encoding (the VM decodes both alike).
        let mut again = vec![SMALL_TUPLE_EXT, 2, SMALL_INTEGER_EXT, 7, NEW_PID_EXT];
        again.extend_from_slice(&[SMALL_ATOM_UTF8_EXT, 13]);
        again.extend_from_slice(b"nonode@nohost");
        again.extend_from_slice(&42u32.to_be_bytes());
        again.extend_from_slice(&[0; 8]);
        assert_eq!(&*home, &payload(&again)[..]);
    }

    #[test]
    fn pids_parse_in_both_encodings() {
        let mut new = vec![VERSION];
        new.extend(nonode_pid(42));
        let p = parse_pid(&new).unwrap();
        assert_eq!(
            (p.node, p.number, p.serial, p.creation),
            (&b"nonode@nohost"[..], 42, 0, 0)
        );
        assert_eq!(&new[p.numbers_at..p.numbers_at + 4], &42u32.to_be_bytes());
        let mut old = vec![VERSION, PID_EXT, SMALL_ATOM_EXT, 3];
        old.extend_from_slice(b"a@b");
        old.extend_from_slice(&[0, 0, 0, 7, 0, 0, 0, 1, 3]);
        let p = parse_pid(&old).unwrap();
        assert_eq!(
            (p.node, p.number, p.serial, p.creation),
            (&b"a@b"[..], 7, 1, 3)
        );
        assert_eq!(parse_pid(&old[..old.len() - 1]), None);
        assert_eq!(parse_pid(&[VERSION, NIL_EXT]), None);
    }

    #[test]
    fn nothing_to_rewrite_borrows() {
        let body = [SMALL_TUPLE_EXT, 1, BINARY_EXT, 0, 0, 0, 2, 1, 2];
        let p = payload(&body);
        let rules = [Rewrite {
            from: nonode(),
            to: a(),
            kinds: Kinds::ALL,
        }];
        assert!(matches!(
            rewrite_payload(&p, &rules).unwrap(),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn a_fun_size_follows_its_rewritten_pid() {
        // A fun with one free variable, its creator pid inside.
        let mut inner = vec![0u8; 1 + 16 + 4];
        inner.extend_from_slice(&1u32.to_be_bytes()); // num free
        inner.extend_from_slice(&[SMALL_ATOM_UTF8_EXT, 1, b'm']);
        inner.extend_from_slice(&[SMALL_INTEGER_EXT, 0, SMALL_INTEGER_EXT, 0]);
        inner.extend(nonode_pid(5));
        inner.extend_from_slice(&[NIL_EXT]);
        let mut body = vec![NEW_FUN_EXT];
        body.extend_from_slice(&((inner.len() + 4) as u32).to_be_bytes());
        body.extend(&inner);
        let rules = [Rewrite {
            from: nonode(),
            to: a(),
            kinds: Kinds::ALL,
        }];
        let sent = payload(&body);
        let out = rewrite_payload(&sent, &rules).unwrap();
        let size = u32::from_be_bytes(out[2..6].try_into().unwrap()) as usize;
        assert_eq!(
            size,
            out.len() - 2,
            "size counts from its own field to the end"
        );
        // Two bytes of name and one of atom header fewer.
        assert_eq!(out.len(), body.len() + 1 - 3);
        // A lying size is refused.
        let mut bad = body.clone();
        bad[4] ^= 1;
        assert!(rewrite_payload(&payload(&bad), &rules).is_err());
    }

    #[test]
    fn atoms_are_listed_node_names_included() {
        let mut body = vec![LIST_EXT, 0, 0, 0, 2, SMALL_ATOM_UTF8_EXT, 2, b'h', b'i'];
        body.extend(nonode_pid(1));
        body.push(NIL_EXT);
        let mut seen = Vec::new();
        for_each_atom(&payload(&body), &mut |t, _| seen.push(t.to_vec())).unwrap();
        assert_eq!(seen, vec![b"hi".to_vec(), b"nonode@nohost".to_vec()]);
    }

    #[test]
    fn deep_nesting_is_bounded_but_long_chains_are_not() {
        // {x, {x, {x, ...}}}: each tuple is its parent's last element, so no depth is used.
        let mut chain = Vec::new();
        for _ in 0..(MAX_NESTING + 10) {
            chain.extend_from_slice(&[SMALL_TUPLE_EXT, 2, NIL_EXT]);
        }
        chain.push(NIL_EXT);
        assert!(rewrite_payload(&payload(&chain), &[]).is_ok());
        // {{{{...}, x}, x}, x}: every level waits for a later element.
        let mut deep = Vec::new();
        for _ in 0..(MAX_NESTING + 10) {
            deep.extend_from_slice(&[SMALL_TUPLE_EXT, 2]);
        }
        assert_eq!(
            rewrite_payload(&payload(&deep), &[]),
            Err(TermError::TooDeep)
        );
    }

    #[test]
    fn trailing_bytes_and_unknown_tags_are_refused() {
        assert_eq!(
            rewrite_payload(&payload(&[NIL_EXT, NIL_EXT]), &[]),
            Err(TermError::BadSize)
        );
        assert_eq!(
            rewrite_payload(&payload(&[82, 0]), &[]),
            Err(TermError::BadTag(82))
        );
        assert_eq!(
            rewrite_payload(&payload(&[LIST_EXT, 255, 255, 255, 255]), &[]),
            Err(TermError::Truncated)
        );
    }
}
