//! `make bench`: apiguard's cost inside a real Envoy, against bare Envoy, a no-op Rust
//! proxy-wasm filter and Envoy's native `jwt_authn` + `local_ratelimit`, under wrk; and its
//! scale on GitHub's REST API. See BENCHMARKS.md for the method and the recorded run.
//!
//! Following Envoy's own advice (docs: "What are best practices for benchmarking Envoy?"):
//! release builds, a fixed concurrency (one worker), the load generator on another core
//! than Envoy, throughput at saturation kept apart from latency measured below the knee
//! (one connection, one request in flight). The machine is noisy, so configurations are
//! alternated within each round and medians of the rounds reported.

mod configs;
mod engine;
mod heap;
mod report;
mod scale;
mod scenarios;
mod tokens;
mod worst;
mod wrk;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use apiguard_harness::locate;
use clap::Parser;
use serde_json::Value;

use crate::configs::Filters;
use crate::report::{Results, Row};
use crate::scenarios::{Config, Scenario};
use crate::tokens::{Algorithm, Credentials, Keys};
use crate::wrk::{Load, Sample, Script};

/// The core Envoy runs on; wrk (and the proxied view's upstream) get the other one.
const ENVOY_CPU: usize = 0;
const LOAD_CPU: usize = 1;
/// Connections for throughput: enough to keep one worker saturated (the issue's `wrk -c8`).
const SATURATING_CONNECTIONS: u32 = 8;

/// Counts the native view's heap (`heap.rs`).
#[global_allocator]
static HEAP: heap::Counting = heap::Counting;

#[derive(Debug, Parser)]
#[command(about = "apiguard benchmarks (see BENCHMARKS.md)")]
struct Args {
    /// Rounds; each runs every scenario once, in a rotated order.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds of load per throughput run (a latency run takes half).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Rounds of the proxied view (0 skips it).
    #[arg(long, default_value_t = 1)]
    proxied_rounds: usize,
    /// Write the results into BENCHMARKS.md and bench/recorded.json.
    #[arg(long)]
    record: bool,
    /// Compare the ratios with bench/recorded.json; exit 1 if one moved more than
    /// `--tolerance` (relative).
    #[arg(long)]
    compare: bool,
    #[arg(long, default_value_t = 0.15)]
    tolerance: f64,
    /// Only the native engine section (no Envoy, about a minute): for iterating on the
    /// engine's own costs.
    #[arg(long, conflicts_with_all = ["record", "compare"])]
    engine_only: bool,
    /// Only these scenarios of the direct view (ids as in bench/recorded.json, e.g.
    /// `allowlist,full-get`), with their bare and no-op references, and only the Envoys
    /// they need; no proxied view, scale or engine section. For iterating on the VM path.
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["record", "compare", "engine_only"])]
    only: Vec<String>,
    /// Only the worst cases of request input, natively (about 10 seconds).
    #[arg(long, conflicts_with_all = ["record", "compare", "engine_only", "only"])]
    worst_only: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Harness(#[from] apiguard_harness::Error),
    #[error("{0}")]
    Tool(String),
    #[error("Envoy config: {0}")]
    Config(String),
    #[error("{scenario}: {message}")]
    Probe { scenario: String, message: String },
    #[error("policy: {0}")]
    Policy(#[from] apiguard_filter::PolicyError),
    #[error("{0}")]
    Recorded(String),
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("bench: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<bool, BenchError> {
    pin(std::process::id(), LOAD_CPU)?;
    let scratch = std::env::temp_dir().join(format!("apiguard-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)
        .map_err(|e| BenchError::Tool(format!("creating {}: {e}", scratch.display())))?;
    if args.worst_only {
        print!("{}", worst::markdown(&worst::measure()?));
        return Ok(true);
    }
    if args.engine_only {
        let result = tokens::Keys::generate().and_then(|keys| {
            engine::measure(&Bundles::read(&keys, &scratch)?, &scenarios::all(&keys))
        });
        let _ = std::fs::remove_dir_all(&scratch);
        print!("{}", result?.markdown());
        return Ok(true);
    }
    let result = measure(args, &scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    let results = match result? {
        Measured::Full(results) => results,
        Measured::Only(rows) => {
            print!("{}", report::rows_markdown(&rows));
            return Ok(true);
        }
    };
    print!("{}", results.markdown());
    if args.record {
        results.record(locate::workspace_root())?;
        eprintln!("bench: recorded into BENCHMARKS.md and bench/recorded.json");
    }
    if args.compare {
        return Results::compare(&results, locate::workspace_root(), args.tolerance);
    }
    Ok(true)
}

/// The policies under test, bundled (documents inlined) as Envoy receives them.
pub struct Bundles {
    pub allowlist: Value,
    pub full: Value,
    /// Per algorithm, the full policy with that algorithm's key and the token cache off.
    pub jwt_cold: BTreeMap<Algorithm, Value>,
    pub full_no_jwt: Value,
    /// The full policy without its rate limit (`Config::FullNoLimit`).
    pub full_no_limit: Value,
    /// The full policy with its own document as `candidate` (`Config::FullCandidate`).
    pub full_candidate: Value,
    /// The full policy in `monitor` with its response checks on (`Config::Drift`).
    pub drift: Value,
    /// The full policy with `discovery` on (`Config::FullDiscovery`).
    pub full_discovery: Value,
    /// The full policy learning every declared exchange (`Config::FullLearn`).
    pub full_learn: Value,
    /// The full policy with `stats: {analytics: true}` (`Config::FullAnalytics`).
    pub full_analytics: Value,
    /// The full policy with object-enumeration counting (`Config::FullBehaviour`).
    pub full_behaviour: Value,
    pub github: Value,
    pub github_lazy: Value,
    pub github_one: Value,
}

impl Bundles {
    fn read(keys: &Keys, scratch: &Path) -> Result<Bundles, BenchError> {
        let policies = locate::workspace_root().join("bench/policies");
        let github = scale::github_bundle()?;
        let full_yaml = policies.join("full.yaml");
        let full = filled(&full_yaml, &keys.headline, scratch)?;
        // Without a token there is no subject to count: the baseline's rate limit counts
        // by client address instead, so that both pay one shared-data update and their
        // difference is the token check alone.
        let mut full_no_jwt = full.clone();
        if let Some(policy) = full_no_jwt.as_object_mut() {
            policy.remove("security");
        }
        if let Some(limits) = full_no_jwt["abuse"]["rate_limits"].as_array_mut() {
            for limit in limits {
                limit["key"] = serde_json::json!(["client_ip"]);
            }
        }
        // `abuse` stays (with it, the anomaly checks run): only the limit goes.
        let mut full_no_limit = full.clone();
        full_no_limit["abuse"]["rate_limits"] = serde_json::json!([]);
        // A candidate that agrees with the enforced contract on every request: what the
        // canary costs when a change is being tried, before any difference is reported.
        let mut full_candidate = full.clone();
        full_candidate["candidate"] = serde_json::json!({"openapi": full["openapi"].clone()});
        let mut drift = full.clone();
        drift["mode"] = Value::from("monitor");
        drift["responses"] = serde_json::json!({"mode": "monitor"});
        let mut full_discovery = full.clone();
        full_discovery["discovery"] = serde_json::json!({});
        let mut full_learn = full.clone();
        full_learn["discovery"] = serde_json::json!({"learn": 1.0});
        let mut full_analytics = full.clone();
        full_analytics["stats"] = serde_json::json!({"analytics": true});
        // The benchmark's operation has an integer path parameter, an inferred object id:
        // every request updates the client's distinct-id sketch in shared data (one object,
        // so nothing is ever found; the row is the counting's cost), reads its operation's
        // normal (`relative`), and feeds the operation's baselines (one slot's CAS at the
        // head, one at the answer, one as the stream ends; the warm-up outlasts a run, so
        // nothing is found either).
        let mut full_behaviour = full.clone();
        full_behaviour["behaviour"] = serde_json::json!({
            "bola": {"max_distinct_ids": 200, "window_seconds": 60, "relative": 5},
            "baselines": {}
        });
        Ok(Bundles {
            full_no_limit,
            full_candidate,
            drift,
            full_discovery,
            full_learn,
            full_analytics,
            full_behaviour,
            allowlist: apiguard_harness::embed::bundle(&policies.join("allowlist.yaml"))?,
            full,
            jwt_cold: jwt_cold_bundles(&full_yaml, keys, scratch)?,
            full_no_jwt,
            github_lazy: scale::lazy(&github),
            github_one: scale::one_path(&github, scenarios::GITHUB_DEEP_PATH)?,
            github,
        })
    }
}

/// Bundles a policy whose placeholders name the run's key: they are filled first (the
/// bundler refuses a policy whose JWKS is a placeholder), into a copy in `scratch` that
/// names its OpenAPI document by absolute path.
fn filled(policy: &Path, credentials: &Credentials, scratch: &Path) -> Result<Value, BenchError> {
    let io = |e: std::io::Error| BenchError::Tool(format!("{}: {e}", policy.display()));
    let text = std::fs::read_to_string(policy).map_err(io)?;
    let mut value: Value = serde_yaml::from_str(&text)
        .map_err(|e| BenchError::Tool(format!("{}: {e}", policy.display())))?;
    if let (Some(dir), Some(file)) = (policy.parent(), value["openapi"]["file"].as_str()) {
        value["openapi"]["file"] = Value::from(dir.join(file).display().to_string());
    }
    let copy = scratch.join(policy.file_name().unwrap_or_default());
    // JSON is YAML: the bundler reads it as it reads the original.
    std::fs::write(&copy, credentials.fill(value).to_string()).map_err(io)?;
    Ok(apiguard_harness::embed::bundle(&copy)?)
}

/// The full policy once per algorithm, with that algorithm's key and the token cache
/// off: every request then verifies its token, and the policies differ from each other
/// in nothing else.
fn jwt_cold_bundles(
    full: &Path,
    keys: &Keys,
    scratch: &Path,
) -> Result<BTreeMap<Algorithm, Value>, BenchError> {
    keys.per_algorithm
        .iter()
        .map(|credentials| {
            let mut policy = filled(full, credentials, scratch)?;
            policy["security"]["token_cache_entries"] = Value::from(0);
            Ok((credentials.algorithm, policy))
        })
        .collect()
}

/// What a run measured: everything, or the `--only` subset's rows.
enum Measured {
    Full(Box<Results>),
    Only(Vec<Row>),
}

fn measure(args: &Args, scratch: &Path) -> Result<Measured, BenchError> {
    let keys = Keys::generate()?;
    let apiguard = locate::filter_wasm()?;
    let noop = noop_wasm()?;
    let bundles = Bundles::read(&keys, scratch)?;

    eprintln!("bench: starting the Envoys");
    // The proxied view's upstream: an Envoy answering directly, on the load generator's core.
    let upstream = configs::start(&configs::upstream()?, LOAD_CPU)?;
    let up = upstream.listener();
    let mut configurations = vec![
        (Config::Bare, Filters::None),
        (
            Config::Noop,
            Filters::Reference {
                wasm: &noop,
                mode: None,
            },
        ),
        (
            Config::Floor,
            Filters::Reference {
                wasm: &noop,
                mode: Some("floor"),
            },
        ),
        (
            Config::FloorBody,
            Filters::Reference {
                wasm: &noop,
                mode: Some("floor-body"),
            },
        ),
        (
            Config::FloorNoStore,
            Filters::Reference {
                wasm: &noop,
                mode: Some("floor-no-store"),
            },
        ),
        (
            Config::Native,
            Filters::Native {
                jwks: &keys.headline.jwks,
            },
        ),
        (
            Config::Allowlist,
            Filters::Apiguard {
                wasm: &apiguard,
                policy: &bundles.allowlist,
            },
        ),
        (
            Config::Full,
            Filters::Apiguard {
                wasm: &apiguard,
                policy: &bundles.full,
            },
        ),
        (
            Config::FullNoLimit,
            Filters::Apiguard {
                wasm: &apiguard,
                policy: &bundles.full_no_limit,
            },
        ),
        (
            Config::FullCandidate,
            Filters::Apiguard {
                wasm: &apiguard,
                policy: &bundles.full_candidate,
            },
        ),
        (
            Config::Drift,
            Filters::Apiguard {
                wasm: &apiguard,
                policy: &bundles.drift,
            },
        ),
        (
            Config::FullDiscovery,
            Filters::Apiguard {
                wasm: &apiguard,
                policy: &bundles.full_discovery,
            },
        ),
        (
            Config::FullLearn,
            Filters::Apiguard {
                wasm: &apiguard,
                policy: &bundles.full_learn,
            },
        ),
        (
            Config::FullAnalytics,
            Filters::Apiguard {
                wasm: &apiguard,
                policy: &bundles.full_analytics,
            },
        ),
        (
            Config::FullBehaviour,
            Filters::Apiguard {
                wasm: &apiguard,
                policy: &bundles.full_behaviour,
            },
        ),
        (
            Config::FullNoJwt,
            Filters::Apiguard {
                wasm: &apiguard,
                policy: &bundles.full_no_jwt,
            },
        ),
        (
            Config::GitHub,
            Filters::Apiguard {
                wasm: &apiguard,
                policy: &bundles.github,
            },
        ),
        (
            Config::GitHubLazy,
            Filters::Apiguard {
                wasm: &apiguard,
                policy: &bundles.github_lazy,
            },
        ),
        (
            Config::GitHubOnePath,
            Filters::Apiguard {
                wasm: &apiguard,
                policy: &bundles.github_one,
            },
        ),
    ];
    configurations.extend(bundles.jwt_cold.iter().map(|(&algorithm, policy)| {
        (
            Config::JwtCold(algorithm),
            Filters::Apiguard {
                wasm: &apiguard,
                policy,
            },
        )
    }));
    let mut all = scenarios::all(&keys);
    if !args.only.is_empty() {
        let references: Vec<&str> = (all.iter())
            .filter(|s| args.only.contains(&s.id))
            .flat_map(|s| [s.bare, s.noop, s.floor])
            .collect();
        let wanted = |s: &Scenario| args.only.contains(&s.id) || references.contains(&&*s.id);
        all = all.iter().filter(|s| wanted(s)).cloned().collect();
        if all.is_empty() {
            return Err(BenchError::Tool(format!(
                "--only {}: no such scenario",
                args.only.join(",")
            )));
        }
        configurations.retain(|(config, _)| all.iter().any(|s| s.config == *config));
    }
    let mut envoys = BTreeMap::new();
    for (config, filters) in configurations {
        envoys.insert(
            config,
            configs::start(&configs::render(&filters, up)?, ENVOY_CPU)?,
        );
    }
    let envoy = |config: Config| &envoys[&config];

    // The proxied view: the same requests but GitHub's and the per-algorithm JWT ones
    // (the scale and crypto sections are about the filter, not the upstream), routed to
    // the local upstream.
    let proxied_scenarios: Vec<Scenario> = all
        .iter()
        .filter(|_| args.only.is_empty())
        .filter(|s| !s.id.starts_with("github") && !matches!(s.config, Config::JwtCold(_)))
        .map(|s| Scenario {
            request: scenarios::proxied(&s.request),
            ..s.clone()
        })
        .collect();
    for scenario in all.iter().chain(&proxied_scenarios) {
        probe::answered(envoy(scenario.config), scenario)?;
    }
    if args.only.is_empty() {
        probe::refusals(
            envoy(Config::Native),
            envoy(Config::Full),
            envoy(Config::Allowlist),
            &all,
        )?;
    }

    let throughput = Load {
        connections: SATURATING_CONNECTIONS,
        duration: Duration::from_secs(args.seconds),
        cpu: LOAD_CPU,
    };
    let latency = Load {
        connections: 1,
        duration: Duration::from_secs(args.seconds.div_ceil(2)),
        cpu: LOAD_CPU,
    };
    let measure = |scenario: &Scenario, script: &Script| {
        let listener = envoy(scenario.config).listener();
        Ok((
            script.run(listener, throughput)?,
            script.run(listener, latency)?,
        ))
    };
    let load_before = report::loadavg();
    let direct = rounds(&all, args.rounds, scratch, "direct", measure)?;
    if !args.only.is_empty() {
        return Ok(Measured::Only(direct));
    }
    let proxied = rounds(
        &proxied_scenarios,
        args.proxied_rounds,
        scratch,
        "proxied",
        measure,
    )?;

    let scale = scale::Scale::read(
        envoy(Config::GitHub),
        envoy(Config::GitHubLazy),
        envoy(Config::GitHubOnePath),
        envoy(Config::Full),
        envoy(Config::Bare),
    )?;
    drop(envoys);
    drop(upstream);
    eprintln!("bench: native engine loops");
    let engine = engine::measure(&bundles, &all)?;
    Ok(Measured::Full(Box::new(Results::new(
        load_before,
        args.rounds,
        args.seconds,
        args.proxied_rounds,
        direct,
        proxied,
        scale,
        engine,
    ))))
}

/// Runs every scenario `rounds` times, rotating the order each round, and returns each
/// scenario's samples (throughput run, latency run).
fn rounds(
    scenarios: &[Scenario],
    rounds: usize,
    scratch: &Path,
    view: &str,
    run: impl Fn(&Scenario, &Script) -> Result<(Sample, Sample), BenchError>,
) -> Result<Vec<Row>, BenchError> {
    let scripts = scenarios
        .iter()
        .map(|s| Script::write(scratch, &format!("{view}-{}", s.id), &s.request, s.status))
        .collect::<Result<Vec<_>, _>>()?;
    let mut samples: Vec<Vec<(Sample, Sample)>> = vec![Vec::new(); scenarios.len()];
    for round in 0..rounds {
        for offset in 0..scenarios.len() {
            let index = (round + offset) % scenarios.len();
            let (Some(scenario), Some(script)) = (scenarios.get(index), scripts.get(index)) else {
                continue;
            };
            eprintln!(
                "bench: {view} round {}/{rounds}: {}",
                round + 1,
                scenario.id
            );
            let pair = run(scenario, script)?;
            if let Some(list) = samples.get_mut(index) {
                list.push(pair);
            }
        }
    }
    Ok(report::rows(scenarios, &samples))
}

/// Pins every thread of process `pid` to `cpu`.
pub fn pin(pid: u32, cpu: usize) -> Result<(), BenchError> {
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", &cpu.to_string(), &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| BenchError::Tool(format!("cannot run taskset (util-linux): {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(BenchError::Tool(format!(
            "taskset -p {cpu} {pid} failed ({status})"
        )))
    }
}

/// The no-op filter, built by `make bench` next to apiguard's `.wasm`.
fn noop_wasm() -> Result<PathBuf, BenchError> {
    let apiguard = locate::filter_wasm()?;
    let noop = apiguard.with_file_name("bench_noop_filter.wasm");
    if noop.is_file() {
        Ok(noop)
    } else {
        Err(BenchError::Tool(format!(
            "{} is missing: cargo build --release --target wasm32-wasip1 -p apiguard-bench-noop (or make bench)",
            noop.display()
        )))
    }
}

mod probe {
    //! Before anything is timed: every scenario's request is answered as the scenario
    //! expects — allowed, but for the scenarios that measure refusals (a benchmark of
    //! unexpected 4xx answers would measure the wrong path) — and each filter is shown to
    //! be really on.

    use apiguard_harness::{Envoy, HttpVersion};
    use bytes::Bytes;

    use crate::configs::DIRECT_BODY;
    use crate::scenarios::Scenario;
    use crate::wrk::Request;
    use crate::BenchError;

    pub fn answered(envoy: &Envoy, scenario: &Scenario) -> Result<(), BenchError> {
        let (status, body) = send(envoy, &scenario.request)?;
        let expected = scenario.status;
        if status != expected || expected == 200 && body != DIRECT_BODY {
            return Err(BenchError::Probe {
                scenario: scenario.id.clone(),
                message: format!(
                    "expected {expected} (200: {DIRECT_BODY}), got {status}: {body}\n{}",
                    envoy.log_tail()
                ),
            });
        }
        Ok(())
    }

    /// Refusals that prove the filters act: `jwt_authn` without a token (401), apiguard's
    /// full policy on an invalid body (400) and its allowlist on an unknown path (404).
    pub fn refusals(
        native: &Envoy,
        full: &Envoy,
        allowlist: &Envoy,
        all: &[Scenario],
    ) -> Result<(), BenchError> {
        let by_id = |id: &str| all.iter().find(|s| s.id == id).map(|s| s.request.clone());
        let (Some(get), Some(post)) = (by_id("native"), by_id("full-post")) else {
            return Err(BenchError::Probe {
                scenario: "refusals".into(),
                message: "scenarios missing".into(),
            });
        };
        let mut anonymous = get.clone();
        anonymous
            .headers
            .retain(|(name, _)| name != "authorization");
        let mut invalid = post;
        invalid.body = Some("{\"title\":\"\",\"labels\":\"bug\"}".into());
        let mut unknown = get;
        unknown.target = "/repos/octo-org/hello-world/secrets".into();
        for (envoy, request, expected, what) in [
            (native, &anonymous, 401, "jwt_authn without a token"),
            (full, &invalid, 400, "apiguard full policy, invalid body"),
            (
                full,
                &anonymous,
                401,
                "apiguard full policy without a token",
            ),
            (allowlist, &unknown, 404, "apiguard allowlist, unknown path"),
        ] {
            let (status, body) = send(envoy, request)?;
            if status != expected {
                return Err(BenchError::Probe {
                    scenario: what.into(),
                    message: format!("expected {expected}, got {status}: {body}"),
                });
            }
        }
        Ok(())
    }

    fn send(envoy: &Envoy, request: &Request) -> Result<(u16, String), BenchError> {
        let mut builder = http::Request::builder()
            .method(request.method)
            .uri(request.target.as_str());
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let body = Bytes::from(request.body.clone().unwrap_or_default());
        let http_request = builder.body(body).map_err(apiguard_harness::Error::from)?;
        let response = envoy.client(HttpVersion::Http1)?.send(http_request)?;
        Ok((response.status.as_u16(), response.text()))
    }
}
