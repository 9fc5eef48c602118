//! The HTTP context: one per request. Gathers the request view, applies the verdict.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action as Flow, LogLevel, MapType};
use serde::Serialize;

use super::log;
use super::metrics::Metrics;
use crate::inspect::RequestView;
use crate::policy::Policy;
use crate::problem;
use crate::verdict::{Action, Verdict};

pub struct Request {
    policy: Option<Rc<Policy>>,
    metrics: Option<Rc<Metrics>>,
}

impl Request {
    pub fn new(policy: Option<Rc<Policy>>, metrics: Option<Rc<Metrics>>) -> Self {
        Request { policy, metrics }
    }
}

impl Context for Request {}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Flow {
        let Some(policy) = self.policy.as_deref() else {
            // Unreachable in practice (Envoy refuses a configuration that did not
            // compile), but if it happens the request is refused, not waved through.
            send(&problem::unconfigured());
            return Flow::Pause;
        };
        // A header the host cannot give us reads as empty, which the engine refuses:
        // failures close.
        let method = header(":method");
        let path = header(":path");
        let verdict = policy.inspect(&RequestView {
            method: &method,
            path: &path,
        });
        if let Some(metrics) = &self.metrics {
            metrics.record(&verdict);
        }
        let Some(rule) = verdict.rule else {
            return Flow::Continue;
        };
        log_verdict(policy, &verdict);
        match verdict.action {
            Action::Block => {
                send(&problem::reply(&policy.name, rule, &verdict));
                Flow::Pause
            }
            Action::Allow | Action::Monitor => Flow::Continue,
        }
    }
}

fn header(name: &str) -> Vec<u8> {
    hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, name)
        .ok()
        .flatten()
        .unwrap_or_default()
}

fn send(reply: &problem::Reply) {
    let headers = reply
        .headers
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    if let Err(status) =
        hostcalls::send_http_response(reply.status.into(), headers, Some(&reply.body))
    {
        log(
            LogLevel::Error,
            &format!("cannot send the local reply: {status:?}"),
        );
    }
}

/// One JSON line per violation in Envoy's log. Only the policy's own strings and the
/// rule appear: nothing from the request, so the log cannot be forged through it.
fn log_verdict(policy: &Policy, verdict: &Verdict<'_>) {
    #[derive(Serialize)]
    struct Line<'a> {
        apiguard: &'a str,
        rule: &'a str,
        action: &'a str,
        method: Option<&'a str>,
        path_template: Option<&'a str>,
        operation_id: Option<&'a str>,
    }
    let operation = verdict.operation;
    let line = Line {
        apiguard: &policy.name,
        rule: verdict.rule.map_or("", |r| r.as_str()),
        action: verdict.action.as_str(),
        method: operation.map(|o| o.method.as_str()),
        path_template: operation
            .map(|o| o.template)
            .or(verdict.allowed.as_ref().map(|(t, _)| *t)),
        operation_id: operation.and_then(|o| o.operation_id),
    };
    if let Ok(json) = serde_json::to_string(&line) {
        log(LogLevel::Info, &json);
    }
}
