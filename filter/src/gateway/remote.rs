//! The remote policy source: for fleets without an xDS server, the plugin configuration
//! names where the bundle (what `apiguard bundle` writes) is fetched, in the form of
//! Envoy's `remote_jwks` and `RemoteDataSource`:
//!
//! ```json
//! {"remote": {"http_uri": {"uri": "http://policies/bundles/petstore.json",
//!                          "cluster": "policy_server", "timeout": "5s"},
//!             "cache_duration": "30s", "sha256": "<hex, optional>"},
//!  "default_config": {… an inline bundle, optional …}}
//! ```
//!
//! The host fetches it on the root's tick through the named cluster; this module decides
//! what each answer comes to ([`Poll::answer`]): the ETag bookkeeping (`If-None-Match`),
//! the sha256 pin, the compile (the configure path's [`Gateway::compile`]). A rejected
//! answer never replaces the bundle that serves: the last good one keeps serving until a
//! good one comes. Until a first one has loaded (and with no `default_config`) requests
//! are refused (`policy.unavailable`, 503): fail closed, like ECDS without a default.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::Gateway;
use crate::error::{parse_json, Location, PolicyError};
use crate::policy::PLUGIN_CONFIGURATION;
use crate::security::settings::HttpUri;
use crate::security::Remote;
use crate::structpb;

/// How often the bundle is asked for when `cache_duration` is not given.
const DEFAULT_SECONDS: u64 = 30;
/// Larger bundles are not read: Envoy's own limit on a call's answer
/// (`http.async_response_buffer_limit`, 32 MiB), stated here so the ceiling is ours too.
pub(crate) const MAX_BUNDLE_BYTES: usize = 32 * 1024 * 1024;
/// The most time between two attempts after a failed one (or `cache_duration`, if less):
/// a VM with no policy yet refuses every request, so it retries sooner than it polls.
const RETRY_MS: u64 = 5_000;

/// A configuration that names a remote source, compiled.
#[derive(Debug)]
pub(crate) struct RemoteSource {
    /// Where the bundle is fetched, and `cache_duration`: how often it is asked for.
    pub(crate) remote: Remote,
    /// The bundle's SHA-256 (lowercase hex) when pinned: any other bundle is refused.
    pub(crate) pin: Option<String>,
    /// What serves until the first fetched bundle loads; `None`: requests are refused
    /// until then.
    pub(crate) default: Option<Gateway>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceConfig {
    remote: RemoteSettings,
    default_config: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoteSettings {
    http_uri: HttpUri,
    /// How long a fetched bundle serves before it is asked for again, e.g. `30s`.
    cache_duration: Option<String>,
    sha256: Option<String>,
}

/// Whether a configuration has a top-level `remote`; every other key is skipped unread.
#[derive(Deserialize)]
struct Probe {
    remote: Option<IgnoredAny>,
}

impl RemoteSource {
    /// Reads a plugin configuration as a remote source: `None` when it is not one (no
    /// top-level `remote` key: then it is a policy or a gateway), else the source or why
    /// it is refused, located like a policy's errors.
    /// Envoy hands it over as JSON text or a serialised `Struct`; anything else (not
    /// UTF-8, YAML text) is no remote source, and compiling it as a policy says why.
    pub(crate) fn detect(configuration: &[u8]) -> Option<Result<RemoteSource, PolicyError>> {
        let json = match structpb::to_json_if_struct(configuration) {
            Some(Ok(json)) => Cow::Owned(json),
            Some(Err(_)) => return None,
            None => Cow::Borrowed(std::str::from_utf8(configuration).ok()?),
        };
        // A policy may carry a 13 MB document: look for `remote` without a tree (or a
        // copy) of it.
        serde_json::from_str::<Probe>(&json).ok()?.remote?;
        Some(RemoteSource::compile(&json))
    }

    fn compile(json: &str) -> Result<RemoteSource, PolicyError> {
        let origin = PLUGIN_CONFIGURATION;
        let config: SourceConfig = parse_json(json, origin)?;
        let settings = config.remote;
        let remote = Remote::compile(
            settings.http_uri,
            settings.cache_duration.as_deref(),
            DEFAULT_SECONDS,
            "/remote",
        )
        .map_err(|(pointer, message)| PolicyError::Invalid {
            at: Location::new(origin, pointer),
            message,
        })?;
        let pin = match settings.sha256 {
            Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Some(hex.to_ascii_lowercase())
            }
            Some(_) => {
                return Err(PolicyError::Invalid {
                    at: Location::new(origin, "/remote/sha256"),
                    message: "must be the bundle's SHA-256 as 64 hex digits \
                              (`sha256sum bundle.json`)"
                        .to_owned(),
                })
            }
            None => None,
        };
        let default = match config.default_config {
            Some(bundle) => Some(
                Gateway::compile(bundle.to_string())
                    .map_err(|e| e.under(origin, "/default_config"))?,
            ),
            None => None,
        };
        Ok(RemoteSource {
            remote,
            pin,
            default,
        })
    }
}

/// What came back for a fetch, as the host read it.
#[derive(Debug, Default)]
pub(crate) struct Answer {
    /// `None`: no answer (the call failed, timed out, was reset, or its answer was over
    /// Envoy's buffer limit).
    pub(crate) status: Option<u16>,
    pub(crate) etag: Option<String>,
    /// `None` when the host could not give it.
    pub(crate) body: Option<Vec<u8>>,
}

/// What an answer comes to.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// A new bundle compiled: serve it for new requests.
    Load {
        gateway: Box<Gateway>,
        /// The bundle's SHA-256, lowercase hex.
        sha256: String,
    },
    /// 304, or a 200 with the bytes that serve already: nothing changes.
    NotModified,
    /// No usable answer: nothing changes.
    Failed(String),
    /// A bundle that is not the pinned one: refused, nothing changes.
    RejectedPin { sha256: String },
    /// A bundle that does not compile: refused, nothing changes.
    RejectedCompile(PolicyError),
}

/// One VM's polling of the source: when the next fetch is due and what the last good
/// bundle was (its ETag for `If-None-Match`, its hash).
#[derive(Debug)]
pub(crate) struct Poll {
    /// Milliseconds between fetches (`cache_duration`).
    interval_ms: u64,
    /// When the next fetch may start (host clock, ms).
    next_ms: u64,
    in_flight: bool,
    /// The ETag of the bundle that serves, sent as `If-None-Match`.
    etag: Option<String>,
    /// The SHA-256 of the fetched bundle that serves.
    serving: Option<String>,
}

impl Poll {
    /// A poll whose first fetch is due at once.
    pub(crate) fn new(source: &RemoteSource) -> Poll {
        Poll {
            interval_ms: source.remote.cache_duration.saturating_mul(1000),
            next_ms: 0,
            in_flight: false,
            etag: None,
            serving: None,
        }
    }

    /// Whether a fetch should start now; when it answers `true` the fetch is in flight
    /// until [`Poll::answer`].
    pub(crate) fn start(&mut self, now_ms: u64) -> bool {
        if self.in_flight || now_ms < self.next_ms {
            return false;
        }
        self.in_flight = true;
        true
    }

    /// The fetch's request headers: `If-None-Match` once a bundle with an ETag serves.
    pub(crate) fn headers<'a>(&'a self, remote: &'a Remote) -> Vec<(&'a str, &'a str)> {
        let mut headers = vec![
            (":method", "GET"),
            (":path", remote.path.as_str()),
            (":authority", remote.authority.as_str()),
            ("accept", "application/json"),
        ];
        if let Some(etag) = &self.etag {
            headers.push(("if-none-match", etag.as_str()));
        }
        headers
    }

    /// What the fetch's `answer` comes to, with `pin` the SHA-256 the source requires;
    /// schedules the next fetch (sooner after a failure, see [`RETRY_MS`]).
    pub(crate) fn answer(&mut self, answer: Answer, pin: Option<&str>, now_ms: u64) -> Outcome {
        self.in_flight = false;
        let outcome = self.judge(answer, pin);
        let wait = match outcome {
            Outcome::Load { .. } | Outcome::NotModified => self.interval_ms,
            _ => self.interval_ms.min(RETRY_MS),
        };
        self.next_ms = now_ms.saturating_add(wait);
        outcome
    }

    fn judge(&mut self, answer: Answer, pin: Option<&str>) -> Outcome {
        let body = match (answer.status, answer.body) {
            (Some(304), _) if self.serving.is_some() => return Outcome::NotModified,
            (Some(200), Some(body)) => body,
            (Some(200), None) => {
                return Outcome::Failed(format!(
                    "status 200 without a body, or one over {MAX_BUNDLE_BYTES} bytes"
                ))
            }
            (Some(status), _) => return Outcome::Failed(format!("status {status}")),
            (None, _) => {
                return Outcome::Failed(
                    "no answer (refused, timed out, reset, or over Envoy's buffer limit)"
                        .to_owned(),
                )
            }
        };
        let sha256: String = (Sha256::digest(&body).iter())
            .map(|b| format!("{b:02x}"))
            .collect();
        if pin.is_some_and(|pin| pin != sha256) {
            return Outcome::RejectedPin { sha256 };
        }
        if self.serving.as_deref() == Some(sha256.as_str()) {
            // A server without ETags: the same bytes are not compiled again.
            self.etag = answer.etag;
            return Outcome::NotModified;
        }
        match Gateway::compile(body) {
            Ok(gateway) => {
                self.etag = answer.etag;
                self.serving = Some(sha256.clone());
                Outcome::Load {
                    gateway: Box::new(gateway),
                    sha256,
                }
            }
            Err(error) => Outcome::RejectedCompile(error),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn bundle(path: &str) -> Value {
        json!({
            "name": "pets",
            "openapi": {"document": {
                "openapi": "3.0.3",
                "paths": {path: {"get": {"operationId": "get"}}},
            }},
        })
    }

    fn source(extra: Value) -> Result<RemoteSource, PolicyError> {
        let mut remote =
            json!({"http_uri": {"uri": "http://policies/b.json", "cluster": "policy_server"}});
        if let (Some(remote), Some(extra)) = (remote.as_object_mut(), extra.as_object()) {
            remote.extend(extra.clone());
        }
        RemoteSource::detect(json!({ "remote": remote }).to_string().as_bytes()).unwrap()
    }

    fn sha(bytes: &[u8]) -> String {
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn ok(body: &[u8], etag: &str) -> Answer {
        Answer {
            status: Some(200),
            etag: Some(etag.to_owned()),
            body: Some(body.to_vec()),
        }
    }

    #[test]
    fn a_policy_is_not_a_remote_source() {
        assert!(RemoteSource::detect(bundle("/pets").to_string().as_bytes()).is_none());
    }

    #[test]
    fn the_source_reads_like_remote_jwks() {
        let source = source(json!({"cache_duration": "7s"})).unwrap();
        assert_eq!(source.remote.cluster, "policy_server");
        assert_eq!(source.remote.authority, "policies");
        assert_eq!(source.remote.path, "/b.json");
        assert_eq!(source.remote.timeout_ms, 5_000);
        assert_eq!(source.remote.cache_duration, 7);
        assert!(source.pin.is_none() && source.default.is_none());
        let source = self::source(json!({})).unwrap();
        assert_eq!(source.remote.cache_duration, DEFAULT_SECONDS);
    }

    #[test]
    fn errors_are_located() {
        let at = |extra: Value| source(extra).unwrap_err().to_string();
        assert!(at(json!({"sha256": "abc"})).contains("/remote/sha256"));
        assert!(at(json!({"cache_duration": "soon"})).contains("/remote/cache_duration"));
        assert!(at(json!({"refresh": "1s"})).contains("refresh"));
        let error = source(json!({"http_uri": {"uri": "ftp://x/", "cluster": "c"}}));
        assert!(error
            .unwrap_err()
            .to_string()
            .contains("/remote/http_uri/uri"));
        let config = json!({
            "remote": {"http_uri": {"uri": "http://p/b.json", "cluster": "c"}},
            "default_config": {"name": "pets", "openapi": {"document": {"openapi": "3.0.3", "paths": {"/p": {"get": {"operationId": 7}}}}}},
        });
        let error = RemoteSource::detect(config.to_string().as_bytes()).unwrap();
        assert!(error.unwrap_err().to_string().contains("/default_config"));
    }

    #[test]
    fn a_default_config_compiles_at_configure() {
        let config = json!({
            "remote": {"http_uri": {"uri": "http://p/b.json", "cluster": "c"}},
            "default_config": bundle("/pets"),
        });
        let source = RemoteSource::detect(config.to_string().as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(source.default.unwrap().name(), "pets");
    }

    #[test]
    fn a_good_bundle_loads_and_its_etag_is_asked_for_next() {
        let source = source(json!({"cache_duration": "10s"})).unwrap();
        let mut poll = Poll::new(&source);
        assert!(poll.start(1_000));
        assert!(!poll.start(1_000), "one fetch at a time");
        let no_etag = poll.headers(&source.remote);
        assert!(!no_etag.iter().any(|(name, _)| *name == "if-none-match"));
        let a = bundle("/pets").to_string();
        match poll.answer(ok(a.as_bytes(), "\"a\""), None, 1_000) {
            Outcome::Load { gateway, sha256 } => {
                assert_eq!(gateway.name(), "pets");
                assert_eq!(sha256, sha(a.as_bytes()));
            }
            other => panic!("{other:?}"),
        }
        assert!(!poll.start(10_999), "not before cache_duration");
        assert!(poll.start(11_000));
        assert!(poll
            .headers(&source.remote)
            .contains(&("if-none-match", "\"a\"")));
        let not_modified = Answer {
            status: Some(304),
            ..Answer::default()
        };
        assert!(matches!(
            poll.answer(not_modified, None, 11_000),
            Outcome::NotModified
        ));
        // The same bytes again (a server without ETags) are not compiled again.
        assert!(poll.start(21_000));
        let same = poll.answer(ok(a.as_bytes(), "\"a2\""), None, 21_000);
        assert!(matches!(same, Outcome::NotModified));
        assert!(poll
            .headers(&source.remote)
            .contains(&("if-none-match", "\"a2\"")));
    }

    #[test]
    fn failures_and_rejections_keep_what_serves_and_retry_sooner() {
        let a = bundle("/pets").to_string();
        let b = bundle("/orders").to_string();
        let source = source(json!({"cache_duration": "60s", "sha256": sha(a.as_bytes())})).unwrap();
        let pin = source.pin.as_deref();
        let mut poll = Poll::new(&source);
        let at = |poll: &mut Poll, answer: Answer, now: u64| {
            assert!(poll.start(now));
            poll.answer(answer, pin, now)
        };
        // A 304 before anything loaded (a server confused about our ETag) loads nothing.
        let early = Answer {
            status: Some(304),
            ..Answer::default()
        };
        assert!(matches!(at(&mut poll, early, 0), Outcome::Failed(_)));
        let loaded = at(&mut poll, ok(a.as_bytes(), "\"a\""), 5_000);
        assert!(matches!(loaded, Outcome::Load { .. }));
        let pinned = at(&mut poll, ok(b.as_bytes(), "\"b\""), 65_000);
        assert!(matches!(pinned, Outcome::RejectedPin { sha256 } if sha256 == sha(b.as_bytes())));
        assert!(
            !poll.start(69_999) && poll.start(70_000),
            "retried after 5 s"
        );
        let failed = poll.answer(Answer::default(), pin, 70_000);
        assert!(matches!(failed, Outcome::Failed(_)));
        let status = Answer {
            status: Some(503),
            ..Answer::default()
        };
        assert!(matches!(at(&mut poll, status, 75_000), Outcome::Failed(m) if m == "status 503"));
        // The ETag asked for is still the last good bundle's.
        assert!(poll
            .headers(&source.remote)
            .contains(&("if-none-match", "\"a\"")));
    }

    #[test]
    fn a_bundle_that_does_not_compile_is_rejected() {
        let source = source(json!({})).unwrap();
        let mut poll = Poll::new(&source);
        assert!(poll.start(0));
        let garbage = poll.answer(ok(b"{not json", "\"g\""), None, 0);
        assert!(matches!(garbage, Outcome::RejectedCompile(_)));
        assert!(!poll
            .headers(&source.remote)
            .iter()
            .any(|(n, _)| *n == "if-none-match"));
    }
}
