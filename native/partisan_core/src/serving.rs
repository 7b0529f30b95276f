//! The calls that other nodes make to servers of this node (`partisan_gen_server` and
//! `partisan_gen_statem` calls), while the server has them.
//!
//! An I/O thread that reads a call hands it to the server itself, with the node's relay as
//! the `From` to reply to, so that no process sits between the request and the server. That is
//! only safe for a server the relay monitors (is *watching*): when it dies, the relay learns
//! its exit reason and ends, with that reason, every call the server still had. So a call is
//! begun here only while its server is watched, and the test and the registration are one
//! step under the table's lock: a call is either registered before the relay's `unwatch`
//! takes the server's calls, or sees the server unwatched and goes through the relay, which
//! watches it first. The reply ends the call (`end`); a call that was ended first (its
//! server died, its caller's node went down) has no reply to give and is dropped.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// Most calls the servers of this node may have at once: a bound on the table's memory (a
/// server that never replies keeps its calls until it dies or their node goes down).
pub const MAX_SERVED: usize = 1 << 20;

/// One call a server has; `P` is the server (the NIF's `LocalPid`).
pub struct Served<P> {
    /// The server.
    pub server: P,
    /// The node of the caller, who gets the answer.
    pub node: Box<str>,
    /// The external format of the call's key: the answer is addressed by it.
    pub key: Vec<u8>,
}

struct Table<P> {
    watched: HashSet<P>,
    calls: HashMap<u64, Served<P>>,
    next: u64,
}

/// The watched servers and their calls (one lock: each operation but the rare `unwatch` and
/// `forget_node` is a set test and a map insert or remove).
pub struct Serving<P> {
    table: Mutex<Table<P>>,
    /// Calls the engine handed to their server itself (not through the relay).
    handed: AtomicU64,
}

impl<P> Default for Serving<P> {
    fn default() -> Self {
        Serving {
            table: Mutex::new(Table {
                watched: HashSet::new(),
                calls: HashMap::new(),
                next: 1,
            }),
            handed: AtomicU64::new(0),
        }
    }
}

impl<P: Copy + Eq + Hash> Serving<P> {
    /// Marks `server` as watched (its monitor is in place); false when it was already.
    pub fn watch(&self, server: P) -> bool {
        self.table.lock().watched.insert(server)
    }

    /// Registers `call` if its server is watched and the table has room: its number, which
    /// the reply carries back to `end`.
    pub fn begin_watched(&self, call: Served<P>) -> Option<u64> {
        let mut table = self.table.lock();
        if !table.watched.contains(&call.server) || table.calls.len() >= MAX_SERVED {
            return None;
        }
        let id = table.next;
        table.next += 1;
        table.calls.insert(id, call);
        Some(id)
    }

    /// Ends call `id` for its reply: false when it was ended before.
    pub fn end(&self, id: u64) -> bool {
        self.table.lock().calls.remove(&id).is_some()
    }

    /// `server` died: it is no longer watched, and its calls end (returned, for their answer).
    pub fn unwatch(&self, server: P) -> Vec<Served<P>> {
        let mut table = self.table.lock();
        table.watched.remove(&server);
        take_where(&mut table.calls, |c| c.server == server)
    }

    /// The node `node` went down: its calls end without an answer (there is no one to get it).
    pub fn forget_node(&self, node: &str) -> usize {
        let mut table = self.table.lock();
        take_where(&mut table.calls, |c| &*c.node == node).len()
    }

    /// Forgets everything (the relay started anew and watches nothing): the calls that were
    /// under way, for their answer.
    pub fn reset(&self) -> Vec<Served<P>> {
        let mut table = self.table.lock();
        table.watched.clear();
        table.calls.drain().map(|(_, c)| c).collect()
    }

    /// Counts a call handed to its server by the engine.
    pub fn note_handed(&self) {
        self.handed.fetch_add(1, Ordering::Relaxed);
    }

    /// How many calls the engine handed to their server.
    pub fn handed(&self) -> u64 {
        self.handed.load(Ordering::Relaxed)
    }

    /// How many calls servers have, and how many servers are watched.
    pub fn sizes(&self) -> (u64, u64) {
        let table = self.table.lock();
        (table.calls.len() as u64, table.watched.len() as u64)
    }
}

fn take_where<P>(
    calls: &mut HashMap<u64, Served<P>>,
    keep: impl Fn(&Served<P>) -> bool,
) -> Vec<Served<P>> {
    let ids: Vec<u64> = calls
        .iter()
        .filter(|(_, c)| keep(c))
        .map(|(&id, _)| id)
        .collect();
    ids.into_iter().filter_map(|id| calls.remove(&id)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(server: u32, node: &str) -> Served<u32> {
        Served {
            server,
            node: node.into(),
            key: vec![server as u8],
        }
    }

    #[test]
    fn only_a_watched_server_is_given_calls() {
        let serving = Serving::<u32>::default();
        assert!(serving.begin_watched(call(1, "a@h")).is_none());
        assert!(serving.watch(1));
        assert!(!serving.watch(1), "watched once");
        let id = serving.begin_watched(call(1, "a@h")).expect("watched");
        assert!(serving.end(id));
        assert!(!serving.end(id), "a second reply finds the call over");
    }

    #[test]
    fn a_dead_server_ends_its_calls_and_takes_no_more() {
        let serving = Serving::<u32>::default();
        serving.watch(1);
        serving.watch(2);
        let ids: Vec<u64> = (0..6)
            .map(|i| serving.begin_watched(call(1 + i % 2, "a@h")).unwrap())
            .collect();
        let ended = serving.unwatch(1);
        assert_eq!(ended.len(), 3);
        assert!(ended.iter().all(|c| c.server == 1));
        assert!(
            serving.begin_watched(call(1, "a@h")).is_none(),
            "through the relay now"
        );
        assert!(!serving.end(ids[0]), "ended by the server's death");
        assert!(serving.end(ids[1]), "the other server's call goes on");
        assert_eq!(serving.sizes(), (2, 1));
    }

    #[test]
    fn a_node_down_forgets_only_its_calls() {
        let serving = Serving::<u32>::default();
        serving.watch(1);
        for i in 0..10 {
            serving.begin_watched(call(1, if i % 2 == 0 { "a@h" } else { "b@h" }));
        }
        assert_eq!(serving.forget_node("a@h"), 5);
        assert_eq!(serving.sizes(), (5, 1));
        assert_eq!(serving.reset().len(), 5);
        assert_eq!(serving.sizes(), (0, 0));
    }

    #[test]
    fn the_table_is_bounded() {
        let serving = Serving::<u32>::default();
        serving.watch(1);
        for _ in 0..MAX_SERVED {
            assert!(serving.begin_watched(call(1, "a@h")).is_some());
        }
        assert!(serving.begin_watched(call(1, "a@h")).is_none());
    }
}
