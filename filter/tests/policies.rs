//! Policy conformance: every `policies/*/policy.yaml` compiles, and the `cases.yaml` next
//! to it (request -> expected verdict) holds against the compiled policy. Each case runs
//! through the filter's own pipeline ([`Exchange`]): whatever the policy checks (contract,
//! tokens, anomalies, rate limits, responses) applies, each case as the requests of one
//! new client.
//!
//! Case format:
//! ```yaml
//! - name: wrong method
//!   request: PATCH /v1/pets
//!   expect: {status: 405, rule: route.method_not_allowed, allow: [GET, POST]}
//! - name: list pets
//!   request: GET /v1/pets?limit=10
//!   expect: allow                      # or {allow: true, operation: listPets}
//! - name: create a pet
//!   request: POST /v1/pets
//!   headers: {content-type: application/json}
//!   body: '{"name": "Rex"}'
//!   expect: {allow: true, recorded: [params.undeclared]}   # passed, findings recorded
//! - name: the third pet within the minute
//!   request: POST /v1/pets
//!   times: 3                           # sent 3 times by the same client; `expect` is the last
//!   expect: {status: 429, rule: ratelimit.exceeded}
//! - name: a pet the upstream gets wrong
//!   request: GET /v1/pets/42
//!   response: {status: 200, headers: {content-type: application/json}, body: '{"id": 0}'}
//!   expect: {allow: true, response: {status: 502, rule: response.schema}}
//! ```
//! `allow` means the request passes with nothing recorded, unless `recorded` lists the
//! rules of the findings that were recorded without blocking. `response` is the upstream's
//! answer to a request that passed, and `expect.response` what the filter makes of it, in
//! the same terms.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use apiguard_filter::{
    bundle, Action, EventAction, Exchange, KeyRing, MemoryStore, Next, Outputs, Policy, Reply,
    SlotSecret, Values,
};
use serde_yaml::Value;

fn policy_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("policies/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("policy.yaml").is_file())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn every_example_policy_compiles_and_has_cases() {
    let dirs = policy_dirs();
    assert!(
        dirs.len() >= 2,
        "expected at least two example policies, found {dirs:?}"
    );
    for dir in dirs {
        let (_, gateway) = bundle(&dir.join("policy.yaml")).unwrap_or_else(|e| panic!("{e}"));
        assert!(gateway.apis().iter().all(|policy| policy.templates() > 0));
        assert!(
            dir.join("cases.yaml").is_file(),
            "{} has no cases.yaml",
            dir.display()
        );
    }
}

#[test]
fn example_policies_meet_their_cases() {
    let mut failures = Vec::new();
    let mut count = 0;
    for dir in policy_dirs() {
        let (_, gateway) = bundle(&dir.join("policy.yaml")).unwrap();
        let policy = Rc::new(gateway.into_single().expect("one API per example policy"));
        let ring = Rc::new(policy.key_ring());
        let text = std::fs::read_to_string(dir.join("cases.yaml")).unwrap();
        let cases: Vec<Value> = serde_yaml::from_str(&text).unwrap();
        for case in cases {
            count += 1;
            if let Err(why) = run_case(&policy, &ring, &case) {
                failures.push(format!(
                    "{} / {}: {why}",
                    dir.display(),
                    field(&case, "name")
                ));
            }
        }
    }
    assert!(count > 0);
    assert!(
        failures.is_empty(),
        "{} of {count} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn field<'a>(case: &'a Value, key: &str) -> &'a str {
    case.get(key).and_then(Value::as_str).unwrap_or("<missing>")
}

/// Everything the engine said about one step of an exchange: the request (head and
/// body), or the upstream's response to it.
struct Outcome {
    action: Action,
    /// The reply that replaces what was blocked.
    reply: Option<Reply>,
    rule: Option<String>,
    /// Rules of violations that were recorded but did not block.
    recorded: Vec<String>,
    operation: Option<String>,
    /// The response step, when the case gives the upstream's answer.
    response: Option<Box<Outcome>>,
}

/// A case's headers (`{name: value}`), names lowercase as Envoy gives them.
fn headers(case: &Value, key: &str) -> Vec<(String, String)> {
    case.get(key)
        .and_then(Value::as_mapping)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.as_str()?.to_ascii_lowercase(), v.as_str()?.to_owned())))
        .collect()
}

fn evaluate(policy: &Rc<Policy>, ring: &Rc<KeyRing>, case: &Value) -> Result<Outcome, String> {
    let (method, target) = field(case, "request")
        .split_once(' ')
        .ok_or("`request` must be `METHOD /path`")?;
    let mut request: Vec<(String, String)> = vec![
        (":method".to_owned(), method.to_owned()),
        (":path".to_owned(), target.to_owned()),
    ];
    request.extend(headers(case, "headers"));
    let body = case.get("body").and_then(Value::as_str).map(str::as_bytes);
    // One client, one store: `times` repeats the request as that client would.
    let input = Values {
        now: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
        downstream: Some("192.0.2.1:40000".to_owned()),
        store: MemoryStore::default(),
        secret: SlotSecret::new([1; SlotSecret::BYTES]),
    };
    let times = case.get("times").and_then(Value::as_u64).unwrap_or(1);
    let mut last = None;
    for _ in 0..times {
        // The request runs the filter's own pipeline, as Envoy would drive it.
        let mut exchange = Exchange::new(Rc::clone(policy), Rc::clone(ring));
        let next = exchange.request(&input, &request, body);
        last = Some((exchange, next));
    }
    let (mut exchange, next) = last.ok_or("`times` must be at least 1")?;
    let outputs = exchange.take_outputs();
    let state = (outputs.filter_state.clone()).ok_or("the exchange settled nothing")?;
    let mut outcome = Outcome {
        action: state.action,
        reply: match next {
            Next::Reply(reply) => Some(reply),
            _ => None,
        },
        rule: state.rule.map(|rule| rule.as_str().to_owned()),
        recorded: recorded(&outputs),
        operation: state.operation.map(|label| label.to_string()),
        response: None,
    };
    if let (Some(response), None) = (case.get("response"), &outcome.reply) {
        let status = response
            .get("status")
            .and_then(Value::as_u64)
            .unwrap_or(200);
        let mut answer = vec![(":status".to_owned(), status.to_string())];
        answer.extend(headers(response, "headers"));
        let body = response
            .get("body")
            .and_then(Value::as_str)
            .map(str::as_bytes);
        let next = exchange.response(&input, &answer, body);
        let outputs = exchange.take_outputs();
        // What blocked it: the first violation of the event that says so.
        let rule = (outputs.events.iter())
            .filter(|event| event.action == EventAction::Blocked)
            .flat_map(|event| event.violations.iter().map(|v| v.rule.clone()))
            .next();
        let recorded = recorded(&outputs);
        let reply = match next {
            Next::Reply(reply) => Some(reply),
            _ => None,
        };
        outcome.response = Some(Box::new(Outcome {
            action: match (&reply, recorded.is_empty()) {
                (Some(_), _) => Action::Block,
                (None, false) => Action::Monitor,
                (None, true) => Action::Allow,
            },
            reply,
            rule,
            recorded,
            operation: None,
            response: None,
        }));
    }
    Ok(outcome)
}

/// The rules of every finding the events recorded without blocking, sorted.
fn recorded(outputs: &Outputs) -> Vec<String> {
    let mut recorded: Vec<String> = (outputs.events.iter())
        .filter(|event| event.action == EventAction::Monitored)
        .flat_map(|event| event.violations.iter().map(|v| v.rule.clone()))
        .collect();
    recorded.sort();
    recorded
}

fn run_case(policy: &Rc<Policy>, ring: &Rc<KeyRing>, case: &Value) -> Result<(), String> {
    let outcome = evaluate(policy, ring, case)?;
    let expect = case.get("expect").ok_or("missing `expect`")?;
    meets(&outcome, expect)?;
    match (expect.get("response"), outcome.response) {
        (Some(expect), Some(response)) => {
            meets(&response, expect).map_err(|e| format!("response: {e}"))
        }
        (Some(_), None) => Err("expected a response step: give the case a `response`".to_owned()),
        (None, Some(_)) => Err("the case has a `response`: say what to expect of it".to_owned()),
        (None, None) => Ok(()),
    }
}

/// Whether one step's outcome is what `expect` says.
fn meets(outcome: &Outcome, expect: &Value) -> Result<(), String> {
    let check = |ok: bool, what: String| if ok { Ok(()) } else { Err(what) };
    let expected_recorded: Vec<String> = {
        let mut r: Vec<String> = expect
            .get("recorded")
            .and_then(Value::as_sequence)
            .map(|s| {
                s.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        r.sort();
        r
    };
    let passes = expect.as_str() == Some("allow")
        || expect.get("allow").and_then(Value::as_bool) == Some(true);
    if passes {
        check(
            outcome.action != Action::Block,
            format!(
                "expected it to pass, got {:?} {:?}",
                outcome.action, outcome.rule
            ),
        )?;
        check(
            outcome.recorded == expected_recorded,
            format!(
                "expected recorded {expected_recorded:?}, got {:?}",
                outcome.recorded
            ),
        )?;
        if let Some(op) = expect.get("operation").and_then(Value::as_str) {
            check(
                outcome.operation.as_deref() == Some(op),
                format!("expected operation {op}, got {:?}", outcome.operation),
            )?;
        }
        return Ok(());
    }
    let reply = outcome
        .reply
        .as_ref()
        .ok_or_else(|| format!("expected a refusal, got {:?}", outcome.action))?;
    let rule = outcome.rule.clone().unwrap_or_default();
    if let Some(status) = expect.get("status").and_then(Value::as_u64) {
        check(
            u64::from(reply.status) == status,
            format!("expected status {status}, got {} ({rule})", reply.status),
        )?;
    }
    if let Some(expected) = expect.get("rule").and_then(Value::as_str) {
        check(
            rule == expected,
            format!("expected rule {expected}, got {rule}"),
        )?;
    }
    if let Some(methods) = expect.get("allow").and_then(Value::as_sequence) {
        let expected: Vec<&str> = methods.iter().filter_map(Value::as_str).collect();
        let got = reply
            .headers
            .iter()
            .find(|(name, _)| *name == "allow")
            .map(|(_, v)| v.clone());
        check(
            got.as_deref() == Some(expected.join(", ").as_str()),
            format!("expected Allow {expected:?}, got {got:?}"),
        )?;
    }
    Ok(())
}
