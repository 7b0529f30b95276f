//! The node's rules when HyParView chooses its members (`Membership::HyParView`): the active
//! view is the membership, neighbours get every channel and count as up, and nodes outside the
//! view get a control connection only while a message waits for them (closed again once idle).

use std::cmp::Reverse;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;

use super::{Action, Node, Timer};
use crate::control::overlay::Overlay;
use crate::control::{CloseReason, ConnId, SlotKey};
use crate::hyparview::{self, Message};
use crate::membership::NodeSpec;

/// Most messages kept for one peer while its connection is being made.
const OUTBOX_LIMIT: usize = 64;

impl Node {
    /// HyParView's active view (the neighbours), sorted; empty for other memberships.
    pub fn active_view(&self) -> Vec<Arc<str>> {
        self.overlay
            .as_ref()
            .map_or_else(Vec::new, |o| o.hv.active().iter().cloned().collect())
    }

    /// HyParView's passive view, sorted; empty for other memberships.
    pub fn passive_view(&self) -> Vec<Arc<str>> {
        self.overlay
            .as_ref()
            .map_or_else(Vec::new, |o| o.hv.passive().iter().cloned().collect())
    }

    /// Reserves an active-view slot for `tag` (see [`hyparview::HyParView::reserve`]); there
    /// are no slots to reserve outside HyParView.
    pub fn overlay_reserve(&mut self, tag: &str) -> Result<(), hyparview::NoAvailableSlots> {
        match self.overlay.as_mut() {
            Some(o) => o.hv.reserve(Arc::from(tag)),
            None => Err(hyparview::NoAvailableSlots),
        }
    }

    /// Who holds the slot reserved for `tag` (see [`hyparview::HyParView::reserved`]).
    pub fn overlay_reserved(&self, tag: &str) -> Option<Option<Arc<str>>> {
        let o = self.overlay.as_ref()?;
        o.hv.reserved(tag).map(|p| p.cloned())
    }

    /// How long a connection to a node outside the active view stays open after its last use.
    fn linger(&self) -> Duration {
        (self.interval * 5).max(Duration::from_secs(2))
    }

    fn overlay_mut(&mut self) -> Option<&mut Overlay> {
        self.overlay.as_mut()
    }

    fn peer_down(&mut self, peer: Arc<str>, now: Instant) {
        if let Some(o) = self.overlay_mut() {
            o.outbox.remove(&peer);
            o.hv.handle(hyparview::Input::PeerDown(peer), now);
        }
    }

    pub(super) fn overlay_join(&mut self, spec: NodeSpec, now: Instant) {
        let Some(o) = self.overlay.as_mut() else {
            return;
        };
        let Some(name) = o.learn(&spec) else {
            self.refused_members += 1;
            return;
        };
        if o.contacts.len() < crate::control::overlay::MAX_CONTACTS {
            o.contacts.insert(name.clone(), spec.clone());
        }
        self.pending.insert(spec.name.clone(), spec);
        o.hv.handle(hyparview::Input::Join(name), now);
    }

    pub(super) fn overlay_leave(&mut self, now: Instant) {
        if let Some(o) = self.overlay_mut() {
            o.hv.handle(hyparview::Input::Leave, now);
        }
        // Neighbours hear of it before the connections close.
        self.run_overlay(now);
        self.start_alone();
    }

    pub(super) fn overlay_remove(&mut self, name: &str, now: Instant) {
        self.pending.remove(name);
        if let Some(peer) = self.peers.get(name).map(|p| p.name.clone()) {
            self.peer_down(peer, now);
            self.run_overlay(now);
        }
        self.forget(name, CloseReason::Removed);
    }

    pub(super) fn overlay_received(&mut self, conn: ConnId, body: &[u8], now: Instant) {
        let control = self.control;
        let key = self.conns.get(&conn).or_else(|| self.retired.get(&conn));
        let Some(from) = key.filter(|k| k.channel == control).map(|k| k.peer.clone()) else {
            return;
        };
        let Some(o) = self.overlay.as_mut() else {
            return;
        };
        match o.decode(body, &mut self.refused_members) {
            Ok(Some(msg)) => o.hv.handle(hyparview::Input::Received(from, msg), now),
            Ok(None) => {}
            Err(_) => self.closed(conn, CloseReason::ProtocolError, now),
        }
    }

    /// A control connection to `slot.peer` is installed: what waited for it goes out, and a
    /// node outside the active view gets its idle timer.
    pub(super) fn overlay_connected(&mut self, slot: &SlotKey, conn: ConnId, now: Instant) {
        if self.overlay.is_none() || slot.channel != self.control {
            return;
        }
        self.pending.remove(&*slot.peer);
        let waiting = self
            .overlay_mut()
            .and_then(|o| o.outbox.remove(&slot.peer))
            .unwrap_or_default();
        for msg in waiting {
            self.push_overlay(conn, &msg);
        }
        if !self.state.is_member(&slot.peer) {
            let at = now + self.linger();
            self.timers
                .push(Reverse((at, Timer::Linger(slot.peer.clone()))));
        }
    }

    /// The overlay's view of a lost connection: a neighbour whose control connection failed
    /// is down (HyParView repairs the view from the passive one); a node outside the view is
    /// forgotten once its last connection is gone. Killed connections are redialed instead.
    pub(super) fn overlay_closed(&mut self, key: &SlotKey, why: CloseReason, now: Instant) {
        if self.overlay.is_none() || why == CloseReason::Killed {
            return;
        }
        if self.state.is_member(&key.peer) {
            if key.channel == self.control {
                self.peer_down(key.peer.clone(), now);
            }
        } else if self.is_idle(&key.peer) {
            self.forget(&key.peer, why);
        }
    }

    /// A dial of `key` failed: for the control channel the peer is unreachable, which HyParView
    /// must hear; a join contact is tried again after `retry`.
    pub(super) fn overlay_dial_failed(&mut self, key: &SlotKey, retry: Instant, now: Instant) {
        if self.overlay.is_none() || key.channel != self.control {
            return;
        }
        if self.pending.contains_key(&*key.peer) {
            self.timers
                .push(Reverse((retry, Timer::Rejoin(key.peer.clone()))));
        }
        self.peer_down(key.peer.clone(), now);
        if !self.state.is_member(&key.peer) {
            self.forget(&key.peer, CloseReason::Io);
        }
    }

    pub(super) fn overlay_timer(&mut self, timer: Timer, at: Instant, now: Instant) {
        match timer {
            Timer::Overlay if self.overlay_at == Some(at) => {
                self.overlay_at = None;
                if let Some(o) = self.overlay_mut() {
                    o.hv.handle_timeout(now);
                }
                self.rejoin_if_stranded(now);
            }
            Timer::Linger(name)
                if !self.state.is_member(&name) && self.peers.contains_key(&name) =>
            {
                if self.is_idle(&name) {
                    self.forget(&name, CloseReason::Disconnected);
                } else {
                    let at = now + self.linger();
                    self.timers.push(Reverse((at, Timer::Linger(name))));
                }
            }
            Timer::Rejoin(name) => {
                if let Some(spec) = self.pending.get(&*name).cloned() {
                    self.overlay_join(spec, now);
                }
            }
            _ => {}
        }
    }

    /// Joins again through a random contact when HyParView has nobody left to ask.
    fn rejoin_if_stranded(&mut self, now: Instant) {
        let Some(o) = self.overlay.as_ref().filter(|o| o.hv.is_stranded()) else {
            return;
        };
        let choices: Vec<Arc<str>> = o
            .contacts
            .keys()
            .filter(|c| !o.hv.active().contains(*c))
            .cloned()
            .collect();
        if choices.is_empty() {
            return;
        }
        let pick = choices[self.rng.gen_range(0..choices.len())].clone();
        if let Some(o) = self.overlay_mut() {
            o.hv.handle(hyparview::Input::Join(pick), now);
        }
    }

    /// Whether nothing waits for the peer (it may be forgotten once it is outside the view).
    fn is_idle(&self, name: &str) -> bool {
        self.overlay
            .as_ref()
            .is_some_and(|o| !o.outbox.contains_key(name))
    }

    /// Whether the overlay wants a connection to `name`: a neighbour, or a node a message waits
    /// for (which gets the control channel only).
    pub(super) fn overlay_wants(&self, name: &str) -> bool {
        self.overlay.as_ref().is_some_and(|o| {
            (self.state.is_member(name) && name != &*self.name) || o.outbox.contains_key(name)
        })
    }

    /// Carries out what HyParView asked for, then sets its timer.
    pub(super) fn run_overlay(&mut self, now: Instant) {
        while let Some(action) = self.overlay_mut().and_then(|o| o.hv.poll_action()) {
            match action {
                hyparview::Action::Up(p) => self.neighbour_up(p, now),
                hyparview::Action::Down(p) => self.neighbour_down(p),
                hyparview::Action::Send(p, msg) => self.overlay_send(p, msg, now),
            }
        }
        let due = self.overlay.as_ref().and_then(|o| o.hv.poll_timeout());
        if let Some(at) = due.filter(|_| !self.stopped) {
            if self.overlay_at != Some(at) {
                self.overlay_at = Some(at);
                self.timers.push(Reverse((at, Timer::Overlay)));
            }
        }
    }

    fn neighbour_up(&mut self, p: Arc<str>, now: Instant) {
        let spec = self
            .overlay
            .as_ref()
            .and_then(|o| o.spec(&p).cloned())
            .or_else(|| self.peers.get(&p).map(|x| x.spec.clone()));
        let Some(spec) = spec else {
            self.peer_down(p, now);
            return;
        };
        if self.state.add(spec.clone(), 0) {
            self.state_changed();
        }
        let name = self.ensure_peer(&spec, now);
        self.schedule_dial(&name, now);
        self.touch(&name, CloseReason::Disconnected);
    }

    fn neighbour_down(&mut self, p: Arc<str>) {
        if self.state.forget(&p) {
            self.state_changed();
        }
        if self.is_idle(&p) {
            self.forget(&p, CloseReason::Disconnected);
        } else {
            // A message still waits for it: keep the peer, no longer up.
            self.touch(&p, CloseReason::Disconnected);
        }
    }

    fn overlay_send(&mut self, p: Arc<str>, msg: Message<Arc<str>>, now: Instant) {
        let control = self.control;
        let conn = self
            .peers
            .get(&p)
            .and_then(|peer| peer.slots[control].iter().find_map(|s| s.conn))
            .map(|h| h.id);
        if let Some(conn) = conn {
            self.push_overlay(conn, &msg);
            return;
        }
        let Some(spec) = self.overlay.as_ref().and_then(|o| o.spec(&p).cloned()) else {
            self.peer_down(p, now);
            return;
        };
        if let Some(o) = self.overlay_mut() {
            let queue = o.outbox.entry(p).or_default();
            if queue.len() < OUTBOX_LIMIT {
                queue.push(msg);
            }
        }
        let name = self.ensure_peer(&spec, now);
        self.schedule_dial(&name, now);
    }

    fn push_overlay(&mut self, conn: ConnId, msg: &Message<Arc<str>>) {
        if let Some(body) = self.overlay.as_ref().and_then(|o| o.encode(msg)) {
            self.actions.push_back(Action::Overlay { conn, body });
        }
    }
}
