//! The NIF functions and the engine resource. Every function is short; `start` and `stop` run on
//! dirty I/O schedulers (they create or join threads), everything else on normal schedulers and
//! never blocks on I/O. `send` copies payloads up to 64 KiB and pins larger ones (O(1)).

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{MappedRwLockReadGuard, RwLock, RwLockReadGuard};
use partisan_core::transport::{
    Engine, JoinError, OutFrame, Peer, Queued, Resume, SendError, SendMode, Tls,
};
use partisan_core::wire::{encode_data_head, parse_pid, NodeId, PidNaming, Target, WireError};

use crate::pinned::{pin, pin_parts, PIN_MIN, PIN_PART_MIN};
use rustler::sys::ErlNifTerm;
use rustler::types::tuple::make_tuple;
use rustler::{Atom, Binary, Encoder, Env, Error, ListIterator, NifResult, ResourceArc, Term};

use crate::config::{decode_node_spec, decode_start_config, decode_tag, decode_tls};
use crate::decode::AtomBudget;
use crate::delivery::{binary, send_anywhere, NifHandler};
use crate::terms::{atom_text, decode_target, encode_listen_addrs, encode_node_spec};
use partisan_core::calls::{Calls, Waiter};
use partisan_core::serving::{Served, Serving};

thread_local! {
    static SEND_CALLS: Cell<u64> = const { Cell::new(0) };
}

/// CPU time used by the calling thread, in nanoseconds.
fn thread_cpu_ns() -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a pointer to a live timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

rustler::atoms! {
    ok, error, undefined, atoms_created, atoms_refused, messages_refused, self_join, not_started, not_yet_connected, message_too_large,
    unknown_channel, too_many_calls, no_available_slots, listen, busy, suspend, nosuspend, partisan_resume = "$partisan_resume", eaddrinuse, eaddrnotavail, eacces, einval, tls, any_channel = "_", unknown_module,
    term, encode, partitioned, partisan_membership,
}

/// The engine as a BEAM resource; freed (and its threads stopped) when the last term is gone.
pub struct EngineRes {
    engine: Engine,
    /// Peer handles by the raw value of the node's atom (atoms never move), so the send path
    /// skips converting the atom to text.
    peers: RwLock<AtomMap<Arc<Peer>>>,
    /// Channel ids by the raw value of the channel's atom.
    channels: AtomMap<usize>,
    /// Numbers the resumptions of suspended senders.
    next_resume: AtomicU64,
    /// The most CPU time a sampled `send` call used, in nanoseconds: scheduler health, reported
    /// by `stats/1`. CPU time of the calling thread, not wall time, so that the figure is the
    /// NIF's own work and not time the OS gave other threads meanwhile.
    send_max_cpu_ns: AtomicU64,
    /// The most wall-clock time any `send` call took, in nanoseconds, and how many took over
    /// 1 ms: beside the CPU figure, these tell a slow call from a thread the OS preempted.
    send_max_wall_ns: AtomicU64,
    sends_over_1ms: AtomicU64,
    /// Atoms peers created or had refused (shared with the handler).
    atoms: Arc<AtomBudget>,
    /// Calls waiting for their remote answer (shared with the handler).
    calls: Arc<Calls<rustler::LocalPid>>,
    /// Calls of other nodes that servers of this node have (shared with the handler).
    serving: Arc<Serving<rustler::LocalPid>>,
    /// The nodes an injected partition cuts this node's sends off from (`set_partitioned/2`),
    /// and whether there are any: the send path reads only the flag while there are none.
    partitioned: RwLock<AtomMap<()>>,
    partitioned_any: AtomicBool,
    /// Sends refused because of a partition.
    sends_partitioned: AtomicU64,
}

#[rustler::resource_impl]
impl rustler::Resource for EngineRes {}

/// A map keyed by the raw value of an atom term. The keys are words this VM assigned to its own
/// atoms, which no peer chooses, so a keyed hash buys nothing here; SipHash in the two lookups of
/// every send was 3 % of the senders' scheduler time.
type AtomMap<V> = HashMap<ErlNifTerm, V, BuildHasherDefault<AtomHasher>>;

#[derive(Default)]
struct AtomHasher(u64);

impl Hasher for AtomHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = mix(self.0 ^ b as u64);
        }
    }

    fn write_usize(&mut self, v: usize) {
        self.0 = mix(self.0 ^ v as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The finaliser of splitmix64: an atom term's low bits are its tag, the same for every atom, and
/// the table indexes by low bits, so every bit of the word must reach them.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl EngineRes {
    /// The peer `node`, borrowed from the table while the caller uses it (cloning its `Arc`
    /// would cost every send two read-modify-writes of a line all schedulers share).
    fn peer(&self, env: Env, node: Atom) -> Option<PeerRef<'_>> {
        let key = node.as_c_arg();
        let known = RwLockReadGuard::try_map(self.peers.read(), |peers| {
            peers.get(&key).filter(|p| p.is_live()).map(|p| &**p)
        });
        match known {
            Ok(peer) => return Some(PeerRef::Known(peer)),
            // The read guard comes back on failure: gone before the write below.
            Err(guard) => drop(guard),
        }
        let name = node.to_term(env).atom_to_string().ok()?;
        let peer = self.engine.peer(&name)?;
        self.peers.write().insert(key, peer.clone());
        Some(PeerRef::New(peer))
    }
}

/// A peer as `EngineRes::peer` finds it.
enum PeerRef<'r> {
    Known(MappedRwLockReadGuard<'r, Peer>),
    New(Arc<Peer>),
}

impl std::ops::Deref for PeerRef<'_> {
    type Target = Peer;

    fn deref(&self) -> &Peer {
        match self {
            PeerRef::Known(p) => p,
            PeerRef::New(p) => p,
        }
    }
}

fn error_tuple<'a>(env: Env<'a>, reason: impl Encoder) -> Term<'a> {
    make_tuple(env, &[error().encode(env), reason.encode(env)])
}

fn io_reason<'a>(env: Env<'a>, e: &io::Error) -> Term<'a> {
    match e.kind() {
        io::ErrorKind::AddrInUse => eaddrinuse().encode(env),
        io::ErrorKind::AddrNotAvailable => eaddrnotavail().encode(env),
        io::ErrorKind::PermissionDenied => eacces().encode(env),
        io::ErrorKind::InvalidInput => einval().encode(env),
        _ => e.to_string().encode(env),
    }
}

#[rustler::nif(schedule = "DirtyIo")]
fn start<'a>(env: Env<'a>, config: Term<'a>) -> NifResult<Term<'a>> {
    let mut cfg = decode_start_config(config)?;
    if let Some((client, server)) = decode_tls(config)? {
        match Tls::new(&client, &server) {
            Ok(tls) => cfg.engine.tls = Some(Arc::new(tls)),
            Err(why) => {
                let why = why.encode(env);
                return Ok(error_tuple(env, make_tuple(env, &[tls().encode(env), why])));
            }
        }
    }
    let self_etf = env.pid().encode(env).to_binary();
    cfg.engine.pids = pid_naming(
        self_etf.as_slice(),
        &cfg.engine.name,
        cfg.engine.incarnation,
    )
    .ok_or(Error::BadArg)?;
    let atoms = Arc::new(AtomBudget::new(
        cfg.atom_budget,
        cfg.refusal_log_interval,
        cfg.event_pid,
    ));
    let calls = Arc::new(Calls::default());
    let serving = Arc::new(Serving::default());
    let handler = NifHandler::new(
        cfg.event_pid,
        self_etf.as_slice(),
        cfg.engine.max_frame_size,
        atoms.clone(),
        calls.clone(),
        serving.clone(),
    )
    .ok_or(Error::BadArg)?;
    let engine = match Engine::start(cfg.engine, Arc::new(handler)) {
        Ok(e) => e,
        Err(e) => {
            return Ok(error_tuple(
                env,
                make_tuple(env, &[listen().encode(env), io_reason(env, &e)]),
            ))
        }
    };
    let mut channels = AtomMap::default();
    for (id, c) in engine.local().channels.iter().enumerate() {
        channels.insert(Atom::from_str(env, &c.name)?.as_c_arg(), id);
    }
    let res = ResourceArc::new(EngineRes {
        engine,
        peers: RwLock::new(AtomMap::default()),
        channels,
        next_resume: AtomicU64::new(1),
        send_max_cpu_ns: AtomicU64::new(0),
        send_max_wall_ns: AtomicU64::new(0),
        sends_over_1ms: AtomicU64::new(0),
        atoms,
        calls,
        serving,
        partitioned: RwLock::new(AtomMap::default()),
        partitioned_any: AtomicBool::new(false),
        sends_partitioned: AtomicU64::new(0),
    });
    Ok(make_tuple(env, &[ok().encode(env), res.encode(env)]))
}

/// How this node's pids are named: by the VM (read off a local pid) and on the wire. When the
/// VM's node name is the partisan name (Distributed Erlang with the same name), pids keep the
/// VM's creation and need no rewriting; otherwise the wire creation is drawn from the
/// incarnation, so each start of the node names its pids afresh.
fn pid_naming(local_pid_etf: &[u8], name: &str, incarnation: u64) -> Option<PidNaming> {
    let p = parse_pid(local_pid_etf)?;
    let vm_name = std::str::from_utf8(p.node).ok()?;
    let creation = if vm_name == name {
        p.creation
    } else {
        creation_of(incarnation)
    };
    Some(PidNaming {
        vm: NodeId::new(vm_name, p.creation),
        creation,
    })
}

/// A well-mixed, non-zero 32-bit number from the incarnation (a nanosecond timestamp).
fn creation_of(incarnation: u64) -> u32 {
    // splitmix64's finaliser
    let mut z = incarnation.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z as u32).max(1)
}

#[rustler::nif(schedule = "DirtyIo")]
fn stop(res: ResourceArc<EngineRes>) -> Atom {
    res.engine.stop();
    res.peers.write().clear();
    ok()
}

#[rustler::nif]
fn listen_addrs(env: Env, res: ResourceArc<EngineRes>) -> Term {
    encode_listen_addrs(env, res.engine.listen_addrs())
}

#[rustler::nif]
fn join<'a>(env: Env<'a>, res: ResourceArc<EngineRes>, spec: Term<'a>) -> NifResult<Term<'a>> {
    let spec = decode_node_spec(spec)?;
    Ok(match res.engine.join(spec) {
        Ok(()) => ok().encode(env),
        Err(JoinError::SelfJoin) => error_tuple(env, self_join()),
        Err(JoinError::Stopped) => error_tuple(env, not_started()),
    })
}

#[rustler::nif]
fn leave(res: ResourceArc<EngineRes>, node: Term) -> NifResult<Atom> {
    res.engine.leave(&atom_text(node)?);
    Ok(ok())
}

#[rustler::nif]
fn update_members(res: ResourceArc<EngineRes>, specs: Vec<Term>) -> NifResult<Atom> {
    let specs = specs
        .into_iter()
        .map(decode_node_spec)
        .collect::<NifResult<Vec<_>>>()?;
    res.engine.update_members(specs);
    Ok(ok())
}

#[rustler::nif]
fn members(env: Env, res: ResourceArc<EngineRes>) -> NifResult<Term> {
    let specs = res.engine.members();
    let terms = specs
        .iter()
        .map(|s| encode_node_spec(env, s))
        .collect::<NifResult<Vec<_>>>()?;
    Ok(terms.encode(env))
}

/// A binary's text; `badarg` if it is not UTF-8.
fn utf8<'a>(b: &Binary<'a>) -> NifResult<&'a str> {
    std::str::from_utf8(b.as_slice()).map_err(|_| Error::BadArg)
}

/// Node names as binaries (a Rust string encodes as one), for names that must not become
/// atoms.
fn name_binaries<'a>(env: Env<'a>, names: &[Arc<str>]) -> Vec<Term<'a>> {
    names.iter().map(|n| (**n).encode(env)).collect()
}

/// `broadcast(Engine, Module, Id, Data)`: broadcasts `Data` (a payload in external format)
/// under `Id` (likewise) through the Plumtree handler `Module` (a binary);
/// `{error, unknown_module}` if it is not one of `broadcast_mods`.
#[rustler::nif]
fn broadcast<'a>(
    env: Env<'a>,
    res: ResourceArc<EngineRes>,
    module: Binary<'a>,
    id: Binary<'a>,
    data: Binary<'a>,
) -> NifResult<Term<'a>> {
    let module = utf8(&module)?;
    let id = Bytes::copy_from_slice(id.as_slice());
    let data = Bytes::copy_from_slice(data.as_slice());
    Ok(if res.engine.broadcast(module, id, data) {
        ok().encode(env)
    } else {
        error_tuple(env, unknown_module())
    })
}

/// `broadcast_peers(Engine, Module, Root)`: `{Eager, Lazy}`, the peers of `Root`'s tree for
/// `Module` as binaries (both empty for an unknown module).
#[rustler::nif]
fn broadcast_peers<'a>(
    env: Env<'a>,
    res: ResourceArc<EngineRes>,
    module: Binary<'a>,
    root: Binary<'a>,
) -> NifResult<Term<'a>> {
    let (module, root) = (utf8(&module)?, utf8(&root)?);
    let (eager, lazy) = res.engine.broadcast_peers(module, root).unwrap_or_default();
    Ok((name_binaries(env, &eager), name_binaries(env, &lazy)).encode(env))
}

/// `{Active, Passive}`: the HyParView views as binaries (passive nodes are not members, so
/// their names do not become atoms).
#[rustler::nif]
fn overlay_views(env: Env, res: ResourceArc<EngineRes>) -> Term {
    let (active, passive) = res.engine.overlay_views();
    (name_binaries(env, &active), name_binaries(env, &passive)).encode(env)
}

/// `overlay_reserve(Engine, Tag)`: `ok`, or `{error, no_available_slots}` when every slot of
/// the active view is reserved (or the membership is not HyParView).
#[rustler::nif]
fn overlay_reserve<'a>(
    env: Env<'a>,
    res: ResourceArc<EngineRes>,
    tag: Term<'a>,
) -> NifResult<Term<'a>> {
    Ok(match res.engine.overlay_reserve(&decode_tag(tag)?) {
        Ok(()) => ok().encode(env),
        Err(_) => (error(), no_available_slots()).encode(env),
    })
}

/// `overlay_reserved(Engine, Tag)`: `{ok, Node}` for the neighbour in the slot reserved for
/// `Tag`, `{ok, undefined}` while it is open, `error` if no slot is reserved for it.
#[rustler::nif]
fn overlay_reserved<'a>(
    env: Env<'a>,
    res: ResourceArc<EngineRes>,
    tag: Term<'a>,
) -> NifResult<Term<'a>> {
    Ok(match res.engine.overlay_reserved(&decode_tag(tag)?) {
        // (A neighbour is a member: its atom exists.)
        Some(Some(holder)) => (ok(), Atom::from_str(env, &holder)?).encode(env),
        Some(None) => (ok(), undefined()).encode(env),
        None => error().encode(env),
    })
}

#[rustler::nif]
fn nodes(env: Env, res: ResourceArc<EngineRes>) -> NifResult<Vec<Atom>> {
    res.engine
        .nodes()
        .iter()
        .map(|n| Atom::from_str(env, n))
        .collect()
}

#[rustler::nif]
fn is_connected(res: ResourceArc<EngineRes>, node: Term, channel: Atom) -> NifResult<bool> {
    let name = atom_text(node)?;
    if channel == any_channel() {
        return Ok(res.engine.is_connected(&name, None));
    }
    Ok(match res.channels.get(&channel.as_c_arg()) {
        Some(&id) => res.engine.is_connected(&name, Some(id)),
        None => false,
    })
}

/// The node's current connection life while it is up (see `Engine::up_generation`), else false.
#[rustler::nif]
fn up_generation<'a>(
    env: Env<'a>,
    res: &'a EngineRes, // borrowed, as in `send`: asked on every remote call
    node: Atom,
) -> NifResult<Term<'a>> {
    // The send path's table of peers by atom: no text of the name, no lock of the routes.
    Ok(match res.peer(env, node).and_then(|p| p.up_life()) {
        Some(g) => g.encode(env),
        None => false.encode(env),
    })
}

#[rustler::nif]
fn is_fully_connected(res: ResourceArc<EngineRes>, node: Term) -> NifResult<bool> {
    Ok(res.engine.is_fully_connected(&atom_text(node)?))
}

#[rustler::nif]
fn connections(env: Env, res: ResourceArc<EngineRes>) -> NifResult<Term> {
    let mut out = Vec::new();
    for (node, channel, index) in res.engine.connections() {
        let n = Atom::from_str(env, &node)?.encode(env);
        let c = Atom::from_str(env, &channel)?.encode(env);
        out.push(make_tuple(env, &[n, c, index.encode(env)]));
    }
    Ok(out.encode(env))
}

#[rustler::nif]
fn kill_connections(res: ResourceArc<EngineRes>, nodes: Vec<Term>) -> NifResult<Atom> {
    let names = nodes
        .into_iter()
        .map(atom_text)
        .collect::<NifResult<Vec<_>>>()?;
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    res.engine.kill_connections(&refs);
    Ok(ok())
}

/// `set_partitioned(Engine, Nodes)`: from now on, sends to the nodes listed (and no others)
/// fail with `{error, partitioned}`, except on the membership channel; the fault injection of
/// Partisan's `inject_partition/2`. Connections, the engine's own traffic and what arrives are
/// not touched.
#[rustler::nif]
fn set_partitioned(res: ResourceArc<EngineRes>, nodes: Vec<Atom>) -> Atom {
    let cut: AtomMap<()> = nodes.into_iter().map(|n| (n.as_c_arg(), ())).collect();
    let any = !cut.is_empty();
    *res.partitioned.write() = cut;
    res.partitioned_any.store(any, Ordering::Release);
    ok()
}

#[rustler::nif]
fn stats(env: Env, res: ResourceArc<EngineRes>) -> NifResult<Term> {
    let mut snap = res.engine.stats();
    snap.0.push((
        "send_refused_partitioned",
        res.sends_partitioned.load(Ordering::Relaxed),
    ));
    let cpu_ns = res.send_max_cpu_ns.load(Ordering::Relaxed);
    snap.0.push(("send_nif_max_cpu_us", cpu_ns / 1000));
    let wall_ns = res.send_max_wall_ns.load(Ordering::Relaxed);
    snap.0.push(("send_nif_max_wall_us", wall_ns / 1000));
    snap.0.push((
        "send_nif_over_1ms",
        res.sends_over_1ms.load(Ordering::Relaxed),
    ));
    snap.0.push(("calls_waiting", res.calls.waiting()));
    snap.0.push(("call_answers_late", res.calls.late()));
    let (served, watched) = res.serving.sizes();
    snap.0.push(("calls_served", served));
    snap.0.push(("servers_watched", watched));
    snap.0.push(("calls_handed", res.serving.handed()));
    snap.0.push(("atoms_created", res.atoms.created()));
    snap.0.push(("atom_budget_left", res.atoms.left()));
    let keys = snap
        .0
        .iter()
        .map(|(k, _)| Atom::from_str(env, k).map(|a| a.encode(env)))
        .collect::<NifResult<Vec<_>>>()?;
    let vals: Vec<Term> = snap.0.iter().map(|(_, v)| v.encode(env)).collect();
    Term::map_from_term_arrays(env, &keys, &vals)
}

/// `#{Node => #{atoms_created, messages_refused, atoms_refused}}` for every peer whose messages
/// created atoms or were refused for them.
#[rustler::nif]
fn peer_stats(env: Env, res: ResourceArc<EngineRes>) -> NifResult<Term> {
    let mut out = Term::map_new(env);
    for (node, p) in res.atoms.peers() {
        let counts = Term::map_from_term_arrays(
            env,
            &[
                atoms_created().encode(env),
                messages_refused().encode(env),
                atoms_refused().encode(env),
            ],
            &[
                p.atoms_created.encode(env),
                p.messages_refused.encode(env),
                p.atoms_refused.encode(env),
            ],
        )?;
        out = out.map_put(Atom::from_str(env, &node)?, counts)?;
    }
    Ok(out)
}

/// `send(Engine, Node, Channel, PartitionKey, Target, Payload, Mode)`: `Payload` is the external
/// format of the message, as one binary or as a list of binaries (at most `MAX_PARTS`) whose
/// concatenation it is, or `{term, Msg}`: the message itself, encoded here if it is small and
/// plain (see `encode`), else answered with `encode` and nothing sent. `Mode` is `suspend` or
/// `nosuspend`. Returns `ok`; `{suspend, Token}` when the frame was queued but the connection is
/// over its limit (the caller then waits for `{'$partisan_resume', Token}`, which always comes);
/// `{error, busy}` when `nosuspend` and over the limit (nothing queued); or another error.
/// The engine is borrowed, not counted (`&EngineRes`, not `ResourceArc`): the argument keeps it
/// alive through the call, and its count would be one more cache line every sender writes.
#[rustler::nif]
#[allow(clippy::too_many_arguments)] // mirrors the Erlang call
fn send<'a>(
    env: Env<'a>,
    res: &'a EngineRes,
    node: Atom,
    channel: Atom,
    key: Term<'a>,
    target: Term<'a>,
    payload: Term<'a>,
    mode: Atom,
) -> NifResult<Term<'a>> {
    let route = Route {
        node,
        channel,
        key,
        mode,
    };
    timed_send(env, res, route, target, payload)
}

/// `send_call(Engine, Node, Channel, PartitionKey, Target, Payload, Mode, Id, Tag)`: `send/7`
/// of a call's request, which first registers call `Id` (a number unique on this node) as
/// waiting for its answer, addressed to the call (`{call, Id}`); the answer is delivered to the
/// caller as it was sent (`{Tag, Result}`), or, when the node goes down first, the caller gets
/// `{Tag, {exit, {nodedown, Node}}}` (and then `ok` even if the send failed: that message is the
/// answer). Any other send that fails leaves no call waiting.
/// `{error, too_many_calls}` when a million calls wait already.
#[rustler::nif]
#[allow(clippy::too_many_arguments)] // mirrors the Erlang call
fn send_call<'a>(
    env: Env<'a>,
    res: &'a EngineRes,
    node: Atom,
    channel: Atom,
    key: Term<'a>,
    target: Term<'a>,
    payload: Term<'a>,
    mode: Atom,
    id: u64,
    tag: Term<'a>,
) -> NifResult<Term<'a>> {
    let waiter = Waiter {
        pid: env.pid(),
        node: atom_text(node.to_term(env))?.into_boxed_str(),
        tag: tag.to_binary().as_slice().to_vec(),
    };
    if !res.calls.insert(id, waiter) {
        return Ok(error_tuple(env, too_many_calls()));
    }
    let route = Route {
        node,
        channel,
        key,
        mode,
    };
    let result = timed_send(env, res, route, target, payload);
    // `ok` and `{suspend, Token}` mean the request went (`encode`: it did not, see `send`).
    if matches!(&result, Ok(t) if !is_error(*t) && *t != encode().to_term(env)) {
        return result;
    }
    if res.calls.take(id).is_none() {
        // The node's `node_down` came between the registration and the failed send, and took
        // the call: its `{Tag, {exit, {nodedown, Node}}}` is on its way, and it is the answer
        // (reporting the failure too would leave that message behind in the caller's mailbox).
        return Ok(ok().encode(env));
    }
    result
}

/// Whether `term` is `{error, _}`.
fn is_error(term: Term) -> bool {
    rustler::types::tuple::get_tuple(term)
        .ok()
        .and_then(|t| t.first().copied())
        .is_some_and(|first| first == error().encode(term.get_env()))
}

/// `call_cancel(Engine, Id)`: ends call `Id` if it still waits (its caller gave up). True when
/// it did; false when its answer has been taken for delivery (it is in, or about to be in, the
/// caller's mailbox) or the call was ended by a `node_down`.
#[rustler::nif]
fn call_cancel(res: ResourceArc<EngineRes>, id: u64) -> bool {
    res.calls.take(id).is_some()
}

/// `serve_watch(Engine, Server)`: the relay monitors `Server` from now on, so the engine may
/// hand it calls of other nodes directly (see `partisan_core::serving`). False when it was
/// watched already.
#[rustler::nif]
fn serve_watch(res: &EngineRes, server: rustler::LocalPid) -> bool {
    res.serving.watch(server)
}

/// `serve_begin(Engine, Server, CallerNode, Key)`: registers a call that the relay hands to
/// the watched `Server` itself; its number, or `{error, too_many_calls}` when the servers of
/// this node have a million calls already (or `Server` is not watched).
#[rustler::nif]
fn serve_begin<'a>(
    env: Env<'a>,
    res: &EngineRes,
    server: rustler::LocalPid,
    node: Term<'a>,
    key: Term<'a>,
) -> NifResult<Term<'a>> {
    let call = Served {
        server,
        node: atom_text(node)?.into_boxed_str(),
        key: key.to_binary().as_slice().to_vec(),
    };
    Ok(match res.serving.begin_watched(call) {
        Some(id) => id.encode(env),
        None => error_tuple(env, too_many_calls()),
    })
}

/// `serve_end(Engine, Id)`: the reply to served call `Id` came; true when the call still
/// waited for it (false: its server died or its caller's node went down first).
#[rustler::nif]
fn serve_end(res: &EngineRes, id: u64) -> bool {
    res.serving.end(id)
}

/// `serve_unwatch(Engine, Server)`: `Server` died; its calls end, returned as
/// `[{CallerNode, KeyBinary}]` (node names as binaries, keys in the external format) for the
/// relay to answer with the exit reason.
#[rustler::nif(schedule = "DirtyCpu")]
fn serve_unwatch<'a>(env: Env<'a>, res: &EngineRes, server: rustler::LocalPid) -> Term<'a> {
    ended_calls(env, res.serving.unwatch(server))
}

/// `serve_forget(Engine, Node)`: `Node` went down; the calls it made end unanswered. Returns
/// how many.
#[rustler::nif(schedule = "DirtyCpu")]
fn serve_forget(res: &EngineRes, node: Term) -> NifResult<usize> {
    Ok(res.serving.forget_node(&atom_text(node)?))
}

/// `serve_reset(Engine)`: a relay starts and watches nothing yet; the calls of the one before
/// end, returned as by `serve_unwatch/2`.
#[rustler::nif(schedule = "DirtyCpu")]
fn serve_reset<'a>(env: Env<'a>, res: &EngineRes) -> Term<'a> {
    ended_calls(env, res.serving.reset())
}

fn ended_calls(env: Env, calls: Vec<Served<rustler::LocalPid>>) -> Term {
    calls
        .iter()
        .map(|c| make_tuple(env, &[binary(env, c.node.as_bytes()), binary(env, &c.key)]))
        .collect::<Vec<_>>()
        .encode(env)
}

/// One `send` call in this many has its CPU time measured.
const CPU_SAMPLE_EVERY: u64 = 256;

/// `send` with its health figures: CPU time of one call in `CPU_SAMPLE_EVERY`, wall time of all.
fn timed_send<'a>(
    env: Env<'a>,
    res: &EngineRes,
    route: Route<'a>,
    target: Term<'a>,
    payload: Term<'a>,
) -> NifResult<Term<'a>> {
    // Few calls are timed: reading a thread's CPU clock is a system call, about 1 µs on this
    // kind of VM, which at one call in 64 was 2 % of the senders' scheduler time.
    let sampled = SEND_CALLS.with(|n| {
        let c = n.get().wrapping_add(1);
        n.set(c);
        c % CPU_SAMPLE_EVERY == 0
    });
    let started = if sampled { thread_cpu_ns() } else { None };
    let wall = Instant::now();
    let result = do_send(env, res, route, target, payload, wall);
    if let (Some(start), Some(end)) = (started, started.and_then(|_| thread_cpu_ns())) {
        res.send_max_cpu_ns
            .fetch_max(end.saturating_sub(start), Ordering::Relaxed);
    }
    let took = wall.elapsed();
    let took_ns = took.as_nanos() as u64;
    // Read first: a read-modify-write on every call would move the cache line between
    // schedulers.
    if took_ns > res.send_max_wall_ns.load(Ordering::Relaxed) {
        res.send_max_wall_ns.fetch_max(took_ns, Ordering::Relaxed);
    }
    if took > Duration::from_millis(1) {
        res.sends_over_1ms.fetch_add(1, Ordering::Relaxed);
    }
    charge_timeslice(env, took);
    result
}

/// Tells the scheduler how much of the caller's time slice (about 1 ms) a call used, so that a
/// process making many costly calls (large frames written on its own thread) is scheduled out
/// in time instead of holding its scheduler for many milliseconds.
fn charge_timeslice(env: Env, took: Duration) {
    let percent = (took.as_micros() / 10).min(100) as i32;
    if percent > 0 {
        rustler::schedule::consume_timeslice(env, percent);
    }
}

struct Route<'a> {
    node: Atom,
    channel: Atom,
    key: Term<'a>,
    mode: Atom,
}

fn do_send<'a>(
    env: Env<'a>,
    res: &EngineRes,
    route: Route<'a>,
    target: Term<'a>,
    payload: Term<'a>,
    now: Instant,
) -> NifResult<Term<'a>> {
    let Route {
        node,
        channel,
        key,
        mode,
    } = route;
    let Some(&ch) = res.channels.get(&channel.as_c_arg()) else {
        let reason = make_tuple(env, &[unknown_channel().encode(env), channel.encode(env)]);
        return Ok(error_tuple(env, reason));
    };
    // The membership channel is not cut: on it go the requests that spread and end partitions.
    if res.partitioned_any.load(Ordering::Acquire)
        && channel != partisan_membership()
        && res.partitioned.read().contains_key(&node.as_c_arg())
    {
        res.sends_partitioned.fetch_add(1, Ordering::Relaxed);
        return Ok(error_tuple(env, partitioned()));
    }
    let key = if key.is_atom() && Atom::from_term(key)? == undefined() {
        None
    } else {
        Some(key.decode::<u64>()?)
    };
    let target = decode_target(target)?;
    let max = res.engine.max_frame_size();
    let built = match unencoded(payload) {
        Some(msg) => match encode_frame(&target, msg, max) {
            Some(built) => built,
            // Not a term the NIF writes itself: the caller encodes it and sends again.
            None => return Ok(encode().encode(env)),
        },
        None => build_frame(&target, payload, max)?,
    };
    let frame = match built {
        Ok(f) => f,
        Err(_) => {
            res.engine.count_too_large();
            return Ok(error_tuple(env, message_too_large()));
        }
    };
    let Some(peer) = res.peer(env, node) else {
        res.engine.count_no_connection();
        return Ok(error_tuple(env, not_yet_connected()));
    };
    // The token and the resumption are made only when the sender must wait.
    let token = std::cell::Cell::new(0);
    let mut resume = || {
        let caller = env.pid();
        let t = res.next_resume.fetch_add(1, Ordering::Relaxed);
        token.set(t);
        Resume::new(move || {
            send_anywhere(caller, move |e| {
                make_tuple(e, &[partisan_resume().encode(e), t.encode(e)])
            })
        })
    };
    let send_mode = if mode == nosuspend() {
        SendMode::NoSuspend
    } else if mode == suspend() {
        SendMode::Suspend(&mut resume)
    } else {
        return Err(Error::BadArg);
    };
    Ok(
        match res.engine.send_at(&peer, ch, key, frame, send_mode, now) {
            Ok(Queued::Sent | Queued::Written) => ok().encode(env),
            Ok(Queued::Suspended) => {
                make_tuple(env, &[suspend().encode(env), token.get().encode(env)])
            }
            Err(SendError::Busy) => error_tuple(env, busy()),
            Err(SendError::UnknownChannel) => error_tuple(env, unknown_channel()),
            Err(SendError::NotConnected) => error_tuple(env, not_yet_connected()),
        },
    )
}

/// The message of a payload `{term, Msg}`: a message the caller left for the NIF to encode.
fn unencoded(payload: Term) -> Option<Term> {
    let env = payload.get_env();
    match crate::encode::tuple(payload)? {
        &[tag, msg] if tag == term().to_term(env).as_c_arg() => {
            // SAFETY: an element of the live tuple `payload` of `env`.
            Some(unsafe { Term::new(env, msg) })
        }
        _ => None,
    }
}

thread_local! {
    /// Where a scheduler thread writes the external format of the messages it sends.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The data frame of `msg` encoded here (see `encode`), or `None` if it is not a term encoded
/// here. The inner error means the frame is too large.
fn encode_frame(target: &Target, msg: Term, max: usize) -> Option<Result<OutFrame, WireError>> {
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        crate::encode::encode(msg, &mut scratch).then(|| OutFrame::data(target, &scratch, max))
    })
}

/// Most binaries a payload list may have: bounds the work of one call.
const MAX_PARTS: usize = 256;

/// The data frame for `payload` (see `send`): small parts are copied into the frame, large ones
/// are pinned and written from where they are. The inner error means the frame is too large.
fn build_frame(
    target: &Target,
    payload: Term,
    max: usize,
) -> NifResult<Result<OutFrame, WireError>> {
    if let Ok(bin) = Binary::from_term(payload) {
        if bin.len() < PIN_MIN {
            return Ok(OutFrame::data(target, bin.as_slice(), max));
        }
        let head = match encode_data_head(target, bin.len(), max, 0) {
            Ok(h) => h,
            Err(e) => return Ok(Err(e)),
        };
        let body = pin(payload).ok_or(Error::BadArg)?;
        return Ok(Ok(OutFrame {
            head: head.into(),
            body: vec![body],
        }));
    }
    let mut parts = Vec::new();
    for part in payload.decode::<ListIterator>()? {
        if parts.len() == MAX_PARTS {
            return Err(Error::BadArg);
        }
        parts.push(Binary::from_term(part)?);
    }
    let total: usize = parts.iter().map(|b| b.len()).sum();
    let copied: usize = parts
        .iter()
        .map(|b| b.len())
        .filter(|&n| n < PIN_PART_MIN)
        .sum();
    // Runs of small parts are copied together; the first run starts with the frame's header, so
    // it is never empty and is the head.
    let mut small = match encode_data_head(target, total, max, copied) {
        Ok(h) => h,
        Err(e) => return Ok(Err(e)),
    };
    let mut pinned = if copied < total {
        pin_parts(payload, PIN_PART_MIN).ok_or(Error::BadArg)?
    } else {
        Vec::new()
    }
    .into_iter();
    let mut chunks: Vec<Bytes> = Vec::new();
    for part in &parts {
        if part.len() < PIN_PART_MIN {
            small.extend_from_slice(part.as_slice());
            continue;
        }
        if !small.is_empty() {
            chunks.push(std::mem::take(&mut small).into());
        }
        chunks.push(pinned.next().ok_or(Error::BadArg)?);
    }
    if !small.is_empty() {
        chunks.push(small.into());
    }
    if chunks.is_empty() {
        return Err(Error::BadArg); // unreachable: the header run is never empty
    }
    let head = chunks.remove(0);
    Ok(Ok(OutFrame {
        head: head.into(),
        body: chunks,
    }))
}
