//! Plumtree, epidemic broadcast trees (Leitão, Pereira, Rodrigues, SRDS 2007), as a sans-IO
//! state machine. Each node splits its overlay neighbours, per broadcast root, into *eager*
//! peers, which get payloads at once, and *lazy* peers, which get only the ids (`IHave`) on the
//! next lazy tick. A duplicate payload prunes the link it came on to lazy; a missing payload
//! announced by a lazy peer is grafted back after a timeout, which repairs the tree. The eager
//! links of a root settle into a spanning tree, so a broadcast then costs about one payload per
//! node.
//!
//! Driven like the other cores: [`Input`]s with the time, [`Action`]s in order from
//! [`Plumtree::poll_action`], [`Plumtree::handle_timeout`] when [`Plumtree::poll_timeout`] says.
//! Neighbours come from the overlay (`NeighborUp` / `NeighborDown`, from HyParView's `Up` and
//! `Down` or the full mesh). Received ids are kept in a bounded cache; payloads of recent ones
//! too, to answer grafts.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt::Debug;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Plumtree settings (Partisan's `lazy_tick_period` and the size of the id cache).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Period of the lazy queue flush (`lazy_tick_period`, 1 s).
    pub lazy_tick: Duration,
    /// How long a node waits for a payload announced by a lazy peer before it grafts it.
    pub graft_timeout: Duration,
    /// Message ids remembered (and payloads kept for grafts).
    pub cache: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            lazy_tick: Duration::from_secs(1),
            graft_timeout: Duration::from_millis(500),
            cache: 10_000,
        }
    }
}

/// A message between two nodes; `R` names a broadcast root, `I` a message, `D` its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<R, I, D> {
    /// A payload, `round` hops from its root.
    Gossip {
        /// The node that broadcast it.
        root: R,
        /// Its id.
        id: I,
        /// Its payload.
        data: D,
        /// Hops from the root.
        round: u32,
    },
    /// Ids the sender has, sent to lazy peers on the lazy tick.
    IHave {
        /// The root of these ids.
        root: R,
        /// The ids.
        ids: Vec<I>,
    },
    /// "Send me this payload, and be eager for this root again."
    Graft {
        /// The root.
        root: R,
        /// The id wanted.
        id: I,
    },
    /// "I had it already: be lazy for this root."
    Prune {
        /// The root.
        root: R,
    },
}

/// Events fed to [`Plumtree::handle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input<P, I, D> {
    /// Broadcast a new message from this node.
    Broadcast(I, D),
    /// A message from a neighbour.
    Received(P, Message<P, I, D>),
    /// The overlay gained a neighbour.
    NeighborUp(P),
    /// The overlay lost a neighbour.
    NeighborDown(P),
}

/// What the state machine asks of its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action<P, I, D> {
    /// Send a message to a neighbour.
    Send(P, Message<P, I, D>),
    /// A message arrived for the first time: hand it to the application.
    Deliver {
        /// The node that broadcast it.
        root: P,
        /// Its id.
        id: I,
        /// Its payload.
        data: D,
    },
}

#[derive(Debug, Default)]
struct Tree<P> {
    eager: BTreeSet<P>,
    lazy: BTreeSet<P>,
}

/// A payload announced by lazy peers and not yet received.
#[derive(Debug)]
struct Missing<P> {
    root: P,
    announcers: VecDeque<P>,
    due: Instant,
}

/// One node's Plumtree state.
#[derive(Debug)]
pub struct Plumtree<P, I, D> {
    me: P,
    cfg: Config,
    neighbours: BTreeSet<P>,
    trees: BTreeMap<P, Tree<P>>,
    /// Received ids in arrival order (for eviction) and their payloads.
    seen: HashMap<I, D>,
    order: VecDeque<I>,
    missing: HashMap<I, Missing<P>>,
    /// `IHave`s to send on the next lazy tick, per peer and root.
    lazy_queue: BTreeMap<(P, P), Vec<I>>,
    next_tick: Instant,
    actions: VecDeque<Action<P, I, D>>,
}

impl<P, I, D> Plumtree<P, I, D>
where
    P: Clone + Ord + Debug,
    I: Clone + Eq + Hash + Debug,
    D: Clone + Debug,
{
    /// A node with no neighbours, at `now`.
    pub fn new(me: P, cfg: Config, now: Instant) -> Self {
        Plumtree {
            me,
            next_tick: now + cfg.lazy_tick,
            cfg,
            neighbours: BTreeSet::new(),
            trees: BTreeMap::new(),
            seen: HashMap::new(),
            order: VecDeque::new(),
            missing: HashMap::new(),
            lazy_queue: BTreeMap::new(),
            actions: VecDeque::new(),
        }
    }

    /// The eager peers of `root`'s tree (all neighbours for a root not seen yet).
    pub fn eager(&self, root: &P) -> BTreeSet<P> {
        match self.trees.get(root) {
            Some(t) => t.eager.clone(),
            None => self.neighbours.clone(),
        }
    }

    /// The lazy peers of `root`'s tree (none for a root not seen yet).
    pub fn lazy(&self, root: &P) -> BTreeSet<P> {
        self.trees
            .get(root)
            .map(|t| t.lazy.clone())
            .unwrap_or_default()
    }

    /// Whether the message was received (or broadcast) here and is still remembered.
    pub fn has(&self, id: &I) -> bool {
        self.seen.contains_key(id)
    }

    /// The next action to carry out; call until `None` after every `handle*` call.
    pub fn poll_action(&mut self) -> Option<Action<P, I, D>> {
        self.actions.pop_front()
    }

    /// When [`Plumtree::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let graft = self.missing.values().map(|m| m.due).min();
        Some(graft.map_or(self.next_tick, |g| g.min(self.next_tick)))
    }

    /// Flushes the lazy queue on the tick and grafts what is overdue.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now >= self.next_tick {
            self.next_tick = now + self.cfg.lazy_tick;
            for ((to, root), ids) in std::mem::take(&mut self.lazy_queue) {
                self.actions
                    .push_back(Action::Send(to, Message::IHave { root, ids }));
            }
        }
        let due: Vec<I> = self
            .missing
            .iter()
            .filter(|(_, m)| m.due <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            let Some(m) = self.missing.get_mut(&id) else {
                continue;
            };
            let Some(from) = m.announcers.pop_front() else {
                self.missing.remove(&id);
                continue;
            };
            m.due = now + self.cfg.graft_timeout;
            let root = m.root.clone();
            if m.announcers.is_empty() {
                self.missing.remove(&id);
            }
            self.make_eager(&root, &from);
            self.send(from, Message::Graft { root, id });
        }
    }

    /// Feeds one event.
    pub fn handle(&mut self, input: Input<P, I, D>, now: Instant) {
        match input {
            Input::Broadcast(id, data) => {
                let root = self.me.clone();
                self.remember(id.clone(), data.clone());
                self.actions.push_back(Action::Deliver {
                    root: root.clone(),
                    id: id.clone(),
                    data: data.clone(),
                });
                self.spread(&root, &id, &data, 0, None);
            }
            Input::Received(from, msg) => self.received(from, msg, now),
            Input::NeighborUp(p) => {
                if p != self.me && self.neighbours.insert(p.clone()) {
                    for t in self.trees.values_mut() {
                        t.lazy.remove(&p);
                        t.eager.insert(p.clone());
                    }
                }
            }
            Input::NeighborDown(p) => {
                self.neighbours.remove(&p);
                for t in self.trees.values_mut() {
                    t.eager.remove(&p);
                    t.lazy.remove(&p);
                }
                self.lazy_queue.retain(|(to, _), _| *to != p);
                for m in self.missing.values_mut() {
                    m.announcers.retain(|a| *a != p);
                }
            }
        }
    }

    fn received(&mut self, from: P, msg: Message<P, I, D>, now: Instant) {
        match msg {
            Message::Gossip {
                root,
                id,
                data,
                round,
            } => {
                if self.seen.contains_key(&id) {
                    // A second copy: the link it came on is not needed for this root.
                    self.make_lazy(&root, &from);
                    self.send(from, Message::Prune { root });
                    return;
                }
                self.missing.remove(&id);
                self.remember(id.clone(), data.clone());
                self.actions.push_back(Action::Deliver {
                    root: root.clone(),
                    id: id.clone(),
                    data: data.clone(),
                });
                self.make_eager(&root, &from);
                // A peer's round is any u32: at the top it stays there.
                self.spread(&root, &id, &data, round.saturating_add(1), Some(&from));
            }
            Message::IHave { root, ids } => {
                let due = now + self.cfg.graft_timeout;
                for id in ids {
                    if self.seen.contains_key(&id) {
                        continue;
                    }
                    let m = self.missing.entry(id).or_insert_with(|| Missing {
                        root: root.clone(),
                        announcers: VecDeque::new(),
                        due,
                    });
                    if !m.announcers.contains(&from) {
                        m.announcers.push_back(from.clone());
                    }
                }
            }
            Message::Graft { root, id } => {
                self.make_eager(&root, &from);
                if let Some(data) = self.seen.get(&id).cloned() {
                    self.send(
                        from,
                        Message::Gossip {
                            root,
                            id,
                            data,
                            round: 0,
                        },
                    );
                }
            }
            Message::Prune { root } => self.make_lazy(&root, &from),
        }
    }

    /// Sends the payload to the root's eager peers and queues its id for the lazy ones,
    /// except `from`.
    fn spread(&mut self, root: &P, id: &I, data: &D, round: u32, from: Option<&P>) {
        self.tree(root);
        let Some(t) = self.trees.get(root) else {
            return;
        };
        let eager: Vec<P> = t
            .eager
            .iter()
            .filter(|p| Some(*p) != from)
            .cloned()
            .collect();
        let lazy: Vec<P> = t
            .lazy
            .iter()
            .filter(|p| Some(*p) != from)
            .cloned()
            .collect();
        for p in eager {
            self.send(
                p,
                Message::Gossip {
                    root: root.clone(),
                    id: id.clone(),
                    data: data.clone(),
                    round,
                },
            );
        }
        for p in lazy {
            self.lazy_queue
                .entry((p, root.clone()))
                .or_default()
                .push(id.clone());
        }
    }

    /// The tree of `root`, created with every neighbour eager.
    fn tree(&mut self, root: &P) -> &mut Tree<P> {
        let neighbours = &self.neighbours;
        self.trees.entry(root.clone()).or_insert_with(|| Tree {
            eager: neighbours.clone(),
            lazy: BTreeSet::new(),
        })
    }

    fn make_eager(&mut self, root: &P, p: &P) {
        if !self.neighbours.contains(p) {
            return;
        }
        let t = self.tree(root);
        t.lazy.remove(p);
        t.eager.insert(p.clone());
    }

    fn make_lazy(&mut self, root: &P, p: &P) {
        if !self.neighbours.contains(p) {
            return;
        }
        let t = self.tree(root);
        t.eager.remove(p);
        t.lazy.insert(p.clone());
    }

    fn remember(&mut self, id: I, data: D) {
        if self.seen.insert(id.clone(), data).is_none() {
            self.order.push_back(id);
            if self.order.len() > self.cfg.cache {
                if let Some(old) = self.order.pop_front() {
                    self.seen.remove(&old);
                }
            }
        }
    }

    fn send(&mut self, to: P, msg: Message<P, I, D>) {
        self.actions.push_back(Action::Send(to, msg));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gossip_at_the_last_round_is_passed_on_at_that_round() {
        // Found by the broadcast fuzz target: round + 1 overflowed for a peer's u32::MAX.
        let now = Instant::now();
        let mut t: Plumtree<u32, u64, ()> = Plumtree::new(1, Config::default(), now);
        for n in [2, 3] {
            t.handle(Input::NeighborUp(n), now);
        }
        let gossip = Message::Gossip {
            root: 9,
            id: 7,
            data: (),
            round: u32::MAX,
        };
        t.handle(Input::Received(2, gossip), now);
        let mut passed_on = Vec::new();
        while let Some(a) = t.poll_action() {
            if let Action::Send(to, Message::Gossip { round, .. }) = a {
                passed_on.push((to, round));
            }
        }
        assert_eq!(passed_on, vec![(3, u32::MAX)]);
    }
}
