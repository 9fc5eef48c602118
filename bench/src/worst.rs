//! Worst cases of request input, natively: adversarial requests (80,000 distinct form
//! names, 8,000 query names on an unknown path, wide and deep JSON, thousands of
//! multipart parts, a path segment built to make template matching backtrack) at 1x and
//! 10x their size, next to a typical request of the same size. Every pass over request
//! input must be linear: 10x the input may cost at most about 12x the time, and an
//! adversarial byte should cost about what a typical one does.
//!
//! Native rather than in Envoy: what is measured is the engine's algorithm, and a 1 MiB
//! request per iteration would mostly measure the VM's copies. The policy raises the
//! count caps (`limits`) so that the engine reads every item: the caps are what keeps a
//! default policy's worst case smaller still.

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use apiguard_filter::{Action, Policy, RequestHead};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::BenchError;

/// Per measurement, at least this long and at least [`MIN_ITERATIONS`] requests.
const LOOP_TIME: Duration = Duration::from_millis(300);
const MIN_ITERATIONS: u32 = 3;
/// The most a 10x larger input may cost, in multiples of the 1x cost.
pub const MAX_GROWTH: f64 = 12.0;
/// Bodies: 100 KB and 1 MB (the policy's `max_body_bytes` is 1 MiB).
const BODY_BYTES: usize = 100_000;
/// Query strings and path segments: 5 KB and 50 KB (Envoy's default header limit is 60 KiB).
const TARGET_BYTES: usize = 5_000;
/// JSON at the largest size the default caps allow at 10x: one object of ~10,000 members
/// (`max_json_members`), and ~49,000 nested objects (`max_json_containers` is 50,000).
const JSON_WIDE_BYTES: usize = 8_800;
const JSON_DEEP_BYTES: usize = 29_700;

/// One adversarial input against a typical one of the same size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorstCase {
    pub case: String,
    /// Request bytes (target plus body) at 1x and 10x.
    pub bytes: [usize; 2],
    /// Nanoseconds per request of the adversarial input at 1x and 10x.
    pub adversarial_ns: [f64; 2],
    /// Nanoseconds per request of the typical input at 1x and 10x.
    pub typical_ns: [f64; 2],
}

impl WorstCase {
    /// How much longer the 10x input took than the 1x one.
    pub fn growth(&self) -> f64 {
        self.adversarial_ns[1] / self.adversarial_ns[0]
    }

    /// How much longer the typical 10x input took than the typical 1x one: what growth
    /// the platform (caches, allocator) adds to a linear pass of this kind.
    pub fn typical_growth(&self) -> f64 {
        self.typical_ns[1] / self.typical_ns[0]
    }

    /// Adversarial cost per byte over typical cost per byte, at 10x.
    pub fn vs_typical(&self) -> f64 {
        self.adversarial_ns[1] / self.typical_ns[1]
    }
}

pub fn markdown(cases: &[WorstCase]) -> String {
    let mut md = String::from(
        "\n#### Worst cases of request input (natively)\n\n\
         Adversarial inputs at 1x and 10x their size, and a typical request of each size; \
         `make bench` records them. Linear means at most ~12x the time for 10x the input; \
         the typical input's growth shows what the platform (caches, allocator) adds to any \
         pass of that kind.\n\n\
         | Input | bytes 1x / 10x | us 1x | us 10x | growth | typical growth | ns/byte | typical ns/byte | vs typical |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for c in cases {
        let per_byte = |ns: f64| ns / c.bytes[1] as f64;
        let _ = writeln!(
            md,
            "| {} | {} / {} | {:.0} | {:.0} | {:.1}x{} | {:.1}x | {:.1} | {:.1} | {:.1}x |",
            c.case,
            c.bytes[0],
            c.bytes[1],
            c.adversarial_ns[0] / 1e3,
            c.adversarial_ns[1] / 1e3,
            c.growth(),
            if c.growth() > MAX_GROWTH {
                " (over 12x)"
            } else {
                ""
            },
            c.typical_growth(),
            per_byte(c.adversarial_ns[1]),
            per_byte(c.typical_ns[1]),
            c.vs_typical(),
        );
    }
    md
}

/// A request as the host hands it to the engine.
struct Request {
    method: &'static str,
    target: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
}

impl Request {
    fn get(target: String) -> Request {
        Request {
            method: "GET",
            target,
            content_type: None,
            body: Vec::new(),
        }
    }

    fn post(content_type: &'static str, body: Vec<u8>) -> Request {
        Request {
            method: "POST",
            target: "/items".to_owned(),
            content_type: Some(content_type),
            body,
        }
    }

    fn bytes(&self) -> usize {
        self.target.len() + self.body.len()
    }
}

/// One case: its name, and a builder of the adversarial and the typical request of
/// (about) `n` bytes.
type Case = (
    &'static str,
    usize,
    fn(usize) -> Request,
    fn(usize) -> Request,
);

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";
const MULTIPART: &str = "multipart/form-data; boundary=b";

fn cases() -> [Case; 7] {
    [
        ("form, distinct names", BODY_BYTES, form_names, form_typical),
        (
            "query, distinct names",
            TARGET_BYTES,
            query_names,
            query_typical,
        ),
        (
            "query, distinct names, unknown path",
            TARGET_BYTES,
            unknown_names,
            unknown_typical,
        ),
        (
            "JSON, one wide object",
            JSON_WIDE_BYTES,
            json_wide,
            json_typical,
        ),
        (
            "JSON, deep and wide",
            JSON_DEEP_BYTES,
            json_deep,
            json_typical,
        ),
        (
            "multipart, many parts",
            BODY_BYTES,
            multipart_parts,
            multipart_typical,
        ),
        (
            "path segment against `{a}_{b}_{c}.json`",
            TARGET_BYTES,
            path_hostile,
            path_typical,
        ),
    ]
}

/// `f0=1&f1=1&…`: every name new, so a pass that deduplicates names with a list is
/// quadratic (an 880 KB one stalled an Envoy worker for 25 s).
fn form_names(n: usize) -> Request {
    Request::post(FORM, pairs("f", n).into_bytes())
}

fn form_typical(n: usize) -> Request {
    Request::post(
        FORM,
        format!("name=widget&note={}", "a".repeat(n)).into_bytes(),
    )
}

fn query_names(n: usize) -> Request {
    Request::get(format!("/items?{}", pairs("q", n)))
}

fn query_typical(n: usize) -> Request {
    Request::get(format!("/items?name={}", "a".repeat(n)))
}

fn unknown_names(n: usize) -> Request {
    Request::get(format!("/nowhere?{}", pairs("q", n)))
}

fn unknown_typical(n: usize) -> Request {
    Request::get(format!("/nowhere?name={}", "a".repeat(n)))
}

/// `{"k0":1,"k1":1,…}`
fn json_wide(n: usize) -> Request {
    let mut body = String::from("{");
    let mut i = 0;
    while body.len() < n {
        let _ = write!(body, "\"k{i}\":1,");
        i += 1;
    }
    body.pop();
    body.push('}');
    Request::post(JSON, body.into_bytes())
}

/// Objects nested 60 deep, side by side: `[{"a":{"a":…{"a":"x"}…}},…]`.
fn json_deep(n: usize) -> Request {
    let one = format!("{}\"x\"{}", "{\"a\":".repeat(60), "}".repeat(60));
    let copies = n / (one.len() + 1) + 1;
    Request::post(
        JSON,
        format!("[{}]", vec![one; copies].join(",")).into_bytes(),
    )
}

/// What a JSON API receives: an array of small records.
fn json_typical(n: usize) -> Request {
    let one = r#"{"name":"widget","count":12,"tags":["a","b"],"price":{"amount":"9.99","currency":"GBP"}}"#;
    let copies = n / (one.len() + 1) + 1;
    Request::post(
        JSON,
        format!("[{}]", vec![one; copies].join(",")).into_bytes(),
    )
}

fn multipart_parts(n: usize) -> Request {
    let mut body = String::new();
    let mut i = 0;
    while body.len() < n {
        let _ = write!(
            body,
            "--b\r\nContent-Disposition: form-data; name=\"p{i}\"\r\n\r\nx\r\n"
        );
        i += 1;
    }
    body.push_str("--b--\r\n");
    Request::post(MULTIPART, body.into_bytes())
}

fn multipart_typical(n: usize) -> Request {
    let body = format!(
        "--b\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nwidget\r\n\
         --b\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\n{}\r\n--b--\r\n",
        "a".repeat(n)
    );
    Request::post(MULTIPART, body.into_bytes())
}

/// `x___…_`: every `_` is a place the first two parameters could end, and the final
/// `.json` never comes, so a backtracking match tries them all (O(n^2) and worse).
fn path_hostile(n: usize) -> Request {
    Request::get(format!("/t/x{}", "_".repeat(n)))
}

fn path_typical(n: usize) -> Request {
    Request::get(format!("/t/{}", "a".repeat(n)))
}

fn pairs(prefix: &str, n: usize) -> String {
    let mut out = String::new();
    let mut i = 0;
    while out.len() < n {
        let _ = write!(out, "{prefix}{i}=1&");
        i += 1;
    }
    out.pop();
    out
}

/// A small API whose limits let every case through whole: the count caps are raised, but
/// for JSON's, whose defaults the JSON cases are sized to (a parsed object is a B-tree leaf
/// of ~630 bytes, so beyond that cap memory, not the algorithm, sets the cost).
fn policy() -> Result<Policy, BenchError> {
    let object = json!({"schema": {"type": "object"}});
    let document = json!({
        "openapi": "3.1.0",
        "paths": {
            "/items": {
                "get": {"operationId": "findItems", "parameters": [
                    {"name": "name", "in": "query", "schema": {"type": "string"}}]},
                "post": {"operationId": "createItem", "requestBody": {"content": {
                    "application/json": {"schema": {"type": ["object", "array"]}},
                    "application/x-www-form-urlencoded": object,
                    "multipart/form-data": object
                }}}
            },
            "/t/{a}_{b}_{c}.json": {"get": {"operationId": "triple", "parameters": [
                {"name": "a", "in": "path", "required": true, "schema": {"type": "string"}},
                {"name": "b", "in": "path", "required": true, "schema": {"type": "string"}},
                {"name": "c", "in": "path", "required": true, "schema": {"type": "string"}}]}},
            "/t/{id}": {"get": {"operationId": "one", "parameters": [
                {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]}}
        }
    });
    let config = json!({
        "name": "worst",
        "openapi": {"document": document},
        "limits": {"max_body_bytes": 1 << 20, "max_query_pairs": 100_000,
                   "max_form_fields": 200_000, "max_multipart_parts": 100_000},
        "abuse": {"anomaly": {"limits": {"max_uri_bytes": 100_000, "max_width": 200_000,
                                         "max_string_bytes": 2_000_000}}}
    });
    Ok(Policy::compile(config.to_string().into_bytes())?)
}

/// The contract and anomaly checks of head and body, as the VM path runs them: the
/// body's action, the head's, whether the path was unknown, and (when `explain`) the
/// deciding violations.
fn inspect(policy: &Policy, request: &Request, explain: bool) -> (Action, Action, bool, String) {
    let mut headers = vec![("user-agent", "bench")];
    if let Some(content_type) = request.content_type {
        headers.push(("content-type", content_type));
    }
    let head = RequestHead {
        method: request.method.as_bytes(),
        path: request.target.as_bytes(),
        headers: &headers,
        has_body: !request.body.is_empty(),
    };
    let (mut verdict, check) = policy.inspect(black_box(&head));
    policy.inspect_anomalies(&head, Some("127.0.0.1"), &mut verdict);
    let unknown = verdict.operation.is_none();
    let rule = |v: &apiguard_filter::Verdict<'_>| {
        (v.deciding().filter(|_| explain)).map(|d| format!("{} {:?} {}", d.rule, d.name, d.reason))
    };
    match check {
        Some(check) => {
            let mut body = policy.inspect_body(&check, black_box(&request.body));
            policy.inspect_body_anomalies(&check, &request.body, &mut body);
            let rules = if explain {
                format!("{:?} {:?}", rule(&verdict), rule(&body))
            } else {
                String::new()
            };
            (body.action, verdict.action, unknown, rules)
        }
        None => (
            Action::Allow,
            verdict.action,
            unknown,
            format!("{:?}", rule(&verdict)),
        ),
    }
}

/// The request is not blocked, so that all of it is read (undeclared query names are
/// only recorded; the unknown-path case is refused by routing, and still has its query
/// read by the anomaly checks).
fn check(policy: &Policy, case: &str, request: &Request) -> Result<(), BenchError> {
    let (body, head, unknown, rules) = inspect(policy, request, true);
    if body != Action::Block && (head != Action::Block || unknown) {
        return Ok(());
    }
    Err(BenchError::Probe {
        scenario: case.to_owned(),
        message: format!(
            "the engine blocks this request natively ({} bytes): {rules}",
            request.bytes()
        ),
    })
}

/// Nanoseconds per request.
fn per_request_ns(policy: &Policy, case: &str, request: &Request) -> Result<f64, BenchError> {
    check(policy, case, request)?;
    let started = Instant::now();
    let mut iterations = 0u32;
    while iterations < MIN_ITERATIONS || started.elapsed() < LOOP_TIME {
        black_box(inspect(policy, request, false));
        iterations += 1;
    }
    Ok(started.elapsed().as_nanos() as f64 / f64::from(iterations))
}

pub fn measure() -> Result<Vec<WorstCase>, BenchError> {
    let policy = policy()?;
    cases()
        .into_iter()
        .map(|(case, size, adversarial, typical)| {
            let small = adversarial(size);
            let large = adversarial(size * 10);
            let usual = [typical(small.bytes()), typical(large.bytes())];
            Ok(WorstCase {
                case: case.to_owned(),
                bytes: [small.bytes(), large.bytes()],
                adversarial_ns: [
                    per_request_ns(&policy, case, &small)?,
                    per_request_ns(&policy, case, &large)?,
                ],
                typical_ns: [
                    per_request_ns(&policy, case, &usual[0])?,
                    per_request_ns(&policy, case, &usual[1])?,
                ],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every case builds requests of the size it says, which the policy allows.
    #[test]
    fn cases_are_as_large_as_they_say_and_allowed() {
        let policy = policy().unwrap();
        for (case, size, adversarial, typical) in cases() {
            let request = adversarial(size);
            assert!(request.bytes() >= size, "{case}");
            assert!(request.bytes() < size * 11 / 10 + 200, "{case}");
            let usual = typical(request.bytes());
            assert!(usual.bytes() + 200 >= request.bytes(), "{case}");
            check(&policy, case, &request).unwrap();
            check(&policy, case, &usual).unwrap();
        }
    }
}
