//! `apiguard diff`: what a contract change does to clients, on small before/after
//! documents with one change of each class (`tests/diff/`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Runs `apiguard diff` on two fixtures: the exit code and stdout, stderr.
fn diff(old: &str, new: &str, json: bool) -> (Option<i32>, String, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/diff");
    let mut command = Command::new(env!("CARGO_BIN_EXE_apiguard"));
    command.arg("diff").arg(dir.join(old)).arg(dir.join(new));
    if json {
        command.arg("--json");
    }
    let output = command.output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Each change as (operation, kind, at, breaking).
fn changes(report: &Value) -> BTreeSet<(String, String, String, bool)> {
    let changes = report["changes"].as_array().unwrap();
    (changes.iter())
        .map(|c| {
            let text = |key: &str| c[key].as_str().unwrap().to_owned();
            let breaking = c["breaking"].as_bool().unwrap();
            (text("operation"), text("kind"), text("at"), breaking)
        })
        .collect()
}

fn change(operation: &str, kind: &str, at: &str, breaking: bool) -> (String, String, String, bool) {
    (
        operation.to_owned(),
        kind.to_owned(),
        at.to_owned(),
        breaking,
    )
}

/// Every class: operations removed and added, a parameter added (required, optional)
/// and removed, a bound and a type narrowed, an enum and a bound widened, a property made
/// required, added and removed, a scope added; a renamed path parameter is no change.
fn expected() -> BTreeSet<(String, String, String, bool)> {
    [
        change("GET /orders", "schema.tightened", "query limit", true),
        change("GET /orders", "parameter.added", "query region", true),
        change("GET /orders", "parameter.added", "query sort", false),
        change("GET /orders", "schema.loosened", "query status", false),
        change("GET /orders", "parameter.removed", "query page", false),
        change(
            "POST /orders",
            "property.required",
            "body application/json /quantity",
            true,
        ),
        change(
            "POST /orders",
            "schema.loosened",
            "body application/json /item",
            false,
        ),
        change(
            "POST /orders",
            "schema.tightened",
            "body application/json /quantity",
            true,
        ),
        change(
            "POST /orders",
            "property.added",
            "body application/json /gift",
            false,
        ),
        change(
            "POST /orders",
            "property.removed",
            "body application/json /note",
            false,
        ),
        change("POST /orders", "security.tightened", "security", true),
        change("DELETE /orders/{id}", "operation.removed", "", true),
        change("PATCH /orders/{orderId}", "operation.added", "", false),
    ]
    .into_iter()
    .collect()
}

#[test]
fn each_class_of_change_is_found_and_classified() {
    let (code, out, err) = diff("before.yaml", "after.yaml", true);
    assert_eq!(code, Some(1), "breaking changes exit 1: {out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(changes(&report), expected(), "{out}");
    assert_eq!(report["breaking"], 6, "{out}");
    let details: Vec<&str> = (report["changes"].as_array().unwrap().iter())
        .filter_map(|c| c["detail"].as_str())
        .collect();
    for detail in [
        "maximum 100 -> 10",
        r#"enum gains "cancelled""#,
        r#"type "number" -> "integer""#,
        "oauth [orders:write] -> oauth [orders:write orders:admin]",
    ] {
        assert!(details.contains(&detail), "{detail} not in {details:#?}");
    }
}

#[test]
fn the_text_report_groups_changes_by_operation() {
    let (code, out, _) = diff("before.yaml", "after.yaml", false);
    assert_eq!(code, Some(1));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.contains(&"GET /orders (listOrders)"), "{out}");
    assert!(
        lines.contains(&"  breaking      schema.tightened query limit: maximum 100 -> 10"),
        "{out}"
    );
    assert!(
        lines.contains(
            &"  non-breaking  operation.added declared at /paths/~1orders~1{orderId}/patch"
        ),
        "{out}"
    );
    assert_eq!(lines.last(), Some(&"13 changes, 6 breaking"), "{out}");
}

#[test]
fn no_change_and_only_widening_changes_exit_0() {
    let (code, out, _) = diff("before.yaml", "before.yaml", false);
    assert_eq!((code, out.trim()), (Some(0), "0 changes, 0 breaking"));
    let (code, out, _) = diff("before.yaml", "wider.yaml", true);
    assert_eq!(code, Some(0), "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let widened = [
        change("GET /orders", "schema.loosened", "query limit", false),
        change("GET /orders", "parameter.added", "query sort", false),
        change("GET /orders", "schema.loosened", "query status", false),
    ];
    assert_eq!(changes(&report), widened.into_iter().collect(), "{out}");
}

#[test]
fn reversing_a_change_widens_what_it_narrowed() {
    // Still breaking (the enum loses a value, the new operation goes away), but every
    // narrowing of `each_class_of_change_is_found_and_classified` now widens.
    let (code, out, _) = diff("after.yaml", "before.yaml", true);
    assert_eq!(code, Some(1), "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let found = changes(&report);
    for widened in [
        change("GET /orders", "schema.loosened", "query limit", false),
        change(
            "POST /orders",
            "property.optional",
            "body application/json /quantity",
            false,
        ),
        change(
            "POST /orders",
            "schema.loosened",
            "body application/json /quantity",
            false,
        ),
        change("POST /orders", "security.loosened", "security", false),
        change("DELETE /orders/{id}", "operation.added", "", false),
    ] {
        assert!(found.contains(&widened), "{widened:?} not in {found:#?}");
    }
}

/// Under `strict: true` the policy refuses undeclared query parameters and body
/// properties: removing one is breaking.
#[test]
fn policies_are_compared_with_their_settings() {
    let (code, out, err) = diff("strict-before.yaml", "strict-after.yaml", true);
    assert_eq!(code, Some(1), "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let found = changes(&report);
    assert!(found.contains(&change(
        "GET /orders",
        "parameter.removed",
        "query page",
        true
    )));
    assert!(found.contains(&change(
        "POST /orders",
        "property.removed",
        "body application/json /note",
        true
    )));
    assert_eq!(report["breaking"], 8, "{out}");
}

#[test]
fn a_file_that_does_not_compile_exits_2() {
    let (code, _, err) = diff("before.yaml", "missing.yaml", false);
    assert_eq!(code, Some(2));
    assert!(err.starts_with("error: "), "{err}");
}
