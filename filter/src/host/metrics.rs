//! Verdicts as Envoy counters, defined once per VM.
//!
//! Names (Envoy shows them at `/stats` as written, and at `/stats/prometheus` with dots
//! turned into underscores):
//! - `apiguard.requests_inspected`, `…_allowed`, `…_blocked`, `…_monitored`;
//! - `apiguard.rule.<rule id>.blocked` and `….monitored`, one pair per rule;
//! - `apiguard.response_properties_redacted`;
//! - `apiguard.abuse.quarantines_started`, `apiguard.abuse.slot_collisions` (a live entry
//!   of another client shared), `apiguard.abuse.slot_lost` (an update not stored).
//! - `apiguard.vm.memory_kib`, a gauge: the VM's linear memory, set on the root's tick (so
//!   the soak run, `make soak`, can sample it; it only grows, so a leak shows as a climb).
//!   The VMs of all workers share the one gauge: it reads as the last VM's, and workers'
//!   VMs run the same code on similar traffic.
//! - `apiguard.canary.would_block` and `….would_allow`, every request the policy's
//!   `candidate` contract would decide otherwise, and
//!   `apiguard.canary.<operation>.<rule>.would_block` / `….would_allow` by operation and
//!   rule (the refusing side's): defined on first use, since the pairs are many and few
//!   occur; a VM names at most [`CANARY_NAMES_MAX`] of them, beyond which only the
//!   totals count.
//! - `apiguard.inspection_us`, a histogram: microseconds the engine took, one sample per
//!   request head and per request body inspected; recorded only when the policy has
//!   `stats: {inspection_time: true}`, since it costs three host calls per inspection.
//!
//! The per-operation analytics (`stats: {analytics: true}`) are [`super::analytics`]'s.
//!
//! An API of a gateway (`apis:`) has every name above but the memory gauge under its own
//! prefix, `apiguard.api.<name>.` (`apiguard.api.pets.requests_blocked`, and so on for the
//! per-operation, canary and analytics stats); `envoy.yaml` tags the name as the `api`
//! label. The unprefixed counters then count the requests no API matched
//! (`route.unknown_api`).

use std::cell::RefCell;
use std::collections::HashMap;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{LogLevel, MetricType};

use super::log;
use crate::abuse::slots::SlotReport;
use crate::exchange::{CanaryChange, Counter};
use crate::policy::STATS_PREFIX;
use crate::verdict::{Action, RuleId};

pub(super) struct Metrics {
    inspected: Option<u32>,
    allowed: Option<u32>,
    blocked: Option<u32>,
    monitored: Option<u32>,
    redacted: Option<u32>,
    quarantines: Option<u32>,
    collisions: Option<u32>,
    lost: Option<u32>,
    inspection: Option<u32>,
    memory: Option<u32>,
    /// `[blocked, monitored]` per rule, indexed like [`RuleId::ALL`].
    rules: Vec<[Option<u32>; 2]>,
    /// `apiguard.canary.would_block`, `….would_allow`.
    canary_totals: [Option<u32>; 2],
    /// The canary's counters by operation and rule, by name, as defined so far.
    canary: RefCell<HashMap<String, Option<u32>>>,
}

/// Distinct canary counters (operation, rule, change) a VM defines: a bound on the
/// metrics a candidate that differs everywhere could make Envoy hold.
const CANARY_NAMES_MAX: usize = 1_024;

impl Metrics {
    /// Defines the counters named `<prefix>…`: [`STATS_PREFIX`] (`apiguard.`), or an
    /// API's of a gateway (`apiguard.api.<name>.`). The VM's memory gauge is the
    /// unprefixed set's only.
    pub(super) fn define(prefix: &str) -> Metrics {
        let counter = |name: &str| counter(&format!("{prefix}{name}"));
        Metrics {
            inspected: counter("requests_inspected"),
            allowed: counter("requests_allowed"),
            blocked: counter("requests_blocked"),
            monitored: counter("requests_monitored"),
            redacted: counter("response_properties_redacted"),
            quarantines: counter("abuse.quarantines_started"),
            collisions: counter("abuse.slot_collisions"),
            lost: counter("abuse.slot_lost"),
            inspection: define(MetricType::Histogram, &format!("{prefix}inspection_us")),
            memory: (prefix == STATS_PREFIX)
                .then(|| define(MetricType::Gauge, "apiguard.vm.memory_kib"))
                .flatten(),
            rules: RuleId::ALL
                .iter()
                .map(|rule| {
                    [Action::Block, Action::Monitor]
                        .map(|action| counter(&format!("rule.{rule}.{}", action.as_str())))
                })
                .collect(),
            canary_totals: [CanaryChange::WouldBlock, CanaryChange::WouldAllow]
                .map(|change| counter(&format!("canary.{}", change.as_str()))),
            canary: RefCell::new(HashMap::new()),
        }
    }

    /// A request the candidate contract would decide otherwise, named `name` by operation
    /// and rule ([`crate::exchange::canary_counter_name`]).
    pub(super) fn canary(&self, change: CanaryChange, name: String) {
        increment(self.canary_totals[usize::from(change == CanaryChange::WouldAllow)]);
        let Ok(mut defined) = self.canary.try_borrow_mut() else {
            return;
        };
        let id = match defined.get(&name) {
            Some(id) => *id,
            None if defined.len() < CANARY_NAMES_MAX => {
                let id = counter(&name);
                defined.insert(name, id);
                id
            }
            None => None,
        };
        increment(id);
    }

    /// Records the VM's linear memory (64 KiB pages) in the gauge.
    pub(super) fn memory(&self) {
        if let Some(id) = self.memory {
            let kib = core::arch::wasm32::memory_size::<0>() * 64;
            record(Some(id), u64::try_from(kib).unwrap_or(u64::MAX));
        }
    }

    /// A request reached the filter.
    fn inspected(&self) {
        increment(self.inspected);
    }

    /// What finally happened to a request: allowed, blocked, or passed with findings.
    fn outcome(&self, action: Action) {
        increment(match action {
            Action::Allow => self.allowed,
            Action::Block => self.blocked,
            Action::Monitor => self.monitored,
        });
    }

    /// A counter the exchange incremented (all but the per-operation ones, which
    /// [`super::events::OperationCounters`] keeps).
    pub(super) fn count(&self, counter: Counter) {
        match counter {
            Counter::Inspected => self.inspected(),
            Counter::Outcome(action) => self.outcome(action),
            Counter::Rule { rule, enforced } => self.rule(rule, enforced),
            Counter::Slot(report) => self.slot(report),
            Counter::QuarantineStarted => self.quarantine_started(),
            Counter::Redacted(count) => self.redacted(count),
            // Named from the policy: see [`Metrics::canary`].
            Counter::Operation { .. } | Counter::Deprecated(_) | Counter::Canary { .. } => {}
        }
    }

    /// A rule a verdict reports: as blocked when it was enforced, as monitored when only
    /// recorded.
    fn rule(&self, rule: RuleId, enforced: bool) {
        let slot = if enforced { 0 } else { 1 };
        let index = RuleId::ALL.iter().position(|r| *r == rule);
        increment(
            index
                .and_then(|i| self.rules.get(i))
                .and_then(|ids| ids[slot]),
        );
    }

    /// What happened in a shared-data slot.
    fn slot(&self, report: SlotReport) {
        if report.collision {
            increment(self.collisions);
        }
        if report.lost {
            increment(self.lost);
        }
    }

    fn quarantine_started(&self) {
        increment(self.quarantines);
    }

    /// Runs one inspection and records how long it took. The host clock is wall time, so
    /// a sample includes any preemption of the worker; a clock that cannot be read (or
    /// goes backwards) records nothing.
    pub(super) fn timed<T>(&self, inspect: impl FnOnce() -> T) -> T {
        let started = clock_us();
        let result = inspect();
        if let (Some(id), Some(started), Some(ended)) = (self.inspection, started, clock_us()) {
            if let Some(elapsed) = ended.checked_sub(started) {
                record(Some(id), elapsed);
            }
        }
        result
    }

    /// Properties removed from response bodies.
    fn redacted(&self, count: usize) {
        if let Some(id) = self.redacted {
            let _ = hostcalls::increment_metric(id, i64::try_from(count).unwrap_or(i64::MAX));
        }
    }
}

/// Defines a counter; see [`define`].
pub(super) fn counter(name: &str) -> Option<u32> {
    define(MetricType::Counter, name)
}

/// Defines a metric; one Envoy refuses is logged and then skipped, since stats must never
/// decide a request.
pub(super) fn define(kind: MetricType, name: &str) -> Option<u32> {
    match hostcalls::define_metric(kind, name) {
        Ok(id) => Some(id),
        Err(status) => {
            log(
                LogLevel::Warn,
                &format!("cannot define {kind:?} {name}: {status:?}"),
            );
            None
        }
    }
}

pub(super) fn increment(id: Option<u32>) {
    if let Some(id) = id {
        let _ = hostcalls::increment_metric(id, 1);
    }
}

/// Records a value in a histogram (or sets a gauge).
pub(super) fn record(id: Option<u32>, value: u64) {
    if let Some(id) = id {
        let _ = hostcalls::record_metric(id, value);
    }
}

fn clock_us() -> Option<u64> {
    let now = hostcalls::get_current_time().ok()?;
    let since_epoch = now.duration_since(std::time::UNIX_EPOCH).ok()?;
    u64::try_from(since_epoch.as_micros()).ok()
}
