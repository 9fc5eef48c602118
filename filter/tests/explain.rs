//! `apiguard explain`: the verdict on one request, through the filter's own pipeline, on
//! the example policies — what a user runs before shipping a contract change.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

fn explain(policy: &str, args: &[&str]) -> (bool, String) {
    let policy = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../policies")
        .join(policy);
    let output = Command::new(env!("CARGO_BIN_EXE_apiguard"))
        .arg("explain")
        .arg(policy)
        .args(args)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

#[test]
fn a_refusal_is_explained_by_its_rules_and_the_operation_that_decided_it() {
    let (ok, out) = explain(
        "petstore/policy.yaml",
        &[
            "POST /v1/pets?x=1",
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"name": 5}"#,
        ],
    );
    assert!(ok, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "POST /v1/pets?x=1: blocked",
            "  answered 400 by the filter (body.schema)",
            "  operation createPet, declared at /paths/~1pets/post in the OpenAPI document",
            "  params.undeclared [monitored] query x: is not declared by the operation",
            "  body.schema [blocked] body /name: must be of type string",
        ],
        "{out}"
    );
}

#[test]
fn a_request_that_passes_says_so_and_a_bad_request_line_is_a_usage_error() {
    let (ok, out) = explain("petstore/policy.yaml", &["GET /v1/pets?limit=5"]);
    assert!(ok, "{out}");
    assert!(
        out.starts_with("GET /v1/pets?limit=5: allowed\n  forwarded upstream\n"),
        "{out}"
    );
    let (ok, out) = explain("petstore/policy.yaml", &["/v1/pets"]);
    assert!(!ok && out.contains("METHOD /target"), "{out}");
}

/// A gateway (`apis:`): the request is explained by the API its host and path choose, as
/// Envoy would choose it; one no API has is `route.unknown_api`.
#[test]
fn a_gateway_explains_by_the_api_its_host_chooses() {
    let gateway = "gateway/gateway.yaml";
    let (ok, out) = explain(
        gateway,
        &["GET /v1/pets", "-H", "Host: PETS.example.com:443"],
    );
    assert!(ok, "{out}");
    assert!(
        out.starts_with("API `petstore`\nGET /v1/pets: allowed\n  forwarded upstream\n"),
        "{out}"
    );
    let (ok, out) = explain(
        gateway,
        &["GET /v1/pets", "-H", "Host: eu.books.example.com"],
    );
    assert!(ok, "{out}");
    assert_eq!(
        out.lines().take(2).collect::<Vec<_>>(),
        [
            "GET /v1/pets: blocked",
            "  answered 404 by the filter (route.unknown_api)"
        ],
        "{out}"
    );
    let (ok, out) = explain(
        gateway,
        &["GET /bookshop/v2/nowhere", "-H", "Host: books.example.com"],
    );
    assert!(ok, "{out}");
    assert!(
        out.starts_with("API `bookshop`\nGET /bookshop/v2/nowhere: blocked\n  answered 404 by the filter (route.unknown_path)"),
        "{out}"
    );
}
