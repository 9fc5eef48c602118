//! The filter's counters, as an operator sees them on the admin `/stats/prometheus` page.

use apiguard_harness::{locate, Policy};

use crate::fixture::Proxy;

#[test]
fn verdicts_are_counted_in_prometheus_stats() {
    let proxy = Proxy::start(Policy::File(locate::policy("petstore")));
    let stats = proxy.envoy.stats().unwrap();
    for counter in ["inspected", "allowed", "blocked", "monitored"] {
        let name = format!("apiguard.requests_{counter}");
        // Defined when the plugin starts, so dashboards see a 0 rather than no series.
        assert_eq!(stats.wasm_counter(&name), Some(0.0), "{name}");
    }

    proxy.get("/v1/pets");
    proxy.get("/v1/admin");
    proxy.get("/v1/admin/users");
    proxy.get("/v1/pets/%2e%2e");

    let counters = [
        ("apiguard.requests_inspected", 4.0),
        ("apiguard.requests_allowed", 1.0),
        ("apiguard.requests_blocked", 3.0),
        ("apiguard.requests_monitored", 0.0),
        ("apiguard.rule.route.unknown_path.blocked", 2.0),
        ("apiguard.rule.path.dot_segment.blocked", 1.0),
        ("apiguard.rule.route.method_not_allowed.blocked", 0.0),
    ];
    let stats = proxy.envoy.stats().unwrap();
    for (name, value) in counters {
        assert_eq!(stats.wasm_counter(name), Some(value), "{name}");
    }

    // The petstore policy asks for the histogram (`stats: {inspection_time: true}`): one
    // sample per request head; Envoy publishes histograms at its stats flush (5 s).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let series = "apiguard_inspection_us_count{}";
    while proxy.envoy.stats().unwrap().get(series) != Some(4.0) {
        assert!(
            std::time::Instant::now() < deadline,
            "{series} never reached 4"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
