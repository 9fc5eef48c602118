//! What the token checks learn while a policy serves, per VM: the key sets fetched for
//! remote providers, the tokens already verified (the [`TokenCache`]), and which providers
//! asked for a refetch. The filter root owns one per configured policy and lends it to
//! each request's exchange, so the compiled [`Security`] never changes. One VM runs one
//! thread, hence `RefCell` and `Cell`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use super::cache::TokenCache;
use super::jwks::KeySet;
use super::Security;

/// The run-time state of a policy's token checks (see the module's documentation).
#[derive(Debug)]
pub struct KeyRing {
    /// Per provider: the key set the host fetched; `None` until then (and always for
    /// providers with local keys, which the policy holds).
    fetched: Vec<RefCell<Option<Rc<KeySet>>>>,
    /// Per provider: a token named a `kid` the keys do not have, so the host refetches
    /// (rate-limited), since the issuer may have rotated.
    refetch: Vec<Cell<bool>>,
    cache: TokenCache,
}

impl KeyRing {
    /// An empty ring for `security`'s providers: nothing fetched, nothing cached.
    pub fn new(security: &Security) -> KeyRing {
        let providers = security.providers.len();
        KeyRing {
            fetched: (0..providers).map(|_| RefCell::new(None)).collect(),
            refetch: (0..providers).map(|_| Cell::new(false)).collect(),
            cache: TokenCache::new(security.token_cache_entries),
        }
    }

    /// Installs a provider's fetched keys (the host calls this when the fetched set
    /// changed). Cached tokens are forgotten, so none outlives the key that signed it.
    pub fn install_keys(&self, provider: usize, keys: Rc<KeySet>) {
        let slot = self.fetched.get(provider).map(RefCell::try_borrow_mut);
        if let Some(Ok(mut slot)) = slot {
            *slot = Some(keys);
            self.cache.clear();
        }
    }

    /// Whether a token asked for a refetch of the provider's keys; clears the request.
    pub fn take_refetch(&self, provider: usize) -> bool {
        self.refetch.get(provider).is_some_and(|r| r.replace(false))
    }

    /// How many verified tokens the cache holds (for tests and stats).
    pub fn cached_tokens(&self) -> usize {
        self.cache.len()
    }

    pub(super) fn fetched(&self, provider: usize) -> Option<Rc<KeySet>> {
        let slot = self.fetched.get(provider)?.try_borrow().ok()?;
        slot.clone()
    }

    pub(super) fn ask_refetch(&self, provider: usize) {
        if let Some(refetch) = self.refetch.get(provider) {
            refetch.set(true);
        }
    }

    pub(super) fn cache(&self) -> &TokenCache {
        &self.cache
    }
}
