#!/usr/bin/env bash
# Coverage-guided fuzzing of partisan_core's decoders with libFuzzer, on the stable toolchain
# (see README.md for how the coverage instrumentation is switched on without nightly).
#
#   run.sh [SECONDS_PER_TARGET] [TARGET...]   build the targets, fuzz each for that long (60 s
#                                             by default; every target when none is named)
#   run.sh --build                            only build the instrumented targets
#   run.sh --seeds                            regenerate corpus/ with the seed generator
#   run.sh --list                             the targets' names
#   run.sh --known                            replay regressions/ with the known-bug skips
#                                             off: fails while a bug found there is not fixed
#
# Each target runs on a copy of its seed corpus in a scratch directory (what it finds is not
# kept), with -rss_limit_mb=2048. A crash, timeout or out-of-memory stops that target; its input
# goes to artifacts/<target>/ (git-ignored) with the log, and run.sh exits 1 after the summary.
# Targets run one after another, each on one core (the machine has two, and other builds).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PATH="$PATH:$HOME/.cargo/bin"
CARGO="${CARGO:-cargo}"
TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
TARGET_DIR="$here/target"

TARGETS=(preamble frames auth handshake gossip target term_rewrite term_receive overlay broadcast)

# SanitizerCoverage through stable codegen options: the LLVM pass that cargo-fuzz gets from
# -Zsanitizer is not needed, only the module pass `sancov-module` and its options, which
# -Cpasses and -Cllvm-args reach on any toolchain. What each one does is in README.md.
FUZZ_RUSTFLAGS=(
    -Cpasses=sancov-module
    -Cllvm-args=-sanitizer-coverage-level=4
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters
    -Cllvm-args=-sanitizer-coverage-pc-table
    -Cllvm-args=-sanitizer-coverage-trace-compares
    --cfg=fuzzing
)

build() {
    echo "==> building the fuzz targets (release, coverage-instrumented, $TRIPLE)"
    local start=$SECONDS
    # --target keeps RUSTFLAGS off build scripts and proc macros, which run on the host and
    # would not link against libFuzzer's coverage callbacks.
    env -u CARGO_ENCODED_RUSTFLAGS -u CARGO_BUILD_RUSTFLAGS \
        RUSTFLAGS="${FUZZ_RUSTFLAGS[*]}" \
        "$CARGO" build --release --locked --bins \
        --manifest-path "$here/Cargo.toml" --target "$TRIPLE" --target-dir "$TARGET_DIR"
    echo "==> built in $((SECONDS - start)) s"
}

case "${1:-}" in
--list)
    printf '%s\n' "${TARGETS[@]}"
    exit 0
    ;;
--build)
    build
    exit 0
    ;;
--seeds)
    # Uninstrumented (no RUSTFLAGS, host output dir): the generator is an ordinary program.
    env -u CARGO_ENCODED_RUSTFLAGS -u RUSTFLAGS \
        "$CARGO" run --release --locked --example seeds \
        --manifest-path "$here/Cargo.toml" --target-dir "$TARGET_DIR" -- "$here/corpus"
    exit 0
    ;;
--known)
    build
    status=0
    for dir in "$here"/regressions/*/; do
        t="$(basename "$dir")"
        echo "==> $t: replaying $(ls "$dir" | wc -l) inputs with PARTISAN_FUZZ_KNOWN_BUGS=1"
        if PARTISAN_FUZZ_KNOWN_BUGS=1 RUST_BACKTRACE=0 "$TARGET_DIR/$TRIPLE/release/$t" \
            "$dir"* >"$TARGET_DIR/known-$t.log" 2>&1; then
            echo "--- $t: fixed (no crash)"
        else
            status=1
            echo "--- $t: still crashes:"
            grep -E 'panicked at|^attempt|^assertion|Running: ' "$TARGET_DIR/known-$t.log" | head -5
        fi
    done
    exit "$status"
    ;;
-h | --help)
    sed -n '2,19p' "$0"
    exit 0
    ;;
esac

SECONDS_PER_TARGET="${1:-60}"
shift || true
[[ "$SECONDS_PER_TARGET" =~ ^[0-9]+$ ]] || {
    echo "run.sh: SECONDS_PER_TARGET must be a number, not '$SECONDS_PER_TARGET'" >&2
    exit 2
}
if [ "$#" -gt 0 ]; then
    for t in "$@"; do
        printf '%s\n' "${TARGETS[@]}" | grep -qx -- "$t" || {
            echo "run.sh: no target '$t' (run.sh --list)" >&2
            exit 2
        }
    done
    TARGETS=("$@")
fi

build

scratch="$(mktemp -d "${TMPDIR:-/tmp}/partisan-fuzz.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT

declare -A EXECS RATE COV COUNTERS RESULT UNITS
failed=0
for t in "${TARGETS[@]}"; do
    bin="$TARGET_DIR/$TRIPLE/release/$t"
    work="$scratch/$t"
    mkdir -p "$work/corpus" "$here/artifacts/$t"
    # The seeds, and the inputs of bugs found before (replayed first, known bugs skipped).
    for d in "$here/corpus/$t" "$here/regressions/$t"; do
        if [ -d "$d" ]; then
            cp -R "$d/." "$work/corpus/"
        fi
    done
    log="$work/log"
    echo
    echo "==> fuzzing $t for ${SECONDS_PER_TARGET} s ($(find "$work/corpus" -type f | wc -l) seeds)"
    rc=0
    # A panic prints its message and backtrace (libfuzzer-sys's hook), then aborts: a crash.
    RUST_BACKTRACE=1 "$bin" "$work/corpus" \
        -max_total_time="$SECONDS_PER_TARGET" \
        -rss_limit_mb=2048 \
        -timeout=20 \
        -print_final_stats=1 \
        -artifact_prefix="$here/artifacts/$t/" \
        >"$log" 2>&1 || rc=$?
    # The lines that show coverage feedback at work, and the end of the run.
    grep -E '^INFO: Loaded|^INFO: seed corpus|^#[0-9]+ +(INITED|DONE)' "$log" || true
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
    if [ -z "$execs" ]; then
        execs="$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')"
    fi
    EXECS[$t]="${execs:-0}"
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)"
    if [ -z "$rate" ]; then
        rate="$(sed -n 's/^#.* exec\/s: \([0-9]*\).*/\1/p' "$log" | tail -1)"
    fi
    RATE[$t]="${rate:-?}"
    COV[$t]="$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)"
    COV[$t]="${COV[$t]:-?}"
    UNITS[$t]="$(grep -oE 'corp: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)"
    UNITS[$t]="${UNITS[$t]:-?}"
    COUNTERS[$t]="$(sed -n 's/^INFO: Loaded [0-9]* modules *(\([0-9]*\) inline 8-bit counters).*/\1/p' "$log" | head -1)"
    COUNTERS[$t]="${COUNTERS[$t]:-0}"
    if [ "$rc" -ne 0 ]; then
        RESULT[$t]="CRASH (exit $rc)"
        failed=1
        cp "$log" "$here/artifacts/$t/$t.log"
        echo "--- $t failed; the log is in artifacts/$t/$t.log; its end:"
        grep -vE '^#[0-9]+ ' "$log" | tail -60
        for f in $(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log"); do
            [ -f "$f" ] && echo "--- input $f ($(wc -c <"$f") bytes), hex:" && od -An -v -tx1 "$f" | tr -d ' \n' | fold -w 96 && echo
        done
    elif [ "${COUNTERS[$t]}" = 0 ]; then
        RESULT[$t]="NO COVERAGE (instrumentation off)"
        failed=1
    else
        RESULT[$t]="ok"
    fi
    echo "--- $t: ${EXECS[$t]} executions, ${RESULT[$t]}"
done

echo
echo "==> summary (${SECONDS_PER_TARGET} s per target)"
printf '%-14s %14s %10s %9s %8s %8s  %s\n' target executions exec/s counters cov corpus result
for t in "${TARGETS[@]}"; do
    printf '%-14s %14s %10s %9s %8s %8s  %s\n' "$t" "${EXECS[$t]}" "${RATE[$t]}" \
        "${COUNTERS[$t]}" "${COV[$t]}" "${UNITS[$t]}" "${RESULT[$t]}"
done
if [ "$failed" -ne 0 ]; then
    echo "==> fuzzing FAILED: crashing inputs are in $here/artifacts/" >&2
    exit 1
fi
echo "==> no crash"
