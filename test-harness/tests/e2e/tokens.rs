//! Token checks through real Envoy, with keys from a real HTTP JWKS endpoint: fetched when
//! the plugin starts, rotation picked up, the endpoint down at start (503) and down later
//! (the stale keys keep working), and the identity passed upstream unspoofable.

use std::time::{Duration, Instant};

use apiguard_harness::{EnvoyOptions, JwksServer, Policy, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::Request;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use rand::rngs::OsRng;
use serde_json::{json, Value};

use crate::fixture::{assert_problem, bundled, Proxy};

/// Generous: several Envoys and compilers share two cores.
pub const PATIENCE: Duration = Duration::from_secs(40);
const ISSUER: &str = "https://idp.test";

pub struct Key {
    kid: &'static str,
    signing: SigningKey,
}

impl Key {
    pub fn new(kid: &'static str) -> Key {
        Key {
            kid,
            signing: SigningKey::random(&mut OsRng),
        }
    }

    pub fn jwk(&self) -> Value {
        let point = self.signing.verifying_key().to_encoded_point(false);
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "kid": self.kid,
               "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())})
    }

    /// An ES256 token for `sub` with `scope`, valid for an hour from now (or `exp`).
    pub fn token(&self, scope: &str, exp_offset: i64) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let claims = json!({"iss": ISSUER, "sub": "alice", "aud": "petstore",
                            "scope": scope, "exp": now + exp_offset});
        let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let input = format!("{}.{}", b64(&header), b64(&claims));
        let signature: Signature = self.signing.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }
}

pub fn set(keys: &[&Key]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()}).to_string()
}

/// The petstore policy with every operation behind the `idp` provider (scope
/// `pets:read`), whose keys come from `jwks`, refreshed every 2 seconds. Two workers,
/// so that keys fetched by one reach the other through shared data.
fn start(jwks: &JwksServer) -> Proxy {
    Proxy::start_with(EnvoyOptions {
        policy: Policy::Bundle(idp_policy()),
        jwks: Some(jwks.addr()),
        concurrency: 2,
        ..EnvoyOptions::default()
    })
}

/// The petstore policy with every operation behind the `idp` provider (scope
/// `pets:read`), whose keys come from the `jwks` cluster, refreshed every 2 seconds and
/// fetched with a 2-second timeout.
pub fn idp_policy() -> Value {
    let mut bundle = bundled("petstore");
    let document = &mut bundle["openapi"]["document"];
    document["security"] = json!([{"idp": ["pets:read"]}]);
    document["components"]["securitySchemes"] =
        json!({"idp": {"type": "http", "scheme": "bearer"}});
    bundle["security"] = json!({"providers": {"idp": {
        "issuer": ISSUER,
        "audiences": ["petstore"],
        "remote_jwks": {
            "http_uri": {"uri": "http://idp.test/.well-known/jwks.json", "cluster": "jwks", "timeout": "2s"},
            "cache_duration": "2s"
        },
        "claim_to_headers": [{"header_name": "x-user", "claim_name": "sub"}]
    }}});
    bundle
}

pub fn get(proxy: &Proxy, token: Option<&str>, headers: &[(&str, &str)]) -> Response {
    let mut request = Request::get("/v1/pets");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let client = proxy.client(apiguard_harness::HttpVersion::Http1);
    client
        .send(request.body(bytes::Bytes::new()).unwrap())
        .unwrap()
}

/// Polls until `done` holds; panics with `what` after [`PATIENCE`].
pub fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "not within {PATIENCE:?}: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn remote_keys_are_fetched_at_start_rotated_and_kept_when_the_endpoint_goes_down() {
    let first = Key::new("first");
    let jwks = JwksServer::start(&set(&[&first])).unwrap();
    let proxy = start(&jwks);
    // Fetched on the plugin's tick, before any request.
    eventually("the keys are fetched at start", || jwks.fetches() > 0);
    let token = first.token("pets:read", 3600);
    eventually("a valid token is accepted", || {
        get(&proxy, Some(&token), &[]).status == 200
    });

    // The identity goes upstream; a client's own copy of the header is replaced, and the
    // token is not forwarded.
    let response = get(&proxy, Some(&token), &[("x-user", "mallory")]);
    assert_eq!(response.status, 200, "{response:?}");
    let seen = proxy.upstream.received().pop().unwrap();
    assert_eq!(
        seen.headers.get("x-user").map(String::as_str),
        Some("alice")
    );
    assert_eq!(seen.headers.get("authorization"), None);
    let delivered = proxy.upstream.received().len();

    let response = get(&proxy, None, &[]);
    assert_problem("no token", &response, 401, "auth.missing");
    let challenge = response.header("www-authenticate");
    assert_eq!(challenge, Some("Bearer realm=\"petstore\""));
    let response = get(&proxy, Some(&first.token("pets:write", 3600)), &[]);
    assert_problem("wrong scope", &response, 403, "auth.insufficient_scope");
    let response = get(&proxy, Some(&first.token("pets:read", -3600)), &[]);
    assert_problem("expired", &response, 401, "auth.invalid");
    assert_eq!(
        response.header("www-authenticate"),
        Some("Bearer realm=\"petstore\", error=\"invalid_token\"")
    );
    let second = Key::new("second");
    let response = get(&proxy, Some(&second.token("pets:read", 3600)), &[]);
    assert_problem("unknown key", &response, 401, "auth.invalid");
    assert_eq!(
        proxy.upstream.received().len(),
        delivered,
        "refused requests never arrive"
    );

    // Rotation: the endpoint now serves only the second key.
    jwks.set_keys(&set(&[&second]));
    let rotated = second.token("pets:read", 3600);
    eventually("the rotated key is picked up", || {
        get(&proxy, Some(&rotated), &[]).status == 200
    });
    eventually("the retired key is dropped", || {
        get(&proxy, Some(&token), &[]).status == 401
    });

    // Down later: refreshes fail, and the keys fetched before keep working.
    jwks.set_down(true);
    let failed = proxy.counter("apiguard.jwks.fetch_failed");
    eventually("a refresh fails", || {
        proxy.counter("apiguard.jwks.fetch_failed") > failed
    });
    let response = get(&proxy, Some(&rotated), &[]);
    assert_eq!(
        response.status, 200,
        "stale keys keep working: {response:?}"
    );
}

#[test]
fn keys_unavailable_is_a_503_until_the_endpoint_comes_up() {
    let key = Key::new("only");
    let jwks = JwksServer::start(&set(&[&key])).unwrap();
    jwks.set_down(true);
    let proxy = start(&jwks);
    eventually("a fetch fails", || {
        proxy.counter("apiguard.jwks.fetch_failed") > 0.0
    });
    let token = key.token("pets:read", 3600);
    let response = get(&proxy, Some(&token), &[]);
    assert_problem("no keys", &response, 503, "auth.keys_unavailable");
    assert!(proxy.counter("apiguard.rule.auth.keys_unavailable.blocked") >= 1.0);
    // Each failed fetch is a security event in the log, naming the provider.
    let log = proxy.envoy.log();
    assert!(
        log.lines()
            .any(|line| line.contains(r#""uid":"auth.jwks_fetch_failed""#)
                && line.contains("JWKS of provider")),
        "{log}"
    );
    proxy.assert_upstream_saw_nothing();

    jwks.set_down(false);
    eventually("the keys arrive once the endpoint is up", || {
        get(&proxy, Some(&token), &[]).status == 200
    });
}

/// The claims of `bob`'s tokens: no issuer or audience, valid until 2096.
pub fn bob() -> Value {
    json!({"sub": "bob", "exp": 4_000_000_000u64})
}

/// An HS256 token with `claims`, signed with `secret` (the policy's `oct` key).
pub fn hs256(secret: &[u8], claims: &Value) -> String {
    use hmac::{Hmac, Mac};
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let input = format!(
        "{}.{}",
        b64(&json!({"alg": "HS256", "typ": "JWT"})),
        b64(claims)
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// The local provider's HS256 secret and the API key of consumer `shop-17`.
pub const LOCAL_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-local-test-secret";
pub const SHOP_KEY: &str = "shop-key-1";

/// The petstore, bundled, open to a bearer token from the local JWT provider (`provider`'s
/// settings beside its key set [`LOCAL_SECRET`]) or to the API key [`SHOP_KEY`] in
/// `X-Api-Key` (stored as its SHA-256, consumer `shop-17`).
pub fn petstore_with_local_token_or_shop_key(provider: Value) -> Value {
    use sha2::Digest;
    let hash: String = sha2::Sha256::digest(SHOP_KEY.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut bundle = bundled("petstore");
    let document = &mut bundle["openapi"]["document"];
    document["security"] = json!([{"local": []}, {"shopKey": []}]);
    document["components"]["securitySchemes"] = json!({
        "local": {"type": "http", "scheme": "bearer"},
        "shopKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"}
    });
    let jwks = json!({"keys": [{"kty": "oct", "k": URL_SAFE_NO_PAD.encode(LOCAL_SECRET)}]});
    let mut local = json!({"local_jwks": {"inline_string": jwks.to_string()}});
    if let (Some(local), Some(provider)) = (local.as_object_mut(), provider.as_object()) {
        local.extend(provider.clone());
    }
    bundle["security"] = json!({
        "providers": {"local": local},
        "api_keys": {"shopKey": [{"sha256": hash, "consumer": "shop-17"}]}
    });
    bundle
}

#[test]
fn api_keys_and_local_keys_with_unspoofable_identity_headers() {
    let (secret, api_key) = (LOCAL_SECRET, SHOP_KEY);
    let bundle = petstore_with_local_token_or_shop_key(json!({
        "from_headers": [{"name": "Authorization", "value_prefix": "Bearer "}],
        "from_params": ["access_token"],
        "forward": true
    }));
    let proxy = Proxy::start_with(EnvoyOptions {
        policy: Policy::Bundle(bundle),
        ..EnvoyOptions::default()
    });

    let spoof = ("x-apiguard-consumer", "admin");
    let response = get(&proxy, None, &[("x-api-key", api_key), spoof]);
    assert_eq!(response.status, 200, "{response:?}");
    let seen = proxy.upstream.received().pop().unwrap();
    let consumer = seen.headers.get("x-apiguard-consumer");
    assert_eq!(consumer.map(String::as_str), Some("shop-17"));

    // A token alone: the spoofed consumer header is removed, not passed on.
    let token = hs256(secret, &bob());
    let response = get(&proxy, Some(&token), &[spoof]);
    assert_eq!(response.status, 200, "{response:?}");
    let seen = proxy.upstream.received().pop().unwrap();
    assert_eq!(seen.headers.get("x-apiguard-consumer"), None);
    let forwarded = seen.headers.get("authorization").cloned();
    assert_eq!(
        forwarded,
        Some(format!("Bearer {token}")),
        "`forward: true`"
    );
    let delivered = proxy.upstream.received().len();

    let response = get(&proxy, None, &[("x-api-key", "guessed")]);
    assert_problem("unknown API key", &response, 401, "auth.invalid");
    let client = proxy.client(apiguard_harness::HttpVersion::Http1);
    let two_places = Request::get(format!("/v1/pets?access_token={token}"))
        .header("authorization", format!("Bearer {token}"))
        .body(bytes::Bytes::new())
        .unwrap();
    let response = client.send(two_places).unwrap();
    assert_problem("a token in two places", &response, 401, "auth.invalid");
    let response = get(
        &proxy,
        Some(&hs256(b"another secret of at least 32 bytes!", &bob())),
        &[],
    );
    assert_problem("another secret", &response, 401, "auth.invalid");
    let response = get(&proxy, None, &[spoof]);
    assert_problem("no credentials", &response, 401, "auth.missing");
    assert_eq!(
        proxy.upstream.received().len(),
        delivered,
        "refused requests never arrive"
    );
}
