//! Rate limits that hold across every worker of an Envoy process.
//!
//! Each limit is governor's GCRA over a [`Table`] of shared-data slots ([`crate::abuse::slots`]):
//! a decision reads the client's slot with its CAS token, lets governor decide, and writes
//! the new theoretical arrival time back with the token, retrying when another worker won
//! the race. So N workers admit what one limit allows, not N times it.
//!
//! A refusal carries the IETF headers of draft-ietf-httpapi-ratelimit-headers
//! (`RateLimit-Policy: "name";q=100;w=60`, `RateLimit: "name";r=0;t=30`) and `Retry-After`.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::StateInformationMiddleware;
use governor::nanos::Nanos;
use governor::state::NotKeyed;
use governor::{Quota, RateLimiter};
use serde::Deserialize;

use crate::abuse::slots::{SharedStore, SlotReport, SlotState, Table};

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// Slots per limit unless the policy says otherwise: 4096 × 16 bytes = 64 KiB of values.
pub(crate) const DEFAULT_SLOTS: u32 = 4096;
/// More slots than this per table would make configure time (every slot is created up
/// front) and memory grow past what a sidecar should hold.
pub(crate) const MAX_SLOTS: u32 = 1 << 16;

/// One limit as the policy writes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RateLimitConfig {
    /// `[a-z0-9_-]`, 1-32 chars: names the limit in headers, stats and shared data.
    pub name: String,
    /// What identifies a client; several sources combine (`[client_ip, {header: x-tenant}]`).
    #[serde(default = "default_key")]
    pub key: Vec<KeySource>,
    #[serde(default)]
    pub scope: Scope,
    /// Requests per window, sustained.
    pub requests: u32,
    pub window_seconds: u32,
    /// Requests admitted at once from a full bucket (default: `requests`).
    pub burst: Option<u32>,
    #[serde(default = "default_slots")]
    pub slots: u32,
}

fn default_key() -> Vec<KeySource> {
    vec![KeySource::ClientIp]
}

fn default_slots() -> u32 {
    DEFAULT_SLOTS
}

/// Where a part of a client's key comes from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum KeySource {
    /// The downstream address, or the configured trusted `X-Forwarded-For` hop.
    ClientIp,
    /// The JWT `sub` of the verified token (filled by the token checks; until then absent).
    Subject,
    /// The API-key consumer (filled by the token checks; until then absent).
    Consumer,
    /// The value of a request header (lowercase name).
    Header(String),
}

/// Which requests share a bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum Scope {
    /// One bucket per client for the whole API.
    #[default]
    Api,
    /// One bucket per client and operation.
    Operation,
    /// One bucket per client for the listed operations (operationId or `METHOD /template`);
    /// other operations are not counted by this limit.
    Group(Vec<String>),
}

/// A compiled limit.
#[derive(Debug)]
pub(crate) struct RateLimit {
    pub name: String,
    pub key: Vec<KeySource>,
    /// The compiled scope: `None` counts every operation, else the operation ids counted.
    pub operations: Option<Vec<usize>>,
    pub per_operation: bool,
    pub quota: Quota,
    pub table: Table,
    /// The `RateLimit-Policy` value, written once: it never changes, and formatting it
    /// for every admitted request was a measurable share of the request path in the VM.
    policy_header: String,
}

/// A limit's answer for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decision {
    pub admitted: bool,
    /// Requests still admitted now (0 when refused).
    pub remaining: u32,
    /// Seconds until a request is admitted again (refused), or until the bucket is full.
    pub reset_seconds: u64,
    pub report: SlotReport,
}

/// governor's clock for one decision: always the instant the host read, so that the
/// limiter made for the decision starts there (see [`SlotState`]).
#[derive(Debug, Clone, Copy)]
struct Anchored;

impl Clock for Anchored {
    type Instant = Nanos;
    fn now(&self) -> Nanos {
        Nanos::from(0)
    }
}

impl RateLimit {
    pub(crate) fn new(
        config: &RateLimitConfig,
        prefix: String,
        operations: Option<Vec<usize>>,
    ) -> Self {
        let requests = NonZeroU32::new(config.requests).unwrap_or(NonZeroU32::MIN);
        let burst = config.burst.and_then(NonZeroU32::new).unwrap_or(requests);
        let window = Duration::from_secs(u64::from(config.window_seconds.max(1)));
        let period = window / requests.get();
        let quota = Quota::with_period(period)
            .unwrap_or(Quota::per_second(requests))
            .allow_burst(burst);
        let policy_header = format!(
            "\"{}\";q={};w={}",
            config.name,
            requests.get(),
            config.window_seconds
        );
        RateLimit {
            name: config.name.clone(),
            key: config.key.clone(),
            per_operation: config.scope == Scope::Operation,
            operations,
            quota,
            table: Table::new(prefix, config.slots),
            policy_header,
        }
    }

    /// Whether this limit counts requests to `operation` (`None`: no operation matched).
    pub(crate) fn applies_to(&self, operation: Option<usize>) -> bool {
        match (&self.operations, operation) {
            (None, _) => true,
            (Some(ids), Some(op)) => ids.contains(&op),
            (Some(_), None) => false,
        }
    }

    /// Counts one request of the client with `fingerprint` at `now` (ns since the epoch).
    pub(crate) fn check<S: SharedStore>(&self, store: &S, fingerprint: u64, now: u64) -> Decision {
        let state = SlotState::new(store, &self.table, fingerprint, now);
        let limiter: RateLimiter<NotKeyed, _, _, StateInformationMiddleware> =
            RateLimiter::new(self.quota, state, Anchored);
        let outcome = limiter.check();
        let report = limiter.into_state_store().report();
        match outcome {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                // Each spent request comes back after one replenish interval.
                let used = u64::from(self.quota.burst_size().get().saturating_sub(remaining));
                let refill = self.quota.replenish_interval().as_nanos();
                let refill = u64::try_from(refill).unwrap_or(u64::MAX);
                Decision {
                    admitted: true,
                    remaining,
                    reset_seconds: ceil_seconds(used.saturating_mul(refill)),
                    report,
                }
            }
            Err(not_until) => Decision {
                admitted: false,
                remaining: 0,
                reset_seconds: ceil_seconds(
                    u64::try_from(not_until.wait_time_from(Nanos::from(0)).as_nanos())
                        .unwrap_or(u64::MAX),
                )
                .max(1),
                report,
            },
        }
    }

    /// `RateLimit-Policy` and `RateLimit` values for a decision.
    pub(crate) fn headers(&self, decision: &Decision) -> [(&'static str, String); 2] {
        [
            ("ratelimit-policy", self.policy_header.clone()),
            (
                "ratelimit",
                format!(
                    "\"{}\";r={};t={}",
                    self.name, decision.remaining, decision.reset_seconds
                ),
            ),
        ]
    }
}

/// Whole seconds, rounded up: a client that waits `Retry-After` must be admitted.
pub(crate) fn ceil_seconds(nanos: u64) -> u64 {
    nanos.div_ceil(NANOS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abuse::slots::MemoryStore;

    const SECOND: u64 = NANOS_PER_SECOND;
    const T0: u64 = 1_700_000_000 * SECOND;

    fn limit(requests: u32, window_seconds: u32, burst: Option<u32>) -> RateLimit {
        let config = RateLimitConfig {
            name: "per-ip".into(),
            key: default_key(),
            scope: Scope::Api,
            requests,
            window_seconds,
            burst,
            slots: 8,
        };
        RateLimit::new(&config, "apiguard.rl.test.per-ip".into(), None)
    }

    fn admitted(limit: &RateLimit, store: &MemoryStore, client: u64, now: u64, n: u32) -> u32 {
        (0..n)
            .filter(|_| limit.check(store, client, now).admitted)
            .count()
            .try_into()
            .unwrap()
    }

    #[test]
    fn a_burst_is_admitted_then_refused_with_the_time_to_wait() {
        let store = MemoryStore::default();
        let l = limit(10, 60, None);
        assert_eq!(admitted(&l, &store, 1, T0, 15), 10);
        let refused = l.check(&store, 1, T0);
        assert_eq!((refused.admitted, refused.remaining), (false, 0));
        assert_eq!(refused.reset_seconds, 6, "one request every 6 s");
        assert_eq!(
            l.headers(&refused),
            [
                ("ratelimit-policy", "\"per-ip\";q=10;w=60".to_owned()),
                ("ratelimit", "\"per-ip\";r=0;t=6".to_owned())
            ]
        );
        assert!(!l.check(&store, 1, T0 + 5 * SECOND).admitted);
        assert!(l.check(&store, 1, T0 + 6 * SECOND).admitted);
        assert_eq!(admitted(&l, &store, 1, T0 + 66 * SECOND, 20), 10);
    }

    #[test]
    fn remaining_counts_down_and_reset_says_when_the_bucket_is_full() {
        let store = MemoryStore::default();
        let l = limit(3, 3, None);
        let first = l.check(&store, 1, T0);
        assert_eq!((first.remaining, first.reset_seconds), (2, 1));
        let second = l.check(&store, 1, T0);
        assert_eq!((second.remaining, second.reset_seconds), (1, 2));
    }

    #[test]
    fn clients_have_their_own_buckets() {
        let store = MemoryStore::default();
        let l = limit(2, 60, None);
        assert_eq!(admitted(&l, &store, 1, T0, 5), 2);
        assert_eq!(admitted(&l, &store, 2, T0, 5), 2);
    }

    #[test]
    fn lost_races_are_retried_so_no_request_goes_uncounted() {
        let store = MemoryStore::default();
        let l = limit(5, 60, None);
        l.table.create(&store);
        store.interfere.set(3);
        let first = l.check(&store, 1, T0);
        assert!(first.admitted && !first.report.lost);
        assert_eq!(store.conflicts.get(), 3);
        assert_eq!(
            admitted(&l, &store, 1, T0, 10),
            4,
            "the first one was counted"
        );
    }

    #[test]
    fn endless_races_lose_the_count_and_say_so() {
        let store = MemoryStore::default();
        let l = limit(5, 60, None);
        l.table.create(&store);
        store.interfere.set(100);
        assert!(l.check(&store, 1, T0).report.lost);
    }

    #[test]
    fn a_live_entry_of_another_client_is_shared_and_reported_a_stale_one_reused() {
        let store = MemoryStore::default();
        let l = limit(2, 60, None);
        // 1 and 9 share slot 1 of 8.
        assert_eq!(admitted(&l, &store, 1, T0, 1), 1);
        let shared = l.check(&store, 9, T0);
        assert!(shared.admitted && shared.report.collision);
        assert!(
            !l.check(&store, 1, T0).admitted,
            "the shared bucket is spent"
        );
        let later = l.check(&store, 9, T0 + 120 * SECOND);
        assert!(later.admitted && !later.report.collision, "stale: reused");
        assert_eq!(later.remaining, 1);
    }

    #[test]
    fn workers_sharing_a_store_admit_the_limit_once() {
        // Two "workers" (two limiters compiled from the same policy) over one store.
        let store = MemoryStore::default();
        let (a, b) = (limit(10, 60, Some(4)), limit(10, 60, Some(4)));
        let total: u32 = (0..10)
            .map(|i| admitted(if i % 2 == 0 { &a } else { &b }, &store, 7, T0, 1))
            .sum();
        assert_eq!(total, 4);
    }
}
