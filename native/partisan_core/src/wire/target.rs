//! The destination of a data frame, resolved on the receiving node without decoding the message.

use super::{Reader, WireError, MAX_NAME_LEN};

/// Who a message is for on the receiving node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A registered name (the atom's text).
    Name(String),
    /// A local process identifier `<0.Number.Serial>` on the receiving node; `creation`, when
    /// known, is the receiver's wire creation the pid was made under: a pid of an earlier life
    /// of the node reaches no process of this one.
    Pid {
        /// The pid's number, `N` in `<0.N.S>`.
        number: u32,
        /// The pid's serial, `S` in `<0.N.S>`.
        serial: u32,
        /// The receiver's wire creation the pid was made under; `None` when unknown (a pid
        /// taken from text).
        creation: Option<u32>,
    },
    /// The process of the receiving node that waits for the answer to its call number `id`
    /// (a `partisan_gen_server` call or an rpc): the receiver delivers the frame only while
    /// the call still waits, so an answer that comes after its caller gave up is dropped.
    Call(u64),
}

const TAG_NAME: u8 = 0;
const TAG_PID: u8 = 1;
const TAG_PID_OF_LIFE: u8 = 2;
const TAG_CALL: u8 = 3;

impl Target {
    /// The length of the target's wire form in bytes.
    pub fn encoded_len(&self) -> usize {
        match self {
            Target::Name(n) => 2 + n.len(),
            Target::Pid { creation: None, .. } => 9,
            Target::Pid { .. } => 13,
            Target::Call(_) => 9,
        }
    }

    /// Appends the target's wire form: a tag, then the name or the pid's numbers.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Target::Name(n) => {
                out.push(TAG_NAME);
                out.push(n.len() as u8);
                out.extend_from_slice(n.as_bytes());
            }
            Target::Pid {
                number,
                serial,
                creation,
            } => {
                out.push(if creation.is_some() {
                    TAG_PID_OF_LIFE
                } else {
                    TAG_PID
                });
                out.extend_from_slice(&number.to_be_bytes());
                out.extend_from_slice(&serial.to_be_bytes());
                if let Some(c) = creation {
                    out.extend_from_slice(&c.to_be_bytes());
                }
            }
            Target::Call(id) => {
                out.push(TAG_CALL);
                out.extend_from_slice(&id.to_be_bytes());
            }
        }
    }

    /// A name must fit the one-byte length; checked where targets are built from caller input.
    pub fn name(name: &str) -> Result<Target, WireError> {
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(WireError::Invalid("registered name"));
        }
        Ok(Target::Name(name.to_owned()))
    }

    /// Reads a target from the front of a data frame body; the reader is left at the payload.
    pub fn decode(r: &mut Reader<'_>) -> Result<Target, WireError> {
        match r.u8()? {
            TAG_NAME => {
                let name = r.short_str()?;
                if name.is_empty() {
                    return Err(WireError::Invalid("registered name"));
                }
                Ok(Target::Name(name.to_owned()))
            }
            TAG_PID => Ok(Target::Pid {
                number: r.u32()?,
                serial: r.u32()?,
                creation: None,
            }),
            TAG_PID_OF_LIFE => Ok(Target::Pid {
                number: r.u32()?,
                serial: r.u32()?,
                creation: Some(r.u32()?),
            }),
            TAG_CALL => Ok(Target::Call(r.u64()?)),
            _ => Err(WireError::Invalid("target tag")),
        }
    }
}

/// Parses the text of a pid as Erlang prints it (`<A.N.S>`, optionally prefixed by `#Pid`) and
/// returns `(N, S)`: the node part `A` is meaningless across nodes and is ignored.
pub fn parse_pid_text(text: &[u8]) -> Option<(u32, u32)> {
    let text = text.strip_prefix(b"#Pid").unwrap_or(text);
    let inner = text.strip_prefix(b"<")?.strip_suffix(b">")?;
    let inner = std::str::from_utf8(inner).ok()?;
    let mut parts = inner.split('.');
    let (_node, number, serial) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    Some((number.parse().ok()?, serial.parse().ok()?))
}
