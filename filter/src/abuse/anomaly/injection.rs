//! Injection heuristics for string parameters and JSON string values.
//!
//! These are *heuristics*: a positive security model already refuses most payloads through
//! the contract (an `integer` id cannot carry SQL). What is left are free strings, where a
//! pattern can only say "this looks like an attack". Each family is a `RegexSet` compiled
//! once per policy; patterns are chosen to need the *syntax* of an attack, not its words:
//! `select` in prose, a surname with an apostrophe or `<` in a comparison must pass (see
//! `corpus/` and the test that counts detections and false positives).
//!
//! Values are matched lowercased, with SQL comments and runs of whitespace folded to one
//! space, so `UNION/**/SELECT` and `UnIoN   sElEcT` read the same.

use std::borrow::Cow;

use regex::RegexSet;

use crate::verdict::RuleId;

/// Every family's patterns, compiled into one set.
#[derive(Debug)]
pub(crate) struct Detector {
    /// The patterns of all families, in [`FAMILIES`] order: a benign value (nearly every
    /// value) is then one pass of one automaton rather than one per family.
    patterns: RegexSet,
    /// The rule of each pattern of `patterns`, by index.
    rules: Vec<RuleId>,
}

const SQL: &[&str] = &[
    // ' OR '1'='1   " or 1=1   ') or ('a'='a
    r#"['"`)]\s*(or|and|xor|\|\||&&)\s*[('"`]?\s*[\w'"]+\s*['"`]?\s*(=|<>|!=|like|>|<)"#,
    r#"['"`)]\s*(or|and)\s+(true|false|not|\d+\s*(=|<|>))"#,
    r"\b(or|and)\s+(\d+)\s*=\s*\d+\s*($|--|#|;|\))",
    r"\bunion(\s+(all|distinct))?\s+select\b",
    r"\bselect\s+(\*|@@|null\b|\d+\s*,|concat\s*\(|char\s*\(|version\s*\(|user\s*\(|load_file)",
    r#"['"`)]\s*;\s*(drop|delete|insert|update|alter|create|truncate|shutdown|exec|execute|declare)\s+\w"#,
    r";\s*(drop|truncate)\s+(table|database|schema)\b|;\s*shutdown\s*(--|#|;|$)",
    r#"['"`]\s*(--|#|/\*)"#,
    r"\b(sleep|pg_sleep|benchmark)\s*\(\s*\d",
    r"\bwaitfor\s+delay\s+'",
    r"\b(information_schema|xp_cmdshell|sysobjects|pg_catalog)\b",
    r"\bextractvalue\s*\(|\bupdatexml\s*\(",
];

const XSS: &[&str] = &[
    r"<\s*/?\s*(script|iframe|frame|object|embed|applet|meta|base|form|svg|math|style|link)\b",
    r#"<[a-z][^>]*\s(on[a-z]+)\s*=|\bon(error|load|mouseover|focus|click|toggle|begin)\s*=\s*['"]?[\w(]"#,
    r"(javascript|vbscript|livescript)\s*:",
    r"data\s*:\s*text/html",
    r"\bdocument\s*\.\s*(cookie|write|location)|\bwindow\s*\.\s*location",
    r"\b(alert|prompt|confirm|eval)\s*(\(|`)",
    r"\bexpression\s*\(",
    r"<\s*img[^>]+src\s*=",
];

const COMMAND: &[&str] = &[
    r"(;|\||&&|\|\||\n|`|\$\()\s*(cat|tac|less|more|head|tail|ls|wget|curl|nc|ncat|netcat|bash|sh|zsh|rm|chmod|chown|python[23]?|perl|ruby|php|ping|nslookup|telnet|uname)\s+([-/.~$'\x22]|https?:)",
    r"(;|\||&&|\|\||`|\$\()\s*echo\s+\S+\s*>",
    r"(;|\||&&|\|\||`|\$\()\s*(id|whoami|uname|pwd|ifconfig|hostname|env|reboot)\s*($|[;|&`)#])",
    r"\$\(\s*[a-z]+[^)]*\)",
    r"`\s*[a-z]+(\s+[^`]*)?`",
    r"/bin/(ba|z|da)?sh\b|\bcmd(\.exe)?\s+/c\b|\bpowershell(\.exe)?\s+-",
    r"\$\{ifs\}|\$ifs\b",
];

const NOSQL: &[&str] = &[
    r"\[\s*\$(ne|eq|gt|gte|lt|lte|in|nin|regex|where|exists|expr|or|and|not|nor|elemmatch)\s*\]",
    r#"\{\s*['"]?\$(ne|eq|gt|gte|lt|lte|in|nin|regex|where|exists|expr|or|and|not|nor|function|accumulator)['"]?\s*:"#,
    r#"\$where\s*['"]?\s*:"#,
    r#"['"]\s*;\s*return\s+(true|1|this)\b"#,
    r"\bthis\s*\.\s*\w+\s*(==|!=)",
];

const TEMPLATE: &[&str] = &[
    r"\{\{[^}]*(\d\s*[*+/-]\s*\d|__|\(|\[|\bconfig\b|\bself\b|\brequest\b|\blipsum\b|\bcycler\b|\bjoiner\b)[^}]*\}\}",
    r"\$\{[^}]*(\d\s*[*+/-]\s*\d|jndi\s*:|::|\(|\bt\s*\()",
    r"#\{[^}]*(\d\s*[*+/-]\s*\d|\()",
    r"<%=?[^%]*%>",
    r"\{%[^%]*(import|include|set|for)\b[^%]*%\}",
    r"\{\{\s*(7\s*\*\s*7|constructor|_self|dump|app)",
];

const LDAP: &[&str] = &[
    r"\)\s*\(\s*[|&!]?\s*[a-z][\w-]*\s*[~<>]?=",
    r"\*\s*\)\s*\(",
    r"\)\s*\(\s*[|&!]\s*\(",
    r"\(\s*[|&]\s*\(\s*[a-z][\w-]*\s*=",
    r"\)\s*\)\s*\(\s*[|&]",
];

const TRAVERSAL: &[&str] = &[
    r"(^|[/\\])\.\.([/\\]|$)",
    r"%2e%2e|%252e|\.\.%2f|\.\.%5c|%c0%ae|%c0%af|%uff0e",
    r"(^|/)etc/(passwd|shadow|hosts)\b|\bboot\.ini\b|\bwin\.ini\b|c:\\windows\\",
];

/// Every family in the order findings are reported.
const FAMILIES: [(RuleId, &[&str]); 7] = [
    (RuleId::AnomalySqlInjection, SQL),
    (RuleId::AnomalyXss, XSS),
    (RuleId::AnomalyCommandInjection, COMMAND),
    (RuleId::AnomalyNoSqlInjection, NOSQL),
    (RuleId::AnomalyTemplateInjection, TEMPLATE),
    (RuleId::AnomalyLdapInjection, LDAP),
    (RuleId::AnomalyPathTraversal, TRAVERSAL),
];

impl Detector {
    /// Compiles every family; the patterns are constants, so an error is a bug that the
    /// unit tests catch (and the engine then detects nothing rather than stop).
    pub(crate) fn new() -> Result<Detector, regex::Error> {
        let tagged = FAMILIES
            .iter()
            .flat_map(|(rule, patterns)| patterns.iter().map(move |p| (*rule, *p)));
        let (rules, patterns): (Vec<RuleId>, Vec<&str>) = tagged.unzip();
        Ok(Detector {
            patterns: RegexSet::new(patterns)?,
            rules,
        })
    }

    /// The rules `value` looks like an attack on, each once, in [`FAMILIES`] order.
    pub(crate) fn scan(&self, value: &str) -> Vec<RuleId> {
        // Short values cannot hold any pattern here; most parameters are short.
        if value.len() < 2 {
            return Vec::new();
        }
        let folded = fold(value);
        // `is_match` stops at the first match and needs no per-pattern bookkeeping; only
        // a value that matched pays for learning which patterns did.
        if !self.patterns.is_match(&folded) {
            return Vec::new();
        }
        let mut found: Vec<RuleId> = Vec::new();
        for index in self.patterns.matches(&folded).iter() {
            match self.rules.get(index) {
                Some(rule) if !found.contains(rule) => found.push(*rule),
                _ => {}
            }
        }
        found
    }
}

/// Lowercases, turns SQL comments into a space and folds whitespace runs to one space.
/// Most values (ids, names, dates) are already in that form and are borrowed as they are.
fn fold(value: &str) -> Cow<'_, str> {
    if is_folded(value) {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(fold_owned(value))
    }
}

/// Whether [`fold_owned`] would return `value` unchanged: ASCII without capitals, no
/// whitespace (as `char::is_whitespace` has it) but single spaces and newlines, no
/// comment opener.
fn is_folded(value: &str) -> bool {
    let bytes = value.as_bytes();
    let plain = |b: &u8| {
        b.is_ascii()
            && !b.is_ascii_uppercase()
            && (!char::from(*b).is_whitespace() || matches!(b, b' ' | b'\n'))
    };
    bytes.iter().all(plain) && !bytes.windows(2).any(|pair| pair == b"  " || pair == b"/*")
}

fn fold_owned(value: &str) -> String {
    if value.is_ascii() {
        fold_ascii(value.as_bytes())
    } else {
        fold_text(value)
    }
}

/// [`fold_text`] in one pass over bytes, for ASCII (most values): no Unicode case
/// mapping, no character decoding.
fn fold_ascii(mut rest: &[u8]) -> String {
    let mut out = String::with_capacity(rest.len());
    let mut space = false;
    while let Some((&b, tail)) = rest.split_first() {
        let blank = if b == b'/' && tail.first() == Some(&b'*') {
            // A comment, closed or not, reads as one space.
            let inside = tail.get(1..).unwrap_or_default();
            rest = match inside.windows(2).position(|w| w == b"*/") {
                Some(end) => inside.get(end + 2..).unwrap_or_default(),
                None => &[],
            };
            true
        } else {
            rest = tail;
            b != b'\n' && char::from(b).is_whitespace()
        };
        if !blank {
            out.push(char::from(b.to_ascii_lowercase()));
        } else if !space {
            out.push(' ');
        }
        space = blank;
    }
    out
}

/// Folds any text: Unicode lowercase, comments out, whitespace runs folded.
fn fold_text(value: &str) -> String {
    let lower = value.to_lowercase();
    let mut out = String::with_capacity(lower.len());
    let mut rest = lower.as_str();
    while let Some(start) = rest.find("/*") {
        out.push_str(rest.get(..start).unwrap_or_default());
        out.push(' ');
        rest = match rest.get(start + 2..).and_then(|r| r.find("*/")) {
            Some(end) => rest.get(start + 2 + end + 2..).unwrap_or_default(),
            None => "",
        };
    }
    out.push_str(rest);
    let mut folded = String::with_capacity(out.len());
    let mut space = false;
    for c in out.chars() {
        if c.is_whitespace() && c != '\n' {
            if !space {
                folded.push(' ');
            }
            space = true;
        } else {
            folded.push(c);
            space = false;
        }
    }
    folded
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `corpus/attacks.txt` and `corpus/benign.txt`: one value per line, `#` comments.
    /// Attack lines are `<rule id> <payload>`.
    const ATTACKS: &str = include_str!("corpus/attacks.txt");
    const BENIGN: &str = include_str!("corpus/benign.txt");

    fn lines(text: &str) -> impl Iterator<Item = &str> {
        text.lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    }

    #[test]
    fn corpus_detection_and_false_positives() {
        let detector = Detector::new().unwrap();
        let mut missed = Vec::new();
        let mut attacks = 0;
        for line in lines(ATTACKS) {
            let (rule, payload) = line.split_once(' ').unwrap();
            attacks += 1;
            let found = detector.scan(payload);
            if !found.iter().any(|r| r.as_str() == rule) {
                missed.push(format!("{rule}: {payload} (found {found:?})"));
            }
        }
        let mut false_positives = Vec::new();
        let mut benign = 0;
        for line in lines(BENIGN) {
            benign += 1;
            let found = detector.scan(line);
            if !found.is_empty() {
                false_positives.push(format!("{line} ({found:?})"));
            }
        }
        println!(
            "corpus: {attacks} attacks, {} detected; {benign} benign, {} false positives",
            attacks - missed.len(),
            false_positives.len()
        );
        assert!(missed.is_empty(), "missed:\n{}", missed.join("\n"));
        assert!(
            false_positives.is_empty(),
            "false positives:\n{}",
            false_positives.join("\n")
        );
        assert!(attacks >= 100 && benign >= 100, "{attacks} {benign}");
    }

    #[test]
    fn comments_and_case_do_not_hide_a_payload() {
        let detector = Detector::new().unwrap();
        assert_eq!(
            detector.scan("1 UnIoN/**/SeLeCt password FROM users"),
            [RuleId::AnomalySqlInjection]
        );
        assert_eq!(fold("a/*x*/b   c/*open"), "a b c ");
        assert!(detector.scan("x").is_empty());
    }

    /// The fast paths of `fold` (borrowed; ASCII in one pass) agree with the general fold
    /// on every corpus value and on the edge cases of its test.
    #[test]
    fn values_taken_as_folded_are_folded() {
        let edges = [
            "a b", "a  b", "a\tb", "a\nb", "a \n b", "a/b*c", "a/*b", "ÄB", "é", "x\r", "a\u{b}b",
            "a\u{c}b", "1=1",
        ];
        let corpus = lines(ATTACKS).chain(lines(BENIGN));
        let mut borrowed = 0;
        for value in corpus.chain(edges) {
            if is_folded(value) {
                borrowed += 1;
                assert_eq!(fold_owned(value), value, "{value:?}");
            }
        }
        assert!(borrowed > 50, "{borrowed}");
        for value in lines(ATTACKS).chain(lines(BENIGN)).chain(edges) {
            if value.is_ascii() {
                assert_eq!(fold_ascii(value.as_bytes()), fold_text(value), "{value:?}");
            }
        }
        assert_eq!(fold_ascii(b"A /* x */  B/*"), "a b ");
        assert!(!is_folded("a  b") && !is_folded("a\tb") && !is_folded("Ab") && !is_folded("a/*"));
    }
}
