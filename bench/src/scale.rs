//! GitHub's REST API as a policy: what `on_configure` costs per VM, the VM's memory, and
//! (as scenarios in the main table) matching a deep templated path and validating a body.

use std::fs;
use std::time::{Duration, Instant};

use apiguard_filter::{load_bundle, PolicyError};
use apiguard_harness::compile_report::{background_compiles_ms, compile_reports, CompileReport};
use apiguard_harness::{locate, Envoy};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::BenchError;

/// GitHub's policy, bundled (its 13 MB document inlined). The document is fetched by the
/// Makefile (`make bench` or `make specs`); without it, the bench stops before measuring
/// anything and says so.
pub fn github_bundle() -> Result<Value, BenchError> {
    let policy = locate::workspace_root().join("bench/policies/github.yaml");
    load_bundle(&policy).map_err(|e| match e {
        PolicyError::ReadNamed { .. } => BenchError::Tool(format!(
            "{e}: `make specs` (or `make bench`) fetches it from the npm registry"
        )),
        e => e.into(),
    })
}

/// `bundle` with its document's `paths` cut down to `template`, every component kept: the
/// same path matched against a policy of one path instead of 809.
pub fn one_path(bundle: &Value, template: &str) -> Result<Value, BenchError> {
    let mut bundle = bundle.clone();
    let paths = bundle
        .pointer_mut("/openapi/document/paths")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| {
            BenchError::Config("the GitHub bundle has no /openapi/document/paths".into())
        })?;
    let item = paths
        .remove(template)
        .ok_or_else(|| BenchError::Config(format!("GitHub's API has no path {template}")))?;
    paths.clear();
    paths.insert(template.to_owned(), item);
    Ok(bundle)
}

/// `bundle` with `schemas: lazy`: each schema compiled on its first use instead of in
/// `on_configure`. Shows what of the configure cost is schema compilation.
pub fn lazy(bundle: &Value) -> Value {
    let mut bundle = bundle.clone();
    if let Some(policy) = bundle.as_object_mut() {
        policy.insert("schemas".into(), Value::from("lazy"));
    }
    bundle
}

/// What the filter and the kernel say about the configured VMs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scale {
    /// `on_configure` of GitHub's policy, per VM (Envoy configures the main thread's VM
    /// and each worker's), from the filter's log line, host clock.
    pub github_configure_ms: Vec<f64>,
    /// The VM's linear memory after the compile, per VM.
    pub github_wasm_memory_mib: Vec<f64>,
    pub github_templates: u64,
    /// The same with `schemas: lazy`.
    #[serde(default)]
    pub lazy_configure_ms: Vec<f64>,
    #[serde(default)]
    pub lazy_wasm_memory_mib: Vec<f64>,
    /// How long after its configure each lazy VM had compiled every schema in the
    /// background, ms (host clock).
    #[serde(default)]
    pub lazy_all_compiled_ms: Vec<f64>,
    pub one_path_configure_ms: Vec<f64>,
    pub one_path_wasm_memory_mib: Vec<f64>,
    pub bench_wasm_memory_mib: Vec<f64>,
    /// Resident memory of the whole Envoy process (two VMs), for a cross-check.
    pub github_rss_mib: f64,
    pub bench_rss_mib: f64,
    pub bare_rss_mib: f64,
    /// Envoy's own `wasm.*` stats that mention memory, if this Envoy has any.
    pub envoy_wasm_memory_stats: Vec<String>,
}

impl Scale {
    pub fn read(
        github: &Envoy,
        lazy: &Envoy,
        one_path: &Envoy,
        bench: &Envoy,
        bare: &Envoy,
    ) -> Result<Scale, BenchError> {
        let reports = |envoy: &Envoy| compile_reports(&envoy.log());
        let github_log = reports(github);
        let lazy_log = reports(lazy);
        let lazy_all_compiled_ms = background_compiles(lazy, lazy_log.len());
        let one_log = reports(one_path);
        let bench_log = reports(bench);
        let stats = github.admin_get("/stats?filter=wasm")?;
        Ok(Scale {
            github_configure_ms: ms(&github_log),
            github_wasm_memory_mib: mib(&github_log),
            github_templates: github_log.first().map_or(0, |l| l.templates),
            lazy_configure_ms: ms(&lazy_log),
            lazy_wasm_memory_mib: mib(&lazy_log),
            lazy_all_compiled_ms,
            one_path_configure_ms: ms(&one_log),
            one_path_wasm_memory_mib: mib(&one_log),
            bench_wasm_memory_mib: mib(&bench_log),
            github_rss_mib: rss_mib(github.pid()),
            bench_rss_mib: rss_mib(bench.pid()),
            bare_rss_mib: rss_mib(bare.pid()),
            envoy_wasm_memory_stats: stats
                .lines()
                .filter(|line| line.contains("memory"))
                .map(str::to_owned)
                .collect(),
        })
    }
}

/// The background compile time of each VM that configured, ms: waits for them (at most
/// a minute; a VM that has not finished by then is left out). `configured` counts the
/// canary VM Envoy configures to validate the plugin and drops before it ticks.
fn background_compiles(envoy: &Envoy, configured: usize) -> Vec<f64> {
    let started = Instant::now();
    loop {
        let done = background_compiles_ms(&envoy.log());
        if done.len() + 1 >= configured || started.elapsed() > Duration::from_secs(60) {
            return done.into_iter().map(|ms| ms as f64).collect();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Each VM's compile time, ms.
fn ms(reports: &[CompileReport]) -> Vec<f64> {
    reports.iter().map(|r| r.micros as f64 / 1e3).collect()
}

/// Each VM's linear memory, MiB.
fn mib(reports: &[CompileReport]) -> Vec<f64> {
    reports
        .iter()
        .map(|r| r.wasm_memory_kib as f64 / 1024.0)
        .collect()
}

fn rss_mib(pid: u32) -> f64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kib| kib / 1024.0)
}
