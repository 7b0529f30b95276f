//! `partisan_core`: the engine behind the `partisan` OTP application, free of BEAM types so that
//! it can be tested and benchmarked without a VM.
//!
//! - [`wire`]: preamble, handshake and frame codec (sans-IO).
//! - [`membership`]: the full-mesh membership CRDT and node specifications.
//! - [`control`]: the cluster rules of a node as a sans-IO state machine.
//! - [`hyparview`]: the HyParView overlay as a sans-IO state machine.
//! - [`plumtree`]: Plumtree broadcast trees as a sans-IO state machine.
//! - [`transport`]: the tokio engine, a driver of [`control`]: listeners, connection pools, writers, readers, reconnects,
//!   failure detection and gossip, reporting to a [`transport::Handler`].

#![warn(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

pub mod calls;
pub mod control;
pub mod frame_pool;
pub mod hyparview;
pub mod membership;
pub mod memo;
pub mod plumtree;
pub mod serving;
pub mod transport;
pub mod wire;
