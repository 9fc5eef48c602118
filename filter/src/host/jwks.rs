//! Remote JWKS: fetched through an Envoy cluster with `dispatch_http_call`, shared by
//! every worker through proxy-wasm shared data, installed into each VM's [`KeyRing`].
//!
//! Driven by the root context's tick, never by a request: keys are fetched when the
//! plugin starts, so the first request does not wait for (or trigger) a fetch.
//!
//! Shared data, per remote provider (two keys, overwritten in place; shared data has no
//! delete, so this is the whole footprint — at most [`MAX_JWKS_BYTES`] plus a few bytes
//! per provider, whatever the traffic):
//! - `apiguard.jwks.<api>.<provider>`: `<fetched at, unix seconds>\n<JWK set JSON>`, the
//!   last set that parsed. Every VM installs it when its CAS changes.
//! - `apiguard.jwks.<api>.<provider>.lease`: the unix second of the last fetch attempt.
//!   A VM fetches only after winning a CAS write on it, and at most once per
//!   [`RETRY_SECONDS`], so N workers make one request, and a down endpoint is retried
//!   at a bounded rate. (The very first write has no CAS to compare, so at start two
//!   workers may both fetch once; harmless.)
//!
//! A fetch is due when no set was ever fetched, when the set is older than the
//! provider's `cache_duration`, or when a token named an unknown `kid` (rotation) and the
//! set is older than [`REFETCH_SECONDS`]. A failed fetch changes nothing: the previous
//! (stale) set keeps verifying tokens until a fetch succeeds.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel};

use super::events::{self, Emitter};
use super::metrics::{counter, increment};
use super::{call_status, log, since_epoch};
use crate::events::{Event, Severity, JWKS_FETCH_FAILED};
use crate::policy::Policy;
use crate::security::jwks::KeySet;
use crate::security::{KeyRing, Remote};

/// How often the root context looks at shared data and due fetches.
pub(super) const TICK: Duration = Duration::from_millis(500);
/// The least time between two fetch attempts of one provider, across all workers.
const RETRY_SECONDS: u64 = 2;
/// The least age of a set before an unknown `kid` may trigger a refetch.
const REFETCH_SECONDS: u64 = 10;
/// Larger JWKS responses are refused (a set of a few dozen RSA keys is ~20 KiB).
const MAX_JWKS_BYTES: usize = 64 * 1024;

pub(super) struct Jwks {
    policy: Rc<Policy>,
    /// Where fetched sets are installed, and which providers asked for a refetch.
    ring: Rc<KeyRing>,
    /// Per provider of the policy: the CAS of the shared value this VM read last, and the
    /// set it installed (a refresh that brings the same set installs nothing, so the
    /// token cache survives it).
    installed: Vec<(Option<u32>, String)>,
    /// Fetches in flight: call token → provider index.
    pending: HashMap<u32, usize>,
    fetched: Option<u32>,
    failed: Option<u32>,
    /// A failed fetch is a security event: without keys, tokens cannot be checked.
    events: Rc<Emitter>,
}

impl Jwks {
    /// `None` when the policy has no remote key set.
    pub(super) fn new(policy: Rc<Policy>, ring: Rc<KeyRing>, events: Rc<Emitter>) -> Option<Jwks> {
        let providers = &policy.security.providers;
        if providers.iter().all(|p| p.remote.is_none()) {
            return None;
        }
        let installed = vec![(None, String::new()); providers.len()];
        Some(Jwks {
            policy,
            ring,
            installed,
            pending: HashMap::new(),
            fetched: counter("apiguard.jwks.fetch_succeeded"),
            failed: counter("apiguard.jwks.fetch_failed"),
            events,
        })
    }

    pub(super) fn on_tick(&mut self) {
        let now = now();
        let policy = Rc::clone(&self.policy);
        for (index, provider) in policy.security.providers.iter().enumerate() {
            let Some(remote) = &provider.remote else {
                continue;
            };
            let key = self.key(&provider.name);
            let fetched_at = self.install_shared(index, &key);
            let due = match fetched_at {
                None => true,
                Some(at) => {
                    let age = now.saturating_sub(at);
                    age >= remote.cache_duration
                        || (age >= REFETCH_SECONDS && self.ring.take_refetch(index))
                }
            };
            if due && !self.pending.values().any(|p| *p == index) && lease(&key, now) {
                self.dispatch(index, &provider.name, remote);
            }
        }
    }

    /// Installs the shared set when it changed since this VM last did; returns when it
    /// was fetched.
    fn install_shared(&mut self, index: usize, key: &str) -> Option<u64> {
        let (Some(bytes), cas) = hostcalls::get_shared_data(key).ok()? else {
            return None;
        };
        let text = std::str::from_utf8(&bytes).ok()?;
        let (at, set) = text.split_once('\n')?;
        if self.installed.get(index)?.0 != cas {
            // Only sets that parsed are ever stored, so this parses.
            if let Ok(keys) = KeySet::parse(set) {
                self.install(index, cas, set, keys);
            }
        }
        at.parse().ok()
    }

    fn install(&mut self, index: usize, cas: Option<u32>, text: &str, keys: KeySet) {
        let Some((seen, installed)) = self.installed.get_mut(index) else {
            return;
        };
        *seen = cas;
        if installed != text {
            text.clone_into(installed);
            self.ring.install_keys(index, Rc::new(keys));
        }
    }

    fn dispatch(&mut self, index: usize, name: &str, remote: &Remote) {
        let headers = vec![
            (":method", "GET"),
            (":path", remote.path.as_str()),
            (":authority", remote.authority.as_str()),
            ("accept", "application/json"),
        ];
        let timeout = Duration::from_millis(remote.timeout_ms);
        match hostcalls::dispatch_http_call(&remote.cluster, headers, None, vec![], timeout) {
            Ok(token) => {
                self.pending.insert(token, index);
            }
            Err(status) => self.failed(&format!(
                "JWKS of provider `{name}`: cannot call cluster `{}`: {status:?}",
                remote.cluster
            )),
        }
    }

    /// A fetch's answer, with `headers` headers (other call tokens are not ours and
    /// ignored).
    pub(super) fn on_response(&mut self, token: u32, headers: usize, body_size: usize) {
        let Some(index) = self.pending.remove(&token) else {
            return;
        };
        let policy = Rc::clone(&self.policy);
        let Some(provider) = policy.security.providers.get(index) else {
            return;
        };
        let status = call_status(headers);
        let body = if body_size > MAX_JWKS_BYTES {
            None
        } else {
            hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
                .ok()
                .flatten()
        };
        let parsed = match (status, body) {
            (Some(200), Some(body)) => String::from_utf8(body)
                .map_err(|_| "the body is not UTF-8".to_owned())
                .and_then(|text| {
                    KeySet::parse(&text)
                        .map(|keys| (text, keys))
                        .map_err(|e| e.to_string())
                }),
            (Some(200), None) => Err(format!("no body, or more than {MAX_JWKS_BYTES} bytes")),
            (Some(status), _) => Err(format!("status {status}")),
            (None, _) => Err(
                "no answer (the call was reset, or its answer was over Envoy's \
                 buffer limit)"
                    .to_owned(),
            ),
        };
        match parsed {
            Ok((text, keys)) => {
                increment(self.fetched);
                let count = keys.keys.len();
                let value = format!("{}\n{text}", now());
                let key = self.key(&provider.name);
                if let Err(status) = hostcalls::set_shared_data(&key, Some(value.as_bytes()), None)
                {
                    log(
                        LogLevel::Warn,
                        &format!("cannot share the JWKS of `{}`: {status:?}", provider.name),
                    );
                }
                // Installed here at once; other VMs pick it up on their next tick.
                let cas = hostcalls::get_shared_data(&key)
                    .ok()
                    .and_then(|(_, cas)| cas);
                self.install(index, cas, &text, keys);
                log(
                    LogLevel::Info,
                    &format!("JWKS of provider `{}` fetched: {count} keys", provider.name),
                );
            }
            Err(reason) => self.failed(&format!(
                "JWKS of provider `{}` not fetched ({reason}); keeping the keys it had",
                provider.name
            )),
        }
    }

    /// Counts a failed fetch and reports it as an event (logged at the policy's event
    /// level, and delivered). `detail` names the provider and the cause, from the policy
    /// and the key server, never from a request.
    fn failed(&self, detail: &str) {
        increment(self.failed);
        let event = Event::system(
            &self.policy.events,
            events::now_ms(),
            JWKS_FETCH_FAILED,
            Severity::Medium,
            detail,
        );
        self.events.emit(&self.policy, &event);
    }

    fn key(&self, provider: &str) -> String {
        format!("apiguard.jwks.{}.{provider}", self.policy.name)
    }
}

/// Claims the right to fetch now: at most one attempt per [`RETRY_SECONDS`] across all
/// VMs, decided by a CAS write on the lease key.
fn lease(key: &str, now: u64) -> bool {
    let lease_key = format!("{key}.lease");
    let Ok((value, cas)) = hostcalls::get_shared_data(&lease_key) else {
        return false;
    };
    let last: u64 = value
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if last != 0 && now.saturating_sub(last) < RETRY_SECONDS {
        return false;
    }
    hostcalls::set_shared_data(&lease_key, Some(now.to_string().as_bytes()), cas).is_ok()
}

/// Unix seconds from the host's clock; 0 if the host cannot tell (then every set looks
/// fresh-fetched at 0 and old, so fetches are attempted rather than skipped).
fn now() -> u64 {
    since_epoch().as_secs()
}
