//! Counters kept by the engine, readable at any time without locks.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::close::CloseReason;

#[derive(Debug, Default)]
pub struct Stats {
    pub sent: AtomicU64,
    pub received: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub bytes_received: AtomicU64,
    pub dropped_no_connection: AtomicU64,
    pub dropped_unknown_dest: AtomicU64,
    pub dropped_decode: AtomicU64,
    pub dropped_atoms: AtomicU64,
    pub dropped_stale_pid: AtomicU64,
    pub frames_too_large: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub handshake_failures: AtomicU64,
    pub connections_opened: AtomicU64,
    pub connections_closed: AtomicU64,
    pub ping_timeouts: AtomicU64,
    pub senders_suspended: AtomicU64,
    pub busy_refusals: AtomicU64,
    pub written_directly: AtomicU64,
    /// Closed connections by reason (`CloseReason as usize - 1`).
    pub closed_by: [AtomicU64; CloseReason::ALL.len()],
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsSnapshot(pub Vec<(&'static str, u64)>);

impl Stats {
    pub fn incr(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub fn count_close(&self, why: CloseReason) {
        Stats::incr(&self.closed_by[why as usize - 1]);
    }

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
            ("connections_opened", c(&self.connections_opened)),
            ("connections_closed", c(&self.connections_closed)),
            ("ping_timeouts", c(&self.ping_timeouts)),
            ("senders_suspended", c(&self.senders_suspended)),
            ("busy_refusals", c(&self.busy_refusals)),
            ("written_directly", c(&self.written_directly)),
        ];
        for why in CloseReason::ALL {
            counters.push((why.counter(), c(&self.closed_by[why as usize - 1])));
        }
        StatsSnapshot(counters)
    }
}
