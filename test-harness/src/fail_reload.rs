//! What a VM failure does to traffic under `failure_policy: FAIL_RELOAD` (`harness
//! fail-reload`, `make fail-reload`), measured through a real Envoy.
//!
//! The filter is built with the `fault-injection` feature (a test build, into
//! `target/fault`; see filter/src/host/fault.rs), whose VM traps on a request with
//! `x-apiguard-fault: trap`. Load threads send valid requests back to back; after a
//! steady start one trapping request is sent; every response is recorded with its time.
//! Reported: the requests refused after the trap, how long from the trap to the last
//! refusal and to the first success after it, and Envoy's reload counters.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::soak::{self, Stack};
use crate::{locate, Client, Error, HttpVersion};

/// Each response's time since the start, its latency, and its status (or the exchange's
/// error).
type Outcomes = Vec<(Duration, Duration, Result<u16, String>)>;

#[derive(Debug, Clone)]
pub struct FailReloadOptions {
    pub concurrency: u16,
    pub threads: usize,
    /// Load before the trap, and after it.
    pub before: Duration,
    pub after: Duration,
}

/// Builds the filter with `fault-injection` into `target/fault`; returns the `.wasm`.
pub fn build_fault_filter() -> Result<PathBuf, Error> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target = locate::workspace_root().join("target/fault");
    let status = Command::new(cargo)
        .args(locate::BUILD_FILTER_ARGS)
        .args(["--features", "fault-injection", "--target-dir"])
        .arg(&target)
        .current_dir(locate::workspace_root())
        .status()
        .map_err(Error::io(
            "running cargo to build the fault-injection filter",
        ))?;
    if !status.success() {
        return Err(Error::BuildFailed(status));
    }
    Ok(target.join("wasm32-wasip1/release/apiguard_filter.wasm"))
}

/// The measurement, as text.
pub fn run(options: &FailReloadOptions) -> Result<String, Error> {
    let wasm = build_fault_filter()?;
    let stack = Stack::start(soak::policy()?, options.concurrency, Some(wasm))?;
    let token = soak::token(soak::SECRET, "fail-reload");
    let stop = Arc::new(AtomicBool::new(false));
    let log: Arc<Mutex<Outcomes>> = Arc::default();
    let started = Instant::now();
    let threads: Vec<_> = (0..options.threads)
        .map(|_| {
            let (stop, log, token) = (Arc::clone(&stop), Arc::clone(&log), token.clone());
            let listener = stack.envoy.listener();
            std::thread::spawn(move || {
                let Ok(client) = Client::new(listener, HttpVersion::Http1) else {
                    return;
                };
                while !stop.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    let status = soak::send(&client, "/v1/pets", Some(&token), &[]);
                    if let Ok(mut log) = log.lock() {
                        log.push((started.elapsed(), sent.elapsed(), status));
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(options.before);
    let trap = started.elapsed();
    let client = Client::new(stack.envoy.listener(), HttpVersion::Http1)?;
    let trap_answer = soak::send(
        &client,
        "/v1/pets",
        Some(&token),
        &[("x-apiguard-fault", "trap")],
    );
    std::thread::sleep(options.after);
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        let _ = thread.join();
    }
    let log = log.lock().map(|log| log.clone()).unwrap_or_default();
    let ok = |status: &Result<u16, String>| matches!(status, Ok(200));
    let before_trap: Vec<_> = log.iter().filter(|(at, _, _)| *at < trap).collect();
    let refused_before = before_trap.iter().filter(|(_, _, s)| !ok(s)).count();
    let slowest_before = before_trap.iter().map(|(_, took, _)| *took).max();
    let after_trap: Vec<_> = log.iter().filter(|(at, _, _)| *at >= trap).collect();
    let refused: Vec<_> = after_trap.iter().filter(|(_, _, s)| !ok(s)).collect();
    let last_refused = refused.iter().map(|(at, _, _)| *at).max();
    let recovered = last_refused.and_then(|last| {
        after_trap
            .iter()
            .filter(|(at, _, status)| *at > last && ok(status))
            .map(|(at, _, _)| *at)
            .min()
    });
    // The request that finds the VM failed waits for the reload: the slowest one after.
    let slowest_after = after_trap.iter().max_by_key(|(_, took, _)| *took);
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    for (_, _, status) in &refused {
        let kind = match status {
            Ok(code) => code.to_string(),
            Err(_) => "connection error".to_owned(),
        };
        *kinds.entry(kind).or_default() += 1;
    }
    let stats = stack.envoy.admin_get("/stats?filter=wasm")?;
    let reload_stats: Vec<&str> = stats
        .lines()
        .filter(|line| line.contains("reload") || line.contains("crash") || line.contains("fail"))
        .collect();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Ok(format!(
        "FAIL_RELOAD with {workers} worker(s), {threads} load threads back to back\n\
         requests before the trap: {n_before} ({refused_before} refused)\n\
         the trapping request: {trap_answer:?}\n\
         after the trap: {n_after} requests, {n_refused} refused {kinds:?}\n\
         last refusal {last} ms after the trap; first success after it {recovered} ms after the trap\n\
         slowest request before the trap {slow_before} ms; after it {slow_after}\n\
         Envoy's wasm stats:\n  {stats}\n",
        workers = options.concurrency,
        threads = options.threads,
        n_before = log.len() - after_trap.len(),
        n_after = after_trap.len(),
        n_refused = refused.len(),
        last = last_refused.map_or("-".to_owned(), |at| format!("{:.0}", ms(at - trap))),
        recovered = recovered.map_or("-".to_owned(), |at| format!("{:.0}", ms(at - trap))),
        stats = reload_stats.join("\n  "),
        slow_before = slowest_before.map_or("-".to_owned(), |took| format!("{:.0}", ms(took))),
        slow_after = slowest_after.map_or("-".to_owned(), |(at, took, status)| {
            format!(
                "{:.0} ms ({status:?}, answered {:.0} ms after the trap)",
                ms(*took),
                ms(*at - trap)
            )
        }),
    ))
}
