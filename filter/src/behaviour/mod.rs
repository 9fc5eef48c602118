//! Behavioural detection: what no single request shows, counted per client over a window
//! in fixed slots of shared data, and explained per rule.
//!
//! - [`bola`]: a client walking through object ids (`behaviour.bola`, OWASP API1);
//! - [`login`]: failed sign-ins and the usernames tried (`behaviour.brute_force`,
//!   `behaviour.credential_stuffing`, OWASP API2);
//! - [`flow`]: an operation called without the step that must come before it
//!   (`behaviour.flow`), or completed too often by one identity (`behaviour.flow_velocity`,
//!   OWASP API6);
//! - [`baseline`]: what is normal per operation, learnt while serving, and spikes beyond
//!   it: requests (`behaviour.volume`), error answers (`behaviour.errors`), response sizes
//!   (`behaviour.response_size`);
//!
//! the first two over a [`window`] table of [`sketch`]es, flows over a table of instants. A finding is a violation of its rule
//! with the [`Evidence`] (what was counted, against what threshold, over which window),
//! and the rule's `action`: `log` records it, `block` refuses the request (in `enforce`
//! mode), `quarantine` refuses it and starts the client's quarantine (`abuse.quarantine`).
//! When each check runs in a request's life is written once, in [`crate::exchange`].

pub(crate) mod baseline;
pub(crate) mod bola;
pub(crate) mod flow;
pub(crate) mod login;
pub(crate) mod sketch;
pub(crate) mod window;

use std::borrow::Cow;

use serde::Deserialize;

use crate::abuse::ratelimit::{DEFAULT_SLOTS, MAX_SLOTS};
use crate::abuse::slots::Table;
use crate::abuse::Abuse;
use crate::contract::CompiledOperation;
use crate::error::{Location, PolicyError};
use crate::events::Evidence;
use crate::verdict::{RuleId, Violation};
use baseline::{BaselineConfig, Baselines};
use bola::{Bola, BolaConfig};
use flow::{Flow, FlowConfig};
use login::{Login, LoginConfig};
use sketch::Distinct;

/// The `behaviour:` section of a policy; each rule is off unless it is there.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BehaviourConfig {
    pub bola: Option<BolaConfig>,
    pub credentials: Option<LoginConfig>,
    #[serde(default)]
    pub flows: Vec<FlowConfig>,
    pub baselines: Option<BaselineConfig>,
}

/// What a rule does with its finding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Reaction {
    /// Record it (event, counters); the request goes on.
    #[default]
    Log,
    /// Refuse the request (in `enforce` mode; `monitor` records it).
    Block,
    /// Refuse it and quarantine the client (`abuse.quarantine` says for how long).
    Quarantine,
}

/// The compiled `behaviour` section.
#[derive(Debug)]
pub(crate) struct Behaviour {
    pub bola: Option<Bola>,
    pub login: Option<Login>,
    pub flows: Vec<Flow>,
    pub baselines: Option<Baselines>,
}

/// A rule found the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    pub rule: RuleId,
    pub reaction: Reaction,
    pub evidence: Evidence,
    /// Seconds until the window ends, when the client's count starts again (0: nothing
    /// to wait for, as for a skipped flow step).
    pub retry_after: u64,
}

impl Finding {
    fn new(rule: RuleId, reaction: Reaction, evidence: Evidence, retry_after: u64) -> Finding {
        Finding {
            rule,
            reaction,
            evidence,
            retry_after,
        }
    }

    /// The violation it adds to the request's verdict; `enforce`: the policy's mode is.
    /// Its reason says the counts (numbers the filter counted, never request data).
    pub(crate) fn violation(&self, enforce: bool) -> Violation {
        let e = &self.evidence;
        let mut reason = format!(
            "{} {} in {} s (threshold {})",
            e.count, e.measure, e.window_seconds, e.threshold
        );
        if let (Some(answers), Some(denied)) = (e.answers, e.denied) {
            reason.push_str(&format!("; {denied} of {answers} answers were 403 or 404"));
        }
        if let (Some(mean), Some(sigma)) = (e.mean, e.sigma) {
            reason.push_str(&format!("; normal: mean {mean}, sigma {sigma}"));
        }
        Violation {
            rule: self.rule,
            location: None,
            name: None,
            reason: Cow::Owned(reason),
            enforced: enforce && self.reaction != Reaction::Log,
        }
    }
}

/// The settings every rule shares, checked alike.
struct Common<'a> {
    at: &'a str,
    window_seconds: u32,
    slots: u32,
    reaction: Reaction,
}

impl Behaviour {
    /// `find` resolves an operationId or `METHOD /template` to an operation id; `abuse`
    /// is the policy's, which a `quarantine` action needs.
    pub(crate) fn compile(
        config: &BehaviourConfig,
        api: &str,
        operations: &[CompiledOperation],
        find: &dyn Fn(&str) -> Option<usize>,
        abuse: Option<&Abuse>,
        origin: &str,
    ) -> Result<Behaviour, PolicyError> {
        let invalid = |pointer: String, message: &str| PolicyError::Invalid {
            at: Location::new(origin, pointer),
            message: message.to_owned(),
        };
        let check = |common: Common<'_>| {
            if common.window_seconds == 0 {
                return Err(invalid(
                    format!("{}/window_seconds", common.at),
                    "must be at least 1",
                ));
            }
            if common.slots == 0 || common.slots > MAX_SLOTS {
                return Err(invalid(
                    format!("{}/slots", common.at),
                    "must be 1 to 65536",
                ));
            }
            if common.reaction == Reaction::Quarantine
                && abuse.is_none_or(|a| a.quarantine.is_none())
            {
                return Err(invalid(
                    format!("{}/action", common.at),
                    "`quarantine` needs `abuse.quarantine`, which says for how long",
                ));
            }
            Ok(())
        };
        let threshold = |at: String, value: u32| {
            if value == 0 || value > Distinct::MAX_THRESHOLD {
                return Err(invalid(
                    at,
                    "must be 1 to 200: distinct values are counted in a 256-bit sketch",
                ));
            }
            Ok(())
        };
        let named = |at: &str, names: &[String]| {
            (names.iter().enumerate())
                .map(|(i, name)| {
                    find(name).ok_or_else(|| {
                        invalid(
                            format!("{at}/operations/{i}"),
                            "names no operation of the document",
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let bola = match &config.bola {
            Some(bola) => {
                let at = "/behaviour/bola";
                check(Common {
                    at,
                    window_seconds: bola.window_seconds,
                    slots: bola.slots,
                    reaction: bola.action,
                })?;
                threshold(format!("{at}/max_distinct_ids"), bola.max_distinct_ids)?;
                if bola.relative.is_some_and(|k| !(k >= 1.0 && k.is_finite())) {
                    return Err(invalid(format!("{at}/relative"), "must be at least 1"));
                }
                if bola.denied_ratio.is_some_and(|r| !(r > 0.0 && r <= 1.0)) {
                    return Err(invalid(
                        format!("{at}/denied_ratio"),
                        "must be above 0 and at most 1",
                    ));
                }
                let ids = bola::object_ids(operations, bola.infer).map_err(|(op, name)| {
                    let pointer = operations.get(op).map_or("", |o| o.pointer.as_str());
                    invalid(
                        format!("{pointer}/x-apiguard/object_id"),
                        &format!("`{name}` is no path parameter of this operation"),
                    )
                })?;
                Some(Bola::new(bola, format!("apiguard.b.{api}.bola"), ids))
            }
            None => None,
        };
        let login = match &config.credentials {
            Some(login) => {
                let at = "/behaviour/credentials";
                check(Common {
                    at,
                    window_seconds: login.window_seconds,
                    slots: login.slots,
                    reaction: login.action,
                })?;
                if login.max_failures.is_none() && login.max_usernames.is_none() {
                    return Err(invalid(
                        at.to_owned(),
                        "set `max_failures`, `max_usernames` or both",
                    ));
                }
                if login.max_failures == Some(0) {
                    return Err(invalid(format!("{at}/max_failures"), "must be at least 1"));
                }
                if let Some(max) = login.max_usernames {
                    threshold(format!("{at}/max_usernames"), max)?;
                    if login.username.is_none() {
                        return Err(invalid(
                            format!("{at}/username"),
                            "`max_usernames` needs the body field that holds the username",
                        ));
                    }
                }
                let listed = named(at, &login.operations)?;
                let sensitive = (operations.iter().enumerate())
                    .map(|(i, op)| op.contract.sensitive.is_some() || listed.contains(&i))
                    .collect();
                Some(Login::new(
                    login,
                    format!("apiguard.b.{api}.login"),
                    sensitive,
                ))
            }
            None => None,
        };
        let mut flows: Vec<Flow> = Vec::new();
        for (i, flow) in config.flows.iter().enumerate() {
            let at = format!("/behaviour/flows/{i}");
            check(Common {
                at: &at,
                window_seconds: flow.window_seconds,
                slots: flow.slots,
                reaction: flow.action,
            })?;
            let name = &flow.name;
            let valid = (1..=32).contains(&name.len())
                && (name.bytes())
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-".contains(&b));
            if !valid {
                return Err(invalid(
                    format!("{at}/name"),
                    "must be 1 to 32 characters of a-z 0-9 _ -",
                ));
            }
            if flows.iter().any(|f| &f.name == name) {
                return Err(invalid(format!("{at}/name"), "another flow has this name"));
            }
            let step = |field: &str, operation: &str| {
                find(operation).ok_or_else(|| {
                    invalid(
                        format!("{at}/{field}"),
                        "names no operation of the document",
                    )
                })
            };
            if flow.max_per_window == Some(0) {
                return Err(invalid(
                    format!("{at}/max_per_window"),
                    "must be at least 1",
                ));
            }
            let (after, then) = (step("after", &flow.after)?, step("then", &flow.then)?);
            if after == then {
                return Err(invalid(
                    format!("{at}/then"),
                    "a step cannot require itself",
                ));
            }
            let prefix = format!("apiguard.b.{api}.flow.{name}");
            flows.push(Flow::new(flow, prefix, after, then));
        }
        let baselines = match &config.baselines {
            Some(b) => {
                let at = "/behaviour/baselines";
                if !(1..=3600).contains(&b.bucket_seconds) {
                    return Err(invalid(format!("{at}/bucket_seconds"), "must be 1 to 3600"));
                }
                if !(1..=10_000).contains(&b.warmup_buckets) {
                    return Err(invalid(
                        format!("{at}/warmup_buckets"),
                        "must be 1 to 10000",
                    ));
                }
                if !(b.smoothing > 0.0 && b.smoothing <= 1.0) {
                    return Err(invalid(
                        format!("{at}/smoothing"),
                        "must be above 0 and at most 1",
                    ));
                }
                if !(b.sigma > 0.0 && b.sigma.is_finite()) {
                    return Err(invalid(format!("{at}/sigma"), "must be above 0"));
                }
                if b.action == Reaction::Quarantine {
                    return Err(invalid(
                        format!("{at}/action"),
                        "`log` or `block`: a spike of an operation's traffic is no one client's",
                    ));
                }
                if let Some(share) = b.client_share {
                    if !(share > 0.0 && share <= 1.0) {
                        return Err(invalid(
                            format!("{at}/client_share"),
                            "must be above 0 and at most 1",
                        ));
                    }
                    if !b.measures.contains(&baseline::Measure::Volume) {
                        return Err(invalid(
                            format!("{at}/client_share"),
                            "needs the `volume` measure: the share is of its normal",
                        ));
                    }
                    if b.slots == 0 || b.slots > MAX_SLOTS {
                        return Err(invalid(format!("{at}/slots"), "must be 1 to 65536"));
                    }
                }
                let prefix = format!("apiguard.b.{api}.base");
                Some(Baselines::new(b, prefix, operations.len()))
            }
            None => None,
        };
        Ok(Behaviour {
            bola,
            login,
            flows,
            baselines,
        })
    }

    /// Every slot table, for the host to create at configure time.
    pub(crate) fn tables(&self) -> impl Iterator<Item = &Table> {
        (self.bola.iter().map(|b| &b.windows.table))
            .chain((self.bola.iter()).filter_map(|b| b.normals.as_ref().map(|n| &n.table)))
            .chain(self.login.iter().map(|l| &l.windows.table))
            .chain(self.flows.iter().map(|f| &f.table))
            .chain((self.flows.iter()).filter_map(|f| f.velocity.as_ref().map(|(w, _)| &w.table)))
            .chain(self.baselines.iter().map(|b| &b.table))
            .chain(
                (self.baselines.iter()).filter_map(|b| b.clients.as_ref().map(|(w, _)| &w.table)),
            )
    }
}

fn default_slots() -> u32 {
    DEFAULT_SLOTS
}

#[cfg(test)]
mod tests;
