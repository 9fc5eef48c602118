//! The RFC 9457 `application/problem+json` answer to a blocked request.
//!
//! Built only from the rule, the policy's own strings (API name, template, declared
//! methods, parameter names, schema limits) and sanitised pointers, serialised by
//! serde_json: no byte of the request is echoed. Bounded: at most [`MAX_LISTED`]
//! violations, each reason cut at [`MAX_REASON`] characters.

use serde::Serialize;

use crate::verdict::{RuleId, Verdict, Violation};

/// How many violations a problem lists.
pub(crate) const MAX_LISTED: usize = 20;
/// How long a listed reason may be.
pub(crate) const MAX_REASON: usize = 300;

/// A local reply the host sends instead of forwarding the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// Headers beside `content-type` (`Allow`, `WWW-Authenticate`, `Retry-After`…).
    pub headers: Vec<(&'static str, String)>,
    /// The `application/problem+json` body.
    pub body: Vec<u8>,
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    detail: String,
    rule: &'static str,
    api: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    path_template: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    operation_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed_methods: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    violations: Vec<Entry<'a>>,
}

/// One listed violation: what, where, why.
#[derive(Serialize)]
struct Entry<'a> {
    rule: &'static str,
    #[serde(rename = "in", skip_serializing_if = "Option::is_none")]
    location: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    reason: String,
}

impl<'a> From<&'a Violation> for Entry<'a> {
    fn from(v: &'a Violation) -> Self {
        Entry {
            rule: v.rule.as_str(),
            location: v.location,
            name: v.name.as_deref(),
            reason: v.reason.chars().take(MAX_REASON).collect(),
        }
    }
}

/// The reply for a verdict's rule.
pub(crate) fn reply(api: &str, rule: RuleId, verdict: &Verdict<'_>) -> Reply {
    let allowed = verdict.allowed.as_ref();
    let allowed_methods =
        allowed.map(|(_, methods)| methods.iter().map(|m| m.as_str()).collect::<Vec<_>>());
    let mut headers = vec![("content-type", "application/problem+json".to_owned())];
    if let Some(methods) = &allowed_methods {
        headers.push(("allow", methods.join(", ")));
    }
    if let Some(challenge) = crate::security::challenge(api, rule) {
        headers.push(("www-authenticate", challenge));
    }
    let problem = Problem {
        kind: format!("urn:apiguard:rule:{}", rule.as_str()),
        title: rule.title(),
        status: rule.status(),
        detail: detail(api, rule, verdict),
        rule: rule.as_str(),
        api,
        path_template: allowed
            .map(|(template, _)| *template)
            .or(verdict.operation.map(|o| o.template)),
        operation_id: verdict.operation.and_then(|o| o.operation_id),
        allowed_methods,
        // Routing and path rules say everything in their title; contract rules list.
        violations: verdict
            .violations
            .iter()
            .filter(|v| v.location.is_some())
            .take(MAX_LISTED)
            .map(Entry::from)
            .collect(),
    };
    Reply {
        status: rule.status(),
        headers,
        // Serialising plain strings and numbers cannot fail.
        body: serde_json::to_vec(&problem).unwrap_or_default(),
    }
}

/// What happened in this occurrence, from the policy's strings only.
fn detail(api: &str, rule: RuleId, verdict: &Verdict<'_>) -> String {
    match rule {
        RuleId::UnknownPath => format!("API `{api}` declares no operation at this path."),
        RuleId::UnknownApi => {
            format!("Gateway `{api}` serves no API at this host and base path.")
        }
        RuleId::MethodNotAllowed => match &verdict.allowed {
            Some((template, methods)) => {
                let methods: Vec<&str> = methods.iter().map(|m| m.as_str()).collect();
                format!("`{template}` accepts {}.", methods.join(", "))
            }
            None => rule.title().to_owned(),
        },
        rule if rule.as_str().starts_with("path.") => {
            "Ambiguous paths are refused rather than interpreted: encode the path plainly."
                .to_owned()
        }
        RuleId::AuthKeysUnavailable => {
            "The keys to verify credentials could not be fetched yet; retry later.".to_owned()
        }
        rule if rule.as_str().starts_with("auth.") => {
            "This operation's security requirement is not met; see `violations`.".to_owned()
        }
        // Abuse protection: what the client can do about it.
        RuleId::RateLimited => {
            "Too many requests from this client: retry after `Retry-After` seconds.".to_owned()
        }
        RuleId::Quarantined => {
            "Too many of this client's requests were refused: it is refused until `Retry-After` seconds have passed."
                .to_owned()
        }
        rule if rule.as_str().starts_with("behaviour.") => {
            "This client's recent requests crossed a behaviour rule of this API (the counts are in `violations`); retry after `Retry-After` seconds where given."
                .to_owned()
        }
        rule if rule.as_str().starts_with("anomaly.") => {
            "The request has traits no client of this API sends; see `violations`.".to_owned()
        }
        rule if rule.status() == 502 => {
            "The upstream's response does not match the API contract.".to_owned()
        }
        _ => match verdict.operation.and_then(|o| o.operation_id) {
            Some(id) => {
                format!("The request does not match the contract of `{id}`; see `violations`.")
            }
            None => "The request does not match the API contract; see `violations`.".to_owned(),
        },
    }
}

/// The reply when no policy is loaded (a remote policy source before its first bundle):
/// 503, fail closed.
pub(crate) fn unconfigured() -> Reply {
    Reply {
        status: 503,
        headers: vec![("content-type", "application/problem+json".to_owned())],
        body: br#"{"type":"urn:apiguard:rule:policy.unavailable","title":"No API policy is loaded","status":503,"detail":"no policy has loaded yet; requests are refused until one does","rule":"policy.unavailable"}"#.to_vec(),
    }
}

/// The reply when the host cannot hand over a body it announced: 503, fail closed (the
/// body is neither read as empty nor passed unchecked).
pub(crate) fn unreadable_body() -> Reply {
    Reply {
        status: 503,
        headers: vec![("content-type", "application/problem+json".to_owned())],
        body: br#"{"type":"urn:apiguard:rule:body.unreadable","title":"The message body could not be read for inspection","status":503,"rule":"body.unreadable"}"#.to_vec(),
    }
}
