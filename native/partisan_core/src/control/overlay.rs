//! HyParView inside the control core: the [`HyParView`] state machine over node names, the
//! specifications of the nodes it names (so that any of them can be dialed), the messages
//! waiting for a connection, and the wire form of its messages.
//!
//! HyParView talks to nodes outside its active view (a neighbour request to a passive peer, a
//! shuffle reply to its origin). The core opens a connection on the control channel only for
//! those, sends what waits, and closes it once it has been idle for a while; only neighbours get
//! every channel and count as up.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use crate::hyparview::{self, HyParView, Message, Tag};
use crate::membership::NodeSpec;
use crate::wire::{Reader, WireError, Writer};

/// Most nodes one overlay message may name (shuffle samples are a handful).
pub const MAX_SAMPLE: usize = 64;

/// Longest tag, in bytes (tags are atoms).
pub const MAX_TAG: usize = 255;

/// The overlay part of a node's state.
#[derive(Debug)]
pub(super) struct Overlay {
    pub hv: HyParView<Arc<str>>,
    /// What is known of every node the overlay may name, bounded by `max_members`.
    directory: HashMap<Arc<str>, NodeSpec>,
    /// Messages for peers with no control connection yet, in order.
    pub outbox: BTreeMap<Arc<str>, Vec<Message<Arc<str>>>>,
    /// The nodes this one joined through, to join again if it is ever stranded.
    pub contacts: BTreeMap<Arc<str>, NodeSpec>,
    capacity: usize,
}

/// Most join contacts remembered.
pub const MAX_CONTACTS: usize = 16;

impl Overlay {
    /// The overlay of the node `local` (its spec goes into the shuffles it starts).
    pub fn new(local: &NodeSpec, cfg: hyparview::Config, capacity: usize, now: Instant) -> Overlay {
        let me: Arc<str> = Arc::from(local.name.as_str());
        Overlay {
            hv: HyParView::new(me.clone(), cfg, now),
            directory: HashMap::from([(me, local.clone())]),
            outbox: BTreeMap::new(),
            contacts: BTreeMap::new(),
            capacity: capacity.max(1) + 1,
        }
    }

    /// The spec of `name`, if known.
    pub fn spec(&self, name: &str) -> Option<&NodeSpec> {
        self.directory.get(name)
    }

    /// Records a node's spec and returns its shared name; `None` when the directory is full of
    /// nodes the overlay still needs (the caller counts the refusal).
    pub fn learn(&mut self, spec: &NodeSpec) -> Option<Arc<str>> {
        if let Some((name, known)) = self.directory.get_key_value(spec.name.as_str()) {
            let name = name.clone();
            if known != spec {
                self.directory.insert(name.clone(), spec.clone());
            }
            return Some(name);
        }
        if self.directory.len() >= self.capacity {
            self.prune();
            if self.directory.len() >= self.capacity {
                return None;
            }
        }
        let name: Arc<str> = Arc::from(spec.name.as_str());
        self.directory.insert(name.clone(), spec.clone());
        Some(name)
    }

    /// Forgets the specs of nodes in neither view and with nothing waiting.
    fn prune(&mut self) {
        let hv = &self.hv;
        let outbox = &self.outbox;
        self.directory.retain(|n, _| {
            hv.me() == n
                || self.contacts.contains_key(n)
                || hv.active().contains(n)
                || hv.passive().contains(n)
                || outbox.contains_key(n)
        });
    }

    /// The message's wire form, each node it names with its spec. `None` if a named node's spec
    /// is unknown (it was pruned): the message cannot be sent.
    pub fn encode(&self, msg: &Message<Arc<str>>) -> Option<Vec<u8>> {
        let mut w = Writer::new();
        match msg {
            Message::Join { tag } => {
                encode_tag(w.u8(1), tag.as_ref());
            }
            Message::ForwardJoin { joiner, tag, ttl } => {
                w.u8(2).u32(*ttl);
                self.spec(joiner)?.encode(&mut w);
                encode_tag(&mut w, tag.as_ref());
            }
            Message::Neighbor { high, tag } => {
                encode_tag(w.u8(3).u8(*high as u8), tag.as_ref());
            }
            Message::NeighborReply { accepted, tag } => {
                encode_tag(w.u8(4).u8(*accepted as u8), tag.as_ref());
            }
            Message::JoinReply { tag } => {
                encode_tag(w.u8(8), Some(tag));
            }
            Message::Disconnect { alive } => {
                w.u8(5).u8(*alive as u8);
            }
            Message::Shuffle { origin, ttl, nodes } => {
                w.u8(6).u32(*ttl);
                self.spec(origin)?.encode(&mut w);
                self.encode_sample(&mut w, nodes);
            }
            Message::ShuffleReply { nodes } => {
                w.u8(7);
                self.encode_sample(&mut w, nodes);
            }
            Message::Optimize { id, old, tag } => {
                w.u8(9).u64(*id);
                self.spec(old)?.encode(&mut w);
                encode_tag(&mut w, tag.as_ref());
            }
            Message::Replace { id, initiator, old } => {
                w.u8(10).u64(*id);
                self.spec(initiator)?.encode(&mut w);
                self.spec(old)?.encode(&mut w);
            }
            Message::Switch { id, initiator, tag } => {
                w.u8(11).u64(*id);
                self.spec(initiator)?.encode(&mut w);
                encode_tag(&mut w, tag.as_ref());
            }
            Message::SwitchReply { id, accepted, tag } => {
                encode_tag(w.u8(12).u64(*id).u8(*accepted as u8), tag.as_ref());
            }
            Message::ReplaceReply { id, accepted } => {
                w.u8(13).u64(*id).u8(*accepted as u8);
            }
            Message::OptimizeReply { id, accepted, tag } => {
                encode_tag(w.u8(14).u64(*id).u8(*accepted as u8), tag.as_ref());
            }
        }
        Some(w.buf)
    }

    /// A sample's nodes with their specs; nodes whose spec is unknown are left out.
    fn encode_sample(&self, w: &mut Writer, nodes: &[Arc<str>]) {
        let known: Vec<&NodeSpec> = nodes
            .iter()
            .filter_map(|n| self.spec(n))
            .take(MAX_SAMPLE)
            .collect();
        w.u16(known.len() as u16);
        known.into_iter().for_each(|s| s.encode(w));
    }

    /// Parses a message and learns the specs it carries. Nodes the directory has no room for
    /// are left out of samples (counted in `refused`); a walk whose subject has no room is
    /// dropped (`None`).
    pub fn decode(
        &mut self,
        body: &[u8],
        refused: &mut u64,
    ) -> Result<Option<Message<Arc<str>>>, WireError> {
        let mut r = Reader::new(body);
        let flag = |r: &mut Reader<'_>| match r.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(WireError::Invalid("overlay flag")),
        };
        let parsed = match r.u8()? {
            1 => Parsed::Ready(Message::Join {
                tag: decode_tag(&mut r)?,
            }),
            2 => {
                let ttl = r.u32()?;
                let joiner = NodeSpec::decode(&mut r)?;
                Parsed::Walk(ttl, joiner, Err(decode_tag(&mut r)?))
            }
            3 => Parsed::Ready(Message::Neighbor {
                high: flag(&mut r)?,
                tag: decode_tag(&mut r)?,
            }),
            4 => Parsed::Ready(Message::NeighborReply {
                accepted: flag(&mut r)?,
                tag: decode_tag(&mut r)?,
            }),
            8 => match decode_tag(&mut r)? {
                Some(tag) => Parsed::Ready(Message::JoinReply { tag }),
                None => return Err(WireError::Invalid("overlay join reply")),
            },
            5 => Parsed::Ready(Message::Disconnect {
                alive: flag(&mut r)?,
            }),
            6 => {
                let ttl = r.u32()?;
                let origin = NodeSpec::decode(&mut r)?;
                Parsed::Walk(ttl, origin, Ok(decode_sample(&mut r)?))
            }
            7 => Parsed::Sample(decode_sample(&mut r)?),
            9 => {
                let id = r.u64()?;
                let old = NodeSpec::decode(&mut r)?;
                let tag = decode_tag(&mut r)?;
                Parsed::Named(
                    vec![old],
                    Box::new(move |mut n| Message::Optimize {
                        id,
                        old: n.remove(0),
                        tag,
                    }),
                )
            }
            10 => {
                let id = r.u64()?;
                let named = vec![NodeSpec::decode(&mut r)?, NodeSpec::decode(&mut r)?];
                Parsed::Named(
                    named,
                    Box::new(move |mut n| {
                        let old = n.remove(1);
                        Message::Replace {
                            id,
                            initiator: n.remove(0),
                            old,
                        }
                    }),
                )
            }
            11 => {
                let id = r.u64()?;
                let initiator = NodeSpec::decode(&mut r)?;
                let tag = decode_tag(&mut r)?;
                Parsed::Named(
                    vec![initiator],
                    Box::new(move |mut n| Message::Switch {
                        id,
                        initiator: n.remove(0),
                        tag,
                    }),
                )
            }
            12 => Parsed::Ready(Message::SwitchReply {
                id: r.u64()?,
                accepted: flag(&mut r)?,
                tag: decode_tag(&mut r)?,
            }),
            13 => Parsed::Ready(Message::ReplaceReply {
                id: r.u64()?,
                accepted: flag(&mut r)?,
            }),
            14 => Parsed::Ready(Message::OptimizeReply {
                id: r.u64()?,
                accepted: flag(&mut r)?,
                tag: decode_tag(&mut r)?,
            }),
            _ => return Err(WireError::Invalid("overlay message")),
        };
        r.finish()?;
        let mut names = |specs: Vec<NodeSpec>, this: &mut Overlay| -> Vec<Arc<str>> {
            specs
                .iter()
                .filter_map(|s| {
                    let n = this.learn(s);
                    *refused += n.is_none() as u64;
                    n
                })
                .collect()
        };
        Ok(match parsed {
            Parsed::Ready(m) => Some(m),
            Parsed::Sample(specs) => Some(Message::ShuffleReply {
                nodes: names(specs, self),
            }),
            Parsed::Named(specs, build) => {
                let wanted = specs.len();
                let known = names(specs, self);
                // (A step whose nodes have no room is dropped; the exchange gives up.)
                (known.len() == wanted).then(|| build(known))
            }
            Parsed::Walk(ttl, subject, sample) => {
                let Some(who) = self.learn(&subject) else {
                    *refused += 1;
                    return Ok(None);
                };
                Some(match sample {
                    Err(tag) => Message::ForwardJoin {
                        joiner: who,
                        tag,
                        ttl,
                    },
                    Ok(specs) => Message::Shuffle {
                        origin: who,
                        ttl,
                        nodes: names(specs, self),
                    },
                })
            }
        })
    }
}

enum Parsed {
    Ready(Message<Arc<str>>),
    /// A walk about a node: a shuffle's sample, or a join's tag.
    Walk(u32, NodeSpec, Result<Vec<NodeSpec>, Option<Tag>>),
    Sample(Vec<NodeSpec>),
    /// An X-BOT step: the nodes it names, and how to build it from their names.
    Named(Vec<NodeSpec>, Build),
}

/// Builds a message from the names of the nodes it names, in order.
type Build = Box<dyn FnOnce(Vec<Arc<str>>) -> Message<Arc<str>>>;

/// A tag as a flag, then its length and text.
fn encode_tag(w: &mut Writer, tag: Option<&Tag>) {
    match tag {
        None => {
            w.u8(0);
        }
        Some(t) => {
            // (The engine takes no longer tag: this only keeps the length byte right.)
            let mut n = t.len().min(MAX_TAG);
            while !t.is_char_boundary(n) {
                n -= 1;
            }
            w.u8(1).u8(n as u8).bytes(&t.as_bytes()[..n]);
        }
    }
}

fn decode_tag(r: &mut Reader<'_>) -> Result<Option<Tag>, WireError> {
    match r.u8()? {
        0 => Ok(None),
        1 => {
            let n = r.u8()? as usize;
            let text = std::str::from_utf8(r.bytes(n)?).map_err(|_| WireError::Invalid("tag"))?;
            Ok(Some(Arc::from(text)))
        }
        _ => Err(WireError::Invalid("tag flag")),
    }
}

fn decode_sample(r: &mut Reader<'_>) -> Result<Vec<NodeSpec>, WireError> {
    let n = r.u16()? as usize;
    if n > MAX_SAMPLE {
        return Err(WireError::Invalid("overlay sample size"));
    }
    (0..n).map(|_| NodeSpec::decode(r)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, port: u16) -> NodeSpec {
        NodeSpec {
            name: name.to_owned(),
            listen_addrs: vec![([127, 0, 0, 1], port).into()],
            channels: vec![],
        }
    }

    #[test]
    fn messages_survive_the_wire_with_their_specs() {
        let now = Instant::now();
        let mut a = Overlay::new(&spec("a@h", 9), hyparview::Config::default(), 100, now);
        let names: Vec<Arc<str>> = (0..5)
            .map(|i| a.learn(&spec(&format!("n{i}@h"), i)).unwrap())
            .collect();
        let tag = |t: &str| Some(Arc::<str>::from(t));
        let msgs = vec![
            Message::Join { tag: None },
            Message::Join { tag: tag("server") },
            Message::ForwardJoin {
                joiner: names[0].clone(),
                tag: tag("edge"),
                ttl: 6,
            },
            Message::ForwardJoin {
                joiner: names[0].clone(),
                tag: None,
                ttl: 0,
            },
            Message::Neighbor {
                high: true,
                tag: None,
            },
            Message::Neighbor {
                high: false,
                tag: tag(""),
            },
            Message::NeighborReply {
                accepted: false,
                tag: tag("db"),
            },
            Message::JoinReply { tag: "x".into() },
            Message::Disconnect { alive: true },
            Message::Shuffle {
                origin: names[1].clone(),
                ttl: 3,
                nodes: names[2..].to_vec(),
            },
            Message::ShuffleReply {
                nodes: names.clone(),
            },
            Message::Optimize {
                id: u64::MAX,
                old: names[0].clone(),
                tag: tag("db"),
            },
            Message::Replace {
                id: 1,
                initiator: names[1].clone(),
                old: names[2].clone(),
            },
            Message::Switch {
                id: 2,
                initiator: names[0].clone(),
                tag: None,
            },
            Message::SwitchReply {
                id: 3,
                accepted: true,
                tag: None,
            },
            Message::ReplaceReply {
                id: 4,
                accepted: false,
            },
            Message::OptimizeReply {
                id: 5,
                accepted: true,
                tag: tag("hub"),
            },
        ];
        for m in msgs {
            let body = a.encode(&m).unwrap();
            let mut b = Overlay::new(&spec("b@h", 9), hyparview::Config::default(), 100, now);
            let mut refused = 0;
            assert_eq!(b.decode(&body, &mut refused).unwrap(), Some(m));
            assert_eq!(refused, 0);
            // Every node named came with its spec.
            for n in &names {
                if b.spec(n).is_some() {
                    assert_eq!(b.spec(n), a.spec(n));
                }
            }
            // Truncations and trailing bytes are errors, never panics.
            for cut in 0..body.len() {
                assert!(b.decode(&body[..cut], &mut refused).is_err());
            }
            let mut long = body.clone();
            long.push(0);
            assert!(b.decode(&long, &mut refused).is_err());
        }
    }

    #[test]
    fn a_full_directory_refuses_and_counts() {
        let now = Instant::now();
        let mut a = Overlay::new(&spec("a@h", 9), hyparview::Config::default(), 100, now);
        let names: Vec<Arc<str>> = (0..5)
            .map(|i| a.learn(&spec(&format!("n{i}@h"), i)).unwrap())
            .collect();
        let body = a.encode(&Message::ShuffleReply { nodes: names }).unwrap();
        let mut small = Overlay::new(&spec("b@h", 9), hyparview::Config::default(), 2, now);
        let mut refused = 0;
        let Some(Message::ShuffleReply { nodes }) = small.decode(&body, &mut refused).unwrap()
        else {
            panic!("not a shuffle reply");
        };
        // Nodes in neither view are pruned to make room, so the latest two are kept.
        assert!(nodes.len() <= 5 && refused + nodes.len() as u64 >= 5);
        assert!(small.directory.len() <= 3);
    }
}
