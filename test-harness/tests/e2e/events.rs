//! Security events through a real Envoy: the OCSF line in Envoy's log, the verdict in the
//! access log, and batches posted by the singleton sender to a collector the test runs
//! (an [`EchoUpstream`], which records every batch it is sent).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use apiguard_harness::{Delivery, EchoUpstream, EnvoyOptions, Policy, RecordedRequest};
use serde_json::{json, Value};

use crate::fixture::{bundled, Proxy};

/// Generous: the sender flushes every 200 ms, but a loaded machine can stall Envoy's
/// main thread for seconds.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);

/// The petstore policy with an owner, so events carry one.
fn owned_policy() -> Value {
    let mut policy = bundled("petstore");
    policy["events"] = json!({"owner": {"team": "pets-team", "contact": "#pets-oncall"}});
    policy
}

pub fn start(collector: SocketAddr, sender: Value) -> Proxy {
    Proxy::start_with(EnvoyOptions {
        policy: Policy::Bundle(owned_policy()),
        delivery: Some(Delivery { collector, sender }),
        ..EnvoyOptions::default()
    })
}

/// Polls `done` until it returns `Some`, or fails with `what` after [`DELIVERY_TIMEOUT`].
pub fn wait_for<T>(what: &str, mut done: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    loop {
        if let Some(value) = done() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The OCSF findings in one collector request, whatever its format.
fn findings(request: &RecordedRequest) -> Vec<Value> {
    let body = &request.body;
    if let Ok(Value::Array(findings)) = serde_json::from_str(body) {
        return findings;
    }
    if let Ok(Value::Object(webhook)) = serde_json::from_str::<Value>(body) {
        if let Some(Value::Array(events)) = webhook.get("events") {
            return events.clone();
        }
    }
    // Splunk HEC: one `{"event": …}` object per line.
    body.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .map(|mut wrapper| wrapper["event"].take())
        .collect()
}

/// Every finding for `rule` the collector received so far.
pub fn received(collector: &EchoUpstream, rule: &str) -> Vec<Value> {
    collector
        .received()
        .iter()
        .flat_map(findings)
        .filter(|finding| finding["finding_info"]["analytic"]["uid"] == rule)
        .collect()
}

/// Sends a query parameter the contract refuses and checks that the event the collector
/// receives carries every field the issue lists; returns the collector's requests.
fn assert_delivered(format: &str, path: &str, headers: Value) -> Vec<RecordedRequest> {
    let collector = EchoUpstream::start().unwrap();
    let sender = json!({"format": format, "path": path, "headers": headers, "flush_ms": 200});
    let proxy = start(collector.addr(), sender);
    let response = proxy.get("/v1/pets?limit=1000");
    assert_eq!(response.status, 400, "{response:?}");
    let rule = response.json().unwrap()["rule"]
        .as_str()
        .unwrap()
        .to_owned();

    let finding = wait_for("the event at the collector", || {
        received(&collector, &rule).into_iter().next()
    });
    assert_eq!(finding["class_uid"], 2004, "{finding}");
    assert_eq!(finding["type_uid"], 200401, "{finding}");
    assert_eq!(finding["severity_id"], 3, "{finding}");
    assert_eq!(finding["action"], "Denied", "{finding}");
    assert_eq!(finding["metadata"]["product"]["name"], "apiguard");
    assert!(finding["time"].as_u64().unwrap() > 1_600_000_000_000);
    assert_eq!(finding["http_request"]["http_method"], "GET");
    // The query may carry credentials: it stays out of events.
    assert_eq!(finding["http_request"]["url"]["path"], "/v1/pets");
    assert!(finding["http_request"]["uid"]
        .as_str()
        .is_some_and(|id| !id.is_empty()));
    assert_eq!(finding["http_response"]["code"], 400);
    assert_eq!(finding["src_endpoint"]["ip"], "127.0.0.1");
    assert_eq!(finding["api"]["operation"], "listPets");
    let unmapped = &finding["unmapped"];
    assert_eq!(unmapped["apiguard_action"], "blocked");
    assert_eq!(unmapped["path_template"], "/pets");
    assert_eq!(unmapped["operation_id"], "listPets");
    assert_eq!(unmapped["owner"]["team"], "pets-team");
    assert_eq!(unmapped["owner"]["contact"], "#pets-oncall");
    assert_eq!(unmapped["policy_hash"].as_str().map(str::len), Some(16));
    assert!(finding.get("actor").is_none(), "no identity yet: {finding}");

    wait_for("the sent counter", || {
        (proxy.counter("apiguard.events.sent") >= 1.0).then_some(())
    });
    let requests = collector.received();
    for request in &requests {
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, path);
        assert_eq!(request.headers["content-type"], "application/json");
    }
    requests
}

#[test]
fn events_reach_an_ocsf_collector_as_a_json_array() {
    let requests = assert_delivered("ocsf", "/ocsf", json!({}));
    let body: Value = serde_json::from_str(&requests[0].body).unwrap();
    assert!(body.is_array(), "{body}");
}

#[test]
fn events_reach_splunk_hec_with_its_token() {
    let token = json!({"authorization": "Splunk test-token"});
    let requests = assert_delivered("splunk_hec", "/services/collector/event", token);
    let request = &requests[0];
    assert_eq!(request.headers["authorization"], "Splunk test-token");
    let first: Value = serde_json::from_str(request.body.lines().next().unwrap()).unwrap();
    assert_eq!(first["sourcetype"], "ocsf:detection_finding", "{first}");
    assert!(first["time"].as_f64().unwrap() > 1_600_000_000.0, "{first}");
}

#[test]
fn events_reach_a_generic_webhook() {
    let requests = assert_delivered("webhook", "/hooks/apiguard", json!({}));
    let body: Value = serde_json::from_str(&requests[0].body).unwrap();
    assert_eq!(body["source"], "apiguard", "{body}");
}

#[test]
fn a_collector_outage_drops_events_but_not_requests_and_delivery_resumes() {
    let collector = EchoUpstream::start().unwrap();
    let address = collector.addr();
    drop(collector);
    let sender = json!({"format": "ocsf", "path": "/ocsf", "flush_ms": 200, "fold_window_ms": 0});
    let proxy = start(address, sender);

    // The collector is down: requests are answered exactly as without delivery.
    for _ in 0..3 {
        assert_eq!(proxy.get("/v1/admin").status, 404);
    }
    assert_eq!(proxy.get("/v1/pets").status, 200);
    assert_eq!(proxy.upstream.received().len(), 1);
    wait_for("the drop counter", || {
        (proxy.counter("apiguard.events.dropped") >= 3.0).then_some(())
    });
    assert_eq!(proxy.counter("apiguard.events.sent"), 0.0);

    // Back on the same address: the next events are delivered.
    let collector = EchoUpstream::bind(address).unwrap();
    assert_eq!(proxy.get("/v1/admin/again").status, 404);
    let finding = wait_for("delivery after the outage", || {
        received(&collector, "route.unknown_path")
            .into_iter()
            .next()
    });
    assert_eq!(finding["http_request"]["url"]["path"], "/v1/admin/again");
    assert!(proxy.counter("apiguard.events.sent") >= 1.0);
}

#[test]
fn a_collector_that_never_answers_costs_events_not_requests() {
    // The kernel completes connections into the backlog; nothing ever answers them.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let sender = json!({"format": "ocsf", "path": "/ocsf", "flush_ms": 200,
        "fold_window_ms": 0, "timeout_ms": 500, "queue_max": 2, "batch_max": 1});
    let proxy = start(silent.local_addr().unwrap(), sender);

    for i in 0..10 {
        let response = proxy.get(&format!("/v1/admin/{i}"));
        assert_eq!(response.status, 404, "{response:?}");
    }
    assert_eq!(proxy.get("/v1/pets").status, 200);
    // Batches time out, and beyond two waiting events the rest are dropped at once.
    wait_for("timed-out batches", || {
        (proxy.counter("apiguard.events.batches_failed") >= 1.0).then_some(())
    });
    wait_for("every event to be dropped", || {
        (proxy.counter("apiguard.events.dropped") >= 10.0).then_some(())
    });
    assert_eq!(proxy.counter("apiguard.events.sent"), 0.0);
}

#[test]
fn a_flood_of_identical_findings_is_folded_into_a_count() {
    let collector = EchoUpstream::start().unwrap();
    let sender =
        json!({"format": "ocsf", "path": "/ocsf", "flush_ms": 200, "fold_window_ms": 3000});
    let proxy = start(collector.addr(), sender);
    let flood = 20;
    for _ in 0..flood {
        assert_eq!(proxy.get("/v1/admin").status, 404);
    }

    // The first goes out at once, the repeats within the window as one event with their
    // count (a window that closed under load starts a new one, so count, not events).
    let events = wait_for("every finding of the flood to be accounted for", || {
        let events = received(&collector, "route.unknown_path");
        let total: u64 = events.iter().filter_map(|e| e["count"].as_u64()).sum();
        (total == flood).then_some(events)
    });
    assert!(
        events.len() < 20,
        "nothing was folded: {} events",
        events.len()
    );
    let folded = events.iter().find(|e| e["count"].as_u64() > Some(1));
    let folded = folded.unwrap_or_else(|| panic!("no folded event in {events:#?}"));
    assert!(folded["end_time"].as_u64() >= folded["start_time"].as_u64());
    assert_eq!(folded["src_endpoint"]["ip"], "127.0.0.1");
    // Every finding absorbed into another event is counted; a window's first repeat too.
    let folded_counter = proxy.counter("apiguard.events.folded");
    assert!(
        folded_counter >= folded["count"].as_f64().unwrap(),
        "{folded_counter}"
    );
    assert!(folded_counter < flood as f64, "{folded_counter}");
}

/// The same finding in Envoy's log as an OCSF line, and in the access log as filter state,
/// correlated by the request id; a redacted response as an event of its own; and the
/// per-operation counters.
#[test]
fn the_log_carries_each_event_and_the_access_log_the_verdict() {
    let mut policy = owned_policy();
    policy["responses"] = json!({"mode": "monitor", "redact": true});
    let proxy = Proxy::start(Policy::Bundle(policy));
    assert_eq!(proxy.get("/v1/pets").status, 200);
    assert_eq!(proxy.get("/v1/admin").status, 404);
    // Pet declares none of the echo's five members.
    assert_eq!(proxy.get("/v1/pets/1").json().unwrap(), json!({}));

    // Access log lines are JSON objects of their own; event lines follow Envoy's prefix.
    let lines = |log: &str, marker: &str| -> Vec<Value> {
        log.lines()
            .filter_map(|line| line.find(marker).map(|at| &line[at..]))
            .filter_map(|json| serde_json::from_str(json).ok())
            .collect()
    };
    let (access, events) = wait_for("three access log lines", || {
        let log = proxy.envoy.log();
        let access = lines(&log, r#"{"apiguard_action""#);
        let access = (access.len() == 3).then_some(access)?;
        Some((access, lines(&log, r#"{"action""#)))
    });
    let blocked = access.iter().find(|l| l["apiguard_action"] == "blocked");
    let blocked = blocked.unwrap_or_else(|| panic!("no blocked request in {access:#?}"));
    assert_eq!(blocked["apiguard_rule"], "route.unknown_path");
    let allowed = access.iter().find(|l| l["apiguard_action"] == "allowed");
    let allowed = allowed.unwrap_or_else(|| panic!("no allowed request in {access:#?}"));
    assert_eq!(allowed["apiguard_operation"], "listPets");

    let event = events
        .iter()
        .find(|e| e["finding_info"]["analytic"]["uid"] == "route.unknown_path")
        .unwrap_or_else(|| panic!("no event line in {events:#?}"));
    assert_eq!(event["class_uid"], 2004);
    assert_eq!(event["http_request"]["uid"], blocked["request_id"]);

    let redacted = events
        .iter()
        .find(|e| e["finding_info"]["analytic"]["uid"] == "response.redacted")
        .unwrap_or_else(|| panic!("no redaction event in {events:#?}"));
    assert_eq!(redacted["unmapped"]["apiguard_action"], "redacted");
    assert_eq!(
        redacted["message"],
        "5 undeclared response properties removed"
    );
    assert_eq!(redacted["api"]["operation"], "showPetById");
    assert_eq!(redacted["http_response"]["code"], 200);

    assert_eq!(proxy.counter("apiguard.operation.listPets.allowed"), 1.0);
    assert_eq!(proxy.counter("apiguard.operation.listPets.blocked"), 0.0);
}

/// A flood of one finding must not multiply Envoy's log: each worker logs the first at
/// once and the repeats of each window (one second) as one line with their count.
#[test]
fn a_flood_of_identical_findings_costs_the_log_a_few_lines_with_a_count() {
    let proxy = Proxy::start(Policy::Bundle(owned_policy()));
    let flood: u64 = 100;
    let started = Instant::now();
    for _ in 0..flood {
        assert_eq!(proxy.get("/v1/admin").status, 404);
    }
    let elapsed = started.elapsed();
    let events = wait_for("every finding of the flood in the log", || {
        let log = proxy.envoy.log();
        let events: Vec<Value> = log
            .lines()
            .filter_map(|line| line.find(r#"{"action""#).map(|at| &line[at..]))
            .filter_map(|json| serde_json::from_str::<Value>(json).ok())
            .filter(|event| event["finding_info"]["analytic"]["uid"] == "route.unknown_path")
            .collect();
        let total: u64 = events.iter().filter_map(|e| e["count"].as_u64()).sum();
        (total == flood).then_some(events)
    });
    // One worker: a first line and a folded one per window the flood spanned.
    let windows = elapsed.as_secs() + 2;
    assert!(
        (events.len() as u64) <= 2 * windows,
        "{} lines for {flood} findings in {elapsed:?}",
        events.len()
    );
    assert_eq!(events[0]["count"], 1, "the first is logged at once");
    let folded = events.iter().find(|e| e["count"].as_u64() > Some(1));
    let folded = folded.unwrap_or_else(|| panic!("no folded line in {events:#?}"));
    assert!(folded["end_time"].as_u64() > folded["start_time"].as_u64());
    assert_eq!(folded["src_endpoint"]["ip"], "127.0.0.1");
    assert_eq!(folded["http_request"]["url"]["path"], "/v1/admin");
    // Every request was still refused and counted.
    assert_eq!(
        proxy.counter("apiguard.rule.route.unknown_path.blocked"),
        flood as f64
    );
    assert_eq!(proxy.upstream.received().len(), 0);
}
