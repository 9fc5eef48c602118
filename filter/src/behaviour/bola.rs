//! Object enumeration (BOLA, OWASP API1): per identity and operation, how many distinct
//! objects it asked for within the window.
//!
//! The identity is the one the token checks verified (JWT `sub`, else the API-key
//! consumer), else the client's address as `abuse.client` keys it. An operation counts
//! when it has object-id path parameters ([`ObjectIds`]); the values of all of them in
//! one request are one object, hashed with the slot secret into the window's
//! [`Distinct`] sketch. Past `max_distinct_ids` the identity is found — and, when
//! `denied_ratio` is set, only while that share of the upstream's answers to it in the
//! window were 403 or 404 (the mark of ids that are not its own).

use serde::Deserialize;

use crate::abuse::slots::{SharedStore, SlotReport, SlotSecret};
use crate::behaviour::window::{Counted, Windows};
use crate::behaviour::{default_slots, Finding, Reaction};
use crate::contract::operation::ObjectIds;
use crate::contract::params::In;
use crate::contract::route::Router;
use crate::contract::CompiledOperation;
use crate::events::Evidence;
use crate::request::Method;
use crate::verdict::RuleId;

/// `behaviour.bola` in the policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BolaConfig {
    /// Distinct objects per identity and operation within the window that find it
    /// (1-200).
    pub max_distinct_ids: u32,
    pub window_seconds: u32,
    /// Also require this share (0-1] of the upstream's answers in the window to be 403
    /// or 404; unset, the count alone finds.
    pub denied_ratio: Option<f64>,
    #[serde(default)]
    pub action: Reaction,
    /// Take path parameters with integer or uuid schemas as object ids where the
    /// operation declares none (default `true`).
    #[serde(default = "infer_by_default")]
    pub infer: bool,
    #[serde(default = "default_slots")]
    pub slots: u32,
}

fn infer_by_default() -> bool {
    true
}

/// The compiled rule.
#[derive(Debug)]
pub(crate) struct Bola {
    pub windows: Windows,
    max: u32,
    denied_ratio: Option<f64>,
    reaction: Reaction,
    /// Per operation, the names of its object-id path parameters (empty: not counted).
    ids: Vec<Vec<String>>,
}

/// Per operation, the path parameters that name objects: the declared ones, or (with
/// `infer`) the inferred ones. A declared name that is no path parameter of its operation
/// is the error `(operation, name)`.
pub(crate) fn object_ids(
    operations: &[CompiledOperation],
    infer: bool,
) -> Result<Vec<Vec<String>>, (usize, String)> {
    (operations.iter().enumerate())
        .map(|(i, op)| match &op.contract.object_ids {
            ObjectIds::Declared(names) => {
                let path = |name: &String| {
                    (op.contract.params.iter()).any(|p| p.location == In::Path && &p.name == name)
                };
                match names.iter().find(|name| !path(name)) {
                    Some(name) => Err((i, name.clone())),
                    None => Ok(names.clone()),
                }
            }
            ObjectIds::Inferred(names) if infer => Ok(names.clone()),
            ObjectIds::Inferred(_) => Ok(Vec::new()),
        })
        .collect()
}

impl Bola {
    pub(crate) fn new(config: &BolaConfig, prefix: String, ids: Vec<Vec<String>>) -> Bola {
        Bola {
            windows: Windows::new(prefix, config.slots, config.window_seconds),
            max: config.max_distinct_ids,
            denied_ratio: config.denied_ratio,
            reaction: config.action,
            ids,
        }
    }

    /// The object-id parameters of an operation; empty when it is not counted.
    pub(crate) fn parameters(&self, operation: usize) -> &[String] {
        self.ids.get(operation).map_or(&[], Vec::as_slice)
    }

    /// The slot fingerprint of an identity (`key`, as [`crate::abuse`] builds keys) at an
    /// operation.
    pub(crate) fn fingerprint(secret: &SlotSecret, key: &[u8], operation: usize) -> u64 {
        let mut bytes = Vec::with_capacity(key.len() + 9);
        bytes.extend_from_slice(key);
        bytes.push(0x1f);
        bytes.extend_from_slice(&(operation as u64).to_le_bytes());
        secret.fingerprint(&bytes)
    }

    /// Counts the object a request names (`values`: the decoded values of the
    /// operation's object-id parameters, in their order) for the identity with
    /// `fingerprint`; the finding when it is past the threshold.
    pub(crate) fn request<S: SharedStore>(
        &self,
        store: &S,
        secret: &SlotSecret,
        fingerprint: u64,
        values: &[&str],
        now: u64,
    ) -> (Option<Finding>, SlotReport) {
        let mut object = Vec::new();
        for value in values {
            object.extend_from_slice(value.as_bytes());
            object.push(0x1f);
        }
        let hash = secret.fingerprint(&object);
        let Counted { record, report } = self
            .windows
            .count(store, fingerprint, now, |r| r.seen.insert(hash));
        let distinct = record.seen.estimate();
        let (answers, denied) = (record.first, record.second);
        let denied_enough = self
            .denied_ratio
            .is_none_or(|ratio| answers > 0 && f64::from(denied) >= ratio * f64::from(answers));
        let found = (distinct > self.max && denied_enough).then(|| {
            let evidence = Evidence {
                rule: RuleId::BehaviourBola.as_str().to_owned(),
                measure: "distinct_ids".to_owned(),
                count: u64::from(distinct),
                threshold: u64::from(self.max),
                window_seconds: self.windows.window_seconds,
                answers: Some(answers),
                denied: Some(denied),
                mean: None,
                sigma: None,
            };
            let retry_after = self.windows.seconds_left(&record, now);
            Finding::new(RuleId::BehaviourBola, self.reaction, evidence, retry_after)
        });
        (found, report)
    }

    /// Counts the upstream's answer to a request [`Bola::request`] counted: 403 and 404
    /// are denials.
    pub(crate) fn response<S: SharedStore>(
        &self,
        store: &S,
        fingerprint: u64,
        status: u16,
        now: u64,
    ) -> SlotReport {
        let denied = u32::from(matches!(status, 403 | 404));
        let counted = self.windows.amend(store, fingerprint, now, |r| {
            r.first = r.first.saturating_add(1);
            r.second = r.second.saturating_add(denied);
        });
        counted.map(|c| c.report).unwrap_or_default()
    }
}

/// The values of the parameters `names` in a request's decoded path `segments`, found
/// again by the router: only for an operation that counts objects, so no other request
/// pays for it. `None` when the path is not that operation's.
pub(crate) fn values<'s, S: AsRef<str>>(
    router: &Router,
    segments: &'s [S],
    method: Method,
    operation: usize,
    names: &[String],
) -> Option<Vec<&'s str>> {
    let found = router.find(segments)?;
    let op = found
        .route
        .operation(method)
        .filter(|o| o.id == operation)?;
    (names.iter())
        .map(|name| {
            let at = op.params.iter().position(|p| p == name)?;
            found.values.get(at).copied()
        })
        .collect()
}
