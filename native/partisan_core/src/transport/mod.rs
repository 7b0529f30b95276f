//! The tokio transport, a driver of the control core (`crate::control`): listeners,
//! connection pools (channel x parallelism per peer), writer and reader tasks, and the timer;
//! the core decides who is a member, which connection wins a slot, when to dial and what to
//! gossip, and the driver carries it out.
//!
//! Modules depend one way: `engine` (the public handle) on `conn` (the connection tasks) on
//! `driver` (the core, its actions, the routing table) on `peer` (connections and routes).
//!
//! No Erlang types appear here: received messages and cluster events go to a [`Handler`], which
//! the NIF implements by sending straight to Erlang processes from the I/O threads.

mod broadcast;
mod close;
mod coalesce;
mod config;
mod conn;
mod driver;
mod engine;
mod io_runtime;
mod pacer;
mod peer;
mod pressure;
mod send_queue;
mod small_frames;
mod stats;
mod tls;

pub use close::CloseReason;
pub use coalesce::{coalesce, GATHER_MAX};
pub use config::{
    Config, PingConfig, CONTROL_CHANNEL, DEFAULT_CHANNEL, DEFAULT_HANDSHAKE_LIMIT,
    DEFAULT_SEND_QUEUE_LIMIT,
};
pub use engine::{Engine, JoinError, SendError};
pub use peer::Peer;
pub use pressure::Resume;
pub use send_queue::{OutFrame, Queued, SendMode};
pub use stats::{Stats, StatsSnapshot};
pub use tls::{KeyDer, ServerNameCheck, Tls, TlsSide, TlsVersion};

/// What became of a received message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Handed to the destination process.
    Delivered,
    /// No such registered name or process on this node.
    NoDestination,
    /// The payload is not a valid external term.
    Undecodable,
    /// The message would create atoms past the node's budget (or any, in safe mode): refused,
    /// counted and logged by the handler.
    RefusedAtoms,
}

use std::any::Any;
use std::sync::Arc;

use crate::wire::{Kinds, NodeId, PidNaming, Rewrite, Target};

/// The sender of received messages, as the handler needs it: its name, and how pids, ports and
/// references in its messages are rewritten on the way in (see `wire::term_rewrite`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The sender's partisan node name.
    pub node: Arc<str>,
    /// The rules for pids, ports and references in its messages (see [`Origin::new`]);
    /// empty when nothing needs rewriting.
    pub rewrites: Vec<Rewrite>,
}

impl Origin {
    /// The rules for messages from `node` (which names its pids as `theirs`) to this node (named
    /// `local`, whose pids are named as `ours`): the sender's own pids become pids of its
    /// partisan name; pids of this node's partisan name come home as its VM's. Only the
    /// `kinds` configured are rewritten.
    pub fn new(
        node: &str,
        theirs: &PidNaming,
        local: &str,
        ours: &PidNaming,
        kinds: Kinds,
    ) -> Origin {
        let mut rewrites = Vec::new();
        let their_wire = NodeId::new(node, theirs.creation);
        let our_wire = NodeId::new(local, ours.creation);
        if kinds.pids || kinds.refs {
            if theirs.vm != their_wire {
                rewrites.push(Rewrite {
                    from: theirs.vm.clone(),
                    to: their_wire,
                    kinds,
                });
            }
            if ours.vm != our_wire {
                rewrites.push(Rewrite {
                    from: our_wire,
                    to: ours.vm.clone(),
                    kinds,
                });
            }
        }
        Origin {
            node: Arc::from(node),
            rewrites,
        }
    }
}

/// Something that happened to the cluster, as seen from this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The node is up: connected on the control and the default channel (as the control core
    /// decided: `control::Action::Up`).
    NodeUp(Arc<str>),
    /// The node is no longer up, for the reason the connection whose loss took it down closed.
    NodeDown(Arc<str>, CloseReason),
    /// The set of live members changed; the list is sorted and includes the local node.
    Membership(Vec<Arc<str>>),
    /// This node was removed from the cluster (by itself or by another member).
    Left(Arc<str>),
    /// A handshake with the peer at `addr` failed authentication: the secrets differ (or a
    /// stranger tried). `as_dialer` when this node dialed. The handler rate-limits its log.
    AuthFailed {
        /// The peer's address, if the socket still knew it.
        addr: Option<std::net::SocketAddr>,
        /// Whether this node was the dialer.
        as_dialer: bool,
    },
    /// A TLS handshake with the peer at `addr` failed (`why`, as rustls says it): the peer has
    /// no certificate, or one that does not chain to the configured CAs, has expired or does
    /// not name the host. The handler rate-limits its log.
    TlsFailed {
        /// The peer's address, if the socket still knew it.
        addr: Option<std::net::SocketAddr>,
        /// Whether this node was the dialer.
        as_dialer: bool,
        /// rustls's description of the failure.
        why: String,
    },
    /// A handshake was refused because the two nodes' client-server roles may not be
    /// connected (a client with a client, a tagged node with an untagged one).
    RoleRefused {
        /// The other node.
        peer: Arc<str>,
        /// Its role.
        theirs: crate::control::Role,
    },
    /// A Plumtree broadcast reached this node for the first time: for the handler `module`.
    Broadcast {
        /// The handler module (one of the configured `broadcast_mods`).
        module: Arc<str>,
        /// The node that broadcast it.
        root: Arc<str>,
        /// The message id, in external term format.
        id: bytes::Bytes,
        /// The payload, in external term format.
        data: bytes::Bytes,
    },
}

/// Data frames with a body at least this large are read into memory the handler lends
/// ([`Handler::frame_buf`]) rather than into the connection's read buffer.
pub const LARGE_FRAME_BODY: usize = 64 * 1024;

/// Memory for the body of one large received frame, lent by the handler, so that the message
/// can be built on it in place (the NIF lends a VM binary: large binaries in the message then
/// reference it instead of being copied out of a read buffer).
pub trait FrameBuf: Any + Send {
    /// The lent bytes, read-only: the frame body once the reader has filled them.
    fn as_slice(&self) -> &[u8];
    /// The lent bytes, writable: the reader fills them with the frame body.
    fn as_mut_slice(&mut self) -> &mut [u8];
}

/// What the engine reports to. Called from I/O threads; implementations must not block.
pub trait Handler: Send + Sync + 'static {
    /// Delivers one message from `from` (external term format) to `target`; says why not, so
    /// the engine can count the drop. The payload shares the frame's memory, so a handler may
    /// keep parts of it without copying.
    fn deliver(&self, from: &Origin, target: &Target, payload: bytes::Bytes) -> Delivery;

    /// Memory of exactly `len` bytes for the body of a data frame of at least
    /// [`LARGE_FRAME_BODY`] bytes, or `None` to have it read as any other frame.
    fn frame_buf(&self, _len: usize) -> Option<Box<dyn FrameBuf>> {
        None
    }

    /// Delivers the message of a frame read into memory from [`Handler::frame_buf`]; its payload
    /// starts at `payload_at`.
    fn deliver_buf(
        &self,
        from: &Origin,
        target: &Target,
        buf: Box<dyn FrameBuf>,
        payload_at: usize,
    ) -> Delivery {
        let payload = bytes::Bytes::copy_from_slice(&buf.as_slice()[payload_at..]);
        self.deliver(from, target, payload)
    }

    /// Reports a cluster event.
    fn event(&self, event: Event);
}
