//! Counters kept by the engine, readable at any time without locks.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::close::CloseReason;
use crate::wire::AckStatus;

/// The engine's counters, shared by its tasks and bumped without locks;
/// [`Stats::snapshot`] reads them all.
#[derive(Debug, Default)]
pub struct Stats {
    /// Messages taken by `Engine::send` (queued, written directly or suspending).
    pub sent: AtomicU64,
    /// Data frames received, counted before delivery (so the drops below are included).
    pub received: AtomicU64,
    /// Bytes of the frames counted in `sent`; control frames are not counted.
    pub bytes_sent: AtomicU64,
    /// Bytes read from established connections, frames of every kind.
    pub bytes_received: AtomicU64,
    /// Messages not sent: no connection to the node on the channel, or no peer at all.
    pub dropped_no_connection: AtomicU64,
    /// Received messages dropped: no process or registered name matched the target.
    pub dropped_unknown_dest: AtomicU64,
    /// Received messages dropped: the payload was not a valid external term.
    pub dropped_decode: AtomicU64,
    /// Received messages refused: they would create atoms past the node's budget.
    pub dropped_atoms: AtomicU64,
    /// Received messages dropped: their target is a pid of an earlier life of this node.
    pub dropped_stale_pid: AtomicU64,
    /// Messages refused before queueing because their frame would exceed `max_frame_size`.
    pub frames_too_large: AtomicU64,
    /// Connections closed for a malformed frame, or a handshake frame after the handshake.
    pub protocol_errors: AtomicU64,
    /// Incoming connections whose handshake failed or timed out (a refusal is not one).
    pub handshake_failures: AtomicU64,
    /// Handshakes whose peer did not prove the cluster's secret (either side).
    pub auth_failures: AtomicU64,
    /// TLS handshakes that failed (either side): no certificate, an untrusted or expired one,
    /// a name mismatch, or a peer not speaking TLS.
    pub tls_failures: AtomicU64,
    /// Inbound connections closed at once because `handshake_limit` were mid-handshake.
    pub handshakes_over_limit: AtomicU64,
    /// Connections that completed the handshake and started carrying frames.
    pub connections_opened: AtomicU64,
    /// Connections counted in `connections_opened` that have closed since.
    pub connections_closed: AtomicU64,
    /// Connections closed because pings went unanswered for `max_attempts` attempts.
    pub ping_timeouts: AtomicU64,
    /// Sends that left their connection over `send_queue_limit`, suspending the sender.
    pub senders_suspended: AtomicU64,
    /// Sends refused with `Busy` (`nosuspend`) while the connection was over its limit.
    pub busy_refusals: AtomicU64,
    /// Sends written to the socket on the caller's thread instead of by the writer task.
    pub written_directly: AtomicU64,
    /// Plumtree messages dropped: for a handler module this node does not have.
    pub dropped_unknown_broadcast: AtomicU64,
    /// Plumtree messages received on a channel other than the membership channel (their
    /// handler's own channel).
    pub broadcasts_on_own_channel: AtomicU64,
    /// Closed connections by reason (`CloseReason as usize - 1`).
    pub closed_by: [AtomicU64; CloseReason::ALL.len()],
    /// Hellos this node refused as the acceptor, by status (see `REFUSALS`).
    pub refused_by: [AtomicU64; REFUSALS.len()],
}

/// The handshake refusals counted, with their counters' names.
pub const REFUSALS: [(AckStatus, &str); 4] = [
    (AckStatus::Duplicate, "refused_duplicate"),
    (AckStatus::UnknownChannel, "refused_unknown_channel"),
    (AckStatus::Removed, "refused_removed"),
    (AckStatus::Refused, "refused_other"),
];

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsSnapshot(pub Vec<(&'static str, u64)>);

impl Stats {
    /// Adds one to `counter`.
    pub fn incr(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// Counts a hello refused with `status` (an accepted one is not counted).
    pub fn count_refusal(&self, status: AckStatus) {
        if let Some(i) = REFUSALS.iter().position(|(s, _)| *s == status) {
            Stats::incr(&self.refused_by[i]);
        }
    }

    /// Counts one connection closed for `why`, in `closed_by`.
    pub fn count_close(&self, why: CloseReason) {
        Stats::incr(&self.closed_by[why as usize - 1]);
    }

    /// A Plumtree message for a module this node has no handler for.
    pub fn count_unknown_broadcast(&self) {
        Stats::incr(&self.dropped_unknown_broadcast);
    }

    /// A Plumtree message arrived on its handler's own channel.
    pub fn count_broadcast_on_own_channel(&self) {
        Stats::incr(&self.broadcasts_on_own_channel);
    }

    /// Reads every counter into (name, value) pairs, ending with one per close reason.
    pub fn snapshot(&self) -> StatsSnapshot {
        let c = |a: &AtomicU64| a.load(Relaxed);
        let mut counters = vec![
            ("sent", c(&self.sent)),
            ("received", c(&self.received)),
            ("bytes_sent", c(&self.bytes_sent)),
            ("bytes_received", c(&self.bytes_received)),
            ("dropped_no_connection", c(&self.dropped_no_connection)),
            ("dropped_unknown_dest", c(&self.dropped_unknown_dest)),
            ("dropped_decode", c(&self.dropped_decode)),
            ("dropped_atoms", c(&self.dropped_atoms)),
            ("dropped_stale_pid", c(&self.dropped_stale_pid)),
            ("frames_too_large", c(&self.frames_too_large)),
            ("protocol_errors", c(&self.protocol_errors)),
            ("handshake_failures", c(&self.handshake_failures)),
            ("auth_failures", c(&self.auth_failures)),
            ("tls_failures", c(&self.tls_failures)),
            ("handshakes_over_limit", c(&self.handshakes_over_limit)),
            ("connections_opened", c(&self.connections_opened)),
            ("connections_closed", c(&self.connections_closed)),
            ("ping_timeouts", c(&self.ping_timeouts)),
            ("senders_suspended", c(&self.senders_suspended)),
            ("busy_refusals", c(&self.busy_refusals)),
            ("written_directly", c(&self.written_directly)),
            (
                "dropped_unknown_broadcast",
                c(&self.dropped_unknown_broadcast),
            ),
            (
                "broadcasts_on_own_channel",
                c(&self.broadcasts_on_own_channel),
            ),
        ];
        for why in CloseReason::ALL {
            counters.push((why.counter(), c(&self.closed_by[why as usize - 1])));
        }
        for (i, (_, name)) in REFUSALS.iter().enumerate() {
            counters.push((*name, c(&self.refused_by[i])));
        }
        StatsSnapshot(counters)
    }
}
