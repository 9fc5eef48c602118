//! Keeping the policy embedded in the shipped manifests equal to the policy file.
//!
//! Envoy's `configuration` and Istio's `pluginConfig` must hold the *bundled* policy (the
//! OpenAPI document inlined), because a plugin cannot read files. Hand-copying it would
//! drift, and rewriting the manifests through a YAML parser would drop their comments (which
//! explain choices such as the failure policy). So each manifest marks the generated block
//! with comment lines and only the text between them is regenerated:
//!
//! ```yaml
//! configuration:
//!   "@type": type.googleapis.com/google.protobuf.Struct
//!   # BEGIN generated policy: `harness render-envoy`; do not edit by hand
//!   value:
//!     name: petstore
//!   # END generated policy
//! ```

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{locate, Error};

const BEGIN: &str = "# BEGIN generated policy";
const END: &str = "# END generated policy";

/// A manifest with a generated policy block, and the YAML key the block defines.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub path: PathBuf,
    pub key: &'static str,
}

/// The manifests in `envoy/` that embed the policy.
pub fn shipped_manifests() -> [Manifest; 2] {
    [
        Manifest {
            path: locate::envoy_yaml(),
            key: "value",
        },
        Manifest {
            path: locate::istio_wasmplugin_yaml(),
            key: "pluginConfig",
        },
    ]
}

impl Manifest {
    /// The manifest's text with `policy` as its generated block.
    pub fn render(&self, policy: &Value) -> Result<String, Error> {
        let text = std::fs::read_to_string(&self.path)
            .map_err(Error::io(format!("reading {}", self.path.display())))?;
        splice(&text, self.key, policy).map_err(|message| Error::Template {
            path: self.path.clone(),
            message,
        })
    }
}

/// Bundles the policy at `policy_file` the way the filter expects its configuration.
pub fn bundle(policy_file: &Path) -> Result<Value, Error> {
    apiguard_filter::load_bundle(policy_file).map_err(|error| Error::Policy {
        path: policy_file.to_owned(),
        message: error.to_string(),
    })
}

/// Replaces the lines between the `BEGIN`/`END` markers of `text` with `key: policy`, indented
/// like the `BEGIN` marker.
pub fn splice(text: &str, key: &str, policy: &Value) -> Result<String, String> {
    let lines: Vec<&str> = text.lines().collect();
    let marker = |prefix: &str| {
        lines
            .iter()
            .position(|line| line.trim_start().starts_with(prefix))
    };
    let (Some(begin), Some(end)) = (marker(BEGIN), marker(END)) else {
        return Err(format!("no `{BEGIN}` … `{END}` block"));
    };
    if end < begin {
        return Err(format!("`{END}` comes before `{BEGIN}`"));
    }
    let indent = &lines[begin][..lines[begin].len() - lines[begin].trim_start().len()];
    let mut block = serde_json::Map::new();
    block.insert(key.to_owned(), policy.clone());
    let generated = serde_yaml::to_string(&block).map_err(|error| error.to_string())?;

    let mut out: Vec<String> = lines[..=begin]
        .iter()
        .map(|line| line.to_string())
        .collect();
    out.extend(generated.lines().map(|line| match line {
        "" => String::new(),
        line => format!("{indent}{line}"),
    }));
    out.extend(lines[end..].iter().map(|line| line.to_string()));
    Ok(out.join("\n") + "\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    const MANIFEST: &str = "\
spec:
  # a comment that must survive
  # BEGIN generated policy
  pluginConfig: stale
  # END generated policy
  failStrategy: FAIL_CLOSE
";

    #[test]
    fn replaces_only_the_marked_block() {
        let policy = json!({"name": "petstore", "paths": ["/a", "/b"]});
        let out = splice(MANIFEST, "pluginConfig", &policy).unwrap();
        assert_eq!(
            out,
            "\
spec:
  # a comment that must survive
  # BEGIN generated policy
  pluginConfig:
    name: petstore
    paths:
    - /a
    - /b
  # END generated policy
  failStrategy: FAIL_CLOSE
"
        );
        let parsed: Value = serde_yaml::from_str(&out).unwrap();
        assert_eq!(parsed["spec"]["pluginConfig"], policy);
    }

    #[test]
    fn is_idempotent() {
        let policy = json!({"responses": {"200": {"description": "ok"}}});
        let once = splice(MANIFEST, "pluginConfig", &policy).unwrap();
        assert_eq!(splice(&once, "pluginConfig", &policy).unwrap(), once);
    }

    #[test]
    fn refuses_a_manifest_without_markers() {
        let error = splice("spec: {}\n", "pluginConfig", &json!({})).unwrap_err();
        assert!(error.contains("BEGIN generated policy"), "{error}");
    }
}
