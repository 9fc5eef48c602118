"""Proof 1: the differential test against openapi-core.

For each document, a fixed, seeded set of requests (generate.py: valid ones and mutated
invalid ones) goes through the real stack and through openapi-core's request validator;
the two accept/reject verdicts are compared. A disagreement is keyed

    differential <side> <rule> <category>

`side` is `apiguard-refuses` (apiguard answered with a problem, openapi-core accepts) or
`openapi-core-refuses`; `rule` is apiguard's rule id, or openapi-core's error class when
only openapi-core refuses; `category` is the request's kind (`valid` or the mutation,
generate.MUTATIONS) and, for bodies, the media type family (`json`, `+json`, `form`,
`text`, `other`). DIFFERENCES.md lists the keys (glob patterns) of deliberate differences.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from credentials import Credentials
from generate import Document, Operation, Request, Unsupported, is_json, media_essence
from stack import Client, Oracle, base_path, load_document, stack

# Mutations that probe apiguard's deliberate strictness rather than the contract.
PROBES = ("path.control_char", "query.repeated_scalar")


@dataclass
class Source:
    name: str
    path: Path
    # Operations sampled (None: all), valid requests per operation, mutations per
    # operation (None: every mutation that applies).
    operations: int | None = None
    valid: int = 3
    mutations: int | None = None
    lazy: bool = False


@dataclass
class Disagreement:
    key: str
    request: Request
    status: int
    rule: str | None
    oracle: str | None
    reply: bytes = b""


@dataclass
class Tally:
    requests: int = 0
    agree: int = 0
    valid: int = 0
    invalid: int = 0
    operations: int = 0
    skipped_operations: Counter = field(default_factory=Counter)
    documented: Counter = field(default_factory=Counter)
    unexplained: list[Disagreement] = field(default_factory=list)
    examples: dict[str, Disagreement] = field(default_factory=dict)
    verdicts: Counter = field(default_factory=Counter)  # (kind, apiguard, openapi-core)
    seconds: float = 0.0


def family(req: Request) -> str:
    if req.media_type is None:
        return ""
    essence = media_essence(req.media_type)
    if essence == "application/json":
        return "json"
    if is_json(essence):
        return "+json"
    if essence == "application/x-www-form-urlencoded":
        return "form"
    if essence.startswith("text/"):
        return "text"
    if essence == "multipart/form-data":
        return "multipart"
    return "other"


# openapi-core's messages that name a known cause, as a tag ending the key.
ORACLE_TAGS = (
    ("Tried to write read-only property", "readOnly-parameter"),
    ("' is not of type '", "undecoded-body"),
)


def apiguard_tag(problem: bytes) -> str | None:
    """`format-<name>` when apiguard's first violation is a `format` it checks."""
    try:
        violations = json.loads(problem).get("violations") or []
    except (ValueError, AttributeError):
        return None
    for violation in violations[:1]:
        match = re.match(r"must be a valid `([^`]+)`", str(violation.get("reason", "")))
        if match:
            return f"format-{match.group(1)}"
    return None


def key_of(req: Request, rule: str | None, oracle: str | None, problem: bytes = b"") -> str:
    category = req.kind + (f"/{family(req)}" if family(req) else "")
    if rule is not None:
        tag = apiguard_tag(problem)
        return f"differential apiguard-refuses {rule} {category}" + (f" {tag}" if tag else "")
    error = oracle.split(":")[0]
    tag = next((t for text, t in ORACLE_TAGS if text in oracle and (t != "undecoded-body" or "b'" in oracle)), None)
    return f"differential openapi-core-refuses {error} {category}" + (f" {tag}" if tag else "")


def build(source: Source, spec: dict, seed: int, oracle: Oracle,
          credentials: Credentials) -> tuple[list[Request], Counter, int]:
    doc = Document(spec)
    base = base_path(spec)
    ops = sorted(doc.operations(), key=lambda o: o.key)
    rng = random.Random(f"{seed}:{source.name}")
    if source.operations is not None and source.operations < len(ops):
        ops = sorted(rng.sample(ops, source.operations), key=lambda o: o.key)
    skipped: Counter = Counter()
    requests: list[Request] = []
    paths = sorted(spec.get("paths", {}))
    for op in ops:
        valid = valid_requests(doc, op, base, rng, oracle, source.valid, credentials)
        if not valid:
            skipped["no valid request could be built"] += 1
            continue
        requests += valid
        mutated = doc.mutations(op, valid[0], rng, base, paths)
        if source.mutations is not None:
            # On a sampled document: `mutations` contract mutations per operation, and the
            # probes of deliberate strictness (whose outcome is known and documented) on
            # one operation in ten only, so they do not crowd the contract checks out.
            probes = [r for r in mutated if r.kind in PROBES]
            contract = [r for r in mutated if r.kind not in PROBES]
            mutated = rng.sample(contract, min(source.mutations, len(contract)))
            if probes and rng.random() < 0.1:
                mutated.append(rng.choice(probes))
        requests += mutated + credentials.mutations(op, valid[0])
    return requests, skipped, len(ops) - sum(skipped.values())


def valid_requests(doc: Document, op: Operation, base: str, rng: random.Random, oracle: Oracle,
                   wanted: int, credentials: Credentials, attempts: int = 8) -> list[Request]:
    """Up to `wanted` valid requests, with the credentials the operation requires; a
    candidate openapi-core refuses (the generator is not perfect: patterns, oneOf) is
    replaced by another one, up to `attempts` tries. If no candidate passes openapi-core,
    the last one built is kept: it is compared all the same."""
    out: list[Request] = []
    last = None
    for _ in range(attempts):
        if len(out) == wanted:
            break
        try:
            req = doc.valid(op, base, rng)
        except (Unsupported, KeyError, TypeError, ValueError, RecursionError):
            continue
        credentials.apply(req, op)
        last = req
        if oracle.judge(req.method, req.target(), req.headers, req.body) is None:
            out.append(req)
    if not out and last is not None:
        out.append(last)
    return out


def declares_underscore_headers(spec: dict) -> bool:
    """Whether a header the document declares (a parameter or an API key) has `_` in its
    name, as Blockfrost's `project_id` does: Envoy must then let such names through."""
    def underscored(item: dict) -> bool:
        return item.get("in") == "header" and "_" in str(item.get("name", ""))
    components = spec.get("components", {})
    schemes = components.get("securitySchemes", {}).values()
    parameters = list(components.get("parameters", {}).values())
    for item in spec.get("paths", {}).values():
        if isinstance(item, dict):
            parameters += item.get("parameters", [])
            parameters += [p for op in item.values() if isinstance(op, dict)
                           for p in op.get("parameters", [])]
    return any(underscored(x) for x in [*schemes, *parameters] if isinstance(x, dict))


def run(source: Source, seed: int, known: list[str], workdir: Path, matches) -> Tally:
    started = time.monotonic()
    tally = Tally()
    spec = load_document(source.path)
    credentials = Credentials(spec)
    security = credentials.policy()
    oracle = Oracle(spec, security=security is not None)
    requests, tally.skipped_operations, tally.operations = build(source, spec, seed, oracle, credentials)
    with stack(f"diff-{source.name}", source.path, lazy=source.lazy, workdir=workdir,
               security=security, allow_underscores=declares_underscore_headers(spec)) as running:
        client = Client(running.port)
        try:
            for req in requests:
                reply = client.send(req.method, req.target(), req.headers, req.body)
                verdict = oracle.judge(req.method, req.target(), req.headers, req.body)
                tally.requests += 1
                if req.kind == "valid":
                    tally.valid += 1
                else:
                    tally.invalid += 1
                tally.verdicts[(req.kind, reply.rule or "accept",
                                "accept" if verdict is None else verdict.split(":")[0])] += 1
                if (reply.rule is None) == (verdict is None):
                    tally.agree += 1
                    continue
                key = key_of(req, reply.rule, verdict, reply.body)
                d = Disagreement(key, req, reply.status, reply.rule, verdict, reply.body[:600])
                tally.examples.setdefault(key, d)
                if matches(key, known):
                    tally.documented[key] += 1
                else:
                    tally.unexplained.append(d)
        finally:
            client.close()
    tally.seconds = time.monotonic() - started
    return tally
