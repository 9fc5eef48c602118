"""Conformance of apiguard against independent validators, through the real stack.

Two proofs, both through `harness up` (Envoy + the built apiguard .wasm + echo upstream,
on loopback), each stack stopped when its part ends, also on failure:

1. differential.py — a fixed, seeded set of generated requests (valid ones from the
   schemas and examples, invalid ones by mutation) for the bookshop (OpenAPI 3.1) and
   petstore (3.0) examples, a seeded sample of GitHub's REST API description (3.0.3,
   `schemas: lazy`) and of Blockfrost's (with --blockfrost); each is judged by apiguard
   and by openapi-core's request validator, and the accept/reject verdicts are compared;
2. fuzz.py — schemathesis (`st run`) against the petstore and bookshop stacks: positive
   cases must never be blocked, negative ones should be.

Security requirements are compared by the differential: documents with security schemes
run with a policy that configures them, and requests carry credentials (credentials.py).
schemathesis runs without them (no security parameters, no `security` in its policy).

Every disagreement, and every negative schemathesis case that passes, has a key; the run
fails unless each key matches an entry (a glob pattern) of DIFFERENCES.md. The figures go
to target/conformance/RESULTS.md; with --record, to the tracked conformance/RESULTS.md
(`make conformance-record`), so a test run never modifies the tree. Exit status: 0 when
nothing is unexplained, 1 otherwise, 2 on a set-up problem (a missing input is reported
before anything starts).

Usage: .venv/bin/python conformance/run.py --github FILE [--blockfrost FILE] [--seed N]
       [--github-operations N] [--max-examples N] [--only differential|schemathesis]
       [--record] [--verbose]
"""

from __future__ import annotations

import argparse
import fnmatch
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import differential  # noqa: E402
import fuzz  # noqa: E402
from stack import HARNESS, ROOT  # noqa: E402

HERE = ROOT / "conformance"
DIFFERENCES = HERE / "DIFFERENCES.md"
# Where a run writes its figures, and where `--record` writes them (tracked).
RESULTS = ROOT / "target" / "conformance" / "RESULTS.md"
RECORDED = HERE / "RESULTS.md"
SEED = 20261123


def documented() -> list[str]:
    """The keys (glob patterns) DIFFERENCES.md documents: list items `- \\`pattern\\`: why`."""
    return re.findall(r"^- `([^`]+)`", DIFFERENCES.read_text(), re.MULTILINE)


def matches(key: str, known: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(key, pattern) for pattern in known)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--github-operations", type=int, default=300,
                        help="operations of GitHub's API sampled by the differential test")
    parser.add_argument("--max-examples", type=int, default=10,
                        help="schemathesis cases per operation and phase (`st run --max-examples`)")
    parser.add_argument("--schemathesis-timeout", type=float, default=240,
                        help="seconds one `st run` may take before it is stopped and the run fails")
    parser.add_argument("--only", choices=("differential", "schemathesis"))
    parser.add_argument("--github", type=Path, required=True,
                        help="GitHub's REST API description (npm @octokit/openapi, "
                             "generated/api.github.com.json; `make specs` fetches it)")
    parser.add_argument("--blockfrost", type=Path,
                        help="Blockfrost's openapi.yaml: a further real-world document for the differential")
    parser.add_argument("--record", action="store_true",
                        help=f"write the figures to {RECORDED.relative_to(ROOT)} (tracked) instead of "
                             f"{RESULTS.relative_to(ROOT)}")
    parser.add_argument("--verbose", action="store_true", help="print every unexplained case")
    args = parser.parse_args()

    missing = [f"{path} is missing: `make specs` fetches it from the npm registry"
               for path in (args.github, args.blockfrost) if path is not None and not path.exists()]
    if not HARNESS.exists():
        missing.append(f"{HARNESS} is missing: run `make wasm harness`")
    if missing:
        for problem in missing:
            print(f"conformance: {problem}", file=sys.stderr)
        return 2
    sources = [
        differential.Source("bookshop", ROOT / "policies" / "bookshop" / "bookshop.openapi.yaml"),
        differential.Source("petstore", ROOT / "policies" / "petstore" / "petstore.openapi.yaml"),
        differential.Source("github", args.github.resolve(), operations=args.github_operations, valid=1, mutations=2, lazy=True),
    ]
    if args.blockfrost is not None:
        sources.append(differential.Source("blockfrost", args.blockfrost.resolve(),
                                           operations=args.github_operations, valid=1, mutations=2))
    targets = [fuzz.Target(s.name, s.path) for s in sources[:2]]

    known = documented()
    started = time.monotonic()
    diffs: dict[str, differential.Tally] = {}
    fuzzed: dict[str, fuzz.Result] = {}
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="apiguard-conformance-") as tmp:
        work = Path(tmp)
        try:
            if args.only in (None, "differential"):
                for source in sources:
                    print(f"differential {source.name}: generating requests, starting a stack, sending them "
                          "(quiet; up to a minute)", flush=True)
                    tally = differential.run(source, args.seed, known, work, matches)
                    diffs[source.name] = tally
                    print(f"differential {source.name}: {tally.requests} requests ({tally.valid} valid, "
                          f"{tally.invalid} invalid) over {tally.operations} operations in {tally.seconds:.0f} s: "
                          f"{tally.agree} agree, {sum(tally.documented.values())} documented differences, "
                          f"{len(tally.unexplained)} unexplained", flush=True)
                    for d in tally.unexplained:
                        failures.append(f"differential {source.name}: {d.key}: {d.request.show()[:300]} "
                                        f"-> apiguard {d.status} {d.rule or 'accepted'}; openapi-core: "
                                        f"{d.oracle or 'accepted'}")
            if args.only in (None, "schemathesis"):
                for target in targets:
                    print(f"schemathesis {target.name}: st run (quiet; a minute or two)", flush=True)
                    result = fuzz.run(target, args.seed, args.max_examples, args.schemathesis_timeout,
                                      known, matches, work)
                    fuzzed[target.name] = result
                    print(f"schemathesis {target.name}: {result.cases} cases in {result.seconds:.0f} s; "
                          f"positive {result.positive}, blocked {len(result.positive_blocked)}; negative "
                          f"{result.negative}, blocked {result.negative_blocked}, passed "
                          f"{sum(result.negative_passed.values())}; unexplained {len(result.unexplained)}",
                          flush=True)
                    failures += [f"schemathesis {target.name}: {u}" for u in result.unexplained]
        except Exception as error:  # noqa: BLE001 - report, after the stacks were stopped
            print(f"conformance: error: {type(error).__name__}: {error}", file=sys.stderr)
            return 2

    seen = set()
    for tally in diffs.values():
        seen |= set(tally.documented)
    for result in fuzzed.values():
        seen |= {k for k in list(result.negative_passed) + list(result.positive_mislabelled)
                 if matches(k, known)}
    results = RECORDED if args.record else RESULTS
    write_results(results, diffs, fuzzed, args, known, seen, time.monotonic() - started)
    print(f"conformance: figures written to {results.relative_to(ROOT)}")

    for failure in failures if args.verbose else failures[:40]:
        print("FAIL", failure)
    if len(failures) > 40 and not args.verbose:
        print(f"... and {len(failures) - 40} more (--verbose prints all)")
    if diffs:
        print(f"differential: {sum(t.requests for t in diffs.values())} requests, "
              f"{sum(t.agree for t in diffs.values())} agree, "
              f"{sum(sum(t.documented.values()) for t in diffs.values())} documented differences, "
              f"{sum(len(t.unexplained) for t in diffs.values())} unexplained")
    if fuzzed:
        print(f"schemathesis: {sum(r.cases for r in fuzzed.values())} cases, positive blocked "
              f"{sum(len(r.positive_blocked) for r in fuzzed.values())}, negative blocked "
              f"{sum(r.negative_blocked for r in fuzzed.values())} of {sum(r.negative for r in fuzzed.values())}, "
              f"unexplained {sum(len(r.unexplained) for r in fuzzed.values())}")
    checked = sum(t.requests for t in diffs.values()) + sum(r.cases for r in fuzzed.values())
    print(f"conformance: {checked - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


def write_results(path: Path, diffs, fuzzed, args, known, seen, seconds) -> None:
    out = [
        "# Conformance results",
        "",
        "Written by `make conformance-record` (`conformance/run.py --record`); what is compared",
        "is in the README (\"Conformance against independent validators\") and run.py, the",
        "deliberate differences in DIFFERENCES.md. `make conformance` (part of `make test`)",
        "writes the same figures to target/conformance/RESULTS.md: record and commit them with",
        "the change that moved them.",
        "",
        f"Seed {args.seed}; GitHub: {args.github_operations} operations sampled; schemathesis "
        f"`--max-examples {args.max_examples}`; {seconds:.0f} s in all.",
        "",
    ]
    if diffs:
        out += [
            "## 1. Differential against openapi-core",
            "",
            "| document | operations | requests | valid | invalid | agree | documented differences | unexplained |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, t in diffs.items():
            out.append(f"| {name} | {t.operations} | {t.requests} | {t.valid} | {t.invalid} | {t.agree} | "
                       f"{sum(t.documented.values())} | {len(t.unexplained)} |")
        out += ["", "Disagreements by key (one example request each):", ""]
        for name, t in diffs.items():
            for key, d in sorted(t.examples.items()):
                count = t.documented.get(key) or sum(1 for u in t.unexplained if u.key == key)
                status = "documented" if key in t.documented else "**unexplained**"
                out.append(f"- {name}: `{key}` × {count} ({status}) — `{d.request.show()[:200]}`"
                           + (f" ({d.request.note})" if d.request.note else ""))
        out += ["", "Verdicts by request kind (apiguard's rule or `accept`; openapi-core's error class or `accept`):",
                "", "| document | kind | apiguard | openapi-core | requests |", "|---|---|---|---|---|"]
        for name, t in diffs.items():
            for (kind, a, o), n in sorted(t.verdicts.items()):
                out.append(f"| {name} | {kind} | {a} | {o} | {n} |")
        out.append("")
    if fuzzed:
        out += [
            "## 2. schemathesis against the demo stack",
            "",
            "| document | cases | examples / coverage / fuzzing | positive | positive blocked | "
            "positive refused by both | negative | negative blocked | negative passed | unexplained |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, r in fuzzed.items():
            phases = " / ".join(str(r.by_phase.get(p, 0)) for p in ("examples", "coverage", "fuzzing"))
            out.append(f"| {name} | {r.cases} | {phases} | {r.positive} | {len(r.positive_blocked)} | "
                       f"{sum(r.positive_mislabelled.values())} | {r.negative} | {r.negative_blocked} | "
                       f"{sum(r.negative_passed.values())} | {len(r.unexplained)} |")
        out += ["", "Positive cases blocked while openapi-core accepts them (must be none):", ""]
        out += [f"- {p}" for r in fuzzed.values() for p in r.positive_blocked] or ["- none"]
        out += ["", "Cases that passed apiguard or were refused by both against schemathesis's label, by key "
                "(one example each):", ""]
        for name, r in fuzzed.items():
            for key, count in sorted({**r.negative_passed, **r.positive_mislabelled}.items()):
                status = "documented" if key in seen else "**unexplained**"
                out.append(f"- {name}: `{key}` × {count} ({status}) — `{r.examples[key][:240]}`")
        out.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out))


if __name__ == "__main__":
    sys.exit(main())
