//! `harness`: run apiguard locally, and keep the shipped manifests' policy in sync.
//!
//! ```text
//! harness up --policy policies/petstore/policy.yaml [--logs target/demo]   # until Ctrl-C
//! harness render-envoy --policy policies/petstore/policy.yaml [--check]
//! harness soak --minutes 30 --out target/soak                               # make soak
//! harness soak-clients --keys 1000000                                       # make soak-clients
//! harness fail-reload                                                       # make fail-reload
//! harness behaviour-sim --seed 1 --benign 120 --seconds 120                 # make behaviour-sim
//! ```

use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use apiguard_harness::render::Downstream;
use apiguard_harness::{behaviour_sim, clients, contract, embed, fail_reload, soak};
use apiguard_harness::{locate, EchoUpstream, Envoy, EnvoyOptions, Error, Policy};
use clap::{Parser, Subcommand};
use serde_json::Value;
use tokio::signal::unix::{signal, SignalKind};

#[derive(Debug, Parser)]
#[command(about = "Run apiguard in a local Envoy, and keep envoy/*.yaml in sync with a policy")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build the filter, start an echo API and Envoy with POLICY in front, until Ctrl-C.
    Up {
        /// A policy YAML file (its OpenAPI document is found relative to it).
        #[arg(long)]
        policy: PathBuf,
        /// The listener address.
        #[arg(long, default_value = "127.0.0.1:10000")]
        listen: SocketAddr,
        /// The admin port (bound on 127.0.0.1).
        #[arg(long, default_value_t = 9901)]
        admin: u16,
        /// Envoy worker threads.
        #[arg(long, default_value_t = 1)]
        concurrency: u16,
        /// Keep Envoy's log, the access log and the security events (`events.jsonl`) in this
        /// directory, also after Ctrl-C [default: a temporary directory, removed at exit].
        #[arg(long)]
        logs: Option<PathBuf>,
        /// Let header names with `_` through (`headers_with_underscores_action: ALLOW`), for
        /// an API whose contract declares such headers; the shipped config refuses them.
        #[arg(long)]
        allow_underscores: bool,
    },
    /// A steady mixed load through Envoy for MINUTES, sampled into a CSV and a PNG, then
    /// checked (see test-harness/src/soak.rs); exits non-zero if a check fails.
    Soak {
        #[arg(long, default_value_t = 30.0)]
        minutes: f64,
        #[arg(long, default_value_t = 60)]
        sample_seconds: u64,
        /// Samples before this are warm-up.
        #[arg(long, default_value_t = 120)]
        warm_up_seconds: u64,
        #[arg(long, default_value_t = 4)]
        threads: usize,
        /// Requests per second per load thread, at most.
        #[arg(long, default_value_t = 50)]
        rate: u32,
        #[arg(long, default_value_t = 10_000_000)]
        max_requests: u64,
        #[arg(long, default_value_t = 2)]
        concurrency: u16,
        /// Envoy's RSS at the end may exceed the first sample after warm-up by this fraction.
        #[arg(long, default_value_t = 0.10)]
        rss_tolerance: f64,
        #[arg(long, default_value = "target/soak")]
        out: PathBuf,
    },
    /// Distinct client keys through the rate limits and quarantine, one request each, as
    /// fast as THREADS go within MAX_MINUTES; Envoy's memory before and after.
    SoakClients {
        #[arg(long, default_value_t = 1_000_000)]
        keys: u64,
        #[arg(long, default_value_t = 10.0)]
        max_minutes: f64,
        #[arg(long, default_value_t = 4)]
        threads: usize,
        #[arg(long, default_value_t = 2)]
        concurrency: u16,
    },
    /// A VM trap under `failure_policy: FAIL_RELOAD` (a `fault-injection` test build of the
    /// filter): requests refused while Envoy reloads the VM, and for how long.
    FailReload {
        #[arg(long, default_value_t = 1)]
        concurrency: u16,
        #[arg(long, default_value_t = 2)]
        threads: usize,
        #[arg(long, default_value_t = 5)]
        before_seconds: u64,
        #[arg(long, default_value_t = 15)]
        after_seconds: u64,
    },
    /// Benign clients and scripted attackers through Envoy, concurrently; per behaviour
    /// rule its recall, precision and detection latency, as a markdown table (see
    /// test-harness/src/behaviour_sim.rs); exits non-zero if a benign client was refused
    /// or an attacker was not found.
    BehaviourSim {
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 120)]
        benign: usize,
        /// Attackers of each kind.
        #[arg(long, default_value_t = 3)]
        attackers: usize,
        #[arg(long, default_value_t = 120)]
        seconds: u64,
        #[arg(long, default_value_t = 2)]
        concurrency: u16,
        /// The slots of each behaviour table (the filter's default is 4096; see
        /// SimOptions::slots in test-harness/src/behaviour_sim.rs).
        #[arg(long, default_value_t = 65536)]
        slots: u32,
    },
    /// Embed POLICY, bundled, in envoy/envoy.yaml and envoy/istio-wasmplugin.yaml.
    RenderEnvoy {
        /// The policy YAML file [default: policies/petstore/policy.yaml].
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Change nothing; fail if a manifest differs from what would be written.
        #[arg(long)]
        check: bool,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Up {
            policy,
            listen,
            admin,
            concurrency,
            logs,
            allow_underscores,
        } => {
            let options = EnvoyOptions {
                listen,
                admin: SocketAddr::from((Ipv4Addr::LOCALHOST, admin)),
                concurrency,
                files: logs,
                downstream: Downstream {
                    allow_underscores,
                    ..Downstream::default()
                },
                ..EnvoyOptions::default()
            };
            up(options, &policy)
        }
        Command::Soak {
            minutes,
            sample_seconds,
            warm_up_seconds,
            threads,
            rate,
            max_requests,
            concurrency,
            rss_tolerance,
            out,
        } => soak(&soak::SoakOptions {
            duration: Duration::from_secs_f64(minutes * 60.0),
            sample_every: Duration::from_secs(sample_seconds.max(1)),
            warm_up: Duration::from_secs(warm_up_seconds),
            threads,
            rate,
            max_requests,
            concurrency,
            rss_tolerance,
            out,
        }),
        Command::SoakClients {
            keys,
            max_minutes,
            threads,
            concurrency,
        } => locate::build_filter()
            .and_then(|_| {
                clients::run(&clients::ClientsOptions {
                    keys,
                    max_wall: Duration::from_secs_f64(max_minutes * 60.0),
                    threads,
                    concurrency,
                })
            })
            .map(|report| {
                print!("{}", report.summary());
                ExitCode::SUCCESS
            }),
        Command::FailReload {
            concurrency,
            threads,
            before_seconds,
            after_seconds,
        } => fail_reload::run(&fail_reload::FailReloadOptions {
            concurrency,
            threads,
            before: Duration::from_secs(before_seconds),
            after: Duration::from_secs(after_seconds),
        })
        .map(|text| {
            print!("{text}");
            ExitCode::SUCCESS
        }),
        Command::BehaviourSim {
            seed,
            benign,
            attackers,
            seconds,
            concurrency,
            slots,
        } => locate::build_filter()
            .and_then(|_| {
                behaviour_sim::run(&behaviour_sim::SimOptions {
                    seed,
                    benign,
                    attackers_per_kind: attackers,
                    duration: Duration::from_secs(seconds),
                    concurrency,
                    slots,
                })
            })
            .map(|report| {
                print!("{}", report.markdown());
                if report.passed() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }),
        Command::RenderEnvoy { policy, check } => {
            let policy = policy.unwrap_or_else(|| locate::policy("petstore"));
            render_envoy(&policy, check)
        }
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("harness: {error}");
            ExitCode::FAILURE
        }
    }
}

fn up(options: EnvoyOptions, policy: &Path) -> Result<ExitCode, Error> {
    let kept = options.files.is_some();
    locate::build_filter()?;
    let bundle = embed::bundle(policy)?;
    let upstream = EchoUpstream::start()?;
    let envoy = Envoy::start(
        &EnvoyOptions {
            policy: Policy::Bundle(bundle.clone()),
            ..options
        },
        upstream.addr(),
    )?;
    let api = format!("http://{}", envoy.listener());
    let admin = format!("http://{}", envoy.admin());
    let log = envoy.log_path();
    let events = log.with_file_name("events.jsonl");
    let access = envoy.access_log_path();
    let follower = EventFollower::start(log.clone(), events.clone())?;
    println!(
        "apiguard is up with {policy} (Envoy pid {pid}); Ctrl-C stops it.\n\n\
         API:   {api}  (echo upstream at {upstream})\n\
         admin: {admin}\n\n\
         Logs{when}:\n\
         \x20 Envoy's log:     {log}\n\
         \x20 access log:      {access}  (a JSON line per request: apiguard_action, apiguard_rule)\n\
         \x20 security events: {events}  (OCSF, a JSON line per finding; also in Envoy's log)\n\n\
         Try:",
        policy = policy.display(),
        pid = envoy.pid(),
        upstream = upstream.addr(),
        when = if kept { " (kept after Ctrl-C)" } else { " (removed at exit; `--logs DIR` keeps them)" },
        log = log.display(),
        access = access.display(),
        events = events.display(),
    );
    for example in examples(&bundle, &api) {
        println!("  {example}");
    }
    println!("  curl -s {admin}/stats/prometheus | grep apiguard");
    println!("  tail -f {}", events.display());
    wait_for_shutdown_signal()?;
    println!("stopping");
    drop(envoy);
    follower.stop();
    if kept {
        println!(
            "logs kept: {}, {}, {}",
            log.display(),
            access.display(),
            events.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Copies the security events of Envoy's log (the filter logs each as one OCSF JSON line,
/// after Envoy's prefix) into a file of their own, as they come.
struct EventFollower {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl EventFollower {
    fn start(log: PathBuf, events: PathBuf) -> Result<EventFollower, Error> {
        let mut out = std::fs::File::create(&events)
            .map_err(Error::io(format!("creating {}", events.display())))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut offset = 0;
            let mut partial = Vec::new();
            loop {
                // One more pass after the stop, for what Envoy wrote last.
                let last = stopping.load(Ordering::Relaxed);
                offset += read_from(&log, offset, &mut partial);
                while let Some(end) = partial.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = partial.drain(..=end).collect();
                    if let Some(event) = event_of(&String::from_utf8_lossy(&line)) {
                        let _ = writeln!(out, "{event}");
                    }
                }
                if last {
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        Ok(EventFollower { stop, thread })
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

/// Appends what `path` holds beyond `offset` to `bytes`; returns how many it read.
fn read_from(path: &Path, offset: u64, bytes: &mut Vec<u8>) -> u64 {
    let read = std::fs::File::open(path).and_then(|mut file| {
        file.seek(SeekFrom::Start(offset))?;
        file.read_to_end(bytes)
    });
    read.map_or(0, |n| n as u64)
}

/// The OCSF finding a log line carries (`…[wasm] wasm log apiguard apiguard: {…}`), if any.
fn event_of(line: &str) -> Option<Value> {
    let json = &line[line.find(": {")? + 2..];
    let event: Value = serde_json::from_str(json.trim_end()).ok()?;
    event.get("class_uid").is_some().then_some(event)
}

/// Example requests for the policy's own contract: one allowed, one 405, one 404.
fn examples(bundle: &Value, api: &str) -> Vec<String> {
    let mut examples = Vec::new();
    let declared = contract::declared_paths(bundle);
    if let Some(path) = declared.first() {
        if let Some(method) = path.methods.first() {
            let url = format!("{api}{}", path.path);
            examples.push(format!("curl -i -X {method} {url}    # allowed: the echo"));
        }
        if let Some(method) = path.undeclared_method() {
            let url = format!("{api}{}", path.path);
            examples.push(format!("curl -i -X {method} {url}    # 405, with `allow`"));
        }
    }
    let unknown = format!("{api}{}/not-in-the-contract", contract::base_path(bundle));
    examples.push(format!(
        "curl -i {unknown}    # 404 problem+json, and a security event (route.unknown_path)"
    ));
    examples
}

/// Waits for Ctrl-C or SIGTERM, so that `kill` stops Envoy too instead of orphaning it.
fn wait_for_shutdown_signal() -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(Error::io("starting the signal runtime"))?;
    runtime
        .block_on(async {
            let mut terminate = signal(SignalKind::terminate())?;
            tokio::select! {
                interrupted = tokio::signal::ctrl_c() => interrupted,
                _ = terminate.recv() => Ok(()),
            }
        })
        .map_err(Error::io("waiting for Ctrl-C"))
}

fn soak(options: &soak::SoakOptions) -> Result<ExitCode, Error> {
    locate::build_filter()?;
    let report = soak::run(options)?;
    print!("{}", report.summary());
    println!(
        "CSV, plot and summary in {} (plot: Envoy RSS red, VM memory blue, Envoy heap \
         green, requests grey, each scaled to its own maximum)",
        options.out.display()
    );
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn render_envoy(policy: &Path, check: bool) -> Result<ExitCode, Error> {
    let bundle = embed::bundle(policy)?;
    let mut drifted = false;
    for manifest in embed::shipped_manifests() {
        let rendered = manifest.render(&bundle)?;
        let name = manifest.path.display();
        let current = std::fs::read_to_string(&manifest.path)
            .map_err(Error::io(format!("reading {name}")))?;
        if rendered == current {
            println!("{name}: up to date");
        } else if check {
            println!("{name}: differs from {}", policy.display());
            drifted = true;
        } else {
            std::fs::write(&manifest.path, rendered)
                .map_err(Error::io(format!("writing {name}")))?;
            println!("{name}: updated");
        }
    }
    Ok(if drifted {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
