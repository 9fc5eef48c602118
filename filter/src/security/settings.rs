//! The policy's `security` key, as users write it. Names follow Envoy's `jwt_authn`
//! filter (`providers`, `local_jwks`, `remote_jwks.http_uri`, `from_headers`, `forward`,
//! `claim_to_headers`, `clock_skew_seconds`), so an Envoy user reads it at once.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecuritySettings {
    /// JWT providers. An OpenAPI security scheme of type `oauth2`, `openIdConnect` or
    /// `http` (`bearer`) uses the provider of the same name.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderSettings>,
    /// Accepted keys per `apiKey` security scheme name.
    #[serde(default)]
    pub api_keys: BTreeMap<String, Vec<ApiKeySettings>>,
    /// The request header that carries an API key's consumer id upstream.
    #[serde(default = "default_consumer_header")]
    pub consumer_header: String,
    /// Tokens longer than this are refused before any decoding.
    #[serde(default = "default_max_token_bytes")]
    pub max_token_bytes: usize,
    /// Verified tokens remembered per Envoy worker.
    #[serde(default = "default_token_cache_entries")]
    pub token_cache_entries: usize,
    /// What happens when a provider has no keys (remote JWKS never fetched): `deny` (503,
    /// the default) or `allow` (fail open: the request goes on without an identity).
    #[serde(default)]
    pub keys_unavailable: KeysUnavailable,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeysUnavailable {
    #[default]
    Deny,
    Allow,
}

fn default_consumer_header() -> String {
    "x-apiguard-consumer".to_owned()
}

fn default_max_token_bytes() -> usize {
    8 * 1024
}

fn default_token_cache_entries() -> usize {
    1024
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// Required `iss`; absent means any issuer the keys sign for.
    pub issuer: Option<String>,
    /// Accepted `aud` values; empty means `aud` is not checked.
    #[serde(default)]
    pub audiences: Vec<String>,
    pub local_jwks: Option<LocalJwks>,
    pub remote_jwks: Option<RemoteJwks>,
    /// Where tokens are read; all empty means `Authorization: Bearer <token>`.
    #[serde(default)]
    pub from_headers: Vec<FromHeader>,
    #[serde(default)]
    pub from_params: Vec<String>,
    #[serde(default)]
    pub from_cookies: Vec<String>,
    /// Keep the token on the request sent upstream. `false`: it is removed from where it
    /// came: its header, its query parameter (`:path` is rewritten without it) or its
    /// cookie.
    #[serde(default)]
    pub forward: bool,
    #[serde(default)]
    pub claim_to_headers: Vec<ClaimToHeader>,
    /// Leeway for `exp`, `nbf` and `iat`.
    #[serde(default = "default_clock_skew")]
    pub clock_skew_seconds: u64,
    /// Refuse tokens without `exp`, which never expire. Envoy's `jwt_authn` defaults to
    /// `false`; a token that is valid forever once leaked is not something to accept by
    /// default, so here it is `true`.
    #[serde(default = "default_require_expiration")]
    pub require_expiration: bool,
    /// The longest a token may still be valid, e.g. `86400s`: a token whose `exp` is
    /// further ahead is refused (as Envoy's `max_lifetime`, which also implies
    /// `require_expiration`). Absent: not checked.
    pub max_lifetime: Option<String>,
}

fn default_clock_skew() -> u64 {
    60
}

fn default_require_expiration() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalJwks {
    /// The JWK set as JSON text.
    pub inline_string: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteJwks {
    pub http_uri: HttpUri,
    /// How long fetched keys are used before a refresh, e.g. `300s` (default 600s).
    pub cache_duration: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpUri {
    /// `http(s)://authority/path`; the authority becomes `:authority`, the path `:path`.
    pub uri: String,
    /// The Envoy cluster the fetch goes through.
    pub cluster: String,
    /// e.g. `5s` (default).
    pub timeout: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FromHeader {
    pub name: String,
    #[serde(default)]
    pub value_prefix: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimToHeader {
    pub header_name: String,
    pub claim_name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySettings {
    /// Hex SHA-256 of the key (`printf %s "$KEY" | sha256sum`).
    pub sha256: String,
    pub consumer: String,
    #[serde(default)]
    pub scopes: Vec<String>,
}
