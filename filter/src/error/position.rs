//! Where a JSON pointer is in the text a user wrote: the line and column an error names.
//!
//! Errors are found on JSON (a YAML policy is converted to JSON text first, and the
//! bundle that is compiled is one line of JSON), so the parser's own position is of that
//! JSON, not of the file. This walks the user's text with serde_yaml (YAML is a superset
//! of JSON, so it reads both) down to the pointer and takes the position serde_yaml gives
//! an error raised there. Only run when there is an error to report.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The marker error raised at the node sought; any other error means it was not found.
const FOUND: &str = "apiguard: the node the pointer names";

/// Line and column (1-based) of the node `pointer` (RFC 6901) names in the JSON or YAML
/// `text`: of its key in a mapping, of the item in a sequence. `None` for the root, for a
/// pointer that is not in the text, or for text that does not parse.
pub(super) fn of_pointer(text: &str, pointer: &str) -> Option<(usize, usize)> {
    let tokens: Vec<String> = pointer
        .strip_prefix('/')?
        .split('/')
        .map(|token| token.replace("~1", "/").replace("~0", "~"))
        .collect();
    let error = Seek(&tokens)
        .deserialize(serde_yaml::Deserializer::from_str(text))
        .err()?;
    if !error.to_string().contains(FOUND) {
        return None;
    }
    error.location().map(|l| (l.line(), l.column()))
}

/// Walks to the node the remaining tokens name.
struct Seek<'p>(&'p [String]);

impl<'de> DeserializeSeed<'de> for Seek<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seek<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((token, rest)) = self.0.split_first() else {
            return Ok(());
        };
        // The key's seed raises FOUND itself when the pointer ends at this entry, so the
        // position is the key's.
        while let Some(here) = map.next_key_seed(Key {
            token,
            last: rest.is_empty(),
        })? {
            if here {
                map.next_value_seed(Seek(rest))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((token, rest)) = self.0.split_first() else {
            return Ok(());
        };
        let Ok(index) = token.parse::<usize>() else {
            return Ok(());
        };
        let mut at = 0;
        loop {
            let more = if at == index {
                seq.next_element_seed(Item(rest))?
            } else {
                seq.next_element::<IgnoredAny>()?.map(|_| ())
            };
            if more.is_none() {
                return Ok(());
            }
            at += 1;
        }
    }

    // A scalar where the pointer goes on: the pointer is not in the text.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// A sequence item: FOUND when the pointer ends at it, else walk into it.
struct Item<'p>(&'p [String]);

impl<'de> DeserializeSeed<'de> for Item<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        if self.0.is_empty() {
            return deserializer.deserialize_any(Found);
        }
        Seek(self.0).deserialize(deserializer)
    }
}

/// Raises FOUND from inside the node's own deserialisation, where serde_yaml attaches its
/// position to the error.
struct Found;

impl<'de> Visitor<'de> for Found {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(FOUND))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(FOUND))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
}

/// A mapping key: whether it is the token sought (keys that are numbers or booleans in
/// YAML are strings in the JSON the pointer was made on). When the pointer ends at this
/// entry, FOUND is raised from the key itself.
struct Key<'t> {
    token: &'t str,
    last: bool,
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Key<'_> {
    fn matches<E: de::Error>(&self, key: &str) -> Result<bool, E> {
        match (key == self.token, self.last) {
            (true, true) => Err(E::custom(FOUND)),
            (here, _) => Ok(here),
        }
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        self.matches(key)
    }
    fn visit_bool<E: de::Error>(self, key: bool) -> Result<bool, E> {
        self.matches(&key.to_string())
    }
    fn visit_i64<E: de::Error>(self, key: i64) -> Result<bool, E> {
        self.matches(&key.to_string())
    }
    fn visit_u64<E: de::Error>(self, key: u64) -> Result<bool, E> {
        self.matches(&key.to_string())
    }
    fn visit_f64<E: de::Error>(self, key: f64) -> Result<bool, E> {
        self.matches(&key.to_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        self.matches("null")
    }
    // A key that is itself a mapping or a sequence is never the one a pointer names.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::of_pointer;

    const POLICY: &str = "\
# a comment
name: petstore
mode: enforce
openapi:
  file: petstore.openapi.yaml
operations:
  deletePet: {mode: off}
  \"POST /pets\": {strict: true}
mood: monitor
responses:
  200: {x: 1}
list:
  - a
  - {b: 2}
";

    #[test]
    fn keys_are_found_on_their_own_line_and_column() {
        assert_eq!(of_pointer(POLICY, "/mood"), Some((9, 1)));
        assert_eq!(of_pointer(POLICY, "/openapi/file"), Some((5, 3)));
        assert_eq!(
            of_pointer(POLICY, "/operations/deletePet/mode"),
            Some((7, 15))
        );
        assert_eq!(of_pointer(POLICY, "/operations/POST ~1pets"), Some((8, 3)));
        assert_eq!(of_pointer(POLICY, "/responses/200/x"), Some((11, 9)));
        assert_eq!(of_pointer(POLICY, "/list/1/b"), Some((14, 6)));
        assert_eq!(of_pointer(POLICY, "/list/0"), Some((13, 5)));
    }

    #[test]
    fn json_text_is_read_too() {
        let json = "{\n  \"name\": \"a\",\n  \"mood\": \"x\"\n}\n";
        assert_eq!(of_pointer(json, "/mood"), Some((3, 3)));
    }

    #[test]
    fn what_is_not_there_has_no_position() {
        for pointer in ["", "/nope", "/name/deeper", "/list/7", "/list/x"] {
            assert_eq!(of_pointer(POLICY, pointer), None, "{pointer}");
        }
        assert_eq!(of_pointer("a: [unclosed\nname: x\n", "/name"), None);
    }
}
