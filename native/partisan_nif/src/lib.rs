//! `partisan_nif`: the thin rustler layer between the `partisan` OTP application and
//! `partisan_core`. It converts terms, owns the engine resource, and delivers received messages
//! straight to local processes from the engine's I/O threads. The Erlang-facing contract is
//! `docs/nif_api.md`.

#![warn(clippy::undocumented_unsafe_blocks)]

mod config;
mod decode;
mod delivery;
mod encode;
mod in_place;
mod nifs;
mod pinned;
mod terms;

rustler::init!("partisan_nif");
