//! One API of a configuration, as a filter root keeps it: its compiled policy, and what the
//! VM keeps for it while it serves (key ring, stats, events, key-set fetches, background
//! schema compilation, discovery record). A single policy is one of these; a gateway
//! (`apis:`) has one per API, each with its own names for stats and shared data.

use std::rc::Rc;

use proxy_wasm::types::LogLevel;

use super::analytics::OperationStats;
use super::discovery::Record;
use super::events::{self, Emitter, OperationCounters};
use super::jwks::Jwks;
use super::log;
use super::metrics::Metrics;
use super::schemas::Background;
use super::shared::{self, HostStore};
use crate::events::Event;
use crate::policy::Policy;
use crate::security::KeyRing;

/// What a request of the API is handed: all shared, nothing that changes per request.
pub(super) struct Serving {
    pub(super) policy: Rc<Policy>,
    /// What the policy's token checks learn while it serves (fetched keys, the token
    /// cache): made afresh with each policy, shared by its requests.
    pub(super) ring: Rc<KeyRing>,
    pub(super) metrics: Rc<Metrics>,
    pub(super) events: Rc<Emitter>,
    pub(super) operations: Rc<OperationCounters>,
    /// The undeclared requests this VM saw, when the policy discovers them.
    pub(super) discovery: Option<Rc<Record>>,
    /// The per-operation analytics stats, when the policy asks for them.
    pub(super) analytics: Option<Rc<OperationStats>>,
}

/// One API as the root keeps it.
pub(super) struct Api {
    pub(super) serving: Rc<Serving>,
    /// Fetches the policy's remote key sets; `None` when it has none.
    jwks: Option<Jwks>,
    /// Compiles a lazy policy's schemas; `None` when there are none left.
    background: Option<Background>,
}

impl Api {
    /// Starts serving `policy`: its stats (`metrics`, named for it), its shared-data slots
    /// (every one created now, so memory is committed up front), its `policy_loaded` event
    /// (naming the configuration `previous` this VM ran before).
    pub(super) fn start(policy: Rc<Policy>, metrics: Rc<Metrics>, previous: Option<String>) -> Api {
        for scheme in policy.security.unconfigured_schemes() {
            log(
                LogLevel::Warn,
                &format!(
                    "API `{}`: security scheme `{scheme}` is declared but not configured; no \
                     operation uses it, so nothing is refused for it",
                    policy.name
                ),
            );
        }
        let emitter = Rc::new(Emitter::default());
        let operations = Rc::new(OperationCounters::define(&policy));
        // An audit trail of configuration changes: the bundle hash, and the one it
        // replaces in this VM.
        let loaded = Event::policy_loaded(&policy.events, events::now_ms(), previous);
        emitter.emit(&policy, &loaded);
        if policy.abuse.is_some() || policy.behaviour.is_some() {
            // The slot secret first, so the first VM configured stores it.
            shared::slot_secret();
            // Every slot up front: memory is committed now, writes are CAS later.
            let refused: usize = (policy.slot_tables()).map(|t| t.create(&HostStore)).sum();
            if refused > 0 {
                log(
                    LogLevel::Warn,
                    &format!("API `{}`: shared data refused {refused} slots", policy.name),
                );
            }
        }
        let ring = Rc::new(KeyRing::new(&policy.security));
        let jwks = Jwks::new(Rc::clone(&policy), Rc::clone(&ring), Rc::clone(&emitter));
        let background = Background::start(&policy);
        let discovery =
            (policy.discovery).map(|settings| Rc::new(Record::new(settings, events::now_ms())));
        let analytics = (policy.stats.analytics).then(|| Rc::new(OperationStats::new(&policy)));
        Api {
            serving: Rc::new(Serving {
                policy,
                ring,
                metrics,
                events: emitter,
                operations,
                discovery,
                analytics,
            }),
            jwks,
            background,
        }
    }

    /// Whether schemas are left to compile (the root ticks fast until none are).
    pub(super) fn compiling(&self) -> bool {
        self.background.is_some()
    }

    /// A key-set fetch's answer (tokens of other fetches are ignored).
    pub(super) fn on_http_call_response(&mut self, token: u32, headers: usize, body: usize) {
        if let Some(jwks) = &mut self.jwks {
            jwks.on_response(token, headers, body);
        }
    }

    /// The root's tick: key sets refreshed, discovery reported, event windows closed, some
    /// schemas compiled.
    pub(super) fn on_tick(&mut self) {
        if let Some(jwks) = &mut self.jwks {
            jwks.on_tick();
        }
        let serving = &self.serving;
        let now_ms = events::now_ms();
        if let Some(discovery) = &serving.discovery {
            discovery.report(&serving.policy, &serving.events, now_ms);
        }
        serving.events.flush(&serving.policy, now_ms);
        if let Some(background) = &mut self.background {
            if !background.on_tick() {
                self.background = None;
            }
        }
    }
}
