//! Request input parsing through real Envoy (issue 14): work linear in the input with
//! caps on counts, duplicate JSON keys, case variants of declared names in strict mode,
//! `readOnly`/`writeOnly` behind compositions, and integers beyond 64 bits. Each test
//! asserts what the upstream saw, over HTTP/1.1 and h2c.

use std::time::{Duration, Instant};

use apiguard_harness::{HttpVersion, Policy, RecordedRequest, Response};
use bytes::Bytes;
use http::Request;
use serde_json::{json, Value};

use crate::fixture::{assert_problem, Proxy};

const VERSIONS: [HttpVersion; 2] = [HttpVersion::Http1, HttpVersion::H2c];

/// A generous bound: the quadratic passes took 7 to 25 seconds; a linear one takes
/// milliseconds, and a loaded test machine can add a second.
const QUICK: Duration = Duration::from_secs(2);

/// One small API touching every input: a form, a JSON body, parameters, a response.
fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "paths": {
            "/notes": {
                "get": {"operationId": "findNotes", "parameters": [
                    {"name": "q", "in": "query", "schema": {"type": "string"}},
                    {"name": "X-Request-Budget", "in": "header", "schema": {"type": "integer"}},
                    {"name": "X-Page", "in": "header", "schema": {"type": "integer", "maximum": 100}}
                ]},
                "post": {"operationId": "createNote", "requestBody": {"content": {
                    "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                    "application/json": {"schema": {"$ref": "#/components/schemas/Note"}}
                }}, "responses": {"200": {"description": "the echo", "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Echo"}}}}}}
            }
        },
        "components": {"schemas": {
            "Id": {"type": "integer", "readOnly": true},
            "Secret": {"type": "object", "writeOnly": true},
            "Note": {"type": "object", "additionalProperties": true, "properties": {
                "id": {"allOf": [{"$ref": "#/components/schemas/Id"}]},
                "role": {"enum": ["user"]},
                "text": {"type": "string"}}},
            "Echo": {"type": "object", "properties": {
                "method": {"type": "string"}, "path": {"type": "string"},
                "query": {"type": ["string", "null"]}, "body": {"type": "string"},
                "headers": {"anyOf": [{"$ref": "#/components/schemas/Secret"}]}}}
        }}
    })
}

/// The API with `settings` merged into the policy's top level.
fn start(settings: Value) -> Proxy {
    let mut policy = json!({"name": "inputs", "openapi": {"document": document()}});
    if let (Some(policy), Some(settings)) = (policy.as_object_mut(), settings.as_object()) {
        policy.extend(settings.clone());
    }
    Proxy::start(Policy::Bundle(policy))
}

fn post(proxy: &Proxy, version: HttpVersion, content_type: &str, body: String) -> Response {
    let request = Request::post("/notes")
        .header("content-type", content_type)
        .header("user-agent", "e2e")
        .body(Bytes::from(body))
        .unwrap();
    proxy.client(version).send(request).unwrap()
}

fn get(proxy: &Proxy, version: HttpVersion, target: &str, headers: &[(&str, &str)]) -> Response {
    let mut request = Request::get(target).header("user-agent", "e2e");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    proxy
        .client(version)
        .send(request.body(Bytes::new()).unwrap())
        .unwrap()
}

/// `f0=1&f1=1&…` of at least `bytes` bytes, every name new.
fn distinct_names(prefix: &str, bytes: usize) -> String {
    let mut out = String::new();
    let mut i = 0;
    while out.len() < bytes {
        out.push_str(&format!("{prefix}{i}=1&"));
        i += 1;
    }
    out.pop();
    out
}

/// Sends `heavy` on its own thread and, while it is in flight, a valid request on the
/// same worker (the fixture's Envoy has one): returns both answers and how long each took.
fn alongside(
    proxy: &Proxy,
    version: HttpVersion,
    heavy: impl FnOnce(&Proxy, HttpVersion) -> Response + Send,
) -> ((Response, Duration), (Response, Duration)) {
    std::thread::scope(|scope| {
        let started = Instant::now();
        let refused = scope.spawn(move || {
            let response = heavy(proxy, version);
            (response, started.elapsed())
        });
        std::thread::sleep(Duration::from_millis(50));
        let valid_started = Instant::now();
        let valid = get(proxy, version, "/notes?q=ok", &[]);
        let valid = (valid, valid_started.elapsed());
        (refused.join().unwrap(), valid)
    })
}

/// An 880 KB form of distinct names stalled an Envoy worker for 25 s, and valid requests
/// behind it waited 7 to 22 s. Now the form is refused at the field cap, quickly, the
/// request beside it is answered at once, and the upstream never sees the form.
#[test]
fn an_880_kb_form_of_distinct_names_is_refused_by_its_cap_without_stalling_the_worker() {
    let proxy = start(json!({"abuse": {"anomaly": {}}}));
    let form = distinct_names("f", 880_000);
    for version in VERSIONS {
        let body = form.clone();
        let ((refused, took), (valid, valid_took)) =
            alongside(&proxy, version, move |proxy, version| {
                post(proxy, version, "application/x-www-form-urlencoded", body)
            });
        let problem = assert_problem("880 KB form", &refused, 400, "limits.form_fields");
        assert!(
            problem["violations"][0]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("1000")),
            "{problem}"
        );
        assert!(took < QUICK, "{version:?}: the form took {took:?}");
        assert_eq!(valid.status, 200, "{version:?}: {valid:?}");
        assert!(
            valid_took < QUICK,
            "{version:?}: the valid request took {valid_took:?}"
        );
    }
    let received = proxy.upstream.received();
    assert_eq!(received.len(), 2, "only the valid requests: {received:#?}");
    assert!(received.iter().all(|r| r.method == "GET"), "{received:#?}");
}

/// With the caps raised so the filter reads the whole form, the anomaly pass over its
/// 80,000 names is one linear pass: a control byte in the last field is found, quickly.
#[test]
fn with_the_caps_raised_an_880_kb_form_is_read_whole_in_linear_time() {
    let proxy = start(json!({
        "limits": {"max_form_fields": 200_000},
        "abuse": {"anomaly": {}}
    }));
    let form = format!("{}&last=%01", distinct_names("f", 880_000));
    for version in VERSIONS {
        let body = form.clone();
        let ((refused, took), (valid, valid_took)) =
            alongside(&proxy, version, move |proxy, version| {
                post(proxy, version, "application/x-www-form-urlencoded", body)
            });
        assert_problem(
            "880 KB form, caps raised",
            &refused,
            400,
            "anomaly.control_char",
        );
        assert!(took < QUICK, "{version:?}: the form took {took:?}");
        assert_eq!(valid.status, 200, "{version:?}: {valid:?}");
        assert!(
            valid_took < QUICK,
            "{version:?}: the valid request took {valid_took:?}"
        );
    }
    assert!(proxy.upstream.received().iter().all(|r| r.method == "GET"));
}

/// 8,000 query names cost 120 ms even on an unknown path; now they are more than the
/// query cap, refused before routing.
#[test]
fn eight_thousand_query_names_are_refused_by_the_query_cap() {
    let proxy = start(json!({"abuse": {"anomaly": {"limits": {"max_uri_bytes": 100_000}}}}));
    let query = distinct_names("q", 50_000);
    for version in VERSIONS {
        for path in ["/notes", "/nowhere"] {
            let target = format!("{path}?{query}");
            let started = Instant::now();
            let response = get(&proxy, version, &target, &[]);
            assert_problem(path, &response, 400, "limits.query_pairs");
            assert!(started.elapsed() < QUICK, "{version:?} {path}");
        }
        let response = get(&proxy, version, "/notes?q=1&a=2", &[]);
        assert_eq!(response.status, 200, "{version:?}: {response:?}");
    }
    assert_eq!(proxy.upstream.received().len(), 2);
}

/// A 1 MB body of nested one-key objects parsed into ~95 MB of B-tree leaves, each worker's
/// VM growing by as much (its memory never shrinks). With the default caps it is refused
/// at the 50,000th object, quickly, and a valid request beside it is answered at once.
#[test]
fn a_megabyte_of_nested_objects_is_refused_by_the_container_cap() {
    let proxy = start(json!({}));
    let one = format!("{}\"x\"{}", "{\"a\":".repeat(60), "}".repeat(60));
    let nested = format!(
        "{{\"text\": \"t\", \"n\": [{}]}}",
        vec![one; 2_800].join(",")
    );
    assert!(nested.len() < 1 << 20, "within max_body_bytes");
    for version in VERSIONS {
        let body = nested.clone();
        let ((refused, took), (valid, waited)) = alongside(&proxy, version, |proxy, version| {
            post(proxy, version, "application/json", body)
        });
        assert_problem("nested", &refused, 400, "limits.json_containers");
        assert!(took < QUICK, "{version:?}: {took:?}");
        assert_eq!(valid.status, 200, "{version:?}: {valid:?}");
        assert!(waited < QUICK, "{version:?}: {waited:?}");
    }
    let received = proxy.upstream.received();
    assert_eq!(received.len(), 2, "only the valid requests");
    assert!(received.iter().all(|r| r.method == "GET"), "{received:#?}");
}

/// serde_json keeps the last of two equal keys, other parsers the first: the contract
/// refuses the object itself, with no anomaly checks configured.
#[test]
fn duplicate_json_keys_are_refused_by_the_contract() {
    let proxy = start(json!({}));
    for version in VERSIONS {
        for body in [
            r#"{"role": "user", "role": "admin"}"#,
            r#"{"text": "a", "meta": {"x": 1, "x": 2}}"#,
        ] {
            let response = post(&proxy, version, "application/json", body.to_owned());
            assert_problem(body, &response, 400, "body.duplicate_key");
        }
        let fine = post(
            &proxy,
            version,
            "application/json",
            r#"{"role": "user"}"#.to_owned(),
        );
        assert_eq!(fine.status, 200, "{version:?}: {fine:?}");
    }
    let received = proxy.upstream.received();
    assert_eq!(received.len(), 2, "{received:#?}");
    assert!(received.iter().all(|r| r.body == r#"{"role": "user"}"#));
}

/// In strict mode, `ROLE` (or `Role` next to `role`) is refused even in an object left
/// open: Go binds it to the `role` field, past the `enum`.
#[test]
fn strict_mode_refuses_case_variants_of_declared_properties() {
    let proxy = start(json!({"strict": true}));
    for version in VERSIONS {
        for body in [
            r#"{"ROLE": "admin"}"#,
            r#"{"role": "user", "Role": "admin"}"#,
            r#"{"TEXT": 7}"#,
        ] {
            let response = post(&proxy, version, "application/json", body.to_owned());
            assert_problem(body, &response, 400, "body.schema");
        }
        let open = r#"{"role": "user", "color": "red"}"#.to_owned();
        let response = post(&proxy, version, "application/json", open);
        assert_eq!(response.status, 200, "{version:?}: {response:?}");
    }
    assert_eq!(proxy.upstream.received().len(), 2);
}

/// `readOnly` reached through `allOf` + `$ref` is refused in a request; `writeOnly`
/// reached through `anyOf` + `$ref` is redacted from the response.
#[test]
fn read_only_and_write_only_behind_compositions_hold() {
    let proxy = start(json!({"responses": {"mode": "monitor", "redact": true}}));
    for version in VERSIONS {
        let response = post(
            &proxy,
            version,
            "application/json",
            r#"{"id": 7}"#.to_owned(),
        );
        let problem = assert_problem("readOnly id", &response, 400, "body.schema");
        assert_eq!(problem["violations"][0]["name"], "/id", "{problem}");
        let response = post(
            &proxy,
            version,
            "application/json",
            r#"{"text": "a"}"#.to_owned(),
        );
        assert_eq!(response.status, 200, "{version:?}: {response:?}");
        let echoed: Value = response.json().unwrap();
        assert_eq!(echoed["body"], r#"{"text": "a"}"#, "{echoed}");
        assert!(
            echoed.get("headers").is_none(),
            "writeOnly came back: {echoed}"
        );
    }
    let received: Vec<RecordedRequest> = proxy.upstream.received();
    assert_eq!(received.len(), 2, "{received:#?}");
    assert!(received.iter().all(|r| r.body == r#"{"text": "a"}"#));
}

/// `X-Request-Budget: 527212089351644756574208` was refused as `must be of type integer`:
/// JSON Schema integers are unbounded. Bounds still hold.
#[test]
fn integer_parameters_beyond_64_bits_are_integers() {
    let proxy = start(json!({}));
    let budget = "527212089351644756574208";
    for version in VERSIONS {
        let response = get(&proxy, version, "/notes", &[("x-request-budget", budget)]);
        assert_eq!(response.status, 200, "{version:?}: {response:?}");
        let response = get(&proxy, version, "/notes", &[("x-page", budget)]);
        let problem = assert_problem("x-page", &response, 400, "params.invalid");
        assert_eq!(
            problem["violations"][0]["reason"], "must be at most 100",
            "{problem}"
        );
    }
    let received = proxy.upstream.received();
    assert_eq!(received.len(), 2, "{received:#?}");
    assert!(received
        .iter()
        .all(|r| r.headers.get("x-request-budget").map(String::as_str) == Some(budget)));
}
