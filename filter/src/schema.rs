//! OpenAPI schemas, translated to JSON Schema 2020-12 and compiled with `jsonschema`.
//!
//! OpenAPI 3.1 schemas are JSON Schema 2020-12 already; 3.0 schemas are a dialect that
//! needs translating (`nullable`, boolean `exclusiveMinimum`/`exclusiveMaximum`, `$ref`
//! siblings ignored). Both need what plain JSON Schema does not know: `readOnly`
//! properties must not be sent and `writeOnly` ones must not come back, `discriminator`
//! picks the `oneOf` branch, `format: int32/int64` bound integers, and strict mode closes
//! objects the document left open. Each schema is translated into a self-contained
//! document whose `$defs` hold the components it reaches, then compiled once — at
//! configure time, or on first use with `schemas: lazy`. Never per request.
//!
//! Identical translated documents share one validator (GitHub's API: 3,871 request
//! schemas, 368 distinct once annotations are dropped — the same `owner`, `repo`,
//! `per_page` parameters in every operation). Besides the memory, this is what makes
//! configure fast in the VM: on `wasm32` `jsonschema` rebuilds the 2020-12 meta-schema
//! validator for every `build` (natively it is a cached static), about 0.8 ms in V8
//! each, 94% of configure time before this cache.
//!
//! Violations are reported with reasons built from the schema (trusted) and never from
//! the instance (attacker input), and with instance pointers whose tokens are sanitised.

use std::cell::{OnceCell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{Draft, Validator};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use crate::config::{pointer_token, Location, PolicyError};
use crate::openapi::Version;
use crate::shape::{Shape, Types};
use crate::verdict::sanitize;

/// Components beyond this many `$ref` hops are not followed when computing a shape.
const MAX_REF_HOPS: usize = 32;
/// How many violations one value reports at most.
pub const MAX_VIOLATIONS: usize = 10;

/// The document's component schemas, which every translated schema may reach.
#[derive(Debug)]
pub struct SchemaSet {
    version: Version,
    components: BTreeMap<String, Box<RawValue>>,
    origin: String,
    /// Every validator built so far, keyed by its translated document's JSON text.
    built: RefCell<BTreeMap<String, Built>>,
}

/// A translated document's validator, or why it does not compile.
type Built = Result<Rc<Validator>, String>;

/// Which way a value travels: `readOnly` properties may only come back, `writeOnly` ones
/// may only be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Request,
    Response,
}

/// How a schema is translated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    pub direction: Direction,
    /// Close objects that declare properties but leave `additionalProperties` open.
    pub strict: bool,
}

/// A schema of the document and its compiled validator.
#[derive(Debug)]
pub struct Schema {
    raw: Box<RawValue>,
    /// JSON pointer of the schema in the document, for compile errors.
    pointer: String,
    context: Context,
    compiled: OnceCell<Built>,
}

/// One way a value breaks its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaViolation {
    /// Pointer into the value, sanitised (e.g. `/items/0/name`).
    pub pointer: String,
    /// The JSON Schema keyword that failed.
    pub keyword: &'static str,
    pub reason: String,
}

impl SchemaSet {
    pub fn new(
        version: Version,
        components: BTreeMap<String, Box<RawValue>>,
        origin: &str,
    ) -> Self {
        SchemaSet {
            version,
            components,
            origin: origin.to_owned(),
            built: RefCell::default(),
        }
    }

    /// The validator of a translated document: built once, then shared by every schema
    /// that translates to the same document.
    fn validator(&self, document: &Value) -> Built {
        let key = document.to_string();
        if let Some(built) = self.built.borrow().get(&key) {
            return built.clone();
        }
        let built = build(document).map(Rc::new);
        self.built.borrow_mut().insert(key, built.clone());
        built
    }

    fn component(&self, name: &str) -> Option<Value> {
        let raw = self.components.get(name)?;
        serde_json::from_str(raw.get()).ok()
    }

    /// The component a local reference names: `#/components/schemas/Pet` -> `Pet`, with
    /// the rest of the pointer, if any.
    fn split_ref(reference: &str) -> Option<(&str, &str)> {
        let rest = reference.strip_prefix("#/components/schemas/")?;
        Some(
            rest.split_once('/')
                .map_or((rest, ""), |(name, tail)| (name, tail)),
        )
    }

    /// Follows `$ref`s from `value` to the schema they end at (a copy).
    fn resolve(&self, value: &Value) -> Value {
        let mut current = value.clone();
        for _ in 0..MAX_REF_HOPS {
            let Some(reference) = current.get("$ref").and_then(Value::as_str) else {
                break;
            };
            match Self::split_ref(reference).and_then(|(name, tail)| {
                let target = self.component(name)?;
                if tail.is_empty() {
                    Some(target)
                } else {
                    target.pointer(&format!("/{tail}")).cloned()
                }
            }) {
                Some(next) => current = next,
                None => break,
            }
        }
        current
    }

    /// The types a value of this schema can take, looking through `$ref`, `allOf` and
    /// (3.0) `nullable`.
    fn types(&self, schema: &Value) -> Types {
        let schema = self.resolve(schema);
        let mut types = schema
            .get("type")
            .and_then(Types::from_keyword)
            .unwrap_or(Types::ANY);
        if types == Types::ANY {
            // `allOf: [{$ref: X}]` is the 3.0 idiom for a described or nullable reference;
            // `oneOf`/`anyOf` admit what any branch admits (`string` or `array`, say).
            if let Some(first) = schema.get("allOf").and_then(|a| a.get(0)) {
                types = self.types(first);
            } else if let Some(branches) = self.alternatives(&schema) {
                types = branches
                    .iter()
                    .fold(Types::default(), |acc, b| acc.union(self.types(b)));
            }
        }
        if schema.get("nullable") == Some(&Value::Bool(true)) && types != Types::ANY {
            types = types.union(Types::NULL);
        }
        types
    }

    /// The branches of a `oneOf` or `anyOf`.
    fn alternatives<'v>(&self, schema: &'v Value) -> Option<&'v Vec<Value>> {
        ["oneOf", "anyOf"]
            .iter()
            .find_map(|k| schema.get(*k).and_then(Value::as_array))
    }

    /// Whether a schema marks its value `flag` (`readOnly` or `writeOnly`): itself, or
    /// through `$ref`s and `allOf` (every branch of which applies), or through
    /// `oneOf`/`anyOf` when every branch does — or, with `any_branch`, when any branch
    /// does (the value may be the one-way one).
    fn marked(&self, schema: &Value, flag: &str, any_branch: bool, depth: usize) -> bool {
        if depth > MAX_REF_HOPS {
            return false;
        }
        let is_marked = |s: &Value| s.get(flag) == Some(&Value::Bool(true));
        // A 3.1 `$ref` keeps its siblings, so the flag may sit next to it.
        if is_marked(schema) {
            return true;
        }
        let schema = self.resolve(schema);
        if is_marked(&schema) {
            return true;
        }
        let branches = |key: &str| {
            schema
                .get(key)
                .and_then(Value::as_array)
                .map(|branches| {
                    branches
                        .iter()
                        .map(|branch| self.marked(branch, flag, any_branch, depth + 1))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        };
        if branches("allOf").contains(&true) {
            return true;
        }
        ["oneOf", "anyOf"].iter().any(|key| {
            let marks = branches(key);
            !marks.is_empty()
                && if any_branch {
                    marks.contains(&true)
                } else {
                    !marks.contains(&false)
                }
        })
    }

    /// How a string-serialised value of `raw`'s schema is laid out (see `shape`).
    pub fn shape(&self, raw: &RawValue) -> Shape {
        match serde_json::from_str::<Value>(raw.get()) {
            Ok(schema) => self.shape_of(&schema),
            Err(_) => Shape::Scalar(Types::ANY),
        }
    }

    /// The shape of each declared property of an object schema (a form's fields), and the
    /// types of undeclared ones.
    pub fn property_shapes(&self, raw: &RawValue) -> (BTreeMap<String, Shape>, Types) {
        let Ok(schema) = serde_json::from_str::<Value>(raw.get()) else {
            return (BTreeMap::new(), Types::ANY);
        };
        let schema = self.resolve(&schema);
        let mut properties = BTreeMap::new();
        self.collect_properties(&schema, &mut properties, 0);
        let shapes = properties
            .into_iter()
            .map(|(name, property)| (name, self.shape_of(&property)))
            .collect();
        (shapes, self.additional_types(&schema))
    }

    fn shape_of(&self, schema: &Value) -> Shape {
        let schema = self.resolve(schema);
        let types = self.types(&schema);
        if types.contains(Types::ARRAY) && types != Types::ANY {
            let items = std::iter::once(&schema)
                .chain(self.alternatives(&schema).into_iter().flatten())
                .find_map(|s| s.get("items"))
                .map_or(Types::ANY, |i| self.types(i));
            return Shape::Array {
                items,
                scalar: types.without(Types::ARRAY),
            };
        }
        if types.contains(Types::OBJECT) && types != Types::ANY {
            let mut properties = BTreeMap::new();
            self.collect_properties(&schema, &mut properties, 0);
            return Shape::Object {
                properties: properties
                    .iter()
                    .map(|(name, property)| (name.clone(), self.types(property)))
                    .collect(),
                additional: self.additional_types(&schema),
            };
        }
        Shape::Scalar(types)
    }

    fn additional_types(&self, schema: &Value) -> Types {
        match schema.get("additionalProperties") {
            Some(additional @ Value::Object(_)) => self.types(additional),
            _ => Types::ANY,
        }
    }

    /// The `properties` of a schema and of its `allOf` branches, unresolved.
    fn collect_properties(&self, schema: &Value, out: &mut BTreeMap<String, Value>, depth: usize) {
        if depth > MAX_REF_HOPS {
            return;
        }
        let schema = self.resolve(schema);
        if let Some(Value::Object(properties)) = schema.get("properties") {
            for (name, property) in properties {
                out.insert(name.clone(), property.clone());
            }
        }
        if let Some(Value::Array(branches)) = schema.get("allOf") {
            for branch in branches {
                self.collect_properties(branch, out, depth + 1);
            }
        }
    }

    /// Removes from a response value, recursively, the properties its schema does not
    /// declare (and `writeOnly` ones, which must not come back); returns how many.
    /// Objects the schema leaves open (`additionalProperties`, or no properties at all)
    /// are kept whole.
    pub fn redact(&self, raw: &RawValue, value: &mut Value) -> usize {
        match serde_json::from_str::<Value>(raw.get()) {
            Ok(schema) => self.redact_value(&schema, value, 0),
            Err(_) => 0,
        }
    }

    fn redact_value(&self, schema: &Value, value: &mut Value, depth: usize) -> usize {
        if depth > MAX_REF_HOPS * 2 {
            return 0;
        }
        let schema = self.resolve(schema);
        match value {
            Value::Object(map) => {
                let Some(declared) = self.declared_properties(&schema, 0) else {
                    return 0;
                };
                let before = map.len();
                map.retain(|name, _| {
                    declared
                        .get(name)
                        .is_some_and(|p| !self.marked(p, "writeOnly", true, 0))
                });
                let mut count = before - map.len();
                for (name, child) in map.iter_mut() {
                    if let Some(property) = declared.get(name) {
                        count += self.redact_value(property, child, depth + 1);
                    }
                }
                count
            }
            Value::Array(items) => match schema.get("items") {
                Some(item_schema) => items
                    .iter_mut()
                    .map(|item| self.redact_value(item_schema, item, depth + 1))
                    .sum(),
                None => 0,
            },
            _ => 0,
        }
    }

    /// The properties an object schema declares, through `$ref` and every composition
    /// (a union over `oneOf`/`anyOf` branches: redaction keeps whatever any branch
    /// allows); `None` when the schema leaves the object open.
    fn declared_properties(&self, schema: &Value, depth: usize) -> Option<BTreeMap<String, Value>> {
        if depth > MAX_REF_HOPS {
            return None;
        }
        let schema = self.resolve(schema);
        if matches!(schema.get("additionalProperties"), Some(v) if v != &Value::Bool(false)) {
            return None;
        }
        let mut out = BTreeMap::new();
        let mut declares = false;
        if let Some(Value::Object(properties)) = schema.get("properties") {
            declares = true;
            out.extend(properties.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        for key in ["allOf", "oneOf", "anyOf"] {
            for branch in schema
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                out.extend(self.declared_properties(branch, depth + 1)?);
                declares = true;
            }
        }
        declares.then_some(out)
    }

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

impl Schema {
    pub fn new(raw: Box<RawValue>, pointer: String, context: Context) -> Schema {
        Schema {
            raw,
            pointer,
            context,
            compiled: OnceCell::new(),
        }
    }

    pub fn raw(&self) -> &RawValue {
        &self.raw
    }

    /// Compiles the schema now, or returns the result of an earlier compilation.
    pub fn compile(&self, set: &SchemaSet) -> Result<&Validator, PolicyError> {
        self.compiled
            .get_or_init(|| translate(set, &self.raw, self.context).and_then(|s| set.validator(&s)))
            .as_deref()
            .map_err(|message| PolicyError::Invalid {
                at: Location::new(&set.origin, &self.pointer),
                message: message.clone(),
            })
    }

    /// Validates `instance`; at most [`MAX_VIOLATIONS`] violations. A schema that cannot
    /// compile (only possible with `schemas: lazy`) fails closed: one violation.
    pub fn validate(&self, set: &SchemaSet, instance: &Value) -> Vec<SchemaViolation> {
        let validator = match self.compile(set) {
            Ok(validator) => validator,
            Err(_) => {
                return vec![SchemaViolation {
                    pointer: String::new(),
                    keyword: "$schema",
                    reason: "the contract's schema for this value does not compile".to_owned(),
                }]
            }
        };
        let mut out = Vec::new();
        for error in validator.iter_errors(instance) {
            let pointer = sanitize(error.instance_path().as_str());
            let kind = error.kind();
            match kind {
                ValidationErrorKind::AdditionalProperties { unexpected }
                | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
                    // `unexpected` lists every undeclared name, as many as the body has.
                    for name in unexpected
                        .iter()
                        .take(MAX_VIOLATIONS - out.len().min(MAX_VIOLATIONS))
                    {
                        out.push(SchemaViolation {
                            pointer: format!("{pointer}/{}", sanitize(&pointer_token(name))),
                            keyword: "unevaluatedProperties",
                            reason: "is not a declared property".to_owned(),
                        });
                    }
                }
                _ => out.push(SchemaViolation {
                    pointer,
                    keyword: keyword(kind),
                    reason: reason(kind),
                }),
            }
            if out.len() >= MAX_VIOLATIONS {
                out.truncate(MAX_VIOLATIONS);
                break;
            }
        }
        out
    }
}

/// Compiles a translated schema.
fn build(schema: &Value) -> Result<Validator, String> {
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        .should_validate_formats(true)
        .build(schema)
        .map_err(|e| format!("the schema does not compile: {e}"))
}

/// Translates the document schema `raw` into a self-contained 2020-12 schema.
fn translate(set: &SchemaSet, raw: &RawValue, context: Context) -> Result<Value, String> {
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

fn keyword(kind: &ValidationErrorKind) -> &'static str {
    match kind {
        ValidationErrorKind::FalseSchema => "false",
        ValidationErrorKind::Type { .. } => "type",
        ValidationErrorKind::Required { .. } => "required",
        ValidationErrorKind::Enum { .. } => "enum",
        ValidationErrorKind::Constant { .. } => "const",
        ValidationErrorKind::Format { .. } => "format",
        ValidationErrorKind::Pattern { .. }
        | ValidationErrorKind::BacktrackLimitExceeded { .. }
        | ValidationErrorKind::RegexEngineFailure { .. } => "pattern",
        ValidationErrorKind::Minimum { .. } => "minimum",
        ValidationErrorKind::Maximum { .. } => "maximum",
        ValidationErrorKind::ExclusiveMinimum { .. } => "exclusiveMinimum",
        ValidationErrorKind::ExclusiveMaximum { .. } => "exclusiveMaximum",
        ValidationErrorKind::MinLength { .. } => "minLength",
        ValidationErrorKind::MaxLength { .. } => "maxLength",
        ValidationErrorKind::MinItems { .. } => "minItems",
        ValidationErrorKind::MaxItems { .. } => "maxItems",
        ValidationErrorKind::UniqueItems => "uniqueItems",
        ValidationErrorKind::MinProperties { .. } => "minProperties",
        ValidationErrorKind::MaxProperties { .. } => "maxProperties",
        ValidationErrorKind::MultipleOf { .. } => "multipleOf",
        ValidationErrorKind::OneOfMultipleValid { .. }
        | ValidationErrorKind::OneOfNotValid { .. } => "oneOf",
        ValidationErrorKind::AnyOf { .. } => "anyOf",
        ValidationErrorKind::Not { .. } => "not",
        _ => "schema",
    }
}

/// A reason built from the schema side of an error only.
fn reason(kind: &ValidationErrorKind) -> String {
    match kind {
        ValidationErrorKind::FalseSchema => "must not be present".to_owned(),
        ValidationErrorKind::Type { kind } => format!("must be of type {}", type_names(kind)),
        ValidationErrorKind::Required { property } => match property.as_str() {
            Some(name) => format!("required property `{}` is missing", sanitize(name)),
            None => "a required property is missing".to_owned(),
        },
        ValidationErrorKind::Enum { .. } => "must be one of the declared values".to_owned(),
        ValidationErrorKind::Constant { .. } => "must be the declared constant".to_owned(),
        ValidationErrorKind::Format { format } => format!("must be a valid `{format}`"),
        ValidationErrorKind::Pattern { pattern } => format!("must match the pattern `{pattern}`"),
        ValidationErrorKind::Minimum { limit } => format!("must be at least {limit}"),
        ValidationErrorKind::Maximum { limit } => format!("must be at most {limit}"),
        ValidationErrorKind::ExclusiveMinimum { limit } => format!("must be greater than {limit}"),
        ValidationErrorKind::ExclusiveMaximum { limit } => format!("must be less than {limit}"),
        ValidationErrorKind::MinLength { limit } => {
            format!("must be at least {limit} characters long")
        }
        ValidationErrorKind::MaxLength { limit } => {
            format!("must be at most {limit} characters long")
        }
        ValidationErrorKind::MinItems { limit } => format!("must have at least {limit} items"),
        ValidationErrorKind::MaxItems { limit } => format!("must have at most {limit} items"),
        ValidationErrorKind::UniqueItems => "items must be unique".to_owned(),
        ValidationErrorKind::MinProperties { limit } => {
            format!("must have at least {limit} properties")
        }
        ValidationErrorKind::MaxProperties { limit } => {
            format!("must have at most {limit} properties")
        }
        ValidationErrorKind::MultipleOf { multiple_of } => {
            format!("must be a multiple of {multiple_of}")
        }
        ValidationErrorKind::OneOfMultipleValid { .. } => {
            "matches more than one of the declared alternatives".to_owned()
        }
        ValidationErrorKind::OneOfNotValid { .. } | ValidationErrorKind::AnyOf { .. } => {
            "matches none of the declared alternatives".to_owned()
        }
        ValidationErrorKind::Not { .. } => "matches a schema it must not match".to_owned(),
        other => format!("violates `{}`", other.keyword()),
    }
}

fn type_names(kind: &jsonschema::error::TypeKind) -> String {
    match kind {
        jsonschema::error::TypeKind::Single(t) => t.to_string(),
        jsonschema::error::TypeKind::Multiple(set) => set
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(" or "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMPONENTS: &str = r##"{
        "Pet": {"type": "object", "required": ["name"], "properties": {
            "id": {"type": "integer", "format": "int64", "readOnly": true},
            "name": {"type": "string", "maxLength": 20},
            "secret": {"type": "string", "writeOnly": true}}},
        "Cat": {"type": "object", "required": ["kind"], "properties": {"kind": {"type": "string"}, "purrs": {"type": "boolean"}}},
        "Dog": {"type": "object", "required": ["kind"], "properties": {"kind": {"type": "string"}, "barks": {"type": "boolean"}}},
        "Free": {"type": "object"},
        "Open": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": true},
        "Id": {"type": "integer", "readOnly": true},
        "Secret": {"type": "string", "writeOnly": true},
        "Audit": {"type": "object", "properties": {"createdBy": {"type": "string", "readOnly": true}}},
        "Account": {"type": "object", "required": ["id", "name"], "properties": {
            "id": {"allOf": [{"$ref": "#/components/schemas/Id"}]},
            "name": {"type": "string"},
            "password": {"anyOf": [{"$ref": "#/components/schemas/Secret"}]},
            "owner": {"oneOf": [{"$ref": "#/components/schemas/Id"}, {"type": "string"}]}}}
    }"##;

    fn set(version: Version) -> SchemaSet {
        let components: BTreeMap<String, Box<RawValue>> = serde_json::from_str(COMPONENTS).unwrap();
        SchemaSet::new(version, components, "test.yaml")
    }

    fn schema(text: &str, direction: Direction, strict: bool) -> Schema {
        Schema::new(
            RawValue::from_string(text.to_owned()).unwrap(),
            "/test".to_owned(),
            Context { direction, strict },
        )
    }

    /// The keywords that fail for `instance`, empty when it is valid.
    fn check(
        version: Version,
        text: &str,
        direction: Direction,
        strict: bool,
        instance: Value,
    ) -> Vec<String> {
        let set = set(version);
        schema(text, direction, strict)
            .validate(&set, &instance)
            .into_iter()
            .map(|v| format!("{} {}", v.pointer, v.keyword))
            .collect()
    }

    fn request(version: Version, text: &str, instance: Value) -> Vec<String> {
        check(version, text, Direction::Request, false, instance)
    }

    use Version::{V3_0, V3_1};

    #[test]
    fn nullable_3_0() {
        let s = r#"{"type": "string", "nullable": true, "enum": ["a"]}"#;
        assert!(request(V3_0, s, json!(null)).is_empty());
        assert!(request(V3_0, s, json!("a")).is_empty());
        assert_eq!(request(V3_0, s, json!("b")), [" enum"]);
        assert_eq!(
            request(V3_0, r#"{"type": "string"}"#, json!(null)),
            [" type"]
        );
        let via_ref = r##"{"allOf": [{"$ref": "#/components/schemas/Cat"}], "nullable": true}"##;
        assert!(request(V3_0, via_ref, json!(null)).is_empty());
        assert!(!request(V3_0, via_ref, json!({})).is_empty());
    }

    #[test]
    fn nullable_is_not_a_3_1_keyword() {
        assert!(!request(V3_1, r#"{"type": "string", "nullable": true}"#, json!(null)).is_empty());
        assert!(request(V3_1, r#"{"type": ["string", "null"]}"#, json!(null)).is_empty());
    }

    #[test]
    fn exclusive_bounds_by_dialect() {
        let s30 = r#"{"type": "number", "minimum": 1, "exclusiveMinimum": true, "maximum": 5}"#;
        assert_eq!(request(V3_0, s30, json!(1)), [" exclusiveMinimum"]);
        assert!(request(V3_0, s30, json!(1.5)).is_empty());
        assert!(request(V3_0, s30, json!(5)).is_empty());
        let s31 = r#"{"type": "number", "exclusiveMaximum": 5}"#;
        assert_eq!(request(V3_1, s31, json!(5)), [" exclusiveMaximum"]);
    }

    #[test]
    fn ref_siblings_are_ignored_in_3_0_only() {
        let s = r##"{"$ref": "#/components/schemas/Cat", "maxProperties": 1}"##;
        assert!(request(V3_0, s, json!({"kind": "x", "purrs": true})).is_empty());
        assert_eq!(
            request(V3_1, s, json!({"kind": "x", "purrs": true})),
            [" maxProperties"]
        );
    }

    #[test]
    fn integer_formats_are_ranges() {
        let s = r#"{"type": "integer", "format": "int32"}"#;
        assert!(request(V3_0, s, json!(2_147_483_647)).is_empty());
        assert_eq!(request(V3_0, s, json!(2_147_483_648u64)), [" maximum"]);
        assert_eq!(request(V3_1, s, json!(-2_147_483_649i64)), [" minimum"]);
    }

    #[test]
    fn string_formats_are_checked() {
        for (format, good, bad) in [
            ("uuid", "7c9e6679-7425-40de-944b-e07fc1f90ae7", "7c9e6679"),
            ("date", "2024-02-29", "2023-02-29"),
            ("date-time", "2024-01-01T10:00:00Z", "2024-01-01 10:00"),
            ("email", "a@example.com", "a.example.com"),
            ("ipv4", "10.0.0.1", "10.0.0.256"),
            ("ipv6", "::1", "::g"),
            ("uri", "https://example.com/a", "not a uri"),
        ] {
            let s = format!(r#"{{"type": "string", "format": "{format}"}}"#);
            assert!(request(V3_1, &s, json!(good)).is_empty(), "{format} {good}");
            assert_eq!(request(V3_1, &s, json!(bad)), [" format"], "{format} {bad}");
        }
    }

    #[test]
    fn read_only_must_not_be_sent_and_write_only_must_not_come_back() {
        let s = r##"{"$ref": "#/components/schemas/Pet"}"##;
        assert!(request(V3_0, s, json!({"name": "rex", "secret": "s"})).is_empty());
        assert_eq!(
            request(V3_0, s, json!({"name": "rex", "id": 1})),
            ["/id false"]
        );
        let response = |i| check(V3_0, s, Direction::Response, false, i);
        assert!(response(json!({"name": "rex", "id": 1})).is_empty());
        assert_eq!(
            response(json!({"name": "rex", "secret": "s"})),
            ["/secret false"]
        );
        let required = r#"{"type": "object", "required": ["id"], "properties": {"id": {"type": "integer", "readOnly": true}}}"#;
        assert!(
            request(V3_0, required, json!({})).is_empty(),
            "a readOnly property is not required in a request"
        );
    }

    #[test]
    fn read_only_and_write_only_behind_compositions_and_references() {
        let account = r##"{"$ref": "#/components/schemas/Account"}"##;
        // `id` is readOnly through allOf + $ref: refused, and not required, in a request.
        assert!(request(V3_1, account, json!({"name": "a"})).is_empty());
        assert!(!request(V3_1, account, json!({"name": "a", "id": 1})).is_empty());
        // `owner` may be a readOnly id or a string: only the string may be sent.
        assert!(request(V3_1, account, json!({"name": "a", "owner": "me"})).is_empty());
        assert!(!request(V3_1, account, json!({"name": "a", "owner": 7})).is_empty());
        // readOnly inside an allOf branch of the body itself.
        let audited = r##"{"allOf": [{"$ref": "#/components/schemas/Audit"},
            {"type": "object", "properties": {"name": {"type": "string"}}}]}"##;
        assert!(request(V3_0, audited, json!({"name": "a"})).is_empty());
        assert!(!request(V3_0, audited, json!({"name": "a", "createdBy": "x"})).is_empty());
        // writeOnly through anyOf + $ref must not come back, and is redacted.
        let response = |i| check(V3_1, account, Direction::Response, false, i);
        assert!(response(json!({"id": 1, "name": "a"})).is_empty());
        assert!(!response(json!({"id": 1, "name": "a", "password": "p"})).is_empty());
        let set = set(V3_1);
        let raw = RawValue::from_string(account.to_owned()).unwrap();
        let mut value = json!({"id": 1, "name": "a", "password": "p", "extra": 1});
        assert_eq!(set.redact(&raw, &mut value), 2);
        assert_eq!(value, json!({"id": 1, "name": "a"}));
    }

    #[test]
    fn strict_mode_refuses_case_variants_of_declared_properties() {
        let open = r##"{"$ref": "#/components/schemas/Open"}"##;
        let strict = |s: &str, i| check(V3_1, s, Direction::Request, true, i);
        assert!(strict(open, json!({"a": "x", "b": 1})).is_empty());
        assert!(!strict(open, json!({"A": "x"})).is_empty());
        let names = r#"{"type": "object", "additionalProperties": true, "properties": {
            "role": {"enum": ["user"]}, "risk.score": {"type": "integer"}}}"#;
        assert!(strict(names, json!({"role": "user", "risk.score": 1, "other": 1})).is_empty());
        for variant in ["ROLE", "Role", "rolE", "RISK.SCORE", "risk_score_"] {
            let refused = !strict(names, json!({ variant: "admin" })).is_empty();
            assert_eq!(refused, variant != "risk_score_", "{variant}");
        }
        // Go folds the long s and the Kelvin sign too.
        let sk = r#"{"type": "object", "additionalProperties": true, "properties": {"ask": {"type": "string"}}}"#;
        assert!(!strict(sk, json!({"a\u{17F}\u{212A}": 1})).is_empty());
        // Outside strict mode, nothing changes.
        assert!(request(V3_1, names, json!({"ROLE": "admin"})).is_empty());
    }

    #[test]
    fn discriminator_selects_the_branch() {
        let s = r##"{"oneOf": [{"$ref": "#/components/schemas/Cat"}, {"$ref": "#/components/schemas/Dog"}],
                    "discriminator": {"propertyName": "kind", "mapping": {"dog": "#/components/schemas/Dog"}}}"##;
        // Without the discriminator a Cat also matches Dog (oneOf would fail); with it,
        // `kind` decides: Cat by component name, Dog by mapping.
        assert!(request(V3_0, s, json!({"kind": "Cat", "purrs": true})).is_empty());
        assert!(request(V3_0, s, json!({"kind": "bird"}))
            .iter()
            .any(|v| v.ends_with("enum")));
        let strict = |i| check(V3_0, s, Direction::Request, true, i);
        assert!(strict(json!({"kind": "dog", "barks": true})).is_empty());
        assert!(!strict(json!({"kind": "dog", "purrs": true})).is_empty());
    }

    #[test]
    fn strict_mode_closes_declared_objects_only() {
        let strict = |s: &str, i| check(V3_0, s, Direction::Request, true, i);
        let pet = r##"{"$ref": "#/components/schemas/Pet"}"##;
        assert_eq!(
            strict(pet, json!({"name": "a", "admin": true})),
            ["/admin unevaluatedProperties"]
        );
        assert!(
            request(V3_0, pet, json!({"name": "a", "admin": true})).is_empty(),
            "open without strict"
        );
        let nested =
            r##"{"type": "object", "properties": {"pet": {"$ref": "#/components/schemas/Pet"}}}"##;
        assert_eq!(
            strict(nested, json!({"pet": {"name": "a", "x": 1}})),
            ["/pet/x unevaluatedProperties"]
        );
        let composed = r##"{"allOf": [{"$ref": "#/components/schemas/Pet"}, {"type": "object", "properties": {"tag": {"type": "string"}}}]}"##;
        assert!(
            strict(composed, json!({"name": "a", "tag": "t"})).is_empty(),
            "allOf siblings evaluate each other's properties"
        );
        assert_eq!(
            strict(composed, json!({"name": "a", "x": 1})),
            ["/x unevaluatedProperties"]
        );
        for open in [
            r##"{"$ref": "#/components/schemas/Free"}"##,
            r##"{"$ref": "#/components/schemas/Open"}"##,
            r#"{"type": "object"}"#,
        ] {
            assert!(strict(open, json!({"anything": 1})).is_empty(), "{open}");
        }
    }

    #[test]
    fn reasons_and_pointers_never_carry_the_instance() {
        let s = r#"{"type": "object", "properties": {"n": {"type": "integer", "maximum": 3}}}"#;
        let set = set(V3_1);
        let violations = schema(s, Direction::Request, true).validate(
            &set,
            &json!({"n": 99_999, "<script>alert(1)</script>": "x"}),
        );
        let text = format!("{violations:?}");
        assert!(
            !text.contains("99999") && !text.contains("<script>"),
            "{text}"
        );
        assert!(text.contains("must be at most 3"), "{text}");
        assert!(text.contains("/_script_alert_1__~1script_"), "{text}");
    }

    #[test]
    fn violations_are_bounded() {
        let s = r#"{"type": "array", "items": {"type": "integer"}}"#;
        let many: Vec<Value> = (0..100).map(|i| json!(format!("{i}"))).collect();
        assert_eq!(request(V3_1, s, Value::Array(many)).len(), MAX_VIOLATIONS);
    }

    #[test]
    fn bad_references_fail_to_compile_with_their_pointer() {
        let set = set(V3_0);
        for (text, needle) in [
            (
                r##"{"$ref": "#/components/schemas/Nope"}"##,
                "does not exist",
            ),
            (r#"{"$ref": "other.yaml#/Pet"}"#, "only references"),
            (r#"{"type": "string", "pattern": "("}"#, "does not compile"),
        ] {
            let e = schema(text, Direction::Request, false)
                .compile(&set)
                .unwrap_err();
            assert_eq!(e.location().unwrap().pointer, "/test");
            assert!(e.to_string().contains(needle), "{e}");
        }
    }

    #[test]
    fn identical_schemas_share_one_validator() {
        let set = set(V3_0);
        let text = r#"{"type": "object", "properties": {"id": {"type": "integer"}}}"#;
        let compile = |text, direction, strict| {
            let schema = schema(text, direction, strict);
            std::ptr::from_ref(schema.compile(&set).unwrap())
        };
        let first = compile(text, Direction::Request, false);
        assert_eq!(compile(text, Direction::Request, false), first);
        let documented = r#"{"type": "object", "title": "A thing", "x-internal": true,
            "properties": {"id": {"type": "integer", "description": "Its id", "example": 7}}}"#;
        assert_eq!(
            compile(documented, Direction::Request, false),
            first,
            "annotations are dropped in translation"
        );
        assert_ne!(
            compile(text, Direction::Request, true),
            first,
            "strict mode translates differently"
        );
    }

    #[test]
    fn shapes_look_through_references() {
        let set = set(V3_0);
        let shape = |t: &str| set.shape(&RawValue::from_string(t.to_owned()).unwrap());
        assert_eq!(
            shape(r#"{"type": "integer"}"#),
            Shape::Scalar(Types::INTEGER)
        );
        assert_eq!(
            shape(r#"{"type": "array", "items": {"type": "number"}}"#),
            Shape::Array {
                items: Types::NUMBER,
                scalar: Types::default()
            }
        );
        assert_eq!(
            shape(r##"{"$ref": "#/components/schemas/Cat"}"##),
            Shape::Object {
                properties: [
                    ("kind".to_owned(), Types::STRING),
                    ("purrs".to_owned(), Types::BOOLEAN)
                ]
                .into(),
                additional: Types::ANY
            }
        );
        assert_eq!(
            shape(
                r#"{"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "integer"}}]}"#
            ),
            Shape::Array {
                items: Types::INTEGER,
                scalar: Types::STRING
            }
        );
        assert_eq!(
            shape(r#"{"type": "string", "nullable": true}"#),
            Shape::Scalar(Types::STRING.union(Types::NULL))
        );
    }
}
