"""Seeded request generation for the differential test: valid requests built from an
OpenAPI document's schemas and examples, and invalid ones made from them by one mutation
each (wrong types, missing required parameters or properties, out-of-range values,
undeclared paths and methods, wrong content types, malformed JSON, ...).

Everything is drawn from one `random.Random(seed)` in document order, so a run is
reproducible: the same seed and document give the same requests.

"Valid" is a claim of the generator, not a verdict: each request is judged by openapi-core
and apiguard alike, and only their agreement is tested.
"""

from __future__ import annotations

import copy
import json
import random
import re
import string
import urllib.parse
from dataclasses import dataclass, field

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
SAFE = "-._~"  # unreserved: everything else in a path segment or query is percent-encoded
ALNUM = string.ascii_letters + string.digits
MAX_DEPTH = 6

# The mutation kinds, each the category part of a difference key (see DIFFERENCES.md).
MUTATIONS = (
    "route.unknown_path",
    "route.undeclared_method",
    "param.wrong_type",
    "param.missing_required",
    "param.out_of_range",
    "param.not_in_enum",
    "query.repeated_scalar",
    "path.control_char",
    "body.missing",
    "body.wrong_content_type",
    "body.malformed_json",
    "body.missing_property",
    "body.wrong_type",
    "body.out_of_range",
)


class Unsupported(Exception):
    """The generator cannot build a value for this schema (an unsupported pattern, ...)."""


@dataclass
class Request:
    operation: str  # "METHOD /template"
    kind: str  # "valid" or a mutation
    method: str
    path: str  # percent-encoded, base path included
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    media_type: str | None = None  # the declared media type the body was built for
    note: str = ""  # what was mutated

    def target(self) -> str:
        query = "&".join(f"{_enc(k)}={_enc(v)}" for k, v in self.query)
        return self.path + ("?" + query if query else "")

    def show(self) -> str:
        body = ""
        if self.body is not None:
            text = self.body[:160].decode("utf-8", "replace")
            body = f" body={text!r}{'…' if len(self.body) > 160 else ''}"
        headers = "".join(f" -H '{k}: {v}'" for k, v in self.headers.items())
        return f"{self.method} {self.target()}{headers}{body}"


def _enc(text: str) -> str:
    return urllib.parse.quote(text, safe=SAFE)


@dataclass
class Param:
    name: str
    location: str
    required: bool
    schema: dict
    style: str
    explode: bool
    example: object = None
    has_example: bool = False


@dataclass
class Operation:
    method: str
    template: str
    params: list[Param]
    body_required: bool
    bodies: dict  # media type -> media type object (schema, example, examples)
    declared_methods: set[str]

    @property
    def key(self) -> str:
        return f"{self.method.upper()} {self.template}"


class Document:
    def __init__(self, spec: dict):
        self.spec = spec
        self.v31 = str(spec.get("openapi", "")).startswith("3.1")

    def resolve(self, node, seen: int = 0):
        while isinstance(node, dict) and "$ref" in node and seen < 32:
            ref = node["$ref"]
            if not ref.startswith("#/"):
                raise Unsupported(f"external $ref {ref}")
            target = self.spec
            for part in ref[2:].split("/"):
                part = urllib.parse.unquote(part).replace("~1", "/").replace("~0", "~")
                target = target[part]
            node = target
            seen += 1
        return node

    def operations(self) -> list[Operation]:
        out = []
        for template, item in self.spec.get("paths", {}).items():
            item = self.resolve(item)
            declared = {m for m in METHODS if isinstance(item.get(m), dict)}
            shared = [self.resolve(p) for p in item.get("parameters", [])]
            for method in METHODS:
                op = item.get(method)
                if not isinstance(op, dict):
                    continue
                params: dict[tuple[str, str], dict] = {(p["name"], p["in"]): p for p in shared}
                for p in op.get("parameters", []):
                    p = self.resolve(p)
                    params[(p["name"], p["in"])] = p
                body = self.resolve(op.get("requestBody") or {})
                out.append(
                    Operation(
                        method=method,
                        template=template,
                        params=[self._param(p) for p in params.values()],
                        body_required=bool(body.get("required", False)),
                        bodies=body.get("content", {}) or {},
                        declared_methods=declared,
                    )
                )
        return out

    def _param(self, p: dict) -> Param:
        location = p["in"]
        style = p.get("style") or ("form" if location in ("query", "cookie") else "simple")
        explode = p.get("explode", style == "form")
        schema = p.get("schema")
        if schema is None and "content" in p:
            schema = {"x-content": True}
        example, has = None, False
        if "example" in p:
            example, has = p["example"], True
        elif isinstance(p.get("examples"), dict) and p["examples"]:
            first = self.resolve(next(iter(p["examples"].values())))
            if isinstance(first, dict) and "value" in first:
                example, has = first["value"], True
        return Param(p["name"], location, location == "path" or bool(p.get("required")), schema or {},
                     style, explode, example, has)

    # --- values ---------------------------------------------------------------------

    def value(self, schema, rng: random.Random, depth: int = 0, use_examples: bool = True):
        s = self.resolve(schema)
        if s is True or s is None or s == {}:
            return rng.choice(["any", 7, True])
        if s is False:
            raise Unsupported("false schema")
        if not isinstance(s, dict):
            raise Unsupported("schema is not an object")
        if "x-content" in s:
            raise Unsupported("parameter with content")
        if "const" in s:
            return copy.deepcopy(s["const"])
        if "enum" in s:
            choices = [e for e in s["enum"] if e is not None] or s["enum"]
            return copy.deepcopy(rng.choice(choices))
        if use_examples and rng.random() < 0.5:
            examples = []
            if "example" in s and not self.v31:
                examples.append(s["example"])
            if isinstance(s.get("examples"), list):
                examples += s["examples"]
            if examples:
                return copy.deepcopy(rng.choice(examples))
        if "allOf" in s:
            merged = {k: v for k, v in s.items() if k != "allOf"}
            for part in s["allOf"]:
                merged = merge(merged, self.resolve(part), self)
            return self.value(merged, rng, depth, use_examples)
        for key in ("oneOf", "anyOf"):
            if key in s:
                options = [self.resolve(o) for o in s[key]]
                non_null = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
                choice = rng.choice(non_null or options)
                rest = {k: v for k, v in s.items() if k not in (key, "discriminator")}
                return self.value(merge(rest, choice, self) if rest else choice, rng, depth, use_examples)
        kind = schema_type(s)
        if kind == "string":
            return self._string(s, rng)
        if kind in ("integer", "number"):
            return self._number(s, rng, kind)
        if kind == "boolean":
            return rng.random() < 0.5
        if kind == "null":
            return None
        if kind == "array":
            lo = s.get("minItems", 0 if depth > 2 else 1)
            hi = max(lo, min(s.get("maxItems", lo + 2), lo + 2))
            items = s.get("items", {})
            out = []
            for _ in range(rng.randint(lo, hi)):
                item = self.value(items, rng, depth + 1, use_examples)
                if s.get("uniqueItems") and item in out:
                    continue
                out.append(item)
            if len(out) < lo:
                raise Unsupported("unique items")
            return out
        if kind == "object":
            props = s.get("properties", {}) or {}
            required = set(s.get("required", []))
            out = {}
            for name, prop in props.items():
                p = self.resolve(prop)
                if isinstance(p, dict) and p.get("readOnly"):
                    continue
                if name in required or (depth < MAX_DEPTH and rng.random() < 0.5):
                    out[name] = self.value(prop, rng, depth + 1, use_examples)
            for name in required - set(out) - set(props):
                out[name] = "x"
            return out
        raise Unsupported(f"type {kind}")

    def _string(self, s: dict, rng: random.Random) -> str:
        fmt = s.get("format")
        fixed = {
            "date-time": "2024-05-06T07:08:09Z",
            "date": "2024-05-06",
            "time": "07:08:09Z",
            "email": "octo@example.com",
            "uri": "https://example.com/a",
            "uri-reference": "/a/b",
            "url": "https://example.com/a",
            "hostname": "example.com",
            "ipv4": "192.0.2.7",
            "ipv6": "2001:db8::7",
            "byte": "YWJj",
            "binary": "abc",
            "uuid": "8d0d8a52-0f3c-4f8a-9a4e-2a4b7c0e1d3f",
        }
        lo = max(1, s.get("minLength", 1))
        hi = max(lo, min(s.get("maxLength", lo + 11), lo + 11))
        if fmt in fixed and lo <= len(fixed[fmt]) <= s.get("maxLength", 10**9):
            value = fixed[fmt]
        else:
            value = "".join(rng.choice(ALNUM) for _ in range(rng.randint(lo, hi)))
        pattern = s.get("pattern")
        if pattern is not None:
            try:
                matcher = re.compile(pattern)
            except re.error as error:
                raise Unsupported(f"pattern {pattern}") from error
            if not matcher.search(value):
                for candidate in pattern_candidates(pattern, rng):
                    if matcher.search(candidate) and lo <= len(candidate) <= s.get("maxLength", 10**9):
                        return candidate
                return from_pattern(pattern, lo, s.get("maxLength", 10**9), rng)
        return value

    def _number(self, s: dict, rng: random.Random, kind: str):
        lo, hi = s.get("minimum"), s.get("maximum")
        emin, emax = s.get("exclusiveMinimum"), s.get("exclusiveMaximum")
        if isinstance(emin, (int, float)) and not isinstance(emin, bool):
            lo = emin + 1 if kind == "integer" else emin + 0.5
        elif emin is True and lo is not None:
            lo = lo + 1
        if isinstance(emax, (int, float)) and not isinstance(emax, bool):
            hi = emax - 1 if kind == "integer" else emax - 0.5
        elif emax is True and hi is not None:
            hi = hi - 1
        if lo is None:
            lo = 1 if hi is None or hi >= 1 else hi - 10
        if hi is None:
            hi = lo + 100
        lo, hi = int(-(-lo // 1)), int(hi // 1)
        if lo > hi:
            raise Unsupported("empty range")
        value = rng.randint(lo, hi)
        step = s.get("multipleOf")
        if isinstance(step, int) and step > 0:
            value = -(-lo // step) * step
            if value > hi:
                raise Unsupported("multipleOf")
        return value

    # --- requests ----------------------------------------------------------------------

    def valid(self, op: Operation, base: str, rng: random.Random) -> Request:
        """A request that follows `op`'s contract; Unsupported if one cannot be built."""
        req = Request(op.key, "valid", op.method.upper(), "")
        values: dict[str, object] = {}
        for p in op.params:
            if not p.required and rng.random() < 0.5:
                continue
            if p.location == "header" and p.name.lower() in ("accept", "content-type", "authorization"):
                continue
            if p.has_example and rng.random() < 0.5:
                value = copy.deepcopy(p.example)
            else:
                value = self.value(p.schema, rng)
            values[p.name] = value
            self.place(req, p, value)
        req.path = base + fill_template(op.template, {p.name: v for p, v in
                                                      ((p, values.get(p.name)) for p in op.params)
                                                      if p.location == "path"}, op)
        if op.bodies and (op.body_required or rng.random() < 0.7):
            media_type, body = self.body(op, rng)
            req.body, req.media_type = body, media_type
            req.headers["Content-Type"] = media_type
        return req

    def place(self, req: Request, p: Param, value) -> None:
        if p.location == "query":
            req.query += serialize_query(p, value)
        elif p.location == "header":
            req.headers[p.name] = scalar_join(value, p.explode)
        elif p.location == "cookie":
            cookie = req.headers.get("Cookie")
            pair = f"{p.name}={scalar_join(value, False)}"
            req.headers["Cookie"] = f"{cookie}; {pair}" if cookie else pair

    def body(self, op: Operation, rng: random.Random) -> tuple[str, bytes]:
        types = list(op.bodies)
        pick = (next((t for t in types if media_essence(t) == "application/json"), None)
                or next((t for t in types if media_essence(t).endswith("+json")), None)
                or types[0])
        media = self.resolve(op.bodies[pick]) or {}
        schema = media.get("schema", {})
        value = None
        if "example" in media and rng.random() < 0.5:
            value = copy.deepcopy(media["example"])
        else:
            value = self.value(schema, rng)
        essence = media_essence(pick)
        if "*" in essence:
            raise Unsupported(f"wildcard media type {pick}")
        if is_json(essence):
            return pick, json.dumps(value).encode()
        if essence == "application/x-www-form-urlencoded":
            if not isinstance(value, dict):
                raise Unsupported("form body that is not an object")
            pairs = []
            for k, v in value.items():
                if isinstance(v, (dict, list)) and not (isinstance(v, list) and all(
                        not isinstance(i, (dict, list)) for i in v)):
                    raise Unsupported("nested form value")
                for item in (v if isinstance(v, list) else [v]):
                    pairs.append((k, scalar(item)))
            return pick, urllib.parse.urlencode(pairs).encode()
        if essence == "multipart/form-data":
            if not isinstance(value, dict):
                raise Unsupported("multipart body that is not an object")
            boundary = f"apiguard{rng.randrange(10**9):09d}"
            chunks = []
            props = self.resolve(schema).get("properties", {}) if isinstance(self.resolve(schema), dict) else {}
            for k, v in value.items():
                prop = self.resolve(props.get(k, {}))
                if isinstance(prop, dict) and prop.get("format") == "binary":
                    head = (f'Content-Disposition: form-data; name="{k}"; filename="{k}.bin"\r\n'
                            "Content-Type: application/octet-stream")
                    data = scalar(v)
                elif isinstance(v, (dict, list)):
                    head = f'Content-Disposition: form-data; name="{k}"\r\nContent-Type: application/json'
                    data = json.dumps(v)
                else:
                    head = f'Content-Disposition: form-data; name="{k}"'
                    data = scalar(v)
                chunks.append(f"--{boundary}\r\n{head}\r\n\r\n{data}\r\n")
            chunks.append(f"--{boundary}--\r\n")
            return f"{pick}; boundary={boundary}", "".join(chunks).encode()
        if essence.startswith("text/"):
            return pick, (value if isinstance(value, str) else json.dumps(value)).encode()
        if essence == "application/octet-stream":
            return pick, b"\x00\x01binary"
        raise Unsupported(f"media type {pick}")

    def mutations(self, op: Operation, valid: Request, rng: random.Random, base: str,
                  paths: list[str]) -> list[Request]:
        """Every mutation that applies to `valid`, each as one request (in MUTATIONS order)."""
        out = []
        for kind in MUTATIONS:
            req = copy.deepcopy(valid)
            req.kind = kind
            try:
                if self._mutate(kind, op, req, rng, base, paths):
                    out.append(req)
            except Unsupported:
                pass
        return out

    def _mutate(self, kind: str, op: Operation, req: Request, rng, base: str, paths: list[str]) -> bool:
        query_or_header = [p for p in op.params if p.location in ("query", "header", "cookie")
                           and not (p.location == "header" and p.name.lower() in
                                    ("accept", "content-type", "authorization"))]
        if kind == "route.unknown_path":
            req.path = f"{base}/apiguard-conformance-{rng.randrange(10**6)}/x"
            req.note = "a path no template matches"
            return True
        if kind == "route.undeclared_method":
            free = [m for m in ("get", "put", "post", "delete", "patch") if m not in op.declared_methods]
            if not free:
                return False
            req.method = rng.choice(free).upper()
            req.note = f"{req.method} is not declared on {op.template}"
            return True
        if kind == "path.control_char":
            strings = [p for p in op.params if p.location == "path" and schema_type(self.resolve(p.schema)) == "string"
                       and "enum" not in self.resolve(p.schema) and "pattern" not in self.resolve(p.schema)]
            if not strings:
                return False
            p = rng.choice(strings)
            raw = self._path_values(op, req, base)
            raw[p.name] = "a%01b"
            req.path = base + fill_template(op.template, {}, op, raw=raw)
            req.note = f"path parameter {p.name} carries %01"
            return True
        if kind == "param.wrong_type":
            typed = [p for p in op.params if schema_type(self.resolve(p.schema)) in ("integer", "number", "boolean")
                     and (p.location == "path" or p in query_or_header)]
            if not typed:
                return False
            p = rng.choice(typed)
            return self._set_param(op, req, p, "notanumber", base, f"{p.location} parameter {p.name} is not a "
                                   f"{schema_type(self.resolve(p.schema))}")
        if kind == "param.missing_required":
            required = [p for p in query_or_header if p.required]
            if not required:
                return False
            p = rng.choice(required)
            self._drop_param(req, p)
            req.note = f"required {p.location} parameter {p.name} left out"
            return True
        if kind == "param.out_of_range":
            for p in rng.sample(op.params, len(op.params)):
                if p.location != "path" and p not in query_or_header:
                    continue
                bad = out_of_range(self.resolve(p.schema))
                if bad is not None:
                    value, why = bad
                    return self._set_param(op, req, p, value, base, f"{p.location} parameter {p.name}: {why}")
            return False
        if kind == "param.not_in_enum":
            for p in rng.sample(op.params, len(op.params)):
                s = self.resolve(p.schema)
                if (p.location == "path" or p in query_or_header) and isinstance(s, dict) and \
                        isinstance(s.get("enum"), list) and schema_type(s) == "string":
                    return self._set_param(op, req, p, "not-in-enum", base, f"{p.location} parameter {p.name} "
                                           "outside its enum")
            return False
        if kind == "query.repeated_scalar":
            scalars = [p for p in op.params if p.location == "query" and
                       schema_type(self.resolve(p.schema)) in ("string", "integer", "number", "boolean")]
            present = [p for p in scalars if any(k == p.name for k, _ in req.query)]
            if not present:
                return False
            p = rng.choice(present)
            value = next(v for k, v in req.query if k == p.name)
            req.query.append((p.name, value))
            req.note = f"scalar query parameter {p.name} sent twice"
            return True
        if not op.bodies:
            return False
        if kind == "body.missing":
            if not op.body_required:
                return False
            req.body, req.media_type = None, None
            req.headers.pop("Content-Type", None)
            req.note = "required body left out"
            return True
        if req.body is None:
            return False
        if kind == "body.wrong_content_type":
            declared = {media_essence(t) for t in op.bodies}
            for candidate in ("application/xml", "text/plain", "application/json"):
                if candidate not in declared and not any("*" in d for d in declared):
                    req.headers["Content-Type"] = candidate
                    req.note = f"Content-Type {candidate} is not declared"
                    return True
            return False
        if not is_json(media_essence(req.media_type or "")):
            return False
        if kind == "body.malformed_json":
            req.body = req.body[: max(1, len(req.body) // 2)] + b"{,"
            req.note = "the JSON body is cut short"
            return True
        value = json.loads(req.body)
        schema = self.resolve(self.resolve(op.bodies[req.media_type]).get("schema", {}))
        schema = self.flat(schema)
        if not isinstance(value, dict) or not isinstance(schema, dict):
            return False
        props = schema.get("properties", {}) or {}
        if kind == "body.missing_property":
            required = [r for r in schema.get("required", []) if r in value]
            if not required:
                return False
            name = rng.choice(required)
            del value[name]
            req.note = f"required property /{name} left out"
        elif kind == "body.wrong_type":
            typed = [(n, self.resolve(p)) for n, p in props.items()
                     if isinstance(self.resolve(p), dict) and isinstance(self.resolve(p).get("type"), str)
                     and not self.resolve(p).get("readOnly") and not self.resolve(p).get("nullable")]
            if not typed:
                return False
            name, p = rng.choice(typed)
            value[name] = {"string": 12345, "integer": "twelve", "number": "twelve", "boolean": "yes",
                           "array": {"not": "an array"}, "object": ["not", "an", "object"]}.get(p["type"], 1)
            req.note = f"property /{name} is not a {p['type']}"
        elif kind == "body.out_of_range":
            for name, p in rng.sample(list(props.items()), len(props)):
                p = self.resolve(p)
                if isinstance(p, dict) and not p.get("readOnly"):
                    bad = out_of_range(p, typed=True)
                    if bad is not None:
                        value[name], why = bad
                        req.note = f"property /{name}: {why}"
                        break
            else:
                return False
        else:
            return False
        req.body = json.dumps(value).encode()
        return True

    def flat(self, schema):
        """allOf merged into one schema (for picking properties to mutate)."""
        s = self.resolve(schema)
        if isinstance(s, dict) and "allOf" in s:
            merged = {k: v for k, v in s.items() if k != "allOf"}
            for part in s["allOf"]:
                merged = merge(merged, self.flat(part), self)
            return merged
        return s

    def _path_values(self, op: Operation, req: Request, base: str) -> dict[str, str]:
        """The raw (encoded) path parameter values of `req`, read back from its path."""
        names = re.findall(r"{([^}]+)}", op.template)
        pattern = "^" + re.escape(base) + re.sub(r"\\{[^}]+\\}", "([^/]+)", re.escape(op.template)) + "$"
        match = re.match(pattern, req.path)
        if not match:
            raise Unsupported("path not read back")
        return {n: match.group(i + 1) for i, n in enumerate(names)}

    def _set_param(self, op, req: Request, p: Param, value, base: str, note: str) -> bool:
        if p.location == "path":
            raw = self._path_values(op, req, base)
            raw[p.name] = _enc(scalar(value))
            req.path = base + fill_template(op.template, {}, op, raw=raw)
        else:
            self._drop_param(req, p)
            self.place(req, p, value)
        req.note = note
        return True

    def _drop_param(self, req: Request, p: Param) -> None:
        if p.location == "query":
            req.query = [(k, v) for k, v in req.query if k != p.name and not k.startswith(p.name + "[")]
        elif p.location == "header":
            req.headers = {k: v for k, v in req.headers.items() if k != p.name}
        elif p.location == "cookie" and "Cookie" in req.headers:
            parts = [c for c in req.headers["Cookie"].split("; ") if not c.startswith(p.name + "=")]
            if parts:
                req.headers["Cookie"] = "; ".join(parts)
            else:
                del req.headers["Cookie"]


def schema_type(s) -> str | None:
    if not isinstance(s, dict):
        return None
    t = s.get("type")
    if isinstance(t, list):
        non_null = [x for x in t if x != "null"]
        return non_null[0] if non_null else "null"
    if t is not None:
        return t
    if "properties" in s or "additionalProperties" in s or "required" in s:
        return "object"
    if "items" in s:
        return "array"
    if "enum" in s or "const" in s:
        return None
    if any(k in s for k in ("allOf", "oneOf", "anyOf")):
        return None
    return "string"


def merge(a: dict, b: dict, doc: Document) -> dict:
    b = doc.resolve(b)
    if not isinstance(b, dict):
        return a
    out = dict(a)
    for key, value in b.items():
        if key == "properties":
            out["properties"] = {**(out.get("properties") or {}), **value}
        elif key == "required":
            out["required"] = sorted(set(out.get("required", [])) | set(value))
        elif key == "allOf":
            for part in value:
                out = merge(out, part, doc)
        else:
            out.setdefault(key, value)
    return out


def media_essence(media_type: str) -> str:
    return media_type.split(";")[0].strip().lower()


def is_json(essence: str) -> bool:
    return essence == "application/json" or essence.endswith("+json")


def scalar(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def scalar_join(value, explode: bool) -> str:
    if isinstance(value, list):
        return ",".join(scalar(v) for v in value)
    if isinstance(value, dict):
        sep = "=" if explode else ","
        return ",".join(f"{k}{sep}{scalar(v)}" for k, v in value.items())
    return scalar(value)


def serialize_query(p: Param, value) -> list[tuple[str, str]]:
    if isinstance(value, list):
        if p.style == "form" and p.explode:
            return [(p.name, scalar(v)) for v in value]
        sep = {"spaceDelimited": " ", "pipeDelimited": "|"}.get(p.style, ",")
        return [(p.name, sep.join(scalar(v) for v in value))]
    if isinstance(value, dict):
        if p.style == "deepObject":
            return [(f"{p.name}[{k}]", scalar(v)) for k, v in value.items()]
        if p.explode:
            return [(k, scalar(v)) for k, v in value.items()]
        return [(p.name, ",".join(f"{k},{scalar(v)}" for k, v in value.items()))]
    return [(p.name, scalar(value))]


def fill_template(template: str, values: dict, op: Operation, raw: dict | None = None) -> str:
    raw = raw or {}

    def one(match):
        name = match.group(1)
        if name in raw:
            return raw[name]
        if name not in values or values[name] is None:
            raise Unsupported(f"no value for path parameter {name}")
        value = values[name]
        text = scalar_join(value, False)
        if text in ("", ".", ".."):
            raise Unsupported("path parameter value is empty or a dot segment")
        return _enc(text)

    return re.sub(r"{([^}]+)}", one, template)


def out_of_range(s, typed: bool = False):
    """(a value breaking one constraint of `s`, why) or None. `typed`: the value goes into
    JSON (keep its type); else it is a parameter (the string form is what is sent)."""
    if not isinstance(s, dict):
        return None
    kind = schema_type(s)
    if kind in ("integer", "number"):
        if isinstance(s.get("maximum"), (int, float)) and not isinstance(s.get("maximum"), bool):
            return s["maximum"] + 1, f"{s['maximum'] + 1} > maximum {s['maximum']}"
        if isinstance(s.get("minimum"), (int, float)) and not isinstance(s.get("minimum"), bool):
            return s["minimum"] - 1, f"{s['minimum'] - 1} < minimum {s['minimum']}"
    if kind == "string" and "enum" not in s and "format" not in s:
        if isinstance(s.get("maxLength"), int) and s["maxLength"] < 500:
            return "x" * (s["maxLength"] + 1), f"longer than maxLength {s['maxLength']}"
        if isinstance(s.get("minLength"), int) and s["minLength"] > 1:
            return "x" * (s["minLength"] - 1), f"shorter than minLength {s['minLength']}"
    if typed and kind == "string" and isinstance(s.get("enum"), list):
        return "not-in-enum", "outside its enum"
    if typed and kind == "array" and isinstance(s.get("maxItems"), int) and s["maxItems"] < 50:
        item = s.get("items") or {}
        return [f"x{i}" if item.get("type") == "string" else i for i in range(s["maxItems"] + 1)], \
            f"more than maxItems {s['maxItems']} items"
    return None


_PATTERNS: dict[tuple, list[str]] = {}


def from_pattern(pattern: str, lo: int, hi: int, rng: random.Random) -> str:
    """A string matching `pattern` within the length bounds, found by hypothesis's regex
    strategy, derandomized (the same pattern always gives the same few strings)."""
    key = (pattern, lo, hi)
    if key not in _PATTERNS:
        from hypothesis import HealthCheck, settings
        from hypothesis import strategies as st
        from hypothesis.errors import HypothesisException

        found: list[str] = []

        def keep(text: str) -> bool:
            if lo <= len(text) <= hi and re.search(pattern, text) and text.isascii() and text.isprintable() \
                    and text not in found:
                found.append(text)
            return len(found) >= 3

        try:
            from hypothesis import find

            find(st.from_regex(pattern, fullmatch=True), keep,
                 settings=settings(database=None, derandomize=True, max_examples=200,
                                   suppress_health_check=list(HealthCheck)))
        except (HypothesisException, re.error, ValueError):
            pass
        _PATTERNS[key] = found
    if not _PATTERNS[key]:
        raise Unsupported(f"pattern {pattern}")
    return rng.choice(_PATTERNS[key])


def pattern_candidates(pattern: str, rng: random.Random) -> list[str]:
    """A few strings that often match simple patterns seen in real documents."""
    candidates = []
    body = pattern.strip("^$")
    # A literal-ish pattern: drop regex syntax.
    literal = re.sub(r"[\\^$()?*+{}\[\]|]", "", body)
    if literal:
        candidates.append(literal)
    candidates += ["abc", "a1", "A", "1", "123", "v1.2.3", "2024-05-06", "abc-def", "ABC_123",
                   "refs/heads/main", "0123456789abcdef0123456789abcdef01234567",
                   "".join(rng.choice(string.digits) for _ in range(6))]
    return candidates
