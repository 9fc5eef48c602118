//! The keys, JWKS and JWTs the benchmark requests carry, made with the `openssl` command
//! so the bench needs no crypto crate. One key per JWS algorithm of [`ALGORITHMS`]: RS256's
//! is the one every headline request carries (Envoy's `jwt_authn`, configuration 3,
//! verifies it; apiguard's configurations carry it too, so every configuration sees the
//! same request bytes); the others exist for the cold per-algorithm scenarios, which
//! measure each algorithm's verification inside the VM.

use std::fmt;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

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

    /// Lower-case name: scenario ids, key ids and file names.
    pub fn slug(self) -> String {
        self.name().to_ascii_lowercase()
    }

    /// The key's file in the scratch directory (PEM; the raw secret for HMAC).
    fn key_file(self) -> String {
        format!("{}.key", self.slug())
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
    /// Generates every algorithm's key in `dir` and signs one token with each.
    pub fn generate(dir: &Path) -> Result<Keys, BenchError> {
        let per_algorithm = ALGORITHMS
            .iter()
            .map(|&algorithm| Credentials::generate(dir, algorithm))
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
    /// Generates a key for `algorithm` in `dir` and signs one token with it. The claims
    /// are the same for every algorithm, so the policies differ only in their key.
    pub fn generate(dir: &Path, algorithm: Algorithm) -> Result<Credentials, BenchError> {
        let kid = format!("bench-{}", algorithm.slug());
        let mut jwk = public_jwk(dir, algorithm)?;
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
        let signature = sign(dir, algorithm, signing_input.as_bytes())?;
        Ok(Credentials {
            algorithm,
            jwks,
            token: format!("{signing_input}.{}", base64url(&signature)),
        })
    }
}

/// Makes `algorithm`'s key in its file in `dir` and returns the public JWK (the secret
/// for HMAC), without `kid`, `alg` and `use`.
fn public_jwk(dir: &Path, algorithm: Algorithm) -> Result<Value, BenchError> {
    let file = algorithm.key_file();
    match algorithm {
        Algorithm::Rs256 | Algorithm::Ps256 => {
            openssl(
                dir,
                &[
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                    "-out",
                    &file,
                ],
                None,
            )?;
            Ok(json!({"kty": "RSA", "n": base64url(&rsa_modulus(dir, &file)?), "e": "AQAB"}))
        }
        Algorithm::Es256 => ec_jwk(dir, &file, "P-256", 32),
        Algorithm::Es384 => ec_jwk(dir, &file, "P-384", 48),
        Algorithm::EdDsa => {
            openssl(
                dir,
                &["genpkey", "-algorithm", "ed25519", "-out", &file],
                None,
            )?;
            let x = public_der_tail(dir, &file, 32)?;
            Ok(json!({"kty": "OKP", "crv": "Ed25519", "x": base64url(&x)}))
        }
        Algorithm::Hs256 => {
            // 32 bytes: HS256's hash size, the least apiguard accepts (RFC 7518 §3.2).
            openssl(dir, &["rand", "-out", &file, "32"], None)?;
            Ok(json!({"kty": "oct", "k": base64url(&read(dir, &file)?)}))
        }
    }
}

/// The modulus of the RSA key in `file`.
fn rsa_modulus(dir: &Path, file: &str) -> Result<Vec<u8>, BenchError> {
    let printed = openssl(dir, &["rsa", "-noout", "-modulus", "-in", file], None)?;
    let modulus = String::from_utf8_lossy(&printed)
        .trim()
        .strip_prefix("Modulus=")
        .map(str::to_owned)
        .ok_or_else(|| BenchError::Tool("openssl rsa -modulus printed no modulus".into()))?;
    hex_decode(&modulus)
        .ok_or_else(|| BenchError::Tool("openssl printed a modulus that is not hex".into()))
}

/// An EC key on the NIST curve `crv` (coordinates of `size` bytes) in `file`, as a JWK.
fn ec_jwk(dir: &Path, file: &str, crv: &str, size: usize) -> Result<Value, BenchError> {
    let curve = format!("ec_paramgen_curve:{crv}");
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            &curve,
            "-out",
            file,
        ],
        None,
    )?;
    // The public key's DER ends with the uncompressed point: 0x04, x, y.
    let point = public_der_tail(dir, file, 1 + 2 * size)?;
    match point.split_first() {
        Some((0x04, xy)) => {
            let (x, y) = xy.split_at(size);
            Ok(json!({"kty": "EC", "crv": crv, "x": base64url(x), "y": base64url(y)}))
        }
        _ => Err(BenchError::Tool(format!(
            "openssl's {crv} public key does not end with an uncompressed point"
        ))),
    }
}

/// The last `len` bytes of the DER public key of the private key in `file`: where the
/// raw key sits for EC and Ed25519 keys.
fn public_der_tail(dir: &Path, file: &str, len: usize) -> Result<Vec<u8>, BenchError> {
    let der = openssl(
        dir,
        &["pkey", "-pubout", "-outform", "DER", "-in", file],
        None,
    )?;
    der.len()
        .checked_sub(len)
        .and_then(|start| der.get(start..))
        .map(<[u8]>::to_vec)
        .ok_or_else(|| BenchError::Tool(format!("openssl's public key of {file} is too short")))
}

/// The JWS signature of `input` with `algorithm`'s key in `dir`.
fn sign(dir: &Path, algorithm: Algorithm, input: &[u8]) -> Result<Vec<u8>, BenchError> {
    let file = algorithm.key_file();
    match algorithm {
        Algorithm::Rs256 => openssl(dir, &["dgst", "-sha256", "-sign", &file], Some(input)),
        // JWS PS256: MGF1 with SHA-256 and a salt as long as the hash (RFC 7518 §3.5).
        Algorithm::Ps256 => openssl(
            dir,
            &[
                "dgst",
                "-sha256",
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:32",
                "-sign",
                &file,
            ],
            Some(input),
        ),
        Algorithm::Es256 => ecdsa(dir, &file, "-sha256", 32, input),
        Algorithm::Es384 => ecdsa(dir, &file, "-sha384", 48, input),
        Algorithm::EdDsa => {
            // `pkeyutl -rawin` signs a whole message, which it reads from a file.
            let message = "eddsa-signing-input";
            std::fs::write(dir.join(message), input)
                .map_err(|e| BenchError::Tool(format!("writing {message}: {e}")))?;
            openssl(
                dir,
                &[
                    "pkeyutl", "-sign", "-rawin", "-inkey", &file, "-in", message,
                ],
                None,
            )
        }
        Algorithm::Hs256 => {
            let key = format!("hexkey:{}", hex_encode(&read(dir, &file)?));
            openssl(
                dir,
                &[
                    "dgst", "-sha256", "-mac", "HMAC", "-macopt", &key, "-binary",
                ],
                Some(input),
            )
        }
    }
}

/// An ECDSA signature in JWS form (r and s, `size` bytes each), from openssl's DER.
fn ecdsa(
    dir: &Path,
    file: &str,
    digest: &str,
    size: usize,
    input: &[u8],
) -> Result<Vec<u8>, BenchError> {
    let der = openssl(dir, &["dgst", digest, "-sign", file], Some(input))?;
    ecdsa_der_to_jws(&der, size).ok_or_else(|| {
        BenchError::Tool("openssl printed an ECDSA signature that is not DER".into())
    })
}

/// JWS wants `r || s`, each left-padded to the curve size (RFC 7518 §3.4); openssl gives
/// `SEQUENCE { INTEGER r, INTEGER s }`, whose integers drop leading zeros and gain one
/// when their top bit is set.
fn ecdsa_der_to_jws(der: &[u8], size: usize) -> Option<Vec<u8>> {
    let (sequence, rest) = der_element(der, 0x30)?;
    if !rest.is_empty() {
        return None;
    }
    let (r, after_r) = der_element(sequence, 0x02)?;
    let (s, after_s) = der_element(after_r, 0x02)?;
    if !after_s.is_empty() {
        return None;
    }
    let mut jws = Vec::with_capacity(2 * size);
    for integer in [r, s] {
        let significant = integer
            .iter()
            .position(|&b| b != 0)
            .and_then(|start| integer.get(start..))
            .unwrap_or_default();
        let padding = size.checked_sub(significant.len())?;
        jws.extend(std::iter::repeat_n(0, padding));
        jws.extend_from_slice(significant);
    }
    Some(jws)
}

/// The contents of the DER element with `tag` at the start of `bytes`, and what follows
/// it. Lengths up to 255 (short form or `0x81`): an ECDSA signature's are.
fn der_element(bytes: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&found, rest) = bytes.split_first()?;
    if found != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        0x00..=0x7f => (usize::from(first), rest),
        0x81 => {
            let (&len, rest) = rest.split_first()?;
            (usize::from(len), rest)
        }
        _ => return None,
    };
    rest.split_at_checked(len)
}

fn read(dir: &Path, file: &str) -> Result<Vec<u8>, BenchError> {
    std::fs::read(dir.join(file)).map_err(|e| BenchError::Tool(format!("reading {file}: {e}")))
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

/// Runs `openssl ARGS` in `dir` (so file arguments are names in it) with `input` on
/// stdin, and returns its stdout.
fn openssl(dir: &Path, args: &[&str], input: Option<&[u8]>) -> Result<Vec<u8>, BenchError> {
    let mut child = Command::new("openssl")
        .args(args)
        .current_dir(dir)
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

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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

    #[test]
    fn hex_decodes_pairs_and_refuses_odd_lengths() {
        assert_eq!(hex_decode("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(hex_decode("abc"), None);
        assert_eq!(hex_decode("zz"), None);
        assert_eq!(hex_encode(&[0, 255, 16]), "00ff10");
    }

    #[test]
    fn ecdsa_der_becomes_fixed_width_r_and_s() {
        // r with a sign byte (top bit set), s shorter than the curve size.
        let mut r = vec![0x80];
        r.extend([0x11; 31]);
        let mut der = vec![0x30, 2 + 33 + 2 + 2, 0x02, 33, 0x00];
        der.extend(&r);
        der.extend([0x02, 2, 0x01, 0x02]);
        let mut expected = r;
        expected.extend([0; 30]);
        expected.extend([0x01, 0x02]);
        assert_eq!(ecdsa_der_to_jws(&der, 32), Some(expected));
        // Long-form length (P-384 sizes can need it), and what is not a signature.
        let long = [0x30, 0x81, 6, 0x02, 1, 7, 0x02, 1, 9];
        let mut jws = vec![0; 48 * 2];
        jws[47] = 7;
        jws[95] = 9;
        assert_eq!(ecdsa_der_to_jws(&long, 48), Some(jws));
        assert_eq!(ecdsa_der_to_jws(&der[..10], 32), None);
        assert_eq!(ecdsa_der_to_jws(&[0x31, 0], 32), None);
        assert_eq!(ecdsa_der_to_jws(&[0x30, 2, 0x02, 33], 32), None);
    }
}
