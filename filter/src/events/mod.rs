//! Security events: every verdict with a finding, and every system occurrence another
//! stage wants a SIEM to see, as one structured record.
//!
//! The record ([`Event`]) is the unit that travels: the filter writes it to Envoy's log in
//! its OCSF form ([`ocsf`]), and hands it (as JSON) to the single sender that folds floods
//! ([`fold`]) and posts batches in the sink's format ([`sink`]). Building, folding and
//! formatting are pure and take time as an input, so all of it is unit-tested natively;
//! the host only reads the clock, the client address and the request id.
//!
//! Nothing of the request appears unescaped: the path is JSON-escaped by serde (so a log
//! line cannot be forged with CR/LF) and cut at [`MAX_PATH_CHARS`]; parameter names and
//! body pointers were sanitised by the engine already.

pub(crate) mod fold;
pub(crate) mod ocsf;
pub(crate) mod sink;

use serde::{Deserialize, Serialize};

use crate::contract::openapi::Owner;
use crate::contract::CompiledOperation;
use crate::discovery::Template;
use crate::verdict::{Action, RuleId, Verdict, Violation};

/// The name of the proxy-wasm shared queue between the filter VMs and the sender.
pub(crate) const QUEUE: &str = "apiguard.events";

/// Paths longer than this are cut (with `…`) in events: a SIEM needs the shape, and a
/// 60 KiB path should not become a 60 KiB event.
pub(crate) const MAX_PATH_CHARS: usize = 512;

/// The policy's `events` key: who owns the API, and how events are logged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// The team that owns the API, so an ITSM tool can route a ticket. Overrides
    /// `info.x-owner` in the document.
    pub owner: Option<Owner>,
    /// The Envoy log level of the event lines: `info` (default), `warn`, `debug`, or `off`
    /// (delivery to a collector continues).
    #[serde(default)]
    pub log: LogLevel,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Debug,
    #[default]
    Info,
    Warn,
    Off,
}

/// OCSF `severity_id` values used by apiguard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Informational,
    Low,
    Medium,
    High,
}

impl Severity {
    pub const fn id(self) -> u8 {
        match self {
            Severity::Informational => 1,
            Severity::Low => 2,
            Severity::Medium => 3,
            Severity::High => 4,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Severity::Informational => "Informational",
            Severity::Low => "Low",
            Severity::Medium => "Medium",
            Severity::High => "High",
        }
    }
}

/// What the filter did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventAction {
    /// The request was refused (or the response replaced).
    Blocked,
    /// Recorded only: the policy or the operation is in `monitor`.
    Monitored,
    /// The response went out with properties its schema does not declare removed
    /// (`responses.redact`).
    Redacted,
    /// Nothing was done to a request: a system occurrence (a policy loaded, …).
    Observed,
}

/// One finding, as it is logged, queued and delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Milliseconds since the Unix epoch, when the finding was made (for a folded event,
    /// when the first of them was).
    pub time_ms: u64,
    /// For a folded event, when the last of them was; equal to `time_ms` otherwise.
    pub end_time_ms: u64,
    /// How many identical findings this event stands for (see [`fold`]).
    pub count: u32,
    pub rule: String,
    pub severity: Severity,
    pub action: EventAction,
    pub api: String,
    /// Hex of the policy bundle hash ([`hash64`]), so a finding names the exact
    /// configuration that made it.
    pub policy_hash: String,
    /// For [`POLICY_LOADED`]: the hash of the policy the VM ran before this one, so a hot
    /// reload names both; `None` on a VM's first load, and for every other event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_policy_hash: Option<String>,
    pub owner: Owner,
    pub request: Option<RequestFacts>,
    /// Rule, location, name and reason of each violation (all from the contract or
    /// sanitised).
    pub violations: Vec<Finding>,
    /// A fixed text for system events.
    pub detail: Option<String>,
    /// What behaviour rules counted when they found the client (`behaviour.*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Evidence>,
    /// For `discovery.endpoint`: what the endpoint's bodies and responses taught
    /// ([`crate::discovery::Learned::to_json`]): shapes, never values but the bounded enum
    /// candidates and ranges that module documents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learned: Option<serde_json::Value>,
}

/// What a behaviour rule counted, against what, over which window: why it found the
/// client, in numbers (never a request's values).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub rule: String,
    /// What was counted: `distinct_ids`, `failures`, `distinct_usernames`, `requests`,
    /// `errors_permille`, `response_bytes`, `completions_of_<flow>`…
    pub measure: String,
    /// Its value within the window (distinct counts are estimates, see the README).
    pub count: u64,
    pub threshold: u64,
    pub window_seconds: u32,
    /// For `behaviour.bola`: the upstream's answers to the client in the window, and how
    /// many of them were 403 or 404.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answers: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denied: Option<u32>,
    /// For the rules that compare with a learnt normal (`behaviour.volume`, `.errors`,
    /// `.response_size`, a relative `behaviour.bola`): the normal's mean and standard
    /// deviation, in the unit of `count`, rounded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigma: Option<u64>,
}

/// What the event says about the request. `None` fields were not known.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestFacts {
    pub method: Option<String>,
    pub path: Option<String>,
    pub path_template: Option<String>,
    pub operation_id: Option<String>,
    /// The status the client received from the filter (for blocks) or the upstream status
    /// a response finding is about; `None` while the request is still going upstream.
    pub status: Option<u16>,
    /// The peer address (`source.address` without the port).
    pub client: Option<String>,
    /// A hashed subject or consumer id from the token checks: never the raw token.
    pub identity: Option<String>,
    /// `x-request-id`, which Envoy sets, for correlation with access logs and traces.
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub rule: String,
    #[serde(rename = "in")]
    pub location: Option<String>,
    pub name: Option<String>,
    pub reason: String,
}

impl RequestFacts {
    /// `status` is the filter's own answer, if it gave one; else the upstream's.
    fn new(
        request: &RequestContext<'_>,
        template: Option<&str>,
        operation_id: Option<&str>,
        status: Option<u16>,
    ) -> RequestFacts {
        // The query is left out: it may carry credentials (`?api_key=…`), which an event
        // must never hold, and the violations already name the parameter at fault.
        let path = request
            .path
            .split_once('?')
            .map_or(request.path, |(path, _)| path);
        RequestFacts {
            method: Some(truncate(request.method, 32)),
            path: Some(truncate(path, MAX_PATH_CHARS)),
            path_template: template.map(str::to_owned),
            operation_id: operation_id.map(str::to_owned),
            status: status.or(request.status),
            client: request.client.map(str::to_owned),
            identity: request.identity.map(str::to_owned),
            request_id: request.request_id.map(|id| truncate(id, 128)),
        }
    }
}

/// What the host knows about a request that the verdict does not carry.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestContext<'a> {
    pub time_ms: u64,
    pub method: &'a str,
    pub path: &'a str,
    pub client: Option<&'a str>,
    /// The verified identity's label ([`crate::request::Identity::label`]).
    pub identity: Option<&'a str>,
    pub request_id: Option<&'a str>,
    /// The upstream status, for response findings.
    pub status: Option<u16>,
}

/// What every event of one policy shares, computed once at compile time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventSettings {
    pub api: String,
    pub policy_hash: String,
    pub owner: Owner,
    pub log: LogLevel,
}

impl EventSettings {
    /// `owner` from the policy wins over the document's `x-owner`, field by field;
    /// `configuration_hash` is [`hash64`] of the configuration bytes Envoy handed over.
    pub fn new(
        api: &str,
        configuration_hash: u64,
        config: &EventsConfig,
        x_owner: Option<&Owner>,
    ) -> Self {
        let policy = config.owner.clone().unwrap_or_default();
        let document = x_owner.cloned().unwrap_or_default();
        EventSettings {
            api: api.to_owned(),
            policy_hash: format!("{configuration_hash:016x}"),
            owner: Owner {
                team: policy.team.or(document.team),
                contact: policy.contact.or(document.contact),
            },
            log: config.log,
        }
    }
}

impl Event {
    /// The event for a verdict with findings; `None` for a clean one. A blocked request
    /// is Medium, a recorded finding Low; a request to an undeclared endpoint is the
    /// `route.unknown_path` rule and so is reported like any other.
    pub fn from_verdict(
        settings: &EventSettings,
        verdict: &Verdict<'_>,
        request: &RequestContext<'_>,
    ) -> Option<Event> {
        let rule = verdict.rule()?;
        let (action, severity, status) = match verdict.action {
            Action::Block => (EventAction::Blocked, Severity::Medium, Some(rule.status())),
            Action::Monitor | Action::Allow => (EventAction::Monitored, Severity::Low, None),
        };
        let operation = verdict.operation;
        let template = operation
            .map(|o| o.template)
            .or(verdict.allowed.as_ref().map(|(t, _)| *t));
        let operation_id = operation.and_then(|o| o.operation_id);
        let facts = RequestFacts::new(request, template, operation_id, status);
        Some(
            Event {
                violations: verdict
                    .violations
                    .iter()
                    .map(|v| Finding {
                        rule: v.rule.as_str().to_owned(),
                        location: v.location.map(str::to_owned),
                        name: v.name.clone(),
                        reason: v.reason.to_string(),
                    })
                    .collect(),
                ..Event::base(settings, request.time_ms, rule.as_str(), severity, action)
            }
            .with_request(facts),
        )
    }

    /// Properties the response schema does not declare were removed from a response
    /// (`responses.redact`): not a contract violation, but an API that leaks fields is
    /// something its owner should hear about. `count` is how many were removed.
    pub fn redacted(
        settings: &EventSettings,
        operation: &CompiledOperation,
        count: usize,
        request: &RequestContext<'_>,
    ) -> Event {
        let detail = format!("{count} undeclared response properties removed");
        let kind = (REDACTED, Severity::Low, EventAction::Redacted);
        Event::about_operation(settings, operation, request, kind, detail)
    }

    /// A client's blocked requests reached the quarantine's allowance with this one: every
    /// worker refuses it for `duration_seconds`.
    pub fn quarantine_started(
        settings: &EventSettings,
        duration_seconds: u32,
        request: &RequestContext<'_>,
    ) -> Event {
        let facts = RequestFacts::new(request, None, None, None);
        Event {
            detail: Some(format!("client quarantined for {duration_seconds} s")),
            ..Event::base(
                settings,
                request.time_ms,
                QUARANTINE_STARTED,
                Severity::High,
                EventAction::Blocked,
            )
        }
        .with_request(facts)
    }

    /// An endpoint the contract does not declare, as discovery inferred it: its method and
    /// template (`path_template`), each parameter's name and form (one finding each, the
    /// form as its reason), what its bodies taught (`learned`), and the `count` requests
    /// since the last report, between `first_ms` and `last_ms`. Never a request's values:
    /// only their forms.
    pub fn endpoint_discovered(
        settings: &EventSettings,
        template: &Template,
        learned: Option<serde_json::Value>,
        count: u64,
        first_ms: u64,
        last_ms: u64,
    ) -> Event {
        let facts = RequestFacts {
            method: Some(template.method.as_str().to_owned()),
            path_template: Some(truncate(&template.path, MAX_PATH_CHARS)),
            ..RequestFacts::default()
        };
        let violations = (template.params.iter())
            .map(|(name, kind)| Finding {
                rule: DISCOVERED.to_owned(),
                location: Some("path".to_owned()),
                name: Some(name.clone()),
                reason: kind.as_str().to_owned(),
            })
            .collect();
        Event {
            end_time_ms: last_ms,
            count: u32::try_from(count).unwrap_or(u32::MAX),
            violations,
            learned,
            ..Event::base(
                settings,
                first_ms,
                DISCOVERED,
                Severity::Informational,
                EventAction::Observed,
            )
        }
        .with_request(facts)
    }

    /// What the sampled exchanges of a declared operation taught (`discovery.learn`): its
    /// method, template and `operationId`, what its bodies and responses looked like
    /// (`learned`, shapes as for [`Event::endpoint_discovered`]), and the `count` sampled
    /// exchanges since the last report, between `first_ms` and `last_ms` — for
    /// `apiguard learn`'s drift report against the contract.
    pub fn operation_observed(
        settings: &EventSettings,
        operation: &CompiledOperation,
        learned: serde_json::Value,
        count: u64,
        first_ms: u64,
        last_ms: u64,
    ) -> Event {
        let facts = RequestFacts {
            method: Some(operation.method.as_str().to_owned()),
            path_template: Some(truncate(&operation.template, MAX_PATH_CHARS)),
            operation_id: operation.operation_id.clone(),
            ..RequestFacts::default()
        };
        Event {
            end_time_ms: last_ms,
            count: u32::try_from(count).unwrap_or(u32::MAX),
            learned: Some(learned),
            ..Event::base(
                settings,
                first_ms,
                OBSERVED,
                Severity::Informational,
                EventAction::Observed,
            )
        }
        .with_request(facts)
    }

    /// The contract canary's candidate would decide a request otherwise than the enforced
    /// contract did (`canary.would_block`, `canary.would_allow`): what a client would see
    /// change if the candidate shipped. Folded like every event (by rule, client and
    /// operation). The first finding names the deciding rule and, as its `name`, where the
    /// candidate declares the operation (a JSON pointer into the candidate's document;
    /// none when the candidate has no such operation); the refusing side's violations
    /// follow.
    pub fn canary(
        settings: &EventSettings,
        finding: &CanaryFinding<'_>,
        request: &RequestContext<'_>,
    ) -> Event {
        let (rule, severity, detail) = if finding.would_block {
            let detail = format!(
                "the candidate contract would refuse this request ({})",
                finding.rule
            );
            (CANARY_WOULD_BLOCK, Severity::Low, detail)
        } else {
            let detail = format!(
                "the candidate contract would let this request through ({} now)",
                finding.rule
            );
            (CANARY_WOULD_ALLOW, Severity::Informational, detail)
        };
        let operation = finding.operation;
        let facts = RequestFacts::new(
            request,
            operation.map(|op| op.template.as_str()),
            operation.and_then(|op| op.operation_id.as_deref()),
            None,
        );
        let decided = Finding {
            rule: finding.rule.as_str().to_owned(),
            location: Some("candidate".to_owned()),
            name: finding.candidate_pointer.map(str::to_owned),
            reason: finding.rule.title().to_owned(),
        };
        let violations = finding.violations.iter().map(|v| Finding {
            rule: v.rule.as_str().to_owned(),
            location: v.location.map(str::to_owned),
            name: v.name.clone(),
            reason: v.reason.to_string(),
        });
        Event {
            detail: Some(detail),
            violations: [decided].into_iter().chain(violations).collect(),
            ..Event::base(
                settings,
                request.time_ms,
                rule,
                severity,
                EventAction::Observed,
            )
        }
        .with_request(facts)
    }

    /// A call to an operation the document marks `deprecated`: who still uses it.
    pub fn deprecated_call(
        settings: &EventSettings,
        operation: &CompiledOperation,
        request: &RequestContext<'_>,
    ) -> Event {
        let detail = "a deprecated operation was called".to_owned();
        let kind = (ZOMBIE, Severity::Low, EventAction::Observed);
        Event::about_operation(settings, operation, request, kind, detail)
    }

    /// An event about a request to `operation` that is no violation: `kind` is its rule,
    /// severity and action; `detail` a fixed text (counts at most, never request data).
    fn about_operation(
        settings: &EventSettings,
        operation: &CompiledOperation,
        request: &RequestContext<'_>,
        (rule, severity, action): (&str, Severity, EventAction),
        detail: String,
    ) -> Event {
        let facts = RequestFacts::new(
            request,
            Some(&operation.template),
            operation.operation_id.as_deref(),
            None,
        );
        Event {
            detail: Some(detail),
            ..Event::base(settings, request.time_ms, rule, severity, action)
        }
        .with_request(facts)
    }

    /// An event that is not about one request: a policy loaded, a key set that cannot be
    /// fetched, a client quarantined. `detail` must be a fixed text, not request data.
    pub fn system(
        settings: &EventSettings,
        time_ms: u64,
        rule: &str,
        severity: Severity,
        detail: &str,
    ) -> Event {
        Event {
            detail: Some(detail.to_owned()),
            ..Event::base(settings, time_ms, rule, severity, EventAction::Observed)
        }
    }

    /// The audit record of a configuration change ([`POLICY_LOADED`]): this policy's hash,
    /// and `previous`, the hash of the policy it replaces in this VM.
    pub fn policy_loaded(
        settings: &EventSettings,
        time_ms: u64,
        previous: Option<String>,
    ) -> Event {
        let detail = match &previous {
            Some(previous) => format!("policy loaded, replacing {previous}"),
            None => "policy loaded".to_owned(),
        };
        let severity = Severity::Informational;
        Event {
            previous_policy_hash: previous,
            ..Event::system(settings, time_ms, POLICY_LOADED, severity, &detail)
        }
    }

    fn base(
        settings: &EventSettings,
        time_ms: u64,
        rule: &str,
        severity: Severity,
        action: EventAction,
    ) -> Event {
        Event {
            time_ms,
            end_time_ms: time_ms,
            count: 1,
            rule: rule.to_owned(),
            severity,
            action,
            api: settings.api.clone(),
            policy_hash: settings.policy_hash.clone(),
            previous_policy_hash: None,
            owner: settings.owner.clone(),
            request: None,
            violations: Vec::new(),
            detail: None,
            evidence: Vec::new(),
            learned: None,
        }
    }

    fn with_request(mut self, facts: RequestFacts) -> Event {
        self.request = Some(facts);
        self
    }
}

/// The rule id of [`Event::endpoint_discovered`]: an undeclared endpoint (shadow API).
pub(crate) const DISCOVERED: &str = "discovery.endpoint";

/// The rule id of [`Event::operation_observed`]: a declared operation's sampled traffic.
pub(crate) const OBSERVED: &str = "discovery.observed";

/// What the contract canary found about one request: [`Event::canary`]'s subject.
pub struct CanaryFinding<'a> {
    /// The candidate would refuse the request (else it would let it through).
    pub would_block: bool,
    /// The rule of the side that refuses.
    pub rule: RuleId,
    /// The refusing side's violations.
    pub violations: &'a [Violation],
    /// The operation the finding is about, in whichever contract matched it.
    pub operation: Option<&'a CompiledOperation>,
    /// Where the candidate declares the operation, when it has one.
    pub candidate_pointer: Option<&'a str>,
}

/// The rule ids of [`Event::canary`].
pub(crate) const CANARY_WOULD_BLOCK: &str = "canary.would_block";
pub(crate) const CANARY_WOULD_ALLOW: &str = "canary.would_allow";

/// The rule id of [`Event::deprecated_call`]: a call to a deprecated operation (zombie).
pub(crate) const ZOMBIE: &str = "discovery.zombie";

/// The policy system event the root emits each time a configuration is accepted.
pub(crate) const POLICY_LOADED: &str = "apiguard.policy_loaded";

/// A remote policy bundle was not loaded (no answer, a bad status, not the pinned
/// sha256, not a bundle that compiles): the last good one keeps serving.
pub(crate) const POLICY_FETCH_FAILED: &str = "apiguard.policy_fetch_failed";

/// A remote JWKS could not be fetched (the system event the key fetcher emits); tokens
/// of that provider are checked against the keys it had, or refused with
/// `auth.keys_unavailable` when it has none.
pub(crate) const JWKS_FETCH_FAILED: &str = "auth.jwks_fetch_failed";

/// The rule id of [`Event::quarantine_started`]; the refusals that follow are verdicts of
/// [`crate::verdict::RuleId::Quarantined`] (`abuse.quarantined`).
pub(crate) const QUARANTINE_STARTED: &str = "abuse.quarantine_started";

/// The rule id of [`Event::redacted`]; not a [`crate::verdict::RuleId`], since redaction
/// is no verdict: the response is delivered.
pub(crate) const REDACTED: &str = "response.redacted";

/// FNV-1a's 64-bit step over little-endian 8-byte words, then over the last bytes one by
/// one (so inputs under 8 bytes hash as FNV-1a does): cheap, dependency-free, and enough
/// to tell configurations apart (an identifier, not a security boundary). Word-wise
/// because every configure hashes the whole configuration: byte by byte, GitHub's 7 MB
/// bundle took a tenth of its configure time.
pub(crate) fn hash64(bytes: &[u8]) -> u64 {
    const PRIME: u64 = 0x0100_0000_01b3;
    let step = |hash: u64, word: u64| (hash ^ word).wrapping_mul(PRIME);
    let words = bytes.chunks_exact(8);
    let tail = words.remainder();
    let hash = words.fold(0xcbf2_9ce4_8422_2325, |hash, word| {
        let mut le = [0; 8];
        le.copy_from_slice(word);
        step(hash, u64::from_le_bytes(le))
    });
    tail.iter()
        .fold(hash, |hash, byte| step(hash, u64::from(*byte)))
}

/// The IP of a `source.address` (`10.0.0.7:51234`, `[::1]:51234`): the port changes per
/// connection and would defeat folding by client.
pub(crate) fn client_ip(address: &str) -> &str {
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match address.rsplit_once(':') {
        Some((ip, port)) if !ip.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => ip,
        _ => address,
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;
    use crate::request::RequestHead;

    const POLICY: &str = r#"{"name": "pets", "events": {"owner": {"contact": "pets@example.com"}},
        "openapi": {"document": {"openapi": "3.0.3",
          "info": {"title": "t", "version": "1", "x-owner": {"team": "pet-team", "contact": "doc@example.com"}},
          "paths": {"/pets": {"get": {"operationId": "listPets"}}}}}}"#;

    fn context(path: &str) -> RequestContext<'_> {
        RequestContext {
            time_ms: 1_000,
            method: "DELETE",
            path,
            client: Some("10.0.0.7"),
            identity: None,
            request_id: Some("req-1"),
            status: None,
        }
    }

    #[test]
    fn a_blocked_verdict_becomes_an_event_with_every_field() {
        let policy = Policy::compile(POLICY.as_bytes()).unwrap();
        let (verdict, _) = policy.inspect(&RequestHead::new("DELETE", "/pets"));
        let event = Event::from_verdict(&policy.events, &verdict, &context("/pets")).unwrap();
        assert_eq!(event.rule, "route.method_not_allowed");
        assert_eq!(event.action, EventAction::Blocked);
        assert_eq!(event.severity, Severity::Medium);
        assert_eq!(event.api, "pets");
        assert_eq!(
            event.policy_hash,
            format!("{:016x}", hash64(POLICY.as_bytes()))
        );
        // The policy's contact wins; the document supplies the team.
        assert_eq!(event.owner.team.as_deref(), Some("pet-team"));
        assert_eq!(event.owner.contact.as_deref(), Some("pets@example.com"));
        let request = event.request.unwrap();
        assert_eq!(request.status, Some(405));
        assert_eq!(request.path_template.as_deref(), Some("/pets"));
        assert_eq!(request.client.as_deref(), Some("10.0.0.7"));
        assert_eq!(request.request_id.as_deref(), Some("req-1"));
        assert_eq!(request.identity, None);
    }

    #[test]
    fn a_clean_verdict_is_no_event() {
        let policy = Policy::compile(POLICY.as_bytes()).unwrap();
        let (verdict, _) = policy.inspect(&RequestHead::get("/pets"));
        assert_eq!(
            Event::from_verdict(&policy.events, &verdict, &context("/pets")),
            None
        );
    }

    #[test]
    fn the_query_stays_out_of_the_event() {
        let policy = Policy::compile(POLICY.as_bytes()).unwrap();
        let target = "/pets?api_key=secret";
        let (verdict, _) = policy.inspect(&RequestHead::new("DELETE", target));
        let event = Event::from_verdict(&policy.events, &verdict, &context(target)).unwrap();
        assert_eq!(event.request.unwrap().path.as_deref(), Some("/pets"));
    }

    #[test]
    fn a_redaction_is_an_event_about_its_operation() {
        let policy = Policy::compile(POLICY.as_bytes()).unwrap();
        let mut request = context("/pets");
        request.status = Some(200);
        let event = Event::redacted(&policy.events, &policy.operations[0], 3, &request);
        assert_eq!(
            (event.rule.as_str(), event.action),
            (REDACTED, EventAction::Redacted)
        );
        assert_eq!(
            event.detail.as_deref(),
            Some("3 undeclared response properties removed")
        );
        let facts = event.request.unwrap();
        assert_eq!(facts.operation_id.as_deref(), Some("listPets"));
        assert_eq!(facts.path_template.as_deref(), Some("/pets"));
        assert_eq!(facts.status, Some(200));
    }

    #[test]
    fn a_quarantine_start_is_a_blocking_event_about_its_client() {
        let policy = Policy::compile(POLICY.as_bytes()).unwrap();
        let request = RequestContext {
            identity: Some("consumer:shop-17"),
            ..context("/pets?q=1")
        };
        let event = Event::quarantine_started(&policy.events, 300, &request);
        assert_eq!(
            (event.rule.as_str(), event.action, event.severity),
            (QUARANTINE_STARTED, EventAction::Blocked, Severity::High)
        );
        assert_eq!(
            event.detail.as_deref(),
            Some("client quarantined for 300 s")
        );
        let facts = event.request.unwrap();
        assert_eq!(facts.client.as_deref(), Some("10.0.0.7"));
        assert_eq!(facts.identity.as_deref(), Some("consumer:shop-17"));
        assert_eq!(facts.path.as_deref(), Some("/pets"));
    }

    #[test]
    fn long_paths_are_cut_on_a_character_boundary() {
        let policy = Policy::compile(POLICY.as_bytes()).unwrap();
        let path = format!("/{}", "é".repeat(2 * MAX_PATH_CHARS));
        let (verdict, _) = policy.inspect(&RequestHead::get(&path));
        let event = Event::from_verdict(&policy.events, &verdict, &context(&path)).unwrap();
        let cut = event.request.unwrap().path.unwrap();
        assert_eq!(cut.chars().count(), MAX_PATH_CHARS + 1);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn client_ip_drops_the_port() {
        assert_eq!(client_ip("10.0.0.7:51234"), "10.0.0.7");
        assert_eq!(client_ip("[::1]:51234"), "::1");
        assert_eq!(client_ip("::1"), "::1");
        assert_eq!(client_ip("10.0.0.7"), "10.0.0.7");
    }

    #[test]
    fn a_reload_names_the_policy_before_and_after() {
        let settings = EventSettings {
            policy_hash: "00000000000000bb".into(),
            ..EventSettings::default()
        };
        let first = Event::policy_loaded(&settings, 1, None);
        let reload = Event::policy_loaded(&settings, 2, Some("00000000000000aa".into()));
        let (first, reload) = (
            ocsf::detection_finding(&first),
            ocsf::detection_finding(&reload),
        );
        assert_eq!(first["unmapped"]["policy_hash"], "00000000000000bb");
        assert!(
            first["unmapped"].get("previous_policy_hash").is_none(),
            "{first}"
        );
        assert_eq!(reload["unmapped"]["policy_hash"], "00000000000000bb");
        assert_eq!(
            reload["unmapped"]["previous_policy_hash"],
            "00000000000000aa"
        );
        assert_eq!(
            reload["message"],
            "policy loaded, replacing 00000000000000aa"
        );
        assert_eq!(
            reload["finding_info"]["uid"]
                .as_str()
                .map(|u| u.starts_with(POLICY_LOADED)),
            Some(true)
        );
    }

    #[test]
    fn the_hash_tells_configurations_apart() {
        // Under 8 bytes it is FNV-1a's published values.
        assert_eq!(hash64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(hash64(b"ab"), hash64(b"ba"));
        // Word and tail both count, in order.
        let base = hash64(b"0123456789abcdef!");
        for other in [
            &b"0123456789abcdef?"[..],
            b"1023456789abcdef!",
            b"0123456789abcdfe!",
        ] {
            assert_ne!(hash64(other), base);
        }
    }
}
