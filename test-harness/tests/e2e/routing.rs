//! Routing against the petstore contract: allowed requests pass unchanged, everything else
//! is answered by the filter and never reaches the API.

use apiguard_harness::{locate, EnvoyOptions, HttpVersion, Policy, RecordedRequest};
use bytes::Bytes;
use http::Request;

use crate::fixture::{allowed_methods, assert_problem, methods, Proxy};

fn petstore() -> Proxy {
    Proxy::start(Policy::File(locate::policy("petstore")))
}

#[test]
fn allowed_requests_reach_the_upstream_unchanged() {
    let proxy = petstore();
    let body = r#"{"name":"Rex","tag":"dog"}"#;
    let requests = || {
        let create = Request::post("/v1/pets")
            .header("content-type", "application/json")
            .body(Bytes::from(body));
        let list = Request::get("/v1/pets?limit=2&cursor=a%20b")
            .header("x-correlation-id", "c-123")
            .body(Bytes::new());
        [create.unwrap(), list.unwrap()]
    };
    for version in [HttpVersion::Http1, HttpVersion::H2c] {
        for request in requests() {
            let sent = format!("{version:?} {} {}", request.method(), request.uri());
            let headers = request.headers().clone();
            let response = proxy.client(version).send(request).unwrap();
            assert_eq!(response.status, 200, "{sent}: {response:?}");

            // The echo is what the upstream received.
            let echoed: RecordedRequest = serde_json::from_slice(&response.body).unwrap();
            assert_eq!(proxy.upstream.received().last(), Some(&echoed), "{sent}");
            assert_eq!(
                format!("{version:?} {} {}", echoed.method, target(&echoed)),
                sent
            );
            for (name, value) in &headers {
                assert_eq!(
                    echoed.headers[name.as_str()],
                    value.to_str().unwrap(),
                    "{sent}"
                );
            }
            let expected_body = if echoed.method == "POST" { body } else { "" };
            assert_eq!(echoed.body, expected_body, "{sent}");
        }
    }
}

fn target(request: &RecordedRequest) -> String {
    match &request.query {
        Some(query) => format!("{}?{query}", request.path),
        None => request.path.clone(),
    }
}

#[test]
fn unknown_path_is_a_404_problem_and_never_forwarded() {
    let proxy = petstore();
    // Outside the base path, below a declared path, and beside one.
    for target in ["/pets", "/v1/pets/42/owner", "/v1/admin", "/v1", "/"] {
        assert_problem(target, &proxy.get(target), 404, "route.unknown_path");
    }
    proxy.assert_upstream_saw_nothing();
}

#[test]
fn undeclared_method_is_a_405_problem_with_allow() {
    let proxy = petstore();
    let client = proxy.client(HttpVersion::Http1);
    let cases = [
        ("PUT", "/v1/pets", methods(&["GET", "POST"])),
        ("PATCH", "/v1/pets/42", methods(&["GET", "DELETE"])),
        ("DELETE", "/v1/pets/mine", methods(&["GET"])),
    ];
    for (method, target, allowed) in cases {
        let request = Request::builder().method(method).uri(target);
        let response = client.send(request.body(Bytes::new()).unwrap()).unwrap();
        let request = format!("{method} {target}");
        assert_problem(&request, &response, 405, "route.method_not_allowed");
        assert_eq!(allowed_methods(&response), allowed, "{method} {target}");
    }
    proxy.assert_upstream_saw_nothing();
}

#[test]
fn shipped_envoy_yaml_enforces_its_embedded_policy() {
    let proxy = Proxy::start(Policy::Embedded);
    assert_eq!(proxy.get("/v1/pets").status, 200);
    assert_problem(
        "/v1/admin",
        &proxy.get("/v1/admin"),
        404,
        "route.unknown_path",
    );
    assert_eq!(proxy.upstream.received().len(), 1);
}

/// The same config without apiguard forwards what apiguard refuses: the 404 above is the
/// filter's verdict, not a routing gap in the config.
#[test]
fn baseline_without_the_filter_forwards_everything() {
    let proxy = Proxy::start_with(EnvoyOptions {
        with_filter: false,
        ..EnvoyOptions::default()
    });
    assert_eq!(proxy.get("/v1/admin").status, 200);
    assert_eq!(proxy.upstream.received()[0].path, "/v1/admin");
}
