//! Side channels around the checks, through real Envoy over HTTP/1.1 and h2c, each
//! asserting what the upstream saw: method and URL override headers and `_method` never
//! reach it; a token read from the query or a cookie is removed while the other
//! parameters and cookies arrive byte for byte; tokens without `exp` are refused; strict
//! mode refuses undeclared cookies and raw `;` in query values; the injection heuristics
//! read every header, cookie and multipart field; multipart `name*` is refused.

use apiguard_harness::render::Downstream;
use apiguard_harness::{EnvoyOptions, HttpVersion, Policy, RecordedRequest, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::Request;
use serde_json::{json, Value};

use crate::fixture::{assert_problem, bundled, Proxy};
use crate::tokens::{bob, hs256};

const VERSIONS: [HttpVersion; 2] = [HttpVersion::Http1, HttpVersion::H2c];
const USER_AGENT: (&str, &str) = ("user-agent", "apiguard-e2e/1");
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-channels-secret";

/// The petstore policy with `edit` applied to its bundle.
fn petstore(edit: impl FnOnce(&mut Value)) -> Proxy {
    let mut bundle = bundled("petstore");
    edit(&mut bundle);
    Proxy::start(Policy::Bundle(bundle))
}

fn send(
    proxy: &Proxy,
    version: HttpVersion,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &str)>,
) -> Response {
    let mut request = Request::builder().method(method).uri(target);
    for (name, value) in std::iter::once(&USER_AGENT).chain(headers) {
        request = request.header(*name, *value);
    }
    if let Some((content_type, _)) = body {
        request = request.header("content-type", content_type);
    }
    let body = Bytes::from(body.map_or(String::new(), |(_, b)| b.to_owned()));
    proxy
        .client(version)
        .send(request.body(body).unwrap())
        .unwrap()
}

/// What the upstream received, from its echo of a request that passed.
fn echoed(what: &str, response: &Response) -> RecordedRequest {
    assert_eq!(response.status, 200, "{what}: {response:?}");
    serde_json::from_slice(&response.body).unwrap()
}

/// Regression: `X-HTTP-Method-Override: DELETE` on a `GET` (and the other override
/// channels) went upstream, where a framework that honours it runs the `DELETE`.
#[test]
fn override_channels_never_reach_the_upstream() {
    let proxy = petstore(|_| {});
    let headers: [(&str, &str); 5] = [
        ("x-http-method-override", "DELETE"),
        ("x-http-method", "DELETE"),
        ("x-method-override", "DELETE"),
        ("x-original-url", "/v1/pets/1"),
        ("x-rewrite-url", "/v1/pets/1"),
    ];
    for version in VERSIONS {
        for header in headers {
            let response = send(&proxy, version, "GET", "/v1/pets", &[header], None);
            let problem = assert_problem(header.0, &response, 400, "request.override");
            assert_eq!(problem["violations"][0]["in"], "header", "{problem}");
        }
        for target in [
            "/v1/pets?_method=DELETE",
            "/v1/pets?%5FMETHOD=DELETE",
            "/v1/pets?limit=1;_method=DELETE",
        ] {
            let response = send(&proxy, version, "GET", target, &[], None);
            assert_problem(target, &response, 400, "request.override");
        }
    }
    proxy.assert_upstream_saw_nothing();
    let seen = echoed(
        "no override",
        &send(&proxy, HttpVersion::Http1, "GET", "/v1/pets", &[], None),
    );
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("GET", "/v1/pets")
    );
}

/// The underscore spelling of an override header: Envoy refuses it as shipped
/// (`headers_with_underscores_action: REJECT_REQUEST`, tested in `underscores`), and the
/// filter refuses it under a config that lets underscores through.
#[test]
fn override_headers_spelled_with_underscores_never_reach_the_upstream() {
    let header = ("x_http_method_override", "DELETE");
    let allowing = Proxy::start_with(EnvoyOptions {
        policy: Policy::Bundle(bundled("petstore")),
        downstream: Downstream {
            allow_underscores: true,
            ..Downstream::default()
        },
        ..EnvoyOptions::default()
    });
    for version in VERSIONS {
        let response = send(&allowing, version, "GET", "/v1/pets", &[header], None);
        let problem = assert_problem(header.0, &response, 400, "request.override");
        assert_eq!(problem["violations"][0]["in"], "header", "{problem}");
    }
    allowing.assert_upstream_saw_nothing();
}

/// Every operation behind an HS256 provider that reads tokens from `?access_token=` and
/// the `session` cookie, with `extra` merged into the provider.
fn with_tokens(extra: Value) -> Proxy {
    petstore(|bundle| {
        let document = &mut bundle["openapi"]["document"];
        document["security"] = json!([{"local": []}]);
        document["components"]["securitySchemes"] =
            json!({"local": {"type": "http", "scheme": "bearer"}});
        let jwks = json!({"keys": [{"kty": "oct", "k": URL_SAFE_NO_PAD.encode(SECRET)}]});
        let mut provider = json!({
            "local_jwks": {"inline_string": jwks.to_string()},
            "from_params": ["access_token"],
            "from_cookies": ["session"]
        });
        if let (Some(provider), Some(extra)) = (provider.as_object_mut(), extra.as_object()) {
            provider.extend(extra.clone());
        }
        bundle["security"] = json!({"providers": {"local": provider}});
    })
}

/// Regression: with `forward: false`, a token read from a query parameter or a cookie
/// still reached the upstream.
#[test]
fn tokens_from_the_query_or_a_cookie_are_removed_and_the_rest_kept() {
    let proxy = with_tokens(json!({}));
    let token = hs256(SECRET, &bob());
    for version in VERSIONS {
        let target = format!("/v1/pets?limit=5&access_token={token}&cursor=a%2Fb+c%3B");
        let seen = echoed("query", &send(&proxy, version, "GET", &target, &[], None));
        assert_eq!(seen.path, "/v1/pets");
        assert_eq!(
            seen.query.as_deref(),
            Some("limit=5&cursor=a%2Fb+c%3B"),
            "{version:?}"
        );

        let alone = format!("/v1/pets?access_token={token}");
        let seen = echoed(
            "query alone",
            &send(&proxy, version, "GET", &alone, &[], None),
        );
        assert_eq!(seen.query, None, "{version:?}");

        let cookie = format!("theme=dark; session={token}; lang=\"en-GB\"");
        let response = send(
            &proxy,
            version,
            "GET",
            "/v1/pets",
            &[("cookie", &cookie)],
            None,
        );
        let seen = echoed("cookie", &response);
        let cookies = seen.headers.get("cookie").map(String::as_str);
        assert_eq!(cookies, Some("theme=dark; lang=\"en-GB\""), "{version:?}");

        let only = format!("session={token}");
        let response = send(
            &proxy,
            version,
            "GET",
            "/v1/pets",
            &[("cookie", &only)],
            None,
        );
        assert_eq!(
            echoed("cookie alone", &response).headers.get("cookie"),
            None
        );
    }
    let received = proxy.upstream.received();
    assert_eq!(received.len(), 8);
    let leaked = received.iter().any(|r| format!("{r:?}").contains(&token));
    assert!(!leaked, "the token reached the upstream: {received:#?}");

    let forwarded = with_tokens(json!({"forward": true}));
    let target = format!("/v1/pets?access_token={token}");
    let seen = echoed(
        "forward",
        &send(&forwarded, HttpVersion::Http1, "GET", &target, &[], None),
    );
    assert_eq!(
        seen.query,
        Some(format!("access_token={token}")),
        "`forward: true`"
    );
}

/// Regression: a token without `exp`, valid forever, was accepted.
#[test]
fn a_token_without_exp_is_refused_with_its_rule() {
    let proxy = with_tokens(json!({}));
    let forever = hs256(SECRET, &json!({"sub": "bob"}));
    for version in VERSIONS {
        let target = format!("/v1/pets?access_token={forever}");
        let response = send(&proxy, version, "GET", &target, &[], None);
        assert_problem("no exp", &response, 401, "auth.invalid");
    }
    proxy.assert_upstream_saw_nothing();
    let lenient = with_tokens(json!({"require_expiration": false}));
    let target = format!("/v1/pets?access_token={forever}");
    echoed(
        "require_expiration: false",
        &send(&lenient, HttpVersion::Http1, "GET", &target, &[], None),
    );
}

/// Regression: strict mode let undeclared cookies (and case twins of declared ones)
/// through, and a raw `;` in a query value, which parsers that split on `;` read as
/// another parameter.
#[test]
fn strict_mode_refuses_undeclared_cookies_and_raw_semicolons() {
    let proxy = petstore(|bundle| bundle["strict"] = json!(true));
    for version in VERSIONS {
        let response = send(
            &proxy,
            version,
            "GET",
            "/v1/pets",
            &[("cookie", "Tracking=1")],
            None,
        );
        let problem = assert_problem("cookie", &response, 400, "params.undeclared");
        assert_eq!(problem["violations"][0]["in"], "cookie", "{problem}");
        let response = send(
            &proxy,
            version,
            "GET",
            "/v1/pets?cursor=a;limit=500",
            &[],
            None,
        );
        assert_problem("raw ;", &response, 400, "params.invalid");
    }
    proxy.assert_upstream_saw_nothing();
    let target = "/v1/pets?cursor=a%3Blimit%3D500";
    for version in VERSIONS {
        let seen = echoed(
            "encoded ;",
            &send(&proxy, version, "GET", target, &[], None),
        );
        assert_eq!(seen.query.as_deref(), Some("cursor=a%3Blimit%3D500"));
    }
}

/// Regression: the injection heuristics skipped most headers, every cookie and multipart
/// fields; and a multipart part could carry `name*` beside `name`.
#[test]
fn injection_in_headers_cookies_and_multipart_fields_is_refused() {
    let proxy = petstore(|bundle| {
        bundle["abuse"] = json!({"anomaly": {}});
        let content =
            &mut bundle["openapi"]["document"]["paths"]["/pets"]["post"]["requestBody"]["content"];
        content["multipart/form-data"] = json!({"schema": {"$ref": "#/components/schemas/NewPet"}});
    });
    let multipart = |disposition: &str, value: &str| {
        format!("--b\r\nContent-Disposition: form-data; {disposition}\r\n\r\n{value}\r\n--b--\r\n")
    };
    let form = "multipart/form-data; boundary=b";
    for version in VERSIONS {
        let get =
            |headers: &[(&str, &str)]| send(&proxy, version, "GET", "/v1/pets", headers, None);
        let response = get(&[("x-note", "1' OR '1'='1")]);
        assert_problem("header", &response, 400, "anomaly.sql_injection");
        let response = get(&[("cookie", "a=1; sid=<script>alert(1)</script>")]);
        let problem = assert_problem("cookie", &response, 400, "anomaly.xss");
        assert_eq!(problem["violations"][0]["in"], "cookie", "{problem}");
        let body = multipart("name=\"name\"", "{{7*7}}");
        let response = send(
            &proxy,
            version,
            "POST",
            "/v1/pets",
            &[],
            Some((form, &body)),
        );
        assert_problem(
            "multipart field",
            &response,
            400,
            "anomaly.template_injection",
        );
        let body = multipart("name=\"name\"; name*=utf-8''tag", "Rex");
        let response = send(
            &proxy,
            version,
            "POST",
            "/v1/pets",
            &[],
            Some((form, &body)),
        );
        assert_problem("name*", &response, 400, "body.malformed");
    }
    proxy.assert_upstream_saw_nothing();
    let body = multipart("name=\"name\"", "O'Brien");
    let response = send(
        &proxy,
        HttpVersion::H2c,
        "POST",
        "/v1/pets",
        &[("x-note", "select one")],
        Some((form, &body)),
    );
    assert_eq!(echoed("benign", &response).body, body);
}
