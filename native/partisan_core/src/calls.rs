//! The calls of this node that wait for a remote answer (`partisan_gen_server` calls and rpcs),
//! kept by the NIF.
//!
//! A caller registers its call when it sends the request; the answer comes back addressed to
//! the call (`Target::Call`), and whoever takes the call from the table ends it: the I/O thread
//! that reads the answer (and delivers it straight to the caller), the caller at its timeout, or
//! the engine's `node_down` of the node the call waits on. Taking is atomic, so an answer that
//! comes after its caller gave up finds nothing and is dropped (and counted): no late reply is
//! ever left in a caller's mailbox, and no relay process sits on the answer's way.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// Most calls that may wait at once: a bound on the table's memory (a caller that is killed
/// while its call waits leaves its entry until the answer or the node's `node_down`).
pub const MAX_WAITING: usize = 1 << 20;

/// One waiting call; `P` is the caller (the NIF's `LocalPid`).
pub struct Waiter<P> {
    /// The caller, who gets the answer.
    pub pid: P,
    /// The node the request went to.
    pub node: Box<str>,
    /// The external format of the caller's tag: the answer of a `node_down` carries it.
    pub tag: Vec<u8>,
}

/// The table of waiting calls by their id (one lock: every operation is a map lookup, except
/// the rare `take_node`).
pub struct Calls<P> {
    waiting: Mutex<HashMap<u64, Waiter<P>>>,
    /// Answers that found their call already over (timed out, or ended by a `node_down`).
    late: AtomicU64,
}

impl<P> Default for Calls<P> {
    fn default() -> Self {
        Calls {
            waiting: Mutex::new(HashMap::new()),
            late: AtomicU64::new(0),
        }
    }
}

impl<P> Calls<P> {
    /// Registers call `id`; false when the id is taken or the table is full.
    pub fn insert(&self, id: u64, waiter: Waiter<P>) -> bool {
        let mut waiting = self.waiting.lock();
        if waiting.len() >= MAX_WAITING || waiting.contains_key(&id) {
            return false;
        }
        waiting.insert(id, waiter);
        true
    }

    /// Ends call `id` if it still waits.
    pub fn take(&self, id: u64) -> Option<Waiter<P>> {
        self.waiting.lock().remove(&id)
    }

    /// Ends call `id` for the answer that arrived: `None` (counted late) when it no longer waits.
    pub fn take_answered(&self, id: u64) -> Option<P> {
        let taken = self.take(id).map(|w| w.pid);
        if taken.is_none() {
            self.late.fetch_add(1, Ordering::Relaxed);
        }
        taken
    }

    /// Ends every call waiting on `node`.
    pub fn take_node(&self, node: &str) -> Vec<Waiter<P>> {
        let mut waiting = self.waiting.lock();
        let ids: Vec<u64> = waiting
            .iter()
            .filter(|(_, w)| &*w.node == node)
            .map(|(&id, _)| id)
            .collect();
        ids.into_iter()
            .filter_map(|id| waiting.remove(&id))
            .collect()
    }

    /// How many calls wait.
    pub fn waiting(&self) -> u64 {
        self.waiting.lock().len() as u64
    }

    /// How many answers came after their call was over.
    pub fn late(&self) -> u64 {
        self.late.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiter(node: &str) -> Waiter<u32> {
        Waiter {
            pid: 7,
            node: node.into(),
            tag: vec![],
        }
    }

    #[test]
    fn a_call_is_taken_once() {
        let calls = Calls::<u32>::default();
        assert!(calls.insert(1, waiter("b@h")));
        assert!(!calls.insert(1, waiter("b@h")), "ids are unique");
        assert!(calls.take_answered(1).is_some());
        assert!(calls.take_answered(1).is_none(), "a second answer is late");
        assert!(
            calls.take(1).is_none(),
            "the caller's timeout finds it over"
        );
        assert_eq!(calls.late(), 1);
    }

    #[test]
    fn node_down_ends_only_that_nodes_calls() {
        let calls = Calls::<u32>::default();
        for id in 0..10 {
            assert!(calls.insert(id, waiter(if id % 2 == 0 { "b@h" } else { "c@h" })));
        }
        let ended = calls.take_node("b@h");
        assert_eq!(ended.len(), 5);
        assert!(ended.iter().all(|w| &*w.node == "b@h"));
        assert_eq!(calls.waiting(), 5);
        assert!(calls.take_answered(0).is_none());
        assert!(calls.take_answered(1).is_some());
    }
}
