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

/// A peer's preamble once [`read_preamble`] has accepted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preamble {
    /// The protocol version the peer speaks (always [`VERSION`] here).
    pub version: u8,
}

impl Preamble {
    /// The five bytes this node writes first on every connection: [`MAGIC`], [`VERSION`].
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
    /// The node name and creation the VM puts in its local pids.
    pub vm: NodeId,
    /// The wire creation of the partisan name: the VM's when the two names agree, else a
    /// non-zero number new at each start.
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
    /// The dialer's node spec.
    pub spec: NodeSpec,
    /// The dialer's current life (a restart or a rejoin gets a larger one).
    pub incarnation: u64,
    /// How the dialer names its pids, ports and references.
    pub pids: PidNaming,
    /// The name of the channel this connection serves.
    pub channel: String,
    /// The connection's position in that channel's pool, `0..parallelism`.
    pub index: u16,
    /// Feature bits the dialer offers ([`CAPABILITIES`]; none are defined yet).
    pub capabilities: u32,
}

impl Hello {
    /// The body of a `Hello` frame.
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

    /// Parses a `Hello` body, validating names; trailing bytes are an error.
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

/// The acceptor's answer to a [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloAck {
    /// Whether the slot is granted, or why not.
    pub status: AckStatus,
    /// The acceptor's node name; a dialer that finds another than it dialed closes the
    /// connection.
    pub name: String,
    /// The acceptor's current life.
    pub incarnation: u64,
    /// How the acceptor names its pids, ports and references.
    pub pids: PidNaming,
    /// Feature bits the acceptor offers ([`CAPABILITIES`]).
    pub capabilities: u32,
}

impl HelloAck {
    /// The body of a `HelloAck` frame.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(self.status as u8)
            .short_str(&self.name)
            .u64(self.incarnation);
        self.pids.encode(&mut w);
        w.u32(self.capabilities);
        w.buf
    }

    /// Parses a `HelloAck` body, validating the name; trailing bytes are an error.
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
