//! Hot reload through ECDS: apiguard's policy delivered by Envoy's extension config
//! discovery from a watched file (the resource `apiguard render ecds` writes), replaced
//! while a bounded load loop keeps sending requests. A good policy takes effect without a
//! failed request, a policy that does not compile is refused (`config_fail`) while the
//! previous one keeps serving, and `apiguard.policy_loaded` names the hashes before and
//! after. Also a burst of pushes: every one counted, nothing stuck, the last one enforced.
//!
//! The switch is seen on one request: `DELETE /v1/pets/{id}` is declared by policy A (the
//! shipped petstore) and not by policy B (the same without the operation), so A forwards
//! it and B answers 405. Every DELETE carries its own id, so the upstream's record says
//! exactly which ones passed.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use apiguard_filter::render;
use apiguard_harness::{locate, Client, EcdsSource, Envoy, EnvoyOptions, HttpVersion};
use bytes::Bytes;
use http::Request;
use serde_json::{json, Value};

use crate::fixture::{bundled, Proxy};

/// Load threads, each with its own client; Envoy runs as many workers.
const THREADS: usize = 2;
/// Bounds of one load loop, whatever happens to Envoy.
const MAX_REQUESTS_PER_THREAD: usize = 4_000;
const MAX_LOAD: Duration = Duration::from_secs(40);
/// How long a push may take to be counted (applied or refused) before the test fails:
/// milliseconds, unless it makes a new VM (see [`ecds_stat`]).
const PUSH_TIMEOUT: Duration = Duration::from_secs(45);
/// After a reload is counted, how long workers may still serve the previous policy: the
/// new filter factory reaches each worker by a post to its event loop.
const SETTLE: Duration = Duration::from_millis(500);

/// Policy A: the shipped petstore, which declares `DELETE /pets/{petId}`. `variant` only
/// changes the document's version, so each push is a new configuration.
fn policy_a(variant: u32) -> Value {
    let mut policy = bundled("petstore");
    policy["openapi"]["document"]["info"]["version"] = json!(format!("1.4.{variant}"));
    policy
}

/// Policy B: A without `DELETE /pets/{petId}`.
fn policy_b(variant: u32) -> Value {
    let mut policy = policy_a(variant);
    let item = &mut policy["openapi"]["document"]["paths"]["/pets/{petId}"];
    item.as_object_mut().unwrap().remove("delete").unwrap();
    policy
}

/// A policy the filter refuses: an OpenAPI version it does not support.
fn policy_bad(variant: u32) -> Value {
    let mut policy = policy_a(variant);
    policy["openapi"]["document"]["openapi"] = json!("2.0");
    policy
}

/// Envoy with the filter's configuration from `source` (its first policy already in it).
fn start(source: &EcdsSource) -> Proxy {
    Proxy::start_with(EnvoyOptions {
        ecds: Some(source.path()),
        concurrency: THREADS as u16,
        ..EnvoyOptions::default()
    })
}

fn source(first: &Value) -> EcdsSource {
    EcdsSource::create(&locate::filter_wasm().unwrap(), first).unwrap()
}

/// One of Envoy's ECDS stats for the `apiguard` filter, as printed. The admin API is
/// answered by Envoy's main thread, which also applies the pushes: a push that has to make
/// a new VM (the first good one after a refused start) keeps it compiling the module for
/// seconds (20 on a loaded two-core machine), longer than the client's timeout; so the
/// question is asked again until [`PUSH_TIMEOUT`].
fn ecds_stat(envoy: &Envoy, name: &str) -> Option<String> {
    let start = Instant::now();
    loop {
        match envoy.ecds_stat(name) {
            Ok(value) => return value,
            Err(error) => assert!(start.elapsed() < PUSH_TIMEOUT, "{error}"),
        }
    }
}

/// An ECDS counter. Envoy counts every resource it read and tried to apply in
/// `config_reload` (a refused one too), each refused one in `config_fail` (and
/// `update_rejected`), each applied one in `update_success`; `update_attempt` is all of them.
fn ecds_counter(envoy: &Envoy, name: &str) -> u64 {
    ecds_stat(envoy, name).map_or(0, |value| value.parse().unwrap())
}

/// The `version_info` of the resource the filter runs (`version_text`).
fn serving_version(envoy: &Envoy) -> String {
    ecds_stat(envoy, "version_text").unwrap_or_default()
}

/// The `version_info` `apiguard render ecds` gives `policy`.
fn version(policy: &Value) -> String {
    let wasm = locate::filter_wasm().unwrap();
    let resource = render::ecds_resource(policy, &wasm.to_string_lossy());
    resource["version_info"].as_str().unwrap().to_owned()
}

/// Every push Envoy has dealt with, applied or refused.
fn pushes_counted(envoy: &Envoy) -> u64 {
    ecds_counter(envoy, "update_success") + ecds_counter(envoy, "update_rejected")
}

/// Waits until `counted()` reaches `target`; how long it took.
fn wait_counted(what: &str, target: u64, counted: impl Fn() -> u64) -> Duration {
    let start = Instant::now();
    while counted() < target {
        assert!(
            start.elapsed() < PUSH_TIMEOUT,
            "{what}: {} of {target} counted after {PUSH_TIMEOUT:?}",
            counted()
        );
        thread::sleep(Duration::from_millis(5));
    }
    start.elapsed()
}

#[derive(Debug)]
enum Sent {
    /// `GET /v1/pets?limit=5`: declared by every policy here.
    List,
    /// `DELETE /v1/pets/{id}`: declared by A only.
    Delete(u64),
}

/// One request of the load loop: what was sent, when, and the status or the error.
#[derive(Debug)]
struct Outcome {
    sent: Sent,
    started: Instant,
    finished: Instant,
    answer: Result<(u16, Option<String>), String>,
}

/// A bounded load loop: [`THREADS`] threads, each alternating [`Sent::List`] and
/// [`Sent::Delete`] with fresh ids, until `stop` (or its caps).
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<Vec<Outcome>>>,
}

impl Load {
    fn start(proxy: &Proxy) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ids = Arc::new(AtomicU64::new(1));
        let listener = proxy.envoy.listener();
        let threads = (0..THREADS)
            .map(|_| {
                let (stop, ids) = (Arc::clone(&stop), Arc::clone(&ids));
                thread::spawn(move || {
                    let client = Client::new(listener, HttpVersion::Http1).unwrap();
                    let began = Instant::now();
                    let mut outcomes = Vec::new();
                    while !stop.load(Ordering::Relaxed)
                        && outcomes.len() < MAX_REQUESTS_PER_THREAD
                        && began.elapsed() < MAX_LOAD
                    {
                        let sent = match outcomes.len() % 2 {
                            0 => Sent::List,
                            _ => Sent::Delete(ids.fetch_add(1, Ordering::Relaxed)),
                        };
                        let request = match &sent {
                            Sent::List => Request::get("/v1/pets?limit=5"),
                            Sent::Delete(id) => Request::delete(format!("/v1/pets/{id}")),
                        };
                        let started = Instant::now();
                        let answer = (client.send(request.body(Bytes::new()).unwrap()))
                            .map(|response| {
                                let rule = response.json().ok().and_then(|problem| {
                                    problem["rule"].as_str().map(str::to_owned)
                                });
                                (response.status.as_u16(), rule)
                            })
                            .map_err(|error| error.to_string());
                        outcomes.push(Outcome {
                            sent,
                            started,
                            finished: Instant::now(),
                            answer,
                        });
                    }
                    outcomes
                })
            })
            .collect();
        Load { stop, threads }
    }

    fn stop(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        (self.threads.into_iter())
            .flat_map(|thread| thread.join().unwrap())
            .collect()
    }
}

/// What a load loop saw, checked against what both policies agree on: no transport
/// error, every list answered 200, every DELETE either forwarded (2xx, and the upstream
/// has it) or refused by apiguard (405 `route.method_not_allowed`, and the upstream never
/// saw it). Returns the DELETEs as [`Delete`]s.
fn check_outcomes(proxy: &Proxy, outcomes: &[Outcome]) -> Vec<Delete> {
    let reached: BTreeSet<String> = (proxy.upstream.received().into_iter())
        .filter(|request| request.method == "DELETE")
        .map(|request| request.path)
        .collect();
    let mut deletes = Vec::new();
    let mut failures = Vec::new();
    for outcome in outcomes {
        let (status, rule) = match &outcome.answer {
            Ok(answer) => answer,
            Err(error) => {
                failures.push(format!("{:?}: {error}", outcome.sent));
                continue;
            }
        };
        match &outcome.sent {
            Sent::List if *status == 200 => {}
            Sent::Delete(id) => {
                let forwarded = (200..300).contains(status);
                let refused = *status == 405 && rule.as_deref() == Some("route.method_not_allowed");
                let upstream_saw = reached.contains(&format!("/v1/pets/{id}"));
                if (forwarded || refused) && forwarded == upstream_saw {
                    deletes.push(Delete {
                        started: outcome.started,
                        finished: outcome.finished,
                        forwarded,
                    });
                } else {
                    failures.push(format!(
                        "DELETE {id}: {status} {rule:?}, upstream saw it: {upstream_saw}"
                    ));
                }
            }
            sent => failures.push(format!("{sent:?}: {status} {rule:?}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {failures:#?}",
        failures.len(),
        outcomes.len()
    );
    deletes
}

/// A DELETE of the load loop that both policies would answer, and when.
#[derive(Debug)]
struct Delete {
    started: Instant,
    finished: Instant,
    forwarded: bool,
}

impl Delete {
    /// Sent and answered within `(after, before)`: only the policy serving then saw it.
    fn within(&self, after: Instant, before: Instant) -> bool {
        self.started > after && self.finished < before
    }
}

/// The `apiguard.policy_loaded` events in Envoy's log, as (policy hash, previous hash).
pub fn policy_loaded(envoy: &Envoy) -> Vec<(String, Option<String>)> {
    (envoy.log().lines())
        .filter(|line| line.contains(r#""uid":"apiguard.policy_loaded""#))
        .filter_map(|line| serde_json::from_str::<Value>(&line[line.find('{')?..]).ok())
        .map(|event| {
            let unmapped = &event["unmapped"];
            let hash = unmapped["policy_hash"].as_str().unwrap().to_owned();
            let previous = unmapped["previous_policy_hash"].as_str().map(str::to_owned);
            (hash, previous)
        })
        .collect()
}

#[test]
fn good_bad_good_under_load_switches_verdicts_without_a_failed_request() {
    let (a, bad, b) = (policy_a(0), policy_bad(1), policy_b(2));
    let source = source(&a);
    let proxy = start(&source);
    let envoy = &proxy.envoy;
    assert_eq!(serving_version(envoy), version(&a));
    let (applied, refused) = (
        ecds_counter(envoy, "update_success"),
        ecds_counter(envoy, "config_fail"),
    );
    let hash_a = policy_loaded(envoy).first().expect("A loaded").0.clone();

    let began = Instant::now();
    let load = Load::start(&proxy);
    thread::sleep(Duration::from_secs(1));
    source.push(&bad).unwrap();
    wait_counted("the bad policy refused", refused + 1, || {
        ecds_counter(envoy, "config_fail")
    });
    assert_eq!(serving_version(envoy), version(&a), "A keeps serving");
    thread::sleep(Duration::from_secs(1));
    let pushed_b = Instant::now();
    source.push(&b).unwrap();
    wait_counted("policy B applied", applied + 1, || {
        ecds_counter(envoy, "update_success")
    });
    let b_everywhere = Instant::now() + SETTLE;
    thread::sleep(SETTLE + Duration::from_secs(1));
    let outcomes = load.stop();

    let deletes = check_outcomes(&proxy, &outcomes);
    let under_a: Vec<_> = (deletes.iter())
        .filter(|d| d.within(began, pushed_b))
        .collect();
    let under_b: Vec<_> = (deletes.iter())
        .filter(|d| d.within(b_everywhere, Instant::now()))
        .collect();
    assert!(under_a.len() > 10 && under_b.len() > 10, "{deletes:?}");
    assert!(
        under_a.iter().all(|d| d.forwarded),
        "a DELETE answered before B was pushed was refused"
    );
    assert!(
        under_b.iter().all(|d| !d.forwarded),
        "a DELETE sent after B was loaded was forwarded"
    );
    assert_eq!(serving_version(envoy), version(&b));
    assert_eq!(ecds_counter(envoy, "config_fail"), refused + 1);
    assert_eq!(ecds_counter(envoy, "update_rejected"), 1);
    assert_eq!(ecds_counter(envoy, "update_success"), applied + 1);
    let log = envoy.log();
    assert!(log.contains("policy refused"), "{}", envoy.log_tail());

    // Each worker's VM that loaded B says it replaced A; nothing loaded the bad policy.
    let loaded = policy_loaded(envoy);
    let hashes: BTreeSet<&String> = loaded.iter().map(|(hash, _)| hash).collect();
    assert_eq!(hashes.len(), 2, "{loaded:?}");
    let replaced = (loaded.iter())
        .filter(|(hash, previous)| *hash != hash_a && previous.as_ref() == Some(&hash_a))
        .count();
    assert!(replaced >= THREADS, "{loaded:?}");
    eprintln!(
        "hot reload: {} requests ({} DELETEs: {} under A, {} under B), 0 failed; \
         config_reload {}, config_fail {}, update_success {}, update_rejected {}; \
         {replaced} VMs logged policy_loaded {hash_a} -> B",
        outcomes.len(),
        deletes.len(),
        under_a.len(),
        under_b.len(),
        ecds_counter(envoy, "config_reload"),
        ecds_counter(envoy, "config_fail"),
        ecds_counter(envoy, "update_success"),
        ecds_counter(envoy, "update_rejected"),
    );
}

#[test]
fn a_burst_of_pushes_under_load_is_counted_and_ends_on_the_last_policy() {
    const PUSHES: u32 = 20;
    let source = source(&policy_a(0));
    let proxy = start(&source);
    let envoy = &proxy.envoy;
    let counted_at_start = pushes_counted(envoy);
    let refused = ecds_counter(envoy, "config_fail");

    let load = Load::start(&proxy);
    let burst = Instant::now();
    // Back to back: each push as soon as Envoy has dealt with the one before, so each is
    // a configuration Envoy reads (renames that land while Envoy is busy are read once, as
    // the newest file: the second burst). Every fourth does not compile; the last is B.
    let mut bad = 0;
    let mut last_good = None;
    for i in 1..=PUSHES {
        let refused_push = i % 4 == 0 && i != PUSHES;
        let policy = match i {
            _ if refused_push => policy_bad(i),
            _ if i % 2 == 0 => policy_b(i),
            _ => policy_a(i),
        };
        source.push(&policy).unwrap();
        wait_counted("the burst", counted_at_start + u64::from(i), || {
            pushes_counted(envoy)
        });
        if refused_push {
            bad += 1;
        } else {
            last_good = Some(policy);
        }
    }
    let paced = burst.elapsed();
    assert_eq!(pushes_counted(envoy), counted_at_start + u64::from(PUSHES));
    assert_eq!(ecds_counter(envoy, "config_fail"), refused + bad);
    assert_eq!(serving_version(envoy), version(&last_good.unwrap()));
    let b_since = Instant::now() + SETTLE;
    thread::sleep(SETTLE + Duration::from_millis(500));

    // And without waiting: ten renames as fast as the file system takes them, ending on
    // A. However many of them Envoy reads, it ends on the last one.
    let counted_before = pushes_counted(envoy);
    let last = policy_a(110);
    let b_until = Instant::now();
    for i in 101..=110 {
        source.push(&policy_a(i)).unwrap();
    }
    wait_counted("the unpaced burst", counted_before + 1, || {
        pushes_counted(envoy)
    });
    let deadline = Instant::now() + PUSH_TIMEOUT;
    while serving_version(envoy) != version(&last) {
        assert!(Instant::now() < deadline, "the last push never applied");
        thread::sleep(Duration::from_millis(5));
    }
    let a_everywhere = Instant::now() + SETTLE;
    thread::sleep(SETTLE + Duration::from_secs(1));
    let outcomes = load.stop();
    let unpaced = pushes_counted(envoy) - counted_before;
    assert!((1..=10).contains(&unpaced), "{unpaced}");

    let deletes = check_outcomes(&proxy, &outcomes);
    let under_b: Vec<_> = (deletes.iter())
        .filter(|d| d.within(b_since, b_until))
        .collect();
    let under_a: Vec<_> = (deletes.iter())
        .filter(|d| d.within(a_everywhere, Instant::now()))
        .collect();
    assert!(under_b.len() > 5 && under_a.len() > 5, "{deletes:?}");
    assert!(
        under_b.iter().all(|d| !d.forwarded),
        "B let a DELETE through"
    );
    assert!(under_a.iter().all(|d| d.forwarded), "A refused a DELETE");
    // Nothing stuck: a new request after the load is answered at once, as A says.
    let response = (proxy.client(HttpVersion::Http1))
        .send(
            Request::delete("/v1/pets/1000000")
                .body(Bytes::new())
                .unwrap(),
        )
        .unwrap();
    assert!(response.status.is_success(), "{response:?}");
    eprintln!(
        "burst: {PUSHES} back-to-back pushes ({bad} bad) all counted in {paced:?}; 10 renames \
         without waiting read {unpaced} times, ending on the last; {} requests, 0 failed; \
         config_reload {}, config_fail {}, update_success {}, update_rejected {}",
        outcomes.len(),
        ecds_counter(envoy, "config_reload"),
        ecds_counter(envoy, "config_fail"),
        ecds_counter(envoy, "update_success"),
        ecds_counter(envoy, "update_rejected"),
    );
}

/// Without a policy, nothing passes: started on a policy that does not compile (and no
/// `default_config`), Envoy serves the listener with the filter missing and refuses every
/// request; the first good push opens it.
#[test]
fn until_a_policy_loads_the_listener_refuses_requests() {
    let source = source(&policy_bad(0));
    let proxy = start(&source);
    let envoy = &proxy.envoy;
    assert_eq!(ecds_counter(envoy, "config_fail"), 1);
    for target in ["/v1/pets?limit=5", "/v1/pets/1", "/anything"] {
        let response = proxy.get(target);
        assert_eq!(response.status.as_u16(), 500, "{target}: {response:?}");
    }
    proxy.assert_upstream_saw_nothing();

    let a = policy_a(1);
    source.push(&a).unwrap();
    wait_counted("policy A applied", 1, || {
        ecds_counter(envoy, "update_success")
    });
    assert_eq!(serving_version(envoy), version(&a));
    thread::sleep(SETTLE);
    assert_eq!(proxy.get("/v1/pets?limit=5").status.as_u16(), 200);
    assert_eq!(proxy.get("/anything").status.as_u16(), 404);
}
