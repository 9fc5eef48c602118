//! Verdicts as Envoy counters, defined once per VM.
//!
//! Names (Envoy shows them at `/stats` as written, and at `/stats/prometheus` with dots
//! turned into underscores):
//! - `apiguard.requests_inspected`, `…_allowed`, `…_blocked`, `…_monitored`;
//! - `apiguard.rule.<rule id>.blocked` and `….monitored`, one pair per rule.

use proxy_wasm::hostcalls;
use proxy_wasm::types::{LogLevel, MetricType};

use super::log;
use crate::verdict::{Action, RuleId, Verdict};

pub struct Metrics {
    inspected: Option<u32>,
    allowed: Option<u32>,
    blocked: Option<u32>,
    monitored: Option<u32>,
    /// `[blocked, monitored]` per rule, indexed like [`RuleId::ALL`].
    rules: Vec<[Option<u32>; 2]>,
}

impl Metrics {
    pub fn define() -> Metrics {
        Metrics {
            inspected: counter("apiguard.requests_inspected"),
            allowed: counter("apiguard.requests_allowed"),
            blocked: counter("apiguard.requests_blocked"),
            monitored: counter("apiguard.requests_monitored"),
            rules: RuleId::ALL
                .iter()
                .map(|rule| {
                    [Action::Block, Action::Monitor]
                        .map(|action| counter(&format!("apiguard.rule.{rule}.{}", action.as_str())))
                })
                .collect(),
        }
    }

    pub fn record(&self, verdict: &Verdict<'_>) {
        increment(self.inspected);
        let (total, slot) = match verdict.action {
            Action::Allow => (self.allowed, None),
            Action::Block => (self.blocked, Some(0)),
            Action::Monitor => (self.monitored, Some(1)),
        };
        increment(total);
        if let (Some(rule), Some(slot)) = (verdict.rule, slot) {
            let index = RuleId::ALL.iter().position(|r| *r == rule);
            increment(
                index
                    .and_then(|i| self.rules.get(i))
                    .and_then(|ids| ids[slot]),
            );
        }
    }
}

/// Defines a counter; a counter Envoy refuses is logged and then skipped, since stats
/// must never decide a request.
fn counter(name: &str) -> Option<u32> {
    match hostcalls::define_metric(MetricType::Counter, name) {
        Ok(id) => Some(id),
        Err(status) => {
            log(
                LogLevel::Warn,
                &format!("cannot define counter {name}: {status:?}"),
            );
            None
        }
    }
}

fn increment(id: Option<u32>) {
    if let Some(id) = id {
        let _ = hostcalls::increment_metric(id, 1);
    }
}
