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
//!
//! With `relative: k`, the threshold is also relative to the operation's normal: each
//! client window that ends (seen when that client comes back) folds its distinct count
//! into the operation's mean ([`Ewma`], one slot per operation, CAS'd like the windows),
//! and once `relative_warmup` windows have, a client past k × that mean is found too,
//! `max_distinct_ids` staying the cap. An operation whose clients each read two or three
//! objects then finds a walker at a dozen, long before an absolute threshold that must
//! suit its busiest operation would. Windows of clients that never return are not
//! folded: the normal is that of returning clients.

use serde::Deserialize;

use crate::abuse::slots::{SharedStore, SlotReport, SlotSecret, Table};
use crate::behaviour::baseline::Ewma;
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
    /// Also find a client past this many times the operation's normal distinct ids per
    /// window (k ≥ 1; unset: the absolute threshold only).
    pub relative: Option<f64>,
    /// Ended windows an operation's normal is made of before `relative` finds anything.
    #[serde(default = "default_relative_warmup")]
    pub relative_warmup: u32,
}

fn infer_by_default() -> bool {
    true
}

fn default_relative_warmup() -> u32 {
    20
}

/// The weight of the newest ended window in an operation's normal.
const NORMAL_SMOOTHING: f64 = 0.05;

/// Bytes of an operation's normal: the windows folded, the mean and variance.
pub(crate) const NORMAL_BYTES: usize = 4 + Ewma::BYTES;

/// The operations' normal distinct ids per client window, one slot each.
#[derive(Debug)]
pub(crate) struct Normals {
    pub table: Table,
    k: f64,
    warmup: u32,
}

impl Normals {
    fn decode(bytes: Option<&[u8]>) -> (u32, Ewma) {
        let normal = bytes.filter(|b| b.len() == NORMAL_BYTES).and_then(|b| {
            let (folded, ewma) = b.split_at_checked(4)?;
            Some((
                u32::from_le_bytes(folded.try_into().ok()?),
                Ewma::decode(ewma)?,
            ))
        });
        normal.unwrap_or_default()
    }

    /// The operation's normal, with the distinct count of a window that ended folded in
    /// first.
    fn normal<S: SharedStore>(
        &self,
        store: &S,
        operation: usize,
        ended: Option<u32>,
    ) -> ((u32, Ewma), SlotReport) {
        let Some(distinct) = ended else {
            let bytes = self.table.read_raw(store, operation as u64);
            return (Self::decode(bytes.as_deref()), SlotReport::default());
        };
        self.table.update(store, operation as u64, |bytes| {
            let (folded, mut ewma) = Self::decode(bytes);
            ewma.fold(f64::from(distinct), NORMAL_SMOOTHING, folded == 0);
            let folded = folded.saturating_add(1);
            let mut value = folded.to_le_bytes().to_vec();
            ewma.encode(&mut value);
            ((folded, ewma), Some(value))
        })
    }
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
    /// With `relative`: the operations' normals.
    pub normals: Option<Normals>,
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
        let operations = u32::try_from(ids.len()).unwrap_or(u32::MAX);
        Bola {
            normals: config.relative.map(|k| Normals {
                table: Table::new(format!("{prefix}.normal"), operations),
                k,
                warmup: config.relative_warmup,
            }),
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
        (operation, fingerprint): (usize, u64),
        values: &[&str],
        now: u64,
    ) -> (Option<Finding>, Vec<SlotReport>) {
        let mut object = Vec::new();
        for value in values {
            object.extend_from_slice(value.as_bytes());
            object.push(0x1f);
        }
        let hash = secret.fingerprint(&object);
        let Counted {
            record,
            report,
            ended,
        } = self
            .windows
            .count(store, fingerprint, now, |r| r.seen.insert(hash));
        let mut reports = vec![report];
        // The threshold: the absolute one, or k × the operation's normal below it.
        let mut threshold = (f64::from(self.max), None);
        if let Some(normals) = &self.normals {
            let ended = ended.map(|r| r.seen.estimate());
            let ((folded, normal), report) = normals.normal(store, operation, ended);
            reports.push(report);
            let relative = normals.k * normal.mean.max(1.0);
            if folded >= normals.warmup && relative < threshold.0 {
                threshold = (relative, Some(normal));
            }
        }
        let distinct = record.seen.estimate();
        let (answers, denied) = (record.first, record.second);
        let denied_enough = self
            .denied_ratio
            .is_none_or(|ratio| answers > 0 && f64::from(denied) >= ratio * f64::from(answers));
        let found = (f64::from(distinct) > threshold.0 && denied_enough).then(|| {
            let evidence = Evidence {
                rule: RuleId::BehaviourBola.as_str().to_owned(),
                measure: "distinct_ids".to_owned(),
                count: u64::from(distinct),
                threshold: threshold.0.floor() as u64,
                window_seconds: self.windows.window_seconds,
                answers: Some(answers),
                denied: Some(denied),
                mean: threshold.1.map(|n| n.mean.round() as u64),
                sigma: threshold.1.map(|n| n.deviation().round() as u64),
            };
            let retry_after = self.windows.seconds_left(&record, now);
            Finding::new(RuleId::BehaviourBola, self.reaction, evidence, retry_after)
        });
        (found, reports)
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
