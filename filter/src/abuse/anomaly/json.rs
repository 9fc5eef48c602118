//! A streaming pass over a JSON body for what a parsed `serde_json::Value` hides:
//! duplicate keys (serde_json keeps the last, while another parser upstream may keep the
//! first), and containers, strings and numbers sized to exhaust a parser. String values
//! and keys also go through the injection heuristics here, with their JSON pointer, so
//! that fields the policy marks as free text can be spared.
//!
//! Depth is the contract's (`limits.max_json_depth`, `body.malformed`), and invalid JSON
//! is `body.malformed` too: this pass stops quietly at the first syntax error.

use std::collections::HashSet;
use std::fmt::{self, Write as _};

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::injection::Detector;
use super::{Findings, Limits};
use crate::verdict::RuleId;

/// Scans `bytes` into `findings` (at the `body` location, named by JSON pointer);
/// `free_text` holds the policy's free-text pointers (`/items/*/note`) split into
/// tokens: string values they match skip the heuristics.
pub(crate) fn scan(
    bytes: &[u8],
    limits: &Limits,
    detector: &Detector,
    free_text: &[Vec<String>],
    findings: &mut Findings,
) {
    let mut scan = Scan {
        limits,
        detector,
        free_text,
        alive: vec![(0..free_text.len()).collect()],
        findings,
        pointer: String::new(),
    };
    if let Some(at) = long_number(bytes, limits.max_number_chars) {
        scan.report(RuleId::AnomalyJsonNumberSize, &format!("@{at}"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    // A syntax error is the contract's finding (body.malformed).
    let _ = Node { scan: &mut scan }.deserialize(&mut de);
}

struct Scan<'a, 'f> {
    limits: &'a Limits,
    detector: &'a Detector,
    free_text: &'a [Vec<String>],
    /// Per depth of the current pointer, the free-text patterns whose first tokens match
    /// it: kept as the pointer grows, so whether a string is free text costs nothing per
    /// string (matching each pointer whole would cost its length per string, which deep
    /// long keys over many strings make quadratic).
    alive: Vec<Vec<usize>>,
    findings: &'f mut Findings,
    pointer: String,
}

impl Scan<'_, '_> {
    fn report(&mut self, rule: RuleId, pointer: &str) {
        self.findings.push(rule, "body", Some(pointer));
    }

    /// Whether the current pointer is free text: a pattern matched every token so far,
    /// and has no more.
    fn is_free_text(&self) -> bool {
        let depth = self.alive.len().saturating_sub(1);
        self.alive.last().is_some_and(|alive| {
            alive
                .iter()
                .any(|&i| self.free_text.get(i).is_some_and(|p| p.len() == depth))
        })
    }

    /// Runs `f` with the token the pointer has grown by since `len` as the next level.
    fn descend<T>(&mut self, len: usize, f: impl FnOnce(&mut Self) -> T) -> T {
        let depth = self.alive.len().saturating_sub(1);
        let token = self.pointer.get(len + 1..).unwrap_or_default();
        let next: Vec<usize> = self
            .alive
            .last()
            .into_iter()
            .flatten()
            .copied()
            .filter(|&i| {
                (self.free_text.get(i).and_then(|p| p.get(depth)))
                    .is_some_and(|p| p == "*" || p == token)
            })
            .collect();
        self.alive.push(next);
        let out = f(self);
        self.alive.pop();
        self.pointer.truncate(len);
        out
    }

    /// Reports `rule` at the current pointer.
    fn report_here(&mut self, rule: RuleId) {
        let pointer = std::mem::take(&mut self.pointer);
        self.report(rule, &pointer);
        self.pointer = pointer;
    }

    fn string(&mut self, value: &str) {
        if value.len() > self.limits.max_string_bytes {
            self.report_here(RuleId::AnomalyJsonStringLength);
        }
        if !self.is_free_text() {
            for rule in self.detector.scan(value) {
                self.report_here(rule);
            }
        }
    }

    /// Runs `f` with `token` appended to the pointer (escaped as RFC 6901 says, which
    /// few keys need).
    fn at<T>(&mut self, token: &str, f: impl FnOnce(&mut Self) -> T) -> T {
        let len = self.pointer.len();
        self.pointer.push('/');
        if token.contains(['~', '/']) {
            self.pointer
                .push_str(&token.replace('~', "~0").replace('/', "~1"));
        } else {
            self.pointer.push_str(token);
        }
        self.descend(len, f)
    }

    /// Runs `f` with array index `index` appended to the pointer.
    fn at_index<T>(&mut self, index: usize, f: impl FnOnce(&mut Self) -> T) -> T {
        let len = self.pointer.len();
        let _ = write!(self.pointer, "/{index}");
        self.descend(len, f)
    }
}

struct Node<'s, 'a, 'f> {
    scan: &'s mut Scan<'a, 'f>,
}

impl<'de> DeserializeSeed<'de> for Node<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, value: &str) -> Result<(), E> {
        self.scan.string(value);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0usize;
        loop {
            let more = (self.scan).at_index(index, |scan| seq.next_element_seed(Node { scan }))?;
            if more.is_none() {
                break;
            }
            index += 1;
            if index == self.scan.limits.max_width.saturating_add(1) {
                self.scan.report_here(RuleId::AnomalyJsonWidth);
            }
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut keys = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            // Findings about the key itself are reported at the key's own pointer.
            // Built only for a finding that is kept: a pointer can be as long as the body.
            let pointer = |scan: &Scan<'_, '_>| format!("{}/{}", scan.pointer, key);
            if keys.len() == self.scan.limits.max_width {
                self.scan.report_here(RuleId::AnomalyJsonWidth);
            }
            if key.starts_with('$')
                && super::NOSQL_OPERATORS.contains(&key.as_str())
                && self.scan.findings.wants(RuleId::AnomalyNoSqlInjection)
            {
                let at = pointer(self.scan);
                self.scan.report(RuleId::AnomalyNoSqlInjection, &at);
            }
            if key.len() > self.scan.limits.max_string_bytes {
                self.scan.report_here(RuleId::AnomalyJsonStringLength);
            }
            self.scan
                .at(&key, |scan| map.next_value_seed(Node { scan }))?;
            if keys.contains(&key) {
                if !self.scan.findings.wants(RuleId::AnomalyJsonDuplicateKey) {
                    continue;
                }
                let at = pointer(self.scan);
                self.scan.report(RuleId::AnomalyJsonDuplicateKey, &at);
            } else {
                keys.insert(key);
            }
        }
        Ok(())
    }
}

/// The byte offset of the first number literal longer than `max` characters: `1e999999`
/// or a thousand digits cost a parser (or the upstream's big-number library) dearly, and
/// serde_json turns them into a float without saying.
fn long_number(bytes: &[u8], max: usize) -> Option<usize> {
    let mut in_string = false;
    let mut escaped = false;
    let mut run = 0usize;
    for (at, &b) in bytes.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        if b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E') {
            run += 1;
            if run > max {
                return Some(at + 1 - run);
            }
        } else {
            run = 0;
            in_string = b == b'"';
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(body: &str) -> Vec<(&'static str, String)> {
        let limits = Limits {
            max_width: 3,
            max_string_bytes: 10,
            max_number_chars: 8,
            ..Limits::default()
        };
        let detector = Detector::new().unwrap();
        let free = [
            vec!["bio".to_owned()],
            vec!["items".to_owned(), "*".to_owned(), "note".to_owned()],
        ];
        let mut found = Findings::default();
        scan(body.as_bytes(), &limits, &detector, &free, &mut found);
        found
            .list
            .into_iter()
            .map(|f| (f.rule.as_str(), f.name.unwrap_or_default()))
            .collect()
    }

    #[test]
    fn duplicate_keys_are_found_where_they_are() {
        assert_eq!(
            findings(r#"{"a": 1, "b": {"role": "user", "role": "admin"}}"#),
            [("anomaly.json_duplicate_key", "/b/role".to_owned())]
        );
        assert!(findings(r#"{"a": {"x": 1}, "b": {"x": 1}}"#).is_empty());
    }

    #[test]
    fn bombs_are_measured() {
        assert_eq!(
            findings(r#"[1, 2, 3, 4]"#),
            [("anomaly.json_width", String::new())]
        );
        assert_eq!(
            findings(r#"{"a":1,"b":2,"c":3,"d":4}"#),
            [("anomaly.json_width", String::new())]
        );
        assert_eq!(
            findings(r#"{"s": "12345678901"}"#),
            [("anomaly.json_string_length", "/s".to_owned())]
        );
        assert_eq!(
            findings(r#"{"n": 1e99999999}"#)[0].0,
            "anomaly.json_number_size"
        );
        assert!(findings(r#"{"n": 1234.567, "s": "1e99999999"}"#).is_empty());
    }

    #[test]
    fn strings_are_scanned_except_free_text() {
        assert_eq!(
            findings(r#"{"q": "<script>x"}"#),
            [("anomaly.xss", "/q".to_owned())]
        );
        assert!(findings(r#"{"bio": "<script>x"}"#).is_empty());
        assert!(findings(r#"{"items": [{"note": "<script>x"}]}"#).is_empty());
        assert_eq!(
            findings(r#"{"items": [{"note": {"x": "<script>x"}}]}"#),
            [("anomaly.xss", "/items/0/note/x".to_owned())]
        );
        assert_eq!(
            findings(r#"{"x": {"bio": "<script>x"}}"#),
            [("anomaly.xss", "/x/bio".to_owned())]
        );
        assert_eq!(
            findings(r#"{"user": {"$ne": 1}}"#),
            [("anomaly.nosql_injection", "/user/$ne".to_owned())]
        );
        assert!(findings(r#"{"name": "O'Brien", "price": "$5"}"#).is_empty());
    }

    #[test]
    fn invalid_json_stops_quietly() {
        assert!(findings(r#"{"a": "#).is_empty());
    }
}
