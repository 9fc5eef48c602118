//! [`EcdsSource`]: apiguard's configuration delivered by Envoy's extension config discovery
//! (ECDS) from a file, the way a platform hot-reloads a policy without an xDS server.
//!
//! The file holds what `apiguard render ecds` prints (the same library functions render
//! and format it here). Envoy watches the file's directory and re-reads the file when a file is moved
//! into it, so a push writes the new resource beside the file and renames it over: the
//! rename is atomic, and Envoy never reads half a policy.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use apiguard_filter::render;
use serde_json::Value;

use crate::Error;

/// The resource file, named after the filter (and the resource) it configures.
const FILE: &str = "apiguard.yaml";

/// A watched directory holding the ECDS resource file; removed on drop.
#[derive(Debug)]
pub struct EcdsSource {
    dir: PathBuf,
    wasm: PathBuf,
    pushes: AtomicU32,
}

impl EcdsSource {
    /// A fresh directory with `bundle` as the first policy, to run on the `.wasm` at `wasm`.
    pub fn create(wasm: &Path, bundle: &Value) -> Result<EcdsSource, Error> {
        let dir = crate::envoy::fresh_temp_dir("ecds")?;
        let source = EcdsSource {
            dir,
            wasm: wasm.to_owned(),
            pushes: AtomicU32::new(0),
        };
        source.push(bundle)?;
        Ok(source)
    }

    /// The resource file, for [`crate::EnvoyOptions::ecds`].
    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    /// Replaces the policy: the resource written beside the file, then renamed over it.
    /// Whether Envoy accepts it shows in its `config_reload` and `config_fail` counters.
    pub fn push(&self, bundle: &Value) -> Result<(), Error> {
        let resource = render::ecds_resource(bundle, &self.wasm.to_string_lossy());
        let n = self.pushes.fetch_add(1, Ordering::Relaxed);
        let text = render::yaml(&format!("apiguard render ecds (push {n})"), &[resource])?;
        // Not a `.yaml` name, and written before it is moved: Envoy reads only `FILE`.
        let staged = self.dir.join(format!(".{FILE}.{n}"));
        fs::write(&staged, text).map_err(Error::io(format!("writing {}", staged.display())))?;
        fs::rename(&staged, self.path()).map_err(Error::io(format!(
            "renaming {} over {FILE}",
            staged.display()
        )))
    }
}

impl Drop for EcdsSource {
    fn drop(&mut self) {
        // Kept when a test failed, beside Envoy's files, to see what was pushed last.
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
