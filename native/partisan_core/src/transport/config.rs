//! Engine configuration, already validated and normalised by the caller.

use std::net::SocketAddr;
use std::time::Duration;

use crate::membership::ChannelSpec;
use crate::wire::{Kinds, NodeId, PidNaming, DEFAULT_MAX_FRAME};

pub use crate::control::{PingConfig, CONTROL_CHANNEL, DEFAULT_CHANNEL};

/// Default of `handshake_limit`.
pub const DEFAULT_HANDSHAKE_LIMIT: usize = 256;

/// Default back-pressure threshold per connection (8 MiB).
pub const DEFAULT_SEND_QUEUE_LIMIT: usize = 8 * 1024 * 1024;

/// The engine's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// This node's partisan name, `name@host`; checked by `Engine::start`.
    pub name: String,
    /// Unique per start of the node; orders its lives in the membership CRDT.
    pub incarnation: u64,
    /// How this node's pids are named by its VM and on the wire (see `term_rewrite`).
    pub pids: PidNaming,
    /// What received messages have rewritten (`pid_encoding`, `ref_encoding`).
    pub rewrite: Kinds,
    /// Addresses to listen on; port 0 picks an ephemeral port. `Engine::start` replaces
    /// them with the bound addresses.
    pub listen_addrs: Vec<SocketAddr>,
    /// Every channel of this node, including the default and control channels.
    pub channels: Vec<ChannelSpec>,
    /// Period of the full membership gossip (`periodic_interval`).
    pub periodic_interval: Duration,
    /// Base delay of the redial backoff, and how long the node whose name sorts second
    /// waits before dialing data channels (`connection_interval`).
    pub connection_interval: Duration,
    /// Most random time added to each redial delay (`connection_jitter`).
    pub connection_jitter: Duration,
    /// The cluster's secret: a peer must prove it knows it before anything it sends is read
    /// (see `wire::auth`). Empty when authentication is off.
    pub secret: std::sync::Arc<[u8]>,
    /// Most inbound connections in their handshake at once (`handshake_limit`); more are
    /// closed at once and counted (`handshakes_over_limit`).
    pub handshake_limit: usize,
    /// Members a change is passed on to by gossip (see `control::DEFAULT_GOSSIP_FANOUT`).
    pub gossip_fanout: usize,
    /// How members are found (full mesh by gossip, or static).
    pub membership: crate::control::Membership,
    /// Most nodes the membership may hold (`max_members`).
    pub max_members: usize,
    /// New node names one member may bring per second (`member_name_rate`).
    pub member_name_rate: u32,
    /// Failure detection per connection (`connection_ping`).
    pub ping: PingConfig,
    /// Largest frame sent or accepted, in bytes of kind and body; a peer announcing a
    /// larger one is disconnected.
    pub max_frame_size: usize,
    /// Bytes queued on one connection above which senders are suspended (or refused with
    /// `nosuspend`); they resume when the queue drains to half of it.
    pub send_queue_limit: usize,
    /// Worker threads of the I/O runtime (the Erlang side passes half the schedulers online).
    pub io_threads: usize,
    /// Nice value of the I/O threads (-20..19; 0 = unchanged).
    pub io_nice: i32,
    /// The Plumtree handler modules (`broadcast_mods`): one broadcast tree per root and module.
    pub broadcast_mods: Vec<String>,
    /// The channel of each handler that names one (its `broadcast_channel/0`); the others'
    /// broadcasts travel on the control channel.
    pub broadcast_channels: Vec<(String, String)>,
    /// Plumtree's timing and id cache (`lazy_tick_period`).
    pub plumtree: crate::plumtree::Config,
    /// TLS on every connection (`tls`), or none.
    pub tls: Option<std::sync::Arc<super::tls::Tls>>,
}

impl Config {
    /// A configuration for tests and examples: one listener on 127.0.0.1 with an ephemeral port.
    pub fn local(name: &str) -> Config {
        Config {
            name: name.to_owned(),
            incarnation: 1,
            pids: PidNaming {
                vm: NodeId::new(name, 1),
                creation: 1,
            },
            rewrite: Kinds::ALL,
            listen_addrs: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
            channels: Vec::new(),
            periodic_interval: Duration::from_secs(10),
            connection_interval: Duration::from_secs(1),
            connection_jitter: Duration::from_millis(100),
            secret: std::sync::Arc::from(&b"partisan-local-test-secret"[..]),
            handshake_limit: DEFAULT_HANDSHAKE_LIMIT,
            gossip_fanout: crate::control::DEFAULT_GOSSIP_FANOUT,
            membership: crate::control::Membership::FullMesh,
            max_members: crate::control::DEFAULT_MAX_MEMBERS,
            member_name_rate: crate::control::DEFAULT_MEMBER_NAME_RATE,
            ping: PingConfig::default(),
            max_frame_size: DEFAULT_MAX_FRAME,
            send_queue_limit: DEFAULT_SEND_QUEUE_LIMIT,
            io_threads: 1,
            io_nice: 0,
            broadcast_mods: Vec::new(),
            broadcast_channels: Vec::new(),
            plumtree: crate::plumtree::Config::default(),
            tls: None,
        }
    }
}
