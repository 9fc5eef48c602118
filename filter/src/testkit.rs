//! What the unit tests build their engines and requests from, so each test file writes only
//! what it is about: its contract, its settings, its requests.
//!
//! - a policy from an inline OpenAPI document and the policy's other sections
//!   ([`policy`], [`try_policy`]);
//! - an [`Exchange`] over it, with fixed [`Values`] for its input ([`exchange`], [`input`]);
//! - request heads ([`RequestHead::get`], [`RequestHead::new`] and its builders).

use std::rc::Rc;

use serde_json::{json, Value};

use crate::abuse::slots::{MemoryStore, SlotSecret};
use crate::error::PolicyError;
use crate::exchange::{Exchange, Values};
use crate::policy::Policy;
use crate::request::RequestHead;

/// A second of the host's clock (nanoseconds).
pub(crate) const SECOND: u64 = 1_000_000_000;
/// The time the tests run at: 2023-11-14, well inside every test token's validity.
pub(crate) const T0: u64 = 1_700_000_000 * SECOND;
/// A fixed slot secret, for tests that need fingerprints but not their secrecy.
pub(crate) const SECRET: SlotSecret = SlotSecret::new([7; SlotSecret::BYTES]);
/// The downstream address of [`input`]'s requests.
pub(crate) const CLIENT: &str = "192.0.2.7:5678";

/// Compiles the policy `name` for the OpenAPI `document`, with `sections` (a JSON object:
/// `mode`, `limits`, `security`, `abuse`…) as the policy's other top-level keys.
pub(crate) fn try_policy(
    name: &str,
    document: Value,
    sections: Value,
) -> Result<Policy, PolicyError> {
    let mut config = json!({"name": name, "openapi": {"document": document}});
    if let (Some(config), Some(sections)) = (config.as_object_mut(), sections.as_object()) {
        config.extend(sections.clone());
    }
    Policy::compile(config.to_string())
}

/// [`try_policy`], for a policy the test expects to compile.
pub(crate) fn policy(name: &str, document: Value, sections: Value) -> Policy {
    try_policy(name, document, sections).unwrap_or_else(|e| panic!("the test policy: {e}"))
}

/// An exchange of `policy`, with a key ring of its own.
pub(crate) fn exchange(policy: &Rc<Policy>) -> Exchange {
    Exchange::new(Rc::clone(policy), Rc::new(policy.key_ring()))
}

/// What the host gives an exchange at [`T0`]: the client [`CLIENT`], an empty store.
pub(crate) fn input() -> Values<MemoryStore> {
    Values {
        now: T0,
        downstream: Some(CLIENT.to_owned()),
        store: MemoryStore::default(),
        secret: SECRET,
    }
}

impl<'a> RequestHead<'a> {
    /// A request without headers or body.
    pub(crate) fn new(method: &'a str, target: &'a str) -> Self {
        RequestHead {
            method: method.as_bytes(),
            path: target.as_bytes(),
            headers: &[],
            has_body: false,
        }
    }

    /// A `GET` without headers.
    pub(crate) fn get(target: &'a str) -> Self {
        RequestHead::new("GET", target)
    }

    /// The request with these headers (names lowercase, as Envoy gives them).
    pub(crate) fn headers(self, headers: &'a [(&'a str, &'a str)]) -> Self {
        RequestHead { headers, ..self }
    }

    /// The request with a body stream following its head.
    pub(crate) fn with_body(self, has_body: bool) -> Self {
        RequestHead { has_body, ..self }
    }
}
