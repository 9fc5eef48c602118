//! What one path segment looks like: an identifier whose form says it is a value (a
//! number, a UUID, a hash, a date, an email address, an opaque token), or a word that may
//! be a literal part of the template. Only the form is kept: the value itself never
//! leaves [`classify`].

use serde_json::{json, Value};

/// The form of a segment. Every form but [`Kind::Word`] is a parameter by its form alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Decimal digits, optionally signed.
    Integer,
    /// `8-4-4-4-12` hexadecimal digits.
    Uuid,
    /// At least 7 hexadecimal digits with at least one digit and one letter (commit
    /// hashes, object ids): words like `deadbeef` or `facade` are too short or digit-free.
    Hex,
    /// `YYYY-MM-DD`.
    Date,
    /// `local@domain.tld`.
    Email,
    /// At least 16 characters of the URL-safe base64 alphabet mixing digits with lower- and
    /// upper-case letters: API tokens and opaque ids, never an English word.
    Token,
    /// Anything else: a literal, or a parameter only if many distinct values show it is one.
    Word,
}

impl Kind {
    /// The JSON Schema a parameter of this form gets in a learned template.
    pub fn schema(self) -> Value {
        match self {
            Kind::Integer => json!({"type": "integer"}),
            Kind::Uuid => json!({"type": "string", "format": "uuid"}),
            Kind::Hex => json!({"type": "string", "pattern": "^[0-9a-fA-F]+$"}),
            Kind::Date => json!({"type": "string", "format": "date"}),
            Kind::Email => json!({"type": "string", "format": "email"}),
            Kind::Token | Kind::Word => json!({"type": "string"}),
        }
    }

    /// Its name in events: `integer`, `uuid`, `hex`, `date`, `email`, `token`, `string`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Integer => "integer",
            Kind::Uuid => "uuid",
            Kind::Hex => "hex",
            Kind::Date => "date",
            Kind::Email => "email",
            Kind::Token => "token",
            Kind::Word => "string",
        }
    }

    /// The form two parameters of one position share: their own if they agree, else a
    /// plain string.
    pub(crate) fn widen(self, other: Kind) -> Kind {
        if self == other {
            self
        } else {
            Kind::Word
        }
    }
}

/// The form of `segment` (percent-decoded). One pass over its bytes.
pub(crate) fn classify(segment: &str) -> Kind {
    let bytes = segment.as_bytes();
    let digits = bytes.iter().filter(|b| b.is_ascii_digit()).count();
    let unsigned = bytes.strip_prefix(b"-").unwrap_or(bytes);
    if !unsigned.is_empty() && unsigned.iter().all(u8::is_ascii_digit) {
        return Kind::Integer;
    }
    if is_uuid(bytes) {
        return Kind::Uuid;
    }
    if bytes.len() >= 7
        && bytes.iter().all(u8::is_ascii_hexdigit)
        && digits > 0
        && digits < bytes.len()
    {
        return Kind::Hex;
    }
    if is_date(bytes) {
        return Kind::Date;
    }
    if is_email(segment) {
        return Kind::Email;
    }
    let lower = bytes.iter().any(u8::is_ascii_lowercase);
    let upper = bytes.iter().any(u8::is_ascii_uppercase);
    let base64 = |b: &u8| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_';
    if bytes.len() >= 16 && bytes.iter().all(base64) && digits > 0 && lower && upper {
        return Kind::Token;
    }
    Kind::Word
}

fn is_uuid(bytes: &[u8]) -> bool {
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

fn is_date(bytes: &[u8]) -> bool {
    bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        })
}

fn is_email(segment: &str) -> bool {
    let Some((local, domain)) = segment.split_once('@') else {
        return false;
    };
    let label = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b))
    };
    label(local) && domain.contains('.') && label(domain) && !domain.contains('@')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_told_by_their_bytes() {
        let cases = [
            ("42", Kind::Integer),
            ("-7", Kind::Integer),
            ("123e4567-e89b-12d3-a456-426614174000", Kind::Uuid),
            ("6dcb09b5b57875f334f61aebed695e2e4193db5e", Kind::Hex),
            ("2024-02-29", Kind::Date),
            ("ada@example.com", Kind::Email),
            ("ghp_9aZx3Lm2Qw8Rt5Yv", Kind::Token),
            ("issues", Kind::Word),
            ("deadbeef", Kind::Word), // no digit: could be a word
            ("1234567a", Kind::Hex),
            ("octocat", Kind::Word),
            ("hello-world", Kind::Word),
            ("v1", Kind::Word),
            ("", Kind::Word),
            ("-", Kind::Word),
            ("a@b", Kind::Word),
            ("README.md", Kind::Word),
        ];
        for (segment, kind) in cases {
            assert_eq!(classify(segment), kind, "{segment:?}");
        }
    }

    #[test]
    fn forms_widen_to_a_string_when_they_disagree() {
        assert_eq!(Kind::Integer.widen(Kind::Integer), Kind::Integer);
        assert_eq!(Kind::Integer.widen(Kind::Hex), Kind::Word);
        assert_eq!(Kind::Word.schema(), json!({"type": "string"}));
    }
}
