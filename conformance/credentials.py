"""Credentials for the differential test, so security requirements are compared too.

A document's `components.securitySchemes` become the `security` section of the policy the
stack runs (stack.stack): each bearer, OAuth 2 or OpenID Connect scheme a JWT provider of
the same name with one HS256 key, each `apiKey` scheme one key (stored as its SHA-256).
Valid requests carry credentials for their operation's first requirement, holding every
scope the document names, so both validators see a request its caller is entitled to.
Two mutations probe the credentials themselves (`auth.missing`: none at all; and
`auth.invalid`: a token signed with another key, an unknown API key); openapi-core checks
that credentials are present, not that they verify, so the second is a documented
difference.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json

from generate import Operation, Request

# The mutations of this module, each a category of the difference keys (DIFFERENCES.md).
MUTATIONS = ("auth.missing", "auth.invalid")

SECRET = b"apiguard-conformance-hmac-key-of-32+-bytes"
WRONG_SECRET = b"not-the-key-the-policy-verifies-with!!"
API_KEY = "apiguard-conformance-api-key"
WRONG_API_KEY = "an-api-key-the-policy-does-not-know"
KID = "conformance"
# Long after any run; apiguard checks `exp`, openapi-core does not read tokens.
EXPIRES = 4102444800  # 2100-01-01
JWT_SCHEMES = ("oauth2", "openIdConnect")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(claims: dict, secret: bytes) -> str:
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": KID}).encode())
    payload = _b64(json.dumps(claims).encode())
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


class Credentials:
    """The credentials of one document: the policy's `security` section and what a
    request carries for an operation."""

    def __init__(self, spec: dict):
        self.spec = spec
        self.schemes: dict = (spec.get("components") or {}).get("securitySchemes") or {}
        self.scopes = sorted({scope for requirement in self._requirements()
                              for alternative in requirement for scopes in alternative.values()
                              for scope in scopes})

    def _requirements(self):
        yield self.spec.get("security") or []
        for item in (self.spec.get("paths") or {}).values():
            for operation in (item or {}).values():
                if isinstance(operation, dict) and "security" in operation:
                    yield operation["security"] or []

    def _is_jwt(self, name: str) -> bool:
        scheme = self.schemes.get(name) or {}
        return scheme.get("type") in JWT_SCHEMES or (
            scheme.get("type") == "http" and str(scheme.get("scheme", "")).lower() == "bearer")

    def policy(self) -> dict | None:
        """The policy's `security` section; None if the document uses no scheme."""
        used = {name for requirement in self._requirements() for alternative in requirement
                for name in alternative}
        if not used:
            return None
        jwk = {"kty": "oct", "kid": KID, "alg": "HS256", "k": _b64(SECRET)}
        providers = {name: {"local_jwks": {"inline_string": json.dumps({"keys": [jwk]})}}
                     for name in sorted(used) if self._is_jwt(name)}
        api_keys = {name: [{"sha256": hashlib.sha256(API_KEY.encode()).hexdigest(),
                            "consumer": "conformance", "scopes": self.scopes}]
                    for name in sorted(used) if (self.schemes.get(name) or {}).get("type") == "apiKey"}
        section = {}
        if providers:
            section["providers"] = providers
        if api_keys:
            section["api_keys"] = api_keys
        return section

    def requirement(self, op: Operation) -> list[dict]:
        item = (self.spec.get("paths") or {}).get(op.template) or {}
        operation = item.get(op.method) or {}
        return operation.get("security", self.spec.get("security")) or []

    def apply(self, req: Request, op: Operation, valid: bool = True) -> None:
        """Adds the credentials of `op`'s first requirement to `req` (forged ones if not
        `valid`); nothing when the operation needs none."""
        requirement = self.requirement(op)
        if not requirement or {} in requirement:
            return
        for name in requirement[0]:
            scheme = self.schemes.get(name) or {}
            if self._is_jwt(name):
                claims = {"sub": "conformance", "scope": " ".join(self.scopes), "exp": EXPIRES}
                token = _jwt(claims, SECRET if valid else WRONG_SECRET)
                req.headers["Authorization"] = f"Bearer {token}"
            elif scheme.get("type") == "apiKey":
                key = API_KEY if valid else WRONG_API_KEY
                where = scheme.get("in")
                if where == "header":
                    req.headers[scheme["name"]] = key
                elif where == "query":
                    req.query.append((scheme["name"], key))
                elif where == "cookie":
                    cookie = req.headers.get("Cookie")
                    pair = f"{scheme['name']}={key}"
                    req.headers["Cookie"] = f"{cookie}; {pair}" if cookie else pair

    def without(self, req: Request, op: Operation) -> Request:
        """A copy of `req` without the credentials `apply` gave it."""
        bare = copy.deepcopy(req)
        for name in (self.requirement(op) or [{}])[0]:
            scheme = self.schemes.get(name) or {}
            if self._is_jwt(name):
                bare.headers.pop("Authorization", None)
            elif scheme.get("in") == "header":
                bare.headers.pop(scheme["name"], None)
            elif scheme.get("in") == "query":
                bare.query = [(k, v) for k, v in bare.query if k != scheme["name"]]
            elif scheme.get("in") == "cookie" and "Cookie" in bare.headers:
                parts = [c for c in bare.headers["Cookie"].split("; ") if not c.startswith(scheme["name"] + "=")]
                if parts:
                    bare.headers["Cookie"] = "; ".join(parts)
                else:
                    del bare.headers["Cookie"]
        return bare

    def mutations(self, op: Operation, valid: Request) -> list[Request]:
        """`auth.missing` and `auth.invalid` of a valid request, for an operation that
        needs credentials."""
        requirement = self.requirement(op)
        if not requirement or {} in requirement:
            return []
        missing = self.without(valid, op)
        missing.kind, missing.note = "auth.missing", "no credentials"
        invalid = self.without(valid, op)
        invalid.kind, invalid.note = "auth.invalid", "a forged token or an unknown API key"
        self.apply(invalid, op, valid=False)
        return [missing, invalid]
