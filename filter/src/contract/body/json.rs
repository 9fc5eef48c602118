//! JSON bodies: a linear depth pre-scan, then serde_json; request JSON also refuses
//! duplicate keys and counts members and containers against the policy's caps.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::BodyError;

/// serde_json's own nesting limit: it refuses the 128th level with a generic error. Deeper
/// configured limits are capped here so the client is told the limit that actually applies.
const SERDE_MAX_DEPTH: usize = 127;

/// Bounds on a JSON body, from the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JsonLimits {
    /// Nesting of arrays and objects: `1` is depth 0, `[1]` depth 1, `{"a":[1]}` depth 2.
    /// Values above 127 act as 127, serde_json's own limit.
    pub max_depth: usize,
}

/// Parses a JSON response body into a [`Value`].
///
/// A linear, non-recursive pre-scan first refuses nesting deeper than the limit, so a
/// `[[[[…` bomb costs one pass and no stack, and the client learns the limit rather than a
/// generic parse error. Then serde_json parses strictly: invalid UTF-8 (also in escapes,
/// such as lone surrogates), trailing data, a byte order mark and numbers out of `f64`
/// range are refused. Duplicate object keys are kept as serde_json keeps them (the last
/// wins): a response is re-serialised from this value when it is redacted, which drops
/// the duplicates. Request JSON goes through [`parse_request_json`], which refuses them.
pub(crate) fn parse_json(bytes: &[u8], limits: &JsonLimits) -> Result<Value, BodyError> {
    check_depth(bytes, limits.max_depth.min(SERDE_MAX_DEPTH))?;
    serde_json::from_slice(bytes).map_err(|e| invalid_json(&e))
}

/// Parses request JSON (a body, a multipart part, a `content: application/json`
/// parameter) as [`parse_json`] does, and also refuses what would make the value we
/// validate differ from the value the upstream reads, or cost more than the policy allows:
///
/// - an object that repeats a key ([`BodyError::DuplicateKey`]): serde_json keeps the
///   last, many parsers the first, so `{"role":"user","role":"admin"}` would be validated
///   as one and acted on as the other. This is the contract's own check, whatever the
///   anomaly settings say (which report the same objects as `anomaly.json_duplicate_key`).
/// - an object or array with more than `caps.max_members` members
///   ([`BodyError::TooManyMembers`]);
/// - more than `caps.max_containers` objects and arrays in all
///   ([`BodyError::TooManyContainers`]): each is a node of the parsed value (an object a
///   B-tree leaf of about 630 bytes natively), so `{"a":{"a":…` takes some 100 times its
///   size in memory, and the byte limit alone does not bound what a body allocates.
///
/// One pass: each object checks its keys against the map it is building (a `BTreeMap`
/// lookup), so the cost is linear in the body up to a log factor.
pub(crate) fn parse_request_json(
    bytes: &[u8],
    limits: &JsonLimits,
    caps: JsonCaps,
) -> Result<Value, BodyError> {
    parse_counted(bytes, limits, caps, &Cell::new(0))
}

/// The counts request JSON may reach, from the policy's `limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JsonCaps {
    /// Members of one object, items of one array.
    pub max_members: usize,
    /// Objects and arrays of one request body (all its JSON parts) or parameter.
    pub max_containers: usize,
}

/// [`parse_request_json`], counting containers into `containers`, which a multipart
/// body's JSON parts share.
pub(super) fn parse_counted(
    bytes: &[u8],
    limits: &JsonLimits,
    caps: JsonCaps,
    containers: &Cell<usize>,
) -> Result<Value, BodyError> {
    check_depth(bytes, limits.max_depth.min(SERDE_MAX_DEPTH))?;
    let refused = Cell::new(None);
    let mut reader = serde_json::Deserializer::from_slice(bytes);
    let seed = Strict {
        caps,
        containers,
        refused: &refused,
    };
    let value = seed
        .deserialize(&mut reader)
        .and_then(|value| reader.end().map(|()| value));
    value.map_err(|e| match refused.take() {
        Some(Refusal::DuplicateKey) => BodyError::DuplicateKey {
            line: e.line(),
            column: e.column(),
        },
        Some(Refusal::TooManyMembers) => BodyError::TooManyMembers {
            limit: caps.max_members,
        },
        Some(Refusal::TooManyContainers) => BodyError::TooManyContainers {
            limit: caps.max_containers,
        },
        None => invalid_json(&e),
    })
}

fn invalid_json(e: &serde_json::Error) -> BodyError {
    BodyError::InvalidJson {
        line: e.line(),
        column: e.column(),
    }
}

/// Why [`Strict`] stopped, which the serde error it returns cannot carry.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    DuplicateKey,
    TooManyMembers,
    TooManyContainers,
}

/// A [`Value`] builder that refuses duplicate keys and oversized containers.
#[derive(Clone, Copy)]
struct Strict<'r> {
    caps: JsonCaps,
    /// Objects and arrays so far.
    containers: &'r Cell<usize>,
    refused: &'r Cell<Option<Refusal>>,
}

impl Strict<'_> {
    fn refuse<E: de::Error>(self, why: Refusal) -> E {
        self.refused.set(Some(why));
        E::custom("refused")
    }

    /// Counts one more object or array, before anything of it is allocated.
    fn open<E: de::Error>(self) -> Result<(), E> {
        let count = self.containers.get() + 1;
        if count > self.caps.max_containers {
            return Err(self.refuse(Refusal::TooManyContainers));
        }
        self.containers.set(count);
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.open()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            if items.len() == self.caps.max_members {
                return Err(self.refuse(Refusal::TooManyMembers));
            }
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.open()?;
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.len() == self.caps.max_members {
                return Err(self.refuse(Refusal::TooManyMembers));
            }
            if object.contains_key(&key) {
                return Err(self.refuse(Refusal::DuplicateKey));
            }
            let value = map.next_value_seed(self)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Counts bracket nesting outside strings. Exact for valid JSON; for invalid input the
/// count may be off, but serde_json refuses that input anyway.
fn check_depth(bytes: &[u8], limit: usize) -> Result<(), BodyError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Err(BodyError::TooDeep { limit });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::super::fixtures::{CAPS, LIMITS, MAX_PARTS};
    use super::super::{parse_multipart, FormSpec};
    use super::*;
    use crate::contract::shape::Types;
    use crate::verdict::RuleId;

    fn json_at(depth: usize, body: &str) -> Result<Value, BodyError> {
        parse_json(body.as_bytes(), &JsonLimits { max_depth: depth })
    }

    fn nested(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn depth_is_counted_exactly() {
        let too_deep = |limit| Err(BodyError::TooDeep { limit });
        let cases: &[(usize, &str, bool)] = &[
            (0, "1", true),
            (0, "\"[[{\"", true),
            (0, "[]", false),
            (1, "[1, 2, []]", false),
            (2, "[1, 2, []]", true),
            (2, "{\"a\": [1], \"b\": {}}", true),
            (1, "{\"a\": [1], \"b\": {}}", false),
            (1, "[\"[[[\", \"{{\"]", true),
            (1, "[\"\\\"[[\"]", true),
            (1, "[\"\\\\\", [1]]", false),
            (1, "[\"\\\\\\\"[\"]", true),
        ];
        for (limit, body, passes) in cases {
            let result = json_at(*limit, body);
            if *passes {
                assert!(result.is_ok(), "{body:?} at {limit}: {result:?}");
            } else {
                assert_eq!(result, too_deep(*limit), "{body:?} at {limit}");
            }
        }
        assert!(json_at(64, &nested(64)).is_ok());
        assert_eq!(json_at(64, &nested(65)), too_deep(64));
    }

    #[test]
    fn limits_above_serde_jsons_are_capped_and_reported_as_depth() {
        assert!(json_at(1000, &nested(127)).is_ok());
        assert_eq!(
            json_at(1000, &nested(128)),
            Err(BodyError::TooDeep { limit: 127 })
        );
        assert_eq!(
            json_at(1000, &nested(100_000)),
            Err(BodyError::TooDeep { limit: 127 })
        );
    }

    #[test]
    fn parses_valid_json() {
        assert_eq!(
            json_at(
                8,
                "{\"a\": [1, 2.5, \"x\", null, true], \"b\": {\"c\": \"\\u00e9\"}}"
            ),
            Ok(json!({"a": [1, 2.5, "x", null, true], "b": {"c": "\u{e9}"}}))
        );
        assert_eq!(json_at(8, " \r\n\t\"s\" \n"), Ok(json!("s")));
        // Duplicates are the anomaly checks' business; serde_json keeps the last.
        assert_eq!(json_at(8, "{\"a\":1,\"a\":2}"), Ok(json!({"a": 2})));
    }

    #[test]
    fn invalid_json_reports_a_position() {
        let cases: &[(&[u8], usize, usize)] = &[
            (b"", 1, 0),
            (b"{\"a\":1,}", 1, 8),
            (b"{\"a\":1}\n  x", 2, 3),
            (b"{}{}", 1, 3),
            (b"[1]\n]", 2, 1),
            (b"\"\xff\"", 1, 2),
            (b"\"\\ud800\"", 1, 8),
            (b"\xef\xbb\xbf{}", 1, 1),
            (b"1e999", 1, 5),
            (b"[01]", 1, 3),
            (b"{'a':1}", 1, 2),
            (b"[1,\n2,\n", 3, 0),
        ];
        for (body, line, column) in cases {
            assert_eq!(
                parse_json(body, &JsonLimits { max_depth: 8 }),
                Err(BodyError::InvalidJson {
                    line: *line,
                    column: *column
                }),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    fn strict(body: &str) -> Result<Value, BodyError> {
        parse_request_json(body.as_bytes(), &LIMITS, CAPS)
    }

    #[test]
    fn request_json_refuses_duplicate_keys_at_any_depth() {
        assert_eq!(
            strict(r#"{"role": "user", "role": "admin"}"#),
            Err(BodyError::DuplicateKey {
                line: 1,
                column: 23
            })
        );
        assert!(matches!(
            strict(r#"[{"a": {"b": 1, "b": 1}}]"#),
            Err(BodyError::DuplicateKey { .. })
        ));
        // The same key in different objects, and keys that differ in case, are not repeats.
        assert_eq!(
            strict(r#"{"a": {"x": 1}, "b": {"x": 1}, "A": 2}"#),
            Ok(json!({"a": {"x": 1}, "b": {"x": 1}, "A": 2}))
        );
        assert_eq!(
            BodyError::DuplicateKey { line: 1, column: 1 }.rule(),
            RuleId::BodyDuplicateKey
        );
        // Responses keep serde_json's reading (redaction re-serialises them).
        assert_eq!(
            parse_json(br#"{"a": 1, "a": 2}"#, &LIMITS),
            Ok(json!({"a": 2}))
        );
    }

    #[test]
    fn request_json_reads_what_serde_json_reads() {
        for text in [
            r#"{"a": [-2, 3.5, "x\"]"], "b": {"c": null, "d": true}}"#,
            r#""\u00e9""#,
            "18446744073709551615",
            "-9223372036854775808",
            "1e300",
            "[]",
        ] {
            let expected: Value = serde_json::from_str(text).unwrap();
            assert_eq!(strict(text), Ok(expected), "{text}");
        }
        for bad in ["{\"a\": 1,}", "[1] x", "\u{feff}[]", "1e999", r#""\ud800""#] {
            assert!(
                matches!(strict(bad), Err(BodyError::InvalidJson { .. })),
                "{bad}"
            );
        }
        assert_eq!(strict("[[[[[1]]]]]"), Err(BodyError::TooDeep { limit: 4 }));
    }

    /// Regression: a 1 MB body of nested one-key objects parsed into ~95 MB of B-tree
    /// leaves (and 23x the time of a body a tenth its size, the allocator thrashing).
    #[test]
    fn request_json_counts_containers_over_the_whole_body() {
        assert!(strict(r#"[{"a": [1]}, {"a": [1]}, {"a": [1]}]"#).is_ok());
        for many in [
            r#"[{"a": []}, {"a": []}, {"a": []}, {"a": []}]"#,
            r#"[[[[1]]], [[[1]]], [[[1]]]]"#,
        ] {
            assert_eq!(
                strict(many),
                Err(BodyError::TooManyContainers { limit: 8 }),
                "{many}"
            );
        }
        // A multipart body's JSON parts share the count.
        let part = |name: &str| {
            format!(
                "--b\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\
                 Content-Type: application/json\r\n\r\n[[[1]], [[1]]]\r\n"
            )
        };
        let spec = FormSpec {
            fields: BTreeMap::new(),
            additional: Types::ANY,
        };
        let one = format!("{}--b--\r\n", part("x"));
        assert!(parse_multipart(one.as_bytes(), "b", &spec, &LIMITS, MAX_PARTS, CAPS).is_ok());
        let body = format!("{}{}--b--\r\n", part("x"), part("y"));
        assert_eq!(
            parse_multipart(body.as_bytes(), "b", &spec, &LIMITS, MAX_PARTS, CAPS),
            Err(BodyError::TooManyContainers { limit: 8 })
        );
        assert_eq!(
            BodyError::TooManyContainers { limit: 8 }.rule(),
            RuleId::LimitJsonContainers
        );
    }

    #[test]
    fn request_json_counts_members_per_container() {
        assert!(strict(r#"{"a": [1, 2, 3], "b": 1, "c": [[1, 2, 3]]}"#).is_ok());
        for wide in [
            r#"[1, 2, 3, 4]"#,
            r#"{"a": 1, "b": 2, "c": 3, "d": 4}"#,
            r#"{"a": [[1, 2, 3, 4]]}"#,
        ] {
            assert_eq!(
                strict(wide),
                Err(BodyError::TooManyMembers { limit: 3 }),
                "{wide}"
            );
        }
    }
}
