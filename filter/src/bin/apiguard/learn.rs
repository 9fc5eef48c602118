//! `apiguard learn OPENAPI EVENTS...`: what the discovery events say, as an OpenAPI
//! Overlay (1.0.0) against the team's document, and a report.
//!
//! The events are read from Envoy's log (lines with an OCSF event in them) or a
//! collector's JSON lines (OCSF objects, Splunk HEC `{"event": …}` wrappers, or arrays of
//! either). Each worker reports what it saw and each report what was new: the counts of
//! one endpoint add up, and the learned schemas merge ([`Learned::merge`]).
//!
//! The overlay adds, for each shadow endpoint, its path (relative to the document's
//! `servers`) and operation: path parameters with their inferred forms, the learned
//! request body, the status classes seen with the learned response body, and
//! `x-apiguard-observed` (requests, first and last seen). The report lists the zombie
//! calls (`discovery.zombie`), the drift of declared operations whose traffic was sampled
//! (`discovery.observed`, see [`crate::drift`]), and per declared operation the
//! violations recorded in monitor mode over the events' window — an operation with none
//! is ready to enforce.

use std::collections::BTreeMap;
use std::path::Path;

use apiguard_filter::{template_shape, Learned};

use crate::drift::Drift;
use serde_json::{json, Map, Value};

/// Starts tried per log line: the JSON starts at one of its first few `{`.
const STARTS_TRIED: usize = 4;

/// One shadow endpoint, its events added up.
#[derive(Debug, Default)]
struct Endpoint {
    count: u64,
    first_ms: u64,
    last_ms: u64,
    /// Path parameters' names and forms, from the latest event.
    params: Vec<(String, String)>,
    learned: Learned,
}

/// One declared operation's sampled traffic, its events added up.
#[derive(Debug, Default)]
struct Observed {
    /// Sampled exchanges.
    count: u64,
    learned: Learned,
}

/// What the events say, added up.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    /// Shadow endpoints, by (method, template).
    endpoints: BTreeMap<(String, String), Endpoint>,
    /// Declared operations' sampled traffic, by (method, template, operationId).
    observed: BTreeMap<(String, String, Option<String>), Observed>,
    /// Zombie calls, by operation: calls, and clients.
    zombies: BTreeMap<String, (u64, Vec<String>)>,
    /// Violations recorded in monitor mode, by operation (its id, else its template).
    monitored: BTreeMap<String, u64>,
    /// The window the events cover, in milliseconds.
    window: Option<(u64, u64)>,
    events: u64,
}

impl Findings {
    /// Reads every event of `text` (log lines or JSON lines).
    pub(crate) fn read(&mut self, text: &str) {
        for line in text.lines() {
            for event in events_in(line) {
                self.add(&event);
            }
        }
    }

    fn add(&mut self, event: &Value) {
        let event = event
            .get("event")
            .filter(|e| e.is_object())
            .unwrap_or(event);
        let unmapped = &event["unmapped"];
        let Some(rule) = unmapped["rule"].as_str() else {
            return;
        };
        self.events += 1;
        let count = event["count"].as_u64().unwrap_or(1);
        let start = event["start_time"].as_u64().unwrap_or(0);
        let end = event["end_time"].as_u64().unwrap_or(start);
        self.window = Some(match self.window {
            Some((from, to)) => (from.min(start), to.max(end)),
            None => (start, end),
        });
        let operation = unmapped["operation_id"]
            .as_str()
            .or(unmapped["path_template"].as_str())
            .unwrap_or_default()
            .to_owned();
        match rule {
            "discovery.endpoint" => {
                let method = event["http_request"]["http_method"].as_str();
                let template = unmapped["path_template"].as_str();
                let (Some(method), Some(template)) = (method, template) else {
                    return;
                };
                let key = (method.to_owned(), template.to_owned());
                let endpoint = self.endpoints.entry(key).or_default();
                endpoint.count += count;
                endpoint.first_ms = match endpoint.first_ms {
                    0 => start,
                    first => first.min(start),
                };
                endpoint.last_ms = endpoint.last_ms.max(end);
                let params = unmapped["violations"].as_array().into_iter().flatten();
                endpoint.params = params
                    .filter_map(|p| Some((p["name"].as_str()?, p["reason"].as_str()?)))
                    .map(|(name, form)| (name.to_owned(), form.to_owned()))
                    .collect();
                if let Some(learned) = unmapped.get("learned") {
                    endpoint.learned.merge(&Learned::from_json(learned));
                }
            }
            "discovery.observed" => {
                let method = event["http_request"]["http_method"].as_str();
                let template = unmapped["path_template"].as_str();
                let (Some(method), Some(template)) = (method, template) else {
                    return;
                };
                let id = unmapped["operation_id"].as_str().map(str::to_owned);
                let key = (method.to_owned(), template.to_owned(), id);
                let observed = self.observed.entry(key).or_default();
                observed.count += count;
                if let Some(learned) = unmapped.get("learned") {
                    observed.learned.merge(&Learned::from_json(learned));
                }
            }
            "discovery.zombie" => {
                let (calls, clients) = self.zombies.entry(operation).or_default();
                *calls += count;
                let client = (event["actor"]["user"]["uid"].as_str())
                    .or(event["src_endpoint"]["ip"].as_str());
                if let Some(client) = client.filter(|c| !clients.iter().any(|k| k == c)) {
                    clients.push(client.to_owned());
                }
            }
            _ if unmapped["apiguard_action"] == "monitored" && !operation.is_empty() => {
                *self.monitored.entry(operation).or_default() += count;
            }
            _ => {}
        }
    }
}

/// The JSON values in one line: the line itself (an object, or an array of them), or
/// the object that starts at one of its first `{` (a log line's prefix before it).
fn events_in(line: &str) -> Vec<Value> {
    match serde_json::from_str::<Value>(line.trim()) {
        Ok(Value::Array(items)) => return items,
        Ok(object @ Value::Object(_)) => return vec![object],
        _ => {}
    }
    for (at, _) in line.match_indices('{').take(STARTS_TRIED) {
        let mut values = serde_json::Deserializer::from_str(&line[at..]).into_iter::<Value>();
        if let Some(Ok(value)) = values.next() {
            return vec![value];
        }
    }
    Vec::new()
}

/// The document's base paths (from `servers`), longest first: `/v1` of
/// `http://localhost:10000/v1`. Server URLs with variables are left out.
fn base_paths(document: &Value) -> Vec<String> {
    let servers = document["servers"].as_array().into_iter().flatten();
    let mut bases: Vec<String> = servers
        .filter_map(|server| server["url"].as_str())
        .filter(|url| !url.contains('{'))
        .map(|url| {
            let rest = url.split_once("//").map_or(url, |(_, rest)| rest);
            let path = if url.starts_with('/') && !url.starts_with("//") {
                url
            } else {
                rest.find('/').map_or("", |at| &rest[at..])
            };
            path.trim_end_matches('/').to_owned()
        })
        .filter(|path| !path.is_empty())
        .collect();
    bases.sort_by_key(|b| std::cmp::Reverse(b.len()));
    bases
}

/// A template as the document writes it: without the base path the requests carried.
fn document_path(template: &str, bases: &[String]) -> String {
    for base in bases {
        if let Some(rest) = template.strip_prefix(base.as_str()) {
            if rest.starts_with('/') {
                return rest.to_owned();
            }
            if rest.is_empty() {
                return "/".to_owned();
            }
        }
    }
    template.to_owned()
}

/// `'…'` for a JSONPath bracket.
fn quoted(key: &str) -> String {
    format!("'{}'", key.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The overlay: one action per path that gains operations.
pub(crate) fn overlay(document: &Value, findings: &Findings, source: &str) -> Value {
    let bases = base_paths(document);
    let paths = document["paths"].as_object().cloned().unwrap_or_default();
    let openapi30 = document["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.0"));
    // Per document path: its operations to add.
    let mut added: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for ((method, template), endpoint) in &findings.endpoints {
        let relative = document_path(template, &bases);
        // A declared path of the same shape keeps its own spelling (and parameter names).
        let declared = (paths.keys()).find(|p| template_shape(p) == template_shape(&relative));
        let path = declared.cloned().unwrap_or(relative);
        let method = method.to_ascii_lowercase();
        let declared_method = declared.is_some_and(|p| paths[p].get(&method).is_some());
        if declared_method {
            continue;
        }
        let names = param_names(&path);
        let operation = operation(&method, &path, &names, endpoint, openapi30);
        added.entry(path).or_default().insert(method, operation);
    }
    let mut actions = Vec::new();
    let mut new_paths = Map::new();
    for (path, operations) in added {
        if paths.contains_key(&path) {
            actions.push(json!({
                "target": format!("$.paths[{}]", quoted(&path)),
                "description": format!("Operations observed on {path} that it does not declare"),
                "update": Value::Object(operations),
            }));
        } else {
            new_paths.insert(path, Value::Object(operations));
        }
    }
    if !new_paths.is_empty() {
        actions.insert(
            0,
            json!({
                "target": "$.paths",
                "description": "Shadow endpoints: observed in traffic, not declared",
                "update": Value::Object(new_paths),
            }),
        );
    }
    let title = document["info"]["title"].as_str().unwrap_or("the API");
    json!({
        "overlay": "1.0.0",
        "info": {
            "title": format!("Endpoints of {title} learned by apiguard"),
            "version": "1.0.0",
        },
        "extends": source,
        "actions": actions,
    })
}

/// The parameter names of a template, in order.
fn param_names(path: &str) -> Vec<String> {
    path.split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_owned()))
        .collect()
}

fn operation(
    method: &str,
    path: &str,
    names: &[String],
    endpoint: &Endpoint,
    openapi30: bool,
) -> Value {
    let parameters: Vec<Value> = (names.iter().enumerate())
        .map(|(i, name)| {
            let form = endpoint.params.get(i).map_or("string", |(_, form)| form);
            json!({"name": name, "in": "path", "required": true, "schema": form_schema(form)})
        })
        .collect();
    let id: String = format!("{method}{path}")
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .enumerate()
        .map(|(i, w)| match i {
            0 => w.to_owned(),
            _ => w[..1].to_ascii_uppercase() + &w[1..],
        })
        .collect();
    let learned = &endpoint.learned;
    let mut operation = json!({
        "operationId": format!("learned_{id}"),
        "summary": "Observed in traffic by apiguard (not declared before)",
        "responses": responses(learned, openapi30),
        "x-apiguard-observed": {
            "requests": endpoint.count,
            "first_seen": rfc3339(endpoint.first_ms),
            "last_seen": rfc3339(endpoint.last_ms),
        },
    });
    if !parameters.is_empty() {
        operation["parameters"] = Value::Array(parameters);
    }
    if let Some(content) = content(&learned.request_media, learned.request.as_ref(), openapi30) {
        operation["requestBody"] = json!({"content": content});
    }
    operation
}

/// A path parameter's schema from its form in the event.
fn form_schema(form: &str) -> Value {
    match form {
        "integer" => json!({"type": "integer"}),
        "uuid" | "date" | "email" => json!({"type": "string", "format": form}),
        "hex" => json!({"type": "string", "pattern": "^[0-9a-fA-F]+$"}),
        _ => json!({"type": "string"}),
    }
}

/// `content` for the media types seen; the learned schema goes with the JSON ones.
fn content(
    media: &[Box<str>],
    schema: Option<&apiguard_filter::Schema>,
    openapi30: bool,
) -> Option<Map<String, Value>> {
    let mut content = Map::new();
    for media in media {
        let json = media.as_ref() == "application/json" || media.ends_with("+json");
        let entry = match (schema, json) {
            (Some(schema), true) => json!({"schema": dialect(schema.to_json(), openapi30)}),
            _ => json!({}),
        };
        content.insert(media.to_string(), entry);
    }
    (!content.is_empty()).then_some(content)
}

/// One response per status class seen (`2XX`), the learned body with the successes (or
/// the first class when none succeeded); `default` when no response was seen.
fn responses(learned: &Learned, openapi30: bool) -> Value {
    let classes: Vec<u8> = (1..6)
        .filter(|c| learned.statuses & (1 << c) != 0)
        .collect();
    let with_body = classes
        .iter()
        .copied()
        .find(|c| *c == 2)
        .or(classes.first().copied());
    let mut responses = Map::new();
    for class in &classes {
        let mut response = json!({"description": "Observed"});
        if Some(*class) == with_body {
            let body = content(
                &learned.response_media,
                learned.response.as_ref(),
                openapi30,
            );
            if let Some(content) = body {
                response["content"] = Value::Object(content);
            }
        }
        responses.insert(format!("{class}XX"), response);
    }
    if responses.is_empty() {
        responses.insert(
            "default".into(),
            json!({"description": "No response observed"}),
        );
    }
    Value::Object(responses)
}

/// A learned schema (3.1 dialect) for the document's version: in 3.0, a `null` type is
/// `nullable`, and several types are `anyOf`.
fn dialect(mut schema: Value, openapi30: bool) -> Value {
    if !openapi30 {
        return schema;
    }
    let Some(object) = schema.as_object_mut() else {
        return schema;
    };
    if let Some(Value::Array(types)) = object.get("type").cloned() {
        object.remove("type");
        let null = types.iter().any(|t| t == "null");
        let rest: Vec<Value> = types.into_iter().filter(|t| t != "null").collect();
        if null {
            object.insert("nullable".into(), json!(true));
        }
        match rest.as_slice() {
            [one] => {
                object.insert("type".into(), one.clone());
            }
            many => {
                let any: Vec<Value> = many.iter().map(|t| json!({"type": t})).collect();
                object.insert("anyOf".into(), Value::Array(any));
            }
        }
    }
    if let Some(items) = object.remove("items") {
        object.insert("items".into(), dialect(items, true));
    }
    if let Some(Value::Object(properties)) = object.remove("properties") {
        let properties = (properties.into_iter())
            .map(|(name, schema)| (name, dialect(schema, true)))
            .collect();
        object.insert("properties".into(), Value::Object(properties));
    }
    schema
}

/// The report: zombies, and per declared operation the violations monitor mode recorded.
pub(crate) fn report(document: &Value, findings: &Findings) -> String {
    let mut out = String::new();
    let window = findings
        .window
        .map_or("no events".to_owned(), |(from, to)| {
            format!("{} to {}", rfc3339(from), rfc3339(to))
        });
    out += &format!("events read: {} ({window})\n", findings.events);
    out += &format!("shadow endpoints: {}\n", findings.endpoints.len());
    for ((method, template), endpoint) in &findings.endpoints {
        let schemas = [
            endpoint.learned.request.as_ref().map(|_| "request body"),
            endpoint.learned.response.as_ref().map(|_| "response body"),
        ];
        let schemas: Vec<&str> = schemas.into_iter().flatten().collect();
        out += &format!(
            "  {method} {template}: {} requests, learned: {}\n",
            endpoint.count,
            if schemas.is_empty() {
                "-".to_owned()
            } else {
                schemas.join(", ")
            }
        );
    }
    out += &format!(
        "zombie endpoints (deprecated, still called): {}\n",
        findings.zombies.len()
    );
    for (operation, (calls, clients)) in &findings.zombies {
        out += &format!(
            "  {operation}: {calls} calls from {} clients\n",
            clients.len()
        );
    }
    out += &drift_report(document, findings);
    out += "learn -> enforce (violations recorded in monitor mode over the window; an operation \
            without events may also have had no traffic):\n";
    let operations = declared_operations(document);
    for operation in &operations {
        let violations = findings.monitored.get(operation).copied().unwrap_or(0);
        let verdict = if violations == 0 {
            "ready"
        } else {
            "not ready"
        };
        out += &format!("  {operation}: {violations} violations, {verdict}\n");
    }
    out
}

/// The drift section: per declared operation with sampled traffic, how it departs from
/// the contract.
fn drift_report(document: &Value, findings: &Findings) -> String {
    let mut out = format!(
        "drift (declared operations sampled with discovery.learn): {} operations observed\n",
        findings.observed.len()
    );
    let bases = base_paths(document);
    for ((method, template, id), observed) in &findings.observed {
        let name = id.clone().unwrap_or_else(|| format!("{method} {template}"));
        let Some(operation) = find_operation(document, method, template, id.as_deref(), &bases)
        else {
            out += &format!("  {name}: not in the document (another version of it?)\n");
            continue;
        };
        let drift = Drift::of(document, operation, &observed.learned);
        let verdict = if drift.is_empty() {
            "no drift"
        } else {
            "drift"
        };
        out += &format!(
            "  {name}: {} sampled exchanges, {verdict}\n",
            observed.count
        );
        for line in drift.lines() {
            out += &format!("    {line}\n");
        }
    }
    out
}

/// The document's operation an event names: by `operationId`, else by method and path
/// (without the base path of the servers).
fn find_operation<'d>(
    document: &'d Value,
    method: &str,
    template: &str,
    id: Option<&str>,
    bases: &[String],
) -> Option<&'d Value> {
    let paths = document["paths"].as_object()?;
    let method = method.to_ascii_lowercase();
    if let Some(id) = id {
        // An `operationId` is unique in its document.
        let by_id = (paths.values())
            .filter_map(Value::as_object)
            .flat_map(|item| item.values())
            .find(|op| op["operationId"].as_str() == Some(id));
        if by_id.is_some() {
            return by_id;
        }
    }
    let path = document_path(template, bases);
    (paths.get(&path).or_else(|| paths.get(template)))?.get(&method)
}

/// Each declared operation's name as events give it: its `operationId`, else its template.
fn declared_operations(document: &Value) -> Vec<String> {
    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];
    let mut names = Vec::new();
    for (path, item) in document["paths"].as_object().into_iter().flatten() {
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                let id = operation["operationId"].as_str().unwrap_or(path);
                names.push(id.to_owned());
            }
        }
    }
    names
}

/// Milliseconds since the epoch as `2024-02-29T13:45:00Z`.
fn rfc3339(ms: u64) -> String {
    let seconds = ms / 1000;
    let days = (seconds / 86_400) as i64;
    let time = seconds % 86_400;
    // Howard Hinnant's `civil_from_days`.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        time / 3600,
        time % 3600 / 60,
        time % 60
    )
}

/// Reads an OpenAPI document or overlay (YAML or JSON).
pub(crate) fn read_document(file: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_written_in_rfc_3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_709_214_300_000), "2024-02-29T13:45:00Z");
    }

    #[test]
    fn templates_lose_the_base_path_of_the_servers() {
        let document = json!({"servers": [{"url": "http://localhost:10000/v1"}, {"url": "/"}]});
        let bases = base_paths(&document);
        assert_eq!(bases, ["/v1"]);
        assert_eq!(document_path("/v1/pets/{petId}", &bases), "/pets/{petId}");
        assert_eq!(document_path("/v10/x", &bases), "/v10/x");
    }

    #[test]
    fn events_are_found_in_log_lines_and_collector_batches() {
        let line = r#"[2026-12-01 06:00:00.000][12][info][wasm] wasm log apiguard: {"unmapped": {"rule": "x"}}"#;
        assert_eq!(events_in(line), [json!({"unmapped": {"rule": "x"}})]);
        assert_eq!(events_in(r#"[{"a": 1}, {"b": 2}]"#).len(), 2);
        assert!(events_in("no json").is_empty());
    }
}
