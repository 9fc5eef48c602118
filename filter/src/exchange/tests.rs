//! The exchange step by step, as the host drives it: what it answers, and what it leaves
//! for the host to forward.

use serde_json::{json, Value};
use sha2::Digest;

use super::*;
use crate::discovery::{Sample, Subject};
use crate::events::{EventAction, QUARANTINE_STARTED, REDACTED};
use crate::testkit::{self, exchange, input, T0};

fn policy(extra: Value) -> Rc<Policy> {
    let document = json!({
        "openapi": "3.1.0",
        "paths": {
            "/users": {"post": {"operationId": "createUser", "requestBody": {"required": true,
                "content": {"application/json": {"schema": {"type": "object",
                    "properties": {"name": {"type": "string"}}, "required": ["name"]}}}}}},
            "/users/{id}": {"get": {"operationId": "getUser", "responses": {
                "200": {"description": "ok", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"name": {"type": "string"}}}}}}}}}
        }
    });
    Rc::new(testkit::policy("users", document, extra))
}

fn head(method: &str, path: &str, extra: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    [
        (":method", method),
        (":path", path),
        (":authority", "api.example"),
    ]
    .iter()
    .chain([("user-agent", "curl/8.5.0")].iter())
    .chain(extra)
    .map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec()))
    .collect()
}

const JSON: (&str, &str) = ("content-type", "application/json");

fn reply_rule(next: &Next) -> Option<(u16, String)> {
    let Next::Reply(reply) = next else {
        return None;
    };
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    Some((
        reply.status,
        body["rule"].as_str().unwrap_or_default().to_owned(),
    ))
}

fn outcome(outputs: &Outputs) -> Option<Action> {
    outputs.counters.iter().find_map(|c| match c {
        Counter::Outcome(action) => Some(*action),
        _ => None,
    })
}

#[test]
fn an_allowed_request_goes_on_and_is_counted_once() {
    let (p, input) = (policy(json!({})), input());
    let mut exchange = exchange(&p);
    let next = exchange.request_headers(&input, &head("GET", "/users/7", &[]), true);
    assert_eq!(next, Next::Continue(vec![]));
    let outputs = exchange.take_outputs();
    assert_eq!(
        outputs.counters,
        [
            Counter::Inspected,
            Counter::Outcome(Action::Allow),
            Counter::Operation {
                id: 1,
                blocked: false
            }
        ]
    );
    assert!(outputs.events.is_empty());
    let state = outputs.filter_state.unwrap();
    assert_eq!(
        (state.action, state.rule, state.operation.as_deref()),
        (Action::Allow, None, Some("getUser"))
    );
    assert!(exchange.take_outputs().counters.is_empty(), "taken once");
}

#[test]
fn a_call_to_a_deprecated_operation_is_counted_and_reported_with_its_client() {
    let document = json!({"openapi": "3.1.0", "paths": {
        "/old": {"get": {"operationId": "oldWay", "deprecated": true}},
        "/new": {"get": {"operationId": "newWay"}}}});
    let p = Rc::new(testkit::policy("api", document, json!({})));
    let input = input();
    let mut exchange = exchange(&p);
    exchange.request_headers(&input, &head("GET", "/old", &[]), true);
    let outputs = exchange.take_outputs();
    let old = (p.operations.iter()).position(|op| op.operation_id.as_deref() == Some("oldWay"));
    assert!(
        outputs
            .counters
            .contains(&Counter::Deprecated(old.unwrap())),
        "{:?}",
        outputs.counters
    );
    let [event] = outputs.events.as_slice() else {
        panic!("one event: {:?}", outputs.events);
    };
    assert_eq!(
        (event.rule.as_str(), event.action),
        ("discovery.zombie", EventAction::Observed)
    );
    let request = event.request.as_ref().unwrap();
    assert_eq!(request.operation_id.as_deref(), Some("oldWay"));
    assert_eq!(request.client.as_deref(), Some("192.0.2.7"));
    // A current operation: nothing of the kind.
    let mut exchange = testkit::exchange(&p);
    exchange.request_headers(&input, &head("GET", "/new", &[]), true);
    let outputs = exchange.take_outputs();
    assert!(!outputs
        .counters
        .iter()
        .any(|c| matches!(c, Counter::Deprecated(_))));
    assert!(outputs.events.is_empty());
}

#[test]
fn a_refused_head_is_answered_with_its_problem_and_an_event() {
    let (p, input) = (policy(json!({})), input());
    let mut exchange = exchange(&p);
    let next = exchange.request_headers(&input, &head("GET", "/nowhere?x=1", &[]), true);
    assert_eq!(
        reply_rule(&next),
        Some((404, "route.unknown_path".to_owned()))
    );
    let outputs = exchange.take_outputs();
    assert!(outputs.counters.contains(&Counter::Rule {
        rule: RuleId::UnknownPath,
        enforced: true
    }));
    assert_eq!(outcome(&outputs), Some(Action::Block));
    let [event] = outputs.events.as_slice() else {
        panic!("one event: {:?}", outputs.events);
    };
    assert_eq!(event.action, EventAction::Blocked);
    let request = event.request.as_ref().unwrap();
    assert_eq!(request.path.as_deref(), Some("/nowhere"), "no query");
    assert_eq!(request.client.as_deref(), Some("192.0.2.7"));
    assert_eq!(event.time_ms, T0 / 1_000_000);
    // The reply goes back through the response callbacks: nothing is checked there.
    assert!(!exchange.checks_response());
}

#[test]
fn a_body_is_buffered_then_read_and_checked() {
    let (p, input) = (policy(json!({})), input());
    let mut exchange = exchange(&p);
    let next = exchange.request_headers(&input, &head("POST", "/users", &[JSON]), false);
    assert_eq!(next, Next::Continue(vec![]));
    assert_eq!(outcome(&exchange.take_outputs()), None, "not the last word");
    assert_eq!(exchange.request_data(&input, 5, false), Next::Buffer);
    assert_eq!(exchange.request_data(&input, 11, true), Next::Read(11));
    let next = exchange.request_body(&input, br#"{"nom": 1}"#);
    assert_eq!(reply_rule(&next), Some((400, "body.schema".to_owned())));
    assert_eq!(outcome(&exchange.take_outputs()), Some(Action::Block));
}

#[test]
fn trailers_end_a_buffered_body() {
    let (p, input) = (policy(json!({})), input());
    let mut exchange = exchange(&p);
    exchange.request_headers(&input, &head("POST", "/users", &[JSON]), false);
    assert_eq!(exchange.request_data(&input, 12, false), Next::Buffer);
    assert_eq!(exchange.request_trailers(), Next::Read(12));
    let next = exchange.request_body(&input, br#"{"name": "a"}"#);
    assert_eq!(next, Next::Continue(vec![]));
    assert_eq!(outcome(&exchange.take_outputs()), Some(Action::Allow));
    assert_eq!(
        exchange.request_trailers(),
        Next::Continue(vec![]),
        "read once"
    );
}

#[test]
fn a_body_over_the_limit_is_refused_before_it_is_buffered() {
    let p = policy(json!({"limits": {"max_body_bytes": 16}}));
    let input = input();
    let mut exchange = exchange(&p);
    exchange.request_headers(&input, &head("POST", "/users", &[JSON]), false);
    let next = exchange.request_data(&input, 17, false);
    assert_eq!(reply_rule(&next), Some((413, "body.too_large".to_owned())));
}

#[test]
fn monitor_mode_records_and_lets_through() {
    let (p, input) = (policy(json!({"mode": "monitor"})), input());
    let mut exchange = exchange(&p);
    let next = exchange.request_headers(&input, &head("GET", "/nowhere", &[]), true);
    assert_eq!(next, Next::Continue(vec![]));
    let outputs = exchange.take_outputs();
    assert_eq!(outcome(&outputs), Some(Action::Monitor));
    assert_eq!(outputs.events.len(), 1);
    assert!(outputs.counters.contains(&Counter::Rule {
        rule: RuleId::UnknownPath,
        enforced: false
    }));
}

#[test]
fn anomalies_are_scored_into_the_head_verdict() {
    let p = policy(json!({"abuse": {"anomaly": {}}}));
    let input = input();
    let mut exchange = exchange(&p);
    let next =
        exchange.request_headers(&input, &head("GET", "/users/1%27%20OR%201=1--", &[]), true);
    let (status, rule) = reply_rule(&next).unwrap();
    assert!(rule.starts_with("anomaly."), "{status} {rule}");
}

#[test]
fn rate_limits_refuse_with_retry_after_and_advise_admitted_responses() {
    let p = policy(json!({"abuse": {"rate_limits": [
        {"name": "one", "requests": 1, "window_seconds": 60}]}}));
    let input = input();
    let mut first = exchange(&p);
    assert_eq!(
        first.request_headers(&input, &head("GET", "/users/1", &[]), true),
        Next::Continue(vec![])
    );
    let Next::Continue(changes) = first.response_headers(&input, &head("GET", "", &[]), true)
    else {
        panic!("the response goes on");
    };
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, HeaderChange::Add("ratelimit", _))),
        "{changes:?}"
    );
    let mut second = exchange(&p);
    let next = second.request_headers(&input, &head("GET", "/users/1", &[]), true);
    assert_eq!(
        reply_rule(&next),
        Some((429, "ratelimit.exceeded".to_owned()))
    );
    let Next::Reply(reply) = next else {
        unreachable!()
    };
    assert!(reply.headers.iter().any(|(name, _)| *name == "retry-after"));
}

#[test]
fn strikes_start_a_quarantine_that_refuses_even_valid_requests() {
    let p = policy(json!({"abuse": {"quarantine": {
        "strikes": 2, "window_seconds": 10, "duration_seconds": 30}}}));
    let input = input();
    let mut started = Vec::new();
    for _ in 0..2 {
        let mut exchange = exchange(&p);
        exchange.request_headers(&input, &head("GET", "/nowhere", &[]), true);
        started.push(exchange.take_outputs());
    }
    assert!(!started[0].counters.contains(&Counter::QuarantineStarted));
    assert!(started[1].counters.contains(&Counter::QuarantineStarted));
    let rules: Vec<&str> = started[1].events.iter().map(|e| e.rule.as_str()).collect();
    assert_eq!(rules, ["route.unknown_path", QUARANTINE_STARTED]);
    let mut exchange = exchange(&p);
    let next = exchange.request_headers(&input, &head("GET", "/users/1", &[]), true);
    assert_eq!(
        reply_rule(&next),
        Some((403, "abuse.quarantined".to_owned()))
    );
    let outputs = exchange.take_outputs();
    assert!(
        !outputs.counters.contains(&Counter::QuarantineStarted),
        "a refusal by the quarantine is no strike"
    );
}

#[test]
fn a_redacted_response_replaces_the_body_and_says_so() {
    let p = policy(json!({"responses": {"mode": "enforce", "redact": true}}));
    let input = input();
    let mut exchange = exchange(&p);
    let next = exchange.request_headers(&input, &head("GET", "/users/1", &[]), true);
    let accept = HeaderChange::Set("accept-encoding".to_owned(), Some(b"identity".to_vec()));
    assert_eq!(next, Next::Continue(vec![accept]));
    exchange.take_outputs();
    assert!(exchange.checks_response());
    let response = [(":status", "200"), JSON].map(|(n, v)| (n, v.as_bytes()));
    let next = exchange.response_headers(&input, &response, false);
    let length = HeaderChange::Set("content-length".to_owned(), None);
    assert_eq!(next, Next::Continue(vec![length]));
    let body = br#"{"name": "a", "ssn": "1"}"#;
    assert_eq!(
        exchange.response_data(&input, body.len(), false),
        Next::Buffer
    );
    assert_eq!(exchange.response_trailers(), Next::Read(body.len()));
    let Next::Replace { size, body } = exchange.response_body(&input, body) else {
        panic!("redacted");
    };
    assert_eq!((size, body.as_slice()), (25, &br#"{"name":"a"}"#[..]));
    let outputs = exchange.take_outputs();
    assert!(outputs.counters.contains(&Counter::Redacted(1)));
    assert_eq!(outputs.events.len(), 1);
    assert_eq!(outputs.events[0].rule, REDACTED);
}

#[test]
fn a_response_over_the_limit_is_withheld_when_it_should_be_redacted() {
    let p = policy(json!({"responses": {"mode": "monitor", "redact": true},
                          "limits": {"max_body_bytes": 8}}));
    let input = input();
    let mut exchange = exchange(&p);
    exchange.request_headers(&input, &head("GET", "/users/1", &[]), true);
    let response = [(":status", "200"), JSON].map(|(n, v)| (n, v.as_bytes()));
    exchange.response_headers(&input, &response, false);
    assert_eq!(exchange.response_data(&input, 9, false), Next::Withhold(9));
    assert_eq!(
        exchange.response_data(&input, 20, true),
        Next::Withhold(20),
        "and the rest of it"
    );
}

/// The identity headers the upstream trusts are the filter's: a spoofed one, and its
/// underscore twin, are removed before the verified consumer's is set.
#[test]
fn a_spoofed_identity_header_is_replaced_by_the_verified_one() {
    let hash: String = sha2::Sha256::digest(b"k-123")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let document = json!({
        "openapi": "3.1.0",
        "components": {"securitySchemes": {
            "key": {"type": "apiKey", "in": "header", "name": "X-Api-Key"}}},
        "security": [{"key": []}],
        "paths": {"/stock": {"get": {"operationId": "getStock"}}}
    });
    let config = json!({"name": "shop", "openapi": {"document": document},
        "security": {"api_keys": {"key": [{"sha256": hash, "consumer": "shop-1"}]}}});
    let p = Rc::new(Policy::compile(config.to_string().as_bytes()).unwrap());
    let spoofed = [
        ("x-api-key", "k-123"),
        ("x-apiguard-consumer", "admin"),
        ("x_apiguard_consumer", "admin"),
    ];
    let next = exchange(&p).request_headers(&input(), &head("GET", "/stock", &spoofed), true);
    let remove = |name: &str| HeaderChange::Set(name.to_owned(), None);
    let set = HeaderChange::Set("x-apiguard-consumer".to_owned(), Some(b"shop-1".to_vec()));
    assert_eq!(
        next,
        Next::Continue(vec![
            remove("x_apiguard_consumer"),
            remove("x-apiguard-consumer"),
            set
        ])
    );
}

mod calls {
    //! The host calls a request costs. `host::http` makes one host call per thing the exchange
    //! asks of it: a header map read, a clock read, a shared-data get or set, an address read,
    //! a counter increment, an access-log field, a header change. So counting what an exchange
    //! asks for, through a counting [`Input`] and its outputs, counts the host calls; the
    //! bench's floor filter (`bench/noop-filter`, `floor`) makes the set a full policy cannot
    //! avoid, and this pins apiguard's request to it.

    use std::cell::Cell;

    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    use serde_json::json;
    use sha2::Sha256;

    use crate::abuse::slots::{MemoryStore, StoreError};
    use crate::exchange::*;
    use crate::testkit::{self, T0};

    /// An [`Input`] of fixed values (as [`testkit::input`]) that counts what the exchange reads
    /// from the host.
    #[derive(Default)]
    struct Counting {
        clock: Cell<usize>,
        address: Cell<usize>,
        store: CountingStore,
    }

    #[derive(Default)]
    struct CountingStore {
        inner: MemoryStore,
        gets: Cell<usize>,
        sets: Cell<usize>,
    }

    impl SharedStore for CountingStore {
        fn get(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), StoreError> {
            self.gets.set(self.gets.get() + 1);
            self.inner.get(key)
        }

        fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
            self.sets.set(self.sets.get() + 1);
            self.inner.set(key, value, cas)
        }
    }

    impl Input for Counting {
        type Store = CountingStore;

        fn now(&self) -> u64 {
            self.clock.set(self.clock.get() + 1);
            T0
        }

        fn downstream(&self) -> Option<String> {
            self.address.set(self.address.get() + 1);
            Some(testkit::CLIENT.to_owned())
        }

        fn store(&self) -> &CountingStore {
            &self.store
        }

        fn slot_secret(&self) -> SlotSecret {
            // The host reads it from shared data once per VM, not per request.
            testkit::SECRET
        }
    }

    const SECRET: &[u8] = b"a secret of thirty-two bytes....";

    /// An HS256 token for `sub`, valid at [`T0`], with the scope the operation needs.
    fn token() -> String {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let header = b64(br#"{"alg":"HS256","typ":"JWT","kid":"k"}"#);
        let now = T0 / testkit::SECOND;
        let claims = json!({"iss": "https://issuer.test", "aud": "bench", "sub": "alice",
                        "exp": now + 3600, "iat": now - 10, "scope": "issues:read"});
        let input = format!("{header}.{}", b64(claims.to_string().as_bytes()));
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(SECRET) else {
            unreachable!("HMAC takes a key of any length")
        };
        mac.update(input.as_bytes());
        format!("{input}.{}", b64(&mac.finalize().into_bytes()))
    }

    /// The bench's `full-get`: a GET with path, query and header parameters, a JWT with its
    /// scope, a per-subject rate limit.
    fn policy() -> Rc<Policy> {
        let document = json!({
            "openapi": "3.1.0",
            "components": {"securitySchemes": {"jwt": {"type": "http", "scheme": "bearer"}}},
            "security": [{"jwt": ["issues:read"]}],
            "paths": {"/repos/{owner}/{repo}/issues/comments": {"get": {
                "operationId": "listIssueComments",
                "parameters": [
                    {"name": "owner", "in": "path", "required": true, "schema": {"type": "string"}},
                    {"name": "repo", "in": "path", "required": true, "schema": {"type": "string"}},
                    {"name": "per_page", "in": "query", "schema": {"type": "integer", "maximum": 100}},
                    {"name": "x-github-api-version", "in": "header",
                     "schema": {"type": "string", "enum": ["2022-11-28"]}}
                ]}}}
        });
        let jwks = json!({"keys": [{"kty": "oct", "kid": "k", "alg": "HS256",
                                "k": URL_SAFE_NO_PAD.encode(SECRET)}]});
        let sections = json!({
            "responses": {"mode": "off"},
            "security": {"providers": {"jwt": {
                "issuer": "https://issuer.test", "audiences": ["bench"],
                "local_jwks": {"inline_string": jwks.to_string()}}}},
            "abuse": {"rate_limits": [{"name": "per-subject", "key": ["subject"],
                                        "requests": 1_000_000_000, "window_seconds": 1}]}
        });
        Rc::new(testkit::policy("bench", document, sections))
    }

    /// The second request of a client (its token cached): a header map read, one clock read,
    /// one shared-data get and CAS set, three counters (inspected, outcome, operation), two
    /// access-log fields and two response headers, as the floor filter; and, beyond it, the
    /// removal of the token's header (`forward: false`), which is behaviour. No address read,
    /// no second clock read.
    #[test]
    fn a_checked_request_asks_the_host_for_what_the_floor_filter_does() {
        let policy = policy();
        let ring = Rc::new(policy.key_ring());
        let bearer = format!("Bearer {}", token());
        let headers = [
            (":method", "GET"),
            (":path", "/repos/octo/hello/issues/comments?per_page=30"),
            (":authority", "api.example"),
            ("user-agent", "bench/1.0"),
            ("authorization", bearer.as_str()),
            ("x-github-api-version", "2022-11-28"),
        ];
        let mut seen = None;
        for _ in 0..2 {
            let input = Counting::default();
            let mut exchange = Exchange::new(Rc::clone(&policy), Rc::clone(&ring));
            let request = exchange.request_headers(&input, &headers, true);
            let outputs = exchange.take_outputs();
            let response = exchange.response_headers(&input, &[(":status", "200")], false);
            let response_outputs = exchange.take_outputs();
            seen = Some((input, request, outputs, response, response_outputs));
        }
        let Some((input, request, outputs, response, response_outputs)) = seen else {
            unreachable!("two requests ran")
        };
        assert_eq!(
            request,
            Next::Continue(vec![HeaderChange::Set("authorization".to_owned(), None)])
        );
        assert_eq!((input.clock.get(), input.address.get()), (1, 0));
        assert_eq!((input.store.gets.get(), input.store.sets.get()), (1, 1));
        assert_eq!(
            outputs.counters,
            [
                Counter::Inspected,
                // `host::metrics` counts a slot only when it collided or lost its update.
                Counter::Slot(SlotReport::default()),
                Counter::Outcome(Action::Allow),
                Counter::Operation {
                    id: 0,
                    blocked: false
                }
            ]
        );
        let state = outputs.filter_state.as_ref();
        let fields =
            state.map(|s| 1 + usize::from(s.rule.is_some()) + usize::from(s.operation.is_some()));
        assert_eq!(fields, Some(2));
        assert!(outputs.events.is_empty());
        let Next::Continue(added) = response else {
            panic!("{response:?}")
        };
        let names: Vec<&str> = (added.iter())
            .filter_map(|change| match change {
                HeaderChange::Add(name, _) => Some(*name),
                HeaderChange::Set(..) => None,
            })
            .collect();
        assert_eq!(names, ["ratelimit-policy", "ratelimit"]);
        assert!(response_outputs.counters.is_empty() && response_outputs.events.is_empty());
    }
}

/// `input()`'s values, `ms` milliseconds later.
fn later(ms: u64) -> Values<crate::abuse::slots::MemoryStore> {
    Values {
        now: T0 + ms * 1_000_000,
        ..input()
    }
}

#[test]
fn a_finished_request_leaves_its_operation_status_duration_and_body_sizes() {
    let (p, input) = (policy(json!({"stats": {"analytics": true}})), input());
    let mut exchange = exchange(&p);
    let head = head("POST", "/users", &[JSON]);
    exchange.request_headers(&input, &head, false);
    // Held while it is checked: the host reports the whole body each time.
    assert_eq!(exchange.request_data(&input, 10, false), Next::Buffer);
    assert_eq!(exchange.request_data(&input, 15, true), Next::Read(15));
    let body = b"{\"name\": \"ab\"} ";
    assert_eq!(exchange.request_body(&input, body), Next::GO);
    exchange.response_headers(&input, &[(":status", "201")], false);
    // Let go on chunk by chunk: each report is a new chunk.
    exchange.response_data(&input, 7, false);
    exchange.response_data(&input, 5, true);
    exchange.take_outputs();
    exchange.complete(&later(42), || Some(201));
    let sample = exchange.take_outputs().finished;
    assert_eq!(
        sample,
        Some(Finished {
            operation: Some(0),
            status: StatusClass::Success,
            duration_ms: 42,
            request_bytes: 15,
            response_bytes: 12,
        })
    );
    // Once per stream.
    exchange.complete(&later(50), || Some(201));
    assert_eq!(exchange.take_outputs().finished, None);
}

#[test]
fn a_request_that_matched_no_operation_is_sampled_without_one() {
    let (p, input) = (policy(json!({"stats": {"analytics": true}})), input());
    let mut exchange = exchange(&p);
    let next = exchange.request_headers(&input, &head("GET", "/nope", &[]), true);
    assert_eq!(reply_rule(&next).map(|(status, _)| status), Some(404));
    exchange.complete(&input, || Some(404));
    let sample = exchange.take_outputs().finished.unwrap();
    assert_eq!(
        (sample.operation, sample.status, sample.duration_ms),
        (None, StatusClass::ClientError, 0)
    );
}

#[test]
fn without_analytics_nothing_is_sampled_and_the_status_is_not_asked() {
    let (p, input) = (policy(json!({})), input());
    let mut exchange = exchange(&p);
    exchange.request_headers(&input, &head("GET", "/users/7", &[]), true);
    exchange.complete(&input, || panic!("the status was asked for"));
    assert_eq!(exchange.take_outputs().finished, None);
}

/// An undeclared endpoint in monitor mode, with discovery: its JSON request and response
/// bodies are read (and only then let go on) and come out as lessons; a body over the
/// limit is let through unread.
#[test]
fn an_undeclared_request_that_goes_on_teaches_its_bodies_shapes() {
    let p = policy(json!({"mode": "monitor", "discovery": {}, "limits": {"max_body_bytes": 64}}));
    let input = input();
    let mut exchange = exchange(&p);
    let head = head("POST", "/users/7/notes", &[JSON]);
    assert_eq!(
        exchange.request_headers(&input, &head, false),
        Next::Continue(vec![])
    );
    assert!(exchange.take_outputs().undeclared.is_some());
    let body = br#"{"text": "hi", "pinned": true}"#;
    assert_eq!(exchange.request_data(&input, 10, false), Next::Buffer);
    assert_eq!(
        exchange.request_data(&input, body.len(), true),
        Next::Read(body.len())
    );
    assert_eq!(exchange.request_body(&input, body), Next::Continue(vec![]));
    let lessons = exchange.take_outputs().lessons;
    let [Lesson {
        about: Subject::Undeclared(request),
        sample: Sample::Request { media, schema },
    }] = lessons.as_slice()
    else {
        panic!("{lessons:?}");
    };
    assert_eq!(request.segments, ["users", "7", "notes"]);
    assert_eq!(media.as_deref(), Some("application/json"));
    let schema = schema.as_ref().unwrap().to_json();
    assert_eq!(schema["required"], json!(["pinned", "text"]));
    // The response: read because learning needs it, though no check does.
    assert!(exchange.checks_response());
    let response = [(":status", "201"), ("content-type", "application/json")];
    assert_eq!(
        exchange.response_headers(&input, &response, false),
        Next::Continue(vec![])
    );
    let answer = br#"{"id": 12}"#;
    assert_eq!(
        exchange.response_data(&input, answer.len(), true),
        Next::Read(answer.len())
    );
    assert_eq!(
        exchange.response_body(&input, answer),
        Next::Continue(vec![])
    );
    let lessons = exchange.take_outputs().lessons;
    let [Lesson {
        sample:
            Sample::Response {
                status: 201,
                schema: Some(schema),
                ..
            },
        ..
    }] = lessons.as_slice()
    else {
        panic!("{lessons:?}");
    };
    assert_eq!(schema.to_json()["properties"]["id"]["type"], "integer");

    // Over the body limit: not buffered, not learned, the media type still is.
    let mut exchange = testkit::exchange(&p);
    exchange.request_headers(&input, &head, false);
    assert_eq!(exchange.request_data(&input, 65, false), Next::GO);
    let lessons = exchange.take_outputs().lessons;
    assert!(
        matches!(
            lessons.as_slice(),
            [Lesson {
                sample: Sample::Request {
                    schema: None,
                    media: Some(_)
                },
                ..
            }]
        ),
        "{lessons:?}"
    );
    assert_eq!(exchange.request_data(&input, 90, true), Next::GO);
}

/// Without discovery, or in enforce mode (the request is refused), nothing is buffered
/// for learning.
#[test]
fn nothing_is_learned_without_discovery_or_from_refused_requests() {
    let input = input();
    for extra in [json!({"mode": "monitor"}), json!({"discovery": {}})] {
        let p = policy(extra);
        let mut exchange = exchange(&p);
        exchange.request_headers(&input, &head("POST", "/users/7/notes", &[JSON]), false);
        assert_eq!(exchange.request_data(&input, 10, true), Next::GO);
        assert!(!exchange.checks_response());
        assert!(exchange.take_outputs().lessons.is_empty());
    }
}

/// `discovery.learn`: a sampled exchange of a declared operation teaches its bodies'
/// shapes — the request body the check reads anyway, the response as the upstream
/// answered it — about its operation; a refused one teaches nothing, and a rate of 0
/// samples nothing.
#[test]
fn a_sampled_declared_operation_teaches_its_bodies_shapes() {
    let input = input();
    let p = policy(json!({"discovery": {"learn": 1.0}}));
    let create =
        (p.operations.iter()).position(|op| op.operation_id.as_deref() == Some("createUser"));
    let mut exchange = exchange(&p);
    exchange.request_headers(&input, &head("POST", "/users", &[JSON]), false);
    let body = br#"{"name": "ada", "age": 36}"#;
    assert_eq!(
        exchange.request_data(&input, body.len(), true),
        Next::Read(body.len())
    );
    assert_eq!(exchange.request_body(&input, body), Next::GO);
    let lessons = exchange.take_outputs().lessons;
    let [Lesson {
        about: Subject::Operation { id, .. },
        sample: Sample::Request {
            schema: Some(schema),
            ..
        },
    }] = lessons.as_slice()
    else {
        panic!("{lessons:?}");
    };
    assert_eq!(Some(*id), create);
    assert_eq!(schema.to_json()["required"], json!(["age", "name"]));
    // The response, though no check reads this one's body.
    let response = [(":status", "201"), ("content-type", "application/json")];
    exchange.response_headers(&input, &response, false);
    let answer = br#"{"id": 12, "name": "ada"}"#;
    assert_eq!(
        exchange.response_data(&input, answer.len(), true),
        Next::Read(answer.len())
    );
    exchange.response_body(&input, answer);
    let lessons = exchange.take_outputs().lessons;
    assert!(
        matches!(
            lessons.as_slice(),
            [Lesson {
                sample: Sample::Response {
                    status: 201,
                    schema: Some(_),
                    ..
                },
                ..
            }]
        ),
        "{lessons:?}"
    );

    // Refused (no `name`): nothing learned of it.
    let mut exchange = testkit::exchange(&p);
    exchange.request_headers(&input, &head("POST", "/users", &[JSON]), false);
    let bad = br#"{"age": 36}"#;
    exchange.request_data(&input, bad.len(), true);
    assert!(reply_rule(&exchange.request_body(&input, bad)).is_some());
    assert!(exchange.take_outputs().lessons.is_empty());
    assert!(exchange.learning.is_none());

    // A rate of 0 (the default) learns nothing; 0.5 about half, the same half each run.
    let sampled = |rate: f64| {
        let p = policy(json!({"discovery": {"learn": rate}}));
        (0..400)
            .filter(|i| {
                let mut exchange = testkit::exchange(&p);
                let path = format!("/users/{i}");
                exchange.request_headers(&input, &head("GET", &path, &[]), true);
                exchange.learning.is_some()
            })
            .count()
    };
    assert_eq!(sampled(0.0), 0);
    assert_eq!(sampled(1.0), 400);
    let half = sampled(0.5);
    assert!((150..250).contains(&half), "{half}");
    assert_eq!(sampled(0.5), half);
}

/// The sample key spreads real traffic (clock readings microseconds apart, a few paths)
/// evenly enough that `learn: 0.25` samples about a quarter of it, whatever the path.
#[test]
fn the_sample_key_samples_the_stated_share_of_traffic() {
    use crate::discovery::DiscoverySettings;
    let settings = DiscoverySettings {
        learn: 0.25,
        ..DiscoverySettings::default()
    };
    for path in ["/users", "/users/7", "/v1/pets?limit=10"] {
        let sampled = (0..20_000u64)
            .filter(|i| settings.samples(|| sample_key(T0 + i * 1_337, path)))
            .count();
        assert!((4_400..=5_600).contains(&sampled), "{path}: {sampled}");
    }
}
