# partisan: a drop-in Partisan 5 whose transport is a Rust NIF.
#
#   make demo        start a local 3-node cluster and print what it does
#   make test        every test: Rust (fmt, clippy, tests), EUnit, Common Test, ExUnit
#   make build       rebar3 compile (builds the NIF with cargo)
#   make setup       install Erlang/OTP, rebar3 and Elixir if they are missing (Debian/Ubuntu)
#   make bench       end-to-end benchmarks (bench/run.sh); bench-quick: a short run
#   make bench-rust  criterion micro-benchmarks of partisan_core
#   make fuzz        property tests of the decoders, then libFuzzer on each (FUZZ_SECONDS, 300)
#   make scale       SCALE_NODES (64) BEAM nodes joined by HyParView, one broadcast to all
#   make mesh        a full mesh of MESH_NODES (16) BEAM nodes: convergence, memory per connection
#   make lint        rebar3 xref + dialyzer
#   make clean       remove Erlang/Elixir build output (keeps cargo's target/)

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

CARGO ?= cargo
REBAR3 ?= rebar3
MIX ?= mix
CT_NODE ?= ct@127.0.0.1

# Where Rust lives when rustup installed it but the shell has no PATH for it.
export PATH := $(PATH):$(HOME)/.cargo/bin
# Plain output in CI logs.
ifdef CI
export REBAR_COLOR := none
endif
# mix must never try to reach hex.pm (partisan has no deps at all).
export HEX_OFFLINE := 1

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := erlang-nox erlang-dev erlang-common-test erlang-dialyzer \
                erlang-eunit erlang-tools rebar3 elixir

step = @printf '\n==> %s\n' "$(1)"

# `make test` runs its steps in order even under -j.
.NOTPARALLEL:

.PHONY: all setup build test test-rust test-erlang eunit ct test-elixir \
        fmt-check clippy cargo-test loom epmd demo bench bench-quick bench-tls bench-check bench-rust sim fuzz fuzz-short scale mesh \
        lint xref dialyzer clean

all: build

## setup: install the BEAM toolchain only when something is missing.
setup:
	@missing=""; \
	for t in erl ct_run rebar3 elixir mix; do \
	    command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "partisan: missing:$$missing; installing $(APT_PACKAGES)"; \
	    command -v apt-get >/dev/null 2>&1 || { \
	        echo "partisan: no apt-get here; install Erlang/OTP 25+, rebar3 and Elixir 1.14+ yourself" >&2; exit 1; }; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    $(SUDO) apt-get update -qq; \
	    $(SUDO) apt-get install -y -q $(APT_PACKAGES); \
	fi
	@command -v $(CARGO) >/dev/null 2>&1 || { \
	    echo "partisan: cargo (Rust) is required to build the NIF; install it from rustup" >&2; exit 1; }

build: setup
	$(call step,rebar3 compile)
	$(REBAR3) compile

## test: stops at the first failing step and exits non-zero.
test: setup fmt-check clippy cargo-test loom fuzz-short eunit ct test-elixir
	@printf '\n==> make test: every step passed\n'

test-rust: fmt-check clippy cargo-test loom
test-erlang: eunit ct

fmt-check:
	$(call step,cargo fmt --check)
	$(CARGO) fmt --all -- --check

clippy:
	$(call step,cargo clippy)
	$(CARGO) clippy --workspace --all-targets -- -D warnings

cargo-test:
	$(call step,cargo test)
	$(CARGO) test --workspace

## loom: model-check the back-pressure handshake (its own target dir: the cfg changes every crate's flags)
loom:
	$(call step,loom model checking)
	RUSTFLAGS="--cfg partisan_loom" CARGO_TARGET_DIR=target/loom $(CARGO) test --release -p partisan_core --test loom_pressure

eunit: setup
	$(call step,rebar3 eunit)
	$(REBAR3) eunit

# Multi-node suites start peer nodes; Distributed Erlang is used only to
# orchestrate them, so the CT node itself must be distributed (epmd running).
ct: setup epmd
	$(call step,rebar3 ct)
	$(REBAR3) ct --name $(CT_NODE)

test-elixir: setup epmd
	$(call step,mix test)
	MIX_ENV=test $(MIX) test

epmd:
	@epmd -daemon

demo: build epmd
	$(call step,demo: a 3-node partisan cluster on this machine)
	escript scripts/demo.escript

## scale: many BEAM nodes on this machine joined by HyParView (not a test: it reports figures).
SCALE_NODES ?= 64
MESH_NODES ?= 16
scale: build epmd
	$(call step,HyParView scale: $(SCALE_NODES) BEAM nodes)
	escript bench/hyparview_scale.escript --nodes $(SCALE_NODES)

## mesh: a full mesh of MESH_NODES (16) BEAM nodes: convergence, memory per idle connection
mesh: build epmd
	$(call step,full mesh: $(MESH_NODES) BEAM nodes)
	escript bench/mesh_scale.escript --nodes $(MESH_NODES)

## sim: the simulations of the control core and of HyParView at larger sizes than `make test`
## runs them (every check the same); SIM_NODES, SIM_HV_NODES and SIM_SEED choose them.
SIM_NODES ?= 1000
SIM_HV_NODES ?= 50000
sim:
	$(call step,control core simulation: $(SIM_NODES) nodes)
	SIM_NODES=$(SIM_NODES) SIM_HV_CORE_NODES=$(SIM_NODES) $(CARGO) test -p partisan_core --test control_sim -- --nocapture
	$(call step,HyParView simulation: $(SIM_HV_NODES) nodes)
	SIM_HV_NODES=$(SIM_HV_NODES) SIM_DENSE_SEEDS=20 $(CARGO) test -p partisan_core --test overlay_sim -- --nocapture

## fuzz: the decoders' property tests (frames, handshake, gossip, the term rewrite) with many more
## random and corrupted inputs (FUZZ_CASES per property), then coverage-guided fuzzing of every
## decoder with libFuzzer for FUZZ_SECONDS per target, on the stable toolchain (native/fuzz/,
## its own package and target dir; README.md there says how). fuzz-short: 10 s per target.
FUZZ_CASES ?= 200000
FUZZ_SECONDS ?= 300
fuzz:
	$(call step,property tests of the decoders: $(FUZZ_CASES) cases each)
	PROPTEST_CASES=$(FUZZ_CASES) $(CARGO) test -p partisan_core --test wire_props --test term_rewrite_props --test membership_props
	$(call step,libFuzzer: $(FUZZ_SECONDS) s per target)
	bash native/fuzz/run.sh $(FUZZ_SECONDS)

fuzz-short:
	$(call step,libFuzzer: 10 s per target)
	bash native/fuzz/run.sh 10

## Benchmarks: thin wrappers around scripts in bench/.
bench: bench-check build epmd
	bash bench/run.sh

bench-quick: bench-check build epmd
	bash bench/run.sh --quick

bench-tls: bench-check build epmd
	bash bench/run.sh --tls

bench-check:
	@[ -f bench/run.sh ] || { echo "partisan: bench/run.sh does not exist yet" >&2; exit 1; }

bench-rust:
	$(call step,cargo bench -p partisan_core)
	$(CARGO) bench -p partisan_core

lint: xref dialyzer

xref: setup
	$(call step,rebar3 xref)
	$(REBAR3) xref

dialyzer: setup
	$(call step,rebar3 dialyzer)
	$(REBAR3) dialyzer

clean:
	rm -rf _build deps priv/libpartisan_nif.so
