//! The per-VM cache of verified tokens.
//!
//! A cold signature check costs hundreds of microseconds in wasm (RSA-2048 ~170 us, P-256
//! ~280 us), and clients send the same token on every request until it expires. The cache
//! remembers, per provider, the SHA-256 of a token whose signature and issuer were
//! verified, with its claims; a hit skips the signature. Time and audience claims are
//! re-checked on every hit, so an entry never outlives the token's `exp`.
//!
//! Bounded in entries: when full, entries past their `exp` are dropped first; if none
//! are, the whole cache is cleared (simple, and a flood of distinct valid tokens only
//! costs verifications, never memory). It is per VM (not shared data) because a hit must
//! be cheaper than a host call, and because shared data has no delete.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Claims of a verified token, shared by the cache and the identity built from them.
pub type Claims = Rc<Map<String, Value>>;

#[derive(Debug, Default)]
pub struct TokenCache {
    capacity: usize,
    entries: RefCell<HashMap<(usize, [u8; 32]), Entry>>,
}

#[derive(Debug)]
struct Entry {
    claims: Claims,
    /// `exp` in seconds, `u64::MAX` when the token has none.
    expires: u64,
}

impl TokenCache {
    pub fn new(capacity: usize) -> TokenCache {
        TokenCache {
            capacity,
            entries: RefCell::default(),
        }
    }

    pub fn key(provider: usize, token: &str) -> (usize, [u8; 32]) {
        (provider, Sha256::digest(token.as_bytes()).into())
    }

    pub fn get(&self, key: &(usize, [u8; 32])) -> Option<Claims> {
        let entries = self.entries.try_borrow().ok()?;
        entries.get(key).map(|e| Rc::clone(&e.claims))
    }

    pub fn insert(&self, key: (usize, [u8; 32]), claims: Claims, now: u64) {
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
        entries.insert(key, Entry { claims, expires });
    }

    /// Forgets every token: after a key rotation, a token signed with a retired key must
    /// be verified (and refused) again.
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.try_borrow_mut() {
            entries.clear();
        }
    }

    pub fn len(&self) -> usize {
        self.entries.try_borrow().map_or(0, |e| e.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
