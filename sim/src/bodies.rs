//! JSON bodies drawn from GitHub's schemas, and how far a learned schema agrees with the
//! schema the bodies were drawn from: the truth schema learning is scored against.
//!
//! A body takes every `required` property and each other one with even odds, the first
//! of a `oneOf`/`anyOf`, every member of an `allOf`, one or two array items, an `enum`
//! value, and a string of the declared `format`; nesting stops at [`MAX_DEPTH`] (deeper
//! objects are empty). The truth is read the same way, so that what the draws could not
//! show is not held against learning.

use serde_json::{json, Map, Value};

use apiguard_filter::follow_ref;

use crate::rng::Rng;

/// Levels drawn; the learner keeps six.
const MAX_DEPTH: usize = 4;
/// `$ref` hops followed in a row.
const MAX_HOPS: usize = 16;

/// The JSON schema of an operation's request body, or of its first 2xx response.
pub fn schema<'d>(
    document: &'d Value,
    template: &str,
    method: &str,
    request: bool,
) -> Option<&'d Value> {
    let operation = &document["paths"][template][method.to_ascii_lowercase()];
    let body = if request {
        follow_ref(document, &operation["requestBody"])
    } else {
        let responses = operation["responses"].as_object()?;
        let (_, response) = responses
            .iter()
            .find(|(status, _)| status.starts_with('2'))?;
        follow_ref(document, response)
    };
    let schema = body["content"]["application/json"].get("schema")?;
    Some(follow_ref(document, schema))
}

/// A schema's object view: its properties (with `allOf` members' and the first
/// `oneOf`/`anyOf` alternative's), its `required` names, and its type.
struct View<'d> {
    kind: &'d str,
    properties: Vec<(&'d str, &'d Value)>,
    required: Vec<&'d str>,
    schema: &'d Value,
}

fn view<'d>(document: &'d Value, schema: &'d Value) -> View<'d> {
    let schema = follow_ref(document, schema);
    let mut out = View {
        kind: "",
        properties: Vec::new(),
        required: Vec::new(),
        schema,
    };
    gather(document, schema, &mut out, 0);
    if out.kind.is_empty() && !out.properties.is_empty() {
        out.kind = "object";
    }
    out
}

fn gather<'d>(document: &'d Value, schema: &'d Value, out: &mut View<'d>, hops: usize) {
    if hops > MAX_HOPS {
        return;
    }
    let schema = follow_ref(document, schema);
    if out.kind.is_empty() {
        out.kind = match &schema["type"] {
            Value::String(kind) => kind.as_str(),
            Value::Array(kinds) => (kinds.iter().filter_map(Value::as_str))
                .find(|k| *k != "null")
                .unwrap_or(""),
            _ => "",
        };
    }
    for (name, property) in schema["properties"].as_object().into_iter().flatten() {
        if !out.properties.iter().any(|(n, _)| *n == name) {
            out.properties.push((name, property));
        }
    }
    out.required.extend(
        schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str),
    );
    for member in schema["allOf"].as_array().into_iter().flatten() {
        gather(document, member, out, hops + 1);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(first) = schema[key].as_array().and_then(|a| a.first()) {
            gather(document, first, out, hops + 1);
        }
    }
    if out.schema.get("items").is_none() && schema.get("items").is_some() {
        out.schema = schema;
    }
    if out.schema.get("enum").is_none() && schema.get("enum").is_some() {
        out.schema = schema;
    }
}

/// A body drawn from `schema`.
pub fn draw(document: &Value, schema: &Value, rng: &mut Rng, depth: usize) -> Value {
    let view = view(document, schema);
    if let Some(values) = view.schema["enum"].as_array().filter(|v| !v.is_empty()) {
        return values[rng.below(values.len() as u64) as usize].clone();
    }
    match view.kind {
        "object" => {
            let mut object = Map::new();
            if depth < MAX_DEPTH {
                for (name, property) in &view.properties {
                    if view.required.contains(name) || rng.below(2) == 0 {
                        object.insert((*name).to_owned(), draw(document, property, rng, depth + 1));
                    }
                }
            }
            Value::Object(object)
        }
        "array" => {
            let items = &view.schema["items"];
            let n = if depth < MAX_DEPTH {
                1 + rng.below(2)
            } else {
                0
            };
            Value::Array(
                (0..n)
                    .map(|_| draw(document, items, rng, depth + 1))
                    .collect(),
            )
        }
        "integer" => json!(rng.below(1000)),
        "number" => json!(rng.below(1000) as f64 + 0.5),
        "boolean" => json!(rng.below(2) == 0),
        _ => json!(match view.schema["format"].as_str() {
            Some("date-time") => "2024-05-01T10:00:00Z".to_owned(),
            Some("email") => "octo@example.com".to_owned(),
            Some("uri") => "https://example.com/x".to_owned(),
            _ => format!("text {}", rng.below(1000)),
        }),
    }
}

/// How learned schemas agree with the truth, added up over endpoints and levels.
#[derive(Debug, Clone, Copy, Default)]
pub struct Agreement {
    /// Endpoints compared (a truth schema and a learned one).
    pub schemas: usize,
    /// Properties learned, in the truth, and in both.
    pub learned: usize,
    pub truth: usize,
    pub both: usize,
    /// Of properties in both: learned type agreeing with the truth's.
    pub types_agreeing: usize,
    /// Of properties in both: learned `required` equal to the truth's.
    pub required_agreeing: usize,
}

impl Agreement {
    /// Property precision: learned properties the truth has.
    pub fn precision(&self) -> f64 {
        ratio(self.both, self.learned)
    }

    /// Property recall: truth properties learned.
    pub fn recall(&self) -> f64 {
        ratio(self.both, self.truth)
    }

    pub fn types(&self) -> f64 {
        ratio(self.types_agreeing, self.both)
    }

    pub fn required(&self) -> f64 {
        ratio(self.required_agreeing, self.both)
    }

    /// Adds the comparison of a learned schema (`to_json`) with the truth it was drawn
    /// from, at every level both have properties.
    pub fn compare(&mut self, document: &Value, learned: &Value, truth: &Value) {
        self.schemas += 1;
        self.level(document, learned, truth, 0);
    }

    fn level(&mut self, document: &Value, learned: &Value, truth: &Value, depth: usize) {
        let truth = view(document, truth);
        if depth >= MAX_DEPTH {
            return;
        }
        if truth.kind == "array" {
            if let Some(items) = learned.get("items") {
                self.level(document, items, &truth.schema["items"], depth + 1);
            }
            return;
        }
        let learned_properties = learned["properties"].as_object();
        let learned_required: Vec<&str> = (learned["required"].as_array().into_iter().flatten())
            .filter_map(Value::as_str)
            .collect();
        self.learned += learned_properties.map_or(0, Map::len);
        self.truth += truth.properties.len();
        for (name, sub) in learned_properties.into_iter().flatten() {
            let Some((_, declared)) = truth.properties.iter().find(|(n, _)| *n == name) else {
                continue;
            };
            self.both += 1;
            let declared_view = view(document, declared);
            let kinds: Vec<&str> = match &sub["type"] {
                Value::String(kind) => vec![kind.as_str()],
                Value::Array(kinds) => kinds.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            let agrees = kinds.iter().filter(|k| **k != "null").all(|k| {
                *k == declared_view.kind || (*k == "integer" && declared_view.kind == "number")
            });
            self.types_agreeing += usize::from(agrees && !kinds.is_empty());
            let required = learned_required.contains(&name.as_str());
            self.required_agreeing +=
                usize::from(required == truth.required.contains(&name.as_str()));
            self.level(document, sub, declared, depth + 1);
        }
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
}
