//! Schema learning: the JSON bodies of an undeclared endpoint merged into a bounded JSON
//! Schema — types, `required` by frequency, formats, small enums, numeric and length
//! ranges, array items, nesting — so that `apiguard learn` can propose it as OpenAPI.
//!
//! Only shapes are kept, never values, with two exceptions stated here because they are
//! what can leave the VM: the smallest and largest number of a numeric field, and the
//! values of a string field that behaves like a vocabulary — at most [`MAX_ENUM`] distinct
//! values of at most [`MAX_ENUM_CHARS`] characters, each seen [`ENUM_REPEATS`] times on
//! average, never for a field whose name looks like a secret ([`secret_name`]) or an
//! identifier, nor for values that look like identifiers, dates, addresses or URLs. A
//! field whose name looks like a secret keeps only its types: no range, length, format or
//! enum, at any depth below it.
//!
//! Every pass is linear in what it reads, with explicit caps: [`MAX_NODES`] schema nodes
//! per schema, [`MAX_DEPTH`] levels, [`MAX_PROPERTIES`] properties per object and names of
//! at most [`MAX_NAME`] bytes; what does not fit leaves its object open (no `required`
//! claim is made about it).

use std::collections::BTreeMap;

use serde_json::{json, Map, Number, Value};

use super::segment::{classify, Kind};
use crate::contract::body::{parse_json, JsonLimits, MediaType};

/// Schema nodes (a value's shape: a property, an array's items) per learned schema.
pub(crate) const MAX_NODES: usize = 48;
/// Nesting learned: deeper values count by their type only.
pub(crate) const MAX_DEPTH: usize = 6;
/// Properties learned per object.
pub(crate) const MAX_PROPERTIES: usize = 24;
/// Property names longer than this are not learned (they are data, not names).
pub(crate) const MAX_NAME: usize = 64;
/// Distinct values an enum may have.
pub(crate) const MAX_ENUM: usize = 8;
/// Longer strings are never enum values.
pub(crate) const MAX_ENUM_CHARS: usize = 32;
/// Samples per distinct value (on average) before values are taken for an enum: a
/// vocabulary repeats, data keeps being new.
pub(crate) const ENUM_REPEATS: u32 = 4;
/// Media types kept per endpoint and direction.
const MAX_MEDIA: usize = 4;

/// JSON types, as bits.
const NULL: u8 = 1;
const BOOLEAN: u8 = 1 << 1;
const INTEGER: u8 = 1 << 2;
const NUMBER: u8 = 1 << 3;
const STRING: u8 = 1 << 4;
const ARRAY: u8 = 1 << 5;
const OBJECT: u8 = 1 << 6;
const TYPES: [(u8, &str); 7] = [
    (NULL, "null"),
    (BOOLEAN, "boolean"),
    (INTEGER, "integer"),
    (NUMBER, "number"),
    (STRING, "string"),
    (ARRAY, "array"),
    (OBJECT, "object"),
];

/// A string format, when every string of a field had it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Format {
    /// No string seen yet.
    #[default]
    Unseen,
    Is(&'static str),
    /// Strings of different forms, or of none.
    Mixed,
}

/// The enum candidates of a string field.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Values {
    /// Each distinct value with how often it came.
    Open(BTreeMap<Box<str>, u32>),
    /// Not an enum: too many values, a value too long or like an identifier, a secret.
    Closed,
}

impl Default for Values {
    fn default() -> Self {
        Values::Open(BTreeMap::new())
    }
}

/// The learned shape of one value position.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Shape {
    types: u8,
    /// The field's name looks like a secret: only types are learned below it.
    secret: bool,
    /// Smallest and largest number.
    range: Option<(Number, Number)>,
    /// Shortest and longest string, in characters.
    length: Option<(u64, u64)>,
    format: Format,
    values: Values,
    items: Option<Box<Shape>>,
    /// Objects seen here: a property is required when it was in all of them.
    objects: u32,
    properties: BTreeMap<Box<str>, (u32, Shape)>,
    /// Properties (or items) beyond the caps were seen and not learned.
    open: bool,
}

/// A learned schema: the merged shapes of the bodies it was fed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schema {
    root: Shape,
    /// Nodes in `root`, at most [`MAX_NODES`].
    nodes: usize,
}

impl Schema {
    /// The shape of one JSON value.
    pub fn of(value: &Value) -> Schema {
        let mut schema = Schema {
            root: Shape::default(),
            nodes: 1,
        };
        let mut budget = MAX_NODES - 1;
        schema.root.observe(value, 0, &mut budget);
        schema.nodes = MAX_NODES - budget;
        schema
    }

    /// The shape of a JSON body; `None` when it is not JSON, or nests deeper than
    /// `max_depth` (the policy's `limits.max_json_depth`: the parser's own cap).
    pub(crate) fn of_body(bytes: &[u8], max_depth: usize) -> Option<Schema> {
        let value = parse_json(bytes, &JsonLimits { max_depth }).ok()?;
        Some(Schema::of(&value))
    }

    /// Merges another schema into this one, within [`MAX_NODES`].
    pub fn merge(&mut self, other: &Schema) {
        if self.nodes == 0 {
            *self = other.clone();
            return;
        }
        let mut budget = MAX_NODES.saturating_sub(self.nodes);
        self.root.merge(&other.root, &mut budget);
        self.nodes = MAX_NODES - budget;
    }

    /// Schema nodes held, at most [`MAX_NODES`].
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn nodes(&self) -> usize {
        self.nodes
    }

    /// The schema as JSON Schema (the OpenAPI 3.1 dialect: `type` lists for mixed types).
    pub fn to_json(&self) -> Value {
        self.root.to_json()
    }

    /// Reads back what [`Schema::to_json`] wrote (from events), so that schemas of
    /// several workers and reports merge by [`Schema::merge`]. Unknown keywords are
    /// ignored; the caps hold whatever the input.
    pub fn from_json(value: &Value) -> Schema {
        let mut budget = MAX_NODES - 1;
        let root = Shape::read(value, 0, &mut budget, false);
        Schema {
            root,
            nodes: MAX_NODES - budget,
        }
    }
}

impl Shape {
    fn observe(&mut self, value: &Value, depth: usize, budget: &mut usize) {
        match value {
            Value::Null => self.types |= NULL,
            Value::Bool(_) => self.types |= BOOLEAN,
            Value::Number(n) => {
                self.types |= if n.is_f64() { NUMBER } else { INTEGER };
                if !self.secret {
                    self.widen_range(n, n);
                }
            }
            Value::String(s) => {
                self.types |= STRING;
                if !self.secret {
                    self.observe_string(s);
                }
            }
            Value::Array(items) => {
                self.types |= ARRAY;
                if depth >= MAX_DEPTH {
                    self.open = true;
                    return;
                }
                let secret = self.secret;
                if let Some(shape) = self.child_items(budget, secret) {
                    for item in items {
                        shape.observe(item, depth + 1, budget);
                    }
                }
            }
            Value::Object(members) => {
                self.types |= OBJECT;
                self.objects = self.objects.saturating_add(1);
                if depth >= MAX_DEPTH {
                    self.open = true;
                    return;
                }
                for (name, member) in members {
                    let secret = self.secret || secret_name(name);
                    let kept = self.child_property(name, budget, secret, id_name(name));
                    if let Some((count, shape)) = kept {
                        *count = count.saturating_add(1);
                        shape.observe(member, depth + 1, budget);
                    }
                }
            }
        }
    }

    fn observe_string(&mut self, s: &str) {
        let chars = s.chars().count() as u64;
        self.length = Some(match self.length {
            Some((min, max)) => (min.min(chars), max.max(chars)),
            None => (chars, chars),
        });
        let format = format_of(s);
        self.format = match (self.format, format) {
            (Format::Unseen, Some(f)) => Format::Is(f),
            (Format::Is(a), Some(b)) if a == b => Format::Is(a),
            _ => Format::Mixed,
        };
        let data_like = format.is_some()
            || chars as usize > MAX_ENUM_CHARS
            || !matches!(classify(s), Kind::Word);
        match &mut self.values {
            Values::Open(_) if data_like => self.values = Values::Closed,
            Values::Open(values) => {
                if let Some(count) = values.get_mut(s) {
                    *count = count.saturating_add(1);
                } else if values.len() < MAX_ENUM {
                    values.insert(s.into(), 1);
                } else {
                    self.values = Values::Closed;
                }
            }
            Values::Closed => {}
        }
    }

    fn widen_range(&mut self, low: &Number, high: &Number) {
        let less = |a: &Number, b: &Number| a.as_f64().unwrap_or(0.0) < b.as_f64().unwrap_or(0.0);
        self.range = Some(match self.range.take() {
            Some((min, max)) => (
                if less(low, &min) { low.clone() } else { min },
                if less(&max, high) { high.clone() } else { max },
            ),
            None => (low.clone(), high.clone()),
        });
    }

    /// The items' shape, made if the budget allows.
    fn child_items(&mut self, budget: &mut usize, secret: bool) -> Option<&mut Shape> {
        if self.items.is_none() {
            if *budget == 0 {
                self.open = true;
                return None;
            }
            *budget -= 1;
            self.items = Some(Box::new(Shape::marked(secret, false)));
        }
        self.items.as_deref_mut()
    }

    /// A property's count and shape, made if the caps allow.
    fn child_property(
        &mut self,
        name: &str,
        budget: &mut usize,
        secret: bool,
        id: bool,
    ) -> Option<&mut (u32, Shape)> {
        if !self.properties.contains_key(name) {
            if *budget == 0 || self.properties.len() >= MAX_PROPERTIES || name.len() > MAX_NAME {
                self.open = true;
                return None;
            }
            *budget -= 1;
            (self.properties).insert(name.into(), (0, Shape::marked(secret, id)));
        }
        self.properties.get_mut(name)
    }

    /// A new node: below a secret name (types only), or an identifier's (no enum).
    fn marked(secret: bool, id: bool) -> Shape {
        Shape {
            secret,
            values: if secret || id {
                Values::Closed
            } else {
                Values::default()
            },
            ..Shape::default()
        }
    }

    /// Nodes in this shape, itself included.
    fn size(&self) -> usize {
        let items = self.items.as_ref().map_or(0, |items| items.size());
        let properties: usize = self.properties.values().map(|(_, s)| s.size()).sum();
        1 + items + properties
    }

    fn merge(&mut self, other: &Shape, budget: &mut usize) {
        self.types |= other.types;
        self.secret |= other.secret;
        self.open |= other.open;
        if let Some((low, high)) = &other.range {
            self.widen_range(low, high);
        }
        if let Some((low, high)) = other.length {
            self.length = Some(match self.length {
                Some((min, max)) => (min.min(low), max.max(high)),
                None => (low, high),
            });
        }
        self.format = match (self.format, other.format) {
            (f, Format::Unseen) | (Format::Unseen, f) => f,
            (Format::Is(a), Format::Is(b)) if a == b => Format::Is(a),
            _ => Format::Mixed,
        };
        self.values = match (std::mem::take(&mut self.values), &other.values) {
            (Values::Open(mut mine), Values::Open(theirs)) if !self.secret => {
                for (value, count) in theirs {
                    let into = mine.entry(value.clone()).or_insert(0);
                    *into = into.saturating_add(*count);
                }
                if mine.len() > MAX_ENUM {
                    Values::Closed
                } else {
                    Values::Open(mine)
                }
            }
            _ => Values::Closed,
        };
        if self.secret {
            self.range = None;
            self.length = None;
            self.format = Format::Mixed;
        }
        self.objects = self.objects.saturating_add(other.objects);
        if let Some(theirs) = &other.items {
            match &mut self.items {
                Some(mine) => mine.merge(theirs, budget),
                None => self.adopt_items(theirs, budget),
            }
        }
        for (name, (count, theirs)) in &other.properties {
            match self.properties.get_mut(name) {
                Some((mine_count, mine)) => {
                    *mine_count = mine_count.saturating_add(*count);
                    mine.merge(theirs, budget);
                }
                None => self.adopt_property(name, *count, theirs, budget),
            }
        }
    }

    fn adopt_items(&mut self, items: &Shape, budget: &mut usize) {
        let size = items.size();
        if size <= *budget {
            *budget -= size;
            self.items = Some(Box::new(items.clone()));
        } else {
            self.open = true;
        }
    }

    fn adopt_property(&mut self, name: &str, count: u32, shape: &Shape, budget: &mut usize) {
        let size = shape.size();
        if size <= *budget && self.properties.len() < MAX_PROPERTIES {
            *budget -= size;
            self.properties.insert(name.into(), (count, shape.clone()));
        } else {
            self.open = true;
        }
    }

    /// The enum this field's values make, if they make one.
    fn enumeration(&self) -> Option<Vec<&str>> {
        let Values::Open(values) = &self.values else {
            return None;
        };
        let samples: u64 = values.values().map(|c| u64::from(*c)).sum();
        let repeated = samples >= u64::from(ENUM_REPEATS) * values.len() as u64;
        let only_strings = self.types == STRING;
        (only_strings && !values.is_empty() && repeated)
            .then(|| values.keys().map(AsRef::as_ref).collect())
    }

    fn to_json(&self) -> Value {
        let mut out = Map::new();
        // An integer field that also held fractions is a number.
        let types = if self.types & NUMBER != 0 {
            self.types & !INTEGER
        } else {
            self.types
        };
        let names: Vec<&str> = (TYPES.iter())
            .filter(|(bit, _)| types & bit != 0)
            .map(|(_, name)| *name)
            .collect();
        match names.as_slice() {
            [] => {}
            [one] => {
                out.insert("type".into(), json!(one));
            }
            many => {
                out.insert("type".into(), json!(many));
            }
        }
        if let (Some((min, max)), false) = (&self.range, self.secret) {
            out.insert("minimum".into(), Value::Number(min.clone()));
            out.insert("maximum".into(), Value::Number(max.clone()));
        }
        // A format says more than lengths, and lengths would refuse its other spellings
        // (fractions of seconds, offsets).
        let formatted = matches!(self.format, Format::Is(_));
        if let (Some((min, max)), false) = (self.length, self.secret || formatted) {
            out.insert("minLength".into(), json!(min));
            out.insert("maxLength".into(), json!(max));
        }
        if let (Format::Is(format), false) = (self.format, self.secret) {
            out.insert("format".into(), json!(format));
        }
        if let Some(values) = self.enumeration() {
            out.insert("enum".into(), json!(values));
        }
        if let Some(items) = &self.items {
            out.insert("items".into(), items.to_json());
        }
        if !self.properties.is_empty() {
            let properties: Map<String, Value> = (self.properties.iter())
                .map(|(name, (_, shape))| (name.to_string(), shape.to_json()))
                .collect();
            out.insert("properties".into(), Value::Object(properties));
            let required: Vec<&str> = (self.properties.iter())
                .filter(|(_, (count, _))| *count >= self.objects && self.objects > 0)
                .map(|(name, _)| name.as_ref())
                .collect();
            if !required.is_empty() {
                out.insert("required".into(), json!(required));
            }
        }
        Value::Object(out)
    }

    /// See [`Schema::from_json`]; `parent_secret`: below a secret name. A property listed in `required` counts as seen in both
    /// of two objects, another in one: merged with other schemas, it stays required only
    /// if every schema requires it.
    fn read(value: &Value, depth: usize, budget: &mut usize, parent_secret: bool) -> Shape {
        let mut shape = Shape {
            secret: parent_secret,
            ..Shape::default()
        };
        let names: Vec<&str> = match value.get("type") {
            Some(Value::String(name)) => vec![name.as_str()],
            Some(Value::Array(names)) => names.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        for name in names {
            if let Some((bit, _)) = TYPES.iter().find(|(_, n)| *n == name) {
                shape.types |= bit;
            }
        }
        let number = |key: &str| match value.get(key) {
            Some(Value::Number(n)) => Some(n.clone()),
            _ => None,
        };
        if let (Some(min), Some(max)) = (number("minimum"), number("maximum")) {
            shape.range = Some((min, max));
        }
        let length = |key: &str| value.get(key).and_then(Value::as_u64);
        if let (Some(min), Some(max)) = (length("minLength"), length("maxLength")) {
            shape.length = Some((min, max));
        }
        shape.format = match value.get("format").and_then(Value::as_str) {
            Some(format) => (FORMATS.iter())
                .find(|f| **f == format)
                .map_or(Format::Mixed, |f| Format::Is(f)),
            None if shape.types & STRING != 0 => Format::Mixed,
            None => Format::Unseen,
        };
        shape.values = match value.get("enum").and_then(Value::as_array) {
            Some(values) if values.len() <= MAX_ENUM => Values::Open(
                (values.iter().filter_map(Value::as_str))
                    .filter(|v| v.chars().count() <= MAX_ENUM_CHARS)
                    .map(|v| (v.into(), ENUM_REPEATS))
                    .collect(),
            ),
            _ => Values::Closed,
        };
        if depth >= MAX_DEPTH {
            return shape;
        }
        if let Some(items) = value.get("items") {
            if *budget > 0 {
                *budget -= 1;
                let items = Shape::read(items, depth + 1, budget, parent_secret);
                shape.items = Some(Box::new(items));
            } else {
                shape.open = true;
            }
        }
        if let Some(Value::Object(properties)) = value.get("properties") {
            shape.objects = 2;
            let required: Vec<&str> = (value.get("required").and_then(Value::as_array))
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            for (name, property) in properties {
                if *budget == 0 || shape.properties.len() >= MAX_PROPERTIES || name.len() > MAX_NAME
                {
                    shape.open = true;
                    break;
                }
                *budget -= 1;
                let count = if required.contains(&name.as_str()) {
                    2
                } else {
                    1
                };
                let secret = parent_secret || secret_name(name);
                let property = Shape::read(property, depth + 1, budget, secret);
                shape
                    .properties
                    .insert(name.as_str().into(), (count, property));
            }
        }
        shape
    }
}

/// The formats learned, by name.
const FORMATS: [&str; 6] = ["date-time", "date", "email", "uuid", "uri", "ipv4"];

/// The format of a string, when it obviously has one. One pass over its bytes.
fn format_of(s: &str) -> Option<&'static str> {
    if is_date_time(s.as_bytes()) {
        return Some("date-time");
    }
    match classify(s) {
        Kind::Date => return Some("date"),
        Kind::Email => return Some("email"),
        Kind::Uuid => return Some("uuid"),
        _ => {}
    }
    let url = s.starts_with("https://") || s.starts_with("http://");
    if url
        && !s
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Some("uri");
    }
    if s.len() <= 15 && s.parse::<std::net::Ipv4Addr>().is_ok() {
        return Some("ipv4");
    }
    None
}

/// RFC 3339: `2024-02-29T13:45:00Z`, with fractions and offsets.
fn is_date_time(bytes: &[u8]) -> bool {
    let digit = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_digit);
    let at = |i: usize, c: &[u8]| bytes.get(i).is_some_and(|b| c.contains(b));
    bytes.len() >= 20
        && bytes.len() <= 40
        && [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
            .into_iter()
            .all(digit)
        && at(4, b"-")
        && at(7, b"-")
        && at(10, b"Tt ")
        && at(13, b":")
        && at(16, b":")
        && (bytes.ends_with(b"Z") || bytes.ends_with(b"z") || at(bytes.len() - 6, b"+-"))
}

/// Whether a property's name says its value is an identifier, whose values are no
/// vocabulary (`id`, `user_id`, `userId`).
fn id_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower == "id" || lower.ends_with("_id") || name.ends_with("Id") || name.ends_with("ID")
}

/// Whether a property's name says its value is a secret or personal data whose values
/// (and their lengths and ranges) must not be learned.
fn secret_name(name: &str) -> bool {
    const SECRET: [&str; 19] = [
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "key",
        "auth",
        "card",
        "ssn",
        "cvv",
        "cvc",
        "credential",
        "session",
        "cookie",
        "iban",
        "otp",
        "signature",
        "pin",
        "salt",
    ];
    let lower = name.to_ascii_lowercase();
    SECRET.iter().any(|word| lower.contains(word))
}

/// What was learned of one undeclared operation: its bodies' schemas, the status classes
/// it answered with, the media types of its bodies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Learned {
    /// The JSON request bodies' schema.
    pub request: Option<Schema>,
    /// The JSON response bodies' schema (all statuses).
    pub response: Option<Schema>,
    /// Status classes seen: bit `n` for `nxx`.
    pub statuses: u8,
    /// Request media types (essence only).
    pub request_media: Vec<Box<str>>,
    /// Response media types (essence only).
    pub response_media: Vec<Box<str>>,
}

/// One exchange's contribution to a [`Learned`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sample {
    /// A request: its media type, and its body's shape when it was JSON and read.
    Request {
        /// The `content-type`'s `type/subtype`.
        media: Option<String>,
        /// The JSON body's shape.
        schema: Option<Schema>,
    },
    /// A response from the upstream.
    Response {
        /// Its status.
        status: u16,
        /// The `content-type`'s `type/subtype`.
        media: Option<String>,
        /// The JSON body's shape.
        schema: Option<Schema>,
    },
}

impl Learned {
    /// Adds one exchange's sample.
    pub fn add(&mut self, sample: &Sample) {
        let (media, schema, into, kinds) = match sample {
            Sample::Request { media, schema } => {
                (media, schema, &mut self.request, &mut self.request_media)
            }
            Sample::Response {
                status,
                media,
                schema,
            } => {
                if (100..600).contains(status) {
                    self.statuses |= 1 << (status / 100);
                }
                (media, schema, &mut self.response, &mut self.response_media)
            }
        };
        if let Some(media) = media {
            add_media(kinds, media);
        }
        if let Some(schema) = schema {
            into.get_or_insert_with(Schema::default).merge(schema);
        }
    }

    /// Merges another endpoint's learning into this one (their templates were merged).
    pub fn merge(&mut self, other: &Learned) {
        for (into, from) in [
            (&mut self.request, &other.request),
            (&mut self.response, &other.response),
        ] {
            if let Some(from) = from {
                into.get_or_insert_with(Schema::default).merge(from);
            }
        }
        self.statuses |= other.statuses;
        for media in &other.request_media {
            add_media(&mut self.request_media, media);
        }
        for media in &other.response_media {
            add_media(&mut self.response_media, media);
        }
    }

    /// As it goes out in `discovery.endpoint` events (`unmapped.learned`).
    pub fn to_json(&self) -> Value {
        let statuses: Vec<String> = (1..6)
            .filter(|class| self.statuses & (1 << class) != 0)
            .map(|class| format!("{class}xx"))
            .collect();
        let mut out = json!({
            "statuses": statuses,
            "request_media": self.request_media,
            "response_media": self.response_media,
        });
        if let Some(schema) = &self.request {
            out["request"] = schema.to_json();
        }
        if let Some(schema) = &self.response {
            out["response"] = schema.to_json();
        }
        out
    }

    /// Reads back [`Learned::to_json`] (from an event), within the caps.
    pub fn from_json(value: &Value) -> Learned {
        let media = |key: &str| -> Vec<Box<str>> {
            let mut kinds = Vec::new();
            for media in (value
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten())
            .filter_map(Value::as_str)
            {
                add_media(&mut kinds, media);
            }
            kinds
        };
        let statuses = (value.get("statuses").and_then(Value::as_array).into_iter())
            .flatten()
            .filter_map(Value::as_str)
            .filter_map(|s| s.strip_suffix("xx")?.parse::<u8>().ok())
            .filter(|class| (1..6).contains(class))
            .fold(0, |bits, class| bits | 1 << class);
        Learned {
            request: value.get("request").map(Schema::from_json),
            response: value.get("response").map(Schema::from_json),
            statuses,
            request_media: media("request_media"),
            response_media: media("response_media"),
        }
    }
}

/// A `content-type` header's media type (`type/subtype`, at most [`MAX_NAME`] bytes), and
/// whether the body is JSON.
pub(crate) fn media_of(content_type: &str) -> Option<(String, bool)> {
    let media = MediaType::parse(content_type)?;
    let essence = media.essence();
    (essence.len() <= MAX_NAME).then(|| (essence, media.is_json()))
}

fn add_media(kinds: &mut Vec<Box<str>>, media: &str) {
    let fits = media.len() <= MAX_NAME && kinds.len() < MAX_MEDIA;
    if fits && !kinds.iter().any(|k| k.as_ref() == media) {
        kinds.push(media.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn learn(bodies: &[Value]) -> Value {
        let mut schema = Schema::default();
        for body in bodies {
            schema.merge(&Schema::of(body));
        }
        schema.to_json()
    }

    #[test]
    fn types_required_formats_and_ranges_are_learned() {
        let bodies = [
            json!({"name": "Rex", "age": 3, "born": "2021-03-04", "tags": ["a"], "at": "2024-02-29T13:45:00Z"}),
            json!({"name": "Felix", "age": 12, "born": "2012-01-01", "tags": [], "owner": null, "at": "2024-03-01T00:00:00.5+01:00"}),
            json!({"name": "Bo", "age": 0.5, "born": "2024-06-30", "tags": ["b", "cc"], "owner": "ada@example.com", "at": "2024-03-01T10:00:00Z"}),
        ];
        let schema = learn(&bodies);
        assert_eq!(schema["type"], "object");
        assert_eq!(
            schema["required"],
            json!(["age", "at", "born", "name", "tags"])
        );
        let p = &schema["properties"];
        assert_eq!(
            p["name"],
            json!({"type": "string", "minLength": 2, "maxLength": 5})
        );
        assert_eq!(
            p["age"],
            json!({"type": "number", "minimum": 0.5, "maximum": 12})
        );
        assert_eq!(p["born"]["format"], "date");
        assert_eq!(p["at"]["format"], "date-time");
        assert_eq!(p["tags"]["items"]["type"], "string");
        // Mixed types are a union; a string field with an address and a null has no
        // format claim beyond what every string had.
        assert_eq!(p["owner"]["type"], json!(["null", "string"]));
        assert_eq!(p["owner"]["format"], "email");
    }

    #[test]
    fn a_vocabulary_is_an_enum_and_data_is_not() {
        let statuses = ["available", "sold", "pending"];
        let bodies: Vec<Value> = (0..12)
            .map(|i| {
                json!({
                    "status": statuses[i % 3],
                    "nickname": format!("pet number {i}"),
                    "ref": format!("12ab34cd{i}ef"),
                    "kind": "dog",
                })
            })
            .collect();
        let schema = learn(&bodies);
        let p = &schema["properties"];
        assert_eq!(p["status"]["enum"], json!(["available", "pending", "sold"]));
        assert_eq!(p["kind"]["enum"], json!(["dog"]));
        assert!(p["nickname"].get("enum").is_none(), "12 distinct: data");
        assert!(p["ref"].get("enum").is_none(), "looks like an id");
        // Three values seen once each are no evidence of a vocabulary.
        let few = learn(&bodies[..3]);
        assert!(few["properties"]["status"].get("enum").is_none(), "{few}");
    }

    #[test]
    fn fields_named_like_secrets_keep_their_types_only() {
        let bodies: Vec<Value> = (0..20)
            .map(|_| {
                json!({
                    "password": "hunter2",
                    "apiKey": "same",
                    "card": {"number": "4111111111111111", "cvv": 123},
                    "userId": "u1",
                    "pin": 1234,
                })
            })
            .collect();
        let schema = learn(&bodies);
        let p = &schema["properties"];
        assert_eq!(p["password"], json!({"type": "string"}));
        assert_eq!(p["apiKey"], json!({"type": "string"}));
        assert_eq!(p["pin"], json!({"type": "integer"}));
        // An identifier keeps its lengths, never an enum.
        assert_eq!(
            p["userId"],
            json!({"type": "string", "minLength": 2, "maxLength": 2})
        );
        // Below a secret, only names and types.
        assert_eq!(
            p["card"]["properties"],
            json!({"number": {"type": "string"}, "cvv": {"type": "integer"}})
        );
        let text = schema.to_string();
        for value in ["hunter2", "same", "4111", "123", "1234", "u1"] {
            assert!(!text.contains(value), "{value} leaked: {text}");
        }
    }

    #[test]
    fn caps_bound_nodes_depth_properties_and_names() {
        // Many properties: at most MAX_PROPERTIES learned, and the object stays open
        // (those learned are not claimed required beyond what was seen).
        let mut wide = Map::new();
        for i in 0..1000 {
            wide.insert(format!("p{i}"), json!(i));
        }
        let wide = Schema::of(&Value::Object(wide));
        assert!(wide.nodes <= MAX_NODES);
        assert_eq!(wide.root.properties.len(), MAX_PROPERTIES);
        assert!(wide.root.open);
        // Deep nesting: learned down to MAX_DEPTH, then types only.
        let mut deep = json!(1);
        for _ in 0..100 {
            deep = json!({"a": [deep]});
        }
        let schema = Schema::of(&deep);
        let mut levels = 0;
        let mut at = &schema.to_json();
        while let Some(next) = at.get("properties").and_then(|p| p.get("a")) {
            levels += 1;
            at = next.get("items").unwrap_or(next);
        }
        assert!(levels <= MAX_DEPTH, "{levels}");
        // Merging many distinct shapes never passes the node cap.
        let mut merged = Schema::default();
        for i in 0..200 {
            merged.merge(&Schema::of(&json!({format!("k{i}"): {"x": [{"y": i}]}})));
            assert!(merged.nodes <= MAX_NODES);
            assert_eq!(merged.nodes, merged.root.size());
        }
        // A long name is not learned.
        let long = "n".repeat(MAX_NAME + 1);
        let named = Schema::of(&json!({ long.clone(): 1 }));
        assert!(!named.to_json().to_string().contains(&long));
    }

    #[test]
    fn schemas_read_back_from_events_merge_like_the_originals() {
        let a = learn(&vec![json!({"id": 1, "kind": "a", "x": 1}); 8]);
        let b = learn(&vec![json!({"id": 2, "kind": "b"}); 8]);
        let mut merged = Schema::from_json(&a);
        merged.merge(&Schema::from_json(&b));
        let merged = merged.to_json();
        // `x` was required by one worker only.
        assert_eq!(merged["required"], json!(["id", "kind"]));
        assert_eq!(merged["properties"]["kind"]["enum"], json!(["a", "b"]));
        assert_eq!(merged["properties"]["id"]["maximum"], 2);
        // And a schema read back is written out as it was.
        assert_eq!(Schema::from_json(&a).to_json(), a);
    }

    #[test]
    fn learned_endpoints_keep_statuses_and_media_types() {
        let mut learned = Learned::default();
        learned.add(&Sample::Request {
            media: Some("application/json".into()),
            schema: Some(Schema::of(&json!({"a": 1}))),
        });
        for status in [200, 201, 404, 0, 999] {
            learned.add(&Sample::Response {
                status,
                media: Some("application/json".into()),
                schema: None,
            });
        }
        let json = learned.to_json();
        assert_eq!(json["statuses"], json!(["2xx", "4xx"]));
        assert_eq!(json["request_media"], json!(["application/json"]));
        assert_eq!(Learned::from_json(&json).to_json(), json);
    }

    /// The README's memory ceiling counts a node at this size, before its name, its entry
    /// in its parent's map and its enum candidates.
    #[test]
    fn a_node_stays_small() {
        assert!(std::mem::size_of::<Shape>() <= 160);
    }

    #[test]
    fn formats_are_told_by_their_form() {
        let cases = [
            ("2024-02-29T13:45:00Z", Some("date-time")),
            ("2024-02-29", Some("date")),
            ("ada@example.com", Some("email")),
            ("123e4567-e89b-12d3-a456-426614174000", Some("uuid")),
            ("https://example.com/a?b", Some("uri")),
            ("10.0.0.1", Some("ipv4")),
            ("https://a b", None),
            ("hello", None),
            ("2024-02-29T13:45:00", None),
            ("", None),
        ];
        for (s, format) in cases {
            assert_eq!(format_of(s), format, "{s:?}");
        }
    }
}
