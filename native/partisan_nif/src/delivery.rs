//! Delivery from the engine's I/O threads to local processes, without any relay process.

use std::any::Any;
use std::cell::RefCell;
use std::sync::Arc;

use partisan_core::calls::Calls;
use partisan_core::memo::Memo;
use partisan_core::serving::{Served, Serving};
use partisan_core::transport::{Delivery, Event, FrameBuf, Handler, Origin};
use partisan_core::wire::{is_compressed, parse_pid, uncompressed_term, AtomText, Target};
use rustler::types::tuple::make_tuple;
use rustler::{Atom, Encoder, Env, LocalPid, OwnedEnv, Term};

use crate::decode::{decode_term, AtomBudget};
use crate::in_place::{self, BeamFrame};

rustler::atoms! {
    partisan_event, node_up, node_down, membership, left, auth_failed, dialer, acceptor,
    broadcast, role_refused, client, server, undefined, tls_failed, exit, nodedown,
    partisan_call = "$partisan_call", partisan_serve = "$partisan_serve", gen_call = "$gen_call",
}

/// The registered name of the node's relay (`partisan_gen_relay`), to which other nodes send
/// their calls.
const RELAY: &str = "partisan_gen_relay";

/// A binary term holding a copy of `bytes`.
pub(crate) fn binary<'a>(env: Env<'a>, bytes: &[u8]) -> Term<'a> {
    let mut b = rustler::types::binary::NewBinary::new(env, bytes.len());
    b.as_mut_slice().copy_from_slice(bytes);
    b.into()
}

thread_local! {
    /// One reusable term workspace per I/O thread.
    static SCRATCH: RefCell<OwnedEnv> = RefCell::new(OwnedEnv::new());
    /// What this I/O thread has decoded before (see `memo`).
    static MEMO: RefCell<Memo<LocalPid, Atom>> = RefCell::new(Memo::new());
}

/// Tells engines (handlers) apart, for the memos of the thread that serves one.
static HANDLERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

pub struct NifHandler {
    /// Unique among the handlers of this VM's life.
    id: u64,
    event_pid: LocalPid,
    /// External format of a local pid with number and serial zeroed; filled in per message.
    pid_template: Vec<u8>,
    /// Offset of the number field within `pid_template`.
    pid_numbers_at: usize,
    /// Largest term a compressed payload may inflate to.
    max_term: usize,
    atoms: Arc<AtomBudget>,
    /// Calls waiting for their answer (shared with the send NIFs).
    calls: Arc<Calls<LocalPid>>,
    /// Calls of other nodes that servers of this node have (shared with the relay's NIFs).
    serving: Arc<Serving<LocalPid>>,
}

impl NifHandler {
    /// `local_pid_etf` is `term_to_binary` of any local pid; it gives the node atom and creation
    /// that a pid of this node carries.
    pub fn new(
        event_pid: LocalPid,
        local_pid_etf: &[u8],
        max_term: usize,
        atoms: Arc<AtomBudget>,
        calls: Arc<Calls<LocalPid>>,
        serving: Arc<Serving<LocalPid>>,
    ) -> Option<NifHandler> {
        let at = parse_pid(local_pid_etf)?.numbers_at;
        Some(NifHandler {
            id: HANDLERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            event_pid,
            pid_template: local_pid_etf.to_vec(),
            pid_numbers_at: at,
            max_term,
            atoms,
            calls,
            serving,
        })
    }

    fn local_pid<'a>(&self, env: Env<'a>, number: u32, serial: u32) -> Option<LocalPid> {
        let mut etf = self.pid_template.clone();
        etf[self.pid_numbers_at..self.pid_numbers_at + 4].copy_from_slice(&number.to_be_bytes());
        etf[self.pid_numbers_at + 4..self.pid_numbers_at + 8]
            .copy_from_slice(&serial.to_be_bytes());
        let (term, _) = env.binary_to_term(&etf)?;
        term.decode().ok()
    }

    fn resolve(&self, env: Env, target: &Target) -> Option<LocalPid> {
        match target {
            // Only names that exist as atoms can be registered: never create one from the wire.
            Target::Name(n) => {
                let atom = with_memo(self.id, |m| {
                    m.atom(AtomText::Latin1, n.as_bytes(), || {
                        Atom::existing_from_bytes(env, n.as_bytes()).ok()
                    })
                })?;
                whereis(env, atom)
            }
            // The engine has checked the creation (a pid of this life of the node).
            Target::Pid { number, serial, .. } => with_memo(self.id, |m| {
                m.pid(*number, *serial, || self.local_pid(env, *number, *serial))
            }),
            // Taken here, before the payload is decoded: an answer is delivered at most once,
            // and never after its caller gave up.
            Target::Call(id) => self.calls.take_answered(*id),
        }
    }
}

/// A message to send, built in the sender's environment.
type Letter = Box<dyn for<'a> FnOnce(Env<'a>) -> Term<'a> + Send>;

/// Sends a message built by `build` to `pid` from whatever thread we are on. An owned environment
/// may not send from a VM scheduler thread (inside a NIF call), so from there the message goes
/// to the courier, one long-lived thread that sends on behalf of schedulers (events of join and
/// leave, resuming a sender whose queue drained before it could wait). Pushing to it costs a
/// scheduler a channel send, never a thread creation or a wait.
pub fn send_anywhere(
    pid: LocalPid,
    build: impl for<'a> FnOnce(Env<'a>) -> Term<'a> + Send + 'static,
) {
    if rustler::thread::is_scheduler_thread() {
        return send_by_courier(pid, build);
    }
    send_here(pid, build);
}

/// Sends through the courier from any thread: messages sent this way arrive in the order they
/// were sent, whichever threads sent them (cluster events, which must not overtake each other).
pub fn send_by_courier(
    pid: LocalPid,
    build: impl for<'a> FnOnce(Env<'a>) -> Term<'a> + Send + 'static,
) {
    if let Some(courier) = courier() {
        let _ = courier.send((pid, Box::new(build)));
    }
}

/// Sends from this (non-scheduler) thread's scratch environment; while a delivery on this
/// thread holds it, by the courier instead.
fn send_here(pid: LocalPid, build: impl for<'a> FnOnce(Env<'a>) -> Term<'a> + Send + 'static) {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut env) => {
            let _ = env.send_and_clear(&pid, build);
        }
        Err(_) => send_by_courier(pid, build),
    });
}

/// The courier's mailbox, started on first use and kept for the life of the VM (one thread,
/// whatever the number of engine starts).
fn courier() -> Option<&'static crossbeam_channel::Sender<(LocalPid, Letter)>> {
    static COURIER: std::sync::OnceLock<Option<crossbeam_channel::Sender<(LocalPid, Letter)>>> =
        std::sync::OnceLock::new();
    COURIER
        .get_or_init(|| {
            let (tx, rx) = crossbeam_channel::unbounded::<(LocalPid, Letter)>();
            let spawned = std::thread::Builder::new()
                .name("partisan-courier".into())
                .spawn(move || {
                    for (pid, letter) in rx {
                        send_here(pid, letter);
                    }
                });
            spawned.ok().map(|_| tx)
        })
        .as_ref()
}

/// Runs `f` on this thread's memos, filled for the handler `owner`.
fn with_memo<T>(owner: u64, f: impl FnOnce(&mut Memo<LocalPid, Atom>) -> T) -> T {
    MEMO.with(|cell| {
        let mut memo = cell.borrow_mut();
        memo.serve(owner);
        f(&mut memo)
    })
}

fn whereis(env: Env, name: Atom) -> Option<LocalPid> {
    let mut pid = std::mem::MaybeUninit::uninit();
    // SAFETY: a NULL caller env is what the VM requires from a thread it does not manage; the
    // name is a live atom term and `pid` is written only when the call succeeds.
    let found = unsafe {
        rustler::sys::enif_whereis_pid(
            std::ptr::null_mut(),
            name.to_term(env).as_c_arg(),
            pid.as_mut_ptr(),
        )
    };
    if found == 0 {
        return None;
    }
    // SAFETY: `enif_whereis_pid` returned true, so it initialised `pid`.
    Some(LocalPid::from_c_arg(unsafe { pid.assume_init() }))
}

impl NifHandler {
    /// Resolves `target`, decodes the message with `decode` and sends it, all in the thread's
    /// scratch environment.
    fn deliver_with(
        &self,
        target: &Target,
        decode: impl for<'a> FnOnce(Env<'a>) -> Result<Term<'a>, Delivery>,
    ) -> Delivery {
        SCRATCH.with(|cell| {
            let mut owned = cell.borrow_mut();
            let outcome = owned.run(|env| {
                let Some(pid) = self.resolve(env, target) else {
                    return Delivery::NoDestination;
                };
                let msg = match decode(env) {
                    Ok(msg) => msg,
                    Err(why) => return why,
                };
                let served = match target {
                    Target::Name(n) if n == RELAY => self.serve(env, pid, msg),
                    _ => None,
                };
                let Some((id, server, call)) = served else {
                    return send_from_thread(env, pid, msg);
                };
                match send_from_thread(env, server, call) {
                    Delivery::Delivered => {
                        self.serving.note_handed();
                        Delivery::Delivered
                    }
                    // The server is gone: the relay answers the call (`noproc`).
                    _ => {
                        self.serving.end(id);
                        send_from_thread(env, pid, msg)
                    }
                }
            });
            owned.clear();
            outcome
        })
    }

    /// Decodes a whole payload (inflated first if compressed).
    fn decode_copy<'a>(
        &self,
        env: Env<'a>,
        from: &Origin,
        payload: &[u8],
    ) -> Result<Term<'a>, Delivery> {
        let term = uncompressed_term(payload, self.max_term).map_err(|_| Delivery::Undecodable)?;
        decode_term(env, &self.atoms, from, &term).map(|(msg, _)| msg)
    }
}

/// Sends `msg`, built in `env`, to `pid` from this I/O thread.
fn send_from_thread(env: Env, pid: LocalPid, msg: Term) -> Delivery {
    // SAFETY: sending from a thread the VM does not manage (NULL caller env) with a message
    // built in `env`, which the caller clears afterwards (a failed send leaves it valid).
    let sent = unsafe {
        rustler::sys::enif_send(
            std::ptr::null_mut(),
            pid.as_c_arg(),
            env.as_c_arg(),
            msg.as_c_arg(),
        )
    };
    if sent != 0 {
        Delivery::Delivered
    } else {
        Delivery::NoDestination
    }
}

impl NifHandler {
    /// A call of another node, `{'$partisan_call', Key, Server, Request, CallerNode}` sent to
    /// the relay, as the server's own `{'$gen_call', {Relay, ServeTag}, Request}`, when the
    /// server is a local pid or name that the relay watches (see `partisan_core::serving`):
    /// the call's number, the server and the message. `None` sends it to the relay as it is.
    fn serve<'a>(
        &self,
        env: Env<'a>,
        relay: LocalPid,
        msg: Term<'a>,
    ) -> Option<(u64, LocalPid, Term<'a>)> {
        let parts = rustler::types::tuple::get_tuple(msg).ok()?;
        let &[kind, key, server, request, caller] = parts.as_slice() else {
            return None;
        };
        if kind != partisan_call().encode(env) {
            return None;
        }
        let server = match server.decode::<LocalPid>() {
            Ok(pid) => pid,
            Err(_) => whereis(env, server.decode::<Atom>().ok()?)?,
        };
        let node = crate::terms::atom_text(caller).ok()?.into_boxed_str();
        let id = self.serving.begin_watched(Served {
            server,
            node,
            key: key.to_binary().as_slice().to_vec(),
        })?;
        let tag = make_tuple(
            env,
            &[partisan_serve().encode(env), id.encode(env), caller, key],
        );
        let from = make_tuple(env, &[relay.encode(env), tag]);
        Some((
            id,
            server,
            make_tuple(env, &[gen_call().encode(env), from, request]),
        ))
    }
}

impl NifHandler {
    /// Ends the calls waiting on `node`, whose connection life is over: each caller gets
    /// `{Tag, {exit, {nodedown, Node}}}` (a call made after this belongs to the next life).
    fn end_calls(&self, node: &Arc<str>) {
        for waiter in self.calls.take_node(node) {
            let node = node.clone();
            send_by_courier(waiter.pid, move |e| {
                let name = Atom::from_str(e, &node)
                    .map(|a| a.encode(e))
                    .unwrap_or_else(|_| (*node).encode(e));
                let why = make_tuple(e, &[nodedown().encode(e), name]);
                let answer = make_tuple(e, &[exit().encode(e), why]);
                let tag = e
                    .binary_to_term(&waiter.tag)
                    .map_or_else(|| undefined().encode(e), |(t, _)| t);
                make_tuple(e, &[tag, answer])
            });
        }
    }
}

impl Handler for NifHandler {
    fn deliver(&self, from: &Origin, target: &Target, payload: bytes::Bytes) -> Delivery {
        self.deliver_with(target, |env| self.decode_copy(env, from, &payload))
    }

    fn frame_buf(&self, len: usize) -> Option<Box<dyn FrameBuf>> {
        Some(Box::new(BeamFrame::alloc(len)?))
    }

    fn deliver_buf(
        &self,
        from: &Origin,
        target: &Target,
        buf: Box<dyn FrameBuf>,
        payload_at: usize,
    ) -> Delivery {
        let Ok(frame) = (buf as Box<dyn Any>).downcast::<BeamFrame>() else {
            return Delivery::Undecodable;
        };
        self.deliver_with(target, |env| {
            let payload = &frame.as_slice()[payload_at..];
            if is_compressed(payload) {
                return self.decode_copy(env, from, payload);
            }
            in_place::decode(env, *frame, payload_at, &|env, term| {
                decode_term(env, &self.atoms, from, term)
            })
        })
    }

    /// Events go through the courier whatever the thread, so that a node's `node_up` and
    /// `node_down` arrive in the order the engine emitted them.
    fn event(&self, event: Event) {
        if let Event::NodeDown(node, _) = &event {
            self.end_calls(node);
        }
        send_by_courier(self.event_pid, move |e| {
            let atom = |n: &str| {
                Atom::from_str(e, n)
                    .map(|a| a.encode(e))
                    .unwrap_or_else(|_| n.encode(e))
            };
            let ev = match &event {
                Event::NodeUp(n) => make_tuple(e, &[node_up().encode(e), atom(n)]),
                Event::NodeDown(n, why) => {
                    make_tuple(e, &[node_down().encode(e), atom(n), atom(why.name())])
                }
                Event::Left(n) => make_tuple(e, &[left().encode(e), atom(n)]),
                Event::Membership(ns) => {
                    let list: Vec<Term> = ns.iter().map(|n| atom(n)).collect();
                    make_tuple(e, &[membership().encode(e), list.encode(e)])
                }
                Event::AuthFailed { addr, as_dialer } => {
                    let addr = addr.map_or_else(|| "unknown".to_owned(), |a| a.to_string());
                    let role = if *as_dialer { dialer() } else { acceptor() };
                    make_tuple(
                        e,
                        &[auth_failed().encode(e), addr.encode(e), role.encode(e)],
                    )
                }
                Event::TlsFailed {
                    addr,
                    as_dialer,
                    why,
                } => {
                    let addr = addr.map_or_else(|| "unknown".to_owned(), |a| a.to_string());
                    let role = if *as_dialer { dialer() } else { acceptor() };
                    make_tuple(
                        e,
                        &[
                            tls_failed().encode(e),
                            addr.encode(e),
                            role.encode(e),
                            why.encode(e),
                        ],
                    )
                }
                Event::RoleRefused { peer, theirs } => {
                    let tag = match theirs {
                        partisan_core::control::Role::Client => client(),
                        partisan_core::control::Role::Server => server(),
                        partisan_core::control::Role::Undefined => undefined(),
                    };
                    // The peer is no member: its name stays a binary.
                    make_tuple(
                        e,
                        &[role_refused().encode(e), (**peer).encode(e), tag.encode(e)],
                    )
                }
                // Names stay binaries: the Erlang side turns only known modules into atoms.
                Event::Broadcast {
                    module,
                    root,
                    id,
                    data,
                } => make_tuple(
                    e,
                    &[
                        broadcast().encode(e),
                        module.encode(e),
                        root.encode(e),
                        binary(e, id),
                        binary(e, data),
                    ],
                ),
            };
            make_tuple(e, &[partisan_event().encode(e), ev])
        });
    }
}
