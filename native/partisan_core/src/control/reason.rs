//! Why a connection closed: one reason per connection, set by whoever closed it first, counted
//! per reason in the stats and carried with `node_down` when the loss took the node down.

/// Why a connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CloseReason {
    /// The other side closed the connection (end of stream or reset).
    PeerClosed = 1,
    /// Reading or writing the socket failed.
    Io = 2,
    /// The peer sent something that breaks the protocol (a malformed or oversized frame).
    ProtocolError = 3,
    /// Nothing arrived for `connection_ping.max_attempts` pings.
    PingTimeout = 4,
    /// The handshake's tie-break kept another connection in this slot.
    Superseded = 5,
    /// A connection from a newer life of the peer (it restarted) replaced this one.
    Restarted = 6,
    /// `partisan:kill_connections/1` closed it.
    Killed = 7,
    /// The peer left the cluster or was removed from it, or this node left.
    Removed = 8,
    /// This node's engine is stopping.
    LocalStop = 9,
    /// The overlay no longer needs it: the peer left the active view, or a connection made
    /// for a message to a node outside it went idle.
    Disconnected = 10,
}

impl CloseReason {
    /// Every reason, in the order of their discriminants.
    pub const ALL: [CloseReason; 10] = [
        CloseReason::PeerClosed,
        CloseReason::Io,
        CloseReason::ProtocolError,
        CloseReason::PingTimeout,
        CloseReason::Superseded,
        CloseReason::Restarted,
        CloseReason::Killed,
        CloseReason::Removed,
        CloseReason::LocalStop,
        CloseReason::Disconnected,
    ];

    /// The name users see: the atom in `node_down` events and the suffix of the
    /// `closed_<name>` counter.
    pub fn name(self) -> &'static str {
        match self {
            CloseReason::PeerClosed => "connection_closed",
            CloseReason::Io => "io_error",
            CloseReason::ProtocolError => "protocol_error",
            CloseReason::PingTimeout => "ping_timeout",
            CloseReason::Superseded => "superseded",
            CloseReason::Restarted => "restarted",
            CloseReason::Killed => "killed",
            CloseReason::Removed => "removed",
            CloseReason::LocalStop => "shutdown",
            CloseReason::Disconnected => "disconnected",
        }
    }

    /// The name of its counter in the stats.
    pub fn counter(self) -> &'static str {
        match self {
            CloseReason::PeerClosed => "closed_connection_closed",
            CloseReason::Io => "closed_io_error",
            CloseReason::ProtocolError => "closed_protocol_error",
            CloseReason::PingTimeout => "closed_ping_timeout",
            CloseReason::Superseded => "closed_superseded",
            CloseReason::Restarted => "closed_restarted",
            CloseReason::Killed => "closed_killed",
            CloseReason::Removed => "closed_removed",
            CloseReason::LocalStop => "closed_shutdown",
            CloseReason::Disconnected => "closed_disconnected",
        }
    }

    /// The reason whose discriminant is `b`, if any.
    pub fn from_u8(b: u8) -> Option<CloseReason> {
        CloseReason::ALL.into_iter().find(|r| *r as u8 == b)
    }
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::error::Error for CloseReason {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_and_round_trip() {
        let mut names: Vec<_> = CloseReason::ALL.iter().map(|r| r.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), CloseReason::ALL.len());
        for r in CloseReason::ALL {
            assert_eq!(CloseReason::from_u8(r as u8), Some(r));
        }
    }
}
