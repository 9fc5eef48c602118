//! The soak run (`harness soak`, `make soak`): a steady mixed load through a real Envoy for
//! a set time, sampled at intervals into a CSV and a PNG, then checked: memory flat after
//! warm-up, no unexpected status, every finding the filter produced sent or dropped.
//!
//! The traffic, per load thread, a cycle of ten requests (HS256 tokens from a local key
//! set; the petstore contract):
//! - 5 valid `GET /v1/pets` with a valid token and `x-soak-client: good-<n>` (64 clients,
//!   under a generous rate limit keyed on that header): 200;
//! - a contract violation (`?limit=1000`): 400; an unknown path: 404; a token signed with
//!   another secret: 401; no token: 401 (none of these carries a client header, so no
//!   limit or quarantine applies to them);
//! - one request of the thread's abuser (`x-soak-abuser: abuser-<thread>`), over a limit
//!   of 5 per 10 s and quarantined after 5 strikes: 200, 429 or 403.
//!
//! Anything else is an unexpected status, as is a failed exchange.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::Request;
use serde_json::{json, Value};

use crate::png::{self, Series};
use crate::{embed, locate, Client, Delivery, EchoUpstream, Envoy, EnvoyOptions, Error};
use crate::{HttpVersion, Policy};

/// The local provider's secret, and another one for tokens that must be refused.
pub const SECRET: &[u8] = b"soak-secret-of-at-least-32-bytes-0123456789";
const WRONG_SECRET: &[u8] = b"another-secret-of-at-least-32-bytes-98765";
/// The slots of each shared-data table of the soak policy.
pub const SLOTS: u64 = 4096;
/// The sender's fold window in these runs.
const FOLD_WINDOW_MS: u64 = 2_000;
/// Shared-data tables: two rate limits, quarantine's strikes and ends.
const TABLES: u64 = 4;

#[derive(Debug, Clone)]
pub struct SoakOptions {
    pub duration: Duration,
    pub sample_every: Duration,
    /// Samples before this are warm-up; flatness is judged from the first one after it.
    pub warm_up: Duration,
    /// Load threads; each sends at most `rate` requests per second.
    pub threads: usize,
    pub rate: u32,
    /// Stops the load early once this many requests were sent.
    pub max_requests: u64,
    /// Envoy workers.
    pub concurrency: u16,
    /// The last sample's Envoy RSS may exceed the first after warm-up by this fraction.
    pub rss_tolerance: f64,
    pub out: PathBuf,
}

/// One row of the CSV.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub seconds: f64,
    pub requests: u64,
    pub unexpected: u64,
    pub rss_kib: u64,
    pub envoy_allocated_kib: u64,
    pub vm_memory_kib: u64,
    pub shared_data_entries_bound: u64,
    pub inspected: u64,
    pub blocked: u64,
    pub quarantines: u64,
    pub events_sent: u64,
    pub events_dropped: u64,
    pub events_folded: u64,
    pub collisions: u64,
}

pub const CSV_HEADER: &str =
    "seconds,requests,unexpected,rss_kib,envoy_allocated_kib,vm_memory_kib,\
shared_data_entries_bound,inspected,blocked,quarantines_started,events_sent,events_dropped,\
events_folded,slot_collisions";

impl Sample {
    pub fn csv(&self) -> String {
        format!(
            "{:.0},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            self.seconds,
            self.requests,
            self.unexpected,
            self.rss_kib,
            self.envoy_allocated_kib,
            self.vm_memory_kib,
            self.shared_data_entries_bound,
            self.inspected,
            self.blocked,
            self.quarantines,
            self.events_sent,
            self.events_dropped,
            self.events_folded,
            self.collisions
        )
    }
}

/// What the run saw and whether each check held.
#[derive(Debug)]
pub struct SoakReport {
    pub samples: Vec<Sample>,
    pub statuses: BTreeMap<String, u64>,
    pub unexpected_examples: Vec<String>,
    /// Findings produced: the filter's per-rule counters (blocked and monitored) and
    /// quarantine starts, plus policy-loaded events (which have no counter: taken from the
    /// collector).
    pub produced: u64,
    /// Findings at the collector, by their `count`.
    pub collected: u64,
    pub collected_by_rule: BTreeMap<String, u64>,
    pub checks: Vec<(String, bool)>,
}

impl SoakReport {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|(_, ok)| *ok)
    }

    pub fn summary(&self) -> String {
        let mut text = String::new();
        let last = self.samples.last().cloned().unwrap_or_default();
        let _ = writeln!(
            text,
            "{} requests in {:.0} s; statuses {:?}",
            last.requests, last.seconds, self.statuses
        );
        let _ = writeln!(
            text,
            "findings produced {}, sent {}, dropped {}, folded by the sender {}, at the collector {}",
            self.produced, last.events_sent, last.events_dropped, last.events_folded, self.collected
        );
        let _ = writeln!(
            text,
            "findings at the collector by rule: {:?}",
            self.collected_by_rule
        );
        for example in &self.unexpected_examples {
            let _ = writeln!(text, "unexpected: {example}");
        }
        for (check, ok) in &self.checks {
            let _ = writeln!(text, "{} {check}", if *ok { "PASS" } else { "FAIL" });
        }
        text
    }
}

/// The soak policy: the petstore behind a local HS256 provider, with two rate limits and
/// quarantine keyed on headers (every client is 127.0.0.1), and an owner for events.
pub fn policy() -> Result<Value, Error> {
    let mut bundle = embed::bundle(&locate::policy("petstore"))?;
    let document = &mut bundle["openapi"]["document"];
    document["security"] = json!([{"local": []}]);
    document["components"]["securitySchemes"] =
        json!({"local": {"type": "http", "scheme": "bearer"}});
    let jwks = json!({"keys": [{"kty": "oct", "k": URL_SAFE_NO_PAD.encode(SECRET)}]});
    bundle["security"] = json!({"providers": {"local": {
        "local_jwks": {"inline_string": jwks.to_string()}
    }}});
    bundle["abuse"] = abuse(SLOTS);
    bundle["events"] = json!({"owner": {"team": "soak", "contact": "#soak"}});
    Ok(bundle)
}

/// Rate limits and quarantine with `slots` per table.
pub fn abuse(slots: u64) -> Value {
    json!({
        "client": {"key": [{"header": "x-soak-abuser"}]},
        "rate_limits": [
            {"name": "per-client", "key": [{"header": "x-soak-client"}],
             "requests": 100000, "window_seconds": 60, "slots": slots},
            {"name": "per-abuser", "key": [{"header": "x-soak-abuser"}],
             "requests": 5, "window_seconds": 10, "slots": slots}
        ],
        "quarantine": {"strikes": 5, "window_seconds": 10, "duration_seconds": 3, "slots": slots}
    })
}

/// An HS256 token for `sub`, valid until 2096, signed with `secret`.
pub fn token(secret: &[u8], sub: &str) -> String {
    use hmac::{Hmac, Mac};
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let header = json!({"alg": "HS256", "typ": "JWT"});
    let claims = json!({"sub": sub, "exp": 4_000_000_000u64});
    let input = format!("{}.{}", b64(&header), b64(&claims));
    // HMAC takes a key of any length: this cannot fail.
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret) else {
        unreachable!("HMAC accepts any key length")
    };
    mac.update(input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{input}.{signature}")
}

/// Envoy with the soak policy and a collector; both stop on drop.
pub struct Stack {
    pub envoy: Envoy,
    pub upstream: EchoUpstream,
    pub collector: EchoUpstream,
}

impl Stack {
    /// `wasm`: a test build of the filter; `None` loads the one `make wasm` built (the
    /// `harness` commands build it first, tests expect it built).
    pub fn start(policy: Value, concurrency: u16, wasm: Option<PathBuf>) -> Result<Stack, Error> {
        let upstream = EchoUpstream::start()?;
        let collector = EchoUpstream::start()?;
        // A sender fold window of 2 s (default 10 s), so the drain at the end is short.
        let sender = json!({"format": "ocsf", "path": "/ocsf", "flush_ms": 200,
                            "fold_window_ms": FOLD_WINDOW_MS});
        let envoy = Envoy::start(
            &EnvoyOptions {
                policy: Policy::Bundle(policy),
                concurrency,
                ready_timeout: Duration::from_secs(120),
                wasm,
                delivery: Some(Delivery {
                    collector: collector.addr(),
                    sender,
                }),
                ..EnvoyOptions::default()
            },
            upstream.addr(),
        )?;
        Ok(Stack {
            envoy,
            upstream,
            collector,
        })
    }

    /// Envoy's resident set (`VmRSS` in `/proc/<pid>/status`), KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.envoy.pid()));
        status
            .ok()
            .and_then(|text| {
                let line = text.lines().find(|line| line.starts_with("VmRSS:"))?;
                line.split_whitespace().nth(1)?.parse().ok()
            })
            .unwrap_or(0)
    }

    /// The findings the collector received, by their `count`; how many of them were
    /// policy-loaded events; the count by rule.
    pub fn collected(&self) -> (u64, u64, BTreeMap<String, u64>) {
        let (mut all, mut system) = (0, 0);
        let mut by_rule = BTreeMap::new();
        for request in self.collector.received() {
            let Ok(Value::Array(findings)) = serde_json::from_str(&request.body) else {
                continue;
            };
            for finding in findings {
                let count = finding["count"].as_u64().unwrap_or(1);
                all += count;
                let rule = finding["finding_info"]["analytic"]["uid"].as_str();
                *by_rule.entry(rule.unwrap_or("?").to_owned()).or_default() += count;
                if rule == Some("apiguard.policy_loaded") {
                    system += count;
                }
            }
        }
        (all, system, by_rule)
    }
}

/// Counts the load threads share.
#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    unexpected: AtomicU64,
    refused: AtomicU64,
    statuses: Mutex<BTreeMap<String, u64>>,
    examples: Mutex<Vec<String>>,
}

impl Tally {
    fn record(&self, kind: &str, outcome: Result<u16, String>, expected: &[u16]) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let label = match &outcome {
            Ok(status) => format!("{kind} {status}"),
            Err(_) => format!("{kind} error"),
        };
        if let Ok(mut statuses) = self.statuses.lock() {
            *statuses.entry(label.clone()).or_default() += 1;
        }
        match outcome {
            Ok(status) if expected.contains(&status) => {
                if status >= 400 {
                    self.refused.fetch_add(1, Ordering::Relaxed);
                }
            }
            other => {
                self.unexpected.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut examples) = self.examples.lock() {
                    if examples.len() < 10 {
                        examples.push(format!("{label}: {other:?}"));
                    }
                }
            }
        }
    }
}

/// One load thread: the ten-request cycle at most `rate` per second until `stop`.
fn load(
    stack_addr: std::net::SocketAddr,
    thread: usize,
    options: &SoakOptions,
    tally: &Tally,
    stop: &AtomicBool,
) {
    let Ok(client) = Client::new(stack_addr, HttpVersion::Http1) else {
        tally.record("client", Err("no runtime".into()), &[]);
        return;
    };
    let good = token(SECRET, "soak-user");
    let wrong = token(WRONG_SECRET, "soak-user");
    let abuser = format!("abuser-{thread}");
    let pause = Duration::from_secs_f64(1.0 / f64::from(options.rate.max(1)));
    let mut next = Instant::now();
    let mut i: u64 = 0;
    while !stop.load(Ordering::Relaxed)
        && tally.requests.load(Ordering::Relaxed) < options.max_requests
    {
        let client_key = format!("good-{}", (i as usize * 7 + thread) % 64);
        let (kind, target, bearer, header, expected): (_, _, _, _, &[u16]) = match i % 10 {
            0..=4 => (
                "valid",
                "/v1/pets",
                Some(&good),
                Some(("x-soak-client", client_key.as_str())),
                &[200],
            ),
            5 => (
                "violation",
                "/v1/pets?limit=1000",
                Some(&good),
                None,
                &[400],
            ),
            6 => (
                "unknown",
                "/v1/not-in-the-contract",
                Some(&good),
                None,
                &[404],
            ),
            7 => ("bad-token", "/v1/pets", Some(&wrong), None, &[401]),
            8 => ("no-token", "/v1/pets", None, None, &[401]),
            _ => (
                "abuser",
                "/v1/pets",
                Some(&good),
                Some(("x-soak-abuser", abuser.as_str())),
                &[200, 429, 403],
            ),
        };
        let headers: Vec<_> = header.into_iter().collect();
        let outcome = send(&client, target, bearer.map(String::as_str), &headers);
        tally.record(kind, outcome, expected);
        i += 1;
        next += pause;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
}

/// Sends `GET target` with an optional bearer token and `headers`; the status or the
/// error.
pub fn send(
    client: &Client,
    target: &str,
    bearer: Option<&str>,
    headers: &[(&str, &str)],
) -> Result<u16, String> {
    let mut request = Request::get(target).header("user-agent", "apiguard-soak/1");
    if let Some(token) = bearer {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Bytes::new()).map_err(|e| e.to_string())?;
    client
        .send(request)
        .map(|response| response.status.as_u16())
        .map_err(|error| error.to_string())
}

/// Reads one sample from Envoy.
fn sample(stack: &Stack, started: Instant, tally: &Tally, bound: u64) -> Sample {
    sample_counts(
        stack,
        started,
        tally.requests.load(Ordering::Relaxed),
        tally.unexpected.load(Ordering::Relaxed),
        bound,
    )
}

/// Reads one sample from Envoy, with the load's own counts.
pub fn sample_counts(
    stack: &Stack,
    started: Instant,
    requests: u64,
    unexpected: u64,
    bound: u64,
) -> Sample {
    let stats = stack.envoy.stats().unwrap_or_default();
    let counter = |name: &str| stats.wasm_counter(name).unwrap_or(0.0) as u64;
    let allocated = stats.get("envoy_server_memory_allocated{}").unwrap_or(0.0) as u64;
    Sample {
        seconds: started.elapsed().as_secs_f64(),
        requests,
        unexpected,
        rss_kib: stack.rss_kib(),
        envoy_allocated_kib: allocated / 1024,
        vm_memory_kib: counter("apiguard.vm.memory_kib"),
        shared_data_entries_bound: bound,
        inspected: counter("apiguard.requests_inspected"),
        blocked: counter("apiguard.requests_blocked"),
        quarantines: counter("apiguard.abuse.quarantines_started"),
        events_sent: counter("apiguard.events.sent"),
        events_dropped: counter("apiguard.events.dropped"),
        events_folded: counter("apiguard.events.folded"),
        collisions: counter("apiguard.abuse.slot_collisions"),
    }
}

/// The filter's shared-data entries for the soak policy: the tables' slots plus the slot
/// secret (its key set is inline, so no fetched keys are stored). Envoy does not expose
/// the count, so this is derived from the configuration: each table is a fixed array of
/// `slots` keys (filter/src/abuse/slots.rs), and no other key is ever written.
pub fn shared_data_bound(slots: u64) -> u64 {
    TABLES * slots + 1
}

/// Runs the soak; writes `soak.csv`, `soak.png` and `summary.txt` into `options.out`.
pub fn run(options: &SoakOptions) -> Result<SoakReport, Error> {
    std::fs::create_dir_all(&options.out)
        .map_err(Error::io(format!("creating {}", options.out.display())))?;
    let stack = Stack::start(policy()?, options.concurrency, None)?;
    let bound = shared_data_bound(SLOTS);
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let listener = stack.envoy.listener();
    let threads: Vec<_> = (0..options.threads)
        .map(|thread| {
            let (tally, stop, options) = (Arc::clone(&tally), Arc::clone(&stop), options.clone());
            std::thread::spawn(move || load(listener, thread, &options, &tally, &stop))
        })
        .collect();
    let csv_path = options.out.join("soak.csv");
    let mut csv = format!("{CSV_HEADER}\n");
    let mut samples = vec![sample(&stack, started, &tally, bound)];
    let end = started + options.duration;
    while Instant::now() < end && tally.requests.load(Ordering::Relaxed) < options.max_requests {
        let next = started + options.sample_every * samples.len() as u32;
        std::thread::sleep(
            next.min(end)
                .saturating_duration_since(Instant::now())
                .min(Duration::from_secs(1)),
        );
        if Instant::now() >= next {
            let row = sample(&stack, started, &tally, bound);
            eprintln!("soak: {}", row.csv());
            samples.push(row);
            write_csv(&csv_path, &mut csv, &samples)?;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        let _ = thread.join();
    }
    // Let the fold windows close and the sender drain: until sent + dropped has held still
    // for longer than the sender's fold window.
    let mut settled = (u64::MAX, 0);
    for _ in 0..60 {
        std::thread::sleep(Duration::from_secs(1));
        let now = sample(&stack, started, &tally, bound);
        let total = now.events_sent + now.events_dropped;
        if total == settled.0 {
            settled.1 += 1;
            if settled.1 > FOLD_WINDOW_MS / 1000 + 1 {
                break;
            }
        } else {
            settled = (total, 0);
        }
    }
    samples.push(sample(&stack, started, &tally, bound));
    write_csv(&csv_path, &mut csv, &samples)?;
    let report = judge(options, &stack, &tally, samples);
    write_plot(&options.out.join("soak.png"), &report.samples)?;
    std::fs::write(options.out.join("summary.txt"), report.summary())
        .map_err(Error::io("writing summary.txt"))?;
    Ok(report)
}

fn write_csv(path: &Path, csv: &mut String, samples: &[Sample]) -> Result<(), Error> {
    csv.truncate(CSV_HEADER.len() + 1);
    for row in samples {
        let _ = writeln!(csv, "{}", row.csv());
    }
    std::fs::write(path, csv.as_bytes()).map_err(Error::io(format!("writing {}", path.display())))
}

/// Envoy RSS (red), VM linear memory (blue), Envoy's heap allocated (green), requests
/// (grey), each scaled to its own maximum.
fn write_plot(path: &Path, samples: &[Sample]) -> Result<(), Error> {
    let column = |f: fn(&Sample) -> u64| samples.iter().map(|s| f(s) as f64).collect::<Vec<_>>();
    let (rss, vm, heap, requests) = (
        column(|s| s.rss_kib),
        column(|s| s.vm_memory_kib),
        column(|s| s.envoy_allocated_kib),
        column(|s| s.requests),
    );
    let image = png::line_chart(&[
        Series {
            values: &requests,
            rgb: [170, 170, 170],
        },
        Series {
            values: &heap,
            rgb: [0, 150, 0],
        },
        Series {
            values: &vm,
            rgb: [0, 0, 220],
        },
        Series {
            values: &rss,
            rgb: [220, 0, 0],
        },
    ]);
    std::fs::write(path, image).map_err(Error::io(format!("writing {}", path.display())))
}

/// The filter's per-rule counters (`apiguard.rule.<rule>.blocked` and `.monitored`),
/// summed per rule, from the admin `/stats` page.
fn rule_counters(stack: &Stack) -> BTreeMap<String, u64> {
    let mut counted = BTreeMap::new();
    let page = stack
        .envoy
        .admin_get("/stats?filter=apiguard.rule.")
        .unwrap_or_default();
    for line in page.lines() {
        let Some((name, value)) = line.split_once(": ") else {
            continue;
        };
        // Envoy prints a plugin's stats as `wasmcustom.<name>`.
        let rule = name
            .split_once("apiguard.rule.")
            .map(|(_, rest)| rest)
            .and_then(|rest| rest.rsplit_once('.'))
            .map(|(rule, _action)| rule.to_owned());
        if let (Some(rule), Ok(value)) = (rule, value.trim().parse::<u64>()) {
            if value > 0 {
                *counted.entry(rule).or_default() += value;
            }
        }
    }
    counted
}

fn judge(options: &SoakOptions, stack: &Stack, tally: &Tally, samples: Vec<Sample>) -> SoakReport {
    let warm = samples
        .iter()
        .find(|s| s.seconds >= options.warm_up.as_secs_f64())
        .cloned()
        .unwrap_or_default();
    let last = samples.last().cloned().unwrap_or_default();
    let (collected, policy_loaded, by_rule) = stack.collected();
    let mut counted = rule_counters(stack);
    if last.quarantines > 0 {
        counted.insert("abuse.quarantine_started".to_owned(), last.quarantines);
    }
    // Every finding about a request is counted by its rule's counter (blocked or
    // monitored), independently of the event path, and each quarantine start by its
    // counter; only policy-loaded events have no counter.
    let produced = counted.values().sum::<u64>() + policy_loaded;
    let mismatched: Vec<String> = counted
        .iter()
        .filter(|(rule, count)| by_rule.get(*rule).copied().unwrap_or(0) != **count)
        .map(|(rule, count)| format!("{rule}: {count} counted, {:?} collected", by_rule.get(rule)))
        .collect();
    let rss_limit = warm.rss_kib as f64 * (1.0 + options.rss_tolerance);
    let unexpected = tally.unexpected.load(Ordering::Relaxed);
    let refused = tally.refused.load(Ordering::Relaxed);
    let checks = vec![
        (
            format!(
                "VM linear memory flat after warm-up: {} KiB at {:.0} s, {} KiB at the end",
                warm.vm_memory_kib, warm.seconds, last.vm_memory_kib
            ),
            warm.vm_memory_kib > 0 && last.vm_memory_kib == warm.vm_memory_kib,
        ),
        (
            format!(
                "Envoy RSS within {:.0}% after warm-up: {} KiB at {:.0} s, {} KiB at the end",
                options.rss_tolerance * 100.0,
                warm.rss_kib,
                warm.seconds,
                last.rss_kib
            ),
            warm.rss_kib > 0 && last.rss_kib as f64 <= rss_limit,
        ),
        (
            format!(
                "every refusal the clients saw is counted: {refused} = {}",
                last.blocked
            ),
            refused == last.blocked,
        ),
        (
            format!("no unexpected status: {unexpected}"),
            unexpected == 0 && last.requests > 0,
        ),
        (
            format!(
                "events sent + dropped = produced: {} + {} = {produced}",
                last.events_sent, last.events_dropped
            ),
            produced > 0 && last.events_sent + last.events_dropped == produced,
        ),
        (
            format!(
                "the collector holds what was sent: {collected} = {}",
                last.events_sent
            ),
            collected == last.events_sent,
        ),
        (
            format!("each rule's findings at the collector = its counter: {mismatched:?}"),
            mismatched.is_empty(),
        ),
    ];
    SoakReport {
        samples,
        statuses: tally.statuses.lock().map(|s| s.clone()).unwrap_or_default(),
        unexpected_examples: tally.examples.lock().map(|e| e.clone()).unwrap_or_default(),
        produced,
        collected,
        collected_by_rule: by_rule,
        checks,
    }
}
