//! The per-VM cache of verified tokens.
//!
//! A cold signature check costs hundreds of microseconds in wasm, and clients send the
//! same token on every request until it expires. The cache remembers a token whose
//! signature and issuer a provider verified, with its claims; a hit skips the signature.
//! Time and audience claims are re-checked on every hit, so an entry never outlives the
//! token's `exp`.
//!
//! Keyed by the token's SipHash under a per-VM random key (std's `RandomState`), and a hit
//! still compares the whole token, so no collision can pass a token that was never
//! verified (SHA-256 of a typical token cost more in wasm than the rest of a cached
//! check). A client cannot choose tokens that collide, and the comparison runs only on a
//! 64-bit match, so it tells nothing about a token the client does not already hold. It
//! compares eight bytes at a time: the C library's `memcmp` in wasm goes byte by byte,
//! and a kilobyte of token that way was a third of a cached check in V8 (`make
//! vm-profile`).
//!
//! Bounded in entries: when full, entries past their `exp` are dropped first; if none
//! are, the whole cache is cleared (simple, and a flood of distinct valid tokens only
//! costs verifications, never memory). Its ceiling is `token_cache_entries` times a
//! token (at most `max_token_bytes`) and its claims. It is per VM (not shared data)
//! because a hit must be cheaper than a host call, and because shared data has no delete.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::rc::Rc;

use serde_json::{Map, Value};

/// Claims of a verified token, shared by the cache and the identity built from them.
pub(crate) type Claims = Rc<Map<String, Value>>;

#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    capacity: usize,
    /// The key of the tokens' hashes.
    keys: RandomState,
    /// By the token's hash.
    entries: RefCell<HashMap<u64, Entry>>,
}

#[derive(Debug)]
struct Entry {
    token: Box<str>,
    /// The provider that verified the token (an index into the policy's providers).
    provider: usize,
    claims: Claims,
    /// `exp` in seconds, `u64::MAX` when the token has none.
    expires: u64,
}

impl TokenCache {
    pub(crate) fn new(capacity: usize) -> TokenCache {
        TokenCache {
            capacity,
            keys: RandomState::new(),
            entries: RefCell::default(),
        }
    }

    /// The claims of `token` if `provider` verified it.
    pub(crate) fn get(&self, provider: usize, token: &str) -> Option<Claims> {
        let entries = self.entries.try_borrow().ok()?;
        let entry = (entries.get(&self.keys.hash_one(token)))
            .filter(|e| e.provider == provider && same(e.token.as_bytes(), token.as_bytes()))?;
        Some(Rc::clone(&entry.claims))
    }

    pub(crate) fn insert(&self, provider: usize, token: &str, claims: Claims, now: u64) {
        if self.capacity == 0 {
            return;
        }
        let Ok(mut entries) = self.entries.try_borrow_mut() else {
            return;
        };
        if entries.len() >= self.capacity {
            entries.retain(|_, e| e.expires > now);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        let expires = claims
            .get("exp")
            .and_then(Value::as_u64)
            .unwrap_or(u64::MAX);
        let entry = Entry {
            token: token.into(),
            provider,
            claims,
            expires,
        };
        entries.insert(self.keys.hash_one(token), entry);
    }

    /// Forgets every token: after a key rotation, a token signed with a retired key must
    /// be verified (and refused) again.
    pub(crate) fn clear(&self) {
        if let Ok(mut entries) = self.entries.try_borrow_mut() {
            entries.clear();
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.try_borrow().map_or(0, |e| e.len())
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `a == b`, a word at a time.
fn same(a: &[u8], b: &[u8]) -> bool {
    let (words_a, words_b) = (a.chunks_exact(8), b.chunks_exact(8));
    let word = |bytes: &[u8]| <[u8; 8]>::try_from(bytes).map_or(0, u64::from_ne_bytes);
    a.len() == b.len()
        && words_a.remainder() == words_b.remainder()
        && words_a.zip(words_b).all(|(x, y)| word(x) == word(y))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Claims {
        let mut map = Map::new();
        map.insert("exp".into(), Value::from(exp));
        Rc::new(map)
    }

    #[test]
    fn a_hit_needs_the_same_token_and_provider() {
        let cache = TokenCache::new(4);
        cache.insert(0, "header.payload.signature", claims(100), 10);
        assert!(cache.get(0, "header.payload.signature").is_some());
        assert!(cache.get(1, "header.payload.signature").is_none());
        assert!(cache.get(0, "header.payload.signaturf").is_none());
        assert!(cache.get(0, "header.payload.signatur").is_none());
    }

    #[test]
    fn tokens_compare_a_word_at_a_time_and_byte_for_byte() {
        let token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl";
        assert!(same(token.as_bytes(), token.as_bytes()));
        for at in 0..token.len() {
            let mut changed = token.as_bytes().to_vec();
            changed[at] ^= 1;
            assert!(!same(token.as_bytes(), &changed), "byte {at}");
        }
        assert!(!same(b"12345678", b"123456789"));
        assert!(same(b"", b""));
    }

    #[test]
    fn a_full_cache_drops_expired_entries_first_then_everything() {
        let cache = TokenCache::new(2);
        cache.insert(0, "expired", claims(5), 1);
        cache.insert(0, "live", claims(100), 1);
        cache.insert(0, "new", claims(100), 10);
        assert!(cache.get(0, "expired").is_none());
        assert!(cache.get(0, "live").is_some() && cache.get(0, "new").is_some());
        cache.insert(0, "newer", claims(100), 10);
        assert_eq!(cache.len(), 1);
        assert!(cache.get(0, "newer").is_some());
        assert!(TokenCache::new(0).is_empty());
    }
}
