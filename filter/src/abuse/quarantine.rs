//! Quarantine: a client that keeps getting refused is refused outright for a while.
//!
//! Blocked requests are *strikes*, counted per client by the same shared-data GCRA as the
//! rate limits: a bucket of `strikes - 1` that regains one strike every `window_seconds`.
//! So `strikes` blocked requests within `window_seconds` always start a quarantine (as
//! does a steady trickle of more than one blocked request per window). The quarantine's
//! end is kept in its own slot table, so every worker refuses the client until it passes;
//! then the slot is stale and the client is served again. Requests refused *by* the
//! quarantine are not strikes, or a quarantine would never end.

use std::net::IpAddr;

use serde::Deserialize;

use crate::abuse::ratelimit::{self, RateLimit, RateLimitConfig, Scope};
use crate::abuse::slots::{Entry, SharedStore, SlotReport, Table};

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// `quarantine:` in the policy's `abuse` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QuarantineConfig {
    /// Blocked requests that start a quarantine…
    pub strikes: u32,
    /// …when they come within this many seconds.
    pub window_seconds: u32,
    /// How long the client is then refused.
    pub duration_seconds: u32,
    #[serde(default = "default_slots")]
    pub slots: u32,
    /// Clients never quarantined.
    #[serde(default)]
    pub allowlist: AllowlistConfig,
}

fn default_slots() -> u32 {
    ratelimit::DEFAULT_SLOTS
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AllowlistConfig {
    /// Client addresses, as CIDRs (`10.0.0.0/8`, `::1/128`) or single addresses.
    #[serde(default)]
    pub cidrs: Vec<String>,
    /// API-key consumers (matched once the token checks fill the identity).
    #[serde(default)]
    pub consumers: Vec<String>,
}

/// An address block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `addr/prefix` or a bare address; `None` when it is neither.
    pub(crate) fn parse(text: &str) -> Option<Cidr> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr.parse::<IpAddr>().ok()?, prefix.parse::<u8>().ok()?),
            None => {
                let addr = text.parse::<IpAddr>().ok()?;
                (addr, if addr.is_ipv4() { 32 } else { 128 })
            }
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Cidr {
            network: addr,
            prefix,
        })
    }

    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        let (bits, a, b) = match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                (32, u128::from(n.to_bits()), u128::from(i.to_bits()))
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => (128, n.to_bits(), i.to_bits()),
            _ => return false,
        };
        let shift = bits - u32::from(self.prefix);
        a.checked_shr(shift).unwrap_or(0) == b.checked_shr(shift).unwrap_or(0)
    }
}

/// The compiled quarantine.
#[derive(Debug)]
pub(crate) struct Quarantine {
    strikes: Option<RateLimit>,
    release: Table,
    duration: u64,
    pub cidrs: Vec<Cidr>,
    pub consumers: Vec<String>,
}

/// A quarantine that starts or holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Held {
    /// Seconds until the client is served again (`Retry-After`).
    pub retry_after: u64,
    pub report: SlotReport,
}

impl Quarantine {
    /// `prefix` names the API, e.g. `apiguard.q.petstore`. `cidrs` are parsed already.
    pub(crate) fn new(config: &QuarantineConfig, prefix: &str, cidrs: Vec<Cidr>) -> Quarantine {
        // One strike alone quarantines: no bucket needed.
        let strikes = (config.strikes > 1).then(|| {
            let bucket = RateLimitConfig {
                name: "strikes".to_owned(),
                key: Vec::new(),
                scope: Scope::Api,
                requests: 1,
                window_seconds: config.window_seconds,
                burst: Some(config.strikes - 1),
                slots: config.slots,
            };
            RateLimit::new(&bucket, format!("{prefix}.strikes"), None)
        });
        Quarantine {
            strikes,
            release: Table::new(format!("{prefix}.until"), config.slots),
            duration: u64::from(config.duration_seconds).saturating_mul(NANOS_PER_SECOND),
            cidrs,
            consumers: config.allowlist.consumers.clone(),
        }
    }

    /// How long a quarantine lasts, as the policy says.
    pub(crate) fn duration_seconds(&self) -> u32 {
        u32::try_from(self.duration / NANOS_PER_SECOND).unwrap_or(u32::MAX)
    }

    /// The tables to create at configure time.
    pub(crate) fn tables(&self) -> impl Iterator<Item = &Table> {
        self.strikes
            .iter()
            .map(|s| &s.table)
            .chain(std::iter::once(&self.release))
    }

    /// Whether the client may skip quarantine.
    pub(crate) fn exempt(&self, ip: Option<IpAddr>, consumer: Option<&str>) -> bool {
        ip.is_some_and(|ip| self.cidrs.iter().any(|c| c.contains(ip)))
            || consumer.is_some_and(|c| self.consumers.iter().any(|a| a == c))
    }

    /// The quarantine the client is in at `now`, if any.
    pub(crate) fn holds<S: SharedStore>(
        &self,
        store: &S,
        fingerprint: u64,
        now: u64,
    ) -> Option<Held> {
        let entry = self.release.read(store, fingerprint)?;
        (entry.fingerprint == fingerprint && entry.live(now)).then(|| Held {
            retry_after: ratelimit::ceil_seconds(entry.until - now).max(1),
            report: SlotReport::default(),
        })
    }

    /// Records a blocked request; returns the quarantine it starts.
    pub(crate) fn strike<S: SharedStore>(
        &self,
        store: &S,
        fingerprint: u64,
        now: u64,
    ) -> Option<Held> {
        if let Some(bucket) = &self.strikes {
            if bucket.check(store, fingerprint, now).admitted {
                return None;
            }
        }
        Some(self.start(store, fingerprint, now))
    }

    /// Starts the client's quarantine now, strikes or not: what a behaviour rule with
    /// `action: quarantine` does on its finding.
    pub(crate) fn start<S: SharedStore>(&self, store: &S, fingerprint: u64, now: u64) -> Held {
        let previous = self.release.read(store, fingerprint);
        let entry = Entry {
            fingerprint,
            until: now.saturating_add(self.duration),
        };
        let lost = self.release.write(store, entry).is_err();
        Held {
            retry_after: ratelimit::ceil_seconds(self.duration).max(1),
            report: SlotReport {
                // Another client's live quarantine in this slot ends early.
                collision: previous.is_some_and(|p| p.fingerprint != fingerprint && p.live(now)),
                lost,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abuse::slots::MemoryStore;

    const SECOND: u64 = NANOS_PER_SECOND;
    const T0: u64 = 1_700_000_000 * SECOND;

    fn quarantine(strikes: u32) -> Quarantine {
        let config = QuarantineConfig {
            strikes,
            window_seconds: 10,
            duration_seconds: 30,
            slots: 16,
            allowlist: AllowlistConfig::default(),
        };
        Quarantine::new(&config, "apiguard.q.test", vec![])
    }

    #[test]
    fn n_strikes_within_the_window_start_it_and_it_ends_on_time() {
        let store = MemoryStore::default();
        let q = quarantine(3);
        assert_eq!(q.strike(&store, 1, T0), None);
        assert_eq!(q.strike(&store, 1, T0 + 4 * SECOND), None);
        assert_eq!(q.holds(&store, 1, T0 + 4 * SECOND), None);
        let started = q.strike(&store, 1, T0 + 8 * SECOND).unwrap();
        assert_eq!(started.retry_after, 30);
        let held = q.holds(&store, 1, T0 + 20 * SECOND).unwrap();
        assert_eq!(held.retry_after, 18);
        assert_eq!(
            q.holds(&store, 2, T0 + 20 * SECOND),
            None,
            "only that client"
        );
        assert!(q.holds(&store, 1, T0 + 38 * SECOND - 1).is_some());
        assert_eq!(q.holds(&store, 1, T0 + 38 * SECOND), None, "released");
    }

    #[test]
    fn strikes_spread_wider_than_the_window_do_not() {
        let store = MemoryStore::default();
        let q = quarantine(3);
        for i in 0..10 {
            assert_eq!(q.strike(&store, 1, T0 + i * 11 * SECOND), None);
        }
    }

    #[test]
    fn one_strike_is_enough_when_configured_so() {
        let store = MemoryStore::default();
        assert!(quarantine(1).strike(&store, 1, T0).is_some());
    }

    #[test]
    fn cidrs_and_consumers_exempt() {
        let q = Quarantine {
            consumers: vec!["ops".into()],
            ..Quarantine::new(
                &QuarantineConfig {
                    strikes: 1,
                    window_seconds: 1,
                    duration_seconds: 1,
                    slots: 1,
                    allowlist: AllowlistConfig::default(),
                },
                "q",
                ["10.1.0.0/16", "::1", "2001:db8::/32"]
                    .iter()
                    .filter_map(|c| Cidr::parse(c))
                    .collect(),
            )
        };
        let ip = |s: &str| Some(s.parse().unwrap());
        assert!(q.exempt(ip("10.1.200.3"), None));
        assert!(!q.exempt(ip("10.2.0.1"), None));
        assert!(q.exempt(ip("::1"), None));
        assert!(q.exempt(ip("2001:db8:ffff::1"), None));
        assert!(!q.exempt(ip("::2"), None));
        assert!(q.exempt(None, Some("ops")));
        assert!(!q.exempt(None, Some("dev")));
        assert_eq!(Cidr::parse("10.0.0.0/33"), None);
        assert_eq!(Cidr::parse("nope"), None);
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
    }
}
