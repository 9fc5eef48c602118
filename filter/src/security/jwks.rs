//! JSON Web Key sets (RFC 7517) parsed into typed verification keys, and the JWS
//! algorithms (RFC 7518, RFC 8037) each key may verify.
//!
//! A key is typed once, when its set is parsed (at configure time for `local_jwks`, once
//! per fetch for `remote_jwks`), so that a request never parses key material. Which
//! algorithm fits which key type is decided here, in one place: that pairing is what
//! stops algorithm confusion (an `HS256` token "signed" with an RSA public key finds no
//! `oct` key and is refused).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;

use super::rsa;
/// HMAC secrets shorter than this are refused (RFC 7518 §3.2: at least the hash size of
/// HS256; a short secret can be brute-forced from one token).
const MIN_HMAC_BYTES: usize = 32;

/// A JWS `alg` the filter verifies. `none` is not one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    EdDsa,
    Hs256,
    Hs384,
    Hs512,
}

impl Algorithm {
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Some(match name {
            "RS256" => Algorithm::Rs256,
            "RS384" => Algorithm::Rs384,
            "RS512" => Algorithm::Rs512,
            "PS256" => Algorithm::Ps256,
            "PS384" => Algorithm::Ps384,
            "PS512" => Algorithm::Ps512,
            "ES256" => Algorithm::Es256,
            "ES384" => Algorithm::Es384,
            "EdDSA" => Algorithm::EdDsa,
            "HS256" => Algorithm::Hs256,
            "HS384" => Algorithm::Hs384,
            "HS512" => Algorithm::Hs512,
            _ => return None,
        })
    }

    /// Whether this algorithm may be verified with `key` at all.
    pub fn fits(self, key: &KeyMaterial) -> bool {
        use Algorithm::*;
        matches!(
            (self, key),
            (
                Rs256 | Rs384 | Rs512 | Ps256 | Ps384 | Ps512,
                KeyMaterial::Rsa(_)
            ) | (Es256, KeyMaterial::P256(_))
                | (Es384, KeyMaterial::P384(_))
                | (EdDsa, KeyMaterial::Ed25519(_))
                | (Hs256 | Hs384 | Hs512, KeyMaterial::Oct(_))
        )
    }
}

/// The public (or, for `oct`, secret) part of one key, ready to verify with.
#[derive(Clone)]
pub enum KeyMaterial {
    Rsa(rsa::PublicKey),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
    Oct(Vec<u8>),
}

impl std::fmt::Debug for KeyMaterial {
    // Never prints an HMAC secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyMaterial::Rsa(_) => "RSA",
            KeyMaterial::P256(_) => "EC P-256",
            KeyMaterial::P384(_) => "EC P-384",
            KeyMaterial::Ed25519(_) => "OKP Ed25519",
            KeyMaterial::Oct(_) => "oct",
        })
    }
}

/// One usable key of a set.
#[derive(Debug, Clone)]
pub struct Key {
    pub kid: Option<String>,
    /// The key's own `alg`, when it names one: then only that algorithm may use it.
    pub alg: Option<Algorithm>,
    pub material: KeyMaterial,
}

impl Key {
    /// Whether a token with `alg` (and `kid`, if it names one) may be checked with this key.
    pub fn accepts(&self, alg: Algorithm, kid: Option<&str>) -> bool {
        kid.is_none_or(|kid| self.kid.as_deref() == Some(kid))
            && self.alg.is_none_or(|own| own == alg)
            && alg.fits(&self.material)
    }
}

/// A parsed key set. Keys meant for encryption (`use: enc`) and key types the filter
/// does not verify with are left out; a key of a supported type that is malformed makes
/// the whole set an error, so that a broken rotation is noticed rather than half-applied.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    pub keys: Vec<Key>,
}

/// Why a key set cannot be used; `index` is the key's position in `keys`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    #[error("not a JWK set (`{{\"keys\": [...]}}`): {0}")]
    Shape(String),
    #[error("/keys/{index}: {reason}")]
    Key { index: usize, reason: String },
    #[error("no key usable for signature verification (RSA, EC P-256/P-384, Ed25519, oct)")]
    Empty,
}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<RawKey>,
}

#[derive(Deserialize)]
struct RawKey {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
    k: Option<String>,
}

impl KeySet {
    pub fn parse(text: &str) -> Result<KeySet, JwksError> {
        let raw: RawSet =
            serde_json::from_str(text).map_err(|e| JwksError::Shape(e.to_string()))?;
        let mut keys = Vec::new();
        for (index, raw) in raw.keys.into_iter().enumerate() {
            let error = |reason: String| JwksError::Key { index, reason };
            if raw.usage.as_deref().is_some_and(|u| u != "sig") {
                continue;
            }
            let Some(material) = material(&raw).map_err(error)? else {
                continue;
            };
            let alg = match raw.alg.as_deref() {
                None => None,
                Some(name) => match Algorithm::from_name(name) {
                    Some(alg) if alg.fits(&material) => Some(alg),
                    Some(_) => {
                        return Err(error(format!(
                            "`alg` {name} does not fit a {material:?} key"
                        )))
                    }
                    // An algorithm we do not verify (e.g. RSA-OAEP): the key is not for us.
                    None => continue,
                },
            };
            keys.push(Key {
                kid: raw.kid,
                alg,
                material,
            });
        }
        if keys.is_empty() {
            return Err(JwksError::Empty);
        }
        Ok(KeySet { keys })
    }
}

/// The key material of one JWK, `None` for a key type the filter does not verify with.
fn material(raw: &RawKey) -> Result<Option<KeyMaterial>, String> {
    let field = |name: &str, value: &Option<String>| -> Result<Vec<u8>, String> {
        let value = value
            .as_deref()
            .ok_or_else(|| format!("`{name}` is missing"))?;
        URL_SAFE_NO_PAD
            .decode(value)
            .map_err(|_| format!("`{name}` is not unpadded base64url"))
    };
    let material = match (raw.kty.as_str(), raw.crv.as_deref()) {
        ("RSA", _) => {
            let key = rsa::PublicKey::new(&field("n", &raw.n)?, &field("e", &raw.e)?)
                .map_err(|e| format!("not a usable RSA key: {e}"))?;
            KeyMaterial::Rsa(key)
        }
        ("EC", Some(curve @ ("P-256" | "P-384"))) => {
            let mut point = vec![0x04];
            point.extend(field("x", &raw.x)?);
            point.extend(field("y", &raw.y)?);
            let invalid = |_| format!("`x`, `y` are not a point on {curve}");
            if curve == "P-256" {
                KeyMaterial::P256(
                    p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).map_err(invalid)?,
                )
            } else {
                KeyMaterial::P384(
                    p384::ecdsa::VerifyingKey::from_sec1_bytes(&point).map_err(invalid)?,
                )
            }
        }
        ("OKP", Some("Ed25519")) => {
            let x: [u8; 32] = field("x", &raw.x)?
                .try_into()
                .map_err(|_| "`x` must be 32 bytes".to_owned())?;
            KeyMaterial::Ed25519(
                ed25519_dalek::VerifyingKey::from_bytes(&x)
                    .map_err(|_| "`x` is not an Ed25519 public key".to_owned())?,
            )
        }
        ("oct", _) => {
            let k = field("k", &raw.k)?;
            if k.len() < MIN_HMAC_BYTES {
                return Err(format!(
                    "HMAC secrets must be at least {MIN_HMAC_BYTES} bytes"
                ));
            }
            KeyMaterial::Oct(k)
        }
        _ => return Ok(None),
    };
    Ok(Some(material))
}
