//! Decoding the start configuration map (see `docs/nif_api.md`).

use std::time::Duration;

use partisan_core::control::{Membership, Role};
use partisan_core::hyparview;
use partisan_core::membership::{ChannelSpec, Compression, NodeSpec};
use partisan_core::transport::{
    Config, KeyDer, PingConfig, ServerNameCheck, TlsSide, TlsVersion, DEFAULT_HANDSHAKE_LIMIT,
    DEFAULT_SEND_QUEUE_LIMIT,
};
use partisan_core::wire::{Kinds, NodeId, PidNaming, DEFAULT_MAX_FRAME};
use rustler::types::map::MapIterator;
use rustler::{Atom, Error, LocalPid, NifResult, Term};

use crate::terms::{atom_text, decode_listen_addrs};

/// Reads `key` from `map`, or `default` when absent; a present but ill-typed value is `badarg`.
fn opt<'a, T: rustler::Decoder<'a>>(map: Term<'a>, key: &str, default: T) -> NifResult<T> {
    let k = Atom::from_str(map.get_env(), key)?;
    match map.map_get(k) {
        Ok(v) => v.decode(),
        Err(_) => Ok(default),
    }
}

fn req<'a, T: rustler::Decoder<'a>>(map: Term<'a>, key: &str) -> NifResult<T> {
    map.map_get(Atom::from_str(map.get_env(), key)?)?.decode()
}

/// `hyparview` (a map of Partisan's keys, normalised by `partisan_config`) chooses HyParView;
/// else `static_membership` the static manager's membership; else the full mesh.
fn decode_membership(term: Term<'_>) -> NifResult<Membership> {
    let k = Atom::from_str(term.get_env(), "hyparview")?;
    if let Ok(hv) = term.map_get(k) {
        let d = hyparview::Config::default();
        let size = |key: &str, default: usize| -> NifResult<usize> {
            Ok(within(opt::<u64>(hv, key, default as u64)?, 1, 1 << 16)? as usize)
        };
        let walk = |key: &str, default: u32| -> NifResult<u32> {
            within(opt::<u32>(hv, key, default)?, 0, 64)
        };
        let period = |key: &str, default: Duration| -> NifResult<Duration> {
            let ms = opt::<u64>(hv, key, default.as_millis() as u64)?;
            Ok(millis(within(ms, 1, 1 << 32)?))
        };
        let cfg = hyparview::Config {
            active_max: size("active_max_size", d.active_max)?,
            active_min: size("active_min_size", d.active_min)?,
            active_rwl: walk("active_rwl", d.active_rwl)?,
            passive_max: size("passive_max_size", d.passive_max)?,
            passive_rwl: walk("passive_rwl", d.passive_rwl)?,
            shuffle_k_active: size("shuffle_k_active", d.shuffle_k_active)?,
            shuffle_k_passive: size("shuffle_k_passive", d.shuffle_k_passive)?,
            shuffle_interval: period("shuffle_interval", d.shuffle_interval)?,
            random_promotion: opt(hv, "random_promotion", d.random_promotion)?,
            random_promotion_interval: period(
                "random_promotion_interval",
                d.random_promotion_interval,
            )?,
            seed: opt(hv, "seed", 0u64)?,
            xbot: opt(hv, "xbot_enabled", d.xbot)?,
            xbot_interval: period("xbot_interval", d.xbot_interval)?,
            tag: match hv.map_get(Atom::from_str(hv.get_env(), "tag")?) {
                Ok(t) if t.decode::<Atom>()? == rustler::types::atom::undefined() => None,
                Ok(t) => Some(decode_tag(t)?),
                Err(_) => None,
            },
            reservations: match hv.map_get(Atom::from_str(hv.get_env(), "reservations")?) {
                Ok(list) => list
                    .decode::<Vec<Term>>()?
                    .into_iter()
                    .map(decode_tag)
                    .collect::<NifResult<_>>()?,
                Err(_) => Vec::new(),
            },
        };
        // (partisan_config refuses more reservations than slots before the engine starts.)
        if cfg.active_min > cfg.active_max || cfg.reservations.len() > cfg.active_max {
            return Err(Error::BadArg);
        }
        return Ok(Membership::HyParView(cfg));
    }
    let k = Atom::from_str(term.get_env(), "client_server")?;
    if let Ok(tag) = term.map_get(k) {
        let role = match atom_text(tag)?.as_str() {
            "client" => Role::Client,
            "server" => Role::Server,
            "undefined" => Role::Undefined,
            _ => return Err(Error::BadArg),
        };
        return Ok(Membership::ClientServer(role));
    }
    Ok(if opt(term, "static_membership", false)? {
        Membership::Static
    } else {
        Membership::FullMesh
    })
}

/// `broadcast_channels`: `#{Module => Channel}` for the handlers with a channel of their own.
fn decode_broadcast_channels(term: Term) -> NifResult<Vec<(String, String)>> {
    let Ok(map) = term.map_get(Atom::from_str(term.get_env(), "broadcast_channels")?) else {
        return Ok(Vec::new());
    };
    MapIterator::new(map)
        .ok_or(Error::BadArg)?
        .map(|(m, ch)| Ok((atom_text(m)?, atom_text(ch)?)))
        .collect()
}

/// A tag: an atom whose text fits the wire (at most 255 bytes), else `badarg`.
pub fn decode_tag(term: Term) -> NifResult<hyparview::Tag> {
    let text = atom_text(term)?;
    if text.len() > partisan_core::control::MAX_TAG {
        return Err(Error::BadArg);
    }
    Ok(text.into())
}

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// `value` if it is within `min..=max`, else `badarg`: `partisan_config` validated the values
/// already, and the engine never adjusts one on its own.
fn within<T: PartialOrd>(value: T, min: T, max: T) -> NifResult<T> {
    if value >= min && value <= max {
        Ok(value)
    } else {
        Err(Error::BadArg)
    }
}

/// The partisan channel map `#{Name => #{parallelism, monotonic, compression}}`.
pub fn decode_channels(term: Term) -> NifResult<Vec<ChannelSpec>> {
    let mut out = Vec::new();
    for (k, v) in MapIterator::new(term).ok_or(Error::BadArg)? {
        let name = atom_text(k)?;
        let parallelism: u64 = opt(v, "parallelism", 1)?;
        let compression = match v.map_get(Atom::from_str(v.get_env(), "compression")?) {
            Err(_) => Compression::Off,
            Ok(c) if c.is_atom() => match c.decode::<bool>()? {
                true => Compression::On,
                false => Compression::Off,
            },
            Ok(c) => match c.decode::<u8>()? {
                l @ 0..=9 => Compression::Level(l),
                _ => return Err(Error::BadArg),
            },
        };
        out.push(ChannelSpec {
            name,
            parallelism: within(parallelism, 1, u16::MAX as u64)? as u16,
            monotonic: opt(v, "monotonic", false)?,
            compression,
        });
    }
    out.sort();
    Ok(out)
}

/// A `partisan:node_spec()` map.
pub fn decode_node_spec(term: Term) -> NifResult<NodeSpec> {
    let name = atom_text(req(term, "name")?)?;
    partisan_core::wire::validate_node_name(&name).map_err(|_| Error::BadArg)?;
    let listen_addrs = decode_listen_addrs(req(term, "listen_addrs")?)?;
    let channels = match term.map_get(Atom::from_str(term.get_env(), "channels")?) {
        Ok(c) => decode_channels(c)?,
        Err(_) => Vec::new(),
    };
    Ok(NodeSpec {
        name,
        listen_addrs,
        channels,
    })
}

pub struct StartConfig {
    pub engine: Config,
    pub event_pid: LocalPid,
    /// Atoms peers may create (`peer_atom_budget`; 0 is safe mode).
    pub atom_budget: u64,
    /// Least time between two log lines about one peer's refused messages.
    pub refusal_log_interval: Duration,
}

fn binaries(term: Term) -> NifResult<Vec<Vec<u8>>> {
    Ok(term
        .decode::<Vec<rustler::Binary>>()?
        .iter()
        .map(|b| b.as_slice().to_vec())
        .collect())
}

/// One side of `tls` as `partisan_tls` normalised it: DER certificates and key, and the
/// verification options.
fn decode_tls_side(term: Term) -> NifResult<TlsSide> {
    let d = TlsSide::default();
    let key = match term.map_get(Atom::from_str(term.get_env(), "key")?) {
        Ok(k) => {
            let (kind, der): (Atom, rustler::Binary) = k.decode()?;
            let der = der.as_slice().to_vec();
            Some(match atom_text(kind.to_term(term.get_env()))?.as_str() {
                "pkcs1" => KeyDer::Pkcs1(der),
                "sec1" => KeyDer::Sec1(der),
                "pkcs8" => KeyDer::Pkcs8(der),
                _ => return Err(Error::BadArg),
            })
        }
        Err(_) => None,
    };
    let sni: Term = term.map_get(Atom::from_str(term.get_env(), "server_name_indication")?)?;
    let server_name = if let Ok(name) = sni.decode::<String>() {
        ServerNameCheck::Name(name)
    } else {
        match atom_text(sni)?.as_str() {
            "dialed" => ServerNameCheck::Dialed,
            "disable" => ServerNameCheck::Disabled,
            _ => return Err(Error::BadArg),
        }
    };
    let versions = opt::<Vec<Atom>>(term, "versions", Vec::new())?
        .into_iter()
        .map(|v| match atom_text(v.to_term(term.get_env()))?.as_str() {
            "tlsv1.2" => Ok(TlsVersion::V12),
            "tlsv1.3" => Ok(TlsVersion::V13),
            _ => Err(Error::BadArg),
        })
        .collect::<NifResult<_>>()?;
    Ok(TlsSide {
        certs: binaries(req(term, "certs")?)?,
        key,
        cacerts: binaries(req(term, "cacerts")?)?,
        verify_peer: opt(term, "verify_peer", d.verify_peer)?,
        fail_if_no_peer_cert: opt(term, "fail_if_no_peer_cert", d.fail_if_no_peer_cert)?,
        server_name,
        versions,
        depth: within(opt::<u64>(term, "depth", d.depth as u64)?, 0, 64)? as usize,
    })
}

/// `tls => #{client => Side, server => Side}` when TLS is on.
pub fn decode_tls(term: Term) -> NifResult<Option<(TlsSide, TlsSide)>> {
    match term.map_get(Atom::from_str(term.get_env(), "tls")?) {
        Ok(t) => Ok(Some((
            decode_tls_side(req(t, "client")?)?,
            decode_tls_side(req(t, "server")?)?,
        ))),
        Err(_) => Ok(None),
    }
}

pub fn decode_start_config(term: Term) -> NifResult<StartConfig> {
    let name = atom_text(req(term, "name")?)?;
    let ping_term: Option<Term> = term
        .map_get(Atom::from_str(term.get_env(), "connection_ping")?)
        .ok();
    let ping = match ping_term {
        Some(p) if p.is_map() => PingConfig {
            enabled: opt(p, "enabled", true)?,
            idle_timeout: millis(opt(p, "idle_timeout", 20_000)?),
            timeout: millis(opt(p, "timeout", 10_000)?),
            max_attempts: within(opt::<u32>(p, "max_attempts", 5)?, 1, u32::MAX)?,
        },
        _ => PingConfig::default(),
    };
    let engine = Config {
        name,
        incarnation: req(term, "incarnation")?,
        // Filled in by `start`, which knows how the VM names its pids.
        pids: PidNaming {
            vm: NodeId::new("nonode@nohost", 0),
            creation: 0,
        },
        rewrite: Kinds {
            pids: opt(term, "pid_encoding", true)?,
            refs: opt(term, "ref_encoding", true)?,
        },
        listen_addrs: decode_listen_addrs(req(term, "listen_addrs")?)?,
        channels: decode_channels(req(term, "channels")?)?,
        periodic_interval: millis(within(opt(term, "periodic_interval", 10_000)?, 1, 1 << 32)?),
        connection_interval: millis(within(
            opt(term, "connection_interval", 1_000)?,
            1,
            1 << 32,
        )?),
        connection_jitter: millis(opt(term, "connection_jitter", 1_000)?),
        // Resolved on the Erlang side (the `auth_secret' key, else the Erlang cookie; empty
        // when `authentication' is off).
        secret: std::sync::Arc::from(req::<rustler::Binary>(term, "auth_secret")?.as_slice()),
        handshake_limit: within(
            opt::<u64>(term, "handshake_limit", DEFAULT_HANDSHAKE_LIMIT as u64)?,
            1,
            1 << 20,
        )? as usize,
        gossip_fanout: partisan_core::control::DEFAULT_GOSSIP_FANOUT,
        max_members: within(
            opt::<u64>(
                term,
                "max_members",
                partisan_core::control::DEFAULT_MAX_MEMBERS as u64,
            )?,
            1,
            1 << 24,
        )? as usize,
        member_name_rate: within(
            opt::<u32>(
                term,
                "member_name_rate",
                partisan_core::control::DEFAULT_MEMBER_NAME_RATE,
            )?,
            1,
            1 << 24,
        )?,
        membership: decode_membership(term)?,
        ping,
        max_frame_size: within(
            opt::<u64>(term, "max_frame_size", DEFAULT_MAX_FRAME as u64)?,
            1024,
            u32::MAX as u64 - 16,
        )? as usize,
        send_queue_limit: within(
            opt::<u64>(term, "send_queue_limit", DEFAULT_SEND_QUEUE_LIMIT as u64)?,
            64 * 1024,
            1 << 40,
        )? as usize,
        io_threads: within(opt::<u64>(term, "io_threads", 1)?, 1, 64)? as usize,
        io_nice: within(opt::<i32>(term, "io_nice", 0)?, -20, 19)?,
        broadcast_mods: opt::<Vec<Atom>>(term, "broadcast_mods", Vec::new())?
            .into_iter()
            .map(|m| atom_text(m.to_term(term.get_env())))
            .collect::<NifResult<_>>()?,
        broadcast_channels: decode_broadcast_channels(term)?,
        plumtree: partisan_core::plumtree::Config {
            lazy_tick: millis(within(opt(term, "lazy_tick_period", 1_000)?, 1, 1 << 32)?),
            ..partisan_core::plumtree::Config::default()
        },
        // Built by `start` from `decode_tls`, which can fail with a reason.
        tls: None,
    };
    Ok(StartConfig {
        engine,
        event_pid: req(term, "event_pid")?,
        atom_budget: opt(term, "peer_atom_budget", 0)?,
        refusal_log_interval: millis(opt(term, "refusal_log_interval", 10_000)?),
    })
}
