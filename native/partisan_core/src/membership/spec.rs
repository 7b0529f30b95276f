//! Node specifications: the name, listen addresses and channels a node announces.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::wire::{
    validate_channel_name, validate_node_name, Reader, WireError, Writer, MAX_ADDRS, MAX_CHANNELS,
};

/// Partisan's `compression` channel option: `false`, `true` or a zlib level 0..9.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Compression {
    /// No compression (`false`).
    Off,
    /// Compression at the default level (`true`; zlib level 6 on the Erlang side).
    On,
    /// Compression at this zlib level, 0..9.
    Level(u8),
}

impl Compression {
    fn code(self) -> u8 {
        match self {
            Compression::Off => 0,
            Compression::On => 1,
            Compression::Level(l) => 0x80 | l.min(9),
        }
    }

    fn from_code(c: u8) -> Result<Self, WireError> {
        match c {
            0 => Ok(Compression::Off),
            1 => Ok(Compression::On),
            c if c & 0x80 != 0 && c & 0x7f <= 9 => Ok(Compression::Level(c & 0x7f)),
            _ => Err(WireError::Invalid("compression")),
        }
    }
}

/// One named channel of a node: how many parallel connections it uses and how they behave.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChannelSpec {
    /// The channel's name, the text of an atom on the Erlang side.
    pub name: String,
    /// How many connections the channel keeps to each peer (at least 1); a message's
    /// partition key picks one of them.
    pub parallelism: u16,
    /// Partisan's `monotonic` option, carried for compatibility: the engine does not act on
    /// it, since messages on one connection always stay in order.
    pub monotonic: bool,
    /// How messages sent on the channel are compressed; applied by the sending side when
    /// it encodes them, the engine only carries it.
    pub compression: Compression,
}

/// What other nodes need to reach a node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeSpec {
    /// The node's partisan name, `name@host` (see `validate_node_name`).
    pub name: String,
    /// The addresses peers dial to reach the node; at most `MAX_ADDRS` are encoded.
    pub listen_addrs: Vec<SocketAddr>,
    /// Sorted by name, so that equal specs encode identically.
    pub channels: Vec<ChannelSpec>,
}

impl NodeSpec {
    /// Appends the spec's wire form (see `docs/wire.md`); addresses and channels past
    /// `MAX_ADDRS` and `MAX_CHANNELS` are left out.
    pub fn encode(&self, w: &mut Writer) {
        w.short_str(&self.name);
        w.u8(self.listen_addrs.len().min(MAX_ADDRS) as u8);
        for a in self.listen_addrs.iter().take(MAX_ADDRS) {
            match a.ip() {
                IpAddr::V4(ip) => w.u8(4).bytes(&ip.octets()),
                IpAddr::V6(ip) => w.u8(6).bytes(&ip.octets()),
            };
            w.u16(a.port());
        }
        w.u8(self.channels.len().min(MAX_CHANNELS) as u8);
        for c in self.channels.iter().take(MAX_CHANNELS) {
            w.short_str(&c.name)
                .u16(c.parallelism)
                .u8(c.monotonic as u8)
                .u8(c.compression.code());
        }
    }

    /// Reads a spec written by [`NodeSpec::encode`], validating names, counts, parallelism
    /// and flags; the channels come out sorted by name.
    pub fn decode(r: &mut Reader<'_>) -> Result<NodeSpec, WireError> {
        let name = r.short_str()?.to_owned();
        validate_node_name(&name)?;
        let n_addrs = r.u8()? as usize;
        if n_addrs > MAX_ADDRS {
            return Err(WireError::Invalid("address count"));
        }
        let mut listen_addrs = Vec::with_capacity(n_addrs);
        for _ in 0..n_addrs {
            let ip = match r.u8()? {
                4 => {
                    let b = r.bytes(4)?;
                    IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
                }
                6 => {
                    let mut a = [0u8; 16];
                    a.copy_from_slice(r.bytes(16)?);
                    IpAddr::V6(Ipv6Addr::from(a))
                }
                _ => return Err(WireError::Invalid("address family")),
            };
            listen_addrs.push(SocketAddr::new(ip, r.u16()?));
        }
        let n_channels = r.u8()? as usize;
        if n_channels > MAX_CHANNELS {
            return Err(WireError::Invalid("channel count"));
        }
        let mut channels = Vec::with_capacity(n_channels);
        for _ in 0..n_channels {
            let cname = r.short_str()?.to_owned();
            validate_channel_name(&cname)?;
            let parallelism = r.u16()?;
            if parallelism == 0 {
                return Err(WireError::Invalid("parallelism"));
            }
            let monotonic = match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(WireError::Invalid("monotonic flag")),
            };
            let compression = Compression::from_code(r.u8()?)?;
            channels.push(ChannelSpec {
                name: cname,
                parallelism,
                monotonic,
                compression,
            });
        }
        channels.sort();
        Ok(NodeSpec {
            name,
            listen_addrs,
            channels,
        })
    }

    /// The channel called `name`, if the node has one.
    pub fn channel(&self, name: &str) -> Option<&ChannelSpec> {
        self.channels.iter().find(|c| c.name == name)
    }
}
