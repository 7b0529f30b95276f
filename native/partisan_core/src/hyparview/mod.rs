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
//! - X-BOT exchanges (Leitão et al., SRDS 2009) run by default, with Partisan 5's oracle for
//!   anything but latency (every change is better): the overlay keeps mixing, which is what
//!   merges the small islands that dense joins can leave (see the X-BOT section below).
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
    /// Whether a full node keeps rewiring its view with X-BOT exchanges (`xbot_enabled`;
    /// true here, false in Partisan 5): they are what merges an island that dense joins left.
    pub xbot: bool,
    /// Period of a node's X-BOT rounds (`xbot_interval`, 120 s; Partisan 5 draws 5 to 65 s).
    pub xbot_interval: Duration,
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
            xbot: true,
            xbot_interval: Duration::from_secs(120),
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
    /// X-BOT, first step: the sender, full, would take the receiver (one of its passive
    /// nodes) as a neighbour in place of its neighbour `old`.
    Optimize {
        /// The exchange, named by its initiator.
        id: u64,
        /// The neighbour the sender would let go.
        old: P,
        /// The sender's tag.
        tag: Option<Tag>,
    },
    /// Second step, from a full candidate to one of its neighbours: "take `old` in my place,
    /// so that I can take `initiator`".
    Replace {
        /// The exchange.
        id: u64,
        /// The node that started it.
        initiator: P,
        /// The initiator's neighbour to be handed over.
        old: P,
    },
    /// Third step, to `old`: "drop `initiator` and take me instead".
    Switch {
        /// The exchange.
        id: u64,
        /// The neighbour the receiver is asked to drop.
        initiator: P,
        /// The sender's tag.
        tag: Option<Tag>,
    },
    /// The answer to a `Switch`: accepted, the sender dropped the initiator (told) and took
    /// the requester.
    SwitchReply {
        /// The exchange.
        id: u64,
        /// Whether it did.
        accepted: bool,
        /// The sender's tag.
        tag: Option<Tag>,
    },
    /// The answer to a `Replace`: accepted, the sender took `old` and dropped the receiver.
    ReplaceReply {
        /// The exchange.
        id: u64,
        /// Whether it did.
        accepted: bool,
    },
    /// The answer to an `Optimize`: accepted, the sender took the initiator as a neighbour.
    OptimizeReply {
        /// The exchange.
        id: u64,
        /// Whether it did.
        accepted: bool,
        /// The sender's tag.
        tag: Option<Tag>,
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
    /// The peer became a neighbour another way since we sent it (we accepted its request or
    /// exchange, which it handles after ours): a refusal is older than that, and undoes nothing.
    superseded: bool,
}

/// This node's part in an X-BOT exchange, waiting for `peer`'s answer.
#[derive(Debug, Clone)]
struct Exchange<P> {
    id: u64,
    peer: P,
    /// The initiator's old neighbour (initiator), the initiator (candidate), or the candidate
    /// (the neighbour asked to replace it).
    other: P,
    /// The initiator's tag (candidate).
    tag: Option<Tag>,
    /// We dropped `peer` since we asked it: its acceptance must not make it a neighbour again.
    stale: bool,
    /// Seen by one promotion tick already: the next gives it up (an answer was lost).
    aged: bool,
}

impl<P> Exchange<P> {
    fn new(id: u64, peer: P, other: P, tag: Option<Tag>) -> Exchange<P> {
        let (stale, aged) = (false, false);
        Exchange {
            id,
            peer,
            other,
            tag,
            stale,
            aged,
        }
    }
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
    /// X-BOT exchanges under way, at most one per role: started here (waiting for the
    /// candidate), as the candidate (waiting for its neighbour), as that neighbour (waiting for
    /// the initiator's old neighbour).
    optimizing: Option<Exchange<P>>,
    replacing: Option<Exchange<P>>,
    switching: Option<Exchange<P>>,
    next_shuffle: Instant,
    next_promotion: Instant,
    next_xbot: Instant,
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
        let next_xbot = now + cfg.xbot_interval + spread(&mut rng, cfg.xbot_interval);
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
            optimizing: None,
            replacing: None,
            switching: None,
            next_shuffle,
            next_promotion,
            next_xbot,
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
        let xbot = if self.cfg.xbot {
            self.next_xbot
        } else {
            self.next_promotion
        };
        (!self.left).then(|| self.next_shuffle.min(self.next_promotion).min(xbot))
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
            for ex in [
                &mut self.optimizing,
                &mut self.replacing,
                &mut self.switching,
            ] {
                match ex {
                    Some(e) if e.aged => *ex = None,
                    Some(e) => e.aged = true,
                    None => {}
                }
            }
            if self.active.len() < self.cfg.active_min {
                self.repair();
            } else if !self.seek_slot_holder() && self.cfg.random_promotion && !self.is_full() {
                self.promote();
            }
        }
        if self.cfg.xbot && now >= self.next_xbot {
            self.next_xbot = now + self.cfg.xbot_interval;
            self.optimize();
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
            Input::Received(from, msg) => self.refuse_after_leaving(from, msg),
            Input::PeerDown(peer) => {
                self.passive.remove(&peer);
                self.requests.remove(&peer);
                if self.asking.as_ref() == Some(&peer) {
                    self.asking = None;
                }
                self.exchange_peer_down(&peer);
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
                self.optimizing = None;
                self.replacing = None;
                self.switching = None;
                self.left = true;
            }
        }
    }

    fn received(&mut self, from: P, msg: Message<P>) {
        match msg {
            Message::Join { tag } => {
                if !self.add_active(from.clone(), tag.clone()) {
                    // Every slot is reserved and held: it is told, and stays known.
                    return self.reject(from);
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
                let Pending {
                    stale,
                    high,
                    superseded,
                } = self.answered(&from);
                if accepted && !stale {
                    if !self.add_active(from.clone(), tag) {
                        // Our slots filled up meanwhile: it holds us, we cannot hold it.
                        self.reject(from);
                    }
                } else if !accepted {
                    // It does not hold us (it would have accepted if it did): nor do we it.
                    if !superseded && self.remove_active(&from) {
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
            Message::Optimize { id, old, tag } => self.on_optimize(from, id, old, tag),
            Message::Replace { id, initiator, old } => self.on_replace(from, id, initiator, old),
            Message::Switch { id, initiator, tag } => self.on_switch(from, id, initiator, tag),
            Message::SwitchReply { id, accepted, tag } => {
                self.on_switch_reply(from, id, accepted, tag)
            }
            Message::ReplaceReply { id, accepted } => self.on_replace_reply(from, id, accepted),
            Message::OptimizeReply { id, accepted, tag } => {
                self.on_optimize_reply(from, id, accepted, tag)
            }
        }
    }

    /// A node that left answers what asks for an answer, and undoes what made it a neighbour.
    fn refuse_after_leaving(&mut self, from: P, msg: Message<P>) {
        let tag = self.cfg.tag.clone();
        let (accepted, reply) = (false, None::<Message<P>>);
        let reply = match msg {
            Message::Neighbor { .. } => Some(Message::NeighborReply { accepted, tag }),
            Message::Optimize { id, .. } => Some(Message::OptimizeReply { id, accepted, tag }),
            Message::Replace { id, .. } => Some(Message::ReplaceReply { id, accepted }),
            Message::Switch { id, .. } => Some(Message::SwitchReply { id, accepted, tag }),
            // What made us its neighbour is undone.
            Message::Join { .. }
            | Message::NeighborReply { accepted: true, .. }
            | Message::OptimizeReply { accepted: true, .. }
            | Message::SwitchReply { accepted: true, .. } => {
                Some(Message::Disconnect { alive: false })
            }
            _ => reply,
        };
        if let Some(reply) = reply {
            self.send(from, reply);
        }
    }

    // ---- X-BOT ---------------------------------------------------------------------------
    //
    // An exchange rewires four nodes and keeps every degree: the initiator `i` (full) takes its
    // passive node `c` in place of its neighbour `o`; `c`, if full, hands one of its neighbours
    // `d` over to `o`. Edges i–o and c–d become i–c and o–d. The oracle that decides whether a
    // change is better is Partisan 5's default for anything but latency: every change is, so
    // exchanges keep mixing the overlay. That is what joins an island to the rest: its nodes'
    // passive views still name outsiders, and an exchange with one builds two bridges.
    //
    // Each edge that goes is told to the node it leaves (a `Disconnect`, or the reply that
    // says so), and each edge that comes is taken on an answer, so that views stay symmetric
    // whatever step is lost: a node that gave up an exchange and then hears it succeeded
    // undoes its half.

    /// Starts an exchange, if the view is full and nothing is under way.
    fn optimize(&mut self) {
        if self.left || self.optimizing.is_some() || self.active.len() < self.cfg.active_max {
            return;
        }
        let Some(c) = self.passive.iter().choose(&mut self.rng).cloned() else {
            return;
        };
        let Some(o) = self.droppable(&[]).into_iter().choose(&mut self.rng) else {
            return;
        };
        let id = self.rng.gen();
        self.optimizing = Some(Exchange::new(id, c.clone(), o.clone(), None));
        let tag = self.cfg.tag.clone();
        self.send(c, Message::Optimize { id, old: o, tag });
    }

    /// As the candidate: take the initiator if there is room, else ask a neighbour to be
    /// handed over to the initiator's old neighbour.
    fn on_optimize(&mut self, i: P, id: u64, o: P, tag: Option<Tag>) {
        let mine = self.cfg.tag.clone();
        if self.active.contains(&i) || o == self.me {
            let accepted = false;
            return self.send(
                i,
                Message::OptimizeReply {
                    id,
                    accepted,
                    tag: mine,
                },
            );
        }
        if self.slot_open(tag.as_ref()) || !self.is_full() {
            let accepted = self.add_active(i.clone(), tag);
            return self.send(
                i,
                Message::OptimizeReply {
                    id,
                    accepted,
                    tag: mine,
                },
            );
        }
        let d = match self.replacing {
            Some(_) => None,
            None => self.droppable(&[&i, &o]).into_iter().choose(&mut self.rng),
        };
        let Some(d) = d else {
            let accepted = false;
            return self.send(
                i,
                Message::OptimizeReply {
                    id,
                    accepted,
                    tag: mine,
                },
            );
        };
        self.replacing = Some(Exchange::new(id, d.clone(), i.clone(), tag));
        self.send(
            d,
            Message::Replace {
                id,
                initiator: i,
                old: o,
            },
        );
    }

    /// As the candidate's neighbour: offer ourselves to the initiator's old neighbour.
    fn on_replace(&mut self, c: P, id: u64, i: P, o: P) {
        let willing = self.switching.is_none()
            && self.active.contains(&c)
            && !self.holds_slot(&c)
            && !self.active.contains(&o)
            && o != self.me
            && i != self.me;
        if !willing {
            return self.send(
                c,
                Message::ReplaceReply {
                    id,
                    accepted: false,
                },
            );
        }
        self.switching = Some(Exchange::new(id, o.clone(), c, None));
        let tag = self.cfg.tag.clone();
        self.send(
            o,
            Message::Switch {
                id,
                initiator: i,
                tag,
            },
        );
    }

    /// As the initiator's old neighbour: drop the initiator (told) for the requester.
    fn on_switch(&mut self, d: P, id: u64, i: P, tag: Option<Tag>) {
        let willing = self.active.contains(&i)
            && !self.holds_slot(&i)
            && !self.active.contains(&d)
            && d != self.me;
        let accepted = willing && {
            self.drop_neighbour(i);
            self.add_active(d.clone(), tag)
        };
        let tag = self.cfg.tag.clone();
        self.send(d, Message::SwitchReply { id, accepted, tag });
    }

    /// As the candidate's neighbour: the old neighbour took us; we let the candidate go.
    fn on_switch_reply(&mut self, o: P, id: u64, accepted: bool, tag: Option<Tag>) {
        let ex = self.switching.take_if(|e| e.id == id && e.peer == o);
        let live = ex.as_ref().is_some_and(|e| !e.stale);
        if !(accepted && live) {
            // Refused, given up, or we dropped it meanwhile. If it took us, we do not hold it.
            if accepted && !self.active.contains(&o) {
                self.reject(o);
            }
            if let Some(ex) = ex {
                let accepted = false;
                self.send(ex.other, Message::ReplaceReply { id, accepted });
            }
            return;
        }
        let Some(ex) = ex else { return };
        let c = ex.other;
        let handed = self.active.contains(&c) && !self.holds_slot(&c);
        // (The reply tells the candidate it was dropped; it goes out before the drop closes
        // the connections, as a `Disconnect` does.)
        self.send(
            c.clone(),
            Message::ReplaceReply {
                id,
                accepted: handed,
            },
        );
        if handed {
            self.forget_neighbour(c);
        }
        if !self.add_active(o.clone(), tag) {
            self.reject(o);
        }
    }

    /// As the candidate: the neighbour was handed over (and dropped us); take the initiator.
    fn on_replace_reply(&mut self, d: P, id: u64, accepted: bool) {
        // (It dropped us as it answered: what it answers later of our requests, it answers
        // knowing that, so they stay fresh.)
        if accepted && self.remove_active(&d) {
            self.actions.push_back(Action::Down(d.clone()));
            self.add_passive(d.clone());
        }
        let Some(ex) = self.replacing.take_if(|e| e.id == id && e.peer == d) else {
            return;
        };
        let i = ex.other;
        let took = self.active.contains(&i)
            || ((self.slot_open(ex.tag.as_ref()) || !self.is_full())
                && self.add_active(i.clone(), ex.tag));
        let tag = self.cfg.tag.clone();
        self.send(
            i,
            Message::OptimizeReply {
                id,
                accepted: took,
                tag,
            },
        );
    }

    /// As the initiator: the candidate took us; we take it, and let the old neighbour go if
    /// its own `Disconnect` has not come yet.
    fn on_optimize_reply(&mut self, c: P, id: u64, accepted: bool, tag: Option<Tag>) {
        let ex = self.optimizing.take_if(|e| e.id == id && e.peer == c);
        if !accepted || self.active.contains(&c) {
            return;
        }
        let Some(ex) = ex.filter(|e| !e.stale) else {
            return self.reject(c);
        };
        let o = ex.other;
        if self.active.contains(&o) && !self.holds_slot(&o) {
            self.drop_neighbour(o);
        }
        if !self.add_active(c.clone(), tag) {
            self.reject(c);
        }
    }

    /// A lost peer ends the exchanges waiting for it.
    fn exchange_peer_down(&mut self, p: &P) {
        if self.optimizing.as_ref().is_some_and(|e| e.peer == *p) {
            self.optimizing = None;
        }
        if let Some(ex) = self.replacing.take_if(|e| e.peer == *p) {
            let (id, accepted, tag) = (ex.id, false, self.cfg.tag.clone());
            self.send(ex.other, Message::OptimizeReply { id, accepted, tag });
        }
        if let Some(ex) = self.switching.take_if(|e| e.peer == *p) {
            self.send(
                ex.other,
                Message::ReplaceReply {
                    id: ex.id,
                    accepted: false,
                },
            );
        }
    }

    /// Neighbours that hold no slot, but those in `not`.
    fn droppable(&self, not: &[&P]) -> Vec<P> {
        self.active
            .iter()
            .filter(|a| !self.holds_slot(a) && !not.contains(a))
            .cloned()
            .collect()
    }

    /// Lets a neighbour go, telling it: to the passive view.
    fn drop_neighbour(&mut self, d: P) {
        self.send(d.clone(), Message::Disconnect { alive: true });
        self.forget_neighbour(d);
    }

    /// Undoes an edge that `p` made and we cannot keep: it is told, and goes to the passive
    /// view. Its answers to our requests sent before it hears this are stale: it still held
    /// us when it gave them.
    fn reject(&mut self, p: P) {
        if let Some(pending) = self.requests.get_mut(&p) {
            pending.iter_mut().for_each(|r| r.stale = true);
        }
        self.send(p.clone(), Message::Disconnect { alive: true });
        self.add_passive(p);
    }

    /// Moves a neighbour to the passive view, its answers to our requests stale (the caller
    /// told it, or it told us).
    fn forget_neighbour(&mut self, d: P) {
        if !self.remove_active(&d) {
            return;
        }
        if let Some(pending) = self.requests.get_mut(&d) {
            pending.iter_mut().for_each(|r| r.stale = true);
        }
        self.actions.push_back(Action::Down(d.clone()));
        self.add_passive(d);
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
            let Some(d) = self.droppable(&[]).into_iter().choose(&mut self.rng) else {
                return false;
            };
            self.drop_neighbour(d);
        }
        self.passive.remove(&p);
        if let Some(pending) = self.requests.get_mut(&p) {
            pending.iter_mut().for_each(|r| r.superseded = true);
        }
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
        for ex in [&mut self.optimizing, &mut self.switching]
            .into_iter()
            .flatten()
        {
            if ex.peer == *p {
                ex.stale = true;
            }
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
        let pending = Pending {
            stale: false,
            high,
            superseded: false,
        };
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
            superseded: false,
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

    /// Nodes that talk through one FIFO queue (so every link is FIFO), run until quiet.
    struct Net {
        nodes: BTreeMap<u32, HyParView<u32>>,
        queue: VecDeque<(u32, u32, Message<u32>)>,
    }

    impl Net {
        fn new(ids: impl IntoIterator<Item = u32>, cfg: Config) -> Net {
            let nodes = ids
                .into_iter()
                .map(|i| {
                    let cfg = Config {
                        seed: i as u64,
                        ..cfg.clone()
                    };
                    (i, HyParView::new(i, cfg, Instant::now()))
                })
                .collect();
            let queue = VecDeque::new();
            Net { nodes, queue }
        }

        fn node(&mut self, i: u32) -> &mut HyParView<u32> {
            self.nodes.get_mut(&i).expect("a node of the net")
        }

        fn pump(&mut self, i: u32) {
            while let Some(a) = self.node(i).poll_action() {
                if let Action::Send(to, m) = a {
                    self.queue.push_back((i, to, m));
                }
            }
        }

        /// Delivers the oldest message; false when there was none.
        fn step(&mut self) -> bool {
            let Some((from, to, m)) = self.queue.pop_front() else {
                return false;
            };
            self.node(to)
                .handle(Input::Received(from, m), Instant::now());
            self.pump(to);
            true
        }

        fn run(&mut self) {
            while self.step() {}
        }

        fn link(&mut self, a: u32, b: u32) {
            self.node(a).ask(b, true);
            self.pump(a);
            self.run();
        }

        fn degrees(&self) -> BTreeMap<u32, usize> {
            self.nodes
                .iter()
                .map(|(i, n)| (*i, n.active().len()))
                .collect()
        }

        fn assert_symmetric(&self) {
            for (i, n) in &self.nodes {
                for p in n.active() {
                    assert!(
                        self.nodes[p].active().contains(i),
                        "{i} holds {p}, not back"
                    );
                }
            }
        }
    }

    /// X-BOT on, and no repair (in nets this small, a node that lost its one neighbour would
    /// take another's with a request that cannot be refused, and so on forever).
    fn xbot_cfg(active_max: usize) -> Config {
        Config {
            active_max,
            active_min: 0,
            random_promotion: false,
            xbot: true,
            ..Config::default()
        }
    }

    #[test]
    fn an_exchange_rewires_four_nodes_and_keeps_every_degree() {
        // i=1 holds o=2 and x=10; c=3 holds d=4 and y=11; d and o have one more each (12,
        // 13). c is only in i's passive view. Everybody is full (two neighbours).
        let mut net = Net::new([1, 2, 3, 4, 10, 11, 12, 13], xbot_cfg(2));
        for (a, b) in [(1, 2), (1, 10), (3, 4), (3, 11), (4, 12), (2, 13)] {
            net.link(a, b);
        }
        net.node(1).add_passive(3);
        let before = net.degrees();
        net.node(1).optimize();
        net.pump(1);
        net.run();
        net.assert_symmetric();
        assert_eq!(net.degrees(), before, "an exchange keeps every degree");
        let i = net.nodes[&1].active().clone();
        assert!(i.contains(&3), "the initiator took the candidate: {i:?}");
        // The old neighbour (2 or 10) went to the candidate's old neighbour (4 or 11).
        let old = if i.contains(&2) { 10 } else { 2 };
        let handed = if net.nodes[&3].active().contains(&4) {
            11
        } else {
            4
        };
        assert!(net.nodes[&old].active().contains(&handed));
        assert!(!net.nodes[&3].active().contains(&handed));
        assert!(net
            .nodes
            .values()
            .all(|n| n.optimizing.is_none() && n.replacing.is_none() && n.switching.is_none()));
    }

    #[test]
    fn a_candidate_with_room_takes_the_initiator_at_once() {
        let mut net = Net::new([1, 2, 3, 10], xbot_cfg(2));
        for (a, b) in [(1, 2), (1, 10)] {
            net.link(a, b);
        }
        net.node(1).add_passive(3);
        net.node(1).optimize();
        net.pump(1);
        net.run();
        net.assert_symmetric();
        assert!(net.nodes[&1].active().contains(&3));
        assert_eq!(net.nodes[&1].active().len(), 2);
    }

    #[test]
    fn a_refusal_sent_before_an_exchange_took_us_undoes_nothing() {
        // a (room) asks b (full) to be a neighbour while b starts an exchange with a.
        let (a, b) = (1, 2);
        let mut net = Net::new([a, b, 5, 6], xbot_cfg(2));
        net.node(a).cfg.active_max = 3;
        net.link(b, 5);
        net.link(b, 6);
        net.node(b).add_passive(a);
        net.node(a).ask(b, false);
        net.pump(a);
        net.node(b).optimize();
        net.pump(b);
        // The exchange's Optimize reaches a before a's request reaches b.
        let request = net.queue.pop_front().expect("a's request");
        assert!(matches!(request.2, Message::Neighbor { .. }));
        net.queue.push_back(request);
        net.run();
        net.assert_symmetric();
        assert!(net.nodes[&a].active().contains(&b));
    }

    #[test]
    fn an_exchange_answered_after_it_was_given_up_is_undone() {
        let now = Instant::now();
        let mut hv = HyParView::new(1, xbot_cfg(1), now);
        assert!(ask(&mut hv, 2, false, None));
        hv.add_passive(3);
        hv.optimize();
        let id = match hv.poll_action() {
            Some(Action::Send(3, Message::Optimize { id, old: 2, .. })) => id,
            other => panic!("{other:?}"),
        };
        // Two promotion ticks without an answer: given up.
        for s in [3600, 7200] {
            hv.handle_timeout(now + Duration::from_secs(s));
        }
        while hv.poll_action().is_some() {}
        let reply = Message::OptimizeReply {
            id,
            accepted: true,
            tag: None,
        };
        hv.handle(Input::Received(3, reply), now);
        let sent: Vec<_> = std::iter::from_fn(|| hv.poll_action()).collect();
        assert_eq!(
            sent,
            vec![Action::Send(3, Message::Disconnect { alive: true })]
        );
        assert!(!hv.active().contains(&3));
    }

    #[test]
    fn an_exchange_undone_also_voids_a_request_answered_before_the_undo() {
        // 1 gave up its exchange with 3, then asked 3 to be a neighbour. 3 takes 1 for the
        // exchange and so accepts the request too; 1 undoes the exchange's edge, and the
        // request's acceptance, given while 3 still held 1, must not bring it back.
        let mut net = Net::new([1, 2, 3], xbot_cfg(1));
        net.node(3).cfg.active_max = 2;
        net.link(1, 2);
        net.node(1).add_passive(3);
        net.node(1).optimize();
        net.pump(1);
        net.node(1).optimizing = None;
        net.node(1).ask(3, false);
        net.pump(1);
        net.run();
        net.assert_symmetric();
        assert!(!net.nodes[&1].active().contains(&3));
    }

    #[test]
    fn a_handed_over_neighbour_still_answers_our_requests_afresh() {
        // As in the four-node exchange, with the candidate's request to the neighbour it hands
        // over arriving after that neighbour dropped it: the answer is given knowing that.
        let mut net = Net::new([1, 2, 3, 4, 10, 11, 12, 13], xbot_cfg(2));
        for (a, b) in [(1, 2), (1, 10), (3, 4), (3, 11), (4, 12), (2, 13)] {
            net.link(a, b);
        }
        net.node(1).add_passive(3);
        net.node(1).optimize();
        net.pump(1);
        let d = loop {
            let handed = net.queue.iter().find_map(|(from, to, m)| {
                let yes = matches!(m, Message::ReplaceReply { accepted: true, .. });
                (yes && *to == 3).then_some(*from)
            });
            if let Some(d) = handed {
                break d;
            }
            assert!(net.step(), "the exchange hands a neighbour over");
        };
        net.node(3).ask(d, true);
        net.pump(3);
        net.run();
        net.assert_symmetric();
        assert!(net.nodes[&3].active().contains(&d));
    }

    #[test]
    fn a_node_that_left_undoes_what_would_make_it_a_neighbour() {
        let now = Instant::now();
        let mut hv = HyParView::new(1, xbot_cfg(2), now);
        hv.handle(Input::Leave, now);
        let (accepted, tag) = (true, None);
        for msg in [
            Message::Join { tag: None },
            Message::NeighborReply { accepted, tag },
        ] {
            hv.handle(Input::Received(2, msg), now);
            let sent: Vec<_> = std::iter::from_fn(|| hv.poll_action()).collect();
            let gone = Message::Disconnect { alive: false };
            assert_eq!(sent, vec![Action::Send(2, gone)]);
        }
        assert!(hv.active().is_empty());
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
