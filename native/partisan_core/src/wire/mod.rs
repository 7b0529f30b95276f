//! The wire protocol: connection preamble, handshake and length-prefixed frames.
//!
//! Everything here is sans-IO: functions turn bytes into values and values into bytes, and every
//! malformed input is an `Err`, never a panic. The format is documented in `docs/wire.md`.

mod auth;
mod bytes_io;
mod etf;
mod frame;
mod handshake;
mod in_place;
mod target;
mod term_rewrite;

pub use auth::{
    nonce, prove, verify, AuthChallenge, AuthInit, AuthResponse, Nonce, Proof, Side, AUTH_LEN,
};
pub use bytes_io::{Reader, Writer};
pub use etf::{is_compressed, uncompressed_term};
pub use frame::{
    data_frame_len, encode_data_frame, encode_data_head, encode_frame, put_data_head, Frame,
    FrameDecoder, FrameKind, FRAME_HEADER_LEN,
};
pub use handshake::{
    read_preamble, AckStatus, Hello, HelloAck, PidNaming, Preamble, CAPABILITIES, PREAMBLE_LEN,
};
pub use in_place::{plan as plan_in_place, Shape, MAX_ARITY, MAX_DEPTH, REFERENCE_MIN};
pub use target::{parse_pid_text, Target};
pub use term_rewrite::{
    for_each_atom, parse_pid, rewrite_payload, walk, AtomText, Kinds, NodeId, PidParts, Rewrite,
    TermError, Walked, MAX_NESTING,
};

/// The four bytes every connection starts with, in both directions.
pub const MAGIC: [u8; 4] = *b"PTSN";
/// The protocol version this build speaks (3: the handshake starts with a mutual proof of the
/// cluster's secret; 2: it says how pids are named, and a pid target carries its creation).
pub const VERSION: u8 = 3;
/// Longest node or channel name accepted on the wire.
pub const MAX_NAME_LEN: usize = 255;
/// Most channels a node spec may carry.
pub const MAX_CHANNELS: usize = 64;
/// Most listen addresses a node spec may carry.
pub const MAX_ADDRS: usize = 16;
/// Default for the configurable maximum frame size (64 MiB).
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024 * 1024;
/// Handshake frames are small; anything larger is hostile.
pub const MAX_HANDSHAKE_FRAME: usize = 64 * 1024;

/// Why bytes could not be decoded. Each variant closes the connection that produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// Input ended before the value was complete.
    Truncated,
    /// The preamble did not start with [`MAGIC`].
    BadMagic,
    /// The peer speaks a protocol version we do not.
    UnsupportedVersion(u8),
    /// A frame announced a length over the limit.
    FrameTooLarge {
        /// The frame's length in bytes of kind and body.
        len: usize,
        /// The limit it exceeds.
        max: usize,
    },
    /// A frame kind we do not know.
    UnknownKind(u8),
    /// A field held a value outside its domain.
    Invalid(&'static str),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Truncated => write!(f, "truncated input"),
            WireError::BadMagic => write!(f, "bad magic"),
            WireError::UnsupportedVersion(v) => write!(f, "unsupported protocol version {v}"),
            WireError::FrameTooLarge { len, max } => {
                write!(f, "frame of {len} bytes over limit {max}")
            }
            WireError::UnknownKind(k) => write!(f, "unknown frame kind {k}"),
            WireError::Invalid(what) => write!(f, "invalid {what}"),
        }
    }
}

impl std::error::Error for WireError {}

/// A node name is printable ASCII of the form `name@host`, at most [`MAX_NAME_LEN`] bytes.
/// This is the only peer-supplied string that may ever become an atom, so it is checked strictly.
pub fn validate_node_name(name: &str) -> Result<(), WireError> {
    let ok_len = !name.is_empty() && name.len() <= MAX_NAME_LEN;
    let ok_chars = name.bytes().all(|b| b.is_ascii_graphic() && b != b'\'');
    let ok_shape = matches!(name.split_once('@'), Some((l, h)) if !l.is_empty() && !h.is_empty() && !h.contains('@'));
    if ok_len && ok_chars && ok_shape {
        Ok(())
    } else {
        Err(WireError::Invalid("node name"))
    }
}

/// Channel names are atoms on the Erlang side: printable ASCII, at most [`MAX_NAME_LEN`] bytes.
pub fn validate_channel_name(name: &str) -> Result<(), WireError> {
    if !name.is_empty() && name.len() <= MAX_NAME_LEN && name.bytes().all(|b| b.is_ascii_graphic())
    {
        Ok(())
    } else {
        Err(WireError::Invalid("channel name"))
    }
}
