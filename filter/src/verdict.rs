//! What the engine decides about a request: stable rule ids, violations and the verdict.
//!
//! Rule ids are part of the public contract: they name Envoy stats, appear in problem
//! bodies and events, and users write them in dashboards and SIEM queries. They never
//! change meaning; new rules get new ids.

use std::borrow::Cow;
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
    /// A required parameter is absent.
    ParamMissing,
    /// A parameter cannot be read in its declared style, or breaks its schema.
    ParamInvalid,
    /// A query parameter or cookie the operation does not declare (refused in strict
    /// mode; cookies are reported only in strict mode, or when they differ from a declared
    /// one in case alone).
    ParamUndeclared,
    /// A method or URL override channel (`X-HTTP-Method-Override`, `X-Original-URL`,
    /// `_method`, ...) the operation does not declare: the upstream may honour it and
    /// serve another operation than the one checked.
    RequestOverride,
    /// The operation requires a body and none came.
    BodyMissing,
    /// A body came for an operation that declares none.
    BodyUndeclared,
    /// The body's `Content-Type` is missing or not one the operation declares.
    BodyMediaType,
    /// The body is larger than the policy's limit.
    BodyTooLarge,
    /// The body cannot be parsed as its media type (or nests too deep).
    BodyMalformed,
    /// The body breaks its schema.
    BodySchema,
    /// A JSON object of the request repeats a key: serde_json keeps the last, other parsers
    /// the first, so the object validated is not the object the upstream may read.
    BodyDuplicateKey,
    // Caps on how many items of request input the filter reads (`limits` in the policy):
    // every pass over request input is linear, and these bound its length and memory.
    /// More query pairs than `limits.max_query_pairs`.
    LimitQueryPairs,
    /// More request headers than `limits.max_headers`.
    LimitHeaders,
    /// More form fields than `limits.max_form_fields`.
    LimitFormFields,
    /// More multipart parts than `limits.max_multipart_parts`.
    LimitMultipartParts,
    /// A JSON object or array of the request with more members than `limits.max_json_members`.
    LimitJsonMembers,
    /// A request JSON value with more objects and arrays than `limits.max_json_containers`.
    LimitJsonContainers,
    /// The upstream answered with a status the operation does not declare.
    ResponseStatus,
    /// The response's `Content-Type` is missing or not one the response declares.
    ResponseMediaType,
    /// The response body cannot be parsed, or breaks its schema.
    ResponseSchema,
    /// The response body is larger than the policy's limit, so it was not checked.
    ResponseTooLarge,
    /// The response has a content coding (`gzip`, …) the filter cannot read, so its body
    /// was not checked.
    ResponseEncoding,
    /// The operation needs credentials and the request carries none (401).
    AuthMissing,
    /// A token or API key was presented and refused: bad signature, expired, wrong
    /// issuer or audience, unknown key, two tokens (401 `invalid_token`).
    AuthInvalid,
    /// Valid credentials without the scopes the operation needs (403).
    AuthInsufficientScope,
    /// A JWT provider has no keys (its JWKS could not be fetched yet): not the client's
    /// fault, so 503 rather than 401.
    AuthKeysUnavailable,
    // Abuse protection (`abuse` in the policy): rate limits, quarantine, anomaly checks.
    /// A rate limit of the policy refused the request (`Retry-After` says when to retry).
    RateLimited,
    /// The client collected too many blocked requests and is refused until its quarantine ends.
    Quarantined,
    /// No `User-Agent`, or an empty one: no real client of the API sends that.
    AnomalyUserAgent,
    /// No `:authority`/`Host`, or a second `Host`.
    AnomalyHost,
    /// The path and query are longer than `abuse.anomaly.limits.max_uri_bytes`.
    AnomalyUriLength,
    /// A header value is longer than `max_header_bytes`.
    AnomalyHeaderSize,
    /// More headers than `max_headers`.
    AnomalyHeaderCount,
    /// A method no operation of the API declares, or `TRACE`/`CONNECT`.
    AnomalyMethod,
    /// A `GET` or `HEAD` with a body (request smuggling, cache poisoning).
    AnomalyBodyOnGet,
    /// The body does not look like its `Content-Type` (JSON that is not, a form that is JSON).
    AnomalyContentType,
    /// A JSON object has a key twice: parsers disagree on which one counts.
    AnomalyJsonDuplicateKey,
    /// A JSON object or array has more members than `max_width`.
    AnomalyJsonWidth,
    /// A JSON string or key is longer than `max_string_bytes`.
    AnomalyJsonStringLength,
    /// A JSON number literal is longer than `max_number_chars`.
    AnomalyJsonNumberSize,
    /// A query value, form field or header is not valid UTF-8.
    AnomalyInvalidUtf8,
    /// NUL or another control byte in a query value, form field or header.
    AnomalyControlChar,
    /// A query or form parameter the contract does not declare is given twice (parameter pollution).
    AnomalyRepeatedParam,
    /// A string value looks like SQL injection (heuristic).
    AnomalySqlInjection,
    /// A string value looks like cross-site scripting (heuristic).
    AnomalyXss,
    /// A string value looks like OS command injection (heuristic).
    AnomalyCommandInjection,
    /// A NoSQL operator (`$ne`, `$where`, ...) as a key or in a value (heuristic).
    AnomalyNoSqlInjection,
    /// A string value looks like server-side template or JNDI injection (heuristic).
    AnomalyTemplateInjection,
    /// A string value looks like LDAP filter injection (heuristic).
    AnomalyLdapInjection,
    /// A string value holds `../`, an encoded dot segment or a system file path (heuristic).
    AnomalyPathTraversal,
}

impl RuleId {
    /// Every rule, so the host can define one counter per rule and action up front.
    pub const ALL: [RuleId; 59] = [
        RuleId::UnknownPath,
        RuleId::MethodNotAllowed,
        RuleId::NotOriginForm,
        RuleId::InvalidEncoding,
        RuleId::EncodedSeparator,
        RuleId::DotSegment,
        RuleId::Backslash,
        RuleId::ControlChar,
        RuleId::EmptySegment,
        RuleId::ParamMissing,
        RuleId::ParamInvalid,
        RuleId::ParamUndeclared,
        RuleId::RequestOverride,
        RuleId::BodyMissing,
        RuleId::BodyUndeclared,
        RuleId::BodyMediaType,
        RuleId::BodyTooLarge,
        RuleId::BodyMalformed,
        RuleId::BodySchema,
        RuleId::BodyDuplicateKey,
        RuleId::LimitQueryPairs,
        RuleId::LimitHeaders,
        RuleId::LimitFormFields,
        RuleId::LimitMultipartParts,
        RuleId::LimitJsonMembers,
        RuleId::LimitJsonContainers,
        RuleId::ResponseStatus,
        RuleId::ResponseMediaType,
        RuleId::ResponseSchema,
        RuleId::ResponseTooLarge,
        RuleId::ResponseEncoding,
        RuleId::AuthMissing,
        RuleId::AuthInvalid,
        RuleId::AuthInsufficientScope,
        RuleId::AuthKeysUnavailable,
        RuleId::RateLimited,
        RuleId::Quarantined,
        RuleId::AnomalyUserAgent,
        RuleId::AnomalyHost,
        RuleId::AnomalyUriLength,
        RuleId::AnomalyHeaderSize,
        RuleId::AnomalyHeaderCount,
        RuleId::AnomalyMethod,
        RuleId::AnomalyBodyOnGet,
        RuleId::AnomalyContentType,
        RuleId::AnomalyJsonDuplicateKey,
        RuleId::AnomalyJsonWidth,
        RuleId::AnomalyJsonStringLength,
        RuleId::AnomalyJsonNumberSize,
        RuleId::AnomalyInvalidUtf8,
        RuleId::AnomalyControlChar,
        RuleId::AnomalyRepeatedParam,
        RuleId::AnomalySqlInjection,
        RuleId::AnomalyXss,
        RuleId::AnomalyCommandInjection,
        RuleId::AnomalyNoSqlInjection,
        RuleId::AnomalyTemplateInjection,
        RuleId::AnomalyLdapInjection,
        RuleId::AnomalyPathTraversal,
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
            RuleId::ParamMissing => "params.missing",
            RuleId::ParamInvalid => "params.invalid",
            RuleId::ParamUndeclared => "params.undeclared",
            RuleId::RequestOverride => "request.override",
            RuleId::BodyMissing => "body.missing",
            RuleId::BodyUndeclared => "body.undeclared",
            RuleId::BodyMediaType => "body.media_type",
            RuleId::BodyTooLarge => "body.too_large",
            RuleId::BodyMalformed => "body.malformed",
            RuleId::BodySchema => "body.schema",
            RuleId::BodyDuplicateKey => "body.duplicate_key",
            RuleId::LimitQueryPairs => "limits.query_pairs",
            RuleId::LimitHeaders => "limits.headers",
            RuleId::LimitFormFields => "limits.form_fields",
            RuleId::LimitMultipartParts => "limits.multipart_parts",
            RuleId::LimitJsonMembers => "limits.json_members",
            RuleId::LimitJsonContainers => "limits.json_containers",
            RuleId::ResponseStatus => "response.status",
            RuleId::ResponseMediaType => "response.media_type",
            RuleId::ResponseSchema => "response.schema",
            RuleId::ResponseTooLarge => "response.too_large",
            RuleId::ResponseEncoding => "response.encoding",
            RuleId::AuthMissing => "auth.missing",
            RuleId::AuthInvalid => "auth.invalid",
            RuleId::AuthInsufficientScope => "auth.insufficient_scope",
            RuleId::AuthKeysUnavailable => "auth.keys_unavailable",
            RuleId::RateLimited => "ratelimit.exceeded",
            RuleId::Quarantined => "abuse.quarantined",
            RuleId::AnomalyUserAgent => "anomaly.user_agent",
            RuleId::AnomalyHost => "anomaly.host",
            RuleId::AnomalyUriLength => "anomaly.uri_length",
            RuleId::AnomalyHeaderSize => "anomaly.header_size",
            RuleId::AnomalyHeaderCount => "anomaly.header_count",
            RuleId::AnomalyMethod => "anomaly.method",
            RuleId::AnomalyBodyOnGet => "anomaly.body_on_get",
            RuleId::AnomalyContentType => "anomaly.content_type",
            RuleId::AnomalyJsonDuplicateKey => "anomaly.json_duplicate_key",
            RuleId::AnomalyJsonWidth => "anomaly.json_width",
            RuleId::AnomalyJsonStringLength => "anomaly.json_string_length",
            RuleId::AnomalyJsonNumberSize => "anomaly.json_number_size",
            RuleId::AnomalyInvalidUtf8 => "anomaly.invalid_utf8",
            RuleId::AnomalyControlChar => "anomaly.control_char",
            RuleId::AnomalyRepeatedParam => "anomaly.repeated_param",
            RuleId::AnomalySqlInjection => "anomaly.sql_injection",
            RuleId::AnomalyXss => "anomaly.xss",
            RuleId::AnomalyCommandInjection => "anomaly.command_injection",
            RuleId::AnomalyNoSqlInjection => "anomaly.nosql_injection",
            RuleId::AnomalyTemplateInjection => "anomaly.template_injection",
            RuleId::AnomalyLdapInjection => "anomaly.ldap_injection",
            RuleId::AnomalyPathTraversal => "anomaly.path_traversal",
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
            | RuleId::EmptySegment
            | RuleId::ParamMissing
            | RuleId::ParamInvalid
            | RuleId::ParamUndeclared
            | RuleId::RequestOverride
            | RuleId::BodyMissing
            | RuleId::BodyUndeclared
            | RuleId::BodyMalformed
            | RuleId::BodySchema
            | RuleId::BodyDuplicateKey
            | RuleId::LimitQueryPairs
            | RuleId::LimitFormFields
            | RuleId::LimitMultipartParts
            | RuleId::LimitJsonMembers
            | RuleId::LimitJsonContainers => 400,
            RuleId::LimitHeaders => 431,
            RuleId::RateLimited => 429,
            RuleId::Quarantined => 403,
            RuleId::AnomalyUserAgent
            | RuleId::AnomalyHost
            | RuleId::AnomalyUriLength
            | RuleId::AnomalyHeaderSize
            | RuleId::AnomalyHeaderCount
            | RuleId::AnomalyMethod
            | RuleId::AnomalyBodyOnGet
            | RuleId::AnomalyContentType
            | RuleId::AnomalyJsonDuplicateKey
            | RuleId::AnomalyJsonWidth
            | RuleId::AnomalyJsonStringLength
            | RuleId::AnomalyJsonNumberSize
            | RuleId::AnomalyInvalidUtf8
            | RuleId::AnomalyControlChar
            | RuleId::AnomalyRepeatedParam
            | RuleId::AnomalySqlInjection
            | RuleId::AnomalyXss
            | RuleId::AnomalyCommandInjection
            | RuleId::AnomalyNoSqlInjection
            | RuleId::AnomalyTemplateInjection
            | RuleId::AnomalyLdapInjection
            | RuleId::AnomalyPathTraversal => 400,
            RuleId::BodyTooLarge => 413,
            RuleId::BodyMediaType => 415,
            // The client did nothing wrong: the upstream broke the contract.
            RuleId::ResponseStatus
            | RuleId::ResponseMediaType
            | RuleId::ResponseSchema
            | RuleId::ResponseTooLarge
            | RuleId::ResponseEncoding => 502,
            RuleId::AuthMissing | RuleId::AuthInvalid => 401,
            RuleId::AuthInsufficientScope => 403,
            RuleId::AuthKeysUnavailable => 503,
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
            RuleId::ParamMissing => "A required parameter is missing",
            RuleId::ParamInvalid => "A parameter is not what the contract declares",
            RuleId::ParamUndeclared => "A query parameter or cookie is not declared",
            RuleId::RequestOverride => "The request asks for another method or URL",
            RuleId::BodyMissing => "A required request body is missing",
            RuleId::BodyUndeclared => "This operation takes no request body",
            RuleId::BodyMediaType => "The body's media type is not accepted",
            RuleId::BodyTooLarge => "The body is too large",
            RuleId::BodyMalformed => "The body cannot be parsed",
            RuleId::BodySchema => "The body is not what the contract declares",
            RuleId::BodyDuplicateKey => "A JSON object of the body repeats a key",
            RuleId::LimitQueryPairs => "The query has too many parameters",
            RuleId::LimitHeaders => "The request has too many headers",
            RuleId::LimitFormFields => "The form has too many fields",
            RuleId::LimitMultipartParts => "The multipart body has too many parts",
            RuleId::LimitJsonMembers => "A JSON object or array of the body is too large",
            RuleId::LimitJsonContainers => "The JSON has too many objects and arrays",
            RuleId::ResponseStatus => "The upstream answered with an undeclared status",
            RuleId::ResponseMediaType => "The upstream answered with an undeclared media type",
            RuleId::ResponseSchema => "The upstream's response breaks the contract",
            RuleId::ResponseTooLarge => "The upstream's response is too large to check",
            RuleId::ResponseEncoding => {
                "The upstream's response has a content coding apiguard cannot check"
            }
            RuleId::AuthMissing => "This operation needs credentials",
            RuleId::AuthInvalid => "The credentials are not valid",
            RuleId::AuthInsufficientScope => "The credentials lack a required scope",
            RuleId::AuthKeysUnavailable => "The keys to check credentials are unavailable",
            RuleId::RateLimited => "The client sent too many requests",
            RuleId::Quarantined => "The client is quarantined",
            RuleId::AnomalyUserAgent => "The request has no User-Agent",
            RuleId::AnomalyHost => "The request's Host is missing or repeated",
            RuleId::AnomalyUriLength => "The request target is too long",
            RuleId::AnomalyHeaderSize => "A header value is too long",
            RuleId::AnomalyHeaderCount => "The request has too many headers",
            RuleId::AnomalyMethod => "The API never uses this method",
            RuleId::AnomalyBodyOnGet => "A GET or HEAD request has a body",
            RuleId::AnomalyContentType => "The body contradicts its Content-Type",
            RuleId::AnomalyJsonDuplicateKey => "A JSON object repeats a key",
            RuleId::AnomalyJsonWidth => "A JSON object or array is too wide",
            RuleId::AnomalyJsonStringLength => "A JSON string is too long",
            RuleId::AnomalyJsonNumberSize => "A JSON number is too long",
            RuleId::AnomalyInvalidUtf8 => "The request has invalid UTF-8",
            RuleId::AnomalyControlChar => "The request has control characters",
            RuleId::AnomalyRepeatedParam => "A parameter is repeated",
            RuleId::AnomalySqlInjection => "A value looks like SQL injection",
            RuleId::AnomalyXss => "A value looks like cross-site scripting",
            RuleId::AnomalyCommandInjection => "A value looks like OS command injection",
            RuleId::AnomalyNoSqlInjection => "A value looks like NoSQL injection",
            RuleId::AnomalyTemplateInjection => "A value looks like template injection",
            RuleId::AnomalyLdapInjection => "A value looks like LDAP injection",
            RuleId::AnomalyPathTraversal => "A value looks like path traversal",
        }
    }

    /// Which of several violations decides the status: the one the client can least
    /// work around first (too large, then wrong media type), then the others.
    const fn precedence(self) -> u8 {
        match self.status() {
            413 => 0,
            415 => 1,
            _ => 2,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Action {
    /// Nothing was wrong; the request goes upstream.
    #[default]
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
    /// The operation's index in the policy, to find its contract again.
    pub id: usize,
}

/// One way a request (or response) breaks the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub rule: RuleId,
    /// Where: `path`, `query`, `header`, `cookie` or `body`.
    pub location: Option<&'static str>,
    /// The parameter's declared name, or a sanitised JSON pointer into the body.
    pub name: Option<String>,
    /// A short reason built from the contract, never from the request.
    pub reason: Cow<'static, str>,
    /// `false` for findings that are only recorded: everything in monitor mode, and
    /// undeclared query parameters outside strict mode.
    pub enforced: bool,
}

/// The outcome of inspecting one request (or one part of it: its head, then its body).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict<'p> {
    pub action: Action,
    /// The matched operation, when there was one.
    pub operation: Option<OperationRef<'p>>,
    pub violations: Vec<Violation>,
    /// For `route.method_not_allowed`: the matched template and its declared methods,
    /// which become the `Allow` header.
    pub allowed: Option<(&'p str, Vec<Method>)>,
    /// Who made the request, when the operation needed credentials and they held.
    pub identity: Option<crate::security::Identity>,
}

impl Verdict<'_> {
    /// The violation that decides the answer: the first enforced one of highest
    /// precedence, else the first recorded one.
    pub fn deciding(&self) -> Option<&Violation> {
        let enforced = self
            .violations
            .iter()
            .filter(|v| v.enforced)
            .min_by_key(|v| v.rule.precedence());
        enforced.or(self.violations.first())
    }

    /// The deciding rule, if anything was wrong.
    pub fn rule(&self) -> Option<RuleId> {
        self.deciding().map(|v| v.rule)
    }

    /// Sets the action from the violations: any enforced one blocks.
    pub(crate) fn settle(&mut self) {
        self.action = if self.violations.iter().any(|v| v.enforced) {
            Action::Block
        } else if self.violations.is_empty() {
            Action::Allow
        } else {
            Action::Monitor
        };
    }
}

/// Text from the request made safe to show: characters that could carry markup, quotes
/// or control bytes become `_`, and it is cut at 200 characters. Used for JSON pointers
/// into bodies and undeclared parameter names, which an attacker chooses.
pub fn sanitize(text: &str) -> String {
    const MAX: usize = 200;
    let mut out: String = text
        .chars()
        .take(MAX)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "/~_.-$@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    // `nth`, not `count`: the text can be as long as a body, and only its start is kept.
    if text.chars().nth(MAX).is_some() {
        out.push_str("...");
    }
    out
}
