//! JSON Web Tokens (RFC 7519) in JWS compact form (RFC 7515): decoding, signature
//! verification and the time and audience claims.
//!
//! Everything here reads attacker-chosen bytes, so every step is checked and bounded:
//! the size before anything is decoded, base64url strictly (no padding, no stray bits),
//! the header's `alg` against the key's type, any `crit` header refused (RFC 7515 §4.1.11:
//! we implement no extension), and the time claims with checked arithmetic.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Sha256, Sha384, Sha512};

use super::jwks::{Algorithm, Key, KeyMaterial};
use super::rsa;

/// Why a token is refused. Each maps to a rule id in [`super`]; the text is fixed, never
/// built from the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum TokenError {
    #[error("the token is larger than the policy allows")]
    Oversized,
    #[error("the token is not a JWS in compact form with base64url JSON parts")]
    Malformed,
    #[error("unsecured tokens (`alg: none`) are refused")]
    Unsecured,
    #[error("the token's `alg` is not one the filter verifies")]
    UnsupportedAlgorithm,
    #[error("the token marks a header critical that the filter does not implement")]
    CriticalHeader,
    #[error("no key of the issuer fits the token's `kid` and `alg`")]
    NoKey,
    #[error("the signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's `iss` is not the provider's issuer")]
    Issuer,
    #[error("the token's `aud` names none of the provider's audiences")]
    Audience,
    #[error("a time claim (`exp`, `nbf`, `iat`) is not a number of seconds")]
    TimeClaim,
    #[error("the token has no `exp`, and the provider requires one")]
    NoExpiration,
    #[error("the token expires further ahead than the provider's `max_lifetime` allows")]
    LifetimeTooLong,
}

/// A token split and decoded, not yet verified.
#[derive(Debug)]
pub(crate) struct Decoded<'a> {
    pub alg: Algorithm,
    pub kid: Option<String>,
    pub claims: Map<String, Value>,
    /// `header.payload`, the bytes the signature covers.
    signing_input: &'a [u8],
    signature: Vec<u8>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    crit: Option<Value>,
}

/// Splits and decodes a compact JWS. Refuses what no key could make valid.
pub(crate) fn decode(token: &str, max_bytes: usize) -> Result<Decoded<'_>, TokenError> {
    if token.len() > max_bytes {
        return Err(TokenError::Oversized);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let b64 = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| TokenError::Malformed)
    };
    let header: Header =
        serde_json::from_slice(&b64(header)?).map_err(|_| TokenError::Malformed)?;
    if header.alg.eq_ignore_ascii_case("none") {
        return Err(TokenError::Unsecured);
    }
    let alg = Algorithm::from_name(&header.alg).ok_or(TokenError::UnsupportedAlgorithm)?;
    if header.crit.is_some() {
        return Err(TokenError::CriticalHeader);
    }
    let claims = serde_json::from_slice(&b64(payload)?).map_err(|_| TokenError::Malformed)?;
    let signature = b64(signature)?;
    // The split above found two dots, so this index is within the token.
    let signing_len = token.len() - signature_len(token);
    Ok(Decoded {
        alg,
        kid: header.kid,
        claims,
        signing_input: token.as_bytes().get(..signing_len).unwrap_or_default(),
        signature,
    })
}

/// The length of the third part plus its leading dot.
fn signature_len(token: &str) -> usize {
    token
        .rfind('.')
        .map_or(token.len(), |dot| token.len() - dot)
}

impl Decoded<'_> {
    /// Checks the signature with the first key that fits the token's `kid` and `alg`
    /// and verifies it. Without a `kid`, every fitting key is tried (as Envoy does).
    pub(crate) fn verify<'k>(&self, keys: &'k [Key]) -> Result<&'k Key, TokenError> {
        let mut fitting = keys
            .iter()
            .filter(|k| k.accepts(self.alg, self.kid.as_deref()))
            .peekable();
        if fitting.peek().is_none() {
            return Err(TokenError::NoKey);
        }
        fitting
            .find(|key| verify(self.alg, &key.material, self.signing_input, &self.signature))
            .ok_or(TokenError::BadSignature)
    }
}

/// One signature check. The caller has matched `alg` to the key type.
pub(crate) fn verify(alg: Algorithm, key: &KeyMaterial, message: &[u8], signature: &[u8]) -> bool {
    use Algorithm::*;
    match (alg, key) {
        (Rs256, KeyMaterial::Rsa(k)) => {
            k.verify_pkcs1v15::<Sha256>(rsa::SHA256_PREFIX, message, signature)
        }
        (Rs384, KeyMaterial::Rsa(k)) => {
            k.verify_pkcs1v15::<Sha384>(rsa::SHA384_PREFIX, message, signature)
        }
        (Rs512, KeyMaterial::Rsa(k)) => {
            k.verify_pkcs1v15::<Sha512>(rsa::SHA512_PREFIX, message, signature)
        }
        (Ps256, KeyMaterial::Rsa(k)) => k.verify_pss::<Sha256>(message, signature),
        (Ps384, KeyMaterial::Rsa(k)) => k.verify_pss::<Sha384>(message, signature),
        (Ps512, KeyMaterial::Rsa(k)) => k.verify_pss::<Sha512>(message, signature),
        (Es256, KeyMaterial::P256(k)) => {
            use p256::ecdsa::signature::Verifier;
            p256::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|s| k.verify(message, &s).is_ok())
        }
        (Es384, KeyMaterial::P384(k)) => {
            use p384::ecdsa::signature::Verifier;
            p384::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|s| k.verify(message, &s).is_ok())
        }
        (EdDsa, KeyMaterial::Ed25519(k)) => ed25519_dalek::Signature::from_slice(signature)
            .is_ok_and(|s| k.verify_strict(message, &s).is_ok()),
        (Hs256, KeyMaterial::Oct(secret)) => hmac_ok::<Hmac<Sha256>>(secret, message, signature),
        (Hs384, KeyMaterial::Oct(secret)) => hmac_ok::<Hmac<Sha384>>(secret, message, signature),
        (Hs512, KeyMaterial::Oct(secret)) => hmac_ok::<Hmac<Sha512>>(secret, message, signature),
        _ => false,
    }
}

/// HMAC comparison in constant time (`verify_slice`), so the tag cannot be guessed byte
/// by byte from response times.
fn hmac_ok<M: Mac + hmac::digest::KeyInit>(secret: &[u8], message: &[u8], tag: &[u8]) -> bool {
    match <M as hmac::digest::KeyInit>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(message);
            mac.verify_slice(tag).is_ok()
        }
        Err(_) => false,
    }
}

/// What a provider requires of a verified token's claims.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClaimRules {
    pub issuer: Option<String>,
    /// Any one of these in `aud`; empty means `aud` is not checked.
    pub audiences: Vec<String>,
    /// Allowed clock difference for `exp`, `nbf` and `iat`, in seconds.
    pub leeway: u64,
    /// Refuse a token without `exp`: it would be valid forever (`require_expiration`).
    pub require_expiration: bool,
    /// The most seconds a token may still be valid for (`max_lifetime`): `exp` at most
    /// this far ahead of now (plus the leeway). Implies `require_expiration`.
    pub max_lifetime: Option<u64>,
}

impl ClaimRules {
    /// The issuer check, done before the signature so a token from another issuer never
    /// costs a verification.
    pub(crate) fn issuer(&self, claims: &Map<String, Value>) -> Result<(), TokenError> {
        match &self.issuer {
            Some(issuer) if claims.get("iss").and_then(Value::as_str) != Some(issuer) => {
                Err(TokenError::Issuer)
            }
            _ => Ok(()),
        }
    }

    /// The checks that depend on the time or the audience; cheap, so repeated on every
    /// use of a cached token.
    pub(crate) fn current(&self, claims: &Map<String, Value>, now: u64) -> Result<(), TokenError> {
        let time = |name: &str| -> Result<Option<u64>, TokenError> {
            match claims.get(name) {
                None => Ok(None),
                // Fractions are allowed by RFC 7519 (NumericDate); negative times are not.
                Some(Value::Number(n)) => n
                    .as_u64()
                    .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
                    .map(Some)
                    .ok_or(TokenError::TimeClaim),
                Some(_) => Err(TokenError::TimeClaim),
            }
        };
        match time("exp")? {
            Some(exp) if exp.saturating_add(self.leeway) <= now => return Err(TokenError::Expired),
            Some(exp)
                if self.max_lifetime.is_some_and(|max| {
                    exp > now.saturating_add(max).saturating_add(self.leeway)
                }) =>
            {
                return Err(TokenError::LifetimeTooLong)
            }
            Some(_) => {}
            None if self.require_expiration || self.max_lifetime.is_some() => {
                return Err(TokenError::NoExpiration)
            }
            None => {}
        }
        let future = |t: u64| t > now.saturating_add(self.leeway);
        if time("nbf")?.is_some_and(future) || time("iat")?.is_some_and(future) {
            return Err(TokenError::NotYetValid);
        }
        if !self.audiences.is_empty() {
            let named = |aud: &str| self.audiences.iter().any(|a| a == aud);
            let ok = match claims.get("aud") {
                Some(Value::String(aud)) => named(aud),
                Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).any(named),
                _ => false,
            };
            if !ok {
                return Err(TokenError::Audience);
            }
        }
        Ok(())
    }
}

/// The scopes a token grants: `scope` (space-separated, RFC 8693 §4.2) or `scp` (a string
/// or an array, as some issuers write it).
pub(crate) fn scopes(claims: &Map<String, Value>) -> Vec<String> {
    let split = |s: &str| {
        s.split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    match (claims.get("scope"), claims.get("scp")) {
        (Some(Value::String(s)), _) | (None, Some(Value::String(s))) => split(s),
        (None, Some(Value::Array(items))) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}
