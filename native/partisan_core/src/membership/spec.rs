//! Node specifications: the name, listen addresses and channels a node announces.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::wire::{
    validate_channel_name, validate_node_name, Reader, WireError, Writer, MAX_ADDRS, MAX_CHANNELS,
};

/// Partisan's `compression` channel option: `false`, `true` or a zlib level 0..9.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Compression {
    Off,
    On,
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
    pub name: String,
    pub parallelism: u16,
    pub monotonic: bool,
    pub compression: Compression,
}

/// What other nodes need to reach a node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeSpec {
    pub name: String,
    pub listen_addrs: Vec<SocketAddr>,
    /// Sorted by name, so that equal specs encode identically.
    pub channels: Vec<ChannelSpec>,
}

impl NodeSpec {
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

    pub fn channel(&self, name: &str) -> Option<&ChannelSpec> {
        self.channels.iter().find(|c| c.name == name)
    }
}
