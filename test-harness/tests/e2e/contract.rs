//! Each example policy end to end, driven by its own OpenAPI document: every declared
//! operation reaches the upstream, an undeclared method on each path gets a 405 naming the
//! declared ones, and a path outside the contract a 404. New example policies need only a
//! line here.
//!
//! This walk is about routing, so it turns each operation's contract checks off (the
//! policy's `operations` setting): its requests carry no bodies and fill every parameter
//! with `1`. The contract checks have their own end-to-end tests and the conformance cases.

use apiguard_harness::contract::{base_path, declared_paths, DeclaredPath};
use apiguard_harness::{HttpVersion, Policy};
use bytes::Bytes;
use http::Request;
use serde_json::{json, Map, Value};

use crate::fixture::{allowed_methods, assert_problem, bundled, Proxy};

#[test]
fn petstore_contract_end_to_end() {
    walk_contract("petstore");
}

#[test]
fn bookshop_contract_end_to_end() {
    walk_contract("bookshop");
}

fn walk_contract(name: &str) {
    let mut bundle = bundled(name);
    let declared = declared_paths(&bundle);
    assert!(!declared.is_empty(), "{name} declares no paths");
    bundle["operations"] = routing_only(&bundle);
    let proxy = Proxy::start(Policy::Bundle(bundle));
    let client = proxy.client(HttpVersion::Http1);
    let send = |method: &str, path: &str| {
        let request = Request::builder().method(method).uri(path);
        client.send(request.body(Bytes::new()).unwrap()).unwrap()
    };

    let mut forwarded = Vec::new();
    for declared_path in &declared {
        let DeclaredPath { path, methods } = declared_path;
        for method in methods {
            let response = send(method, path);
            assert_eq!(
                response.status, 200,
                "{name}: {method} {path}: {response:?}"
            );
            forwarded.push(format!("{method} {path}"));
        }
        if let Some(undeclared) = declared_path.undeclared_method() {
            let request = format!("{name}: {undeclared} {path}");
            let response = send(undeclared, path);
            assert_problem(&request, &response, 405, "route.method_not_allowed");
            assert_eq!(&allowed_methods(&response), methods, "{request}");
        }
    }
    let base = base_path(&bundled(name));
    let unknown = format!("{base}/apiguard-no-such-resource");
    assert_problem(&unknown, &send("GET", &unknown), 404, "route.unknown_path");

    let received: Vec<_> = proxy.upstream.received();
    let received: Vec<_> = received
        .iter()
        .map(|request| format!("{} {}", request.method, request.path))
        .collect();
    assert_eq!(
        received, forwarded,
        "{name}: exactly the declared operations arrive"
    );
}

/// `operations` settings that turn every operation's contract checks off.
fn routing_only(bundle: &Value) -> Value {
    let paths = bundle["openapi"]["document"]["paths"].as_object();
    let mut operations = Map::new();
    for (template, item) in paths.into_iter().flatten() {
        for method in [
            "get", "put", "post", "delete", "options", "head", "patch", "trace",
        ] {
            if item.get(method).is_some() {
                let key = format!("{} {template}", method.to_ascii_uppercase());
                operations.insert(key, json!({"mode": "off"}));
            }
        }
    }
    Value::Object(operations)
}
