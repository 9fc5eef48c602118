//! The parts of an OpenAPI 3.0 / 3.1 document that the engine compiles.
//!
//! Deserialised straight into these types, never into a generic JSON tree: a large
//! contract (GitHub's is 13 MB) then costs memory only for what the filter keeps, and
//! everything else is skipped by serde as it streams past. Unknown fields are ignored on
//! purpose — OpenAPI documents carry descriptions, examples and `x-` extensions we do not
//! need — whereas the policy around the document refuses unknown keys.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::verdict::Method;

/// An OpenAPI document, reduced to what the engine needs.
#[derive(Debug, Deserialize)]
pub struct Document {
    /// `3.0.x` or `3.1.x`; anything else is refused at compile time.
    pub openapi: String,
    #[serde(default)]
    pub servers: Vec<Server>,
    #[serde(default)]
    pub paths: BTreeMap<String, PathItem>,
}

/// A `servers[]` entry; only the path of its URL matters to matching.
#[derive(Debug, Deserialize)]
pub struct Server {
    pub url: String,
    #[serde(default)]
    pub variables: BTreeMap<String, ServerVariable>,
}

#[derive(Debug, Deserialize)]
pub struct ServerVariable {
    pub default: String,
    #[serde(rename = "enum")]
    pub allowed: Option<Vec<String>>,
}

/// A path item: the operations declared for one path template.
#[derive(Debug, Deserialize)]
pub struct PathItem {
    /// A reference to a path item elsewhere; refused at compile time (see `route`).
    #[serde(rename = "$ref")]
    pub reference: Option<String>,
    /// Path-level servers replace the document's for this path.
    pub servers: Option<Vec<Server>>,
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
    pub fn operation(&self, method: Method) -> Option<&Operation> {
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
pub struct Operation {
    #[serde(rename = "operationId")]
    pub operation_id: Option<String>,
}

/// The dialect of a document, from its `openapi` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V3_0,
    V3_1,
}

impl Document {
    /// The document's dialect, or `None` when it is not OpenAPI 3.0 or 3.1.
    pub fn version(&self) -> Option<Version> {
        let mut parts = self.openapi.split('.');
        match (parts.next(), parts.next()) {
            (Some("3"), Some("0")) => Some(Version::V3_0),
            (Some("3"), Some("1")) => Some(Version::V3_1),
            _ => None,
        }
    }
}
