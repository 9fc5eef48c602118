//! Several APIs behind one listener (`apis:`, README "Several APIs behind one gateway"),
//! through a real Envoy started from what `apiguard render envoy` renders: each request is
//! judged by the API its authority and base path choose, counted under that API's `api`
//! label at `/stats/prometheus`, and evented with that API's owner; a request no API has is
//! refused (`route.unknown_api`) before the upstream. Over HTTP/1.1 and h2c. And what 50
//! APIs cost (configure time, VM memory), printed by `gateway_of_50_apis`.

use std::time::{Duration, Instant};

use apiguard_harness::compile_report::compile_reports;
use apiguard_harness::{locate, Envoy, EnvoyOptions, HttpVersion, Policy, Response, Stats};
use bytes::Bytes;
use http::Request;
use serde_json::{json, Value};

use crate::events::wait_for;
use crate::fixture::{assert_problem, bundled, Proxy};

/// Starting Envoy took 50 to 90 s while six agents shared two cores: generous.
const READY: Duration = Duration::from_secs(300);

/// `policies/gateway/gateway.yaml`: the petstore at `pets.example.com/v1` and the bookshop
/// at `books.example.com/bookshop/v2` (and its subdomains), behind gateway `edge`.
fn gateway_file() -> std::path::PathBuf {
    locate::workspace_root().join("policies/gateway/gateway.yaml")
}

/// `GET target` to `authority`: the `host` header over HTTP/1.1, `:authority` over h2c.
fn get(proxy: &Proxy, version: HttpVersion, authority: &str, target: &str) -> Response {
    let request = match version {
        HttpVersion::Http1 => Request::get(target).header("host", authority),
        HttpVersion::H2c => Request::get(format!("http://{authority}{target}")),
    };
    proxy
        .client(version)
        .send(request.body(Bytes::new()).unwrap())
        .unwrap()
}

/// The OCSF event lines in Envoy's log.
fn event_lines(proxy: &Proxy) -> Vec<Value> {
    proxy
        .envoy
        .log()
        .lines()
        .filter_map(|line| line.find(r#"{"action""#).map(|at| &line[at..]))
        .filter_map(|json| serde_json::from_str(json).ok())
        .collect()
}

#[test]
fn each_api_is_judged_counted_and_evented_as_its_own_and_an_unknown_one_is_refused() {
    let proxy = Proxy::start_with(EnvoyOptions {
        policy: Policy::File(gateway_file()),
        ready_timeout: READY,
        ..EnvoyOptions::default()
    });
    for version in [HttpVersion::Http1, HttpVersion::H2c] {
        // The petstore's contract, on its authority (any case, port, trailing dot).
        for authority in ["pets.example.com", "PETS.Example.com.:10000"] {
            let response = get(&proxy, version, authority, "/v1/pets?limit=5");
            assert_eq!(
                response.status, 200,
                "{version:?} {authority}: {response:?}"
            );
        }
        let response = get(&proxy, version, "pets.example.com", "/v1/pets?limit=1000");
        assert_problem("pets limit", &response, 400, "params.invalid");
        // The bookshop's contract on its own authorities: the petstore's path is unknown
        // to it, and its own paths are not the petstore's.
        let response = get(
            &proxy,
            version,
            "eu.books.example.com",
            "/bookshop/v2/books",
        );
        assert_eq!(response.status, 200, "{version:?}: {response:?}");
        let response = get(&proxy, version, "books.example.com", "/bookshop/v2/pets");
        let problem = assert_problem("books pets", &response, 404, "route.unknown_path");
        assert_eq!(problem["api"], "bookshop");
        // An h2 `host` header beside `:authority`, and an HTTP/1.1 absolute-form target
        // beside `Host`: the API is chosen by the authority Envoy routes by.
        let request = Request::get("http://evil.example.net/v1/pets")
            .header("host", "pets.example.com")
            .body(Bytes::new())
            .unwrap();
        let response = proxy.client(version).send(request).unwrap();
        assert_problem("twin authorities", &response, 404, "route.unknown_api");
        // No API has these: refused by the gateway, never forwarded.
        for (authority, target) in [
            ("evil.example.net", "/v1/pets"),
            ("books.example.com", "/v1/pets"),
            ("pets.example.com", "/v2/pets"),
            ("pets.example.com.evil.net", "/v1/pets"),
        ] {
            let response = get(&proxy, version, authority, target);
            let problem = assert_problem(authority, &response, 404, "route.unknown_api");
            assert_eq!(problem["api"], "edge");
        }
    }
    // What reached the upstream: the allowed requests only, with their own hosts.
    let received = proxy.upstream.received();
    let hosts: Vec<(&str, &str)> = (received.iter())
        .map(|r| (r.headers["host"].as_str(), r.path.as_str()))
        .collect();
    let allowed = [
        ("pets.example.com", "/v1/pets"),
        ("PETS.Example.com.:10000", "/v1/pets"),
        ("eu.books.example.com", "/bookshop/v2/books"),
    ];
    assert_eq!(hosts, [allowed, allowed].concat(), "{received:#?}");

    // Stats per API, by the `api` label; the gateway's own for the unknown APIs.
    let stats = proxy.envoy.stats().unwrap();
    let api = |metric: &str, api: &str| stats.labelled(metric, &[("api", api)]);
    assert_eq!(api("apiguard_requests_allowed", "petstore"), Some(4.0));
    assert_eq!(api("apiguard_requests_blocked", "petstore"), Some(2.0));
    assert_eq!(api("apiguard_requests_allowed", "bookshop"), Some(2.0));
    assert_eq!(api("apiguard_requests_blocked", "bookshop"), Some(2.0));
    let rule = |api: &str, rule: &str| {
        stats.labelled("apiguard_rule_blocked", &[("api", api), ("rule", rule)])
    };
    assert_eq!(rule("petstore", "params.invalid"), Some(2.0));
    assert_eq!(rule("bookshop", "route.unknown_path"), Some(2.0));
    assert_eq!(rule("petstore", "route.unknown_path"), Some(0.0));
    let operation = |api: &str, op: &str| {
        stats.labelled(
            "apiguard_operation_allowed",
            &[("api", api), ("operation", op)],
        )
    };
    assert_eq!(operation("petstore", "listPets"), Some(4.0));
    assert_eq!(stats.wasm_counter("apiguard.requests_blocked"), Some(10.0));
    assert_eq!(
        stats.wasm_counter("apiguard.rule.route.unknown_api.blocked"),
        Some(10.0)
    );

    // Events carry their API's name and owner; the unknown APIs the gateway's.
    let events = wait_for("the three APIs' events", || {
        let events = event_lines(&proxy);
        let rule =
            |rule: &str| (events.iter()).find(|e| e["finding_info"]["analytic"]["uid"] == rule);
        let found = [
            rule("params.invalid")?.clone(),
            rule("route.unknown_path")?.clone(),
            rule("route.unknown_api")?.clone(),
        ];
        Some(found)
    });
    let owners: Vec<(&Value, &Value)> = (events.iter())
        .map(|e| (&e["unmapped"]["api"], &e["unmapped"]["owner"]["team"]))
        .collect();
    assert_eq!(
        owners,
        [
            (&json!("petstore"), &json!("pets-team")),
            (&json!("bookshop"), &json!("books-team")),
            (&json!("edge"), &json!("platform")),
        ]
    );
    assert_eq!(events[2]["http_request"]["url"]["path"], "/v1/pets");
}

/// What 50 APIs cost: one gateway of 50 copies of the petstore (each its own name and
/// authority) against the petstore alone, in a real Envoy with one worker. Prints configure
/// time and memory (`cargo test -p apiguard-test-harness --test e2e gateway_of_50 --
/// --nocapture`); asserts the gateway starts and serves its last API.
#[test]
fn gateway_of_50_apis() {
    const APIS: usize = 50;
    let petstore = bundled("petstore");
    let apis: Vec<Value> = (0..APIS)
        .map(|i| {
            let mut api = petstore.clone();
            api["name"] = json!(format!("pets-{i}"));
            api["match"] =
                json!({"authorities": [format!("pets{i}.example.com")], "base_path": "/v1"});
            api
        })
        .collect();
    let gateway = json!({"name": "edge", "apis": apis});
    let measure = |policy: Value| {
        let started = Instant::now();
        let proxy = Proxy::start_with(EnvoyOptions {
            policy: Policy::Bundle(policy),
            ready_timeout: READY,
            ..EnvoyOptions::default()
        });
        let ready = started.elapsed();
        (proxy, ready)
    };
    let (single, single_ready) = measure(petstore.clone());
    let single_figures = figures(&single.envoy, single_ready);
    drop(single);
    let (proxy, ready) = measure(gateway);
    let last = format!("pets{}.example.com", APIS - 1);
    let response = get(&proxy, HttpVersion::Http1, &last, "/v1/pets");
    assert_eq!(response.status, 200, "{response:?}");
    let response = get(
        &proxy,
        HttpVersion::Http1,
        &format!("pets{APIS}.example.com"),
        "/v1/pets",
    );
    assert_problem("past the last API", &response, 404, "route.unknown_api");
    let stats = proxy.envoy.stats().unwrap();
    let last_api = format!("pets-{}", APIS - 1);
    assert_eq!(
        stats.labelled("apiguard_requests_allowed", &[("api", &last_api)]),
        Some(1.0)
    );
    let gateway_figures = figures(&proxy.envoy, ready);
    println!("| configuration | Envoy ready, s | compile per VM, ms | VM memory after compile, KiB | VM memory serving, KiB | Envoy RSS, MiB | Envoy heap allocated, MiB | stats lines |");
    println!("|---|---|---|---|---|---|---|---|");
    println!("| petstore alone | {single_figures} |");
    println!("| gateway of {APIS} petstores | {gateway_figures} |");
}

/// One Envoy's figures, as a table row: time to ready, each VM's compile time and memory
/// (from the filter's compile report), the VM memory gauge once serving, Envoy's RSS and
/// heap, and how many stat lines `/stats/prometheus` prints.
fn figures(envoy: &Envoy, ready: Duration) -> String {
    let reports = compile_reports(&envoy.log());
    assert!(
        !reports.is_empty(),
        "no compile report in {}",
        envoy.log_tail()
    );
    let compile: Vec<String> = (reports.iter())
        .map(|r| format!("{:.1}", r.micros as f64 / 1000.0))
        .collect();
    let memory: Vec<String> = reports
        .iter()
        .map(|r| r.wasm_memory_kib.to_string())
        .collect();
    // The gauge is set on the root's tick.
    let serving = wait_for("the VM memory gauge", || {
        let stats = envoy.stats().ok()?;
        stats
            .wasm_counter("apiguard.vm.memory_kib")
            .filter(|kib| *kib > 0.0)
    });
    let page = envoy.admin_get("/stats/prometheus").unwrap();
    let stats = Stats::parse(&page);
    let heap = stats.get("envoy_server_memory_allocated{}").unwrap_or(0.0) / 1048576.0;
    let rss = std::fs::read_to_string(format!("/proc/{}/status", envoy.pid()))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .unwrap_or(0.0)
        / 1024.0;
    let lines = page.lines().filter(|l| !l.starts_with('#')).count();
    format!(
        "{:.1} | {} | {} | {serving} | {rss:.0} | {heap:.0} | {lines}",
        ready.as_secs_f64(),
        compile.join(", "),
        memory.join(", "),
    )
}
