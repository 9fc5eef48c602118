//! The contract canary through a real Envoy: a policy whose `candidate` tightens one
//! parameter and loosens another. The enforced contract alone decides what reaches the
//! upstream; the canary counts, and reports as events, exactly the requests the candidate
//! would decide otherwise.

use apiguard_harness::{Delivery, EchoUpstream, EnvoyOptions, Policy};
use serde_json::{json, Value};

use crate::events::{received, wait_for};
use crate::fixture::{assert_problem, bundled, Proxy};

/// The petstore policy with a candidate: `listPets`'s `limit` at most 10 (was 100), its
/// `cursor` up to 1,024 characters (was 256).
fn policy_with_candidate() -> Value {
    let mut policy = bundled("petstore");
    let mut candidate = policy["openapi"].clone();
    let parameters = &mut candidate["document"]["paths"]["/pets"]["get"]["parameters"];
    let parameters = parameters.as_array_mut().unwrap();
    for parameter in parameters {
        match parameter["name"].as_str() {
            Some("limit") => parameter["schema"]["maximum"] = json!(10),
            Some("cursor") => parameter["schema"]["maxLength"] = json!(1024),
            _ => {}
        }
    }
    policy["candidate"] = json!({"openapi": candidate});
    policy
}

#[test]
fn the_candidate_counts_what_it_would_change_and_decides_nothing() {
    let collector = EchoUpstream::start().unwrap();
    let sender = json!({"format": "ocsf", "path": "/ocsf", "flush_ms": 200});
    let proxy = Proxy::start_with(EnvoyOptions {
        policy: Policy::Bundle(policy_with_candidate()),
        delivery: Some(Delivery {
            collector: collector.addr(),
            sender,
        }),
        ..EnvoyOptions::default()
    });
    let long_cursor = format!("/v1/pets?cursor={}", "c".repeat(300));
    let agreed_allowed = ["/v1/pets?limit=5", "/v1/pets?cursor=abc"];
    let would_block = [
        "/v1/pets?limit=50",
        "/v1/pets?limit=11",
        "/v1/pets?limit=100",
    ];
    for target in agreed_allowed.iter().chain(&would_block) {
        assert_eq!(proxy.get(target).status, 200, "{target}");
    }
    // Refused by both: not counted.
    assert_problem(
        "limit=500",
        &proxy.get("/v1/pets?limit=500"),
        400,
        "params.invalid",
    );
    // Refused now, allowed by the candidate: still refused.
    for _ in 0..2 {
        let response = proxy.get(&long_cursor);
        assert_problem("a long cursor", &response, 400, "params.invalid");
    }

    // The upstream saw what the enforced contract allows, and nothing else.
    let paths: Vec<_> = (proxy.upstream.received().into_iter())
        .map(|r| format!("{}?{}", r.path, r.query.unwrap_or_default()))
        .collect();
    let forwarded: Vec<_> = agreed_allowed.iter().chain(&would_block).copied().collect();
    assert_eq!(paths, forwarded);

    let counters = [
        ("apiguard.canary.listPets.params.invalid.would_block", 3.0),
        ("apiguard.canary.listPets.params.invalid.would_allow", 2.0),
        ("apiguard.canary.would_block", 3.0),
        ("apiguard.canary.would_allow", 2.0),
        ("apiguard.requests_allowed", 5.0),
        ("apiguard.requests_blocked", 3.0),
    ];
    let stats = proxy.envoy.stats().unwrap();
    for (name, value) in counters {
        assert_eq!(stats.wasm_counter(name), Some(value), "{name}");
    }

    // The events, folded like every other (by rule, client and operation): their counts
    // add up to exactly the differing requests.
    for (rule, count) in [("canary.would_block", 3), ("canary.would_allow", 2)] {
        let events = wait_for(&format!("{count} {rule} at the collector"), || {
            let events = received(&collector, rule);
            let total: u64 = events.iter().filter_map(|e| e["count"].as_u64()).sum();
            (total == count).then_some(events)
        });
        let first = &events[0];
        let findings = &first["unmapped"]["violations"];
        assert_eq!(findings[0]["rule"], "params.invalid", "{first}");
        assert_eq!(findings[0]["in"], "candidate", "{first}");
        assert_eq!(findings[0]["name"], "/paths/~1pets/get", "{first}");
        assert_eq!(first["api"]["operation"], "listPets", "{first}");
    }
}
