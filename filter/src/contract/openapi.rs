//! The parts of an OpenAPI 3.0 / 3.1 document that the engine compiles.
//!
//! Deserialised straight into these types, never into a generic JSON tree: a large
//! contract (GitHub's is 13 MB) then costs memory only for what the filter keeps, and
//! everything else is skipped by serde as it streams past. Schemas are kept as raw JSON
//! text ([`RawValue`]) until the `schema` module translates and compiles them. Unknown
//! fields are ignored on purpose — OpenAPI documents carry descriptions, examples and
//! `x-` extensions we do not need — whereas the policy around the document refuses
//! unknown keys.
//!
//! Objects that may be a `$ref` (parameters, request bodies, responses) have an optional
//! `reference` beside optional fields rather than an untagged enum: serde buffers untagged
//! enums, which would lose the raw schema text.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::request::Method;

/// An OpenAPI document, reduced to what the engine needs.
#[derive(Debug, Deserialize)]
pub(crate) struct Document {
    /// `3.0.x` or `3.1.x`; anything else is refused at compile time.
    pub openapi: String,
    #[serde(default)]
    pub info: Info,
    #[serde(default)]
    pub servers: Vec<Server>,
    #[serde(default)]
    pub paths: BTreeMap<String, PathItem>,
    #[serde(default)]
    pub components: Components,
    /// The default security requirement of every operation.
    pub security: Option<Vec<SecurityRequirement>>,
}

/// One alternative of a security requirement: scheme names and the scopes each needs.
pub(crate) type SecurityRequirement = BTreeMap<String, Vec<String>>;

/// A `components.securitySchemes` entry, reduced to where credentials are read.
#[derive(Debug, Deserialize)]
pub struct SecurityScheme {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// `apiKey`: the header, query parameter or cookie name.
    pub name: Option<String>,
    /// `apiKey`: `header`, `query` or `cookie`.
    #[serde(rename = "in")]
    pub location: Option<String>,
    /// `http`: the auth scheme, e.g. `bearer`.
    pub scheme: Option<String>,
}

/// The document's `info`; only the owner extension matters (for events).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Info {
    /// `x-owner: {team, contact}`: who owns the API, for routing security events.
    #[serde(rename = "x-owner")]
    pub owner: Option<Owner>,
}

/// A `servers[]` entry; only the path of its URL matters to matching.
#[derive(Debug, Deserialize)]
pub(crate) struct Server {
    pub url: String,
    #[serde(default)]
    pub variables: BTreeMap<String, ServerVariable>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ServerVariable {
    pub default: String,
    #[serde(rename = "enum")]
    pub allowed: Option<Vec<String>>,
}

/// The reusable objects `$ref`s point into.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Components {
    #[serde(default)]
    pub schemas: BTreeMap<String, Box<RawValue>>,
    #[serde(default)]
    pub parameters: BTreeMap<String, Parameter>,
    #[serde(default, rename = "requestBodies")]
    pub request_bodies: BTreeMap<String, RequestBody>,
    #[serde(default)]
    pub responses: BTreeMap<String, Response>,
    #[serde(default, rename = "securitySchemes")]
    pub security_schemes: BTreeMap<String, SecurityScheme>,
}

/// A path item: the operations declared for one path template.
#[derive(Debug, Deserialize)]
pub(crate) struct PathItem {
    /// A reference to a path item elsewhere; refused at compile time (see `route`).
    #[serde(rename = "$ref")]
    pub reference: Option<String>,
    /// Path-level servers replace the document's for this path.
    pub servers: Option<Vec<Server>>,
    /// Parameters every operation of the path shares (an operation may override one).
    #[serde(default)]
    pub parameters: Vec<Parameter>,
    get: Option<Operation>,
    put: Option<Operation>,
    post: Option<Operation>,
    delete: Option<Operation>,
    options: Option<Operation>,
    head: Option<Operation>,
    patch: Option<Operation>,
    trace: Option<Operation>,
}

impl PathItem {
    pub(crate) fn operation(&self, method: Method) -> Option<&Operation> {
        match method {
            Method::Get => self.get.as_ref(),
            Method::Put => self.put.as_ref(),
            Method::Post => self.post.as_ref(),
            Method::Delete => self.delete.as_ref(),
            Method::Options => self.options.as_ref(),
            Method::Head => self.head.as_ref(),
            Method::Patch => self.patch.as_ref(),
            Method::Trace => self.trace.as_ref(),
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct Operation {
    #[serde(rename = "operationId")]
    pub operation_id: Option<String>,
    #[serde(default)]
    pub parameters: Vec<Parameter>,
    #[serde(rename = "requestBody")]
    pub request_body: Option<RequestBody>,
    #[serde(default)]
    pub responses: BTreeMap<String, Response>,
    /// Per-operation settings inside the contract itself.
    #[serde(rename = "x-apiguard")]
    pub apiguard: Option<crate::settings::OperationSettings>,
    /// Overrides the document's `security`; `[]` means no credentials are needed.
    pub security: Option<Vec<SecurityRequirement>>,
    /// Still served, but on its way out: calls to it are counted (zombie endpoints).
    #[serde(default)]
    pub deprecated: bool,
}

/// A parameter, or a `$ref` to one in `components.parameters`.
#[derive(Debug, Deserialize)]
pub(crate) struct Parameter {
    #[serde(rename = "$ref")]
    pub reference: Option<String>,
    pub name: Option<String>,
    #[serde(rename = "in")]
    pub location: Option<String>,
    #[serde(default)]
    pub required: bool,
    pub style: Option<String>,
    pub explode: Option<bool>,
    #[serde(default, rename = "allowEmptyValue")]
    pub allow_empty_value: bool,
    #[serde(default, rename = "allowReserved")]
    pub allow_reserved: bool,
    pub schema: Option<Box<RawValue>>,
    /// The alternative to `schema`: a media type whose schema the value is parsed with.
    pub content: Option<BTreeMap<String, MediaTypeObject>>,
}

/// A request body, or a `$ref` to one in `components.requestBodies`.
#[derive(Debug, Deserialize)]
pub(crate) struct RequestBody {
    #[serde(rename = "$ref")]
    pub reference: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub content: BTreeMap<String, MediaTypeObject>,
}

/// A response, or a `$ref` to one in `components.responses`.
#[derive(Debug, Deserialize)]
pub(crate) struct Response {
    #[serde(rename = "$ref")]
    pub reference: Option<String>,
    /// Absent means the response has no body.
    pub content: Option<BTreeMap<String, MediaTypeObject>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct MediaTypeObject {
    pub schema: Option<Box<RawValue>>,
}

/// The dialect of a document, from its `openapi` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V3_0,
    V3_1,
}

impl Document {
    /// The document's dialect, or `None` when it is not OpenAPI 3.0 or 3.1.
    pub(crate) fn version(&self) -> Option<Version> {
        let mut parts = self.openapi.split('.');
        match (parts.next(), parts.next()) {
            (Some("3"), Some("0")) => Some(Version::V3_0),
            (Some("3"), Some("1")) => Some(Version::V3_1),
            _ => None,
        }
    }
}

/// An API's owner: `{team, contact}` in the policy, or `x-owner` in the document's `info`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Owner {
    pub team: Option<String>,
    /// An address, a channel or a queue: whatever the ITSM routes by.
    pub contact: Option<String>,
}

/// Local `$ref` hops [`follow_ref`] takes in a row before it gives up.
const MAX_REF_HOPS: usize = 16;

/// A local `$ref` (`#/components/...`) in an untyped document followed to what it names;
/// anything else as is, and `null` for a reference that names nothing or a chain longer
/// than [`MAX_REF_HOPS`] (a cycle). For the tools that read a document as JSON (the drift
/// report, the simulations), not for compiling one.
pub fn follow_ref<'d>(
    document: &'d serde_json::Value,
    mut value: &'d serde_json::Value,
) -> &'d serde_json::Value {
    for _ in 0..MAX_REF_HOPS {
        let Some(pointer) = value.get("$ref").and_then(serde_json::Value::as_str) else {
            return value;
        };
        match pointer.strip_prefix('#').and_then(|p| document.pointer(p)) {
            Some(target) => value = target,
            None => return &serde_json::Value::Null,
        }
    }
    &serde_json::Value::Null
}
