//! A JWT provider compiled from its settings: claim rules, where its tokens are, what
//! goes upstream, and its local keys (remote ones are fetched into the [`super::KeyRing`]).

use std::rc::Rc;

use serde_json::Value;

use super::credentials::Place;
use super::jwks::KeySet;
use super::jwt::ClaimRules;
use super::settings::{HttpUri, ProviderSettings};

/// A compiled JWT provider.
#[derive(Debug)]
pub struct Provider {
    pub name: String,
    pub(super) rules: ClaimRules,
    pub(super) locations: Vec<Place>,
    pub(super) forward: bool,
    pub(super) claim_to_headers: Vec<(String, String)>,
    /// Local keys; remote ones are fetched into the [`super::KeyRing`].
    pub(super) local: Option<Rc<KeySet>>,
    /// Where remote keys come from; `None` for `local_jwks`.
    pub remote: Option<Remote>,
}

/// Where a provider's JWKS (`remote_jwks`) or a remote policy bundle is fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub timeout_ms: u64,
    /// Seconds fetched keys (or a fetched bundle) are used before a refresh.
    pub cache_duration: u64,
}

impl Remote {
    /// Where a fetch goes, from Envoy's `http_uri` (`uri`, `cluster`, `timeout`, 5 s by
    /// default) and a `cache_duration` (`default_seconds` when absent): the form of
    /// `remote_jwks`, and of the remote policy source. `at` is the pointer of the object
    /// that holds both, for errors.
    pub(crate) fn compile(
        http_uri: HttpUri,
        cache_duration: Option<&str>,
        default_seconds: u64,
        at: &str,
    ) -> Result<Remote, (String, String)> {
        let uri = &http_uri.uri;
        let rest = uri
            .strip_prefix("http://")
            .or_else(|| uri.strip_prefix("https://"))
            .ok_or_else(|| {
                (
                    format!("{at}/http_uri/uri"),
                    "must be an http:// or https:// URL".to_owned(),
                )
            })?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let timeout = duration(http_uri.timeout.as_deref(), "/http_uri/timeout", at)?;
        let cache_duration = duration(cache_duration, "/cache_duration", at)?;
        Ok(Remote {
            cluster: http_uri.cluster,
            authority: authority.to_owned(),
            path: if path.is_empty() {
                "/".to_owned()
            } else {
                path.to_owned()
            },
            timeout_ms: timeout.unwrap_or(5).saturating_mul(1000),
            cache_duration: cache_duration.unwrap_or(default_seconds),
        })
    }
}

/// A claim as a header value: strings as they are, numbers and booleans printed,
/// arrays of those joined with `,` (as Envoy's `claim_to_headers`). Anything with a
/// control character is left out rather than sent as a broken header.
pub(super) fn claim_text(value: &Value) -> Option<String> {
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let text = match value {
        Value::Array(items) => items
            .iter()
            .map(scalar)
            .collect::<Option<Vec<_>>>()?
            .join(","),
        other => scalar(other)?,
    };
    (!text.chars().any(char::is_control)).then_some(text)
}

pub(super) fn compile(
    name: String,
    settings: ProviderSettings,
    at: &str,
) -> Result<Provider, (String, String)> {
    let err = |pointer: &str, message: String| (format!("{at}{pointer}"), message);
    let (keys, remote) = match (settings.local_jwks, settings.remote_jwks) {
        (Some(local), None) => {
            let keys = KeySet::parse(&local.inline_string)
                .map_err(|e| err("/local_jwks/inline_string", e.to_string()))?;
            (Some(Rc::new(keys)), None)
        }
        (None, Some(remote)) => {
            let remote = Remote::compile(
                remote.http_uri,
                remote.cache_duration.as_deref(),
                600,
                &format!("{at}/remote_jwks"),
            )?;
            (None, Some(remote))
        }
        _ => {
            return Err(err(
                "",
                "needs exactly one of `local_jwks` and `remote_jwks`".to_owned(),
            ))
        }
    };
    let max_lifetime = duration(settings.max_lifetime.as_deref(), "/max_lifetime", at)?;
    let mut locations: Vec<Place> = settings
        .from_headers
        .into_iter()
        .map(|h| Place::Header {
            name: h.name.to_ascii_lowercase(),
            prefix: h.value_prefix,
        })
        .chain(settings.from_params.into_iter().map(Place::Query))
        .chain(settings.from_cookies.into_iter().map(Place::Cookie))
        .collect();
    if locations.is_empty() {
        locations.push(Place::Header {
            name: "authorization".to_owned(),
            prefix: "Bearer ".to_owned(),
        });
    }
    let claim_to_headers = settings
        .claim_to_headers
        .into_iter()
        .map(|c| (c.header_name.to_ascii_lowercase(), c.claim_name))
        .collect();
    Ok(Provider {
        name,
        rules: ClaimRules {
            issuer: settings.issuer,
            audiences: settings.audiences,
            leeway: settings.clock_skew_seconds,
            require_expiration: settings.require_expiration,
            max_lifetime,
        },
        locations,
        forward: settings.forward,
        claim_to_headers,
        local: keys,
        remote,
    })
}

/// A duration as the policy writes it (`300s`, as protobuf's JSON form of a Duration,
/// in whole seconds above zero); `None` when absent.
fn duration(value: Option<&str>, pointer: &str, at: &str) -> Result<Option<u64>, (String, String)> {
    let Some(text) = value else {
        return Ok(None);
    };
    text.strip_suffix('s')
        .and_then(|n| n.parse::<u64>().ok())
        .filter(|n| *n > 0)
        .map(Some)
        .ok_or_else(|| {
            (
                format!("{at}{pointer}"),
                "must be a whole number of seconds, e.g. `300s`".to_owned(),
            )
        })
}
