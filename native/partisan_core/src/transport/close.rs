//! The cell that holds a connection's close reason (see `control::CloseReason`).

use std::sync::atomic::{AtomicU8, Ordering};

pub use crate::control::CloseReason;

/// A connection's reason, set once: the first closer names the cause, later ones (the reader
/// noticing the socket go) do not overwrite it.
#[derive(Debug, Default)]
pub(crate) struct CloseCell(AtomicU8);

impl CloseCell {
    /// Records `reason` unless one was recorded already.
    pub fn set(&self, reason: CloseReason) {
        let _ = self
            .0
            .compare_exchange(0, reason as u8, Ordering::AcqRel, Ordering::Acquire);
    }

    pub fn get(&self) -> Option<CloseReason> {
        CloseReason::from_u8(self.0.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_reason_stays() {
        let c = CloseCell::default();
        assert_eq!(c.get(), None);
        c.set(CloseReason::Restarted);
        c.set(CloseReason::PeerClosed);
        assert_eq!(c.get(), Some(CloseReason::Restarted));
    }
}
