//! Plumtree broadcast in the driver: one [`Plumtree`] per handler module (Partisan's
//! `broadcast_mods`), whose neighbours are the peers that are up (every member with the full
//! mesh, the active view with HyParView), and the wire form of its messages. Message ids and
//! payloads are opaque bytes here (the handler's terms in external format); the handler's
//! callbacks run in Erlang, on what [`Broadcasts::poll`] hands out.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::plumtree::{self, Action, Input, Message, Plumtree};
use crate::wire::{validate_node_name, Reader, WireError, Writer};

/// A broadcast as one node's core sees it.
pub type Tree = Plumtree<Arc<str>, Bytes, Bytes>;

/// The eager and the lazy peers of one tree.
pub type TreePeers = (Vec<Arc<str>>, Vec<Arc<str>>);

/// A decoded frame body: the handler module and the message.
pub type Decoded = (String, Message<Arc<str>, Bytes, Bytes>);

/// Most ids one `IHave` may carry.
pub const MAX_IHAVE: usize = 4096;

/// What the broadcast cores ask of the driver.
#[derive(Debug)]
pub enum Out {
    /// Send this frame body (a `Broadcast` frame of the module) to the peer.
    Send {
        /// The peer.
        to: Arc<str>,
        /// The handler module, whose channel carries the frame.
        module: Arc<str>,
        /// The frame body.
        body: Vec<u8>,
    },
    /// A payload arrived for the first time: hand it to the module's handler.
    Deliver {
        /// The handler module.
        module: Arc<str>,
        /// The node that broadcast it.
        root: Arc<str>,
        /// Its id (external term format).
        id: Bytes,
        /// Its payload (external term format).
        data: Bytes,
    },
}

/// Every handler module's Plumtree.
#[derive(Debug)]
pub struct Broadcasts {
    me: Arc<str>,
    trees: BTreeMap<Arc<str>, Tree>,
}

impl Broadcasts {
    /// The trees of `modules` for node `me`.
    pub fn new(me: Arc<str>, modules: &[String], cfg: plumtree::Config, now: Instant) -> Self {
        let trees = modules
            .iter()
            .map(|m| {
                let tree = Plumtree::new(me.clone(), cfg.clone(), now);
                (Arc::from(m.as_str()), tree)
            })
            .collect();
        Broadcasts { me, trees }
    }

    /// A neighbour came up or went down, for every module.
    pub fn neighbour(&mut self, peer: &Arc<str>, up: bool, now: Instant) {
        for t in self.trees.values_mut() {
            let input = if up {
                Input::NeighborUp(peer.clone())
            } else {
                Input::NeighborDown(peer.clone())
            };
            t.handle(input, now);
        }
    }

    /// Broadcasts a message of `module` from this node; false if there is no such module.
    pub fn broadcast(&mut self, module: &str, id: Bytes, data: Bytes, now: Instant) -> bool {
        match self.trees.get_mut(module) {
            Some(t) => {
                t.handle(Input::Broadcast(id, data), now);
                true
            }
            None => false,
        }
    }

    /// A `Broadcast` frame from `from`. Frames for modules this node has no handler for are
    /// ignored (`Ok(false)`, counted by the caller).
    pub fn received(
        &mut self,
        from: &Arc<str>,
        body: &[u8],
        now: Instant,
    ) -> Result<bool, WireError> {
        let (module, msg) = decode(body)?;
        let Some(t) = self.trees.get_mut(module.as_str()) else {
            return Ok(false);
        };
        t.handle(Input::Received(from.clone(), msg), now);
        Ok(true)
    }

    /// The earliest time any tree wants [`Broadcasts::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.trees.values().filter_map(|t| t.poll_timeout()).min()
    }

    /// Runs the lazy ticks and grafts due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        for t in self.trees.values_mut() {
            if t.poll_timeout().is_some_and(|at| at <= now) {
                t.handle_timeout(now);
            }
        }
    }

    /// Everything the trees asked for since the last call, in order per module. A node's own
    /// broadcasts are not delivered back to it: its handler holds them already.
    pub fn poll(&mut self) -> Vec<Out> {
        let mut out = Vec::new();
        for (module, t) in self.trees.iter_mut() {
            while let Some(a) = t.poll_action() {
                match a {
                    Action::Send(to, msg) => out.push(Out::Send {
                        to,
                        module: module.clone(),
                        body: encode(module, &msg),
                    }),
                    Action::Deliver { root, .. } if root == self.me => {}
                    Action::Deliver { root, id, data } => out.push(Out::Deliver {
                        module: module.clone(),
                        root,
                        id,
                        data,
                    }),
                }
            }
        }
        out
    }

    /// The eager and the lazy peers of `root`'s tree for `module` (Partisan's
    /// `broadcast_members` and debugging functions).
    pub fn peers(&self, module: &str, root: &str) -> Option<TreePeers> {
        let t = self.trees.get(module)?;
        let root: Arc<str> = Arc::from(root);
        let eager = t.eager(&root);
        let lazy = t.lazy(&root);
        Some((eager.into_iter().collect(), lazy.into_iter().collect()))
    }
}

/// The frame body: module, then a tag and the message's fields (see `docs/wire.md`).
pub fn encode(module: &str, msg: &Message<Arc<str>, Bytes, Bytes>) -> Vec<u8> {
    let mut w = Writer::new();
    w.short_str(module);
    match msg {
        Message::Gossip {
            root,
            id,
            data,
            round,
        } => {
            w.u8(1).short_str(root).u32(*round);
            blob(&mut w, id);
            blob(&mut w, data);
        }
        Message::IHave { root, ids } => {
            let ids = &ids[..ids.len().min(MAX_IHAVE)];
            w.u8(2).short_str(root).u32(ids.len() as u32);
            ids.iter().for_each(|id| blob(&mut w, id));
        }
        Message::Graft { root, id } => {
            w.u8(3).short_str(root);
            blob(&mut w, id);
        }
        Message::Prune { root } => {
            w.u8(4).short_str(root);
        }
    }
    w.buf
}

fn blob(w: &mut Writer, b: &[u8]) {
    w.u32(b.len() as u32).bytes(b);
}

fn read_blob(r: &mut Reader<'_>) -> Result<Bytes, WireError> {
    let n = r.u32()? as usize;
    Ok(Bytes::copy_from_slice(r.bytes(n)?))
}

fn read_root(r: &mut Reader<'_>) -> Result<Arc<str>, WireError> {
    let root = r.short_str()?;
    validate_node_name(root)?;
    Ok(Arc::from(root))
}

/// Parses a frame body written by [`encode`].
pub fn decode(body: &[u8]) -> Result<Decoded, WireError> {
    let mut r = Reader::new(body);
    let module = r.short_str()?.to_owned();
    let msg = match r.u8()? {
        1 => {
            let root = read_root(&mut r)?;
            let round = r.u32()?;
            let id = read_blob(&mut r)?;
            let data = read_blob(&mut r)?;
            Message::Gossip {
                root,
                id,
                data,
                round,
            }
        }
        2 => {
            let root = read_root(&mut r)?;
            let n = r.u32()? as usize;
            if n > MAX_IHAVE {
                return Err(WireError::Invalid("ihave count"));
            }
            let ids = (0..n)
                .map(|_| read_blob(&mut r))
                .collect::<Result<_, _>>()?;
            Message::IHave { root, ids }
        }
        3 => {
            let root = read_root(&mut r)?;
            Message::Graft {
                root,
                id: read_blob(&mut r)?,
            }
        }
        4 => Message::Prune {
            root: read_root(&mut r)?,
        },
        _ => return Err(WireError::Invalid("broadcast message")),
    };
    r.finish()?;
    Ok((module, msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_bad_input_is_an_error() {
        let root: Arc<str> = Arc::from("a@h");
        let id = Bytes::from_static(b"\x83d\x00\x01k");
        let msgs = vec![
            Message::Gossip {
                root: root.clone(),
                id: id.clone(),
                data: Bytes::from_static(b"payload"),
                round: 3,
            },
            Message::IHave {
                root: root.clone(),
                ids: vec![id.clone(), id.clone()],
            },
            Message::Graft {
                root: root.clone(),
                id,
            },
            Message::Prune { root },
        ];
        for m in msgs {
            let body = encode("kv", &m);
            assert_eq!(decode(&body).unwrap(), ("kv".to_owned(), m));
            for cut in 0..body.len() {
                assert!(decode(&body[..cut]).is_err());
            }
        }
        // A root that is no node name is refused.
        let bad = encode(
            "kv",
            &Message::Prune {
                root: Arc::from("not a name"),
            },
        );
        assert!(decode(&bad).is_err());
    }

    #[test]
    fn a_broadcast_reaches_a_neighbour_and_comes_back_pruned() {
        let now = Instant::now();
        let mods = vec!["kv".to_owned()];
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a@h"), Arc::from("b@h"));
        let mut na = Broadcasts::new(a.clone(), &mods, plumtree::Config::default(), now);
        let mut nb = Broadcasts::new(b.clone(), &mods, plumtree::Config::default(), now);
        na.neighbour(&b, true, now);
        nb.neighbour(&a, true, now);
        assert!(!na.broadcast("other", Bytes::new(), Bytes::new(), now));
        assert!(na.broadcast(
            "kv",
            Bytes::from_static(b"1"),
            Bytes::from_static(b"x"),
            now
        ));
        let out = na.poll();
        // No delivery to the broadcaster itself; one payload to b.
        let [Out::Send { to, module, body }] = &out[..] else {
            panic!("unexpected {out:?}");
        };
        assert_eq!(to, &b);
        assert_eq!(&**module, "kv");
        assert!(nb.received(&a, body, now).unwrap());
        let got = nb.poll();
        assert!(
            matches!(&got[..], [Out::Deliver { root, data, .. }] if *root == a && &data[..] == b"x")
        );
        // The same payload again is a duplicate: b prunes the link.
        assert!(nb.received(&a, body, now).unwrap());
        assert!(matches!(&nb.poll()[..], [Out::Send { to, .. }] if *to == a));
        // Frames for a module we have no handler for are ignored.
        let other = encode("other", &Message::Prune { root: a.clone() });
        assert!(!nb.received(&a, &other, now).unwrap());
    }
}
