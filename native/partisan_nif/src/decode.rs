//! Decoding received messages as Distributed Erlang does: pids, ports and references are
//! rewritten to name their origin (`partisan_core::wire::term_rewrite`), and atoms a member's
//! message needs are created, within a budget that protects the atom table.
//!
//! The common message holds only atoms this node knows: it decodes with the VM's safe
//! `binary_to_term` at no extra cost. Only when that fails are the message's atoms looked up;
//! those not in the table are charged to the budget, and the message is decoded without the
//! safe flag. Past the budget (or with a budget of 0, the safe mode) the message is refused,
//! counted per peer and logged at most once per interval and peer.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use partisan_core::transport::{Delivery, Origin};
use partisan_core::wire::{walk, AtomText};
use rustler::types::tuple::make_tuple;
use rustler::{Atom, Encoder, Env, LocalPid, Term};

use crate::delivery::send_by_courier;

rustler::atoms! {
    partisan_event, atoms_refused, messages, atoms, budget, budget_left,
}

const VERSION: u8 = 131;

/// Atoms peers may still create, and what each peer created or had refused.
pub struct AtomBudget {
    total: u64,
    left: AtomicU64,
    created: AtomicU64,
    log_every: Duration,
    event_pid: LocalPid,
    peers: Mutex<HashMap<Arc<str>, PeerAtoms>>,
}

/// One peer's account (see `partisan_nif:peer_stats/1`).
#[derive(Debug, Default, Clone)]
pub struct PeerAtoms {
    pub atoms_created: u64,
    pub messages_refused: u64,
    pub atoms_refused: u64,
    /// Refusals since the last log line.
    unlogged_messages: u64,
    unlogged_atoms: u64,
    last_log: Option<Instant>,
}

impl AtomBudget {
    pub fn new(total: u64, log_every: Duration, event_pid: LocalPid) -> AtomBudget {
        AtomBudget {
            total,
            left: AtomicU64::new(total),
            created: AtomicU64::new(0),
            log_every,
            event_pid,
            peers: Mutex::new(HashMap::new()),
        }
    }

    pub fn left(&self) -> u64 {
        self.left.load(Ordering::Relaxed)
    }

    pub fn created(&self) -> u64 {
        self.created.load(Ordering::Relaxed)
    }

    pub fn peers(&self) -> Vec<(Arc<str>, PeerAtoms)> {
        let peers = self.peers.lock();
        peers.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Takes `n` atoms from the budget if it has them.
    fn take(&self, n: u64) -> bool {
        self.left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                left.checked_sub(n)
            })
            .is_ok()
    }

    fn refund(&self, n: u64) {
        self.left.fetch_add(n, Ordering::AcqRel);
    }

    fn charge(&self, from: &Origin, n: u64) {
        self.created.fetch_add(n, Ordering::Relaxed);
        let mut peers = self.peers.lock();
        peers.entry(from.node.clone()).or_default().atoms_created += n;
    }

    /// Counts a refused message and logs, at most once per interval for each peer, how many
    /// were refused since the last line.
    fn refuse(&self, from: &Origin, n: u64) {
        let report = {
            let mut peers = self.peers.lock();
            let p = peers.entry(from.node.clone()).or_default();
            p.messages_refused += 1;
            p.atoms_refused += n;
            p.unlogged_messages += 1;
            p.unlogged_atoms += n;
            let now = Instant::now();
            let due = p
                .last_log
                .is_none_or(|t| now.duration_since(t) >= self.log_every);
            if !due {
                return;
            }
            p.last_log = Some(now);
            let report = (p.unlogged_messages, p.unlogged_atoms);
            p.unlogged_messages = 0;
            p.unlogged_atoms = 0;
            report
        };
        let (node, total, left) = (from.node.clone(), self.total, self.left());
        // By the courier: this runs inside a delivery, which holds the thread's scratch
        // environment.
        send_by_courier(self.event_pid, move |e| {
            let info = Term::map_from_term_arrays(
                e,
                &[
                    messages().encode(e),
                    atoms().encode(e),
                    budget().encode(e),
                    budget_left().encode(e),
                ],
                &[
                    report.0.encode(e),
                    report.1.encode(e),
                    total.encode(e),
                    left.encode(e),
                ],
            )
            .unwrap_or_else(|_| Term::map_new(e));
            let node = Atom::from_str(e, &node)
                .map(|a| a.encode(e))
                .unwrap_or_else(|_| node.encode(e));
            let ev = make_tuple(e, &[atoms_refused().encode(e), node, info]);
            make_tuple(e, &[partisan_event().encode(e), ev])
        });
    }
}

/// Decodes the term at the start of `term` (version byte first; bytes after the term are
/// ignored) from `from`; returns it and the number of bytes it used.
pub fn decode_term<'a>(
    env: Env<'a>,
    budget: &AtomBudget,
    from: &Origin,
    term: &[u8],
) -> Result<(Term<'a>, usize), Delivery> {
    if term.first() != Some(&VERSION) {
        return Err(Delivery::Undecodable);
    }
    if !from.rewrites.is_empty() {
        let walked =
            walk(term, 1, &from.rewrites, &mut |_, _| {}).map_err(|_| Delivery::Undecodable)?;
        if let Some(body) = walked.rewritten {
            let mut owned = Vec::with_capacity(body.len() + 1);
            owned.push(VERSION);
            owned.extend_from_slice(&body);
            let (t, _) = decode_known(env, budget, from, &owned)?;
            return Ok((t, walked.end));
        }
    }
    decode_known(env, budget, from, term)
}

/// Decodes a term whose pids need no rewriting.
fn decode_known<'a>(
    env: Env<'a>,
    budget: &AtomBudget,
    from: &Origin,
    term: &[u8],
) -> Result<(Term<'a>, usize), Delivery> {
    if let Some(decoded) = env.binary_to_term(term) {
        return Ok(decoded);
    }
    // Not safely decodable: new atoms (or a fun, which safe mode also refuses). Count the atoms
    // this node does not have; the walk also checks the term is well formed.
    let mut new: HashSet<&[u8]> = HashSet::new();
    walk(term, 1, &[], &mut |text, enc| {
        if !new.contains(text) && !exists(env, text, enc) {
            new.insert(text);
        }
    })
    .map_err(|_| Delivery::Undecodable)?;
    let n = new.len() as u64;
    // Safe mode refuses whatever safe decoding refuses (new atoms, but also exports of unknown
    // functions, which are never collected either).
    if budget.total == 0 || (n > 0 && !budget.take(n)) {
        budget.refuse(from, n);
        return Err(Delivery::RefusedAtoms);
    }
    // SAFETY: `enif_binary_to_term` without the safe flag still checks the encoding; what the
    // flag adds (no new atoms, funs or exports) is what a member may do, as in Distributed
    // Erlang, and the atoms it creates were taken from the budget above.
    match unsafe { env.binary_to_term_trusted(term) } {
        Some(decoded) => {
            if n > 0 {
                budget.charge(from, n);
            }
            Ok(decoded)
        }
        None => {
            // Malformed in a way the walk let through (e.g. an atom's text): nothing was
            // created, so the budget gets its atoms back.
            budget.refund(n);
            Err(Delivery::Undecodable)
        }
    }
}

fn exists(env: Env, text: &[u8], enc: AtomText) -> bool {
    match enc {
        AtomText::Latin1 => Atom::existing_from_bytes(env, text).is_ok(),
        AtomText::Utf8 => Atom::existing_from_utf8_bytes(env, text).is_ok(),
    }
}
