//! What the engine decides about a request: stable rule ids, violations and the verdict.
//!
//! Rule ids are part of the public contract: they name Envoy stats, appear in problem
//! bodies and events, and users write them in dashboards and SIEM queries. They never
//! change meaning; new rules get new ids.

use std::borrow::Cow;
use std::fmt;

use crate::request::{Identity, Method};

/// Declares the rules: each one's variant (with its doc), stable id, the HTTP status a
/// blocked request receives, and a short fixed summary (the problem `title`, never request
/// data). Everything else about a rule (its stats, its README row) derives from this.
macro_rules! rules {
    ($($(#[doc = $doc:literal])* $rule:ident = $id:literal, $status:literal, $title:literal;)*) => {
        /// Every rule the engine can report, with its stable id.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum RuleId {
            $($(#[doc = $doc])* $rule,)*
        }

        impl RuleId {
            /// Every rule, so the host can define one counter per rule and action up front.
            pub const ALL: [RuleId; [$($id),*].len()] = [$(RuleId::$rule),*];

            /// The stable id, `family.name`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(RuleId::$rule => $id,)*
                }
            }

            /// The HTTP status a blocked request receives for this rule.
            pub const fn status(self) -> u16 {
                match self {
                    $(RuleId::$rule => $status,)*
                }
            }

            /// A short, fixed human summary (the problem `title`); never contains request
            /// data.
            pub const fn title(self) -> &'static str {
                match self {
                    $(RuleId::$rule => $title,)*
                }
            }
        }
    };
}

rules! {
    /// No path template of the API matches the request path.
    UnknownPath = "route.unknown_path", 404, "No operation of this API has this path";
    /// No API of a configuration with several (`apis:`) has the request's authority and
    /// base path: nothing judges it, so it is refused (gateway `mode: monitor`: passed).
    UnknownApi = "route.unknown_api", 404, "No API behind this gateway has this host and path";
    /// The path is declared but not with the request's method.
    MethodNotAllowed = "route.method_not_allowed", 405, "This path does not accept this method";
    /// The `:path` is not in origin form (`/…`), or carries a fragment.
    NotOriginForm = "path.not_origin_form", 400, "The request target is not an absolute path";
    /// A `%` not followed by two hex digits, raw non-ASCII bytes, or a decoded segment
    /// that is not UTF-8.
    InvalidEncoding = "path.invalid_encoding", 400, "The path is not validly percent-encoded";
    /// `%2F` or `%5C` inside a segment: a separator the upstream may or may not split on.
    EncodedSeparator = "path.encoded_separator", 400, "The path has an encoded path separator";
    /// A `.` or `..` segment, raw or percent-encoded.
    DotSegment = "path.dot_segment", 400, "The path has a dot segment";
    /// A raw backslash, which some servers treat as `/`.
    Backslash = "path.backslash", 400, "The path has a backslash";
    /// A control byte (NUL, CR, LF, DEL …), raw or percent-encoded.
    ControlChar = "path.control_char", 400, "The path has a control character";
    /// `//` inside the path: an empty segment that upstreams may merge or keep.
    EmptySegment = "path.empty_segment", 400, "The path has an empty segment";
    /// A required parameter is absent.
    ParamMissing = "params.missing", 400, "A required parameter is missing";
    /// A parameter cannot be read in its declared style, or breaks its schema.
    ParamInvalid = "params.invalid", 400, "A parameter is not what the contract declares";
    /// A query parameter or cookie the operation does not declare (refused in strict
    /// mode; cookies are reported only in strict mode, or when they differ from a declared
    /// one in case alone).
    ParamUndeclared = "params.undeclared", 400, "A query parameter or cookie is not declared";
    /// A method or URL override channel (`X-HTTP-Method-Override`, `X-Original-URL`,
    /// `_method`, ...) the operation does not declare: the upstream may honour it and
    /// serve another operation than the one checked.
    RequestOverride = "request.override", 400, "The request asks for another method or URL";
    /// A `format: uri` or `url` value of the request (parameter or body property) points
    /// inside the network: loopback, private, link-local (cloud metadata), or a non-HTTP
    /// scheme — server-side request forgery if the upstream fetches it.
    RequestSsrf = "request.ssrf", 400, "A URL in the request points inside the network";
    /// The operation requires a body and none came.
    BodyMissing = "body.missing", 400, "A required request body is missing";
    /// A body came for an operation that declares none.
    BodyUndeclared = "body.undeclared", 400, "This operation takes no request body";
    /// The body's `Content-Type` is missing or not one the operation declares.
    BodyMediaType = "body.media_type", 415, "The body's media type is not accepted";
    /// The body is larger than the policy's limit.
    BodyTooLarge = "body.too_large", 413, "The body is too large";
    /// The body cannot be parsed as its media type (or nests too deep).
    BodyMalformed = "body.malformed", 400, "The body cannot be parsed";
    /// The body breaks its schema.
    BodySchema = "body.schema", 400, "The body is not what the contract declares";
    /// A JSON object of the request repeats a key: serde_json keeps the last, other parsers
    /// the first, so the object validated is not the object the upstream may read.
    BodyDuplicateKey = "body.duplicate_key", 400, "A JSON object of the body repeats a key";
    // Caps on how many items of request input the filter reads (`limits` in the policy):
    // every pass over request input is linear, and these bound its length and memory.
    /// More query pairs than `limits.max_query_pairs`.
    LimitQueryPairs = "limits.query_pairs", 400, "The query has too many parameters";
    /// More request headers than `limits.max_headers`.
    LimitHeaders = "limits.headers", 431, "The request has too many headers";
    /// More form fields than `limits.max_form_fields`.
    LimitFormFields = "limits.form_fields", 400, "The form has too many fields";
    /// More multipart parts than `limits.max_multipart_parts`.
    LimitMultipartParts = "limits.multipart_parts", 400, "The multipart body has too many parts";
    /// A JSON object or array of the request with more members than `limits.max_json_members`.
    LimitJsonMembers = "limits.json_members", 400, "A JSON object or array of the body is too large";
    /// A request JSON value with more objects and arrays than `limits.max_json_containers`.
    LimitJsonContainers = "limits.json_containers", 400, "The JSON has too many objects and arrays";
    // Responses: the client did nothing wrong, the upstream broke the contract (502).
    /// The upstream answered with a status the operation does not declare.
    ResponseStatus = "response.status", 502, "The upstream answered with an undeclared status";
    /// The response's `Content-Type` is missing or not one the response declares.
    ResponseMediaType = "response.media_type", 502, "The upstream answered with an undeclared media type";
    /// The response body cannot be parsed, or breaks its schema.
    ResponseSchema = "response.schema", 502, "The upstream's response breaks the contract";
    /// The response body is larger than the policy's limit, so it was not checked.
    ResponseTooLarge = "response.too_large", 502, "The upstream's response is too large to check";
    /// The response has a content coding (`gzip`, …) the filter cannot read, so its body
    /// was not checked.
    ResponseEncoding = "response.encoding", 502, "The upstream's response has a content coding apiguard cannot check";
    /// The operation needs credentials and the request carries none (401).
    AuthMissing = "auth.missing", 401, "This operation needs credentials";
    /// A token or API key was presented and refused: bad signature, expired, wrong
    /// issuer or audience, unknown key, two tokens (401 `invalid_token`).
    AuthInvalid = "auth.invalid", 401, "The credentials are not valid";
    /// Valid credentials without the scopes the operation needs (403).
    AuthInsufficientScope = "auth.insufficient_scope", 403, "The credentials lack a required scope";
    /// A JWT provider has no keys (its JWKS could not be fetched yet): not the client's
    /// fault, so 503 rather than 401.
    AuthKeysUnavailable = "auth.keys_unavailable", 503, "The keys to check credentials are unavailable";
    // Abuse protection (`abuse` in the policy): rate limits, quarantine, anomaly checks.
    /// A rate limit of the policy refused the request (`Retry-After` says when to retry).
    RateLimited = "ratelimit.exceeded", 429, "The client sent too many requests";
    /// The client collected too many blocked requests and is refused until its quarantine ends.
    Quarantined = "abuse.quarantined", 403, "The client is quarantined";
    // Behaviour (`behaviour` in the policy): what one request cannot show, counted per
    // client over a window in shared data.
    /// The client (its verified identity, else its address) asked one operation for more
    /// distinct object ids within the window than `behaviour.bola.max_distinct_ids`
    /// (object enumeration, OWASP API1).
    BehaviourBola = "behaviour.bola", 403, "The client is walking through object ids";
    /// The client failed `behaviour.credentials.max_failures` times within the window on a
    /// sensitive (login) operation: upstream 401/403 or apiguard's own `auth.*` refusals
    /// (brute force, OWASP API2).
    BehaviourBruteForce = "behaviour.brute_force", 429, "The client failed to sign in too many times";
    /// The client tried more distinct usernames within the window than
    /// `behaviour.credentials.max_usernames` (credential stuffing, OWASP API2).
    BehaviourCredentialStuffing = "behaviour.credential_stuffing", 429, "The client tried too many usernames";
    /// The identity called an operation of a `behaviour.flows` flow without the step that
    /// must come before it within the window (a skipped business-flow step, OWASP API6).
    BehaviourFlow = "behaviour.flow", 403, "A step this operation requires was skipped";
    /// The identity completed the `then` step of a `behaviour.flows` flow more often within
    /// the window than its `max_per_window` (automated use of a business flow, OWASP API6).
    BehaviourFlowVelocity = "behaviour.flow_velocity", 429, "This business flow was completed too often";
    /// The operation got more requests in the current bucket than its learnt normal allows
    /// (`behaviour.baselines`: mean + k sigma; OWASP API4). Recorded, or refused with
    /// `action: block` until the bucket ends.
    BehaviourVolume = "behaviour.volume", 429, "This operation gets far more requests than it normally does";
    /// One identity made more than `behaviour.baselines.client_share` of its operation's
    /// normal requests per bucket by itself, within one bucket.
    BehaviourClientShare = "behaviour.client_share", 429, "The client makes an outsized share of this operation's traffic";
    /// The share of 4xx/5xx answers of the operation in the current bucket is far above its
    /// learnt normal (`behaviour.baselines`). Recorded only: found once the upstream answered.
    BehaviourErrors = "behaviour.errors", 502, "This operation fails far more often than it normally does";
    /// A response body far larger than the operation's learnt normal (`behaviour.baselines`:
    /// bulk exfiltration). Recorded only: found once the body passed.
    BehaviourResponseSize = "behaviour.response_size", 502, "The response is far larger than this operation's normal";
    /// No `User-Agent`, or an empty one: no real client of the API sends that.
    AnomalyUserAgent = "anomaly.user_agent", 400, "The request has no User-Agent";
    /// No `:authority`/`Host`, or a second `Host`.
    AnomalyHost = "anomaly.host", 400, "The request's Host is missing or repeated";
    /// The path and query are longer than `abuse.anomaly.limits.max_uri_bytes`.
    AnomalyUriLength = "anomaly.uri_length", 400, "The request target is too long";
    /// A header value is longer than `max_header_bytes`.
    AnomalyHeaderSize = "anomaly.header_size", 400, "A header value is too long";
    /// More headers than `max_headers`.
    AnomalyHeaderCount = "anomaly.header_count", 400, "The request has too many headers";
    /// A method no operation of the API declares, or `TRACE`/`CONNECT`.
    AnomalyMethod = "anomaly.method", 400, "The API never uses this method";
    /// A `GET` or `HEAD` with a body (request smuggling, cache poisoning).
    AnomalyBodyOnGet = "anomaly.body_on_get", 400, "A GET or HEAD request has a body";
    /// The body does not look like its `Content-Type` (JSON that is not, a form that is JSON).
    AnomalyContentType = "anomaly.content_type", 400, "The body contradicts its Content-Type";
    /// A JSON object has a key twice: parsers disagree on which one counts.
    AnomalyJsonDuplicateKey = "anomaly.json_duplicate_key", 400, "A JSON object repeats a key";
    /// A JSON object or array has more members than `max_width`.
    AnomalyJsonWidth = "anomaly.json_width", 400, "A JSON object or array is too wide";
    /// A JSON string or key is longer than `max_string_bytes`.
    AnomalyJsonStringLength = "anomaly.json_string_length", 400, "A JSON string is too long";
    /// A JSON number literal is longer than `max_number_chars`.
    AnomalyJsonNumberSize = "anomaly.json_number_size", 400, "A JSON number is too long";
    /// A query value, form field or header is not valid UTF-8.
    AnomalyInvalidUtf8 = "anomaly.invalid_utf8", 400, "The request has invalid UTF-8";
    /// NUL or another control byte in a query value, form field or header.
    AnomalyControlChar = "anomaly.control_char", 400, "The request has control characters";
    /// A query or form parameter the contract does not declare is given twice (parameter pollution).
    AnomalyRepeatedParam = "anomaly.repeated_param", 400, "A parameter is repeated";
    /// A string value looks like SQL injection (heuristic).
    AnomalySqlInjection = "anomaly.sql_injection", 400, "A value looks like SQL injection";
    /// A string value looks like cross-site scripting (heuristic).
    AnomalyXss = "anomaly.xss", 400, "A value looks like cross-site scripting";
    /// A string value looks like OS command injection (heuristic).
    AnomalyCommandInjection = "anomaly.command_injection", 400, "A value looks like OS command injection";
    /// A NoSQL operator (`$ne`, `$where`, ...) as a key or in a value (heuristic).
    AnomalyNoSqlInjection = "anomaly.nosql_injection", 400, "A value looks like NoSQL injection";
    /// A string value looks like server-side template or JNDI injection (heuristic).
    AnomalyTemplateInjection = "anomaly.template_injection", 400, "A value looks like template injection";
    /// A string value looks like LDAP filter injection (heuristic).
    AnomalyLdapInjection = "anomaly.ldap_injection", 400, "A value looks like LDAP injection";
    /// A string value holds `../`, an encoded dot segment or a system file path (heuristic).
    AnomalyPathTraversal = "anomaly.path_traversal", 400, "A value looks like path traversal";
}

impl RuleId {
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
    /// Its name in stats, access logs and events.
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
    /// The operation's method.
    pub method: Method,
    /// The path template as written in the document, e.g. `/pets/{petId}`.
    pub template: &'p str,
    /// Its `operationId`, when the document gives one.
    pub operation_id: Option<&'p str>,
    /// The operation's index in the policy, to find its contract again.
    pub id: usize,
}

/// One way a request (or response) breaks the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The rule broken.
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
    /// What the filter does with the request.
    pub action: Action,
    /// The matched operation, when there was one.
    pub operation: Option<OperationRef<'p>>,
    /// Everything found, enforced or not.
    pub violations: Vec<Violation>,
    /// For `route.method_not_allowed`: the matched template and its declared methods,
    /// which become the `Allow` header.
    pub allowed: Option<(&'p str, Vec<Method>)>,
    /// Who made the request, when the operation needed credentials and they held.
    pub identity: Option<Identity>,
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
pub(crate) fn sanitize(text: &str) -> String {
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
