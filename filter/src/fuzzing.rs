//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz, libFuzzer): one function per
//! target, taking the fuzzer's bytes and driving the engine through its own APIs.
//!
//! The fuzz crate calls only these functions, so the engine's modules can move without
//! breaking it; the replay test below runs every committed corpus input and crash
//! reproducer through the same functions under `cargo test`. Compiled for tests and with
//! the `fuzzing` feature only: nothing here is part of the filter.
//!
//! A target must not panic on any input; where it can check a property of the result
//! cheaply (a redacted body is JSON, a token the target signed itself verifies, two
//! validators agree), it asserts it, and the fuzzer reports a failed assertion as a crash.

use std::collections::BTreeMap;
use std::rc::Rc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::abuse::slots::{MemoryStore, SlotSecret};
use crate::contract::openapi::Version;
use crate::contract::schema::{Context, Direction, Schema, SchemaSet};
use crate::exchange::{Exchange, Next, Values};
use crate::policy::Policy;
use crate::request::RequestHead;
use crate::security::jwks::{Algorithm, KeySet};
use crate::security::jwt::{self, ClaimRules};
use crate::security::KeyRing;
use crate::structpb;

/// A target's entry point.
pub type Target = fn(&[u8]);

/// Every target, by the name of its file in `fuzz/fuzz_targets/` and of its corpus folder.
pub const TARGETS: &[(&str, Target)] = &[
    ("policy", policy),
    ("openapi", openapi),
    ("route", route),
    ("request", request),
    ("response", response),
    ("jwt", jwt),
    ("jwks", jwks),
    ("structpb", structpb),
    ("schema_differential", schema_differential),
    ("learn", learn),
];

/// The bookshop example's contract: JSON, form and multipart bodies, mixed path
/// templates, bearer and API-key security, JSON responses.
const BOOKSHOP: &str = include_str!("../../policies/bookshop/bookshop.openapi.yaml");
/// The HMAC key of the fuzz policy's token provider (`kid` `hmac`); the seed tokens in
/// `fuzz/corpus/request` are signed with it.
const HMAC_SECRET: &[u8] = b"apiguard-fuzzing-hmac-secret-32b";
/// The clock of every exchange (seconds): seed tokens are valid then.
const NOW: u64 = 1_700_000_000;
/// The fuzz policy's API key (`X-Store-Key`).
const API_KEY: &str = "fuzz-store-key";

/// Compiles what the targets share (the fuzz policies, the key set) once per thread, as
/// a host does once per configuration, so that no input is timed with it.
pub fn prepare() {
    bookshop(false);
    bookshop(true);
    fuzz_keys();
}

/// The fuzzer's configuration bytes as Envoy would hand them over: JSON or YAML text, or
/// a serialised `google.protobuf.Struct`.
pub fn policy(data: &[u8]) {
    let _ = Policy::compile(data);
}

/// An OpenAPI document (JSON or YAML text) inlined into an otherwise fixed policy,
/// compiled with every schema.
pub fn openapi(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let config = json!({"name": "fuzz", "openapi": {"document": text}});
    let _ = Policy::compile(config.to_string());
}

/// Path templates and request paths: the first line lists templates (space-separated)
/// that become a document's paths; each further line is a request target matched
/// against them (against the bookshop contract when the first line is empty).
pub fn route(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (templates, targets) = text.split_once('\n').unwrap_or(("", &text));
    let built;
    let policy = if templates.is_empty() {
        &*bookshop(false)
    } else {
        let paths: Map<String, Value> = (templates.split(' ').take(16))
            .map(|t| (t.to_owned(), json!({"get": {}, "post": {}})))
            .collect();
        let config = json!({"name": "fuzz", "openapi": {"document":
            {"openapi": "3.1.0", "paths": paths}}});
        let Ok(policy) = Policy::compile(config.to_string()) else {
            return;
        };
        built = policy;
        &built
    };
    for (i, target) in targets.split('\n').take(16).enumerate() {
        let head = RequestHead {
            method: if i % 2 == 0 { b"GET" } else { b"POST" },
            path: target.as_bytes(),
            headers: &[],
            has_body: false,
        };
        let _ = policy.inspect(&head);
    }
}

/// A whole request through the exchange. The first byte picks the policy (bit 0:
/// monitor instead of enforce); then `METHOD TARGET`, `name: value` header lines, and,
/// after an empty line, the body (no empty line: no body).
pub fn request(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let policy = bookshop(flags & 1 == 1);
    let message = Message::parse(rest);
    let mut headers = message.headers;
    let (method, target) = message
        .start
        .split_once(' ')
        .unwrap_or((&message.start, "/"));
    headers.insert(0, (":method".to_owned(), method.as_bytes().to_vec()));
    headers.insert(1, (":path".to_owned(), target.as_bytes().to_vec()));
    headers.insert(2, (":authority".to_owned(), b"api.example.com".to_vec()));
    let mut exchange = new_exchange(&policy);
    exchange.request(&input(), &headers, message.body);
}

/// Requests the response target answers: operations of the bookshop contract whose
/// responses have JSON bodies, with the credentials they need.
const RESPONDED: &[(&str, &str)] = &[
    ("GET", "/bookshop/v2/books/978-0-13-468599-1"),
    ("GET", "/bookshop/v2/authors?pageSize=10"),
    ("GET", "/bookshop/v2/authors/au_7Hk2PqZ9xW"),
    ("GET", "/bookshop/v2/books?q=rust"),
    ("GET", "/bookshop/v2/books/bestsellers"),
];

/// A response to one of [`RESPONDED`], checked and redacted. The first byte picks the
/// request (its upper bits) and the policy (bit 0, as for [`request`]); then the status
/// line, header lines, an empty line and the body. A body the exchange replaces must be
/// JSON.
pub fn response(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let policy = bookshop(flags & 1 == 1);
    let (method, path) = RESPONDED[usize::from(flags >> 1) % RESPONDED.len()];
    let request: [(&str, &[u8]); 4] = [
        (":method", method.as_bytes()),
        (":path", path.as_bytes()),
        (":authority", b"api.example.com"),
        ("x-store-key", API_KEY.as_bytes()),
    ];
    let input = input();
    let mut exchange = new_exchange(&policy);
    let next = exchange.request(&input, &request, None);
    assert!(
        matches!(next, Next::Continue(_)),
        "the fixed request {method} {path} is allowed: {next:?}"
    );
    let message = Message::parse(rest);
    let mut headers = message.headers;
    headers.insert(0, (":status".to_owned(), message.start.into_bytes()));
    if let Next::Replace { body, .. } = exchange.response(&input, &headers, message.body) {
        assert!(
            serde_json::from_slice::<Value>(&body).is_ok(),
            "a redacted body is JSON: {}",
            String::from_utf8_lossy(&body)
        );
    }
}

/// A token checked as a provider checks it: decoded, verified against the fuzz key set,
/// its claims judged. The first byte: bit 0 set, the rest is a header and a payload
/// (split at the first `0xFF`) that this target signs with the HMAC key, so the claim
/// checks are reached; such a token naming `HS256` and no other key must verify. Clear,
/// the rest is the token text. Bits 1 and 2 turn on `require_expiration` and
/// `max_lifetime`.
pub fn jwt(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let signed_here = flags & 1 == 1;
    let token = if signed_here {
        let (header, payload) = match rest.iter().position(|&b| b == 0xFF) {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (rest, &[][..]),
        };
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(hs256(input.as_bytes()))
        )
    } else {
        String::from_utf8_lossy(rest).into_owned()
    };
    let Ok(decoded) = jwt::decode(&token, 8192) else {
        return;
    };
    let keys = fuzz_keys();
    let verified = decoded.verify(&keys.keys);
    if signed_here && decoded.alg == Algorithm::Hs256 && decoded.kid.as_deref() == Some("hmac") {
        assert!(verified.is_ok(), "a token signed with the key verifies");
    }
    let rules = ClaimRules {
        issuer: Some("https://auth.example.com".to_owned()),
        audiences: vec!["bookshop".to_owned()],
        leeway: 60,
        require_expiration: flags & 2 != 0,
        max_lifetime: (flags & 4 != 0).then_some(3600),
    };
    let _ = rules.issuer(&decoded.claims);
    let _ = rules.current(&decoded.claims, NOW);
    let _ = jwt::scopes(&decoded.claims);
}

/// A JWK set as a remote JWKS endpoint would serve it, up to the first NUL byte; the
/// bytes after it are a signature that each parsed key checks with every algorithm that
/// fits it (RSA keys of any size and exponent reach our own RSA code).
pub fn jwks(data: &[u8]) {
    let (text, signature) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let Ok(set) = KeySet::parse(text) else {
        return;
    };
    for key in &set.keys {
        for alg in ALGORITHMS {
            if key.accepts(alg, None) {
                let _ = jwt::verify(alg, &key.material, b"header.payload", signature);
            }
        }
    }
}

const ALGORITHMS: [Algorithm; 12] = [
    Algorithm::Rs256,
    Algorithm::Rs384,
    Algorithm::Rs512,
    Algorithm::Ps256,
    Algorithm::Ps384,
    Algorithm::Ps512,
    Algorithm::Es256,
    Algorithm::Es384,
    Algorithm::EdDsa,
    Algorithm::Hs256,
    Algorithm::Hs384,
    Algorithm::Hs512,
];

/// A serialised `google.protobuf.Struct`; what it transcodes to must be JSON text the
/// policy parser reads (up to its nesting limit, which refuses rather than fails).
pub fn structpb(data: &[u8]) {
    if let Some(Ok(text)) = structpb::to_json_if_struct(data) {
        if let Err(e) = serde_json::from_str::<Value>(&text) {
            assert!(
                e.to_string().contains("recursion limit"),
                "transcoded Struct is not JSON ({e}): {text}"
            );
        }
    }
}

/// Schema learning ([`crate::discovery::learn`]) on a body: the shape of any JSON stays
/// within the node cap, merges with itself within it, and what an event carries of it
/// reads back to the same schema (what `apiguard learn` relies on to merge workers).
pub fn learn(data: &[u8]) {
    use crate::discovery::learn::{Schema as Learned, MAX_NODES};
    let Some(schema) = Learned::of_body(data, 64) else {
        return;
    };
    let mut doubled = schema.clone();
    doubled.merge(&schema);
    assert!(doubled.nodes() <= MAX_NODES, "{} nodes", doubled.nodes());
    let json = doubled.to_json();
    assert_eq!(Learned::from_json(&json).to_json(), json, "read back");
}

/// A small JSON Schema and instance generated from the bytes (see [`Generator`]), judged
/// by apiguard's schema module (translation, then `jsonschema`) and by `jsonschema`
/// directly, with the draft (2020-12) and format checking apiguard uses: the verdicts
/// must agree. The generator leaves out what apiguard translates on purpose (see there).
pub fn schema_differential(data: &[u8]) {
    let mut generator = Generator { data, pos: 0 };
    let schema = generator.schema(0);
    let instance = generator.instance(0);
    let reference = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema);
    let set = SchemaSet::new(Version::V3_1, BTreeMap::new(), "fuzz");
    let Ok(raw) = RawValue::from_string(schema.to_string()) else {
        return;
    };
    let context = Context {
        direction: Direction::Request,
        strict: false,
    };
    let ours = Schema::new(raw, String::new(), context);
    let (reference, compiled) = (reference.ok(), ours.compile(&set).ok());
    assert_eq!(
        reference.is_some(),
        compiled.is_some(),
        "one compiles, the other not, for schema {schema}"
    );
    if let Some(reference) = reference {
        let violations = ours.validate(&set, &instance);
        assert_eq!(
            reference.is_valid(&instance),
            violations.is_empty(),
            "verdicts differ for schema {schema} and instance {instance}: {violations:?}"
        );
    }
}

/// Builds small JSON Schemas and instances from bytes (past the end, every byte reads
/// 0, so generation always ends). Property names are lowercase ASCII, and the schemas
/// leave out what apiguard's translation changes on purpose, so that any disagreement
/// is a bug:
/// - `readOnly`/`writeOnly` (refused by direction), `discriminator` (picks a branch) and
///   `format: int32/int64` (bound integers): OpenAPI meanings JSON Schema lacks;
/// - the 3.0 dialect (`nullable`, boolean `exclusiveMinimum`): the generator writes 3.1;
/// - strict mode (closes open objects): off, as in a policy without `strict`;
/// - case variants of declared property names, which apiguard refuses in open objects
///   (`refuse_case_variants`): names are lowercase, so no variant of one is another;
/// - `$ref` to components: the set has none;
/// - `format: uri` values that point inside the network (`request.ssrf`, a guard beside the
///   format): no generated string is a URL with an authority.
struct Generator<'a> {
    data: &'a [u8],
    pos: usize,
}

const NAMES: [&str; 4] = ["a", "b", "id", "name"];
const STRINGS: [&str; 8] = [
    "",
    "a",
    "id",
    "2024-02-30",
    "2024-01-01T00:00:00Z",
    "x@example.com",
    "192.168.0.1",
    "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
];
const FORMATS: [&str; 8] = [
    "date",
    "date-time",
    "email",
    "ipv4",
    "ipv6",
    "uuid",
    "uri",
    "hostname",
];
const PATTERNS: [&str; 4] = ["^a", "[0-9]+", "^$", "^(?:a|id)$"];
const TYPES: [&str; 7] = [
    "null", "boolean", "integer", "number", "string", "array", "object",
];
const MAX_DEPTH: usize = 4;

impl Generator<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn number(&mut self) -> Value {
        let n = i64::from(self.byte() as i8) % 20;
        if self.byte() % 4 == 0 {
            json!(n as f64 + 0.5)
        } else {
            json!(n)
        }
    }

    fn schema(&mut self, depth: usize) -> Value {
        match self.below(8) {
            0 => return Value::Bool(self.byte() % 2 == 0),
            1 if depth < MAX_DEPTH => {
                let key = self.pick(&["allOf", "anyOf", "oneOf"]);
                let branches: Vec<Value> = (0..1 + self.below(3))
                    .map(|_| self.schema(depth + 1))
                    .collect();
                return json!({ key: branches });
            }
            _ => {}
        }
        let mut map = Map::new();
        for _ in 0..1 + self.below(3) {
            self.keyword(&mut map, depth);
        }
        Value::Object(map)
    }

    fn keyword(&mut self, map: &mut Map<String, Value>, depth: usize) {
        let deeper = depth < MAX_DEPTH;
        let (key, value) = match self.below(20) {
            0 => ("type", json!(self.pick(&TYPES))),
            1 => ("type", json!([self.pick(&TYPES), self.pick(&TYPES)])),
            2 => ("enum", json!([self.instance(depth), self.instance(depth)])),
            3 => ("const", self.instance(depth)),
            4 => (
                self.pick(&["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"]),
                self.number(),
            ),
            5 => ("multipleOf", json!(self.pick(&[1, 2, 3]) as f64 / 2.0)),
            6 => (self.pick(&["minLength", "maxLength"]), json!(self.below(4))),
            7 => ("pattern", json!(self.pick(&PATTERNS))),
            8 => ("format", json!(self.pick(&FORMATS))),
            9 if deeper => {
                let properties: Map<String, Value> = (0..self.below(3))
                    .map(|_| (self.pick(&NAMES).to_owned(), self.schema(depth + 1)))
                    .collect();
                ("properties", Value::Object(properties))
            }
            10 => ("required", json!([self.pick(&NAMES)])),
            11 if deeper => ("additionalProperties", self.schema(depth + 1)),
            12 => (
                self.pick(&["minProperties", "maxProperties", "minItems", "maxItems"]),
                json!(self.below(3)),
            ),
            13 if deeper => ("items", self.schema(depth + 1)),
            14 if deeper => {
                let items: Vec<Value> = (0..1 + self.below(2))
                    .map(|_| self.schema(depth + 1))
                    .collect();
                ("prefixItems", json!(items))
            }
            15 => ("uniqueItems", json!(self.byte() % 2 == 0)),
            16 if deeper => ("contains", self.schema(depth + 1)),
            17 if deeper => ("not", self.schema(depth + 1)),
            18 if deeper => {
                map.insert("if".to_owned(), self.schema(depth + 1));
                ("then", self.schema(depth + 1))
            }
            19 if deeper => (
                self.pick(&["unevaluatedProperties", "unevaluatedItems"]),
                self.schema(depth + 1),
            ),
            _ => ("type", json!(self.pick(&TYPES))),
        };
        map.insert(key.to_owned(), value);
    }

    fn instance(&mut self, depth: usize) -> Value {
        let deeper = depth < MAX_DEPTH;
        match self.below(8) {
            0 => Value::Null,
            1 => Value::Bool(self.byte() % 2 == 0),
            2 | 3 => self.number(),
            4 => json!(self.pick(&STRINGS)),
            5 if deeper => Value::Array(
                (0..self.below(4))
                    .map(|_| self.instance(depth + 1))
                    .collect(),
            ),
            6 | 7 if deeper => Value::Object(
                (0..self.below(4))
                    .map(|_| (self.pick(&NAMES).to_owned(), self.instance(depth + 1)))
                    .collect(),
            ),
            _ => Value::Null,
        }
    }
}

/// The bookshop contract with the fuzz settings: token and API-key security, anomaly
/// checks, generous rate limits and a quarantine, responses enforced and redacted.
/// Compiled once per thread (`monitor`: the policy's mode), as a host compiles once per
/// configuration.
fn bookshop(monitor: bool) -> Rc<Policy> {
    thread_local! {
        static POLICIES: [Rc<Policy>; 2] = [false, true].map(compile_bookshop);
    }
    POLICIES.with(|policies| Rc::clone(&policies[usize::from(monitor)]))
}

#[allow(clippy::expect_used)] // the fixed fuzz policy compiles, or no target can run
fn compile_bookshop(monitor: bool) -> Rc<Policy> {
    let key_hash: String = Sha256::digest(API_KEY.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let config = json!({
        "name": "bookshop",
        "mode": if monitor { "monitor" } else { "enforce" },
        "responses": {"mode": "enforce", "redact": true},
        "security": {
            "providers": {"bearerAuth": {
                "issuer": "https://auth.example.com",
                "audiences": ["bookshop"],
                "local_jwks": {"inline_string": fuzz_jwks()},
                "from_headers": [{"name": "Authorization", "value_prefix": "Bearer "}],
                "claim_to_headers": [{"header_name": "X-Subject", "claim_name": "sub"}]
            }},
            "api_keys": {"storeApiKey": [{"sha256": key_hash, "consumer": "store-1",
                "scopes": ["orders:read", "inventory:read"]}]}
        },
        "abuse": {
            "anomaly": {},
            "rate_limits": [{"name": "all", "requests": 1_000_000, "window_seconds": 60}],
            "quarantine": {"strikes": 1_000_000, "window_seconds": 10, "duration_seconds": 10}
        },
        "openapi": {"document": BOOKSHOP}
    });
    Rc::new(Policy::compile(config.to_string()).expect("the fuzz policy compiles"))
}

/// The fuzz provider's keys: the HMAC key, and the RFC 7515 (A.2, A.3) and RFC 8037
/// (A.2) example public keys, so each verifier is reached.
fn fuzz_jwks() -> String {
    json!({"keys": [
        {"kty": "oct", "kid": "hmac", "k": URL_SAFE_NO_PAD.encode(HMAC_SECRET)},
        {"kty": "RSA", "kid": "rsa",
         "n": "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ",
         "e": "AQAB"},
        {"kty": "EC", "kid": "p256", "crv": "P-256",
         "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
         "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
        {"kty": "OKP", "kid": "ed", "crv": "Ed25519",
         "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    ]})
    .to_string()
}

/// [`fuzz_jwks`] parsed, once per thread.
fn fuzz_keys() -> Rc<KeySet> {
    thread_local! {
        #[allow(clippy::expect_used)] // a constant key set
        static KEYS: Rc<KeySet> =
            Rc::new(KeySet::parse(&fuzz_jwks()).expect("the fuzz key set parses"));
    }
    KEYS.with(Rc::clone)
}

#[allow(clippy::expect_used)] // HMAC takes a key of any length
fn hs256(message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(HMAC_SECRET).expect("any key length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn new_exchange(policy: &Rc<Policy>) -> Exchange {
    Exchange::new(Rc::clone(policy), Rc::new(KeyRing::new(&policy.security)))
}

/// A fresh store per input, so inputs do not depend on each other's rate-limit slots.
fn input() -> Values<MemoryStore> {
    Values {
        now: NOW * 1_000_000_000,
        downstream: Some("192.0.2.7:5678".to_owned()),
        store: MemoryStore::default(),
        secret: SlotSecret::new([7; SlotSecret::BYTES]),
    }
}

/// An HTTP message as the request and response targets read it: a start line, `name:
/// value` header lines (names lowercased, as Envoy keeps them), and after an empty
/// line the body.
struct Message<'a> {
    start: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Option<&'a [u8]>,
}

impl<'a> Message<'a> {
    fn parse(data: &'a [u8]) -> Message<'a> {
        let (head, body) = match memchr::memmem::find(data, b"\n\n") {
            Some(at) => (&data[..at], Some(&data[at + 2..])),
            None => (data, None),
        };
        let mut lines = head.split(|&b| b == b'\n');
        let start = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
        let headers = lines
            .take(64)
            .map(|line| {
                let at = line.iter().position(|&b| b == b':').unwrap_or(line.len());
                let name = String::from_utf8_lossy(&line[..at]).to_ascii_lowercase();
                let value = line.get(at + 1..).unwrap_or_default();
                (name, value.trim_ascii_start().to_vec())
            })
            .collect();
        Message {
            start,
            headers,
            body,
        }
    }
}

#[cfg(test)]
mod tests;
