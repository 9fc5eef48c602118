//! Every anomaly check through the filter's pipeline, with an attack and a benign
//! look-alike each.

use std::rc::Rc;

use serde_json::json;

use crate::events::Finding;
use crate::policy::Policy;
use crate::request::RequestHead;
use crate::testkit;
use crate::verdict::{Action, RuleId};

fn policy(mode: &str, anomaly: serde_json::Value) -> Rc<Policy> {
    policy_with(mode, anomaly, json!({}))
}

/// A policy with its `limits` section too.
fn policy_with(mode: &str, anomaly: serde_json::Value, limits: serde_json::Value) -> Rc<Policy> {
    let document = json!({
        "openapi": "3.1.0",
        "paths": {
            "/users": {
                "get": {"operationId": "findUsers", "parameters": [
                    {"name": "name", "in": "query", "schema": {"type": "string"}},
                    {"name": "tag", "in": "query", "schema": {"type": "array", "items": {"type": "string"}}}
                ]},
                "post": {"operationId": "createUser", "requestBody": {"content": {
                    "application/json": {"schema": {"type": "object"}},
                    "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                    "multipart/form-data": {"schema": {"type": "object"}}
                }}}
            },
            "/users/{name}": {"get": {"operationId": "getUser", "parameters": [
                {"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}]}}
        }
    });
    let sections = json!({"mode": mode, "abuse": {"anomaly": anomaly}, "limits": limits});
    Rc::new(testkit::policy("users", document, sections))
}

const UA: (&str, &str) = ("user-agent", "curl/8.5.0");

/// What the filter's pipeline did with a request: its final action, and every finding
/// its events reported.
#[derive(Debug)]
struct Seen {
    action: Action,
    /// The deciding rule.
    rule: Option<RuleId>,
    violations: Vec<Finding>,
}

/// Runs a request through the filter's pipeline ([`Exchange`]), head then body.
fn run(
    p: &Rc<Policy>,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &str)>,
) -> Seen {
    let mut all: Vec<(&str, &str)> = vec![
        (":method", method),
        (":path", target),
        (":authority", "api.example"),
        UA,
    ];
    all.extend_from_slice(headers);
    if let Some((content_type, _)) = body {
        all.push(("content-type", content_type));
    }
    let mut exchange = testkit::exchange(p);
    exchange.request(
        &testkit::input(),
        &all,
        body.map(|(_, bytes)| bytes.as_bytes()),
    );
    let outputs = exchange.take_outputs();
    let state = outputs.filter_state;
    Seen {
        action: state.as_ref().map_or(Action::Allow, |state| state.action),
        rule: state.and_then(|state| state.rule),
        violations: (outputs.events.into_iter())
            .flat_map(|event| event.violations)
            .collect(),
    }
}

fn anomalies(seen: &Seen) -> Vec<&'static str> {
    let rules = (seen.violations.iter())
        .filter_map(|v| RuleId::ALL.iter().find(|rule| rule.as_str() == v.rule));
    anomaly_rules(rules.copied())
}

fn anomaly_rules(rules: impl Iterator<Item = RuleId>) -> Vec<&'static str> {
    let mut rules: Vec<_> = rules
        .map(RuleId::as_str)
        .filter(|r| r.starts_with("anomaly."))
        .collect();
    rules.dedup();
    rules
}

fn get(p: &Rc<Policy>, target: &str) -> Vec<&'static str> {
    anomalies(&run(p, "GET", target, &[], None))
}

#[test]
fn injection_in_query_values_and_path_segments() {
    let p = policy("enforce", json!({}));
    let cases = [
        (
            "/users?name=%27%20OR%20%271%27%3D%271",
            "anomaly.sql_injection",
        ),
        (
            "/users?name=1+UNION+SELECT+password+FROM+users",
            "anomaly.sql_injection",
        ),
        (
            "/users?name=%3Cscript%3Ealert(1)%3C/script%3E",
            "anomaly.xss",
        ),
        (
            "/users?name=x%3B%20cat%20/etc/passwd",
            "anomaly.command_injection",
        ),
        ("/users?name[$ne]=admin", "anomaly.nosql_injection"),
        ("/users?name=%7B%7B7*7%7D%7D", "anomaly.template_injection"),
        (
            "/users?name=*)(uid%3D*))(%7C(uid%3D*",
            "anomaly.ldap_injection",
        ),
        (
            "/users?name=..%2F..%2Fetc%2Fpasswd",
            "anomaly.path_traversal",
        ),
        ("/users/%27%20or%201%3D1--", "anomaly.sql_injection"),
    ];
    for (target, rule) in cases {
        let verdict = run(&p, "GET", target, &[], None);
        assert!(anomalies(&verdict).contains(&rule), "{target}: {verdict:?}");
        assert_eq!(verdict.action, Action::Block, "{target}: critical blocks");
    }
    for benign in [
        "/users?name=O%27Brien",
        "/users?name=Please+select+one+from+the+list",
        "/users?name=Z%C3%BCrich+%F0%9F%98%80",
        "/users?name=Tom+%26+Jerry",
        "/users/D%27Angelo",
        "/users?name=a+%3C+b",
    ] {
        assert_eq!(get(&p, benign), Vec::<&str>::new(), "{benign}");
    }
}

#[test]
fn json_bodies_duplicate_keys_bombs_and_free_text() {
    let p = policy(
        "enforce",
        json!({"free_text": ["/bio", "/posts/*/text"], "limits": {"max_width": 4, "max_string_bytes": 64}}),
    );
    let post = |body: &str| {
        anomalies(&run(
            &p,
            "POST",
            "/users",
            &[],
            Some(("application/json", body)),
        ))
    };
    assert_eq!(
        post(r#"{"role": "user", "role": "admin"}"#),
        ["anomaly.json_duplicate_key"]
    );
    assert_eq!(post(r#"{"tags": [1, 2, 3, 4, 5]}"#), ["anomaly.json_width"]);
    assert_eq!(
        post(&format!(r#"{{"name": "{}"}}"#, "a".repeat(65))),
        ["anomaly.json_string_length"]
    );
    assert_eq!(
        post(&format!(r#"{{"n": {}}}"#, "9".repeat(50))),
        ["anomaly.json_number_size"]
    );
    assert_eq!(
        post(r#"{"user": {"$ne": null}}"#),
        ["anomaly.nosql_injection"]
    );
    assert_eq!(
        post(r#"{"name": "<script>alert(1)</script>"}"#),
        ["anomaly.xss"]
    );
    // Free text: the policy says these fields are prose, so `<script>` is talk about it.
    assert!(post(r#"{"bio": "I teach the <script> tag and SELECT * FROM t"}"#).is_empty());
    assert!(post(r#"{"posts": [{"text": "<script>alert(1)</script>"}]}"#).is_empty());
    assert!(
        post(r#"{"name": "O'Brien", "note": "select one from the list", "city": "Zürich"}"#)
            .is_empty()
    );
    assert_eq!(post("name=x"), ["anomaly.content_type"]);
}

#[test]
fn form_bodies_are_read_like_queries() {
    let p = policy("enforce", json!({}));
    let post = |body: &str| {
        anomalies(&run(
            &p,
            "POST",
            "/users",
            &[],
            Some(("application/x-www-form-urlencoded", body)),
        ))
    };
    assert_eq!(
        post("name=%27+OR+%271%27%3D%271"),
        ["anomaly.sql_injection"]
    );
    assert_eq!(post(r#"{"name": "x"}"#), ["anomaly.content_type"]);
    assert!(post("name=O%27Brien&city=Z%C3%BCrich").is_empty());
}

/// Regression: the injection heuristics read only query values, form fields, JSON and
/// three headers, so a payload in any other header, a cookie or a multipart field passed.
#[test]
fn injection_heuristics_cover_headers_cookies_and_multipart_fields() {
    let p = policy("enforce", json!({"free_text": ["x-comment", "bio"]}));
    let header = |name: &'static str, value: &'static str| {
        anomalies(&run(&p, "GET", "/users", &[(name, value)], None))
    };
    assert_eq!(
        header("x-tenant", "' OR '1'='1"),
        ["anomaly.sql_injection"],
        "any header"
    );
    assert_eq!(
        header("cookie", "a=1; sid=<script>alert(1)</script>"),
        ["anomaly.xss"]
    );
    assert_eq!(
        header("cookie", "$(id)=1"),
        ["anomaly.command_injection"],
        "cookie names too"
    );
    assert!(header("x-comment", "' OR '1'='1").is_empty(), "free text");
    // What real clients send passes.
    for (name, value) in [
        (
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("accept-language", "en-GB,en;q=0.9"),
        (
            "sec-ch-ua",
            r#""Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99""#,
        ),
        (
            "cookie",
            "_ga=GA1.2.1234.5678; prefs={\"theme\":\"dark\"}; sid=\"abc\"",
        ),
        ("if-none-match", r#"W/"5e-1a2b3c""#),
        (
            "authorization",
            "Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln",
        ),
        (
            "x-amzn-trace-id",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        ),
    ] {
        assert!(header(name, value).is_empty(), "{name}: {value}");
    }
    let multipart = |part_headers: &str, content: &str| {
        let body = format!(
            "--b\r\nContent-Disposition: form-data; {part_headers}\r\n\r\n{content}\r\n--b--"
        );
        let verdict = run(
            &p,
            "POST",
            "/users",
            &[],
            Some(("multipart/form-data; boundary=b", &body)),
        );
        anomalies(&verdict)
    };
    assert_eq!(
        multipart("name=\"q\"", "1 UNION SELECT password FROM users"),
        ["anomaly.sql_injection"]
    );
    assert_eq!(
        multipart(
            "name=\"doc\"\r\nContent-Type: application/json",
            r#"{"a": "{{7*7}}"}"#
        ),
        ["anomaly.template_injection"]
    );
    assert!(
        multipart("name=\"bio\"", "' OR '1'='1").is_empty(),
        "free text"
    );
    assert!(
        multipart("name=\"f\"; filename=\"a.bin\"", "' OR '1'='1").is_empty(),
        "file content"
    );
    assert!(multipart("name=\"q\"", "O'Brien").is_empty());
}

/// A chunked or HTTP/2 body on a GET is only known to be one at its first byte: an empty
/// one is no body and no finding; a real one is found where the host first sees it.
#[test]
fn body_on_get_is_decided_by_the_body() {
    let p = policy("enforce", json!({}));
    let empty = run(&p, "GET", "/users", &[], Some(("text/plain", "")));
    assert!(anomalies(&empty).is_empty(), "{empty:?}");
    assert_eq!(empty.action, Action::Allow, "{empty:?}");
    let body = run(&p, "GET", "/users", &[], Some(("text/plain", "x")));
    assert_eq!(anomalies(&body), ["anomaly.body_on_get"], "{body:?}");
}

#[test]
fn protocol_anomalies() {
    let p = policy(
        "enforce",
        json!({"limits": {"max_uri_bytes": 64, "max_header_bytes": 32, "max_headers": 5}}),
    );
    let head = |method: &str,
                target: &str,
                headers: &[(&str, &str)],
                has_body: bool,
                ua: bool,
                authority| {
        let mut all: Vec<(&str, &str)> = if ua { vec![UA] } else { vec![] };
        all.extend_from_slice(headers);
        let head = RequestHead::new(method, target)
            .headers(&all)
            .with_body(has_body);
        let (mut verdict, _) = p.inspect(&head);
        p.inspect_anomalies(&head, authority, &mut verdict);
        let rules = verdict.violations.iter().map(|v| v.rule);
        (verdict.action, anomaly_rules(rules))
    };
    let host = Some("api.example");
    assert_eq!(
        head("GET", "/users", &[], false, true, host),
        (Action::Allow, vec![])
    );
    let (action, rules) = head("GET", "/users", &[], false, false, host);
    assert_eq!(
        (action, rules),
        (Action::Monitor, vec!["anomaly.user_agent"]),
        "a notice alone is recorded"
    );
    assert_eq!(
        head("GET", "/users", &[("user-agent", " ")], false, false, host).1,
        ["anomaly.user_agent"]
    );
    assert_eq!(
        head("GET", "/users", &[], false, true, None).1,
        ["anomaly.host"]
    );
    assert_eq!(
        head("GET", "/users", &[("host", "b")], false, true, host).1,
        ["anomaly.host"]
    );
    assert_eq!(
        head(
            "GET",
            &format!("/users?name={}", "a".repeat(60)),
            &[],
            false,
            true,
            host
        )
        .1,
        ["anomaly.uri_length"]
    );
    assert_eq!(
        head(
            "GET",
            "/users",
            &[("x-a", &"a".repeat(33))],
            false,
            true,
            host
        )
        .1,
        ["anomaly.header_size"]
    );
    let many = [("a", "1"), ("b", "1"), ("c", "1"), ("d", "1"), ("e", "1")];
    assert_eq!(
        head("GET", "/users", &many, false, true, host).1,
        ["anomaly.header_count"]
    );
    assert_eq!(
        head("TRACE", "/users", &[], false, true, host).1,
        ["anomaly.method"]
    );
    assert_eq!(
        head("PATCH", "/users", &[], false, true, host).1,
        ["anomaly.method"],
        "the API never uses PATCH"
    );
    assert_eq!(
        head("CONNECT", "/users", &[], false, true, host).1,
        ["anomaly.method"]
    );
    assert_eq!(
        head(
            "GET",
            "/users",
            &[("content-length", "5")],
            true,
            true,
            host
        )
        .1,
        ["anomaly.body_on_get"],
        "a body the head announces"
    );
    assert!(
        head("GET", "/users", &[], true, true, host).1.is_empty(),
        "an unannounced body is judged at its first byte (body_on_get_is_decided_by_the_body)"
    );
    assert_eq!(
        head("GET", "/users?name=a%00b", &[], false, true, host).1,
        ["anomaly.control_char"]
    );
    assert_eq!(
        head("GET", "/users", &[("x-a", "a\u{1}b")], false, true, host).1,
        ["anomaly.control_char"]
    );
    assert_eq!(
        head("GET", "/users?name=%ff", &[], false, true, host).1,
        ["anomaly.invalid_utf8"]
    );
    assert_eq!(
        head(
            "GET",
            "/users",
            &[("x-a", "caf\u{FFFD}")],
            false,
            true,
            host
        )
        .1,
        ["anomaly.invalid_utf8"]
    );
    assert_eq!(
        head(
            "GET",
            "/users",
            &[("user-agent", "${jndi:ldap://x/a}")],
            false,
            false,
            host
        )
        .1,
        ["anomaly.template_injection"]
    );
    // A declared array may repeat; an undeclared name given twice is pollution.
    assert_eq!(
        head("GET", "/users?tag=a&tag=b", &[], false, true, host).1,
        Vec::<&str>::new()
    );
    assert_eq!(
        head("GET", "/users?x=a&x=b", &[], false, true, host).1,
        ["anomaly.repeated_param"]
    );
    assert_eq!(
        head(
            "GET",
            "/users?name=caf%C3%A9&tab=a%09b",
            &[],
            false,
            true,
            host
        )
        .1,
        Vec::<&str>::new()
    );
}

#[test]
fn scores_add_up_to_the_threshold_and_actions_are_per_check() {
    // Two notices (2 + 2) stay under 5; with an error (4) the request is blocked.
    let p = policy("enforce", json!({}));
    let (v, _) = {
        let head = RequestHead::get("/users?x=1&x=2");
        let (mut v, c) = p.inspect(&head);
        p.inspect_anomalies(&head, Some("h"), &mut v);
        (v, c)
    };
    assert_eq!(v.action, Action::Monitor, "{v:?}");
    assert!(v.violations.iter().all(|v| !v.enforced));
    let lowered = policy("enforce", json!({"threshold": 4}));
    let head = RequestHead::get("/users?x=1&x=2");
    let (mut v, _) = lowered.inspect(&head);
    lowered.inspect_anomalies(&head, Some("h"), &mut v);
    assert_eq!(v.action, Action::Block);
    // Per operation: getUser is lenient.
    let per_op = policy(
        "enforce",
        json!({"operations": {"getUser": {"threshold": 100}}}),
    );
    let v = run(&per_op, "GET", "/users/%3Cscript%3E", &[], None);
    assert_eq!(
        (v.action, anomalies(&v)),
        (Action::Monitor, vec!["anomaly.xss"])
    );
    // A check set to monitor is recorded, never counted; off is not run.
    let monitored = policy("enforce", json!({"checks": {"anomaly.xss": "monitor"}}));
    assert_eq!(
        run(&monitored, "GET", "/users?name=%3Cscript%3E", &[], None).action,
        Action::Monitor
    );
    let off = policy("enforce", json!({"checks": {"anomaly.xss": "off"}}));
    let v = run(&off, "GET", "/users?name=%3Cscript%3E", &[], None);
    assert_eq!((v.action, anomalies(&v)), (Action::Allow, vec![]));
}

#[test]
fn monitor_apis_record_anomalies() {
    let p = policy("monitor", json!({}));
    let v = run(
        &p,
        "GET",
        "/users?name=%27%20OR%20%271%27%3D%271",
        &[],
        None,
    );
    assert_eq!(
        (v.action, anomalies(&v)),
        (Action::Monitor, vec!["anomaly.sql_injection"])
    );
}

#[test]
fn findings_never_echo_the_request() {
    let p = policy("enforce", json!({}));
    let v = run(&p, "GET", "/users?%3Cscript%3E=1", &[], None);
    let names: Vec<_> = v
        .violations
        .iter()
        .filter_map(|v| v.name.as_deref())
        .collect();
    assert!(names.iter().all(|n| !n.contains('<')), "{names:?}");
}

#[test]
fn bad_anomaly_settings_are_refused_where_they_are() {
    let compile = |anomaly: serde_json::Value| {
        let config = json!({"name": "x", "abuse": {"anomaly": anomaly},
            "openapi": {"document": {"openapi": "3.1.0", "paths": {"/a": {"get": {}}}}}});
        Policy::compile(config.to_string().as_bytes())
            .unwrap_err()
            .location()
            .map(|l| l.pointer.clone())
    };
    assert_eq!(
        compile(json!({"checks": {"anomaly.nope": "off"}})).as_deref(),
        Some("/abuse/anomaly/checks/anomaly.nope")
    );
    assert_eq!(
        compile(json!({"operations": {"nope": {"threshold": 3}}})).as_deref(),
        Some("/abuse/anomaly/operations/nope")
    );
    assert_eq!(
        compile(json!({"checks": {"anomaly.xss": "maybe"}})).as_deref(),
        Some("/abuse/anomaly/checks/anomaly.xss")
    );
}

/// An 880 KB form of distinct names stalled an Envoy worker for 25 s, and 8,000 query
/// names cost 120 ms on an unknown path: names were deduplicated with `Vec::contains`,
/// and every finding was checked against every earlier one. With the caps raised so the
/// anomaly pass sees every name, it now finishes in one pass and keeps a bounded number
/// of findings (every rule once, at most 32 in all).
#[test]
fn distinct_names_are_checked_in_one_pass_with_bounded_findings() {
    let p = policy_with(
        "enforce",
        json!({}),
        json!({"max_form_fields": 1_000_000, "max_query_pairs": 1_000_000}),
    );
    let form: String = (0..80_000).map(|i| format!("f{i}=%01&")).collect();
    assert!(form.len() > 700_000);
    let verdict = run(
        &p,
        "POST",
        "/users",
        &[],
        Some(("application/x-www-form-urlencoded", &form)),
    );
    assert_eq!(anomalies(&verdict), ["anomaly.control_char"]);
    assert!(
        verdict.violations.len() <= 32,
        "{}",
        verdict.violations.len()
    );

    let query: String = (0..8_000).map(|i| format!("q{i}=%00&")).collect();
    let verdict = run(&p, "GET", &format!("/nowhere?{query}"), &[], None);
    assert!(anomalies(&verdict).contains(&"anomaly.control_char"));
    assert!(
        verdict.violations.len() <= 33,
        "{}",
        verdict.violations.len()
    );
}

/// Past the policy's caps the anomaly pass reads no further: the contract refuses the
/// request with the cap's rule.
#[test]
fn caps_bound_the_anomaly_pass() {
    let p = policy_with("enforce", json!({}), json!({"max_query_pairs": 2}));
    let verdict = run(&p, "GET", "/users?a=1&b=2&c=%00", &[], None);
    assert_eq!(verdict.rule.map(|r| r.as_str()), Some("limits.query_pairs"));
    assert!(anomalies(&verdict).is_empty(), "{:?}", anomalies(&verdict));
}

/// A header the filter withholds from the upstream (a verified token it removes) is still
/// checked for size and control characters, but not scanned for injection: the upstream
/// never reads it. Any other header with the same value is scanned.
#[test]
fn withheld_headers_are_not_scanned_for_injection() {
    let p = policy("enforce", json!({}));
    let anomaly = &p
        .abuse
        .as_ref()
        .expect("the policy has abuse checks")
        .anomaly;
    let headers = [UA, ("x-token", "' or 1=1 --"), ("x-other", "' or 1=1 --")];
    let head = RequestHead::get("/users").headers(&headers);
    let found = |withheld: &[String]| -> Vec<(&'static str, Option<String>)> {
        let findings = anomaly.head(&head, Some("h"), &[], withheld, &p.limits);
        (findings.list.into_iter())
            .map(|f| (f.rule.as_str(), f.name))
            .collect()
    };
    let sql = |name: &str| ("anomaly.sql_injection", Some(name.to_owned()));
    assert_eq!(found(&[]), vec![sql("x-token"), sql("x-other")]);
    assert_eq!(found(&["x-token".to_owned()]), vec![sql("x-other")]);
    let control = [UA, ("x-token", "a\u{1}b")];
    let head = RequestHead::get("/users").headers(&control);
    let findings = anomaly.head(&head, Some("h"), &[], &["x-token".to_owned()], &p.limits);
    let rules: Vec<_> = findings.list.iter().map(|f| f.rule.as_str()).collect();
    assert_eq!(rules, vec!["anomaly.control_char"]);
}
