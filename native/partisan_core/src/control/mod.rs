//! The cluster rules of one node as a sans-IO state machine: membership, which connection wins
//! a slot, when to dial and back off, gossip, leave and removal. No sockets, clocks, threads or
//! tokio types: time comes in with every call and randomness from a seeded generator, so the
//! same inputs give the same actions (the simulator in `tests/control_sim.rs` relies on it).
//!
//! # Driving a [`Node`]
//! The driver (`transport`, or a simulator) owns the sockets and the timer, and
//! 1. feeds every event in with [`Node::handle`], and the handshakes with [`Node::admit`]
//!    (acceptor) and [`Node::dialed`] (dialer), which answer at once;
//! 2. when the time [`Node::poll_timeout`] names has come, calls [`Node::handle_timeout`];
//! 3. after each of these calls, takes every [`Action`] from [`Node::poll_action`] and carries
//!    them out in order, before it feeds the next event, then asks for `poll_timeout` again.
//!
//! The order of the actions is part of the contract: a connection is installed before the
//! `Up` it completes, a `Down` comes before the closes that cause it, and gossip queued on a
//! connection comes before its close. A driver that carries them out in order never shows a
//! peer as up that it cannot send to.
//!
//! Ping liveness is the one rule kept per connection, in [`Liveness`]: it is consulted on
//! every read, so the connection's reader owns it and reports its verdict as a close.

mod liveness;
mod node;
mod overlay;
mod reason;

pub use liveness::{Liveness, PingConfig, Verdict};
pub use node::{
    normalise_channels, Action, Admission, Input, Membership, Node, PeerView, Role, Settings,
    DEFAULT_GOSSIP_FANOUT, DEFAULT_MAX_MEMBERS, DEFAULT_MEMBER_NAME_RATE,
};
pub use overlay::MAX_TAG;
pub use reason::CloseReason;

use std::sync::Arc;

/// The channel that carries membership gossip and pings apart from user data.
pub const CONTROL_CHANNEL: &str = "partisan_membership";
/// Partisan's default channel (the atom `undefined`); a node is up only when connected on it.
pub const DEFAULT_CHANNEL: &str = "undefined";

/// A connection, named by its driver; unique among a node's connections.
pub type ConnId = u64;

/// One (peer, channel, index) position of a node's connection pool; holds at most one
/// connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotKey {
    /// The remote node.
    pub peer: Arc<str>,
    /// The channel id: the position of the channel in the node's sorted channel list.
    pub channel: usize,
    /// Which of the channel's `parallelism` connections.
    pub index: u16,
}
