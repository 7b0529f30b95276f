//! Membership glue: joins, leaves, gossip, and the maintenance task that keeps every member's
//! pool of connections filled.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::Rng;

use super::close::CloseReason;
use super::engine::Inner;
use super::peer::{Conn, Peer};
use super::Event;
use crate::membership::{NodeSpec, State};
use crate::wire::{encode_frame, FrameKind};

/// The membership state machine's data, behind `Inner::cluster`.
pub(crate) struct Cluster {
    pub state: State,
    pub incarnation: u64,
    /// Nodes we were asked to join and have not yet reached.
    pub pending: HashMap<String, NodeSpec>,
    local: NodeSpec,
    last_members: Vec<Arc<str>>,
}

impl Cluster {
    pub fn new(local: NodeSpec, incarnation: u64) -> Cluster {
        let mut state = State::new();
        state.add(local.clone(), incarnation);
        let last_members = vec![Arc::from(local.name.as_str())];
        Cluster {
            state,
            incarnation,
            pending: HashMap::new(),
            local,
            last_members,
        }
    }

    /// Starts a new life alone: used after leaving or being removed.
    fn reset(&mut self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        self.incarnation = (self.incarnation + 1).max(now);
        self.state = State::new();
        self.state.add(self.local.clone(), self.incarnation);
        self.pending.clear();
    }

    /// The member list if it changed since the last call.
    fn members_changed(&mut self) -> Option<Vec<Arc<str>>> {
        let now: Vec<Arc<str>> = self
            .state
            .members()
            .map(|e| Arc::from(e.spec.name.as_str()))
            .collect();
        if now == self.last_members {
            None
        } else {
            self.last_members = now.clone();
            Some(now)
        }
    }

    /// Gossip that thinks this node alive in an older life is stale: its sender has not heard
    /// that we left (or were removed, or restarted) and would pull us back into a cluster we are
    /// no longer part of. It is taken only from a node we asked to join. Gossip that knows we
    /// left comes from a node that dials us on purpose (it is re-adding us) and is taken.
    fn accepts_gossip(&self, me: &str, from: &str, remote: &State) -> bool {
        let stale = remote
            .get(me)
            .is_some_and(|e| !e.removed && e.incarnation < self.incarnation);
        !stale || self.pending.contains_key(from)
    }

    fn should_dial(&self, name: &str) -> bool {
        self.state.is_member(name) || self.pending.contains_key(name)
    }
}

pub(crate) fn join(inner: &Arc<Inner>, spec: NodeSpec) {
    inner
        .cluster
        .lock()
        .pending
        .insert(spec.name.clone(), spec.clone());
    ensure_peer(inner, &spec);
    inner.wake_maintenance.notify_one();
}

pub(crate) fn leave(inner: &Arc<Inner>, name: &str) {
    if name == &*inner.local_name {
        let mut cluster = inner.cluster.lock();
        cluster.state.remove(name);
        // Tell everyone before the connections close; the writers flush this frame first.
        broadcast(inner, &cluster);
        cluster.reset();
        let members = cluster.members_changed();
        drop(cluster);
        drop_all_peers(inner);
        notify_members(inner, members);
        inner.handler.event(Event::Left(inner.local_name.clone()));
    } else {
        let mut cluster = inner.cluster.lock();
        cluster.pending.remove(name);
        if cluster.state.remove(name) {
            broadcast(inner, &cluster);
            // The removed node is no longer a member, but it must hear the news too.
            if let Some(p) = inner.peer(name) {
                send_state(&p, inner.control, &cluster.state);
            }
        }
        let members = cluster.members_changed();
        drop(cluster);
        drop_peer(inner, name);
        notify_members(inner, members);
    }
}

/// Merges a peer's state; spreads it on if it taught us something.
pub(crate) fn on_gossip(inner: &Arc<Inner>, from: &str, remote: State) {
    let mut cluster = inner.cluster.lock();
    if !cluster.accepts_gossip(&inner.local_name, from, &remote) || !cluster.state.merge(&remote) {
        return;
    }
    let me = &*inner.local_name;
    let removed_me = cluster
        .state
        .get(me)
        .is_some_and(|e| e.removed && e.incarnation >= cluster.incarnation);
    if removed_me {
        cluster.reset();
        let members = cluster.members_changed();
        drop(cluster);
        drop_all_peers(inner);
        notify_members(inner, members);
        inner.handler.event(Event::Left(inner.local_name.clone()));
        return;
    }
    let live: Vec<NodeSpec> = cluster.state.members().map(|e| e.spec.clone()).collect();
    let removed: Vec<String> = {
        let peers = inner.peers.read();
        let gone = |n: &str| cluster.state.get(n).is_some_and(|e| e.removed);
        peers
            .keys()
            .filter(|n| gone(n))
            .map(|n| n.to_string())
            .collect()
    };
    for name in live.iter().map(|s| &s.name).chain(removed.iter()) {
        cluster.pending.remove(name);
    }
    broadcast(inner, &cluster);
    let members = cluster.members_changed();
    drop(cluster);
    for spec in live.iter().filter(|s| s.name != me) {
        ensure_peer(inner, spec);
    }
    removed.iter().for_each(|n| drop_peer(inner, n));
    notify_members(inner, members);
    inner.wake_maintenance.notify_one();
}

fn notify_members(inner: &Inner, members: Option<Vec<Arc<str>>>) {
    if let Some(m) = members {
        inner.handler.event(Event::Membership(m));
    }
}

fn gossip_frame(state: &State) -> bytes::Bytes {
    encode_frame(FrameKind::Gossip, &state.encode())
}

/// Queues our state on the control connection of every member and join target (never on
/// connections from nodes outside the cluster, which must not learn our state by accident).
fn broadcast(inner: &Inner, cluster: &Cluster) {
    let frame = gossip_frame(&cluster.state);
    let peers = inner.peers.read();
    for peer in peers.values().filter(|p| cluster.should_dial(&p.name)) {
        enqueue_control(peer, inner.control, &frame);
    }
}

fn send_state(peer: &Peer, control: usize, state: &State) {
    enqueue_control(peer, control, &gossip_frame(state));
}

fn enqueue_control(peer: &Peer, control: usize, frame: &bytes::Bytes) {
    for slot in peer.slots[control].iter() {
        if let Some(c) = slot.current() {
            c.enqueue(frame.clone());
        }
    }
}

/// The peer handle for `spec`, created if new; a changed spec (a restart on new addresses) is kept.
pub(crate) fn ensure_peer(inner: &Inner, spec: &NodeSpec) -> Arc<Peer> {
    if let Some(p) = inner.peer(&spec.name) {
        if *p.spec.read() != *spec {
            *p.spec.write() = spec.clone();
        }
        return p;
    }
    let mut peers = inner.peers.write();
    if let Some(p) = peers.get(spec.name.as_str()) {
        return p.clone();
    }
    let now = Instant::now();
    // The node with the smaller name dials data channels; the other waits a grace period first so
    // that simultaneous dials rarely happen (the handshake tie-break settles them when they do).
    let preferred = *inner.local_name < *spec.name;
    let grace = inner.cfg.connection_interval;
    let control = inner.control;
    let peer = Arc::new(Peer::new(spec.clone(), &inner.parallelism, |ch| {
        if ch == control || preferred {
            now
        } else {
            now + grace
        }
    }));
    peers.insert(peer.name.clone(), peer.clone());
    peer
}

fn drop_peer(inner: &Inner, name: &str) {
    if let Some(p) = inner.peers.write().remove(name) {
        retire(inner, &p);
    }
}

fn drop_all_peers(inner: &Inner) {
    let all: Vec<_> = inner.peers.write().drain().map(|(_, p)| p).collect();
    all.iter().for_each(|p| retire(inner, p));
}

fn retire(inner: &Inner, p: &Peer) {
    p.removed.store(true, Ordering::Release);
    p.all_conns()
        .iter()
        .for_each(|c| c.close(CloseReason::Removed));
    refresh_up(inner, p, CloseReason::Removed);
}

/// Recomputes whether `peer` is up and reports a change, under the peer's lock so that the
/// state and the order of `NodeUp` / `NodeDown` events always agree. Up: a live member with a
/// connection on both the control and the default channel (so the send path takes a message
/// at once). `why` is reported if the peer goes down.
pub(crate) fn refresh_up(inner: &Inner, peer: &Peer, why: CloseReason) {
    let _changing = peer.up_changes.lock();
    let now = peer.is_live()
        && !inner.is_stopping()
        && peer.has_connection(inner.control)
        && peer.has_connection(inner.default);
    if peer.up.load(Ordering::Acquire) == now {
        return;
    }
    if now {
        peer.generation.fetch_add(1, Ordering::AcqRel);
    }
    peer.up.store(now, Ordering::Release);
    let name = peer.name.clone();
    inner.handler.event(if now {
        Event::NodeUp(name)
    } else {
        Event::NodeDown(name, why)
    });
}

/// Closes and takes out every connection of `peer` from a life older than `incarnation`: a
/// restarted node replaces all of them at once, not one by one as their pings time out.
fn close_older_lives(peer: &Peer, incarnation: u64) {
    for slot in peer.slots.iter().flat_map(|ch| ch.iter()) {
        let mut cur = slot.conn.write();
        if cur
            .as_ref()
            .is_some_and(|c| c.remote_incarnation < incarnation)
        {
            if let Some(old) = cur.take() {
                old.close(CloseReason::Restarted);
            }
        }
    }
}

/// Would `new` replace `old` in a slot? A newer remote life always wins; for the same life, the
/// connection dialed by the node with the smaller name wins, so both ends keep the same one.
/// Two connections dialed the same way mean the older one is stale: the new one wins.
pub(crate) fn prefer(inner: &Inner, peer: &str, new: &Conn, old: &Conn) -> bool {
    if new.remote_incarnation != old.remote_incarnation {
        return new.remote_incarnation > old.remote_incarnation;
    }
    if new.dialed_by_me == old.dialed_by_me {
        return true;
    }
    let i_am_smaller = *inner.local_name < *peer;
    new.dialed_by_me == i_am_smaller
}

/// Puts an established connection into its slot, or refuses it (the caller then closes it).
pub(crate) fn install(inner: &Arc<Inner>, peer: &Arc<Peer>, conn: &Arc<Conn>) -> bool {
    if !peer.is_live() || inner.is_stopping() {
        return false;
    }
    let life = conn.remote_incarnation;
    // A peer whose clock stepped back restarts with a smaller incarnation: once no connection
    // of the newest life is left, the life it offers now is the newest.
    if life < peer.incarnation.load(Ordering::Acquire) && peer.all_conns().is_empty() {
        peer.incarnation.store(life, Ordering::Release);
    }
    let newest = peer.incarnation.fetch_max(life, Ordering::AcqRel);
    if life < newest {
        return false;
    }
    if life > newest {
        // No slot lock is held here: the sweep takes each slot's in turn.
        close_older_lives(peer, life);
    }
    let slot = &peer.slots[conn.channel][conn.index as usize];
    {
        let mut cur = slot.conn.write();
        // Checked again under the slot's lock: a newer life that arrived meanwhile has either
        // raised the mark (and we step aside) or will sweep this slot after us.
        if life < peer.incarnation.load(Ordering::Acquire) {
            return false;
        }
        if let Some(old) = cur.as_ref() {
            if !prefer(inner, &peer.name, conn, old) {
                return false;
            }
            old.close(if life > old.remote_incarnation {
                CloseReason::Restarted
            } else {
                CloseReason::Superseded
            });
        }
        *cur = Some(conn.clone());
    }
    // Retired meanwhile (removed, or this node left): nobody else will close it.
    if !peer.is_live() {
        conn.close(CloseReason::Removed);
        let mut cur = slot.conn.write();
        if cur.as_ref().is_some_and(|c| c.id == conn.id) {
            cur.take();
        }
        return false;
    }
    slot.failures.store(0, Ordering::Relaxed);
    if conn.channel == inner.control {
        let cluster = inner.cluster.lock();
        if cluster.should_dial(&peer.name) {
            conn.enqueue(gossip_frame(&cluster.state));
        }
        drop(cluster);
    }
    // Only a connection of an older life can have been lost here.
    refresh_up(inner, peer, CloseReason::Restarted);
    true
}

/// Takes a closed connection out of its slot (if it is still the one there).
pub(crate) fn uninstall(inner: &Arc<Inner>, peer: &Arc<Peer>, conn: &Arc<Conn>) {
    let slot = &peer.slots[conn.channel][conn.index as usize];
    let was_current = {
        let mut cur = slot.conn.write();
        match cur.as_ref() {
            Some(c) if c.id == conn.id => {
                *cur = None;
                true
            }
            _ => false,
        }
    };
    let why = conn.closed.get().unwrap_or(CloseReason::PeerClosed);
    inner.stats.count_close(why);
    refresh_up(inner, peer, why);
    if was_current {
        let delay = backoff(inner, 0);
        *slot.not_before.lock() = Instant::now() + delay.min(inner.cfg.connection_interval / 2);
        inner.wake_maintenance.notify_one();
    }
}

/// Exponential backoff from the connection interval, capped at 8x, plus random jitter.
pub(crate) fn backoff(inner: &Inner, failures: u32) -> Duration {
    let base = inner.cfg.connection_interval * (1u32 << failures.min(3));
    let jitter_ms = inner.cfg.connection_jitter.as_millis() as u64;
    let jitter = if jitter_ms == 0 {
        0
    } else {
        rand::thread_rng().gen_range(0..=jitter_ms)
    };
    base + Duration::from_millis(jitter)
}

/// Dials every empty slot of every member and join target whose backoff has expired.
pub(crate) async fn maintenance_loop(inner: Arc<Inner>) {
    let tick = (inner.cfg.connection_interval / 4)
        .clamp(Duration::from_millis(20), Duration::from_secs(1));
    let mut shutdown = inner.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = inner.wake_maintenance.notified() => {}
            _ = shutdown.changed() => return,
        }
        if inner.is_stopping() {
            return;
        }
        let targets: Vec<Arc<Peer>> = {
            let cluster = inner.cluster.lock();
            inner
                .peers
                .read()
                .values()
                .filter(|p| cluster.should_dial(&p.name))
                .cloned()
                .collect()
        };
        let now = Instant::now();
        for peer in targets {
            for (ch, slots) in peer.slots.iter().enumerate() {
                for (idx, slot) in slots.iter().enumerate() {
                    let idle = slot.conn.read().is_none() && !slot.dialing.load(Ordering::Acquire);
                    if idle
                        && *slot.not_before.lock() <= now
                        && !slot.dialing.swap(true, Ordering::AcqRel)
                    {
                        tokio::spawn(super::conn::dial(
                            inner.clone(),
                            peer.clone(),
                            ch,
                            idx as u16,
                        ));
                    }
                }
            }
        }
    }
}

/// Sends our state to every member every `periodic_interval`, repairing anything gossip missed.
pub(crate) async fn gossip_loop(inner: Arc<Inner>) {
    let mut shutdown = inner.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(inner.cfg.periodic_interval) => {}
            _ = shutdown.changed() => return,
        }
        broadcast(&inner, &inner.cluster.lock());
    }
}

pub(crate) fn incarnation(inner: &Inner) -> u64 {
    inner.cluster.lock().incarnation
}

pub(crate) fn is_removed(inner: &Inner, name: &str, incarnation: u64) -> bool {
    inner.cluster.lock().state.is_removed(name, incarnation)
}
