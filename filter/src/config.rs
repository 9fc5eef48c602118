//! The policy as users write it: one API, its contract, and each subsystem's section.
//!
//! The same types read a policy file (`openapi: {file: …}`) and the bundle Envoy hands the
//! plugin (`openapi: {document: …}`, see [`mod@crate::gateway::bundle`]); unknown keys are
//! refused so a typo never silently disables a check. Settings every subsystem reads
//! (modes, limits) are in [`crate::settings`], below them all.

use std::collections::BTreeMap;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::contract::openapi::Document;

use crate::settings::{Limits, Mode, OperationMode, OperationSettings};

/// A policy: one API, its contract, and how strictly to apply it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyConfig {
    /// The API's name: a label in stats, problems and events (`[A-Za-z0-9._-]`, 1-64).
    pub name: String,
    #[serde(default)]
    pub mode: Mode,
    /// Refuse what the contract does not declare even where the document leaves it open:
    /// unknown body properties (mass assignment) and undeclared query parameters.
    /// Overridable per operation.
    #[serde(default)]
    pub strict: bool,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub responses: ResponseSettings,
    /// When schemas are compiled: all at configure time (`eager`, the default, so a bad
    /// schema is refused with the configuration), or per operation on first use (`lazy`,
    /// for very large contracts; `apiguard check` still compiles them all).
    #[serde(default)]
    pub schemas: SchemaCompilation,
    /// Per-operation settings, keyed by `operationId` or by `METHOD /template`. The same
    /// settings can sit in the document as an operation's `x-apiguard` extension; the
    /// policy wins.
    #[serde(default)]
    pub operations: BTreeMap<String, OperationSettings>,
    /// Token checks (JWT providers, API keys): see [`crate::security`].
    pub security: Option<crate::security::settings::SecuritySettings>,
    /// Security events: the API's owner and the log level of event lines.
    #[serde(default)]
    pub events: crate::events::EventsConfig,
    pub openapi: OpenApiSource,
    /// Rate limits, anomaly checks and quarantine (see [`crate::abuse`]); none if absent.
    #[serde(default)]
    pub abuse: Option<crate::abuse::AbuseConfig>,
    /// Behavioural detection (object enumeration, brute force, credential stuffing: see
    /// [`crate::behaviour`]); none if absent.
    #[serde(default)]
    pub behaviour: Option<crate::behaviour::BehaviourConfig>,
    #[serde(default)]
    pub stats: StatsSettings,
    /// Record requests no template matches and infer their templates (shadow endpoints);
    /// off if absent.
    pub discovery: Option<crate::discovery::DiscoverySettings>,
    /// A contract to try beside the enforced one, on the same requests, never enforced
    /// (the contract canary); none if absent.
    pub candidate: Option<CandidateConfig>,
    /// Which requests are this API's, when one configuration serves several (`apis:`, see
    /// [`crate::gateway`]); absent: every request.
    #[serde(rename = "match")]
    pub matcher: Option<ApiMatch>,
}

/// Several APIs behind one listener: one policy per API, each selected per request by its
/// `match` (see [`crate::gateway`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GatewayConfig {
    /// The gateway's name: the `api` of `route.unknown_api` events (`[A-Za-z0-9._-]`,
    /// 1-64); `gateway` if absent.
    #[serde(default = "gateway_name")]
    pub name: String,
    /// What a request no API matches meets: `enforce` (the default) refuses it with 404
    /// `route.unknown_api`, `monitor` lets it through uninspected, counted and evented.
    #[serde(default)]
    pub mode: Mode,
    /// The owner and log level of `route.unknown_api` events.
    #[serde(default)]
    pub events: crate::events::EventsConfig,
    /// The APIs: each a whole policy with its `match`.
    pub apis: Vec<PolicyConfig>,
}

fn gateway_name() -> String {
    "gateway".to_owned()
}

/// Which requests are one API's: any of its authorities (`api.example.com`, or
/// `*.example.com` for every subdomain; none: any authority), and the base path its
/// requests are under (`/v1`; none: `/`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApiMatch {
    #[serde(default)]
    pub authorities: Vec<String>,
    pub base_path: Option<String>,
}

/// The next version of the contract (`candidate`): compiled with the policy's own settings
/// (mode, limits, security, per-operation settings that name one of its operations) and
/// the same errors, then evaluated beside the enforced contract without ever deciding a
/// request. Rate limits, quarantine, anomalies and discovery are the policy's and are not
/// run twice.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CandidateConfig {
    pub openapi: OpenApiSource,
    /// The candidate's `strict`, when it differs from the policy's.
    pub strict: Option<bool>,
}

/// Stats beyond the counters, each off unless asked for: they cost host calls on every
/// request, as the counters do, but answer questions an operator asks less often.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct StatsSettings {
    /// `apiguard.inspection_us`: a histogram of the engine's microseconds per request
    /// head and per request body (two clock reads and a record each, about 1 us in the VM).
    pub inspection_time: bool,
    /// Per-operation analytics: requests by status class, a latency histogram and body
    /// size histograms, labelled by operation (`exchange::analytics`, `host::analytics`):
    /// a clock read, the status and four stat updates per request.
    pub analytics: bool,
}

/// What happens to responses that break the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ResponseSettings {
    /// `monitor` (default): record; `enforce`: replace with a 502 problem; `off`.
    pub mode: OperationMode,
    /// Remove properties the response schema does not declare (excessive data exposure).
    pub redact: bool,
}

impl Default for ResponseSettings {
    fn default() -> Self {
        ResponseSettings {
            mode: OperationMode::Monitor,
            redact: false,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SchemaCompilation {
    #[default]
    Eager,
    Lazy,
}

/// Where the OpenAPI document comes from: a file next to the policy (resolved by
/// [`crate::gateway::load_bundle`]), or the document itself, as an object or as JSON/YAML text.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OpenApiSource {
    pub file: Option<String>,
    pub document: Option<InlineDocument>,
    /// The file an inlined document was read from, so errors can still name it.
    pub source: Option<String>,
}

/// An inlined document. An object (what `apiguard bundle` writes) is read with the policy,
/// in the same pass: a large API's document is megabytes, and reading it first as raw text
/// and then again as a document cost a fifth of configure. JSON or YAML text in a string is
/// parsed on its own, after the policy.
#[derive(Debug)]
pub(crate) enum InlineDocument {
    Parsed(Box<Document>),
    Text(String),
}

impl<'de> Deserialize<'de> for InlineDocument {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Either;
        impl<'de> Visitor<'de> for Either {
            type Value = InlineDocument;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an OpenAPI document: an object, or JSON or YAML text")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<InlineDocument, E> {
                Ok(InlineDocument::Text(text.to_owned()))
            }
            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<InlineDocument, M::Error> {
                let document = Document::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(InlineDocument::Parsed(Box::new(document)))
            }
        }
        deserializer.deserialize_any(Either)
    }
}
