//! Faults of what the filter depends on, each through a real Envoy: the identity
//! provider's JWKS endpoint slow, answering garbage or a huge body, rotating keys under
//! load; the event collector answering 500 or slower than the sender's timeout; the
//! upstream resetting connections or answering before it read the body; Envoy with four
//! workers. Each test ends with requests answered as the policy says, nothing stuck (a
//! good request after the fault is served), and the failure counted in a stat.
//!
//! Not here: the JWKS endpoint down and the collector down or silent (`tokens.rs`,
//! `events.rs`); a burst of configuration pushes (`hot_reload.rs`, with the policy
//! delivered by ECDS).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use apiguard_harness::{
    Delivery, EchoUpstream, EnvoyOptions, Fault, HttpVersion, JwksServer, Policy, Reply, Response,
};
use bytes::Bytes;
use http::Request;
use serde_json::{json, Value};

use crate::events::{received, start as start_with_collector, wait_for};
use crate::fixture::{assert_problem, bundled, Proxy};
use crate::tokens::{eventually, get, idp_policy, set, Key};

/// The petstore behind the `idp` provider, its keys from `jwks` fetched with a timeout
/// of `timeout_seconds`, in Envoy with `workers` workers.
fn start_idp(jwks: &JwksServer, timeout_seconds: u64, workers: u16) -> Proxy {
    let mut policy = idp_policy();
    let uri = &mut policy["security"]["providers"]["idp"]["remote_jwks"]["http_uri"];
    uri["timeout"] = json!(format!("{timeout_seconds}s"));
    Proxy::start_with(EnvoyOptions {
        policy: Policy::Bundle(policy),
        jwks: Some(jwks.addr()),
        concurrency: workers,
        ..EnvoyOptions::default()
    })
}

/// Waits for one more failed JWKS fetch than `before` counted; returns the new count.
fn next_fetch_failure(proxy: &Proxy, before: f64) -> f64 {
    let mut now = before;
    eventually("one more failed fetch", || {
        now = proxy.counter("apiguard.jwks.fetch_failed");
        now > before
    });
    now
}

/// The `auth.jwks_fetch_failed` events in Envoy's log.
fn fetch_failures_logged(proxy: &Proxy) -> Vec<String> {
    (proxy.envoy.log().lines())
        .filter(|line| line.contains(r#""uid":"auth.jwks_fetch_failed""#))
        .map(str::to_owned)
        .collect()
}

/// Serves `body` from now on and waits until a fetch of it failed with `cause` (each
/// failure is logged as an event naming its cause, and counted).
fn serve_until_it_fails(proxy: &Proxy, jwks: &JwksServer, body: &str, cause: &str) {
    let count = || {
        (fetch_failures_logged(proxy).iter())
            .filter(|line| line.contains(cause))
            .count()
    };
    let (logged, counted) = (count(), proxy.counter("apiguard.jwks.fetch_failed"));
    jwks.set_keys(body);
    eventually(&format!("a fetch failing with `{cause}`"), || {
        count() > logged
    });
    assert!(proxy.counter("apiguard.jwks.fetch_failed") > counted);
}

/// Only what the filter allowed reached the upstream.
fn assert_forwarded_only_allowed(proxy: &Proxy) {
    let allowed = proxy.counter("apiguard.requests_allowed");
    assert_eq!(proxy.upstream.received().len() as f64, allowed);
}

/// Waits until a request with `token` is served (the keys it needs are installed).
fn eventually_served(proxy: &Proxy, token: &str, what: &str) {
    eventually(what, || get(proxy, Some(token), &[]).status == 200);
}

/// Nothing stuck: a request with `token` is answered 200, and well before any timeout
/// in play (each is a second or more).
fn assert_served_promptly(proxy: &Proxy, token: &str) {
    let started = Instant::now();
    let response = get(proxy, Some(token), &[]);
    assert_eq!(response.status, 200, "{response:?}");
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
}

#[test]
fn a_jwks_endpoint_slower_than_its_timeout_is_a_counted_failure_not_a_wait() {
    let key = Key::new("slow");
    let jwks = JwksServer::start(&set(&[&key])).unwrap();
    jwks.set_delay(Duration::from_secs(5));
    let proxy = start_idp(&jwks, 1, 2);
    let failed = next_fetch_failure(&proxy, 0.0);
    // Envoy gave up after the provider's timeout: its own count says why.
    let timeouts = proxy.envoy.stats().unwrap();
    let series = "envoy_cluster_upstream_rq_timeout{envoy_cluster_name=\"jwks\"}";
    assert!(timeouts.get(series) >= Some(1.0), "{series}");
    // Envoy answers a call it timed out itself, with a 504.
    eventually("the timeout in the failure's event", || {
        (fetch_failures_logged(&proxy).iter()).any(|line| line.contains("(status 504)"))
    });

    // No keys yet: refused as unavailable at once, not held until a fetch ends.
    let token = key.token("pets:read", 3600);
    let started = Instant::now();
    let response = get(&proxy, Some(&token), &[]);
    assert_problem("no keys yet", &response, 503, "auth.keys_unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the request waited"
    );
    assert!(proxy.counter("apiguard.rule.auth.keys_unavailable.blocked") >= 1.0);

    // Retried while slow (each attempt a counted failure), served once it is fast.
    next_fetch_failure(&proxy, failed);
    jwks.set_delay(Duration::ZERO);
    eventually_served(&proxy, &token, "the keys arrive once the endpoint is fast");
    assert_served_promptly(&proxy, &token);
    assert_forwarded_only_allowed(&proxy);
}

#[test]
fn a_jwks_endpoint_answering_garbage_is_a_counted_failure_and_good_keys_are_kept() {
    let key = Key::new("good");
    let token = key.token("pets:read", 3600);
    // Not JSON; JSON that is no key set; a key set without one usable key: each with
    // the cause its failure names.
    let garbage = [
        ("<html>502 Bad Gateway</html>", "expected value"),
        (
            r#"{"issuer": "https://idp.test", "keys": "none"}"#,
            "invalid type",
        ),
        (
            r#"{"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}"#,
            "not a point on P-256",
        ),
    ];
    let jwks = JwksServer::start(garbage[0].0).unwrap();
    let proxy = start_idp(&jwks, 1, 2);
    for (body, cause) in garbage {
        serve_until_it_fails(&proxy, &jwks, body, cause);
        let response = get(&proxy, Some(&token), &[]);
        assert_problem(body, &response, 503, "auth.keys_unavailable");
    }

    jwks.set_keys(&set(&[&key]));
    eventually_served(&proxy, &token, "good keys are installed");
    // Garbage again: each refresh fails, and the keys fetched before keep serving.
    for (body, cause) in garbage {
        serve_until_it_fails(&proxy, &jwks, body, cause);
        assert_served_promptly(&proxy, &token);
    }
    assert!(proxy.counter("apiguard.jwks.fetch_succeeded") >= 1.0);
    assert_forwarded_only_allowed(&proxy);
}

/// A key set larger than the filter's cap on a fetched set (64 KiB, `MAX_JWKS_BYTES` in
/// `filter/src/host/jwks.rs`) and smaller than Envoy's on a call's answer (32 MiB): Envoy
/// hands it over whole, and the filter refuses to read it. The set is valid JSON made of
/// valid keys, so only its size is refused.
#[test]
fn a_huge_jwks_body_is_refused_by_its_size_and_counted() {
    let key = Key::new("good");
    let token = key.token("pets:read", 3600);
    let padding = Key::new("padding").jwk();
    let mut keys: Vec<Value> = (0..3000)
        .map(|i| {
            let mut key = padding.clone();
            key["kid"] = json!(format!("padding-{i}"));
            key
        })
        .collect();
    keys.push(key.jwk());
    let huge = json!({ "keys": keys }).to_string();
    assert!(huge.len() > 4 * 64 * 1024, "{} bytes", huge.len());
    let jwks = JwksServer::start(&huge).unwrap();
    let proxy = start_idp(&jwks, 1, 2);
    let over_the_cap = "more than 65536 bytes";
    serve_until_it_fails(&proxy, &jwks, &huge, over_the_cap);
    let response = get(&proxy, Some(&token), &[]);
    assert_problem("huge set", &response, 503, "auth.keys_unavailable");

    jwks.set_keys(&set(&[&key]));
    eventually_served(&proxy, &token, "a set of normal size is installed");
    serve_until_it_fails(&proxy, &jwks, &huge, over_the_cap);
    assert_served_promptly(&proxy, &token);
    assert_forwarded_only_allowed(&proxy);
}

/// Regression: an answer over Envoy's own cap on a call's answer
/// (`http.async_response_buffer_limit`, 32 MiB) makes Envoy reset the call and report it
/// with no headers; reading the missing header map made the SDK panic, which killed the
/// VM (`proxy_on_http_call_response failed: Uncaught RuntimeError: unreachable`) on every
/// refresh. It is a counted failure, and the keys fetched before keep serving.
#[test]
fn a_jwks_answer_over_envoys_buffer_limit_is_a_counted_failure_not_a_dead_vm() {
    let key = Key::new("good");
    let token = key.token("pets:read", 3600);
    let jwks = JwksServer::start(&set(&[&key])).unwrap();
    let proxy = start_idp(&jwks, 5, 2);
    eventually_served(&proxy, &token, "the keys are installed");
    let jwk = key.jwk().to_string();
    let copies = (33 << 20) / jwk.len();
    let over_envoys_cap = format!(r#"{{"keys": [{}{jwk}]}}"#, format!("{jwk},").repeat(copies));
    serve_until_it_fails(&proxy, &jwks, &over_envoys_cap, "no answer");
    serve_until_it_fails(&proxy, &jwks, &over_envoys_cap, "no answer");
    assert_served_promptly(&proxy, &token);
    let log = proxy.envoy.log();
    let panics: Vec<&str> = log.lines().filter(|l| l.contains("panic")).collect();
    assert!(panics.is_empty(), "{panics:#?}");
    assert_forwarded_only_allowed(&proxy);
}

/// What one client thread saw: (key id, status, rule of a refusal).
type Seen = Vec<(&'static str, u16, Option<String>)>;

#[test]
fn keys_rotating_under_load_answer_every_request_per_policy() {
    let (old, new) = (Key::new("old"), Key::new("new"));
    let tokens = [
        ("old", old.token("pets:read", 3600)),
        ("new", new.token("pets:read", 3600)),
    ];
    let jwks = JwksServer::start(&set(&[&old])).unwrap();
    let proxy = start_idp(&jwks, 1, 2);
    // Each worker's VM fetches its own keys: wait until a run of requests on fresh
    // connections (spread over both workers) is served, not just the first.
    eventually("every worker has the first key", || {
        (0..16).all(|_| get(&proxy, Some(&tokens[0].1), &[]).status == 200)
    });
    let before = proxy.counter("apiguard.requests_inspected");
    let unavailable = proxy.counter("apiguard.rule.auth.keys_unavailable.blocked");

    // Three clients send tokens of both keys on fresh connections while the endpoint
    // rotates: the new key published beside the old one, then the old one retired.
    let stop = AtomicBool::new(false);
    let seen = Mutex::new(Seen::new());
    let probes = thread::scope(|scope| {
        for _ in 0..3 {
            scope.spawn(|| {
                let mut mine = Seen::new();
                // Paced, and bounded whatever happens: at most 30 s of requests.
                for (kid, token) in tokens.iter().cycle().take(1500) {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    thread::sleep(Duration::from_millis(20));
                    let response = get(&proxy, Some(token), &[]);
                    let rule = (response.status != 200)
                        .then(|| response.json().ok())
                        .flatten()
                        .and_then(|problem| problem["rule"].as_str().map(str::to_owned));
                    mine.push((*kid, response.status.as_u16(), rule));
                }
                seen.lock().unwrap().extend(mine);
            });
        }
        let mut probes = 0;
        let mut probe = |token: &str, status: u16| {
            probes += 1;
            get(&proxy, Some(token), &[]).status == status
        };
        jwks.set_keys(&set(&[&new, &old]));
        eventually("the new key is picked up", || probe(&tokens[1].1, 200));
        jwks.set_keys(&set(&[&new]));
        eventually("the old key is retired", || probe(&tokens[0].1, 401));
        stop.store(true, Ordering::SeqCst);
        probes
    });

    let seen = seen.into_inner().unwrap();
    assert!(seen.len() >= 30, "only {} requests under load", seen.len());
    for (kid, status, rule) in &seen {
        let per_policy = match status {
            200 => rule.is_none(),
            // A key not yet published, or already retired: an invalid token.
            401 => rule.as_deref() == Some("auth.invalid"),
            _ => false,
        };
        assert!(per_policy, "{kid}: {status} {rule:?}");
    }
    let served = |kid: &str| seen.iter().filter(|s| s.0 == kid && s.1 == 200).count();
    assert!(served("old") > 0 && served("new") > 0, "{seen:?}");
    // Every request was inspected and counted once; none failed for want of keys.
    let sent = before + (seen.len() + probes) as f64;
    assert_eq!(proxy.counter("apiguard.requests_inspected"), sent);
    assert_eq!(
        proxy.counter("apiguard.rule.auth.keys_unavailable.blocked"),
        unavailable
    );
    assert_eq!(proxy.counter("apiguard.jwks.fetch_failed"), 0.0);
    assert_forwarded_only_allowed(&proxy);
    assert_served_promptly(&proxy, &tokens[1].1);
}

/// The collector fails (`fault`) while refused requests produce events; requests are
/// answered as without delivery, the lost events are counted, and once the collector is
/// healthy again the next event reaches it.
fn a_failing_collector_costs_counted_events_and_recovers(fault: Fault, timeout_ms: u64) {
    let collector = EchoUpstream::start().unwrap();
    collector.set_fault(Some(fault));
    let sender = json!({"format": "ocsf", "path": "/ocsf", "flush_ms": 200,
        "fold_window_ms": 0, "timeout_ms": timeout_ms, "batch_max": 1});
    let proxy = start_with_collector(collector.addr(), sender);

    for i in 0..3 {
        let started = Instant::now();
        assert_eq!(proxy.get(&format!("/v1/admin/{i}")).status, 404);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "a request waited"
        );
    }
    assert_eq!(proxy.get("/v1/pets").status, 200);
    wait_for("three findings dropped", || {
        (proxy.counter("apiguard.events.dropped") >= 3.0).then_some(())
    });
    let failed = proxy.counter("apiguard.events.batches_failed");
    assert!(failed >= 1.0, "{failed}");
    assert_eq!(proxy.counter("apiguard.events.sent"), 0.0);
    // The collector did receive them: it is its answer that failed them.
    assert!(!received(&collector, "route.unknown_path").is_empty());

    collector.set_fault(None);
    assert_eq!(proxy.get("/v1/admin/healed").status, 404);
    // Wait for the healed finding itself: another record (a VM's `policy_loaded`) may be
    // the first one sent once the collector answers again.
    wait_for("delivery once the collector is healthy", || {
        let delivered = received(&collector, "route.unknown_path");
        (delivered.iter())
            .any(|finding| finding["http_request"]["url"]["path"] == json!("/v1/admin/healed"))
            .then_some(())
    });
    assert!(proxy.counter("apiguard.events.sent") >= 1.0);
    // Every finding is accounted for once, sent or dropped: the four refusals and the
    // pass's two recorded findings (it has no User-Agent, and the echo is not the pet list
    // the contract declares), and the VMs' `policy_loaded` records if they were queued
    // (a VM configured before the sender registered its queue only logs its own).
    let settled =
        || proxy.counter("apiguard.events.sent") + proxy.counter("apiguard.events.dropped");
    wait_for("every finding settled", || (settled() >= 6.0).then_some(()));
    thread::sleep(Duration::from_millis(500));
    let loaded = (proxy.envoy.log().lines())
        .filter(|line| line.contains(r#""uid":"apiguard.policy_loaded""#))
        .count() as f64;
    assert!((6.0..=6.0 + loaded).contains(&settled()), "{}", settled());
}

#[test]
fn a_collector_answering_500_costs_counted_events_not_requests() {
    a_failing_collector_costs_counted_events_and_recovers(Fault::Status(500), 2000);
}

#[test]
fn a_collector_slower_than_the_timeout_costs_counted_events_not_requests() {
    let slow = Fault::Delay(Duration::from_millis(1500));
    a_failing_collector_costs_counted_events_and_recovers(slow, 300);
}

/// As for a key set, an answer over Envoy's cap on a call's answer (32 MiB) comes without
/// headers: the sender counts the batch failed. (The SDK's getter the sender used before
/// survived that, unlike the key fetch's; both now look at the header count first.)
#[test]
fn a_collector_answer_over_envoys_buffer_limit_costs_counted_events_not_requests() {
    let huge = Fault::Huge(33 << 20);
    a_failing_collector_costs_counted_events_and_recovers(huge, 5000);
}

const VERSIONS: [HttpVersion; 2] = [HttpVersion::Http1, HttpVersion::H2c];

fn send(
    proxy: &Proxy,
    version: HttpVersion,
    method: &str,
    target: &str,
    reply: &Reply,
    body: &str,
) -> Response {
    let request = Request::builder()
        .method(method)
        .uri(target)
        .header("content-type", "application/json")
        .header(Reply::HEADER, reply.header_value())
        .body(Bytes::from(body.to_owned()))
        .unwrap();
    proxy.client(version).send(request).unwrap()
}

/// The filter's request counters: inspected, and allowed + blocked + monitored.
fn outcomes(proxy: &Proxy) -> (f64, f64) {
    let stats = proxy.envoy.stats().unwrap();
    let counter = |name: &str| stats.wasm_counter(name).unwrap_or(0.0);
    let decided = ["allowed", "blocked", "monitored"]
        .iter()
        .map(|outcome| counter(&format!("apiguard.requests_{outcome}")))
        .sum();
    (counter("apiguard.requests_inspected"), decided)
}

#[test]
fn an_upstream_resetting_mid_request_is_envoys_503_and_the_filter_carries_on() {
    let proxy = Proxy::start(Policy::Bundle(bundled("petstore")));
    let reset = Reply {
        reset: true,
        ..Reply::default()
    };
    let pet = r#"{"name": "Rex"}"#;
    for version in VERSIONS {
        for (method, target, body) in [("GET", "/v1/pets", ""), ("POST", "/v1/pets", pet)] {
            let response = send(&proxy, version, method, target, &reset, body);
            // The router's own answer to a connection closed before any response.
            assert_eq!(response.status, 503, "{version:?} {method}: {response:?}");
            assert!(
                response.text().contains("reset before headers"),
                "{response:?}"
            );
        }
    }
    assert_eq!(proxy.upstream.heads().len(), 4);
    assert!(proxy.upstream.received().is_empty());

    // The VMs are alive and still inspect: a refusal, then a pass.
    assert_eq!(proxy.get("/v1/admin").status, 404);
    let healthy = send(
        &proxy,
        HttpVersion::Http1,
        "POST",
        "/v1/pets",
        &Reply::default(),
        pet,
    );
    assert_eq!(healthy.status, 200, "{healthy:?}");
    let (inspected, decided) = outcomes(&proxy);
    assert_eq!(inspected, 6.0);
    assert_eq!(decided, inspected, "each request has one outcome");
    assert_eq!(
        proxy.counter("apiguard.rule.route.unknown_path.blocked"),
        1.0
    );
    // Envoy's 503 is its own reply, not the upstream's answer: no contract finding.
    assert_eq!(
        proxy.counter("apiguard.rule.response.media_type.monitored"),
        0.0,
        "Envoy's reply was checked as the upstream's"
    );
}

/// The upstream sends the head and half of a valid answer, then resets. With responses
/// enforced the filter holds the body until its end to check it, which never comes: the
/// client never gets the half answer as if whole. If the head has gone out, Envoy resets
/// the client's stream; if not, Envoy answers the reset itself (503, `text/plain`), and
/// the filter lets that reply through unchecked: it is Envoy's (`response.code_details`
/// is not `via_upstream`), so the contract has nothing to say about it. The filter is not
/// left waiting, and its VM goes on.
#[test]
fn an_upstream_resetting_mid_answer_never_delivers_half_and_the_filter_carries_on() {
    let mut policy = bundled("petstore");
    policy["responses"] = json!({"mode": "enforce"});
    let proxy = Proxy::start(Policy::Bundle(policy));
    let pets = r#"[{"id": 1, "name": "Rex"}, {"id": 2, "name": "Max"}]"#;
    let cut = Reply {
        cut: true,
        body: Some(pets.to_owned()),
        ..Reply::default()
    };
    for version in VERSIONS {
        let request = Request::get("/v1/pets")
            .header(Reply::HEADER, cut.header_value())
            .body(Bytes::new())
            .unwrap();
        let started = Instant::now();
        match proxy.client(version).send(request) {
            Err(reset) => eprintln!("{version:?}: the half answer: {reset}"),
            Ok(response) => {
                // Envoy's own reply to the reset, passed on unchecked: not the upstream's.
                assert_eq!(response.status, 503, "{version:?}: {response:?}");
                assert!(!response.text().contains("Rex"), "{response:?}");
                eprintln!("{version:?}: the half answer: Envoy's 503");
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{version:?}: stalled"
        );
    }
    assert_eq!(proxy.upstream.received().len(), 2);

    let whole = Reply {
        body: Some(pets.to_owned()),
        ..Reply::default()
    };
    for version in VERSIONS {
        let response = send(&proxy, version, "GET", "/v1/pets", &whole, "");
        assert_eq!(response.status, 200, "{version:?}: {response:?}");
        assert_eq!(response.json().unwrap()[1]["name"], "Max");
    }
    assert_eq!(proxy.get("/v1/admin").status, 404);
    let (inspected, decided) = outcomes(&proxy);
    assert_eq!((inspected, decided), (5.0, 5.0));
    assert_eq!(
        proxy.counter("apiguard.rule.response.media_type.blocked"),
        0.0,
        "Envoy's reply was checked as the upstream's"
    );
}

#[test]
fn an_upstream_answering_before_the_body_is_read_is_passed_on_per_envoy() {
    let proxy = Proxy::start(Policy::Bundle(bundled("petstore")));
    let early = Reply {
        early: true,
        status: Some(201),
        body: Some(r#"{"id": 1, "name": "Rex"}"#.to_owned()),
        ..Reply::default()
    };
    // Whitespace is JSON: a valid pet of any size.
    let pet = |padding: usize| format!(r#"{{"name": "Rex"{}}}"#, " ".repeat(padding));
    for version in VERSIONS {
        // A body the upstream's first read takes in with the head: the answer arrives.
        let response = send(&proxy, version, "POST", "/v1/pets", &early, &pet(1024));
        assert_eq!(response.status, 201, "{version:?}: {response:?}");
        assert_eq!(response.json().unwrap()["name"], "Rex");
        // A body still being sent when the upstream answers and closes: closing a socket
        // with unread data is a TCP reset, which can reach Envoy before the answer does;
        // Envoy then answers 503 itself. Either way, an answer, at once.
        let response = send(&proxy, version, "POST", "/v1/pets", &early, &pet(1 << 19));
        eprintln!(
            "{version:?}: the early answer to a large body: {}",
            response.status
        );
        match response.status.as_u16() {
            201 => assert_eq!(response.json().unwrap()["name"], "Rex"),
            503 => assert!(response.text().contains("reset"), "{response:?}"),
            _ => panic!("{version:?}: {response:?}"),
        }
    }
    // The upstream answered each without reading: it recorded empty bodies.
    let bodies: Vec<String> = (proxy.upstream.received().into_iter())
        .map(|request| request.body)
        .collect();
    assert_eq!(bodies, ["", "", "", ""]);
    // The VM carries on: it still refuses an invalid body before the upstream sees it.
    let invalid = send(
        &proxy,
        HttpVersion::Http1,
        "POST",
        "/v1/pets",
        &early,
        r#"{"name": 7}"#,
    );
    assert_problem("invalid pet", &invalid, 400, "body.schema");
    assert_eq!(proxy.upstream.received().len(), 4);
    let (inspected, decided) = outcomes(&proxy);
    assert_eq!((inspected, decided), (5.0, 5.0));
}

/// Requests spread over four workers' VMs, sent at once by eight clients on fresh
/// connections: the rate limit and the quarantine, whose state is in shared data, hold
/// as one; every refusal is one finding delivered once.
#[test]
fn four_workers_share_the_rate_limit_and_quarantine_and_deliver_each_finding_once() {
    const LIMIT: usize = 10;
    let mut policy = bundled("petstore");
    policy["abuse"] = json!({
        "rate_limits": [{"name": "per-ip", "requests": LIMIT, "window_seconds": 600}],
        "quarantine": {"strikes": 3, "window_seconds": 600, "duration_seconds": 600}
    });
    let collector = EchoUpstream::start().unwrap();
    let sender = json!({"format": "ocsf", "path": "/ocsf", "flush_ms": 200, "fold_window_ms": 0});
    let proxy = Proxy::start_with(EnvoyOptions {
        policy: Policy::Bundle(policy),
        concurrency: 4,
        delivery: Some(Delivery {
            collector: collector.addr(),
            sender,
        }),
        ready_timeout: Duration::from_secs(60),
        ..EnvoyOptions::default()
    });

    let started = Instant::now();
    let statuses: Vec<u16> = thread::scope(|scope| {
        let clients: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    (0..6)
                        .map(|_| proxy.get("/v1/pets").status.as_u16())
                        .collect::<Vec<u16>>()
                })
            })
            .collect();
        clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect()
    });
    // One more admission per minute the burst took (600 s / 10 requests).
    let refills = usize::try_from(started.elapsed().as_secs() / 60).unwrap();
    let count = |status: u16| statuses.iter().filter(|s| **s == status).count();
    let (admitted, limited, quarantined) = (count(200), count(429), count(403));
    assert_eq!(admitted + limited + quarantined, 48, "{statuses:?}");
    assert!(
        (LIMIT..=LIMIT + refills).contains(&admitted),
        "{statuses:?}"
    );
    // Three strikes, then quarantine; a 429 may race past the start on another worker.
    assert!(limited >= 3 && quarantined > 0, "{statuses:?}");
    assert_eq!(proxy.upstream.received().len(), admitted);
    let workers = busy_workers(&proxy);
    assert!(workers >= 2, "only {workers} of 4 workers served");
    assert_eq!(proxy.counter("apiguard.abuse.quarantines_started"), 1.0);
    assert_eq!(proxy.counter("apiguard.abuse.slot_lost"), 0.0);

    // Delivered once per finding: the collector's counts add up to the refusals, and
    // to what the sender counted as sent.
    let findings = |rule: &str| -> u64 {
        (received(&collector, rule).iter())
            .filter_map(|finding| finding["count"].as_u64())
            .sum()
    };
    let everything = || -> u64 {
        (collector.received().iter())
            .flat_map(|batch| serde_json::from_str::<Vec<Value>>(&batch.body).unwrap())
            .filter_map(|finding| finding["count"].as_u64())
            .sum()
    };
    wait_for("every refusal at the collector", || {
        let done = findings("ratelimit.exceeded") >= limited as u64
            && findings("abuse.quarantined") >= quarantined as u64
            && findings("abuse.quarantine_started") >= 1;
        done.then_some(())
    });
    // Nothing arrives twice, even late.
    thread::sleep(Duration::from_millis(600));
    assert_eq!(findings("ratelimit.exceeded"), limited as u64);
    assert_eq!(findings("abuse.quarantined"), quarantined as u64);
    assert_eq!(findings("abuse.quarantine_started"), 1);
    assert_eq!(proxy.counter("apiguard.events.sent"), everything() as f64);
    assert_eq!(proxy.counter("apiguard.events.dropped"), 0.0);
}

/// How many of Envoy's workers accepted connections on the API listener.
fn busy_workers(proxy: &Proxy) -> usize {
    let stats = proxy
        .envoy
        .admin_get("/stats?filter=downstream_cx_total")
        .unwrap();
    stats
        .lines()
        .filter(|line| line.starts_with("listener.") && line.contains(".worker_"))
        .filter_map(|line| line.rsplit_once(": ")?.1.trim().parse::<u64>().ok())
        .filter(|connections| *connections > 0)
        .count()
}
