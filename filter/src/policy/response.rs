//! Response inspection: did the upstream answer as the contract declares?
//!
//! Like requests, in two steps: [`Policy::inspect_response`] checks the status and media
//! type and says whether the body must be read; [`Policy::inspect_response_body`] checks
//! the body and, with `responses.redact`, removes the properties the response schema does
//! not declare (excessive data exposure). By default violations are recorded, not
//! enforced: a contract drift in the upstream should page its owners, not break clients.
//!
//! Redaction fails closed: a response body it cannot trim is never sent as it is. What the
//! head already shows (an undeclared status or media type, a content coding, a declared
//! length over the limit) is refused with a `502` problem; what only the body shows (too
//! large while streaming, not parseable) comes after the head was sent, so the body is
//! withheld ([`CheckedBody::withheld`]) and the client gets the status with an empty body.

use std::borrow::Cow;

use crate::contract::body::{self, JsonLimits, MediaType};
use crate::contract::Content;
use crate::policy::Policy;
use crate::settings::OperationMode;
use crate::verdict::{RuleId, Verdict, Violation};

/// A response body the host must buffer and hand to [`Policy::inspect_response_body`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseBodyCheck {
    operation: usize,
    status: u16,
    media: usize,
}

/// What became of a checked response body.
#[derive(Debug)]
pub struct CheckedBody<'p> {
    pub verdict: Verdict<'p>,
    /// The body to send instead, when properties were redacted.
    pub redacted: Option<Vec<u8>>,
    /// How many properties were removed.
    pub redacted_count: usize,
    /// Redaction is on and the body could not be checked: the host sends no byte of it.
    pub withheld: bool,
}

impl Policy {
    /// Whether responses are checked at all, and whether a violation replaces them.
    pub fn response_mode(&self) -> OperationMode {
        self.responses.mode
    }

    /// Whether the request for `operation` must ask the upstream for an uncompressed
    /// answer (`Accept-Encoding: identity`): its response will be redacted, which needs the
    /// body readable.
    pub fn wants_identity_response(&self, operation: usize) -> bool {
        self.responses.redact
            && self.responses.mode != OperationMode::Off
            && self.operations.get(operation).is_some_and(|op| {
                op.contract.mode != OperationMode::Off && !op.contract.responses.is_empty()
            })
    }

    /// Checks a response head for the operation a request matched. With redaction on, a
    /// body the head shows cannot be checked is refused whatever the mode.
    pub fn inspect_response(
        &self,
        operation: usize,
        status: u16,
        headers: &[(&str, &str)],
        has_body: bool,
    ) -> (Verdict<'_>, Option<ResponseBodyCheck>) {
        let mut verdict = Verdict {
            operation: self.operation_ref(operation),
            ..Verdict::default()
        };
        let contract = match self.operations.get(operation) {
            Some(compiled) if self.responses.mode != OperationMode::Off => &compiled.contract,
            _ => return (verdict, None),
        };
        if contract.mode == OperationMode::Off || contract.responses.is_empty() {
            return (verdict, None);
        }
        let enforced =
            self.responses.mode == OperationMode::Enforce || (self.responses.redact && has_body);
        let mut refuse = |rule, reason| {
            verdict
                .violations
                .push(response_violation(rule, reason, enforced))
        };
        let check = match (contract.response(status), has_body) {
            (None, _) => {
                refuse(
                    RuleId::ResponseStatus,
                    "the operation does not declare this status",
                );
                None
            }
            (Some(None), true) => {
                refuse(RuleId::ResponseMediaType, "the response declares no body");
                None
            }
            (Some(None), false) | (Some(Some(_)), false) => None,
            (Some(Some(content)), true) => select(content, headers).map_or_else(
                |reason| {
                    refuse(RuleId::ResponseMediaType, reason);
                    None
                },
                |media| {
                    media.map(|media| ResponseBodyCheck {
                        operation,
                        status,
                        media,
                    })
                },
            ),
        };
        // Nothing is known to be wrong with such a body: refused only when it was to be
        // redacted.
        let cannot_read = check.and(unreadable(headers, self.body_limit()));
        if let Some((rule, reason)) = cannot_read {
            let redact = self.responses.redact;
            verdict
                .violations
                .push(response_violation(rule, reason, redact));
        }
        let check = check.filter(|_| cannot_read.is_none());
        verdict.settle();
        (verdict, check)
    }

    /// Checks (and with `redact`, trims) a buffered JSON response body.
    pub fn inspect_response_body(
        &self,
        check: &ResponseBodyCheck,
        bytes: &[u8],
    ) -> CheckedBody<'_> {
        let mut checked = CheckedBody {
            verdict: Verdict {
                operation: self.operation_ref(check.operation),
                ..Verdict::default()
            },
            redacted: None,
            redacted_count: 0,
            withheld: false,
        };
        let schema = self
            .operations
            .get(check.operation)
            .and_then(|op| op.contract.response(check.status))
            .and_then(|content| content.as_ref()?.media.get(check.media))
            .and_then(|media| media.schema.as_ref());
        let Some(schema) = schema else {
            return checked;
        };
        let enforced = self.responses.mode == OperationMode::Enforce;
        let violation = |reason: Cow<'static, str>, name| Violation {
            rule: RuleId::ResponseSchema,
            location: Some("response"),
            name,
            reason,
            enforced,
        };
        let limits = JsonLimits {
            max_depth: self.limits.max_json_depth,
        };
        match body::parse_json(bytes, &limits) {
            Ok(mut value) => {
                checked.verdict.violations.extend(
                    self.validate(schema, &value)
                        .map(|(pointer, reason, _)| violation(reason, Some(pointer))),
                );
                if self.responses.redact {
                    checked.redacted_count = self.schemas.redact(schema.raw(), &mut value);
                    if checked.redacted_count > 0 {
                        checked.redacted = serde_json::to_vec(&value).ok();
                    }
                }
            }
            Err(e) => {
                checked
                    .verdict
                    .violations
                    .push(violation(Cow::Owned(e.reason()), None));
                checked.withheld = self.responses.redact;
            }
        }
        checked.verdict.settle();
        checked
    }

    /// A response body over the limit, found while it streams: recorded, never enforced,
    /// since nothing about it is known to be wrong; withheld when it should have been
    /// redacted.
    pub fn response_too_large(&self, operation: usize) -> CheckedBody<'_> {
        let mut verdict = Verdict {
            operation: self.operation_ref(operation),
            violations: vec![response_violation(
                RuleId::ResponseTooLarge,
                TOO_LARGE,
                false,
            )],
            ..Verdict::default()
        };
        verdict.settle();
        CheckedBody {
            verdict,
            redacted: None,
            redacted_count: 0,
            withheld: self.responses.redact,
        }
    }
}

/// Why a response body to be checked cannot be, by its head: a content coding the filter
/// does not decode, or a declared length over the limit.
fn unreadable(headers: &[(&str, &str)], limit: usize) -> Option<(RuleId, &'static str)> {
    let header = |name| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    if header("content-encoding").is_some_and(|c| !c.trim().eq_ignore_ascii_case("identity")) {
        return Some((
            RuleId::ResponseEncoding,
            "the response body is encoded and cannot be read",
        ));
    }
    let length = header("content-length").and_then(|l| l.trim().parse::<usize>().ok());
    length
        .filter(|l| *l > limit)
        .map(|_| (RuleId::ResponseTooLarge, TOO_LARGE))
}

const TOO_LARGE: &str = "the response body is larger than the policy checks";

/// A violation of the response as a whole (no pointer into its body).
fn response_violation(rule: RuleId, reason: &'static str, enforced: bool) -> Violation {
    Violation {
        rule,
        location: Some("response"),
        name: None,
        reason: Cow::Borrowed(reason),
        enforced,
    }
}

/// The declared media type a response selects: `Ok(Some(i))` when its JSON body is to be
/// checked against a schema, `Ok(None)` when the media type was the whole check.
fn select(content: &Content, headers: &[(&str, &str)]) -> Result<Option<usize>, &'static str> {
    let media_type = headers
        .iter()
        .find(|(name, _)| *name == "content-type")
        .and_then(|(_, value)| MediaType::parse(value))
        .ok_or("the response has no valid Content-Type")?;
    let index = body::select(&content.ranges, &media_type)
        .ok_or("the response's media type is not declared")?;
    let has_schema = content.media.get(index).is_some_and(|m| m.schema.is_some());
    Ok((has_schema && media_type.is_json()).then_some(index))
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::testkit;
    use crate::verdict::Action;

    fn policy(responses: Value) -> Policy {
        policy_with(responses, json!({}))
    }

    fn policy_with(responses: Value, limits: Value) -> Policy {
        let document = json!({
            "openapi": "3.1.0",
            "paths": {"/users/{id}": {"get": {"operationId": "getUser", "responses": {
                "200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/User"}}}},
                "4XX": {"description": "client error", "content": {"application/problem+json": {}}},
                "204": {"description": "nothing"}
            }}}},
            "components": {"schemas": {
                "User": {"type": "object", "required": ["name"], "properties": {
                    "name": {"type": "string"},
                    "password": {"type": "string", "writeOnly": true},
                    "friends": {"type": "array", "items": {"$ref": "#/components/schemas/User"}},
                    "meta": {"type": "object", "additionalProperties": true}
                }}
            }}
        });
        testkit::policy(
            "users",
            document,
            json!({"responses": responses, "limits": limits}),
        )
    }

    const JSON: &[(&str, &str)] = &[("content-type", "application/json")];

    fn head(
        p: &Policy,
        status: u16,
        headers: &[(&str, &str)],
        has_body: bool,
    ) -> (Vec<RuleId>, bool) {
        let (verdict, check) = p.inspect_response(0, status, headers, has_body);
        (
            verdict.violations.iter().map(|v| v.rule).collect(),
            check.is_some(),
        )
    }

    #[test]
    fn statuses_and_media_types_are_checked() {
        let p = policy(json!({}));
        assert_eq!(head(&p, 200, JSON, true), (vec![], true));
        assert_eq!(
            head(
                &p,
                404,
                &[("content-type", "application/problem+json")],
                true
            ),
            (vec![], false),
            "class 4XX, no schema"
        );
        assert_eq!(head(&p, 204, &[], false), (vec![], false));
        assert_eq!(
            head(&p, 500, JSON, true),
            (vec![RuleId::ResponseStatus], false)
        );
        assert_eq!(
            head(&p, 200, &[("content-type", "text/html")], true),
            (vec![RuleId::ResponseMediaType], false)
        );
        assert_eq!(
            head(&p, 204, JSON, true),
            (vec![RuleId::ResponseMediaType], false),
            "204 declares no body"
        );
    }

    #[test]
    fn violations_are_recorded_unless_enforced() {
        let monitor = policy(json!({}));
        assert_eq!(
            monitor.inspect_response(0, 500, JSON, true).0.action,
            Action::Monitor
        );
        let enforce = policy(json!({"mode": "enforce"}));
        let (verdict, _) = enforce.inspect_response(0, 500, JSON, true);
        assert_eq!(
            (verdict.action, verdict.rule().map(RuleId::status)),
            (Action::Block, Some(502))
        );
        let off = policy(json!({"mode": "off"}));
        assert!(off
            .inspect_response(0, 500, JSON, true)
            .0
            .violations
            .is_empty());
    }

    fn body(p: &Policy, value: Value) -> (Vec<RuleId>, Option<Value>, usize) {
        let (_, check) = p.inspect_response(0, 200, JSON, true);
        let checked = p.inspect_response_body(&check.unwrap(), value.to_string().as_bytes());
        let redacted = checked
            .redacted
            .map(|b| serde_json::from_slice(&b).unwrap());
        (
            checked.verdict.violations.iter().map(|v| v.rule).collect(),
            redacted,
            checked.redacted_count,
        )
    }

    #[test]
    fn bodies_are_validated() {
        let p = policy(json!({}));
        assert_eq!(body(&p, json!({"name": "a"})), (vec![], None, 0));
        assert_eq!(body(&p, json!({"name": 1})).0, vec![RuleId::ResponseSchema]);
        assert_eq!(
            body(&p, json!({"name": "a", "password": "x"})).0,
            vec![RuleId::ResponseSchema],
            "writeOnly"
        );
    }

    #[test]
    fn redaction_removes_what_the_schema_does_not_declare() {
        let p = policy(json!({"redact": true}));
        let leaked = json!({
            "name": "a", "ssn": "123", "password": "x",
            "friends": [{"name": "b", "internal_score": 3}],
            "meta": {"anything": "stays"}
        });
        let (_, redacted, count) = body(&p, leaked);
        assert_eq!(count, 3);
        assert_eq!(
            redacted,
            Some(json!({"name": "a", "friends": [{"name": "b"}], "meta": {"anything": "stays"}}))
        );
        assert_eq!(
            body(&p, json!({"name": "a"})),
            (vec![], None, 0),
            "nothing to redact, body untouched"
        );
    }

    #[test]
    fn redaction_refuses_what_the_head_shows_it_cannot_check() {
        let limits = json!({"max_body_bytes": 100});
        let p = policy_with(json!({"redact": true}), limits.clone());
        let refused = |status, headers: &[(&str, &str)], has_body| {
            let (verdict, check) = p.inspect_response(0, status, headers, has_body);
            assert!(check.is_none());
            (verdict.action, verdict.rule().map(RuleId::as_str))
        };
        let block = |rule| (Action::Block, Some(rule));
        assert_eq!(refused(500, JSON, true), block("response.status"));
        assert_eq!(
            refused(500, JSON, false).0,
            Action::Monitor,
            "no body, nothing to leak"
        );
        let html = &[("content-type", "text/html")][..];
        assert_eq!(refused(200, html, true), block("response.media_type"));
        let gzip = &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ][..];
        assert_eq!(refused(200, gzip, true), block("response.encoding"));
        let long = &[
            ("content-type", "application/json"),
            ("content-length", "101"),
        ][..];
        assert_eq!(refused(200, long, true), block("response.too_large"));
        let identity = &[
            ("content-type", "application/json"),
            ("content-encoding", "identity"),
            ("content-length", "100"),
        ][..];
        assert_eq!(head(&p, 200, identity, true), (vec![], true));

        let unredacted = policy_with(json!({"mode": "enforce"}), limits);
        for headers in [gzip, long] {
            let (verdict, check) = unredacted.inspect_response(0, 200, headers, true);
            assert_eq!(
                (verdict.action, check),
                (Action::Monitor, None),
                "not known to be wrong, only unchecked: {headers:?}"
            );
        }
    }

    #[test]
    fn redaction_withholds_a_body_it_cannot_check() {
        let deep = format!("{}{}", "[".repeat(80), "]".repeat(80));
        let unparsable = [
            "\u{feff}{\"name\": \"a\"}".to_owned(),
            "{\"name\": 1e400}".to_owned(),
            deep,
        ];
        for (redact, withheld) in [(true, true), (false, false)] {
            let p = policy(json!({"redact": redact}));
            let (_, check) = p.inspect_response(0, 200, JSON, true);
            let check = check.unwrap();
            for text in &unparsable {
                let checked = p.inspect_response_body(&check, text.as_bytes());
                assert_eq!(
                    (checked.withheld, checked.verdict.rule()),
                    (withheld, Some(RuleId::ResponseSchema)),
                    "redact: {redact}, {text:.20}"
                );
            }
            assert_eq!(p.response_too_large(0).withheld, withheld);
            let parsed = p.inspect_response_body(&check, br#"{"name": 1}"#);
            assert!(!parsed.withheld, "parsed and checked, if invalid");
            assert_eq!(p.wants_identity_response(0), redact);
        }
    }
}
