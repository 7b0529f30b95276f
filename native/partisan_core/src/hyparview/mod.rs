//! HyParView (Leitão, Pereira, Rodrigues, DSN 2007) as a sans-IO state machine: a small
//! *active* view of neighbours, kept symmetric, that carries traffic, and a larger *passive*
//! view of known nodes, refreshed by shuffles, from which the active view is repaired when a
//! neighbour fails.
//!
//! The driver feeds [`Input`]s with the current time, carries out the [`Action`]s from
//! [`HyParView::poll_action`] in order, and calls [`HyParView::handle_timeout`] when
//! [`HyParView::poll_timeout`] says. Peers are any ordered, hashable identity (node names for the
//! transport, numbers in the simulator). Randomness comes from a seeded generator.
//!
//! Departures from the paper, each for a reason:
//! - A node sends `Join` only once its contact accepted it as a neighbour (the joiner adds the
//!   contact at once, so both views agree from the first message).
//! - A `ForwardJoin` that ends at a node makes that node ask the joiner with a high-priority
//!   `Neighbor` request, which is always accepted and always answered, so that the two views
//!   agree (Partisan 5 adds the joiner without telling it).
//! - A `Neighbor` request is high priority (cannot be refused) while the requester has fewer
//!   than `active_min` neighbours, not only when it has none: in an overlay where everyone else
//!   is full, a node with one or two neighbours would otherwise stay so, and small islands
//!   would never merge.
//! - Every `Neighbor` request is answered (Partisan issue #13: unanswered requests leave views
//!   asymmetric), and at most one is outstanding at a time.
//! - `Leave` tells every neighbour, which drop the node from both views.
//!
//! Reserved slots (Partisan's `tag` and `reservations`): a node may keep active-view slots for
//! one neighbour of each of some tags. An open slot counts as taken for everyone else, a node
//! with that tag is always accepted into it, and a neighbour holding a slot is never the one
//! dropped to make room. Unlike Partisan 5, a slot opens again when its neighbour goes, filling
//! a slot drops nobody (the slot was already counted), and a node with an open slot asks a
//! passive node it knows to have the tag (at each promotion tick, a request it may refuse).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::seq::IteratorRandom;
use rand::{Rng, SeedableRng};

/// Partisan's `hyparview` configuration (its defaults in [`Config::default`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Most neighbours (`active_max_size`, 6).
    pub active_max: usize,
    /// Fewest neighbours before the node looks for more (`active_min_size`, 3).
    pub active_min: usize,
    /// Active random walk length of `ForwardJoin` and `Shuffle` (`active_rwl`, 6).
    pub active_rwl: u32,
    /// Most passive peers (`passive_max_size`, 30).
    pub passive_max: usize,
    /// Walk step at which a `ForwardJoin` also lands in the passive view (`passive_rwl`, 6).
    pub passive_rwl: u32,
    /// Neighbours sent in a shuffle (`shuffle_k_active`, 3).
    pub shuffle_k_active: usize,
    /// Passive peers sent in a shuffle (`shuffle_k_passive`, 4).
    pub shuffle_k_passive: usize,
    /// Period of shuffles (`shuffle_interval`, 10 s).
    pub shuffle_interval: Duration,
    /// Whether passive peers are promoted while the active view is not full
    /// (`random_promotion`, true).
    pub random_promotion: bool,
    /// Period of random promotion (`random_promotion_interval`, 5 s).
    pub random_promotion_interval: Duration,
    /// Seed of the node's random choices.
    pub seed: u64,
    /// This node's tag, sent with every request to be a neighbour (`tag`, none).
    pub tag: Option<Tag>,
    /// Tags that get a reserved slot each (`reservations`, none; at most `active_max`).
    pub reservations: Vec<Tag>,
}

/// A node's tag: the name of a reserved slot it may fill.
pub type Tag = Arc<str>;

/// [`HyParView::reserve`] found every slot reserved already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoAvailableSlots;

impl Default for Config {
    fn default() -> Self {
        Config {
            active_max: 6,
            active_min: 3,
            active_rwl: 6,
            passive_max: 30,
            passive_rwl: 6,
            shuffle_k_active: 3,
            shuffle_k_passive: 4,
            shuffle_interval: Duration::from_secs(10),
            random_promotion: true,
            random_promotion_interval: Duration::from_secs(5),
            seed: 0,
            tag: None,
            reservations: Vec::new(),
        }
    }
}

/// A message between two nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<P> {
    /// "I joined through you": the contact makes the sender a neighbour and walks the news.
    Join {
        /// The sender's tag.
        tag: Option<Tag>,
    },
    /// `joiner` joined somewhere; the walk has `ttl` steps left.
    ForwardJoin {
        /// The node that joined.
        joiner: P,
        /// The joiner's tag.
        tag: Option<Tag>,
        /// Steps left.
        ttl: u32,
    },
    /// "Be my neighbour"; a high-priority request is always accepted.
    Neighbor {
        /// Whether the sender is short of neighbours (or is answering a join).
        high: bool,
        /// The sender's tag.
        tag: Option<Tag>,
    },
    /// A tagged contact's answer to a `Join`: its tag, for the joiner's reserved slots.
    JoinReply {
        /// The sender's tag.
        tag: Tag,
    },
    /// The answer to a `Neighbor` request.
    NeighborReply {
        /// Whether the sender made the requester a neighbour.
        accepted: bool,
        /// The sender's tag.
        tag: Option<Tag>,
    },
    /// "You are no longer my neighbour"; `alive` is false when the sender leaves.
    Disconnect {
        /// Whether the sender stays in the cluster (then it goes to the passive view).
        alive: bool,
    },
    /// A sample of `origin`'s views on a random walk with `ttl` steps left.
    Shuffle {
        /// The node that started the shuffle, which gets the reply.
        origin: P,
        /// Steps left.
        ttl: u32,
        /// The sample: the origin, some neighbours and some passive peers.
        nodes: Vec<P>,
    },
    /// A sample of the passive view of the node where a shuffle ended.
    ShuffleReply {
        /// The sample.
        nodes: Vec<P>,
    },
}

/// Events fed to [`HyParView::handle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input<P> {
    /// Join the overlay through `contact`.
    Join(P),
    /// A message from a peer.
    Received(P, Message<P>),
    /// The transport lost the peer (its connection failed, or a send to it did).
    PeerDown(P),
    /// Leave the overlay: neighbours are told, the views emptied.
    Leave,
}

/// What the state machine asks of its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action<P> {
    /// Send a message (connecting first if need be; a failure comes back as `PeerDown`).
    Send(P, Message<P>),
    /// The peer became a neighbour.
    Up(P),
    /// The peer is no longer a neighbour.
    Down(P),
}

/// One of our unanswered `Neighbor` requests.
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// We dropped the peer since we sent it.
    stale: bool,
    /// It was high priority.
    high: bool,
}

/// One node's HyParView state.
#[derive(Debug)]
pub struct HyParView<P> {
    me: P,
    cfg: Config,
    rng: SmallRng,
    active: BTreeSet<P>,
    passive: BTreeSet<P>,
    /// The tags known of the nodes in either view (told by their messages), so that a
    /// passive node can be asked to fill an open slot.
    tags: BTreeMap<P, Tag>,
    /// The reserved slots and who holds each (`None`: open).
    reserved: BTreeMap<Tag, Option<P>>,
    /// The passive peer asked to be a neighbour, if a request is outstanding.
    asking: Option<P>,
    /// Set on a promotion tick that finds a request outstanding; a request still outstanding
    /// at the next tick is given up (its answer was lost), so that repair never stops.
    asking_stale: bool,
    /// Our unanswered `Neighbor` requests per peer, oldest first, each marked stale once we
    /// dropped the peer after sending it: the peer answers it before it sees our `Disconnect`,
    /// so an `accepted` answer to a stale request must not make it a neighbour again.
    requests: BTreeMap<P, VecDeque<Pending>>,
    /// What the last shuffle sent, preferred for eviction when its reply arrives.
    sent_sample: Vec<P>,
    next_shuffle: Instant,
    next_promotion: Instant,
    actions: VecDeque<Action<P>>,
    left: bool,
}

impl<P: Clone + Ord + Debug> HyParView<P> {
    /// A node alone, at `now`.
    pub fn new(me: P, cfg: Config, now: Instant) -> HyParView<P> {
        let mut rng = SmallRng::seed_from_u64(cfg.seed);
        // Spread the periodic work of many nodes that start together.
        let spread = |rng: &mut SmallRng, d: Duration| {
            let ms = d.as_millis().max(1) as u64;
            Duration::from_millis(rng.gen_range(0..ms))
        };
        let next_shuffle = now + cfg.shuffle_interval + spread(&mut rng, cfg.shuffle_interval);
        let next_promotion =
            now + cfg.random_promotion_interval + spread(&mut rng, cfg.random_promotion_interval);
        let reserved = cfg.reservations.iter().map(|t| (t.clone(), None)).collect();
        HyParView {
            me,
            cfg,
            rng,
            reserved,
            active: BTreeSet::new(),
            passive: BTreeSet::new(),
            tags: BTreeMap::new(),
            asking: None,
            asking_stale: false,
            requests: BTreeMap::new(),
            sent_sample: Vec::new(),
            next_shuffle,
            next_promotion,
            actions: VecDeque::new(),
            left: false,
        }
    }

    /// Whether the node is short of neighbours with nobody left to ask: the driver then joins
    /// again through a contact it knows (an island that lost its way into the overlay).
    pub fn is_stranded(&self) -> bool {
        !self.left && self.active.len() < self.cfg.active_min && self.passive.is_empty()
    }

    /// This node.
    pub fn me(&self) -> &P {
        &self.me
    }

    /// The neighbours.
    pub fn active(&self) -> &BTreeSet<P> {
        &self.active
    }

    /// The passive view.
    pub fn passive(&self) -> &BTreeSet<P> {
        &self.passive
    }

    /// Reserves a slot for a neighbour tagged `tag`, filled at once if a neighbour has that tag
    /// (Partisan's `reserve/1`); reserving a tag twice is one reservation.
    pub fn reserve(&mut self, tag: Tag) -> Result<(), NoAvailableSlots> {
        if self.reserved.contains_key(&tag) {
            return Ok(());
        }
        if self.reserved.len() >= self.cfg.active_max {
            return Err(NoAvailableSlots);
        }
        let holder = self.holder_among_active(&tag);
        self.reserved.insert(tag, holder);
        Ok(())
    }

    /// The slot reserved for `tag`: `Some(None)` while it is open, `None` if there is none.
    pub fn reserved(&self, tag: &str) -> Option<Option<&P>> {
        self.reserved.get(tag).map(Option::as_ref)
    }

    /// The next action to carry out; call until `None` after every `handle*` call.
    pub fn poll_action(&mut self) -> Option<Action<P>> {
        self.actions.pop_front()
    }

    /// When [`HyParView::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.left).then(|| self.next_shuffle.min(self.next_promotion))
    }

    /// Runs the periodic work due at `now`: shuffles and random promotion.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.left {
            return;
        }
        if now >= self.next_shuffle {
            self.next_shuffle = now + self.cfg.shuffle_interval;
            self.shuffle();
        }
        if now >= self.next_promotion {
            self.next_promotion = now + self.cfg.random_promotion_interval;
            if self.asking.is_some() {
                if self.asking_stale {
                    self.asking = None;
                }
                self.asking_stale = !self.asking_stale;
            }
            if self.active.len() < self.cfg.active_min {
                self.repair();
            } else if !self.seek_slot_holder() && self.cfg.random_promotion && !self.is_full() {
                self.promote();
            }
        }
        self.prune_tags();
    }

    /// Feeds one event.
    pub fn handle(&mut self, input: Input<P>, _now: Instant) {
        self.handle_input(input);
        self.prune_tags();
    }

    fn handle_input(&mut self, input: Input<P>) {
        match input {
            Input::Join(contact) => {
                if contact != self.me {
                    self.left = false;
                    // (Its tag, if it has one, comes with its `JoinReply`.)
                    if self.add_active(contact.clone(), None) {
                        let tag = self.cfg.tag.clone();
                        self.send(contact, Message::Join { tag });
                    } else {
                        // Every slot is reserved and held: the contact is asked later (a
                        // request, which settles both views), if its tag fits.
                        self.add_passive(contact);
                    }
                }
            }
            Input::Received(from, msg) if !self.left => self.received(from, msg),
            Input::Received(from, Message::Neighbor { .. }) => {
                let tag = self.cfg.tag.clone();
                self.send(
                    from,
                    Message::NeighborReply {
                        accepted: false,
                        tag,
                    },
                )
            }
            Input::Received(..) => {}
            Input::PeerDown(peer) => {
                self.passive.remove(&peer);
                self.requests.remove(&peer);
                if self.asking.as_ref() == Some(&peer) {
                    self.asking = None;
                }
                if self.remove_active(&peer) {
                    self.actions.push_back(Action::Down(peer));
                }
                self.repair();
            }
            Input::Leave => {
                for p in std::mem::take(&mut self.active) {
                    self.send(p.clone(), Message::Disconnect { alive: false });
                    self.actions.push_back(Action::Down(p));
                }
                self.tags.clear();
                self.reserved.values_mut().for_each(|holder| *holder = None);
                self.passive.clear();
                self.asking = None;
                self.left = true;
            }
        }
    }

    fn received(&mut self, from: P, msg: Message<P>) {
        match msg {
            Message::Join { tag } => {
                if !self.add_active(from.clone(), tag.clone()) {
                    // Every slot is reserved and held: it is told, and stays known.
                    self.send(from.clone(), Message::Disconnect { alive: true });
                    self.add_passive(from);
                    return;
                }
                if let Some(mine) = self.cfg.tag.clone() {
                    self.send(from.clone(), Message::JoinReply { tag: mine });
                }
                let walk = Message::ForwardJoin {
                    joiner: from.clone(),
                    tag,
                    ttl: self.cfg.active_rwl,
                };
                let others: Vec<P> = self
                    .active
                    .iter()
                    .filter(|p| **p != from)
                    .cloned()
                    .collect();
                for p in others {
                    self.send(p, walk.clone());
                }
            }
            Message::ForwardJoin { joiner, tag, ttl } => {
                if joiner == self.me {
                    return;
                }
                let next = self.random_active_except(&[&from, &joiner]);
                if ttl == 0 || next.is_none() {
                    if !self.active.contains(&joiner) {
                        if self.add_active(joiner.clone(), tag.clone()) {
                            self.ask(joiner, true);
                        } else {
                            self.add_passive(joiner.clone());
                            self.note_tag(&joiner, tag);
                        }
                    }
                    return;
                }
                if ttl == self.cfg.passive_rwl {
                    self.add_passive(joiner.clone());
                    self.note_tag(&joiner, tag.clone());
                }
                if let Some(next) = next {
                    self.send(
                        next,
                        Message::ForwardJoin {
                            joiner,
                            tag,
                            ttl: ttl - 1,
                        },
                    );
                }
            }
            Message::JoinReply { tag } => {
                if self.active.contains(&from) {
                    self.learn_tag(from, Some(tag));
                }
            }
            Message::Neighbor { high, tag } => {
                let welcome = high
                    || self.active.contains(&from)
                    || self.slot_open(tag.as_ref())
                    || !self.is_full();
                let accepted = welcome && self.add_active(from.clone(), tag.clone());
                if !accepted {
                    self.note_tag(&from, tag);
                }
                let tag = self.cfg.tag.clone();
                self.send(from, Message::NeighborReply { accepted, tag });
            }
            Message::NeighborReply { accepted, tag } => {
                if self.asking.as_ref() == Some(&from) {
                    self.asking = None;
                }
                let Pending { stale, high } = self.answered(&from);
                if accepted && !stale {
                    if !self.add_active(from.clone(), tag) {
                        // Our slots filled up meanwhile: it holds us, we cannot hold it.
                        self.send(from.clone(), Message::Disconnect { alive: true });
                        self.add_passive(from);
                    }
                } else if !accepted {
                    // It does not hold us (it would have accepted if it did): nor do we it.
                    if self.remove_active(&from) {
                        self.actions.push_back(Action::Down(from.clone()));
                        self.add_passive(from.clone());
                    }
                    self.note_tag(&from, tag);
                    // A refused high-priority request (the peer is full of slot holders) is
                    // not repeated at once: the promotion tick tries again.
                    if !high {
                        self.repair();
                    }
                }
            }
            Message::Disconnect { alive } => {
                if self.remove_active(&from) {
                    self.actions.push_back(Action::Down(from.clone()));
                }
                if alive {
                    self.add_passive(from);
                } else {
                    self.passive.remove(&from);
                }
                self.repair();
            }
            Message::Shuffle { origin, ttl, nodes } => {
                if origin == self.me {
                    return;
                }
                let next = self.random_active_except(&[&from, &origin]);
                match next {
                    Some(next) if ttl > 0 => {
                        self.send(
                            next,
                            Message::Shuffle {
                                origin,
                                ttl: ttl - 1,
                                nodes,
                            },
                        );
                    }
                    _ => {
                        let reply: Vec<P> = self
                            .passive
                            .iter()
                            .filter(|p| **p != origin)
                            .cloned()
                            .choose_multiple(&mut self.rng, nodes.len());
                        self.send(
                            origin,
                            Message::ShuffleReply {
                                nodes: reply.clone(),
                            },
                        );
                        self.integrate(nodes, &reply);
                    }
                }
            }
            Message::ShuffleReply { nodes } => {
                let sent = std::mem::take(&mut self.sent_sample);
                self.integrate(nodes, &sent);
            }
        }
    }

    /// Adds `p` (tagged `tag`) to the active view: into its tag's open slot if there is one,
    /// else dropping a random neighbour that holds no slot (to the passive view, told) if the
    /// view is full. False, and nothing changes, when the view is full of slot holders.
    fn add_active(&mut self, p: P, tag: Option<Tag>) -> bool {
        if p == self.me {
            return false;
        }
        // (A node met before may come without its tag: a contact we join.)
        let tag = tag.or_else(|| self.tags.get(&p).cloned());
        if self.active.contains(&p) {
            self.learn_tag(p, tag);
            return true;
        }
        let fills_slot = self.slot_open(tag.as_ref());
        // (A slot reserved while the view was full was never counted: filling it must still
        // make room.)
        if (!fills_slot && self.is_full()) || self.active.len() >= self.cfg.active_max {
            let droppable: Vec<P> = self
                .active
                .iter()
                .filter(|a| !self.holds_slot(a))
                .cloned()
                .collect();
            let droppable = droppable.into_iter().choose(&mut self.rng);
            let Some(d) = droppable else {
                return false;
            };
            self.remove_active(&d);
            if let Some(pending) = self.requests.get_mut(&d) {
                pending.iter_mut().for_each(|r| r.stale = true);
            }
            self.send(d.clone(), Message::Disconnect { alive: true });
            self.actions.push_back(Action::Down(d.clone()));
            self.add_passive(d);
        }
        self.passive.remove(&p);
        self.active.insert(p.clone());
        self.learn_tag(p.clone(), tag);
        self.actions.push_back(Action::Up(p));
        true
    }

    /// Records a neighbour's tag; it takes its tag's slot if that is open.
    fn learn_tag(&mut self, p: P, tag: Option<Tag>) {
        let Some(tag) = tag else {
            return;
        };
        if let Some(old) = self.tags.insert(p.clone(), tag.clone()) {
            // (A node that came back with another tag gives up the slot of the old one.)
            if old != tag && self.reserved.get(&old) == Some(&Some(p.clone())) {
                let next = self.holder_among_active(&old);
                self.reserved.insert(old, next);
            }
        }
        if let Some(slot @ None) = self.reserved.get_mut(&tag) {
            *slot = Some(p);
        }
    }

    /// Records the tag of a node in either view (a neighbour's through [`Self::learn_tag`]).
    fn note_tag(&mut self, p: &P, tag: Option<Tag>) {
        if self.active.contains(p) {
            self.learn_tag(p.clone(), tag);
        } else if let (Some(tag), true) = (tag, self.passive.contains(p)) {
            self.tags.insert(p.clone(), tag);
        }
    }

    /// Forgets the tags of nodes in neither view.
    fn prune_tags(&mut self) {
        if self.tags.len() > self.active.len() + self.passive.len() {
            let (active, passive) = (&self.active, &self.passive);
            self.tags
                .retain(|p, _| active.contains(p) || passive.contains(p));
        }
    }

    /// With a slot open and a passive node known to have its tag, asks that node to be a
    /// neighbour (an ordinary request: a full node refuses). Whether it asked.
    fn seek_slot_holder(&mut self) -> bool {
        if self.asking.is_some() || self.left {
            return false;
        }
        let wanted = |t: &Tag| matches!(self.reserved.get(t), Some(None));
        let candidates: Vec<P> = self
            .passive
            .iter()
            .filter(|p| self.tags.get(*p).is_some_and(wanted))
            .cloned()
            .collect();
        let Some(p) = candidates.into_iter().choose(&mut self.rng) else {
            return false;
        };
        self.asking = Some(p.clone());
        self.asking_stale = false;
        self.ask(p, false);
        true
    }

    /// Takes `p` out of the active view; the slot it held opens, or goes to another neighbour
    /// with its tag. Whether it was a neighbour.
    fn remove_active(&mut self, p: &P) -> bool {
        if !self.active.remove(p) {
            return false;
        }
        // (Its tag is kept while it is in the passive view.)
        if let Some(tag) = self.tags.get(p).cloned() {
            if self.reserved.get(&tag) == Some(&Some(p.clone())) {
                let next = self.holder_among_active(&tag);
                self.reserved.insert(tag, next);
            }
        }
        true
    }

    /// A neighbour tagged `tag`, to hold its slot.
    fn holder_among_active(&self, tag: &Tag) -> Option<P> {
        self.tags
            .iter()
            .find(|(p, t)| *t == tag && self.active.contains(*p))
            .map(|(p, _)| p.clone())
    }

    /// Whether the view has no room: neighbours and open slots reach `active_max`.
    fn is_full(&self) -> bool {
        let open = self.reserved.values().filter(|h| h.is_none()).count();
        self.active.len() + open >= self.cfg.active_max
    }

    fn slot_open(&self, tag: Option<&Tag>) -> bool {
        tag.is_some_and(|t| matches!(self.reserved.get(t), Some(None)))
    }

    fn holds_slot(&self, p: &P) -> bool {
        self.tags
            .get(p)
            .is_some_and(|t| self.reserved.get(t).is_some_and(|h| h.as_ref() == Some(p)))
    }

    fn add_passive(&mut self, p: P) {
        if p == self.me || self.active.contains(&p) || self.passive.contains(&p) {
            return;
        }
        if self.passive.len() >= self.cfg.passive_max {
            if let Some(e) = self.passive.iter().choose(&mut self.rng).cloned() {
                self.passive.remove(&e);
            }
        }
        self.passive.insert(p);
    }

    /// Takes a shuffle's sample into the passive view, evicting first what we sent.
    fn integrate(&mut self, nodes: Vec<P>, sent: &[P]) {
        let mut evictable: Vec<P> = sent
            .iter()
            .filter(|p| self.passive.contains(p))
            .cloned()
            .collect();
        for n in nodes {
            if n == self.me || self.active.contains(&n) || self.passive.contains(&n) {
                continue;
            }
            if self.passive.len() >= self.cfg.passive_max {
                match evictable.pop() {
                    Some(e) => {
                        self.passive.remove(&e);
                    }
                    None => {
                        if let Some(e) = self.passive.iter().choose(&mut self.rng).cloned() {
                            self.passive.remove(&e);
                        }
                    }
                }
            }
            self.passive.insert(n);
        }
    }

    fn shuffle(&mut self) {
        let Some(to) = self.active.iter().choose(&mut self.rng).cloned() else {
            return;
        };
        let mut nodes = vec![self.me.clone()];
        nodes.extend(
            self.active
                .iter()
                .filter(|p| **p != to)
                .cloned()
                .choose_multiple(&mut self.rng, self.cfg.shuffle_k_active),
        );
        nodes.extend(
            self.passive
                .iter()
                .cloned()
                .choose_multiple(&mut self.rng, self.cfg.shuffle_k_passive),
        );
        self.sent_sample = nodes.clone();
        self.send(
            to,
            Message::Shuffle {
                origin: self.me.clone(),
                ttl: self.cfg.active_rwl,
                nodes,
            },
        );
    }

    /// Below the minimum, asks a passive peer to be a neighbour.
    fn repair(&mut self) {
        if self.active.len() < self.cfg.active_min {
            self.promote();
        }
    }

    /// Asks a random passive peer to be a neighbour, unless a request is outstanding.
    fn promote(&mut self) {
        if self.asking.is_some() || self.left {
            return;
        }
        let Some(p) = self.passive.iter().choose(&mut self.rng).cloned() else {
            return;
        };
        self.asking = Some(p.clone());
        self.asking_stale = false;
        // Up to the minimum the request cannot be refused, so that no node stays short of
        // neighbours in an overlay where everybody else is full, and a small island whose
        // members hold the minimum each (which would refuse no one and be refused by all)
        // reaches out of itself.
        let high = self.active.len() <= self.cfg.active_min;
        self.ask(p, high);
    }

    fn ask(&mut self, p: P, high: bool) {
        let pending = Pending { stale: false, high };
        self.requests
            .entry(p.clone())
            .or_default()
            .push_back(pending);
        let tag = self.cfg.tag.clone();
        self.send(p, Message::Neighbor { high, tag });
    }

    /// Takes the oldest request to `p` off the list; whether it was stale.
    fn answered(&mut self, p: &P) -> Pending {
        let none = Pending {
            stale: false,
            high: false,
        };
        let Some(pending) = self.requests.get_mut(p) else {
            return none;
        };
        let answered = pending.pop_front().unwrap_or(none);
        if pending.is_empty() {
            self.requests.remove(p);
        }
        answered
    }

    fn random_active_except(&mut self, not: &[&P]) -> Option<P> {
        self.active
            .iter()
            .filter(|p| !not.contains(p))
            .choose(&mut self.rng)
            .cloned()
    }

    fn send(&mut self, to: P, msg: Message<P>) {
        self.actions.push_back(Action::Send(to, msg));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(active_max: usize, reservations: &[&str]) -> HyParView<u32> {
        let cfg = Config {
            active_max,
            active_min: 1,
            reservations: reservations.iter().map(|t| Tag::from(*t)).collect(),
            ..Config::default()
        };
        HyParView::new(0, cfg, Instant::now())
    }

    fn tag(t: &str) -> Option<Tag> {
        Some(Tag::from(t))
    }

    /// Feeds a neighbour request from `from`; whether it was accepted.
    fn ask(hv: &mut HyParView<u32>, from: u32, high: bool, t: Option<Tag>) -> bool {
        let msg = Message::Neighbor { high, tag: t };
        hv.handle(Input::Received(from, msg), Instant::now());
        let mut accepted = None;
        while let Some(a) = hv.poll_action() {
            if let Action::Send(to, Message::NeighborReply { accepted: yes, .. }) = a {
                assert_eq!(to, from);
                accepted = Some(yes);
            }
        }
        accepted.expect("every request is answered")
    }

    #[test]
    fn an_open_slot_is_kept_for_its_tag_and_its_holder_is_never_dropped() {
        let mut hv = node(3, &["db"]);
        assert_eq!(hv.reserved("db"), Some(None));
        // The open slot counts as taken: two others fit, a third does not.
        assert!(ask(&mut hv, 1, false, None));
        assert!(ask(&mut hv, 2, false, tag("web")));
        assert!(!ask(&mut hv, 3, false, None));
        // A node with the tag always gets the slot, and nobody is dropped for it.
        assert!(ask(&mut hv, 4, false, tag("db")));
        assert_eq!(hv.active().len(), 3);
        assert_eq!(hv.reserved("db"), Some(Some(&4)));
        // High-priority newcomers drop others, never the holder.
        for p in 10..30 {
            assert!(ask(&mut hv, p, true, None));
            assert!(hv.active().contains(&4), "the slot's holder was dropped");
            assert_eq!(hv.active().len(), 3);
        }
        // The holder goes: the slot opens again (Partisan 5 keeps it filled).
        hv.handle(Input::PeerDown(4), Instant::now());
        assert_eq!(hv.reserved("db"), Some(None));
        assert!(ask(&mut hv, 5, false, tag("db")));
        assert_eq!(hv.reserved("db"), Some(Some(&5)));
    }

    #[test]
    fn reserving_counts_against_active_max_and_takes_a_present_neighbour() {
        let mut hv = node(2, &[]);
        assert_eq!(hv.reserved("db"), None);
        assert!(ask(&mut hv, 1, false, tag("db")));
        assert_eq!(hv.reserve(Tag::from("db")), Ok(()));
        assert_eq!(hv.reserved("db"), Some(Some(&1)));
        assert_eq!(
            hv.reserve(Tag::from("db")),
            Ok(()),
            "reserving again is one slot"
        );
        assert_eq!(hv.reserve(Tag::from("cache")), Ok(()));
        assert_eq!(hv.reserve(Tag::from("queue")), Err(NoAvailableSlots));
        // Both slots are reserved, one open: only a `cache` node gets in, now.
        assert!(!ask(&mut hv, 2, false, None));
        assert!(ask(&mut hv, 3, false, tag("cache")));
        // Full of holders: even a high-priority request is refused rather than drop one.
        assert!(!ask(&mut hv, 4, true, None));
        assert_eq!(hv.active().iter().copied().collect::<Vec<_>>(), vec![1, 3]);
    }

    #[test]
    fn an_open_slot_asks_a_passive_node_known_to_have_its_tag() {
        let now = Instant::now();
        let mut hv = node(3, &["db"]);
        hv.cfg.random_promotion = false;
        // A `db` neighbour and an untagged one; then the `db` one is dropped for a newcomer's
        // sake by its own side: it goes to the passive view, its tag remembered.
        assert!(ask(&mut hv, 1, false, tag("db")));
        assert!(ask(&mut hv, 2, false, None));
        let msg = Message::Disconnect { alive: true };
        hv.handle(Input::Received(1, msg), now);
        while hv.poll_action().is_some() {}
        assert_eq!(hv.reserved("db"), Some(None));
        assert!(hv.passive().contains(&1));
        // The next promotion tick asks it, although random promotion is off.
        hv.handle_timeout(now + Duration::from_secs(3600));
        let mut asked = Vec::new();
        while let Some(a) = hv.poll_action() {
            if let Action::Send(to, Message::Neighbor { high, .. }) = a {
                asked.push((to, high));
            }
        }
        assert_eq!(
            asked,
            vec![(1, false)],
            "an ordinary request to the db node"
        );
        let reply = Message::NeighborReply {
            accepted: true,
            tag: tag("db"),
        };
        hv.handle(Input::Received(1, reply), now);
        assert_eq!(hv.reserved("db"), Some(Some(&1)));
    }

    #[test]
    fn a_slot_reserved_in_a_full_view_still_keeps_the_bound() {
        let mut hv = node(3, &[]);
        for p in 1..=3 {
            assert!(ask(&mut hv, p, false, None));
        }
        assert_eq!(hv.reserve(Tag::from("db")), Ok(()));
        // The slot was never counted: its holder comes in, and someone else goes.
        assert!(ask(&mut hv, 9, false, tag("db")));
        assert_eq!(hv.active().len(), 3);
        assert_eq!(hv.reserved("db"), Some(Some(&9)));
    }

    #[test]
    fn a_node_whose_slots_are_all_reserved_joins_by_request_and_never_loops() {
        let now = Instant::now();
        let mut hv = node(2, &["a", "b"]);
        // Full with an empty view: the contact is kept to ask, no one-sided Join goes out.
        hv.handle(Input::Join(7), now);
        let sent: Vec<_> = std::iter::from_fn(|| hv.poll_action()).collect();
        assert!(sent.is_empty(), "{sent:?}");
        assert!(hv.passive().contains(&7) && hv.active().is_empty());
        // The promotion tick asks it (high: the node has no neighbour); it refuses.
        hv.handle_timeout(now + Duration::from_secs(3600));
        let asked = std::iter::from_fn(|| hv.poll_action())
            .filter(|a| matches!(a, Action::Send(7, Message::Neighbor { high: true, .. })))
            .count();
        assert_eq!(asked, 1);
        let refusal = Message::NeighborReply {
            accepted: false,
            tag: None,
        };
        hv.handle(Input::Received(7, refusal), now);
        let again: Vec<_> = std::iter::from_fn(|| hv.poll_action()).collect();
        assert!(
            again.is_empty(),
            "a refused high request is not repeated at once: {again:?}"
        );
        // A node with one of the tags is taken, even by an ordinary request.
        assert!(ask(&mut hv, 8, false, tag("a")));
        assert_eq!(hv.reserved("a"), Some(Some(&8)));
    }

    #[test]
    fn a_joined_contact_tells_its_tag_and_fills_the_joiners_slot() {
        let now = Instant::now();
        let mut joiner = node(4, &["seed"]);
        let mut contact = HyParView::new(
            7,
            Config {
                tag: tag("seed"),
                ..Config::default()
            },
            now,
        );
        joiner.handle(Input::Join(7), now);
        while let Some(a) = joiner.poll_action() {
            if let Action::Send(7, m) = a {
                contact.handle(Input::Received(0, m), now);
            }
        }
        assert_eq!(
            joiner.reserved("seed"),
            Some(None),
            "its tag is not known yet"
        );
        while let Some(a) = contact.poll_action() {
            if let Action::Send(0, m) = a {
                joiner.handle(Input::Received(7, m), now);
            }
        }
        assert_eq!(joiner.reserved("seed"), Some(Some(&7)));
        // Leaving empties the slots; the reservations stay.
        joiner.handle(Input::Leave, now);
        assert_eq!(joiner.reserved("seed"), Some(None));
    }
}
