//! Per-endpoint analytics as Envoy stats (`stats: {analytics: true}`): the [`Finished`] request the
//! exchange leaves when a stream ends, recorded against its operation.
//!
//! Names (`<op>` as in the other per-operation counters: the `operationId`, or
//! `METHOD /template`, characters outside `[A-Za-z0-9_-]` as `_`; [`UNKNOWN`] for a
//! request that matched no operation):
//! - `apiguard.operation.<op>.requests.<class>`, a counter per status class the operation
//!   answered with (`1xx` … `5xx`, `none`);
//! - `apiguard.operation.<op>.duration_ms`, a histogram: request head to end of stream;
//! - `apiguard.operation.<op>.request_bytes` and `.response_bytes`, histograms of body
//!   sizes as they passed the filter.
//!
//! `envoy/envoy.yaml` tags `<op>` and `<class>` as the `operation` and `status_class`
//! labels, and gives the size histograms byte buckets.
//!
//! Each metric is defined the first time an operation (or status class of it) is seen in
//! the VM, and its id kept: a policy with a thousand operations defines stats only for the
//! ones that get traffic, and no request defines one twice. The set of names is bounded
//! by the contract: its operations, plus [`UNKNOWN`].

use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::types::MetricType;

use super::metrics::{counter, define, increment, record};
use crate::exchange::{Finished, StatusClass};
use crate::policy::Policy;

use crate::contract::operation::UNMATCHED_LABEL as UNKNOWN;

/// One VM's analytics stats for one policy.
pub(super) struct OperationStats {
    /// What the operations' stat names start with (`apiguard.operation.<op>`, or an API's
    /// prefix in place of `apiguard.`), by index in the policy, then [`UNKNOWN`]'s.
    labels: Vec<Rc<str>>,
    /// Per label, its stats once defined.
    defined: RefCell<Vec<Option<Defined>>>,
}

/// The stats of one operation. `None` inside: Envoy refused the definition (logged once),
/// so the sample is skipped rather than the definition retried per request.
struct Defined {
    /// Per [`StatusClass::index`]: `None` until the class is first seen.
    requests: [Option<Option<u32>>; StatusClass::ALL.len()],
    duration: Option<u32>,
    request_bytes: Option<u32>,
    response_bytes: Option<u32>,
}

impl OperationStats {
    pub(super) fn new(policy: &Policy) -> OperationStats {
        let prefix = &policy.stats_prefix;
        let labels: Vec<Rc<str>> = (policy.operations.iter())
            .map(|op| &*op.label)
            .chain([UNKNOWN])
            .map(|label| Rc::from(format!("{prefix}operation.{label}")))
            .collect();
        let defined = RefCell::new(labels.iter().map(|_| None).collect());
        OperationStats { labels, defined }
    }

    /// Records a finished request.
    pub(super) fn record(&self, sample: &Finished) {
        let unknown = self.labels.len().saturating_sub(1);
        let index = sample
            .operation
            .filter(|&id| id < unknown)
            .unwrap_or(unknown);
        let (Some(label), Ok(mut defined)) =
            (self.labels.get(index), self.defined.try_borrow_mut())
        else {
            return;
        };
        let Some(stats) = defined.get_mut(index) else {
            return;
        };
        let stats = stats.get_or_insert_with(|| Defined::new(label));
        let class = sample.status;
        if let Some(slot) = stats.requests.get_mut(class.index()) {
            let id = *slot
                .get_or_insert_with(|| counter(&format!("{label}.requests.{}", class.as_str())));
            increment(id);
        }
        record(stats.duration, sample.duration_ms);
        record(stats.request_bytes, sample.request_bytes);
        record(stats.response_bytes, sample.response_bytes);
    }
}

impl Defined {
    fn new(label: &str) -> Defined {
        let histogram = |name: &str| define(MetricType::Histogram, &format!("{label}.{name}"));
        Defined {
            requests: [None; StatusClass::ALL.len()],
            duration: histogram("duration_ms"),
            request_bytes: histogram("request_bytes"),
            response_bytes: histogram("response_bytes"),
        }
    }
}
