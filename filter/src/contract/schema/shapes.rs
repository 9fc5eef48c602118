//! How a schema's values are laid out when they travel as strings (parameters, form
//! fields): the types a value may take, and an object's properties. Read through
//! `$ref` and compositions, without compiling anything.

use std::collections::BTreeMap;

use serde_json::value::RawValue;
use serde_json::Value;

use super::{SchemaSet, MAX_REF_HOPS};
use crate::contract::shape::{Shape, Types};

impl SchemaSet {
    /// How a string-serialised value of `raw`'s schema is laid out (see `shape`).
    pub fn shape(&self, raw: &RawValue) -> Shape {
        match serde_json::from_str::<Value>(raw.get()) {
            Ok(schema) => self.shape_of(&schema),
            Err(_) => Shape::Scalar(Types::ANY),
        }
    }

    /// The shape of each declared property of an object schema (a form's fields), and the
    /// types of undeclared ones.
    pub fn property_shapes(&self, raw: &RawValue) -> (BTreeMap<String, Shape>, Types) {
        let Ok(schema) = serde_json::from_str::<Value>(raw.get()) else {
            return (BTreeMap::new(), Types::ANY);
        };
        let schema = self.resolve(&schema);
        let mut properties = BTreeMap::new();
        self.collect_properties(&schema, &mut properties, 0);
        let shapes = properties
            .into_iter()
            .map(|(name, property)| (name, self.shape_of(&property)))
            .collect();
        (shapes, self.additional_types(&schema))
    }

    fn shape_of(&self, schema: &Value) -> Shape {
        let schema = self.resolve(schema);
        let types = self.types(&schema);
        if types.contains(Types::ARRAY) && types != Types::ANY {
            let items = std::iter::once(&schema)
                .chain(self.alternatives(&schema).into_iter().flatten())
                .find_map(|s| s.get("items"))
                .map_or(Types::ANY, |i| self.types(i));
            return Shape::Array {
                items,
                scalar: types.without(Types::ARRAY),
            };
        }
        if types.contains(Types::OBJECT) && types != Types::ANY {
            let mut properties = BTreeMap::new();
            self.collect_properties(&schema, &mut properties, 0);
            return Shape::Object {
                properties: properties
                    .iter()
                    .map(|(name, property)| (name.clone(), self.types(property)))
                    .collect(),
                additional: self.additional_types(&schema),
            };
        }
        Shape::Scalar(types)
    }

    fn additional_types(&self, schema: &Value) -> Types {
        match schema.get("additionalProperties") {
            Some(additional @ Value::Object(_)) => self.types(additional),
            _ => Types::ANY,
        }
    }

    /// The `properties` of a schema and of its `allOf` branches, unresolved.
    fn collect_properties(&self, schema: &Value, out: &mut BTreeMap<String, Value>, depth: usize) {
        if depth > MAX_REF_HOPS {
            return;
        }
        let schema = self.resolve(schema);
        if let Some(Value::Object(properties)) = schema.get("properties") {
            for (name, property) in properties {
                out.insert(name.clone(), property.clone());
            }
        }
        if let Some(Value::Array(branches)) = schema.get("allOf") {
            for branch in branches {
                self.collect_properties(branch, out, depth + 1);
            }
        }
    }
}
