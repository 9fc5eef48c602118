//! Request inspection: pure functions from what the host saw to a verdict.
//!
//! A request is inspected in up to two steps, because its body arrives after its head:
//! [`Policy::inspect`] checks the path, method, parameters and the body's media type and
//! says whether the body must be read; [`Policy::inspect_body`] then checks the buffered
//! body. Either step can block. Nothing here allocates per declared operation, compiles,
//! or echoes request bytes.

use std::borrow::Cow;

use serde_json::Value;

use crate::contract::body::{self, BodyError, JsonCaps, JsonLimits, MediaType};
use crate::contract::overrides;
use crate::contract::params::{self, In, Source};
use crate::contract::path;
use crate::contract::schema::{Schema, SSRF};
use crate::contract::shape::{coerce, Shape, Types};
use crate::contract::{Contract, Media, FORM_TYPES};
use crate::policy::Policy;
use crate::request::{header_values, Method, RequestHead};
use crate::security::KeyRing;
use crate::settings::OperationMode;
use crate::verdict::{sanitize, OperationRef, RuleId, Verdict, Violation};

/// A body the host must buffer (up to [`Policy::body_limit`]) and hand to
/// [`Policy::inspect_body`]. Owned, so the host can keep it between callbacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyCheck {
    operation: usize,
    media: usize,
    /// Whether an empty body is a missing one (`body.missing`).
    required: bool,
    read: Read,
    /// A GET or HEAD whose head announced no length: a body that comes is the
    /// `anomaly.body_on_get` finding (an empty one is no body, and no finding).
    body_on_get: bool,
}

impl BodyCheck {
    /// The operation whose body this is (for the anomaly checks, which read it too).
    pub fn operation(&self) -> usize {
        self.operation
    }

    /// Whether a non-empty body is itself an anomaly (a GET or HEAD that did not announce it).
    pub fn body_on_get(&self) -> bool {
        self.body_on_get
    }

    /// Whether the contract reads the body as JSON.
    pub fn is_json(&self) -> bool {
        self.read == Read::Json
    }

    /// Whether the contract reads the body as an urlencoded form.
    pub fn is_form(&self) -> bool {
        self.read == Read::Form
    }

    /// The boundary of a multipart body.
    pub fn multipart_boundary(&self) -> Option<&str> {
        match &self.read {
            Read::Multipart { boundary } => Some(boundary),
            _ => None,
        }
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
    /// Tokens are checked against the local keys only, with no cache (see
    /// [`Policy::inspect_at`]).
    pub fn inspect<'p>(&'p self, head: &RequestHead<'_>) -> (Verdict<'p>, Option<BodyCheck>) {
        let ring = KeyRing::new(&self.security);
        self.inspect_at(head, &ring, crate::security::unix_now())
    }

    /// [`Policy::inspect`] with what the token checks learnt so far (`ring`: fetched keys,
    /// verified tokens), at `now` (seconds since the Unix epoch), the time token claims
    /// are read against: the exchange passes the host's clock, read once.
    pub fn inspect_at<'p>(
        &'p self,
        head: &RequestHead<'_>,
        ring: &KeyRing,
        now: u64,
    ) -> (Verdict<'p>, Option<BodyCheck>) {
        let mut verdict = Verdict::default();
        let mut body = None;
        let enforced = self.mode == crate::settings::Mode::Enforce;
        if let Err(rule) = self.check_head(head, ring, now, &mut verdict, &mut body) {
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
                            |(pointer, reason, ssrf)| {
                                let rule = if ssrf {
                                    RuleId::RequestSsrf
                                } else {
                                    RuleId::BodySchema
                                };
                                report(rule, Some(pointer), reason)
                            },
                        ));
                    }
                }
                Ok(None) => {}
                Err(e) => verdict
                    .violations
                    .push(report(e.rule(), None, Cow::Owned(e.reason()))),
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
            Read::Refuse(..) | Read::Presence => {
                let mut verdict = self.inspect_body(check, b" ");
                self.inspect_body_anomalies(check, b" ", &mut verdict);
                Some(verdict)
            }
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
        let limits = &self.limits;
        match (read, &media.form) {
            (Read::Json, _) => self.parse_json(bytes).map(Some),
            (Read::Form, Some(form)) => {
                body::parse_form(bytes, form, limits.max_form_fields).map(Some)
            }
            (Read::Multipart { boundary }, Some(form)) => body::parse_multipart(
                bytes,
                boundary.as_str(),
                form,
                &self.json_limits(),
                limits.max_multipart_parts,
                self.json_caps(),
            )
            .map(Some),
            // A form body for a declaration without an object schema: nothing to check.
            (Read::Form | Read::Multipart { .. }, None)
            | (Read::Presence | Read::Refuse(..), _) => Ok(None),
        }
    }

    pub(crate) fn json_limits(&self) -> JsonLimits {
        JsonLimits {
            max_depth: self.limits.max_json_depth,
        }
    }

    fn json_caps(&self) -> JsonCaps {
        JsonCaps {
            max_members: self.limits.max_json_members,
            max_containers: self.limits.max_json_containers,
        }
    }

    /// Parses request JSON (a body or a JSON parameter) within the policy's limits.
    fn parse_json(&self, bytes: &[u8]) -> Result<Value, BodyError> {
        body::parse_request_json(bytes, &self.json_limits(), self.json_caps())
    }

    /// The count caps that apply before anything is routed or parsed: headers and query
    /// pairs. Counting is one pass over bytes the host already holds; the rest of the
    /// inspection (and the anomaly checks) then never sees more items than the caps allow.
    fn check_caps(&self, head: &RequestHead<'_>) -> Result<(), RuleId> {
        if head.headers.len() > self.limits.max_headers {
            return Err(RuleId::LimitHeaders);
        }
        if query_pairs(head.path) > self.limits.max_query_pairs {
            return Err(RuleId::LimitQueryPairs);
        }
        Ok(())
    }

    /// Schema violations as (pointer, reason, whether the value points inside the network:
    /// `request.ssrf` rather than a schema violation).
    pub(crate) fn validate<'a>(
        &'a self,
        schema: &'a Schema,
        value: &Value,
    ) -> impl Iterator<Item = (String, Cow<'static, str>, bool)> + 'a {
        schema
            .validate(&self.schemas, value)
            .into_iter()
            .map(|v| (v.pointer, Cow::Owned(v.reason), v.keyword == SSRF))
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
        ring: &KeyRing,
        now: u64,
        verdict: &mut Verdict<'p>,
        body: &mut Option<BodyCheck>,
    ) -> Result<(), RuleId> {
        self.check_caps(head)?;
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
            OperationMode::Off => self.mode == crate::settings::Mode::Enforce,
        };
        // Before the credentials, and like them even for `off` operations: through an
        // override the upstream would serve another operation than the one checked.
        if let Some(channel) = overrides::find(head.headers, target.query, &contract.params) {
            verdict.violations.push(Violation {
                rule: RuleId::RequestOverride,
                location: Some(channel.location),
                name: Some(channel.name.to_owned()),
                reason: Cow::Borrowed(
                    "overrides the method or URL, and the operation does not declare it",
                ),
                enforced,
            });
            if enforced {
                return Ok(());
            }
        }
        match (self.security).check(operation.id, head, ring, now, enforced) {
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
        raw_query: Option<&[u8]>,
        path_values: &[(&str, &str)],
        out: &mut Vec<Violation>,
    ) {
        let raw_query = raw_query.unwrap_or_default();
        let query = match params::parse_query(raw_query) {
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
                (true, Value::String(text)) => match self.policy.parse_json(text.as_bytes()) {
                    Ok(parsed) => parsed,
                    Err(e) => {
                        let (rule, reason) = match e {
                            BodyError::TooManyMembers { .. } => (
                                RuleId::LimitJsonMembers,
                                "has a JSON object or array larger than the policy allows",
                            ),
                            BodyError::TooManyContainers { .. } => (
                                RuleId::LimitJsonContainers,
                                "has more JSON objects and arrays than the policy allows",
                            ),
                            BodyError::DuplicateKey { .. } => {
                                (RuleId::ParamInvalid, "has a JSON object that repeats a key")
                            }
                            _ => (RuleId::ParamInvalid, "is not valid JSON"),
                        };
                        out.push(self.violation(rule, location, name(), Cow::Borrowed(reason)));
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
                for (pointer, reason, ssrf) in failures {
                    let reason = if pointer.is_empty() {
                        reason
                    } else {
                        Cow::Owned(format!("{pointer} {reason}"))
                    };
                    let rule = if ssrf {
                        RuleId::RequestSsrf
                    } else {
                        RuleId::ParamInvalid
                    };
                    out.push(self.violation(rule, location, name(), reason));
                }
            }
        }
        self.undeclared(&query, raw_query, &cookies, out);
    }

    /// What strict mode refuses and other modes record: undeclared query parameters and
    /// cookies, and raw `;` in query values (see [`params::raw_semicolons`]). Names that
    /// carry credentials are declared by the security schemes. Outside strict mode an
    /// undeclared cookie is recorded only when it differs from a declared one in case
    /// alone (a browser sends every cookie of its domain; a case twin is a probe).
    fn undeclared(
        &self,
        query: &[(String, String)],
        raw_query: &[u8],
        cookies: &[(String, String)],
        out: &mut Vec<Violation>,
    ) {
        let strict = self.contract.strict;
        let security = &self.policy.security;
        let refused = |location, name: &str, reason: &'static str| Violation {
            enforced: self.enforced && strict,
            ..self.violation(
                RuleId::ParamUndeclared,
                location,
                Some(sanitize(name)),
                Cow::Borrowed(reason),
            )
        };
        let credentials: Vec<&str> = security.credential_names(true).collect();
        for name in params::undeclared_query(&self.contract.params, query) {
            if !credentials.contains(&name) {
                out.push(refused("query", name, "is not declared by the operation"));
            }
        }
        for name in params::raw_semicolons(&self.contract.params, raw_query) {
            out.push(Violation {
                enforced: self.enforced && strict,
                ..self.violation(
                    RuleId::ParamInvalid,
                    "query",
                    Some(sanitize(&name)),
                    Cow::Borrowed(
                        "has a raw `;` in its value, which some parsers split on: \
                         percent-encode it as %3B",
                    ),
                )
            });
        }
        let credentials: Vec<&str> = security.credential_names(false).collect();
        let declared = |name: &str| {
            (self.contract.params.iter())
                .any(|p| p.location == In::Cookie && p.name.eq_ignore_ascii_case(name))
        };
        for name in params::undeclared_cookies(&self.contract.params, cookies) {
            if credentials.contains(&name) {
                continue;
            }
            if declared(name) {
                out.push(refused(
                    "cookie",
                    name,
                    "differs from a declared cookie in case only (cookie names are case-sensitive)",
                ));
            } else if strict {
                out.push(refused("cookie", name, "is not declared by the operation"));
            }
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
        let length = head.content_length();
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
            body_on_get: head.body_on_get_pending(),
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

/// How many `&`-separated pairs the query of a `:path` has, empty ones not counted (as
/// [`params::parse_query`] skips them).
pub(crate) fn query_pairs(target: &[u8]) -> usize {
    let Some(at) = target.iter().position(|&b| b == b'?') else {
        return 0;
    };
    let query = target.get(at + 1..).unwrap_or_default();
    query
        .split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .count()
}

const REQUIRED: &str = "the operation requires a request body";

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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::policy::SchemaCursor;
    use crate::testkit;
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
                            {"name": "X-Budget", "in": "header", "schema": {"type": "integer"}},
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
        testkit::policy("items", document, extra)
    }

    #[test]
    fn urls_pointing_inside_the_network_are_their_own_rule() {
        let document = json!({"openapi": "3.1.0", "paths": {"/hooks": {"post": {
            "parameters": [{"name": "next", "in": "query", "schema": {"type": "string", "format": "url"}}],
            "requestBody": {"content": {"application/json": {"schema": {"type": "object",
                "properties": {"callback": {"type": "string", "format": "uri"},
                               "note": {"type": "string"}}}}}},
            "responses": {"200": {"description": "ok", "content": {"application/json": {
                "schema": {"type": "object", "properties": {"self": {"type": "string", "format": "uri"}}}}}}}}}}});
        let p = testkit::policy("hooks", document, json!({}));
        let json = [("content-type", "application/json")];
        let post = |target: &str, body: &str| run(&p, "POST", target, &json, Some(body)).1;
        let rules =
            |found: Vec<(String, bool)>| found.into_iter().map(|(r, _)| r).collect::<Vec<_>>();
        assert!(post("/hooks", r#"{"callback": "https://hooks.example.com/a"}"#).is_empty());
        for internal in [
            "http://169.254.169.254/latest/meta-data/",
            "http://0177.0.0.1/",
            "http://[::ffff:127.0.0.1]/",
            "file:///etc/passwd",
        ] {
            let body = json!({"callback": internal}).to_string();
            assert_eq!(rules(post("/hooks", &body)), ["request.ssrf"], "{internal}");
        }
        assert_eq!(
            rules(post("/hooks?next=http://localhost:8080/", "{}")),
            ["request.ssrf"]
        );
        // Not a URI at all is the schema's finding; a free-text property is not a URL.
        assert_eq!(
            rules(post("/hooks", r#"{"callback": "not a uri"}"#)),
            ["body.schema"]
        );
        assert!(post("/hooks", r#"{"note": "http://127.0.0.1/"}"#).is_empty());
        // A response may name internal URLs: only what the client sends is checked.
        let (verdict, _) = p.inspect_response(0, 200, &json, true);
        assert!(verdict.violations.is_empty());
    }

    /// Inspects a request, body included, and returns every (rule, enforced) found.
    fn run(
        policy: &Policy,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> (Action, Vec<(String, bool)>) {
        let request = RequestHead::new(method, target).headers(headers);
        let (head, check) = policy.inspect(&request.with_body(body.is_some()));
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

    /// `X-Request-Budget: 527212089351644756574208` was refused as `must be of type
    /// integer`: JSON Schema integers are unbounded.
    #[test]
    fn integer_parameters_beyond_64_bits_are_integers() {
        let p = policy(json!({}));
        let budget = |value| run(&p, "GET", "/items?limit=1", &[("x-budget", value)], None);
        assert_eq!(budget("527212089351644756574208"), (Action::Allow, vec![]));
        assert_eq!(budget("-527212089351644756574208"), (Action::Allow, vec![]));
        assert_eq!(rules(&budget("5e23")), ["params.invalid"]);
        // Bounds still hold, compared on the right side of the exact value.
        let (verdict, _) = p.inspect(&RequestHead::get("/items?limit=527212089351644756574208"));
        let reasons: Vec<&str> = verdict.violations.iter().map(|v| &*v.reason).collect();
        assert_eq!(reasons, ["must be at most 50"]);
        let (verdict, _) = p.inspect(&RequestHead::get("/items/-9223372036854775809"));
        let reasons: Vec<&str> = verdict.violations.iter().map(|v| &*v.reason).collect();
        assert_eq!(reasons, ["must be at least 1"]);
    }

    #[test]
    fn caps_on_counts_are_their_own_rules() {
        let p = policy(json!({"limits": {"max_query_pairs": 3, "max_headers": 2,
            "max_form_fields": 3, "max_json_members": 3}}));
        assert_eq!(
            run(&p, "GET", "/items?limit=1&tags=a&&tags=b", &[], None),
            (Action::Allow, vec![])
        );
        let pairs = run(&p, "GET", "/items?limit=1&tags=a&tags=b&tags=a", &[], None);
        assert_eq!(
            pairs,
            (Action::Block, vec![("limits.query_pairs".to_owned(), true)])
        );
        // Before routing: an unknown path with too many pairs is refused for them too.
        assert_eq!(
            rules(&run(&p, "GET", "/nowhere?a&b&c&d", &[], None)),
            ["limits.query_pairs"]
        );
        let headers = [("a", "1"), ("b", "2"), ("c", "3")];
        assert_eq!(
            rules(&run(&p, "GET", "/items?limit=1", &headers, None)),
            ["limits.headers"]
        );
        let form = [("content-type", "application/x-www-form-urlencoded")];
        assert_eq!(
            run(&p, "POST", "/items", &form, Some("name=a&count=1")),
            (Action::Allow, vec![])
        );
        assert_eq!(
            rules(&run(
                &p,
                "POST",
                "/items",
                &form,
                Some("name=a&count=1&a=1&b=2")
            )),
            ["limits.form_fields"]
        );
        assert_eq!(
            rules(&run(
                &p,
                "POST",
                "/items",
                JSON,
                Some(r#"{"name": "a", "count": 1, "x": [1, 2, 3, 4]}"#)
            )),
            ["limits.json_members"]
        );
        // In monitor mode a cap is recorded, not enforced.
        let monitor = policy(json!({"mode": "monitor", "limits": {"max_query_pairs": 1}}));
        assert_eq!(
            run(&monitor, "GET", "/items?limit=1&tags=a", &[], None),
            (
                Action::Monitor,
                vec![("limits.query_pairs".to_owned(), false)]
            )
        );
    }

    /// serde_json keeps the last of two equal keys, other parsers the first: the contract
    /// refuses them itself, with or without the anomaly checks, strict or not.
    #[test]
    fn duplicate_json_keys_are_refused_by_the_contract() {
        for extra in [json!({}), json!({"strict": true})] {
            let p = policy(extra);
            assert_eq!(
                rules(&run(
                    &p,
                    "POST",
                    "/items",
                    JSON,
                    Some(r#"{"name": "a", "name": "b"}"#)
                )),
                ["body.duplicate_key"]
            );
            assert_eq!(
                rules(&run(
                    &p,
                    "POST",
                    "/items",
                    JSON,
                    Some(r#"{"name": "a", "count": 1, "count": 2}"#)
                )),
                ["body.duplicate_key"]
            );
        }
    }

    #[test]
    fn violations_name_the_parameter_and_never_the_value() {
        let p = policy(json!({}));
        let (verdict, _) = p.inspect(&RequestHead::get("/items?limit=%3Cscript%3E"));
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

    /// Regression: `X-HTTP-Method-Override: DELETE` on a `GET` reached an upstream that
    /// honours it, which then ran a `DELETE` the filter never checked.
    #[test]
    fn override_channels_are_refused_unless_declared() {
        let p = policy(json!({}));
        for (headers, target) in [
            (
                &[("x-http-method-override", "DELETE")][..],
                "/items?limit=1",
            ),
            (
                &[("x_http_method_override", "DELETE")][..],
                "/items?limit=1",
            ),
            (&[("x-original-url", "/admin")][..], "/items?limit=1"),
            (&[][..], "/items?limit=1&_method=DELETE"),
        ] {
            assert_eq!(
                run(&p, "GET", target, headers, None),
                (Action::Block, vec![("request.override".to_owned(), true)]),
                "{headers:?} {target}"
            );
        }
        assert_eq!(
            run(
                &p,
                "DELETE",
                "/items/1",
                &[("x-http-method-override", "GET")],
                None
            ),
            (Action::Block, vec![("request.override".to_owned(), true)]),
            "even in an operation whose contract is off"
        );
        let monitored = policy(json!({"mode": "monitor"}));
        assert_eq!(
            rules(&run(
                &monitored,
                "GET",
                "/items?limit=1&_method=PUT",
                &[],
                None
            )),
            ["request.override", "params.undeclared"]
        );
        let document = json!({"openapi": "3.1.0", "paths": {"/a": {"post": {"parameters": [
            {"name": "X-HTTP-Method-Override", "in": "header", "schema": {"enum": ["PATCH"]}}]}}}});
        let declared = Policy::compile(
            json!({"name": "x", "openapi": {"document": document}})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        let post = |value: &str| {
            run(
                &declared,
                "POST",
                "/a",
                &[("x-http-method-override", value)],
                None,
            )
        };
        assert_eq!(post("PATCH"), (Action::Allow, vec![]));
        assert_eq!(
            rules(&post("DELETE")),
            ["params.invalid"],
            "its schema decides"
        );
    }

    /// Regression: undeclared cookies, and cookies named like a declared one in another
    /// case (a different cookie to RFC 6265, the same one to some frameworks), passed
    /// strict mode unchecked.
    #[test]
    fn undeclared_cookies_are_refused_in_strict_mode() {
        let lenient = policy(json!({}));
        let strict = policy(json!({"strict": true}));
        let get =
            |p: &Policy, cookie: &str| run(p, "GET", "/items?limit=1", &[("cookie", cookie)], None);
        assert_eq!(get(&strict, "session=abcd"), (Action::Allow, vec![]));
        assert_eq!(
            get(&strict, "session=abcd; tracking=1"),
            (Action::Block, vec![("params.undeclared".to_owned(), true)])
        );
        assert_eq!(
            get(&strict, "Session=<bad>"),
            (Action::Block, vec![("params.undeclared".to_owned(), true)])
        );
        assert_eq!(
            get(&lenient, "session=abcd; tracking=1"),
            (Action::Allow, vec![])
        );
        assert_eq!(
            get(&lenient, "SESSION=x"),
            (
                Action::Monitor,
                vec![("params.undeclared".to_owned(), false)]
            ),
            "a case twin is recorded"
        );
    }

    /// Regression: a raw `;` in a query value passed strict mode, and parsers that split
    /// on `;` read a parameter there that the contract never saw.
    #[test]
    fn a_raw_semicolon_in_a_query_value_is_refused_in_strict_mode() {
        let document = json!({"openapi": "3.1.0", "paths": {"/a": {"get": {"parameters": [
            {"name": "q", "in": "query", "schema": {"type": "string"}},
            {"name": "r", "in": "query", "allowReserved": true, "schema": {"type": "string"}}]}}}});
        let compile = |strict: bool| {
            let config = json!({"name": "x", "strict": strict, "openapi": {"document": document}});
            Policy::compile(config.to_string().as_bytes()).unwrap()
        };
        let (strict, lenient) = (compile(true), compile(false));
        let get = |p: &Policy, target: &str| run(p, "GET", target, &[], None);
        assert_eq!(
            get(&strict, "/a?q=a;q=b"),
            (Action::Block, vec![("params.invalid".to_owned(), true)])
        );
        assert_eq!(
            get(&lenient, "/a?q=a;q=b"),
            (Action::Monitor, vec![("params.invalid".to_owned(), false)])
        );
        assert_eq!(
            get(&strict, "/a?q=a%3Bb"),
            (Action::Allow, vec![]),
            "encoded, it is data"
        );
        assert_eq!(
            get(&strict, "/a?r=a;b"),
            (Action::Allow, vec![]),
            "allowReserved"
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
        let (_, check) = p.inspect(
            &RequestHead::new("POST", "/items")
                .headers(JSON)
                .with_body(true),
        );
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
        let (verdict, check) = p.inspect(
            &RequestHead::new("POST", "/items")
                .headers(big)
                .with_body(true),
        );
        assert_eq!((verdict.rule(), check), (Some(RuleId::BodyTooLarge), None));
        assert_eq!(problem_status(&verdict), 413);
        assert_eq!(
            rules(&run(&p, "POST", "/items", JSON, Some(r#"{"a":[[1]]}"#))),
            ["body.malformed"]
        );
    }

    /// The rules of a head announcing a body, and of that body once it has `size` bytes.
    fn body_start(p: &Policy, method: &str, headers: &[(&str, &str)], size: usize) -> String {
        let target = if method == "GET" {
            "/items?limit=1"
        } else {
            "/items"
        };
        let request = RequestHead::new(method, target).headers(headers);
        let (head, check) = p.inspect(&request.with_body(true));
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
        let (_, check) = p.inspect(
            &RequestHead::new("PUT", "/items/1")
                .headers(octets)
                .with_body(true),
        );
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

    /// `schemas: lazy` compiles in the background, a bounded batch per call, from where the
    /// last batch stopped; a schema that does not compile is reported and the rest go on.
    #[test]
    fn lazy_schemas_compile_in_bounded_batches() {
        let param = |pattern: &str| json!({"name": "q", "in": "query", "schema": {"type": "string", "pattern": pattern}});
        let paths: serde_json::Map<String, serde_json::Value> = ["a", "b(", "c", "d", "e"]
            .iter()
            .enumerate()
            .map(|(i, pattern)| {
                (
                    format!("/p{i}"),
                    json!({"get": {"parameters": [param(pattern)]}}),
                )
            })
            .collect();
        let config = json!({"name": "x", "schemas": "lazy",
                            "openapi": {"document": {"openapi": "3.1.0", "paths": paths}}});
        let policy = Policy::compile(config.to_string().as_bytes()).unwrap();
        let mut cursor = SchemaCursor::default();
        let mut failed = Vec::new();
        let mut calls = 0;
        loop {
            calls += 1;
            let mut budget = 2;
            let (next, errors) = policy.compile_some(cursor, || {
                budget -= 1;
                budget >= 0
            });
            failed.extend(errors.iter().map(|e| e.location().unwrap().pointer.clone()));
            match next {
                Some(next) => cursor = next,
                None => break,
            }
        }
        assert_eq!(calls, 3, "five schemas, two per call");
        assert_eq!(failed, ["/paths/~1p1/get/parameters/0/schema"]);
        assert_eq!(
            rules(&run(&policy, "GET", "/p1?q=x", &[], None)),
            ["params.invalid"],
            "fails closed"
        );
        assert!(rules(&run(&policy, "GET", "/p4?q=e", &[], None)).is_empty());
    }
}
