//! A second view: the engine's own per-request cost, natively (no VM, no host calls),
//! timed with a plain `Instant` loop. Differences between these and the in-Envoy figures
//! are what the VM and the host ABI cost.

use std::hint::black_box;
use std::time::{Duration, Instant};

use apiguard_filter::inspect::RequestHead;
use apiguard_filter::policy::Policy;
use apiguard_filter::verdict::Action;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::scenarios::Scenario;
use crate::BenchError;

/// How long each loop runs; long enough to average out a scheduler tick.
const LOOP_TIME: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Engine {
    /// `Policy::compile` of GitHub's bundle (every schema compiled), natively.
    pub github_compile_ms: f64,
    /// Per scenario id: nanoseconds for `inspect` (+ `inspect_body` when there is a body).
    pub inspect_ns: Vec<(String, f64)>,
}

pub fn measure(
    full: &Value,
    github: &Value,
    github_one: &Value,
    scenarios: &[Scenario],
) -> Result<Engine, BenchError> {
    let github_bytes = serde_json::to_vec(github).map_err(|e| BenchError::Config(e.to_string()))?;
    let started = Instant::now();
    let github_policy = Policy::compile(&github_bytes)?;
    let github_compile_ms = started.elapsed().as_secs_f64() * 1e3;
    let compile = |bundle: &Value| -> Result<Policy, BenchError> {
        let bytes = serde_json::to_vec(bundle).map_err(|e| BenchError::Config(e.to_string()))?;
        Ok(Policy::compile(&bytes)?)
    };
    let full_policy = compile(full)?;
    let one_policy = compile(github_one)?;
    let mut inspect_ns = Vec::new();
    for scenario in scenarios {
        let policy = match scenario.config {
            crate::scenarios::Config::Full => &full_policy,
            crate::scenarios::Config::GitHub => &github_policy,
            crate::scenarios::Config::GitHubOnePath => &one_policy,
            _ => continue,
        };
        inspect_ns.push((scenario.id.to_owned(), per_request_ns(policy, scenario)?));
    }
    Ok(Engine {
        github_compile_ms,
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
