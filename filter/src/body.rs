//! Request and response bodies, from bytes to the JSON value the schema is checked against.
//!
//! Three steps, all before validation:
//!
//! 1. [`MediaType`] reads a `Content-Type`; [`select`] picks which of an operation's declared
//!    `content` keys ([`MediaRange`]) it falls under, most specific first, as OpenAPI says.
//! 2. The body is parsed by its media type: [`parse_json`], [`parse_form`]
//!    (`application/x-www-form-urlencoded`) or [`parse_multipart`] (`multipart/form-data`).
//!    Forms are strings on the wire, so their fields are converted with the types the schema
//!    admits ([`FormSpec`], [`crate::shape::coerce`]), as parameters are.
//! 3. The `schema` module validates the resulting [`Value`].
//!
//! Everything here reads attacker-controlled bytes, so every parser is linear, bounded and
//! free of panics, and refuses what other parsers could read differently rather than
//! guessing: the body we validate must be the body the upstream sees. No error carries
//! request bytes, because [`BodyError::reason`] reaches the client.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::percent::form_decode;
use crate::shape::{coerce, Types};
use crate::verdict::RuleId;

/// Why a body could not be turned into a value to validate.
///
/// Positions, limits and declared field names come from the parser or the policy, never
/// from the request, so every variant is safe to show the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
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
    pub fn reason(&self) -> String {
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
    pub const fn rule(&self) -> RuleId {
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

// ---------------------------------------------------------------------------------------
// Media types

/// A parsed media type: lowercase type and subtype, parameters (lowercase names; values
/// unquoted). RFC 9110 §8.3.1 syntax; `Content-Type: application/json; charset=utf-8`.
///
/// Parsing is strict, because the upstream picks its body parser from this header too:
/// no whitespace around `/` or `=`, no wildcards (a request body has one concrete type),
/// and a parameter named twice is refused (`boundary=a; boundary=b` would let us and the
/// upstream split the body at different places).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    type_: String,
    subtype: String,
    params: Vec<(String, String)>,
}

impl MediaType {
    pub fn parse(s: &str) -> Option<MediaType> {
        parse_media(s).filter(|media| media.type_ != "*" && media.subtype != "*")
    }

    /// `type/subtype`, without parameters.
    pub fn essence(&self) -> String {
        format!("{}/{}", self.type_, self.subtype)
    }

    /// Whether the body is JSON text: `application/json` or any `+json` structured suffix
    /// (RFC 6839), such as `application/merge-patch+json`. This decides how to parse, not
    /// which declared content applies; that is [`select`]'s job.
    pub fn is_json(&self) -> bool {
        (self.type_ == "application" && self.subtype == "json")
            || self
                .subtype
                .strip_suffix("+json")
                .is_some_and(|base| !base.is_empty())
    }

    /// The value of a parameter; names are case-insensitive.
    pub fn param(&self, name: &str) -> Option<&str> {
        find_param(&self.params, name)
    }

    fn is(&self, type_: &str, subtype: &str) -> bool {
        self.type_ == type_ && self.subtype == subtype
    }
}

/// A declared `content` key of an OpenAPI requestBody/response: `application/json`,
/// `application/*`, `*/*`, `text/plain; charset=utf-8`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRange {
    kind: RangeKind,
    params: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum RangeKind {
    /// `*/*`
    Any,
    /// `type/*`
    Type(String),
    /// `type/subtype`
    Exact(String, String),
}

impl RangeKind {
    /// How specific the range is; more specific declarations win.
    fn rank(&self) -> u8 {
        match self {
            RangeKind::Any => 0,
            RangeKind::Type(_) => 1,
            RangeKind::Exact(..) => 2,
        }
    }

    fn covers(&self, media: &MediaType) -> bool {
        match self {
            RangeKind::Any => true,
            RangeKind::Type(type_) => *type_ == media.type_,
            RangeKind::Exact(type_, subtype) => media.is(type_, subtype),
        }
    }
}

impl MediaRange {
    /// Same syntax as [`MediaType::parse`], plus `*/*` and `type/*` (but not `*/subtype`).
    pub fn parse(s: &str) -> Option<MediaRange> {
        let MediaType {
            type_,
            subtype,
            params,
        } = parse_media(s)?;
        let kind = match (type_.as_str(), subtype.as_str()) {
            ("*", "*") => RangeKind::Any,
            ("*", _) => return None,
            (_, "*") => RangeKind::Type(type_),
            _ => RangeKind::Exact(type_, subtype),
        };
        Some(MediaRange { kind, params })
    }

    /// Whether every declared parameter has the same value in the request. Only `charset`
    /// is known to be case-insensitive (RFC 9110 §8.3.2); other values compare exactly.
    fn params_match(&self, media: &MediaType) -> bool {
        self.params
            .iter()
            .all(|(name, declared)| match media.param(name) {
                Some(given) if name == "charset" => given.eq_ignore_ascii_case(declared),
                Some(given) => given == declared,
                None => false,
            })
    }
}

/// Which declared range a request's media type selects, most specific first, as OpenAPI
/// says ("text/plain; charset=utf-8" > "text/plain" > "text/*" > "*/*"): exact type/subtype
/// beats subtype wildcard beats `*/*`; at the same level, a range with parameters matches
/// only if every declared parameter equals the request's, and more matched parameters
/// win. Returns the index into `declared`; of equally specific ranges the first wins.
///
/// `application/merge-patch+json` does not select a declared `application/json`: the
/// contract did not declare it, even though it is parsed as JSON.
pub fn select(declared: &[MediaRange], request: &MediaType) -> Option<usize> {
    let mut best: Option<((u8, usize), usize)> = None;
    for (i, range) in declared.iter().enumerate() {
        if !range.kind.covers(request) || !range.params_match(request) {
            continue;
        }
        let score = (range.kind.rank(), range.params.len());
        if best.is_none_or(|(best_score, _)| score > best_score) {
            best = Some((score, i));
        }
    }
    best.map(|(_, i)| i)
}

/// `type "/" subtype *( OWS ";" OWS [ name "=" ( token / quoted-string ) ] )`, with
/// surrounding whitespace trimmed. Type, subtype and names come back lowercase; wildcards
/// are let through for the callers to judge.
fn parse_media(s: &str) -> Option<MediaType> {
    let mut cursor = Cursor::new(s.as_bytes());
    cursor.skip_ows();
    let type_ = cursor.token()?.to_ascii_lowercase();
    cursor.eat(b'/').then_some(())?;
    let subtype = cursor.token()?.to_ascii_lowercase();
    let params = cursor.params(Escapes::Allowed)?;
    Some(MediaType {
        type_,
        subtype,
        params,
    })
}

fn find_param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Whether a quoted-string may contain `\` escapes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Escapes {
    /// RFC 9110 quoted-pairs, as in `Content-Type`.
    Allowed,
    /// Refused: in multipart `Content-Disposition`, browsers percent-encode `"` instead of
    /// escaping it, and parsers disagree on whether `\"` ends the string, which lets a
    /// crafted header carry a field name only the upstream sees.
    Refused,
}

/// A position in a header value, for the RFC 9110 grammar.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        let found = self.peek() == Some(b);
        if found {
            self.pos += 1;
        }
        found
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// One or more `tchar`s (RFC 9110 §5.6.2).
    fn token(&mut self) -> Option<&'a str> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        let token = self.bytes.get(start..self.pos)?;
        if token.is_empty() {
            return None;
        }
        std::str::from_utf8(token).ok()
    }

    /// A quoted-string after its opening `"`, unquoted.
    fn quoted_rest(&mut self, escapes: Escapes) -> Option<String> {
        let mut out = Vec::new();
        loop {
            let b = self.peek()?;
            self.pos += 1;
            match b {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' if escapes == Escapes::Allowed => {
                    let escaped = self.peek().filter(|&e| e == b'\t' || e >= b' ')?;
                    if escaped == 0x7F {
                        return None;
                    }
                    self.pos += 1;
                    out.push(escaped);
                }
                b'\\' => return None,
                // qdtext: HTAB, SP, visible ASCII, obs-text.
                b'\t' | b' '..=b'~' | 0x80..=0xFF => out.push(b),
                _ => return None,
            }
        }
    }

    /// The parameters up to the end of the input, names lowercase; a repeated name is
    /// refused.
    fn params(&mut self, escapes: Escapes) -> Option<Vec<(String, String)>> {
        let mut params: Vec<(String, String)> = Vec::new();
        loop {
            self.skip_ows();
            if self.peek().is_none() {
                return Some(params);
            }
            self.eat(b';').then_some(())?;
            self.skip_ows();
            // An empty parameter (`a/b;;c=d`, `a/b;`) is allowed by the grammar.
            if matches!(self.peek(), None | Some(b';')) {
                continue;
            }
            let name = self.token()?.to_ascii_lowercase();
            self.eat(b'=').then_some(())?;
            let value = if self.eat(b'"') {
                self.quoted_rest(escapes)?
            } else {
                self.token()?.to_owned()
            };
            if find_param(&params, &name).is_some() {
                return None;
            }
            params.push((name, value));
        }
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

// ---------------------------------------------------------------------------------------
// JSON

/// serde_json's own nesting limit: it refuses the 128th level with a generic error. Deeper
/// configured limits are capped here so the client is told the limit that actually applies.
const SERDE_MAX_DEPTH: usize = 127;

/// Bounds on a JSON body, from the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonLimits {
    /// Nesting of arrays and objects: `1` is depth 0, `[1]` depth 1, `{"a":[1]}` depth 2.
    /// Values above 127 act as 127, serde_json's own limit.
    pub max_depth: usize,
}

/// Parses a JSON response body into a [`Value`].
///
/// A linear, non-recursive pre-scan first refuses nesting deeper than the limit, so a
/// `[[[[…` bomb costs one pass and no stack, and the client learns the limit rather than a
/// generic parse error. Then serde_json parses strictly: invalid UTF-8 (also in escapes,
/// such as lone surrogates), trailing data, a byte order mark and numbers out of `f64`
/// range are refused. Duplicate object keys are kept as serde_json keeps them (the last
/// wins): a response is re-serialised from this value when it is redacted, which drops
/// the duplicates. Request JSON goes through [`parse_request_json`], which refuses them.
pub fn parse_json(bytes: &[u8], limits: &JsonLimits) -> Result<Value, BodyError> {
    check_depth(bytes, limits.max_depth.min(SERDE_MAX_DEPTH))?;
    serde_json::from_slice(bytes).map_err(|e| invalid_json(&e))
}

/// Parses request JSON (a body, a multipart part, a `content: application/json`
/// parameter) as [`parse_json`] does, and also refuses what would make the value we
/// validate differ from the value the upstream reads, or cost more than the policy allows:
///
/// - an object that repeats a key ([`BodyError::DuplicateKey`]): serde_json keeps the
///   last, many parsers the first, so `{"role":"user","role":"admin"}` would be validated
///   as one and acted on as the other. This is the contract's own check, whatever the
///   anomaly settings say (which report the same objects as `anomaly.json_duplicate_key`).
/// - an object or array with more than `caps.max_members` members
///   ([`BodyError::TooManyMembers`]);
/// - more than `caps.max_containers` objects and arrays in all
///   ([`BodyError::TooManyContainers`]): each is a node of the parsed value (an object a
///   B-tree leaf of about 630 bytes natively), so `{"a":{"a":…` takes some 100 times its
///   size in memory, and the byte limit alone does not bound what a body allocates.
///
/// One pass: each object checks its keys against the map it is building (a `BTreeMap`
/// lookup), so the cost is linear in the body up to a log factor.
pub fn parse_request_json(
    bytes: &[u8],
    limits: &JsonLimits,
    caps: JsonCaps,
) -> Result<Value, BodyError> {
    parse_counted(bytes, limits, caps, &Cell::new(0))
}

/// The counts request JSON may reach, from the policy's `limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonCaps {
    /// Members of one object, items of one array.
    pub max_members: usize,
    /// Objects and arrays of one request body (all its JSON parts) or parameter.
    pub max_containers: usize,
}

/// [`parse_request_json`], counting containers into `containers`, which a multipart
/// body's JSON parts share.
fn parse_counted(
    bytes: &[u8],
    limits: &JsonLimits,
    caps: JsonCaps,
    containers: &Cell<usize>,
) -> Result<Value, BodyError> {
    check_depth(bytes, limits.max_depth.min(SERDE_MAX_DEPTH))?;
    let refused = Cell::new(None);
    let mut reader = serde_json::Deserializer::from_slice(bytes);
    let seed = Strict {
        caps,
        containers,
        refused: &refused,
    };
    let value = seed
        .deserialize(&mut reader)
        .and_then(|value| reader.end().map(|()| value));
    value.map_err(|e| match refused.take() {
        Some(Refusal::DuplicateKey) => BodyError::DuplicateKey {
            line: e.line(),
            column: e.column(),
        },
        Some(Refusal::TooManyMembers) => BodyError::TooManyMembers {
            limit: caps.max_members,
        },
        Some(Refusal::TooManyContainers) => BodyError::TooManyContainers {
            limit: caps.max_containers,
        },
        None => invalid_json(&e),
    })
}

fn invalid_json(e: &serde_json::Error) -> BodyError {
    BodyError::InvalidJson {
        line: e.line(),
        column: e.column(),
    }
}

/// Why [`Strict`] stopped, which the serde error it returns cannot carry.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    DuplicateKey,
    TooManyMembers,
    TooManyContainers,
}

/// A [`Value`] builder that refuses duplicate keys and oversized containers.
#[derive(Clone, Copy)]
struct Strict<'r> {
    caps: JsonCaps,
    /// Objects and arrays so far.
    containers: &'r Cell<usize>,
    refused: &'r Cell<Option<Refusal>>,
}

impl Strict<'_> {
    fn refuse<E: de::Error>(self, why: Refusal) -> E {
        self.refused.set(Some(why));
        E::custom("refused")
    }

    /// Counts one more object or array, before anything of it is allocated.
    fn open<E: de::Error>(self) -> Result<(), E> {
        let count = self.containers.get() + 1;
        if count > self.caps.max_containers {
            return Err(self.refuse(Refusal::TooManyContainers));
        }
        self.containers.set(count);
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.open()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            if items.len() == self.caps.max_members {
                return Err(self.refuse(Refusal::TooManyMembers));
            }
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.open()?;
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.len() == self.caps.max_members {
                return Err(self.refuse(Refusal::TooManyMembers));
            }
            if object.contains_key(&key) {
                return Err(self.refuse(Refusal::DuplicateKey));
            }
            let value = map.next_value_seed(self)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Counts bracket nesting outside strings. Exact for valid JSON; for invalid input the
/// count may be off, but serde_json refuses that input anyway.
fn check_depth(bytes: &[u8], limit: usize) -> Result<(), BodyError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Err(BodyError::TooDeep { limit });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Forms

/// How a form field's strings become JSON, built by the policy from the body schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldShape {
    /// One value, converted to these types; given twice it is refused.
    Scalar(Types),
    /// `type: array`: each occurrence is one item, converted to the item types.
    Array(Types),
}

/// The fields of a form body (`application/x-www-form-urlencoded` or
/// `multipart/form-data`), from the object schema of the declared content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormSpec {
    /// The schema's `properties`.
    pub fields: BTreeMap<String, FieldShape>,
    /// The types of any other field (`additionalProperties`); such fields are scalars.
    pub additional: Types,
}

/// The object a form becomes, enforcing the repetition rules as fields arrive.
struct Fields<'s> {
    spec: &'s FormSpec,
    scalars: Map<String, Value>,
    /// Array fields collect their items here and join the object at the end.
    lists: BTreeMap<String, Vec<Value>>,
}

impl<'s> Fields<'s> {
    fn new(spec: &'s FormSpec) -> Self {
        Fields {
            spec,
            scalars: Map::new(),
            lists: BTreeMap::new(),
        }
    }

    /// A text value, converted to the field's (or item's) types.
    fn add_text(&mut self, name: String, raw: &str) -> Result<(), BodyError> {
        let types = match self.spec.fields.get(&name) {
            Some(FieldShape::Scalar(types) | FieldShape::Array(types)) => *types,
            None => self.spec.additional,
        };
        self.add(name, coerce(raw, types))
    }

    /// A value that needs no conversion (a JSON part, a file placeholder).
    fn add(&mut self, name: String, value: Value) -> Result<(), BodyError> {
        match self.spec.fields.get_key_value(&name) {
            Some((_, FieldShape::Array(_))) => {
                self.lists.entry(name).or_default().push(value);
            }
            Some((declared, FieldShape::Scalar(_))) => {
                if self.scalars.contains_key(&name) {
                    return Err(BodyError::RepeatedField {
                        name: Some(declared.clone()),
                    });
                }
                self.scalars.insert(name, value);
            }
            None => {
                if self.scalars.contains_key(&name) {
                    return Err(BodyError::RepeatedField { name: None });
                }
                self.scalars.insert(name, value);
            }
        }
        Ok(())
    }

    fn finish(self) -> Value {
        let mut object = self.scalars;
        for (name, items) in self.lists {
            object.insert(name, Value::Array(items));
        }
        Value::Object(object)
    }
}

/// Parses an `application/x-www-form-urlencoded` body into a JSON object.
///
/// Fields are split on `&` as the WHATWG URL standard does: empty pieces are skipped, and a
/// piece without `=` is a field with an empty value. Names and values decode `+` to a space
/// and each `%XX` once; a bad escape or a result that is not UTF-8 is refused. A field
/// declared as an array collects every occurrence in order (once is a one-item array); any
/// other field given twice is refused, since upstreams disagree on whether the first or
/// the last counts.
///
/// More than `max_fields` fields are refused ([`BodyError::TooManyFields`]) when the first
/// one too many is reached.
pub fn parse_form(bytes: &[u8], spec: &FormSpec, max_fields: usize) -> Result<Value, BodyError> {
    let mut fields = Fields::new(spec);
    let pieces = bytes
        .split(|&b| b == b'&')
        .filter(|piece| !piece.is_empty());
    for (index, piece) in pieces.enumerate() {
        if index == max_fields {
            return Err(BodyError::TooManyFields { limit: max_fields });
        }
        let mut halves = piece.splitn(2, |&b| b == b'=');
        let decode = |raw: Option<&[u8]>| {
            form_decode(raw.unwrap_or_default()).ok_or(BodyError::InvalidEncoding)
        };
        let name = decode(halves.next())?;
        let value = decode(halves.next())?;
        fields.add_text(name, &value)?;
    }
    Ok(fields.finish())
}

// ---------------------------------------------------------------------------------------
// Multipart

/// RFC 2046 §5.1.1: a boundary is 1 to 70 characters.
const MAX_BOUNDARY: usize = 70;

/// Parses a `multipart/form-data` body (RFC 7578) into a JSON object.
///
/// `boundary` is the Content-Type's `boundary` parameter ([`MediaType::param`], already
/// unquoted); the caller reports its absence as [`BodyError::MissingBoundary`], and a
/// boundary outside RFC 2046's syntax is reported the same way here. More than
/// `max_parts` parts are refused ([`BodyError::TooManyParts`]): each part costs a header
/// parse and a map entry, and a real form has tens.
///
/// Each part becomes a field, by the same rules as [`parse_form`] (an array field is one
/// item per part, in order):
/// - a part with a `filename` (or `filename*`), or whose Content-Type is neither
///   `text/plain` nor JSON, is a file: its value is the empty string. The schema of an
///   upload is `type: string, format: binary` (or `contentMediaType`), which any string
///   satisfies; its bytes are not something a JSON schema can check.
/// - a part whose Content-Type is JSON ([`MediaType::is_json`]) is parsed with `limits`
///   and used as is (in an array field, as one item, as OpenAPI sends arrays as repeated
///   parts). Its error positions are relative to the part.
/// - any other part is UTF-8 text (`charset`, if given, must say so), converted to the
///   field's types.
///
/// The framing is strict, because a part only we or only the upstream sees would skip
/// validation: the body must start with the first boundary (no preamble) and end with the
/// closing one plus at most a CRLF (no epilogue); lines end in CRLF; a delimiter line has
/// nothing after the boundary (no transport padding); header lines may not be folded; each
/// part has exactly one `Content-Disposition: form-data; name=…`, at most one Content-Type,
/// and no Content-Transfer-Encoding (RFC 7578 §4.7 forbids it, yet some upstreams decode
/// it). Other part headers are ignored, as RFC 7578 §4.8 requires.
pub fn parse_multipart(
    bytes: &[u8],
    boundary: &str,
    spec: &FormSpec,
    limits: &JsonLimits,
    max_parts: usize,
    caps: JsonCaps,
) -> Result<Value, BodyError> {
    let mut fields = Fields::new(spec);
    let containers = Cell::new(0);
    each_part(bytes, boundary, max_parts, |headers, content| {
        let json = JsonPart {
            limits,
            caps,
            containers: &containers,
        };
        read_part(headers, content, &mut fields, json)
    })?;
    Ok(fields.finish())
}

/// A multipart field as the anomaly checks read it: every field's name, the text of text
/// parts, the bytes of JSON parts; a file's content is not text to scan.
#[derive(Debug, PartialEq, Eq)]
pub enum Field<'a> {
    /// Read lossily: a part the contract reads as text must be UTF-8, but one it does not
    /// read (a declaration without a schema) is scanned all the same.
    Text(String, Cow<'a, str>),
    Json(String, &'a [u8]),
    File(String),
}

/// The fields of a `multipart/form-data` body, framed as [`parse_multipart`] frames them
/// (and refused as it refuses them), without reading them against a form.
pub fn multipart_fields<'a>(
    bytes: &'a [u8],
    boundary: &str,
    max_parts: usize,
) -> Result<Vec<Field<'a>>, BodyError> {
    let mut fields = Vec::new();
    each_part(bytes, boundary, max_parts, |headers, content| {
        fields.push(match headers.kind() {
            Kind::File => Field::File(headers.name),
            Kind::Json => Field::Json(headers.name, content),
            Kind::Text => Field::Text(headers.name, String::from_utf8_lossy(content)),
        });
        Ok(())
    })?;
    Ok(fields)
}

/// Calls `each` with every part's headers and content, in order; more than `max_parts`
/// parts are refused.
fn each_part<'a>(
    bytes: &'a [u8],
    boundary: &str,
    max_parts: usize,
    mut each: impl FnMut(PartHeaders, &'a [u8]) -> Result<(), BodyError>,
) -> Result<(), BodyError> {
    if !valid_boundary(boundary) {
        return Err(BodyError::MissingBoundary);
    }
    let dash_boundary = [b"--", boundary.as_bytes()].concat();
    let delimiter = [b"\r\n", dash_boundary.as_slice()].concat();
    let mut rest = bytes
        .strip_prefix(dash_boundary.as_slice())
        .ok_or(BodyError::MalformedMultipart)?;
    let mut parts = 0usize;
    loop {
        if let Some(after) = rest.strip_prefix(b"--") {
            return if after.is_empty() || after == b"\r\n" {
                Ok(())
            } else {
                Err(BodyError::MalformedMultipart)
            };
        }
        rest = rest
            .strip_prefix(b"\r\n")
            .ok_or(BodyError::MalformedMultipart)?;
        parts += 1;
        if parts > max_parts {
            return Err(BodyError::TooManyParts { limit: max_parts });
        }
        // A missing closing boundary ends here too.
        let (part, after) = split_on(rest, &delimiter).ok_or(BodyError::MalformedMultipart)?;
        let (head, content) = split_on(part, b"\r\n\r\n").ok_or(BodyError::MalformedMultipart)?;
        each(PartHeaders::parse(head)?, content)?;
        rest = after;
    }
}

/// RFC 2046 `bchars`, not ending in a space.
fn valid_boundary(boundary: &str) -> bool {
    (1..=MAX_BOUNDARY).contains(&boundary.len())
        && !boundary.ends_with(' ')
        && boundary
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b" '()+_,-./:=?".contains(&b))
}

/// How a multipart body's JSON parts are parsed: one container count for all of them.
#[derive(Clone, Copy)]
struct JsonPart<'a> {
    limits: &'a JsonLimits,
    caps: JsonCaps,
    containers: &'a Cell<usize>,
}

/// One part, between delimiters: its headers and content.
fn read_part(
    headers: PartHeaders,
    content: &[u8],
    fields: &mut Fields<'_>,
    json: JsonPart<'_>,
) -> Result<(), BodyError> {
    match headers.kind() {
        Kind::File => fields.add(headers.name, Value::String(String::new())),
        Kind::Json => {
            let value = parse_counted(content, json.limits, json.caps, json.containers)?;
            fields.add(headers.name, value)
        }
        Kind::Text => {
            let utf8 = headers
                .content_type
                .as_ref()
                .and_then(|media| media.param("charset"))
                .is_none_or(|charset| {
                    charset.eq_ignore_ascii_case("utf-8")
                        || charset.eq_ignore_ascii_case("us-ascii")
                });
            if !utf8 {
                return Err(BodyError::InvalidEncoding);
            }
            let raw = std::str::from_utf8(content).map_err(|_| BodyError::InvalidEncoding)?;
            fields.add_text(headers.name, raw)
        }
    }
}

/// What a part's headers say about it.
struct PartHeaders {
    name: String,
    file: bool,
    content_type: Option<MediaType>,
}

/// How a part's content is read (see [`parse_multipart`]).
enum Kind {
    File,
    Json,
    Text,
}

impl PartHeaders {
    fn kind(&self) -> Kind {
        let text = match &self.content_type {
            None => true,
            Some(media) => media.is("text", "plain"),
        };
        let json = self.content_type.as_ref().is_some_and(MediaType::is_json);
        if self.file || !(text || json) {
            Kind::File
        } else if json {
            Kind::Json
        } else {
            Kind::Text
        }
    }

    fn parse(head: &[u8]) -> Result<PartHeaders, BodyError> {
        let malformed = BodyError::MalformedMultipart;
        let mut disposition: Option<(String, bool)> = None;
        let mut content_type: Option<MediaType> = None;
        let mut rest = Some(head);
        while let Some(block) = rest {
            let (line, after) = match split_on(block, b"\r\n") {
                Some((line, after)) => (line, Some(after)),
                None => (block, None),
            };
            rest = after;
            let (name, value) = header_line(line).ok_or_else(|| malformed.clone())?;
            if name.eq_ignore_ascii_case("content-disposition") {
                if disposition.is_some() {
                    return Err(malformed);
                }
                disposition = Some(form_data(value).ok_or_else(|| malformed.clone())?);
            } else if name.eq_ignore_ascii_case("content-type") {
                if content_type.is_some() {
                    return Err(malformed);
                }
                content_type = Some(MediaType::parse(value).ok_or_else(|| malformed.clone())?);
            } else if name.eq_ignore_ascii_case("content-transfer-encoding") {
                return Err(malformed);
            }
        }
        let (name, file) = disposition.ok_or(malformed)?;
        Ok(PartHeaders {
            name,
            file,
            content_type,
        })
    }
}

/// `name ":" OWS value OWS`, where the line is UTF-8 without control characters other than
/// HTAB (so no bare CR or LF) and does not start with whitespace (obsolete line folding).
fn header_line(line: &[u8]) -> Option<(&str, &str)> {
    let line = std::str::from_utf8(line).ok()?;
    if line.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7F) {
        return None;
    }
    let (name, value) = line.split_once(':')?;
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return None;
    }
    Some((name, value.trim_matches([' ', '\t'])))
}

/// `form-data; name="…"[; filename="…"]`: the field name, and whether the part is a file.
/// `name*` is refused: RFC 7578 §4.2 says RFC 5987's extended (`*`) parameter encoding
/// must not be used in form-data, and a parser that still reads `name*`, preferring it
/// over `name`, would file the part under a name we never checked.
fn form_data(value: &str) -> Option<(String, bool)> {
    let mut cursor = Cursor::new(value.as_bytes());
    if !cursor.token()?.eq_ignore_ascii_case("form-data") {
        return None;
    }
    let params = cursor.params(Escapes::Refused)?;
    if find_param(&params, "name*").is_some() {
        return None;
    }
    let name = find_param(&params, "name")?.to_owned();
    let file =
        find_param(&params, "filename").is_some() || find_param(&params, "filename*").is_some();
    Some((name, file))
}

/// Splits at the first occurrence of `needle`, dropping it. `memmem` is linear in the
/// haystack whatever the needle (a window-by-window compare costs up to the needle's
/// length per byte, 74 for a delimiter).
fn split_on<'a>(haystack: &'a [u8], needle: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    let at = memchr::memmem::find(haystack, needle)?;
    let (before, after) = haystack.split_at_checked(at)?;
    Some((before, after.get(needle.len()..)?))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    // --- media types -------------------------------------------------------------------

    fn media(s: &str) -> Option<(String, Vec<(String, String)>)> {
        MediaType::parse(s).map(|m| (m.essence(), m.params))
    }

    fn params(pairs: &[Param]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    type Param<'a> = (&'a str, &'a str);

    #[test]
    fn parses_media_types() {
        let cases: &[(&str, &str, &[Param])] = &[
            ("application/json", "application/json", &[]),
            (
                "Application/JSON; Charset=UTF-8",
                "application/json",
                &[("charset", "UTF-8")],
            ),
            (
                "text/plain;charset=\"utf-8\"",
                "text/plain",
                &[("charset", "utf-8")],
            ),
            (
                "multipart/form-data; boundary=\"a b\\\"c\"",
                "multipart/form-data",
                &[("boundary", "a b\"c")],
            ),
            (
                "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxk",
                "multipart/form-data",
                &[("boundary", "----WebKitFormBoundary7MA4YWxk")],
            ),
            (" \ttext/plain \t", "text/plain", &[]),
            ("text/plain;", "text/plain", &[]),
            ("text/plain ; ; a=b ;", "text/plain", &[("a", "b")]),
            ("text/plain; a=\"\"", "text/plain", &[("a", "")]),
            (
                "text/plain; a=\"caf\u{e9}\"",
                "text/plain",
                &[("a", "caf\u{e9}")],
            ),
            (
                "application/vnd.api+json; ext=\"a;b=c\"",
                "application/vnd.api+json",
                &[("ext", "a;b=c")],
            ),
        ];
        for (input, essence, expected) in cases {
            assert_eq!(
                media(input),
                Some(((*essence).to_owned(), params(expected))),
                "{input:?}"
            );
        }
    }

    #[test]
    fn refuses_malformed_media_types() {
        for input in [
            "",
            " ",
            "text",
            "text/",
            "/plain",
            "text /plain",
            "text/ plain",
            "text/plain/x",
            "text/plain x",
            "text/plain; charset",
            "text/plain; charset=",
            "text/plain; charset = utf-8",
            "text/plain; charset= utf-8",
            "text/plain; a=\"unterminated",
            "text/plain; a=b c",
            "text/plain; a=\"b\"c",
            "text/plain; a=1; A=2",
            "text/plain; a=\"\x01\"",
            "text/plain; a=\"\\\x01\"",
            "text/plain\0",
            "t\u{eb}xt/plain",
            "*/*",
            "text/*",
            "*/plain",
        ] {
            assert_eq!(MediaType::parse(input), None, "{input:?}");
        }
    }

    #[test]
    fn recognises_json_media_types() {
        for (input, json) in [
            ("application/json", true),
            ("APPLICATION/JSON; charset=utf-8", true),
            ("application/problem+json", true),
            ("application/vnd.api+json", true),
            ("text/plain", false),
            ("text/json", false),
            ("application/jsonp", false),
            ("application/json-seq", false),
            ("application/+json", false),
            ("application/x-www-form-urlencoded", false),
        ] {
            let parsed = MediaType::parse(input);
            assert_eq!(parsed.map(|m| m.is_json()), Some(json), "{input:?}");
        }
    }

    #[test]
    fn params_are_found_by_any_case() {
        let parsed = MediaType::parse("multipart/form-data; BOUNDARY=xyz");
        assert_eq!(
            parsed.as_ref().and_then(|m| m.param("boundary")),
            Some("xyz")
        );
        assert_eq!(
            parsed.as_ref().and_then(|m| m.param("Boundary")),
            Some("xyz")
        );
        assert_eq!(parsed.as_ref().and_then(|m| m.param("charset")), None);
    }

    #[test]
    fn parses_media_ranges() {
        for input in [
            "*/*",
            "application/*",
            "text/plain; charset=utf-8",
            "Text/*",
        ] {
            assert!(MediaRange::parse(input).is_some(), "{input:?}");
        }
        for input in ["*/json", "*", "", "text/", "application/*; x"] {
            assert_eq!(MediaRange::parse(input), None, "{input:?}");
        }
    }

    fn selected(declared: &[&str], request: &str) -> Option<usize> {
        let declared: Vec<MediaRange> = declared
            .iter()
            .map(|d| MediaRange::parse(d).unwrap_or_else(|| panic!("bad range {d:?}")))
            .collect();
        let request = MediaType::parse(request).unwrap_or_else(|| panic!("bad type {request:?}"));
        select(&declared, &request)
    }

    #[test]
    fn selects_the_most_specific_declared_range() {
        let declared = [
            "*/*",
            "text/*",
            "text/plain",
            "text/plain; charset=utf-8",
            "application/json",
        ];
        let cases = [
            ("text/plain; charset=UTF-8", Some(3)),
            ("text/plain;charset=\"utf-8\"", Some(3)),
            ("text/plain; charset=latin1", Some(2)),
            ("text/plain", Some(2)),
            ("TEXT/PLAIN", Some(2)),
            ("text/html", Some(1)),
            ("image/png", Some(0)),
            ("application/json", Some(4)),
            ("application/json; charset=utf-8", Some(4)),
            ("application/merge-patch+json", Some(0)),
        ];
        for (request, expected) in cases {
            assert_eq!(selected(&declared, request), expected, "{request:?}");
        }
    }

    #[test]
    fn selection_only_admits_what_is_declared() {
        let cases: &[(&[&str], &str, Option<usize>)] = &[
            (&["application/json"], "application/merge-patch+json", None),
            (
                &["application/json", "application/*"],
                "application/merge-patch+json",
                Some(1),
            ),
            (&["application/json"], "text/plain", None),
            (&["text/plain; charset=utf-8"], "text/plain", None),
            (
                &["text/plain; charset=utf-8"],
                "text/plain; charset=latin1",
                None,
            ),
            // Only charset compares case-insensitively.
            (
                &["text/plain; format=flowed"],
                "text/plain; format=Flowed",
                None,
            ),
            (
                &["text/*; charset=utf-8", "text/plain"],
                "text/plain; charset=utf-8",
                Some(1),
            ),
            (
                &[
                    "text/plain; charset=utf-8",
                    "text/plain; charset=utf-8; format=flowed",
                ],
                "text/plain; format=flowed; charset=utf-8",
                Some(1),
            ),
            (
                &["application/json", "Application/JSON"],
                "application/json",
                Some(0),
            ),
            (
                &["multipart/form-data"],
                "multipart/form-data; boundary=x",
                Some(0),
            ),
            (&[], "application/json", None),
        ];
        for (declared, request, expected) in cases {
            assert_eq!(
                selected(declared, request),
                *expected,
                "{declared:?} {request:?}"
            );
        }
    }

    // --- JSON --------------------------------------------------------------------------

    fn json_at(depth: usize, body: &str) -> Result<Value, BodyError> {
        parse_json(body.as_bytes(), &JsonLimits { max_depth: depth })
    }

    fn nested(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn depth_is_counted_exactly() {
        let too_deep = |limit| Err(BodyError::TooDeep { limit });
        let cases: &[(usize, &str, bool)] = &[
            (0, "1", true),
            (0, "\"[[{\"", true),
            (0, "[]", false),
            (1, "[1, 2, []]", false),
            (2, "[1, 2, []]", true),
            (2, "{\"a\": [1], \"b\": {}}", true),
            (1, "{\"a\": [1], \"b\": {}}", false),
            (1, "[\"[[[\", \"{{\"]", true),
            (1, "[\"\\\"[[\"]", true),
            (1, "[\"\\\\\", [1]]", false),
            (1, "[\"\\\\\\\"[\"]", true),
        ];
        for (limit, body, passes) in cases {
            let result = json_at(*limit, body);
            if *passes {
                assert!(result.is_ok(), "{body:?} at {limit}: {result:?}");
            } else {
                assert_eq!(result, too_deep(*limit), "{body:?} at {limit}");
            }
        }
        assert!(json_at(64, &nested(64)).is_ok());
        assert_eq!(json_at(64, &nested(65)), too_deep(64));
    }

    #[test]
    fn limits_above_serde_jsons_are_capped_and_reported_as_depth() {
        assert!(json_at(1000, &nested(127)).is_ok());
        assert_eq!(
            json_at(1000, &nested(128)),
            Err(BodyError::TooDeep { limit: 127 })
        );
        assert_eq!(
            json_at(1000, &nested(100_000)),
            Err(BodyError::TooDeep { limit: 127 })
        );
    }

    #[test]
    fn parses_valid_json() {
        assert_eq!(
            json_at(
                8,
                "{\"a\": [1, 2.5, \"x\", null, true], \"b\": {\"c\": \"\\u00e9\"}}"
            ),
            Ok(json!({"a": [1, 2.5, "x", null, true], "b": {"c": "\u{e9}"}}))
        );
        assert_eq!(json_at(8, " \r\n\t\"s\" \n"), Ok(json!("s")));
        // Duplicates are the anomaly checks' business; serde_json keeps the last.
        assert_eq!(json_at(8, "{\"a\":1,\"a\":2}"), Ok(json!({"a": 2})));
    }

    #[test]
    fn invalid_json_reports_a_position() {
        let cases: &[(&[u8], usize, usize)] = &[
            (b"", 1, 0),
            (b"{\"a\":1,}", 1, 8),
            (b"{\"a\":1}\n  x", 2, 3),
            (b"{}{}", 1, 3),
            (b"[1]\n]", 2, 1),
            (b"\"\xff\"", 1, 2),
            (b"\"\\ud800\"", 1, 8),
            (b"\xef\xbb\xbf{}", 1, 1),
            (b"1e999", 1, 5),
            (b"[01]", 1, 3),
            (b"{'a':1}", 1, 2),
            (b"[1,\n2,\n", 3, 0),
        ];
        for (body, line, column) in cases {
            assert_eq!(
                parse_json(body, &JsonLimits { max_depth: 8 }),
                Err(BodyError::InvalidJson {
                    line: *line,
                    column: *column
                }),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    // --- forms -------------------------------------------------------------------------

    fn spec() -> FormSpec {
        FormSpec {
            fields: BTreeMap::from([
                ("age".to_owned(), FieldShape::Scalar(Types::INTEGER)),
                ("name".to_owned(), FieldShape::Scalar(Types::STRING)),
                ("tags".to_owned(), FieldShape::Array(Types::STRING)),
                ("ids".to_owned(), FieldShape::Array(Types::INTEGER)),
                ("meta".to_owned(), FieldShape::Scalar(Types::OBJECT)),
                ("photo".to_owned(), FieldShape::Scalar(Types::STRING)),
            ]),
            additional: Types::ANY,
        }
    }

    fn form(body: &str) -> Result<Value, BodyError> {
        parse_form(body.as_bytes(), &spec(), 8)
    }

    #[test]
    fn converts_form_fields_by_their_types() {
        let cases = [
            ("", json!({})),
            ("age=42&name=42", json!({"age": 42, "name": "42"})),
            ("age=forty", json!({"age": "forty"})),
            ("name=a+b%20c%2Bd", json!({"name": "a b c+d"})),
            ("na%6De=x", json!({"name": "x"})),
            ("name=caf%C3%A9", json!({"name": "caf\u{e9}"})),
            ("name=%252F", json!({"name": "%2F"})),
            ("name=a=b", json!({"name": "a=b"})),
            ("name", json!({"name": ""})),
            ("name=", json!({"name": ""})),
            ("&&name=x&", json!({"name": "x"})),
            ("other=7", json!({"other": "7"})),
            ("tags=a", json!({"tags": ["a"]})),
            ("tags=a&tags=b&tags=a", json!({"tags": ["a", "b", "a"]})),
            ("ids=1&age=2&ids=x", json!({"ids": [1, "x"], "age": 2})),
            ("a;b=1", json!({"a;b": "1"})),
        ];
        for (body, expected) in cases {
            assert_eq!(form(body), Ok(expected), "{body:?}");
        }
    }

    #[test]
    fn refuses_bad_forms() {
        let repeated = |name: Option<&str>| BodyError::RepeatedField {
            name: name.map(str::to_owned),
        };
        let cases = [
            ("age=1&age=2", repeated(Some("age"))),
            ("name=a&na%6De=b", repeated(Some("name"))),
            ("secret=a&secret=b", repeated(None)),
            ("name=%", BodyError::InvalidEncoding),
            ("name=%4", BodyError::InvalidEncoding),
            ("name=%zz", BodyError::InvalidEncoding),
            ("na%g0me=x", BodyError::InvalidEncoding),
            ("name=%ff", BodyError::InvalidEncoding),
            ("name=%C3", BodyError::InvalidEncoding),
        ];
        for (body, expected) in cases {
            assert_eq!(form(body), Err(expected), "{body:?}");
        }
        assert_eq!(
            parse_form(b"name=\xff", &spec(), 8),
            Err(BodyError::InvalidEncoding)
        );
    }

    #[test]
    fn reasons_never_echo_undeclared_names() {
        let reason = form("x%3Cscript%3E=1&x%3Cscript%3E=2").map_err(|e| e.reason());
        assert_eq!(
            reason,
            Err("A field is given more than once but is not a list".to_owned())
        );
        assert_eq!(
            form("age=1&age=2").map_err(|e| e.reason()),
            Err("The field 'age' is given more than once but is not a list".to_owned())
        );
    }

    // --- multipart ---------------------------------------------------------------------

    const LIMITS: JsonLimits = JsonLimits { max_depth: 4 };
    const CAPS: JsonCaps = JsonCaps {
        max_members: 3,
        max_containers: 8,
    };
    const MAX_PARTS: usize = 20;

    /// Joins lines with CRLF, as a browser sends them.
    fn crlf(lines: &[&str]) -> Vec<u8> {
        lines.join("\r\n").into_bytes()
    }

    fn multipart(body: &[u8], boundary: &str) -> Result<Value, BodyError> {
        parse_multipart(body, boundary, &spec(), &LIMITS, MAX_PARTS, CAPS)
    }

    #[test]
    fn reads_text_file_and_json_parts() {
        let body = crlf(&[
            "--XyZ",
            "Content-Disposition: form-data; name=\"age\"",
            "",
            "42",
            "--XyZ",
            "content-disposition: FORM-DATA; name=name",
            "X-Ignored: yes",
            "",
            "line one",
            "line two",
            "--XyZ",
            "Content-Disposition: form-data; name=\"photo\"; filename=\"cat.png\"",
            "Content-Type: image/png",
            "",
            "\u{1}PNG binary --XyZ- not a delimiter",
            "--XyZ",
            "Content-Disposition: form-data; name=\"meta\"",
            "Content-Type: application/json; charset=utf-8",
            "",
            "{\"a\": [1]}",
            "--XyZ",
            "Content-Disposition: form-data; name=\"tags\"",
            "Content-Type: text/plain; charset=UTF-8",
            "",
            "x",
            "--XyZ",
            "Content-Disposition: form-data; name=\"tags\"",
            "",
            "",
            "--XyZ",
            "Content-Disposition: form-data; name=\"ids\"",
            "Content-Type: application/json",
            "",
            "[7]",
            "--XyZ",
            "Content-Disposition: form-data; name=\"blob\"",
            "Content-Type: application/octet-stream",
            "",
            "\u{0}\u{1}",
            "--XyZ--",
            "",
        ]);
        assert_eq!(
            multipart(&body, "XyZ"),
            Ok(json!({
                "age": 42,
                "name": "line one\r\nline two",
                "photo": "",
                "meta": {"a": [1]},
                "tags": ["x", ""],
                "ids": [[7]],
                "blob": "",
            }))
        );
    }

    #[test]
    fn accepts_browser_framing_variants() {
        let cases: &[(&[u8], &str, Value)] = &[
            (b"--b--", "b", json!({})),
            (b"--b--\r\n", "b", json!({})),
            (
                b"--a b:c\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--a b:c--",
                "a b:c",
                json!({"x": "1"}),
            ),
            (
                b"--b\r\nContent-Disposition: form-data; name=\"caf\xc3\xa9\"\r\n\r\n\r\n--b--",
                "b",
                json!({"caf\u{e9}": ""}),
            ),
            (
                b"--b\r\nContent-Disposition: form-data; name=\"f\"; filename*=utf-8''a%20b\r\n\r\nzz\r\n--b--",
                "b",
                json!({"f": ""}),
            ),
        ];
        for (body, boundary, expected) in cases {
            assert_eq!(
                multipart(body, boundary),
                Ok(expected.clone()),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn boundary_comes_unquoted_from_the_content_type() {
        let media = MediaType::parse("multipart/form-data; boundary=\"----=_Part 1\"");
        let boundary = media.as_ref().and_then(|m| m.param("boundary"));
        assert_eq!(boundary, Some("----=_Part 1"));
        let body = crlf(&[
            "------=_Part 1",
            "Content-Disposition: form-data; name=\"age\"",
            "",
            "7",
            "------=_Part 1--",
        ]);
        assert_eq!(
            multipart(&body, boundary.unwrap_or_default()),
            Ok(json!({"age": 7}))
        );
    }

    #[test]
    fn refuses_malformed_multipart() {
        let part = "Content-Disposition: form-data; name=\"x\"";
        let malformed: &[&[u8]] = &[
            b"",
            b"--b",
            b"--b\r\n",
            // Missing final boundary.
            b"--b\r\nContent-Disposition: form-data; name=x\r\n\r\n1",
            b"--b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--b",
            b"--b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--b\r\n",
            // Preamble, epilogue, transport padding.
            b"preamble\r\n--b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--b--",
            b"\r\n--b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--b--",
            b"--b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--b--\r\nepilogue",
            b"--b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--b--\r\n\r\n",
            b"--b \r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--b--",
            // The boundary followed by something else inside a part.
            b"--b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--bb\r\n--b--",
            // LF-only line endings, bare CR in headers.
            b"--b\nContent-Disposition: form-data; name=x\n\n1\n--b--",
            b"--b\r\nContent-Disposition: form-data; name=x\n\n1\r\n--b--",
            b"--b\r\nContent-Disposition: form-data;\rname=x\r\n\r\n1\r\n--b--",
            // Headers.
            b"--b\r\n\r\n1\r\n--b--",
            b"--b\r\nContent-Type: text/plain\r\n\r\n1\r\n--b--",
            b"--b\r\nContent-Disposition: form-data\r\n\r\n1\r\n--b--",
            b"--b\r\nContent-Disposition: attachment; name=x\r\n\r\n1\r\n--b--",
            b"--b\r\nContent-Disposition: form-data; name=x; name=y\r\n\r\n1\r\n--b--",
            // RFC 7578 §4.2: no extended `name*`, with or without `name`.
            b"--b\r\nContent-Disposition: form-data; name=x; name*=utf-8''y\r\n\r\n1\r\n--b--",
            b"--b\r\nContent-Disposition: form-data; name*=utf-8''y\r\n\r\n1\r\n--b--",
            b"--b\r\nContent-Disposition: form-data; name=x\r\nContent-Disposition: form-data; name=y\r\n\r\n1\r\n--b--",
            b"--b\r\nContent-Disposition: form-data; name=\"x\\\"; name=y; z=\\\"\"\r\n\r\n1\r\n--b--",
            b"--b\r\nContent-Disposition: form-data; name=\"x\"; filename=\"C:\\a.txt\"\r\n\r\n1\r\n--b--",
            b"--b\r\nContent-Disposition : form-data; name=x\r\n\r\n1\r\n--b--",
            b"--b\r\nContent-Disposition: form-data;\r\n name=x\r\n\r\n1\r\n--b--",
            b"--b\r\nContent-Disposition: form-data; name=x\r\nContent-Type: text/plain\r\nContent-Type: text/plain\r\n\r\n1\r\n--b--",
            b"--b\r\nContent-Disposition: form-data; name=x\r\nContent-Type: text\r\n\r\n1\r\n--b--",
            b"--b\r\nContent-Disposition: form-data; name=x\r\nContent-Transfer-Encoding: base64\r\n\r\nMQ==\r\n--b--",
            b"--b\r\nContent-Disposition: form-data; name=x\r\nNo-Colon\r\n\r\n1\r\n--b--",
            b"--b\r\nContent-Disposition: form-data; name=\"x\xff\"\r\n\r\n1\r\n--b--",
        ];
        for body in malformed {
            assert_eq!(
                multipart(body, "b"),
                Err(BodyError::MalformedMultipart),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        let well_formed = crlf(&["--b", part, "", "1", "--b--"]);
        assert_eq!(multipart(&well_formed, "b"), Ok(json!({"x": "1"})));
    }

    #[test]
    fn refuses_bad_part_contents() {
        let with = |headers: &str, content: &[u8]| {
            [
                b"--b\r\nContent-Disposition: form-data; name=",
                headers.as_bytes(),
                b"\r\n\r\n",
                content,
                b"\r\n--b--",
            ]
            .concat()
        };
        let cases = [
            (with("x", b"\xff"), BodyError::InvalidEncoding),
            (
                with(
                    "x\r\nContent-Type: text/plain; charset=iso-8859-1",
                    b"caf\xe9",
                ),
                BodyError::InvalidEncoding,
            ),
            (
                with("x\r\nContent-Type: application/json", b"{\"a\":}"),
                BodyError::InvalidJson { line: 1, column: 6 },
            ),
            (
                with("x\r\nContent-Type: application/json", b"[[[[[1]]]]]"),
                BodyError::TooDeep { limit: 4 },
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(
                multipart(&body, "b"),
                Err(expected),
                "{:?}",
                String::from_utf8_lossy(&body)
            );
        }
        let repeated = crlf(&[
            "--b",
            "Content-Disposition: form-data; name=\"age\"",
            "",
            "1",
            "--b",
            "Content-Disposition: form-data; name=\"age\"; filename=\"a\"",
            "",
            "2",
            "--b--",
        ]);
        assert_eq!(
            multipart(&repeated, "b"),
            Err(BodyError::RepeatedField {
                name: Some("age".to_owned())
            })
        );
    }

    #[test]
    fn refuses_invalid_boundaries() {
        let long = "a".repeat(71);
        for boundary in [
            "",
            "a ",
            "a\"b",
            "a;b",
            "a\r\nb",
            "caf\u{e9}",
            long.as_str(),
        ] {
            assert_eq!(
                multipart(b"--x--", boundary),
                Err(BodyError::MissingBoundary),
                "{boundary:?}"
            );
        }
        let longest = "a".repeat(70);
        let body = format!("--{longest}--");
        assert_eq!(multipart(body.as_bytes(), &longest), Ok(json!({})));
    }

    #[test]
    fn counts_parts() {
        let body_with = |parts: usize| {
            let mut body = Vec::new();
            for _ in 0..parts {
                body.extend_from_slice(
                    b"--b\r\nContent-Disposition: form-data; name=\"tags\"\r\n\r\nt\r\n",
                );
            }
            body.extend_from_slice(b"--b--");
            body
        };
        let at_limit = multipart(&body_with(MAX_PARTS), "b");
        assert_eq!(
            at_limit
                .ok()
                .and_then(|v| v.get("tags").and_then(Value::as_array).map(Vec::len)),
            Some(MAX_PARTS)
        );
        assert_eq!(
            multipart(&body_with(MAX_PARTS + 1), "b"),
            Err(BodyError::TooManyParts { limit: MAX_PARTS })
        );
        assert_eq!(
            BodyError::TooManyParts { limit: 1 }.rule(),
            RuleId::LimitMultipartParts
        );
    }

    #[test]
    fn counts_form_fields() {
        let fields = |n: usize| vec!["a=1"; n].join("&");
        assert!(parse_form(fields(8).as_bytes(), &spec(), 8)
            .is_err_and(|e| matches!(e, BodyError::RepeatedField { .. })));
        let distinct = |n: usize| {
            (0..n)
                .map(|i| format!("f{i}=1"))
                .collect::<Vec<_>>()
                .join("&&")
        };
        assert!(parse_form(distinct(8).as_bytes(), &spec(), 8).is_ok());
        let refused = parse_form(distinct(9).as_bytes(), &spec(), 8);
        assert_eq!(refused, Err(BodyError::TooManyFields { limit: 8 }));
        assert_eq!(
            BodyError::TooManyFields { limit: 8 }.rule(),
            RuleId::LimitFormFields
        );
    }

    fn strict(body: &str) -> Result<Value, BodyError> {
        parse_request_json(body.as_bytes(), &LIMITS, CAPS)
    }

    #[test]
    fn request_json_refuses_duplicate_keys_at_any_depth() {
        assert_eq!(
            strict(r#"{"role": "user", "role": "admin"}"#),
            Err(BodyError::DuplicateKey {
                line: 1,
                column: 23
            })
        );
        assert!(matches!(
            strict(r#"[{"a": {"b": 1, "b": 1}}]"#),
            Err(BodyError::DuplicateKey { .. })
        ));
        // The same key in different objects, and keys that differ in case, are not repeats.
        assert_eq!(
            strict(r#"{"a": {"x": 1}, "b": {"x": 1}, "A": 2}"#),
            Ok(json!({"a": {"x": 1}, "b": {"x": 1}, "A": 2}))
        );
        assert_eq!(
            BodyError::DuplicateKey { line: 1, column: 1 }.rule(),
            RuleId::BodyDuplicateKey
        );
        // Responses keep serde_json's reading (redaction re-serialises them).
        assert_eq!(
            parse_json(br#"{"a": 1, "a": 2}"#, &LIMITS),
            Ok(json!({"a": 2}))
        );
    }

    #[test]
    fn request_json_reads_what_serde_json_reads() {
        for text in [
            r#"{"a": [-2, 3.5, "x\"]"], "b": {"c": null, "d": true}}"#,
            r#""\u00e9""#,
            "18446744073709551615",
            "-9223372036854775808",
            "1e300",
            "[]",
        ] {
            let expected: Value = serde_json::from_str(text).unwrap();
            assert_eq!(strict(text), Ok(expected), "{text}");
        }
        for bad in ["{\"a\": 1,}", "[1] x", "\u{feff}[]", "1e999", r#""\ud800""#] {
            assert!(
                matches!(strict(bad), Err(BodyError::InvalidJson { .. })),
                "{bad}"
            );
        }
        assert_eq!(strict("[[[[[1]]]]]"), Err(BodyError::TooDeep { limit: 4 }));
    }

    /// Regression: a 1 MB body of nested one-key objects parsed into ~95 MB of B-tree
    /// leaves (and 23x the time of a body a tenth its size, the allocator thrashing).
    #[test]
    fn request_json_counts_containers_over_the_whole_body() {
        assert!(strict(r#"[{"a": [1]}, {"a": [1]}, {"a": [1]}]"#).is_ok());
        for many in [
            r#"[{"a": []}, {"a": []}, {"a": []}, {"a": []}]"#,
            r#"[[[[1]]], [[[1]]], [[[1]]]]"#,
        ] {
            assert_eq!(
                strict(many),
                Err(BodyError::TooManyContainers { limit: 8 }),
                "{many}"
            );
        }
        // A multipart body's JSON parts share the count.
        let part = |name: &str| {
            format!(
                "--b\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\
                 Content-Type: application/json\r\n\r\n[[[1]], [[1]]]\r\n"
            )
        };
        let spec = FormSpec {
            fields: BTreeMap::new(),
            additional: Types::ANY,
        };
        let one = format!("{}--b--\r\n", part("x"));
        assert!(parse_multipart(one.as_bytes(), "b", &spec, &LIMITS, MAX_PARTS, CAPS).is_ok());
        let body = format!("{}{}--b--\r\n", part("x"), part("y"));
        assert_eq!(
            parse_multipart(body.as_bytes(), "b", &spec, &LIMITS, MAX_PARTS, CAPS),
            Err(BodyError::TooManyContainers { limit: 8 })
        );
        assert_eq!(
            BodyError::TooManyContainers { limit: 8 }.rule(),
            RuleId::LimitJsonContainers
        );
    }

    #[test]
    fn request_json_counts_members_per_container() {
        assert!(strict(r#"{"a": [1, 2, 3], "b": 1, "c": [[1, 2, 3]]}"#).is_ok());
        for wide in [
            r#"[1, 2, 3, 4]"#,
            r#"{"a": 1, "b": 2, "c": 3, "d": 4}"#,
            r#"{"a": [[1, 2, 3, 4]]}"#,
        ] {
            assert_eq!(
                strict(wide),
                Err(BodyError::TooManyMembers { limit: 3 }),
                "{wide}"
            );
        }
    }

    // --- robustness --------------------------------------------------------------------

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
