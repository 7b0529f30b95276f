//! Conversions between Erlang terms and `partisan_core` values.

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use partisan_core::membership::{Compression, NodeSpec};
use partisan_core::wire::{parse_pid, parse_pid_text, Target};
use rustler::types::tuple::{get_tuple, make_tuple};
use rustler::{Atom, Encoder, Env, Error, NifResult, OwnedEnv, Term};

rustler::atoms! {
    ip, port, name, listen_addrs, channels, parallelism, monotonic, compression, call,
}

pub fn atom_text(term: Term) -> NifResult<String> {
    Atom::from_term(term)?
        .to_term(term.get_env())
        .atom_to_string()
}

fn decode_ip(term: Term) -> NifResult<IpAddr> {
    let parts = get_tuple(term)?;
    match parts.len() {
        4 => {
            let b: Vec<u8> = parts
                .iter()
                .map(|p| p.decode::<u8>())
                .collect::<NifResult<_>>()?;
            Ok(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])))
        }
        8 => {
            let s: Vec<u16> = parts
                .iter()
                .map(|p| p.decode::<u16>())
                .collect::<NifResult<_>>()?;
            Ok(IpAddr::V6(Ipv6Addr::new(
                s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7],
            )))
        }
        _ => Err(Error::BadArg),
    }
}

fn encode_ip<'a>(env: Env<'a>, addr: IpAddr) -> Term<'a> {
    match addr {
        IpAddr::V4(v4) => {
            let parts: Vec<Term> = v4.octets().iter().map(|b| b.encode(env)).collect();
            make_tuple(env, &parts)
        }
        IpAddr::V6(v6) => {
            let parts: Vec<Term> = v6.segments().iter().map(|s| s.encode(env)).collect();
            make_tuple(env, &parts)
        }
    }
}

/// `[#{ip := inet:ip_address(), port := inet:port_number()}]`
pub fn decode_listen_addrs(term: Term) -> NifResult<Vec<SocketAddr>> {
    let list: Vec<Term> = term.decode()?;
    list.into_iter()
        .map(|m| {
            Ok(SocketAddr::new(
                decode_ip(m.map_get(ip())?)?,
                m.map_get(port())?.decode()?,
            ))
        })
        .collect()
}

pub fn encode_listen_addrs<'a>(env: Env<'a>, addrs: &[SocketAddr]) -> Term<'a> {
    let items: Vec<Term> = addrs
        .iter()
        .map(|a| {
            Term::map_from_term_arrays(
                env,
                &[ip().encode(env), port().encode(env)],
                &[encode_ip(env, a.ip()), a.port().encode(env)],
            )
            .unwrap_or_else(|_| Term::map_new(env))
        })
        .collect();
    items.encode(env)
}

/// A node spec as `partisan:node_spec()`. Channel names become atoms only if they already exist:
/// a channel this node does not know cannot be used here anyway.
pub fn encode_node_spec<'a>(env: Env<'a>, spec: &NodeSpec) -> NifResult<Term<'a>> {
    let mut chans = Term::map_new(env);
    for c in &spec.channels {
        let Ok(cname) = Atom::existing_from_bytes(env, c.name.as_bytes()) else {
            continue;
        };
        let comp = match c.compression {
            Compression::Off => false.encode(env),
            Compression::On => true.encode(env),
            Compression::Level(l) => l.encode(env),
        };
        let opts = Term::map_from_term_arrays(
            env,
            &[
                parallelism().encode(env),
                monotonic().encode(env),
                compression().encode(env),
            ],
            &[c.parallelism.encode(env), c.monotonic.encode(env), comp],
        )?;
        chans = chans.map_put(cname, opts)?;
    }
    Term::map_from_term_arrays(
        env,
        &[
            name().encode(env),
            listen_addrs().encode(env),
            channels().encode(env),
        ],
        &[
            Atom::from_str(env, &spec.name)?.encode(env),
            encode_listen_addrs(env, &spec.listen_addrs),
            chans,
        ],
    )
}

/// The destination of `send/6`: a registered name, a pid, or the text of a pid from a remote ref.
pub fn decode_target(term: Term) -> NifResult<Target> {
    if term.is_atom() {
        let n = atom_text(term)?;
        return Target::name(&n).map_err(|_| Error::BadArg);
    }
    if term.is_pid() {
        return PID_TARGETS.with(|memo| memo.borrow_mut().target(term));
    }
    if term.is_binary() {
        // The text of a pid in a remote reference (Partisan 5's format) has no creation.
        let bin: rustler::Binary = term.decode()?;
        let (number, serial) = parse_pid_text(bin.as_slice()).ok_or(Error::BadArg)?;
        return Ok(Target::Pid {
            number,
            serial,
            creation: None,
        });
    }
    // `{call, Id}`: the answer to call `Id` of the receiving node (see `send_call`).
    if let Ok([tag, id]) = get_tuple(term).as_deref() {
        if tag.is_atom() && Atom::from_term(*tag)? == call() {
            return Ok(Target::Call(id.decode()?));
        }
    }
    Err(Error::BadArg)
}

thread_local! {
    /// The pids this scheduler thread sent to lately (see `PidTargets`).
    static PID_TARGETS: RefCell<PidTargets> = RefCell::new(PidTargets::new());
}

/// Slots of `PidTargets`: a scheduler's senders rarely address more processes at once.
const PID_TARGET_SLOTS: usize = 64;

/// The wire targets of pids, by the pid. A remote pid's number, serial and creation are read
/// from its external format, which `enif_term_to_binary` writes into a new binary: 7 % of the
/// senders' scheduler time in the 16×64 B burst, where each sender sends to one pid again and
/// again. A hit costs a hash and a comparison. The pids are copied into an environment of the
/// thread's own (cleared, with every slot, after `4 × PID_TARGET_SLOTS` copies, which bounds its
/// memory); direct-mapped, the newest pid takes its slot.
struct PidTargets {
    env: OwnedEnv,
    /// The copy of the pid (a term of `env`) and its target.
    slots: Vec<Option<(rustler::sys::ErlNifTerm, Target)>>,
    copies: usize,
}

impl PidTargets {
    fn new() -> PidTargets {
        PidTargets {
            env: OwnedEnv::new(),
            slots: vec![None; PID_TARGET_SLOTS],
            copies: 0,
        }
    }

    fn target(&mut self, pid: Term) -> NifResult<Target> {
        let slot = pid.hash_internal(0) as usize % PID_TARGET_SLOTS;
        if let Some((copy, target)) = &self.slots[slot] {
            // SAFETY: both are live terms (the copy lives in `env`, not cleared since it was
            // made); comparing terms of two environments is allowed.
            if unsafe { rustler::sys::enif_is_identical(*copy, pid.as_c_arg()) } != 0 {
                return Ok(target.clone());
            }
        }
        let etf = pid.to_binary();
        let p = parse_pid(etf.as_slice()).ok_or(Error::BadArg)?;
        // The pid names the life of the node it belongs to: the receiver checks it.
        let target = Target::Pid {
            number: p.number,
            serial: p.serial,
            creation: Some(p.creation),
        };
        if self.copies >= 4 * PID_TARGET_SLOTS {
            self.slots.iter_mut().for_each(|s| *s = None);
            self.env.clear();
            self.copies = 0;
        }
        let copy = self.env.run(|env| pid.in_env(env).as_c_arg());
        self.copies += 1;
        self.slots[slot] = Some((copy, target.clone()));
        Ok(target)
    }
}
