//! `apiguard overlay apply OPENAPI OVERLAY`: an OpenAPI Overlay (1.0.0) applied to a
//! document, as the specification says for the targets it can resolve.
//!
//! A target is a JSONPath naming one node by member names — `$`, `$.paths`,
//! `$.paths['/pets/{petId}']`, `$['info'].title` — which is what `apiguard learn` writes
//! and what most overlays use; wildcards, filters and recursive descent are refused by
//! name rather than applied wrongly. `update` merges into the target (objects member by
//! member, recursively; arrays are appended to; other values replace), `remove: true`
//! removes it. An action whose target does not exist changes nothing, as the
//! specification allows.

use serde_json::Value;

/// Applies every action of `overlay` to `document`, in order.
pub(crate) fn apply(document: &mut Value, overlay: &Value) -> Result<(), String> {
    let version = overlay["overlay"].as_str().unwrap_or_default();
    if !version.starts_with("1.") {
        return Err(format!(
            "not an Overlay 1.x document (`overlay: {version}`)"
        ));
    }
    let actions = overlay["actions"]
        .as_array()
        .ok_or("the overlay has no `actions`")?;
    for (i, action) in actions.iter().enumerate() {
        let target = action["target"]
            .as_str()
            .ok_or(format!("actions[{i}] has no `target`"))?;
        let path = parse(target).map_err(|e| format!("actions[{i}].target `{target}`: {e}"))?;
        if action["remove"] == Value::Bool(true) {
            if let Some((last, parent)) = path.split_last() {
                if let Some(Value::Object(members)) = resolve(document, parent) {
                    members.remove(last);
                }
            }
            continue;
        }
        if let (Some(update), Some(node)) = (action.get("update"), resolve(document, &path)) {
            merge(node, update);
        }
    }
    Ok(())
}

/// The member names of a target.
fn parse(target: &str) -> Result<Vec<String>, String> {
    let mut rest = target.strip_prefix('$').ok_or("a target starts with `$`")?;
    let mut names = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("['") {
            let (name, after) = quoted(after)?;
            names.push(name);
            rest = after
                .strip_prefix(']')
                .ok_or("`]` expected after a quoted name")?;
        } else if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            let name = &after[..end];
            if name.is_empty() || name == "*" || name.starts_with('.') {
                return Err("only member names are supported (no `*`, `..` or filters)".into());
            }
            names.push(name.to_owned());
            rest = &after[end..];
        } else {
            return Err(
                "only `.name` and `['name']` are supported (no `*`, `..` or filters)".into(),
            );
        }
    }
    Ok(names)
}

/// A `'…'` name (its opening quote consumed) and what follows its closing quote.
fn quoted(text: &str) -> Result<(String, &str), String> {
    let mut name = String::new();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '\'' => return Ok((name, &text[at + 1..])),
            '\\' => match chars.next() {
                Some((_, escaped)) => name.push(escaped),
                None => break,
            },
            c => name.push(c),
        }
    }
    Err("unterminated quoted name".into())
}

fn resolve<'v>(document: &'v mut Value, path: &[String]) -> Option<&'v mut Value> {
    path.iter()
        .try_fold(document, |node, name| node.get_mut(name.as_str()))
}

/// The Overlay specification's `update`: objects merge recursively, arrays append.
fn merge(into: &mut Value, update: &Value) {
    match (into, update) {
        (Value::Object(members), Value::Object(updates)) => {
            for (name, value) in updates {
                match members.get_mut(name) {
                    Some(member) => merge(member, value),
                    None => {
                        members.insert(name.clone(), value.clone());
                    }
                }
            }
        }
        (Value::Array(items), Value::Array(more)) => items.extend(more.iter().cloned()),
        (Value::Array(items), value) => items.push(value.clone()),
        (into, value) => *into = value.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn targets_name_members() {
        assert_eq!(parse("$").unwrap(), Vec::<String>::new());
        assert_eq!(parse("$.paths").unwrap(), ["paths"]);
        assert_eq!(
            parse(r"$.paths['/a/{b}'].get['x\'y']").unwrap(),
            ["paths", "/a/{b}", "get", "x'y"]
        );
        for unsupported in ["$..x", "$.paths.*", "$.paths[?(@.x)]", "paths", "$['x"] {
            assert!(parse(unsupported).is_err(), "{unsupported}");
        }
    }

    #[test]
    fn updates_merge_and_removals_remove() {
        let mut document =
            json!({"paths": {"/a": {"get": {"tags": ["x"]}}}, "info": {"title": "t"}});
        let overlay = json!({"overlay": "1.0.0", "actions": [
            {"target": "$.paths", "update": {"/b": {"post": {}}}},
            {"target": "$.paths['/a'].get", "update": {"tags": ["y"], "summary": "s"}},
            {"target": "$.info.title", "remove": true},
            {"target": "$.nowhere", "update": {"x": 1}},
        ]});
        apply(&mut document, &overlay).unwrap();
        assert_eq!(
            document,
            json!({"paths": {"/a": {"get": {"tags": ["x", "y"], "summary": "s"}}, "/b": {"post": {}}},
                   "info": {}})
        );
    }
}
