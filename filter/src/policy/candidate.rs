//! The contract canary's configuration: the `candidate` section's document with the
//! policy's own settings, so that the two contracts differ by their documents (and
//! `strict`, when the candidate sets it) and by nothing else.
//!
//! The candidate runs no rate limits, quarantine, behaviour rules or discovery (the policy's are not the
//! contract's, and counting a request twice against them would be wrong), and has no
//! candidate itself.

use crate::config::{CandidateConfig, PolicyConfig};

/// The configuration the candidate compiles from: `policy`'s settings, `candidate`'s
/// document.
pub(super) fn config(policy: &PolicyConfig, candidate: CandidateConfig) -> PolicyConfig {
    PolicyConfig {
        name: policy.name.clone(),
        mode: policy.mode,
        strict: candidate.strict.unwrap_or(policy.strict),
        limits: policy.limits,
        responses: policy.responses,
        schemas: policy.schemas,
        operations: policy.operations.clone(),
        security: policy.security.clone(),
        events: policy.events.clone(),
        openapi: candidate.openapi,
        abuse: None,
        stats: policy.stats,
        discovery: None,
        behaviour: None,
        candidate: None,
        matcher: None,
    }
}
