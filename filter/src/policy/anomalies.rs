//! The anomaly stage of a request, for a policy: which operation's declarations the
//! checks read, and the policy's mode, which [`crate::abuse::anomaly`] itself does not know.

use crate::abuse::anomaly::BodyKind;
use crate::contract::params::In;
use crate::policy::{BodyCheck, Policy};
use crate::request::RequestHead;
use crate::settings::Mode;
use crate::verdict::Verdict;

impl Policy {
    /// Adds the anomaly findings of a request head to its verdict (and settles it again).
    /// `authority` is the `:authority` (HTTP/1.1 `Host`) the host saw.
    pub fn inspect_anomalies<'p>(
        &'p self,
        head: &RequestHead<'_>,
        authority: Option<&str>,
        verdict: &mut Verdict<'p>,
    ) {
        let Some(anomaly) = self.abuse.as_ref().map(|a| &a.anomaly) else {
            return;
        };
        let operation = verdict.operation.map(|o| o.id);
        let declared: Vec<&str> = operation
            .and_then(|id| self.operations.get(id))
            .map(|op| {
                op.contract
                    .params
                    .iter()
                    .filter(|p| p.location == In::Query)
                    .map(|p| p.name.as_str())
                    .collect()
            })
            .unwrap_or_default();
        // Headers that carried a verified token not forwarded: the upstream never reads
        // them, and a signed token's bytes are the issuer's, not the client's free text.
        let withheld = verdict
            .identity
            .as_ref()
            .map_or(&[][..], |identity| &identity.remove[..]);
        let findings = anomaly.head(head, authority, &declared, withheld, &self.limits);
        let found = anomaly.score(findings, operation, self.mode == Mode::Enforce);
        if !found.is_empty() {
            verdict.violations.extend(found);
            verdict.settle();
        }
    }

    /// Adds the anomaly findings of a buffered body to its verdict.
    pub fn inspect_body_anomalies(
        &self,
        check: &BodyCheck,
        bytes: &[u8],
        verdict: &mut Verdict<'_>,
    ) {
        let Some(anomaly) = self.abuse.as_ref().map(|a| &a.anomaly) else {
            return;
        };
        let kind = match check.multipart_boundary() {
            Some(boundary) => BodyKind::Multipart { boundary },
            None if check.is_json() => BodyKind::Json,
            None if check.is_form() => BodyKind::Form,
            None => BodyKind::Opaque,
        };
        let findings = anomaly.body(kind, check.body_on_get(), bytes, &self.limits);
        let found = anomaly.score(
            findings,
            Some(check.operation()),
            self.mode == Mode::Enforce,
        );
        if !found.is_empty() {
            verdict.violations.extend(found);
            verdict.settle();
        }
    }
}
