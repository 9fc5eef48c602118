//! OpenAPI schemas into self-contained JSON Schema 2020-12 documents: the 3.0 dialect
//! (`nullable`, boolean exclusive bounds, `$ref` siblings), `readOnly`/`writeOnly` by
//! direction, `discriminator`, integer formats as ranges, strict mode's closed objects,
//! and the components a schema reaches gathered into its `$defs`.

use std::collections::BTreeSet;

use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use super::{Context, Direction, SchemaSet, MAX_REF_HOPS};
use crate::contract::openapi::Version;

impl SchemaSet {
    /// Whether an object schema may be closed in strict mode: it declares properties
    /// (itself or through `$ref`/`allOf`/`oneOf`/`anyOf`) and nothing opens it.
    fn closable(&self, schema: &Map<String, Value>, depth: usize) -> bool {
        if depth > MAX_REF_HOPS
            || [
                "additionalProperties",
                "unevaluatedProperties",
                "patternProperties",
            ]
            .iter()
            .any(|k| schema.contains_key(*k))
        {
            return false;
        }
        let mut declares = schema.contains_key("properties");
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            match Self::split_ref(reference).and_then(|(name, _)| self.component(name)) {
                Some(Value::Object(target)) if self.closable(&target, depth + 1) => declares = true,
                _ => return false,
            }
        }
        for key in ["allOf", "oneOf", "anyOf"] {
            if let Some(Value::Array(branches)) = schema.get(key) {
                for branch in branches {
                    match branch {
                        Value::Object(b) if self.closable(b, depth + 1) => declares = true,
                        Value::Object(b)
                            if b.contains_key("properties") || b.contains_key("$ref") =>
                        {
                            return false
                        }
                        _ => {}
                    }
                }
            }
        }
        declares
    }
}

/// Translates the document schema `raw` into a self-contained 2020-12 schema.
pub(super) fn translate(
    set: &SchemaSet,
    raw: &RawValue,
    context: Context,
) -> Result<Value, String> {
    let value: Value =
        serde_json::from_str(raw.get()).map_err(|e| format!("not a JSON schema: {e}"))?;
    let mut translator = Translator {
        set,
        context,
        defs: Map::new(),
        pending: Vec::new(),
        seen: BTreeSet::new(),
    };
    let root = translator.value(value, Position::Root)?;
    while let Some(name) = translator.pending.pop() {
        let component = set
            .component(&name)
            .ok_or_else(|| format!("`#/components/schemas/{name}` does not exist"))?;
        let translated = translator.value(component, Position::Definition)?;
        translator.defs.insert(name, translated);
    }
    let mut document = Map::new();
    document.insert(
        "$schema".to_owned(),
        json!("https://json-schema.org/draft/2020-12/schema"),
    );
    if !translator.defs.is_empty() {
        document.insert("$defs".to_owned(), Value::Object(translator.defs));
    }
    match root {
        Value::Object(map) => document.extend(map),
        other => {
            document.insert("allOf".to_owned(), json!([other]));
        }
    }
    Ok(Value::Object(document))
}

/// Keywords that only document a schema: they never make a value pass or fail, so they are
/// dropped in translation. Documented APIs carry a lot of them (half of the text of
/// GitHub's request schemas), and without them more schemas translate to the same
/// document and share one validator. `readOnly`/`writeOnly` are kept: they are enforced.
fn is_annotation(keyword: &str) -> bool {
    matches!(
        keyword,
        "description"
            | "title"
            | "example"
            | "examples"
            | "default"
            | "deprecated"
            | "externalDocs"
            | "xml"
            | "$comment"
    ) || keyword.starts_with("x-")
}

/// Where a subschema sits, which decides whether strict mode closes it: a value's own
/// schema is closed; a branch of a composition or a `$defs` entry is not, because its
/// siblings (or the schema that refers to it) evaluate the other properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// The schema of the parameter or body itself.
    Root,
    Value,
    Branch,
    Definition,
}

struct Translator<'s> {
    set: &'s SchemaSet,
    context: Context,
    defs: Map<String, Value>,
    pending: Vec<String>,
    seen: BTreeSet<String>,
}

impl Translator<'_> {
    fn value(&mut self, schema: Value, position: Position) -> Result<Value, String> {
        let Value::Object(mut map) = schema else {
            // `true`/`false` (3.1) and anything else pass through.
            return Ok(schema);
        };
        if self.set.version == Version::V3_0 && map.contains_key("$ref") {
            // OpenAPI 3.0: "properties adjacent to a $ref are ignored".
            map.retain(|k, _| k == "$ref");
        }
        // A schema marked `readOnly` describes a value that is never sent, and a
        // `writeOnly` one a value that never comes back: in that direction it is `false`,
        // wherever it sits — a property, an `allOf`/`anyOf`/`oneOf` branch (the other
        // branches of an `anyOf` still admit their values), a component a `$ref` reaches.
        // The value's own root is kept: the flag documents properties.
        if position != Position::Root && map.get(self.one_way_flag()) == Some(&Value::Bool(true)) {
            return Ok(Value::Bool(false));
        }
        // Decided on the schema as written, before its references are rewritten.
        let close = self.context.strict
            && matches!(position, Position::Root | Position::Value)
            && self.set.closable(&map, 0);
        if let Some(Value::String(reference)) = map.get_mut("$ref") {
            let (name, tail) = SchemaSet::split_ref(reference).ok_or_else(|| {
                format!(
                    "`$ref: {reference}`: only references into `#/components/schemas` are \
                     supported; bundle external documents into the contract first"
                )
            })?;
            if self.seen.insert(name.to_owned()) {
                self.pending.push(name.to_owned());
            }
            *reference = if tail.is_empty() {
                format!("#/$defs/{name}")
            } else {
                format!("#/$defs/{name}/{tail}")
            };
        }
        map.retain(|keyword, _| !is_annotation(keyword));
        if self.set.version == Version::V3_0 {
            translate_exclusive_bounds(&mut map);
        }
        add_integer_format_bounds(&mut map);
        if self.context.direction == Direction::Request {
            guard_urls(&mut map);
        }
        self.hide_one_way_properties(&mut map);
        self.discriminate(&mut map);

        for key in [
            "properties",
            "patternProperties",
            "$defs",
            "dependentSchemas",
        ] {
            if let Some(Value::Object(children)) = map.remove(key) {
                let position = if key == "$defs" {
                    Position::Definition
                } else if key == "dependentSchemas" {
                    Position::Branch
                } else {
                    Position::Value
                };
                let mut translated = Map::new();
                for (name, child) in children {
                    translated.insert(name, self.value(child, position)?);
                }
                map.insert(key.to_owned(), Value::Object(translated));
            }
        }
        for key in [
            "items",
            "additionalProperties",
            "contains",
            "unevaluatedItems",
        ] {
            if let Some(child) = map.remove(key) {
                let translated = match child {
                    // OpenAPI 3.0 and 2019-09 tuples: items as an array.
                    Value::Array(items) => Value::Array(
                        items
                            .into_iter()
                            .map(|i| self.value(i, Position::Value))
                            .collect::<Result<_, _>>()?,
                    ),
                    other => self.value(other, Position::Value)?,
                };
                map.insert(key.to_owned(), translated);
            }
        }
        for key in ["allOf", "oneOf", "anyOf", "prefixItems"] {
            if let Some(Value::Array(children)) = map.remove(key) {
                let position = if key == "prefixItems" {
                    Position::Value
                } else {
                    Position::Branch
                };
                let translated = children
                    .into_iter()
                    .map(|c| self.value(c, position))
                    .collect::<Result<_, _>>()?;
                map.insert(key.to_owned(), Value::Array(translated));
            }
        }
        for key in ["not", "if", "then", "else", "propertyNames"] {
            if let Some(child) = map.remove(key) {
                let translated = self.value(child, Position::Branch)?;
                map.insert(key.to_owned(), translated);
            }
        }
        if close {
            map.insert("unevaluatedProperties".to_owned(), Value::Bool(false));
        }
        if self.context.strict {
            refuse_case_variants(&mut map);
        }
        let nullable = map.remove("nullable") == Some(Value::Bool(true));
        if self.set.version == Version::V3_0 && nullable {
            return Ok(make_nullable(map));
        }
        Ok(Value::Object(map))
    }

    /// The flag of values that do not travel in this direction.
    fn one_way_flag(&self) -> &'static str {
        match self.context.direction {
            Direction::Request => "readOnly",
            Direction::Response => "writeOnly",
        }
    }

    /// `readOnly` properties in a request and `writeOnly` ones in a response become
    /// `false` (present means refused) and stop being required — also when the flag is
    /// reached through `$ref` and `allOf`, or every branch of a `oneOf`/`anyOf` has it.
    fn hide_one_way_properties(&self, map: &mut Map<String, Value>) {
        let flag = self.one_way_flag();
        let Some(Value::Object(properties)) = map.get_mut("properties") else {
            return;
        };
        let mut hidden = Vec::new();
        for (name, property) in properties.iter_mut() {
            if self.set.marked(property, flag, false, 0) {
                *property = Value::Bool(false);
                hidden.push(name.clone());
            }
        }
        if let Some(Value::Array(required)) = map.get_mut("required") {
            required.retain(|r| r.as_str().is_none_or(|r| !hidden.iter().any(|h| h == r)));
        }
    }

    /// `discriminator` with `oneOf`/`anyOf` of references: the discriminating property
    /// must be present and name one of the branches, and then that branch must hold.
    /// When every branch is a reference, the discriminator replaces the `oneOf`: branches
    /// that would all match an object (common when they share optional properties) no
    /// longer make it invalid, which is what the document's author meant.
    fn discriminate(&mut self, map: &mut Map<String, Value>) {
        let Some(Value::Object(discriminator)) = map.remove("discriminator") else {
            return;
        };
        let Some(property) = discriminator.get("propertyName").and_then(Value::as_str) else {
            return;
        };
        let mut targets: Vec<(String, String)> = Vec::new();
        if let Some(Value::Object(mapping)) = discriminator.get("mapping") {
            for (value, target) in mapping {
                if let Some(target) = target.as_str() {
                    // A mapping value is a reference or a bare component name.
                    let reference = if target.starts_with('#') {
                        target.to_owned()
                    } else {
                        format!("#/components/schemas/{target}")
                    };
                    targets.push((value.clone(), reference));
                }
            }
        }
        let mut replaced = None;
        for key in ["oneOf", "anyOf"] {
            if let Some(Value::Array(branches)) = map.get(key) {
                let mut all_references = true;
                for branch in branches {
                    let Some(reference) = branch.get("$ref").and_then(Value::as_str) else {
                        all_references = false;
                        continue;
                    };
                    let mapped = targets.iter().any(|(_, t)| t == reference);
                    if let (false, Some((name, ""))) = (mapped, SchemaSet::split_ref(reference)) {
                        targets.push((name.to_owned(), reference.to_owned()));
                    }
                }
                if all_references {
                    replaced = Some(key);
                }
            }
        }
        if targets.is_empty() {
            return;
        }
        if let Some(key) = replaced {
            map.remove(key);
        }
        let values: Vec<Value> = targets.iter().map(|(v, _)| json!(v)).collect();
        let mut rules = vec![json!({
            "required": [property],
            "properties": {property: {"enum": values}}
        })];
        for (value, reference) in targets {
            rules.push(json!({
                "if": {"properties": {property: {"const": value}}, "required": [property]},
                "then": {"$ref": reference}
            }));
        }
        match map.get_mut("allOf") {
            Some(Value::Array(all)) => all.extend(rules),
            _ => {
                map.insert("allOf".to_owned(), Value::Array(rules));
            }
        }
    }
}

/// Strict mode: an object schema that declares properties refuses names that differ
/// from one of them only by case (`Role` for `role`). Go's `encoding/json` binds those to
/// the declared field (with Unicode simple case folding: `ſ` is `s`, `K` (Kelvin) is
/// `k`), so `{"ROLE": "admin"}` in an object left open would reach the field unchecked,
/// and `{"role": "user", "ROLE": "admin"}` would be validated as one and bound as the
/// other. Added as `propertyNames`: a name matching a declared one case-insensitively
/// must be exactly a declared one.
fn refuse_case_variants(map: &mut Map<String, Value>) {
    let names: Vec<&String> = match map.get("properties") {
        Some(Value::Object(properties)) if !properties.is_empty() => properties.keys().collect(),
        _ => return,
    };
    let pattern = format!(
        "^(?:{})$",
        names
            .iter()
            .map(|name| name.chars().map(fold_class).collect::<String>())
            .collect::<Vec<_>>()
            .join("|")
    );
    let rule = json!({"propertyNames": {"not": {"allOf": [
        {"pattern": pattern},
        {"not": {"enum": names}}
    ]}}});
    match map.get_mut("allOf") {
        Some(Value::Array(all)) => all.push(rule),
        _ => {
            map.insert("allOf".to_owned(), json!([rule]));
        }
    }
}

/// A character as a regex matching it and its case variants: `[Kk\u{212A}]`, `[Ssſ]`, `\.`.
fn fold_class(c: char) -> String {
    let mut variants: Vec<char> = vec![c];
    // Only one-character mappings: `İ` lowercases to two characters, which is no fold.
    for mapped in [
        c.to_lowercase().collect::<Vec<_>>(),
        c.to_uppercase().collect(),
    ] {
        if let [one] = mapped.as_slice() {
            variants.push(*one);
        }
    }
    for (a, b) in [('k', '\u{212A}'), ('s', '\u{17F}')] {
        if variants.contains(&a) || variants.contains(&b) {
            variants.extend([a, b, a.to_ascii_uppercase()]);
        }
    }
    variants.sort_unstable();
    variants.dedup();
    match variants.as_slice() {
        [one] if "^$\\.*+?()[]{}|/".contains(*one) => format!("\\{one}"),
        [one] => one.to_string(),
        many => format!("[{}]", many.iter().collect::<String>()),
    }
}

/// OpenAPI 3.0's boolean `exclusiveMinimum: true` + `minimum: x` is 2020-12's
/// `exclusiveMinimum: x`.
fn translate_exclusive_bounds(map: &mut Map<String, Value>) {
    for (exclusive, inclusive) in [
        ("exclusiveMinimum", "minimum"),
        ("exclusiveMaximum", "maximum"),
    ] {
        match map.get(exclusive) {
            Some(Value::Bool(true)) => {
                if let Some(bound) = map.remove(inclusive) {
                    map.insert(exclusive.to_owned(), bound);
                } else {
                    map.remove(exclusive);
                }
            }
            Some(Value::Bool(false)) => {
                map.remove(exclusive);
            }
            _ => {}
        }
    }
}

/// `format: int32` and `int64` are ranges (OpenAPI format registry), which JSON Schema's
/// `format` does not check on numbers.
fn add_integer_format_bounds(map: &mut Map<String, Value>) {
    let bounds = match map.get("format").and_then(Value::as_str) {
        Some("int32") => json!({"minimum": i32::MIN, "maximum": i32::MAX}),
        Some("int64") => json!({"minimum": i64::MIN, "maximum": i64::MAX}),
        _ => return,
    };
    match map.get_mut("allOf") {
        Some(Value::Array(all)) => all.push(bounds),
        _ => {
            map.insert("allOf".to_owned(), json!([bounds]));
        }
    }
}

/// `format: uri` and `url` in a request are URLs the upstream may fetch: besides their own
/// format, they must point outside the network ([`super::PUBLIC_URI`], checked by
/// [`crate::contract::uri`]).
fn guard_urls(map: &mut Map<String, Value>) {
    if !matches!(
        map.get("format").and_then(Value::as_str),
        Some("uri" | "url")
    ) {
        return;
    }
    let guard = json!({"format": super::PUBLIC_URI});
    match map.get_mut("allOf") {
        Some(Value::Array(all)) => all.push(guard),
        _ => {
            map.insert("allOf".to_owned(), json!([guard]));
        }
    }
}

/// 3.0 `nullable: true`: null is also valid.
fn make_nullable(mut map: Map<String, Value>) -> Value {
    match map.get_mut("type") {
        Some(Value::String(t)) => {
            let t = std::mem::take(t);
            map.insert("type".to_owned(), json!([t, "null"]));
            if let Some(Value::Array(values)) = map.get_mut("enum") {
                if !values.contains(&Value::Null) {
                    values.push(Value::Null);
                }
            }
            Value::Object(map)
        }
        _ => json!({"anyOf": [{"type": "null"}, Value::Object(map)]}),
    }
}
