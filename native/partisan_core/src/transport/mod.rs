//! The tokio transport: listeners, connection pools (channel x parallelism per peer), writer and
//! reader tasks, reconnects with backoff, idle pings, and the gossip that spreads membership.
//!
//! No Erlang types appear here: received messages and cluster events go to a [`Handler`], which
//! the NIF implements by sending straight to Erlang processes from the I/O threads.

mod cluster;
mod config;
mod conn;
mod engine;
mod peer;
mod pressure;
mod send_queue;
mod stats;

pub use config::{Config, PingConfig, CONTROL_CHANNEL, DEFAULT_CHANNEL, DEFAULT_SEND_QUEUE_LIMIT};
pub use engine::{Engine, JoinError, SendError};
pub use peer::Peer;
pub use pressure::Resume;
pub use send_queue::{OutFrame, Queued, SendMode};
pub use stats::{Stats, StatsSnapshot};

/// What became of a received message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Delivered,
    /// No such registered name or process on this node.
    NoDestination,
    /// The payload is not a term this node may decode safely (for example it names an atom
    /// that does not exist here: peers may not create atoms).
    Undecodable,
}

use std::sync::Arc;

use crate::wire::Target;

/// Something that happened to the cluster, as seen from this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The control connection to this node came up.
    NodeUp(Arc<str>),
    /// The control connection to this node went down.
    NodeDown(Arc<str>),
    /// The set of live members changed; the list is sorted and includes the local node.
    Membership(Vec<Arc<str>>),
    /// This node was removed from the cluster (by itself or by another member).
    Left(Arc<str>),
}

/// What the engine reports to. Called from I/O threads; implementations must not block.
pub trait Handler: Send + Sync + 'static {
    /// Delivers one message (external term format) to `target`; says why not, so the engine
    /// can count the drop.
    /// The payload shares the frame's memory, so a handler may keep parts of it without copying.
    fn deliver(&self, target: &Target, payload: bytes::Bytes) -> Delivery;
    /// Reports a cluster event.
    fn event(&self, event: Event);
}
