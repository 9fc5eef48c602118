//! `apiguard check` as a user runs it: where its errors point in the files they wrote.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::PathBuf;
use std::process::Command;

/// A policy directory of its own under the system temp dir, removed at the end.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str, files: &[(&str, &str)]) -> Dir {
        let dir =
            std::env::temp_dir().join(format!("apiguard-check-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        for (file, text) in files {
            fs::write(dir.join(file), text).unwrap();
        }
        Dir(dir)
    }

    /// `apiguard check <dir>/policy.yaml`: its exit success and its stderr.
    fn check(&self) -> (bool, String) {
        let output = self.run_check();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    fn run_check(&self) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_apiguard"))
            .arg("check")
            .arg(self.0.join("policy.yaml"))
            .output()
            .unwrap()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

const DOCUMENT: &str = "\
openapi: 3.0.3
info: {title: t, version: '1'}
paths:
  /pets:
    get:
      responses:
        '200': {description: ok}
";

#[test]
fn a_key_on_line_9_was_reported_at_line_1_column_24_twice() {
    let policy = "\
# Pets: the example policy with a typo.
name: pets
mode: enforce
openapi:
  file: api.yaml
strict: false
responses:
  mode: monitor
mood: monitor
";
    let dir = Dir::new("typo", &[("policy.yaml", policy), ("api.yaml", DOCUMENT)]);
    let (ok, stderr) = dir.check();
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("policy.yaml at /mood (line 9, column 1): unknown field `mood`"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("line ").count(),
        1,
        "the position is said once: {stderr}"
    );
}

#[test]
fn a_json_policy_reports_its_own_line() {
    let policy = "{\n  \"name\": \"pets\",\n  \"openapi\": {\"file\": \"api.yaml\"},\n  \"mode\": \"audit\"\n}\n";
    let dir = Dir::new("json", &[("policy.yaml", policy), ("api.yaml", DOCUMENT)]);
    let (ok, stderr) = dir.check();
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("policy.yaml at /mode (line 4, column 3): unknown variant `audit`"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("line ").count(), 1, "{stderr}");
}

#[test]
fn an_error_in_the_document_points_at_its_line_in_the_document() {
    let document = "\
openapi: 3.0.3
info: {title: t, version: '1'}
paths:
  /pets:
    post:
      requestBody:
        content:
          application/json:
            schema: {$ref: '#/components/schemas/Nope'}
      responses:
        '200': {description: ok}
";
    let policy = "name: pets\nopenapi:\n  file: api.yaml\n";
    let dir = Dir::new("doc", &[("policy.yaml", policy), ("api.yaml", document)]);
    let (ok, stderr) = dir.check();
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("api.yaml at /paths/~1pets/post/requestBody/content/application~1json/schema (line 9, column 13)"),
        "{stderr}"
    );
}

#[test]
fn a_missing_openapi_file_names_the_key_that_points_to_it() {
    let policy = "name: pets\nmode: enforce\nopenapi:\n  file: nope.yaml\n";
    let dir = Dir::new("missing", &[("policy.yaml", policy)]);
    let (ok, stderr) = dir.check();
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("policy.yaml at /openapi/file (line 4, column 3): cannot read ")
            && stderr.contains("nope.yaml: "),
        "{stderr}"
    );
}

#[test]
fn a_syntax_error_says_its_position_once() {
    let policy = "name: pets\nopenapi:\n  file: api.yaml\nmode: [enforce\n";
    let dir = Dir::new("syntax", &[("policy.yaml", policy), ("api.yaml", DOCUMENT)]);
    let (ok, stderr) = dir.check();
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains(
            "policy.yaml (line 5, column 1): not valid JSON or YAML: did not find expected"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("at line 5 column 1"), "{stderr}");
}

/// A `candidate` contract names its document by `file` too: `check` (like `bundle`)
/// inlines it, and an error in it points at its own file and line.
#[test]
fn a_candidate_document_error_points_at_its_file_and_line() {
    let policy = "\
name: pets
openapi: {file: api.yaml}
candidate:
  openapi: {file: next.yaml}
";
    let next = "\
openapi: 3.0.3
info: {title: t, version: '2'}
paths:
  pets:
    get: {}
";
    let dir = Dir::new(
        "candidate",
        &[
            ("policy.yaml", policy),
            ("api.yaml", DOCUMENT),
            ("next.yaml", next),
        ],
    );
    let (ok, err) = dir.check();
    assert!(!ok, "{err}");
    assert!(
        err.contains("next.yaml at /paths/pets (line 4, column 3)"),
        "{err}"
    );
    fs::write(dir.0.join("next.yaml"), DOCUMENT).unwrap();
    let (ok, err) = dir.check();
    assert!(ok, "{err}");
}

/// A gateway (`apis:`): two APIs that would match the same requests are refused at the
/// line of the second one's authority, naming the first; a good one is checked per API.
#[test]
fn a_gateway_is_refused_where_two_apis_meet_and_checked_per_api() {
    let policy = "\
name: edge
apis:
  - name: a
    match: {authorities: [api.example.com], base_path: /v1}
    openapi: {file: api.yaml}
  - name: b
    match:
      authorities: [API.example.com.]
      base_path: /v1/
    openapi: {file: api.yaml}
";
    let dir = Dir::new(
        "gateway",
        &[("policy.yaml", policy), ("api.yaml", DOCUMENT)],
    );
    let (ok, stderr) = dir.check();
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("policy.yaml at /apis/1/match/authorities/0 (line 8, column"),
        "{stderr}"
    );
    assert!(
        stderr.contains("API `b`") && stderr.contains("API `a` at /apis/0"),
        "{stderr}"
    );
    let fixed = policy.replace("base_path: /v1/", "base_path: /v2");
    let dir = Dir::new(
        "gateway-ok",
        &[("policy.yaml", &fixed), ("api.yaml", DOCUMENT)],
    );
    let output = dir.run_check();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("ok: gateway `edge`, 2 APIs")
            && stdout.contains("  API `a`, 1 path templates")
            && stdout.contains("  API `b`, 1 path templates"),
        "{stdout}"
    );
}
