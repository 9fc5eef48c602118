//! The shipped manifests stay one source: envoy.yaml and the Istio WasmPlugin embed the
//! bundled petstore policy, and docker-compose runs envoy.yaml as the tests do.

use apiguard_harness::embed::shipped_manifests;
use apiguard_harness::locate;
use apiguard_harness::render::Template;
use serde_json::Value;

use crate::fixture::bundled;

/// The Envoy version the project runs: the binary the tests start and the compose image must
/// both be this one, so what passes here is what `docker compose up` runs.
const ENVOY_VERSION: &str = "1.40.0";

/// The first YAML document of the file (the Istio manifest's second is the buffer
/// `EnvoyFilter`, which `apiguard render istio` is checked against in filter/tests/render.rs).
fn yaml(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    let first = serde_yaml::Deserializer::from_str(&text).next().unwrap();
    serde::Deserialize::deserialize(first).unwrap()
}

#[test]
fn manifests_embed_the_bundled_petstore_policy() {
    let expected = bundled("petstore");
    let hint = "run `cargo run -p apiguard-harness -- render-envoy`";
    let template = Template::load(&locate::envoy_yaml()).unwrap();
    assert!(
        *template.embedded_policy().unwrap() == expected,
        "envoy.yaml drifted: {hint}"
    );
    let istio = yaml(&locate::istio_wasmplugin_yaml());
    assert!(
        istio["spec"]["pluginConfig"] == expected,
        "the WasmPlugin drifted: {hint}"
    );
    // And byte for byte, so that regenerating is a no-op.
    for manifest in shipped_manifests() {
        let rendered = manifest.render(&expected).unwrap();
        let current = std::fs::read_to_string(&manifest.path).unwrap();
        assert!(
            rendered == current,
            "{} is not as generated: {hint}",
            manifest.path.display()
        );
    }
}

#[test]
fn security_settings_fail_closed() {
    let envoy = yaml(&locate::envoy_yaml());
    let filters = &envoy["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0];
    let http_filters = filters["typed_config"]["http_filters"].as_array().unwrap();
    let names: Vec<_> = http_filters
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "apiguard",
            "envoy.filters.http.buffer",
            "envoy.filters.http.router"
        ]
    );
    let plugin = &http_filters[0]["typed_config"]["config"];
    assert_eq!(plugin["failure_policy"], "FAIL_RELOAD");
    // The buffer filter holds requests until apiguard has read their whole body: it must
    // take every body the policy checks.
    let policy_limit = plugin["configuration"]["value"]
        .pointer("/limits/max_body_bytes")
        .and_then(|limit| limit.as_u64())
        .unwrap_or(1 << 20);
    let buffer_limit = http_filters[1]["typed_config"]["max_request_bytes"]
        .as_u64()
        .unwrap();
    assert!(
        buffer_limit >= policy_limit,
        "{buffer_limit} < {policy_limit}"
    );
    // The client is the connection's peer, not what it writes in X-Forwarded-For, and
    // header names with `_` (twins of identity headers) are refused.
    let manager = &filters["typed_config"];
    assert_eq!(manager["use_remote_address"], true);
    assert_eq!(manager["xff_num_trusted_hops"], 0);
    let protocol = &manager["common_http_protocol_options"];
    assert_eq!(
        protocol["headers_with_underscores_action"],
        "REJECT_REQUEST"
    );

    let istio = yaml(&locate::istio_wasmplugin_yaml());
    assert_eq!(istio["spec"]["failStrategy"], "FAIL_CLOSE");
    assert_eq!(istio["spec"]["phase"], "AUTHN");
}

#[test]
fn tests_run_the_pinned_envoy_version() {
    let envoy = locate::envoy_binary().unwrap();
    let output = std::process::Command::new(&envoy)
        .arg("--version")
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&output.stdout);
    // `envoy  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL`
    assert!(
        version.contains(&format!("/{ENVOY_VERSION}/")),
        "{}: {version}",
        envoy.display()
    );
}

#[test]
fn docker_compose_runs_the_shipped_envoy_yaml() {
    let compose = yaml(&locate::docker_compose_yml());
    let template = Template::load(&locate::envoy_yaml()).unwrap();
    let envoy = &compose["services"]["envoy"];

    assert_eq!(envoy["image"], format!("envoyproxy/envoy:v{ENVOY_VERSION}"));
    let wasm = template.wasm_filename().unwrap();
    let mounts: Vec<_> = envoy["volumes"].as_array().unwrap().iter().collect();
    let mounted = |source: &str, target: &str| {
        mounts.iter().any(|mount| {
            let mount = mount.as_str().unwrap_or_default();
            mount == format!("{source}:{target}:ro") || mount == format!("{source}:{target}")
        })
    };
    assert!(
        mounted("./envoy/envoy.yaml", "/etc/envoy/envoy.yaml"),
        "{mounts:?}"
    );
    let built = "./target/wasm32-wasip1/release/apiguard_filter.wasm";
    assert!(
        mounted(built, wasm),
        "the .wasm must be mounted at {wasm}: {mounts:?}"
    );

    let ports: Vec<_> = envoy["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap_or_default())
        .collect();
    let listener = template.listener_port().unwrap();
    let admin = template.admin_port().unwrap();
    // The API on every interface; the admin API (which can stop Envoy) on loopback only.
    for published in [
        format!("{listener}:{listener}"),
        format!("127.0.0.1:{admin}:{admin}"),
    ] {
        assert!(
            ports.contains(&published.as_str()),
            "{published}: {ports:?}"
        );
    }
    assert!(
        ports
            .iter()
            .all(|p| !p.ends_with(&format!(":{admin}")) || p.starts_with("127.0.0.1:")),
        "the admin port is published beyond loopback: {ports:?}"
    );

    let (host, port) = template.upstream_endpoint().unwrap();
    let upstream = &compose["services"][host];
    assert!(
        upstream.is_object(),
        "no service `{host}` for the upstream cluster"
    );
    assert_eq!(upstream["environment"]["HTTP_PORT"], port.to_string());
}
