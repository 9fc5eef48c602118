//! The HTTP context: one per request. Gathers what the engine needs from Envoy, applies
//! its verdicts, and buffers bodies only when the contract has something to check in
//! them.
//!
//! Request: headers are inspected first; if the body must be checked, it is buffered up
//! to the policy's limit and inspected before any of it goes on. A body ends with its
//! last DATA frame or chunk, or with trailers (HTTP/2, HTTP/1.1 with `enable_trailers`):
//! the trailer callbacks inspect what was buffered, so trailers never carry a body past
//! the checks. An empty body is no body. Response: the status and media type are checked;
//! a JSON body is buffered, checked, and trimmed when redaction is on (see
//! [`crate::response`] for what redaction does with a body it cannot check). Header
//! changes happen only in header callbacks, as the SDK requires.
//!
//! A proxy-wasm filter cannot hold the headers while it reads the body: the host turns a
//! paused header callback into "stop all iteration", and no body callback comes until
//! the headers continue. So the headers go on while the body is held. The shipped Envoy
//! configs put Envoy's `buffer` filter after this one: it holds the headers until the
//! whole body has passed this filter, so the upstream receives nothing of a request that
//! is then refused for its body (without it, the upstream would see the head open and
//! reset, and one that answers before reading the body would have its answer reach the
//! client). On responses, a body violation in `enforce` mode comes after the status was
//! sent: the local reply then resets the stream rather than deliver a body that breaks
//! the contract.

use std::borrow::Cow;
use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action as Flow, BufferType, LogLevel, MapType};

use super::abuse::{self, Guard};
use super::events::{self as host_events, Emitter, OperationCounters};
use super::identity;
use super::metrics::Metrics;
use super::{log, set_header, shared};
use crate::abuse::Client;
use crate::config::OperationMode;
use crate::events::{Event, RequestContext};
use crate::inspect::{BodyCheck, RequestHead};
use crate::policy::Policy;
use crate::problem;
use crate::response::ResponseBodyCheck;
use crate::security::Identity;
use crate::verdict::{Action, Verdict};

pub struct Request {
    policy: Option<Rc<Policy>>,
    metrics: Option<Rc<Metrics>>,
    /// The operation the request matched, for the response checks.
    operation: Option<usize>,
    /// A request body being buffered for inspection.
    request_body: Option<BodyCheck>,
    /// A response body being buffered for inspection.
    response_body: Option<ResponseBodyCheck>,
    /// The bytes buffered so far, for the trailer callbacks that end a body.
    request_buffered: usize,
    response_buffered: usize,
    /// Redaction could not check the response: what is left of its body is dropped.
    withholding: bool,
    /// Whether a verdict about the request recorded a violation.
    recorded: bool,
    /// Quarantine, rate limits and what they add to replies.
    abuse: Guard,
    events: Rc<Emitter>,
    operations: Option<Rc<OperationCounters>>,
    /// What events say about the request: method, path, `x-request-id`, upstream status.
    facts: Facts,
}

#[derive(Default)]
struct Facts {
    method: String,
    path: String,
    request_id: Option<String>,
    /// Who the token checks verified; events name it by [`Identity::label`] only.
    identity: Option<Identity>,
    status: Option<u16>,
}

/// Which verdict of a request's life is being applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The request head, with its body still to be checked.
    RequestHead,
    /// The last word on the request: it goes upstream unless this blocks.
    RequestEnd,
    Response,
}

impl Request {
    pub fn new(
        policy: Option<Rc<Policy>>,
        metrics: Option<Rc<Metrics>>,
        events: Rc<Emitter>,
        operations: Option<Rc<OperationCounters>>,
    ) -> Self {
        Request {
            policy,
            metrics,
            operation: None,
            request_body: None,
            response_body: None,
            request_buffered: 0,
            response_buffered: 0,
            withholding: false,
            recorded: false,
            abuse: Guard::default(),
            events,
            operations,
            facts: Facts::default(),
        }
    }

    /// Runs an inspection, timed into `apiguard.inspection_us` when the policy asks for it
    /// (`stats.inspection_time`).
    fn timed<T>(&self, policy: &Policy, inspect: impl FnOnce() -> T) -> T {
        match &self.metrics {
            Some(metrics) if policy.stats.inspection_time => metrics.timed(inspect),
            _ => inspect(),
        }
    }

    /// Builds something from what events say about this request, read now.
    fn with_context<T>(&self, build: impl FnOnce(&RequestContext<'_>) -> T) -> T {
        let client = host_events::client_ip();
        // Hashed here, when an event is made, not for every request.
        let identity = self.facts.identity.as_ref().and_then(Identity::label);
        build(&RequestContext {
            time_ms: host_events::now_ms(),
            method: &self.facts.method,
            path: &self.facts.path,
            client: client.as_deref(),
            identity: identity.as_deref(),
            request_id: self.facts.request_id.as_deref(),
            status: self.facts.status,
        })
    }

    /// Counts and logs a verdict; sends the problem when it blocks. Returns whether it
    /// blocked.
    fn apply(&mut self, policy: &Policy, verdict: &Verdict<'_>, phase: Phase) -> bool {
        let blocked = verdict.action == Action::Block;
        if phase != Phase::Response {
            self.recorded |= !verdict.violations.is_empty();
        }
        if let Some(metrics) = &self.metrics {
            metrics.rules(verdict);
        }
        if phase == Phase::RequestEnd || (phase == Phase::RequestHead && blocked) {
            let outcome = match (blocked, self.recorded) {
                (true, _) => Action::Block,
                (false, true) => Action::Monitor,
                (false, false) => Action::Allow,
            };
            if let Some(metrics) = &self.metrics {
                metrics.outcome(outcome);
            }
            let operation = verdict.operation.map(|o| o.id).or(self.operation);
            if let Some(operations) = &self.operations {
                operations.outcome(operation, blocked);
            }
            let label = operation
                .and_then(|id| policy.operations.get(id))
                .map(host_events::stat_name);
            host_events::annotate(outcome, verdict, label.as_deref());
        }
        if !verdict.violations.is_empty() {
            let event =
                self.with_context(|request| Event::from_verdict(&policy.events, verdict, request));
            if let Some(event) = event {
                self.events.emit(policy, &event);
            }
        }
        match (blocked, verdict.rule()) {
            (true, Some(rule)) => {
                // Our own reply goes back through the response callbacks: it is not the
                // upstream's answer, so nothing more is checked.
                self.operation = None;
                self.response_body = None;
                let by_client = phase != Phase::Response;
                let metrics = self.metrics.as_deref();
                let mut reply = problem::reply(&policy.name, rule, verdict);
                let (headers, quarantine) = self.abuse.blocked(policy, metrics, rule, by_client);
                reply.headers.extend(headers);
                send(&reply);
                if let Some(duration) = quarantine {
                    let ip = self.abuse.client_ip().map(|ip| ip.to_string());
                    let event = self.with_context(|request| {
                        let request = RequestContext {
                            client: ip.as_deref().or(request.client),
                            ..*request
                        };
                        Event::quarantine_started(&policy.events, duration, &request)
                    });
                    self.events.emit(policy, &event);
                }
                true
            }
            _ => false,
        }
    }
}

impl Context for Request {}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _headers: usize, end_of_stream: bool) -> Flow {
        let Some(policy) = self.policy.clone() else {
            // Unreachable in practice (Envoy refuses a configuration that did not
            // compile), but if it happens the request is refused, not waved through.
            send(&problem::unconfigured());
            return Flow::Pause;
        };
        if let Some(metrics) = &self.metrics {
            metrics.inspected();
        }
        let headers = Headers::read(MapType::HttpRequestHeaders);
        self.facts.method = headers.get(":method").into_owned();
        self.facts.path = headers.get(":path").into_owned();
        self.facts.request_id =
            Some(headers.get("x-request-id").into_owned()).filter(|id| !id.is_empty());
        let regular = headers.regular();
        let pairs = borrowed(&regular);
        // A header the host cannot give reads as empty, which the engine refuses: failures
        // close.
        let (method, path) = (headers.get(":method"), headers.get(":path"));
        let head = RequestHead {
            method: method.as_bytes(),
            path: path.as_bytes(),
            headers: &pairs,
            has_body: !end_of_stream,
        };
        let (mut verdict, mut body) = self.timed(&policy, || {
            let (mut verdict, body) = policy.inspect(&head);
            policy.inspect_anomalies(&head, Some(&headers.get(":authority")), &mut verdict);
            (verdict, body)
        });
        // The quarantine and the rate limits know the client by the identity the token
        // checks (part of `inspect`) verified, as well as by its address and headers.
        self.facts.identity = verdict.identity.take();
        let (subject, consumer) = match &self.facts.identity {
            Some(identity) => (identity.subject.clone(), identity.consumer.clone()),
            None => (None, None),
        };
        let downstream = abuse::downstream(&policy);
        let client = Client {
            downstream: downstream.as_deref(),
            headers: &pairs,
            subject: subject.as_deref(),
            consumer: consumer.as_deref(),
        };
        let now = policy.abuse.as_ref().map_or(0, |_| shared::now());
        if let Some(refusal) = self.abuse.quarantined(&policy, &client, now) {
            // `RequestHead`: a monitored quarantine is not the request's last word.
            if self.apply(&policy, &refusal, Phase::RequestHead) {
                return Flow::Pause;
            }
        }
        if verdict.action != Action::Block {
            let metrics = self.metrics.as_deref();
            (self.abuse).rate_limit(&policy, metrics, &client, now, &mut verdict);
        }
        if verdict.action == Action::Block {
            body = None;
        }
        let phase = if body.is_some() {
            Phase::RequestHead
        } else {
            Phase::RequestEnd
        };
        if self.apply(&policy, &verdict, phase) {
            return Flow::Pause;
        }
        identity::apply(&policy, self.facts.identity.as_ref(), &pairs);
        let cookies: Vec<&[u8]> = headers.values("cookie").collect();
        identity::strip_token(
            self.facts.identity.as_ref(),
            headers.bytes(":path"),
            &cookies,
        );
        self.operation = verdict.operation.map(|o| o.id);
        if self
            .operation
            .is_some_and(|id| policy.wants_identity_response(id))
        {
            // A compressed answer could not be redacted (and would be refused).
            set_header(
                MapType::HttpRequestHeaders,
                "accept-encoding",
                Some(b"identity"),
            );
        }
        self.request_body = body;
        Flow::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Flow {
        let (Some(policy), Some(check)) = (self.policy.clone(), self.request_body.as_ref()) else {
            return Flow::Continue;
        };
        self.request_buffered = body_size;
        // Refused as soon as it is too large (the rest is never buffered) or breaks the
        // contract with its first byte.
        if let Some(verdict) = policy.inspect_body_start(check, body_size) {
            self.request_body = None;
            if self.apply(&policy, &verdict, Phase::RequestEnd) {
                return Flow::Pause;
            }
            return Flow::Continue;
        }
        if !end_of_stream {
            return Flow::Pause;
        }
        self.request_body_end(&policy)
    }

    fn on_http_request_trailers(&mut self, _trailers: usize) -> Flow {
        match self.policy.clone() {
            Some(policy) => self.request_body_end(&policy),
            None => Flow::Continue,
        }
    }

    fn on_http_response_headers(&mut self, _headers: usize, end_of_stream: bool) -> Flow {
        self.abuse.add_response_headers();
        let (Some(policy), Some(operation)) = (self.policy.clone(), self.operation) else {
            return Flow::Continue;
        };
        if policy.response_mode() == OperationMode::Off {
            return Flow::Continue;
        }
        let headers = Headers::read(MapType::HttpResponseHeaders);
        let status = headers.get(":status").parse().unwrap_or(0);
        self.facts.status = Some(status);
        let regular = headers.regular();
        let (verdict, check) =
            policy.inspect_response(operation, status, &borrowed(&regular), !end_of_stream);
        if self.apply(&policy, &verdict, Phase::Response) {
            return Flow::Pause;
        }
        let Some(check) = check else {
            return Flow::Continue;
        };
        self.response_body = Some(check);
        if policy.responses.redact {
            // The body may shrink or be withheld; let Envoy frame it (chunked / HTTP/2
            // frames).
            set_header(MapType::HttpResponseHeaders, "content-length", None);
        }
        Flow::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Flow {
        if self.withholding {
            return withhold(body_size);
        }
        let (Some(policy), Some(_)) = (self.policy.clone(), self.response_body) else {
            return Flow::Continue;
        };
        self.response_buffered = body_size;
        if body_size > policy.body_limit() {
            self.response_body = None;
            let checked = policy.response_too_large(self.operation.unwrap_or_default());
            self.apply(&policy, &checked.verdict, Phase::Response);
            if checked.withheld {
                self.withholding = true;
                return withhold(body_size);
            }
            return Flow::Continue;
        }
        if !end_of_stream {
            return Flow::Pause;
        }
        self.response_body_end(&policy)
    }

    fn on_http_response_trailers(&mut self, _trailers: usize) -> Flow {
        match self.policy.clone() {
            Some(policy) => self.response_body_end(&policy),
            None => Flow::Continue,
        }
    }
}

impl Request {
    /// Inspects a buffered request body at its end (last frame or trailers).
    fn request_body_end(&mut self, policy: &Policy) -> Flow {
        let Some(check) = self.request_body.take() else {
            return Flow::Continue;
        };
        let Some(bytes) = buffer(BufferType::HttpRequestBody, self.request_buffered) else {
            send(&problem::unreadable_body());
            return Flow::Pause;
        };
        let verdict = self.timed(policy, || {
            let mut verdict = policy.inspect_body(&check, &bytes);
            policy.inspect_body_anomalies(&check, &bytes, &mut verdict);
            verdict
        });
        if self.apply(policy, &verdict, Phase::RequestEnd) {
            return Flow::Pause;
        }
        Flow::Continue
    }

    /// Inspects a buffered response body at its end, and redacts or withholds it.
    fn response_body_end(&mut self, policy: &Policy) -> Flow {
        let Some(check) = self.response_body.take() else {
            return Flow::Continue;
        };
        let size = self.response_buffered;
        let Some(bytes) = buffer(BufferType::HttpResponseBody, size) else {
            send(&problem::unreadable_body());
            return Flow::Pause;
        };
        let checked = policy.inspect_response_body(&check, &bytes);
        if self.apply(policy, &checked.verdict, Phase::Response) {
            return Flow::Pause;
        }
        if checked.withheld {
            return withhold(size);
        } else if let Some(redacted) = checked.redacted {
            if let Some(metrics) = &self.metrics {
                metrics.redacted(checked.redacted_count);
            }
            if let Some(operation) = self.operation.and_then(|id| policy.operations.get(id)) {
                let count = checked.redacted_count;
                let event = self.with_context(|request| {
                    Event::redacted(&policy.events, operation, count, request)
                });
                self.events.emit(policy, &event);
            }
            if !replace(BufferType::HttpResponseBody, size, &redacted) {
                return withhold(size);
            }
        }
        Flow::Continue
    }
}

/// A header map as Envoy gave it. Values are bytes on the wire; non-UTF-8 ones are read
/// lossily, so that they fail any declared pattern rather than pass unseen.
struct Headers(Vec<(String, Vec<u8>)>);

impl Headers {
    fn read(map: MapType) -> Headers {
        Headers(hostcalls::get_map_bytes(map).unwrap_or_default())
    }

    fn get(&self, name: &str) -> Cow<'_, str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map_or(Cow::Borrowed(""), |(_, v)| String::from_utf8_lossy(v))
    }

    /// Every value of `name`, as the bytes Envoy holds.
    fn values<'h>(&'h self, name: &'h str) -> impl Iterator<Item = &'h [u8]> + 'h {
        self.0
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The first value of `name` as bytes; empty when absent.
    fn bytes(&self, name: &str) -> &[u8] {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map_or(&[], |(_, v)| v.as_slice())
    }

    /// The regular headers (no `:pseudo` ones), names lowercase as Envoy keeps them.
    fn regular(&self) -> Vec<(&str, Cow<'_, str>)> {
        self.0
            .iter()
            .filter(|(name, _)| !name.starts_with(':'))
            .map(|(name, value)| (name.as_str(), String::from_utf8_lossy(value)))
            .collect()
    }
}

fn borrowed<'a>(headers: &'a [(&'a str, Cow<'a, str>)]) -> Vec<(&'a str, &'a str)> {
    headers
        .iter()
        .map(|(name, value)| (*name, value.as_ref()))
        .collect()
}

/// The `size` bytes of a body Envoy buffered; `None` when the host cannot give them, which
/// the callers refuse rather than read as an empty body.
fn buffer(kind: BufferType, size: usize) -> Option<Vec<u8>> {
    if size == 0 {
        return Some(Vec::new());
    }
    let bytes = hostcalls::get_buffer(kind, 0, size).ok().flatten();
    if bytes.is_none() {
        log(LogLevel::Error, &format!("cannot read the {kind:?} buffer"));
    }
    bytes
}

/// Replaces the first `size` bytes of a body with `bytes`.
fn replace(kind: BufferType, size: usize, bytes: &[u8]) -> bool {
    let replaced = hostcalls::set_buffer(kind, 0, size, bytes).is_ok();
    if !replaced {
        log(
            LogLevel::Error,
            &format!("cannot replace the {kind:?} buffer"),
        );
    }
    replaced
}

/// Drops the `size` response bytes buffered: redaction could not check them. If even that
/// fails, the local reply resets the stream, so they never go out.
fn withhold(size: usize) -> Flow {
    if replace(BufferType::HttpResponseBody, size, &[]) {
        return Flow::Continue;
    }
    send(&problem::unreadable_body());
    Flow::Pause
}

fn send(reply: &problem::Reply) {
    let headers = reply
        .headers
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    if let Err(status) =
        hostcalls::send_http_response(reply.status.into(), headers, Some(&reply.body))
    {
        log(
            LogLevel::Error,
            &format!("cannot send the local reply: {status:?}"),
        );
    }
}
