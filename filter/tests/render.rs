//! `apiguard render`: what it prints parses back, and for the bundled petstore policy it is
//! exactly what `envoy/envoy.yaml` and `envoy/istio-wasmplugin.yaml` ship, so the
//! manifests, the CLI and the end-to-end tests (which start Envoy from the same rendering)
//! are one source.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_apiguard"))
        .current_dir(root())
        .arg("render")
        .args(args)
        .output()
        .unwrap()
}

/// Every YAML document of `text`.
fn documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|document| Value::deserialize(document).unwrap())
        .collect()
}

/// The rendered documents, from a run that must succeed.
fn render(args: &[&str]) -> Vec<Value> {
    let output = run(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{args:?}: {stderr}");
    documents(&String::from_utf8(output.stdout).unwrap())
}

fn shipped(file: &str) -> Vec<Value> {
    documents(&std::fs::read_to_string(root().join("envoy").join(file)).unwrap())
}

/// The shipped listener's HTTP filters.
fn shipped_http_filters() -> Vec<Value> {
    let envoy = shipped("envoy.yaml").remove(0);
    let pointer =
        "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/http_filters";
    envoy.pointer(pointer).unwrap().as_array().unwrap().clone()
}

const PETSTORE: &str = "policies/petstore/policy.yaml";

#[test]
fn envoy_renders_the_shipped_filters_before_the_router() {
    let [filters] = &render(&["envoy", PETSTORE])[..] else {
        panic!("one document expected")
    };
    let shipped = shipped_http_filters();
    // apiguard and the buffer filter, as shipped; the router is the listener's own.
    assert_eq!(filters.as_array().unwrap()[..], shipped[..2]);
    assert_eq!(shipped[2]["name"], "envoy.filters.http.router");
}

#[test]
fn ecds_renders_the_shipped_filter_as_a_discovery_resource() {
    let [response] = &render(&["ecds", PETSTORE, "--wasm", "/opt/apiguard.wasm"])[..] else {
        panic!("one document expected")
    };
    let resources = response["resources"].as_array().unwrap();
    assert_eq!(resources.len(), 1, "{response}");
    let resource = &resources[0];
    assert_eq!(
        resource["@type"],
        "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"
    );
    // The resource name is the HTTP filter's, which the listener subscribes to.
    assert_eq!(resource["name"], "apiguard");
    let mut expected = shipped_http_filters()[0]["typed_config"].clone();
    expected["config"]["vm_config"]["code"]["local"]["filename"] = "/opt/apiguard.wasm".into();
    assert_eq!(resource["typed_config"], expected);
    assert_eq!(response["version_info"].as_str().unwrap().len(), 16);
}

#[test]
fn istio_renders_the_shipped_wasmplugin_and_buffer_envoyfilter() {
    let rendered = render(&["istio", PETSTORE]);
    assert_eq!(rendered, shipped("istio-wasmplugin.yaml"));
    let kinds: Vec<_> = rendered.iter().map(|d| d["kind"].clone()).collect();
    assert_eq!(kinds, ["WasmPlugin", "EnvoyFilter"]);

    let elsewhere = render(&[
        "istio",
        PETSTORE,
        "--namespace",
        "shop",
        "--wasm",
        "oci://r/a",
    ]);
    assert_eq!(elsewhere[0]["metadata"]["namespace"], "shop");
    assert_eq!(elsewhere[1]["metadata"]["namespace"], "shop");
    assert_eq!(elsewhere[0]["spec"]["url"], "oci://r/a");
}

#[test]
fn a_policy_that_does_not_compile_renders_nothing() {
    let dir = std::env::temp_dir().join(format!("apiguard-render-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("policy.yaml");
    std::fs::write(
        &policy,
        "name: broken\nmode: enforce\nopenapi: {document: {openapi: '2.0'}}\n",
    )
    .unwrap();
    for kind in ["envoy", "ecds", "istio"] {
        let output = run(&[kind, policy.to_str().unwrap()]);
        assert!(!output.status.success(), "{kind}");
        assert!(output.stdout.is_empty(), "{kind}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("error:"), "{kind}: {stderr}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unknown_kind_or_option_is_a_usage_error() {
    for args in [
        &["nginx", PETSTORE][..],
        &["envoy", PETSTORE, "--port", "1"],
    ] {
        let output = run(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("usage"));
    }
}

/// The README shows the listener's ECDS filter; it is what the harness starts Envoy with.
#[test]
fn the_readmes_ecds_filter_is_the_rendered_one() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let block = (readme.split("```yaml\n"))
        .filter_map(|rest| rest.split_once("```").map(|(block, _)| block))
        .find(|block| block.contains("config_discovery:"))
        .expect("a YAML block with config_discovery in the README");
    let shown: Value = serde_yaml::from_str(block).unwrap();
    let rendered =
        apiguard_filter::render::ecds_filter("/etc/envoy/ecds/apiguard.yaml", "/etc/envoy/ecds");
    assert_eq!(shown["http_filters"][0], rendered);
}

/// A gateway (`apis:`) renders like a policy: one filter whose configuration lists every
/// API with its document inlined, and a buffer that takes the largest body any API checks.
#[test]
fn a_gateway_renders_as_one_filter_with_every_api_inlined() {
    let filters = render(&["envoy", "policies/gateway/gateway.yaml"]).remove(0);
    let configuration = &filters[0]["typed_config"]["config"]["configuration"]["value"];
    assert_eq!(configuration["name"], "edge");
    let apis = configuration["apis"].as_array().unwrap();
    let names: Vec<&Value> = apis.iter().map(|api| &api["name"]).collect();
    assert_eq!(names, ["petstore", "bookshop"]);
    for api in apis {
        assert!(api["openapi"]["document"]["paths"].is_object(), "{api}");
        assert!(api["openapi"].get("file").is_none(), "{api}");
    }
    assert_eq!(filters[1]["typed_config"]["max_request_bytes"], 1 << 20);
    let ecds = render(&["ecds", "policies/gateway/gateway.yaml"]).remove(0);
    let value = &ecds["resources"][0]["typed_config"]["config"]["configuration"]["value"];
    assert_eq!(value, configuration);
}
