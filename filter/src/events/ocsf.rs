//! The OCSF (1.3) form of an [`Event`]: a Detection Finding (class 2004).
//!
//! One class for every event, so one SIEM parser reads them all: the rule is the finding
//! (`finding_info`), and the request it is about rides in the objects OCSF gives the
//! finding for that — `http_request`, `http_response`, `src_endpoint`, `actor` and `api`.
//! What OCSF has no attribute for (the owner, the policy hash, the path template, the
//! violations) is under `unmapped`, as the schema intends.

use serde_json::{json, Map, Value};

use super::{Event, EventAction};

/// `findings` category.
const CATEGORY_UID: u32 = 2;
/// Detection Finding.
const CLASS_UID: u32 = 2004;
/// `Create`: a new finding.
const ACTIVITY_ID: u32 = 1;
pub(crate) const SCHEMA_VERSION: &str = "1.3.0";

/// The event as an OCSF Detection Finding object.
pub(crate) fn detection_finding(event: &Event) -> Value {
    let (action_id, action) = match event.action {
        EventAction::Blocked => (2, "Denied"),
        EventAction::Monitored => (1, "Allowed"),
        EventAction::Redacted => (4, "Modified"),
        EventAction::Observed => (0, "Unknown"),
    };
    let title = event
        .detail
        .clone()
        .unwrap_or_else(|| format!("{} {}", event.rule, action_verb(event.action)));
    let mut finding = json!({
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "class_uid": CLASS_UID,
        "class_name": "Detection Finding",
        "activity_id": ACTIVITY_ID,
        "activity_name": "Create",
        "type_uid": CLASS_UID * 100 + ACTIVITY_ID,
        "time": event.time_ms,
        "start_time": event.time_ms,
        "end_time": event.end_time_ms,
        "count": event.count,
        "severity_id": event.severity.id(),
        "severity": event.severity.name(),
        "action_id": action_id,
        "action": action,
        "status_id": 1,
        "status": "New",
        "message": title,
        "metadata": {
            "version": SCHEMA_VERSION,
            "product": {
                "name": "apiguard",
                "vendor_name": "apiguard",
                "version": env!("CARGO_PKG_VERSION"),
            },
        },
        "finding_info": {
            "uid": finding_uid(event),
            "title": title,
            "types": [event.rule],
            "analytic": {"uid": event.rule, "name": event.rule, "type_id": 1, "type": "Rule"},
            "first_seen_time": event.time_ms,
            "last_seen_time": event.end_time_ms,
        },
    });
    let mut unmapped = Map::new();
    unmapped.insert("rule".into(), json!(event.rule));
    unmapped.insert("api".into(), json!(event.api));
    unmapped.insert("policy_hash".into(), json!(event.policy_hash));
    if let Some(previous) = &event.previous_policy_hash {
        unmapped.insert("previous_policy_hash".into(), json!(previous));
    }
    unmapped.insert("owner".into(), json!(event.owner));
    unmapped.insert("apiguard_action".into(), json!(event.action));
    if !event.violations.is_empty() {
        unmapped.insert("violations".into(), json!(event.violations));
    }
    if !event.evidence.is_empty() {
        // OCSF's Evidence Artifacts: what the rule counted, as the artifact's data.
        let evidences: Vec<Value> = (event.evidence.iter())
            .map(|evidence| json!({"data": evidence}))
            .collect();
        finding["evidences"] = Value::Array(evidences);
    }
    if let Some(learned) = &event.learned {
        unmapped.insert("learned".into(), learned.clone());
    }
    if let (Some(request), Some(object)) = (&event.request, finding.as_object_mut()) {
        let mut http_request = json!({"url": {"path": request.path}});
        if let Some(method) = &request.method {
            http_request["http_method"] = json!(method);
        }
        if let Some(id) = &request.request_id {
            http_request["uid"] = json!(id);
        }
        object.insert("http_request".into(), http_request);
        if let Some(status) = request.status {
            object.insert("http_response".into(), json!({"code": status}));
        }
        if let Some(client) = &request.client {
            object.insert("src_endpoint".into(), json!({"ip": client}));
        }
        if let Some(identity) = &request.identity {
            object.insert("actor".into(), json!({"user": {"uid": identity}}));
        }
        let operation = request
            .operation_id
            .clone()
            .or_else(|| request.path_template.clone());
        let mut api = json!({"service": {"name": event.api}});
        if let Some(operation) = operation {
            api["operation"] = json!(operation);
        }
        if let Some(id) = &request.request_id {
            api["request"] = json!({"uid": id});
        }
        object.insert("api".into(), api);
        unmapped.insert("path_template".into(), json!(request.path_template));
        unmapped.insert("operation_id".into(), json!(request.operation_id));
    }
    finding["unmapped"] = Value::Object(unmapped);
    finding
}

fn action_verb(action: EventAction) -> &'static str {
    match action {
        EventAction::Blocked => "blocked",
        EventAction::Monitored => "monitored",
        EventAction::Redacted => "redacted",
        EventAction::Observed => "observed",
    }
}

/// A stable id for the finding: the request id when there is one (it is unique per
/// request), else a hash of what identifies the event.
fn finding_uid(event: &Event) -> String {
    let request_id = event.request.as_ref().and_then(|r| r.request_id.as_deref());
    match request_id {
        Some(id) if event.count == 1 => format!("{}:{id}", event.rule),
        _ => format!(
            "{}:{:016x}",
            event.rule,
            super::hash64(format!("{}{}{}", event.rule, event.time_ms, event.count).as_bytes())
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EventSettings, Owner, RequestFacts, Severity};

    fn blocked() -> Event {
        let settings = EventSettings {
            api: "pets".into(),
            policy_hash: "00ff".into(),
            owner: Owner {
                team: Some("pet-team".into()),
                contact: None,
            },
            ..EventSettings::default()
        };
        let mut e = Event::system(
            &settings,
            1_700_000_000_000,
            "route.unknown_path",
            Severity::Medium,
            "x",
        );
        e.detail = None;
        e.action = EventAction::Blocked;
        e.request = Some(RequestFacts {
            method: Some("GET".into()),
            path: Some("/admin\r\n".into()),
            status: Some(404),
            client: Some("10.0.0.7".into()),
            request_id: Some("abc".into()),
            ..RequestFacts::default()
        });
        e
    }

    #[test]
    fn a_blocked_request_is_a_detection_finding_with_its_request() {
        let f = detection_finding(&blocked());
        assert_eq!(
            (f["class_uid"].clone(), f["type_uid"].clone()),
            (json!(2004), json!(200401))
        );
        assert_eq!(f["category_uid"], 2);
        assert_eq!(f["severity_id"], 3);
        assert_eq!(f["action_id"], 2);
        assert_eq!(f["http_request"]["http_method"], "GET");
        assert_eq!(f["http_request"]["uid"], "abc");
        assert_eq!(f["http_response"]["code"], 404);
        assert_eq!(f["src_endpoint"]["ip"], "10.0.0.7");
        assert_eq!(f["api"]["request"]["uid"], "abc");
        assert_eq!(f["finding_info"]["analytic"]["uid"], "route.unknown_path");
        assert_eq!(f["finding_info"]["uid"], "route.unknown_path:abc");
        assert_eq!(f["unmapped"]["owner"]["team"], "pet-team");
        assert_eq!(f["unmapped"]["policy_hash"], "00ff");
        assert_eq!(f["metadata"]["product"]["name"], "apiguard");
        assert!(f.get("actor").is_none(), "no identity, no actor");
    }

    #[test]
    fn request_text_stays_escaped_on_one_line() {
        let line = detection_finding(&blocked()).to_string();
        assert!(!line.contains('\n') && !line.contains('\r'), "{line}");
        assert!(line.contains(r#""/admin\r\n""#), "{line}");
    }
}
