//! Abuse protection for one exchange (`abuse` in the policy): what the quarantine and the
//! rate limits found, kept until the reply or the response, over the shared data and
//! clock of the [`Input`]. The order is the exchange's (its module docs): the quarantine
//! once the checks of the head named the client, the rate limits for what they let
//! through, a strike for every refusal the client caused.

use std::net::IpAddr;

use super::{Input, Step};
use crate::abuse::slots::SlotReport;
use crate::abuse::Client;
use crate::policy::Policy;
use crate::settings::Mode;
use crate::verdict::{RuleId, Verdict};

/// What the request's abuse checks found.
#[derive(Default)]
pub(super) struct Guard {
    /// The client's quarantine key, when the policy has a quarantine: blocked requests
    /// are strikes against it.
    quarantine_key: Option<u64>,
    /// The client's address as the policy identifies it, for the quarantine event.
    client_ip: Option<IpAddr>,
    /// Headers for our own reply (`Retry-After`, `RateLimit`), set by enforced refusals.
    reply_headers: Vec<(&'static str, String)>,
    /// `RateLimit-Policy` / `RateLimit` for the response to an admitted request.
    response_headers: Vec<(&'static str, String)>,
    /// A behaviour rule with `action: quarantine` found the client: its refusal starts
    /// the quarantine at once, without counting strikes.
    pub quarantine_now: bool,
}

/// What a refusal adds: the reply's headers, and the quarantine its strike started.
pub(super) struct Blocked {
    pub headers: Vec<(&'static str, String)>,
    pub quarantine: Option<Started>,
}

/// A quarantine a strike started.
pub(super) struct Started {
    pub seconds: u32,
    pub report: SlotReport,
}

impl Guard {
    /// The refusal of a quarantined client, if it is one.
    pub(super) fn quarantined<'p, I: Input>(
        &mut self,
        policy: &'p Policy,
        step: &Step<'_, I>,
        client: &Client<'_>,
    ) -> Option<Verdict<'p>> {
        let abuse = policy.abuse.as_ref()?;
        self.quarantine_key = abuse.quarantine_key(&step.input.slot_secret(), client);
        self.client_ip = abuse.client_ip(client);
        let store = step.input.store();
        let refusal = abuse.held(store, self.quarantine_key?, step.now(), enforcing(policy))?;
        if refusal.enforced {
            self.reply_headers = refusal.headers.clone();
        }
        Some(refusal.verdict(None))
    }

    /// Counts the request against the rate limits; a refusal joins the verdict. Returns
    /// what happened in the slots, for the counters.
    pub(super) fn rate_limit<'p, I: Input>(
        &mut self,
        policy: &'p Policy,
        step: &Step<'_, I>,
        client: &Client<'_>,
        verdict: &mut Verdict<'p>,
    ) -> Vec<SlotReport> {
        let Some(abuse) = &policy.abuse else {
            return Vec::new();
        };
        let operation = verdict.operation.map(|o| o.id);
        let admission = abuse.admit(
            step.input.store(),
            &step.input.slot_secret(),
            client,
            operation,
            step.now(),
            enforcing(policy),
        );
        self.response_headers = admission.headers;
        if let Some(refusal) = admission.refusal {
            if refusal.enforced {
                self.reply_headers = refusal.headers.clone();
            }
            verdict.violations.extend(refusal.verdict(None).violations);
            verdict.settle();
        }
        admission.reports
    }

    /// The request is refused for `rule`: counts a strike when the client caused it.
    /// `by_client`: `false` for a response the upstream got wrong, which is not the
    /// client's doing; a refusal by the quarantine itself is no strike either, or a
    /// quarantine would never end.
    pub(super) fn blocked<I: Input>(
        &mut self,
        policy: &Policy,
        step: &Step<'_, I>,
        rule: RuleId,
        by_client: bool,
    ) -> Blocked {
        // A refusal by the quarantine is no new strike, nor one by the volume circuit
        // breaker: a spike of an operation's traffic is no one client's doing.
        let strikes = !matches!(rule, RuleId::Quarantined | RuleId::BehaviourVolume);
        let quarantine = if by_client && strikes {
            self.strike(policy, step, self.quarantine_now)
        } else {
            None
        };
        Blocked {
            headers: std::mem::take(&mut self.reply_headers),
            quarantine,
        }
    }

    /// The client's address as the policy identifies it (`trusted_hops`), for events.
    pub(super) fn client_ip(&self) -> Option<IpAddr> {
        self.client_ip
    }

    /// `RateLimit-Policy` / `RateLimit` for the response of an admitted request.
    pub(super) fn take_response_headers(&mut self) -> Vec<(&'static str, String)> {
        std::mem::take(&mut self.response_headers)
    }

    /// A refusal's `Retry-After`, unless a refusal before it set one.
    pub(super) fn retry_after(&mut self, seconds: u64) {
        if !self
            .reply_headers
            .iter()
            .any(|(name, _)| *name == "retry-after")
        {
            self.reply_headers
                .push(("retry-after", seconds.to_string()));
        }
    }

    /// Counts a strike (`now`: starts the quarantine without one); `Some` when it
    /// started a quarantine.
    fn strike<I: Input>(&self, policy: &Policy, step: &Step<'_, I>, now: bool) -> Option<Started> {
        let (Some(abuse), Some(key)) = (&policy.abuse, self.quarantine_key) else {
            return None;
        };
        let (store, time) = (step.input.store(), step.now());
        let report = match now {
            true => abuse.quarantine_now(store, key, time)?,
            false => abuse.strike(store, key, time)?,
        };
        let seconds = abuse.quarantine.as_ref()?.duration_seconds();
        Some(Started { seconds, report })
    }
}

fn enforcing(policy: &Policy) -> bool {
    policy.mode == Mode::Enforce
}
