//! [`Delivery`]: the event sender and its collector cluster, from the shipped
//! `envoy/events.yaml`, merged into a rendered config for one run.

use std::net::SocketAddr;
use std::path::Path;

use serde_json::{json, Value};

use crate::{locate, Error};

/// The cluster the sender posts to.
pub const COLLECTOR: &str = "collector";
const SENDER: &str = "/bootstrap_extensions/0/typed_config/config";

/// Where events go in a run, and what the test changes in the shipped `sender` settings.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Where the `collector` cluster points (e.g. an [`crate::EchoUpstream`], which records
    /// every batch).
    pub collector: SocketAddr,
    /// Keys that replace those of the shipped `sender` object (`format`, `flush_ms`, …).
    pub sender: Value,
}

impl Delivery {
    /// Adds the bootstrap service and the collector cluster of `envoy/events.yaml` to
    /// `config`, with the run's `.wasm` and collector address.
    pub fn merge_into(&self, config: &mut Value, wasm: &Path) -> Result<(), Error> {
        let path = locate::events_yaml();
        let text = std::fs::read_to_string(&path)
            .map_err(Error::io(format!("reading {}", path.display())))?;
        let mut events: Value = serde_yaml::from_str(&text)?;
        let template_error = |message: &str| Error::Template {
            path: path.clone(),
            message: message.to_owned(),
        };
        let sender = format!("{SENDER}/configuration/value/sender");
        let Some(Value::Object(settings)) = events.pointer_mut(&sender) else {
            return Err(template_error(&format!("no object at {sender}")));
        };
        if let Value::Object(overrides) = &self.sender {
            settings.extend(overrides.clone());
        }
        let filename = format!("{SENDER}/vm_config/code/local/filename");
        let Some(slot) = events.pointer_mut(&filename) else {
            return Err(template_error(&format!("nothing at {filename}")));
        };
        *slot = json!(wasm.to_string_lossy());
        let mut cluster = events
            .pointer("/clusters/0")
            .cloned()
            .ok_or_else(|| template_error("no cluster at /clusters/0"))?;
        cluster["type"] = json!("STATIC");
        cluster["load_assignment"] = json!({
            "cluster_name": COLLECTOR,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                "address": self.collector.ip().to_string(),
                "port_value": self.collector.port(),
            }}}}]}],
        });
        config["bootstrap_extensions"] = events["bootstrap_extensions"].take();
        match config.pointer_mut("/static_resources/clusters") {
            Some(Value::Array(clusters)) => clusters.push(cluster),
            _ => return Err(template_error("the Envoy config has no cluster list")),
        }
        Ok(())
    }
}
