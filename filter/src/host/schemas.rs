//! `schemas: lazy` in the VM: configure compiles no schema, and the root's tick then
//! compiles them a few milliseconds at a time, so configure stays short (GitHub's API:
//! about 100 ms instead of 425) and every schema is ready seconds later, before most
//! requests need it. A request that needs one first compiles it then, as it would without
//! this. The worker runs requests between ticks, so one tick's work is the most a request
//! waits behind.

use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::types::LogLevel;

use super::{log, since_epoch};
use crate::policy::{Policy, SchemaCursor};

/// The tick while schemas are left to compile: Envoy arms the next tick after this one
/// returns, so each tick's work is followed by a turn of the worker's event loop.
pub(super) const TICK: Duration = Duration::from_millis(1);
/// The most one tick spends compiling, so the most a request waits behind it (one schema
/// may overrun it: jsonschema builds a validator in about a millisecond in the VM).
const BUDGET: Duration = Duration::from_millis(5);

pub(super) struct Background {
    policy: Rc<Policy>,
    cursor: SchemaCursor,
    started: Duration,
}

impl Background {
    /// `None` unless the policy compiles its schemas lazily.
    pub(super) fn start(policy: &Rc<Policy>) -> Option<Background> {
        policy.schemas_are_lazy().then(|| Background {
            policy: Rc::clone(policy),
            cursor: SchemaCursor::default(),
            started: since_epoch(),
        })
    }

    /// Compiles for one tick's budget; `false` once every schema is compiled.
    pub(super) fn on_tick(&mut self) -> bool {
        let deadline = since_epoch() + BUDGET;
        let (next, failed) = self
            .policy
            .compile_some(self.cursor, || since_epoch() < deadline);
        for error in failed {
            // `apiguard check` refuses such a policy before it is deployed; here the
            // values it checks fail closed.
            log(
                LogLevel::Error,
                &format!("schema does not compile: {error}"),
            );
        }
        match next {
            Some(cursor) => {
                self.cursor = cursor;
                true
            }
            None => {
                let took = since_epoch().saturating_sub(self.started);
                log(
                    LogLevel::Info,
                    &format!(
                        "policy for API `{}`: every schema compiled, {} ms after configure",
                        self.policy.name,
                        took.as_millis()
                    ),
                );
                false
            }
        }
    }
}
