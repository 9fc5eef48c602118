//! The keys, JWKS and JWTs the benchmark requests carry, made with the RustCrypto crates
//! the filter's own tests sign with. One key per JWS algorithm of [`ALGORITHMS`]: RS256's
//! is the one every headline request carries (Envoy's `jwt_authn`, configuration 3,
//! verifies it; apiguard's configurations carry it too, so every configuration sees the
//! same request bytes); the others exist for the cold per-algorithm scenarios, which
//! measure each algorithm's verification inside the VM. Keys are random per run.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, Pss, RsaPrivateKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::BenchError;

/// The claims a JWT check is configured to require.
pub const ISSUER: &str = "https://issuer.bench.apiguard.invalid";
pub const AUDIENCE: &str = "bench";

/// The JWS algorithms whose cold verification is measured (the issue's list), each with
/// its own key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Algorithm {
    Rs256,
    Ps256,
    Es256,
    Es384,
    EdDsa,
    Hs256,
}

/// Every algorithm, in the order of the report.
pub const ALGORITHMS: [Algorithm; 6] = [
    Algorithm::Rs256,
    Algorithm::Ps256,
    Algorithm::Es256,
    Algorithm::Es384,
    Algorithm::EdDsa,
    Algorithm::Hs256,
];

impl Algorithm {
    /// The JWS `alg` (RFC 7518, RFC 8037).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Ps256 => "PS256",
            Algorithm::Es256 => "ES256",
            Algorithm::Es384 => "ES384",
            Algorithm::EdDsa => "EdDSA",
            Algorithm::Hs256 => "HS256",
        }
    }

    /// Lower-case name: scenario ids and key ids.
    pub fn slug(self) -> String {
        self.name().to_ascii_lowercase()
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One algorithm's key as published and a token signed with it.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub algorithm: Algorithm,
    /// The public key (the secret, for HMAC) as a JWKS document (JSON text), for
    /// `local_jwks`.
    pub jwks: String,
    /// A signed JWT, valid for a day.
    pub token: String,
}

/// Every algorithm's credentials.
pub struct Keys {
    /// RS256's: the token every headline request carries, the JWKS of the full policy and
    /// of Envoy's `jwt_authn`.
    pub headline: Credentials,
    /// One per algorithm of [`ALGORITHMS`], in that order (RS256's is `headline` again).
    pub per_algorithm: Vec<Credentials>,
}

impl Keys {
    /// Generates every algorithm's key and signs one token with each.
    pub fn generate() -> Result<Keys, BenchError> {
        let per_algorithm = ALGORITHMS
            .iter()
            .map(|&algorithm| Credentials::generate(algorithm))
            .collect::<Result<Vec<_>, _>>()?;
        let headline = per_algorithm
            .iter()
            .find(|c| c.algorithm == Algorithm::Rs256)
            .cloned()
            .ok_or_else(|| BenchError::Tool("RS256 is missing from the algorithms".into()))?;
        Ok(Keys {
            headline,
            per_algorithm,
        })
    }
}

impl Credentials {
    /// Generates a key for `algorithm` and signs one token with it. The claims are the
    /// same for every algorithm, so the policies differ only in their key.
    pub fn generate(algorithm: Algorithm) -> Result<Credentials, BenchError> {
        let key = SigningKey::generate(algorithm)?;
        let kid = format!("bench-{}", algorithm.slug());
        let mut jwk = key.public_jwk();
        jwk["kid"] = Value::from(kid.as_str());
        jwk["alg"] = Value::from(algorithm.name());
        jwk["use"] = Value::from("sig");
        let jwks = json!({ "keys": [jwk] }).to_string();

        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let header = json!({"alg": algorithm.name(), "typ": "JWT", "kid": kid});
        let claims = json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": "bench-client",
            "iat": now, "exp": now + 86_400, "scope": "issues:read issues:write",
        });
        let signing_input = format!(
            "{}.{}",
            base64url(header.to_string().as_bytes()),
            base64url(claims.to_string().as_bytes())
        );
        let signature = key
            .sign(signing_input.as_bytes())
            .map_err(|e| BenchError::Tool(format!("signing the bench's {algorithm} token: {e}")))?;
        Ok(Credentials {
            algorithm,
            jwks,
            token: format!("{signing_input}.{}", base64url(&signature)),
        })
    }
}

/// An algorithm's private key, one variant per algorithm so a key signs only in its own.
enum SigningKey {
    /// 2048 bits, public exponent 65537.
    Rs256(RsaPrivateKey),
    /// Its own 2048-bit key, not RS256's: each algorithm's JWKS publishes one key.
    Ps256(RsaPrivateKey),
    Es256(p256::ecdsa::SigningKey),
    Es384(p384::ecdsa::SigningKey),
    EdDsa(ed25519_dalek::SigningKey),
    /// 32 bytes: HS256's hash size, the least apiguard accepts (RFC 7518 §3.2).
    Hs256([u8; 32]),
}

impl SigningKey {
    fn generate(algorithm: Algorithm) -> Result<SigningKey, BenchError> {
        let rsa = || {
            RsaPrivateKey::new(&mut OsRng, 2048)
                .map_err(|e| BenchError::Tool(format!("generating the {algorithm} key: {e}")))
        };
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        Ok(match algorithm {
            Algorithm::Rs256 => SigningKey::Rs256(rsa()?),
            Algorithm::Ps256 => SigningKey::Ps256(rsa()?),
            Algorithm::Es256 => SigningKey::Es256(p256::ecdsa::SigningKey::random(&mut OsRng)),
            Algorithm::Es384 => SigningKey::Es384(p384::ecdsa::SigningKey::random(&mut OsRng)),
            Algorithm::EdDsa => SigningKey::EdDsa(ed25519_dalek::SigningKey::from_bytes(&bytes)),
            Algorithm::Hs256 => SigningKey::Hs256(bytes),
        })
    }

    /// The public JWK (the secret, for HMAC), without `kid`, `alg` and `use`.
    fn public_jwk(&self) -> Value {
        match self {
            SigningKey::Rs256(key) | SigningKey::Ps256(key) => json!({
                "kty": "RSA",
                "n": base64url(&key.n().to_bytes_be()),
                "e": base64url(&key.e().to_bytes_be()),
            }),
            SigningKey::Es256(key) => {
                let point = key.verifying_key().to_encoded_point(false);
                ec_jwk(
                    "P-256",
                    point.x().map(|x| &x[..]),
                    point.y().map(|y| &y[..]),
                )
            }
            SigningKey::Es384(key) => {
                let point = key.verifying_key().to_encoded_point(false);
                ec_jwk(
                    "P-384",
                    point.x().map(|x| &x[..]),
                    point.y().map(|y| &y[..]),
                )
            }
            SigningKey::EdDsa(key) => json!({
                "kty": "OKP", "crv": "Ed25519", "x": base64url(key.verifying_key().as_bytes()),
            }),
            SigningKey::Hs256(secret) => json!({"kty": "oct", "k": base64url(secret)}),
        }
    }

    /// The JWS signature of `input` (RFC 7518 §3).
    fn sign(&self, input: &[u8]) -> Result<Vec<u8>, String> {
        use p256::ecdsa::signature::Signer;
        let digest = Sha256::digest(input);
        match self {
            SigningKey::Rs256(key) => key
                .sign(Pkcs1v15Sign::new::<Sha256>(), &digest)
                .map_err(|e| e.to_string()),
            // MGF1 with SHA-256 and a salt as long as the hash (RFC 7518 §3.5).
            SigningKey::Ps256(key) => key
                .sign_with_rng(&mut OsRng, Pss::new::<Sha256>(), &digest)
                .map_err(|e| e.to_string()),
            // `r || s`, each the curve's size (RFC 7518 §3.4).
            SigningKey::Es256(key) => {
                let signature: p256::ecdsa::Signature = key.sign(input);
                Ok(signature.to_bytes().to_vec())
            }
            SigningKey::Es384(key) => {
                let signature: p384::ecdsa::Signature = key.sign(input);
                Ok(signature.to_bytes().to_vec())
            }
            SigningKey::EdDsa(key) => Ok(key.sign(input).to_bytes().to_vec()),
            SigningKey::Hs256(secret) => {
                let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|e| e.to_string())?;
                mac.update(input);
                Ok(mac.finalize().into_bytes().to_vec())
            }
        }
    }
}

/// A NIST-curve public key as a JWK, from its uncompressed point's coordinates (which
/// such a point always has).
fn ec_jwk(crv: &str, x: Option<&[u8]>, y: Option<&[u8]>) -> Value {
    json!({"kty": "EC", "crv": crv, "x": x.map(base64url), "y": y.map(base64url)})
}

/// In a bundled policy, a string that is exactly this is replaced by the bench's JWKS
/// (its JSON text, as `local_jwks.inline_string` takes it), and these by the token's
/// issuer and audience: the key is made per run, so the policy names it without a file.
pub const JWKS_PLACEHOLDER: &str = "${BENCH_JWKS}";
const ISSUER_PLACEHOLDER: &str = "${BENCH_ISSUER}";
const AUDIENCE_PLACEHOLDER: &str = "${BENCH_AUDIENCE}";

impl Credentials {
    /// `policy` with the placeholders replaced, wherever they are.
    pub fn fill(&self, mut policy: Value) -> Value {
        fill(&mut policy, &self.jwks);
        policy
    }
}

fn fill(value: &mut Value, jwks: &str) {
    match value {
        Value::String(text) => match text.as_str() {
            JWKS_PLACEHOLDER => *value = Value::from(jwks),
            ISSUER_PLACEHOLDER => *value = Value::from(ISSUER),
            AUDIENCE_PLACEHOLDER => *value = Value::from(AUDIENCE),
            _ => {}
        },
        Value::Array(items) => items.iter_mut().for_each(|item| fill(item, jwks)),
        Value::Object(fields) => fields.values_mut().for_each(|field| fill(field, jwks)),
        _ => {}
    }
}

/// Unpadded base64url (RFC 7515 section 2).
fn base64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(text: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(text).unwrap()
    }

    /// The keys and tokens are the kinds the report names (and the bench made with the
    /// `openssl` command before): 2048-bit RSA with exponent 65537, P-256, P-384, Ed25519,
    /// a 32-byte HMAC secret; each JWKS one key with its `kid`, `alg` and `use`; each token
    /// the same claims, valid for a day, signed in JWS's fixed-width form.
    #[test]
    fn every_algorithms_key_and_token_have_the_reported_shape() {
        let keys = Keys::generate().unwrap();
        assert_eq!(keys.headline.token, keys.per_algorithm[0].token);
        let algorithms: Vec<_> = keys.per_algorithm.iter().map(|c| c.algorithm).collect();
        assert_eq!(algorithms, ALGORITHMS);
        for credentials in &keys.per_algorithm {
            let algorithm = credentials.algorithm;
            // (kty, crv, the key's base64url fields with their decoded sizes, signature size)
            let (kty, crv, fields, signature): (_, _, &[(&str, usize)], _) = match algorithm {
                Algorithm::Rs256 | Algorithm::Ps256 => ("RSA", None, &[("n", 256), ("e", 3)], 256),
                Algorithm::Es256 => ("EC", Some("P-256"), &[("x", 32), ("y", 32)], 64),
                Algorithm::Es384 => ("EC", Some("P-384"), &[("x", 48), ("y", 48)], 96),
                Algorithm::EdDsa => ("OKP", Some("Ed25519"), &[("x", 32)], 64),
                Algorithm::Hs256 => ("oct", None, &[("k", 32)], 32),
            };
            let jwks: Value = serde_json::from_str(&credentials.jwks).unwrap();
            let [jwk] = jwks["keys"].as_array().unwrap().as_slice() else {
                panic!("{algorithm}: not one key in {jwks}");
            };
            let kid = format!("bench-{}", algorithm.slug());
            assert_eq!(jwk["kty"], kty, "{algorithm}");
            assert_eq!(jwk["crv"].as_str(), crv, "{algorithm}");
            assert_eq!(
                (&jwk["kid"], &jwk["alg"], &jwk["use"]),
                (&json!(kid), &json!(algorithm.name()), &json!("sig"))
            );
            for &(field, size) in fields {
                assert_eq!(
                    decoded(jwk[field].as_str().unwrap()).len(),
                    size,
                    "{algorithm} {field}"
                );
            }
            if kty == "RSA" {
                assert_eq!(jwk["e"], "AQAB");
                assert!(
                    decoded(jwk["n"].as_str().unwrap())[0] & 0x80 != 0,
                    "a full 2048-bit modulus"
                );
            }

            let parts: Vec<_> = credentials.token.split('.').collect();
            let [header, claims, signed] = parts.as_slice() else {
                panic!("{algorithm}: not a JWS compact token");
            };
            let header: Value = serde_json::from_slice(&decoded(header)).unwrap();
            assert_eq!(
                header,
                json!({"alg": algorithm.name(), "typ": "JWT", "kid": kid})
            );
            let claims: Value = serde_json::from_slice(&decoded(claims)).unwrap();
            let iat = claims["iat"].as_u64().unwrap();
            assert_eq!(
                claims,
                json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "bench-client", "iat": iat,
                       "exp": iat + 86_400, "scope": "issues:read issues:write"})
            );
            assert_eq!(decoded(signed).len(), signature, "{algorithm}");
        }
    }

    #[test]
    fn placeholders_are_filled_wherever_they_are() {
        let credentials = Credentials {
            algorithm: Algorithm::Rs256,
            jwks: r#"{"keys": []}"#.into(),
            token: String::new(),
        };
        let policy = json!({"security": {"providers": {"bench": {
            "local_jwks": {"inline_string": JWKS_PLACEHOLDER},
            "issuer": "${BENCH_ISSUER}", "audiences": ["${BENCH_AUDIENCE}"], "other": "x"}}}});
        assert_eq!(
            credentials.fill(policy),
            json!({"security": {"providers": {"bench": {
                "local_jwks": {"inline_string": r#"{"keys": []}"#}, "issuer": ISSUER,
                "audiences": [AUDIENCE], "other": "x"}}}})
        );
    }
}
