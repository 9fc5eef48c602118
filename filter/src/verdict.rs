//! What the engine decides about a request: stable rule ids, violations and the verdict.
//!
//! Rule ids are part of the public contract: they name Envoy stats, appear in problem
//! bodies and events, and users write them in dashboards and SIEM queries. They never
//! change meaning; new rules get new ids.

use std::fmt;

/// Every rule the engine can report, with its stable id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RuleId {
    /// No path template of the API matches the request path.
    UnknownPath,
    /// The path is declared but not with the request's method.
    MethodNotAllowed,
    /// The `:path` is not in origin form (`/…`), or carries a fragment.
    NotOriginForm,
    /// A `%` not followed by two hex digits, raw non-ASCII bytes, or a decoded segment
    /// that is not UTF-8.
    InvalidEncoding,
    /// `%2F` or `%5C` inside a segment: a separator the upstream may or may not split on.
    EncodedSeparator,
    /// A `.` or `..` segment, raw or percent-encoded.
    DotSegment,
    /// A raw backslash, which some servers treat as `/`.
    Backslash,
    /// A control byte (NUL, CR, LF, DEL …), raw or percent-encoded.
    ControlChar,
    /// `//` inside the path: an empty segment that upstreams may merge or keep.
    EmptySegment,
}

impl RuleId {
    /// Every rule, so the host can define one counter per rule and action up front.
    pub const ALL: [RuleId; 9] = [
        RuleId::UnknownPath,
        RuleId::MethodNotAllowed,
        RuleId::NotOriginForm,
        RuleId::InvalidEncoding,
        RuleId::EncodedSeparator,
        RuleId::DotSegment,
        RuleId::Backslash,
        RuleId::ControlChar,
        RuleId::EmptySegment,
    ];

    /// The stable id, `family.name`.
    pub const fn as_str(self) -> &'static str {
        match self {
            RuleId::UnknownPath => "route.unknown_path",
            RuleId::MethodNotAllowed => "route.method_not_allowed",
            RuleId::NotOriginForm => "path.not_origin_form",
            RuleId::InvalidEncoding => "path.invalid_encoding",
            RuleId::EncodedSeparator => "path.encoded_separator",
            RuleId::DotSegment => "path.dot_segment",
            RuleId::Backslash => "path.backslash",
            RuleId::ControlChar => "path.control_char",
            RuleId::EmptySegment => "path.empty_segment",
        }
    }

    /// The HTTP status a blocked request receives for this rule.
    pub const fn status(self) -> u16 {
        match self {
            RuleId::UnknownPath => 404,
            RuleId::MethodNotAllowed => 405,
            RuleId::NotOriginForm
            | RuleId::InvalidEncoding
            | RuleId::EncodedSeparator
            | RuleId::DotSegment
            | RuleId::Backslash
            | RuleId::ControlChar
            | RuleId::EmptySegment => 400,
        }
    }

    /// A short, fixed human summary (the problem `title`); never contains request data.
    pub const fn title(self) -> &'static str {
        match self {
            RuleId::UnknownPath => "No operation of this API has this path",
            RuleId::MethodNotAllowed => "This path does not accept this method",
            RuleId::NotOriginForm => "The request target is not an absolute path",
            RuleId::InvalidEncoding => "The path is not validly percent-encoded",
            RuleId::EncodedSeparator => "The path has an encoded path separator",
            RuleId::DotSegment => "The path has a dot segment",
            RuleId::Backslash => "The path has a backslash",
            RuleId::ControlChar => "The path has a control character",
            RuleId::EmptySegment => "The path has an empty segment",
        }
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The HTTP methods an OpenAPI 3.0/3.1 path item can declare, in the order of the path
/// item's fields (which is also the order of the `Allow` header we send).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    Get,
    Put,
    Post,
    Delete,
    Options,
    Head,
    Patch,
    Trace,
}

impl Method {
    pub const ALL: [Method; 8] = [
        Method::Get,
        Method::Put,
        Method::Post,
        Method::Delete,
        Method::Options,
        Method::Head,
        Method::Patch,
        Method::Trace,
    ];

    /// Parses a request method. Methods are case-sensitive (RFC 9110 §9.1): `get` is not
    /// `GET`, and is as undeclared as `PROPFIND`.
    pub fn from_request(method: &[u8]) -> Option<Method> {
        Method::ALL
            .into_iter()
            .find(|m| m.as_str().as_bytes() == method)
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Head => "HEAD",
            Method::Patch => "PATCH",
            Method::Trace => "TRACE",
        }
    }

    /// The key of this method's operation in an OpenAPI path item.
    pub const fn openapi_key(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Put => "put",
            Method::Post => "post",
            Method::Delete => "delete",
            Method::Options => "options",
            Method::Head => "head",
            Method::Patch => "patch",
            Method::Trace => "trace",
        }
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

/// What the filter does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing was wrong; the request goes upstream.
    Allow,
    /// Something was wrong and the policy enforces: the filter answers with a problem.
    Block,
    /// Something was wrong but the policy only monitors: the request goes upstream and
    /// the violation is recorded.
    Monitor,
}

impl Action {
    pub const fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allowed",
            Action::Block => "blocked",
            Action::Monitor => "monitored",
        }
    }
}

/// The operation a request was matched to: the context of every verdict about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperationRef<'p> {
    pub method: Method,
    /// The path template as written in the document, e.g. `/pets/{petId}`.
    pub template: &'p str,
    pub operation_id: Option<&'p str>,
}

/// The outcome of inspecting one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict<'p> {
    pub action: Action,
    /// The rule that decided, when the request was not clean.
    pub rule: Option<RuleId>,
    /// The matched operation, when there was one.
    pub operation: Option<OperationRef<'p>>,
    /// For `route.method_not_allowed`: the matched template and its declared methods,
    /// which become the `Allow` header.
    pub allowed: Option<(&'p str, Vec<Method>)>,
}
