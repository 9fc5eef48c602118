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
use super::Limits;
use crate::verdict::{sanitize, RuleId};

/// One finding with the JSON pointer it was found at.
pub type Finding = (RuleId, String);

/// Scans `bytes`; `free_text(pointer)` says which string values skip the heuristics.
pub fn scan(
    bytes: &[u8],
    limits: &Limits,
    detector: &Detector,
    free_text: &dyn Fn(&str) -> bool,
) -> Vec<Finding> {
    let mut scan = Scan {
        limits,
        detector,
        free_text,
        findings: Vec::new(),
        pointer: String::new(),
    };
    if let Some(at) = long_number(bytes, limits.max_number_chars) {
        scan.report(RuleId::AnomalyJsonNumberSize, &format!("@{at}"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    // A syntax error is the contract's finding (body.malformed).
    let _ = Node { scan: &mut scan }.deserialize(&mut de);
    scan.findings
}

struct Scan<'a> {
    limits: &'a Limits,
    detector: &'a Detector,
    free_text: &'a dyn Fn(&str) -> bool,
    findings: Vec<Finding>,
    pointer: String,
}

impl Scan<'_> {
    fn report(&mut self, rule: RuleId, pointer: &str) {
        let finding = (rule, sanitize(pointer));
        if !self.findings.contains(&finding) {
            self.findings.push(finding);
        }
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
        if !(self.free_text)(&self.pointer) {
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
        let out = f(self);
        self.pointer.truncate(len);
        out
    }

    /// Runs `f` with array index `index` appended to the pointer.
    fn at_index<T>(&mut self, index: usize, f: impl FnOnce(&mut Self) -> T) -> T {
        let len = self.pointer.len();
        let _ = write!(self.pointer, "/{index}");
        let out = f(self);
        self.pointer.truncate(len);
        out
    }
}

struct Node<'s, 'a> {
    scan: &'s mut Scan<'a>,
}

impl<'de> DeserializeSeed<'de> for Node<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_, '_> {
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
            let pointer = |scan: &Scan<'_>| format!("{}/{}", scan.pointer, key);
            if keys.len() == self.scan.limits.max_width {
                self.scan.report_here(RuleId::AnomalyJsonWidth);
            }
            if key.starts_with('$') && super::NOSQL_OPERATORS.contains(&key.as_str()) {
                let at = pointer(self.scan);
                self.scan.report(RuleId::AnomalyNoSqlInjection, &at);
            }
            if key.len() > self.scan.limits.max_string_bytes {
                self.scan.report_here(RuleId::AnomalyJsonStringLength);
            }
            self.scan
                .at(&key, |scan| map.next_value_seed(Node { scan }))?;
            if keys.contains(&key) {
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
        let free = |p: &str| p == "/bio";
        scan(body.as_bytes(), &limits, &detector, &free)
            .into_iter()
            .map(|(rule, pointer)| (rule.as_str(), pointer))
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
