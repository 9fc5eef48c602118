//! The contract canary: the policy's `candidate` contract evaluated on the same request
//! beside the enforced one, never deciding it.
//!
//! Each side keeps what its contract made of the request so far: the operation it
//! matched and, once a verdict of its blocked, that verdict's violations. The candidate
//! runs the same checks on the same request view: its head when the enforced contract's
//! head is checked; its body checks at the same points, on what the enforced contract
//! reads — the body's size while it streams, then the whole body if, and only if, the
//! enforced contract asked for it. A candidate that would read a body the enforced
//! contract does not (an operation that gains a body schema, or whose enforced verdict
//! already refused the head) is judged on what it saw, so such a body change is not seen
//! by the canary. The sides are compared once, when the enforced side's last word on the
//! request is given (the exchange's `RequestEnd`, or a refusal of the head).
//!
//! Only the contract's rules count: rate limits, the quarantine and anomaly scoring are
//! the policy's, run once, not part of either contract.

use super::{Counter, Exchange, Input, Step};
use crate::contract::CompiledOperation;
use crate::events::{CanaryFinding, Event};
use crate::policy::{BodyCheck, Policy};
use crate::request::RequestHead;
use crate::security::KeyRing;
use crate::verdict::{RuleId, Verdict, Violation};

/// How the candidate's verdict differs from the enforced one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    /// The candidate would refuse a request the enforced contract lets through.
    WouldBlock,
    /// The candidate would let through a request the enforced contract refuses.
    WouldAllow,
}

impl Change {
    /// The last part of its counter's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Change::WouldBlock => "would_block",
            Change::WouldAllow => "would_allow",
        }
    }
}

/// Which contract an operation index belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Contract {
    /// The enforced contract (`openapi`).
    Enforced,
    /// The candidate (`candidate.openapi`).
    Candidate,
}

/// What one contract made of the request so far.
#[derive(Debug, Default)]
struct Side {
    /// The operation it matched.
    operation: Option<usize>,
    /// The violations of its first verdict that blocked.
    refusal: Option<Vec<Violation>>,
}

impl Side {
    fn record(&mut self, verdict: &Verdict<'_>) {
        if let Some(operation) = verdict.operation {
            self.operation = Some(operation.id);
        }
        let refuses = (verdict.violations.iter()).any(|v| v.enforced && is_contract(v.rule));
        if refuses && self.refusal.is_none() {
            let contract = verdict.violations.iter().filter(|v| is_contract(v.rule));
            self.refusal = Some(contract.cloned().collect());
        }
    }

    /// The rule that decides its refusal.
    fn rule(&self) -> Option<RuleId> {
        let violations = self.refusal.clone()?;
        Verdict {
            violations,
            ..Verdict::default()
        }
        .rule()
    }
}

/// Whether a rule is the contract's, not the policy's abuse protection (which each side
/// shares, and the candidate does not run).
fn is_contract(rule: RuleId) -> bool {
    !matches!(
        rule.as_str().split('.').next(),
        Some("anomaly" | "ratelimit" | "abuse")
    )
}

/// The canary of one exchange, while the request is being checked.
#[derive(Debug, Default)]
pub(super) struct Canary {
    enforced: Side,
    candidate: Side,
    /// The candidate's body check, while its head asked for the body and nothing settled it.
    body: Option<BodyCheck>,
}

/// A difference between the two contracts' verdicts on one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Difference {
    pub change: Change,
    /// The rule of the refusing side.
    pub rule: RuleId,
    /// The operation the difference is counted against: the refusing side's, else the
    /// other's.
    pub operation: Option<(Contract, usize)>,
    /// The refusing side's violations.
    pub violations: Vec<Violation>,
    /// The candidate's operation, if it matched one (its pointer goes in the event).
    pub candidate_operation: Option<usize>,
}

impl Canary {
    /// Checks the head with the candidate, beside the enforced verdict on it; `None` when
    /// the policy has no candidate. `ring`: the policy's, which serves the candidate too
    /// (it is compiled from the same `security` settings, so its providers are the same,
    /// in the same order).
    pub(super) fn start(
        policy: &Policy,
        enforced: &Verdict<'_>,
        head: &RequestHead<'_>,
        ring: &KeyRing,
        now: u64,
    ) -> Option<Canary> {
        let candidate = policy.candidate.as_deref()?;
        let (verdict, body) = candidate.inspect_at(head, ring, now);
        let mut canary = Canary {
            body,
            ..Canary::default()
        };
        canary.enforced.record(enforced);
        canary.candidate.record(&verdict);
        Some(canary)
    }

    /// The enforced contract's verdict on (part of) the body.
    pub(super) fn enforced(&mut self, verdict: &Verdict<'_>) {
        self.enforced.record(verdict);
    }

    /// The body has reached `size` bytes: what that settles for the candidate.
    pub(super) fn body_size(&mut self, policy: &Policy, size: usize) {
        let (Some(candidate), Some(check)) = (policy.candidate.as_deref(), &self.body) else {
            return;
        };
        if let Some(verdict) = candidate.inspect_body_start(check, size) {
            self.body = None;
            self.candidate.record(&verdict);
        }
    }

    /// The whole body, as the enforced contract read it.
    pub(super) fn body(&mut self, policy: &Policy, bytes: &[u8]) {
        self.body_size(policy, bytes.len());
        let (Some(candidate), Some(check)) = (policy.candidate.as_deref(), self.body.take()) else {
            return;
        };
        self.candidate
            .record(&candidate.inspect_body(&check, bytes));
    }

    /// The two verdicts compared: `None` when they agree.
    pub(super) fn settle(self) -> Option<Difference> {
        let enforced = self.enforced.operation.map(|id| (Contract::Enforced, id));
        let candidate = self.candidate.operation.map(|id| (Contract::Candidate, id));
        let candidate_operation = self.candidate.operation;
        let (change, refusing, operation) = match (&self.enforced.refusal, &self.candidate.refusal)
        {
            (None, Some(_)) => (Change::WouldBlock, self.candidate, candidate.or(enforced)),
            (Some(_), None) => (Change::WouldAllow, self.enforced, enforced.or(candidate)),
            _ => return None,
        };
        Some(Difference {
            change,
            rule: refusing.rule()?,
            operation,
            violations: refusing.refusal.unwrap_or_default(),
            candidate_operation,
        })
    }
}

/// The name of a canary counter: `apiguard.canary.<operation>.<rule>.<would_block|
/// would_allow>` (an API of a gateway: its stats prefix in place of `apiguard.`), the operation by its label in its own contract (as in
/// `apiguard.operation.*`), or `none` when neither contract matched one.
pub fn counter_name(
    policy: &Policy,
    change: Change,
    rule: RuleId,
    operation: Option<(Contract, usize)>,
) -> String {
    let label = operation.and_then(|operation| find(policy, operation));
    let label = label.map_or("none", |op| &op.label);
    let prefix = &policy.stats_prefix;
    format!("{prefix}canary.{label}.{rule}.{}", change.as_str())
}

/// An operation of the enforced contract or of the candidate.
fn find(policy: &Policy, (contract, id): (Contract, usize)) -> Option<&CompiledOperation> {
    let owner = match contract {
        Contract::Enforced => Some(policy),
        Contract::Candidate => policy.candidate.as_deref(),
    };
    owner?.operations.get(id)
}

impl Exchange {
    /// Compares the canary's verdicts, once the enforced contract had its last word on
    /// the request: a difference is counted and reported.
    pub(super) fn settle_canary<I: Input>(&mut self, policy: &Policy, step: &Step<'_, I>) {
        let Some(difference) = self.canary.take().and_then(Canary::settle) else {
            return;
        };
        self.outputs.counters.push(Counter::Canary {
            change: difference.change,
            rule: difference.rule,
            operation: difference.operation,
        });
        let candidate = policy.candidate.as_deref();
        let finding = CanaryFinding {
            would_block: difference.change == Change::WouldBlock,
            rule: difference.rule,
            violations: &difference.violations,
            operation: difference.operation.and_then(|op| find(policy, op)),
            candidate_pointer: (difference.candidate_operation)
                .and_then(|id| candidate?.operations.get(id))
                .map(|op| op.pointer.as_str()),
        };
        let event = self.with_context(step, None, |request| {
            Event::canary(&policy.events, &finding, request)
        });
        self.outputs.events.push(event);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::events::{CANARY_WOULD_ALLOW, CANARY_WOULD_BLOCK};
    use crate::exchange::{Next, Outputs};
    use crate::testkit::{self, exchange, input};
    use std::rc::Rc;

    /// Pets: `GET /pets?limit` (at most `limit_max`) `&kind` (one of `kinds`), `DELETE
    /// /pets/{id}` when `delete`, and `POST /pets` with a JSON body whose `required`
    /// properties are listed.
    fn document(limit_max: u32, kinds: &[&str], delete: bool, required: &[&str]) -> Value {
        let mut paths = json!({
            "/pets": {
                "get": {"operationId": "listPets", "parameters": [
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": limit_max}},
                    {"name": "kind", "in": "query", "schema": {"type": "string", "enum": kinds}}]},
                "post": {"operationId": "createPet", "requestBody": {"required": true,
                    "content": {"application/json": {"schema": {"type": "object",
                        "properties": {"name": {"type": "string"}, "tag": {"type": "string"}},
                        "required": required}}}}}
            }
        });
        if delete {
            paths["/pets/{id}"] = json!({"delete": {"operationId": "deletePet"}});
        }
        json!({"openapi": "3.1.0", "paths": paths})
    }

    /// The enforced contract and its candidate: `limit` tightened from 100 to 10, `kind`
    /// loosened with `bird`, `deletePet` removed, `tag` made required.
    fn policy() -> Rc<Policy> {
        let enforced = document(100, &["cat", "dog"], true, &["name"]);
        let candidate = document(10, &["cat", "dog", "bird"], false, &["name", "tag"]);
        Rc::new(testkit::policy(
            "pets",
            enforced,
            json!({"candidate": {"openapi": {"document": candidate}}}),
        ))
    }

    fn run(policy: &Rc<Policy>, method: &str, path: &str, body: Option<&str>) -> (Next, Outputs) {
        let mut exchange = exchange(policy);
        let mut headers = vec![(":method", method), (":path", path)];
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        let next = exchange.request(&input(), &headers, body.map(str::as_bytes));
        (next, exchange.take_outputs())
    }

    /// A canary counter's parts.
    type Counted = (Change, RuleId, Option<(Contract, usize)>);

    fn canary(outputs: &Outputs) -> Vec<Counted> {
        (outputs.counters.iter())
            .filter_map(|c| match *c {
                Counter::Canary {
                    change,
                    rule,
                    operation,
                } => Some((change, rule, operation)),
                _ => None,
            })
            .collect()
    }

    fn operation(policy: &Policy, contract: Contract, id: &str) -> Option<(Contract, usize)> {
        let owner = match contract {
            Contract::Enforced => policy,
            Contract::Candidate => policy.candidate.as_deref().unwrap(),
        };
        let index = (owner.operations.iter())
            .position(|op| op.operation_id.as_deref() == Some(id))
            .unwrap();
        Some((contract, index))
    }

    #[test]
    fn a_tightened_parameter_would_block_and_the_request_still_goes_on() {
        let p = policy();
        let (next, outputs) = run(&p, "GET", "/pets?limit=50", None);
        assert!(matches!(next, Next::Continue(_)), "{next:?}");
        let listed = operation(&p, Contract::Candidate, "listPets");
        assert_eq!(
            canary(&outputs),
            [(Change::WouldBlock, RuleId::ParamInvalid, listed)]
        );
        assert_eq!(
            counter_name(&p, Change::WouldBlock, RuleId::ParamInvalid, listed),
            "apiguard.canary.listPets.params.invalid.would_block"
        );
        let [event] = &outputs.events[..] else {
            panic!("one event: {:?}", outputs.events)
        };
        assert_eq!(event.rule, CANARY_WOULD_BLOCK);
        let decided = &event.violations[0];
        assert_eq!(decided.rule, "params.invalid");
        assert_eq!(decided.name.as_deref(), Some("/paths/~1pets/get"));
        assert_eq!(event.violations[1].name.as_deref(), Some("limit"));
        assert_eq!(
            event.request.as_ref().unwrap().operation_id.as_deref(),
            Some("listPets")
        );
    }

    #[test]
    fn requests_both_contracts_agree_on_are_not_counted() {
        let p = policy();
        for (method, path, body) in [
            ("GET", "/pets?limit=5&kind=cat", None),
            ("GET", "/pets?limit=500", None),
            ("GET", "/nowhere", None),
            ("POST", "/pets", Some(r#"{"name": "Rex", "tag": "x"}"#)),
            ("POST", "/pets", Some(r#"{"tag": "x"}"#)),
        ] {
            let (_, outputs) = run(&p, method, path, body);
            assert_eq!(canary(&outputs), [], "{method} {path} {body:?}");
            assert!(
                outputs
                    .events
                    .iter()
                    .all(|e| !e.rule.starts_with("canary.")),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn a_loosened_enum_would_allow_what_is_refused_now() {
        let p = policy();
        let (next, outputs) = run(&p, "GET", "/pets?kind=bird", None);
        assert!(
            matches!(next, Next::Reply(ref r) if r.status == 400),
            "{next:?}"
        );
        let listed = operation(&p, Contract::Enforced, "listPets");
        assert_eq!(
            canary(&outputs),
            [(Change::WouldAllow, RuleId::ParamInvalid, listed)]
        );
        let event = outputs.events.iter().find(|e| e.rule == CANARY_WOULD_ALLOW);
        let event = event.expect("a canary.would_allow event");
        assert_eq!(
            event.violations[0].name.as_deref(),
            Some("/paths/~1pets/get")
        );
    }

    #[test]
    fn a_removed_operation_would_block_and_is_counted_against_the_enforced_one() {
        let p = policy();
        let (next, outputs) = run(&p, "DELETE", "/pets/7", None);
        assert!(matches!(next, Next::Continue(_)), "{next:?}");
        let deleted = operation(&p, Contract::Enforced, "deletePet");
        assert_eq!(
            canary(&outputs),
            [(Change::WouldBlock, RuleId::UnknownPath, deleted)]
        );
        assert_eq!(
            counter_name(&p, Change::WouldBlock, RuleId::UnknownPath, deleted),
            "apiguard.canary.deletePet.route.unknown_path.would_block"
        );
        let event = &outputs.events[0];
        assert_eq!(event.violations[0].name, None, "no candidate operation");
    }

    #[test]
    fn a_new_required_body_property_would_block_on_the_body_the_enforced_contract_read() {
        let p = policy();
        let (next, outputs) = run(&p, "POST", "/pets", Some(r#"{"name": "Rex"}"#));
        assert!(matches!(next, Next::Continue(_)), "{next:?}");
        let created = operation(&p, Contract::Candidate, "createPet");
        assert_eq!(
            canary(&outputs),
            [(Change::WouldBlock, RuleId::BodySchema, created)]
        );
    }

    /// The enforced contract refuses the head, so it reads no body: the candidate, which
    /// accepts the head, is judged on it alone, and its body check never runs — the
    /// canary reports `would_allow` for a body the candidate would refuse. The cost of
    /// never reading more of a request than the enforced contract does.
    #[test]
    fn the_candidate_reads_no_more_of_the_body_than_the_enforced_contract() {
        let document = |header_required: bool| {
            json!({"openapi": "3.1.0", "paths": {"/pets": {"post": {
                "parameters": [{"name": "x-version", "in": "header",
                    "required": header_required, "schema": {"type": "string"}}],
                "requestBody": {"content": {"application/json": {"schema": {
                    "type": "object", "required": ["name"]}}}}}}}})
        };
        let p = Rc::new(testkit::policy(
            "pets",
            document(true),
            json!({"candidate": {"openapi": {"document": document(false)}}}),
        ));
        let (next, outputs) = run(&p, "POST", "/pets", Some(r#"{"tag": "x"}"#));
        assert!(
            matches!(next, Next::Reply(ref r) if r.status == 400),
            "{next:?}"
        );
        assert_eq!(
            canary(&outputs),
            [(
                Change::WouldAllow,
                RuleId::ParamMissing,
                Some((Contract::Enforced, 0))
            )]
        );
        // With the header, the enforced contract reads the body, and so does the
        // candidate: both refuse it.
        let mut exchange = exchange(&p);
        let headers = [
            (":method", "POST"),
            (":path", "/pets"),
            ("content-type", "application/json"),
            ("x-version", "1"),
        ];
        let next = exchange.request(&input(), &headers, Some(br#"{"tag": "x"}"#));
        assert!(
            matches!(next, Next::Reply(ref r) if r.status == 400),
            "{next:?}"
        );
        assert_eq!(canary(&exchange.take_outputs()), []);
    }

    #[test]
    fn without_a_candidate_there_is_no_canary() {
        let p = Rc::new(testkit::policy(
            "pets",
            document(100, &["cat"], true, &["name"]),
            json!({}),
        ));
        let (_, outputs) = run(&p, "GET", "/pets?limit=50", None);
        assert_eq!(canary(&outputs), []);
    }

    #[test]
    fn the_candidate_compiles_with_the_same_errors_at_its_own_place() {
        let bad = json!({"openapi": "3.1.0", "paths": {"x": {"get": {}}}});
        let error = testkit::try_policy(
            "pets",
            document(100, &["cat"], true, &["name"]),
            json!({"candidate": {"openapi": {"document": bad}}}),
        )
        .unwrap_err();
        assert_eq!(error.location().unwrap().pointer, "/paths/x");
        assert!(
            error.to_string().contains("/candidate/openapi/document"),
            "{error}"
        );
        // An error in reading the candidate's document, not only in compiling it.
        let unreadable = json!({"openapi": "3.1.0", "paths": 5});
        let error = testkit::try_policy(
            "pets",
            document(100, &["cat"], true, &["name"]),
            json!({"candidate": {"openapi": {"document": unreadable}}}),
        )
        .unwrap_err();
        assert_eq!(error.location().unwrap().pointer, "/paths", "{error}");
        assert!(
            error.to_string().contains("/candidate/openapi/document"),
            "{error}"
        );
        let missing = testkit::try_policy(
            "pets",
            document(100, &["cat"], true, &["name"]),
            json!({"candidate": {}}),
        )
        .unwrap_err();
        assert_eq!(missing.location().unwrap().pointer, "/candidate");
        // An operation the policy's settings name may be gone from the candidate.
        let removed = testkit::try_policy(
            "pets",
            document(100, &["cat"], true, &["name"]),
            json!({"operations": {"deletePet": {"mode": "monitor"}},
                   "candidate": {"openapi": {"document": document(100, &["cat"], false, &[])}}}),
        );
        assert!(removed.is_ok(), "{removed:?}");
    }
}
