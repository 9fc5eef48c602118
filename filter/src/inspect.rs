//! Request inspection: a pure function from a request view to a verdict.

use crate::config::Mode;
use crate::path;
use crate::policy::Policy;
use crate::verdict::{Action, Method, OperationRef, RuleId, Verdict};

/// What the engine needs of a request, as bytes straight from the host.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    pub method: &'a [u8],
    /// The `:path` pseudo-header: path and query, as Envoy will route it.
    pub path: &'a [u8],
}

impl Policy {
    /// Decides what happens to a request. Never panics, whatever the bytes.
    pub fn inspect<'p>(&'p self, request: &RequestView<'_>) -> Verdict<'p> {
        let mut verdict = Verdict {
            action: Action::Allow,
            rule: None,
            operation: None,
            allowed: None,
        };
        let rule = match self.match_operation(request, &mut verdict) {
            Ok(()) => return verdict,
            Err(rule) => rule,
        };
        verdict.rule = Some(rule);
        verdict.action = match self.mode {
            Mode::Enforce => Action::Block,
            Mode::Monitor => Action::Monitor,
        };
        verdict
    }

    fn match_operation<'p>(
        &'p self,
        request: &RequestView<'_>,
        verdict: &mut Verdict<'p>,
    ) -> Result<(), RuleId> {
        let target = path::parse(request.path)?;
        let found = self
            .router
            .find(&target.segments)
            .ok_or(RuleId::UnknownPath)?;
        let route = found.route;
        let operation =
            Method::from_request(request.method).and_then(|m| route.operation(m).map(|op| (m, op)));
        let Some((method, operation)) = operation else {
            verdict.allowed = Some((route.template(), route.methods()));
            return Err(RuleId::MethodNotAllowed);
        };
        verdict.operation = Some(OperationRef {
            method,
            template: &operation.template,
            operation_id: operation.operation_id.as_deref(),
        });
        Ok(())
    }
}
