//! Sensitive business flows (OWASP API6): an operation that requires another, by the same
//! identity, within a window — checkout after adding to the cart, a transfer after its
//! confirmation.
//!
//! A step `after` that the upstream answered with a 2xx writes, in the flow's slot table,
//! when the identity's permission to call `then` ends (now + `window_seconds`); a request
//! to `then` whose identity holds no live permission is the finding. The identity is the
//! one [`crate::behaviour::bola`] counts by. A slot holds one identity at a time (the last
//! writer wins): a collision can take an identity's permission away, never give one.
//!
//! With `max_per_window`, the flow also has a velocity limit: the `then` steps the
//! upstream answered 2xx are counted per identity over a fixed window of
//! `window_seconds` (a [`Windows`] table beside the permissions), and a request to `then`
//! by an identity that already completed it `max_per_window` times in the window is
//! refused (`behaviour.flow_velocity`) until the window ends — a bot buying up stock, a
//! script redeeming vouchers. Completions are counted as they are answered, so requests
//! in flight at once may each pass: the limit can be exceeded by their number.

use serde::Deserialize;

use crate::abuse::slots::{Entry, SharedStore, SlotReport, SlotSecret, Table};
use crate::behaviour::window::Windows;
use crate::behaviour::{default_slots, Finding, Reaction};
use crate::events::Evidence;
use crate::verdict::RuleId;

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// One flow of `behaviour.flows` in the policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FlowConfig {
    /// `[a-z0-9_-]`, 1-32 chars: names the flow in shared-data keys and events.
    pub name: String,
    /// The operation that must come first (operationId or `METHOD /template`)…
    pub after: String,
    /// …before this one.
    pub then: String,
    pub window_seconds: u32,
    /// At most this many completions (2xx answers) of `then` per identity within the
    /// window (unset: no limit).
    pub max_per_window: Option<u32>,
    #[serde(default)]
    pub action: Reaction,
    #[serde(default = "default_slots")]
    pub slots: u32,
}

/// A compiled flow.
#[derive(Debug)]
pub(crate) struct Flow {
    pub name: String,
    pub after: usize,
    pub then: usize,
    pub table: Table,
    /// The completions of `then` per identity, and how many a window allows.
    pub velocity: Option<(Windows, u32)>,
    window_seconds: u32,
    reaction: Reaction,
}

impl Flow {
    pub(crate) fn new(config: &FlowConfig, prefix: String, after: usize, then: usize) -> Flow {
        Flow {
            name: config.name.clone(),
            after,
            then,
            velocity: (config.max_per_window).map(|max| {
                (
                    Windows::new(format!("{prefix}.n"), config.slots, config.window_seconds),
                    max,
                )
            }),
            table: Table::new(prefix, config.slots),
            window_seconds: config.window_seconds,
            reaction: config.action,
        }
    }

    /// The slot fingerprint of an identity (`key`, as the BOLA rule builds it) in this
    /// flow.
    pub(crate) fn fingerprint(&self, secret: &SlotSecret, key: &[u8]) -> u64 {
        let mut bytes = key.to_vec();
        bytes.push(0x1f);
        bytes.extend_from_slice(self.name.as_bytes());
        secret.fingerprint(&bytes)
    }

    /// The identity's first step succeeded at `now`: `then` is open to it for the window.
    pub(crate) fn done<S: SharedStore>(&self, store: &S, fingerprint: u64, now: u64) -> SlotReport {
        let window = u64::from(self.window_seconds).saturating_mul(NANOS_PER_SECOND);
        let entry = Entry {
            fingerprint,
            until: now.saturating_add(window),
        };
        SlotReport {
            lost: self.table.write(store, entry).is_err(),
            ..SlotReport::default()
        }
    }

    /// At the head of a request to `then`: the finding when the identity did not do the
    /// first step within the window.
    pub(crate) fn check<S: SharedStore>(
        &self,
        store: &S,
        fingerprint: u64,
        now: u64,
    ) -> Option<Finding> {
        let entry = self.table.read(store, fingerprint);
        if entry.is_some_and(|e| e.fingerprint == fingerprint && e.live(now)) {
            return None;
        }
        let evidence = Evidence {
            rule: RuleId::BehaviourFlow.as_str().to_owned(),
            measure: format!("steps_before_{}", self.name),
            count: 0,
            threshold: 1,
            window_seconds: self.window_seconds,
            answers: None,
            denied: None,
            mean: None,
            sigma: None,
        };
        // Nothing to wait for: the step is missing, not a count that resets.
        Some(Finding::new(
            RuleId::BehaviourFlow,
            self.reaction,
            evidence,
            0,
        ))
    }

    /// At the head of a request to `then` that [`Flow::check`] let through: the finding
    /// when the identity already completed the flow `max_per_window` times in the window.
    pub(crate) fn velocity<S: SharedStore>(
        &self,
        store: &S,
        fingerprint: u64,
        now: u64,
    ) -> Option<Finding> {
        let (windows, max) = self.velocity.as_ref()?;
        let record = windows.read(store, fingerprint, now)?;
        (record.first >= *max).then(|| {
            let evidence = Evidence {
                rule: RuleId::BehaviourFlowVelocity.as_str().to_owned(),
                measure: format!("completions_of_{}", self.name),
                count: u64::from(record.first),
                threshold: u64::from(*max),
                window_seconds: self.window_seconds,
                answers: None,
                denied: None,
                mean: None,
                sigma: None,
            };
            let retry_after = windows.seconds_left(&record, now);
            Finding::new(
                RuleId::BehaviourFlowVelocity,
                self.reaction,
                evidence,
                retry_after,
            )
        })
    }

    /// The upstream answered a request to `then` with a 2xx: one completion more in the
    /// identity's window (none without a velocity limit).
    pub(crate) fn completed<S: SharedStore>(
        &self,
        store: &S,
        fingerprint: u64,
        now: u64,
    ) -> Option<SlotReport> {
        let (windows, _) = self.velocity.as_ref()?;
        let counted = windows.count(store, fingerprint, now, |r| {
            r.first = r.first.saturating_add(1);
        });
        Some(counted.report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abuse::slots::MemoryStore;
    use crate::testkit::{SECOND, T0};

    fn flow() -> Flow {
        let config = FlowConfig {
            name: "checkout".into(),
            after: "addToCart".into(),
            then: "checkout".into(),
            window_seconds: 600,
            max_per_window: Some(2),
            action: Reaction::Block,
            slots: 8,
        };
        Flow::new(&config, "apiguard.b.test.flow.checkout".into(), 0, 1)
    }

    #[test]
    fn the_second_step_needs_the_first_within_the_window() {
        let (store, f) = (MemoryStore::default(), flow());
        let finding = f.check(&store, 1, T0).expect("no first step");
        assert_eq!(finding.rule, RuleId::BehaviourFlow);
        assert_eq!(finding.evidence.measure, "steps_before_checkout");
        f.done(&store, 1, T0);
        assert_eq!(f.check(&store, 1, T0 + 599 * SECOND), None);
        assert!(
            f.check(&store, 1, T0 + 600 * SECOND).is_some(),
            "the window ended"
        );
        // 9 shares slot 1 of 8 with 1: it never inherits 1's permission.
        f.done(&store, 1, T0);
        assert!(f.check(&store, 9, T0).is_some());
    }

    #[test]
    fn completions_past_the_limit_are_refused_until_the_window_ends() {
        let (store, f) = (MemoryStore::default(), flow());
        assert_eq!(f.velocity(&store, 1, T0), None, "nothing completed yet");
        f.completed(&store, 1, T0);
        assert_eq!(f.velocity(&store, 1, T0 + SECOND), None, "1 of 2");
        f.completed(&store, 1, T0 + SECOND);
        let finding = f.velocity(&store, 1, T0 + 2 * SECOND).expect("2 of 2 done");
        assert_eq!(finding.rule, RuleId::BehaviourFlowVelocity);
        let e = &finding.evidence;
        assert_eq!((e.count, e.threshold, e.window_seconds), (2, 2, 600));
        assert_eq!(e.measure, "completions_of_checkout");
        assert_eq!(finding.retry_after, 598);
        assert_eq!(
            f.velocity(&store, 2, T0 + 2 * SECOND),
            None,
            "another identity"
        );
        assert_eq!(
            f.velocity(&store, 1, T0 + 600 * SECOND),
            None,
            "the window ended"
        );
    }
}
