//! Underscore twins of the identity headers apiguard sets (`x_user` beside `x-user`):
//! CGI-style stacks read both as `HTTP_X_USER`, so a twin could stand in for the header
//! the filter set. The shipped Envoy config refuses header names with underscores; under
//! a config that allows them, the filter removes the twins itself.

use apiguard_harness::render::Downstream;
use apiguard_harness::{EnvoyOptions, HttpVersion, Policy, Response};
use bytes::Bytes;
use http::Request;
use serde_json::json;

use crate::fixture::Proxy;
use crate::tokens::{petstore_with_local_token_or_shop_key, SHOP_KEY};

const VERSIONS: [HttpVersion; 2] = [HttpVersion::Http1, HttpVersion::H2c];

/// The petstore with an API key (consumer header `x-apiguard-consumer`) and a JWT provider
/// that would set `x-user`: both are managed headers.
fn start(downstream: Downstream) -> Proxy {
    let bundle = petstore_with_local_token_or_shop_key(json!({
        "claim_to_headers": [{"header_name": "x-user", "claim_name": "sub"}]
    }));
    Proxy::start_with(EnvoyOptions {
        policy: Policy::Bundle(bundle),
        downstream,
        ..EnvoyOptions::default()
    })
}

/// `GET /v1/pets` with the API key and `headers`, over `version`.
fn send(proxy: &Proxy, version: HttpVersion, headers: &[(&str, &str)]) -> Response {
    let mut request = Request::get("/v1/pets").header("x-api-key", SHOP_KEY);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Bytes::new()).unwrap();
    proxy.client(version).send(request).unwrap()
}

const TWINS: [(&str, &str); 3] = [
    ("x_user", "mallory"),
    ("X_APIGUARD_CONSUMER", "admin"),
    ("x_apiguard-consumer", "root"),
];

#[test]
fn the_shipped_config_refuses_header_names_with_underscores() {
    let proxy = start(Downstream::default());
    let response = send(&proxy, HttpVersion::Http1, &TWINS[..1]);
    assert_eq!(response.status, 400, "{response:?}");
    // HTTP/2: Envoy resets the stream instead of answering.
    let request = Request::get("/v1/pets")
        .header("x-api-key", SHOP_KEY)
        .header("x_apiguard_consumer", "admin")
        .body(Bytes::new())
        .unwrap();
    let h2 = proxy.client(HttpVersion::H2c).send(request);
    assert!(
        h2.as_ref().is_err() || h2.as_ref().is_ok_and(|r| r.status == 400),
        "{h2:?}"
    );
    proxy.assert_upstream_saw_nothing();
    let stats = proxy.envoy.admin_get("/stats?filter=underscore").unwrap();
    for codec in ["http1", "http2"] {
        let rejected = format!("{codec}.requests_rejected_with_underscores_in_headers: 1");
        assert!(stats.contains(&rejected), "{stats}");
    }
    let response = send(&proxy, HttpVersion::Http1, &[]);
    assert_eq!(response.status, 200, "{response:?}");
}

/// Regression: `x_user` and `X_APIGUARD_CONSUMER` reached the upstream next to the
/// headers apiguard set; now the filter removes them even where Envoy lets them in.
#[test]
fn underscore_twins_of_managed_headers_reach_the_upstream() {
    let proxy = start(Downstream {
        allow_underscores: true,
        ..Downstream::default()
    });
    for version in VERSIONS {
        let mut headers = TWINS.to_vec();
        // Not a managed header's twin: passed on like any header.
        headers.push(("x_trace", "t-1"));
        let response = send(&proxy, version, &headers);
        assert_eq!(response.status, 200, "{version:?}: {response:?}");
        let seen = proxy.upstream.received().pop().unwrap();
        let names: Vec<&str> = seen.headers.keys().map(String::as_str).collect();
        let consumer = seen.headers.get("x-apiguard-consumer");
        assert_eq!(consumer.map(String::as_str), Some("shop-17"), "{version:?}");
        for twin in [
            "x_user",
            "x_apiguard_consumer",
            "x_apiguard-consumer",
            "x-user",
        ] {
            assert!(!names.contains(&twin), "{version:?}: {twin} in {names:?}");
        }
        let trace = seen.headers.get("x_trace").map(String::as_str);
        assert_eq!(trace, Some("t-1"), "{version:?}");
    }
}
