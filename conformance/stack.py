"""The demo stack (Envoy + apiguard + echo upstream, `harness up`) and the two verdicts
compared on every request: apiguard's, read from the response, and openapi-core's.

Shared by the differential test (differential.py) and the schemathesis run (fuzz.py).
"""

from __future__ import annotations

import contextlib
import copy
import http.client
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
# A debug build (`make harness`; `cargo test` builds it too): it only starts processes.
HARNESS = ROOT / "target" / "debug" / "harness"
# The host openapi-core is told the requests go to; the copy of the document it reads
# names only this server, with the document's own base path.
ORACLE_HOST = "http://apiguard.test"
READY_TIMEOUT = 120.0
REQUEST_TIMEOUT = 10.0


def load_document(path: Path) -> dict:
    text = path.read_text()
    return yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)


def base_path(spec: dict) -> str:
    """The path of the first server URL: apiguard accepts every server's base path; the
    generators use the first one."""
    url = (spec.get("servers") or [{"url": "/"}])[0].get("url", "/")
    return urllib.parse.urlsplit(url).path.rstrip("/")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Stack:
    url: str  # http://127.0.0.1:PORT
    port: int
    log: Path


@contextlib.contextmanager
def stack(name: str, document: Path, lazy: bool = False, workdir: Path | None = None,
          security: dict | None = None, allow_underscores: bool = False):
    """`harness up` with a temporary policy enforcing `document`, until the block ends.
    With `security` (the policy's section, credentials.Credentials.policy), apiguard
    checks the document's security requirements; without, it does not.
    `allow_underscores`: Envoy lets header names with `_` through, for a document that
    declares such a header (the shipped config refuses them; README, "Security model").

    The harness runs in its own process group: on exit (also on an exception or Ctrl-C)
    it gets SIGTERM, which stops Envoy and the upstream; if it has not ended after 20 s,
    the whole group gets SIGKILL, so no Envoy outlives the run.
    """
    listen, admin = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix=f"conformance-{name}-") as tmp:
        policy = Path(tmp) / "policy.yaml"
        config = {
            "name": name,
            "mode": "enforce",
            "schemas": "lazy" if lazy else "eager",
            "openapi": {"file": str(document.resolve())},
        }
        if security is not None:
            config["security"] = security
        policy.write_text(yaml.safe_dump(config))
        log = (workdir or Path(tmp)) / f"harness-{name}.log"
        with open(log, "wb") as log_file:
            process = subprocess.Popen(
                [str(HARNESS), "up", "--policy", str(policy), "--listen", f"127.0.0.1:{listen}",
                 "--admin", str(admin)] + (["--allow-underscores"] if allow_underscores else []),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                deadline = time.monotonic() + READY_TIMEOUT
                while True:
                    if process.poll() is not None:
                        raise RuntimeError(f"harness exited ({process.returncode}): {_tail(log)}")
                    with contextlib.suppress(OSError):
                        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=2) as r:
                            if r.status == 200:
                                break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"the stack was not ready in {READY_TIMEOUT:.0f} s: {_tail(log)}")
                    time.sleep(0.2)
                yield Stack(url=f"http://127.0.0.1:{listen}", port=listen, log=log)
            finally:
                _stop(process)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    # Whatever the harness left in its group (it stops Envoy itself on SIGTERM; this is
    # for a harness that hung or died without doing so).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


def _tail(log: Path) -> str:
    with contextlib.suppress(OSError):
        return log.read_text(errors="replace")[-2000:]
    return ""


def apiguard_rule(content_type: str, body: bytes) -> str | None:
    """The rule of a reply apiguard gave itself (problem+json with a `rule`), else None:
    any other response counts as accepted."""
    if "application/problem+json" not in (content_type or "").lower():
        return None
    with contextlib.suppress(ValueError, AttributeError):
        problem = json.loads(body)
        if isinstance(problem, dict) and isinstance(problem.get("rule"), str):
            return problem["rule"]
    return None


@dataclass
class Reply:
    status: int
    rule: str | None
    body: bytes


class Client:
    """Sends requests byte for byte (the path exactly as given) over one keep-alive
    connection, reconnecting when the stack closes it."""

    def __init__(self, port: int):
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def send(self, method: str, target: str, headers: dict[str, str], body: bytes | None) -> Reply:
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT)
            try:
                self.conn.putrequest(method, target, skip_accept_encoding=True)
                for name, value in headers.items():
                    self.conn.putheader(name, value)
                if body is not None:
                    self.conn.putheader("Content-Length", str(len(body)))
                self.conn.endheaders(body)
                response = self.conn.getresponse()
                data = response.read()
                if response.getheader("connection", "").lower() == "close":
                    self.close()
                return Reply(response.status, apiguard_rule(response.getheader("content-type", ""), data), data)
            except (http.client.HTTPException, OSError):
                self.close()
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def oracle_document(spec: dict, security: bool) -> dict:
    """The copy of the document openapi-core reads: one server (ORACLE_HOST + the base
    path), and the security requirements only if apiguard checks them too (`security`)."""
    judged = copy.deepcopy(spec)
    judged["servers"] = [{"url": ORACLE_HOST + base_path(spec)}]
    if security:
        return judged
    judged.pop("security", None)
    for item in judged.get("paths", {}).values():
        if isinstance(item, dict):
            for operation in item.values():
                if isinstance(operation, dict):
                    operation.pop("security", None)
    return judged


class Oracle:
    """openapi-core's request validator (V30 or V31, picked from the document's
    `openapi` version) over `oracle_document(spec, security)`."""

    def __init__(self, spec: dict, security: bool):
        from openapi_core import OpenAPI
        from openapi_core.app import Config

        # The documents are known-good; openapi-spec-validator's whole-document check takes
        # minutes on GitHub's and is not what is compared here.
        self.api = OpenAPI.from_dict(oracle_document(spec, security), config=Config(spec_validator_cls=None))

    def judge(self, method: str, target: str, headers: dict[str, str], body: bytes | None) -> str | None:
        """None if openapi-core accepts the request, else `ErrorClass[/CauseClass]: message`.

        The path is given percent-decoded, as a framework hands it to openapi-core (Flask's
        `request.path`); the query string is decoded by `parse_qsl` like Werkzeug does.
        """
        from openapi_core.testing import MockRequest
        from werkzeug.datastructures import Headers, ImmutableMultiDict

        split = urllib.parse.urlsplit(target)
        args = urllib.parse.parse_qsl(split.query, keep_blank_values=True)
        cookies = {}
        plain = {}
        for name, value in headers.items():
            if name.lower() == "cookie":
                for part in value.split(";"):
                    if "=" in part:
                        key, val = part.strip().split("=", 1)
                        cookies[key] = val
            else:
                plain[name] = value
        content_type = next((v for k, v in plain.items() if k.lower() == "content-type"), None)
        request = MockRequest(
            ORACLE_HOST,
            method.lower(),
            urllib.parse.unquote(split.path),
            args=ImmutableMultiDict(args),
            headers=Headers(plain),
            cookies=ImmutableMultiDict(cookies),
            data=body or b"",
            content_type=content_type or "",
        )
        try:
            self.api.validate_request(request)
        except Exception as error:  # noqa: BLE001 - every refusal is a verdict
            return describe(error)
        return None


def describe(error: BaseException) -> str:
    names = [type(error).__name__]
    cause = error.__cause__ or error.__context__
    if cause is not None and type(cause).__name__ not in names:
        names.append(type(cause).__name__)
    detail = str(error)
    nested = getattr(error, "schema_errors", None) or getattr(cause, "schema_errors", None)
    if nested:
        detail += ": " + "; ".join(str(getattr(e, "message", e)) for e in list(nested)[:2])
    elif cause is not None:
        detail += ": " + str(cause)
    return "/".join(names) + ": " + detail[:4000]
