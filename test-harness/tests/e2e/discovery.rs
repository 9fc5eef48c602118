//! API discovery through a real Envoy: requests to endpoints the contract does not declare
//! come out of each worker as `discovery.endpoint` events with inferred templates — the
//! values in the paths never do.

use apiguard_harness::{locate, HttpVersion, Policy, Reply};
use bytes::Bytes;
use http::Request;
use serde_json::{json, Value};

use crate::events::wait_for;
use crate::fixture::{bundled, Proxy};

/// The events of `rule` in Envoy's log so far (OCSF lines).
fn logged(proxy: &Proxy, rule: &str) -> Vec<Value> {
    let log = proxy.envoy.log();
    log.lines()
        .filter_map(|line| line.find(r#"{"action""#).map(|at| &line[at..]))
        .filter_map(|json| serde_json::from_str::<Value>(json).ok())
        .filter(|event| event["finding_info"]["analytic"]["uid"] == rule)
        .collect()
}

#[test]
fn shadow_endpoints_are_reported_as_templates_in_monitor_mode() {
    let mut policy = bundled("petstore");
    policy["mode"] = json!("monitor");
    policy["discovery"] = json!({"report_seconds": 1});
    let proxy = Proxy::start(Policy::Bundle(policy));
    // An undeclared sub-resource with ids, an undeclared method on a declared path, and a
    // declared operation (which discovery leaves alone).
    for id in [7, 42, 1001] {
        assert_eq!(
            proxy.get(&format!("/v1/pets/{id}/vaccinations")).status,
            200
        );
    }
    let patch = Request::patch("/v1/pets/7").body(Bytes::new()).unwrap();
    let patch = proxy.client(HttpVersion::Http1).send(patch).unwrap();
    assert_eq!(patch.status, 200, "monitor mode passes it: {patch:?}");
    assert_eq!(proxy.get("/v1/pets").status, 200);

    let events = wait_for("discovery events for both endpoints", || {
        let events = logged(&proxy, "discovery.endpoint");
        let templates: Vec<(String, String)> = (events.iter())
            .map(|e| {
                (
                    e["http_request"]["http_method"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    e["unmapped"]["path_template"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect();
        let has =
            |method: &str, path: &str| templates.iter().any(|(m, p)| m == method && p == path);
        (has("GET", "/v1/pets/{petId}/vaccinations") && has("PATCH", "/v1/pets/{petId}"))
            .then_some(events)
    });
    // Each worker reports what it saw: the counts add up to the requests sent.
    let count = |method: &str| -> u64 {
        (events.iter())
            .filter(|e| e["http_request"]["http_method"] == method)
            .map(|e| e["count"].as_u64().unwrap_or(0))
            .sum()
    };
    assert_eq!((count("GET"), count("PATCH")), (3, 1), "{events:#?}");
    let vaccinations = (events.iter())
        .find(|e| e["http_request"]["http_method"] == "GET")
        .unwrap();
    assert_eq!(
        vaccinations["unmapped"]["violations"][0],
        json!({"rule": "discovery.endpoint", "in": "path", "name": "petId", "reason": "integer"})
    );
    // The ids themselves are nowhere in the events.
    let text = serde_json::to_string(&events).unwrap();
    assert!(!text.contains("1001") && !text.contains("/42/"), "{text}");
    // The declared operation is not discovered.
    assert!(!text.contains(r#""/v1/pets""#), "{text}");
}

/// The whole loop through Envoy: JSON bodies sent to a shadow endpoint in monitor mode are
/// learned in the VM, reported in `discovery.endpoint` events, and `apiguard learn` on
/// Envoy's log proposes the endpoint in an overlay with its learned body schemas. The
/// values of a secret-looking field are nowhere, in the events or in the overlay.
#[test]
fn a_shadow_endpoint_hit_in_monitor_mode_is_learned_into_the_overlay() {
    let mut policy = bundled("petstore");
    policy["mode"] = json!("monitor");
    policy["discovery"] = json!({"report_seconds": 1});
    let proxy = Proxy::start(Policy::Bundle(policy));
    let species = ["dog", "cat"];
    for i in 0..8usize {
        let body = json!({"vaccine": species[i % 2], "date": "2025-11-30", "dose_ml": 1 + i,
                          "password": "hunter2-secret"});
        let answer = json!({"id": 100 + i, "created": "2025-11-30T10:00:00Z"});
        let reply = Reply {
            status: Some(201),
            body: Some(answer.to_string()),
            ..Reply::default()
        };
        let request = Request::post(format!("/v1/pets/{}/vaccinations", 100 + i))
            .header("content-type", "application/json")
            .header(Reply::HEADER, reply.header_value())
            .body(Bytes::from(body.to_string()))
            .unwrap();
        let response = proxy.client(HttpVersion::Http1).send(request).unwrap();
        assert_eq!(response.status, 201, "monitor mode passes it: {response:?}");
    }
    let learned = |e: &Value, part: &str| e["unmapped"]["learned"].get(part).is_some();
    wait_for("the requests and their response bodies reported", || {
        let events = logged(&proxy, "discovery.endpoint");
        let count: u64 = (events.iter())
            .map(|e| e["count"].as_u64().unwrap_or(0))
            .sum();
        let both = events
            .iter()
            .any(|e| learned(e, "request") && learned(e, "response"));
        (count == 8 && both).then_some(())
    });
    // A worker's schema changes reported late (a response after its report) come in the
    // next report.
    std::thread::sleep(std::time::Duration::from_millis(2_500));
    let (overlay, _) = learn(&proxy, "e2e-learn");
    let added = &overlay["actions"][0]["update"]["/pets/{petId}/vaccinations"]["post"];
    assert_eq!(added["x-apiguard-observed"]["requests"], 8, "{overlay:#}");
    let body = &added["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(
        body["required"],
        json!(["date", "dose_ml", "password", "vaccine"])
    );
    assert_eq!(body["properties"]["vaccine"]["enum"], json!(["cat", "dog"]));
    assert_eq!(body["properties"]["date"]["format"], "date");
    assert_eq!(body["properties"]["password"], json!({"type": "string"}));
    assert_eq!(
        body["properties"]["dose_ml"],
        json!({"type": "integer", "minimum": 1, "maximum": 8})
    );
    let response = &added["responses"]["2XX"]["content"]["application/json"]["schema"];
    assert_eq!(response["properties"]["created"]["format"], "date-time");
    assert_eq!(response["required"], json!(["created", "id"]));
    let text = serde_json::to_string(&logged(&proxy, "discovery.endpoint")).unwrap();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(!overlay.to_string().contains("hunter2"), "{overlay}");
}

/// `apiguard learn` on the proxy's log so far (written under `name` in the test's
/// scratch directory), against the petstore document: the overlay, and the report.
fn learn(proxy: &Proxy, name: &str) -> (Value, String) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("envoy.log");
    std::fs::write(&log, proxy.envoy.log()).unwrap();
    let document = locate::workspace_root().join("policies/petstore/petstore.openapi.yaml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args([
            "run",
            "-q",
            "-p",
            "apiguard-filter",
            "--bin",
            "apiguard",
            "--",
            "learn",
        ])
        .arg(&document)
        .arg(&log)
        .current_dir(locate::workspace_root())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{report}");
    let overlay = serde_yaml::from_str(&String::from_utf8_lossy(&output.stdout)).unwrap();
    (overlay, report)
}

/// `discovery: {learn: 1.0}` on an enforced contract: every exchange of a declared
/// operation is learned in the VM and reported as `discovery.observed`; the upstream
/// answers `showPetById` with a property the contract does not declare, and
/// `apiguard learn`'s drift report names it — and the request property `createPet`
/// declares that no client sent. The property's value is in no event.
#[test]
fn a_declared_operation_answering_an_undeclared_property_shows_as_drift() {
    let mut policy = bundled("petstore");
    policy["discovery"] = json!({"report_seconds": 1, "learn": 1.0});
    let proxy = Proxy::start(Policy::Bundle(policy));
    let send = |request: http::request::Builder, body: Value, status: u16, answer: Value| {
        let reply = Reply {
            status: Some(status),
            body: Some(answer.to_string()),
            ..Reply::default()
        };
        let request = request
            .header("content-type", "application/json")
            .header(Reply::HEADER, reply.header_value())
            .body(Bytes::from(if body.is_null() {
                String::new()
            } else {
                body.to_string()
            }))
            .unwrap();
        let response = proxy.client(HttpVersion::Http1).send(request).unwrap();
        assert_eq!(
            response.status, status,
            "the upstream answered: {response:?}"
        );
    };
    for i in 0..3 {
        let pet = json!({"id": 7 + i, "name": "Rex", "microchip": format!("98100000{i}")});
        send(
            Request::get(format!("/v1/pets/{}", 7 + i)),
            Value::Null,
            200,
            pet,
        );
    }
    send(
        Request::post("/v1/pets"),
        json!({"name": "Tom", "tag": "cat"}),
        201,
        json!({"id": 12, "name": "Tom", "tag": "cat"}),
    );
    wait_for("both operations' sampled exchanges reported", || {
        let events = logged(&proxy, "discovery.observed");
        let count = |id: &str| -> u64 {
            (events.iter())
                .filter(|e| e["unmapped"]["operation_id"] == id)
                .map(|e| e["count"].as_u64().unwrap_or(0))
                .sum()
        };
        (count("showPetById") == 3 && count("createPet") == 1).then_some(())
    });
    // Schema changes a worker learned after its report come in the next one.
    std::thread::sleep(std::time::Duration::from_millis(2_500));
    let (_, report) = learn(&proxy, "e2e-drift");
    assert!(
        report.contains(
            "showPetById: 3 sampled exchanges, drift\n    response properties not declared: microchip\n"
        ),
        "{report}"
    );
    assert!(
        report.contains("createPet: 1 sampled exchanges, drift\n    request properties declared, never sent: birthDate\n"),
        "{report}"
    );
    let text = serde_json::to_string(&logged(&proxy, "discovery.observed")).unwrap();
    assert!(!text.contains("98100000"), "{text}");
}

#[test]
fn calls_to_a_deprecated_operation_are_counted_and_reported_per_client() {
    let mut policy = bundled("petstore");
    policy["openapi"]["document"]["paths"]["/pets/{petId}"]["delete"]["deprecated"] = json!(true);
    let proxy = Proxy::start(Policy::Bundle(policy));
    for _ in 0..2 {
        let delete = Request::delete("/v1/pets/7").body(Bytes::new()).unwrap();
        let response = proxy.client(HttpVersion::Http1).send(delete).unwrap();
        assert_eq!(response.status, 200, "still served: {response:?}");
    }
    assert_eq!(proxy.get("/v1/pets/7").status, 200);
    assert_eq!(
        proxy.counter("apiguard.operation.deletePet.deprecated"),
        2.0
    );
    assert_eq!(
        proxy.counter("apiguard.operation.showPetById.deprecated"),
        0.0
    );
    // The second call within the fold window is counted into the first's event.
    let zombies = wait_for("both calls reported", || {
        let zombies = logged(&proxy, "discovery.zombie");
        let calls: u64 = zombies
            .iter()
            .map(|e| e["count"].as_u64().unwrap_or(0))
            .sum();
        (calls == 2).then_some(zombies)
    });
    assert!(zombies
        .iter()
        .all(|e| e["unmapped"]["operation_id"] == "deletePet"));
    assert!(
        zombies
            .iter()
            .all(|e| e["src_endpoint"]["ip"] == "127.0.0.1"),
        "{zombies:#?}"
    );
}
