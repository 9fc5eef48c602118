//! Abuse protection: who the client is, and what the policy's `abuse` section asks for —
//! shared rate limits ([`ratelimit`]), HTTP anomaly checks ([`anomaly`]) and
//! quarantine ([`quarantine`]), the per-client state of the last two kept in fixed
//! [`slots`] of data shared by every worker.
//!
//! A policy without `abuse` gets none of it. When each of [`Abuse::held`],
//! [`Abuse::admit`] and [`Abuse::strike`] runs in a request's life is written once, in
//! [`crate::exchange`].

pub(crate) mod anomaly;
pub(crate) mod quarantine;
pub(crate) mod ratelimit;
pub(crate) mod slots;

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Deserialize;

use crate::contract::CompiledOperation;
use crate::error::{pointer_token, Location, PolicyError};
use crate::verdict::{OperationRef, RuleId, Verdict, Violation};
use anomaly::{Anomaly, AnomalyConfig};
use quarantine::{Cidr, Quarantine, QuarantineConfig};
use ratelimit::{KeySource, RateLimit, RateLimitConfig, Scope, MAX_SLOTS};
use slots::{SharedStore, SlotReport, SlotSecret, Table};

/// The `abuse:` section of a policy.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AbuseConfig {
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
pub(crate) struct ClientConfig {
    /// Trusted proxies in front of Envoy, counted as Envoy's `xff_num_trusted_hops`
    /// counts them, for when Envoy's own setting cannot be changed (see
    /// [`Abuse::client_ip`]). 0 (default): the address Envoy determined. Prefer setting
    /// Envoy's, which access logs and other filters then agree with; set in both, the
    /// larger counts, never the sum.
    pub trusted_hops: usize,
    /// What identifies a client for quarantine.
    pub key: Vec<KeySource>,
    /// `client_ip` keys an IPv4 client by its network of this many bits (default 32: the
    /// address).
    pub ipv4_prefix: u8,
    /// `client_ip` keys an IPv6 client by its network of this many bits (default 64: one
    /// host's subnet, as a client commonly holds a whole /64 and can rotate within it).
    pub ipv6_prefix: u8,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            trusted_hops: 0,
            key: vec![KeySource::ClientIp],
            ipv4_prefix: 32,
            ipv6_prefix: 64,
        }
    }
}

/// Who made the request, as far as the filter knows. `subject` and `consumer` are the
/// identity the token checks verified (JWT `sub`, API-key consumer); without one they are
/// `None`, and limits keyed on them do not apply.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Client<'a> {
    /// The downstream address as Envoy gives it (`source.address`: `1.2.3.4:5678`,
    /// `[::1]:5678`).
    pub downstream: Option<&'a str>,
    pub headers: &'a [(&'a str, &'a str)],
    pub subject: Option<&'a str>,
    pub consumer: Option<&'a str>,
}

/// The compiled `abuse` section.
#[derive(Debug)]
pub(crate) struct Abuse {
    trusted_hops: usize,
    key: Vec<KeySource>,
    ipv4_prefix: u8,
    ipv6_prefix: u8,
    pub rate_limits: Vec<RateLimit>,
    pub anomaly: Anomaly,
    pub quarantine: Option<Quarantine>,
}

/// The answer to a client the filter refuses outright (rate limited, quarantined).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub rule: RuleId,
    /// `Retry-After` and, for rate limits, `RateLimit-Policy` / `RateLimit`.
    pub headers: Vec<(&'static str, String)>,
    /// Whether the policy enforces (else it is only recorded).
    pub enforced: bool,
    pub report: SlotReport,
}

impl Refusal {
    /// The verdict the host applies, counts and logs like any other.
    pub(crate) fn verdict<'p>(&self, operation: Option<OperationRef<'p>>) -> Verdict<'p> {
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
pub(crate) struct Admission {
    pub refusal: Option<Refusal>,
    /// For an admitted request, `RateLimit-Policy` / `RateLimit` of the limit closest to
    /// refusing (fewest remaining), for the response: clients can slow down before a 429.
    pub headers: Vec<(&'static str, String)>,
    /// Slot events, for the host to count.
    pub reports: Vec<SlotReport>,
}

impl Abuse {
    /// `find` resolves an operationId or `METHOD /template` to an operation id.
    pub(crate) fn compile(
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
        let client = &config.client;
        if !(1..=32).contains(&client.ipv4_prefix) {
            return Err(invalid(
                "/abuse/client/ipv4_prefix".to_owned(),
                "must be 1 to 32",
            ));
        }
        if !(1..=128).contains(&client.ipv6_prefix) {
            return Err(invalid(
                "/abuse/client/ipv6_prefix".to_owned(),
                "must be 1 to 128",
            ));
        }
        Ok(Abuse {
            trusted_hops: client.trusted_hops,
            key: client.key.clone(),
            ipv4_prefix: client.ipv4_prefix,
            ipv6_prefix: client.ipv6_prefix,
            rate_limits,
            anomaly: Anomaly::compile(&config.anomaly, operations, find, origin)?,
            quarantine,
        })
    }

    /// Every slot table, for the host to create at configure time.
    pub(crate) fn tables(&self) -> impl Iterator<Item = &Table> {
        self.rate_limits
            .iter()
            .map(|l| &l.table)
            .chain(self.quarantine.iter().flat_map(Quarantine::tables))
    }

    /// The client's address: the downstream address as Envoy determined it
    /// (`source.address`), unless `trusted_hops` N counts more proxies than Envoy did.
    ///
    /// Envoy forwards `X-Forwarded-For` with its own address of the client H entries from
    /// the right (H: its `xff_num_trusted_hops`; with `use_remote_address` it appended the
    /// peer, at H = 0), so H is where that address is found, read from the right (all
    /// `X-Forwarded-For` lines as one list; its rightmost occurrence). N counts the same
    /// hops: with N > H the client is the entry N from the right, else Envoy's address —
    /// the two settings never add up, and nothing right of Envoy's address is taken. An
    /// address not in the list, a list too short, or an entry that does not parse falls
    /// back to Envoy's address: a client cannot choose its key by what it sends.
    pub(crate) fn client_ip(&self, client: &Client<'_>) -> Option<IpAddr> {
        let downstream = client.downstream.and_then(parse_address)?;
        if self.trusted_hops == 0 {
            return Some(downstream);
        }
        let mut right_to_left = (client.headers.iter().rev())
            .filter(|(name, _)| *name == "x-forwarded-for")
            .flat_map(|(_, value)| value.rsplit(','))
            .map(|entry| parse_address(entry.trim()));
        let further = right_to_left
            .position(|ip| ip == Some(downstream))
            .and_then(|by_envoy| self.trusted_hops.checked_sub(by_envoy + 1));
        let forwarded = further.and_then(|further| right_to_left.nth(further).flatten());
        Some(forwarded.unwrap_or(downstream))
    }

    /// The network that stands for the client's address in keys (see [`network`]).
    fn network(&self, ip: IpAddr) -> String {
        network(ip, self.ipv4_prefix, self.ipv6_prefix)
    }

    /// Starts the client's quarantine at once, as a behaviour rule with `action:
    /// quarantine` does; `None` without a quarantine.
    pub(crate) fn quarantine_now<S: SharedStore>(
        &self,
        store: &S,
        key: u64,
        now: u64,
    ) -> Option<SlotReport> {
        Some(self.quarantine.as_ref()?.start(store, key, now).report)
    }

    /// The client's key for `sources`; `None` when a source is absent (a header not sent,
    /// no verified identity), in which case what is keyed on it does not apply.
    fn key(&self, sources: &[KeySource], client: &Client<'_>) -> Option<Vec<u8>> {
        let mut key = Vec::new();
        for source in sources {
            let part = match source {
                KeySource::ClientIp => self.network(self.client_ip(client)?),
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
    pub(crate) fn reads_address(&self) -> bool {
        self.quarantine.is_some()
            || (self.rate_limits.iter()).any(|limit| limit.key.contains(&KeySource::ClientIp))
    }

    /// The client's quarantine key: `None` without a quarantine, for allowlisted clients
    /// (they are never quarantined) and when a key source is absent.
    pub(crate) fn quarantine_key(&self, secret: &SlotSecret, client: &Client<'_>) -> Option<u64> {
        let quarantine = self.quarantine.as_ref()?;
        if quarantine.exempt(self.client_ip(client), client.consumer) {
            return None;
        }
        self.key(&self.key, client)
            .map(|key| secret.fingerprint(&key))
    }

    /// The quarantine holding the client with `key`, if any.
    pub(crate) fn held<S: SharedStore>(
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
    pub(crate) fn strike<S: SharedStore>(
        &self,
        store: &S,
        key: u64,
        now: u64,
    ) -> Option<SlotReport> {
        self.quarantine
            .as_ref()?
            .strike(store, key, now)
            .map(|held| held.report)
    }

    /// Counts the request against every limit that applies; the first that refuses
    /// decides. Every applicable limit counts the request, admitted or not elsewhere, as
    /// the upstream would have seen it.
    pub(crate) fn admit<S: SharedStore>(
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

/// The network that stands for the client's address in keys, as `abuse.client` says
/// (`trusted_hops`, prefixes); without an `abuse` section, the address Envoy determined, at
/// the default prefixes. `None` without an address.
pub(crate) fn client_network(abuse: Option<&Abuse>, client: &Client<'_>) -> Option<String> {
    match abuse {
        Some(abuse) => Some(abuse.network(abuse.client_ip(client)?)),
        None => {
            let defaults = ClientConfig::default();
            let ip = parse_address(client.downstream?)?;
            Some(network(ip, defaults.ipv4_prefix, defaults.ipv6_prefix))
        }
    }
}

/// The address with only its first `ipv4_prefix` or `ipv6_prefix` bits kept, so that
/// addresses of one client's subnet share a bucket (the prefix length is part of the key).
fn network(ip: IpAddr, ipv4_prefix: u8, ipv6_prefix: u8) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32u32.saturating_sub(ipv4_prefix.into()));
            let network = Ipv4Addr::from_bits(v4.to_bits() & mask.unwrap_or(0));
            format!("{network}/{ipv4_prefix}")
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128u32.saturating_sub(ipv6_prefix.into()));
            let network = Ipv6Addr::from_bits(v6.to_bits() & mask.unwrap_or(0));
            format!("{network}/{ipv6_prefix}")
        }
    }
}

/// `1.2.3.4`, `1.2.3.4:5678`, `::1`, `[::1]:5678`. An IPv4-mapped IPv6 address
/// (`::ffff:1.2.3.4`, as a dual-stack listener reports IPv4 clients) is the IPv4 address:
/// keyed as IPv6, every IPv4 client would share one /64.
fn parse_address(text: &str) -> Option<IpAddr> {
    let ip: IpAddr = match text.parse() {
        Ok(ip) => ip,
        Err(_) => match text.strip_prefix('[') {
            Some(rest) => rest.split_once(']')?.0.parse().ok()?,
            None => text.rsplit_once(':')?.0.parse().ok()?,
        },
    };
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests;
