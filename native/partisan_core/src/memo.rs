//! Memos of what the NIF's delivery would otherwise decode for every message, one per I/O
//! thread: the local pid a frame is addressed to, and the atom a registered name's text is.
//!
//! Both are pure functions of their key while one engine runs (a local pid is an immediate
//! term, valid in any environment; an atom lives as long as the VM), so a hit gives exactly what
//! decoding gives. What a hit saves is the VM's atom table: making a local pid from its external
//! format (`binary_to_term`, which looks up the node's atom) and finding an existing atom both
//! take the table's lock and hash the text. In a profile of the 16×64 B burst, making the
//! target pid was 9 % of the receiving I/O thread's time; with the memo, 1 %. Each memo is
//! direct-mapped (one slot per hash, the newest key takes it): bounded memory, no eviction
//! policy, no lock.

use crate::wire::AtomText;

/// Slots of the pid memo: the receivers one I/O thread serves at once fit with room.
const PID_SLOTS: usize = 1024;
/// Slots of the atom memo.
const ATOM_SLOTS: usize = 512;
/// Longest atom text worth keeping (an atom has at most 255 characters, 1020 bytes in UTF-8).
const ATOM_TEXT_MAX: usize = 255;

/// A pid's number and serial, and the pid.
type PidSlot<P> = Option<(u32, u32, P)>;
/// An atom's text and the atom.
type AtomSlot<A> = Option<(AtomText, Box<[u8]>, A)>;

/// The memos of one thread, for the engine `owner` (an engine's pids and a restart's may differ).
/// `P` is the NIF's `LocalPid`, `A` its `Atom`.
pub struct Memo<P, A> {
    owner: u64,
    pids: Vec<PidSlot<P>>,
    atoms: Vec<AtomSlot<A>>,
}

impl<P: Copy, A: Copy> Memo<P, A> {
    /// Empty memos, owned by no engine yet.
    pub fn new() -> Memo<P, A> {
        Memo {
            owner: 0,
            pids: vec![None; PID_SLOTS],
            atoms: vec![None; ATOM_SLOTS],
        }
    }

    /// Starts over if the memos were filled for another engine.
    pub fn serve(&mut self, owner: u64) {
        if self.owner != owner {
            self.pids.iter_mut().for_each(|s| *s = None);
            self.atoms.iter_mut().for_each(|s| *s = None);
            self.owner = owner;
        }
    }

    /// The local pid with these numbers, decoded by `decode` the first time.
    pub fn pid(
        &mut self,
        number: u32,
        serial: u32,
        decode: impl FnOnce() -> Option<P>,
    ) -> Option<P> {
        let slot = &mut self.pids[pid_slot(number, serial)];
        if let Some((n, s, pid)) = *slot {
            if n == number && s == serial {
                return Some(pid);
            }
        }
        let pid = decode()?;
        *slot = Some((number, serial, pid));
        Some(pid)
    }

    /// The existing atom with this text, looked up by `lookup` the first time. Only atoms that
    /// exist are kept: a miss is asked again (it may exist later).
    pub fn atom(
        &mut self,
        enc: AtomText,
        text: &[u8],
        lookup: impl FnOnce() -> Option<A>,
    ) -> Option<A> {
        if text.len() > ATOM_TEXT_MAX {
            return lookup();
        }
        let slot = &mut self.atoms[atom_slot(enc, text)];
        if let Some((e, t, atom)) = slot {
            if *e == enc && **t == *text {
                return Some(*atom);
            }
        }
        let atom = lookup()?;
        *slot = Some((enc, text.into(), atom));
        Some(atom)
    }
}

impl<P: Copy, A: Copy> Default for Memo<P, A> {
    fn default() -> Memo<P, A> {
        Memo::new()
    }
}

fn pid_slot(number: u32, serial: u32) -> usize {
    // Pid numbers of live processes are mostly distinct in their low bits; the serial (which
    // changes only when numbers wrap) is mixed in so that a reused number does not always
    // collide with its predecessor.
    (number ^ serial.rotate_left(7)) as usize & (PID_SLOTS - 1)
}

fn atom_slot(enc: AtomText, text: &[u8]) -> usize {
    // FNV-1a: short keys, no need for a keyed hash (the memo only ever holds existing atoms, so a
    // peer that aims collisions at it costs us lookups, never memory).
    let mut h: u32 = 0x811c_9dc5 ^ (enc as u32);
    for &b in text {
        h = (h ^ b as u32).wrapping_mul(0x0100_0193);
    }
    h as usize & (ATOM_SLOTS - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_stay_in_range() {
        for n in [0u32, 1, 1023, 1024, u32::MAX] {
            for s in [0u32, 1, u32::MAX] {
                assert!(pid_slot(n, s) < PID_SLOTS);
            }
        }
        assert!(atom_slot(AtomText::Utf8, &[0xff; 300]) < ATOM_SLOTS);
        assert!(atom_slot(AtomText::Latin1, b"") < ATOM_SLOTS);
    }

    #[test]
    fn consecutive_pids_do_not_collide() {
        let slots: std::collections::HashSet<usize> = (100..100 + PID_SLOTS as u32)
            .map(|n| pid_slot(n, 0))
            .collect();
        assert_eq!(slots.len(), PID_SLOTS);
    }

    #[test]
    fn a_pid_is_decoded_once_until_its_slot_is_taken() {
        let mut m: Memo<u64, u64> = Memo::new();
        let mut decoded = 0;
        for _ in 0..3 {
            m.pid(7, 0, || {
                decoded += 1;
                Some(7)
            });
        }
        assert_eq!(decoded, 1);
        // Same slot, other numbers: decoded, and it takes the slot.
        let (n, s) = (7 + PID_SLOTS as u32, 0);
        assert_eq!(pid_slot(n, s), pid_slot(7, 0));
        m.pid(n, s, || {
            decoded += 1;
            Some(8)
        });
        m.pid(7, 0, || {
            decoded += 1;
            Some(7)
        });
        assert_eq!(decoded, 3);
    }

    #[test]
    fn misses_are_not_kept_and_a_new_owner_clears() {
        let mut m: Memo<u64, u64> = Memo::new();
        m.serve(1);
        assert!(m.atom(AtomText::Latin1, b"x", || None).is_none());
        assert!(m.pid(1, 0, || None).is_none());
        assert_eq!(m.atoms.iter().flatten().count(), 0);
        assert_eq!(m.pids.iter().flatten().count(), 0);
        m.pid(1, 0, || Some(1));
        m.serve(1);
        assert_eq!(m.pids.iter().flatten().count(), 1);
        m.serve(2);
        assert_eq!(m.pids.iter().flatten().count(), 0);
    }
}
