//! `application/x-www-form-urlencoded` bodies, and the object every form body becomes:
//! fields converted by the types their schema admits, repetitions refused unless a list.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::BodyError;
use crate::contract::percent::form_decode;
use crate::contract::shape::{coerce, Types};

/// How a form field's strings become JSON, built by the policy from the body schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldShape {
    /// One value, converted to these types; given twice it is refused.
    Scalar(Types),
    /// `type: array`: each occurrence is one item, converted to the item types.
    Array(Types),
}

/// The fields of a form body (`application/x-www-form-urlencoded` or
/// `multipart/form-data`), from the object schema of the declared content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormSpec {
    /// The schema's `properties`.
    pub fields: BTreeMap<String, FieldShape>,
    /// The types of any other field (`additionalProperties`); such fields are scalars.
    pub additional: Types,
}

/// The object a form becomes, enforcing the repetition rules as fields arrive.
pub(super) struct Fields<'s> {
    spec: &'s FormSpec,
    scalars: Map<String, Value>,
    /// Array fields collect their items here and join the object at the end.
    lists: BTreeMap<String, Vec<Value>>,
}

impl<'s> Fields<'s> {
    pub(super) fn new(spec: &'s FormSpec) -> Self {
        Fields {
            spec,
            scalars: Map::new(),
            lists: BTreeMap::new(),
        }
    }

    /// A text value, converted to the field's (or item's) types.
    pub(super) fn add_text(&mut self, name: String, raw: &str) -> Result<(), BodyError> {
        let types = match self.spec.fields.get(&name) {
            Some(FieldShape::Scalar(types) | FieldShape::Array(types)) => *types,
            None => self.spec.additional,
        };
        self.add(name, coerce(raw, types))
    }

    /// A value that needs no conversion (a JSON part, a file placeholder).
    pub(super) fn add(&mut self, name: String, value: Value) -> Result<(), BodyError> {
        match self.spec.fields.get_key_value(&name) {
            Some((_, FieldShape::Array(_))) => {
                self.lists.entry(name).or_default().push(value);
            }
            Some((declared, FieldShape::Scalar(_))) => {
                if self.scalars.contains_key(&name) {
                    return Err(BodyError::RepeatedField {
                        name: Some(declared.clone()),
                    });
                }
                self.scalars.insert(name, value);
            }
            None => {
                if self.scalars.contains_key(&name) {
                    return Err(BodyError::RepeatedField { name: None });
                }
                self.scalars.insert(name, value);
            }
        }
        Ok(())
    }

    pub(super) fn finish(self) -> Value {
        let mut object = self.scalars;
        for (name, items) in self.lists {
            object.insert(name, Value::Array(items));
        }
        Value::Object(object)
    }
}

/// Parses an `application/x-www-form-urlencoded` body into a JSON object.
///
/// Fields are split on `&` as the WHATWG URL standard does: empty pieces are skipped, and a
/// piece without `=` is a field with an empty value. Names and values decode `+` to a space
/// and each `%XX` once; a bad escape or a result that is not UTF-8 is refused. A field
/// declared as an array collects every occurrence in order (once is a one-item array); any
/// other field given twice is refused, since upstreams disagree on whether the first or
/// the last counts.
///
/// More than `max_fields` fields are refused ([`BodyError::TooManyFields`]) when the first
/// one too many is reached.
pub(crate) fn parse_form(
    bytes: &[u8],
    spec: &FormSpec,
    max_fields: usize,
) -> Result<Value, BodyError> {
    let mut fields = Fields::new(spec);
    let pieces = bytes
        .split(|&b| b == b'&')
        .filter(|piece| !piece.is_empty());
    for (index, piece) in pieces.enumerate() {
        if index == max_fields {
            return Err(BodyError::TooManyFields { limit: max_fields });
        }
        let mut halves = piece.splitn(2, |&b| b == b'=');
        let decode = |raw: Option<&[u8]>| {
            form_decode(raw.unwrap_or_default()).ok_or(BodyError::InvalidEncoding)
        };
        let name = decode(halves.next())?;
        let value = decode(halves.next())?;
        fields.add_text(name, &value)?;
    }
    Ok(fields.finish())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::fixtures::spec;
    use super::*;
    use crate::verdict::RuleId;

    fn form(body: &str) -> Result<Value, BodyError> {
        parse_form(body.as_bytes(), &spec(), 8)
    }

    #[test]
    fn converts_form_fields_by_their_types() {
        let cases = [
            ("", json!({})),
            ("age=42&name=42", json!({"age": 42, "name": "42"})),
            ("age=forty", json!({"age": "forty"})),
            ("name=a+b%20c%2Bd", json!({"name": "a b c+d"})),
            ("na%6De=x", json!({"name": "x"})),
            ("name=caf%C3%A9", json!({"name": "caf\u{e9}"})),
            ("name=%252F", json!({"name": "%2F"})),
            ("name=a=b", json!({"name": "a=b"})),
            ("name", json!({"name": ""})),
            ("name=", json!({"name": ""})),
            ("&&name=x&", json!({"name": "x"})),
            ("other=7", json!({"other": "7"})),
            ("tags=a", json!({"tags": ["a"]})),
            ("tags=a&tags=b&tags=a", json!({"tags": ["a", "b", "a"]})),
            ("ids=1&age=2&ids=x", json!({"ids": [1, "x"], "age": 2})),
            ("a;b=1", json!({"a;b": "1"})),
        ];
        for (body, expected) in cases {
            assert_eq!(form(body), Ok(expected), "{body:?}");
        }
    }

    #[test]
    fn refuses_bad_forms() {
        let repeated = |name: Option<&str>| BodyError::RepeatedField {
            name: name.map(str::to_owned),
        };
        let cases = [
            ("age=1&age=2", repeated(Some("age"))),
            ("name=a&na%6De=b", repeated(Some("name"))),
            ("secret=a&secret=b", repeated(None)),
            ("name=%", BodyError::InvalidEncoding),
            ("name=%4", BodyError::InvalidEncoding),
            ("name=%zz", BodyError::InvalidEncoding),
            ("na%g0me=x", BodyError::InvalidEncoding),
            ("name=%ff", BodyError::InvalidEncoding),
            ("name=%C3", BodyError::InvalidEncoding),
        ];
        for (body, expected) in cases {
            assert_eq!(form(body), Err(expected), "{body:?}");
        }
        assert_eq!(
            parse_form(b"name=\xff", &spec(), 8),
            Err(BodyError::InvalidEncoding)
        );
    }

    #[test]
    fn reasons_never_echo_undeclared_names() {
        let reason = form("x%3Cscript%3E=1&x%3Cscript%3E=2").map_err(|e| e.reason());
        assert_eq!(
            reason,
            Err("A field is given more than once but is not a list".to_owned())
        );
        assert_eq!(
            form("age=1&age=2").map_err(|e| e.reason()),
            Err("The field 'age' is given more than once but is not a list".to_owned())
        );
    }

    #[test]
    fn counts_form_fields() {
        let fields = |n: usize| vec!["a=1"; n].join("&");
        assert!(parse_form(fields(8).as_bytes(), &spec(), 8)
            .is_err_and(|e| matches!(e, BodyError::RepeatedField { .. })));
        let distinct = |n: usize| {
            (0..n)
                .map(|i| format!("f{i}=1"))
                .collect::<Vec<_>>()
                .join("&&")
        };
        assert!(parse_form(distinct(8).as_bytes(), &spec(), 8).is_ok());
        let refused = parse_form(distinct(9).as_bytes(), &spec(), 8);
        assert_eq!(refused, Err(BodyError::TooManyFields { limit: 8 }));
        assert_eq!(
            BodyError::TooManyFields { limit: 8 }.rule(),
            RuleId::LimitFormFields
        );
    }
}
