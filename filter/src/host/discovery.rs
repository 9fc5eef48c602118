//! The VM's record of undeclared requests ([`crate::discovery`]) and its reports: every
//! `report_seconds`, one `discovery.endpoint` event per inferred template whose traffic
//! grew since the last report, with the growth as its count. Each worker reports what it
//! saw; a collector (or `apiguard learn`) adds the workers up.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use super::events::Emitter;
use crate::discovery::{Discovery, DiscoverySettings, Undeclared};
use crate::events::Event;
use crate::policy::Policy;
use crate::request::Method;

pub(super) struct Record {
    discovery: RefCell<Discovery>,
    /// Per template, the request count at the last report.
    reported: RefCell<BTreeMap<(Method, String), u64>>,
    every_ms: u64,
    next_ms: Cell<u64>,
}

impl Record {
    pub(super) fn new(settings: DiscoverySettings, now_ms: u64) -> Record {
        let every_ms = settings.report_seconds.max(1).saturating_mul(1_000);
        Record {
            discovery: RefCell::new(Discovery::new(settings)),
            reported: RefCell::new(BTreeMap::new()),
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
            let before = reported.get(&key).copied().unwrap_or(0);
            let grown = template.seen.count.saturating_sub(before);
            if grown == 0 {
                continue;
            }
            reported.insert(key, template.seen.count);
            let (first, last) = (template.seen.first, template.seen.last);
            let event = Event::endpoint_discovered(
                &policy.events,
                &template,
                grown,
                first.saturating_mul(1_000),
                last.saturating_mul(1_000),
            );
            emitter.emit(policy, &event);
        }
    }
}
