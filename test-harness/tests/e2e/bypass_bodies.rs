//! The body bypasses of issue 14, pinned through real Envoy over HTTP/1.1 and h2c: a body
//! that ends with trailers, redaction that fails open, an upstream that sees the head of a
//! request refused for its body, and empty bodies read as bodies.

use apiguard_harness::{
    locate, EnvoyOptions, HttpVersion, Policy, RecordedRequest, Reply, Response,
};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request};
use serde_json::{json, Value};

use crate::fixture::{assert_problem, bundled, Proxy};

const VERSIONS: [HttpVersion; 2] = [HttpVersion::Http1, HttpVersion::H2c];

/// A Pet with one property its schema does not declare.
const LEAKY_PET: &str = r#"{"id": 1, "name": "Rex", "secret": "s3cr3t"}"#;

fn petstore(http1_trailers: bool) -> Proxy {
    Proxy::start_with(EnvoyOptions {
        policy: Policy::File(locate::policy("petstore")),
        http1_trailers,
        ..EnvoyOptions::default()
    })
}

/// The petstore with redaction on (responses otherwise only monitored), a 1 KiB limit, and
/// no `default` answer for `showPetById`, so that 500 is an undeclared status.
fn redacting(http1_trailers: bool) -> Proxy {
    let mut policy = bundled("petstore");
    policy["responses"] = json!({"mode": "monitor", "redact": true});
    policy["limits"] = json!({"max_body_bytes": 1024, "max_json_depth": 64});
    let responses = "/openapi/document/paths/~1pets~1{petId}/get/responses";
    let responses = policy.pointer_mut(responses).and_then(Value::as_object_mut);
    responses.unwrap().remove("default").unwrap();
    Proxy::start_with(EnvoyOptions {
        policy: Policy::Bundle(policy),
        http1_trailers,
        ..EnvoyOptions::default()
    })
}

/// Sends `method target` with `headers` and the body in `chunks` (chunked / DATA frames),
/// ended by a trailer when `trailers` says so.
fn send(
    proxy: &Proxy,
    version: HttpVersion,
    (method, target): (&str, &str),
    headers: &[(&str, &str)],
    chunks: &[&str],
    trailers: bool,
) -> Response {
    let mut request = Request::builder().method(method).uri(target);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let chunks = chunks.iter().map(|c| Bytes::from(c.to_string())).collect();
    let trailers = trailers.then(|| {
        let mut map = HeaderMap::new();
        map.insert("x-checksum", HeaderValue::from_static("0"));
        map
    });
    let client = proxy.client(version);
    client
        .send_with_trailers(request.body(()).unwrap(), chunks, trailers)
        .unwrap()
}

/// `GET /v1/pets/1`, answered by the upstream as `reply` says.
fn get_pet(
    proxy: &Proxy,
    version: HttpVersion,
    reply: &Reply,
    headers: &[(&str, &str)],
) -> Response {
    let value = reply.header_value();
    let mut all = vec![(Reply::HEADER, value.as_str())];
    all.extend_from_slice(headers);
    send(proxy, version, ("GET", "/v1/pets/1"), &all, &[], false)
}

fn assert_request_trailers_end_a_checked_body(proxy: &Proxy) {
    let json = [("content-type", "application/json")];
    for version in VERSIONS {
        let create = ("POST", "/v1/pets");
        let response = send(proxy, version, create, &json, &[r#"{"name""#, ": 7}"], true);
        assert_problem(
            &format!("{version:?} invalid"),
            &response,
            400,
            "body.schema",
        );
        let list = ("GET", "/v1/pets");
        let response = send(proxy, version, list, &[], &["{}"], true);
        assert_problem(
            &format!("{version:?} GET"),
            &response,
            400,
            "body.undeclared",
        );
        let valid = [r#"{"name": "#, r#""Rex"}"#];
        let response = send(proxy, version, create, &json, &valid, true);
        assert_eq!(response.status, 200, "{version:?} valid: {response:?}");
        let echoed: RecordedRequest = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(echoed.body, valid.concat(), "{version:?}");
    }
    assert_eq!(
        proxy.upstream.heads(),
        ["POST /v1/pets", "POST /v1/pets"],
        "only the valid requests reached the upstream"
    );
}

#[test]
fn trailers_skip_every_body_check_regression_as_shipped() {
    // Envoy as shipped drops HTTP/1.1 trailers; HTTP/2 ones always arrive.
    assert_request_trailers_end_a_checked_body(&petstore(false));
}

#[test]
fn trailers_skip_every_body_check_regression_with_http1_trailers() {
    assert_request_trailers_end_a_checked_body(&petstore(true));
}

#[test]
fn trailers_skip_response_redaction_regression() {
    let proxy = redacting(true);
    let reply = Reply {
        body: Some(LEAKY_PET.to_owned()),
        trailers: [("x-checksum".to_owned(), "0".to_owned())].into(),
        ..Reply::default()
    };
    for version in VERSIONS {
        // HTTP/1.1 upstreams send trailers only to a request that accepts them.
        let response = get_pet(&proxy, version, &reply, &[("te", "trailers")]);
        assert_eq!(response.status, 200, "{version:?}: {response:?}");
        assert_eq!(
            response.json().unwrap(),
            json!({"id": 1, "name": "Rex"}),
            "{version:?}"
        );
        if version == HttpVersion::H2c {
            assert!(
                response.trailers.contains_key("x-checksum"),
                "the response ended with its trailers: {response:?}"
            );
        }
    }
}

#[test]
fn redaction_fails_open_regression() {
    let proxy = redacting(false);
    let reply = |status: u16, headers: &[(&str, &str)], body: &str, chunked: bool| Reply {
        status: Some(status),
        headers: (headers.iter())
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        body: Some(body.to_owned()),
        chunked,
        ..Reply::default()
    };
    let large = format!(
        r#"{{"id": 1, "name": "Rex", "secret": "s3cr3t", "tag": "{}"}}"#,
        "a".repeat(2000)
    );
    let refused = [
        (reply(500, &[], LEAKY_PET, false), "response.status"),
        (
            reply(200, &[("content-type", "text/html")], LEAKY_PET, false),
            "response.media_type",
        ),
        (
            reply(200, &[("content-encoding", "gzip")], LEAKY_PET, false),
            "response.encoding",
        ),
        (reply(200, &[], &large, false), "response.too_large"),
    ];
    let deep = format!(
        r#"{{"id": 1, "name": "Rex", "secret": "s3cr3t", "x": {}{}}}"#,
        "[".repeat(80),
        "]".repeat(80)
    );
    let withheld = [
        reply(200, &[], &large, true),
        reply(200, &[], &format!("\u{feff}{LEAKY_PET}"), false),
        reply(
            200,
            &[],
            r#"{"id": 1, "name": "Rex", "secret": "s3cr3t", "n": 1e400}"#,
            false,
        ),
        reply(200, &[], &deep, false),
    ];
    for version in VERSIONS {
        for (reply, rule) in &refused {
            let response = get_pet(&proxy, version, reply, &[]);
            assert_problem(&format!("{version:?} {reply:?}"), &response, 502, rule);
            assert!(!response.text().contains("s3cr3t"), "{response:?}");
        }
        for reply in &withheld {
            let response = get_pet(&proxy, version, reply, &[]);
            assert_eq!(
                (response.status.as_u16(), response.text()),
                (200, String::new()),
                "{version:?} {reply:?}: the body is withheld"
            );
        }
        // The upstream would compress for a client that accepts gzip; apiguard asks it not
        // to, so the answer can be redacted.
        let compressing = Reply {
            body: Some(LEAKY_PET.to_owned()),
            if_gzip_accepted: [("content-encoding".to_owned(), "gzip".to_owned())].into(),
            ..Reply::default()
        };
        let response = get_pet(
            &proxy,
            version,
            &compressing,
            &[("accept-encoding", "gzip")],
        );
        assert_eq!(response.status, 200, "{version:?}: {response:?}");
        assert_eq!(response.json().unwrap(), json!({"id": 1, "name": "Rex"}));
    }
    let asked: Vec<Option<String>> = (proxy.upstream.received().iter())
        .filter(|request| request.headers.contains_key("x-echo-reply"))
        .map(|request| request.headers.get("accept-encoding").cloned())
        .collect();
    assert!(
        asked.iter().all(|a| a.as_deref() == Some("identity")),
        "{asked:?}"
    );
}

#[test]
fn invalid_bodies_still_reach_the_upstreams_head_regression() {
    let proxy = petstore(false);
    // An upstream that answers as soon as the head arrives, before reading the body.
    let early = Reply {
        early: true,
        body: Some(r#"{"id": 1, "name": "Rex"}"#.to_owned()),
        ..Reply::default()
    };
    let early = early.header_value();
    let headers = [
        ("content-type", "application/json"),
        (Reply::HEADER, early.as_str()),
    ];
    let create = ("POST", "/v1/pets");
    for version in VERSIONS {
        let response = send(
            &proxy,
            version,
            create,
            &headers,
            &[r#"{"name""#, ": 7}"],
            false,
        );
        assert_problem(&format!("{version:?}"), &response, 400, "body.schema");
        let response = send(
            &proxy,
            version,
            ("GET", "/v1/pets"),
            &headers,
            &["{}"],
            false,
        );
        assert_problem(&format!("{version:?}"), &response, 400, "body.undeclared");
    }
    let heads = proxy.upstream.heads();
    assert!(heads.is_empty(), "the upstream saw {heads:?}");
    for version in VERSIONS {
        let response = send(
            &proxy,
            version,
            create,
            &headers,
            &[r#"{"name": "Rex"}"#],
            false,
        );
        assert_eq!(response.status, 200, "{version:?}: {response:?}");
    }
    assert_eq!(proxy.upstream.heads().len(), 2);
}

/// With the anomaly checks on: an empty body on a GET is no body, so not
/// `anomaly.body_on_get` either (it was, from the head alone, before its first byte).
#[test]
fn empty_bodies_are_refused_as_bodies_regression() {
    let mut policy = bundled("petstore");
    policy["abuse"] = json!({"anomaly": {}});
    let proxy = Proxy::start_with(EnvoyOptions {
        policy: Policy::Bundle(policy),
        ..EnvoyOptions::default()
    });
    let json = [("content-type", "application/json")];
    let body_on_get = || {
        ["blocked", "monitored"]
            .map(|outcome| proxy.counter(&format!("apiguard.rule.anomaly.body_on_get.{outcome}")))
            .iter()
            .sum::<f64>()
    };
    for version in VERSIONS {
        // HTTP/1.1: `Transfer-Encoding: chunked` and a lone last chunk; HTTP/2: HEADERS,
        // then an empty DATA frame with END_STREAM.
        for headers in [&[][..], &json[..]] {
            let response = send(&proxy, version, ("GET", "/v1/pets"), headers, &[""], false);
            assert_eq!(
                response.status, 200,
                "{version:?} {headers:?}: {response:?}"
            );
        }
        let response = send(&proxy, version, ("POST", "/v1/pets"), &json, &[""], false);
        assert_problem(&format!("{version:?}"), &response, 400, "body.missing");
        let response = send(&proxy, version, ("POST", "/v1/pets"), &[], &[""], true);
        assert_problem(
            &format!("{version:?} trailers"),
            &response,
            400,
            "body.missing",
        );
    }
    assert_eq!(body_on_get(), 0.0);
    let received: Vec<Value> = (proxy.upstream.received().iter())
        .map(|r| json!([r.method, r.path, r.body]))
        .collect();
    assert_eq!(received, vec![json!(["GET", "/v1/pets", ""]); 4]);
    // A body that does come is the finding, seen at its first byte.
    for (i, version) in VERSIONS.into_iter().enumerate() {
        let response = send(&proxy, version, ("GET", "/v1/pets"), &[], &["x"], false);
        assert_problem(&format!("{version:?}"), &response, 400, "body.undeclared");
        assert_eq!(body_on_get(), (i + 1) as f64, "{version:?}");
    }
    assert_eq!(proxy.upstream.received().len(), 4);
}
