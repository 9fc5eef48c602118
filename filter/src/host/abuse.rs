//! Abuse protection for one request (`abuse` in the policy), on the host side: the shared
//! data and clock behind the engine's quarantine and rate limits, their counters, the
//! quarantine event, and the headers they add to replies and responses.
//!
//! Order in a request's life: [`Guard::quarantined`] once the contract and token checks
//! have named the client (a quarantined client is refused whatever they found), [`Guard::rate_limit`] for what the contract and anomaly checks let
//! through, [`Guard::blocked`] for every refusal the client caused (a strike), and
//! [`Guard::add_response_headers`] on the response.

use std::net::IpAddr;

use proxy_wasm::hostcalls;
use proxy_wasm::types::MapType;

use super::metrics::Metrics;
use super::shared::{self, HostStore};
use crate::abuse::Client;
use crate::config::Mode;
use crate::policy::Policy;
use crate::verdict::{RuleId, Verdict};

/// What the request's abuse checks found, kept until the reply or the response.
#[derive(Default)]
pub struct Guard {
    /// The client's quarantine key, when the policy has a quarantine: blocked requests
    /// are strikes against it.
    quarantine_key: Option<u64>,
    /// The client's address as the policy identifies it, for the quarantine event.
    client_ip: Option<IpAddr>,
    /// Headers for our own reply (`Retry-After`, `RateLimit`), set by enforced refusals.
    reply_headers: Vec<(&'static str, String)>,
    /// `RateLimit-Policy` / `RateLimit` for the response to an admitted request.
    response_headers: Vec<(&'static str, String)>,
}

/// The downstream address, read only when an `abuse` check needs it.
pub fn downstream(policy: &Policy) -> Option<String> {
    policy
        .abuse
        .as_ref()
        .filter(|abuse| abuse.reads_address())
        .and_then(|_| shared::downstream_address())
}

impl Guard {
    /// The refusal of a quarantined client, if it is one. `now`: [`shared::now`], read
    /// once per request for this and [`Guard::rate_limit`].
    pub fn quarantined<'p>(
        &mut self,
        policy: &'p Policy,
        client: &Client<'_>,
        now: u64,
    ) -> Option<Verdict<'p>> {
        let abuse = policy.abuse.as_ref()?;
        self.quarantine_key = abuse.quarantine_key(&shared::slot_secret(), client);
        self.client_ip = abuse.client_ip(client);
        let refusal = abuse.held(&HostStore, self.quarantine_key?, now, enforcing(policy))?;
        if refusal.enforced {
            self.reply_headers = refusal.headers.clone();
        }
        Some(refusal.verdict(None))
    }

    /// Counts the request against the rate limits; a refusal joins the verdict.
    pub fn rate_limit<'p>(
        &mut self,
        policy: &'p Policy,
        metrics: Option<&Metrics>,
        client: &Client<'_>,
        now: u64,
        verdict: &mut Verdict<'p>,
    ) {
        let Some(abuse) = &policy.abuse else {
            return;
        };
        let operation = verdict.operation.map(|o| o.id);
        let secret = shared::slot_secret();
        let admission = abuse.admit(
            &HostStore,
            &secret,
            client,
            operation,
            now,
            enforcing(policy),
        );
        if let Some(metrics) = metrics {
            admission.reports.iter().for_each(|r| metrics.slot(*r));
        }
        self.response_headers = admission.headers;
        if let Some(refusal) = admission.refusal {
            if refusal.enforced {
                self.reply_headers = refusal.headers.clone();
            }
            verdict.violations.extend(refusal.verdict(None).violations);
            verdict.settle();
        }
    }

    /// The request is refused for `rule`: counts a strike when the client caused it, and
    /// returns the headers the reply carries, and the duration of the quarantine this
    /// strike started, if it did. `by_client`: `false` for a response the
    /// upstream got wrong, which is not the client's doing; a refusal by the quarantine
    /// itself is no strike either, or a quarantine would never end.
    pub fn blocked(
        &mut self,
        policy: &Policy,
        metrics: Option<&Metrics>,
        rule: RuleId,
        by_client: bool,
    ) -> (Vec<(&'static str, String)>, Option<u32>) {
        let started = if by_client && rule != RuleId::Quarantined {
            self.strike(policy, metrics)
        } else {
            None
        };
        (std::mem::take(&mut self.reply_headers), started)
    }

    /// The client's address as the policy identifies it (`trusted_hops`), for events.
    pub fn client_ip(&self) -> Option<IpAddr> {
        self.client_ip
    }

    /// Adds `RateLimit-Policy` / `RateLimit` to the response of an admitted request.
    pub fn add_response_headers(&mut self) {
        for (name, value) in std::mem::take(&mut self.response_headers) {
            // Advice to the client only: a failure to add it changes no decision.
            let _ = hostcalls::add_map_value(MapType::HttpResponseHeaders, name, &value);
        }
    }

    /// Counts a strike; `Some(duration in seconds)` when it started a quarantine.
    fn strike(&self, policy: &Policy, metrics: Option<&Metrics>) -> Option<u32> {
        let (Some(abuse), Some(key)) = (&policy.abuse, self.quarantine_key) else {
            return None;
        };
        let report = abuse.strike(&HostStore, key, shared::now())?;
        if let Some(metrics) = metrics {
            metrics.quarantine_started();
            metrics.slot(report);
        }
        abuse.quarantine.as_ref().map(|q| q.duration_seconds())
    }
}

fn enforcing(policy: &Policy) -> bool {
    policy.mode == Mode::Enforce
}
