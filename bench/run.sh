#!/usr/bin/env bash
# End-to-end benchmarks: partisan vs Distributed Erlang (see bench/README.md).
#
#   bash bench/run.sh           full run (3 rounds; `make bench`)
#   bash bench/run.sh --quick   one short round (`make bench-quick`)
#
# Needs the application built (`rebar3 compile`, which `make bench` does first).
# Compiles the bench modules into a temporary directory, then runs the
# orchestrator (partisan_bench) on a distributed node of its own; it starts the
# two measured nodes itself. Results go to stdout and to bench/results/.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ebin="$root/_build/default/lib/partisan/ebin"

args=()
for arg in "$@"; do
    case "$arg" in
        --quick) args+=(--quick) ;;
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

# Distributed Erlang here only orchestrates; `global' need not guard it.
erl -noshell -noinput \
    -name "partisan_bench_$$@127.0.0.1" \
    -setcookie "partisan_bench_$$" \
    -pa "$code" \
    -kernel logger_level warning \
    -kernel prevent_overlapping_partitions false \
    -eval 'partisan_bench:main(init:get_plain_arguments())' \
    -extra --root "$root" --code "$code" ${args[@]+"${args[@]}"}
