//! The contract canary's compile: the `candidate` section's document, compiled with the
//! policy's own settings, so that the two contracts differ by their documents (and
//! `strict`, when the candidate sets it) and by nothing else.
//!
//! The policy's section is read a second time from the same JSON text rather than
//! cloned: its settings types are then compiled exactly as the enforced contract's are,
//! and the documents are borrowed, never copied. The candidate runs no rate limits,
//! quarantine or discovery (the policy's are not the contract's, and counting a request
//! twice against them would be wrong), and has no candidate itself.

use crate::config::{CandidateConfig, PolicyConfig};
use crate::error::{parse_json, PolicyError};
use crate::policy::{Policy, Role};

/// Compiles `candidate` with the settings of the policy whose configuration is `json`.
pub(super) fn compile<'a>(
    json: &'a str,
    candidate: CandidateConfig<'a>,
    origin: &str,
    configuration_hash: u64,
) -> Result<Policy, PolicyError> {
    let mut config: PolicyConfig<'a> = parse_json(json, origin)?;
    config.openapi = candidate.openapi;
    config.strict = candidate.strict.unwrap_or(config.strict);
    config.candidate = None;
    config.abuse = None;
    config.discovery = None;
    Policy::compile_config(config, origin, configuration_hash, Role::Candidate)
}
