//! Behavioural detection through a real Envoy with two workers: the windows are in shared
//! data, so a client is counted across both worker VMs. A client walking pet ids is found
//! and quarantined while a client reusing a few ids (with the odd 404) never is; a client
//! trying many usernames, and one failing many times with one, are refused while a user
//! who mistypes a password a few times is not; a checkout without a cart is refused, and a
//! checkout past the flow's `max_per_window`; after a learnt baseline, a burst of requests
//! to an operation is refused, an error spike and an outsized response are recorded. Every
//! client is named by the
//! `X-Forwarded-For` entry Envoy trusts (`xff_num_trusted_hops: 1`), so one test process
//! plays several.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apiguard_harness::render::Downstream;
use apiguard_harness::{EnvoyOptions, HttpVersion, Policy, Reply, Response};
use bytes::Bytes;
use http::Request;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::abuse::connections_per_worker;
use crate::events::wait_for;
use crate::fixture::{assert_problem, Proxy};

const ALICE_KEY: &str = "alice-key";
const MALLORY_KEY: &str = "mallory-key";

fn sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn start(behaviour: Value) -> Proxy {
    let document = json!({
        "openapi": "3.1.0",
        "info": {"title": "shop", "version": "1"},
        "servers": [{"url": "/v1"}],
        "components": {"securitySchemes": {"key": {"type": "apiKey", "in": "header",
            "name": "x-api-key"}}},
        "paths": {
            "/pets/{petId}": {"get": {"operationId": "showPet", "security": [{"key": []}],
                "parameters": [{"name": "petId", "in": "path", "required": true,
                    "schema": {"type": "integer"}}]}},
            "/cart": {"post": {"operationId": "addToCart", "security": [{"key": []}]}},
            "/orders": {"get": {"operationId": "listOrders", "security": [{"key": []}]}},
            "/checkout": {"post": {"operationId": "checkout", "security": [{"key": []}]}},
            "/login": {"post": {"operationId": "login", "x-apiguard": {"sensitive": "login"},
                "requestBody": {"required": true, "content": {"application/json": {
                    "schema": {"type": "object", "properties": {"user": {"type": "string"},
                        "password": {"type": "string"}}}}}}}}
        }
    });
    let policy = json!({
        "name": "shop",
        "openapi": {"document": document},
        "security": {"api_keys": {"key": [
            {"sha256": sha256(ALICE_KEY), "consumer": "alice"},
            {"sha256": sha256(MALLORY_KEY), "consumer": "mallory"}
        ]}},
        "abuse": {"quarantine": {"strikes": 50, "window_seconds": 60, "duration_seconds": 300}},
        "behaviour": behaviour
    });
    Proxy::start_with(EnvoyOptions {
        policy: Policy::Bundle(policy),
        concurrency: 2,
        ready_timeout: Duration::from_secs(60),
        downstream: Downstream {
            xff_num_trusted_hops: 1,
            ..Downstream::default()
        },
        ..EnvoyOptions::default()
    })
}

/// One request on a fresh connection (so the kernel spreads them over both workers) from
/// the client at `address`; `status`: what the upstream is to answer.
fn send(
    proxy: &Proxy,
    address: &str,
    request: http::request::Builder,
    body: &str,
    status: u16,
) -> Response {
    let reply = Reply {
        status: Some(status),
        ..Reply::default()
    };
    let request = request
        .header("user-agent", "apiguard-e2e/1")
        .header("x-forwarded-for", address)
        .header(Reply::HEADER, reply.header_value())
        .body(Bytes::from(body.to_owned()))
        .unwrap();
    proxy.client(HttpVersion::Http1).send(request).unwrap()
}

fn pet(proxy: &Proxy, address: &str, key: &str, id: u32, status: u16) -> Response {
    let request = Request::get(format!("/v1/pets/{id}")).header("x-api-key", key);
    send(proxy, address, request, "", status)
}

fn login(proxy: &Proxy, address: &str, user: &str, status: u16) -> Response {
    let request = Request::post("/v1/login").header("content-type", "application/json");
    let body = json!({"user": user, "password": "hunter2"}).to_string();
    send(proxy, address, request, &body, status)
}

/// The OCSF event lines of `rule` in Envoy's log, once there are at least `n`.
fn events(proxy: &Proxy, rule: &str, n: usize) -> Vec<Value> {
    wait_for(&format!("{n} {rule} events in the log"), || {
        let events: Vec<Value> = (proxy.envoy.log().lines())
            .filter_map(|line| line.find(r#"{"action""#).map(|at| line[at..].to_owned()))
            .filter_map(|json| serde_json::from_str::<Value>(&json).ok())
            .filter(|event| event["finding_info"]["analytic"]["uid"] == rule)
            .collect();
        (events.len() >= n).then_some(events)
    })
}

#[test]
fn an_id_walker_is_quarantined_and_a_client_reusing_ids_never_refused() {
    let proxy = start(
        json!({"bola": {"max_distinct_ids": 20, "window_seconds": 300,
        "action": "quarantine"}}),
    );
    let (alice, mallory) = ("198.51.100.7", "203.0.113.66");
    let mut first_refused = None;
    for i in 0..40u32 {
        // Alice rereads her four pets, one in ten gone (404), twice per attacker request.
        for j in 0..2 {
            let n = 2 * i + j;
            let status = if n % 10 == 9 { 404 } else { 200 };
            let response = pet(&proxy, alice, ALICE_KEY, n % 4 + 1, status);
            assert_eq!(
                response.status.as_u16(),
                status,
                "alice's request {n}: {response:?}"
            );
        }
        let response = pet(&proxy, mallory, MALLORY_KEY, 1000 + i, 200);
        match first_refused {
            None if response.status == 200 => {}
            None => {
                let problem = assert_problem("the walker", &response, 403, "behaviour.bola");
                assert!(response.header("retry-after").is_some(), "{response:?}");
                assert!(problem["detail"].is_string(), "{problem}");
                first_refused = Some(i);
            }
            Some(_) => {
                assert_problem(
                    "the quarantined walker",
                    &response,
                    403,
                    "abuse.quarantined",
                );
            }
        }
    }
    // The 21st distinct id, give or take the sketch's error at 20.
    let first = first_refused.expect("the walker was refused");
    eprintln!("the walker was refused at its id number {}", first + 1);
    assert!((19..=24).contains(&first), "refused at {first}");

    // The quarantine holds on every operation, for the walker only.
    let response = login(&proxy, mallory, "mallory", 200);
    assert_problem("the walker's login", &response, 403, "abuse.quarantined");
    assert_eq!(pet(&proxy, alice, ALICE_KEY, 2, 200).status, 200);

    // What the upstream saw: all of alice's 81 requests, the walker's ids before its refusal.
    let received = proxy.upstream.received();
    let by = |key: &str| {
        (received.iter())
            .filter(|r| r.headers.get("x-apiguard-consumer").map(String::as_str) == Some(key))
            .map(|r| r.path.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(by("alice").len(), 81);
    let walked: Vec<String> = (0..first)
        .map(|i| format!("/v1/pets/{}", 1000 + i))
        .collect();
    assert_eq!(by("mallory"), walked);
    assert_eq!(received.iter().filter(|r| r.path == "/v1/login").count(), 0);

    assert_eq!(proxy.counter("apiguard.rule.behaviour.bola.blocked"), 1.0);
    assert_eq!(proxy.counter("apiguard.abuse.quarantines_started"), 1.0);
    let workers = connections_per_worker(&proxy);
    assert!(
        workers.iter().all(|n| *n > 0),
        "both workers served: {workers:?}"
    );
    let event = &events(&proxy, "behaviour.bola", 1)[0];
    let evidence = &event["evidences"][0]["data"];
    assert_eq!(evidence["threshold"], 20, "{event}");
    assert_eq!(evidence["window_seconds"], 300, "{event}");
    assert!(evidence["count"].as_u64() > Some(20), "{event}");
    assert_eq!(
        evidence["answers"], first,
        "every earlier answer counted: {event}"
    );
    assert_eq!(event["src_endpoint"]["ip"], mallory, "{event}");
}

#[test]
fn credential_stuffing_and_brute_force_are_refused_and_a_forgetful_user_is_not() {
    let proxy = start(
        json!({"credentials": {"username": "user", "max_failures": 8,
        "max_usernames": 6, "window_seconds": 300, "action": "block"}}),
    );
    let (user, stuffer, guesser) = ("198.51.100.8", "203.0.113.9", "203.0.113.10");
    // A user mistypes the password three times, then signs in; twice over.
    for round in 0..2 {
        for attempt in 0..4 {
            let status = if attempt < 3 { 401 } else { 200 };
            let response = login(&proxy, user, "alice", status);
            assert_eq!(
                response.status.as_u16(),
                status,
                "round {round}: {response:?}"
            );
        }
    }
    // Leaked credentials, one username each.
    let mut stuffing = None;
    for i in 0..20u32 {
        let response = login(&proxy, stuffer, &format!("victim{i}@example.com"), 401);
        if response.status == 401 {
            assert!(stuffing.is_none(), "served again after a refusal: {i}");
            continue;
        }
        assert_problem(
            "the stuffer",
            &response,
            429,
            "behaviour.credential_stuffing",
        );
        assert_eq!(response.header("retry-after"), Some("300"));
        stuffing.get_or_insert(i);
    }
    let stuffing = stuffing.expect("the stuffer was refused");
    eprintln!(
        "the stuffer was refused at its username number {}",
        stuffing + 1
    );
    // The 7th username, past 6; the 8th when two of the seven share a bit of the sketch
    // (about 8 % of slot secrets).
    assert!((6..=7).contains(&stuffing), "refused at {stuffing}");
    // Password guessing on one username.
    let mut guessing = None;
    for i in 0..15 {
        let response = login(&proxy, guesser, "bob", 401);
        if response.status != 401 {
            assert_problem("the guesser", &response, 429, "behaviour.brute_force");
            guessing.get_or_insert(i);
        }
    }
    assert_eq!(guessing, Some(8), "refused after 8 failures");

    // What the upstream saw: every attempt of the user, the others' until refused.
    let received = proxy.upstream.received();
    let users: Vec<String> = (received.iter())
        .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok())
        .filter_map(|body| body["user"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(users.iter().filter(|u| *u == "alice").count(), 8);
    let victims = users.iter().filter(|u| u.starts_with("victim")).count();
    assert_eq!(victims, stuffing as usize);
    assert_eq!(users.iter().filter(|u| *u == "bob").count(), 8);
    assert!(received.iter().all(|r| !r.body.contains("victim10")));

    assert_eq!(
        proxy.counter("apiguard.rule.behaviour.credential_stuffing.blocked"),
        f64::from(20 - stuffing)
    );
    assert_eq!(
        proxy.counter("apiguard.rule.behaviour.brute_force.blocked"),
        7.0
    );
    let event = &events(&proxy, "behaviour.credential_stuffing", 1)[0];
    let evidence = &event["evidences"][0]["data"];
    assert_eq!(evidence["measure"], "distinct_usernames", "{event}");
    assert_eq!(evidence["threshold"], 6, "{event}");
    assert!(evidence["count"].as_u64() > Some(6), "{event}");
    assert!(
        !event.to_string().contains("victim"),
        "no username in the event: {event}"
    );
}

#[test]
fn a_checkout_without_a_cart_by_the_same_identity_is_refused() {
    let proxy = start(json!({"flows": [{"name": "checkout", "after": "addToCart",
        "then": "checkout", "window_seconds": 600, "action": "block"}]}));
    let address = "198.51.100.9";
    let post = |path: &str, key: &str, status: u16| {
        let request = Request::post(path).header("x-api-key", key);
        send(&proxy, address, request, "", status)
    };
    let skipped = post("/v1/checkout", MALLORY_KEY, 200);
    assert_problem("checkout first", &skipped, 403, "behaviour.flow");
    assert_eq!(post("/v1/cart", ALICE_KEY, 503).status, 503);
    let failed_cart = post("/v1/checkout", ALICE_KEY, 200);
    assert_problem("after a failed cart", &failed_cart, 403, "behaviour.flow");
    assert_eq!(post("/v1/cart", ALICE_KEY, 201).status, 201);
    // The same identity, on new connections (either worker), any number of times.
    for _ in 0..4 {
        assert_eq!(post("/v1/checkout", ALICE_KEY, 200).status, 200);
    }
    // Another identity from the same address did not add to its cart.
    let other = post("/v1/checkout", MALLORY_KEY, 200);
    assert_problem("another identity", &other, 403, "behaviour.flow");

    let received = proxy.upstream.received();
    let checkouts: Vec<&str> = (received.iter())
        .filter(|r| r.path == "/v1/checkout")
        .filter_map(|r| r.headers.get("x-apiguard-consumer").map(String::as_str))
        .collect();
    assert_eq!(
        checkouts, ["alice"; 4],
        "only alice's checkouts after her cart"
    );
    assert_eq!(proxy.counter("apiguard.rule.behaviour.flow.blocked"), 3.0);
    let workers = connections_per_worker(&proxy);
    assert!(
        workers.iter().all(|n| *n > 0),
        "both workers served: {workers:?}"
    );
}

#[test]
fn a_flow_completed_past_its_velocity_limit_is_refused_across_workers() {
    let proxy = start(json!({"flows": [{"name": "checkout", "after": "addToCart",
        "then": "checkout", "window_seconds": 600, "max_per_window": 2,
        "action": "block"}]}));
    let address = "198.51.100.10";
    let post = |path: &str, key: &str, status: u16| {
        let request = Request::post(path).header("x-api-key", key);
        send(&proxy, address, request, "", status)
    };
    assert_eq!(post("/v1/cart", ALICE_KEY, 201).status, 201);
    // A failed checkout is no completion; two that succeed are the limit.
    assert_eq!(post("/v1/checkout", ALICE_KEY, 502).status, 502);
    for _ in 0..2 {
        assert_eq!(post("/v1/checkout", ALICE_KEY, 200).status, 200);
    }
    for _ in 0..3 {
        let refused = post("/v1/checkout", ALICE_KEY, 200);
        assert_problem("past the limit", &refused, 429, "behaviour.flow_velocity");
        let retry: u64 = refused
            .header("retry-after")
            .unwrap_or("0")
            .parse()
            .unwrap_or(0);
        assert!((1..=600).contains(&retry), "{refused:?}");
    }
    // Another identity has its own count.
    assert_eq!(post("/v1/cart", MALLORY_KEY, 201).status, 201);
    assert_eq!(post("/v1/checkout", MALLORY_KEY, 200).status, 200);

    let received = proxy.upstream.received();
    let checkouts: Vec<&str> = (received.iter())
        .filter(|r| r.path == "/v1/checkout")
        .filter_map(|r| r.headers.get("x-apiguard-consumer").map(String::as_str))
        .collect();
    assert_eq!(checkouts, ["alice", "alice", "alice", "mallory"]);
    assert_eq!(
        proxy.counter("apiguard.rule.behaviour.flow_velocity.blocked"),
        3.0
    );
    let event = &events(&proxy, "behaviour.flow_velocity", 1)[0];
    let evidence = &event["evidences"][0]["data"];
    assert_eq!(evidence["measure"], "completions_of_checkout", "{event}");
    assert_eq!(
        (evidence["count"].as_u64(), evidence["threshold"].as_u64()),
        (Some(2), Some(2))
    );
}

/// Sleeps until 100 ms into the next bucket of `seconds` (the filter counts buckets by
/// the same wall clock).
fn next_bucket(seconds: u64) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let bucket = Duration::from_secs(seconds);
    let into = Duration::from_nanos((now.as_nanos() % bucket.as_nanos()) as u64);
    std::thread::sleep(bucket - into + Duration::from_millis(100));
}

#[test]
fn after_a_learnt_baseline_a_burst_is_refused_and_errors_and_a_large_response_recorded() {
    const BUCKET: u64 = 2;
    let proxy = start(
        json!({"baselines": {"bucket_seconds": BUCKET, "warmup_buckets": 3,
        "min_count": 5, "sigma": 4, "action": "block"}}),
    );
    let address = "198.51.100.11";
    let orders = |status: u16, body: Option<&str>| {
        let reply = Reply {
            status: Some(status),
            body: body.map(str::to_owned),
            ..Reply::default()
        };
        let request = Request::get("/v1/orders")
            .header("x-api-key", ALICE_KEY)
            .header("user-agent", "apiguard-e2e/1")
            .header("x-forwarded-for", address)
            .header(Reply::HEADER, reply.header_value())
            .body(Bytes::new())
            .unwrap();
        proxy.client(HttpVersion::Http1).send(request).unwrap()
    };
    let order = r#"{"orders": [{"id": 1, "total": 12.5}]}"#;
    // The normal: 3 orders and 3 pets per bucket, all answered 200, over 6 buckets.
    let mut sent = 0;
    for _ in 0..6 {
        next_bucket(BUCKET);
        for i in 0..3 {
            assert_eq!(orders(200, Some(order)).status, 200);
            assert_eq!(pet(&proxy, address, ALICE_KEY, i, 200).status, 200);
            sent += 1;
        }
    }
    assert_eq!(
        proxy.counter("apiguard.rule.behaviour.volume.monitored"),
        0.0
    );
    next_bucket(BUCKET);
    // A response 200 times the normal size goes to the client, and is recorded.
    let large = format!(r#"{{"orders": [{}]}}"#, vec![r#"{"id": 1}"#; 800].join(","));
    let response = orders(200, Some(&large));
    assert_eq!(
        (response.status.as_u16(), response.body.len()),
        (200, large.len())
    );
    // Pets failing: every answer a 500; recorded, passed on.
    for _ in 0..6 {
        assert_eq!(pet(&proxy, address, ALICE_KEY, 1, 500).status, 500);
    }
    // A burst of orders in one bucket: past about 3 + 4 × √3 ≈ 10, refused until it ends.
    next_bucket(BUCKET);
    let mut refused = 0;
    for _ in 0..30 {
        let response = orders(200, Some(order));
        if response.status == 200 {
            sent += 1;
            continue;
        }
        assert_problem("the burst", &response, 429, "behaviour.volume");
        assert!(response.header("retry-after").is_some(), "{response:?}");
        refused += 1;
    }
    eprintln!("{refused} of the burst's 30 requests refused");
    assert!(refused >= 10, "{refused} refused");

    // What the upstream saw: every order but the refused ones, every pet request.
    let received = proxy.upstream.received();
    let count = |path: &str| received.iter().filter(|r| r.path == path).count();
    assert_eq!(count("/v1/orders"), sent + 1, "the large one too");
    assert_eq!(count("/v1/pets/1"), 6 + 6);
    assert_eq!(
        proxy.counter("apiguard.rule.behaviour.volume.blocked"),
        f64::from(refused)
    );
    assert!(proxy.counter("apiguard.rule.behaviour.errors.monitored") >= 1.0);
    assert_eq!(
        proxy.counter("apiguard.rule.behaviour.response_size.monitored"),
        1.0
    );
    let event = &events(&proxy, "behaviour.volume", 1)[0];
    let evidence = &event["evidences"][0]["data"];
    assert!(
        evidence["mean"]
            .as_u64()
            .is_some_and(|m| (2..=3).contains(&m)),
        "{event}"
    );
    assert_eq!(evidence["window_seconds"].as_u64(), Some(BUCKET), "{event}");
    let event = &events(&proxy, "behaviour.response_size", 1)[0];
    let evidence = &event["evidences"][0]["data"];
    assert_eq!(
        evidence["count"].as_u64(),
        Some(large.len() as u64),
        "{event}"
    );
    assert_eq!(
        evidence["mean"].as_u64(),
        Some(order.len() as u64),
        "{event}"
    );
    let event = &events(&proxy, "behaviour.errors", 1)[0];
    let evidence = &event["evidences"][0]["data"];
    assert_eq!(evidence["measure"], "errors_permille", "{event}");
    assert_eq!(evidence["mean"].as_u64(), Some(0), "{event}");
    let workers = connections_per_worker(&proxy);
    assert!(
        workers.iter().all(|n| *n > 0),
        "both workers served: {workers:?}"
    );
}
