//! The HTTP context: one per request. Each callback reads what Envoy has, feeds it to the
//! request's [`Exchange`] (where the order of the checks is written) and does what it
//! answers: change headers, buffer, read the body, reply, replace or withhold a response
//! body; then forwards its outputs (counters, filter state, events).
//!
//! A body ends with its last DATA frame or chunk, or with trailers (HTTP/2, HTTP/1.1 with
//! `enable_trailers`): the trailer callbacks hand over what was buffered, so trailers
//! never carry a body past the checks. Header changes happen only in header callbacks, as
//! the SDK requires.
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

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action as Flow, BufferType, LogLevel, MapType};

use super::api::Serving;
use super::events::{self as host_events, Emitter};
use super::metrics::{increment, Metrics};
use super::shared::HostInput;
use super::{log, set_header};
use crate::exchange::{
    canary_counter_name, Counter, Exchange, FilterState, HeaderChange, Input, Next,
};
use crate::gateway::Gateway;
use crate::problem;
use crate::verdict::{Action, RuleId};

/// What a configuration hands every request: the APIs and how to choose among them.
pub(super) struct Dispatch {
    pub(super) gateway: Gateway,
    /// Each API's state, in the gateway's order.
    pub(super) apis: Vec<Rc<Serving>>,
    /// `apiguard.*`, where requests no API matched are counted.
    pub(super) metrics: Rc<Metrics>,
    /// Where the events of requests no API matched go.
    pub(super) events: Rc<Emitter>,
}

pub(super) struct Request {
    /// `None` when no configuration compiled, or a remote source has not loaded one yet.
    dispatch: Option<Rc<Dispatch>>,
    /// Counts the request when it is refused for want of a policy.
    unavailable: Option<u32>,
    /// The API the request's authority and path chose, once its headers came.
    api: Option<Rc<Serving>>,
    /// `None` until an API is chosen.
    exchange: Option<Exchange>,
}

/// Which message of the exchange a callback is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Message {
    Request,
    Response,
}

impl Message {
    fn headers(self) -> MapType {
        match self {
            Message::Request => MapType::HttpRequestHeaders,
            Message::Response => MapType::HttpResponseHeaders,
        }
    }

    fn body(self) -> BufferType {
        match self {
            Message::Request => BufferType::HttpRequestBody,
            Message::Response => BufferType::HttpResponseBody,
        }
    }
}

impl Request {
    /// `dispatch`: the configuration's APIs; `None` when none compiled.
    pub(super) fn new(dispatch: Option<Rc<Dispatch>>, unavailable: Option<u32>) -> Self {
        Request {
            dispatch,
            unavailable,
            api: None,
            exchange: None,
        }
    }

    /// Chooses the request's API by its headers and starts its exchange; a request no API
    /// matches is answered here (`route.unknown_api`, or passed by a monitoring gateway).
    /// `None`: go on with the exchange; `Some`: what the callback returns.
    fn choose(&mut self, headers: &[(String, Vec<u8>)]) -> Option<Flow> {
        let Some(dispatch) = &self.dispatch else {
            // A remote source whose first bundle has not loaded (Envoy refuses a
            // configuration that did not compile): refused, not waved through.
            increment(self.unavailable);
            send(&problem::unconfigured());
            return Some(Flow::Pause);
        };
        if let Some(api) = (dispatch.gateway.select(headers)).and_then(|i| dispatch.apis.get(i)) {
            let exchange = Exchange::new(Rc::clone(&api.policy), Rc::clone(&api.ring));
            self.exchange = Some(exchange);
            self.api = Some(Rc::clone(api));
            return None;
        }
        let peer = HostInput.downstream();
        let unmatched =
            (dispatch.gateway).unmatched(headers, host_events::now_ms(), peer.as_deref());
        let metrics = &dispatch.metrics;
        let enforced = unmatched.action == Action::Block;
        for counter in [
            Counter::Inspected,
            Counter::Outcome(unmatched.action),
            Counter::Rule {
                rule: RuleId::UnknownApi,
                enforced,
            },
        ] {
            metrics.count(counter);
        }
        host_events::annotate(&FilterState {
            action: unmatched.action,
            rule: Some(RuleId::UnknownApi),
            operation: None,
        });
        if let Some(event) = &unmatched.event {
            dispatch.events.emit_at(unmatched.log, event);
        }
        match &unmatched.reply {
            Some(reply) => {
                send(reply);
                Some(Flow::Pause)
            }
            None => Some(Flow::Continue),
        }
    }

    /// Runs a request step of the exchange, timed into `apiguard.inspection_us` when the
    /// policy asks for it (`stats.inspection_time`).
    fn timed(&mut self, step: impl FnOnce(&mut Exchange) -> Next) -> Option<Next> {
        let exchange = self.exchange.as_mut()?;
        Some(match &self.api {
            Some(api) if api.policy.stats.inspection_time => api.metrics.timed(|| step(exchange)),
            _ => step(exchange),
        })
    }

    /// Runs a response step of the exchange.
    fn step(&mut self, step: impl FnOnce(&mut Exchange) -> Next) -> Option<Next> {
        self.exchange.as_mut().map(step)
    }

    /// Forwards what the exchange left (counters, filter state, events), then does what
    /// it answered.
    fn follow(&mut self, next: Option<Next>, message: Message) -> Flow {
        let Some(next) = next else {
            return Flow::Continue;
        };
        self.forward();
        match next {
            Next::Continue(changes) => {
                for change in changes {
                    change_header(message.headers(), change);
                }
                Flow::Continue
            }
            Next::Buffer => Flow::Pause,
            Next::Read(size) => {
                let Some(bytes) = buffer(message.body(), size) else {
                    send(&problem::unreadable_body());
                    return Flow::Pause;
                };
                let next = match message {
                    Message::Request => {
                        self.timed(|exchange| exchange.request_body(&HostInput, &bytes))
                    }
                    Message::Response => {
                        self.step(|exchange| exchange.response_body(&HostInput, &bytes))
                    }
                };
                self.follow(next, message)
            }
            Next::Reply(reply) => {
                send(&reply);
                Flow::Pause
            }
            Next::Withhold(size) => withhold(size),
            Next::Replace { size, body } => {
                if replace(message.body(), size, &body) {
                    Flow::Continue
                } else {
                    withhold(size)
                }
            }
        }
    }

    fn forward(&mut self) {
        let (Some(exchange), Some(api)) = (self.exchange.as_mut(), &self.api) else {
            return;
        };
        let (policy, metrics, operations) = (&api.policy, &api.metrics, &api.operations);
        let outputs = exchange.take_outputs();
        for counter in outputs.counters {
            match counter {
                Counter::Operation { id, blocked } => operations.outcome(id, blocked),
                Counter::Deprecated(id) => operations.deprecated(id),
                Counter::Canary {
                    change,
                    rule,
                    operation,
                } => metrics.canary(change, canary_counter_name(policy, change, rule, operation)),
                counter => metrics.count(counter),
            }
        }
        if let Some(state) = outputs.filter_state {
            host_events::annotate(&state);
        }
        for event in &outputs.events {
            api.events.emit(policy, event);
        }
        if let Some(discovery) = &api.discovery {
            if let Some(request) = &outputs.undeclared {
                discovery.observe(request);
            }
            for lesson in &outputs.lessons {
                discovery.learn(lesson);
            }
        }
        if let (Some(sample), Some(analytics)) = (&outputs.finished, &api.analytics) {
            analytics.record(sample);
        }
    }
}

impl Context for Request {}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _headers: usize, end_of_stream: bool) -> Flow {
        #[cfg(feature = "fault-injection")]
        super::fault::trap_if_asked();
        let headers = read_headers(MapType::HttpRequestHeaders);
        if let Some(flow) = self.choose(&headers) {
            return flow;
        }
        let next =
            self.timed(|exchange| exchange.request_headers(&HostInput, &headers, end_of_stream));
        self.follow(next, Message::Request)
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Flow {
        let next = self.step(|e| e.request_data(&HostInput, body_size, end_of_stream));
        self.follow(next, Message::Request)
    }

    fn on_http_request_trailers(&mut self, _trailers: usize) -> Flow {
        let next = self.step(Exchange::request_trailers);
        self.follow(next, Message::Request)
    }

    fn on_http_response_headers(&mut self, _headers: usize, end_of_stream: bool) -> Flow {
        let mut reads = (self.exchange.as_ref()).is_some_and(Exchange::checks_response);
        if reads && !from_upstream() {
            if let Some(exchange) = &mut self.exchange {
                exchange.skip_response();
            }
            reads = false;
        }
        let headers = match reads {
            true => read_headers(MapType::HttpResponseHeaders),
            false => Vec::new(),
        };
        let next =
            self.step(|exchange| exchange.response_headers(&HostInput, &headers, end_of_stream));
        self.follow(next, Message::Response)
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Flow {
        let next = self.step(|e| e.response_data(&HostInput, body_size, end_of_stream));
        self.follow(next, Message::Response)
    }

    fn on_http_response_trailers(&mut self, _trailers: usize) -> Flow {
        let next = self.step(Exchange::response_trailers);
        self.follow(next, Message::Response)
    }

    /// The stream is over (Envoy calls this as it writes its access logs, for every
    /// stream: answered, refused, or reset): the per-operation analytics.
    fn on_log(&mut self) {
        if let Some(exchange) = &mut self.exchange {
            exchange.complete(&HostInput, response_code);
            self.forward();
        }
    }
}

/// The status Envoy sent downstream (`response.code`: the upstream's, Envoy's own reply,
/// or this filter's); `None` when no response began (the property reads 0). Envoy hands
/// integer properties over as 8 little-endian bytes.
fn response_code() -> Option<u16> {
    let bytes = hostcalls::get_property(vec!["response", "code"])
        .ok()
        .flatten()?;
    let code = i64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    u16::try_from(code).ok().filter(|&code| code > 0)
}

/// Whether the response being sent is the upstream's, not Envoy's own reply to an upstream
/// that reset, timed out or was not there (`response.code_details` is `via_upstream`
/// then). One property read, only when the response is to be checked; a property the host
/// cannot give reads as the upstream's, which is checked: failures close.
fn from_upstream() -> bool {
    match hostcalls::get_property(vec!["response", "code_details"]) {
        Ok(Some(details)) => details == b"via_upstream",
        _ => true,
    }
}

/// A header map as Envoy gives it; a map the host cannot give reads as empty, which the
/// checks refuse: failures close.
fn read_headers(map: MapType) -> Vec<(String, Vec<u8>)> {
    hostcalls::get_map_bytes(map).unwrap_or_default()
}

fn change_header(map: MapType, change: HeaderChange) {
    match change {
        HeaderChange::Set(name, value) => set_header(map, &name, value.as_deref()),
        // Advice to the client only (`RateLimit`): a failure to add it changes no decision.
        HeaderChange::Add(name, value) => {
            let _ = hostcalls::add_map_value(map, name, &value);
        }
    }
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
