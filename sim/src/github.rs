//! GitHub's REST API description as a truth to measure against: its operations, a copy
//! with holes cut in it, and values for its path parameters.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use apiguard_filter::template_shape;
use serde_json::Value;

use crate::rng::{Rng, Zipf};
use crate::SimError;

/// Where `make specs` puts the description (npm `@octokit/openapi` 23.0.2).
pub fn spec_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../.tools/specs/octokit-openapi-23.0.2/generated/api.github.com.json")
}

/// How a path parameter's values are drawn.
#[derive(Debug, Clone)]
pub enum Values {
    /// Integers (issue numbers, ids): Zipf-distributed over a large range.
    Integer,
    /// One of the schema's `enum` values.
    Enum(Vec<String>),
    /// Names (owners, repositories, teams…): Zipf over a pool of this parameter's own.
    Name,
}

/// One operation of the document.
#[derive(Debug, Clone)]
pub struct Operation {
    /// `GET`, `POST`…
    pub method: String,
    /// `/repos/{owner}/{repo}/hooks/{hook_id}`.
    pub template: String,
    /// The path parameters, by name.
    pub params: BTreeMap<String, Values>,
}

impl Operation {
    /// The template with every parameter as `{}`: how templates are compared.
    pub fn shape(&self) -> String {
        template_shape(&self.template)
    }
}

/// The description, read and parsed.
pub fn load(path: &Path) -> Result<Value, SimError> {
    let text = std::fs::read_to_string(path).map_err(|source| SimError::Read {
        path: path.display().to_string(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| SimError::Spec(e.to_string()))
}

/// Every operation of `document`, in the document's order.
pub fn operations(document: &Value) -> Vec<Operation> {
    let parameters = &document["components"]["parameters"];
    let resolve = |p: &Value| -> Value {
        match p.get("$ref").and_then(Value::as_str) {
            Some(r) => r
                .rsplit('/')
                .next()
                .map(|name| parameters[name].clone())
                .unwrap_or(Value::Null),
            None => p.clone(),
        }
    };
    let mut out = Vec::new();
    let Some(paths) = document["paths"].as_object() else {
        return out;
    };
    for (template, item) in paths {
        let Some(item) = item.as_object() else {
            continue;
        };
        let shared: Vec<Value> = (item.get("parameters").and_then(Value::as_array))
            .into_iter()
            .flatten()
            .map(resolve)
            .collect();
        for (method, operation) in item {
            if ![
                "get", "put", "post", "delete", "patch", "head", "options", "trace",
            ]
            .contains(&method.as_str())
            {
                continue;
            }
            let own = (operation.get("parameters").and_then(Value::as_array))
                .into_iter()
                .flatten()
                .map(resolve);
            let params = shared
                .iter()
                .cloned()
                .chain(own)
                .filter(|p| p["in"] == "path")
                .filter_map(|p| Some((p["name"].as_str()?.to_owned(), values(&p["schema"]))))
                .collect();
            out.push(Operation {
                method: method.to_ascii_uppercase(),
                template: template.clone(),
                params,
            });
        }
    }
    out
}

fn values(schema: &Value) -> Values {
    if let Some(values) = schema["enum"].as_array() {
        let values: Vec<String> = values
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect();
        if !values.is_empty() {
            return Values::Enum(values);
        }
    }
    match schema["type"].as_str() {
        Some("integer") => Values::Integer,
        _ => Values::Name,
    }
}

/// `document` without a `share` of its paths, chosen with `rng`: the contract a team
/// would have if it had forgotten them. Returns the copy and the removed templates.
pub fn with_holes(document: &Value, share: f64, rng: &mut Rng) -> (Value, Vec<String>) {
    let mut copy = document.clone();
    let mut removed = Vec::new();
    if let Some(paths) = copy["paths"].as_object_mut() {
        let templates: Vec<String> = paths.keys().cloned().collect();
        for template in templates {
            if rng.unit() < share {
                paths.remove(&template);
                removed.push(template);
            }
        }
    }
    (copy, removed)
}

/// Draws path parameter values: per parameter name a pool of names, so the same owner
/// comes back across endpoints, as in real traffic.
pub struct Filler {
    names: Vec<String>,
    zipf_names: Zipf,
    zipf_numbers: Zipf,
}

impl Filler {
    /// Pools of `size` names.
    pub fn new(size: usize, rng: &mut Rng) -> Filler {
        const SYLLABLES: [&str; 24] = [
            "ka", "lo", "mi", "ten", "rus", "dev", "bot", "hub", "ops", "zen", "ar", "vel", "no",
            "quin", "sa", "tor", "pi", "lux", "mo", "rin", "ta", "gor", "wil", "yam",
        ];
        let names = (0..size)
            .map(|_| {
                let mut name = String::new();
                for _ in 0..(2 + rng.below(3)) {
                    name.push_str(SYLLABLES[rng.below(SYLLABLES.len() as u64) as usize]);
                }
                match rng.below(4) {
                    0 => format!("{name}-{}", rng.below(100)),
                    1 => format!("{name}-{}", SYLLABLES[rng.below(24) as usize]),
                    _ => name,
                }
            })
            .collect();
        Filler {
            names,
            zipf_names: Zipf::new(size, 0.8),
            zipf_numbers: Zipf::new(100_000, 0.6),
        }
    }

    /// A request path for `operation`, each parameter filled.
    pub fn path(&self, operation: &Operation, rng: &mut Rng) -> String {
        let mut path = operation.template.clone();
        for (name, values) in &operation.params {
            let value = match values {
                Values::Integer => (self.zipf_numbers.sample(rng) + 1).to_string(),
                Values::Enum(values) => values[rng.below(values.len() as u64) as usize].clone(),
                Values::Name => {
                    // Each parameter its own pool: a rotation of the shared names.
                    let offset = name.len() * 7919;
                    let i = (self.zipf_names.sample(rng) + offset) % self.names.len();
                    self.names[i].clone()
                }
            };
            path = path.replace(&format!("{{{name}}}"), &value);
        }
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_compare_by_shape_and_parameters_are_filled() {
        let operation = Operation {
            method: "GET".to_owned(),
            template: "/repos/{owner}/issues/{number}/{fmt}".to_owned(),
            params: BTreeMap::from([
                ("owner".to_owned(), Values::Name),
                ("number".to_owned(), Values::Integer),
                ("fmt".to_owned(), Values::Enum(vec!["zip".to_owned()])),
            ]),
        };
        let mut rng = Rng::new(3);
        let filler = Filler::new(100, &mut rng);
        let path = filler.path(&operation, &mut rng);
        assert!(
            path.starts_with("/repos/") && path.ends_with("/zip"),
            "{path}"
        );
        assert!(!path.contains('{'), "{path}");
    }
}
