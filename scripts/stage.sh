#!/usr/bin/env bash
# One stage of a `make` target: a banner saying what it does and about how long it takes,
# the command, then the wall time it took (or that it failed, and after how long), so a
# long, quiet build never looks like a hang.
#
#   scripts/stage.sh "<what>" "<about how long>" <command> [args...]
set -uo pipefail

what="$1" about="$2"
shift 2

took() {
    local s=$((SECONDS - start))
    if ((s >= 60)); then printf '%d min %02d s' $((s / 60)) $((s % 60)); else printf '%d s' "$s"; fi
}

printf '\n==> %s  [%s]\n' "$what" "$about"
start=$SECONDS
"$@"
status=$?
if ((status == 0)); then
    printf '<== %s: done in %s\n' "${what%%:*}" "$(took)"
else
    printf '<== %s: FAILED (exit %d) after %s\n' "${what%%:*}" "$status" "$(took)" >&2
fi
exit "$status"
