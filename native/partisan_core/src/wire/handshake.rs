//! The handshake. Each side first writes the preamble (`MAGIC`, version byte); the dialer then
//! sends a `Hello` frame naming itself and the connection slot it wants, and the acceptor answers
//! with a `HelloAck` saying whether the slot is granted.

use super::{
    validate_channel_name, validate_node_name, NodeId, Reader, WireError, Writer, MAGIC, VERSION,
};
use crate::membership::NodeSpec;

/// Length of the preamble: magic plus version byte.
pub const PREAMBLE_LEN: usize = 5;
/// Feature bits this build offers; none are defined yet, the field is there for later versions.
pub const CAPABILITIES: u32 = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preamble {
    pub version: u8,
}

impl Preamble {
    pub fn ours() -> [u8; PREAMBLE_LEN] {
        [MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], VERSION]
    }
}

/// Checks the first five bytes of a connection.
pub fn read_preamble(b: &[u8; PREAMBLE_LEN]) -> Result<Preamble, WireError> {
    if b[..4] != MAGIC {
        return Err(WireError::BadMagic);
    }
    if b[4] != VERSION {
        return Err(WireError::UnsupportedVersion(b[4]));
    }
    Ok(Preamble { version: b[4] })
}

/// How a node's pids, ports and references are named: by its VM (`vm`: the node name and
/// creation its local pids carry, `nonode@nohost` and 0 without Distributed Erlang) and on the
/// wire (its partisan name with `creation`, unique per start). The receiver of a message
/// rewrites the one into the other (see `term_rewrite`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidNaming {
    pub vm: NodeId,
    pub creation: u32,
}

impl PidNaming {
    fn encode(&self, w: &mut Writer) {
        // Node names are ASCII (`validate_node_name`), so the text is a valid short string.
        w.short_str(std::str::from_utf8(&self.vm.name).unwrap_or(""))
            .u32(self.vm.creation)
            .u32(self.creation);
    }

    fn decode(r: &mut Reader) -> Result<PidNaming, WireError> {
        let name = r.short_str()?;
        validate_node_name(name)?;
        let vm = NodeId::new(name, r.u32()?);
        Ok(PidNaming {
            vm,
            creation: r.u32()?,
        })
    }
}

/// The dialer's introduction: who it is and which (channel, index) slot this connection fills.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub spec: NodeSpec,
    pub incarnation: u64,
    pub pids: PidNaming,
    pub channel: String,
    pub index: u16,
    pub capabilities: u32,
}

impl Hello {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.spec.encode(&mut w);
        w.u64(self.incarnation);
        self.pids.encode(&mut w);
        w.short_str(&self.channel)
            .u16(self.index)
            .u32(self.capabilities);
        w.buf
    }

    pub fn decode(body: &[u8]) -> Result<Hello, WireError> {
        let mut r = Reader::new(body);
        let spec = NodeSpec::decode(&mut r)?;
        let incarnation = r.u64()?;
        let pids = PidNaming::decode(&mut r)?;
        let channel = r.short_str()?.to_owned();
        validate_channel_name(&channel)?;
        let index = r.u16()?;
        let capabilities = r.u32()?;
        r.finish()?;
        Ok(Hello {
            spec,
            incarnation,
            pids,
            channel,
            index,
            capabilities,
        })
    }
}

/// The acceptor's verdict on a `Hello`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum AckStatus {
    /// The slot is granted; frames may flow.
    Accepted = 0,
    /// The slot is already held by the connection the tie-break prefers; the dialer gives up.
    Duplicate = 1,
    /// The channel or index does not exist on the acceptor.
    UnknownChannel = 2,
    /// The dialer's node was removed from the cluster at this incarnation.
    Removed = 3,
    /// The acceptor is the dialer itself, or the request was otherwise unacceptable.
    Refused = 4,
}

impl AckStatus {
    fn from_u8(b: u8) -> Result<Self, WireError> {
        Ok(match b {
            0 => AckStatus::Accepted,
            1 => AckStatus::Duplicate,
            2 => AckStatus::UnknownChannel,
            3 => AckStatus::Removed,
            4 => AckStatus::Refused,
            _ => return Err(WireError::Invalid("ack status")),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloAck {
    pub status: AckStatus,
    pub name: String,
    pub incarnation: u64,
    pub pids: PidNaming,
    pub capabilities: u32,
}

impl HelloAck {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(self.status as u8)
            .short_str(&self.name)
            .u64(self.incarnation);
        self.pids.encode(&mut w);
        w.u32(self.capabilities);
        w.buf
    }

    pub fn decode(body: &[u8]) -> Result<HelloAck, WireError> {
        let mut r = Reader::new(body);
        let status = AckStatus::from_u8(r.u8()?)?;
        let name = r.short_str()?.to_owned();
        validate_node_name(&name)?;
        let incarnation = r.u64()?;
        let pids = PidNaming::decode(&mut r)?;
        let capabilities = r.u32()?;
        r.finish()?;
        Ok(HelloAck {
            status,
            name,
            incarnation,
            pids,
            capabilities,
        })
    }
}
