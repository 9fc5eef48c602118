//! Errors in a policy, and where they are: every error names the file (or the plugin
//! configuration), the JSON pointer into it and, when known, the line and column, so a
//! user can go straight to what to fix. [`parse_text`] and [`parse_json`] read the user's
//! JSON or YAML into typed settings and report failures that way.

mod position;

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

/// Where in the user's input an error is: a file (or "plugin configuration"), a JSON
/// pointer into it, and a line and column when the parser knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file, or "plugin configuration" for what Envoy handed over.
    pub origin: String,
    /// A JSON pointer (RFC 6901) into it; empty for the whole input.
    pub pointer: String,
    /// The line and column (1-based), when the parser or the pointer's lookup knows them.
    pub line_column: Option<(usize, usize)>,
}

impl Location {
    /// A location without a line and column.
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
    /// A file cannot be read.
    #[error("{file}: cannot read it: {source}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file the policy names (`openapi.file`) cannot be read: `at` is the key naming it.
    #[error("{at}: cannot read {file}: {source}")]
    ReadNamed {
        /// The key that names the file.
        at: Location,
        /// The file, resolved against the policy's directory.
        file: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not JSON or YAML at all.
    #[error("{at}: not valid JSON or YAML: {message}")]
    Syntax {
        /// Where the parser stopped.
        at: Location,
        /// The parser's message, without the position `at` gives.
        message: String,
    },
    /// Well-formed, but not the expected shape: an unknown key, a wrong type.
    #[error("{at}: {message}")]
    Shape {
        /// The node of the wrong shape.
        at: Location,
        /// What was expected.
        message: String,
    },
    /// The expected shape, with a value that cannot be used: a bad regex, a `$ref` to
    /// nothing, a limit out of range, two settings that contradict each other.
    #[error("{at}: {message}")]
    Invalid {
        /// The node with the value.
        at: Location,
        /// What is wrong with it, and what to do.
        message: String,
    },
}

impl PolicyError {
    /// Where the error is, unless it is about reading a file.
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
            at.line_column = position::of_pointer(text, &at.pointer);
        }
        self
    }
}

impl PolicyError {
    /// The error of one part of a configuration (an API of a gateway, compiled on its own)
    /// located in the whole: a pointer into `origin` is put under `prefix` (`/apis/3`), and
    /// so is the section an inlined document's origin names (`origin /openapi/document`).
    pub(crate) fn under(mut self, origin: &str, prefix: &str) -> PolicyError {
        let at = match &mut self {
            PolicyError::Read { .. } => return self,
            PolicyError::Syntax { at, .. }
            | PolicyError::Shape { at, .. }
            | PolicyError::Invalid { at, .. }
            | PolicyError::ReadNamed { at, .. } => at,
        };
        if at.origin == origin {
            at.pointer = format!("{prefix}{}", at.pointer);
        } else if let Some(section) = at.origin.strip_prefix(&format!("{origin} /")) {
            at.origin = format!("{origin} {prefix}/{section}");
        }
        self
    }
}

/// Escapes one JSON-pointer reference token (RFC 6901 §3).
pub(crate) fn pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Deserialises `T` from JSON or YAML text, reporting errors at a JSON pointer.
///
/// Text starting with `{` is read as JSON (fast, and what Envoy hands over). Anything else
/// is read as YAML and converted to JSON text first: a syntax error then keeps its line,
/// and the document's schemas can be kept as raw JSON (`RawValue`), which only
/// serde_json can produce.
pub(crate) fn parse_text<T: DeserializeOwned>(text: &str, origin: &str) -> Result<T, PolicyError> {
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

/// Deserialises `T` from JSON text that borrows from `text` (see [`crate::config::PolicyConfig`]).
pub(crate) fn parse_json<'a, T: Deserialize<'a>>(
    text: &'a str,
    origin: &str,
) -> Result<T, PolicyError> {
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
