//! API keys (OpenAPI `apiKey` schemes), stored in the policy only as SHA-256 hashes.
//!
//! A leaked policy then does not leak keys. A presented key is hashed and compared with
//! every stored hash in constant time, and the loop does not stop at a match, so neither
//! the position nor a prefix of a valid hash can be learnt from response times.

use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

/// One accepted key: its hash, who it belongs to, and what it may do.
#[derive(Debug, Clone)]
pub(crate) struct ApiKey {
    pub sha256: [u8; 32],
    pub consumer: String,
    pub scopes: Vec<String>,
}

/// Parses a lowercase or uppercase hex SHA-256 digest.
pub(crate) fn parse_hash(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let hi = crate::contract::percent::hex_value(pair.first().copied()?)?;
        let lo = crate::contract::percent::hex_value(pair.get(1).copied()?)?;
        *slot = hi << 4 | lo;
    }
    Some(out)
}

/// The key whose hash matches `presented`, compared in constant time.
pub(crate) fn find<'k>(keys: &'k [ApiKey], presented: &str) -> Option<&'k ApiKey> {
    let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    let mut found = 0u32;
    for (index, key) in keys.iter().enumerate() {
        let hit = key.sha256.ct_eq(&digest);
        // Index + 1 so that 0 keeps meaning "none"; more keys than u32 cannot be compiled.
        let candidate = u32::try_from(index).unwrap_or(u32::MAX).saturating_add(1);
        found.conditional_assign(&candidate, hit);
    }
    found
        .checked_sub(1)
        .and_then(|i| keys.get(usize::try_from(i).ok()?))
}
