//! Behavioural detection for one exchange (`behaviour` in the policy): the windows the
//! request counted in, so that its body and its response count there too, and the
//! evidence of what was found, for the verdict's event. The order is the exchange's (its
//! module docs): at the head after the rate limits, the body's username at its end, the
//! upstream's status at the response (which also opens the next step of a flow, counts a
//! completion of its last, and feeds the operation's error baseline), the response's size
//! once the stream ends.

use super::{Input, Step};
use crate::abuse::slots::SlotReport;
use crate::abuse::{client_network, Client};
use crate::behaviour::baseline::Measure;
use crate::behaviour::bola::{self, Bola};
use crate::behaviour::{Finding, Reaction};
use crate::contract::path;
use crate::events::Evidence;
use crate::policy::{BodyCheck, Policy};
use crate::request::{Method, RequestHead};
use crate::settings::Mode;
use crate::verdict::{Action, RuleId, Verdict};

/// What the request's behaviour checks counted and found.
#[derive(Default)]
pub(super) struct Watch {
    /// The identity's object-enumeration window, when the request counted an object.
    bola: Option<u64>,
    /// The client's sign-in window, when the operation is sensitive.
    login: Option<u64>,
    /// The flows whose first step this request is (by index), with the identity's slot
    /// fingerprint in each: a 2xx answer opens the next step.
    flows: Vec<(usize, u64)>,
    /// The flows with a velocity limit whose last step this request is, with the
    /// identity's fingerprint: a 2xx answer is a completion.
    completions: Vec<(usize, u64)>,
    /// The operation whose baselines the upstream's answer feeds (errors, sizes).
    baseline: Option<usize>,
    /// …and, once the upstream answered, whose size baseline its body feeds.
    sized: Option<usize>,
    /// What the findings counted, for the event of the verdict they joined.
    evidence: Vec<Evidence>,
    /// An enforced finding asks for the client's quarantine.
    pub quarantine: bool,
    /// Seconds until the window of an enforced finding ends (`Retry-After`).
    pub retry_after: Option<u64>,
}

impl Watch {
    /// At the request head, after the rate limits: a refusal of the credentials by the
    /// token checks is a failed sign-in; a client whose sign-in window already finds it
    /// is refused; a step of a flow whose previous step the identity did not do is
    /// refused; a request that goes on counts its object. Findings join `verdict`.
    pub(super) fn head<'p, I: Input>(
        &mut self,
        policy: &'p Policy,
        step: &Step<'_, I>,
        client: &Client<'_>,
        head: &RequestHead<'_>,
        verdict: &mut Verdict<'p>,
    ) -> Vec<SlotReport> {
        let mut reports = Vec::new();
        let (Some(behaviour), Some(operation)) = (&policy.behaviour, verdict.operation) else {
            return reports;
        };
        let (store, secret, now) = (step.input.store(), step.input.slot_secret(), step.now());
        if let Some(login) = behaviour.login.as_ref().filter(|l| l.guards(operation.id)) {
            if let Some(network) = client_network(policy.abuse.as_ref(), client) {
                let fingerprint = secret.fingerprint(format!("login\x1f{network}").as_bytes());
                self.login = Some(fingerprint);
                let refused = (verdict.violations.iter()).any(|v| {
                    matches!(
                        v.rule,
                        RuleId::AuthMissing | RuleId::AuthInvalid | RuleId::AuthInsufficientScope
                    )
                });
                if refused {
                    reports.push(login.failed(store, fingerprint, now));
                }
                if let Some(finding) = login.head(store, fingerprint, now) {
                    self.join(policy, finding, verdict);
                }
            }
        }
        if let Some(baselines) = &behaviour.baselines {
            if baselines.keeps(Measure::Volume) {
                let (finding, report) = baselines.request(store, operation.id, now);
                reports.push(report);
                if let Some(finding) = finding {
                    self.join(policy, finding, verdict);
                }
            }
            let key = (baselines.clients.is_some())
                .then(|| identity(policy, client))
                .flatten();
            if let Some(key) = key {
                let fingerprint = Bola::fingerprint(&secret, &key, operation.id);
                if let Some((finding, report)) =
                    baselines.client(store, operation.id, fingerprint, now)
                {
                    reports.push(report);
                    if let Some(finding) = finding {
                        self.join(policy, finding, verdict);
                    }
                }
            }
            let answers =
                baselines.keeps(Measure::Errors) || baselines.keeps(Measure::ResponseSize);
            self.baseline = Some(operation.id).filter(|_| answers);
        }
        let names = (behaviour.bola.as_ref()).map_or(&[][..], |b| b.parameters(operation.id));
        let in_flows =
            (behaviour.flows.iter()).any(|f| f.then == operation.id || f.after == operation.id);
        if verdict.action == Action::Block || (names.is_empty() && !in_flows) {
            return reports;
        }
        let Some(key) = identity(policy, client) else {
            return reports;
        };
        for (i, flow) in behaviour.flows.iter().enumerate() {
            let fingerprint = flow.fingerprint(&secret, &key);
            if flow.after == operation.id {
                self.flows.push((i, fingerprint));
            }
            if flow.then == operation.id {
                let finding = (flow.check(store, fingerprint, now))
                    .or_else(|| flow.velocity(store, fingerprint, now));
                if let Some(finding) = finding {
                    self.join(policy, finding, verdict);
                } else if flow.velocity.is_some() {
                    self.completions.push((i, fingerprint));
                }
            }
        }
        let Some(bola) = behaviour.bola.as_ref().filter(|_| !names.is_empty()) else {
            return reports;
        };
        if verdict.action == Action::Block {
            return reports;
        }
        let Ok(target) = path::parse(head.path) else {
            return reports;
        };
        let values = Method::from_request(head.method).and_then(|method| {
            bola::values(
                &policy.router,
                &target.segments,
                method,
                operation.id,
                names,
            )
        });
        let Some(values) = values else {
            return reports;
        };
        let fingerprint = Bola::fingerprint(&secret, &key, operation.id);
        self.bola = Some(fingerprint);
        let counted = (operation.id, fingerprint);
        let (finding, counts) = bola.request(store, &secret, counted, &values, now);
        reports.extend(counts);
        if let Some(finding) = finding {
            self.join(policy, finding, verdict);
        }
        reports
    }

    /// The complete request body: the username of a sign-in, counted.
    pub(super) fn body<'p, I: Input>(
        &mut self,
        policy: &'p Policy,
        step: &Step<'_, I>,
        check: &BodyCheck,
        bytes: &[u8],
        verdict: &mut Verdict<'p>,
    ) -> Option<SlotReport> {
        let login = policy.behaviour.as_ref()?.login.as_ref()?;
        let fingerprint = self.login?;
        if !login.reads_usernames() || !(check.is_json() || check.is_form()) {
            return None;
        }
        let (store, secret, now) = (step.input.store(), step.input.slot_secret(), step.now());
        let (finding, report) =
            login.body(store, &secret, fingerprint, bytes, check.is_form(), now);
        if let Some(finding) = finding {
            self.join(policy, finding, verdict);
        }
        Some(report)
    }

    /// Whether the upstream's status is to be counted.
    pub(super) fn watches_response(&self) -> bool {
        self.bola.is_some()
            || self.login.is_some()
            || !self.flows.is_empty()
            || !self.completions.is_empty()
            || self.baseline.is_some()
    }

    /// The upstream's answer: a denial of an object (403, 404), a failed sign-in (401,
    /// 403), a completion of a flow (2xx), an answer to the operation's error baseline.
    /// What the baseline found is a verdict about the operation, for the exchange to
    /// record.
    pub(super) fn response<'p, I: Input>(
        &mut self,
        policy: &'p Policy,
        step: &Step<'_, I>,
        status: u16,
    ) -> (Vec<SlotReport>, Option<Verdict<'p>>) {
        let mut reports = Vec::new();
        let Some(behaviour) = &policy.behaviour else {
            return (reports, None);
        };
        let (store, now) = (step.input.store(), step.now());
        if let (Some(bola), Some(fingerprint)) = (&behaviour.bola, self.bola.take()) {
            reports.push(bola.response(store, fingerprint, status, now));
        }
        for (i, fingerprint) in std::mem::take(&mut self.flows) {
            let flow = behaviour
                .flows
                .get(i)
                .filter(|_| (200..300).contains(&status));
            if let Some(flow) = flow {
                reports.push(flow.done(store, fingerprint, now));
            }
        }
        for (i, fingerprint) in std::mem::take(&mut self.completions) {
            let flow = behaviour
                .flows
                .get(i)
                .filter(|_| (200..300).contains(&status));
            reports.extend(flow.and_then(|f| f.completed(store, fingerprint, now)));
        }
        let login = behaviour.login.as_ref();
        if let (Some(login), Some(fingerprint)) = (login, self.login.take()) {
            if matches!(status, 401 | 403) {
                reports.push(login.failed(store, fingerprint, now));
            }
        }
        let (Some(baselines), Some(operation)) = (&behaviour.baselines, self.baseline.take())
        else {
            return (reports, None);
        };
        self.sized = Some(operation).filter(|_| baselines.keeps(Measure::ResponseSize));
        if !baselines.keeps(Measure::Errors) {
            return (reports, None);
        }
        let (finding, report) = baselines.response(store, operation, status, now);
        reports.push(report);
        (reports, finding.map(|f| self.verdict(policy, operation, f)))
    }

    /// The stream ended with `bytes` of response body from the upstream: fed to the
    /// operation's size baseline; what it found, as a verdict about the operation.
    pub(super) fn response_size<'p, I: Input>(
        &mut self,
        policy: &'p Policy,
        step: &Step<'_, I>,
        bytes: u64,
    ) -> (Option<SlotReport>, Option<Verdict<'p>>) {
        let operation = self.sized.take();
        let baselines = (policy.behaviour.as_ref()).and_then(|b| b.baselines.as_ref());
        let (Some(baselines), Some(operation)) = (baselines, operation) else {
            return (None, None);
        };
        let (finding, report) =
            baselines.response_size(step.input.store(), operation, bytes, step.now());
        (
            Some(report),
            finding.map(|f| self.verdict(policy, operation, f)),
        )
    }

    /// A verdict about `operation` of one finding made after the request went upstream.
    fn verdict<'p>(
        &mut self,
        policy: &'p Policy,
        operation: usize,
        finding: Finding,
    ) -> Verdict<'p> {
        let mut verdict = Verdict {
            operation: policy.operation_ref(operation),
            ..Verdict::default()
        };
        self.join(policy, finding, &mut verdict);
        verdict
    }

    /// What the findings so far counted; taken, so one event carries it.
    pub(super) fn take_evidence(&mut self) -> Vec<Evidence> {
        std::mem::take(&mut self.evidence)
    }

    /// A finding joins the verdict; an enforced one asks for a `Retry-After` and,
    /// with `action: quarantine`, the client's quarantine.
    fn join<'p>(&mut self, policy: &Policy, finding: Finding, verdict: &mut Verdict<'p>) {
        let violation = finding.violation(policy.mode == Mode::Enforce);
        if violation.enforced {
            self.quarantine |= finding.reaction == Reaction::Quarantine;
            self.retry_after = Some(finding.retry_after).filter(|s| *s > 0);
        }
        verdict.violations.push(violation);
        verdict.settle();
        self.evidence.push(finding.evidence);
    }
}

/// Who enumerates: the verified identity (JWT `sub`, else API-key consumer), else the
/// client's address as `abuse.client` keys it; tagged, so that no subject can pass for an
/// address.
fn identity(policy: &Policy, client: &Client<'_>) -> Option<Vec<u8>> {
    let (tag, name) = match (client.subject, client.consumer) {
        (Some(subject), _) => ("sub", subject.to_owned()),
        (None, Some(consumer)) => ("key", consumer.to_owned()),
        (None, None) => ("ip", client_network(policy.abuse.as_ref(), client)?),
    };
    Some(format!("{tag}\x1f{name}").into_bytes())
}
