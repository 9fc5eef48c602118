//! The remote policy source through a real Envoy: the plugin configuration names a bundle
//! on a policy server (the harness's [`JwksServer`], which answers with an ETag and 304 to
//! a matching `If-None-Match`) reached through the `jwks` cluster; each VM polls it on its
//! root's tick. The switch is seen on one request, as in `hot_reload.rs`: `DELETE
//! /v1/pets/{id}` is declared by bundle A and not by B (405).

use apiguard_harness::{EnvoyOptions, JwksServer, Policy, Response};
use bytes::Bytes;
use http::Request;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::fixture::{bundled, Proxy};
use crate::hot_reload::policy_loaded;
use crate::tokens::eventually;

/// Bundle A: the shipped petstore, which declares `DELETE /pets/{petId}`.
fn bundle_a() -> String {
    bundled("petstore").to_string()
}

/// Bundle B: A without `DELETE /pets/{petId}`.
fn bundle_b() -> String {
    let mut policy = bundled("petstore");
    let item = &mut policy["openapi"]["document"]["paths"]["/pets/{petId}"];
    item.as_object_mut().unwrap().remove("delete").unwrap();
    policy.to_string()
}

fn sha256(text: &str) -> String {
    (Sha256::digest(text.as_bytes()).iter())
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Envoy (two workers) whose filter polls `server` every second, pinned to `pin`.
fn start(server: &JwksServer, pin: Option<String>) -> Proxy {
    start_with_default(server, pin, None)
}

/// [`start`], with `default` serving until the first bundle loads.
fn start_with_default(server: &JwksServer, pin: Option<String>, default: Option<&str>) -> Proxy {
    let mut remote = json!({
        "http_uri": {"uri": "http://policies/bundles/petstore.json", "cluster": "jwks", "timeout": "2s"},
        "cache_duration": "1s",
    });
    if let Some(pin) = pin {
        remote["sha256"] = json!(pin);
    }
    let mut source = json!({ "remote": remote });
    if let Some(default) = default {
        source["default_config"] = serde_json::from_str(default).unwrap();
    }
    Proxy::start_with(EnvoyOptions {
        policy: Policy::Bundle(source),
        jwks: Some(server.addr()),
        concurrency: 2,
        ..EnvoyOptions::default()
    })
}

fn delete(proxy: &Proxy, id: u32) -> Response {
    let request = Request::delete(format!("/v1/pets/{id}"));
    (proxy.client(apiguard_harness::HttpVersion::Http1))
        .send(request.body(Bytes::new()).unwrap())
        .unwrap()
}

/// The rule of a problem answer.
fn rule(response: &Response) -> Option<String> {
    let problem: Value = response.json().ok()?;
    problem["rule"].as_str().map(str::to_owned)
}

/// What the upstream received is exactly the DELETEs answered 2xx (by id).
fn assert_upstream_saw_only(proxy: &Proxy, forwarded: &[u32]) {
    let mut saw: Vec<String> = (proxy.upstream.received().into_iter())
        .filter(|r| r.method == "DELETE")
        .map(|r| r.path)
        .collect();
    saw.sort();
    let mut expected: Vec<String> = forwarded
        .iter()
        .map(|id| format!("/v1/pets/{id}"))
        .collect();
    expected.sort();
    assert_eq!(saw, expected);
}

/// Sends DELETEs (ids from `next`) until one is answered with `status`; returns the ids
/// forwarded on the way.
fn until_status(proxy: &Proxy, next: &mut u32, status: u16, what: &str) -> Vec<u32> {
    let mut forwarded = Vec::new();
    eventually(what, || {
        *next += 1;
        let response = delete(proxy, *next);
        if response.status.is_success() {
            forwarded.push(*next);
        }
        response.status.as_u16() == status
    });
    forwarded
}

#[test]
fn a_remote_bundle_serves_switches_on_a_poll_and_the_last_good_one_outlives_garbage() {
    let server = JwksServer::start(&bundle_a()).unwrap();
    server.set_down(true);
    let proxy = start(&server, None);
    let mut forwarded = Vec::new();
    let mut id = 0;

    // No bundle yet: fail closed, nothing reaches the upstream.
    eventually("a failed fetch counted", || {
        proxy.counter("apiguard.policy.remote.failed") > 0.0
    });
    id += 1;
    let refused = delete(&proxy, id);
    assert_eq!(refused.status.as_u16(), 503, "{refused:?}");
    assert_eq!(rule(&refused).as_deref(), Some("policy.unavailable"));
    assert!(proxy.counter("apiguard.policy.unavailable") >= 1.0);
    assert_upstream_saw_only(&proxy, &forwarded);

    // The server comes up: A serves (its DELETE is forwarded).
    server.set_down(false);
    forwarded.extend(until_status(&proxy, &mut id, 200, "bundle A serves"));
    assert!(proxy.counter("apiguard.policy.remote.fetched") >= 1.0);
    // Unchanged: each poll is a 304, counted on both sides.
    eventually("304s counted", || {
        proxy.counter("apiguard.policy.remote.not_modified") >= 2.0
    });
    assert!(server.not_modified() >= 2, "{}", server.not_modified());
    let loaded = policy_loaded(&proxy.envoy);
    let hash_a = loaded.last().expect("A loaded").0.clone();

    // B on the server: verdicts switch after a poll, and each VM's event names A before.
    server.set_keys(&bundle_b());
    forwarded.extend(until_status(&proxy, &mut id, 405, "bundle B serves"));
    eventually("every VM loaded B over A", || {
        let loaded = policy_loaded(&proxy.envoy);
        let over_a = loaded.iter().filter(|(_, p)| p.as_deref() == Some(&hash_a));
        over_a.count() >= 2
    });

    // Garbage, then a bundle that does not compile: refused, B keeps serving.
    for bad in ["<html>502 Bad Gateway</html>", r#"{"name": "x"}"#] {
        let before = proxy.counter("apiguard.policy.remote.rejected_compile");
        server.set_keys(bad);
        eventually("the bad bundle refused", || {
            proxy.counter("apiguard.policy.remote.rejected_compile") > before
        });
        id += 1;
        let response = delete(&proxy, id);
        assert_eq!(
            response.status.as_u16(),
            405,
            "B still serves: {response:?}"
        );
    }
    let events = (proxy.envoy.log().lines())
        .filter(|line| line.contains(r#""uid":"apiguard.policy_fetch_failed""#))
        .count();
    assert!(events >= 1, "no policy_fetch_failed event");

    // Down: counted failures, B still serves.
    let failed = proxy.counter("apiguard.policy.remote.failed");
    server.set_down(true);
    eventually("the server down counted", || {
        proxy.counter("apiguard.policy.remote.failed") > failed
    });
    id += 1;
    assert_eq!(delete(&proxy, id).status.as_u16(), 405);
    assert_upstream_saw_only(&proxy, &forwarded);
}

#[test]
fn a_pinned_source_refuses_any_other_bundle_and_keeps_the_pinned_one() {
    let a = bundle_a();
    let server = JwksServer::start(&a).unwrap();
    let proxy = start(&server, Some(sha256(&a)));
    let mut id = 0;
    let mut forwarded = until_status(&proxy, &mut id, 200, "the pinned bundle A serves");

    server.set_keys(&bundle_b());
    eventually("B refused for its sha256", || {
        proxy.counter("apiguard.policy.remote.rejected_pin") >= 2.0
    });
    for _ in 0..3 {
        id += 1;
        let response = delete(&proxy, id);
        assert_eq!(
            response.status.as_u16(),
            200,
            "A still serves: {response:?}"
        );
        forwarded.push(id);
    }
    assert!(proxy.envoy.log().contains("is not the pinned one"));
    // Each VM loaded A over nothing, and nothing ever over A.
    let loaded = policy_loaded(&proxy.envoy);
    assert!(
        !loaded.is_empty() && loaded.iter().all(|(_, previous)| previous.is_none()),
        "{loaded:?}"
    );
    assert_upstream_saw_only(&proxy, &forwarded);
}

#[test]
fn a_default_config_serves_until_the_first_bundle_loads() {
    let server = JwksServer::start(&bundle_a()).unwrap();
    server.set_down(true);
    let proxy = start_with_default(&server, None, Some(&bundle_b()));
    eventually("a failed fetch counted", || {
        proxy.counter("apiguard.policy.remote.failed") > 0.0
    });
    // B, the default, serves (its 405) while the server is down; nothing is unavailable.
    let mut id = 1;
    assert_eq!(delete(&proxy, id).status.as_u16(), 405);
    assert_eq!(proxy.counter("apiguard.policy.unavailable"), 0.0);
    server.set_down(false);
    let forwarded = until_status(
        &proxy,
        &mut id,
        200,
        "the fetched bundle A replaces the default",
    );
    assert_upstream_saw_only(&proxy, &forwarded);
}
