//! The policy as users write it, and the errors that point back into what they wrote.
//!
//! A policy file names its OpenAPI document by path (`openapi: {file: …}`), but a plugin
//! inside Envoy cannot read files: Envoy hands it the plugin `configuration` (a
//! `google.protobuf.Struct`, as JSON). [`load_bundle`] therefore inlines the document as
//! `openapi: {document: …}`; that JSON is what goes into `envoy.yaml` or Istio's
//! `pluginConfig`. The same types parse both shapes, and unknown keys are refused so a
//! typo never silently disables a check.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::policy::Policy;

/// A policy: one API, its contract, and how strictly to apply it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig<'a> {
    /// The API's name: a label in stats, problems and events (`[A-Za-z0-9._-]`, 1-64).
    pub name: String,
    #[serde(default)]
    pub mode: Mode,
    /// Refuse what the contract does not declare even where the document leaves it open:
    /// unknown body properties (mass assignment) and undeclared query parameters.
    /// Overridable per operation.
    #[serde(default)]
    pub strict: bool,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub responses: ResponseSettings,
    /// When schemas are compiled: all at configure time (`eager`, the default, so a bad
    /// schema is refused with the configuration), or per operation on first use (`lazy`,
    /// for very large contracts; `apiguard check` still compiles them all).
    #[serde(default)]
    pub schemas: SchemaCompilation,
    /// Per-operation settings, keyed by `operationId` or by `METHOD /template`. The same
    /// settings can sit in the document as an operation's `x-apiguard` extension; the
    /// policy wins.
    #[serde(default)]
    pub operations: BTreeMap<String, OperationSettings>,
    /// Token checks (JWT providers, API keys): see [`crate::security`].
    pub security: Option<crate::security::settings::SecuritySettings>,
    /// Security events: the API's owner and the log level of event lines.
    #[serde(default)]
    pub events: crate::events::EventsConfig,
    #[serde(borrow)]
    pub openapi: OpenApiSource<'a>,
    /// Rate limits, anomaly checks and quarantine (see [`crate::abuse`]); none if absent.
    #[serde(default)]
    pub abuse: Option<crate::abuse::AbuseConfig>,
    #[serde(default)]
    pub stats: StatsSettings,
}

/// Stats beyond the counters, each off unless asked for: they cost host calls on every
/// request, as the counters do, but answer questions an operator asks less often.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatsSettings {
    /// `apiguard.inspection_us`: a histogram of the engine's microseconds per request
    /// head and per request body (two clock reads and a record each, about 1 us in the VM).
    pub inspection_time: bool,
}

/// Size limits for what the filter buffers and parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Request or response bodies above this are refused (413) without being buffered.
    /// Keep it below the listener's `per_connection_buffer_limit_bytes` (1 MiB default).
    pub max_body_bytes: usize,
    /// Arrays and objects nested deeper than this are refused before parsing.
    pub max_json_depth: usize,
    /// Caps on counts of request input, each refused with its own `limits.*` rule before
    /// the items are read one by one. Every pass over request input is linear; the caps
    /// bound how long it runs and how much it allocates, whatever the other limits allow.
    /// Query pairs (`limits.query_pairs`).
    pub max_query_pairs: usize,
    /// Request headers, one per header line (`limits.headers`, 431).
    pub max_headers: usize,
    /// Fields of an `application/x-www-form-urlencoded` body (`limits.form_fields`).
    pub max_form_fields: usize,
    /// Parts of a `multipart/form-data` body (`limits.multipart_parts`).
    pub max_multipart_parts: usize,
    /// Members of one JSON object or items of one array in a request body or a JSON
    /// parameter (`limits.json_members`).
    pub max_json_members: usize,
    /// Objects and arrays in one request body or JSON parameter
    /// (`limits.json_containers`). Parsed, each is a node of its own (an object about
    /// 630 bytes natively, a B-tree leaf), so a body of small nested objects takes about
    /// 100 times its size: this bounds what a body can allocate, as the byte limit cannot.
    pub max_json_containers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1 << 20,
            max_json_depth: 64,
            max_query_pairs: 256,
            max_headers: 128,
            max_form_fields: 1000,
            max_multipart_parts: 1000,
            max_json_members: 10_000,
            max_json_containers: 50_000,
        }
    }
}

/// What happens to responses that break the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseSettings {
    /// `monitor` (default): record; `enforce`: replace with a 502 problem; `off`.
    pub mode: OperationMode,
    /// Remove properties the response schema does not declare (excessive data exposure).
    pub redact: bool,
}

impl Default for ResponseSettings {
    fn default() -> Self {
        ResponseSettings {
            mode: OperationMode::Monitor,
            redact: false,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchemaCompilation {
    #[default]
    Eager,
    Lazy,
}

/// `off` skips the contract checks of one operation (it stays routable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OperationMode {
    Enforce,
    Monitor,
    Off,
}

/// Settings for one operation, from the policy's `operations` or the document's
/// `x-apiguard`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationSettings {
    pub mode: Option<OperationMode>,
    pub strict: Option<bool>,
}

/// Where the OpenAPI document comes from: a file next to the policy (resolved by
/// [`load_bundle`]), or the document itself, as an object or as JSON/YAML text.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenApiSource<'a> {
    pub file: Option<String>,
    #[serde(borrow)]
    pub document: Option<&'a RawValue>,
    /// The file an inlined document was read from, so errors can still name it.
    pub source: Option<String>,
}

/// `enforce` answers violations itself; `monitor` lets every request through and only
/// records what it would have blocked — the way to roll a contract out safely.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Enforce,
    Monitor,
}

/// Where in the user's input an error is: a file (or "plugin configuration"), a JSON
/// pointer into it, and a line and column when the parser knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub origin: String,
    pub pointer: String,
    pub line_column: Option<(usize, usize)>,
}

impl Location {
    pub fn new(origin: impl Into<String>, pointer: impl Into<String>) -> Self {
        Location {
            origin: origin.into(),
            pointer: pointer.into(),
            line_column: None,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin)?;
        if !self.pointer.is_empty() {
            write!(f, " at {}", self.pointer)?;
        }
        if let Some((line, column)) = self.line_column {
            write!(f, " (line {line}, column {column})")?;
        }
        Ok(())
    }
}

/// Why a policy cannot be used. Every variant says where, and what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    #[error("{file}: cannot read it: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// A file the policy names (`openapi.file`) cannot be read: `at` is the key naming it.
    #[error("{at}: cannot read {file}: {source}")]
    ReadNamed {
        at: Location,
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{at}: not valid JSON or YAML: {message}")]
    Syntax { at: Location, message: String },
    #[error("{at}: {message}")]
    Shape { at: Location, message: String },
    #[error("{at}: {message}")]
    Invalid { at: Location, message: String },
}

impl PolicyError {
    pub fn location(&self) -> Option<&Location> {
        match self {
            PolicyError::Read { .. } => None,
            PolicyError::Syntax { at, .. }
            | PolicyError::Shape { at, .. }
            | PolicyError::Invalid { at, .. }
            | PolicyError::ReadNamed { at, .. } => Some(at),
        }
    }

    /// The error with the line and column of its pointer in `text`, the JSON or YAML the
    /// user wrote as `origin`, in place of the position in the JSON it was found on (a
    /// converted YAML file, or the one-line bundle); errors about other inputs, and syntax
    /// errors (found on `text` itself), unchanged.
    pub fn located_in(mut self, origin: &str, text: &str) -> PolicyError {
        let at = match &mut self {
            PolicyError::Read { .. } | PolicyError::Syntax { .. } => return self,
            PolicyError::Shape { at, .. }
            | PolicyError::Invalid { at, .. }
            | PolicyError::ReadNamed { at, .. } => at,
        };
        if at.origin == origin {
            at.line_column = crate::position::of_pointer(text, &at.pointer);
        }
        self
    }
}

/// Escapes one JSON-pointer reference token (RFC 6901 §3).
pub fn pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Deserialises `T` from JSON or YAML text, reporting errors at a JSON pointer.
///
/// Text starting with `{` is read as JSON (fast, and what Envoy hands over). Anything else
/// is read as YAML and converted to JSON text first: a syntax error then keeps its line,
/// and the document's schemas can be kept as raw JSON (`RawValue`), which only
/// serde_json can produce.
pub fn parse_text<T: DeserializeOwned>(text: &str, origin: &str) -> Result<T, PolicyError> {
    if text.trim_start().starts_with('{') {
        return parse_json(text, origin);
    }
    let syntax = |line_column, message: String| PolicyError::Syntax {
        at: Location {
            origin: origin.to_owned(),
            pointer: String::new(),
            line_column,
        },
        message,
    };
    let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| {
        let at = e.location().map(|l| (l.line(), l.column()));
        syntax(at, without_position(e.to_string(), at))
    })?;
    // YAML allows keys JSON does not (numbers become strings, e.g. response codes).
    let json = serde_json::to_string(&value).map_err(|e| syntax(None, e.to_string()))?;
    parse_json(&json, origin).map_err(|e| e.located_in(origin, text))
}

/// Deserialises `T` from JSON text that borrows from `text` (see [`PolicyConfig`]).
pub fn parse_json<'a, T: Deserialize<'a>>(text: &'a str, origin: &str) -> Result<T, PolicyError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = typed(&mut de, origin).map_err(|(at, e)| classify_json(at, e))?;
    de.end()
        .map_err(|e| classify_json(Location::new(origin, ""), e))?;
    Ok(value)
}

fn typed<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    de: D,
    origin: &str,
) -> Result<T, (Location, D::Error)> {
    serde_path_to_error::deserialize(de).map_err(|e| {
        let pointer = e.path().iter().fold(String::new(), |mut acc, segment| {
            use serde_path_to_error::Segment;
            let token = match segment {
                Segment::Seq { index } => index.to_string(),
                Segment::Map { key } => pointer_token(key),
                Segment::Enum { variant } => pointer_token(variant),
                Segment::Unknown => "?".to_owned(),
            };
            acc.push('/');
            acc.push_str(&token);
            acc
        });
        (Location::new(origin, pointer), e.into_inner())
    })
}

/// The parser's message without the position it gives (` at line L column C`): the
/// location says it, once. (libyaml's messages may name a second, context position.)
fn without_position(message: String, at: Option<(usize, usize)>) -> String {
    match at {
        Some((line, column)) => {
            message.replacen(&format!(" at line {line} column {column}"), "", 1)
        }
        None => message,
    }
}

fn classify_json(mut at: Location, e: serde_json::Error) -> PolicyError {
    // Line 0: an error without a position (serde_json's convention).
    at.line_column = (e.line() != 0).then(|| (e.line(), e.column()));
    let message = without_position(e.to_string(), at.line_column);
    if e.is_data() {
        PolicyError::Shape { at, message }
    } else {
        PolicyError::Syntax { at, message }
    }
}

/// Reads a policy file and returns it as the JSON plugin configuration, with its
/// OpenAPI document (`openapi.file`, relative to the policy) inlined as
/// `openapi.document`. The result is checked by compiling it, so a bundle that Envoy
/// would refuse is never produced.
pub fn load_bundle(policy_file: &Path) -> Result<serde_json::Value, PolicyError> {
    bundle(policy_file).map(|(json, _)| json)
}

/// [`load_bundle`], also returning the policy compiled from the bundle.
pub fn bundle(policy_file: &Path) -> Result<(serde_json::Value, Policy), PolicyError> {
    let origin = policy_file.display().to_string();
    let policy_text = read(policy_file)?;
    bundle_text(policy_file, &origin, &policy_text).map_err(|e| e.located_in(&origin, &policy_text))
}

/// [`bundle`] of the policy's text; errors are located in the policy by the caller.
fn bundle_text(
    policy_file: &Path,
    origin: &str,
    policy_text: &str,
) -> Result<(serde_json::Value, Policy), PolicyError> {
    let mut policy: serde_json::Value = parse_text(policy_text, origin)?;
    let file_at = |message: &str| PolicyError::Invalid {
        at: Location::new(origin, "/openapi/file"),
        message: message.to_owned(),
    };
    let Some(openapi) = policy.get_mut("openapi").and_then(|o| o.as_object_mut()) else {
        return Err(PolicyError::Shape {
            at: Location::new(origin, "/openapi"),
            message: "missing `openapi: {file: <path to the OpenAPI document>}`".to_owned(),
        });
    };
    // The document's text, to point its compile errors (named after `file`) at a line.
    let mut document_text = None;
    if let Some(file) = openapi.remove("file") {
        let file = file
            .as_str()
            .ok_or_else(|| file_at("`file` must be a path, relative to the policy file"))?
            .to_owned();
        let doc_path = policy_file.parent().unwrap_or(Path::new(".")).join(&file);
        let doc_origin = doc_path.display().to_string();
        let text = std::fs::read_to_string(&doc_path).map_err(|source| PolicyError::ReadNamed {
            at: Location::new(origin, "/openapi/file"),
            file: doc_origin.clone(),
            source,
        })?;
        let document: serde_json::Value = parse_text(&text, &doc_origin)?;
        openapi.insert("document".to_owned(), document);
        openapi.insert("source".to_owned(), serde_json::Value::String(file.clone()));
        document_text = Some((file, text));
    }
    let compiled =
        Policy::compile_from(policy.to_string(), origin).map_err(|e| match &document_text {
            Some((file, text)) => e.located_in(file, text),
            None => e,
        })?;
    Ok((policy, compiled))
}

fn read(path: &Path) -> Result<String, PolicyError> {
    std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
        file: path.display().to_string(),
        source,
    })
}
