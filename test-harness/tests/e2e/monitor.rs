//! `mode: monitor`: every request passes, the verdicts are still counted.

use apiguard_harness::Policy;
use bytes::Bytes;
use http::Request;
use serde_json::json;

use crate::fixture::{bundled, Proxy};

#[test]
fn monitor_mode_forwards_violations_and_counts_them() {
    let mut policy = bundled("petstore");
    policy["mode"] = json!("monitor");
    let proxy = Proxy::start(Policy::Bundle(policy));
    let client = proxy.client(apiguard_harness::HttpVersion::Http1);

    assert_eq!(proxy.get("/v1/admin").status, 200);
    let put = Request::put("/v1/pets").body(Bytes::new()).unwrap();
    assert_eq!(client.send(put).unwrap().status, 200);
    assert_eq!(proxy.get("/v1/pets/%2e%2e/admin").status, 200);

    let paths: Vec<_> = proxy
        .upstream
        .received()
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert_eq!(paths, ["/v1/admin", "/v1/pets", "/v1/pets/%2e%2e/admin"]);
    assert_eq!(proxy.counter("apiguard.requests_monitored"), 3.0);
    assert_eq!(proxy.counter("apiguard.requests_blocked"), 0.0);
    for rule in [
        "route.unknown_path",
        "route.method_not_allowed",
        "path.dot_segment",
    ] {
        assert_eq!(
            proxy.counter(&format!("apiguard.rule.{rule}.monitored")),
            1.0,
            "{rule}"
        );
        assert_eq!(
            proxy.counter(&format!("apiguard.rule.{rule}.blocked")),
            0.0,
            "{rule}"
        );
    }
}
