#!/usr/bin/env bash
# `make fuzz` and `make fuzz-cmin`: the cargo-fuzz (libFuzzer) targets of fuzz/, one after
# the other, one process each (-jobs=1: the machine's cores are shared).
#
#   scripts/fuzz.sh run <cargo-fuzz> <seconds> <target>...
#   scripts/fuzz.sh cmin <cargo-fuzz> <target>...
#
# run: fuzzes each target for <seconds> from its committed corpus (fuzz/corpus/<target>)
# and reproducers (fuzz/regressions/<target>); what it finds goes to target/fuzz/corpus,
# never into the repository. libFuzzer's output goes to target/fuzz/<target>.log; then
# every input of the corpus it ended with is run once more, timed, and any over 100 ms
# counts as a hang (fuzz/artifacts/<target>/slow-*). libFuzzer's own -timeout (whole
# seconds) is 10 s: on two shared cores a 1 s alarm fired on a 2 ms input. A summary line per
# target: executions, coverage (cov: edges, ft: features), slowest input, peak RSS, crashes
# (fuzz/artifacts/<target>/).
# cmin: merges that work corpus into the committed one, keeping only inputs that add
# coverage (libFuzzer -merge=1), small ones only (see below).
set -euo pipefail

mode=$1 cargo_fuzz=$2
shift 2
if [[ $mode == run ]]; then
    seconds=$1
    shift
fi

# cargo-fuzz passes nightly-only flags (-Zsanitizer and friends, even for `-s none`);
# the stable toolchain accepts them with RUSTC_BOOTSTRAP. No sanitizer: the filter has no
# unsafe code (workspace lint), and without ASan's slowdown the same time runs about
# twice the inputs; -a keeps debug assertions and overflow checks on.
export RUSTC_BOOTSTRAP=1
build=(-s none -a --target-dir target/fuzz-build)
bin=target/fuzz-build/x86_64-unknown-linux-gnu/release
echo "fuzz: building the targets (first run about 10 min, then seconds)"
"$cargo_fuzz" build "${build[@]}" >target/fuzz-build.log 2>&1 || {
    tail -n 30 target/fuzz-build.log >&2
    exit 1
}
mkdir -p target/fuzz

summary=()
for t in "$@"; do
    work=target/fuzz/corpus/$t
    mkdir -p "$work" "fuzz/artifacts/$t"
    if [[ $mode == cmin ]]; then
        # Only inputs of at most 2 KB are candidates, and of what the merge keeps the
        # smallest 200, up to 48 KB, per target: the corpus stays small enough to commit
        # and to replay in `cargo test`. (fuzz/seeds.py writes the large example seeds again.)
        fresh=target/fuzz/cmin/$t small=target/fuzz/cmin-small/$t
        rm -rf "$fresh" "$small" && mkdir -p "$fresh" "$small"
        find "fuzz/corpus/$t" "$work" -type f -size -2049c -exec cp -t "$small" {} +
        "$bin/$t" -merge=1 "$fresh" "$small" >"target/fuzz/$t.cmin.log" 2>&1
        total=0 count=0
        while read -r size file; do
            total=$((total + size)) count=$((count + 1))
            if ((total > 48 * 1024 || count > 200)); then rm "$file"; fi
        done < <(find "$fresh" -type f -printf '%s %p\n' | sort -n)
        rm -rf "fuzz/corpus/$t" && mv "$fresh" "fuzz/corpus/$t"
        summary+=("$t: $(find "fuzz/corpus/$t" -type f | wc -l) inputs, $(du -sb "fuzz/corpus/$t" | cut -f1) bytes")
        continue
    fi
    dirs=("$work" "fuzz/corpus/$t")
    [[ -d fuzz/regressions/$t ]] && dirs+=("fuzz/regressions/$t")
    log=target/fuzz/$t.log
    echo "fuzz: $t for ${seconds} s (log: $log)"
    status=0
    # A memory blow-up is an RSS over 2 GB (-rss_limit_mb); without a sanitizer libFuzzer
    # has no malloc hooks, so -malloc_limit_mb would check nothing.
    "$bin/$t" "${dirs[@]}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" \
        >"$log" 2>&1 || status=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -n 1)
    # Every input once more, timed ("Executed <file> in <n> ms"); one over 100 ms is run
    # three times more, and counts as a hang if its fastest run is still over: on a
    # shared machine a single slow run can be a descheduling.
    slowest=0
    while read -r ms file; do
        if ((ms > 100)); then
            ms=$(for _ in 1 2 3; do "$bin/$t" "$file" 2>&1; done \
                | sed -n 's/^Executed .* in \([0-9]*\) ms$/\1/p' | sort -n | head -n 1)
            if ((ms > 100)); then cp "$file" "fuzz/artifacts/$t/slow-$(basename "$file")"; fi
        fi
        if ((ms > slowest)); then slowest=$ms; fi
    done < <(find "$work" "fuzz/corpus/$t" -type f -print0 | xargs -0 -r "$bin/$t" 2>&1 \
        | sed -n 's/^Executed \(.*\) in \([0-9]*\) ms$/\2 \1/p')
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log")
    crashes=$(find "fuzz/artifacts/$t" -type f | wc -l)
    line="$t: ${execs:-?} executions, ${cov:-no coverage line}, slowest input $slowest ms, peak RSS ${rss:-?} MB, $crashes artifact(s), exit $status"
    echo "$line" | tee -a target/fuzz/summary.log
    summary+=("$line")
done
printf '\nfuzz summary\n'
printf '  %s\n' "${summary[@]}"
