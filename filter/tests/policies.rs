//! Policy conformance: every `policies/*/policy.yaml` compiles, and the `cases.yaml` next
//! to it (request -> expected verdict) holds against the compiled policy. Each case runs
//! through the filter's own pipeline ([`Exchange`]): whatever the policy checks (contract,
//! tokens, anomalies, rate limits) applies, each case as a first request from one client.
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
//! ```
//! `allow` means the request passes with nothing recorded, unless `recorded` lists the
//! rules of the findings that were recorded without blocking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use apiguard_filter::{
    bundle, Action, EventAction, Exchange, KeyRing, MemoryStore, Next, Policy, Reply, SlotSecret,
    Values,
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
        let (_, policy) = bundle(&dir.join("policy.yaml")).unwrap_or_else(|e| panic!("{e}"));
        assert!(policy.templates() > 0);
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
        let (_, policy) = bundle(&dir.join("policy.yaml")).unwrap();
        let policy = Rc::new(policy);
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

/// Everything the engine said about one request, head and body.
struct Outcome {
    action: Action,
    /// The reply a blocked request gets.
    reply: Option<Reply>,
    rule: Option<String>,
    /// Rules of violations that were recorded but did not block.
    recorded: Vec<String>,
    operation: Option<String>,
}

fn evaluate(policy: &Rc<Policy>, ring: &Rc<KeyRing>, case: &Value) -> Result<Outcome, String> {
    let (method, target) = field(case, "request")
        .split_once(' ')
        .ok_or("`request` must be `METHOD /path`")?;
    let mut headers: Vec<(String, String)> = vec![
        (":method".to_owned(), method.to_owned()),
        (":path".to_owned(), target.to_owned()),
    ];
    headers.extend(
        case.get("headers")
            .and_then(Value::as_mapping)
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.as_str()?.to_ascii_lowercase(), v.as_str()?.to_owned()))),
    );
    let body = case.get("body").and_then(Value::as_str).map(str::as_bytes);
    let input = Values {
        now: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
        downstream: Some("192.0.2.1:40000".to_owned()),
        store: MemoryStore::default(),
        secret: SlotSecret::new([1; SlotSecret::BYTES]),
    };
    // The request runs the filter's own pipeline, as Envoy would drive it.
    let mut exchange = Exchange::new(Rc::clone(policy), Rc::clone(ring));
    let next = exchange.request(&input, &headers, body);
    let outputs = exchange.take_outputs();
    let state = outputs.filter_state.ok_or("the exchange settled nothing")?;
    // A request that passed recorded every finding its events list.
    let mut recorded: Vec<String> = outputs
        .events
        .iter()
        .filter(|event| event.action == EventAction::Monitored)
        .flat_map(|event| event.violations.iter().map(|v| v.rule.clone()))
        .collect();
    recorded.sort();
    Ok(Outcome {
        action: state.action,
        reply: match next {
            Next::Reply(reply) => Some(reply),
            _ => None,
        },
        rule: state.rule.map(|rule| rule.as_str().to_owned()),
        recorded,
        operation: state.operation.map(|label| label.to_string()),
    })
}

fn run_case(policy: &Rc<Policy>, ring: &Rc<KeyRing>, case: &Value) -> Result<(), String> {
    let outcome = evaluate(policy, ring, case)?;
    let expect = case.get("expect").ok_or("missing `expect`")?;
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
        .ok_or_else(|| format!("expected a refusal, got {:?}", outcome.action))?;
    let rule = outcome.rule.unwrap_or_default();
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
