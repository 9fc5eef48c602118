//! Bundling: a policy file and the OpenAPI document it names, as the one JSON plugin
//! configuration Envoy hands the filter.
//!
//! A policy file names its OpenAPI document by path (`openapi: {file: …}`), but a plugin
//! inside Envoy cannot read files: Envoy hands it the plugin `configuration` (a
//! `google.protobuf.Struct`, as JSON). [`load_bundle`] therefore inlines the document as
//! `openapi: {document: …}`; that JSON is what goes into `envoy.yaml` or Istio's
//! `pluginConfig`. It compiles what it produced, so a bundle Envoy would refuse is never
//! written.

use std::path::Path;

use super::Gateway;
use crate::error::{parse_text, Location, PolicyError};
use crate::policy::Policy;

/// Reads a policy file and returns it as the JSON plugin configuration, with its
/// OpenAPI document (`openapi.file`, relative to the policy) inlined as
/// `openapi.document`. The result is checked by compiling it, so a bundle that Envoy
/// would refuse is never produced.
pub fn load_bundle(policy_file: &Path) -> Result<serde_json::Value, PolicyError> {
    bundle(policy_file).map(|(json, _)| json)
}

/// [`load_bundle`], also returning what Envoy compiles from the bundle: one API, or the
/// APIs of a gateway (`apis:`, each entry's document inlined the same way).
pub fn bundle(policy_file: &Path) -> Result<(serde_json::Value, Gateway), PolicyError> {
    let origin = policy_file.display().to_string();
    let policy_text = read(policy_file)?;
    bundle_text(policy_file, &origin, &policy_text).map_err(|e| e.located_in(&origin, &policy_text))
}

/// A policy file, or a bare OpenAPI document compiled with the default settings: what
/// `apiguard diff` compares. A document is told by its top-level `openapi` version
/// string, where a policy has its `openapi` section.
pub fn load_contract(file: &Path) -> Result<Policy, PolicyError> {
    let origin = file.display().to_string();
    let text = read(file)?;
    let value: serde_json::Value = parse_text(&text, &origin)?;
    if !value
        .get("openapi")
        .is_some_and(serde_json::Value::is_string)
    {
        let (_, gateway) = bundle(file)?;
        let apis = gateway.apis().len();
        return gateway.into_single().ok_or_else(|| PolicyError::Invalid {
            at: Location::new(&origin, "/apis"),
            message: format!(
                "a gateway of {apis} APIs: compare one API's policy file or document at a time"
            ),
        });
    }
    let policy = serde_json::json!({
        "name": "contract",
        "openapi": {"document": value, "source": origin},
    });
    Policy::compile_from(policy.to_string(), &origin).map_err(|e| e.located_in(&origin, &text))
}

/// [`bundle`] of the policy's text; errors are located in the policy by the caller.
fn bundle_text(
    policy_file: &Path,
    origin: &str,
    policy_text: &str,
) -> Result<(serde_json::Value, Gateway), PolicyError> {
    let mut policy: serde_json::Value = parse_text(policy_text, origin)?;
    // Where each API's sections are: the top level, or each entry of a gateway's `apis`.
    let apis = match policy.get("apis").and_then(serde_json::Value::as_array) {
        Some(apis) => (0..apis.len()).map(|i| format!("/apis/{i}")).collect(),
        None => vec![String::new()],
    };
    // The documents' texts, to point their compile errors (named after `file`) at a line.
    let mut documents = Vec::new();
    for api in apis {
        documents.extend(inline(
            policy_file,
            origin,
            &mut policy,
            &format!("{api}/openapi"),
        )?);
        if policy.pointer(&format!("{api}/candidate")).is_some() {
            let candidate = format!("{api}/candidate/openapi");
            documents.extend(inline(policy_file, origin, &mut policy, &candidate)?);
        }
    }
    let compiled = Gateway::compile_from(policy.to_string(), origin)
        .map_err(|e| (documents.iter()).fold(e, |e, (file, text)| e.located_in(file, text)))?;
    Ok((policy, compiled))
}

/// Inlines the document the `openapi` section at `pointer` names by `file`, as `document`
/// (with `source`, so errors still name the file). Returns the file's name and text, or
/// `None` when the section has no `file`.
fn inline(
    policy_file: &Path,
    origin: &str,
    policy: &mut serde_json::Value,
    pointer: &str,
) -> Result<Option<(String, String)>, PolicyError> {
    let file_at = |message: &str| PolicyError::Invalid {
        at: Location::new(origin, format!("{pointer}/file")),
        message: message.to_owned(),
    };
    let Some(openapi) = policy.pointer_mut(pointer).and_then(|o| o.as_object_mut()) else {
        return Err(PolicyError::Shape {
            at: Location::new(origin, pointer),
            message: "missing `openapi: {file: <path to the OpenAPI document>}`".to_owned(),
        });
    };
    let Some(file) = openapi.remove("file") else {
        return Ok(None);
    };
    let file = file
        .as_str()
        .ok_or_else(|| file_at("`file` must be a path, relative to the policy file"))?
        .to_owned();
    let doc_path = policy_file.parent().unwrap_or(Path::new(".")).join(&file);
    let doc_origin = doc_path.display().to_string();
    let text = std::fs::read_to_string(&doc_path).map_err(|source| PolicyError::ReadNamed {
        at: Location::new(origin, format!("{pointer}/file")),
        file: doc_origin.clone(),
        source,
    })?;
    let document: serde_json::Value = parse_text(&text, &doc_origin)?;
    openapi.insert("document".to_owned(), document);
    openapi.insert("source".to_owned(), serde_json::Value::String(file.clone()));
    Ok(Some((file, text)))
}

fn read(path: &Path) -> Result<String, PolicyError> {
    std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
        file: path.display().to_string(),
        source,
    })
}
