//! The API's contract: what its OpenAPI document declares, compiled for checking.
//!
//! Read top to bottom, as a policy is compiled:
//!
//! - [`openapi`]: the parts of an OpenAPI 3.0/3.1 document the engine needs (serde types);
//! - [`route`]: the segment trie from a request's path to its path template and operation,
//!   after [`path`] has canonicalised the path;
//! - [`operation`]: each operation's compiled contract — [`params`] in their OpenAPI
//!   styles, request [`body`] media types and readers, responses — with [`schema`] the
//!   translated and compiled JSON Schemas and [`shape`] what string values convert to;
//! - [`overrides`]: method and URL override channels the contract does not declare;
//! - [`percent`]: percent-decoding, shared by paths, parameters and forms;
//! - [`uri`]: whether a URL a request carries points inside the network (SSRF).
//!
//! Nothing here knows a request's order of checks or its credentials: the
//! [`crate::policy`] ties the contract to the other subsystems and inspects requests.

pub(crate) mod body;
pub(crate) mod openapi;
pub(crate) mod operation;
pub(crate) mod overrides;
pub(crate) mod params;
pub(crate) mod path;
pub(crate) mod percent;
pub(crate) mod route;
pub(crate) mod schema;
pub(crate) mod shape;
pub(crate) mod uri;

pub(crate) use operation::{
    compile, distinct_labels, CompiledOperation, Content, Contract, Media, Settings, FORM_TYPES,
};
