//! HTTP anomaly checks and their scoring.
//!
//! Most attacks on APIs that get mitigated are HTTP anomalies: requests no real client of
//! the API sends (no `User-Agent`, `TRACE`, a body on `GET`, a 50 KB header, duplicate
//! JSON keys, a `' OR '1'='1` in a name). Each check has a stable rule id, a severity and
//! the score that follows from it (CRS's scale: critical 5, error 4, warning 3, notice 2),
//! and an action the policy can set: `block`, `monitor` or `off`. The scores of the
//! distinct `block` findings of a request add up; the findings are enforced when the sum
//! reaches the threshold (per API, overridable per operation). So one critical finding
//! blocks at the default threshold of 5, and a lone notice is only recorded.
//!
//! What the contract already checks is not checked twice: ambiguous path encodings and
//! traversal in the path are `path.*`, invalid or too deep JSON is `body.malformed`, a
//! declared scalar parameter given twice is `params.invalid`, media types are `body.*`.

pub(crate) mod injection;
pub(crate) mod json;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;

use crate::contract::body::{self, Field};
use crate::contract::params;
use crate::contract::percent::hex_value;
use crate::contract::CompiledOperation;
use crate::error::{pointer_token, Location, PolicyError};
use crate::request::{lossy, Method, RequestHead};
use crate::verdict::{sanitize, RuleId, Violation};
use injection::Detector;

/// MongoDB query operators: a JSON key that is one of these reaches a query as an operator.
pub(crate) const NOSQL_OPERATORS: &[&str] = &[
    "$ne",
    "$eq",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$in",
    "$nin",
    "$regex",
    "$where",
    "$exists",
    "$expr",
    "$or",
    "$and",
    "$not",
    "$nor",
    "$function",
    "$accumulator",
    "$elemMatch",
];

/// How bad a finding is; the score follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// An attack signature (injection, traversal, smuggling).
    Critical,
    /// Malformed input no client library produces.
    Error,
    /// Unusual for an API client, common for a tool.
    Warning,
    /// Worth counting, rarely worth blocking alone.
    Notice,
}

impl Severity {
    /// What a finding of this severity adds to the request's score.
    pub const fn score(self) -> u32 {
        match self {
            Severity::Critical => 5,
            Severity::Error => 4,
            Severity::Warning => 3,
            Severity::Notice => 2,
        }
    }

    /// Its name in policies, events and the README.
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Notice => "notice",
        }
    }
}

/// What a check does when it finds something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckAction {
    /// Counts toward the threshold; enforced once it is reached.
    Block,
    /// Recorded, never counted.
    Monitor,
    /// Not checked.
    Off,
}

/// Every check: rule, severity, default action.
pub const CHECKS: [(RuleId, Severity, CheckAction); 22] = [
    (
        RuleId::AnomalyUserAgent,
        Severity::Notice,
        CheckAction::Block,
    ),
    (RuleId::AnomalyHost, Severity::Error, CheckAction::Block),
    (
        RuleId::AnomalyUriLength,
        Severity::Error,
        CheckAction::Block,
    ),
    (
        RuleId::AnomalyHeaderSize,
        Severity::Error,
        CheckAction::Block,
    ),
    (
        RuleId::AnomalyHeaderCount,
        Severity::Error,
        CheckAction::Block,
    ),
    (
        RuleId::AnomalyMethod,
        Severity::Critical,
        CheckAction::Block,
    ),
    (
        RuleId::AnomalyBodyOnGet,
        Severity::Error,
        CheckAction::Block,
    ),
    (
        RuleId::AnomalyContentType,
        Severity::Error,
        CheckAction::Block,
    ),
    (
        RuleId::AnomalyJsonDuplicateKey,
        Severity::Critical,
        CheckAction::Block,
    ),
    (
        RuleId::AnomalyJsonWidth,
        Severity::Error,
        CheckAction::Block,
    ),
    (
        RuleId::AnomalyJsonStringLength,
        Severity::Error,
        CheckAction::Block,
    ),
    (
        RuleId::AnomalyJsonNumberSize,
        Severity::Error,
        CheckAction::Block,
    ),
    (
        RuleId::AnomalyInvalidUtf8,
        Severity::Error,
        CheckAction::Block,
    ),
    (
        RuleId::AnomalyControlChar,
        Severity::Critical,
        CheckAction::Block,
    ),
    (
        RuleId::AnomalyRepeatedParam,
        Severity::Notice,
        CheckAction::Block,
    ),
    (
        RuleId::AnomalySqlInjection,
        Severity::Critical,
        CheckAction::Block,
    ),
    (RuleId::AnomalyXss, Severity::Critical, CheckAction::Block),
    (
        RuleId::AnomalyCommandInjection,
        Severity::Critical,
        CheckAction::Block,
    ),
    (
        RuleId::AnomalyNoSqlInjection,
        Severity::Critical,
        CheckAction::Block,
    ),
    (
        RuleId::AnomalyTemplateInjection,
        Severity::Critical,
        CheckAction::Block,
    ),
    (
        RuleId::AnomalyLdapInjection,
        Severity::Critical,
        CheckAction::Block,
    ),
    (
        RuleId::AnomalyPathTraversal,
        Severity::Critical,
        CheckAction::Block,
    ),
];

/// `anomaly:` in the policy's `abuse` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct AnomalyConfig {
    /// The score at which `block` findings are enforced.
    pub threshold: u32,
    /// Per rule id: `block`, `monitor` or `off`.
    pub checks: BTreeMap<String, CheckAction>,
    pub limits: Limits,
    /// Query parameter, form and multipart field, cookie and (lowercase) header names, and
    /// JSON pointers (`/comment`, `/items/*/note`), whose values are free text: the
    /// injection heuristics skip them.
    pub free_text: Vec<String>,
    /// Per operation (operationId or `METHOD /template`): its own threshold.
    pub operations: BTreeMap<String, OperationAnomaly>,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        AnomalyConfig {
            threshold: 5,
            checks: BTreeMap::new(),
            limits: Limits::default(),
            free_text: Vec::new(),
            operations: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OperationAnomaly {
    pub threshold: u32,
}

/// Sizes past which a request is an anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Limits {
    /// `:path`, query included.
    pub max_uri_bytes: usize,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    /// Members of one JSON object or items of one array.
    pub max_width: usize,
    pub max_string_bytes: usize,
    /// Characters of one JSON number literal.
    pub max_number_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_uri_bytes: 4096,
            max_header_bytes: 8192,
            max_headers: 64,
            max_width: 1000,
            max_string_bytes: 65536,
            max_number_chars: 40,
        }
    }
}

/// The compiled checks.
#[derive(Debug)]
pub(crate) struct Anomaly {
    actions: [CheckAction; CHECKS.len()],
    threshold: u32,
    /// Per operation id, its threshold override.
    thresholds: Vec<Option<u32>>,
    limits: Limits,
    free_text: Vec<String>,
    /// The free-text entries that are JSON pointers, split into their tokens.
    free_pointers: Vec<Vec<String>>,
    detector: Detector,
    /// Every method some operation of the API declares.
    methods: Vec<Method>,
}

/// A finding before scoring.
struct Finding {
    rule: RuleId,
    location: &'static str,
    name: Option<String>,
}

/// Findings past this many are dropped, unless they are the first of their rule.
const MAX_FINDINGS: usize = 32;

/// The findings of one pass over a request: each (rule, name) once, found with a hash
/// set, so a pass stays linear however many names the request has. At most
/// [`MAX_FINDINGS`], except that the first finding of every rule is always kept: the
/// score counts distinct rules, and a request with 8,000 bad names needs no 8,000
/// violations to be refused.
#[derive(Default)]
pub(crate) struct Findings {
    list: Vec<Finding>,
    seen: HashSet<(RuleId, Option<String>)>,
    rules: HashSet<RuleId>,
}

impl Findings {
    /// Whether a finding of `rule` would be kept: callers that must build an expensive
    /// name (a JSON pointer) ask first.
    pub(crate) fn wants(&self, rule: RuleId) -> bool {
        self.list.len() < MAX_FINDINGS || !self.rules.contains(&rule)
    }

    /// Records `rule` at `location`; `name` (request data) is sanitised.
    pub(crate) fn push(&mut self, rule: RuleId, location: &'static str, name: Option<&str>) {
        let first_of_rule = self.rules.insert(rule);
        if !first_of_rule && self.list.len() >= MAX_FINDINGS {
            return;
        }
        let name = name.map(sanitize);
        if self.seen.insert((rule, name.clone())) {
            self.list.push(Finding {
                rule,
                location,
                name,
            });
        }
    }
}

impl Anomaly {
    pub(crate) fn compile(
        config: &AnomalyConfig,
        operations: &[CompiledOperation],
        find: &dyn Fn(&str) -> Option<usize>,
        origin: &str,
    ) -> Result<Anomaly, PolicyError> {
        let invalid = |pointer: String, message: String| PolicyError::Invalid {
            at: Location::new(origin, pointer),
            message,
        };
        // A key of `checks` or `operations` that names nothing.
        let unknown = |section: &str, key: &str, message: &str| {
            let pointer = format!("/abuse/anomaly/{section}/{}", pointer_token(key));
            invalid(pointer, message.to_owned())
        };
        let mut actions = CHECKS.map(|(_, _, action)| action);
        for (rule, action) in &config.checks {
            let index = CHECKS
                .iter()
                .position(|(id, _, _)| id.as_str() == rule)
                .ok_or_else(|| {
                    let message = "is not an anomaly rule id: see the README's anomaly table";
                    unknown("checks", rule, message)
                })?;
            if let Some(slot) = actions.get_mut(index) {
                *slot = *action;
            }
        }
        let mut thresholds = vec![None; operations.len()];
        for (name, settings) in &config.operations {
            let id = find(name)
                .ok_or_else(|| unknown("operations", name, "names no operation of the document"))?;
            if let Some(slot) = thresholds.get_mut(id) {
                *slot = Some(settings.threshold);
            }
        }
        let detector = Detector::new().map_err(|e| {
            invalid(
                "/abuse/anomaly".to_owned(),
                format!("internal pattern error: {e}"),
            )
        })?;
        let mut methods: Vec<Method> = operations.iter().map(|op| op.method).collect();
        methods.sort();
        methods.dedup();
        Ok(Anomaly {
            actions,
            threshold: config.threshold.max(1),
            thresholds,
            limits: config.limits,
            free_text: config.free_text.clone(),
            free_pointers: (config.free_text.iter())
                .filter_map(|text| text.strip_prefix('/'))
                .map(|pointer| pointer.split('/').map(str::to_owned).collect())
                .collect(),
            detector,
            methods,
        })
    }

    fn action(&self, rule: RuleId) -> CheckAction {
        CHECKS
            .iter()
            .position(|(id, _, _)| *id == rule)
            .and_then(|i| self.actions.get(i))
            .copied()
            .unwrap_or(CheckAction::Off)
    }

    /// Whether a query parameter or form field name is free text (JSON pointers are
    /// matched as [`json::scan`] descends).
    fn free_text(&self, name: &str) -> bool {
        self.free_text.iter().any(|pattern| pattern == name)
    }

    /// Scores findings into violations.
    pub(crate) fn score(
        &self,
        findings: Findings,
        operation: Option<usize>,
        enforce: bool,
    ) -> Vec<Violation> {
        let findings: Vec<_> = findings
            .list
            .into_iter()
            .filter(|f| self.action(f.rule) != CheckAction::Off)
            .collect();
        let mut counted: Vec<RuleId> = findings
            .iter()
            .filter(|f| self.action(f.rule) == CheckAction::Block)
            .map(|f| f.rule)
            .collect();
        counted.sort_by_key(|r| r.as_str());
        counted.dedup();
        let score: u32 = counted.iter().map(|r| severity(*r).score()).sum();
        let threshold = operation
            .and_then(|op| self.thresholds.get(op).copied().flatten())
            .unwrap_or(self.threshold);
        let over = score >= threshold;
        findings
            .into_iter()
            .map(|f| Violation {
                enforced: enforce && over && self.action(f.rule) == CheckAction::Block,
                reason: Cow::Owned(format!(
                    "{} ({}, score {}; request score {score} of {threshold})",
                    f.rule.title(),
                    severity(f.rule).as_str(),
                    severity(f.rule).score()
                )),
                rule: f.rule,
                location: Some(f.location),
                name: f.name,
            })
            .collect()
    }

    /// `caps` are the policy's: only that many headers and query pairs are looked at
    /// (more are the contract's `limits.*` findings). `withheld` names the headers the
    /// filter removes before forwarding (verified tokens): checked for size and control
    /// characters like any other, but not scanned for injection.
    pub(crate) fn head(
        &self,
        head: &RequestHead<'_>,
        authority: Option<&str>,
        declared: &[&str],
        withheld: &[String],
        caps: &crate::settings::Limits,
    ) -> Findings {
        let mut out = Findings::default();
        let mut push = |rule, location, name: Option<&str>| out.push(rule, location, name);
        let method = Method::from_request(head.method);
        if method.is_none_or(|m| m == Method::Trace || !self.methods.contains(&m)) {
            push(RuleId::AnomalyMethod, "method", None);
        }
        // Announced by its length here; otherwise decided at the body's first byte
        // (`BodyCheck::body_on_get`), since an announced body may turn out empty.
        let announced = head.content_length().is_some_and(|l| l > 0);
        if announced && matches!(method, Some(Method::Get | Method::Head)) {
            push(RuleId::AnomalyBodyOnGet, "body", None);
        }
        if head.path.len() > self.limits.max_uri_bytes {
            push(RuleId::AnomalyUriLength, "path", None);
        }
        if head.headers.len() > self.limits.max_headers {
            push(RuleId::AnomalyHeaderCount, "header", None);
        }
        let user_agent = head.headers.iter().find(|(n, _)| *n == "user-agent");
        if user_agent.is_none_or(|(_, v)| v.trim().is_empty()) {
            push(RuleId::AnomalyUserAgent, "header", Some("user-agent"));
        }
        if authority.is_none_or(|a| a.trim().is_empty())
            || head.headers.iter().any(|(n, _)| *n == "host")
        {
            push(RuleId::AnomalyHost, "header", Some("host"));
        }
        for (name, value) in head.headers.iter().take(caps.max_headers) {
            if value.len() > self.limits.max_header_bytes {
                push(RuleId::AnomalyHeaderSize, "header", Some(name));
            }
            if has_control(value.as_bytes()) {
                push(RuleId::AnomalyControlChar, "header", Some(name));
            }
            // The host reads header bytes lossily: U+FFFD is what invalid UTF-8 became.
            if !value.is_ascii() && value.contains('\u{FFFD}') {
                push(RuleId::AnomalyInvalidUtf8, "header", Some(name));
            }
            // Every header the upstream may read, declared or not, once each; cookies
            // one by one, by their own names. A withheld header (a verified token the
            // filter removes) never reaches it; scanning a JWT's ~1 KB of base64 was half
            // of this stage's time on a token-carrying request.
            if withheld.iter().any(|w| w == name) {
                continue;
            }
            if *name == "cookie" {
                for (cookie, value) in params::parse_cookies(&[*value]) {
                    self.scan_field(&cookie, &value, "cookie", &mut push);
                }
            } else if !self.free_text(name) {
                for rule in self.detector.scan(value) {
                    push(rule, "header", Some(name));
                }
            }
        }
        let (path, query) = match head.path.iter().position(|&b| b == b'?') {
            Some(at) => head.path.split_at(at),
            None => (head.path, &b""[..]),
        };
        for segment in path.split(|&b| b == b'/') {
            let decoded = percent_decode(segment, false);
            // Traversal and encodings in the path are the contract's `path.*` rules.
            for rule in self.detector.scan(&lossy(&decoded)) {
                if rule != RuleId::AnomalyPathTraversal {
                    push(rule, "path", None);
                }
            }
        }
        self.pairs(
            query.get(1..).unwrap_or_default(),
            "query",
            declared,
            caps.max_query_pairs,
            &mut out,
        );
        out
    }

    /// Checks the first `cap` `name=value&…` pairs (a query, or a form body), in one pass
    /// that remembers the names seen in a hash set.
    fn pairs(
        &self,
        raw: &[u8],
        location: &'static str,
        declared: &[&str],
        cap: usize,
        findings: &mut Findings,
    ) {
        let mut push = |rule, location, name: Option<&str>| findings.push(rule, location, name);
        let mut seen: HashSet<Cow<'_, [u8]>> = HashSet::new();
        let pairs = raw.split(|&b| b == b'&').filter(|p| !p.is_empty());
        for pair in pairs.take(cap) {
            let mut parts = pair.splitn(2, |&b| b == b'=');
            let name = percent_decode(parts.next().unwrap_or_default(), true);
            let value = percent_decode(parts.next().unwrap_or_default(), true);
            let (name_text, value_text) = (lossy(&name), lossy(&value));
            for (bytes, text) in [(&name, &name_text), (&value, &value_text)] {
                // Only bytes that are not UTF-8 come back owned.
                if matches!(text, Cow::Owned(_)) {
                    push(RuleId::AnomalyInvalidUtf8, location, Some(&name_text));
                }
                if has_control(bytes) {
                    push(RuleId::AnomalyControlChar, location, Some(&name_text));
                }
            }
            if !seen.insert(name.clone()) && !declared.contains(&&*name_text) {
                push(RuleId::AnomalyRepeatedParam, location, Some(&name_text));
            }
            self.scan_field(&name_text, &value_text, location, &mut push);
        }
    }

    /// The injection heuristics over one named field (a query or form pair, a cookie, a
    /// multipart text part): its name always, its value unless it is free text.
    fn scan_field(
        &self,
        name: &str,
        value: &str,
        location: &'static str,
        push: &mut dyn FnMut(RuleId, &'static str, Option<&str>),
    ) {
        for rule in self.detector.scan(name) {
            push(rule, location, Some(name));
        }
        if !self.free_text(name) {
            for rule in self.detector.scan(value) {
                push(rule, location, Some(name));
            }
        }
    }
}

/// The severity of an anomaly rule (others never reach the scorer).
/// Whether `bytes` hold a control character other than tab. Folded without an early exit,
/// so the loop has no branch per byte (a JWT header is ~1 KB of them, every request).
fn has_control(bytes: &[u8]) -> bool {
    (bytes.iter()).fold(false, |found, &b| {
        found | ((b < 0x20) & (b != b'\t')) | (b == 0x7f)
    })
}

fn severity(rule: RuleId) -> Severity {
    CHECKS
        .iter()
        .find(|(id, _, _)| *id == rule)
        .map_or(Severity::Notice, |(_, severity, _)| *severity)
}

/// Percent-decodes to bytes, whatever they are; a bad escape stays as it was (the
/// contract's encoding rules refuse it). `form`: `+` is a space. Borrowed when there is
/// nothing to decode, as in most segments and parameters.
fn percent_decode(raw: &[u8], form: bool) -> Cow<'_, [u8]> {
    if !raw.iter().any(|&b| b == b'%' || (form && b == b'+')) {
        return Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        let escape = (b == b'%')
            .then(|| Some((hex_value(*raw.get(i + 1)?)?, hex_value(*raw.get(i + 2)?)?)))
            .flatten();
        match (b, escape) {
            (_, Some((hi, lo))) => {
                out.push((hi << 4) | lo);
                i += 3;
            }
            (b'+', None) if form => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

/// How the contract reads a body, as far as the anomaly checks care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyKind<'a> {
    Json,
    Form,
    Multipart {
        boundary: &'a str,
    },
    /// Read by the contract as a whole or not at all: only its presence is a finding.
    Opaque,
}

impl Anomaly {
    /// The findings of a buffered body of `kind`. `body_on_get`: the request is a GET or
    /// HEAD whose head did not announce a body, so any byte is a finding.
    pub(crate) fn body(
        &self,
        kind: BodyKind<'_>,
        body_on_get: bool,
        bytes: &[u8],
        caps: &crate::settings::Limits,
    ) -> Findings {
        let mut findings = Findings::default();
        if body_on_get && !bytes.is_empty() {
            findings.push(RuleId::AnomalyBodyOnGet, "body", None);
        }
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        match kind {
            BodyKind::Json => {
                let text = bytes.trim_ascii_start();
                let literal = [&b"true"[..], b"false", b"null"]
                    .iter()
                    .any(|l| text.starts_with(l));
                if first.is_some_and(|b| !b"{[\"-0123456789".contains(b)) && !literal {
                    findings.push(RuleId::AnomalyContentType, "body", None);
                } else {
                    json::scan(
                        bytes,
                        &self.limits,
                        &self.detector,
                        &self.free_pointers,
                        &mut findings,
                    );
                }
            }
            BodyKind::Form => {
                if first.is_some_and(|b| b"{[<".contains(b)) {
                    findings.push(RuleId::AnomalyContentType, "body", None);
                }
                self.pairs(bytes, "body", &[], caps.max_form_fields, &mut findings);
            }
            BodyKind::Multipart { boundary } => {
                self.multipart(bytes, boundary, caps.max_multipart_parts, &mut findings)
            }
            BodyKind::Opaque => {}
        }
        findings
    }

    /// The findings in a multipart body's fields. Framing errors (and too many parts) are
    /// the contract's; nothing to add for them here.
    fn multipart(&self, bytes: &[u8], boundary: &str, cap: usize, findings: &mut Findings) {
        let fields = body::multipart_fields(bytes, boundary, cap).unwrap_or_default();
        let mut push = |rule, location, name: Option<&str>| findings.push(rule, location, name);
        for field in fields {
            match field {
                Field::Text(name, value) => self.scan_field(&name, &value, "body", &mut push),
                Field::File(name) => self.scan_field(&name, "", "body", &mut push),
                Field::Json(name, json) => {
                    self.scan_field(&name, "", "body", &mut push);
                    if self.free_text(&name) {
                        continue;
                    }
                    // Pointers inside the part, named after the part.
                    let mut part = Findings::default();
                    json::scan(
                        json,
                        &self.limits,
                        &self.detector,
                        &self.free_pointers,
                        &mut part,
                    );
                    for finding in part.list {
                        let pointer = finding.name.unwrap_or_default();
                        push(finding.rule, "body", Some(&format!("{name}{pointer}")));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
