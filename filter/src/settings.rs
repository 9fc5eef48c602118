//! The settings every subsystem reads: how strictly a policy (or one operation) is
//! applied, and the caps on what a request may make the filter buffer and parse. They sit
//! below the subsystems so that each can read them without depending on the policy format.

use serde::Deserialize;

/// `enforce` answers violations itself; `monitor` lets every request through and only
/// records what it would have blocked — the way to roll a contract out safely.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    /// Violations are answered with a problem.
    Enforce,
    /// Violations are recorded, and the request goes on.
    Monitor,
}

/// `off` skips the contract checks of one operation (it stays routable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OperationMode {
    Enforce,
    Monitor,
    Off,
}

/// Settings for one operation, from the policy's `operations` or the document's
/// `x-apiguard`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OperationSettings {
    pub mode: Option<OperationMode>,
    pub strict: Option<bool>,
    /// The path parameters that name an object (`petId`, or a list): what the `behaviour`
    /// section's enumeration rule (BOLA) counts. Without it, path parameters with integer
    /// or uuid schemas are taken to be.
    pub object_id: Option<OneOrMany>,
    /// `login`: the operation checks credentials, so failed attempts and the usernames
    /// tried are what the `behaviour` section's credential rules count.
    pub sensitive: Option<Sensitive>,
}

/// A name, or a list of names.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub(crate) fn names(&self) -> &[String] {
        match self {
            OneOrMany::One(name) => std::slice::from_ref(name),
            OneOrMany::Many(names) => names,
        }
    }
}

/// What kind of sensitive operation this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sensitive {
    /// It takes a username and a secret and answers 401/403 to wrong ones.
    Login,
}

/// Size limits for what the filter buffers and parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Limits {
    /// Request or response bodies above this are refused (413) without being buffered.
    /// Keep it below the listener's `per_connection_buffer_limit_bytes` (1 MiB default).
    pub max_body_bytes: usize,
    /// Arrays and objects nested deeper than this are refused before parsing.
    pub max_json_depth: usize,
    /// Caps on counts of request input, each refused with its own `limits.*` rule before
    /// the items are read one by one. Every pass over request input is linear; the caps
    /// bound how long it runs and how much it allocates, whatever the other limits allow.
    /// Query pairs (`limits.query_pairs`).
    pub max_query_pairs: usize,
    /// Request headers, one per header line (`limits.headers`, 431).
    pub max_headers: usize,
    /// Fields of an `application/x-www-form-urlencoded` body (`limits.form_fields`).
    pub max_form_fields: usize,
    /// Parts of a `multipart/form-data` body (`limits.multipart_parts`).
    pub max_multipart_parts: usize,
    /// Members of one JSON object or items of one array in a request body or a JSON
    /// parameter (`limits.json_members`).
    pub max_json_members: usize,
    /// Objects and arrays in one request body or JSON parameter
    /// (`limits.json_containers`). Parsed, each is a node of its own (an object about
    /// 630 bytes natively, a B-tree leaf), so a body of small nested objects takes about
    /// 100 times its size: this bounds what a body can allocate, as the byte limit cannot.
    pub max_json_containers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1 << 20,
            max_json_depth: 64,
            max_query_pairs: 256,
            max_headers: 128,
            max_form_fields: 1000,
            max_multipart_parts: 1000,
            max_json_members: 10_000,
            max_json_containers: 50_000,
        }
    }
}
