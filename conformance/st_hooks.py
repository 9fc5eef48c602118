"""schemathesis hooks for the conformance run (loaded with SCHEMATHESIS_HOOKS=st_hooks).

Registers the check `apiguard_verdict`: a positive (schema-conforming) case must not be
answered by apiguard with a problem (problem+json with a `rule`). Every case is also
recorded, one JSON line each, in the file $APIGUARD_CASES, for fuzz.py to count negative
cases blocked and to explain the ones that passed.
"""

from __future__ import annotations

import base64
import json
import os

import schemathesis

from stack import apiguard_rule


def _header(headers, name: str) -> str:
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return value[0] if isinstance(value, (list, tuple)) else value
    return ""


def _echoed(response) -> bool:
    if "application/json" not in _header(response.headers, "content-type"):
        return False
    try:
        body = json.loads(response.content or b"")
    except ValueError:
        return False
    return isinstance(body, dict) and "method" in body and "path" in body


@schemathesis.check
def apiguard_verdict(ctx, response, case):
    rule = apiguard_rule(_header(response.headers, "content-type"), response.content or b"")
    meta = case.meta
    mode = meta.generation.mode.value if meta is not None else "unknown"
    phase = meta.phase.name.value if meta is not None else "unknown"
    data = meta.phase.data if meta is not None else None
    scenario = getattr(getattr(data, "scenario", None), "value", None)
    request = response.request
    body = request.body
    if isinstance(body, str):
        body = body.encode()
    record = {
        "mode": mode,
        "phase": phase,
        "scenario": scenario,
        "description": getattr(data, "description", None),
        "parameter": getattr(data, "parameter", None),
        "location": getattr(getattr(data, "parameter_location", None), "value", None),
        "negative_in": sorted(loc.value for loc, info in (meta.components.items() if meta else [])
                              if info.mode.is_negative),
        "method": request.method,
        "url": request.url,
        "headers": {k: v for k, v in request.headers.items()},
        "body": base64.b64encode(body).decode() if body else None,
        "status": response.status_code,
        "rule": rule,
        # The echo upstream answers JSON naming the method and path: the request reached it.
        "reached_upstream": _echoed(response),
        "operation": f"{case.operation.method.upper()} {case.operation.path}",
    }
    with open(os.environ["APIGUARD_CASES"], "a") as out:
        out.write(json.dumps(record) + "\n")
    if mode == "positive" and rule is not None:
        raise AssertionError(f"apiguard blocked a schema-conforming request with `{rule}`")
