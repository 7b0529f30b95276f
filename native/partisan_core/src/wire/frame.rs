//! Length-prefixed frames: `u32 length | u8 kind | body`, where `length` counts kind and body.

use bytes::{Buf, Bytes, BytesMut};

use super::{Target, WireError};

/// Bytes before the body: four of length and one of kind.
pub const FRAME_HEADER_LEN: usize = 5;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// A user message: a [`Target`] followed by the message in external term format.
    Data = 1,
    /// Liveness probe carrying a nonce; answered by `Pong` with the same nonce.
    Ping = 2,
    /// Answer to a `Ping`, carrying its nonce.
    Pong = 3,
    /// The sender's full membership state (see `membership::State::encode`).
    Gossip = 4,
    /// A HyParView message (see `docs/wire.md`), on the control channel.
    Overlay = 5,
    /// A Plumtree message (see `docs/wire.md`), on the control channel.
    Broadcast = 6,
    /// Handshake request (first frame from the dialer).
    Hello = 16,
    /// Handshake answer (first frame from the acceptor).
    HelloAck = 17,
    /// Authentication: the dialer's nonce (its first frame).
    AuthInit = 18,
    /// Authentication: the acceptor's nonce and proof.
    AuthChallenge = 19,
    /// Authentication: the dialer's proof.
    AuthResponse = 20,
}

impl FrameKind {
    /// The kind with wire code `b`; `UnknownKind` for any other byte.
    pub fn from_u8(b: u8) -> Result<Self, WireError> {
        Ok(match b {
            1 => FrameKind::Data,
            2 => FrameKind::Ping,
            3 => FrameKind::Pong,
            4 => FrameKind::Gossip,
            5 => FrameKind::Overlay,
            6 => FrameKind::Broadcast,
            16 => FrameKind::Hello,
            17 => FrameKind::HelloAck,
            18 => FrameKind::AuthInit,
            19 => FrameKind::AuthChallenge,
            20 => FrameKind::AuthResponse,
            other => return Err(WireError::UnknownKind(other)),
        })
    }
}

/// A decoded frame; the body shares the read buffer's memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What the frame carries.
    pub kind: FrameKind,
    /// The bytes after the kind byte.
    pub body: Bytes,
}

/// Builds a whole frame in one allocation.
pub fn encode_frame(kind: FrameKind, body: &[u8]) -> Bytes {
    let mut v = Vec::with_capacity(FRAME_HEADER_LEN + body.len());
    v.extend_from_slice(&((body.len() + 1) as u32).to_be_bytes());
    v.push(kind as u8);
    v.extend_from_slice(body);
    Bytes::from(v)
}

/// Builds a data frame (header, target, payload) in one allocation, refusing one over `max`.
pub fn encode_data_frame(target: &Target, payload: &[u8], max: usize) -> Result<Bytes, WireError> {
    let mut v = data_head(target, payload.len(), max, payload.len())?;
    v.extend_from_slice(payload);
    Ok(Bytes::from(v))
}

/// The part of a data frame before its payload (length, kind, target), for a payload of
/// `payload_len` bytes that is written from where it already is, without copying it. Room is
/// reserved for `extra` bytes the caller appends (small parts of the payload).
pub fn encode_data_head(
    target: &Target,
    payload_len: usize,
    max: usize,
    extra: usize,
) -> Result<Vec<u8>, WireError> {
    data_head(target, payload_len, max, extra)
}

fn data_head(
    target: &Target,
    payload_len: usize,
    max: usize,
    extra: usize,
) -> Result<Vec<u8>, WireError> {
    let mut v = Vec::with_capacity(data_frame_len(target, payload_len) - payload_len + extra);
    put_data_head(target, payload_len, max, &mut v)?;
    Ok(v)
}

/// The length of a whole data frame for `target` and a payload of `payload_len` bytes.
pub fn data_frame_len(target: &Target, payload_len: usize) -> usize {
    4 + 1 + target.encoded_len() + payload_len
}

/// Appends the part of a data frame before its payload to `out` (see [`encode_data_head`]),
/// refusing a frame over `max` bytes.
pub fn put_data_head(
    target: &Target,
    payload_len: usize,
    max: usize,
    out: &mut Vec<u8>,
) -> Result<(), WireError> {
    let len = 1 + target.encoded_len() + payload_len;
    if len > max || len > u32::MAX as usize {
        return Err(WireError::FrameTooLarge { len, max });
    }
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.push(FrameKind::Data as u8);
    target.encode_into(out);
    Ok(())
}

/// Splits a byte stream into frames, enforcing the maximum frame size before buffering a body.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_frame: usize,
}

impl FrameDecoder {
    /// A decoder that refuses frames longer than `max_frame` bytes of kind and body.
    pub fn new(max_frame: usize) -> Self {
        FrameDecoder { max_frame }
    }

    /// How many more bytes are needed before `decode` can yield the next frame (a read-size hint).
    pub fn wanted(&self, buf: &BytesMut) -> usize {
        if buf.len() < 4 {
            return 4 - buf.len();
        }
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        (4 + len).saturating_sub(buf.len())
    }

    /// The kind and body length of the next frame, once its header is in `buf`; the same checks
    /// as `decode`, so a body may be allocated from what this says.
    pub fn peek(&self, buf: &[u8]) -> Result<Option<(FrameKind, usize)>, WireError> {
        if buf.len() < FRAME_HEADER_LEN {
            return Ok(None);
        }
        let len = self.checked_len(buf)?;
        Ok(Some((FrameKind::from_u8(buf[4])?, len - 1)))
    }

    fn checked_len(&self, buf: &[u8]) -> Result<usize, WireError> {
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len == 0 {
            return Err(WireError::Invalid("empty frame"));
        }
        if len > self.max_frame {
            return Err(WireError::FrameTooLarge {
                len,
                max: self.max_frame,
            });
        }
        Ok(len)
    }

    /// Takes the next complete frame off the front of `buf`, if there is one.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Frame>, WireError> {
        if buf.len() < 4 {
            return Ok(None);
        }
        let len = self.checked_len(buf)?;
        if buf.len() < 4 + len {
            return Ok(None);
        }
        buf.advance(4);
        let kind = FrameKind::from_u8(buf[0]);
        buf.advance(1);
        let body = buf.split_to(len - 1).freeze();
        Ok(Some(Frame { kind: kind?, body }))
    }
}
