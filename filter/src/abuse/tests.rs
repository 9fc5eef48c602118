use serde_json::json;

use super::*;
use crate::abuse::slots::MemoryStore;
use crate::policy::Policy;
use crate::testkit::{try_policy, SECOND, SECRET, T0};

fn policy(abuse: serde_json::Value) -> Result<Policy, PolicyError> {
    let document = json!({"openapi": "3.1.0", "paths": {
        "/a": {"get": {"operationId": "getA"}, "post": {"operationId": "postA"}},
        "/b": {"get": {"operationId": "getB"}}}});
    try_policy("api", document, json!({"abuse": abuse}))
}

fn abuse(config: serde_json::Value) -> Abuse {
    policy(config).unwrap().abuse.unwrap()
}

fn client<'a>(downstream: &'a str, headers: &'a [(&'a str, &'a str)]) -> Client<'a> {
    Client {
        downstream: Some(downstream),
        headers,
        ..Client::default()
    }
}

fn ip(a: &Abuse, downstream: &str, headers: &[(&str, &str)]) -> Option<String> {
    a.client_ip(&client(downstream, headers))
        .map(|ip| ip.to_string())
}

#[test]
fn the_client_ip_is_envoys_address_or_the_trusted_forwarded_hop() {
    // As Envoy forwards it with `use_remote_address`: it appended the peer, 192.0.2.1.
    let xff = [
        ("x-forwarded-for", "203.0.113.9, 198.51.100.1"),
        ("x-forwarded-for", "192.0.2.1"),
    ];
    let with = |hops: usize| abuse(json!({"client": {"trusted_hops": hops}}));
    let down = "192.0.2.1:5000";
    assert_eq!(ip(&with(0), down, &xff).as_deref(), Some("192.0.2.1"));
    assert_eq!(ip(&with(0), "[::1]:5000", &[]).as_deref(), Some("::1"));
    assert_eq!(ip(&with(1), down, &xff).as_deref(), Some("198.51.100.1"));
    assert_eq!(ip(&with(2), down, &xff).as_deref(), Some("203.0.113.9"));
    assert_eq!(
        ip(&with(9), down, &xff).as_deref(),
        Some("192.0.2.1"),
        "too few: Envoy's"
    );
    let junk = [("x-forwarded-for", "not-an-ip, 192.0.2.1")];
    assert_eq!(ip(&with(1), down, &junk).as_deref(), Some("192.0.2.1"));
    let elsewhere = [("x-forwarded-for", "203.0.113.9, 198.51.100.1")];
    assert_eq!(
        ip(&with(1), down, &elsewhere).as_deref(),
        Some("192.0.2.1"),
        "Envoy's address not in the list: Envoy's"
    );
    assert_eq!(
        ip(&with(0), "::ffff:10.0.0.7", &[]).as_deref(),
        Some("10.0.0.7"),
        "IPv4-mapped: IPv4"
    );
}

/// Regression: `trusted_hops` counted from the right of `X-Forwarded-For` as received,
/// so with Envoy's `xff_num_trusted_hops` set for the same proxy the hops added up
/// (or, with `use_remote_address`, the appended peer shifted every client to its proxy).
/// Now a proxy Envoy trusted is never counted again.
#[test]
fn trusted_hops_and_envoys_xff_num_trusted_hops_double_count() {
    // A client (203.0.113.9) wrote 6.6.6.6; a proxy (10.0.0.2) in front of Envoy
    // appended the client; Envoy, trusting one hop, took 203.0.113.9 and appended 10.0.0.2.
    let xff = [("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.0.0.2")];
    let envoys = "203.0.113.9:0";
    for hops in [0, 1] {
        let a = abuse(json!({"client": {"trusted_hops": hops}}));
        assert_eq!(
            ip(&a, envoys, &xff).as_deref(),
            Some("203.0.113.9"),
            "{hops}"
        );
    }
    // Two proxies in front, Envoy told of one: the policy's 2 reaches one further.
    let two = abuse(json!({"client": {"trusted_hops": 2}}));
    let xff = [(
        "x-forwarded-for",
        "6.6.6.6, 203.0.113.9, 10.0.0.1, 10.0.0.2",
    )];
    assert_eq!(ip(&two, "10.0.0.1:0", &xff).as_deref(), Some("203.0.113.9"));
}

#[test]
fn client_ip_keys_are_networks_of_the_configured_prefix() {
    let store = MemoryStore::default();
    let limited = |client_config: serde_json::Value| {
        abuse(json!({"client": client_config, "rate_limits": [
            {"name": "one", "requests": 1, "window_seconds": 60}]}))
    };
    let admitted = |a: &Abuse, downstream: &str| {
        let c = client(downstream, &[]);
        a.admit(&store, &SECRET, &c, Some(0), T0, true)
            .refusal
            .is_none()
    };
    // Default: IPv6 by /64, IPv4 by address.
    let a = limited(json!({}));
    assert!(admitted(&a, "[2001:db8:0:1::1]:1"));
    assert!(!admitted(&a, "[2001:db8:0:1:ffff::2]:1"), "same /64");
    assert!(admitted(&a, "[2001:db8:0:2::1]:1"), "next /64");
    assert!(admitted(&a, "192.0.2.1:1"));
    assert!(admitted(&a, "192.0.2.2:1"), "IPv4: each address");
    // Configured: IPv4 by /24, IPv6 by /48 (a fresh store for fresh buckets).
    let store = MemoryStore::default();
    let a = limited(json!({"ipv4_prefix": 24, "ipv6_prefix": 48}));
    let admitted = |downstream: &str| {
        let c = client(downstream, &[]);
        a.admit(&store, &SECRET, &c, Some(0), T0, true)
            .refusal
            .is_none()
    };
    assert!(admitted("198.51.100.1:1"));
    assert!(!admitted("198.51.100.200:1"), "same /24");
    assert!(admitted("198.51.101.1:1"));
    assert!(admitted("[2001:db8:1::1]:1"));
    assert!(!admitted("[2001:db8:1:ff::1]:1"), "same /48");
    // The key names the network and its length, and the allowlist still sees the
    // address.
    assert_eq!(
        a.network("2001:db8:1:ff::1".parse().unwrap()),
        "2001:db8:1::/48"
    );
    assert_eq!(
        a.network("198.51.100.200".parse().unwrap()),
        "198.51.100.0/24"
    );
    assert_eq!(
        limited(json!({"ipv4_prefix": 32})).network("10.1.2.3".parse().unwrap()),
        "10.1.2.3/32"
    );
    assert_eq!(
        limited(json!({"ipv6_prefix": 128})).network("::1".parse().unwrap()),
        "::1/128"
    );
    assert_eq!(
        limited(json!({"ipv4_prefix": 1})).network("200.1.2.3".parse().unwrap()),
        "128.0.0.0/1"
    );
}

#[test]
fn limits_apply_by_scope_and_answer_with_ietf_headers() {
    let a = abuse(json!({"rate_limits": [
        {"name": "api", "requests": 3, "window_seconds": 60},
        {"name": "writes", "scope": {"group": ["postA"]}, "requests": 1, "window_seconds": 10},
        {"name": "per-op", "scope": "operation", "key": [{"header": "x-tenant"}], "requests": 2, "window_seconds": 60}
    ]}));
    let store = MemoryStore::default();
    let c = client("192.0.2.1:1", &[]);
    let admit = |op| a.admit(&store, &SECRET, &c, Some(op), T0, true);
    assert!(admit(1).refusal.is_none(), "postA: api 1/3, writes 1/1");
    let refused = admit(1).refusal.unwrap();
    assert_eq!(refused.rule, RuleId::RateLimited);
    assert_eq!(
        refused.headers,
        [
            ("retry-after", "10".to_owned()),
            ("ratelimit-policy", "\"writes\";q=1;w=10".to_owned()),
            ("ratelimit", "\"writes\";r=0;t=10".to_owned())
        ]
    );
    assert!(
        admit(0).refusal.is_none(),
        "getA: api 3/3 (the refused one counted too)"
    );
    let api = admit(2).refusal.unwrap();
    assert_eq!(api.headers[1].1, "\"api\";q=3;w=60");
    // Other client, and a header key: each tenant and operation its own bucket.
    let tenant = [("x-tenant", "t1")];
    let t = client("192.0.2.2:1", &tenant);
    let per_op = |op| {
        a.admit(&store, &SECRET, &t, Some(op), T0, true)
            .refusal
            .map(|r| r.headers[1].1.clone())
    };
    assert_eq!(per_op(0), None);
    assert_eq!(per_op(2), None);
    assert_eq!(per_op(0), None);
    assert_eq!(per_op(0).as_deref(), Some("\"api\";q=3;w=60"));
    let fresh = client("192.0.2.3:1", &tenant);
    let r = a
        .admit(&store, &SECRET, &fresh, Some(0), T0, true)
        .refusal
        .unwrap();
    assert_eq!(
        r.headers[1].1, "\"per-op\";q=2;w=60",
        "t1 spent getA's 2 from another address"
    );
}

#[test]
fn an_admitted_request_carries_the_headers_of_the_limit_closest_to_refusing() {
    let a = abuse(json!({"rate_limits": [
        {"name": "wide", "requests": 100, "window_seconds": 60},
        {"name": "narrow", "requests": 3, "window_seconds": 30}
    ]}));
    let store = MemoryStore::default();
    let c = client("192.0.2.1:1", &[]);
    let first = a.admit(&store, &SECRET, &c, Some(0), T0, true);
    assert_eq!(
        first.headers,
        [
            ("ratelimit-policy", "\"narrow\";q=3;w=30".to_owned()),
            ("ratelimit", "\"narrow\";r=2;t=10".to_owned())
        ]
    );
    a.admit(&store, &SECRET, &c, Some(0), T0, true);
    a.admit(&store, &SECRET, &c, Some(0), T0, true);
    let refused = a.admit(&store, &SECRET, &c, Some(0), T0, true);
    assert!(refused.refusal.is_some() && refused.headers.is_empty());
}

#[test]
fn limits_keyed_on_an_absent_identity_do_not_apply() {
    let a = abuse(json!({"rate_limits": [
        {"name": "sub", "key": ["subject"], "requests": 1, "window_seconds": 60}]}));
    let store = MemoryStore::default();
    let anonymous = client("192.0.2.1:1", &[]);
    for _ in 0..3 {
        assert!(a
            .admit(&store, &SECRET, &anonymous, Some(0), T0, true)
            .refusal
            .is_none());
    }
    let alice = Client {
        subject: Some("alice"),
        ..anonymous
    };
    assert!(a
        .admit(&store, &SECRET, &alice, Some(0), T0, true)
        .refusal
        .is_none());
    assert!(a
        .admit(&store, &SECRET, &alice, Some(0), T0, true)
        .refusal
        .is_some());
}

#[test]
fn blocked_requests_lead_to_quarantine_unless_allowlisted() {
    let a = abuse(
        json!({"quarantine": {"strikes": 3, "window_seconds": 10, "duration_seconds": 30,
        "allowlist": {"cidrs": ["10.0.0.0/8"]}}}),
    );
    let store = MemoryStore::default();
    let bad = a
        .quarantine_key(&SECRET, &client("192.0.2.7:1", &[]))
        .unwrap();
    assert!(a.strike(&store, bad, T0).is_none());
    assert!(a.strike(&store, bad, T0 + SECOND).is_none());
    assert!(a.held(&store, bad, T0 + SECOND, true).is_none());
    assert!(
        a.strike(&store, bad, T0 + 2 * SECOND).is_some(),
        "third strike"
    );
    let held = a.held(&store, bad, T0 + 3 * SECOND, true).unwrap();
    assert_eq!(held.rule, RuleId::Quarantined);
    assert_eq!(held.headers, [("retry-after", "29".to_owned())]);
    assert!(
        a.held(&store, bad, T0 + 32 * SECOND, true).is_none(),
        "released"
    );
    assert_eq!(
        a.quarantine_key(&SECRET, &client("10.1.2.3:1", &[])),
        None,
        "allowlisted"
    );
    assert!(abuse(json!({}))
        .quarantine_key(&SECRET, &client("192.0.2.7:1", &[]))
        .is_none());
}

#[test]
fn bad_settings_are_refused_where_they_are() {
    let at = |abuse: serde_json::Value| {
        policy(abuse)
            .unwrap_err()
            .location()
            .map(|l| l.pointer.clone())
    };
    let limit = |extra: serde_json::Value| {
        let mut l = json!({"name": "x", "requests": 1, "window_seconds": 1});
        l.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({"rate_limits": [l]})
    };
    assert_eq!(
        at(limit(json!({"name": "Bad Name"}))).as_deref(),
        Some("/abuse/rate_limits/0/name")
    );
    assert_eq!(
        at(limit(json!({"requests": 0}))).as_deref(),
        Some("/abuse/rate_limits/0/requests")
    );
    assert_eq!(
        at(limit(json!({"slots": 0}))).as_deref(),
        Some("/abuse/rate_limits/0/slots")
    );
    assert_eq!(
        at(limit(json!({"scope": {"group": ["nope"]}}))).as_deref(),
        Some("/abuse/rate_limits/0/scope/group/nope")
    );
    assert_eq!(
        at(limit(json!({"key": ["ip"]}))).as_deref(),
        Some("/abuse/rate_limits/0/key/0")
    );
    assert_eq!(
        at(
            json!({"quarantine": {"strikes": 1, "window_seconds": 1, "duration_seconds": 1,
            "allowlist": {"cidrs": ["10.0.0.0/99"]}}})
        )
        .as_deref(),
        Some("/abuse/quarantine/allowlist/cidrs/0")
    );
    assert_eq!(at(json!({"typo": 1})).as_deref(), Some("/abuse/typo"));
    for (field, bad) in [
        ("ipv4_prefix", 0),
        ("ipv4_prefix", 33),
        ("ipv6_prefix", 0),
        ("ipv6_prefix", 129),
    ] {
        let pointer = at(json!({"client": {field: bad}}));
        assert_eq!(pointer, Some(format!("/abuse/client/{field}")));
    }
}

#[test]
fn tables_are_named_after_the_api_and_limit() {
    let a = abuse(
        json!({"rate_limits": [{"name": "x", "requests": 1, "window_seconds": 1, "slots": 2}],
        "quarantine": {"strikes": 2, "window_seconds": 1, "duration_seconds": 1, "slots": 3}}),
    );
    let keys: Vec<String> = a
        .tables()
        .flat_map(|t| t.all_keys().collect::<Vec<_>>())
        .collect();
    assert_eq!(
        keys,
        [
            "apiguard.rl.api.x.0",
            "apiguard.rl.api.x.1",
            "apiguard.q.api.strikes.0",
            "apiguard.q.api.strikes.1",
            "apiguard.q.api.strikes.2",
            "apiguard.q.api.until.0",
            "apiguard.q.api.until.1",
            "apiguard.q.api.until.2"
        ]
    );
}

#[test]
fn the_address_is_read_only_when_a_check_keys_on_it() {
    let limit = |key: serde_json::Value| json!({"rate_limits": [{"name": "l", "key": key, "requests": 1, "window_seconds": 1}]});
    assert!(!abuse(json!({})).reads_address(), "anomaly checks alone");
    assert!(!abuse(limit(json!(["subject"]))).reads_address());
    assert!(abuse(limit(json!(["subject", "client_ip"]))).reads_address());
    let quarantine = json!({"strikes": 3, "window_seconds": 10, "duration_seconds": 30});
    assert!(abuse(json!({"quarantine": quarantine})).reads_address());
}
