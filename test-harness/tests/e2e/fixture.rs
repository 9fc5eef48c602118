//! What every test starts from: Envoy with a policy, in front of an echo upstream.

use std::collections::BTreeSet;

use apiguard_harness::{
    embed, locate, Client, EchoUpstream, Envoy, EnvoyOptions, HttpVersion, Policy, Response,
};
use serde_json::Value;

/// Envoy and the upstream behind it; both stop when this is dropped.
pub struct Proxy {
    pub envoy: Envoy,
    pub upstream: EchoUpstream,
}

impl Proxy {
    pub fn start(policy: Policy) -> Proxy {
        Proxy::start_with(EnvoyOptions {
            policy,
            ..EnvoyOptions::default()
        })
    }

    pub fn start_with(options: EnvoyOptions) -> Proxy {
        let upstream = EchoUpstream::start().unwrap();
        // Display, not Debug: the error carries Envoy's log tail, which should read as lines.
        let envoy =
            Envoy::start(&options, upstream.addr()).unwrap_or_else(|error| panic!("{error}"));
        Proxy { envoy, upstream }
    }

    pub fn client(&self, version: HttpVersion) -> Client {
        self.envoy.client(version).unwrap()
    }

    pub fn get(&self, target: &str) -> Response {
        self.client(HttpVersion::Http1).get(target).unwrap()
    }

    /// The value of one of the filter's counters, 0 if Envoy has not printed it.
    pub fn counter(&self, name: &str) -> f64 {
        self.envoy
            .stats()
            .unwrap()
            .wasm_counter(name)
            .unwrap_or(0.0)
    }

    pub fn assert_upstream_saw_nothing(&self) {
        let received = self.upstream.received();
        assert!(received.is_empty(), "the upstream received {received:#?}");
    }
}

/// A bundled example policy as a JSON value, for tests that edit it.
pub fn bundled(name: &str) -> Value {
    embed::bundle(&locate::policy(name)).unwrap_or_else(|error| panic!("{error}"))
}

/// Asserts `response` (to the request described by `request`) is an RFC 9457 problem from
/// apiguard for `rule`, and returns its body.
pub fn assert_problem(request: &str, response: &Response, status: u16, rule: &str) -> Value {
    assert_eq!(response.status.as_u16(), status, "{request}: {response:?}");
    let content_type = response.header("content-type");
    let problem_json = Some("application/problem+json");
    assert_eq!(content_type, problem_json, "{request}: {response:?}");
    let problem = response.json().unwrap();
    for member in ["type", "title", "status", "detail", "rule"] {
        assert!(
            problem.get(member).is_some(),
            "{request}: no `{member}` in {problem}"
        );
    }
    assert_eq!(problem["status"], status, "{request}: {problem}");
    assert_eq!(problem["rule"], rule, "{request}: {problem}");
    problem
}

/// The methods of an `allow` header, as a set (their order is not part of the contract).
pub fn allowed_methods(response: &Response) -> BTreeSet<String> {
    let allow = response.header("allow").unwrap_or_default();
    allow
        .split(',')
        .map(|method| method.trim().to_owned())
        .collect()
}

pub fn methods(methods: &[&str]) -> BTreeSet<String> {
    methods.iter().map(|method| method.to_string()).collect()
}
