//! Drift of declared operations: what their sampled traffic (`discovery.observed` events,
//! with `discovery: {learn: <rate>}`) did that the contract does not say — response
//! statuses and media types it declares no response for, properties it does not name —
//! and the request properties it declares that no client sent within the window.
//!
//! The contract is read as written (local `$ref`s followed, `allOf`/`anyOf`/`oneOf`
//! taken as the union of their members' properties). A schema that names no properties
//! (`{}`, `{type: object}` without `properties`) makes no claim to drift from. What the
//! VM did not learn (past a schema's caps: see `discovery::learn`) is neither drift nor
//! "never sent" evidence beyond the 24 properties per object learned.

use serde_json::Value;

use apiguard_filter::{follow_ref, Learned};

/// `$ref`s followed in a row, and schema levels walked: a cyclic or deep document stops
/// there rather than looping.
const MAX_HOPS: usize = 16;

/// How one declared operation's sampled traffic departs from its contract.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Drift {
    /// Status classes answered (`5xx`) with no declared response of that class nor a
    /// `default`.
    pub statuses: Vec<String>,
    /// Response media types answered that no declared response has.
    pub response_media: Vec<String>,
    /// Request media types sent that the request body does not declare.
    pub request_media: Vec<String>,
    /// Response properties (`items[].owner.email`) no declared response schema names.
    pub response_properties: Vec<String>,
    /// Request properties the request body schema does not name.
    pub request_properties: Vec<String>,
    /// Request properties the request body schema names that no sampled request sent.
    pub never_sent: Vec<String>,
}

impl Drift {
    /// The drift of `learned` from `operation` (an OpenAPI operation object of
    /// `document`).
    pub(crate) fn of(document: &Value, operation: &Value, learned: &Learned) -> Drift {
        let responses: Vec<(&String, &Value)> = (operation["responses"].as_object())
            .into_iter()
            .flatten()
            .map(|(status, response)| (status, follow_ref(document, response)))
            .collect();
        let declares_class = |class: u8| {
            responses.iter().any(|(status, _)| {
                status.as_str() == "default" || status.starts_with(char::from(b'0' + class))
            })
        };
        let statuses = (1..6)
            .filter(|class| learned.statuses & (1 << class) != 0 && !declares_class(*class))
            .map(|class| format!("{class}xx"))
            .collect();
        let response_contents: Vec<&Value> = responses.iter().map(|(_, r)| &r["content"]).collect();
        let request_body = follow_ref(document, &operation["requestBody"]);
        let request_contents = [&request_body["content"]];
        let response_schemas = schemas(document, &response_contents);
        let request_schemas = schemas(document, &request_contents);
        let mut drift = Drift {
            statuses,
            response_media: undeclared_media(&learned.response_media, &response_contents),
            request_media: undeclared_media(&learned.request_media, &request_contents),
            ..Drift::default()
        };
        if let Some(schema) = &learned.response {
            let learned = schema.to_json();
            undeclared(
                document,
                &learned,
                &response_schemas,
                "",
                0,
                &mut drift.response_properties,
            );
        }
        if let Some(schema) = &learned.request {
            let learned = schema.to_json();
            undeclared(
                document,
                &learned,
                &request_schemas,
                "",
                0,
                &mut drift.request_properties,
            );
            never_sent(
                document,
                &learned,
                &request_schemas,
                "",
                0,
                &mut drift.never_sent,
            );
        }
        drift
    }

    /// Whether the traffic kept to the contract in every way looked at.
    pub(crate) fn is_empty(&self) -> bool {
        *self == Drift::default()
    }

    /// The report's lines for it, indented under the operation.
    pub(crate) fn lines(&self) -> Vec<String> {
        [
            ("response statuses not declared", &self.statuses),
            ("response media types not declared", &self.response_media),
            (
                "response properties not declared",
                &self.response_properties,
            ),
            ("request media types not declared", &self.request_media),
            ("request properties not declared", &self.request_properties),
            ("request properties declared, never sent", &self.never_sent),
        ]
        .into_iter()
        .filter(|(_, items)| !items.is_empty())
        .map(|(what, items)| format!("{what}: {}", items.join(", ")))
        .collect()
    }
}

/// The schemas of `contents` (media type maps), each flattened into its alternatives.
fn schemas<'d>(document: &'d Value, contents: &[&'d Value]) -> Vec<&'d Value> {
    let mut out = Vec::new();
    for content in contents {
        for media in content.as_object().into_iter().flatten().map(|(_, m)| m) {
            if let Some(schema) = media.get("schema") {
                flatten(document, schema, 0, &mut out);
            }
        }
    }
    out
}

/// A schema and, for `allOf`/`anyOf`/`oneOf`, its members: the schemas whose properties
/// a value may have.
fn flatten<'d>(document: &'d Value, schema: &'d Value, depth: usize, out: &mut Vec<&'d Value>) {
    if depth > MAX_HOPS {
        return;
    }
    let schema = follow_ref(document, schema);
    out.push(schema);
    for key in ["allOf", "anyOf", "oneOf"] {
        for member in schema[key].as_array().into_iter().flatten() {
            flatten(document, member, depth + 1, out);
        }
    }
}

/// What the declared alternatives say of one level: the sub-schemas of a property
/// (`Some(empty)` when no alternative names it; `None` when none names any property, so
/// no claim is made), or of the items.
fn property<'d>(document: &'d Value, declared: &[&'d Value], name: &str) -> Option<Vec<&'d Value>> {
    if !declared.iter().any(|s| s.get("properties").is_some()) {
        return None;
    }
    let mut out = Vec::new();
    for schema in declared {
        if let Some(sub) = schema["properties"].get(name) {
            flatten(document, sub, 0, &mut out);
        }
    }
    Some(out)
}

fn items<'d>(document: &'d Value, declared: &[&'d Value]) -> Vec<&'d Value> {
    let mut out = Vec::new();
    for schema in declared {
        if let Some(items) = schema.get("items") {
            flatten(document, items, 0, &mut out);
        }
    }
    out
}

/// The learned properties, at any depth, that no declared alternative names.
fn undeclared(
    document: &Value,
    learned: &Value,
    declared: &[&Value],
    prefix: &str,
    depth: usize,
    out: &mut Vec<String>,
) {
    if depth > MAX_HOPS || declared.is_empty() {
        return;
    }
    for (name, sub) in learned["properties"].as_object().into_iter().flatten() {
        let Some(subs) = property(document, declared, name) else {
            break;
        };
        let path = format!("{prefix}{name}");
        if subs.is_empty() {
            out.push(path);
        } else {
            undeclared(document, sub, &subs, &format!("{path}."), depth + 1, out);
        }
    }
    if let Some(learned_items) = learned.get("items") {
        let subs = items(document, declared);
        let base = prefix.strip_suffix('.').unwrap_or(prefix);
        undeclared(
            document,
            learned_items,
            &subs,
            &format!("{base}[]."),
            depth + 1,
            out,
        );
    }
}

/// The declared properties, at any depth the learned schema reached, that it lacks: no
/// sampled request sent them.
fn never_sent(
    document: &Value,
    learned: &Value,
    declared: &[&Value],
    prefix: &str,
    depth: usize,
    out: &mut Vec<String>,
) {
    let Some(sent) = learned["properties"].as_object() else {
        return;
    };
    if depth > MAX_HOPS {
        return;
    }
    let mut names: Vec<&String> = (declared.iter())
        .filter_map(|s| s["properties"].as_object())
        .flat_map(|p| p.keys())
        .collect();
    names.sort();
    names.dedup();
    for name in names {
        let path = format!("{prefix}{name}");
        match sent.get(name.as_str()) {
            None => out.push(path),
            Some(sub) => {
                let subs = property(document, declared, name).unwrap_or_default();
                never_sent(document, sub, &subs, &format!("{path}."), depth + 1, out);
            }
        }
    }
}

/// The media types seen that no content map declares (`type/*` and `*/*` cover theirs).
fn undeclared_media(seen: &[Box<str>], contents: &[&Value]) -> Vec<String> {
    let declared: Vec<&str> = (contents.iter())
        .filter_map(|c| c.as_object())
        .flat_map(|c| c.keys().map(String::as_str))
        .collect();
    let covers = |range: &str, media: &str| {
        let range = range.split(';').next().unwrap_or(range).trim();
        range.eq_ignore_ascii_case(media)
            || range == "*/*"
            || range.strip_suffix("/*").is_some_and(|kind| {
                media
                    .split('/')
                    .next()
                    .is_some_and(|k| k.eq_ignore_ascii_case(kind))
            })
    };
    (seen.iter())
        .filter(|media| !declared.iter().any(|range| covers(range, media)))
        .map(|media| media.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use apiguard_filter::{Sample, Schema};
    use serde_json::json;

    #[test]
    fn drift_names_what_the_contract_does_not_say_and_what_no_client_sent() {
        let document = json!({
            "components": {"schemas": {
                "Pet": {"type": "object", "properties": {
                    "id": {"type": "integer"},
                    "tags": {"type": "array", "items": {"type": "object",
                        "properties": {"name": {"type": "string"}}}}}},
                "NewPet": {"allOf": [{"$ref": "#/components/schemas/Named"},
                    {"properties": {"tag": {"type": "string"}, "age": {"type": "integer"}}}]},
                "Named": {"properties": {"name": {"type": "string"}}}
            }},
        });
        let operation = json!({
            "requestBody": {"content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/NewPet"}}}},
            "responses": {
                "201": {"content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Pet"}}}},
                "4XX": {"description": "refused"}
            }
        });
        let mut learned = Learned::default();
        learned.add(&Sample::Request {
            media: Some("application/json".into()),
            schema: Some(Schema::of(
                &json!({"name": "Rex", "tag": "dog", "nick": "R"}),
            )),
        });
        learned.add(&Sample::Response {
            status: 201,
            media: Some("application/json".into()),
            schema: Some(Schema::of(
                &json!({"id": 1, "owner": {"email": "a@b.c"}, "tags": [{"name": "x", "color": "red"}]}),
            )),
        });
        for (status, media) in [(404, "application/json"), (503, "text/html")] {
            learned.add(&Sample::Response {
                status,
                media: Some(media.into()),
                schema: None,
            });
        }
        let drift = Drift::of(&document, &operation, &learned);
        assert_eq!(drift.statuses, ["5xx"]);
        assert_eq!(drift.response_media, ["text/html"]);
        assert_eq!(drift.response_properties, ["owner", "tags[].color"]);
        assert_eq!(drift.request_media, Vec::<String>::new());
        assert_eq!(drift.request_properties, ["nick"]);
        assert_eq!(drift.never_sent, ["age"]);
        // Traffic as declared: no drift; a schema naming no properties claims nothing.
        let mut clean = Learned::default();
        clean.add(&Sample::Response {
            status: 201,
            media: Some("application/json".into()),
            schema: Some(Schema::of(&json!({"id": 1}))),
        });
        assert!(Drift::of(&document, &operation, &clean).is_empty());
        let open = json!({"responses": {"200": {"content": {"application/*": {"schema": {}}}}}});
        let mut any = Learned::default();
        any.add(&Sample::Response {
            status: 200,
            media: Some("application/json".into()),
            schema: Some(Schema::of(&json!({"x": 1}))),
        });
        assert!(Drift::of(&document, &open, &any).is_empty());
    }

    #[test]
    fn cyclic_refs_end() {
        let document =
            json!({"components": {"schemas": {"A": {"$ref": "#/components/schemas/A"}}}});
        assert_eq!(
            follow_ref(&document, &json!({"$ref": "#/components/schemas/A"})),
            &Value::Null
        );
    }
}
