//! Each VM reports its policy compile (time, wasm memory, templates): the figures `make
//! bench` publishes for GitHub's API, read by the same parser; and with `schemas: lazy`,
//! when the background compile is done.

use std::time::{Duration, Instant};

use apiguard_harness::compile_report::{background_compiles_ms, compile_reports};
use apiguard_harness::{locate, Policy};
use serde_json::json;

use crate::fixture::{assert_problem, bundled, Proxy};

#[test]
fn every_configured_vm_reports_its_compile_time_and_wasm_memory() {
    let proxy = Proxy::start(Policy::File(locate::policy("petstore")));
    let reports = compile_reports(&proxy.envoy.log());
    // Envoy 1.40 configures the main thread's VM and the worker's (more may follow).
    assert!(
        reports.len() >= 2,
        "{reports:?}\n{}",
        proxy.envoy.log_tail()
    );
    for report in reports {
        // Petstore's three path templates (/pets, /pets/mine, /pets/{petId}); some linear
        // memory; a compile that took time but not minutes (host clock, microseconds).
        assert_eq!(report.templates, 3, "{report:?}");
        assert!(report.wasm_memory_kib >= 64, "{report:?}");
        assert!(
            report.micros > 0 && report.micros < 60_000_000,
            "{report:?}"
        );
    }
}

/// `schemas: lazy`: configure compiles no schema; each VM's tick then compiles them all
/// within seconds and says so. A schema that does not compile is logged, and the values it
/// checks fail closed.
#[test]
fn lazy_schemas_compile_in_the_background_and_broken_ones_fail_closed() {
    let mut policy = bundled("petstore");
    policy["schemas"] = json!("lazy");
    let limit = "/openapi/document/paths/~1pets/get/parameters/0/schema";
    policy.pointer_mut(limit).unwrap()["pattern"] = json!("(");
    let proxy = Proxy::start(Policy::Bundle(policy));
    let started = Instant::now();
    let done = |log: &str| background_compiles_ms(log).len();
    while done(&proxy.envoy.log()) < 2 && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    // The main thread's VM and the worker's (Envoy's configure-time canary VM is
    // dropped before it ticks).
    let log = proxy.envoy.log();
    assert!(done(&log) >= 2, "{}", proxy.envoy.log_tail());
    assert!(log.contains("schema does not compile"), "{log}");
    let response = proxy.get("/v1/pets?limit=5");
    assert_problem("limit", &response, 400, "params.invalid");
    let response = proxy.get("/v1/pets/1");
    assert_eq!(response.status, 200, "{response:?}");
    let received: Vec<String> = (proxy.upstream.received().iter())
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(received, ["/v1/pets/1"]);
}
