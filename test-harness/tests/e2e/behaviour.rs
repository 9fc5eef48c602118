//! Behavioural detection through a real Envoy with two workers: the windows are in shared
//! data, so a client is counted across both worker VMs. A client walking pet ids is found
//! and quarantined while a client reusing a few ids (with the odd 404) never is; a client
//! trying many usernames, and one failing many times with one, are refused while a user
//! who mistypes a password a few times is not; a checkout without a cart is refused. Every
//! client is named by the
//! `X-Forwarded-For` entry Envoy trusts (`xff_num_trusted_hops: 1`), so one test process
//! plays several.

use std::time::Duration;

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
