//! Where the filter VMs hand security events on: Envoy's log (always), the shared queue
//! to the sender (when one runs), filter state for access logs, and per-operation
//! counters.
//!
//! An event is cheap on the request path only when it is a repeat: its OCSF line and its
//! queued record are what cost (a JSON tree built, serialised and written by Envoy's
//! logger, tens of microseconds). So each VM folds repeats ([`Folder`], keyed by rule,
//! client and operation): the first finding of a key goes out at once, its repeats within
//! [`FOLD_WINDOW_MS`] are only counted, and the root's tick ([`Emitter::flush`]) sends one
//! event with their count when the window closes. A flood of identical findings then
//! costs Envoy's log at most two lines per key, worker and window.

use std::cell::{Cell, RefCell};

use proxy_wasm::hostcalls;
use proxy_wasm::types::{LogLevel, MetricType};

use super::{log, since_epoch};
use crate::events::fold::Folder;
use crate::events::{self, ocsf, Event};
use crate::exchange::FilterState;
use crate::policy::Policy;

/// The `vm_id` the sender and the filters share; shared queues are named per `vm_id`.
pub(super) const VM_ID: &str = "apiguard";

/// How long a VM counts repeats of a finding before it sends them as one event. Short,
/// so a SIEM sees an ongoing flood within a second or two; the sender folds further over
/// its own (longer) window.
pub(super) const FOLD_WINDOW_MS: u64 = 1_000;

/// Distinct findings a VM folds at once; beyond, findings go out unfolded (as before the
/// VM folded), which the sender's queue bound then limits.
const FOLD_KEYS_MAX: usize = 1_024;

/// One per API of a filter VM (each API folds and logs at its own `events.log`), and one
/// for a gateway's own `route.unknown_api` events.
pub(super) struct Emitter {
    /// The sender's queue, once resolved. Resolved lazily: the sender may start after a
    /// filter VM, and without one events are only logged.
    queue: Cell<Option<u32>>,
    /// Repeats being counted; one VM runs one callback at a time, so never borrowed twice.
    folder: RefCell<Folder>,
}

impl Default for Emitter {
    fn default() -> Self {
        Emitter {
            queue: Cell::new(None),
            folder: RefCell::new(Folder::new(FOLD_WINDOW_MS, FOLD_KEYS_MAX)),
        }
    }
}

impl Emitter {
    /// Logs the event as one OCSF JSON line and queues it for the sender; a repeat within
    /// its window is only counted (see the module's docs).
    pub(super) fn emit(&self, policy: &Policy, event: &Event) {
        self.emit_at(policy.events.log, event);
    }

    /// [`Emitter::emit`] with the log level of events that are no API's (a gateway's).
    pub(super) fn emit_at(&self, log_level: events::LogLevel, event: &Event) {
        let folded = (self.folder.try_borrow_mut())
            .is_ok_and(|mut folder| folder.fold(event, event.time_ms));
        if !folded {
            self.send(log_level, event);
        }
    }

    /// Sends the repeats of every window that closed by `now_ms`, one event per window
    /// with their count. The root calls it on its tick.
    pub(super) fn flush(&self, policy: &Policy, now_ms: u64) {
        self.flush_at(policy.events.log, now_ms);
    }

    /// [`Emitter::flush`] with the log level of a gateway's own events.
    pub(super) fn flush_at(&self, log_level: events::LogLevel, now_ms: u64) {
        let closed = match self.folder.try_borrow_mut() {
            Ok(mut folder) => folder.expire(now_ms),
            Err(_) => return,
        };
        for event in &closed {
            self.send(log_level, event);
        }
    }

    fn send(&self, log_level: events::LogLevel, event: &Event) {
        let level = match log_level {
            events::LogLevel::Debug => Some(LogLevel::Debug),
            events::LogLevel::Info => Some(LogLevel::Info),
            events::LogLevel::Warn => Some(LogLevel::Warn),
            events::LogLevel::Off => None,
        };
        if let Some(level) = level {
            log(level, &ocsf::detection_finding(event).to_string());
        }
        let Some(queue) = self.queue() else {
            return;
        };
        if let Ok(json) = serde_json::to_vec(event) {
            // A queue that is gone (the sender's VM was replaced) loses the event for the
            // collector only: the log line above has it, and the request never waits for
            // delivery. The next event resolves the queue again.
            if hostcalls::enqueue_shared_queue(queue, Some(&json)).is_err() {
                self.queue.set(None);
            }
        }
    }

    fn queue(&self) -> Option<u32> {
        if self.queue.get().is_none() {
            let resolved = hostcalls::resolve_shared_queue(VM_ID, events::QUEUE);
            self.queue.set(resolved.ok().flatten());
        }
        self.queue.get()
    }
}

/// Sets the access-log fields of a request's final outcome as filter state
/// (`wasm.apiguard.action`, `wasm.apiguard.rule`, `wasm.apiguard.operation`), which an
/// access log prints with `%FILTER_STATE(wasm.apiguard.rule:PLAIN)%`. Envoy keeps such a
/// value read-only once set, so this runs once per request.
pub(super) fn annotate(state: &FilterState) {
    let fields = [
        ("apiguard.action", Some(state.action.as_str())),
        ("apiguard.rule", state.rule.map(|r| r.as_str())),
        ("apiguard.operation", state.operation.as_deref()),
    ];
    for (key, value) in fields {
        if let Some(value) = value {
            let _ = hostcalls::set_property(vec![key], Some(value.as_bytes()));
        }
    }
}

/// Milliseconds since the epoch by the host's clock (0 if it cannot tell).
pub(super) fn now_ms() -> u64 {
    u64::try_from(since_epoch().as_millis()).unwrap_or(0)
}

/// `apiguard.operation.<operation>.allowed` / `.blocked`, one pair per operation of a
/// policy, defined when the policy is configured. The operation is its `operationId`, or
/// `METHOD /template`, with every character outside `[A-Za-z0-9_-]` turned into `_`.
pub(super) struct OperationCounters {
    /// `[allowed, blocked]`, indexed by operation id.
    counters: Vec<[Option<u32>; 2]>,
    /// `apiguard.operation.<name>.deprecated`, defined for deprecated operations only.
    deprecated: Vec<Option<u32>>,
}

impl OperationCounters {
    pub(super) fn define(policy: &Policy) -> OperationCounters {
        let counters = policy
            .operations
            .iter()
            .map(|op| {
                let name = &op.label;
                ["allowed", "blocked"].map(|outcome| {
                    let metric = format!("{}operation.{name}.{outcome}", policy.stats_prefix);
                    hostcalls::define_metric(MetricType::Counter, &metric).ok()
                })
            })
            .collect();
        let deprecated = (policy.operations.iter())
            .map(|op| {
                let metric = format!("{}operation.{}.deprecated", policy.stats_prefix, op.label);
                op.deprecated
                    .then(|| hostcalls::define_metric(MetricType::Counter, &metric).ok())
                    .flatten()
            })
            .collect();
        OperationCounters {
            counters,
            deprecated,
        }
    }

    /// Counts a call to a deprecated operation.
    pub(super) fn deprecated(&self, operation: usize) {
        if let Some(Some(id)) = self.deprecated.get(operation) {
            let _ = hostcalls::increment_metric(*id, 1);
        }
    }

    /// Counts a request's final outcome against its operation; requests that matched no
    /// operation are counted by rule only.
    pub(super) fn outcome(&self, operation: usize, blocked: bool) {
        let id = (self.counters.get(operation)).and_then(|pair| pair[usize::from(blocked)]);
        if let Some(id) = id {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }
}
