use serde_json::json;

use super::*;
use crate::policy::Policy;
use crate::slots::tests::{MemoryStore, SECRET};

const SECOND: u64 = 1_000_000_000;
const T0: u64 = 1_700_000_000 * SECOND;

fn policy(abuse: serde_json::Value) -> Result<Policy, PolicyError> {
    let document = json!({"openapi": "3.1.0", "paths": {
        "/a": {"get": {"operationId": "getA"}, "post": {"operationId": "postA"}},
        "/b": {"get": {"operationId": "getB"}}}});
    let config = json!({"name": "api", "abuse": abuse, "openapi": {"document": document}});
    Policy::compile(config.to_string().as_bytes())
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

#[test]
fn the_client_ip_is_the_downstream_or_the_trusted_forwarded_hop() {
    let direct = abuse(json!({}));
    let xff = [
        ("x-forwarded-for", "203.0.113.9, 198.51.100.1"),
        ("x-forwarded-for", "10.0.0.2"),
    ];
    let ip = |a: &Abuse, down: &str, headers| {
        a.client_ip(&client(down, headers)).map(|ip| ip.to_string())
    };
    assert_eq!(
        ip(&direct, "192.0.2.1:5000", &xff).as_deref(),
        Some("192.0.2.1")
    );
    assert_eq!(ip(&direct, "[::1]:5000", &[]).as_deref(), Some("::1"));
    let one = abuse(json!({"client": {"trusted_hops": 1}}));
    assert_eq!(
        ip(&one, "192.0.2.1:5000", &xff).as_deref(),
        Some("10.0.0.2")
    );
    let two = abuse(json!({"client": {"trusted_hops": 2}}));
    assert_eq!(
        ip(&two, "192.0.2.1:5000", &xff).as_deref(),
        Some("198.51.100.1")
    );
    let many = abuse(json!({"client": {"trusted_hops": 9}}));
    assert_eq!(
        ip(&many, "192.0.2.1:5000", &xff).as_deref(),
        Some("192.0.2.1"),
        "too few: downstream"
    );
    let junk = [("x-forwarded-for", "not-an-ip")];
    assert_eq!(
        ip(&one, "192.0.2.1:5000", &junk).as_deref(),
        Some("192.0.2.1")
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
