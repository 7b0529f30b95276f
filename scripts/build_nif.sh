#!/usr/bin/env bash
# Builds the partisan NIF (Rust, crate `partisan_nif`) and installs it as
# priv/libpartisan_nif.so.
#
# Called by rebar3 (pre_hooks in rebar.config), by mix (the PartisanNif
# compiler in mix.exs) and by the Makefile. Every path is taken relative to
# this script, so it works the same when partisan is a dependency of another
# rebar3 or mix project (hooks then run inside the dependency's directory).
#
# Environment:
#   CARGO                     cargo executable (default: cargo on PATH, then ~/.cargo/bin/cargo)
#   CARGO_TARGET_DIR          respected, as cargo does (relative paths are taken from the repo root)
#   PARTISAN_NIF_PROFILE      cargo profile to build (default: release)
#   PARTISAN_NIF_SKIP_BUILD=1 do not run cargo; only install an already built library
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
lib_name="partisan_nif"
profile="${PARTISAN_NIF_PROFILE:-release}"

say() { printf 'partisan: %s\n' "$*" >&2; }

find_cargo() {
    if [ -n "${CARGO:-}" ] && command -v "$CARGO" >/dev/null 2>&1; then
        command -v "$CARGO"
    elif command -v cargo >/dev/null 2>&1; then
        command -v cargo
    elif [ -x "${CARGO_HOME:-${HOME:-}/.cargo}/bin/cargo" ]; then
        echo "${CARGO_HOME:-${HOME:-}/.cargo}/bin/cargo"
    else
        return 1
    fi
}

case "$(uname -s)" in
    Darwin) built_name="lib${lib_name}.dylib" ;;
    MINGW* | MSYS* | CYGWIN*) built_name="${lib_name}.dll" ;;
    *) built_name="lib${lib_name}.so" ;;
esac

# Where cargo puts its output: CARGO_TARGET_DIR / CARGO_BUILD_TARGET_DIR, else <root>/target.
target_dir="${CARGO_TARGET_DIR:-${CARGO_BUILD_TARGET_DIR:-$root/target}}"
case "$target_dir" in
    /*) ;;
    *) target_dir="$root/$target_dir" ;;
esac
case "$profile" in
    dev | debug) profile_dir="debug"; profile_flag=() ;;
    release) profile_dir="release"; profile_flag=(--release) ;;
    *) profile_dir="$profile"; profile_flag=(--profile "$profile") ;;
esac
built="$target_dir/$profile_dir/$built_name"

if [ "${PARTISAN_NIF_SKIP_BUILD:-0}" != "1" ]; then
    if ! cargo_bin="$(find_cargo)"; then
        say "cargo (Rust) is required to build the NIF; install it from rustup (https://rustup.rs)"
        exit 1
    fi
    say "building the NIF ($lib_name, $profile_dir) with cargo"
    (cd "$root" && "$cargo_bin" build ${profile_flag[@]+"${profile_flag[@]}"} -p "$lib_name")
fi

if [ ! -f "$built" ]; then
    say "expected $built after the cargo build, but it is not there"
    exit 1
fi

mkdir -p "$root/priv"
dest="$root/priv/lib${lib_name}.so"
if [ -f "$dest" ] && cmp -s "$built" "$dest"; then
    exit 0
fi
# Copy then rename: a VM that has the old library mapped keeps a valid file.
tmp="$dest.tmp.$$"
cp "$built" "$tmp"
mv -f "$tmp" "$dest"
say "installed $dest"
