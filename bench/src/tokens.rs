//! The RS256 key, JWKS and JWT every benchmark request carries, made with the `openssl`
//! command so the bench needs no crypto crate. Envoy's `jwt_authn` (configuration 3)
//! verifies the token; apiguard's configurations carry it too, so every configuration
//! sees the same request bytes.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::BenchError;

/// The claims a JWT check is configured to require.
pub const ISSUER: &str = "https://issuer.bench.apiguard.invalid";
pub const AUDIENCE: &str = "bench";
const KEY_ID: &str = "bench-rs256";

/// A signing key and what is published and presented with it.
pub struct Credentials {
    /// The public key as a JWKS document (JSON text), for `local_jwks`.
    pub jwks: String,
    /// A signed RS256 JWT, valid for a day.
    pub token: String,
}

impl Credentials {
    /// Generates a 2048-bit RSA key in `dir` and signs one token with it.
    pub fn generate(dir: &Path) -> Result<Credentials, BenchError> {
        let key = dir.join("rs256.pem");
        openssl(
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
            ],
            Some(&key),
            None,
        )?;
        let modulus = String::from_utf8_lossy(&openssl(
            &["rsa", "-noout", "-modulus", "-in"],
            Some(&key),
            None,
        )?)
        .trim()
        .strip_prefix("Modulus=")
        .map(str::to_owned)
        .ok_or_else(|| BenchError::Tool("openssl rsa -modulus printed no modulus".into()))?;
        let modulus = hex_decode(&modulus)
            .ok_or_else(|| BenchError::Tool("openssl printed a modulus that is not hex".into()))?;
        let jwks = json!({"keys": [{
            "kty": "RSA", "alg": "RS256", "use": "sig", "kid": KEY_ID,
            "n": base64url(&modulus), "e": "AQAB",
        }]})
        .to_string();

        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": KEY_ID});
        let claims = json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": "bench-client",
            "iat": now, "exp": now + 86_400, "scope": "issues:read issues:write",
        });
        let signing_input = format!(
            "{}.{}",
            base64url(header.to_string().as_bytes()),
            base64url(claims.to_string().as_bytes())
        );
        let signature = openssl(
            &["dgst", "-sha256", "-sign"],
            Some(&key),
            Some(signing_input.as_bytes()),
        )?;
        Ok(Credentials {
            jwks,
            token: format!("{signing_input}.{}", base64url(&signature)),
        })
    }
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

/// Runs `openssl ARGS FILE` with `input` on stdin and returns its stdout.
fn openssl(
    args: &[&str],
    file: Option<&Path>,
    input: Option<&[u8]>,
) -> Result<Vec<u8>, BenchError> {
    let mut command = Command::new("openssl");
    command.args(args);
    if let Some(file) = file {
        command.arg(file);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            BenchError::Tool(format!(
                "cannot run openssl (apt-get install -y openssl): {e}"
            ))
        })?;
    if let (Some(mut stdin), Some(input)) = (child.stdin.take(), input) {
        stdin
            .write_all(input)
            .map_err(|e| BenchError::Tool(format!("writing to openssl: {e}")))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| BenchError::Tool(format!("waiting for openssl: {e}")))?;
    if !output.status.success() {
        return Err(BenchError::Tool(format!(
            "openssl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(output.stdout)
}

fn hex_decode(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 {
        return None;
    }
    hex.as_bytes()
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

/// Unpadded base64url (RFC 7515 section 2).
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_matches_rfc4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64url(input.as_bytes()), expected);
        }
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn placeholders_are_filled_wherever_they_are() {
        let credentials = Credentials {
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

    #[test]
    fn hex_decodes_pairs_and_refuses_odd_lengths() {
        assert_eq!(hex_decode("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(hex_decode("abc"), None);
        assert_eq!(hex_decode("zz"), None);
    }
}
