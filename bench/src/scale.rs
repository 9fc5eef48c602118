//! GitHub's REST API as a policy: what `on_configure` costs per VM, the VM's memory, and
//! (as scenarios in the main table) matching a deep templated path and validating a body.

use std::fs;

use apiguard_harness::{locate, Envoy};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::BenchError;

/// GitHub's policy, bundled (its 13 MB document inlined).
pub fn github_bundle() -> Result<Value, BenchError> {
    let policy = locate::workspace_root().join("bench/policies/github.yaml");
    Ok(apiguard_harness::embed::bundle(&policy)?)
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
        let github_log = compiled_lines(github);
        let lazy_log = compiled_lines(lazy);
        let one_log = compiled_lines(one_path);
        let bench_log = compiled_lines(bench);
        let stats = github.admin_get("/stats?filter=wasm")?;
        Ok(Scale {
            github_configure_ms: github_log.iter().map(|l| l.micros / 1000.0).collect(),
            github_wasm_memory_mib: github_log.iter().map(|l| l.memory_kib / 1024.0).collect(),
            github_templates: github_log.first().map_or(0, |l| l.templates),
            lazy_configure_ms: lazy_log.iter().map(|l| l.micros / 1000.0).collect(),
            lazy_wasm_memory_mib: lazy_log.iter().map(|l| l.memory_kib / 1024.0).collect(),
            one_path_configure_ms: one_log.iter().map(|l| l.micros / 1000.0).collect(),
            one_path_wasm_memory_mib: one_log.iter().map(|l| l.memory_kib / 1024.0).collect(),
            bench_wasm_memory_mib: bench_log.iter().map(|l| l.memory_kib / 1024.0).collect(),
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

/// The filter's "policy … compiled in N us, wasm memory M KiB: T path templates" line.
struct Compiled {
    micros: f64,
    memory_kib: f64,
    templates: u64,
}

fn compiled_lines(envoy: &Envoy) -> Vec<Compiled> {
    envoy
        .log()
        .lines()
        .filter_map(|line| {
            let rest = line.split_once(" compiled in ")?.1;
            let (micros, rest) = rest.split_once(" us, wasm memory ")?;
            let (memory, rest) = rest.split_once(" KiB: ")?;
            let templates = rest.split_once(' ')?.0;
            Some(Compiled {
                micros: micros.parse().ok()?,
                memory_kib: memory.parse().ok()?,
                templates: templates.parse().ok()?,
            })
        })
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
