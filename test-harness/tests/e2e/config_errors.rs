//! A policy the filter cannot use makes Envoy refuse to start — never run without it — and
//! the log says what is wrong and where.

use apiguard_harness::{EchoUpstream, Envoy, EnvoyOptions, Error, Policy};
use serde_json::{json, Value};

use crate::fixture::bundled;

/// Starts Envoy with `policy`, expects it to exit with an error, and returns its log tail.
fn refused(policy: Value) -> String {
    let upstream = EchoUpstream::start().unwrap();
    let options = EnvoyOptions {
        policy: Policy::Bundle(policy),
        ..EnvoyOptions::default()
    };
    match Envoy::start(&options, upstream.addr()) {
        Err(Error::EnvoyExited { status, log_tail }) => {
            assert!(!status.success(), "{status}");
            let refusal = "Unable to create Wasm plugin apiguard";
            assert!(log_tail.contains(refusal), "{log_tail}");
            log_tail
        }
        Err(other) => panic!("expected Envoy to exit, got: {other}"),
        Ok(envoy) => panic!(
            "Envoy started with a bad policy; log:\n{}",
            envoy.log_tail()
        ),
    }
}

#[test]
fn unsupported_openapi_version_is_refused_with_its_location() {
    let mut policy = bundled("petstore");
    policy["openapi"]["document"]["openapi"] = json!("2.0");
    let log = refused(policy);
    assert!(
        log.contains("at /openapi"),
        "the log should name the place:\n{log}"
    );
    assert!(
        log.contains("`2.0`"),
        "the log should name the value:\n{log}"
    );
}

#[test]
fn unknown_policy_key_is_refused_by_name() {
    let mut policy = bundled("petstore");
    policy["rate_limit"] = json!({"rps": 10});
    let log = refused(policy);
    assert!(
        log.contains("at /rate_limit"),
        "the log should name the place:\n{log}"
    );
}

#[test]
fn a_malformed_remote_source_is_refused_with_its_location() {
    let source = json!({"remote": {
        "http_uri": {"uri": "http://policies/bundle.json", "cluster": "jwks"},
        "sha256": "not-a-digest",
    }});
    let log = refused(source);
    assert!(
        log.contains("at /remote/sha256"),
        "the log should name the place:\n{log}"
    );
}
