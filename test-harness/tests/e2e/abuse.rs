//! Abuse protection through a real Envoy with two workers: rate limits and quarantine hold
//! across both worker VMs (their state is in shared data), and anomaly checks refuse what
//! no real client sends.
//!
//! Timing: every assertion about time is one-sided in the direction a loaded machine
//! cannot break (an upper bound on admissions derived from the measured elapsed time; a
//! release checked after the quarantine must have ended), never a tight latency.

use std::thread::sleep;
use std::time::{Duration, Instant};

use apiguard_harness::render::Downstream;
use apiguard_harness::{EnvoyOptions, HttpVersion, Policy, Response};
use bytes::Bytes;
use http::Request;
use serde_json::{json, Value};

use crate::fixture::{assert_problem, bundled, Proxy};

const USER_AGENT: &str = "apiguard-e2e/1";

/// The petstore policy with `abuse`, in Envoy with two workers.
fn start(abuse: Value) -> Proxy {
    start_with(abuse, 2, Downstream::default())
}

fn start_with(abuse: Value, concurrency: u16, downstream: Downstream) -> Proxy {
    let mut policy = bundled("petstore");
    policy["abuse"] = abuse;
    Proxy::start_with(EnvoyOptions {
        policy: Policy::Bundle(policy),
        concurrency,
        // Two workers' VMs on a machine shared with compilers: generous, it only bounds a
        // failure.
        ready_timeout: Duration::from_secs(60),
        downstream,
        ..EnvoyOptions::default()
    })
}

/// `GET target` on a fresh connection (so the kernel spreads requests over both workers),
/// with `forwarded_for` as `X-Forwarded-For`: the client it names when Envoy trusts the
/// test as a proxy (`xff_num_trusted_hops`), else what a client claims.
fn get(proxy: &Proxy, target: &str, forwarded_for: Option<&str>) -> Response {
    get_over(proxy, HttpVersion::Http1, target, forwarded_for)
}

fn get_over(
    proxy: &Proxy,
    version: HttpVersion,
    target: &str,
    forwarded_for: Option<&str>,
) -> Response {
    let mut request = Request::get(target).header("user-agent", USER_AGENT);
    if let Some(address) = forwarded_for {
        request = request.header("x-forwarded-for", address);
    }
    proxy
        .client(version)
        .send(request.body(Bytes::new()).unwrap())
        .unwrap()
}

fn post_pet(proxy: &Proxy, body: &str) -> Response {
    let request = Request::post("/v1/pets")
        .header("user-agent", USER_AGENT)
        .header("content-type", "application/json")
        .body(Bytes::from(body.to_owned()))
        .unwrap();
    proxy.client(HttpVersion::Http1).send(request).unwrap()
}

fn retry_after(response: &Response) -> u64 {
    let value = response.header("retry-after");
    value
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("Retry-After {value:?} in {response:?}"))
}

/// Connections each worker of the API listener accepted, from the admin per-worker stats
/// (`listener.<address>.worker_<n>.downstream_cx_total`), one count per worker.
pub fn connections_per_worker(proxy: &Proxy) -> Vec<u64> {
    let admin = apiguard_harness::Client::new(proxy.envoy.admin(), HttpVersion::Http1).unwrap();
    let stats = admin
        .get("/stats?filter=downstream_cx_total")
        .unwrap()
        .text();
    let counts: Vec<u64> = stats
        .lines()
        // The API listener is the only one with workers (the admin listener has none).
        .filter(|line| line.starts_with("listener.") && line.contains(".worker_"))
        .filter_map(|line| line.rsplit_once(": ")?.1.trim().parse().ok())
        .collect();
    assert_eq!(counts.len(), 2, "two workers' stats in:\n{stats}");
    counts
}

#[test]
fn a_rate_limit_holds_across_workers_and_retry_after_is_enough() {
    // 5 requests per 10 s: a burst of 5, then one every 2 s.
    let proxy = start(json!({"rate_limits": [
        {"name": "per-ip", "requests": 5, "window_seconds": 10}
    ]}));
    let started = Instant::now();
    let responses: Vec<Response> = (0..16).map(|_| get(&proxy, "/v1/pets", None)).collect();
    let elapsed = started.elapsed();
    let statuses: Vec<u16> = responses.iter().map(|r| r.status.as_u16()).collect();
    // Admitted responses say how much is left: the first one spent 1 of 5, back in 2 s.
    assert_eq!(
        responses[0].header("ratelimit-policy"),
        Some("\"per-ip\";q=5;w=10")
    );
    assert_eq!(responses[0].header("ratelimit"), Some("\"per-ip\";r=4;t=2"));

    let admitted = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(admitted + refused, statuses.len(), "{statuses:?}");
    // GCRA admits the burst, then one more per 2 s that passed: two workers with their own
    // buckets would admit up to 10 at once.
    let refills = usize::try_from(elapsed.as_secs() / 2).unwrap();
    assert!(
        (5..=5 + refills).contains(&admitted),
        "admitted {admitted} of 16 in {elapsed:?}: {statuses:?}"
    );
    assert_eq!(proxy.upstream.received().len(), admitted);
    let workers = connections_per_worker(&proxy);
    eprintln!("admitted {admitted} of 16 in {elapsed:?}; connections per worker {workers:?}");
    assert!(
        workers.iter().all(|n| *n > 0),
        "both workers served requests: {workers:?}"
    );
    assert_eq!(
        proxy.counter("apiguard.rule.ratelimit.exceeded.blocked"),
        refused as f64
    );

    // Spend what refilled meanwhile, then read the refusal.
    let refusal = (0..10)
        .map(|_| get(&proxy, "/v1/pets", None))
        .find(|r| r.status == 429)
        .expect("a refusal once the bucket is empty");
    let problem = assert_problem("GET /v1/pets", &refusal, 429, "ratelimit.exceeded");
    assert!(problem["detail"].as_str().unwrap().contains("Retry-After"));
    let wait = retry_after(&refusal);
    assert!((1..=2).contains(&wait), "one request comes back every 2 s");
    assert_eq!(
        refusal.header("ratelimit-policy"),
        Some("\"per-ip\";q=5;w=10")
    );
    assert_eq!(
        refusal.header("ratelimit"),
        Some(format!("\"per-ip\";r=0;t={wait}").as_str())
    );
    sleep(Duration::from_secs(wait));
    assert_eq!(
        get(&proxy, "/v1/pets", None).status,
        200,
        "admitted after waiting Retry-After"
    );
}

/// The test plays a proxy in front of Envoy, which trusts it (`xff_num_trusted_hops: 1`)
/// and so takes the client from `X-Forwarded-For`. The policy's `trusted_hops: 1` names
/// the same proxy: counted once, not twice.
#[test]
fn quarantine_starts_at_the_nth_block_holds_on_every_worker_and_ends_on_time() {
    const DURATION: Duration = Duration::from_secs(4);
    let abuse = json!({
        "client": {"trusted_hops": 1},
        "quarantine": {
            "strikes": 3, "window_seconds": 60, "duration_seconds": DURATION.as_secs(),
            "allowlist": {"cidrs": ["198.51.100.0/24"]}
        }
    });
    let one_proxy = Downstream {
        xff_num_trusted_hops: 1,
        ..Downstream::default()
    };
    let proxy = start_with(abuse, 2, one_proxy);
    let allowlisted = Some("198.51.100.7");
    for _ in 0..5 {
        assert_eq!(get(&proxy, "/v1/admin", allowlisted).status, 404);
    }
    assert_eq!(
        get(&proxy, "/v1/pets", allowlisted).status,
        200,
        "allowlisted"
    );
    let attacker = Some("203.0.113.9");
    for _ in 0..2 {
        assert_eq!(get(&proxy, "/v1/admin", attacker).status, 404);
    }
    assert_eq!(
        get(&proxy, "/v1/pets", attacker).status,
        200,
        "two strikes are not a quarantine"
    );
    assert_eq!(get(&proxy, "/v1/admin", attacker).status, 404);
    let third_strike = Instant::now();

    // Good requests are refused too, on fresh connections to both workers. Only those sent
    // well within the quarantine are judged, so a slow machine cannot fail the test.
    let before = connections_per_worker(&proxy);
    let mut judged = 0;
    for _ in 0..8 {
        let sent = third_strike.elapsed();
        let response = get(&proxy, "/v1/pets", attacker);
        if sent < DURATION - Duration::from_millis(500) {
            judged += 1;
            let problem = assert_problem("GET /v1/pets", &response, 403, "abuse.quarantined");
            assert!(problem["detail"].as_str().unwrap().contains("Retry-After"));
            assert!((1..=DURATION.as_secs()).contains(&retry_after(&response)));
        }
    }
    let other = get(&proxy, "/v1/pets", Some("203.0.113.10"));
    let after = connections_per_worker(&proxy);
    assert!(judged >= 2, "only {judged} requests within the quarantine");
    assert_eq!(other.status, 200, "another client is served");
    assert!(
        after.iter().zip(&before).all(|(a, b)| a > b),
        "both workers served: connections per worker {before:?} then {after:?}"
    );

    // The quarantine began while the third strike was answered, so it has ended by then.
    sleep(
        (third_strike + DURATION + Duration::from_millis(250))
            .saturating_duration_since(Instant::now()),
    );
    assert_eq!(get(&proxy, "/v1/pets", attacker).status, 200, "released");

    assert_eq!(proxy.counter("apiguard.abuse.quarantines_started"), 1.0);
    let refused = proxy.counter("apiguard.rule.abuse.quarantined.blocked");
    assert!((judged as f64..=8.0).contains(&refused), "{refused}");
    let log = proxy.envoy.log();
    let events: Vec<&str> = log
        .lines()
        .filter(|line| line.contains(r#""uid":"abuse.quarantine_started""#))
        .collect();
    assert_eq!(events.len(), 1, "{log}");
    assert!(
        events[0].contains(r#""src_endpoint":{"ip":"203.0.113.9"}"#)
            && events[0].contains("client quarantined for 4 s"),
        "{}",
        events[0]
    );
    // Allowlisted, second client, the attacker before and after; none of the refused.
    let forwarded = proxy.upstream.received().len();
    assert_eq!(forwarded, 4 + 8 - refused as usize);
}

/// Regression: the shipped envoy.yaml left `use_remote_address` unset, so Envoy took the
/// rightmost `X-Forwarded-For` entry for the client: by rotating it a client escaped the
/// per-address rate limit (29 of 30 admitted after a 429), ended its quarantine, claimed
/// the quarantine allowlist and chose the address in security events. Through the shipped
/// settings, one client (127.0.0.1) that names another address in every request is one
/// client for all of it, over HTTP/1.1 and h2c.
#[test]
fn rotating_x_forwarded_for_chooses_the_client_address() {
    for version in [HttpVersion::Http1, HttpVersion::H2c] {
        rotation_gains_nothing(version);
    }
}

fn rotation_gains_nothing(version: HttpVersion) {
    // 5 requests, then one per minute: a test slower than that only admits more by the
    // minutes it took, which the bound below allows for.
    let proxy = start_with(
        json!({
            "rate_limits": [{"name": "per-ip", "requests": 5, "window_seconds": 300}],
            "quarantine": {
                "strikes": 3, "window_seconds": 300, "duration_seconds": 300,
                "allowlist": {"cidrs": ["198.51.100.0/24"]}
            }
        }),
        1,
        Downstream::default(),
    );
    let started = Instant::now();
    let mut statuses = Vec::new();
    // Each request claims another address, all of them in the allowlist.
    for i in 0..30 {
        let claimed = format!("198.51.100.{i}");
        let response = get_over(&proxy, version, "/v1/pets", Some(&claimed));
        statuses.push(response.status.as_u16());
    }
    let minutes = usize::try_from(started.elapsed().as_secs() / 60).unwrap();
    let admitted = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        (5..=5 + minutes).contains(&admitted),
        "{version:?}: admitted {admitted} of 30: {statuses:?}"
    );
    // The 429s were strikes: the third started a quarantine, which every later request
    // met whatever address it claimed, allowlisted or not.
    let (limited, held) = statuses.split_at(admitted + 3);
    assert!(
        limited[admitted..].iter().all(|s| *s == 429),
        "{version:?}: {statuses:?}"
    );
    assert!(held.iter().all(|s| *s == 403), "{version:?}: {statuses:?}");
    let other = get_over(&proxy, version, "/v1/pets", Some("203.0.113.77"));
    assert_problem("GET /v1/pets", &other, 403, "abuse.quarantined");
    assert_eq!(proxy.counter("apiguard.abuse.quarantines_started"), 1.0);

    // The upstream saw the admitted requests, each with the claim and, right of it, the
    // address Envoy appended (for a loopback peer Envoy appends its own address).
    let received = proxy.upstream.received();
    assert_eq!(received.len(), admitted, "{version:?}");
    for (i, request) in received.iter().enumerate() {
        let forwarded = request.headers.get("x-forwarded-for").map(String::as_str);
        let entries: Vec<&str> = forwarded.unwrap_or_default().split(',').collect();
        let claimed = format!("198.51.100.{i}");
        assert!(
            entries.len() == 2 && entries[0] == claimed && entries[1].trim() != claimed,
            "{version:?}: {forwarded:?}"
        );
    }
    // Events name the peer, never a claimed address.
    let log = proxy.envoy.log();
    let findings: Vec<&str> = (log.lines())
        .filter(|line| line.contains(r#""src_endpoint""#))
        .collect();
    let started = (findings.iter())
        .filter(|line| line.contains(r#""uid":"abuse.quarantine_started""#))
        .count();
    assert_eq!(started, 1, "{log}");
    assert!(findings.len() > started, "{log}");
    for finding in findings {
        assert!(
            finding.contains(r#""src_endpoint":{"ip":"127.0.0.1"}"#),
            "{version:?}: {finding}"
        );
    }
}

/// An IPv6 client holds a whole /64 and can rotate its address within it: it is keyed
/// by the /64 (`ipv6_prefix`), events still name its address. Envoy listens on [::1], and
/// the test plays a trusted proxy to name clients of two /64s.
#[test]
fn ipv6_clients_are_keyed_by_their_64() {
    let mut policy = bundled("petstore");
    policy["abuse"] =
        json!({"rate_limits": [{"name": "per-net", "requests": 2, "window_seconds": 300}]});
    let proxy = Proxy::start_with(EnvoyOptions {
        policy: Policy::Bundle(policy),
        listen: "[::1]:0".parse().unwrap(),
        ready_timeout: Duration::from_secs(60),
        downstream: Downstream {
            xff_num_trusted_hops: 1,
            ..Downstream::default()
        },
        ..EnvoyOptions::default()
    });
    assert!(proxy.envoy.listener().is_ipv6());
    let status = |client: Option<&str>| get(&proxy, "/v1/pets", client).status.as_u16();
    assert_eq!(status(Some("2001:db8:0:1::1")), 200);
    assert_eq!(status(Some("2001:db8:0:1::2")), 200);
    assert_eq!(status(Some("2001:db8:0:1:ffff::3")), 429, "same /64");
    assert_eq!(status(Some("2001:db8:0:2::1")), 200, "another /64");
    // No client named: the peer, ::1.
    assert_eq!(status(None), 200);
    assert_eq!(status(None), 200);
    assert_eq!(status(None), 429);
    let log = proxy.envoy.log();
    let refusals: Vec<&str> = (log.lines())
        .filter(|line| line.contains(r#""uid":"ratelimit.exceeded""#))
        .collect();
    assert_eq!(refusals.len(), 2, "{log}");
    assert!(
        refusals[0].contains(r#""src_endpoint":{"ip":"2001:db8:0:1:ffff::3"}"#),
        "{}",
        refusals[0]
    );
    assert!(
        refusals[1].contains(r#""src_endpoint":{"ip":"::1"}"#),
        "{}",
        refusals[1]
    );
}

/// Regression: a response refused for breaking the contract (the upstream's fault) once
/// counted as a strike against the client.
#[test]
fn upstream_contract_breaches_are_not_strikes_against_the_client() {
    let mut policy = bundled("petstore");
    policy["responses"] = json!({"mode": "enforce"});
    // deletePet then answers 204 or 404 only; the echo upstream's 200 breaks that.
    let delete = &mut policy["openapi"]["document"]["paths"]["/pets/{petId}"]["delete"];
    delete["responses"]
        .as_object_mut()
        .unwrap()
        .remove("default");
    policy["abuse"] = json!({"quarantine": {
        "strikes": 1, "window_seconds": 60, "duration_seconds": 60}});
    let proxy = Proxy::start_with(EnvoyOptions {
        policy: Policy::Bundle(policy),
        ready_timeout: Duration::from_secs(60),
        ..EnvoyOptions::default()
    });
    let delete = || {
        let request = Request::delete("/v1/pets/7")
            .header("user-agent", USER_AGENT)
            .body(Bytes::new())
            .unwrap();
        proxy.client(HttpVersion::Http1).send(request).unwrap()
    };
    for _ in 0..2 {
        assert_problem("DELETE /v1/pets/7", &delete(), 502, "response.status");
    }
    assert_eq!(proxy.counter("apiguard.abuse.quarantines_started"), 0.0);
    // The client's own blocked request is one.
    assert_eq!(get(&proxy, "/v1/admin", None).status, 404);
    let response = get(&proxy, "/v1/pets", None);
    assert_problem("GET /v1/pets", &response, 403, "abuse.quarantined");
}

#[test]
fn anomalies_are_refused_before_the_upstream_and_look_alikes_pass() {
    let proxy = start(json!({"anomaly": {"free_text": ["/note"]}}));

    let sqli = "/v1/pets?cursor=1%27%20OR%20%271%27%3D%271";
    let problem = assert_problem(sqli, &get(&proxy, sqli, None), 400, "anomaly.sql_injection");
    assert_eq!(problem["violations"][0]["name"], "cursor", "{problem}");
    assert!(!problem.to_string().contains("OR"), "no echo: {problem}");
    let duplicate = r#"{"name": "Rex", "name": "Max"}"#;
    let response = post_pet(&proxy, duplicate);
    // The contract refuses it first; the anomaly is recorded alongside.
    let problem = assert_problem(duplicate, &response, 400, "body.duplicate_key");
    let rules: Vec<_> = problem["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|violation| violation["rule"].as_str().unwrap())
        .collect();
    assert!(rules.contains(&"anomaly.json_duplicate_key"), "{problem}");
    let nosql = r#"{"name": {"$ne": ""}}"#;
    let response = post_pet(&proxy, nosql);
    assert_eq!(response.status, 400, "{nosql}: {response:?}");
    let trace = Request::builder()
        .method("TRACE")
        .uri("/v1/pets")
        .header("user-agent", USER_AGENT)
        .body(Bytes::new())
        .unwrap();
    let response = proxy.client(HttpVersion::Http1).send(trace).unwrap();
    assert_eq!(response.status.as_u16(), 405, "{response:?}");
    // The contract refuses it too; the anomaly is counted alongside.
    assert_eq!(proxy.counter("apiguard.rule.anomaly.method.blocked"), 1.0);
    proxy.assert_upstream_saw_nothing();

    let benign = [
        r#"{"name": "O'Brien"}"#,
        r#"{"name": "Zoë", "note": "select the <script> tag's text, then drop it"}"#,
    ];
    for body in benign {
        let response = post_pet(&proxy, body);
        assert!(
            !response.text().contains("anomaly."),
            "{body}: {response:?}"
        );
    }
    let bodies: Vec<String> = proxy
        .upstream
        .received()
        .into_iter()
        .map(|r| r.body)
        .collect();
    assert_eq!(bodies, benign);
}
