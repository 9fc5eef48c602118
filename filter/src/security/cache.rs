//! The per-VM cache of verified tokens.
//!
//! A cold signature check costs hundreds of microseconds in wasm, and clients send the
//! same token on every request until it expires. The cache remembers a token whose
//! signature and issuer a provider verified, with its claims; a hit skips the signature.
//! Time and audience claims are re-checked on every hit, so an entry never outlives the
//! token's `exp`.
//!
//! Keyed by the token itself, as Envoy's `jwt_authn` cache is: a hit compares the whole
//! token, so no digest collision can pass a token that was never verified, and none has
//! to be computed (SHA-256 of a typical token cost more in wasm than the rest of a cached
//! check). The map's hasher is std's SipHash with a per-VM random key, so a client
//! cannot choose tokens that collide in the table.
//!
//! Bounded in entries: when full, entries past their `exp` are dropped first; if none
//! are, the whole cache is cleared (simple, and a flood of distinct valid tokens only
//! costs verifications, never memory). Its ceiling is `token_cache_entries` times a
//! token (at most `max_token_bytes`) and its claims. It is per VM (not shared data)
//! because a hit must be cheaper than a host call, and because shared data has no delete.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use serde_json::{Map, Value};

/// Claims of a verified token, shared by the cache and the identity built from them.
pub(crate) type Claims = Rc<Map<String, Value>>;

#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    capacity: usize,
    entries: RefCell<HashMap<Box<str>, Entry>>,
}

#[derive(Debug)]
struct Entry {
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
            entries: RefCell::default(),
        }
    }

    /// The claims of `token` if `provider` verified it.
    pub(crate) fn get(&self, provider: usize, token: &str) -> Option<Claims> {
        let entries = self.entries.try_borrow().ok()?;
        let entry = entries.get(token).filter(|e| e.provider == provider)?;
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
            provider,
            claims,
            expires,
        };
        entries.insert(token.into(), entry);
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
