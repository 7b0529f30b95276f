//! Full-mesh membership: a state-based CRDT mapping node name to its latest known entry.
//!
//! Each entry is `(incarnation, alive, spec)`. Merging keeps, per name, the greatest entry in the
//! order `(incarnation, removed, spec)`: a node's new life (higher incarnation, chosen when it
//! starts or rejoins) beats anything said about an older one, and at equal incarnation a removal
//! beats an add, so gossip that is merely stale can never bring a removed node back. The merge is a
//! pointwise maximum, hence commutative, associative and idempotent (tested in `tests/`).

mod spec;

pub use spec::{ChannelSpec, Compression, NodeSpec};

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use crate::wire::{Reader, WireError, Writer};

/// What is known about one node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Entry {
    /// The life of the node this entry describes: a larger incarnation is a later life (a
    /// restart or a rejoin) and beats any entry about an earlier one.
    pub incarnation: u64,
    /// True for a tombstone: the node was removed from the cluster at this incarnation.
    pub removed: bool,
    /// The node's name, listen addresses and channels, as it announced them.
    pub spec: NodeSpec,
}

/// Most entries a gossip message may carry; far above any full-mesh cluster.
pub const MAX_ENTRIES: usize = 100_000;

/// The membership CRDT.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    entries: BTreeMap<String, Kept>,
    /// The XOR of the entries' hashes, kept up to date: two replicas with the same entries have
    /// the same digest, so most gossip (which repeats what is known) is recognised in O(1).
    /// Local only; never on the wire.
    digest: u64,
}

/// An entry with its hash, so that merges compare hashes before deep entries.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Kept {
    entry: Entry,
    hash: u64,
}

fn entry_hash(e: &Entry) -> u64 {
    let mut h = DefaultHasher::new();
    e.hash(&mut h);
    h.finish()
}

impl State {
    /// An empty membership, with no entries.
    pub fn new() -> Self {
        State::default()
    }

    /// Records `entry` if it is newer than what is known; returns whether anything changed.
    pub fn apply(&mut self, entry: Entry) -> bool {
        match self.entries.get(&entry.spec.name) {
            Some(cur) if cur.entry >= entry => false,
            _ => {
                let hash = entry_hash(&entry);
                self.insert(Kept { entry, hash });
                true
            }
        }
    }

    fn insert(&mut self, kept: Kept) {
        self.digest ^= kept.hash;
        if let Some(old) = self.entries.insert(kept.entry.spec.name.clone(), kept) {
            self.digest ^= old.hash;
        }
    }

    /// Merges another replica's state into this one; returns whether anything changed.
    pub fn merge(&mut self, other: &State) -> bool {
        !self.merge_delta(other).is_empty()
    }

    /// Merges another replica's state (or a part of one) into this one and returns the entries
    /// that changed here: the news worth passing on. Both maps are walked in name order side by
    /// side, and entries are cloned only when newer; equal replicas are recognised by digest.
    pub fn merge_delta(&mut self, other: &State) -> State {
        let mut delta = State::new();
        if self.digest == other.digest && self.entries.len() == other.entries.len() {
            return delta;
        }
        {
            let mut mine = self.entries.iter().peekable();
            for (name, e) in &other.entries {
                while mine.next_if(|(n, _)| *n < name).is_some() {}
                let newer = match mine.peek() {
                    // Equal hashes mean equal entries (as equal digests mean equal states).
                    Some((n, cur)) if *n == name => cur.hash != e.hash && cur.entry < e.entry,
                    _ => true,
                };
                if newer {
                    delta.insert(e.clone());
                }
            }
        }
        for e in delta.entries.values() {
            self.insert(e.clone());
        }
        delta
    }

    /// Adds (or re-adds) a node at the given incarnation.
    pub fn add(&mut self, spec: NodeSpec, incarnation: u64) -> bool {
        self.apply(Entry {
            incarnation,
            removed: false,
            spec,
        })
    }

    /// Removes a node at its current incarnation; returns whether it was a live member.
    pub fn remove(&mut self, name: &str) -> bool {
        match self.entries.get(name) {
            Some(e) if !e.entry.removed => {
                let tomb = Entry {
                    removed: true,
                    ..e.entry.clone()
                };
                self.apply(tomb)
            }
            _ => false,
        }
    }

    /// Drops a node's entry without a tombstone; whether there was one. For memberships that
    /// are a local view rather than a replicated set (HyParView's active view).
    pub fn forget(&mut self, name: &str) -> bool {
        match self.entries.remove(name) {
            Some(old) => {
                self.digest ^= old.hash;
                true
            }
            None => false,
        }
    }

    /// The entry for `name`, removed or not, if one is known.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.get(name).map(|k| &k.entry)
    }

    /// Every entry, removed ones included, sorted by name.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values().map(|k| &k.entry)
    }

    /// Live members, sorted by name.
    pub fn members(&self) -> impl Iterator<Item = &Entry> {
        self.entries().filter(|e| !e.removed)
    }

    /// Whether `name` is a live member: known and not removed.
    pub fn is_member(&self, name: &str) -> bool {
        self.get(name).is_some_and(|e| !e.removed)
    }

    /// True when `name` was removed at `incarnation` or later: such a node may not reconnect.
    pub fn is_removed(&self, name: &str, incarnation: u64) -> bool {
        self.get(name)
            .is_some_and(|e| e.removed && e.incarnation >= incarnation)
    }

    /// The number of entries, removed ones included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no entry is known, not even a removed one.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The state as a Gossip frame body: a u32 count, then per entry its incarnation, removed
    /// flag and node spec, in name order.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u32(self.entries.len() as u32);
        for e in self.entries() {
            w.u64(e.incarnation).u8(e.removed as u8);
            e.spec.encode(&mut w);
        }
        w.buf
    }

    /// Parses a Gossip frame body written by [`State::encode`]; more than [`MAX_ENTRIES`]
    /// entries, a bad flag or trailing bytes are an error.
    pub fn decode(body: &[u8]) -> Result<State, WireError> {
        let mut r = Reader::new(body);
        let n = r.u32()? as usize;
        if n > MAX_ENTRIES {
            return Err(WireError::Invalid("membership size"));
        }
        let mut state = State::new();
        for _ in 0..n {
            let incarnation = r.u64()?;
            let removed = match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(WireError::Invalid("removed flag")),
            };
            let spec = NodeSpec::decode(&mut r)?;
            state.apply(Entry {
                incarnation,
                removed,
                spec,
            });
        }
        r.finish()?;
        Ok(state)
    }
}
