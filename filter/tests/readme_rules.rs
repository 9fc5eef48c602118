//! The README's rule tables against the rule catalogue (`verdict.rs`'s `rules!`): every
//! rule has exactly one row, with the status a blocked request gets, and each anomaly rule
//! the severity and score the scorer gives it. Users build dashboards and SIEM queries
//! from that table, so it may not drift from the code.

use std::collections::HashMap;

use apiguard_filter::{RuleId, ANOMALY_CHECKS};

const README: &str = include_str!("../../README.md");

/// Each table row whose first cell looks like a rule id (`family.name`, of a family some
/// rule has): the id and the remaining cells. Stats and file tables do not match.
fn rows() -> Vec<(&'static str, Vec<&'static str>)> {
    let family = |id: &str| id.split_once('.').map(|(family, _)| family.to_owned());
    let families: Vec<String> = RuleId::ALL
        .iter()
        .filter_map(|r| family(r.as_str()))
        .collect();
    let is_name = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    README
        .lines()
        .filter_map(|line| {
            let mut cells = line.strip_prefix('|')?.split('|').map(str::trim);
            let id = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
            let (head, name) = id.split_once('.')?;
            let known = families.iter().any(|f| f == head) && is_name(name);
            known.then(|| (id, cells.collect()))
        })
        .collect()
}

#[test]
fn every_rule_has_one_row_with_its_status() {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (id, _) in rows() {
        *seen.entry(id).or_default() += 1;
    }
    for rule in RuleId::ALL {
        assert_eq!(
            seen.remove(rule.as_str()),
            Some(1),
            "{rule}: one README row"
        );
    }
    assert!(seen.is_empty(), "rows for no rule: {seen:?}");
    for (id, cells) in rows() {
        let Some(rule) = RuleId::ALL.iter().find(|r| r.as_str() == id) else {
            continue;
        };
        let status = cells.first().copied().unwrap_or_default();
        if status.starts_with(|c: char| c.is_ascii_digit()) {
            assert!(
                status.starts_with(&rule.status().to_string()),
                "{id}: README says {status}, the code {}",
                rule.status()
            );
        }
    }
}

#[test]
fn every_anomaly_row_has_its_severity_and_score() {
    let rows = rows();
    for (rule, severity, _) in ANOMALY_CHECKS {
        let (_, cells) = (rows.iter())
            .find(|(id, cells)| *id == rule.as_str() && cells.len() >= 2)
            .unwrap_or_else(|| panic!("{rule}: no row in the anomaly table"));
        assert_eq!(cells[0], severity.as_str(), "{rule}");
        assert_eq!(cells[1], severity.score().to_string(), "{rule}");
    }
}
