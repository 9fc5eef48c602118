//! Request inspection: pure functions from what the host saw to a verdict.
//!
//! A request is inspected in up to two steps, because its body arrives after its head:
//! [`Policy::inspect`] checks the path, method, parameters and the body's media type and
//! says whether the body must be read; [`Policy::inspect_body`] then checks the buffered
//! body. Either step can block. Nothing here allocates per declared operation, compiles,
//! or echoes request bytes.

use std::borrow::Cow;

use serde_json::Value;

use crate::body::{self, BodyError, JsonLimits, MediaType};
use crate::config::OperationMode;
use crate::contract::{Contract, Media, FORM_TYPES};
use crate::params::{self, Source};
use crate::path;
use crate::policy::Policy;
use crate::schema::Schema;
use crate::shape::{coerce, Shape, Types};
use crate::verdict::{sanitize, Method, OperationRef, RuleId, Verdict, Violation};

/// What the engine needs of a request head, as the host has it.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    pub method: &'a [u8],
    /// The `:path` pseudo-header: path and query, as Envoy will route it.
    pub path: &'a [u8],
    /// The regular headers, names lowercase as Envoy gives them.
    pub headers: &'a [(&'a str, &'a str)],
    /// Whether a body stream follows the head. It may still turn out empty (a zero-length
    /// chunked body, an HTTP/2 empty DATA frame): [`Policy::inspect_body`] then reads it as
    /// no body at all.
    pub has_body: bool,
}

/// A body the host must buffer (up to [`Policy::body_limit`]) and hand to
/// [`Policy::inspect_body`]. Owned, so the host can keep it between callbacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyCheck {
    operation: usize,
    media: usize,
    /// Whether an empty body is a missing one (`body.missing`).
    required: bool,
    read: Read,
}

impl BodyCheck {
    /// The operation whose body this is (for the anomaly checks, which read it too).
    pub fn operation(&self) -> usize {
        self.operation
    }

    pub fn is_json(&self) -> bool {
        self.read == Read::Json
    }

    pub fn is_form(&self) -> bool {
        self.read == Read::Form
    }
}

/// What the body's bytes decide. Parsed from the request's own `Content-Type`, or not read
/// at all when its first byte settles it: a head announcing a body cannot tell an empty one,
/// and an empty body is no body.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Read {
    Json,
    Form,
    Multipart {
        boundary: String,
    },
    /// A declared body the filter does not parse: that it is there is the whole check.
    Presence,
    /// Any byte breaks the contract (no body declared, a media type not accepted).
    Refuse(RuleId, &'static str),
}

impl Policy {
    /// The most body bytes the filter buffers; more is refused with 413.
    pub fn body_limit(&self) -> usize {
        self.limits.max_body_bytes
    }

    /// Checks a request head. The second value asks for the body, when the operation's
    /// contract has something to check in it. Never panics, whatever the bytes.
    pub fn inspect<'p>(&'p self, head: &RequestHead<'_>) -> (Verdict<'p>, Option<BodyCheck>) {
        let mut verdict = Verdict::default();
        let mut body = None;
        let enforced = self.mode == crate::config::Mode::Enforce;
        if let Err(rule) = self.check_head(head, &mut verdict, &mut body) {
            verdict.violations.push(Violation {
                rule,
                location: None,
                name: None,
                reason: Cow::Borrowed(rule.title()),
                enforced,
            });
        }
        verdict.settle();
        if verdict.action == crate::verdict::Action::Block {
            body = None;
        }
        (verdict, body)
    }

    /// Checks a buffered body against what [`Policy::inspect`] selected.
    pub fn inspect_body(&self, check: &BodyCheck, bytes: &[u8]) -> Verdict<'_> {
        let mut verdict = Verdict {
            operation: self.operation_ref(check.operation),
            ..Verdict::default()
        };
        let Some(compiled) = self.operations.get(check.operation) else {
            return verdict;
        };
        let contract = &compiled.contract;
        let enforced = contract.mode == OperationMode::Enforce;
        let report = |rule, name: Option<String>, reason: Cow<'static, str>| Violation {
            rule,
            location: Some("body"),
            name,
            reason,
            enforced,
        };
        let media = contract
            .body
            .as_ref()
            .and_then(|b| b.content.media.get(check.media));
        if bytes.is_empty() {
            if check.required {
                let reason = Cow::Borrowed(REQUIRED);
                verdict
                    .violations
                    .push(report(RuleId::BodyMissing, None, reason));
            }
        } else if let Read::Refuse(rule, reason) = check.read {
            verdict
                .violations
                .push(report(rule, None, Cow::Borrowed(reason)));
        } else if let Some(media) = media {
            match self.read_body(&check.read, media, bytes) {
                Ok(Some(value)) => {
                    if let Some(schema) = &media.schema {
                        verdict.violations.extend(self.validate(schema, &value).map(
                            |(pointer, reason)| report(RuleId::BodySchema, Some(pointer), reason),
                        ));
                    }
                }
                Ok(None) => {}
                Err(e) => verdict.violations.push(report(
                    RuleId::BodyMalformed,
                    None,
                    Cow::Owned(e.reason()),
                )),
            }
        }
        verdict.settle();
        verdict
    }

    /// What a body that has reached `size` bytes, and may go on, already settles: a body
    /// over [`Policy::body_limit`], or one whose first byte is the whole check. `None` while
    /// the rest is needed; the host then buffers on and calls [`Policy::inspect_body`] at
    /// its end.
    pub fn inspect_body_start(&self, check: &BodyCheck, size: usize) -> Option<Verdict<'_>> {
        if size == 0 {
            return None;
        }
        match check.read {
            // That a byte came is the whole check; which byte is never read.
            Read::Refuse(..) | Read::Presence => Some(self.inspect_body(check, b" ")),
            _ if size > self.body_limit() => Some(self.body_too_large(check)),
            _ => None,
        }
    }

    /// The verdict for a body over [`Policy::body_limit`], found while it streams in.
    fn body_too_large(&self, check: &BodyCheck) -> Verdict<'_> {
        let enforced = self
            .operations
            .get(check.operation)
            .is_none_or(|op| op.contract.mode == OperationMode::Enforce);
        let mut verdict = Verdict {
            operation: self.operation_ref(check.operation),
            violations: vec![Violation {
                rule: RuleId::BodyTooLarge,
                location: Some("body"),
                name: None,
                reason: Cow::Borrowed("the body is larger than the policy allows"),
                enforced,
            }],
            ..Verdict::default()
        };
        verdict.settle();
        verdict
    }

    fn read_body(
        &self,
        read: &Read,
        media: &Media,
        bytes: &[u8],
    ) -> Result<Option<Value>, BodyError> {
        let limits = JsonLimits {
            max_depth: self.limits.max_json_depth,
        };
        match (read, &media.form) {
            (Read::Json, _) => body::parse_json(bytes, &limits).map(Some),
            (Read::Form, Some(form)) => body::parse_form(bytes, form).map(Some),
            (Read::Multipart { boundary }, Some(form)) => {
                body::parse_multipart(bytes, boundary.as_str(), form, &limits).map(Some)
            }
            // A form body for a declaration without an object schema: nothing to check.
            (Read::Form | Read::Multipart { .. }, None)
            | (Read::Presence | Read::Refuse(..), _) => Ok(None),
        }
    }

    /// Schema violations as (pointer, reason) pairs.
    pub(crate) fn validate<'a>(
        &'a self,
        schema: &'a Schema,
        value: &Value,
    ) -> impl Iterator<Item = (String, Cow<'static, str>)> + 'a {
        schema
            .validate(&self.schemas, value)
            .into_iter()
            .map(|v| (v.pointer, Cow::Owned(v.reason)))
    }

    pub(crate) fn operation_ref(&self, id: usize) -> Option<OperationRef<'_>> {
        let op = self.operations.get(id)?;
        Some(OperationRef {
            method: op.method,
            template: &op.template,
            operation_id: op.operation_id.as_deref(),
            id,
        })
    }

    /// Routing errors return the rule; everything after the match is pushed as
    /// violations of the operation's contract.
    fn check_head<'p>(
        &'p self,
        head: &RequestHead<'_>,
        verdict: &mut Verdict<'p>,
        body: &mut Option<BodyCheck>,
    ) -> Result<(), RuleId> {
        let target = path::parse(head.path)?;
        let found = self
            .router
            .find(&target.segments)
            .ok_or(RuleId::UnknownPath)?;
        let route = found.route;
        let operation = Method::from_request(head.method).and_then(|m| route.operation(m));
        let Some(operation) = operation else {
            verdict.allowed = Some((route.template(), route.methods()));
            return Err(RuleId::MethodNotAllowed);
        };
        verdict.operation = self.operation_ref(operation.id);
        let Some(compiled) = self.operations.get(operation.id) else {
            return Ok(());
        };
        let contract = &compiled.contract;
        // Credentials first, before any of the request is parsed; `off` skips the
        // contract, never the credentials (which then follow the policy's mode).
        let enforced = match contract.mode {
            OperationMode::Enforce => true,
            OperationMode::Monitor => false,
            OperationMode::Off => self.mode == crate::config::Mode::Enforce,
        };
        let now = crate::security::unix_now();
        match self.security.check(operation.id, head, now, enforced) {
            Ok(identity) => verdict.identity = identity,
            Err(violation) => {
                let blocks = violation.enforced;
                verdict.violations.push(violation);
                if blocks {
                    return Ok(());
                }
            }
        }
        if contract.mode == OperationMode::Off {
            return Ok(());
        }
        let path_values: Vec<(&str, &str)> = operation
            .params
            .iter()
            .map(String::as_str)
            .zip(found.values.iter().copied())
            .collect();
        let checker = Checker {
            policy: self,
            contract,
            enforced: contract.mode == OperationMode::Enforce,
        };
        checker.params(head, target.query, &path_values, &mut verdict.violations);
        *body = checker.body(head, operation.id, &mut verdict.violations);
        Ok(())
    }
}

/// Checks of one request against one operation's contract.
struct Checker<'p> {
    policy: &'p Policy,
    contract: &'p Contract,
    enforced: bool,
}

impl Checker<'_> {
    fn violation(
        &self,
        rule: RuleId,
        location: &'static str,
        name: Option<String>,
        reason: Cow<'static, str>,
    ) -> Violation {
        Violation {
            rule,
            location: Some(location),
            name,
            reason,
            enforced: self.enforced,
        }
    }

    fn params(
        &self,
        head: &RequestHead<'_>,
        query: Option<&[u8]>,
        path_values: &[(&str, &str)],
        out: &mut Vec<Violation>,
    ) {
        let query = match params::parse_query(query.unwrap_or_default()) {
            Ok(query) => query,
            Err(e) => {
                out.push(self.violation(
                    RuleId::ParamInvalid,
                    "query",
                    None,
                    Cow::Borrowed(e.reason()),
                ));
                return;
            }
        };
        let cookie_headers: Vec<&str> = header_values(head.headers, "cookie").collect();
        let cookies = params::parse_cookies(&cookie_headers);
        let source = Source {
            path_values,
            query: &query,
            headers: head.headers,
            cookies: &cookies,
        };
        for (spec, check) in self.contract.params.iter().zip(&self.contract.param_checks) {
            let location = spec.location.as_str();
            let name = || Some(spec.name.clone());
            let value = match params::extract(spec, &self.contract.params, &source) {
                Ok(Some(value)) => value,
                Ok(None) if spec.required => {
                    out.push(self.violation(
                        RuleId::ParamMissing,
                        location,
                        name(),
                        Cow::Borrowed("is required"),
                    ));
                    continue;
                }
                Ok(None) => continue,
                Err(e) => {
                    out.push(self.violation(
                        RuleId::ParamInvalid,
                        location,
                        name(),
                        Cow::Borrowed(e.reason()),
                    ));
                    continue;
                }
            };
            let value = match (check.json, value) {
                (true, Value::String(text)) => match serde_json::from_str(&text) {
                    Ok(parsed) => parsed,
                    Err(_) => {
                        out.push(self.violation(
                            RuleId::ParamInvalid,
                            location,
                            name(),
                            Cow::Borrowed("is not valid JSON"),
                        ));
                        continue;
                    }
                },
                (_, value) => value,
            };
            if let Some(schema) = &check.schema {
                let failures: Vec<_> = self.policy.validate(schema, &value).collect();
                if !failures.is_empty()
                    && lone_scalar(&spec.shape, &value).is_some_and(|scalar| {
                        self.policy.validate(schema, &scalar).next().is_none()
                    })
                {
                    continue;
                }
                for (pointer, reason) in failures {
                    let reason = if pointer.is_empty() {
                        reason
                    } else {
                        Cow::Owned(format!("{pointer} {reason}"))
                    };
                    out.push(self.violation(RuleId::ParamInvalid, location, name(), reason));
                }
            }
        }
        for undeclared in params::undeclared_query(&self.contract.params, &query) {
            out.push(Violation {
                enforced: self.enforced && self.contract.strict,
                ..self.violation(
                    RuleId::ParamUndeclared,
                    "query",
                    Some(sanitize(undeclared)),
                    Cow::Borrowed("is not declared by the operation"),
                )
            });
        }
    }

    /// Decides what the body needs: nothing, a refusal now, or reading it. A refusal that
    /// only a non-empty body deserves waits for its first byte, unless `Content-Length`
    /// already announces one.
    fn body(
        &self,
        head: &RequestHead<'_>,
        operation: usize,
        out: &mut Vec<Violation>,
    ) -> Option<BodyCheck> {
        let required = self.contract.body.as_ref().is_some_and(|b| b.required);
        if !head.has_body {
            if required {
                out.push(self.violation(
                    RuleId::BodyMissing,
                    "body",
                    None,
                    Cow::Borrowed(REQUIRED),
                ));
            }
            return None;
        }
        let length = header_values(head.headers, "content-length")
            .next()
            .and_then(|l| l.trim().parse::<usize>().ok());
        let (media, read) = match self.read(head, length) {
            Ok(Some(found)) => found,
            Ok(None) if required => (0, Read::Presence),
            Ok(None) => return None,
            Err((rule, reason)) if length.is_some_and(|l| l > 0) => {
                out.push(self.violation(rule, "body", None, Cow::Borrowed(reason)));
                return None;
            }
            Err((rule, reason)) => (0, Read::Refuse(rule, reason)),
        };
        Some(BodyCheck {
            operation,
            media,
            required,
            read,
        })
    }

    /// How to read a body that is there: `Ok(None)` when there is nothing to parse, `Err`
    /// with the refusal it deserves.
    fn read(
        &self,
        head: &RequestHead<'_>,
        length: Option<usize>,
    ) -> Result<Option<(usize, Read)>, (RuleId, &'static str)> {
        let declared = (self.contract.body.as_ref()).ok_or((
            RuleId::BodyUndeclared,
            "the operation declares no request body",
        ))?;
        if length.is_some_and(|l| l > self.policy.body_limit()) {
            return Err((
                RuleId::BodyTooLarge,
                "the body is larger than the policy allows",
            ));
        }
        let media_type = header_values(head.headers, "content-type")
            .next()
            .and_then(MediaType::parse)
            .ok_or((RuleId::BodyMediaType, "the body has no valid Content-Type"))?;
        let index = body::select(&declared.content.ranges, &media_type).ok_or((
            RuleId::BodyMediaType,
            "the operation does not accept this media type",
        ))?;
        if (declared.content.media.get(index)).is_none_or(|m| m.schema.is_none()) {
            return Ok(None);
        }
        let essence = media_type.essence();
        let read = if media_type.is_json() {
            Read::Json
        } else if essence == FORM_TYPES[0] {
            Read::Form
        } else if essence == FORM_TYPES[1] {
            let boundary = media_type
                .param("boundary")
                .ok_or((RuleId::BodyMalformed, "a multipart body needs a boundary"))?;
            Read::Multipart {
                boundary: boundary.to_owned(),
            }
        } else {
            // Declared, but not a type the filter parses: the media type was the check.
            return Ok(None);
        };
        Ok(Some((index, read)))
    }
}

const REQUIRED: &str = "the operation requires a request body";

/// The values of one header, in order; names are lowercase in Envoy.
/// A lone value read as a one-item list, read again as the scalar its schema also admits
/// (`oneOf: [string, array]`): `?tag=a` is both `["a"]` and `"a"`, and either may be valid.
fn lone_scalar(shape: &Shape, value: &Value) -> Option<Value> {
    let Shape::Array { scalar, .. } = shape else {
        return None;
    };
    match value.as_array()?.as_slice() {
        [item] if *scalar != Types::default() => Some(match item {
            Value::String(text) => coerce(text, *scalar),
            other => coerce(&other.to_string(), *scalar),
        }),
        _ => None,
    }
}

fn header_values<'h>(
    headers: &'h [(&'h str, &'h str)],
    name: &'h str,
) -> impl Iterator<Item = &'h str> + 'h {
    headers
        .iter()
        .filter(move |(n, _)| *n == name)
        .map(|(_, v)| *v)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::verdict::Action;

    /// A small 3.0 contract touching every check, with the policy settings in `extra`.
    fn policy(extra: serde_json::Value) -> Policy {
        let document = json!({
            "openapi": "3.0.3",
            "paths": {
                "/items": {
                    "get": {
                        "operationId": "listItems",
                        "parameters": [
                            {"name": "limit", "in": "query", "required": true, "schema": {"type": "integer", "maximum": 50}},
                            {"name": "tags", "in": "query", "schema": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}}},
                            {"name": "X-Tenant", "in": "header", "schema": {"type": "string", "format": "uuid"}},
                            {"name": "session", "in": "cookie", "schema": {"type": "string", "minLength": 4}},
                            {"name": "near", "in": "query", "schema": {"oneOf": [
                                {"type": "string", "pattern": "^[a-z]+$"},
                                {"type": "array", "items": {"type": "integer"}, "minItems": 2}
                            ]}}
                        ]
                    },
                    "post": {
                        "operationId": "createItem",
                        "x-apiguard": {"strict": true},
                        "requestBody": {"required": true, "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Item"}},
                            "application/x-www-form-urlencoded": {"schema": {"$ref": "#/components/schemas/Item"}}
                        }},
                        "responses": {"201": {"description": "made", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Item"}}}}}
                    }
                },
                "/items/{id}": {
                    "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "minimum": 1}}],
                    "get": {"operationId": "getItem", "responses": {"200": {"description": "ok"}}},
                    "delete": {"operationId": "deleteItem", "x-apiguard": {"mode": "off"}},
                    "put": {"operationId": "putItemBlob", "requestBody": {"required": true, "content": {"application/octet-stream": {}}}}
                }
            },
            "components": {"schemas": {"Item": {
                "type": "object", "required": ["name"],
                "properties": {"id": {"type": "integer", "readOnly": true}, "name": {"type": "string"}, "count": {"type": "integer"}}
            }}}
        });
        let mut config = json!({"name": "items", "openapi": {"document": document}});
        if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
            config.extend(extra.clone());
        }
        Policy::compile(config.to_string().as_bytes()).unwrap()
    }

    /// Inspects a request, body included, and returns every (rule, enforced) found.
    fn run(
        policy: &Policy,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> (Action, Vec<(String, bool)>) {
        let (head, check) = policy.inspect(&RequestHead {
            method: method.as_bytes(),
            path: target.as_bytes(),
            headers,
            has_body: body.is_some(),
        });
        let mut violations = head.violations.clone();
        let mut action = head.action;
        if let (Some(check), Some(body), false) = (check, body, action == Action::Block) {
            let verdict = policy.inspect_body(&check, body.as_bytes());
            violations.extend(verdict.violations);
            action = match (action, verdict.action) {
                (_, Action::Block) => Action::Block,
                (Action::Allow, other) => other,
                (other, _) => other,
            };
        }
        (
            action,
            violations
                .iter()
                .map(|v| (v.rule.as_str().to_owned(), v.enforced))
                .collect(),
        )
    }

    fn rules(found: &(Action, Vec<(String, bool)>)) -> Vec<&str> {
        found.1.iter().map(|(rule, _)| rule.as_str()).collect()
    }

    const JSON: &[(&str, &str)] = &[("content-type", "application/json")];

    #[test]
    fn parameters_in_every_location() {
        let p = policy(json!({}));
        let ok = run(
            &p,
            "GET",
            "/items?limit=5&tags=a&tags=b",
            &[
                ("x-tenant", "7c9e6679-7425-40de-944b-e07fc1f90ae7"),
                ("cookie", "session=abcd"),
            ],
            None,
        );
        assert_eq!(ok, (Action::Allow, vec![]));
        assert_eq!(
            rules(&run(&p, "GET", "/items", &[], None)),
            ["params.missing"]
        );
        assert_eq!(
            rules(&run(&p, "GET", "/items?limit=51", &[], None)),
            ["params.invalid"]
        );
        assert_eq!(
            rules(&run(&p, "GET", "/items?limit=five", &[], None)),
            ["params.invalid"]
        );
        assert_eq!(
            rules(&run(&p, "GET", "/items?limit=1&limit=2", &[], None)),
            ["params.invalid"]
        );
        assert_eq!(
            rules(&run(&p, "GET", "/items?limit=1&tags=c", &[], None)),
            ["params.invalid"]
        );
        assert_eq!(
            rules(&run(
                &p,
                "GET",
                "/items?limit=1",
                &[("x-tenant", "nope")],
                None
            )),
            ["params.invalid"]
        );
        assert_eq!(
            rules(&run(
                &p,
                "GET",
                "/items?limit=1",
                &[("cookie", "session=ab")],
                None
            )),
            ["params.invalid"]
        );
        assert_eq!(
            rules(&run(&p, "GET", "/items/0", &[], None)),
            ["params.invalid"]
        );
        assert_eq!(
            rules(&run(&p, "GET", "/items?limit=%zz", &[], None)),
            ["params.invalid"]
        );
    }

    #[test]
    fn violations_name_the_parameter_and_never_the_value() {
        let p = policy(json!({}));
        let (verdict, _) = p.inspect(&RequestHead {
            method: b"GET",
            path: b"/items?limit=%3Cscript%3E",
            headers: &[],
            has_body: false,
        });
        let v = &verdict.violations[0];
        assert_eq!(
            (v.location, v.name.as_deref()),
            (Some("query"), Some("limit"))
        );
        assert!(!v.reason.contains("script"), "{}", v.reason);
    }

    #[test]
    fn a_lone_value_may_be_the_scalar_its_schema_also_admits() {
        let p = policy(json!({}));
        let get = |query: &str| {
            rules(&run(
                &p,
                "GET",
                &format!("/items?limit=1&{query}"),
                &[],
                None,
            ))
            .join(",")
        };
        assert_eq!(get("near=paris"), "");
        assert_eq!(get("near=1&near=2"), "");
        assert_eq!(get("near=1"), "params.invalid");
        assert_eq!(get("near=Paris"), "params.invalid");
        assert_eq!(get("near=a&near=b"), "params.invalid");
    }

    #[test]
    fn undeclared_query_parameters_are_recorded_or_refused_in_strict_mode() {
        let lenient = policy(json!({}));
        assert_eq!(
            run(&lenient, "GET", "/items?limit=1&debug=1", &[], None),
            (
                Action::Monitor,
                vec![("params.undeclared".to_owned(), false)]
            )
        );
        let strict = policy(json!({"strict": true}));
        assert_eq!(
            run(&strict, "GET", "/items?limit=1&debug=1", &[], None),
            (Action::Block, vec![("params.undeclared".to_owned(), true)])
        );
    }

    #[test]
    fn bodies_are_selected_parsed_and_validated() {
        let p = policy(json!({}));
        assert_eq!(
            run(
                &p,
                "POST",
                "/items",
                JSON,
                Some(r#"{"name": "a", "count": 2}"#)
            ),
            (Action::Allow, vec![])
        );
        let charset = &[("content-type", "application/json; charset=utf-8")][..];
        assert_eq!(
            run(&p, "POST", "/items", charset, Some(r#"{"name": "a"}"#)).0,
            Action::Allow
        );
        let form = &[("content-type", "application/x-www-form-urlencoded")][..];
        assert_eq!(
            run(&p, "POST", "/items", form, Some("name=a&count=2")),
            (Action::Allow, vec![])
        );
        assert_eq!(
            rules(&run(&p, "POST", "/items", form, Some("name=a&count=two"))),
            ["body.schema"]
        );
        assert_eq!(
            rules(&run(&p, "POST", "/items", JSON, Some(r#"{"count": 2}"#))),
            ["body.schema"]
        );
        assert_eq!(
            rules(&run(
                &p,
                "POST",
                "/items",
                JSON,
                Some(r#"{"name": "a", "id": 1}"#)
            )),
            ["body.schema"],
            "readOnly"
        );
        assert_eq!(
            rules(&run(
                &p,
                "POST",
                "/items",
                JSON,
                Some(r#"{"name": "a", "admin": true}"#)
            )),
            ["body.schema"],
            "x-apiguard strict"
        );
        assert_eq!(
            rules(&run(&p, "POST", "/items", JSON, Some("{\"name\": "))),
            ["body.malformed"]
        );
        assert_eq!(
            rules(&run(&p, "POST", "/items", JSON, None)),
            ["body.missing"]
        );
        assert_eq!(
            rules(&run(
                &p,
                "POST",
                "/items",
                &[("content-type", "text/plain")],
                Some("x")
            )),
            ["body.media_type"]
        );
        assert_eq!(
            rules(&run(&p, "POST", "/items", &[], Some("x"))),
            ["body.media_type"]
        );
        assert_eq!(
            rules(&run(&p, "GET", "/items?limit=1", JSON, Some("{}"))),
            ["body.undeclared"]
        );
    }

    #[test]
    fn body_errors_point_into_the_body() {
        let p = policy(json!({}));
        let (_, check) = p.inspect(&RequestHead {
            method: b"POST",
            path: b"/items",
            headers: JSON,
            has_body: true,
        });
        let verdict = p.inspect_body(&check.unwrap(), br#"{"name": 5}"#);
        let v = &verdict.violations[0];
        assert_eq!(
            (v.location, v.name.as_deref(), v.reason.as_ref()),
            (Some("body"), Some("/name"), "must be of type string")
        );
    }

    #[test]
    fn size_limits_refuse_before_reading() {
        let p = policy(json!({"limits": {"max_body_bytes": 10, "max_json_depth": 2}}));
        let big = &[
            ("content-type", "application/json"),
            ("content-length", "11"),
        ][..];
        let (verdict, check) = p.inspect(&RequestHead {
            method: b"POST",
            path: b"/items",
            headers: big,
            has_body: true,
        });
        assert_eq!((verdict.rule(), check), (Some(RuleId::BodyTooLarge), None));
        assert_eq!(problem_status(&verdict), 413);
        assert_eq!(
            rules(&run(&p, "POST", "/items", JSON, Some(r#"{"a":[[1]]}"#))),
            ["body.malformed"]
        );
    }

    /// The rules of a head announcing a body, and of that body once it has `size` bytes.
    fn body_start(p: &Policy, method: &str, headers: &[(&str, &str)], size: usize) -> String {
        let (head, check) = p.inspect(&RequestHead {
            method: method.as_bytes(),
            path: if method == "GET" {
                &b"/items?limit=1"[..]
            } else {
                b"/items"
            },
            headers,
            has_body: true,
        });
        let settled = check.and_then(|check| p.inspect_body_start(&check, size));
        let mut found: Vec<&str> = head.violations.iter().map(|v| v.rule.as_str()).collect();
        if let Some(verdict) = &settled {
            found.extend(verdict.violations.iter().map(|v| v.rule.as_str()));
            found.push(if verdict.action == Action::Block {
                "block"
            } else {
                "settled"
            });
        }
        found.join(",")
    }

    #[test]
    fn empty_bodies_are_no_bodies() {
        let p = policy(json!({}));
        for headers in [&[][..], JSON, &[("content-type", "text/plain")]] {
            assert_eq!(
                run(&p, "GET", "/items?limit=1", headers, Some("")),
                (Action::Allow, vec![]),
                "a GET with an empty body, {headers:?}"
            );
            assert_eq!(
                rules(&run(&p, "POST", "/items", headers, Some(""))),
                ["body.missing"],
                "a required body, empty, {headers:?}"
            );
        }
        assert_eq!(
            rules(&run(&p, "PUT", "/items/1", &[], Some(""))),
            ["body.missing"],
            "a required body the filter does not parse"
        );
        assert_eq!(run(&p, "PUT", "/items/1", &[], None).0, Action::Block);
    }

    #[test]
    fn a_body_that_breaks_the_contract_is_refused_at_its_first_byte() {
        let p = policy(json!({}));
        assert_eq!(body_start(&p, "GET", &[], 0), "", "nothing settled yet");
        assert_eq!(body_start(&p, "GET", &[], 1), "body.undeclared,block");
        let text = &[("content-type", "text/plain")][..];
        assert_eq!(body_start(&p, "POST", text, 1), "body.media_type,block");
        assert_eq!(
            body_start(&p, "POST", JSON, 1),
            "",
            "a JSON body is read whole"
        );
        let announced = &[("content-length", "2")][..];
        assert_eq!(
            body_start(&p, "GET", announced, 0),
            "body.undeclared",
            "refused with the head when Content-Length announces a body"
        );
        let octets = &[("content-type", "application/octet-stream")][..];
        let (_, check) = p.inspect(&RequestHead {
            method: b"PUT",
            path: b"/items/1",
            headers: octets,
            has_body: true,
        });
        let settled = p.inspect_body_start(&check.unwrap(), 1).unwrap();
        assert_eq!(
            (settled.action, settled.violations.len()),
            (Action::Allow, 0),
            "a required body is there: nothing more to read"
        );
        let small = policy(json!({"limits": {"max_body_bytes": 4}}));
        assert_eq!(body_start(&small, "POST", JSON, 5), "body.too_large,block");
    }

    fn problem_status(verdict: &Verdict<'_>) -> u16 {
        verdict.rule().map_or(0, RuleId::status)
    }

    #[test]
    fn operation_modes_come_from_the_document_and_the_policy() {
        let p = policy(json!({}));
        assert_eq!(
            run(&p, "DELETE", "/items/0", &[], None),
            (Action::Allow, vec![]),
            "x-apiguard mode off"
        );
        let monitored = policy(json!({"operations": {"createItem": {"mode": "monitor"}}}));
        assert_eq!(
            run(&monitored, "POST", "/items", JSON, Some("{}")),
            (Action::Monitor, vec![("body.schema".to_owned(), false)])
        );
        let by_template = policy(json!({"operations": {"GET /items/{id}": {"mode": "off"}}}));
        assert_eq!(
            run(&by_template, "GET", "/items/0", &[], None).0,
            Action::Allow
        );
        let api_monitor = policy(json!({"mode": "monitor"}));
        assert_eq!(
            run(&api_monitor, "GET", "/items", &[], None),
            (Action::Monitor, vec![("params.missing".to_owned(), false)])
        );
    }

    #[test]
    fn unknown_operation_overrides_are_refused() {
        let config = json!({"name": "x", "operations": {"nope": {"mode": "off"}}, "openapi": {"document": {"openapi": "3.1.0", "paths": {"/a": {"get": {}}}}}});
        let e = Policy::compile(config.to_string().as_bytes()).unwrap_err();
        assert_eq!(e.location().unwrap().pointer, "/operations/nope");
    }

    #[test]
    fn lazy_schemas_compile_on_first_use_and_fail_closed() {
        let document = json!({"openapi": "3.1.0", "paths": {"/a": {"get": {"parameters": [
            {"name": "q", "in": "query", "schema": {"type": "string", "pattern": "("}}]}}}});
        let config = |schemas: &str| {
            json!({"name": "x", "schemas": schemas, "openapi": {"document": document}}).to_string()
        };
        assert!(Policy::compile(config("eager").as_bytes()).is_err());
        let lazy = Policy::compile(config("lazy").as_bytes()).unwrap();
        assert_eq!(
            rules(&run(&lazy, "GET", "/a?q=x", &[], None)),
            ["params.invalid"]
        );
    }
}
