//! `apiguard diff`: what changed between two compiled policies, for the API's clients.
//!
//! The comparison is of compiled policies, not of document text: `$ref`s are resolved,
//! path-item parameters merged into their operations, per-operation settings applied, so
//! what is compared is what the filter enforces. Operations are matched by method and
//! path template with the parameter names left out (`/pets/{id}` is `/pets/{petId}`),
//! path parameters by their place in the template, other parameters by where they are
//! and their name. Each change is classified by what it does to a client that worked
//! before: *breaking* when some request that passed would now be refused (a removed
//! operation, a new required parameter or property, a narrower type, enum or bound, a
//! new credential or scope), *non-breaking* otherwise (an added operation or optional
//! field, a wider enum or bound).
//!
//! Schemas are walked side by side once: each pair of `$ref`s is followed at most once
//! (so recursive schemas end) and the walk stops after [`MAX_STEPS`] schema pairs, saying
//! so; `allOf`/`anyOf`/`oneOf` are compared item by item when both have as many items,
//! else reported as changed. Responses and servers (base paths) are not compared.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::Serialize;
use serde_json::Value;

use crate::contract::openapi::SecurityRequirement;
use crate::contract::params::In;
use crate::contract::schema::{Schema, SchemaSet};
use crate::contract::CompiledOperation;
use crate::policy::Policy;

/// Schema pairs one comparison visits at most: a bound on the work two large documents
/// can cost (GitHub's API has about 1,200 operations and 900 component schemas).
const MAX_STEPS: usize = 1_000_000;

/// Keywords that say nothing about what a request may hold.
const ANNOTATIONS: [&str; 13] = [
    "description",
    "title",
    "example",
    "examples",
    "default",
    "deprecated",
    "externalDocs",
    "xml",
    "$comment",
    "$id",
    "$schema",
    "discriminator",
    "contentMediaType",
];

/// Keywords the walk compares itself; every other differing keyword is a change of
/// unknown direction.
const COMPARED: [&str; 22] = [
    "$ref",
    "type",
    "enum",
    "const",
    "maximum",
    "exclusiveMaximum",
    "maxLength",
    "maxItems",
    "maxProperties",
    "minimum",
    "exclusiveMinimum",
    "minLength",
    "minItems",
    "minProperties",
    "required",
    "properties",
    "additionalProperties",
    "items",
    "nullable",
    "allOf",
    "anyOf",
    "oneOf",
];

/// Every change between two policies, operation by operation.
#[derive(Debug, Default, Serialize)]
pub struct Diff {
    /// The changes, in the order of the operations (`METHOD /template`), then as found.
    pub changes: Vec<Change>,
}

/// One change, as CI reads it (`--json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `METHOD /template`, as the new document writes it (the old one, if removed).
    pub operation: String,
    /// The operation's `operationId`, when it has one.
    pub operation_id: Option<String>,
    /// What changed: `operation.added`, `parameter.required`, `schema.tightened`, …
    pub kind: &'static str,
    /// Where, in the operation: `query limit`, `body application/json /name`, …; empty
    /// for the operation itself.
    pub at: String,
    /// What it was and what it is.
    pub detail: String,
    /// Whether a request that passed before may now be refused.
    pub breaking: bool,
}

impl Diff {
    /// How many changes are breaking.
    pub fn breaking(&self) -> usize {
        self.changes.iter().filter(|c| c.breaking).count()
    }
}

impl std::fmt::Display for Diff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut current = None;
        for change in &self.changes {
            if current != Some(&change.operation) {
                let id = change.operation_id.as_deref();
                let id = id.map(|id| format!(" ({id})")).unwrap_or_default();
                writeln!(f, "{}{id}", change.operation)?;
                current = Some(&change.operation);
            }
            let class = if change.breaking {
                "breaking    "
            } else {
                "non-breaking"
            };
            let at = if change.at.is_empty() {
                String::new()
            } else {
                format!("{}: ", change.at)
            };
            writeln!(f, "  {class}  {} {at}{}", change.kind, change.detail)?;
        }
        write!(
            f,
            "{} changes, {} breaking",
            self.changes.len(),
            self.breaking()
        )
    }
}

/// What changed from `old` to `new`, for clients of the API.
pub fn diff(old: &Policy, new: &Policy) -> Diff {
    let index = |policy: &'_ Policy| -> BTreeMap<(String, String), usize> {
        (policy.operations.iter().enumerate())
            .map(|(i, op)| ((anonymous(&op.template), op.method.as_str().to_owned()), i))
            .collect()
    };
    let (before, after) = (index(old), index(new));
    let mut walker = Walker {
        old: &old.schemas,
        new: &new.schemas,
        followed: HashSet::new(),
        strict: false,
        steps: 0,
        out: Vec::new(),
    };
    let mut diff = Diff::default();
    let keys: BTreeSet<_> = before.keys().chain(after.keys()).collect();
    for key in keys {
        let old_op = before.get(key).and_then(|&i| old.operations.get(i));
        let new_op = after.get(key).and_then(|&i| new.operations.get(i));
        let mut changes = Vec::new();
        match (old_op, new_op) {
            (Some(op), None) => {
                changes.push(("operation.removed", String::new(), removed(op), true))
            }
            (None, Some(op)) => changes.push(("operation.added", String::new(), added(op), false)),
            (Some(old_op), Some(new_op)) => {
                compare_operations(old_op, new_op, &mut walker, &mut changes);
            }
            (None, None) => {}
        }
        let Some(op) = new_op.or(old_op) else {
            continue;
        };
        diff.changes.extend(
            changes
                .into_iter()
                .map(|(kind, at, detail, breaking)| Change {
                    operation: format!("{} {}", op.method.as_str(), op.template),
                    operation_id: op.operation_id.clone(),
                    kind,
                    at,
                    detail,
                    breaking,
                }),
        );
    }
    diff
}

/// A change before it is placed in its operation: kind, where, detail, breaking.
type Found = (&'static str, String, String, bool);

fn removed(op: &CompiledOperation) -> String {
    format!(
        "clients calling it get route errors (declared at {})",
        op.pointer
    )
}

fn added(op: &CompiledOperation) -> String {
    format!("declared at {}", op.pointer)
}

/// A template with its parameter names left out: `/pets/{}`.
fn anonymous(template: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut inside = false;
    for c in template.chars() {
        match c {
            '{' => {
                inside = true;
                out.push('{');
            }
            '}' => {
                inside = false;
                out.push('}');
            }
            _ if inside => {}
            _ => out.push(c),
        }
    }
    out
}

/// How a parameter is matched across versions: path parameters by their place in the
/// template, others by where they are and their name (headers without case).
fn param_key(template: &str, location: In, name: &str) -> String {
    match location {
        In::Path => {
            let needle = format!("{{{name}}}");
            let place = template.find(&needle).map_or(0, |at| {
                template
                    .get(..at)
                    .map_or(0, |before| before.matches('{').count())
            });
            format!("path #{place}")
        }
        In::Header => format!("header {}", name.to_ascii_lowercase()),
        other => format!("{} {name}", other.as_str()),
    }
}

fn compare_operations(
    old: &CompiledOperation,
    new: &CompiledOperation,
    walker: &mut Walker<'_>,
    out: &mut Vec<Found>,
) {
    let params = |op: &CompiledOperation| -> BTreeMap<String, usize> {
        (op.contract.params.iter().enumerate())
            .map(|(i, p)| (param_key(&op.template, p.location, &p.name), i))
            .collect()
    };
    let (before, after) = (params(old), params(new));
    walker.strict = new.contract.strict;
    for (key, &i) in &after {
        let (Some(spec), Some(check)) =
            (new.contract.params.get(i), new.contract.param_checks.get(i))
        else {
            continue;
        };
        let at = format!("{} {}", spec.location.as_str(), spec.name);
        let Some(&j) = before.get(key) else {
            let detail = if spec.required {
                "a new required parameter"
            } else {
                "a new optional parameter"
            };
            out.push(("parameter.added", at, detail.to_owned(), spec.required));
            continue;
        };
        let (Some(old_spec), Some(old_check)) =
            (old.contract.params.get(j), old.contract.param_checks.get(j))
        else {
            continue;
        };
        let kinds = ["parameter.required", "parameter.optional"];
        out.extend(requiredness(kinds, &at, old_spec.required, spec.required));
        walker.schemas(old_check.schema.as_ref(), check.schema.as_ref(), &at, out);
    }
    for (key, &j) in &before {
        if after.contains_key(key) {
            continue;
        }
        let Some(spec) = old.contract.params.get(j) else {
            continue;
        };
        // An undeclared query parameter or cookie is refused only in strict mode; an
        // undeclared header never is.
        let refused = new.contract.strict && matches!(spec.location, In::Query | In::Cookie);
        let detail = if refused {
            "no longer declared: strict mode refuses it"
        } else {
            "no longer declared"
        };
        let at = format!("{} {}", spec.location.as_str(), spec.name);
        out.push(("parameter.removed", at, detail.to_owned(), refused));
    }
    compare_bodies(old, new, walker, out);
    compare_security(old.security.as_deref(), new.security.as_deref(), out);
}

/// A parameter or body made required (`kinds[0]`, breaking) or optional (`kinds[1]`).
fn requiredness(kinds: [&'static str; 2], at: &str, before: bool, after: bool) -> Option<Found> {
    let [required, optional] = kinds;
    match (before, after) {
        (false, true) => Some((
            required,
            at.to_owned(),
            "was optional, is required".to_owned(),
            true,
        )),
        (true, false) => Some((
            optional,
            at.to_owned(),
            "was required, is optional".to_owned(),
            false,
        )),
        _ => None,
    }
}

fn compare_bodies(
    old: &CompiledOperation,
    new: &CompiledOperation,
    walker: &mut Walker<'_>,
    out: &mut Vec<Found>,
) {
    let at = String::from("body");
    match (&old.contract.body, &new.contract.body) {
        (None, None) => {}
        (Some(_), None) => out.push((
            "body.removed",
            at,
            "the operation takes no body any more: one is refused".to_owned(),
            true,
        )),
        (None, Some(body)) => {
            let detail = if body.required {
                "a request body is now required"
            } else {
                "an optional request body is now accepted"
            };
            out.push(("body.added", at, detail.to_owned(), body.required));
        }
        (Some(before), Some(after)) => {
            let kinds = ["body.required", "body.optional"];
            out.extend(requiredness(kinds, &at, before.required, after.required));
            let media = |content: &crate::contract::Content| -> BTreeMap<String, usize> {
                (content.media.iter().enumerate())
                    .map(|(i, m)| (m.declared.clone(), i))
                    .collect()
            };
            let (old_media, new_media) = (media(&before.content), media(&after.content));
            for (declared, &i) in &new_media {
                let at = format!("body {declared}");
                let Some(&j) = old_media.get(declared) else {
                    out.push(("media_type.added", at, "now accepted".to_owned(), false));
                    continue;
                };
                let (Some(old_media), Some(new_media)) =
                    (before.content.media.get(j), after.content.media.get(i))
                else {
                    continue;
                };
                walker.schemas(
                    old_media.schema.as_ref(),
                    new_media.schema.as_ref(),
                    &at,
                    out,
                );
            }
            for declared in old_media.keys().filter(|d| !new_media.contains_key(*d)) {
                let at = format!("body {declared}");
                out.push((
                    "media_type.removed",
                    at,
                    "no longer accepted".to_owned(),
                    true,
                ));
            }
        }
    }
}

/// Security requirements: a client that met an alternative before still passes if some
/// new alternative asks for no scheme and no scope that one did not.
fn compare_security(
    old: Option<&[SecurityRequirement]>,
    new: Option<&[SecurityRequirement]>,
    out: &mut Vec<Found>,
) {
    let old = old.unwrap_or_default();
    let new = new.unwrap_or_default();
    if old == new {
        return;
    }
    let describe = |alternatives: &[SecurityRequirement]| -> String {
        if alternatives.is_empty() {
            return "none".to_owned();
        }
        (alternatives.iter())
            .map(|alternative| {
                (alternative.iter())
                    .map(|(scheme, scopes)| match scopes.is_empty() {
                        true => scheme.clone(),
                        false => format!("{scheme} [{}]", scopes.join(" ")),
                    })
                    .collect::<Vec<_>>()
                    .join(" + ")
            })
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let detail = format!("{} -> {}", describe(old), describe(new));
    let at = String::from("security");
    if covers(new, old) {
        out.push(("security.loosened", at, detail, false));
    } else {
        out.push(("security.tightened", at, detail, true));
    }
}

/// Whether every client that meets some alternative of `before` meets one of `after`.
/// No alternative at all asks for nothing.
fn covers(after: &[SecurityRequirement], before: &[SecurityRequirement]) -> bool {
    if after.is_empty() || after.iter().any(BTreeMap::is_empty) {
        return true;
    }
    let empty = SecurityRequirement::new();
    let before: Vec<&SecurityRequirement> = if before.is_empty() {
        vec![&empty]
    } else {
        before.iter().collect()
    };
    before.iter().all(|held| {
        after.iter().any(|needed| {
            needed.iter().all(|(scheme, scopes)| {
                held.get(scheme)
                    .is_some_and(|granted| scopes.iter().all(|s| granted.contains(s)))
            })
        })
    })
}

/// Walks two versions of a schema side by side (see the module's docs).
struct Walker<'a> {
    old: &'a SchemaSet,
    new: &'a SchemaSet,
    /// `$ref` pairs already followed.
    followed: HashSet<(String, String)>,
    /// The new operation is strict: undeclared body properties are refused.
    strict: bool,
    steps: usize,
    out: Vec<Found>,
}

impl Walker<'_> {
    fn schemas(
        &mut self,
        old: Option<&Schema>,
        new: Option<&Schema>,
        at: &str,
        out: &mut Vec<Found>,
    ) {
        let parse = |schema: Option<&Schema>| {
            schema.and_then(|s| serde_json::from_str::<Value>(s.raw().get()).ok())
        };
        let (old, new) = (parse(old), parse(new));
        // Each schema of an operation is walked whole: a component two operations share
        // is reported under each.
        self.followed.clear();
        match (old, new) {
            (Some(old), Some(new)) => self.walk(&old, &new, at, ""),
            (None, Some(_)) => self.found(
                "schema.tightened",
                at,
                "",
                "a schema is now declared".to_owned(),
                true,
            ),
            (Some(_), None) => self.found(
                "schema.loosened",
                at,
                "",
                "no schema any more".to_owned(),
                false,
            ),
            (None, None) => {}
        }
        out.append(&mut self.out);
    }

    fn found(
        &mut self,
        kind: &'static str,
        at: &str,
        pointer: &str,
        detail: String,
        breaking: bool,
    ) {
        let at = if pointer.is_empty() {
            at.to_owned()
        } else {
            format!("{at} {pointer}")
        };
        self.out.push((kind, at, detail, breaking));
    }

    fn tightened(&mut self, at: &str, pointer: &str, detail: String) {
        self.found("schema.tightened", at, pointer, detail, true);
    }

    fn loosened(&mut self, at: &str, pointer: &str, detail: String) {
        self.found("schema.loosened", at, pointer, detail, false);
    }

    fn changed(&mut self, at: &str, pointer: &str, detail: String) {
        self.found("schema.changed", at, pointer, detail, true);
    }

    /// Follows `$ref`s into the components, each pair of them once; `None` when this
    /// pair was followed already (the walk of a recursive schema ends there).
    fn resolve<'v>(
        &mut self,
        old: &'v Value,
        new: &'v Value,
    ) -> Option<(Cow<'v, Value>, Cow<'v, Value>)> {
        let reference = |v: &Value| v.get("$ref").and_then(Value::as_str).map(str::to_owned);
        let (old_ref, new_ref) = (reference(old), reference(new));
        if old_ref.is_none() && new_ref.is_none() {
            return Some((Cow::Borrowed(old), Cow::Borrowed(new)));
        }
        let pair = (
            old_ref.clone().unwrap_or_default(),
            new_ref.clone().unwrap_or_default(),
        );
        if !self.followed.insert(pair) {
            return None;
        }
        let follow = |set: &SchemaSet, value: &'v Value, reference: Option<String>| match reference
        {
            Some(_) => Cow::Owned(set.resolve(value)),
            None => Cow::Borrowed(value),
        };
        Some((
            follow(self.old, old, old_ref),
            follow(self.new, new, new_ref),
        ))
    }

    fn walk(&mut self, old: &Value, new: &Value, at: &str, pointer: &str) {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            if self.steps == MAX_STEPS + 1 {
                self.changed(
                    at,
                    pointer,
                    format!("not compared beyond {MAX_STEPS} schemas"),
                );
            }
            return;
        }
        let Some((old, new)) = self.resolve(old, new) else {
            return;
        };
        let (old, new) = (old.as_ref(), new.as_ref());
        let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else {
            // Boolean schemas (3.1): `true` accepts everything, `false` nothing.
            if old != new {
                match (old.as_bool(), new.as_bool()) {
                    (Some(true), _) | (_, Some(false)) => {
                        self.tightened(at, pointer, format!("{old} -> {new}"))
                    }
                    (Some(false), _) | (_, Some(true)) => {
                        self.loosened(at, pointer, format!("{old} -> {new}"))
                    }
                    _ => self.changed(at, pointer, "changed".to_owned()),
                }
            }
            return;
        };
        self.types(o.get("type"), n.get("type"), at, pointer);
        self.enums(o, n, at, pointer);
        for keyword in [
            "maximum",
            "exclusiveMaximum",
            "maxLength",
            "maxItems",
            "maxProperties",
        ] {
            self.bound(keyword, o.get(keyword), n.get(keyword), true, at, pointer);
        }
        for keyword in [
            "minimum",
            "exclusiveMinimum",
            "minLength",
            "minItems",
            "minProperties",
        ] {
            self.bound(keyword, o.get(keyword), n.get(keyword), false, at, pointer);
        }
        self.required(o.get("required"), n.get("required"), at, pointer);
        self.properties(o, n, at, pointer);
        match (o.get("additionalProperties"), n.get("additionalProperties")) {
            (Some(a), Some(b)) if a.is_object() && b.is_object() => {
                self.walk(a, b, at, &format!("{pointer}/additionalProperties"));
            }
            (a, b) => {
                let open = |v: Option<&Value>| v.and_then(Value::as_bool) != Some(false);
                match (open(a), open(b)) {
                    (true, false) => {
                        self.tightened(at, pointer, "additional properties are refused".to_owned())
                    }
                    (false, true) => {
                        self.loosened(at, pointer, "additional properties are accepted".to_owned())
                    }
                    _ => {}
                }
            }
        }
        match (o.get("items"), n.get("items")) {
            (Some(a), Some(b)) => self.walk(a, b, at, &format!("{pointer}/items")),
            (None, Some(_)) => self.tightened(at, pointer, "items now have a schema".to_owned()),
            (Some(_), None) => {
                self.loosened(at, pointer, "items have no schema any more".to_owned())
            }
            (None, None) => {}
        }
        let nullable =
            |m: &serde_json::Map<String, Value>| m.get("nullable") == Some(&Value::Bool(true));
        match (nullable(o), nullable(n)) {
            (true, false) => self.tightened(at, pointer, "null is refused".to_owned()),
            (false, true) => self.loosened(at, pointer, "null is accepted".to_owned()),
            _ => {}
        }
        for keyword in ["allOf", "anyOf", "oneOf"] {
            match (
                o.get(keyword).and_then(Value::as_array),
                n.get(keyword).and_then(Value::as_array),
            ) {
                (Some(a), Some(b)) if a.len() == b.len() => {
                    for (i, (a, b)) in a.iter().zip(b).enumerate() {
                        self.walk(a, b, at, &format!("{pointer}/{keyword}/{i}"));
                    }
                }
                (None, None) => {}
                _ => self.changed(at, pointer, format!("`{keyword}` changed")),
            }
        }
        self.others(o, n, at, pointer);
    }

    fn types(&mut self, old: Option<&Value>, new: Option<&Value>, at: &str, pointer: &str) {
        let set = |v: Option<&Value>| -> Option<BTreeSet<String>> {
            let mut types: BTreeSet<String> = match v? {
                Value::String(t) => [t.clone()].into(),
                Value::Array(ts) => ts
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
                _ => return None,
            };
            // A number may be an integer.
            if types.contains("number") {
                types.insert("integer".to_owned());
            }
            Some(types)
        };
        let (before, after) = (set(old), set(new));
        if before == after {
            return;
        }
        let show = |v: Option<&Value>| v.map_or("any".to_owned(), Value::to_string);
        let detail = format!("type {} -> {}", show(old), show(new));
        match (&before, &after) {
            (None, Some(_)) => self.tightened(at, pointer, detail),
            (Some(_), None) => self.loosened(at, pointer, detail),
            (Some(b), Some(a)) if a.is_subset(b) => self.tightened(at, pointer, detail),
            (Some(b), Some(a)) if a.is_superset(b) => self.loosened(at, pointer, detail),
            _ => self.changed(at, pointer, detail),
        }
    }

    fn enums(
        &mut self,
        old: &serde_json::Map<String, Value>,
        new: &serde_json::Map<String, Value>,
        at: &str,
        pointer: &str,
    ) {
        let values = |m: &serde_json::Map<String, Value>| -> Option<BTreeSet<String>> {
            if let Some(value) = m.get("const") {
                return Some([value.to_string()].into());
            }
            let values = m.get("enum")?.as_array()?;
            Some(values.iter().map(Value::to_string).collect())
        };
        let (before, after) = (values(old), values(new));
        let list = |set: &BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>().join(", ");
        match (&before, &after) {
            (None, Some(a)) => {
                self.tightened(at, pointer, format!("values limited to {}", list(a)))
            }
            (Some(_), None) => self.loosened(at, pointer, "any value is accepted".to_owned()),
            (Some(b), Some(a)) if a != b => {
                let gone: BTreeSet<String> = b.difference(a).cloned().collect();
                let new: BTreeSet<String> = a.difference(b).cloned().collect();
                match (gone.is_empty(), new.is_empty()) {
                    (true, false) => {
                        self.loosened(at, pointer, format!("enum gains {}", list(&new)))
                    }
                    (false, true) => {
                        self.tightened(at, pointer, format!("enum loses {}", list(&gone)))
                    }
                    _ => self.changed(
                        at,
                        pointer,
                        format!("enum loses {}, gains {}", list(&gone), list(&new)),
                    ),
                }
            }
            _ => {}
        }
    }

    /// A bound: `upper` for maxima (lower is tighter), else a minimum (higher is tighter).
    /// A boolean `exclusiveMaximum` (3.0) is compared as a change of unknown direction.
    fn bound(
        &mut self,
        keyword: &str,
        old: Option<&Value>,
        new: Option<&Value>,
        upper: bool,
        at: &str,
        pointer: &str,
    ) {
        if old == new {
            return;
        }
        let show = |v: Option<&Value>| v.map_or("none".to_owned(), Value::to_string);
        let detail = format!("{keyword} {} -> {}", show(old), show(new));
        match (old.map(Value::as_f64), new.map(Value::as_f64)) {
            (None, Some(_)) => self.tightened(at, pointer, detail),
            (Some(_), None) => self.loosened(at, pointer, detail),
            (Some(Some(b)), Some(Some(a))) if (a < b) == upper => {
                self.tightened(at, pointer, detail)
            }
            (Some(Some(_)), Some(Some(_))) => self.loosened(at, pointer, detail),
            _ => self.changed(at, pointer, detail),
        }
    }

    fn required(&mut self, old: Option<&Value>, new: Option<&Value>, at: &str, pointer: &str) {
        let names = |v: Option<&Value>| -> BTreeSet<String> {
            let names = v
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            names
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        };
        let (before, after) = (names(old), names(new));
        for name in after.difference(&before) {
            self.found(
                "property.required",
                at,
                &format!("{pointer}/{name}"),
                "a property clients may have left out is now required".to_owned(),
                true,
            );
        }
        for name in before.difference(&after) {
            self.found(
                "property.optional",
                at,
                &format!("{pointer}/{name}"),
                "was required, is optional".to_owned(),
                false,
            );
        }
    }

    fn properties(
        &mut self,
        old: &serde_json::Map<String, Value>,
        new: &serde_json::Map<String, Value>,
        at: &str,
        pointer: &str,
    ) {
        let empty = serde_json::Map::new();
        let props = |m: &serde_json::Map<String, Value>| {
            m.get("properties").and_then(Value::as_object).cloned()
        };
        let (before, after) = (props(old), props(new));
        let (before, after) = (
            before.as_ref().unwrap_or(&empty),
            after.as_ref().unwrap_or(&empty),
        );
        let closed = self.strict || new.get("additionalProperties") == Some(&Value::Bool(false));
        for (name, schema) in after {
            let here = format!("{pointer}/{name}");
            match before.get(name) {
                Some(old_schema) => self.walk(old_schema, schema, at, &here),
                // A new required one is reported by `required`.
                None => self.found(
                    "property.added",
                    at,
                    &here,
                    "a new property".to_owned(),
                    false,
                ),
            }
        }
        for name in before.keys().filter(|name| !after.contains_key(*name)) {
            let detail = if closed {
                "no longer declared, and undeclared properties are refused"
            } else {
                "no longer declared"
            };
            let here = format!("{pointer}/{name}");
            self.found("property.removed", at, &here, detail.to_owned(), closed);
        }
    }

    /// Every other keyword that differs: added or changed, a constraint of unknown
    /// direction (breaking); removed, a constraint gone.
    fn others(
        &mut self,
        old: &serde_json::Map<String, Value>,
        new: &serde_json::Map<String, Value>,
        at: &str,
        pointer: &str,
    ) {
        let skip =
            |k: &str| k.starts_with("x-") || ANNOTATIONS.contains(&k) || COMPARED.contains(&k);
        for (keyword, value) in new.iter().filter(|(k, _)| !skip(k)) {
            match old.get(keyword) {
                None => self.changed(at, pointer, format!("`{keyword}` added: {value}")),
                Some(before) if before != value => {
                    self.changed(at, pointer, format!("`{keyword}` {before} -> {value}"));
                }
                Some(_) => {}
            }
        }
        for keyword in old.keys().filter(|k| !skip(k) && !new.contains_key(*k)) {
            self.loosened(at, pointer, format!("`{keyword}` removed"));
        }
    }
}
