//! The RFC 9457 `application/problem+json` answer to a blocked request.
//!
//! Built only from the rule and from the policy's own strings (API name, template,
//! declared methods), serialised by serde_json: no byte of the request is echoed.

use serde::Serialize;

use crate::verdict::{RuleId, Verdict};

/// A local reply the host sends instead of forwarding the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
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
    allowed_methods: Option<Vec<&'static str>>,
}

/// The reply for a verdict's rule.
pub fn reply(api: &str, rule: RuleId, verdict: &Verdict<'_>) -> Reply {
    let allowed = verdict.allowed.as_ref();
    let allowed_methods =
        allowed.map(|(_, methods)| methods.iter().map(|m| m.as_str()).collect::<Vec<_>>());
    let mut headers = vec![("content-type", "application/problem+json".to_owned())];
    if let Some(methods) = &allowed_methods {
        headers.push(("allow", methods.join(", ")));
    }
    let problem = Problem {
        kind: format!("urn:apiguard:rule:{}", rule.as_str()),
        title: rule.title(),
        status: rule.status(),
        detail: detail(api, rule, verdict),
        rule: rule.as_str(),
        api,
        path_template: allowed.map(|(template, _)| *template),
        allowed_methods,
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
        RuleId::MethodNotAllowed => match &verdict.allowed {
            Some((template, methods)) => {
                let methods: Vec<&str> = methods.iter().map(|m| m.as_str()).collect();
                format!("`{template}` accepts {}.", methods.join(", "))
            }
            None => rule.title().to_owned(),
        },
        _ => "Ambiguous paths are refused rather than interpreted: encode the path plainly."
            .to_owned(),
    }
}

/// The reply when no policy is loaded: 503, fail closed.
pub fn unconfigured() -> Reply {
    Reply {
        status: 503,
        headers: vec![("content-type", "application/problem+json".to_owned())],
        body: br#"{"type":"urn:apiguard:rule:policy.unavailable","title":"No API policy is loaded","status":503,"rule":"policy.unavailable"}"#.to_vec(),
    }
}
