//! The sender's configuration and the batch bodies it posts, one per collector format.
//!
//! The sender is the same `.wasm` loaded once per Envoy process as a bootstrap Wasm
//! service (`singleton: true`); its plugin configuration is a [`SenderConfig`] instead
//! of a policy, which is how its root context knows it is the sender.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value};

use super::{ocsf, Event};

/// The whole configuration of the bootstrap service: `{"sender": {...}}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SenderDocument {
    pub sender: SenderConfig,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SenderConfig {
    /// The Envoy cluster of the collector.
    pub cluster: String,
    /// The request path, e.g. `/services/collector/event` for Splunk HEC.
    pub path: String,
    /// The `:authority` of the requests (default: the cluster name).
    pub authority: Option<String>,
    pub format: Format,
    /// Extra request headers, e.g. `authorization: Splunk <token>`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Events per request, at most.
    #[serde(default = "defaults::batch_max")]
    pub batch_max: usize,
    /// How often the sender flushes (and closes fold windows).
    #[serde(default = "defaults::flush_ms")]
    pub flush_ms: u64,
    /// Events the sender holds while the collector is slow or down; beyond it they are
    /// dropped and counted.
    #[serde(default = "defaults::queue_max")]
    pub queue_max: usize,
    /// The folding window; 0 turns folding off.
    #[serde(default = "defaults::fold_window_ms")]
    pub fold_window_ms: u64,
    /// Distinct (rule, client, operation) keys folded at once.
    #[serde(default = "defaults::fold_keys_max")]
    pub fold_keys_max: usize,
    /// A collector request that takes longer fails, and its batch is dropped.
    #[serde(default = "defaults::timeout_ms")]
    pub timeout_ms: u64,
}

impl SenderDocument {
    /// Reads a plugin configuration as a sender's: `None` when it is not one (it has no
    /// top-level `sender` key — then it is a policy), else the configuration or why it is
    /// refused. Envoy hands it over as a serialised `Struct` or as JSON text.
    pub(crate) fn detect(configuration: &[u8]) -> Option<Result<SenderConfig, String>> {
        let json = match crate::structpb::to_json_if_struct(configuration) {
            Some(Ok(json)) => json,
            Some(Err(_)) => return None,
            None => std::str::from_utf8(configuration).ok()?.to_owned(),
        };
        // A policy may carry a 13 MB document: look for `sender` without building a tree
        // of the rest (which would double the VM's memory peak at configure time).
        let probe: SenderProbe = serde_json::from_str(&json).ok()?;
        probe.sender?;
        Some(
            serde_path_to_error::deserialize::<_, SenderDocument>(
                &mut serde_json::Deserializer::from_str(&json),
            )
            .map(|document| document.sender)
            .map_err(|e| format!("sender configuration at `{}`: {}", e.path(), e.inner())),
        )
    }
}

/// Whether a configuration has a top-level `sender`; every other key is skipped unread.
#[derive(Deserialize)]
struct SenderProbe {
    sender: Option<serde::de::IgnoredAny>,
}

mod defaults {
    pub(super) fn batch_max() -> usize {
        100
    }
    pub(super) fn flush_ms() -> u64 {
        1_000
    }
    pub(super) fn queue_max() -> usize {
        10_000
    }
    pub(super) fn fold_window_ms() -> u64 {
        10_000
    }
    pub(super) fn fold_keys_max() -> usize {
        4_096
    }
    pub(super) fn timeout_ms() -> u64 {
        5_000
    }
}

/// The collector's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Format {
    /// A JSON array of OCSF objects.
    Ocsf,
    /// Splunk HTTP Event Collector (`/services/collector/event`): concatenated
    /// `{"time", "source", "sourcetype", "event"}` objects, one per line.
    SplunkHec,
    /// `{"source": "apiguard", "events": [OCSF objects]}`.
    Webhook,
}

/// Every format is sent as JSON (HEC reads its body as a stream of JSON objects).
pub(crate) const CONTENT_TYPE: &str = "application/json";

impl Format {
    /// The request body for a batch.
    pub(crate) fn body(self, events: &[Event]) -> Vec<u8> {
        let findings = events.iter().map(ocsf::detection_finding);
        match self {
            Format::Ocsf => Value::Array(findings.collect()).to_string().into_bytes(),
            Format::Webhook => {
                json!({"source": "apiguard", "events": findings.collect::<Vec<_>>()})
                    .to_string()
                    .into_bytes()
            }
            Format::SplunkHec => {
                let mut body = Vec::new();
                for (event, finding) in events.iter().zip(findings) {
                    let wrapped = json!({
                        // HEC wants epoch seconds; milliseconds as the fraction.
                        "time": hec_time(event.time_ms),
                        "source": "apiguard",
                        "sourcetype": "ocsf:detection_finding",
                        "event": finding,
                    });
                    body.extend_from_slice(wrapped.to_string().as_bytes());
                    body.push(b'\n');
                }
                body
            }
        }
    }
}

fn hec_time(time_ms: u64) -> Value {
    let seconds = serde_json::Number::from_f64(time_ms as f64 / 1000.0);
    seconds.map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EventSettings, Severity};

    fn events() -> Vec<Event> {
        (0..2)
            .map(|i| {
                Event::system(
                    &EventSettings::default(),
                    1_700_000_000_123 + i,
                    "apiguard.policy_loaded",
                    Severity::Informational,
                    "loaded",
                )
            })
            .collect()
    }

    #[test]
    fn ocsf_is_an_array_of_findings() {
        let body: Value = serde_json::from_slice(&Format::Ocsf.body(&events())).unwrap();
        assert_eq!(body.as_array().map(Vec::len), Some(2));
        assert_eq!(body[0]["class_uid"], 2004);
    }

    #[test]
    fn webhook_wraps_the_findings() {
        let body: Value = serde_json::from_slice(&Format::Webhook.body(&events())).unwrap();
        assert_eq!(body["source"], "apiguard");
        assert_eq!(body["events"][1]["time"], 1_700_000_000_124u64);
    }

    #[test]
    fn splunk_hec_is_one_event_object_per_line() {
        let body = String::from_utf8(Format::SplunkHec.body(&events())).unwrap();
        let lines: Vec<Value> = body
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["time"], 1_700_000_000.123);
        assert_eq!(lines[0]["sourcetype"], "ocsf:detection_finding");
        assert_eq!(lines[0]["event"]["class_uid"], 2004);
    }

    #[test]
    fn a_sender_configuration_is_told_apart_from_a_policy() {
        let sender = br#"{"sender": {"cluster": "c", "path": "/e", "format": "webhook"}}"#;
        let config = SenderDocument::detect(sender).unwrap().unwrap();
        assert_eq!((config.format, config.batch_max), (Format::Webhook, 100));
        assert!(SenderDocument::detect(br#"{"name": "pets", "openapi": {}}"#).is_none());
        assert!(SenderDocument::detect(b"name: pets").is_none());
        let typo = SenderDocument::detect(
            br#"{"sender": {"cluster": "c", "path": "/e", "format": "xml"}}"#,
        );
        let error = typo.unwrap().unwrap_err();
        assert!(error.contains("`sender.format`"), "{error}");
    }

    #[test]
    fn the_sender_configuration_has_defaults_and_refuses_typos() {
        let config: SenderDocument = serde_json::from_str(
            r#"{"sender": {"cluster": "c", "path": "/e", "format": "splunk_hec"}}"#,
        )
        .unwrap();
        assert_eq!(config.sender.queue_max, 10_000);
        assert!(serde_json::from_str::<SenderDocument>(
            r#"{"sender": {"cluster": "c", "path": "/e", "format": "ocsf", "batch": 1}}"#
        )
        .is_err());
    }
}
