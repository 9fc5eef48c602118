//! Policy conformance: every `policies/*/policy.yaml` compiles, and the `cases.yaml` next
//! to it (request -> expected verdict) holds against the compiled policy.
//!
//! Case format:
//! ```yaml
//! - name: wrong method
//!   request: PATCH /v1/pets
//!   expect: {status: 405, rule: route.method_not_allowed, allow: [GET, POST]}
//! - name: list pets
//!   request: GET /v1/pets?limit=10
//!   expect: allow                      # or {allow: true, operation: listPets}
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use apiguard_filter::config::bundle;
use apiguard_filter::inspect::RequestView;
use apiguard_filter::policy::Policy;
use apiguard_filter::problem;
use apiguard_filter::verdict::Action;
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
        assert!(!policy.router.is_empty());
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
        let text = std::fs::read_to_string(dir.join("cases.yaml")).unwrap();
        let cases: Vec<Value> = serde_yaml::from_str(&text).unwrap();
        for case in cases {
            count += 1;
            if let Err(why) = run_case(&policy, &case) {
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

fn run_case(policy: &Policy, case: &Value) -> Result<(), String> {
    let (method, target) = field(case, "request")
        .split_once(' ')
        .ok_or("`request` must be `METHOD /path`")?;
    let verdict = policy.inspect(&RequestView {
        method: method.as_bytes(),
        path: target.as_bytes(),
    });
    let expect = case.get("expect").ok_or("missing `expect`")?;
    let check = |ok: bool, what: String| if ok { Ok(()) } else { Err(what) };
    let allowed = expect.as_str() == Some("allow")
        || expect.get("allow").and_then(Value::as_bool) == Some(true);
    if allowed {
        check(
            verdict.action == Action::Allow,
            format!(
                "expected allow, got {:?} {:?}",
                verdict.action, verdict.rule
            ),
        )?;
        if let Some(op) = expect.get("operation").and_then(Value::as_str) {
            let got = verdict.operation.and_then(|o| o.operation_id);
            check(
                got == Some(op),
                format!("expected operation {op}, got {got:?}"),
            )?;
        }
        return Ok(());
    }
    let rule = verdict
        .rule
        .ok_or_else(|| "expected a violation, got allow".to_owned())?;
    let reply = problem::reply(&policy.name, rule, &verdict);
    if let Some(status) = expect.get("status").and_then(Value::as_u64) {
        check(
            u64::from(reply.status) == status,
            format!("expected status {status}, got {}", reply.status),
        )?;
    }
    if let Some(expected) = expect.get("rule").and_then(Value::as_str) {
        check(
            rule.as_str() == expected,
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
