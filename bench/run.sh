#!/usr/bin/env bash
# End-to-end benchmarks: partisan vs Distributed Erlang (see bench/README.md).
#
#   bash bench/run.sh           full run (3 rounds; `make bench`)
#   bash bench/run.sh --quick   one short round (`make bench-quick`)
#   bash bench/run.sh --tls     the TLS rows, both transports over TLS (`make bench-tls`)
#
# Needs the application built (`rebar3 compile`, which `make bench` does first).
# Compiles the bench modules into a temporary directory, then runs the
# orchestrator (partisan_bench) on a distributed node of its own; it starts the
# two measured nodes itself. Results go to stdout and to bench/results/.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ebin="$root/_build/default/lib/partisan/ebin"

args=()
tls=""
for arg in "$@"; do
    case "$arg" in
        --quick) args+=(--quick) ;;
        --tls) tls=1 ;;
        -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench/run.sh: unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done

if [ ! -f "$ebin/partisan.app" ] || [ ! -f "$root/priv/libpartisan_nif.so" ]; then
    echo "bench/run.sh: partisan is not built; run \`rebar3 compile\` (or \`make bench\`)" >&2
    exit 1
fi

epmd -daemon

code="$(mktemp -d "${TMPDIR:-/tmp}/partisan_bench.XXXXXX")"
trap 'rm -rf "$code"' EXIT
erlc -Wall -o "$code" "$root"/bench/partisan_bench*.erl

# TLS rows: certificates made now; the orchestrator's own Distributed Erlang
# must speak TLS too, to reach the measured nodes.
dist=()
if [ -n "$tls" ]; then
    certs="$code/certs"
    mkdir -p "$certs"
    erl -noshell -pa "$code" -eval "partisan_bench_tls:write_certs(\"$certs\"), halt()."
    dist=(-proto_dist inet_tls -ssl_dist_optfile "$certs/dist.conf")
    args+=(--tls "$certs")
fi

# Distributed Erlang here only orchestrates; `global' need not guard it.
erl -noshell -noinput \
    -name "partisan_bench_$$@127.0.0.1" \
    -setcookie "partisan_bench_$$" \
    -pa "$code" \
    ${dist[@]+"${dist[@]}"} \
    -kernel logger_level warning \
    -kernel prevent_overlapping_partitions false \
    -eval 'partisan_bench:main(init:get_plain_arguments())' \
    -extra --root "$root" --code "$code" ${args[@]+"${args[@]}"}
