//! Abuse protection: who the client is, and what the policy's `abuse` section asks for —
//! shared rate limits ([`crate::ratelimit`]), HTTP anomaly checks ([`crate::anomaly`]) and
//! quarantine ([`crate::quarantine`]).
//!
//! A policy without `abuse` gets none of it. The host calls, per request: [`Abuse::held`]
//! first (a quarantined client is refused before anything else), then the contract and
//! anomaly inspection, then [`Abuse::admit`] (rate limits, for requests the contract let
//! through), and [`Abuse::strike`] for every request that ends blocked.

use std::borrow::Cow;
use std::net::IpAddr;

use serde::Deserialize;

use crate::anomaly::{Anomaly, AnomalyConfig};
use crate::config::{pointer_token, Location, PolicyError};
use crate::policy::CompiledOperation;
use crate::quarantine::{Cidr, Quarantine, QuarantineConfig};
use crate::ratelimit::{KeySource, RateLimit, RateLimitConfig, Scope, MAX_SLOTS};
use crate::slots::{SharedStore, SlotReport, SlotSecret, Table};
use crate::verdict::{OperationRef, RuleId, Verdict, Violation};

/// The `abuse:` section of a policy.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbuseConfig {
    #[serde(default)]
    pub client: ClientConfig,
    #[serde(default)]
    pub rate_limits: Vec<RateLimitConfig>,
    #[serde(default)]
    pub anomaly: AnomalyConfig,
    pub quarantine: Option<QuarantineConfig>,
}

/// How the client is identified.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientConfig {
    /// Proxies in front of Envoy that append to `X-Forwarded-For` (Envoy's
    /// `xff_num_trusted_hops`): with N, the client is the Nth address from the right.
    /// 0 (default): the downstream address of the connection.
    pub trusted_hops: usize,
    /// What identifies a client for quarantine.
    pub key: Vec<KeySource>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            trusted_hops: 0,
            key: vec![KeySource::ClientIp],
        }
    }
}

/// Who made the request, as far as the filter knows. `subject` and `consumer` are the
/// identity the token checks verified (JWT `sub`, API-key consumer); without one they are
/// `None`, and limits keyed on them do not apply.
#[derive(Debug, Clone, Copy, Default)]
pub struct Client<'a> {
    /// The downstream address as Envoy gives it (`source.address`: `1.2.3.4:5678`,
    /// `[::1]:5678`).
    pub downstream: Option<&'a str>,
    pub headers: &'a [(&'a str, &'a str)],
    pub subject: Option<&'a str>,
    pub consumer: Option<&'a str>,
}

/// The compiled `abuse` section.
#[derive(Debug)]
pub struct Abuse {
    trusted_hops: usize,
    key: Vec<KeySource>,
    pub rate_limits: Vec<RateLimit>,
    pub anomaly: Anomaly,
    pub quarantine: Option<Quarantine>,
}

/// The answer to a client the filter refuses outright (rate limited, quarantined).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub rule: RuleId,
    /// `Retry-After` and, for rate limits, `RateLimit-Policy` / `RateLimit`.
    pub headers: Vec<(&'static str, String)>,
    /// Whether the policy enforces (else it is only recorded).
    pub enforced: bool,
    pub report: SlotReport,
}

impl Refusal {
    /// The verdict the host applies, counts and logs like any other.
    pub fn verdict<'p>(&self, operation: Option<OperationRef<'p>>) -> Verdict<'p> {
        let mut verdict = Verdict {
            operation,
            violations: vec![Violation {
                rule: self.rule,
                location: None,
                name: None,
                reason: Cow::Borrowed(self.rule.title()),
                enforced: self.enforced,
            }],
            ..Verdict::default()
        };
        verdict.settle();
        verdict
    }
}

/// What the rate limits said about a request.
#[derive(Debug, Default)]
pub struct Admission {
    pub refusal: Option<Refusal>,
    /// For an admitted request, `RateLimit-Policy` / `RateLimit` of the limit closest to
    /// refusing (fewest remaining), for the response: clients can slow down before a 429.
    pub headers: Vec<(&'static str, String)>,
    /// Slot events, for the host to count.
    pub reports: Vec<SlotReport>,
}

impl Abuse {
    /// `find` resolves an operationId or `METHOD /template` to an operation id.
    pub fn compile(
        config: &AbuseConfig,
        api: &str,
        operations: &[CompiledOperation],
        find: &dyn Fn(&str) -> Option<usize>,
        origin: &str,
    ) -> Result<Abuse, PolicyError> {
        let invalid = |pointer: String, message: &str| PolicyError::Invalid {
            at: Location::new(origin, pointer),
            message: message.to_owned(),
        };
        let mut rate_limits: Vec<RateLimit> = Vec::new();
        for (i, limit) in config.rate_limits.iter().enumerate() {
            let at = |field: &str| format!("/abuse/rate_limits/{i}/{field}");
            if limit.name.is_empty()
                || limit.name.len() > 32
                || !limit
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-".contains(&b))
            {
                return Err(invalid(
                    at("name"),
                    "must be 1 to 32 characters of a-z 0-9 _ -",
                ));
            }
            if rate_limits.iter().any(|l| l.name == limit.name) {
                return Err(invalid(at("name"), "another limit has this name"));
            }
            if limit.requests == 0 || limit.window_seconds == 0 {
                return Err(invalid(
                    at("requests"),
                    "`requests` and `window_seconds` must be at least 1",
                ));
            }
            if limit.key.is_empty() {
                return Err(invalid(at("key"), "name at least one key source"));
            }
            if limit.slots == 0 || limit.slots > MAX_SLOTS {
                return Err(invalid(at("slots"), "must be 1 to 65536"));
            }
            let operations = match &limit.scope {
                Scope::Group(names) => Some(
                    names
                        .iter()
                        .map(|name| {
                            find(name).ok_or_else(|| {
                                invalid(
                                    format!("{}/{}", at("scope/group"), pointer_token(name)),
                                    "names no operation of the document",
                                )
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                ),
                Scope::Api | Scope::Operation => None,
            };
            rate_limits.push(RateLimit::new(
                limit,
                format!("apiguard.rl.{api}.{}", limit.name),
                operations,
            ));
        }
        let quarantine = match &config.quarantine {
            Some(q) => {
                if q.strikes == 0 || q.window_seconds == 0 || q.duration_seconds == 0 {
                    return Err(invalid(
                        "/abuse/quarantine".to_owned(),
                        "`strikes`, `window_seconds` and `duration_seconds` must be at least 1",
                    ));
                }
                if q.slots == 0 || q.slots > MAX_SLOTS {
                    return Err(invalid(
                        "/abuse/quarantine/slots".to_owned(),
                        "must be 1 to 65536",
                    ));
                }
                let cidrs = q
                    .allowlist
                    .cidrs
                    .iter()
                    .enumerate()
                    .map(|(i, text)| {
                        Cidr::parse(text).ok_or_else(|| {
                            invalid(
                                format!("/abuse/quarantine/allowlist/cidrs/{i}"),
                                "not an address or CIDR (`10.0.0.0/8`, `2001:db8::/32`)",
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Some(Quarantine::new(q, &format!("apiguard.q.{api}"), cidrs))
            }
            None => None,
        };
        if config.client.key.is_empty() {
            return Err(invalid(
                "/abuse/client/key".to_owned(),
                "name at least one key source",
            ));
        }
        Ok(Abuse {
            trusted_hops: config.client.trusted_hops,
            key: config.client.key.clone(),
            rate_limits,
            anomaly: Anomaly::compile(&config.anomaly, operations, find, origin)?,
            quarantine,
        })
    }

    /// Every slot table, for the host to create at configure time.
    pub fn tables(&self) -> impl Iterator<Item = &Table> {
        self.rate_limits
            .iter()
            .map(|l| &l.table)
            .chain(self.quarantine.iter().flat_map(Quarantine::tables))
    }

    /// The client's address: the downstream address, or with `trusted_hops` N the Nth
    /// `X-Forwarded-For` address from the right (all `X-Forwarded-For` lines read as one
    /// list). Fewer addresses than hops, or one that does not parse, falls back to the
    /// downstream address: a client cannot choose its key by sending a short header.
    pub fn client_ip(&self, client: &Client<'_>) -> Option<IpAddr> {
        let downstream = client.downstream.and_then(parse_address);
        if self.trusted_hops == 0 {
            return downstream;
        }
        let forwarded: Vec<&str> = client
            .headers
            .iter()
            .filter(|(name, _)| *name == "x-forwarded-for")
            .flat_map(|(_, value)| value.split(','))
            .map(str::trim)
            .collect();
        forwarded
            .len()
            .checked_sub(self.trusted_hops)
            .and_then(|i| forwarded.get(i))
            .and_then(|a| parse_address(a))
            .or(downstream)
    }

    /// The client's key for `sources`; `None` when a source is absent (a header not sent,
    /// no verified identity), in which case what is keyed on it does not apply.
    fn key(&self, sources: &[KeySource], client: &Client<'_>) -> Option<Vec<u8>> {
        let mut key = Vec::new();
        for source in sources {
            let part = match source {
                KeySource::ClientIp => self.client_ip(client)?.to_string(),
                KeySource::Subject => client.subject?.to_owned(),
                KeySource::Consumer => client.consumer?.to_owned(),
                KeySource::Header(name) => client
                    .headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| (*v).to_owned())?,
            };
            // A separator no source can contain, so ("a", "bc") is not ("ab", "c").
            key.extend_from_slice(part.as_bytes());
            key.push(0x1f);
        }
        Some(key)
    }

    /// Whether any check here reads the client's address: the quarantine (its allowlist
    /// and events name clients by address) or a rate limit keyed on it. Reading it is a
    /// host call, which a policy that counts by subject alone need not pay.
    pub fn reads_address(&self) -> bool {
        self.quarantine.is_some()
            || (self.rate_limits.iter()).any(|limit| limit.key.contains(&KeySource::ClientIp))
    }

    /// The client's quarantine key: `None` without a quarantine, for allowlisted clients
    /// (they are never quarantined) and when a key source is absent.
    pub fn quarantine_key(&self, secret: &SlotSecret, client: &Client<'_>) -> Option<u64> {
        let quarantine = self.quarantine.as_ref()?;
        if quarantine.exempt(self.client_ip(client), client.consumer) {
            return None;
        }
        self.key(&self.key, client)
            .map(|key| secret.fingerprint(&key))
    }

    /// The quarantine holding the client with `key`, if any.
    pub fn held<S: SharedStore>(
        &self,
        store: &S,
        key: u64,
        now: u64,
        enforce: bool,
    ) -> Option<Refusal> {
        let held = self.quarantine.as_ref()?.holds(store, key, now)?;
        Some(Refusal {
            rule: RuleId::Quarantined,
            headers: vec![("retry-after", held.retry_after.to_string())],
            enforced: enforce,
            report: held.report,
        })
    }

    /// Records a blocked request of the client with `key`; returns the quarantine it
    /// starts, if any.
    pub fn strike<S: SharedStore>(&self, store: &S, key: u64, now: u64) -> Option<SlotReport> {
        self.quarantine
            .as_ref()?
            .strike(store, key, now)
            .map(|held| held.report)
    }

    /// Counts the request against every limit that applies; the first that refuses
    /// decides. Every applicable limit counts the request, admitted or not elsewhere, as
    /// the upstream would have seen it.
    pub fn admit<S: SharedStore>(
        &self,
        store: &S,
        secret: &SlotSecret,
        client: &Client<'_>,
        operation: Option<usize>,
        now: u64,
        enforce: bool,
    ) -> Admission {
        let mut admission = Admission::default();
        let mut fewest = u32::MAX;
        for limit in self.rate_limits.iter().filter(|l| l.applies_to(operation)) {
            let Some(mut key) = self.key(&limit.key, client) else {
                continue;
            };
            if limit.per_operation {
                key.extend_from_slice(
                    operation
                        .map_or(u64::MAX, |o| o as u64)
                        .to_le_bytes()
                        .as_slice(),
                );
            }
            let decision = limit.check(store, secret.fingerprint(&key), now);
            admission.reports.push(decision.report);
            if decision.admitted && decision.remaining < fewest {
                fewest = decision.remaining;
                admission.headers = limit.headers(&decision).into();
            }
            if !decision.admitted && admission.refusal.is_none() {
                let mut headers = vec![("retry-after", decision.reset_seconds.to_string())];
                headers.extend(limit.headers(&decision));
                admission.refusal = Some(Refusal {
                    rule: RuleId::RateLimited,
                    headers,
                    enforced: enforce,
                    report: decision.report,
                });
            }
        }
        if admission.refusal.is_some() {
            admission.headers.clear();
        }
        admission
    }
}

/// `1.2.3.4`, `1.2.3.4:5678`, `::1`, `[::1]:5678`.
fn parse_address(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    text.rsplit_once(':')?.0.parse().ok()
}

#[cfg(test)]
mod tests;
