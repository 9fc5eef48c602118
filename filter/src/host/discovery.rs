//! The VM's record of undeclared requests ([`crate::discovery`]) and its reports: every
//! `report_seconds`, one `discovery.endpoint` event per inferred template whose traffic
//! grew (or whose learned schemas changed) since the last report, with the growth as its
//! count and what was learned so far; and likewise one `discovery.observed` event per
//! declared operation whose sampled traffic grew. Each worker reports what it saw; a
//! collector (or `apiguard learn`) adds the workers up.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use super::events::Emitter;
use crate::discovery::{Discovery, DiscoverySettings, Lesson, Undeclared};
use crate::events::{hash64, Event};
use crate::policy::Policy;
use crate::request::Method;

pub(super) struct Record {
    discovery: RefCell<Discovery>,
    /// Per template, the request count and a hash of what was learned, at the last
    /// report.
    reported: RefCell<BTreeMap<(Method, String), (u64, u64)>>,
    /// The same per declared operation learned, by index.
    reported_operations: RefCell<BTreeMap<usize, (u64, u64)>>,
    every_ms: u64,
    next_ms: Cell<u64>,
}

impl Record {
    pub(super) fn new(settings: DiscoverySettings, now_ms: u64) -> Record {
        let every_ms = settings.report_seconds.max(1).saturating_mul(1_000);
        Record {
            discovery: RefCell::new(Discovery::new(settings)),
            reported: RefCell::new(BTreeMap::new()),
            reported_operations: RefCell::new(BTreeMap::new()),
            every_ms,
            next_ms: Cell::new(now_ms.saturating_add(every_ms)),
        }
    }

    /// Records one request the router could not place.
    pub(super) fn observe(&self, request: &Undeclared) {
        if let Ok(mut discovery) = self.discovery.try_borrow_mut() {
            discovery.observe(request);
        }
    }

    /// Adds what a request's body or response taught (undeclared, or sampled).
    pub(super) fn learn(&self, lesson: &Lesson) {
        if let Ok(mut discovery) = self.discovery.try_borrow_mut() {
            discovery.learn(lesson);
        }
    }

    /// On the root's tick: reports, when one is due, the templates whose traffic grew.
    pub(super) fn report(&self, policy: &Policy, emitter: &Emitter, now_ms: u64) {
        if now_ms < self.next_ms.get() {
            return;
        }
        self.next_ms.set(now_ms.saturating_add(self.every_ms));
        let (Ok(discovery), Ok(mut reported)) =
            (self.discovery.try_borrow(), self.reported.try_borrow_mut())
        else {
            return;
        };
        for template in discovery.templates() {
            let key = (template.method, template.path.clone());
            let learned = template.learned.as_ref().map(|l| l.to_json());
            let hash = learned
                .as_ref()
                .map_or(0, |l| hash64(l.to_string().as_bytes()));
            let (before, hash_before) = reported.get(&key).copied().unwrap_or((0, 0));
            let grown = template.seen.count.saturating_sub(before);
            if grown == 0 && hash == hash_before {
                continue;
            }
            reported.insert(key, (template.seen.count, hash));
            let (first, last) = (template.seen.first, template.seen.last);
            let event = Event::endpoint_discovered(
                &policy.events,
                &template,
                learned,
                grown,
                first.saturating_mul(1_000),
                last.saturating_mul(1_000),
            );
            emitter.emit(policy, &event);
        }
        let Ok(mut reported) = self.reported_operations.try_borrow_mut() else {
            return;
        };
        for observed in discovery.observed() {
            let Some(operation) = policy.operations.get(observed.id) else {
                continue;
            };
            let learned = observed.learned.to_json();
            let hash = hash64(learned.to_string().as_bytes());
            let (before, hash_before) = reported.get(&observed.id).copied().unwrap_or((0, 0));
            let grown = observed.seen.count.saturating_sub(before);
            if grown == 0 && hash == hash_before {
                continue;
            }
            reported.insert(observed.id, (observed.seen.count, hash));
            let event = Event::operation_observed(
                &policy.events,
                operation,
                learned,
                grown,
                observed.seen.first.saturating_mul(1_000),
                observed.seen.last.saturating_mul(1_000),
            );
            emitter.emit(policy, &event);
        }
    }
}
