//! `apiguard learn` and `apiguard overlay apply`, round trip: discovery's record of
//! undeclared requests (fed through the filter's own pipeline) becomes events, the events
//! an overlay, the overlay applied a document that `apiguard check` accepts and that
//! enforces the learned schema (`apiguard explain`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;

use apiguard_filter::{
    Discovery, Exchange, MemoryStore, Next, Policy, SlotSecret, Template, Values,
};
use serde_json::{json, Value};

fn apiguard(args: &[&Path]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_apiguard"))
        .args(args)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn petstore() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/petstore")
}

/// The petstore policy in monitor mode with these `discovery` settings, and a host's
/// input at a fixed instant.
fn monitored(discovery: Value) -> (Rc<Policy>, Values<MemoryStore>) {
    let (mut bundle, _) = apiguard_filter::bundle(&petstore().join("policy.yaml")).unwrap();
    bundle["mode"] = json!("monitor");
    bundle["discovery"] = discovery;
    let policy = Rc::new(Policy::compile(bundle.to_string()).unwrap());
    let input = Values {
        now: 1_764_568_800_000_000_000,
        downstream: Some("192.0.2.1:40000".to_owned()),
        store: MemoryStore::default(),
        secret: SlotSecret::new([0; SlotSecret::BYTES]),
    };
    (policy, input)
}

/// Runs requests (method, path, JSON body, response body) through the petstore policy in
/// monitor mode with discovery on, as the host would, and answers discovery's templates.
fn discover(requests: &[(&str, String, Value, Value)]) -> Vec<Template> {
    let (policy, input) = monitored(json!({}));
    let mut discovery = Discovery::new(policy.discovery().unwrap());
    for (method, path, body, answer) in requests {
        let mut exchange = Exchange::new(Rc::clone(&policy), Rc::new(policy.key_ring()));
        let head = [
            (":method", method.to_string()),
            (":path", path.clone()),
            ("content-type", "application/json".to_owned()),
        ];
        let body = body.to_string();
        assert!(matches!(
            exchange.request(&input, &head, Some(body.as_bytes())),
            Next::Continue(_)
        ));
        let response = [(":status", "201"), ("content-type", "application/json")];
        exchange.response(&input, &response, Some(answer.to_string().as_bytes()));
        let outputs = exchange.take_outputs();
        discovery.observe(outputs.undeclared.as_ref().unwrap());
        for lesson in &outputs.lessons {
            discovery.learn(lesson);
        }
    }
    discovery.templates()
}

/// A `discovery.endpoint` event line as Envoy logs it (the OCSF members `learn` reads).
fn log_line(template: &Template) -> String {
    let event = json!({
        "count": template.seen.count,
        "start_time": template.seen.first * 1000,
        "end_time": template.seen.last * 1000,
        "http_request": {"http_method": template.method.as_str()},
        "unmapped": {
            "rule": "discovery.endpoint",
            "path_template": template.path,
            "apiguard_action": "observed",
            "violations": template.params.iter().map(|(name, kind)| json!({
                "rule": "discovery.endpoint", "in": "path", "name": name, "reason": kind.as_str()
            })).collect::<Vec<_>>(),
            "learned": template.learned.as_ref().map(|l| l.to_json()),
        },
    });
    format!("[2025-12-01 06:00:00.000][7][info][wasm] wasm log petstore: {event}")
}

#[test]
fn learned_endpoints_round_trip_through_an_overlay_into_an_enforced_contract() {
    let species = ["dog", "cat"];
    let requests: Vec<_> = (0..8)
        .map(|i| {
            (
                "POST",
                format!("/v1/pets/{}/vaccinations", 100 + i),
                json!({"vaccine": species[i % 2], "date": "2025-11-30", "dose_ml": 1 + i}),
                json!({"id": i, "created": "2025-11-30T10:00:00Z"}),
            )
        })
        .chain([(
            "PATCH",
            "/v1/pets/7".to_owned(),
            json!({"name": "Rex"}),
            json!({"id": 7}),
        )])
        .collect();
    let templates = discover(&requests);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("learn-round-trip");
    std::fs::create_dir_all(&dir).unwrap();
    let events = dir.join("envoy.log");
    let mut log: Vec<String> = templates.iter().map(log_line).collect();
    // A zombie call and a monitored violation, for the report.
    log.push(r#"{"count": 2, "start_time": 1, "end_time": 2, "src_endpoint": {"ip": "10.0.0.9"}, "unmapped": {"rule": "discovery.zombie", "operation_id": "deletePet", "apiguard_action": "observed"}}"#.to_owned());
    log.push(r#"{"count": 3, "start_time": 1, "end_time": 2, "unmapped": {"rule": "body.schema", "operation_id": "createPet", "apiguard_action": "monitored"}}"#.to_owned());
    std::fs::write(&events, log.join("\n")).unwrap();
    let document = dir.join("petstore.openapi.yaml");
    std::fs::copy(petstore().join("petstore.openapi.yaml"), &document).unwrap();

    let (ok, overlay, report) = apiguard(&[Path::new("learn"), &document, &events]);
    assert!(ok, "{report}");
    let overlay_value: Value = serde_yaml::from_str(&overlay).unwrap();
    assert_eq!(overlay_value["overlay"], "1.0.0");
    let actions = overlay_value["actions"].as_array().unwrap();
    assert_eq!(actions[0]["target"], "$.paths");
    let added = &actions[0]["update"]["/pets/{petId}/vaccinations"]["post"];
    let body = &added["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(body["required"], json!(["date", "dose_ml", "vaccine"]));
    assert_eq!(body["properties"]["vaccine"]["enum"], json!(["cat", "dog"]));
    assert_eq!(body["properties"]["date"]["format"], "date");
    assert_eq!(
        body["properties"]["dose_ml"],
        json!({"type": "integer", "minimum": 1, "maximum": 8})
    );
    assert_eq!(added["parameters"][0]["schema"], json!({"type": "integer"}));
    assert_eq!(added["x-apiguard-observed"]["requests"], 8);
    let created = &added["responses"]["2XX"]["content"]["application/json"]["schema"];
    assert_eq!(created["properties"]["created"]["format"], "date-time");
    // The undeclared method of a declared path is added to that path.
    assert_eq!(actions[1]["target"], "$.paths['/pets/{petId}']");
    assert!(actions[1]["update"]["patch"].is_object(), "{overlay}");
    assert!(
        report.contains("deletePet: 2 calls from 1 clients"),
        "{report}"
    );
    assert!(
        report.contains("createPet: 3 violations, not ready"),
        "{report}"
    );
    assert!(report.contains("listPets: 0 violations, ready"), "{report}");

    let overlay_file = dir.join("overlay.yaml");
    std::fs::write(&overlay_file, &overlay).unwrap();
    let (ok, applied, err) = apiguard(&[
        Path::new("overlay"),
        Path::new("apply"),
        &document,
        &overlay_file,
    ]);
    assert!(ok, "{err}");
    std::fs::write(dir.join("applied.openapi.yaml"), applied).unwrap();
    let policy = dir.join("policy.yaml");
    std::fs::write(
        &policy,
        "name: petstore\nmode: enforce\nopenapi:\n  file: applied.openapi.yaml\n",
    )
    .unwrap();
    let (ok, out, err) = apiguard(&[Path::new("check"), &policy]);
    assert!(ok, "{out}{err}");
    // The learned operation is enforced: a body in its learned shape passes, one outside
    // its enum is refused.
    let explain = |body: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_apiguard"))
            .arg("explain")
            .arg(&policy)
            .args([
                "POST /v1/pets/5/vaccinations",
                "-H",
                "content-type: application/json",
                "-d",
                body,
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let passed = explain(r#"{"vaccine": "dog", "date": "2025-12-01", "dose_ml": 2}"#);
    assert!(passed.contains(": allow"), "{passed}");
    assert!(
        passed.contains("learned_postPetsPetIdVaccinations"),
        "{passed}"
    );
    let refused = explain(r#"{"vaccine": "lizard", "date": "2025-12-01", "dose_ml": 2}"#);
    assert!(refused.contains(": block"), "{refused}");
}

/// `discovery: {learn: 1.0}`: declared operations' exchanges (through the pipeline, as the
/// host runs them) are learned, reported as `discovery.observed` events, and
/// `apiguard learn` names their drift from the contract — an undeclared response
/// property, a declared request property no client sent — and an operation whose traffic
/// kept to it as without drift.
#[test]
fn sampled_declared_operations_drift_from_their_contract_in_the_report() {
    let (policy, input) = monitored(json!({"learn": 1.0}));
    let mut discovery = Discovery::new(policy.discovery().unwrap());
    // (method, path, request body, status, response body)
    let exchanges = [
        (
            "POST",
            "/v1/pets",
            Some(json!({"name": "Rex", "tag": "dog"})),
            "201",
            json!({"id": 7, "name": "Rex", "tag": "dog", "microchip": "981000"}),
        ),
        (
            "POST",
            "/v1/pets",
            Some(json!({"name": "Tom"})),
            "201",
            json!({"id": 8, "name": "Tom", "microchip": "981001"}),
        ),
        (
            "GET",
            "/v1/pets/7",
            None,
            "200",
            json!({"id": 7, "name": "Rex"}),
        ),
    ];
    // The operations' labels, by index, as the exchanges name them.
    let mut operations = std::collections::BTreeMap::new();
    for (method, path, body, status, answer) in &exchanges {
        let mut exchange = Exchange::new(Rc::clone(&policy), Rc::new(policy.key_ring()));
        let mut head = vec![(":method", method.to_string()), (":path", path.to_string())];
        if body.is_some() {
            head.push(("content-type", "application/json".to_owned()));
        }
        let body = body.as_ref().map(Value::to_string);
        exchange.request(&input, &head, body.as_deref().map(str::as_bytes));
        let response = [(":status", *status), ("content-type", "application/json")];
        exchange.response(&input, &response, Some(answer.to_string().as_bytes()));
        let outputs = exchange.take_outputs();
        let label = outputs.filter_state.and_then(|s| s.operation).unwrap();
        for lesson in &outputs.lessons {
            let apiguard_filter::Subject::Operation { id, .. } = lesson.about else {
                panic!("{lesson:?}");
            };
            operations.insert(id, (label.to_string(), *method, *path));
            discovery.learn(lesson);
        }
    }
    let log: Vec<String> = discovery
        .observed()
        .map(|observed| {
            let (label, method, path) = &operations[&observed.id];
            let event = json!({
                "count": observed.seen.count,
                "start_time": observed.seen.first * 1000,
                "end_time": observed.seen.last * 1000,
                "http_request": {"http_method": method},
                "unmapped": {
                    "rule": "discovery.observed",
                    "operation_id": label,
                    "path_template": path,
                    "apiguard_action": "observed",
                    "learned": observed.learned.to_json(),
                },
            });
            format!("[2025-12-01 06:00:00.000][7][info][wasm] wasm log petstore: {event}")
        })
        .collect();
    assert_eq!(log.len(), 2, "{log:?}");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("learn-drift");
    std::fs::create_dir_all(&dir).unwrap();
    let events = dir.join("envoy.log");
    std::fs::write(&events, log.join("\n")).unwrap();
    let document = petstore().join("petstore.openapi.yaml");
    let (ok, _, report) = apiguard(&[Path::new("learn"), &document, &events]);
    assert!(ok, "{report}");
    assert!(report.contains("2 operations observed"), "{report}");
    assert!(
        report.contains("createPet: 2 sampled exchanges, drift\n    response properties not declared: microchip\n    request properties declared, never sent: birthDate\n"),
        "{report}"
    );
    assert!(
        report.contains("showPetById: 1 sampled exchanges, no drift\n"),
        "{report}"
    );
    // The values stayed in the VM: shapes only.
    assert!(!report.contains("981000") && !log.join("").contains("981000"));
}
