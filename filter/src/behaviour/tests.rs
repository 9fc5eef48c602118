//! Behaviour through the exchange, as the host drives it: the policy's section compiled,
//! requests and responses fed with their status, over one shared store.

use std::rc::Rc;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::abuse::slots::MemoryStore;
use crate::exchange::{Counter, Exchange, Next, Values};
use crate::policy::Policy;
use crate::testkit::{self, exchange, SECOND, SECRET, T0};
use crate::verdict::RuleId;

fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "paths": {
            "/pets/{petId}": {"get": {"operationId": "getPet", "parameters": [
                {"name": "petId", "in": "path", "required": true, "schema": {"type": "integer"}}]}},
            "/owners/{name}": {"get": {"operationId": "getOwner", "parameters": [
                {"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}]}},
            "/docs/{docId}": {"get": {"operationId": "getDoc",
                "x-apiguard": {"object_id": "docId"}, "parameters": [
                {"name": "docId", "in": "path", "required": true, "schema": {"type": "string"}}]}},
            "/cart": {"post": {"operationId": "addToCart"}},
            "/checkout": {"post": {"operationId": "checkout"}},
            "/login": {"post": {"operationId": "login", "x-apiguard": {"sensitive": "login"},
                "requestBody": {"content": {
                    "application/json": {"schema": {"type": "object"}},
                    "application/x-www-form-urlencoded": {"schema": {"type": "object"}}}}}}
        }
    })
}

fn policy(sections: Value) -> Rc<Policy> {
    Rc::new(testkit::policy("pets", document(), sections))
}

fn error(sections: Value) -> String {
    let e = testkit::try_policy("pets", document(), sections).unwrap_err();
    format!(
        "{} at {}",
        e,
        e.location().map_or("", |l| l.pointer.as_str())
    )
}

fn values(store: MemoryStore, client: &str, now: u64) -> Values<MemoryStore> {
    Values {
        now,
        downstream: Some(format!("{client}:4000")),
        store,
        secret: SECRET,
    }
}

/// Drives requests of several clients over one store, as workers would.
struct Run {
    policy: Rc<Policy>,
    input: Values<MemoryStore>,
    /// Headers every request carries besides its head.
    extra: Vec<(String, Vec<u8>)>,
    /// The body every upstream answer carries (none when empty).
    answer: Vec<u8>,
}

/// What one request came to.
#[derive(Debug)]
struct Sent {
    rule: Option<String>,
    status: u16,
    retry_after: Option<String>,
    counters: Vec<Counter>,
    events: Vec<crate::events::Event>,
}

impl Run {
    fn new(sections: Value) -> Run {
        Run {
            policy: policy(sections),
            input: values(MemoryStore::default(), "10.0.0.1", T0),
            extra: Vec::new(),
            answer: Vec::new(),
        }
    }

    fn at(&mut self, client: &str, now: u64) {
        let store = std::mem::take(&mut self.input.store);
        self.input = values(store, client, now);
    }

    /// One request and, when it goes upstream, the upstream's answer `status`.
    fn send(&mut self, method: &str, path: &str, body: Option<(&str, &str)>, status: u16) -> Sent {
        let mut headers = vec![
            (":method".to_owned(), method.as_bytes().to_vec()),
            (":path".to_owned(), path.as_bytes().to_vec()),
            (":authority".to_owned(), b"api.example".to_vec()),
            ("user-agent".to_owned(), b"test".to_vec()),
        ];
        headers.extend(self.extra.iter().cloned());
        if let Some((media, _)) = body {
            headers.push(("content-type".to_owned(), media.as_bytes().to_vec()));
        }
        let mut exchange: Exchange = exchange(&self.policy);
        let next = exchange.request(&self.input, &headers, body.map(|(_, b)| b.as_bytes()));
        let (rule, status, retry_after) = match &next {
            Next::Reply(reply) => {
                let problem: Value = serde_json::from_slice(&reply.body).unwrap();
                assert!(
                    problem["detail"]
                        .as_str()
                        .is_some_and(|d| d.contains("behaviour rule"))
                        || !problem["rule"]
                            .as_str()
                            .is_some_and(|r| r.starts_with("behaviour.")),
                    "{problem}"
                );
                let retry = (reply.headers.iter())
                    .find(|(n, _)| *n == "retry-after")
                    .map(|(_, v)| v.clone());
                (
                    problem["rule"].as_str().map(str::to_owned),
                    reply.status,
                    retry,
                )
            }
            _ => {
                let head = [(":status".to_owned(), status.to_string().into_bytes())];
                let answer = Some(self.answer.as_slice()).filter(|a| !a.is_empty());
                exchange.response(&self.input, &head, answer);
                (None, status, None)
            }
        };
        // The stream ends, as Envoy's access-log callback says.
        exchange.complete(&self.input, || Some(status));
        let outputs = exchange.take_outputs();
        Sent {
            rule,
            status,
            retry_after,
            counters: outputs.counters,
            events: outputs.events,
        }
    }
}

fn bola(extra: Value) -> Value {
    let mut bola = json!({"max_distinct_ids": 20, "window_seconds": 60, "action": "block"});
    if let (Some(b), Some(extra)) = (bola.as_object_mut(), extra.as_object()) {
        b.extend(extra.clone());
    }
    json!({"behaviour": {"bola": bola}})
}

#[test]
fn a_client_walking_ids_is_refused_past_the_threshold_and_a_reusing_one_never() {
    let mut run = Run::new(bola(json!({})));
    // The benign client reads 5 pets, 300 times.
    run.at("10.0.0.2", T0);
    for i in 0..300 {
        let sent = run.send("GET", &format!("/pets/{}", i % 5), None, 200);
        assert_eq!(sent.rule, None, "request {i}");
    }
    run.at("10.0.0.1", T0);
    let mut refused_at = None;
    for id in 0..60 {
        let sent = run.send("GET", &format!("/pets/{id}"), None, 200);
        if sent.rule.is_some() && refused_at.is_none() {
            refused_at = Some(id);
            assert_eq!(sent.status, 403);
            assert_eq!(sent.rule.as_deref(), Some("behaviour.bola"));
            assert_eq!(sent.retry_after.as_deref(), Some("60"));
            let event = &sent.events[0];
            assert_eq!(event.rule, "behaviour.bola");
            let evidence = &event.evidence[0];
            assert_eq!((evidence.threshold, evidence.window_seconds), (20, 60));
            assert!(evidence.count > 20, "{evidence:?}");
            assert_eq!(evidence.answers, Some(id));
            assert!(sent.counters.contains(&Counter::Rule {
                rule: RuleId::BehaviourBola,
                enforced: true
            }));
        }
        if refused_at.is_some() {
            assert!(sent.rule.is_some(), "every id after it is refused: {id}");
        }
    }
    // The 21st distinct id, give or take the sketch's error at 20 (about 1 id).
    let at = refused_at.expect("the walker is refused");
    assert!((19..=24).contains(&at), "refused at id {at}");
    // The benign client is still served, and the walker's next window starts afresh.
    run.at("10.0.0.2", T0 + 30 * SECOND);
    assert_eq!(run.send("GET", "/pets/1", None, 200).rule, None);
    run.at("10.0.0.1", T0 + 61 * SECOND);
    assert_eq!(run.send("GET", "/pets/1000", None, 200).rule, None);
}

#[test]
fn only_object_id_parameters_count_declared_or_inferred() {
    let mut run = Run::new(bola(json!({})));
    for i in 0..50 {
        // `name` is a string: not an id. `docId` is a string declared as one.
        assert_eq!(
            run.send("GET", &format!("/owners/o{i}"), None, 200).rule,
            None
        );
    }
    let refused = (0..50)
        .map(|i| run.send("GET", &format!("/docs/d{i}"), None, 200))
        .filter(|s| s.rule.is_some())
        .count();
    assert!(refused > 20, "{refused}");
    let mut run = Run::new(bola(json!({"infer": false})));
    for i in 0..50 {
        assert_eq!(run.send("GET", &format!("/pets/{i}"), None, 200).rule, None);
    }
}

#[test]
fn a_denied_ratio_spares_a_client_whose_ids_are_its_own() {
    let mut run = Run::new(bola(json!({"denied_ratio": 0.5})));
    for i in 0..60 {
        assert_eq!(run.send("GET", &format!("/pets/{i}"), None, 200).rule, None);
    }
    run.at("10.0.0.9", T0);
    let sent: Vec<Sent> = (0..60)
        .map(|i| {
            run.send(
                "GET",
                &format!("/pets/{i}"),
                None,
                if i % 4 == 0 { 200 } else { 404 },
            )
        })
        .collect();
    let first = sent.iter().position(|s| s.rule.is_some()).expect("found");
    assert!((19..=24).contains(&first), "{first}");
    let evidence = &sent[first].events[0].evidence[0];
    let (answers, denied) = (evidence.answers.unwrap(), evidence.denied.unwrap());
    assert!(
        f64::from(denied) >= 0.5 * f64::from(answers),
        "{evidence:?}"
    );
}

#[test]
fn the_identity_is_the_subject_then_the_address() {
    // Two addresses of one /24 under `abuse.client.ipv4_prefix: 24` are one client.
    let sections = bola(json!({}));
    let mut sections = sections.as_object().unwrap().clone();
    sections.insert("abuse".into(), json!({"client": {"ipv4_prefix": 24}}));
    let mut run = Run::new(Value::Object(sections));
    let mut found = false;
    for i in 0..40 {
        run.at(&format!("10.0.0.{}", i % 7), T0);
        found |= run
            .send("GET", &format!("/pets/{i}"), None, 200)
            .rule
            .is_some();
    }
    assert!(found, "one network walking ids from several addresses");
}

#[test]
fn log_records_without_refusing_and_monitor_mode_never_refuses() {
    for sections in [
        bola(json!({"action": "log"})),
        json!({"mode": "monitor", "behaviour": {"bola": {"max_distinct_ids": 20,
            "window_seconds": 60, "action": "block"}}}),
    ] {
        let mut run = Run::new(sections);
        let sent: Vec<Sent> = (0..40)
            .map(|i| run.send("GET", &format!("/pets/{i}"), None, 200))
            .collect();
        assert!(sent.iter().all(|s| s.rule.is_none() && s.status == 200));
        let events = sent.iter().flat_map(|s| &s.events).count();
        assert!((15..=21).contains(&events), "{events}");
        assert!(sent[39].counters.contains(&Counter::Rule {
            rule: RuleId::BehaviourBola,
            enforced: false
        }));
    }
}

#[test]
fn quarantine_holds_the_client_on_every_operation() {
    let mut run = Run::new(json!({
        "abuse": {"quarantine": {"strikes": 100, "window_seconds": 60, "duration_seconds": 300}},
        "behaviour": {"bola": {"max_distinct_ids": 10, "window_seconds": 60,
            "action": "quarantine"}}
    }));
    let first = (0..30)
        .map(|i| run.send("GET", &format!("/pets/{i}"), None, 200))
        .find(|s| s.rule.is_some())
        .unwrap();
    assert_eq!(first.rule.as_deref(), Some("behaviour.bola"));
    assert!(first.counters.contains(&Counter::QuarantineStarted));
    let held = run.send("GET", "/owners/x", None, 200);
    assert_eq!(held.rule.as_deref(), Some("abuse.quarantined"));
    run.at("10.0.0.2", T0);
    assert_eq!(run.send("GET", "/owners/x", None, 200).rule, None);
}

fn credentials(extra: Value) -> Value {
    let mut c = json!({"username": "user", "max_failures": 5, "max_usernames": 10,
        "window_seconds": 300, "action": "block"});
    if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
        c.extend(extra.clone());
    }
    json!({"behaviour": {"credentials": c}})
}

const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";

#[test]
fn a_client_trying_many_usernames_is_found_by_json_or_form() {
    for media in [JSON, FORM] {
        let mut run = Run::new(credentials(json!({"max_failures": 1000})));
        let body = |i: usize| match media {
            JSON => format!(r#"{{"pass": {{"x": [1]}}, "user": "user{i}@example.com"}}"#),
            _ => format!("pass=x&user=user{i}%40example.com"),
        };
        let sent: Vec<Sent> = (0..30)
            .map(|i| {
                let body = body(i);
                run.send("POST", "/login", Some((media, &body)), 401)
            })
            .collect();
        let first = sent.iter().position(|s| s.rule.is_some()).expect("found");
        assert!((9..=12).contains(&first), "{media}: {first}");
        assert_eq!(
            sent[first].rule.as_deref(),
            Some("behaviour.credential_stuffing")
        );
        assert_eq!(sent[first].status, 429);
        let evidence = &sent[first].events[0].evidence[0];
        assert_eq!(evidence.measure, "distinct_usernames");
        // Once found, refused at the head (before the body) until the window ends.
        assert!(sent[first + 1..].iter().all(|s| s.rule.is_some()));
        run.at("10.0.0.1", T0 + 301 * SECOND);
        let again = run.send("POST", "/login", Some((media, &body(99))), 200);
        assert_eq!(again.rule, None);
    }
}

#[test]
fn failed_sign_ins_of_one_user_are_brute_force_and_successes_are_not() {
    let mut run = Run::new(credentials(json!({})));
    let body = r#"{"user": "alice"}"#;
    for _ in 0..50 {
        assert_eq!(
            run.send("POST", "/login", Some((JSON, body)), 200).rule,
            None
        );
    }
    run.at("10.0.0.5", T0);
    for i in 0..5 {
        let sent = run.send("POST", "/login", Some((JSON, body)), 401);
        assert_eq!(sent.rule, None, "attempt {i}");
    }
    let sixth = run.send("POST", "/login", Some((JSON, body)), 200);
    assert_eq!(sixth.rule.as_deref(), Some("behaviour.brute_force"));
    let evidence = &sixth.events[0].evidence[0];
    assert_eq!((evidence.count, evidence.threshold), (5, 5));
    assert_eq!(sixth.retry_after.as_deref(), Some("300"));
}

#[test]
fn the_filters_own_credential_refusals_are_failures() {
    let document = json!({
        "openapi": "3.1.0",
        "components": {"securitySchemes": {"key": {"type": "apiKey", "in": "header",
            "name": "x-api-key"}}},
        "paths": {"/admin/login": {"post": {"operationId": "adminLogin",
            "security": [{"key": []}]}}}
    });
    let hash: String = (Sha256::digest(b"k-123").iter())
        .map(|b| format!("{b:02x}"))
        .collect();
    let sections = json!({
        "security": {"api_keys": {"key": [{"sha256": hash, "consumer": "ops"}]}},
        "behaviour": {"credentials": {"operations": ["adminLogin"], "max_failures": 3,
            "window_seconds": 60, "action": "block"}}
    });
    let mut run = Run {
        policy: Rc::new(testkit::policy("pets", document, sections)),
        input: values(MemoryStore::default(), "10.0.0.1", T0),
        extra: vec![("x-api-key".to_owned(), b"k-123".to_vec())],
        answer: Vec::new(),
    };
    assert_eq!(
        run.send("POST", "/admin/login", None, 200).rule,
        None,
        "a good key"
    );
    run.extra.clear();
    for _ in 0..3 {
        let sent = run.send("POST", "/admin/login", None, 200);
        assert_eq!(sent.rule.as_deref(), Some("auth.missing"));
    }
    run.extra = vec![("x-api-key".to_owned(), b"k-123".to_vec())];
    let sent = run.send("POST", "/admin/login", None, 200);
    assert_eq!(
        sent.rule.as_deref(),
        Some("behaviour.brute_force"),
        "even with the key"
    );
}

#[test]
fn workers_sharing_the_store_find_the_walker_at_the_same_count() {
    // Two exchanges of two policies (two workers' VMs) alternate over one store.
    let sections = bola(json!({}));
    let (a, b) = (policy(sections.clone()), policy(sections));
    let mut run = Run::new(json!({}));
    let mut first = None;
    for id in 0..60 {
        run.policy = Rc::clone(if id % 2 == 0 { &a } else { &b });
        run.input.store.interfere.set(id % 3);
        if run
            .send("GET", &format!("/pets/{id}"), None, 200)
            .rule
            .is_some()
        {
            first.get_or_insert(id);
        }
    }
    let first = first.expect("found across workers");
    assert!((19..=24).contains(&first), "{first}");
}

fn flows(action: &str) -> Value {
    json!({"behaviour": {"flows": [{"name": "checkout", "after": "addToCart",
        "then": "checkout", "window_seconds": 600, "action": action}]}})
}

#[test]
fn a_flow_step_needs_the_previous_one_answered_2xx_by_the_same_identity_in_the_window() {
    let mut run = Run::new(flows("block"));
    let skipped = run.send("POST", "/checkout", None, 200);
    assert_eq!(
        (skipped.status, skipped.rule.as_deref()),
        (403, Some("behaviour.flow"))
    );
    assert_eq!(skipped.retry_after, None, "nothing to wait for");
    assert_eq!(
        skipped.events[0].evidence[0].measure,
        "steps_before_checkout"
    );
    assert_eq!(run.send("POST", "/cart", None, 500).rule, None);
    assert!(
        run.send("POST", "/checkout", None, 200).rule.is_some(),
        "the cart failed"
    );
    assert_eq!(run.send("POST", "/cart", None, 201).rule, None);
    assert_eq!(run.send("POST", "/checkout", None, 200).rule, None);
    assert_eq!(
        run.send("POST", "/checkout", None, 200).rule,
        None,
        "again, in the window"
    );
    run.at("10.0.0.2", T0);
    assert!(
        run.send("POST", "/checkout", None, 200).rule.is_some(),
        "another client"
    );
    run.at("10.0.0.1", T0 + 600 * SECOND);
    assert!(
        run.send("POST", "/checkout", None, 200).rule.is_some(),
        "the window ended"
    );
    let mut run = Run::new(flows("log"));
    let logged = run.send("POST", "/checkout", None, 200);
    assert_eq!((logged.status, logged.rule), (200, None));
    assert_eq!(logged.events[0].rule, "behaviour.flow");
}

#[test]
fn a_flow_completed_too_often_by_one_identity_is_refused_until_its_window_ends() {
    let mut run = Run::new(json!({"behaviour": {"flows": [{"name": "checkout",
        "after": "addToCart", "then": "checkout", "window_seconds": 600,
        "max_per_window": 2, "action": "block"}]}}));
    assert_eq!(run.send("POST", "/cart", None, 201).rule, None);
    // A failed checkout is no completion.
    assert_eq!(run.send("POST", "/checkout", None, 500).rule, None);
    for _ in 0..2 {
        assert_eq!(run.send("POST", "/checkout", None, 200).rule, None);
    }
    let third = run.send("POST", "/checkout", None, 200);
    assert_eq!(
        (third.status, third.rule.as_deref()),
        (429, Some("behaviour.flow_velocity"))
    );
    assert_eq!(third.retry_after.as_deref(), Some("600"));
    let e = &third.events[0].evidence[0];
    assert_eq!(
        (e.measure.as_str(), e.count, e.threshold),
        ("completions_of_checkout", 2, 2)
    );
    assert!(third.counters.contains(&Counter::Rule {
        rule: RuleId::BehaviourFlowVelocity,
        enforced: true
    }));
    run.at("10.0.0.2", T0);
    assert_eq!(run.send("POST", "/cart", None, 201).rule, None);
    assert_eq!(
        run.send("POST", "/checkout", None, 200).rule,
        None,
        "another identity"
    );
    run.at("10.0.0.1", T0 + 601 * SECOND);
    assert_eq!(run.send("POST", "/cart", None, 201).rule, None);
    assert_eq!(
        run.send("POST", "/checkout", None, 200).rule,
        None,
        "a new window"
    );
}

#[test]
fn a_walker_far_beyond_the_operations_normal_is_found_below_the_absolute_cap() {
    let mut run = Run::new(bola(json!({"max_distinct_ids": 100, "relative": 3,
        "relative_warmup": 10})));
    // 12 clients read 2 pets each per window, over two windows: the first windows end
    // as they come back, so the normal is 2 distinct ids.
    for window in 0..2u64 {
        for c in 0..12 {
            run.at(&format!("10.0.1.{c}"), T0 + window * 61 * SECOND);
            for id in 0..2 {
                let sent = run.send("GET", &format!("/pets/{}", c * 10 + id), None, 200);
                assert_eq!(sent.rule, None);
            }
        }
    }
    run.at("10.0.0.1", T0 + 70 * SECOND);
    let refused = (0..50)
        .map(|id| run.send("GET", &format!("/pets/{}", 1000 + id), None, 200))
        .position(|sent| sent.rule.is_some());
    // Past 3 × 2 = 6 distinct ids: the 7th, where the absolute cap is 100.
    assert_eq!(refused, Some(6));
    let sent = run.send("GET", "/pets/2000", None, 200);
    let e = &sent.events[0].evidence[0];
    assert_eq!((e.threshold, e.mean), (6, Some(2)));
}

/// 10-second buckets, a warm-up of 3, spikes from 5 requests up.
fn baselines(extra: Value) -> Value {
    let mut b = json!({"bucket_seconds": 10, "warmup_buckets": 3, "min_count": 5});
    if let (Some(b), Some(extra)) = (b.as_object_mut(), extra.as_object()) {
        b.extend(extra.clone());
    }
    json!({"behaviour": {"baselines": b}})
}

#[test]
fn a_volume_spike_is_refused_with_block_until_the_bucket_ends() {
    let mut sections = baselines(json!({"action": "block"}));
    sections["abuse"] = json!({"quarantine": {"strikes": 1, "window_seconds": 60,
        "duration_seconds": 300}});
    let mut run = Run::new(sections);
    for bucket in 0..10 {
        run.at("10.0.0.1", T0 + bucket * 10 * SECOND);
        for _ in 0..8 {
            assert_eq!(run.send("GET", "/pets/1", None, 200).rule, None, "{bucket}");
        }
    }
    run.at("10.0.0.2", T0 + 100 * SECOND);
    let sent: Vec<Sent> = (0..40)
        .map(|_| run.send("GET", "/pets/1", None, 200))
        .collect();
    let first = sent.iter().position(|s| s.rule.is_some()).expect("a spike");
    // mean 8, deviation floored at √8: past 8 + 4 × 2.83 = 19.3.
    assert_eq!(first, 19);
    let refused = &sent[first];
    assert_eq!(
        (refused.status, refused.rule.as_deref()),
        (429, Some("behaviour.volume"))
    );
    assert_eq!(refused.retry_after.as_deref(), Some("10"));
    let e = &refused.events[0].evidence[0];
    assert_eq!(
        (e.count, e.threshold, e.mean, e.sigma),
        (20, 19, Some(8), Some(3))
    );
    assert!(sent[first..].iter().all(|s| s.status == 429));
    assert!(
        !refused.counters.contains(&Counter::QuarantineStarted),
        "no strike: the spike is no one client's"
    );
    // Another operation, and the next bucket, are served.
    assert_eq!(run.send("GET", "/owners/a", None, 200).rule, None);
    run.at("10.0.0.2", T0 + 110 * SECOND);
    assert_eq!(run.send("GET", "/pets/1", None, 200).rule, None);
}

#[test]
fn one_client_making_most_of_an_operations_traffic_is_refused_and_the_others_not() {
    let mut run = Run::new(baselines(json!({"client_share": 0.5, "action": "block"})));
    // 10 requests per bucket, 2 from each of 5 clients.
    for bucket in 0..6 {
        for c in 0..5 {
            run.at(&format!("10.0.2.{c}"), T0 + bucket * 10 * SECOND);
            for _ in 0..2 {
                assert_eq!(run.send("GET", "/pets/1", None, 200).rule, None);
            }
        }
    }
    run.at("10.0.2.0", T0 + 60 * SECOND);
    let sent: Vec<Sent> = (0..10)
        .map(|_| run.send("GET", "/pets/1", None, 200))
        .collect();
    // Past half of the normal 10: the 6th.
    assert_eq!(sent.iter().position(|s| s.rule.is_some()), Some(5));
    let refused = &sent[5];
    assert_eq!(
        (refused.status, refused.rule.as_deref()),
        (429, Some("behaviour.client_share"))
    );
    let e = &refused.events[0].evidence[0];
    assert_eq!(
        (e.measure.as_str(), e.count, e.threshold, e.mean),
        ("requests_of_client", 6, 5, Some(10))
    );
    run.at("10.0.2.1", T0 + 60 * SECOND);
    assert_eq!(
        run.send("GET", "/pets/1", None, 200).rule,
        None,
        "the others are served"
    );
}

#[test]
fn error_spikes_and_large_responses_are_recorded_and_the_answer_goes_on() {
    let mut run = Run::new(baselines(json!({})));
    run.answer = br#"{"id": 1, "name": "rex"}"#.to_vec();
    for bucket in 0..5 {
        run.at("10.0.0.1", T0 + bucket * 10 * SECOND);
        for i in 0..10 {
            let status = if i == 0 { 404 } else { 200 };
            let sent = run.send("GET", "/pets/1", None, status);
            assert!(sent.events.is_empty(), "{bucket}: {:?}", sent.events);
        }
    }
    run.at("10.0.0.1", T0 + 50 * SECOND);
    run.answer = vec![b'x'; 100_000];
    let large = run.send("GET", "/pets/1", None, 200);
    assert_eq!((large.status, large.rule), (200, None), "recorded only");
    let event = &large.events[0];
    assert_eq!(event.rule, "behaviour.response_size");
    let e = &event.evidence[0];
    assert_eq!(
        (e.measure.as_str(), e.count, e.mean),
        ("response_bytes", 100_000, Some(24))
    );
    assert!(large.counters.contains(&Counter::Rule {
        rule: RuleId::BehaviourResponseSize,
        enforced: false
    }));
    run.answer = Vec::new();
    let errors: Vec<Sent> = (0..10)
        .map(|_| run.send("GET", "/pets/1", None, 500))
        .collect();
    let found = errors
        .iter()
        .find(|s| !s.events.is_empty())
        .expect("an error spike");
    assert_eq!(found.status, 500, "the upstream's answer went on");
    let event = &found.events[0];
    assert_eq!(event.rule, "behaviour.errors");
    assert_eq!(
        event.evidence[0].mean,
        Some(100),
        "10 % of answers, in permille"
    );
}

#[test]
fn settings_are_checked_with_their_pointer() {
    let cases = [
        (
            bola(json!({"max_distinct_ids": 0})),
            "/behaviour/bola/max_distinct_ids",
        ),
        (
            bola(json!({"max_distinct_ids": 201})),
            "/behaviour/bola/max_distinct_ids",
        ),
        (
            bola(json!({"window_seconds": 0})),
            "/behaviour/bola/window_seconds",
        ),
        (bola(json!({"slots": 0})), "/behaviour/bola/slots"),
        (
            bola(json!({"denied_ratio": 1.5})),
            "/behaviour/bola/denied_ratio",
        ),
        (
            bola(json!({"action": "quarantine"})),
            "/behaviour/bola/action",
        ),
        (bola(json!({"action": "kill"})), "/behaviour/bola/action"),
        (bola(json!({"extra": 1})), "/behaviour/bola/extra"),
        (
            json!({"behaviour": {"credentials": {"window_seconds": 60}}}),
            "/behaviour/credentials",
        ),
        (
            json!({"behaviour": {"credentials": {"window_seconds": 60, "max_usernames": 5}}}),
            "/behaviour/credentials/username",
        ),
        (
            credentials(json!({"operations": ["nope"]})),
            "/behaviour/credentials/operations/0",
        ),
        (
            json!({"behaviour": {"flows": [{"name": "Checkout", "after": "addToCart",
                "then": "checkout", "window_seconds": 60}]}}),
            "/behaviour/flows/0/name",
        ),
        (
            json!({"behaviour": {"flows": [{"name": "c", "after": "nope",
                "then": "checkout", "window_seconds": 60}]}}),
            "/behaviour/flows/0/after",
        ),
        (
            json!({"behaviour": {"flows": [{"name": "c", "after": "checkout",
                "then": "checkout", "window_seconds": 60}]}}),
            "/behaviour/flows/0/then",
        ),
        (
            json!({"behaviour": {"flows": [
                {"name": "c", "after": "addToCart", "then": "checkout", "window_seconds": 60},
                {"name": "c", "after": "login", "then": "checkout", "window_seconds": 60}]}}),
            "/behaviour/flows/1/name",
        ),
        (
            json!({"behaviour": {"flows": [{"name": "c", "after": "addToCart",
                "then": "checkout", "window_seconds": 60, "max_per_window": 0}]}}),
            "/behaviour/flows/0/max_per_window",
        ),
        (bola(json!({"relative": 0.5})), "/behaviour/bola/relative"),
        (
            baselines(json!({"bucket_seconds": 0})),
            "/behaviour/baselines/bucket_seconds",
        ),
        (
            baselines(json!({"warmup_buckets": 0})),
            "/behaviour/baselines/warmup_buckets",
        ),
        (
            baselines(json!({"smoothing": 0})),
            "/behaviour/baselines/smoothing",
        ),
        (
            baselines(json!({"sigma": -1})),
            "/behaviour/baselines/sigma",
        ),
        (
            baselines(json!({"action": "quarantine"})),
            "/behaviour/baselines/action",
        ),
        (
            baselines(json!({"measures": ["latency"]})),
            "/behaviour/baselines/measures/0",
        ),
        (
            baselines(json!({"client_share": 0})),
            "/behaviour/baselines/client_share",
        ),
        (
            baselines(json!({"client_share": 0.5, "measures": ["errors"]})),
            "/behaviour/baselines/client_share",
        ),
    ];
    for (sections, pointer) in cases {
        let message = error(sections);
        assert!(message.ends_with(&format!(" at {pointer}")), "{message}");
    }
    let declared = json!({"openapi": "3.1.0", "paths": {"/a/{x}": {"get": {
        "x-apiguard": {"object_id": "y"},
        "parameters": [{"name": "x", "in": "path", "required": true}]}}}});
    let e = testkit::try_policy("a", declared, bola(json!({}))).unwrap_err();
    assert!(e.to_string().contains("`y` is no path parameter"), "{e}");
    assert_eq!(
        e.location().unwrap().pointer,
        "/paths/~1a~1{x}/get/x-apiguard/object_id"
    );
}

#[test]
fn tables_are_stated_and_created_up_front() {
    let p = policy(json!({"behaviour": {
        "bola": {"max_distinct_ids": 20, "window_seconds": 60, "slots": 16},
        "credentials": {"username": "user", "max_usernames": 5, "window_seconds": 60,
            "slots": 8}}}));
    let store = MemoryStore::default();
    let refused: usize = p.slot_tables().map(|t| t.create(&store)).sum();
    assert_eq!((refused, store.map.borrow().len()), (0, 24));
}

#[test]
fn usernames_are_read_from_the_top_level_only_and_never_panic() {
    use super::login::{form_field, json_member};
    assert_eq!(
        json_member(br#"{"a": {"user": "x"}, "user": "y"}"#, "user").as_deref(),
        Some("y")
    );
    assert_eq!(json_member(br#"{"user": 5}"#, "user"), None);
    assert_eq!(json_member(br#"[{"user": "x"}]"#, "user"), None);
    assert_eq!(
        json_member(br#"{"user": "a\"b"}"#, "user").as_deref(),
        Some("a\"b")
    );
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let body = format!(r#"{{"x": {deep}, "user": "z"}}"#);
    // serde_json skips a member without recursing: deep nesting costs one linear pass.
    assert_eq!(json_member(body.as_bytes(), "user").as_deref(), Some("z"));
    assert_eq!(json_member(b"\xff{", "user"), None);
    assert_eq!(
        form_field(b"a=1&user=bob&user=eve", "user"),
        Some(&b"bob"[..])
    );
    assert_eq!(form_field(b"user", "user"), Some(&b""[..]));
    assert_eq!(form_field(b"&&=&", "user"), None);
}
