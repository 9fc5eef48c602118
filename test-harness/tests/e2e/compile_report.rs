//! Each VM reports its policy compile (time, wasm memory, templates): the figures `make
//! bench` publishes for GitHub's API, read by the same parser.

use apiguard_harness::compile_report::compile_reports;
use apiguard_harness::{locate, Policy};

use crate::fixture::Proxy;

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
