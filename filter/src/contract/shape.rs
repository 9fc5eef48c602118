//! The JSON types a schema admits, known before validation: what turns the strings of a
//! path, query, header, cookie or form into the typed JSON the schema is checked against.
//!
//! `?limit=10` is the string `"10"` on the wire; against `{type: integer}` it must be the
//! number 10, and against `{type: string}` the string "10". OpenAPI leaves this
//! conversion to the tool; we convert to the first type the text can be, in the order
//! integer, number, boolean, null, string, and let the schema judge the result.

use std::collections::BTreeMap;

use serde_json::{Number, Value};

/// A set of JSON types, as in a schema's `type` (a string, or a list in 3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Types(u8);

impl Types {
    pub const NULL: Types = Types(1);
    pub const BOOLEAN: Types = Types(1 << 1);
    pub const INTEGER: Types = Types(1 << 2);
    pub const NUMBER: Types = Types(1 << 3);
    pub const STRING: Types = Types(1 << 4);
    pub const ARRAY: Types = Types(1 << 5);
    pub const OBJECT: Types = Types(1 << 6);
    /// No `type` keyword: anything goes, and text stays text.
    pub const ANY: Types = Types(0x7F);

    pub const fn union(self, other: Types) -> Types {
        Types(self.0 | other.0)
    }

    pub const fn without(self, other: Types) -> Types {
        Types(self.0 & !other.0)
    }

    pub const fn contains(self, other: Types) -> bool {
        self.0 & other.0 == other.0
    }

    /// The types a `type` value names; `None` when it names none we know.
    pub fn from_keyword(value: &Value) -> Option<Types> {
        let one = |name: &str| match name {
            "null" => Some(Types::NULL),
            "boolean" => Some(Types::BOOLEAN),
            "integer" => Some(Types::INTEGER),
            "number" => Some(Types::NUMBER),
            "string" => Some(Types::STRING),
            "array" => Some(Types::ARRAY),
            "object" => Some(Types::OBJECT),
            _ => None,
        };
        match value {
            Value::String(name) => one(name),
            Value::Array(names) => names
                .iter()
                .filter_map(Value::as_str)
                .map(one)
                .try_fold(Types::default(), |acc, t| t.map(|t| acc.union(t))),
            _ => None,
        }
    }
}

/// How a value made of strings is laid out, as far as conversion needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// A single value (also what a schema without `type` is taken to be).
    Scalar(Types),
    /// A list; each item converted to `items`. `scalar` holds the other types the schema
    /// admits (`oneOf: [string, array]`): a lone value may also be read as one of them.
    Array { items: Types, scalar: Types },
    /// A map; each declared property converted to its types, the others to `additional`.
    Object {
        properties: BTreeMap<String, Types>,
        additional: Types,
    },
}

impl Shape {
    /// The types a property of an object shape converts to.
    pub fn property(&self, name: &str) -> Types {
        match self {
            Shape::Object {
                properties,
                additional,
            } => properties.get(name).copied().unwrap_or(*additional),
            Shape::Scalar(_) | Shape::Array { .. } => Types::ANY,
        }
    }
}

/// Converts one string to the first of `types` it can be read as. Text that fits none
/// stays a string, so the schema reports the type mismatch.
pub(crate) fn coerce(raw: &str, types: Types) -> Value {
    if types == Types::ANY {
        return Value::String(raw.to_owned());
    }
    if types.contains(Types::INTEGER) || types.contains(Types::NUMBER) {
        if let Some(n) = parse_integer(raw) {
            return Value::Number(n);
        }
    }
    if types.contains(Types::NUMBER) {
        if let Some(n) = parse_number(raw) {
            return Value::Number(n);
        }
    }
    if types.contains(Types::BOOLEAN) {
        match raw {
            "true" => return Value::Bool(true),
            "false" => return Value::Bool(false),
            _ => {}
        }
    }
    if types.contains(Types::NULL) && !types.contains(Types::STRING) && raw.is_empty() {
        return Value::Null;
    }
    Value::String(raw.to_owned())
}

/// JSON integer syntax only: no `+`, no leading zeros, no spaces (Rust's parser would
/// accept `+1`). JSON Schema integers are unbounded, so one beyond 64 bits is an integer
/// too ([`wide_integer`]), not text that breaks `type: integer`.
fn parse_integer(raw: &str) -> Option<Number> {
    let digits = raw.strip_prefix('-').unwrap_or(raw);
    let plain = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    if !plain {
        return None;
    }
    raw.parse::<i64>()
        .map(Number::from)
        .or_else(|_| raw.parse::<u64>().map(Number::from))
        .ok()
        .or_else(|| wide_integer(raw.starts_with('-'), digits))
}

/// An integer beyond the 64-bit range (`digits` without sign or leading zeros) as the
/// nearest `f64` *away from zero*, or `None` beyond `f64`'s range (as in JSON bodies).
///
/// The validator compares numbers exactly across `u64`, `i64` and `f64` (the `num-cmp`
/// crate), so against every bound a schema can write as a 64-bit integer — `format:
/// int64`'s, any `minimum`/`maximum` up to 2^64 — the result is on the same side as the
/// exact value: a value past the 64-bit range stays past it, where round-to-nearest could
/// land exactly on `-2^63` and pass `minimum: -9223372036854775808`. Schema bounds past 64
/// bits are themselves `f64` once the document is parsed; against those the comparison
/// is as exact as `f64` allows, errs toward refusing `maximum`s, and is what a JSON body
/// with the same number gets. This keeps one `Number` type for every value, where
/// serde_json's `arbitrary_precision` would change them all.
fn wide_integer(negative: bool, digits: &str) -> Option<Number> {
    let nearest: f64 = digits.parse().ok().filter(|n: &f64| n.is_finite())?;
    // `{:.0}` prints an integral f64 exactly; compare magnitudes as decimal text.
    let shown = format!("{nearest:.0}");
    let below = (shown.len(), shown.as_str()) < (digits.len(), digits);
    let magnitude = if below {
        f64::from_bits(nearest.to_bits() + 1)
    } else {
        nearest
    };
    let value = if negative { -magnitude } else { magnitude };
    Number::from_f64(value).filter(|_| magnitude.is_finite())
}

/// JSON number syntax, finite.
fn parse_number(raw: &str) -> Option<Number> {
    let json_like = raw
        .bytes()
        .all(|b| b.is_ascii_digit() || b"-.eE+".contains(&b))
        && raw
            .bytes()
            .next()
            .is_some_and(|b| b == b'-' || b.is_ascii_digit());
    if !json_like {
        return None;
    }
    serde_json::from_str::<Number>(raw).ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn converts_to_the_first_type_that_fits() {
        let int_or_string = Types::INTEGER.union(Types::STRING);
        assert_eq!(coerce("10", Types::INTEGER), json!(10));
        assert_eq!(coerce("-7", Types::INTEGER), json!(-7));
        assert_eq!(coerce("1.5", Types::NUMBER), json!(1.5));
        assert_eq!(coerce("1e3", Types::NUMBER), json!(1000.0));
        assert_eq!(coerce("10", Types::NUMBER), json!(10));
        assert_eq!(coerce("true", Types::BOOLEAN), json!(true));
        assert_eq!(coerce("10", int_or_string), json!(10));
        assert_eq!(coerce("ten", int_or_string), json!("ten"));
        assert_eq!(coerce("", Types::NULL.union(Types::INTEGER)), json!(null));
        assert_eq!(coerce("", Types::NULL.union(Types::STRING)), json!(""));
    }

    #[test]
    fn text_that_fits_no_type_stays_text_for_the_schema_to_refuse() {
        for raw in ["+1", "01", " 1", "1 ", "0x10", "1.5", "NaN", "inf", "", "-"] {
            assert_eq!(coerce(raw, Types::INTEGER), json!(raw), "{raw:?}");
        }
        for raw in ["True", "1", "yes", ""] {
            assert_eq!(coerce(raw, Types::BOOLEAN), json!(raw), "{raw:?}");
        }
        assert_eq!(coerce("1e999", Types::NUMBER), json!("1e999"));
    }

    #[test]
    fn integers_beyond_64_bits_are_integers_rounded_away_from_zero() {
        let wide = |raw: &str| match coerce(raw, Types::INTEGER) {
            Value::Number(n) => n.as_f64(),
            _ => None,
        };
        // The value of the X-Request-Budget report: an integer, no longer text.
        assert_eq!(
            wide("527212089351644756574208"),
            Some(527212089351644756574208.0)
        );
        // 2^64 is exact; 2^64 + 1 rounds up to the next f64, never down to 2^64.
        assert_eq!(wide("18446744073709551616"), Some(18446744073709551616.0));
        let above = wide("18446744073709551617").unwrap();
        assert!(above > 18446744073709551616.0);
        // -2^63 - 1 would round to -2^63 = i64::MIN; away from zero it stays below.
        let below = wide("-9223372036854775809").unwrap();
        assert!(below < -9223372036854775808.0);
        assert_eq!(
            coerce("-9223372036854775808", Types::INTEGER),
            json!(i64::MIN)
        );
        assert_eq!(
            coerce("18446744073709551615", Types::INTEGER),
            json!(u64::MAX)
        );
        // Beyond f64, and not integer syntax: text, for the schema to refuse.
        let huge = "9".repeat(400);
        assert_eq!(coerce(&huge, Types::INTEGER), json!(huge));
        assert_eq!(
            coerce("0527212089351644756574208", Types::INTEGER),
            json!("0527212089351644756574208")
        );
    }

    #[test]
    fn strings_and_untyped_values_stay_text() {
        assert_eq!(coerce("10", Types::STRING), json!("10"));
        assert_eq!(coerce("true", Types::ANY), json!("true"));
        assert_eq!(
            coerce("true", Types::BOOLEAN.union(Types::STRING)),
            json!(true)
        );
    }

    #[test]
    fn reads_the_type_keyword() {
        assert_eq!(Types::from_keyword(&json!("integer")), Some(Types::INTEGER));
        assert_eq!(
            Types::from_keyword(&json!(["string", "null"])),
            Some(Types::STRING.union(Types::NULL))
        );
        assert_eq!(Types::from_keyword(&json!("date")), None);
    }
}
