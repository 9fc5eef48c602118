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
//!
//! Here: the schema set, its shared validators, compiling and validating. Beside it:
//! `translate` (OpenAPI into self-contained 2020-12 documents), `shapes` (how values
//! that travel as strings are laid out), `redact` (responses trimmed to their schema)
//! and `reasons` (what a violation says).

use std::cell::{OnceCell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{Draft, Validator};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::contract::openapi::Version;
use crate::contract::shape::Types;
use crate::error::{pointer_token, Location, PolicyError};
use crate::verdict::sanitize;

mod reasons;
mod redact;
mod shapes;
mod translate;

use reasons::{keyword, reason};
use translate::translate;

/// Components beyond this many `$ref` hops are not followed when computing a shape.
const MAX_REF_HOPS: usize = 32;
/// How many violations one value reports at most.
pub(crate) const MAX_VIOLATIONS: usize = 10;

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
    pub(crate) fn resolve(&self, value: &Value) -> Value {
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
                ValidationErrorKind::Format { format } if format == PUBLIC_URI => {
                    out.push(SchemaViolation {
                        pointer,
                        keyword: SSRF,
                        reason: "points inside the network (loopback, private or link-local \
                                 address, or a scheme other than http and https)"
                            .to_owned(),
                    });
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

/// The format a request's `uri` and `url` values are checked with: a URI that does not point
/// inside the network ([`crate::contract::uri`]).
pub(crate) const PUBLIC_URI: &str = "apiguard-public-uri";

/// The keyword of a [`SchemaViolation`] whose value points inside the network: the
/// request's own rule (`request.ssrf`), not a schema violation like others.
pub(crate) const SSRF: &str = "ssrf";

/// Whether a value does not point inside the network (its form as a URI is the `uri`
/// format's to check).
fn public_uri(value: &str) -> bool {
    !crate::contract::uri::is_internal(value)
}

/// Compiles a translated schema.
fn build(schema: &Value) -> Result<Validator, String> {
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        .should_validate_formats(true)
        .with_format(PUBLIC_URI, public_uri)
        .build(schema)
        .map_err(|e| format!("the schema does not compile: {e}"))
}

#[cfg(test)]
mod tests;
