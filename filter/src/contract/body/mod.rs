//! Request and response bodies, from bytes to the JSON value the schema is checked against.
//!
//! Three steps, all before validation:
//!
//! 1. [`MediaType`] reads a `Content-Type`; [`select`] picks which of an operation's declared
//!    `content` keys ([`MediaRange`]) it falls under, most specific first, as OpenAPI says.
//! 2. The body is parsed by its media type: [`parse_json`], [`parse_form`]
//!    (`application/x-www-form-urlencoded`) or [`parse_multipart`] (`multipart/form-data`).
//!    Forms are strings on the wire, so their fields are converted with the types the schema
//!    admits ([`FormSpec`], [`crate::contract::shape::coerce`]), as parameters are.
//! 3. The `schema` module validates the resulting [`serde_json::Value`].
//!
//! Everything here reads attacker-controlled bytes, so every parser is linear, bounded and
//! free of panics, and refuses what other parsers could read differently rather than
//! guessing: the body we validate must be the body the upstream sees. No error carries
//! request bytes, because [`BodyError::reason`] reaches the client.

use crate::verdict::RuleId;

#[cfg(test)]
mod fixtures;
mod form;
mod json;
mod media;
mod multipart;

pub(crate) use form::{parse_form, FieldShape, FormSpec};
pub(crate) use json::{parse_json, parse_request_json, JsonCaps, JsonLimits};
pub(crate) use media::{select, MediaRange, MediaType};
pub(crate) use multipart::{multipart_fields, parse_multipart, Field};

/// Why a body could not be turned into a value to validate.
///
/// Positions, limits and declared field names come from the parser or the policy, never
/// from the request, so every variant is safe to show the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Not a JSON text (also: invalid UTF-8, trailing data, a number out of range), at a
    /// 1-based line and column.
    InvalidJson { line: usize, column: usize },
    /// Arrays and objects nested deeper than the limit.
    TooDeep { limit: usize },
    /// A bad `%` escape, or text that is not UTF-8.
    InvalidEncoding,
    /// A field that is not a list appears more than once. `name` only when the policy
    /// declares the field: an undeclared name is request data and is not echoed.
    RepeatedField { name: Option<String> },
    /// A multipart body that does not follow RFC 7578/RFC 2046 strictly.
    MalformedMultipart,
    /// A multipart content type without a usable `boundary` parameter.
    MissingBoundary,
    /// More multipart parts than the limit.
    TooManyParts { limit: usize },
    /// More form fields than the limit.
    TooManyFields { limit: usize },
    /// A JSON object or array with more members than the limit.
    TooManyMembers { limit: usize },
    /// A JSON value with more objects and arrays than the limit.
    TooManyContainers { limit: usize },
    /// A JSON object that repeats a key, at a 1-based line and column.
    DuplicateKey { line: usize, column: usize },
}

impl BodyError {
    /// A short sentence for the client: fixed text plus parser positions, limits and
    /// declared names only.
    pub(crate) fn reason(&self) -> String {
        match self {
            BodyError::InvalidJson { line, column } => {
                format!("The body is not valid JSON (line {line}, column {column})")
            }
            BodyError::TooDeep { limit } => {
                format!("The body nests arrays and objects deeper than {limit} levels")
            }
            BodyError::InvalidEncoding => {
                "The body has invalid percent-encoding or text that is not UTF-8".to_owned()
            }
            BodyError::RepeatedField { name: Some(name) } => {
                format!("The field '{name}' is given more than once but is not a list")
            }
            BodyError::RepeatedField { name: None } => {
                "A field is given more than once but is not a list".to_owned()
            }
            BodyError::MalformedMultipart => "The multipart body is malformed".to_owned(),
            BodyError::MissingBoundary => {
                "The multipart content type has no valid boundary parameter".to_owned()
            }
            BodyError::TooManyParts { limit } => {
                format!("The multipart body has more than {limit} parts")
            }
            BodyError::TooManyFields { limit } => {
                format!("The form has more than {limit} fields")
            }
            BodyError::TooManyMembers { limit } => {
                format!("A JSON object or array has more than {limit} members")
            }
            BodyError::TooManyContainers { limit } => {
                format!("The JSON has more than {limit} objects and arrays")
            }
            BodyError::DuplicateKey { line, column } => format!(
                "A JSON object repeats a key (line {line}, column {column}); parsers disagree \
                 on which value counts"
            ),
        }
    }

    /// The rule the error is reported under: the caps and duplicate keys have their own,
    /// everything else is `body.malformed`.
    pub(crate) const fn rule(&self) -> RuleId {
        match self {
            BodyError::TooManyParts { .. } => RuleId::LimitMultipartParts,
            BodyError::TooManyFields { .. } => RuleId::LimitFormFields,
            BodyError::TooManyMembers { .. } => RuleId::LimitJsonMembers,
            BodyError::TooManyContainers { .. } => RuleId::LimitJsonContainers,
            BodyError::DuplicateKey { .. } => RuleId::BodyDuplicateKey,
            _ => RuleId::BodyMalformed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{crlf, spec, CAPS, LIMITS};
    use super::*;

    /// xorshift64: deterministic, dependency-free pseudo-random numbers.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        /// Bytes mostly drawn from `pieces` (the grammar's tokens), some entirely random.
        fn input(&mut self, pieces: &[&[u8]]) -> Vec<u8> {
            let mut out = Vec::new();
            for _ in 0..self.below(24) {
                if self.below(4) == 0 {
                    out.push(self.next() as u8);
                } else {
                    out.extend_from_slice(pieces[self.below(pieces.len())]);
                }
            }
            out
        }

        /// `valid` with a few bytes replaced, inserted or removed, to reach the code behind
        /// the framing that random bytes rarely get past.
        fn mutate(&mut self, valid: &[u8]) -> Vec<u8> {
            let mut out = valid.to_vec();
            for _ in 0..=self.below(3) {
                let at = self.below(out.len() + 1);
                match self.below(3) {
                    0 if at < out.len() => out[at] = self.next() as u8,
                    1 if at < out.len() => {
                        out.remove(at);
                    }
                    _ => out.insert(at, b"\r\n-\"\\;=%[{"[self.below(9)]),
                }
            }
            out
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let json: &[&[u8]] = &[
            b"[", b"]", b"{", b"}", b"\"", b"\\", b"\\\"", b":", b",", b"1", b"-", b"e", b"true",
            b"\\u", b"d800", b" ", b"\xff", b"\xc3",
        ];
        let form_pieces: &[&[u8]] = &[
            b"&", b"=", b"%", b"%2", b"%41", b"%c3%a9", b"+", b"age", b"tags", b"x", b"\xff", b"1",
        ];
        let multipart_pieces: &[&[u8]] = &[
            b"--b",
            b"--b--",
            b"\r\n",
            b"\r",
            b"\n",
            b"Content-Disposition: form-data; name=",
            b"\"tags\"",
            b"age",
            b"; filename=\"f\"",
            b"Content-Type: application/json",
            b"Content-Type: text/plain; charset=",
            b"[1]",
            b"\\\"",
            b":",
            b";",
            b" ",
        ];
        let spec = spec();
        let valid_json = br#"{"a": [1, "x\"]", {"b": null}], "c": "\u00e9"}"#;
        let valid_form = b"age=1&tags=a+b&tags=%C3%A9&name=x";
        let valid_multipart = crlf(&[
            "--b",
            "Content-Disposition: form-data; name=\"age\"",
            "",
            "1",
            "--b",
            "Content-Disposition: form-data; name=\"meta\"",
            "Content-Type: application/json",
            "",
            "{\"a\": [1]}",
            "--b",
            "Content-Disposition: form-data; name=\"f\"; filename=\"a\"",
            "",
            "bytes",
            "--b--",
        ]);
        let multipart = |body: &[u8]| parse_multipart(body, "b", &spec, &LIMITS, 50, CAPS);
        assert!(multipart(&valid_multipart).is_ok());
        for _ in 0..4000 {
            let _ = parse_json(&rng.mutate(valid_json), &LIMITS);
            let _ = parse_request_json(&rng.mutate(valid_json), &LIMITS, CAPS);
            let _ = parse_form(&rng.mutate(valid_form), &spec, 3);
            let _ = multipart(&rng.mutate(&valid_multipart));
            let _ = parse_json(&rng.input(json), &LIMITS);
            let _ = parse_request_json(&rng.input(json), &LIMITS, CAPS);
            let _ = parse_form(&rng.input(form_pieces), &spec, 3);
            let _ = multipart(&rng.input(multipart_pieces));
            let header = rng.input(multipart_pieces);
            let header = String::from_utf8_lossy(&header);
            let _ = MediaType::parse(&header);
            let _ = MediaRange::parse(&header);
        }
    }
}
