//! A short soak (`make soak` is the long one): a minute of the steady mixed load of
//! `apiguard_harness::soak`, sampled every 10 s, holding the same checks: memory flat after
//! warm-up, no unexpected status, every finding sent or dropped.

use std::time::Duration;

use apiguard_harness::soak::{self, SoakOptions};

#[test]
fn a_minute_of_mixed_load_keeps_memory_flat_and_every_status_and_event_accounted() {
    let out = apiguard_harness::locate::workspace_root().join("target/soak-short");
    let report = soak::run(&SoakOptions {
        duration: Duration::from_secs(60),
        sample_every: Duration::from_secs(10),
        warm_up: Duration::from_secs(20),
        threads: 2,
        rate: 40,
        max_requests: 1_000_000,
        concurrency: 2,
        rss_tolerance: 0.10,
        out: out.clone(),
    })
    .unwrap_or_else(|error| panic!("{error}"));
    let summary = report.summary();
    assert!(report.samples.len() >= 7, "{summary}");
    assert!(report.passed(), "{summary}");
    assert!(out.join("soak.csv").is_file() && out.join("soak.png").is_file());
}
