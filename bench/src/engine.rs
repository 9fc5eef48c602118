//! A second view: the engine's own per-request cost, natively (no VM, no host calls),
//! timed with a plain `Instant` loop. Differences between these and the in-Envoy figures
//! are what the VM and the host ABI cost.

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use apiguard_filter::inspect::RequestHead;
use apiguard_filter::policy::Policy;
use apiguard_filter::verdict::Action;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::scenarios::Scenario;
use crate::{BenchError, Bundles};

/// How long each loop runs; long enough to average out a scheduler tick.
const LOOP_TIME: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Engine {
    /// `Policy::compile` of each policy natively: time and heap (peak, kept).
    #[serde(default)]
    pub compiles: Vec<Compile>,
    /// Per scenario id: nanoseconds for `inspect` (+ `inspect_body` when there is a body).
    pub inspect_ns: Vec<(String, f64)>,
}

/// One policy's compile, natively.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Compile {
    pub policy: String,
    pub ms: f64,
    /// Heap at the compile's peak and what the compiled policy keeps, MiB.
    pub peak_mib: f64,
    pub kept_mib: f64,
}

impl Engine {
    pub fn markdown(&self) -> String {
        let mut md = String::from("### The engine natively (no VM, no host calls)\n\n");
        md.push_str(
            "| `Policy::compile` of | ms | heap peak, MiB | heap kept, MiB |\n|---|---|---|---|\n",
        );
        for c in &self.compiles {
            let _ = writeln!(
                md,
                "| {} | {:.0} | {:.1} | {:.1} |",
                c.policy, c.ms, c.peak_mib, c.kept_mib
            );
        }
        md.push_str("\n| Scenario | ns per request (inspect + body) |\n|---|---|\n");
        for (id, ns) in &self.inspect_ns {
            let _ = writeln!(md, "| {id} | {ns:.0} |");
        }
        md
    }
}

pub fn measure(bundles: &Bundles, scenarios: &[Scenario]) -> Result<Engine, BenchError> {
    let mut compiles = Vec::new();
    let mut compile = |name: &str, bundle: &Value| -> Result<Policy, BenchError> {
        // The bytes are made before counting starts: Envoy hands them to the VM too.
        let bytes = serde_json::to_vec(bundle).map_err(|e| BenchError::Config(e.to_string()))?;
        let started = Instant::now();
        let (policy, heap) = crate::heap::measure(|| Policy::compile(&bytes));
        let ms = started.elapsed().as_secs_f64() * 1e3;
        let policy = policy?;
        let mib = |bytes: usize| bytes as f64 / f64::from(1 << 20);
        compiles.push(Compile {
            policy: name.to_owned(),
            ms,
            peak_mib: mib(heap.peak),
            kept_mib: mib(heap.kept),
        });
        Ok(policy)
    };
    let github_policy = compile("GitHub", &bundles.github)?;
    drop(compile("GitHub, `schemas: lazy`", &bundles.github_lazy)?);
    let one_policy = compile("GitHub, one path", &bundles.github_one)?;
    let full_policy = compile("bench full.yaml", &bundles.full)?;
    let cold_policy = compile("bench full.yaml, token cache off", &bundles.full_cold)?;
    let no_jwt_policy = compile("bench full.yaml without `security`", &bundles.full_no_jwt)?;
    let mut inspect_ns = Vec::new();
    for scenario in scenarios {
        let policy = match scenario.config {
            crate::scenarios::Config::Full => &full_policy,
            crate::scenarios::Config::FullCold => &cold_policy,
            crate::scenarios::Config::FullNoJwt => &no_jwt_policy,
            crate::scenarios::Config::GitHub => &github_policy,
            crate::scenarios::Config::GitHubOnePath => &one_policy,
            _ => continue,
        };
        inspect_ns.push((scenario.id.to_owned(), per_request_ns(policy, scenario)?));
    }
    Ok(Engine {
        compiles,
        inspect_ns,
    })
}

/// Checks the scenario's request is allowed natively too, then times it.
fn per_request_ns(policy: &Policy, scenario: &Scenario) -> Result<f64, BenchError> {
    let request = &scenario.request;
    let headers: Vec<(&str, &str)> = request
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let body = request.body.as_deref().unwrap_or_default().as_bytes();
    let head = RequestHead {
        method: request.method.as_bytes(),
        path: request.target.as_bytes(),
        headers: &headers,
        has_body: !body.is_empty(),
    };
    let once = || {
        let (verdict, check) = policy.inspect(black_box(&head));
        match check {
            Some(check) if verdict.action == Action::Allow => {
                policy.inspect_body(&check, black_box(body)).action
            }
            _ => verdict.action,
        }
    };
    if once() != Action::Allow {
        return Err(BenchError::Probe {
            scenario: scenario.id.into(),
            message: "the engine does not allow this request natively".into(),
        });
    }
    let started = Instant::now();
    let mut iterations = 0u64;
    while started.elapsed() < LOOP_TIME {
        for _ in 0..100 {
            black_box(once());
        }
        iterations += 100;
    }
    Ok(started.elapsed().as_nanos() as f64 / iterations as f64)
}
