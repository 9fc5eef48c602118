"""Proof 2: schemathesis against the demo stack.

`st run` (the installed schemathesis CLI) generates positive (schema-conforming) and
negative (schema-violating) requests for a document, from its examples, its coverage
scenarios and hypothesis fuzzing, bounded by `--max-examples` per operation and phase and
by a wall-clock timeout, and sends them through the real stack. The check
`apiguard_verdict` (st_hooks.py) records each case and its verdict.

Positive cases must never be blocked. A schemathesis "positive" case is what schemathesis
believes conforms; OpenAPI rules it does not model (e.g. `allowEmptyValue`, which is false
by default, so `?cursor=` is not conforming) can make it otherwise, so each blocked
positive case is judged by openapi-core too: blocked while openapi-core accepts it is a
failure, always; blocked while openapi-core refuses it too is a mislabelled case, counted
apart and keyed for DIFFERENCES.md like any other.

Negative cases should be blocked. Each one that passes is judged by openapi-core and keyed

    schemathesis negative-passes <openapi-core verdict> <what was negative> <where it ended>

where the verdict is `accepted` or openapi-core's error class, "what was negative" is
schemathesis's coverage scenario or, for fuzzing, the locations generated negative, and
"where it ended" is `reached-upstream` (the echo upstream answered) or
`refused-by-envoy-<status>` (Envoy itself refused it before any filter ran). Every
key must match an entry of DIFFERENCES.md.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from stack import ROOT, Oracle, base_path, load_document, stack

HERE = Path(__file__).resolve().parent


@dataclass
class Target:
    name: str
    path: Path


@dataclass
class Result:
    cases: int = 0
    by_phase: Counter = field(default_factory=Counter)
    positive: int = 0
    positive_blocked: list = field(default_factory=list)  # openapi-core accepts: failures
    positive_mislabelled: Counter = field(default_factory=Counter)  # both refuse
    negative: int = 0
    negative_blocked: int = 0
    negative_passed: Counter = field(default_factory=Counter)  # key -> count
    unexplained: list = field(default_factory=list)
    examples: dict = field(default_factory=dict)
    exit_code: int = 0
    output: str = ""
    seconds: float = 0.0


def run(target: Target, seed: int, max_examples: int, timeout: float, known, matches, workdir: Path) -> Result:
    started = time.monotonic()
    result = Result()
    spec = load_document(target.path)
    oracle = Oracle(spec, security=False)
    records = workdir / f"schemathesis-{target.name}.jsonl"
    records.write_text("")
    with stack(f"st-{target.name}", target.path, workdir=workdir) as running:
        env = dict(os.environ, SCHEMATHESIS_HOOKS="st_hooks", APIGUARD_CASES=str(records),
                   PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])))
        command = [
            str(ROOT / ".venv" / "bin" / "st"), "run", str(target.path),
            "--url", running.url + base_path(spec),
            "--mode", "all",
            "--phases", "examples,coverage,fuzzing",
            "--max-examples", str(max_examples),
            "--seed", str(seed),
            "--checks", "apiguard_verdict",
            "--workers", "1",
            "--generation-with-security-parameters", "false",
            "--suppress-health-check", "all",
            "--request-timeout", "10",
            "--no-color",
        ]
        try:
            # `st run` is its own process group only through us: kill it on timeout.
            done = subprocess.run(command, env=env, cwd=workdir, capture_output=True, text=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL)
            result.exit_code, result.output = done.returncode, done.stdout + done.stderr
        except subprocess.TimeoutExpired as expired:
            result.exit_code = -1
            result.output = f"schemathesis did not finish in {timeout:.0f} s\n" + str(expired.stdout or "")
    for line in records.read_text().splitlines():
        judge(json.loads(line), result, oracle, known, matches, target.name)
    # schemathesis fails the run when the check fails (a positive case blocked); any other
    # non-zero exit (an error, a crash, the timeout) is a failure of its own.
    # Exit 1 with blocked positive cases is the check failing, already counted above.
    if result.exit_code != 0 and not (result.exit_code == 1 and (result.positive_blocked or result.positive_mislabelled)):
        result.unexplained.append(f"{target.name}: schemathesis exited {result.exit_code}: "
                                  + result.output[-1500:])
    result.seconds = time.monotonic() - started
    return result


def judge(record: dict, result: Result, oracle: Oracle, known, matches, name: str) -> None:
    result.cases += 1
    result.by_phase[record["phase"]] += 1
    split = urllib.parse.urlsplit(record["url"])
    target = split.path + (f"?{split.query}" if split.query else "")
    body = base64.b64decode(record["body"]) if record["body"] else None
    headers = {k: v for k, v in record["headers"].items()
               if k.lower() not in ("content-length", "host", "user-agent", "accept-encoding", "connection")}
    shown = f"{record['method']} {target}" + (f" body={body[:120]!r}" if body else "") + \
        (f" content-type={headers.get('Content-Type')!r}" if body else "")
    if record["mode"] == "positive":
        result.positive += 1
        if record["rule"] is None:
            return
        verdict = oracle.judge(record["method"], target, headers, body)
        if verdict is None:
            result.positive_blocked.append(f"{name}: {shown}: blocked by {record['rule']}, openapi-core accepts it")
            result.unexplained.append(f"{name}: positive case blocked: {shown} ({record['rule']})")
            return
        key = f"schemathesis positive-refused-by-both {record['rule']} {verdict.split(':')[0]}"
        result.positive_mislabelled[key] += 1
        result.examples.setdefault(key, f"{shown} — openapi-core: {verdict[:200]}")
        if not matches(key, known):
            result.unexplained.append(f"{name}: {key}: {shown}")
        return
    result.negative += 1
    if record["rule"] is not None:
        result.negative_blocked += 1
        return
    verdict = oracle.judge(record["method"], target, headers, body)
    what = record["scenario"] or ("+".join(record["negative_in"]) or "unknown")
    where = "reached-upstream" if record.get("reached_upstream") else f"refused-by-envoy-{record['status']}"
    key = f"schemathesis negative-passes {'accepted' if verdict is None else verdict.split(':')[0]} {what} {where}"
    result.negative_passed[key] += 1
    result.examples.setdefault(key, f"{shown}" + (f" — openapi-core: {verdict[:200]}" if verdict else "")
                               + (f" — {record['description']}" if record["description"] else ""))
    if not matches(key, known):
        result.unexplained.append(f"{name}: {key}: {shown}")
