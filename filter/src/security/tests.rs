//! Token checks through the compiled policy, with keys generated here and the RFC 7515 /
//! RFC 8037 example vectors.

use crate::security::KeyRing;
use std::rc::Rc;
use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, Pss, RsaPrivateKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256, Sha384, Sha512};

use super::jwks::{Algorithm, KeyMaterial, KeySet};
use super::jwt::{self, TokenError};
use crate::policy::Policy;
use crate::problem;
use crate::request::RequestHead;
use crate::testkit;
use crate::verdict::{Action, RuleId};

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// One signing key per algorithm family, generated once per test run.
struct Keys {
    rsa: RsaPrivateKey,
    other_rsa: RsaPrivateKey,
    p256: p256::ecdsa::SigningKey,
    p384: p384::ecdsa::SigningKey,
    ed25519: ed25519_dalek::SigningKey,
    hmac: Vec<u8>,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut secret = vec![0u8; 32];
        OsRng.fill_bytes(&mut secret);
        let mut seed = [0u8; 32];
        OsRng.fill_bytes(&mut seed);
        Keys {
            rsa: RsaPrivateKey::new(&mut OsRng, 2048).unwrap(),
            other_rsa: RsaPrivateKey::new(&mut OsRng, 2048).unwrap(),
            p256: p256::ecdsa::SigningKey::random(&mut OsRng),
            p384: p384::ecdsa::SigningKey::random(&mut OsRng),
            ed25519: ed25519_dalek::SigningKey::from_bytes(&seed),
            hmac: secret,
        }
    })
}

fn rsa_jwk(key: &RsaPrivateKey, kid: &str) -> Value {
    json!({"kty": "RSA", "kid": kid, "n": b64(&key.n().to_bytes_be()), "e": b64(&key.e().to_bytes_be())})
}

/// The JWK set of the test provider: every key type, each with its `kid`.
fn jwks() -> Value {
    let k = keys();
    let p256 = k.p256.verifying_key().to_encoded_point(false);
    let p384 = k.p384.verifying_key().to_encoded_point(false);
    json!({"keys": [
        rsa_jwk(&k.rsa, "rsa"),
        {"kty": "EC", "crv": "P-256", "kid": "p256", "x": b64(p256.x().unwrap()), "y": b64(p256.y().unwrap())},
        {"kty": "EC", "crv": "P-384", "kid": "p384", "x": b64(p384.x().unwrap()), "y": b64(p384.y().unwrap())},
        {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": b64(k.ed25519.verifying_key().as_bytes())},
        {"kty": "oct", "kid": "hmac", "k": b64(&k.hmac)},
        {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
    ]})
}

/// Signs `claims` with `alg` and the test key of its family (`kid` names it).
fn sign_with(alg: &str, kid: &str, claims: &Value, rsa: &RsaPrivateKey) -> String {
    let header = json!({"alg": alg, "kid": kid, "typ": "JWT"});
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let m = input.as_bytes();
    let k = keys();
    let signature: Vec<u8> = match alg {
        "RS256" => rsa
            .sign(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(m))
            .unwrap(),
        "RS384" => rsa
            .sign(Pkcs1v15Sign::new::<Sha384>(), &Sha384::digest(m))
            .unwrap(),
        "RS512" => rsa
            .sign(Pkcs1v15Sign::new::<Sha512>(), &Sha512::digest(m))
            .unwrap(),
        "PS256" => rsa
            .sign_with_rng(&mut OsRng, Pss::new::<Sha256>(), &Sha256::digest(m))
            .unwrap(),
        "PS384" => rsa
            .sign_with_rng(&mut OsRng, Pss::new::<Sha384>(), &Sha384::digest(m))
            .unwrap(),
        "PS512" => rsa
            .sign_with_rng(&mut OsRng, Pss::new::<Sha512>(), &Sha512::digest(m))
            .unwrap(),
        "ES256" => {
            use p256::ecdsa::signature::Signer;
            let s: p256::ecdsa::Signature = k.p256.sign(m);
            s.to_bytes().to_vec()
        }
        "ES384" => {
            use p384::ecdsa::signature::Signer;
            let s: p384::ecdsa::Signature = k.p384.sign(m);
            s.to_bytes().to_vec()
        }
        "EdDSA" => {
            use ed25519_dalek::Signer;
            k.ed25519.sign(m).to_bytes().to_vec()
        }
        "HS256" | "HS384" | "HS512" => hmac(alg, &k.hmac, m),
        _ => Vec::new(),
    };
    format!("{input}.{}", b64(&signature))
}

fn hmac(alg: &str, secret: &[u8], m: &[u8]) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    macro_rules! mac {
        ($d:ty) => {{
            let mut mac = <Hmac<$d> as Mac>::new_from_slice(secret).unwrap();
            mac.update(m);
            mac.finalize().into_bytes().to_vec()
        }};
    }
    match alg {
        "HS256" => mac!(Sha256),
        "HS384" => mac!(Sha384),
        _ => mac!(Sha512),
    }
}

fn sign(alg: &str, kid: &str, claims: &Value) -> String {
    sign_with(alg, kid, claims, &keys().rsa)
}

const NOW: u64 = 1_900_000_000;

fn claims() -> Value {
    json!({"iss": "https://issuer.test", "aud": "bookshop", "sub": "alice",
           "exp": NOW + 3600, "iat": NOW - 10, "scope": "read write", "tenant": "t1"})
}

/// SHA-256 of the test API key `k-123`.
fn key_hash() -> String {
    Sha256::digest(b"k-123")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn policy_with(security: Value) -> Policy {
    let document = json!({
        "openapi": "3.0.3",
        "security": [{"jwt": ["read"]}],
        "components": {"securitySchemes": {
            "jwt": {"type": "http", "scheme": "bearer"},
            "key": {"type": "apiKey", "in": "header", "name": "X-Api-Key"}
        }},
        "paths": {
            "/pets": {"get": {}},
            "/admin": {"get": {"security": [{"jwt": ["admin"]}]}},
            "/open": {"get": {"security": []}},
            "/either": {"get": {"security": [{"jwt": []}, {"key": ["stock"]}]}}
        }
    });
    testkit::policy("shop", document, json!({"security": security}))
}

fn policy() -> Policy {
    policy_with(json!({
        "providers": {"jwt": {
            "issuer": "https://issuer.test",
            "audiences": ["bookshop"],
            "local_jwks": {"inline_string": jwks().to_string()},
            "from_headers": [{"name": "Authorization", "value_prefix": "Bearer "}],
            "from_params": ["access_token"],
            "claim_to_headers": [{"header_name": "X-Tenant", "claim_name": "tenant"}]
        }},
        "api_keys": {"key": [{"sha256": key_hash(), "consumer": "shop-1", "scopes": ["stock"]}]}
    }))
}

fn check(
    policy: &Policy,
    path: &str,
    headers: &[(&str, &str)],
    now: u64,
) -> Result<Option<super::Identity>, RuleId> {
    check_with(&policy.key_ring(), policy, path, headers, now)
}

/// [`check`] with what the token checks learnt so far (fetched keys, cached tokens).
fn check_with(
    ring: &KeyRing,
    policy: &Policy,
    path: &str,
    headers: &[(&str, &str)],
    now: u64,
) -> Result<Option<super::Identity>, RuleId> {
    let head = RequestHead::get(path).headers(headers);
    let (verdict, _) = policy.inspect(&head);
    let op = verdict.operation.map(|o| o.id).unwrap();
    policy
        .security
        .check(op, &head, ring, now, true)
        .map_err(|v| v.rule)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[test]
fn every_algorithm_verifies_with_a_key_of_its_type() {
    let p = policy();
    for (alg, kid) in [
        ("RS256", "rsa"),
        ("RS384", "rsa"),
        ("RS512", "rsa"),
        ("PS256", "rsa"),
        ("PS384", "rsa"),
        ("PS512", "rsa"),
        ("ES256", "p256"),
        ("ES384", "p384"),
        ("EdDSA", "ed"),
        ("HS256", "hmac"),
        ("HS384", "hmac"),
        ("HS512", "hmac"),
    ] {
        let auth = bearer(&sign(alg, kid, &claims()));
        let identity = check(&p, "/pets", &[("authorization", &auth)], NOW)
            .unwrap_or_else(|e| panic!("{alg}: {e}"))
            .unwrap();
        assert_eq!(identity.subject.as_deref(), Some("alice"), "{alg}");
        assert_eq!(identity.provider.as_deref(), Some("jwt"));
        assert_eq!(
            identity.headers,
            vec![("x-tenant".to_owned(), "t1".to_owned())]
        );
        assert_eq!(identity.remove, vec!["authorization".to_owned()]);
        // Events name the subject by a hash only.
        let label = identity.label().unwrap();
        assert!(
            label.starts_with("sub:") && label.len() == 4 + 32,
            "{label}"
        );
        assert!(!label.contains("alice"));
    }
}

#[test]
fn the_whole_inspection_allows_a_valid_token_and_names_the_identity() {
    let p = policy();
    let mut c = claims();
    c["exp"] = json!(u32::MAX);
    c["iat"] = json!(1);
    let auth = bearer(&sign("ES256", "p256", &c));
    let (v, _) = p.inspect(&RequestHead::get("/pets").headers(&[("authorization", &auth)]));
    assert_eq!(v.action, Action::Allow, "{v:?}");
    assert_eq!(v.identity.unwrap().scopes, vec!["read", "write"]);
    let (v, _) = p.inspect(&RequestHead::get("/pets"));
    assert_eq!(
        (v.action, v.rule()),
        (Action::Block, Some(RuleId::AuthMissing))
    );
    let reply = problem::reply("shop", RuleId::AuthMissing, &v);
    assert_eq!(reply.status, 401);
    assert!(reply
        .headers
        .contains(&("www-authenticate", "Bearer realm=\"shop\"".to_owned())));
}

#[test]
fn attacks_are_refused() {
    let p = policy();
    let good = claims();
    let with = |key: &str, value: Value| {
        let mut c = good.clone();
        c[key] = value;
        c
    };
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none"}"#),
        b64(good.to_string().as_bytes())
    );
    // Algorithm confusion: HS256 "signed" with the RSA public key's bytes as secret.
    let rsa_public = keys().rsa.n().to_bytes_be();
    let header = b64(br#"{"alg":"HS256","kid":"rsa"}"#);
    let input = format!("{header}.{}", b64(good.to_string().as_bytes()));
    let confused = format!(
        "{input}.{}",
        b64(&hmac("HS256", &rsa_public, input.as_bytes()))
    );
    let valid = sign("ES256", "p256", &good);
    let mut parts: Vec<&str> = valid.split('.').collect();
    let forged_payload = b64(with("scope", json!("read admin")).to_string().as_bytes());
    parts[1] = &forged_payload;
    let tampered = parts.join(".");
    let crit = {
        let h = b64(br#"{"alg":"HS256","kid":"hmac","crit":["exp"]}"#);
        let input = format!("{h}.{}", b64(good.to_string().as_bytes()));
        format!(
            "{input}.{}",
            b64(&hmac("HS256", &keys().hmac, input.as_bytes()))
        )
    };
    let cases = [
        ("alg none", none),
        ("HS256 with the RSA public key", confused),
        (
            "expired",
            sign("ES256", "p256", &with("exp", json!(NOW - 120))),
        ),
        (
            "not yet valid",
            sign("ES256", "p256", &with("nbf", json!(NOW + 120))),
        ),
        (
            "issued in the future",
            sign("ES256", "p256", &with("iat", json!(NOW + 120))),
        ),
        (
            "wrong audience",
            sign("ES256", "p256", &with("aud", json!(["other"]))),
        ),
        (
            "wrong issuer",
            sign("ES256", "p256", &with("iss", json!("https://evil.test"))),
        ),
        ("unknown kid", sign("ES256", "nope", &good)),
        ("tampered payload", tampered),
        (
            "another key",
            sign_with("RS256", "rsa", &good, &keys().other_rsa),
        ),
        ("crit header", crit),
        ("malformed base64", format!("{valid}=")),
        ("not a JWS", "abc".to_owned()),
        ("oversized", format!("{}.{}.x", "a".repeat(9000), "b")),
        (
            "non-numeric exp",
            sign("ES256", "p256", &with("exp", json!("tomorrow"))),
        ),
    ];
    for (name, token) in cases {
        let auth = bearer(&token);
        assert_eq!(
            check(&p, "/pets", &[("authorization", &auth)], NOW).err(),
            Some(RuleId::AuthInvalid),
            "{name}"
        );
    }
    // Within the leeway (60 s by default) an expired token still counts.
    let late = bearer(&sign("ES256", "p256", &with("exp", json!(NOW - 30))));
    assert!(check(&p, "/pets", &[("authorization", &late)], NOW).is_ok());
}

#[test]
fn two_tokens_in_one_request_are_refused() {
    let p = policy();
    let token = sign("ES256", "p256", &claims());
    let auth = bearer(&token);
    let path = format!("/pets?access_token={token}");
    assert!(
        check(&p, &path, &[], NOW).is_ok(),
        "the query alone is accepted"
    );
    assert_eq!(
        check(&p, &path, &[("authorization", &auth)], NOW).err(),
        Some(RuleId::AuthInvalid)
    );
    assert_eq!(
        check(
            &p,
            "/pets",
            &[("authorization", &auth), ("authorization", &auth)],
            NOW
        )
        .err(),
        Some(RuleId::AuthInvalid)
    );
    // Another auth scheme in the header is not a token of ours.
    assert_eq!(
        check(&p, "/pets", &[("authorization", "Basic YTpi")], NOW).err(),
        Some(RuleId::AuthMissing)
    );
}

#[test]
fn scopes_are_enforced_per_operation() {
    let p = policy();
    let auth = bearer(&sign("EdDSA", "ed", &claims()));
    assert_eq!(
        check(&p, "/admin", &[("authorization", &auth)], NOW).err(),
        Some(RuleId::AuthInsufficientScope)
    );
    let mut admin = claims();
    admin.as_object_mut().unwrap().remove("scope");
    admin["scp"] = json!(["admin"]);
    let auth = bearer(&sign("EdDSA", "ed", &admin));
    assert!(check(&p, "/admin", &[("authorization", &auth)], NOW).is_ok());
    assert_eq!(
        check(&p, "/pets", &[("authorization", &auth)], NOW).err(),
        Some(RuleId::AuthInsufficientScope),
        "`scp: [admin]` lacks `read`"
    );
    assert_eq!(check(&p, "/open", &[], NOW), Ok(None));
    let reply = problem::reply(
        "shop",
        RuleId::AuthInsufficientScope,
        &crate::verdict::Verdict::default(),
    );
    assert_eq!(reply.status, 403);
    assert!(reply.headers.contains(&(
        "www-authenticate",
        "Bearer realm=\"shop\", error=\"insufficient_scope\"".to_owned()
    )));
}

#[test]
fn api_keys_are_checked_against_their_hashes() {
    let p = policy();
    let identity = check(&p, "/either", &[("x-api-key", "k-123")], NOW)
        .unwrap()
        .unwrap();
    assert_eq!(identity.consumer.as_deref(), Some("shop-1"));
    assert_eq!(identity.label().as_deref(), Some("consumer:shop-1"));
    assert_eq!(
        identity.headers,
        vec![("x-apiguard-consumer".to_owned(), "shop-1".to_owned())]
    );
    assert_eq!(
        check(&p, "/either", &[("x-api-key", "k-124")], NOW).err(),
        Some(RuleId::AuthInvalid)
    );
    assert_eq!(
        check(&p, "/either", &[], NOW).err(),
        Some(RuleId::AuthMissing)
    );
    let auth = bearer(&sign("ES256", "p256", &claims()));
    assert!(
        check(&p, "/either", &[("authorization", &auth)], NOW).is_ok(),
        "the other alternative holds"
    );
    let managed: Vec<&str> = p.security.managed_headers().collect();
    assert_eq!(managed, vec!["x-tenant", "x-apiguard-consumer"]);
}

/// Regression: `x_apiguard_consumer` reached the upstream beside the consumer header the
/// filter set, and CGI-style stacks read both as `HTTP_X_APIGUARD_CONSUMER`.
#[test]
fn underscore_twins_of_managed_headers_reach_the_upstream() {
    let p = policy();
    let twins = |name: &str| p.security.twins_a_managed_header(name);
    for twin in [
        "x_apiguard_consumer",
        "X_APIGUARD_CONSUMER",
        "x_apiguard-consumer",
        "x_tenant",
        "X-Tenant",
    ] {
        assert!(twins(twin), "{twin}");
    }
    for other in [
        "x-apiguard-consumer",
        "x-tenant",
        "x_tenants",
        "x_apiguard",
        "y_tenant",
        "x__tenant",
        "",
    ] {
        assert!(!twins(other), "{other}");
    }
}

#[test]
fn verified_tokens_are_cached_but_time_is_checked_on_every_hit() {
    let p = policy();
    let ring = p.key_ring();
    let auth = bearer(&sign("RS256", "rsa", &claims()));
    assert_eq!(ring.cached_tokens(), 0);
    assert!(check_with(&ring, &p, "/pets", &[("authorization", &auth)], NOW).is_ok());
    assert!(check_with(&ring, &p, "/pets", &[("authorization", &auth)], NOW).is_ok());
    assert_eq!(ring.cached_tokens(), 1);
    assert_eq!(
        check_with(&ring, &p, "/pets", &[("authorization", &auth)], NOW + 7200).err(),
        Some(RuleId::AuthInvalid),
        "a cached token expires all the same"
    );
}

#[test]
fn remote_keys_are_unavailable_until_installed() {
    let p = policy_with(json!({"providers": {"jwt": {
        "issuer": "https://issuer.test",
        "remote_jwks": {"http_uri": {"uri": "http://idp.test/jwks.json", "cluster": "idp"},
                        "cache_duration": "30s"}
    }}, "api_keys": {"key": []}}));
    let ring = p.key_ring();
    let remote = p.security.providers[0].remote.clone().unwrap();
    assert_eq!(
        (
            remote.authority.as_str(),
            remote.path.as_str(),
            remote.cache_duration
        ),
        ("idp.test", "/jwks.json", 30)
    );
    let auth = bearer(&sign("ES256", "p256", &claims()));
    assert_eq!(
        check_with(&ring, &p, "/pets", &[("authorization", &auth)], NOW).err(),
        Some(RuleId::AuthKeysUnavailable)
    );
    assert_eq!(RuleId::AuthKeysUnavailable.status(), 503);
    let set = KeySet::parse(&jwks().to_string()).unwrap();
    ring.install_keys(0, Rc::new(set));
    assert!(check_with(&ring, &p, "/pets", &[("authorization", &auth)], NOW).is_ok());
    assert!(!ring.take_refetch(0));
    let unknown = bearer(&sign("ES256", "rotated", &claims()));
    assert_eq!(
        check_with(&ring, &p, "/pets", &[("authorization", &unknown)], NOW).err(),
        Some(RuleId::AuthInvalid)
    );
    assert!(ring.take_refetch(0), "an unknown kid asks for a refetch");
    assert!(!ring.take_refetch(0));
    // A rotation that retires the key also retires the tokens cached under it.
    assert_eq!(ring.cached_tokens(), 1);
    let rotated = json!({"keys": [rsa_jwk(&keys().other_rsa, "rotated")]}).to_string();
    ring.install_keys(0, Rc::new(KeySet::parse(&rotated).unwrap()));
    assert_eq!(
        check_with(&ring, &p, "/pets", &[("authorization", &auth)], NOW).err(),
        Some(RuleId::AuthInvalid)
    );
}

#[test]
fn keys_unavailable_can_be_configured_to_let_requests_through() {
    let p = policy_with(json!({"keys_unavailable": "allow", "providers": {"jwt": {
        "remote_jwks": {"http_uri": {"uri": "http://idp.test/jwks", "cluster": "idp"}}
    }}, "api_keys": {"key": []}}));
    let auth = bearer(&sign("ES256", "p256", &claims()));
    let (v, _) = p.inspect(&RequestHead::get("/pets").headers(&[("authorization", &auth)]));
    assert_eq!(
        (v.action, v.rule()),
        (Action::Monitor, Some(RuleId::AuthKeysUnavailable))
    );
}

#[test]
fn bad_security_settings_are_refused_with_their_pointer() {
    let config = |security: Value| {
        json!({"name": "a", "security": security, "openapi": {"document": {
            "openapi": "3.1.0",
            "components": {"securitySchemes": {"jwt": {"type": "oauth2"},
                                                "key": {"type": "apiKey", "in": "query", "name": "k"}}},
            "paths": {"/a": {"get": {"security": [{"jwt": []}]}}}}}})
        .to_string()
    };
    let error = |security: Value| Policy::compile(config(security).as_bytes()).unwrap_err();
    let e = error(json!({"api_keys": {"key": []}}));
    assert!(
        e.to_string()
            .contains("needs a JWT provider of the same name"),
        "{e}"
    );
    let jwks = jwks().to_string();
    let e = error(
        json!({"providers": {"jwt": {"local_jwks": {"inline_string": jwks}}},
                         "api_keys": {"key": [{"sha256": "abc", "consumer": "c"}]}}),
    );
    assert_eq!(
        e.location().unwrap().pointer,
        "/security/api_keys/key/0/sha256"
    );
    let e = error(json!({"providers": {"jwt": {}}, "api_keys": {"key": []}}));
    assert_eq!(e.location().unwrap().pointer, "/security/providers/jwt");
    let e = error(
        json!({"providers": {"jwt": {"local_jwks": {"inline_string": "{\"keys\": []}"}}},
                         "api_keys": {"key": []}}),
    );
    assert!(e.to_string().contains("no key usable"), "{e}");
    let short = json!({"keys": [{"kty": "oct", "k": b64(b"short")}]}).to_string();
    let e = error(
        json!({"providers": {"jwt": {"local_jwks": {"inline_string": short}}},
                         "api_keys": {"key": []}}),
    );
    assert!(e.to_string().contains("at least 32 bytes"), "{e}");
}

#[test]
fn without_a_security_key_the_document_requirements_are_not_enforced() {
    let config = json!({"name": "a", "openapi": {"document": {
        "openapi": "3.1.0", "security": [{"jwt": []}],
        "components": {"securitySchemes": {"jwt": {"type": "oauth2"}}},
        "paths": {"/a": {"get": {}}}}}});
    let p = Policy::compile(config.to_string().as_bytes()).unwrap();
    assert_eq!(check(&p, "/a", &[], NOW), Ok(None));
}

/// RFC 7515 Appendix A.1: the HS256 example.
#[test]
fn rfc7515_hs256_example_verifies() {
    let jwk = r#"{"keys": [{"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}]}"#;
    let token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let set = KeySet::parse(jwk).unwrap();
    let decoded = jwt::decode(token, 8192).unwrap();
    assert_eq!(decoded.alg, Algorithm::Hs256);
    assert!(decoded.verify(&set.keys).is_ok());
    let tampered = token.replace(".dBj", ".eBj");
    assert_eq!(
        jwt::decode(&tampered, 8192)
            .unwrap()
            .verify(&set.keys)
            .err(),
        Some(TokenError::BadSignature)
    );
}

/// RFC 8037 Appendix A.4: the Ed25519 example (its payload is text, not claims, so the
/// signature is checked directly).
#[test]
fn rfc8037_ed25519_example_verifies() {
    let jwk = r#"{"keys": [{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
    let jws = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
    let set = KeySet::parse(jwk).unwrap();
    let (input, signature) = jws.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    let key = &set.keys[0].material;
    assert!(matches!(key, KeyMaterial::Ed25519(_)));
    assert!(jwt::verify(
        Algorithm::EdDsa,
        key,
        input.as_bytes(),
        &signature
    ));
    assert!(!jwt::verify(Algorithm::EdDsa, key, b"other", &signature));
}

#[test]
fn a_key_with_its_own_alg_verifies_no_other() {
    let mut jwk = rsa_jwk(&keys().rsa, "rsa");
    jwk["alg"] = json!("PS256");
    let p = policy_with(json!({"providers": {"jwt": {
        "local_jwks": {"inline_string": json!({"keys": [jwk]}).to_string()}
    }}, "api_keys": {"key": []}}));
    let ps = bearer(&sign("PS256", "rsa", &claims()));
    let rs = bearer(&sign("RS256", "rsa", &claims()));
    assert!(check(&p, "/pets", &[("authorization", &ps)], NOW).is_ok());
    assert_eq!(
        check(&p, "/pets", &[("authorization", &rs)], NOW).err(),
        Some(RuleId::AuthInvalid)
    );
}

#[test]
fn arbitrary_tokens_never_panic() {
    // Deterministic xorshift noise over the bytes that matter to the token parser,
    // mixed with valid parts so that decoding gets past the first checks.
    let p = policy();
    let valid = sign("HS256", "hmac", &claims());
    let parts: Vec<&str> = valid.split('.').collect();
    let alphabet = b"eyJ.-_=+/AQ0{}\"\\ \x00\xff";
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..5_000 {
        let len = (next() % 96) as usize;
        let noise: String = (0..len)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize] as char)
            .collect();
        let token = match next() % 4 {
            0 => noise,
            1 => format!("{}.{noise}", parts[0]),
            2 => format!("{}.{}.{noise}", parts[0], parts[1]),
            _ => format!("{noise}.{}.{}", parts[1], parts[2]),
        };
        let auth = bearer(&token);
        assert!(check(&p, "/pets", &[("authorization", &auth)], NOW).is_err());
    }
}

#[test]
fn an_off_operation_keeps_its_credentials_check_in_the_policy_mode() {
    let config = |mode: &str| {
        json!({"name": "a", "mode": mode, "operations": {"GET /a": {"mode": "off"}},
               "security": {"providers": {"jwt": {"local_jwks": {"inline_string": jwks().to_string()}}}},
               "openapi": {"document": {
                   "openapi": "3.1.0", "security": [{"jwt": []}],
                   "components": {"securitySchemes": {"jwt": {"type": "oauth2"}}},
                   "paths": {"/a": {"get": {}}}}}})
        .to_string()
    };
    let inspect = |mode: &str| {
        let p = Policy::compile(config(mode).as_bytes()).unwrap();
        let (v, _) = p.inspect(&RequestHead::get("/a"));
        (v.action, v.rule())
    };
    assert_eq!(
        inspect("enforce"),
        (Action::Block, Some(RuleId::AuthMissing))
    );
    assert_eq!(
        inspect("monitor"),
        (Action::Monitor, Some(RuleId::AuthMissing))
    );
}

/// RFC 7515 Appendix A.3: the ES256 example (a fixed-length `R || S` signature).
#[test]
fn rfc7515_es256_example_verifies() {
    let jwk = r#"{"keys": [{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;
    let token = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
    let set = KeySet::parse(jwk).unwrap();
    let decoded = jwt::decode(token, 8192).unwrap();
    assert_eq!(decoded.alg, Algorithm::Es256);
    assert!(decoded.verify(&set.keys).is_ok());
    let other = token.replace(".DtEh", ".DtEi");
    assert_eq!(
        jwt::decode(&other, 8192).unwrap().verify(&set.keys).err(),
        Some(TokenError::BadSignature)
    );
}

/// RFC 7515 Appendix A.2: the RS256 example.
#[test]
fn rfc7515_rs256_example_verifies() {
    let n = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";
    let jwk = json!({"keys": [{"kty": "RSA", "n": n, "e": "AQAB"}]}).to_string();
    let token = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
    let set = KeySet::parse(&jwk).unwrap();
    let decoded = jwt::decode(token, 8192).unwrap();
    assert_eq!(decoded.alg, Algorithm::Rs256);
    assert!(decoded.verify(&set.keys).is_ok());
    // The same signature under another alg header does not verify.
    let ps = token.replacen("eyJhbGciOiJSUzI1NiJ9", &b64(br#"{"alg":"PS256"}"#), 1);
    assert_eq!(
        jwt::decode(&ps, 8192).unwrap().verify(&set.keys).err(),
        Some(TokenError::BadSignature)
    );
}

/// Regression: a token without `exp` was accepted, valid forever.
#[test]
fn tokens_without_exp_are_refused_unless_the_provider_allows_them() {
    let provider = |extra: Value| {
        let mut jwt = json!({"local_jwks": {"inline_string": jwks().to_string()}});
        if let (Some(jwt), Some(extra)) = (jwt.as_object_mut(), extra.as_object()) {
            jwt.extend(extra.clone());
        }
        policy_with(json!({"providers": {"jwt": jwt}, "api_keys": {"key": []}}))
    };
    let mut forever = claims();
    forever.as_object_mut().unwrap().remove("exp");
    let forever = bearer(&sign("ES256", "p256", &forever));
    let good = bearer(&sign("ES256", "p256", &claims()));
    let get =
        |p: &Policy, auth: &str| check(p, "/pets", &[("authorization", auth)], NOW).map(|_| ());

    let default = provider(json!({}));
    assert_eq!(get(&default, &forever), Err(RuleId::AuthInvalid));
    assert_eq!(get(&default, &good), Ok(()));
    let lenient = provider(json!({"require_expiration": false}));
    assert_eq!(get(&lenient, &forever), Ok(()));

    // `max_lifetime`: `exp` at most that far ahead (plus the leeway), and required.
    let hour = provider(json!({"require_expiration": false, "max_lifetime": "3600s"}));
    assert_eq!(get(&hour, &good), Ok(()), "exp is NOW + 3600");
    assert_eq!(get(&hour, &forever), Err(RuleId::AuthInvalid));
    let mut long = claims();
    long["exp"] = json!(NOW + 3600 + 61);
    let long = bearer(&sign("ES256", "p256", &long));
    assert_eq!(get(&hour, &long), Err(RuleId::AuthInvalid));
    assert_eq!(get(&default, &long), Ok(()));
    let e = Policy::compile(
        json!({"name": "a", "security": {"providers": {"jwt": {
            "local_jwks": {"inline_string": jwks().to_string()}, "max_lifetime": "1h"}}},
            "openapi": {"document": {"openapi": "3.1.0",
                "components": {"securitySchemes": {"jwt": {"type": "oauth2"}}},
                "paths": {"/a": {"get": {"security": [{"jwt": []}]}}}}}})
        .to_string()
        .as_bytes(),
    )
    .unwrap_err();
    assert_eq!(
        e.location().unwrap().pointer,
        "/security/providers/jwt/max_lifetime"
    );
}

/// Regression: a declared security scheme no requirement uses had to be configured.
#[test]
fn a_declared_scheme_no_requirement_uses_needs_no_provider() {
    let config = |requirement: Value| {
        json!({"name": "a", "security": {"providers": {"jwt": {
            "local_jwks": {"inline_string": jwks().to_string()}}}},
            "openapi": {"document": {"openapi": "3.1.0",
                "components": {"securitySchemes": {
                    "jwt": {"type": "oauth2"},
                    "partner": {"type": "openIdConnect"},
                    "legacy": {"type": "apiKey", "in": "header", "name": "X-Legacy"}}},
                "paths": {"/a": {"get": {"security": requirement}}}}}})
        .to_string()
    };
    let p = Policy::compile(config(json!([{"jwt": []}])).as_bytes()).unwrap();
    let unconfigured: Vec<&str> = p.security.unconfigured_schemes().collect();
    assert_eq!(unconfigured, ["legacy", "partner"]);
    assert_eq!(check(&p, "/a", &[], NOW), Err(RuleId::AuthMissing));
    for (used, pointer) in [
        ("partner", "/security/providers"),
        ("legacy", "/security/api_keys"),
    ] {
        let e = Policy::compile(config(json!([{ used: [] }])).as_bytes()).unwrap_err();
        assert_eq!(e.location().unwrap().pointer, pointer, "{e}");
        assert!(e.to_string().contains(used), "{e}");
    }
}

/// Regression: a token read from a query parameter or a cookie went upstream even with
/// `forward: false`.
#[test]
fn tokens_from_the_query_or_a_cookie_are_not_forwarded() {
    let p = policy_with(json!({"providers": {"jwt": {
        "local_jwks": {"inline_string": jwks().to_string()},
        "from_params": ["access_token"],
        "from_cookies": ["session"]
    }}, "api_keys": {"key": []}}));
    let token = sign("ES256", "p256", &claims());
    let path = format!("/pets?a=%41&access_token={token}&b=1+2");
    let identity = check(&p, &path, &[], NOW).unwrap().unwrap();
    assert_eq!(identity.remove_params, ["access_token"]);
    assert_eq!(
        identity.upstream_path(path.as_bytes()).as_deref(),
        Some(&b"/pets?a=%41&b=1+2"[..])
    );
    let cookie = format!("theme=dark; session={token};lang=en");
    let identity = check(&p, "/pets", &[("cookie", &cookie)], NOW)
        .unwrap()
        .unwrap();
    assert_eq!(identity.remove_cookies, ["session"]);
    assert_eq!(identity.upstream_path(b"/pets?x=1"), None);
    assert_eq!(
        identity.upstream_cookie(&[cookie.as_bytes()]),
        Some(Some(b"theme=dark;lang=en".to_vec()))
    );
    let forwarded = policy_with(json!({"providers": {"jwt": {
        "local_jwks": {"inline_string": jwks().to_string()},
        "from_params": ["access_token"], "forward": true
    }}, "api_keys": {"key": []}}));
    let identity = check(&forwarded, &path, &[], NOW).unwrap().unwrap();
    assert_eq!(identity.upstream_path(path.as_bytes()), None);
}
