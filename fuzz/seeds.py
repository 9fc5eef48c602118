"""Writes the fuzz targets' seed inputs into fuzz/corpus/<target>/ (run from the repository
root with the repository's .venv Python: `.venv/bin/python fuzz/seeds.py`).

The seeds come from the example policies and their case files, so each target starts from
inputs that reach deep into the engine; `make fuzz-cmin` then keeps the corpus small.
The formats are the ones `filter/src/fuzzing.rs` documents for each target.
"""

import base64
import hashlib
import hmac
import json
import pathlib
import struct

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
HMAC_SECRET = b"apiguard-fuzzing-hmac-secret-32b"  # fuzzing.rs HMAC_SECRET
NOW = 1_700_000_000  # fuzzing.rs NOW


def write(target, name, data):
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (folder / name).write_bytes(data)


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(claims, alg="HS256", kid="hmac"):
    signing = b64(json.dumps({"alg": alg, "kid": kid, "typ": "JWT"}).encode()) + "." + b64(
        json.dumps(claims).encode()
    )
    signature = hmac.new(HMAC_SECRET, signing.encode(), hashlib.sha256).digest()
    return signing + "." + b64(signature)


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number, wire, payload):
    key = varint(number << 3 | wire)
    if wire == 2:
        return key + varint(len(payload)) + payload
    return key + payload


def pb_value(value):
    if value is None:
        return field(1, 0, varint(0))
    if isinstance(value, bool):
        return field(4, 0, varint(int(value)))
    if isinstance(value, (int, float)):
        return field(2, 1, struct.pack("<d", float(value)))
    if isinstance(value, str):
        return field(3, 2, value.encode())
    if isinstance(value, list):
        return field(6, 2, b"".join(field(1, 2, pb_value(v)) for v in value))
    return field(5, 2, pb_struct(value))


def pb_struct(obj):
    return b"".join(
        field(1, 2, field(1, 2, k.encode()) + field(2, 2, pb_value(v))) for k, v in obj.items()
    )


def bundled(name):
    folder = ROOT / "policies" / name
    policy = yaml.safe_load((folder / "policy.yaml").read_text())
    document = (folder / policy["openapi"].pop("file")).read_text()
    policy["openapi"]["document"] = document
    return policy


def main():
    claims = {"iss": "https://auth.example.com", "aud": "bookshop", "sub": "alice",
              "exp": NOW + 3600, "iat": NOW - 10, "scope": "catalogue:write orders:read"}
    bearer = "Bearer " + token(claims)
    for name in ["petstore", "bookshop"]:
        policy = bundled(name)
        write("policy", f"{name}.json", json.dumps(policy))
        write("policy", f"{name}.yaml", yaml.safe_dump(policy))
        write("structpb", f"{name}.pb", pb_struct({"name": name, "mode": "monitor",
                                                  "limits": {"max_headers": 10}, "list": [1.5, True, None]}))
        write("openapi", f"{name}.yaml", policy["openapi"]["document"])
    write("structpb", "policy.pb", pb_struct(bundled("petstore")))
    write("policy", "security.json", json.dumps({"name": "s", "security": {"api_keys": {"k": [
        {"sha256": "00" * 32, "consumer": "c"}]}}, "abuse": {"anomaly": {}}, "openapi": {"document": {
            "openapi": "3.0.3", "components": {"securitySchemes": {"k": {"type": "apiKey", "in": "header",
                                                                       "name": "x-key"}}},
            "security": [{"k": []}], "paths": {"/a/{id}.{fmt}": {"get": {"parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "nullable": True}},
                {"name": "fmt", "in": "path", "required": True, "schema": {"enum": ["json"]}}]}}}}}}))

    cases = yaml.safe_load((ROOT / "policies" / "bookshop" / "cases.yaml").read_text())
    targets = []
    for i, case in enumerate(cases):
        method, target = case["request"].split(" ", 1)
        targets.append(target)
        headers = dict(case.get("headers") or {})
        if i % 3 == 0:
            headers.setdefault("authorization", bearer)
        head = f"{method} {target}\n" + "".join(f"{k}: {v}\n" for k, v in headers.items())
        body = case.get("body")
        data = head.encode() if body is None else head.encode() + b"\n" + body.encode()
        write("request", f"case-{i:03}", bytes([i % 2]) + data)
    write("route", "bookshop", "\n" + "\n".join(targets[:16]))
    write("route", "templates", "/a/{x} /a/b /a/{x}.{y} /v{major}/items/{id}/x /{p}\n"
          "/a/1\n/a/b\n/a/c.d\n/v2/items/%2F/x\n//a/./b\n/q?x=1")

    book = {"isbn": "978-0-13-468599-1", "title": "The Rust Programming Language",
            "authorIds": ["au_7Hk2PqZ9xW"], "genres": ["computing"],
            "price": {"amount": "39.99", "currency": "GBP"}, "averageRating": 4.5, "reviewCount": 3}
    author = {"id": "au_7Hk2PqZ9xW", "name": "Ursula K. Le Guin", "born": 1929, "password": "x"}
    for i, (status, body) in enumerate([
        ("200", dict(book, internal={"cost": 1})),
        ("200", {"items": [author], "nextPageToken": None}),
        ("200", author),
        ("200", {"items": [book, dict(book, secret=1)]}),
        ("200", [book]),
    ]):
        head = f"{status}\ncontent-type: application/json\n\n"
        write("response", f"op-{i}", bytes([i << 1]) + head.encode() + json.dumps(body).encode())
    write("response", "not-json", bytes([0]) + b"200\ncontent-type: application/json\n\n{\"a\": [1, 2")
    write("response", "problem", bytes([2]) + b"404\ncontent-type: application/problem+json\n\n{}")

    signed_header = json.dumps({"alg": "HS256", "kid": "hmac"}).encode()
    for i, extra in enumerate([{}, {"exp": NOW - 100}, {"nbf": NOW + 1000}, {"aud": ["x", "bookshop"]},
                               {"scope": ["a", "b"]}, {"exp": NOW + 10**9}]):
        body = json.dumps(dict(claims, **extra)).encode()
        write("jwt", f"signed-{i}", bytes([1 | (i % 4) << 1]) + signed_header + b"\xff" + body)
    write("jwt", "token", b"\x00" + token(claims).encode())
    write("jwt", "rs256", b"\x00" + token(claims, alg="RS256", kid="rsa").encode())
    write("jwt", "es256", b"\x00" + token(claims, alg="ES256", kid="p256").encode())

    jwks_keys = [
        {"kty": "RSA", "kid": "r", "n": b64(bytes(range(1, 129))), "e": "AQAB"},
        {"kty": "RSA", "n": b64(b"\x00\x01"), "e": b64(b"\x03")},
        {"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
         "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
        {"kty": "EC", "crv": "P-384", "x": b64(bytes(48)), "y": b64(bytes(48))},
        {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
        {"kty": "oct", "k": "c2VjcmV0", "alg": "HS256"},
        {"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"},
    ]
    for i, key in enumerate(jwks_keys):
        write("jwks", f"key-{i}", json.dumps({"keys": [key]}).encode() + b"\x00" + bytes(range(256))[: 64 * (i + 1)])

    for i in range(16):
        write("schema_differential", f"seed-{i:02}", hashlib.sha256(bytes([i])).digest() * 2)

    learn_bodies = [
        {"vaccine": "dog", "date": "2025-11-30", "dose_ml": 1.5, "password": "x", "tags": ["a", None]},
        {"id": 1, "at": "2025-11-30T10:00:00Z", "site": "https://example.com", "ip": "10.0.0.1",
         "card": {"number": "4111", "cvv": 123}, "nested": {"a": [{"b": [{"c": {"d": [1]}}]}]}},
        [{"k": i, "v": "x" * i} for i in range(40)],
        {f"p{i}": {"q": [i]} for i in range(60)},
    ]
    for i, body in enumerate(learn_bodies):
        write("learn", f"body-{i}", json.dumps(body))


if __name__ == "__main__":
    main()
