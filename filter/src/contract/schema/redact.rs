//! Redaction: what a response may carry is what its schema declares. Undeclared and
//! `writeOnly` properties are removed; objects the schema leaves open are kept whole.

use std::collections::BTreeMap;

use serde_json::value::RawValue;
use serde_json::Value;

use super::{SchemaSet, MAX_REF_HOPS};

impl SchemaSet {
    /// Removes from a response value, recursively, the properties its schema does not
    /// declare (and `writeOnly` ones, which must not come back); returns how many.
    /// Objects the schema leaves open (`additionalProperties`, or no properties at all)
    /// are kept whole.
    pub fn redact(&self, raw: &RawValue, value: &mut Value) -> usize {
        match serde_json::from_str::<Value>(raw.get()) {
            Ok(schema) => self.redact_value(&schema, value, 0),
            Err(_) => 0,
        }
    }

    fn redact_value(&self, schema: &Value, value: &mut Value, depth: usize) -> usize {
        if depth > MAX_REF_HOPS * 2 {
            return 0;
        }
        let schema = self.resolve(schema);
        match value {
            Value::Object(map) => {
                let Some(declared) = self.declared_properties(&schema, 0) else {
                    return 0;
                };
                let before = map.len();
                map.retain(|name, _| {
                    declared
                        .get(name)
                        .is_some_and(|p| !self.marked(p, "writeOnly", true, 0))
                });
                let mut count = before - map.len();
                for (name, child) in map.iter_mut() {
                    if let Some(property) = declared.get(name) {
                        count += self.redact_value(property, child, depth + 1);
                    }
                }
                count
            }
            Value::Array(items) => match schema.get("items") {
                Some(item_schema) => items
                    .iter_mut()
                    .map(|item| self.redact_value(item_schema, item, depth + 1))
                    .sum(),
                None => 0,
            },
            _ => 0,
        }
    }

    /// The properties an object schema declares, through `$ref` and every composition
    /// (a union over `oneOf`/`anyOf` branches: redaction keeps whatever any branch
    /// allows); `None` when the schema leaves the object open.
    fn declared_properties(&self, schema: &Value, depth: usize) -> Option<BTreeMap<String, Value>> {
        if depth > MAX_REF_HOPS {
            return None;
        }
        let schema = self.resolve(schema);
        if matches!(schema.get("additionalProperties"), Some(v) if v != &Value::Bool(false)) {
            return None;
        }
        let mut out = BTreeMap::new();
        let mut declares = false;
        if let Some(Value::Object(properties)) = schema.get("properties") {
            declares = true;
            out.extend(properties.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        for key in ["allOf", "oneOf", "anyOf"] {
            for branch in schema
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                out.extend(self.declared_properties(branch, depth + 1)?);
                declares = true;
            }
        }
        declares.then_some(out)
    }
}
