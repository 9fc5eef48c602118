//! Brute force and credential stuffing (OWASP API2) on sensitive operations: per client
//! address, the failed sign-ins and the distinct usernames tried within the window.
//!
//! An operation is sensitive when the document marks it (`x-apiguard: {sensitive:
//! login}`) or the policy lists it. A failure is an upstream 401 or 403, or apiguard's own
//! refusal of the credentials (`auth.missing`, `auth.invalid`,
//! `auth.insufficient_scope`). The username is read from the body's top-level field the
//! policy names (a JSON object's member, or an urlencoded form's field, as sent), hashed
//! with the slot secret into the window's [`Distinct`] sketch, and never stored.
//! A client at `max_failures` failures, or past `max_usernames` usernames, is found on
//! its next request to a sensitive operation, until its window ends.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::abuse::slots::{SharedStore, SlotReport, SlotSecret};
use crate::behaviour::window::{Record, Windows};
use crate::behaviour::{default_slots, Finding, Reaction};
use crate::events::Evidence;
use crate::verdict::RuleId;

/// `behaviour.credentials` in the policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginConfig {
    /// Sensitive operations besides those the document marks (operationId or
    /// `METHOD /template`).
    #[serde(default)]
    pub operations: Vec<String>,
    /// The top-level body field that holds the username.
    pub username: Option<String>,
    /// Failed attempts per client within the window that find it (`brute_force`).
    pub max_failures: Option<u32>,
    /// Distinct usernames per client within the window that find it
    /// (`credential_stuffing`, 1-200).
    pub max_usernames: Option<u32>,
    pub window_seconds: u32,
    #[serde(default)]
    pub action: Reaction,
    #[serde(default = "default_slots")]
    pub slots: u32,
}

/// The compiled rules.
#[derive(Debug)]
pub(crate) struct Login {
    pub windows: Windows,
    /// Per operation, whether it is sensitive.
    sensitive: Vec<bool>,
    username: Option<String>,
    max_failures: Option<u32>,
    max_usernames: Option<u32>,
    reaction: Reaction,
}

impl Login {
    pub(crate) fn new(config: &LoginConfig, prefix: String, sensitive: Vec<bool>) -> Login {
        Login {
            windows: Windows::new(prefix, config.slots, config.window_seconds),
            sensitive,
            username: config.username.clone(),
            max_failures: config.max_failures,
            max_usernames: config.max_usernames,
            reaction: config.action,
        }
    }

    /// Whether requests to `operation` are watched.
    pub(crate) fn guards(&self, operation: usize) -> bool {
        self.sensitive.get(operation).copied().unwrap_or(false)
    }

    /// Whether usernames are counted, so the body is read for one.
    pub(crate) fn reads_usernames(&self) -> bool {
        self.max_usernames.is_some()
    }

    /// What the client's record finds, if anything: failures first (brute force, which
    /// one username alone can be), then usernames.
    fn judge(&self, record: &Record, now: u64) -> Option<Finding> {
        let failures = self
            .max_failures
            .filter(|max| record.first >= *max)
            .map(|max| (RuleId::BehaviourBruteForce, "failures", record.first, max));
        let usernames = record.seen.estimate();
        let stuffing = self
            .max_usernames
            .filter(|max| usernames > *max)
            .map(|max| {
                let rule = RuleId::BehaviourCredentialStuffing;
                (rule, "distinct_usernames", usernames, max)
            });
        let (rule, measure, count, threshold) = failures.or(stuffing)?;
        let evidence = Evidence {
            rule: rule.as_str().to_owned(),
            measure: measure.to_owned(),
            count: u64::from(count),
            threshold: u64::from(threshold),
            window_seconds: self.windows.window_seconds,
            answers: None,
            denied: None,
            mean: None,
            sigma: None,
        };
        let retry_after = self.windows.seconds_left(record, now);
        Some(Finding::new(rule, self.reaction, evidence, retry_after))
    }

    /// At the request head: the finding, when the client's window already holds one.
    pub(crate) fn head<S: SharedStore>(
        &self,
        store: &S,
        fingerprint: u64,
        now: u64,
    ) -> Option<Finding> {
        let record = self.windows.read(store, fingerprint, now)?;
        self.judge(&record, now)
    }

    /// A failed attempt of the client.
    pub(crate) fn failed<S: SharedStore>(
        &self,
        store: &S,
        fingerprint: u64,
        now: u64,
    ) -> SlotReport {
        let counted = self.windows.count(store, fingerprint, now, |r| {
            r.first = r.first.saturating_add(1);
        });
        counted.report
    }

    /// The request body: the username it names, counted; the finding when the client
    /// is past a threshold with it. `form`: the body is urlencoded, else JSON.
    pub(crate) fn body<S: SharedStore>(
        &self,
        store: &S,
        secret: &SlotSecret,
        fingerprint: u64,
        body: &[u8],
        form: bool,
        now: u64,
    ) -> (Option<Finding>, SlotReport) {
        let (Some(field), true) = (&self.username, self.reads_usernames()) else {
            return (None, SlotReport::default());
        };
        let username = match form {
            true => form_field(body, field).map(<[u8]>::to_vec),
            false => json_member(body, field).map(String::into_bytes),
        };
        let Some(mut username) = username.filter(|u| !u.is_empty()) else {
            return (None, SlotReport::default());
        };
        username.insert(0, b'u');
        let hash = secret.fingerprint(&username);
        let counted = self
            .windows
            .count(store, fingerprint, now, |r| r.seen.insert(hash));
        (self.judge(&counted.record, now), counted.report)
    }
}

/// The raw value of the first field `name` of an urlencoded form (names compared as
/// sent: one pass over the body, nothing decoded).
pub(crate) fn form_field<'b>(body: &'b [u8], name: &str) -> Option<&'b [u8]> {
    body.split(|b| *b == b'&').find_map(|pair| {
        let (key, value) = match pair.iter().position(|b| *b == b'=') {
            Some(at) => (pair.get(..at)?, pair.get(at + 1..)?),
            None => (pair, &[][..]),
        };
        (key == name.as_bytes()).then_some(value)
    })
}

/// The string value of the top-level member `name` of a JSON object, read in one pass
/// without building the document (other members are skipped, serde_json's recursion
/// limit bounds their depth). `None` when the body is no object, or the member is not a
/// string.
pub(crate) fn json_member(body: &[u8], name: &str) -> Option<String> {
    let mut reader = serde_json::Deserializer::from_slice(body);
    Member(name).deserialize(&mut reader).ok().flatten()
}

/// Finds one member of an object.
struct Member<'n>(&'n str);

impl<'de> DeserializeSeed<'de> for Member<'_> {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Member<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if found.is_none() && key == self.0 {
                found = map.next_value::<Text>()?.0;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// A JSON value that is kept when it is a string and skipped otherwise.
struct Text(Option<String>);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Text, D::Error> {
        deserializer.deserialize_any(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E>(self, value: &str) -> Result<Text, E> {
        Ok(Text(Some(value.to_owned())))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Text, E> {
        Ok(Text(None))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Text, E> {
        Ok(Text(None))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Text, E> {
        Ok(Text(None))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Text, E> {
        Ok(Text(None))
    }

    fn visit_unit<E>(self) -> Result<Text, E> {
        Ok(Text(None))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Text, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Text(None))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Text, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Text(None))
    }
}
