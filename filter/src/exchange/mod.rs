//! One request and its response, through the policy: the order of a request's checks,
//! written once.
//!
//! An [`Exchange`] is made per request from the compiled [`Policy`]. It does no I/O
//! (sans-IO, like `h11` or Kuadrant's wasm-shim pipeline): the host feeds it what it read
//! — the request head, the size of the body buffered so far and, when asked, its bytes;
//! then the response head and body — with an [`Input`] for what else it may need (the
//! clock, the client's address, shared data). Each step answers with what the host must
//! do ([`Next`]: go on with header changes, keep buffering, hand over the buffered body,
//! reply with a problem, replace or withhold a response body), and leaves in [`Outputs`]
//! what the host only forwards: counter increments, events, access-log fields. The host
//! callbacks (`host::http`), the policies' case files, the bench and the unit tests all
//! run this one pipeline.
//!
//! The order of a request's checks:
//!
//! 1. The head, by [`Policy::inspect_at`]: count caps, path, route and method, override
//!    channels, then credentials (tokens and API keys, which name the client), then the
//!    operation's parameters and the body's media type.
//! 2. Anomalies of the head ([`Policy::inspect_anomalies`]), scored into the same verdict.
//! 3. The quarantine: a quarantined client is refused whatever the checks above found.
//!    It knows the client by address, headers and the identity step 1 verified.
//! 4. Rate limits, for a request nothing above blocked (a refused request is not counted).
//!    Then behaviour ([`crate::behaviour`]): a refusal of the credentials of a sensitive
//!    operation is a failed sign-in, a client its sign-in window finds is refused, and a
//!    request nothing refused counts the object it names.
//! 5. A strike against the client for every request refused because of it (not for a
//!    refusal by the quarantine itself, nor for a bad upstream response).
//! 6. The body, when the contract has something to check in it: refused as soon as it is
//!    too large or its first byte settles it, else buffered and checked at its end (last
//!    chunk or trailers) by [`Policy::inspect_body`] and its anomalies
//!    ([`Policy::inspect_body_anomalies`]); then the username of a sign-in is counted.
//! 7. The response: the upstream's status counted by behaviour (denials, failed
//!    sign-ins); status and media type, then a JSON body, redacted when the policy says
//!    so (see [`crate::policy::response`]).
//!
//! A request that goes on has the managed identity headers rewritten first
//! ([`upstream`]).

pub(crate) mod analytics;
mod canary;
mod guard;
mod learning;
#[cfg(test)]
mod tests;
mod upstream;
mod watch;

use std::borrow::Cow;
use std::rc::Rc;

use crate::abuse::slots::{SharedStore, SlotReport, SlotSecret};
use crate::abuse::Client;
use crate::contract::path;
use crate::discovery::{Lesson, Subject, Undeclared};
use crate::events::{self, Event, RequestContext};
use crate::policy::response::ResponseBodyCheck;
use crate::policy::BodyCheck;
use crate::policy::Policy;
use crate::problem::{self, Reply};
use crate::request::{lossy, Identity, Method, RequestHead};
use crate::security::KeyRing;
use crate::settings::OperationMode;
use crate::verdict::{Action, RuleId, Verdict};
use analytics::BodyMeter;
pub use analytics::{Finished, StatusClass};
use canary::Canary;
pub use canary::{counter_name as canary_counter_name, Change as CanaryChange, Contract};
use guard::Guard;
use learning::{Learning, Want};
use watch::Watch;

/// What a step needs from the host besides the message. Each is read only when a check
/// asks for it, at most once per step (the address once per exchange), so a request no
/// check asks about costs no host call.
pub trait Input {
    /// The shared data the host gives access to.
    type Store: SharedStore;
    /// The wall clock in nanoseconds since the Unix epoch; 0 when the host cannot tell
    /// (slots then read as stale, and so admit: see `host::shared`).
    fn now(&self) -> u64;
    /// The downstream address as Envoy gives it (`1.2.3.4:5678`, `[::1]:5678`).
    fn downstream(&self) -> Option<String>;
    /// The shared data the rate limits and the quarantine keep their slots in.
    fn store(&self) -> &Self::Store;
    /// The process's slot secret ([`SlotSecret`]).
    fn slot_secret(&self) -> SlotSecret;
}

/// An [`Input`] of fixed values: how the case files, the bench and tests run exchanges.
pub struct Values<S> {
    /// [`Input::now`].
    pub now: u64,
    /// [`Input::downstream`].
    pub downstream: Option<String>,
    /// [`Input::store`].
    pub store: S,
    /// [`Input::slot_secret`].
    pub secret: SlotSecret,
}

impl<S: SharedStore> Input for Values<S> {
    type Store = S;

    fn now(&self) -> u64 {
        self.now
    }

    fn downstream(&self) -> Option<String> {
        self.downstream.clone()
    }

    fn store(&self) -> &S {
        &self.store
    }

    fn slot_secret(&self) -> SlotSecret {
        self.secret
    }
}

/// What the host does after a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Let the message go on, after these changes to the headers just fed (only a header
    /// step makes any).
    Continue(Vec<HeaderChange>),
    /// Hold the body: more of it is needed (the callback pauses, the host buffers).
    Buffer,
    /// The body is complete: hand its first `n` buffered bytes to
    /// [`Exchange::request_body`] or [`Exchange::response_body`].
    Read(usize),
    /// Send this local reply instead of the message.
    Reply(Reply),
    /// Drop the first `n` buffered response bytes: redaction could not check them.
    Withhold(usize),
    /// Replace the first `size` buffered response bytes with `body` (redacted).
    Replace {
        /// How many buffered bytes the new body replaces.
        size: usize,
        /// The redacted body.
        body: Vec<u8>,
    },
}

impl Next {
    const GO: Next = Next::Continue(Vec::new());

    /// A body being buffered has reached `size` bytes: more to come, or all of it to read.
    fn more_or_read(size: usize, end_of_stream: bool) -> Next {
        if end_of_stream {
            Next::Read(size)
        } else {
            Next::Buffer
        }
    }

    /// Trailers end a message: a body being buffered is complete at `size` bytes.
    fn complete(buffering: bool, size: usize) -> Next {
        if buffering {
            Next::Read(size)
        } else {
            Next::GO
        }
    }
}

/// What discovery records of a request the router could not place: no template matches its
/// path, or its template declares no operation for its method. Nothing for other verdicts.
fn undeclared(head: &RequestHead<'_>, verdict: &Verdict<'_>, time: u64) -> Option<Undeclared> {
    let routing = matches!(
        verdict.rule(),
        Some(RuleId::UnknownPath | RuleId::MethodNotAllowed)
    );
    let method = Method::from_request(head.method).filter(|_| routing)?;
    let path = path::parse(head.path).ok()?;
    Some(Undeclared {
        method,
        segments: path.segments.into_iter().map(String::from).collect(),
        time,
    })
}

/// The key that picks a declared operation's exchange for learning
/// ([`crate::discovery::DiscoverySettings::samples`]): its clock reading in nanoseconds and
/// its path, hashed without a copy of either (it runs on every request while learning is
/// on). The product by 2^64/φ (Fibonacci hashing) carries every bit of the mix into the
/// high bits, which are the ones `samples` compares.
fn sample_key(now: u64, path: &str) -> u64 {
    (events::hash64(path.as_bytes()) ^ now).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// A change to the headers of the message being fed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderChange {
    /// Sets the header (replacing every value), or removes it (`None`).
    Set(String, Option<Vec<u8>>),
    /// Adds a value beside those the message has.
    Add(&'static str, String),
}

/// What a step produced that the host only forwards.
#[derive(Debug, Default)]
pub struct Outputs {
    /// Counter increments, in the order they happened.
    pub counters: Vec<Counter>,
    /// Security events, for the event pipeline.
    pub events: Vec<Event>,
    /// The request's final outcome, for access logs (filter state); set once per request.
    pub filter_state: Option<FilterState>,
    /// A request no template matched, when the policy discovers them.
    pub undeclared: Option<Undeclared>,
    /// The finished request, for the per-operation stats (`stats.analytics`); set once,
    /// by [`Exchange::complete`].
    pub finished: Option<Finished>,
    /// What such a request's body or response taught, when the policy learns schemas.
    pub lessons: Vec<Lesson>,
}

/// A counter increment (`host::metrics` names them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// A request reached the filter.
    Inspected,
    /// What finally happened to a request.
    Outcome(Action),
    /// A rule a verdict reported, once per verdict: blocked when enforced, else monitored.
    Rule {
        /// The rule.
        rule: RuleId,
        /// Whether the finding blocked.
        enforced: bool,
    },
    /// A request's final outcome, by the operation it matched.
    Operation {
        /// The operation's index in the policy.
        id: usize,
        /// Whether the request was refused.
        blocked: bool,
    },
    /// What happened in a shared-data slot.
    Slot(SlotReport),
    /// A client was put in quarantine.
    QuarantineStarted,
    /// Properties removed from a response body.
    Redacted(usize),
    /// A call to an operation the document marks `deprecated` (a zombie endpoint), by
    /// the operation's index in the policy.
    Deprecated(usize),
    /// The policy's candidate contract would decide the request otherwise (the contract
    /// canary): named by [`canary_counter_name`].
    Canary {
        /// How its verdict differs.
        change: CanaryChange,
        /// The refusing side's rule.
        rule: RuleId,
        /// The operation, in the contract that matched it.
        operation: Option<(Contract, usize)>,
    },
}

/// The access-log fields of a request's final outcome (`wasm.apiguard.action`, `.rule`,
/// `.operation`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterState {
    /// What happened to the request.
    pub action: Action,
    /// The rule that decided it, if one did.
    pub rule: Option<RuleId>,
    /// The operation's label (`CompiledOperation::label`).
    pub operation: Option<Rc<str>>,
}

/// One request and its response, through the policy (see the module docs for the order).
pub struct Exchange {
    policy: Rc<Policy>,
    /// What the token checks learnt while the policy serves (fetched keys, the token
    /// cache), shared by every exchange of the policy.
    ring: Rc<KeyRing>,
    /// The operation the request matched, for the response checks.
    operation: Option<usize>,
    /// A request body being buffered for inspection.
    request_body: Option<BodyCheck>,
    /// A response body being buffered for inspection.
    response_body: Option<ResponseBodyCheck>,
    /// The bytes buffered so far, for the trailers that end a body.
    request_buffered: usize,
    response_buffered: usize,
    /// Redaction could not check the response: what is left of its body is dropped.
    withholding: bool,
    /// An undeclared request that goes on, being learned from (discovery).
    learning: Option<Learning>,
    /// Whether a verdict about the request recorded a violation.
    recorded: bool,
    /// Quarantine, rate limits and what they add to replies.
    guard: Guard,
    /// What behaviour counted and found.
    watch: Watch,
    /// What events say about the request.
    facts: Facts,
    /// The downstream address, once read (`Some(None)`: the host has none).
    downstream: Option<Option<String>>,
    /// The candidate contract's view of the request, while it is being checked.
    canary: Option<Canary>,
    /// When the request head came (the clock every head step reads), for
    /// [`Exchange::complete`]; `None` before it came or when the host could not tell.
    started: Option<u64>,
    /// The operation the request matched, whatever became of it (the response checks'
    /// `operation` is cleared when they have nothing to check).
    matched: Option<usize>,
    /// The body sizes as they passed the filter.
    request_size: BodyMeter,
    response_size: BodyMeter,
    outputs: Outputs,
}

/// What events say about the request: method, path, `x-request-id`, upstream status.
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

/// One step's view of the [`Input`]: the clock read at most once.
struct Step<'i, I> {
    input: &'i I,
    now: std::cell::Cell<Option<u64>>,
}

impl<'i, I: Input> Step<'i, I> {
    fn new(input: &'i I) -> Self {
        Step {
            input,
            now: std::cell::Cell::new(None),
        }
    }

    fn now(&self) -> u64 {
        // `Cell::get` hands out a copy: the reading is stored back explicitly.
        if let Some(now) = self.now.get() {
            return now;
        }
        let now = self.input.now();
        self.now.set(Some(now));
        now
    }
}

impl Exchange {
    /// `ring`: the policy's [`KeyRing`], owned by the host's root.
    pub fn new(policy: Rc<Policy>, ring: Rc<KeyRing>) -> Exchange {
        Exchange {
            policy,
            ring,
            operation: None,
            request_body: None,
            response_body: None,
            request_buffered: 0,
            response_buffered: 0,
            withholding: false,
            learning: None,
            recorded: false,
            guard: Guard::default(),
            watch: Watch::default(),
            facts: Facts::default(),
            downstream: None,
            canary: None,
            started: None,
            matched: None,
            request_size: BodyMeter::default(),
            response_size: BodyMeter::default(),
            outputs: Outputs::default(),
        }
    }

    /// What the steps so far left for the host to forward; taken, so each is forwarded
    /// once.
    pub fn take_outputs(&mut self) -> Outputs {
        std::mem::take(&mut self.outputs)
    }

    /// The request head (pseudo-headers included, names lowercase as Envoy keeps them).
    /// `end_of_stream`: no body follows.
    pub fn request_headers<I, N, V>(
        &mut self,
        input: &I,
        headers: &[(N, V)],
        end_of_stream: bool,
    ) -> Next
    where
        I: Input,
        N: AsRef<str>,
        V: AsRef<[u8]>,
    {
        let step = Step::new(input);
        let policy = Rc::clone(&self.policy);
        self.outputs.counters.push(Counter::Inspected);
        let headers = Headers(headers);
        self.facts.method = headers.get(":method").into_owned();
        self.facts.path = headers.get(":path").into_owned();
        self.facts.request_id =
            Some(headers.get("x-request-id").into_owned()).filter(|id| !id.is_empty());
        let regular = headers.regular();
        let pairs = borrowed(&regular);
        // A header the host could not give reads as empty, which the checks refuse:
        // failures close.
        let (method, path) = (headers.get(":method"), headers.get(":path"));
        let head = RequestHead {
            method: method.as_bytes(),
            path: path.as_bytes(),
            headers: &pairs,
            has_body: !end_of_stream,
        };
        self.started = Some(step.now()).filter(|&now| now > 0);
        let seconds = step.now() / 1_000_000_000;
        let (mut verdict, mut body) = policy.inspect_at(&head, &self.ring, seconds);
        self.canary = Canary::start(&policy, &verdict, &head, &self.ring, seconds);
        self.matched = verdict.operation.map(|o| o.id);
        if policy.discovery.is_some() {
            self.outputs.undeclared = undeclared(&head, &verdict, seconds);
        }
        policy.inspect_anomalies(&head, Some(&headers.get(":authority")), &mut verdict);
        // The quarantine and the rate limits know the client by the identity the token
        // checks verified, as well as by its address and headers.
        self.facts.identity = verdict.identity.take();
        let (subject, consumer) = match &self.facts.identity {
            Some(identity) => (identity.subject.clone(), identity.consumer.clone()),
            None => (None, None),
        };
        let reads_address = (policy.abuse.as_ref()).is_some_and(|abuse| abuse.reads_address())
            || policy.behaviour.is_some();
        let downstream = match reads_address {
            true => self.downstream(input),
            false => None,
        };
        let client = Client {
            downstream: downstream.as_deref(),
            headers: &pairs,
            subject: subject.as_deref(),
            consumer: consumer.as_deref(),
        };
        if let Some(refusal) = self.guard.quarantined(&policy, &step, &client) {
            // `RequestHead`: a monitored quarantine is not the request's last word.
            if let Some(reply) = self.apply(&policy, &step, &refusal, Phase::RequestHead) {
                return Next::Reply(reply);
            }
        }
        if verdict.action != Action::Block {
            let reports = self.guard.rate_limit(&policy, &step, &client, &mut verdict);
            (self.outputs.counters).extend(reports.into_iter().map(Counter::Slot));
        }
        let reports = (self.watch).head(&policy, &step, &client, &head, &mut verdict);
        (self.outputs.counters).extend(reports.into_iter().map(Counter::Slot));
        self.behaviour_reply();
        if verdict.action == Action::Block {
            body = None;
        }
        let phase = if body.is_some() {
            Phase::RequestHead
        } else {
            Phase::RequestEnd
        };
        if let Some(reply) = self.apply(&policy, &step, &verdict, phase) {
            return Next::Reply(reply);
        }
        let identity = self.facts.identity.as_ref();
        let mut changes = upstream::identity_headers(&policy, identity, &pairs);
        let cookies = headers.values("cookie");
        changes.extend(upstream::strip_token(
            identity,
            headers.bytes(":path"),
            &cookies,
        ));
        self.operation = verdict.operation.map(|o| o.id);
        if (self.operation).is_some_and(|id| policy.wants_identity_response(id)) {
            // A compressed answer could not be redacted (and would be refused).
            let identity = Some(b"identity".to_vec());
            changes.push(HeaderChange::Set("accept-encoding".to_owned(), identity));
        }
        self.request_body = body;
        self.start_learning(&policy, &headers, !end_of_stream, step.now());
        Next::Continue(changes)
    }

    /// Learns from a request that goes on, when the policy learns schemas: an undeclared
    /// one, or a sampled one of a declared operation (`now`: its clock reading, which
    /// with its path picks the sample).
    fn start_learning<N, V>(
        &mut self,
        policy: &Policy,
        headers: &Headers<'_, N, V>,
        body: bool,
        now: u64,
    ) where
        N: AsRef<str>,
        V: AsRef<[u8]>,
    {
        let Some(settings) = policy.discovery else {
            return;
        };
        let about = match (&self.outputs.undeclared, self.operation) {
            (Some(request), _) if settings.learn_endpoints > 0 => {
                Subject::Undeclared(request.clone())
            }
            (None, Some(id)) if settings.samples(|| sample_key(now, &self.facts.path)) => {
                Subject::Operation {
                    id,
                    time: now / 1_000_000_000,
                }
            }
            _ => return,
        };
        let (learning, lesson) = Learning::start(about, &headers.get("content-type"), body);
        self.outputs.lessons.extend(lesson);
        self.learning = Some(learning);
    }

    /// A body step for learning, when no check reads the body: keep buffering, hand it
    /// over, or let it go on.
    fn learning_data(&mut self, size: usize, end_of_stream: bool) -> Next {
        let limit = self.policy.body_limit();
        let Some(learning) = self.learning.as_mut() else {
            return Next::GO;
        };
        let (want, lesson) = learning.data(size, end_of_stream, limit);
        self.outputs.lessons.extend(lesson);
        match want {
            Want::Nothing => Next::GO,
            Want::More => Next::Buffer,
            Want::Read(size) => Next::Read(size),
        }
    }

    /// The body learning asked for: its shape goes out as a lesson.
    fn learning_body(&mut self, bytes: &[u8]) -> Next {
        let max_depth = self.policy.json_limits().max_depth;
        if let Some(learning) = self.learning.as_mut() {
            self.outputs.lessons.extend(learning.body(bytes, max_depth));
        }
        Next::GO
    }

    /// A body a check read and let go on: learning, if it reads this body, takes it too.
    fn learning_also(&mut self, bytes: &[u8]) {
        if self.learning_reads() {
            let _ = self.learning_body(bytes);
        }
    }

    /// Whether learning is buffering a body (`Next::complete` at trailers).
    fn learning_reads(&self) -> bool {
        self.learning.as_ref().is_some_and(Learning::reads)
    }

    fn learning_buffered(&self) -> usize {
        self.learning.as_ref().map_or(0, |l| l.buffered)
    }

    /// The request body has reached `size` buffered bytes; `end_of_stream`: that is all.
    pub fn request_data<I: Input>(&mut self, input: &I, size: usize, end_of_stream: bool) -> Next {
        let next = self.request_chunk(input, size, end_of_stream);
        self.request_size.seen(size, next == Next::Buffer);
        next
    }

    fn request_chunk<I: Input>(&mut self, input: &I, size: usize, end_of_stream: bool) -> Next {
        let Some(check) = self.request_body.as_ref() else {
            return self.learning_data(size, end_of_stream);
        };
        let policy = Rc::clone(&self.policy);
        self.request_buffered = size;
        if let Some(canary) = &mut self.canary {
            canary.body_size(&policy, size);
        }
        // Refused as soon as it is too large (the rest is never buffered) or breaks the
        // contract with its first byte.
        if let Some(verdict) = policy.inspect_body_start(check, size) {
            self.request_body = None;
            if let Some(canary) = &mut self.canary {
                canary.enforced(&verdict);
            }
            let step = Step::new(input);
            let reply = self.apply(&policy, &step, &verdict, Phase::RequestEnd);
            if reply.is_some() {
                self.learning = None;
            }
            return reply.map_or(Next::GO, Next::Reply);
        }
        Next::more_or_read(size, end_of_stream)
    }

    /// The request's trailers came: its body, if one is being buffered, is complete.
    pub fn request_trailers(&mut self) -> Next {
        if self.request_body.is_none() && self.learning_reads() {
            return Next::complete(true, self.learning_buffered());
        }
        Next::complete(self.request_body.is_some(), self.request_buffered)
    }

    /// The complete request body, as [`Next::Read`] asked for.
    pub fn request_body<I: Input>(&mut self, input: &I, bytes: &[u8]) -> Next {
        let Some(check) = self.request_body.take() else {
            return self.learning_body(bytes);
        };
        let policy = Rc::clone(&self.policy);
        let step = Step::new(input);
        let mut verdict = policy.inspect_body(&check, bytes);
        if let Some(canary) = &mut self.canary {
            canary.enforced(&verdict);
            canary.body(&policy, bytes);
        }
        policy.inspect_body_anomalies(&check, bytes, &mut verdict);
        if verdict.action != Action::Block {
            let report = (self.watch).body(&policy, &step, &check, bytes, &mut verdict);
            (self.outputs.counters).extend(report.map(Counter::Slot));
            self.behaviour_reply();
        }
        if let Some(reply) = self.apply(&policy, &step, &verdict, Phase::RequestEnd) {
            // What was refused is no client's traffic to learn from.
            self.learning = None;
            return Next::Reply(reply);
        }
        self.learning_also(bytes);
        Next::GO
    }

    /// Whether [`Exchange::response_headers`] reads the headers it is given: a host may
    /// pass none otherwise, and save reading them.
    pub fn checks_response(&self) -> bool {
        let checks = self.operation.is_some()
            && (self.policy.response_mode() != OperationMode::Off || self.watch.watches_response());
        checks || self.learning.is_some()
    }

    /// The response is Envoy's own (the upstream reset, timed out, or was not there), not
    /// the upstream's answer: the contract has nothing to say about it, so nothing of it is
    /// checked — in monitor mode an outage would otherwise be a finding per request.
    pub fn skip_response(&mut self) {
        self.operation = None;
        self.learning = None;
    }

    /// The response head (`:status` included). `end_of_stream`: no body follows.
    pub fn response_headers<I, N, V>(
        &mut self,
        input: &I,
        headers: &[(N, V)],
        end_of_stream: bool,
    ) -> Next
    where
        I: Input,
        N: AsRef<str>,
        V: AsRef<[u8]>,
    {
        let mut changes: Vec<HeaderChange> = (self.guard.take_response_headers())
            .into_iter()
            .map(|(name, value)| HeaderChange::Add(name, value))
            .collect();
        let headers = Headers(headers);
        if let Some(learning) = self.learning.as_mut() {
            let status = headers.get(":status").parse().unwrap_or(0);
            let content_type = headers.get("content-type");
            (self.outputs.lessons).extend(learning.response(status, &content_type, !end_of_stream));
        }
        if self.operation.is_none() {
            return Next::Continue(changes);
        }
        let policy = Rc::clone(&self.policy);
        let status = headers.get(":status").parse().unwrap_or(0);
        let step = Step::new(input);
        let (reports, found) = self.watch.response(&policy, &step, status);
        (self.outputs.counters).extend(reports.into_iter().map(Counter::Slot));
        if let Some(found) = found {
            self.facts.status = Some(status);
            // Recorded only: the answer is the upstream's, and it goes on.
            self.apply(&policy, &step, &found, Phase::Response);
        }
        let checked = self
            .operation
            .filter(|_| policy.response_mode() != OperationMode::Off);
        let Some(operation) = checked else {
            return Next::Continue(changes);
        };
        self.facts.status = Some(status);
        let regular = headers.regular();
        let (verdict, check) =
            policy.inspect_response(operation, status, &borrowed(&regular), !end_of_stream);
        if let Some(reply) = self.apply(&policy, &Step::new(input), &verdict, Phase::Response) {
            return Next::Reply(reply);
        }
        let Some(check) = check else {
            return Next::Continue(changes);
        };
        self.response_body = Some(check);
        if policy.responses.redact {
            // The body may shrink or be withheld; let Envoy frame it (chunked / HTTP/2
            // frames).
            changes.push(HeaderChange::Set("content-length".to_owned(), None));
        }
        Next::Continue(changes)
    }

    /// The response body has reached `size` buffered bytes; `end_of_stream`: that is all.
    pub fn response_data<I: Input>(&mut self, input: &I, size: usize, end_of_stream: bool) -> Next {
        let next = self.response_chunk(input, size, end_of_stream);
        self.response_size.seen(size, next == Next::Buffer);
        next
    }

    fn response_chunk<I: Input>(&mut self, input: &I, size: usize, end_of_stream: bool) -> Next {
        if self.withholding {
            return Next::Withhold(size);
        }
        if self.response_body.is_none() {
            return self.learning_data(size, end_of_stream);
        }
        let policy = Rc::clone(&self.policy);
        self.response_buffered = size;
        if size > policy.body_limit() {
            self.response_body = None;
            // Too large to learn from as well: learning keeps the status and media type.
            let _ = self.learning_data(size, end_of_stream);
            let checked = policy.response_too_large(self.operation.unwrap_or_default());
            let reply = self.apply(
                &policy,
                &Step::new(input),
                &checked.verdict,
                Phase::Response,
            );
            if let Some(reply) = reply {
                return Next::Reply(reply);
            }
            if checked.withheld {
                self.withholding = true;
                return Next::Withhold(size);
            }
            return Next::GO;
        }
        Next::more_or_read(size, end_of_stream)
    }

    /// The response's trailers came: its body, if one is being buffered, is complete.
    pub fn response_trailers(&mut self) -> Next {
        if self.response_body.is_none() && self.learning_reads() {
            return Next::complete(true, self.learning_buffered());
        }
        Next::complete(self.response_body.is_some(), self.response_buffered)
    }

    /// The complete response body, as [`Next::Read`] asked for: checked, and redacted or
    /// withheld.
    pub fn response_body<I: Input>(&mut self, input: &I, bytes: &[u8]) -> Next {
        let Some(check) = self.response_body.take() else {
            return self.learning_body(bytes);
        };
        let policy = Rc::clone(&self.policy);
        let step = Step::new(input);
        let size = self.response_buffered;
        let checked = policy.inspect_response_body(&check, bytes);
        if let Some(reply) = self.apply(&policy, &step, &checked.verdict, Phase::Response) {
            return Next::Reply(reply);
        }
        // The upstream's body as it answered, before redaction: what drift is made of.
        self.learning_also(bytes);
        if checked.withheld {
            return Next::Withhold(size);
        }
        let Some(body) = checked.redacted else {
            return Next::GO;
        };
        let count = checked.redacted_count;
        self.outputs.counters.push(Counter::Redacted(count));
        if let Some(operation) = self.operation.and_then(|id| policy.operations.get(id)) {
            let event = self.with_context(&step, None, |request| {
                Event::redacted(&policy.events, operation, count, request)
            });
            self.outputs.events.push(event);
        }
        Next::Replace { size, body }
    }

    /// The stream has ended (Envoy's access-log callback): the upstream's response size
    /// joins its operation's baseline (`behaviour.baselines`); with `stats.analytics`,
    /// leaves the request's [`Finished`] in the outputs. `status` gives the status the client got
    /// (`None`: no response began); it is asked only when the sample is taken, so a
    /// policy without analytics costs the host nothing here.
    pub fn complete<I: Input>(&mut self, input: &I, status: impl FnOnce() -> Option<u16>) {
        let (policy, step) = (Rc::clone(&self.policy), Step::new(input));
        let bytes = self.response_size.total();
        let (report, found) = self.watch.response_size(&policy, &step, bytes);
        (self.outputs.counters).extend(report.map(Counter::Slot));
        if let Some(found) = found {
            self.apply(&policy, &step, &found, Phase::Response);
        }
        let Some(started) = self.started.filter(|_| self.policy.stats.analytics) else {
            return;
        };
        let ended = step.now();
        self.outputs.finished = Some(Finished {
            operation: self.matched,
            status: StatusClass::of(status()),
            duration_ms: ended.saturating_sub(started) / 1_000_000,
            request_bytes: self.request_size.total(),
            response_bytes: self.response_size.total(),
        });
        // Once per stream, however often the host calls.
        self.started = None;
    }

    /// A whole request at once, as a host feeds one whose body (`None`: no body) comes
    /// in one piece: the head, then the body. Answers the head's changes, or the reply.
    /// How the case files, the bench and tests run a request.
    pub fn request<I, N, V>(&mut self, input: &I, headers: &[(N, V)], body: Option<&[u8]>) -> Next
    where
        I: Input,
        N: AsRef<str>,
        V: AsRef<[u8]>,
    {
        let head = self.request_headers(input, headers, body.is_none());
        let (Next::Continue(_), Some(body)) = (&head, body) else {
            return head;
        };
        match self.whole_body(input, body, Self::request_data, Self::request_body) {
            Next::Reply(reply) => Next::Reply(reply),
            _ => head,
        }
    }

    /// A whole response at once, like [`Exchange::request`]: the head, then the body.
    /// Answers the head's changes, or what the body came to (a reply, a replacement).
    pub fn response<I, N, V>(&mut self, input: &I, headers: &[(N, V)], body: Option<&[u8]>) -> Next
    where
        I: Input,
        N: AsRef<str>,
        V: AsRef<[u8]>,
    {
        let head = self.response_headers(input, headers, body.is_none());
        let (Next::Continue(_), Some(body)) = (&head, body) else {
            return head;
        };
        match self.whole_body(input, body, Self::response_data, Self::response_body) {
            Next::Continue(_) => head,
            next => next,
        }
    }

    /// A whole body after a head that goes on: its size (`data`), then, when asked, its
    /// bytes (`read`), as the host would hand them over.
    fn whole_body<I: Input>(
        &mut self,
        input: &I,
        body: &[u8],
        data: fn(&mut Self, &I, usize, bool) -> Next,
        read: fn(&mut Self, &I, &[u8]) -> Next,
    ) -> Next {
        match data(self, input, body.len(), true) {
            Next::Read(size) => read(self, input, body.get(..size).unwrap_or(body)),
            next => next,
        }
    }

    /// The downstream address, read from the host once per exchange.
    fn downstream<I: Input>(&mut self, input: &I) -> Option<String> {
        self.downstream
            .get_or_insert_with(|| input.downstream())
            .clone()
    }

    /// Builds something from what events say about this request, read now. `client`:
    /// the client's address as the policy identifies it, instead of the peer's.
    fn with_context<I: Input, T>(
        &mut self,
        step: &Step<'_, I>,
        client: Option<&str>,
        build: impl FnOnce(&RequestContext<'_>) -> T,
    ) -> T {
        let peer = self.downstream(step.input);
        let peer = peer.as_deref().map(events::client_ip);
        // Hashed here, when an event is made, not for every request.
        let identity = self.facts.identity.as_ref().and_then(Identity::label);
        build(&RequestContext {
            time_ms: step.now() / 1_000_000,
            method: &self.facts.method,
            path: &self.facts.path,
            client: client.or(peer),
            identity: identity.as_deref(),
            request_id: self.facts.request_id.as_deref(),
            status: self.facts.status,
        })
    }

    /// A call to a deprecated operation: counted, and reported as `discovery.zombie` with
    /// the client (folded like every event, so a busy client costs a line per window).
    fn deprecated_call<I: Input>(&mut self, policy: &Policy, step: &Step<'_, I>, id: usize) {
        let Some(operation) = policy.operations.get(id).filter(|op| op.deprecated) else {
            return;
        };
        self.outputs.counters.push(Counter::Deprecated(id));
        let event = self.with_context(step, None, |request| {
            Event::deprecated_call(&policy.events, operation, request)
        });
        self.outputs.events.push(event);
    }

    /// What an enforced behaviour finding adds to the refusal: `Retry-After` (its
    /// window's end) and, for `action: quarantine`, the client's quarantine.
    fn behaviour_reply(&mut self) {
        if let Some(seconds) = self.watch.retry_after.take() {
            self.guard.retry_after(seconds);
        }
        self.guard.quarantine_now |= self.watch.quarantine;
    }

    /// Counts and records a verdict; answers with the problem when it blocks.
    fn apply<I: Input>(
        &mut self,
        policy: &Policy,
        step: &Step<'_, I>,
        verdict: &Verdict<'_>,
        phase: Phase,
    ) -> Option<Reply> {
        let blocked = verdict.action == Action::Block;
        if phase != Phase::Response {
            self.recorded |= !verdict.violations.is_empty();
        }
        self.count_rules(verdict);
        if phase == Phase::RequestEnd || (phase == Phase::RequestHead && blocked) {
            let outcome = match (blocked, self.recorded) {
                (true, _) => Action::Block,
                (false, true) => Action::Monitor,
                (false, false) => Action::Allow,
            };
            self.outputs.counters.push(Counter::Outcome(outcome));
            let operation = verdict.operation.map(|o| o.id).or(self.operation);
            if let Some(id) = operation {
                (self.outputs.counters).push(Counter::Operation { id, blocked });
                self.deprecated_call(policy, step, id);
            }
            self.outputs.filter_state = Some(FilterState {
                action: outcome,
                rule: verdict.rule(),
                operation: operation
                    .and_then(|id| policy.operations.get(id))
                    .map(|op| Rc::clone(&op.label)),
            });
            self.settle_canary(policy, step);
        }
        if !verdict.violations.is_empty() {
            let evidence = self.watch.take_evidence();
            let event = self.with_context(step, None, |request| {
                Event::from_verdict(&policy.events, verdict, request)
            });
            self.outputs
                .events
                .extend(event.map(|event| Event { evidence, ..event }));
        }
        let rule = verdict.rule().filter(|_| blocked)?;
        // Our own reply goes back through the response callbacks: it is not the
        // upstream's answer, so nothing more is checked.
        self.operation = None;
        self.response_body = None;
        let by_client = phase != Phase::Response;
        let mut reply = problem::reply(&policy.name, rule, verdict);
        let blocked = self.guard.blocked(policy, step, rule, by_client);
        reply.headers.extend(blocked.headers);
        if let Some(quarantine) = blocked.quarantine {
            let counters = &mut self.outputs.counters;
            counters.extend([Counter::QuarantineStarted, Counter::Slot(quarantine.report)]);
            let ip = self.guard.client_ip().map(|ip| ip.to_string());
            let event = self.with_context(step, ip.as_deref(), |request| {
                Event::quarantine_started(&policy.events, quarantine.seconds, request)
            });
            self.outputs.events.push(event);
        }
        Some(reply)
    }

    /// Each rule a verdict reports, once: as blocked when it was enforced, as monitored
    /// when only recorded.
    fn count_rules(&mut self, verdict: &Verdict<'_>) {
        let counters = &mut self.outputs.counters;
        for violation in &verdict.violations {
            let counter = Counter::Rule {
                rule: violation.rule,
                enforced: violation.enforced,
            };
            if !counters.contains(&counter) {
                counters.push(counter);
            }
        }
    }
}

/// A header map as the host gave it. Values are bytes on the wire; non-UTF-8 ones are read
/// lossily, so that they fail any declared pattern rather than pass unseen.
struct Headers<'h, N, V>(&'h [(N, V)]);

impl<'h, N: AsRef<str>, V: AsRef<[u8]>> Headers<'h, N, V> {
    fn get(&self, name: &str) -> Cow<'h, str> {
        self.0
            .iter()
            .find(|(n, _)| n.as_ref() == name)
            .map_or(Cow::Borrowed(""), |(_, v)| lossy(v.as_ref()))
    }

    /// Every value of `name`, as the bytes the host holds.
    fn values(&self, name: &str) -> Vec<&'h [u8]> {
        self.0
            .iter()
            .filter(|(n, _)| n.as_ref() == name)
            .map(|(_, v)| v.as_ref())
            .collect()
    }

    /// The first value of `name` as bytes; empty when absent.
    fn bytes(&self, name: &str) -> &'h [u8] {
        self.0
            .iter()
            .find(|(n, _)| n.as_ref() == name)
            .map_or(&[], |(_, v)| v.as_ref())
    }

    /// The regular headers (no `:pseudo` ones).
    fn regular(&self) -> Vec<(&'h str, Cow<'h, str>)> {
        self.0
            .iter()
            .filter(|(name, _)| !name.as_ref().starts_with(':'))
            .map(|(name, value)| (name.as_ref(), lossy(value.as_ref())))
            .collect()
    }
}

fn borrowed<'a>(headers: &'a [(&'a str, Cow<'a, str>)]) -> Vec<(&'a str, &'a str)> {
    headers
        .iter()
        .map(|(name, value)| (*name, value.as_ref()))
        .collect()
}
