//! The request and response contract through real Envoy: bodies that arrive in pieces
//! (HTTP/1.1 chunks, HTTP/2 DATA frames), size limits, media types, parameters, strict
//! mode, per-operation modes, and what the upstream's answers are checked against.

use apiguard_harness::{locate, HttpVersion, Policy, RecordedRequest, Response};
use bytes::Bytes;
use http::Request;
use serde_json::{json, Value};

use crate::fixture::{assert_problem, bundled, Proxy};

fn petstore() -> Proxy {
    Proxy::start(Policy::File(locate::policy("petstore")))
}

/// The petstore policy with `settings` merged into its top level.
fn petstore_with(settings: Value) -> Proxy {
    let mut bundle = bundled("petstore");
    if let (Some(policy), Some(settings)) = (bundle.as_object_mut(), settings.as_object()) {
        policy.extend(settings.clone());
    }
    Proxy::start(Policy::Bundle(bundle))
}

fn post_pets(proxy: &Proxy, version: HttpVersion, chunks: &[&str]) -> Response {
    let head = Request::post("/v1/pets")
        .header("content-type", "application/json")
        .body(())
        .unwrap();
    let chunks = chunks.iter().map(|c| Bytes::from(c.to_string())).collect();
    proxy.client(version).send_chunked(head, chunks).unwrap()
}

const VERSIONS: [HttpVersion; 2] = [HttpVersion::Http1, HttpVersion::H2c];

#[test]
fn a_valid_body_in_pieces_reaches_the_upstream_byte_for_byte() {
    let proxy = petstore();
    let pieces = [r#"{"name":"#, r#""Rex","tag""#, r#":"dog"}"#];
    for version in VERSIONS {
        let response = post_pets(&proxy, version, &pieces);
        assert_eq!(response.status, 200, "{version:?}: {response:?}");
        let echoed: RecordedRequest = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(echoed.body, pieces.concat(), "{version:?}");
    }
    assert_eq!(proxy.upstream.received().len(), 2);
}

#[test]
fn an_invalid_body_in_pieces_is_refused_and_never_delivered() {
    let proxy = petstore();
    for version in VERSIONS {
        let response = post_pets(&proxy, version, &[r#"{"name""#, ": 7}"]);
        let problem = assert_problem("POST /v1/pets", &response, 400, "body.schema");
        let violation = &problem["violations"][0];
        assert_eq!(violation["in"], "body", "{problem}");
        assert_eq!(violation["name"], "/name", "{problem}");
        assert_eq!(problem["operation_id"], "createPet", "{problem}");
    }
    proxy.assert_upstream_saw_nothing();
}

#[test]
fn an_oversized_body_is_refused_as_it_streams_or_by_its_length() {
    let proxy = petstore_with(json!({"limits": {"max_body_bytes": 1024, "max_json_depth": 64}}));
    let kib = format!("[{}1]", "1,".repeat(510));
    let mut pieces: Vec<&str> = vec![r#"{"name": "Rex", "x": ["#];
    pieces.extend(std::iter::repeat_n(kib.as_str(), 64).flat_map(|p| [p, ","]));
    pieces.push("0]}");
    for version in VERSIONS {
        let response = post_pets(&proxy, version, &pieces);
        assert_problem("64 KiB in pieces", &response, 413, "body.too_large");
    }
    let body = format!(r#"{{"name": "{}"}}"#, "x".repeat(2000));
    let request = Request::post("/v1/pets")
        .header("content-type", "application/json")
        .body(Bytes::from(body))
        .unwrap();
    let response = proxy.client(HttpVersion::Http1).send(request).unwrap();
    assert_problem(
        "Content-Length over the limit",
        &response,
        413,
        "body.too_large",
    );
    proxy.assert_upstream_saw_nothing();
}

#[test]
fn head_checks_answer_before_any_body_is_read() {
    let proxy = petstore();
    let client = proxy.client(HttpVersion::Http1);
    let send = |method: &str, target: &str, content_type: Option<&str>, body: &str| {
        let mut request = Request::builder().method(method).uri(target);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        client
            .send(request.body(Bytes::from(body.to_owned())).unwrap())
            .unwrap()
    };
    let json = Some("application/json");
    let cases = [
        (
            send("POST", "/v1/pets", Some("text/plain"), "Rex"),
            415,
            "body.media_type",
        ),
        (send("POST", "/v1/pets", json, ""), 400, "body.missing"),
        (send("GET", "/v1/pets", json, "{}"), 400, "body.undeclared"),
        (
            send("POST", "/v1/pets", json, "{\"name\": "),
            400,
            "body.malformed",
        ),
        (
            send("GET", "/v1/pets?limit=500", None, ""),
            400,
            "params.invalid",
        ),
        (send("GET", "/v1/pets/rex", None, ""), 400, "params.invalid"),
    ];
    for (response, status, rule) in cases {
        assert_problem(rule, &response, status, rule);
    }
    let problem = send("GET", "/v1/pets?limit=500", None, "").json().unwrap();
    assert_eq!(problem["violations"][0]["in"], "query", "{problem}");
    assert_eq!(problem["violations"][0]["name"], "limit", "{problem}");
    assert_eq!(
        problem["violations"][0]["reason"], "must be at most 100",
        "{problem}"
    );
    proxy.assert_upstream_saw_nothing();
}

#[test]
fn undeclared_query_parameters_are_recorded_or_refused_when_strict() {
    let lenient = petstore();
    assert_eq!(lenient.get("/v1/pets?debug=1").status, 200);
    assert_eq!(
        lenient.counter("apiguard.rule.params.undeclared.monitored"),
        1.0
    );
    assert_eq!(lenient.counter("apiguard.requests_monitored"), 1.0);

    let strict = petstore_with(json!({"strict": true}));
    let response = strict.get("/v1/pets?debug=1");
    assert_problem("strict", &response, 400, "params.undeclared");
    assert_eq!(
        strict.counter("apiguard.rule.params.undeclared.blocked"),
        1.0
    );
    strict.assert_upstream_saw_nothing();
}

#[test]
fn a_monitored_operation_lets_an_invalid_body_through_and_counts_it() {
    let proxy = petstore_with(json!({"operations": {"createPet": {"mode": "monitor"}}}));
    let response = post_pets(&proxy, HttpVersion::Http1, &[r#"{"name": 7}"#]);
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(proxy.counter("apiguard.rule.body.schema.monitored"), 1.0);
    assert_eq!(proxy.counter("apiguard.requests_monitored"), 1.0);
    assert_eq!(proxy.upstream.received().len(), 1);
}

#[test]
fn problems_never_echo_attacker_input() {
    let proxy = petstore_with(json!({"strict": true}));
    let script = "<script>alert(1)</script>";
    let body = json!({"name": "Rex", script: script}).to_string();
    let responses = [
        post_pets(&proxy, HttpVersion::Http1, &[&body]),
        proxy.get("/v1/pets?limit=%3Cscript%3Ealert(1)%3C/script%3E"),
        proxy.get("/v1/pets?%3Cscript%3E=1"),
    ];
    for response in responses {
        assert_eq!(response.status, 400, "{response:?}");
        let text = response.text();
        assert!(
            !text.contains("<script") && !text.contains("alert(1)"),
            "{text}"
        );
    }
}

#[test]
fn response_violations_are_recorded_and_the_response_delivered() {
    // The echo upstream answers with its own JSON, which is no Pet.
    let proxy = petstore();
    let response = proxy.get("/v1/pets/1");
    assert_eq!(response.status, 200);
    let echoed: RecordedRequest = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(echoed.path, "/v1/pets/1");
    assert_eq!(
        proxy.counter("apiguard.rule.response.schema.monitored"),
        1.0
    );
    assert_eq!(proxy.counter("apiguard.requests_allowed"), 1.0);
}

#[test]
fn redaction_removes_what_the_response_schema_does_not_declare() {
    let proxy = petstore_with(json!({"responses": {"mode": "monitor", "redact": true}}));
    let response = proxy.get("/v1/pets/1");
    assert_eq!(response.status, 200);
    // Pet declares id, name, tag and birthDate; the echo's five members are all undeclared.
    assert_eq!(response.json().unwrap(), json!({}), "{response:?}");
    assert_eq!(proxy.counter("apiguard.response_properties_redacted"), 5.0);
}

/// A `format: uri` property a client sends, which the upstream may fetch: pointing inside
/// the network, in any spelling, it is refused with `request.ssrf` before the upstream sees
/// it, over HTTP/1.1 and h2c; a public URL passes.
#[test]
fn urls_pointing_inside_the_network_never_reach_the_upstream() {
    let mut bundle = bundled("petstore");
    bundle["openapi"]["document"]["components"]["schemas"]["NewPet"]["properties"]["website"] =
        json!({"type": "string", "format": "uri"});
    let proxy = Proxy::start(Policy::Bundle(bundle));
    let pet = |website: &str| json!({"name": "Rex", "website": website}).to_string();
    for version in VERSIONS {
        for internal in [
            "http://169.254.169.254/latest/meta-data/",
            "http://0x7f.1:8080/admin",
            "http://[::ffff:10.0.0.1]/",
            "gopher://internal.example:70/_x",
        ] {
            let response = post_pets(&proxy, version, &[&pet(internal)]);
            assert_problem(internal, &response, 400, "request.ssrf");
        }
        let public = pet("https://pets.example.com/rex");
        let response = post_pets(&proxy, version, &[&public]);
        assert_eq!(response.status, 200, "{version:?}: {response:?}");
    }
    let received = proxy.upstream.received();
    assert_eq!(received.len(), 2, "only the public URLs: {received:?}");
    assert!(received.iter().all(|r| r.body.contains("pets.example.com")));
    assert_eq!(proxy.counter("apiguard.rule.request.ssrf.blocked"), 8.0);
}
