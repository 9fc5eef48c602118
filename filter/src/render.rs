//! What a platform deploys, rendered from a bundled policy: the Envoy HTTP filters, the
//! ECDS resource that delivers (and hot-reloads) the filter's configuration, and the Istio
//! resources. `apiguard render` prints them; the end-to-end tests start Envoy from the same
//! functions, and a test keeps them equal to the shipped `envoy/envoy.yaml` and
//! `envoy/istio-wasmplugin.yaml`, so the three are one source.
//!
//! Native only: the filter never renders its own deployment.

use serde_json::{json, Value};

use crate::events::hash64;
use crate::settings::Limits;

/// The HTTP filter's name, the plugin's name and root id, and the VM id (which the event
/// sender shares: a shared queue is found by its VM id). With ECDS, the filter name is also
/// the name of the resource the listener subscribes to.
pub const PLUGIN: &str = "apiguard";
/// Where the shipped `envoy.yaml` (and docker-compose) loads the filter from.
pub const WASM_PATH: &str = "/etc/envoy/apiguard_filter.wasm";
/// A placeholder for the filter's OCI image (apiguard publishes none: README, "Istio").
pub const OCI_PLACEHOLDER: &str = "oci://REGISTRY/apiguard-filter@sha256:DIGEST";
/// The type of the filter's configuration, which an ECDS subscription must accept.
pub const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
const EXTENSION_CONFIG_TYPE: &str = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig";
const BUFFER: &str = "envoy.filters.http.buffer";
const BUFFER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer";

/// The `envoy.filters.http.wasm` configuration (the `Wasm` message) running `bundle`, the
/// module loaded from `wasm`: `typed_config` of the HTTP filter, and of the ECDS resource.
/// `FAIL_RELOAD`: a security filter never fails open; if the VM crashes, requests are
/// refused (503) until Envoy has reloaded a fresh VM (README, "Failure behaviour").
pub fn wasm_config(bundle: &Value, wasm: &str) -> Value {
    json!({
        "@type": WASM_TYPE,
        "config": {
            "name": PLUGIN,
            "root_id": PLUGIN,
            "vm_config": {
                "vm_id": PLUGIN,
                "runtime": "envoy.wasm.runtime.v8",
                "code": {"local": {"filename": wasm}},
            },
            "failure_policy": "FAIL_RELOAD",
            "configuration": {
                "@type": "type.googleapis.com/google.protobuf.Struct",
                "value": bundle,
            },
        },
    })
}

/// The HTTP filters that go before the router: apiguard with the policy, then Envoy's
/// buffer filter, which holds a request until apiguard has read its whole body.
pub fn envoy_filters(bundle: &Value, wasm: &str) -> Value {
    json!([
        {"name": PLUGIN, "typed_config": wasm_config(bundle, wasm)},
        buffer_filter(bundle),
    ])
}

/// The buffer filter, taking every body the policy checks (`limits.max_body_bytes`).
fn buffer_filter(bundle: &Value) -> Value {
    json!({
        "name": BUFFER,
        "typed_config": {"@type": BUFFER_TYPE, "max_request_bytes": max_body_bytes(bundle)},
    })
}

/// The policy's body limit (a gateway's: the largest of its APIs', so the buffer holds
/// every body one of them checks); the default when it sets none or the bundle does not
/// parse (then the filter refuses the policy anyway).
fn max_body_bytes(bundle: &Value) -> usize {
    let limit = |policy: &Value| {
        let limits = policy.get("limits").cloned().unwrap_or(Value::Null);
        serde_json::from_value::<Limits>(limits)
            .unwrap_or_default()
            .max_body_bytes
    };
    match bundle.get("apis").and_then(Value::as_array) {
        Some(apis) => apis
            .iter()
            .map(limit)
            .max()
            .unwrap_or_else(|| limit(&Value::Null)),
        None => limit(bundle),
    }
}

/// The ECDS resource delivering the filter's configuration: a `TypedExtensionConfig` named
/// [`PLUGIN`] inside a `DiscoveryResponse`, the form a `path_config_source` reads (and what
/// an xDS server or istiod pushes). `version_info` is the hash of the rendered resource, so
/// two different policies never share a version.
pub fn ecds_resource(bundle: &Value, wasm: &str) -> Value {
    let resource = json!({
        "@type": EXTENSION_CONFIG_TYPE,
        "name": PLUGIN,
        "typed_config": wasm_config(bundle, wasm),
    });
    let version = hash64(resource.to_string().as_bytes());
    json!({
        "version_info": format!("{version:016x}"),
        "resources": [resource],
    })
}

/// The HTTP filter that takes its configuration from the ECDS resource in the file `path`
/// (written by [`ecds_resource`]), reloaded whenever a file is moved into `directory`: a
/// new policy is written beside it and renamed over it, which is atomic. No
/// `default_config`: until a policy has loaded, the filter is missing and Envoy refuses
/// every request on the listener (fails closed) rather than passing them uninspected.
pub fn ecds_filter(path: &str, directory: &str) -> Value {
    json!({
        "name": PLUGIN,
        "config_discovery": {
            "config_source": {
                "resource_api_version": "V3",
                "path_config_source": {"path": path, "watched_directory": {"path": directory}},
            },
            "type_urls": [WASM_TYPE],
        },
    })
}

/// The Istio resources: the `WasmPlugin` running `bundle` from the image at `url`, in
/// `namespace`, on the workloads labelled `app: <policy name>`; and the `EnvoyFilter`
/// that puts the buffer filter before the router there (a `WasmPlugin` cannot).
pub fn istio(bundle: &Value, url: &str, namespace: &str) -> [Value; 2] {
    let name = bundle.get("name").and_then(Value::as_str).unwrap_or(PLUGIN);
    let selector = json!({"app": name});
    let plugin = json!({
        "apiVersion": "extensions.istio.io/v1alpha1",
        "kind": "WasmPlugin",
        "metadata": {"name": format!("apiguard-{name}"), "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": selector},
            "url": url,
            "imagePullPolicy": "IfNotPresent",
            "phase": "AUTHN",
            "failStrategy": "FAIL_CLOSE",
            "pluginConfig": bundle,
        },
    });
    let buffer = json!({
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "EnvoyFilter",
        "metadata": {"name": format!("apiguard-{name}-buffer"), "namespace": namespace},
        "spec": {
            "workloadSelector": {"labels": selector},
            "configPatches": [{
                "applyTo": "HTTP_FILTER",
                "match": {
                    "context": "SIDECAR_INBOUND",
                    "listener": {"filterChain": {"filter": {
                        "name": "envoy.filters.network.http_connection_manager",
                        "subFilter": {"name": "envoy.filters.http.router"},
                    }}},
                },
                "patch": {"operation": "INSERT_BEFORE", "value": buffer_filter(bundle)},
            }],
        },
    });
    [plugin, buffer]
}

/// The text `apiguard render` prints, and the harness writes for Envoy: `# title`, then
/// the documents as YAML, `---` between them.
pub fn yaml(title: &str, documents: &[Value]) -> Result<String, serde_yaml::Error> {
    let mut out = format!("# {title}\n");
    for (index, document) in documents.iter().enumerate() {
        if index > 0 {
            out.push_str("---\n");
        }
        out.push_str(&serde_yaml::to_string(document)?);
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_buffer_takes_the_policys_body_limit() {
        let filters = envoy_filters(&json!({"limits": {"max_body_bytes": 4096}}), WASM_PATH);
        assert_eq!(filters[1]["typed_config"]["max_request_bytes"], 4096);
        let filters = envoy_filters(&json!({"name": "a"}), WASM_PATH);
        assert_eq!(filters[1]["typed_config"]["max_request_bytes"], 1 << 20);
        // A gateway's buffer takes the largest body any of its APIs checks.
        let apis = json!({"apis": [{"limits": {"max_body_bytes": 4096}}, {"name": "b"}]});
        let filters = envoy_filters(&apis, WASM_PATH);
        assert_eq!(filters[1]["typed_config"]["max_request_bytes"], 1 << 20);
        let apis = json!({"apis": [{"limits": {"max_body_bytes": 4 << 20}}, {"name": "b"}]});
        let filters = envoy_filters(&apis, WASM_PATH);
        assert_eq!(filters[1]["typed_config"]["max_request_bytes"], 4 << 20);
    }

    #[test]
    fn the_ecds_version_follows_the_policy() {
        let a = ecds_resource(&json!({"name": "a"}), WASM_PATH);
        let b = ecds_resource(&json!({"name": "b"}), WASM_PATH);
        assert_ne!(a["version_info"], b["version_info"]);
        assert_eq!(a, ecds_resource(&json!({"name": "a"}), WASM_PATH));
        assert_eq!(a["resources"][0]["name"], PLUGIN);
        assert_eq!(
            a["resources"][0]["typed_config"]["config"]["configuration"]["value"]["name"],
            "a"
        );
    }

    #[test]
    fn istio_resources_are_named_after_the_policy() {
        let [plugin, buffer] = istio(&json!({"name": "shop"}), OCI_PLACEHOLDER, "web");
        assert_eq!(plugin["metadata"]["name"], "apiguard-shop");
        assert_eq!(plugin["metadata"]["namespace"], "web");
        assert_eq!(plugin["spec"]["selector"]["matchLabels"]["app"], "shop");
        assert_eq!(buffer["spec"]["workloadSelector"]["labels"]["app"], "shop");
        assert_eq!(buffer["metadata"]["name"], "apiguard-shop-buffer");
    }
}
