//! Canonicalisation of the request path into decoded segments, refusing what is ambiguous.
//!
//! The filter sees `:path` exactly as Envoy's router will route it and forward it (after
//! whatever normalisation the HTTP connection manager is configured to do). Anything a
//! later hop could interpret differently from us — an encoded `/`, a dot segment, a
//! backslash, `//` — is refused rather than guessed, so the operation we validate is the
//! operation the upstream serves. Each segment is percent-decoded exactly once: `%252F`
//! becomes the three characters `%2F`, never a separator.

use std::borrow::Cow;

use crate::contract::percent::hex_value;
use crate::verdict::RuleId;

/// The path part of a request target, split into percent-decoded segments.
///
/// `/` has no segments; `/pets/` has two, the second empty: a trailing slash is part of
/// the path (OpenAPI matches templates exactly), so it only matches a template that has
/// one too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestPath<'a> {
    pub segments: Vec<Cow<'a, str>>,
    /// The raw query string after `?`, not part of matching.
    pub query: Option<&'a [u8]>,
}

/// Splits `target` (the `:path` header) into decoded segments and query.
pub(crate) fn parse(target: &[u8]) -> Result<RequestPath<'_>, RuleId> {
    let (path, query) = match target.iter().position(|&b| b == b'?') {
        Some(i) => (&target[..i], Some(&target[i + 1..])),
        None => (target, None),
    };
    let Some(rest) = path.strip_prefix(b"/") else {
        return Err(RuleId::NotOriginForm);
    };
    if rest.is_empty() {
        return Ok(RequestPath {
            segments: Vec::new(),
            query,
        });
    }
    let raw: Vec<&[u8]> = rest.split(|&b| b == b'/').collect();
    let last = raw.len() - 1;
    let mut segments = Vec::with_capacity(raw.len());
    for (i, segment) in raw.into_iter().enumerate() {
        // Only the final segment may be empty: that is a trailing slash, not `//`.
        if segment.is_empty() && i != last {
            return Err(RuleId::EmptySegment);
        }
        segments.push(decode_segment(segment)?);
    }
    Ok(RequestPath { segments, query })
}

/// Checks one raw segment and percent-decodes it once.
fn decode_segment(raw: &[u8]) -> Result<Cow<'_, str>, RuleId> {
    raw.iter().try_for_each(|&b| check_raw(b))?;
    let decoded = if raw.contains(&b'%') {
        let mut out = Vec::with_capacity(raw.len());
        let mut bytes = raw.iter();
        while let Some(&b) = bytes.next() {
            if b != b'%' {
                out.push(b);
                continue;
            }
            let hi = bytes.next().and_then(|&h| hex_value(h));
            let lo = bytes.next().and_then(|&l| hex_value(l));
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(RuleId::InvalidEncoding);
            };
            let byte = (hi << 4) | lo;
            check_decoded(byte)?;
            out.push(byte);
        }
        Cow::Owned(String::from_utf8(out).map_err(|_| RuleId::InvalidEncoding)?)
    } else {
        // `check_raw` let only printable ASCII through, so this cannot fail.
        Cow::Borrowed(std::str::from_utf8(raw).map_err(|_| RuleId::InvalidEncoding)?)
    };
    if decoded == "." || decoded == ".." {
        return Err(RuleId::DotSegment);
    }
    Ok(decoded)
}

/// A byte as it appears in the request target.
fn check_raw(b: u8) -> Result<(), RuleId> {
    match b {
        0x00..=0x1F | 0x7F => Err(RuleId::ControlChar),
        b'\\' => Err(RuleId::Backslash),
        b'#' => Err(RuleId::NotOriginForm),
        // Non-ASCII must be percent-encoded in a request target (RFC 3986 §2.1).
        0x80..=0xFF => Err(RuleId::InvalidEncoding),
        _ => Ok(()),
    }
}

/// A byte a `%XX` escape decoded to.
fn check_decoded(b: u8) -> Result<(), RuleId> {
    match b {
        0x00..=0x1F | 0x7F => Err(RuleId::ControlChar),
        b'/' | b'\\' => Err(RuleId::EncodedSeparator),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segments(target: &str) -> Result<Vec<String>, RuleId> {
        parse(target.as_bytes()).map(|p| p.segments.into_iter().map(Cow::into_owned).collect())
    }

    macro_rules! refused {
        ($($name:ident: $target:expr => $rule:expr,)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(segments($target), Err($rule), "{:?}", $target);
            }
        )*};
    }

    refused! {
        encoded_slash_lower: "/a/b%2fc" => RuleId::EncodedSeparator,
        encoded_slash_upper: "/a/b%2Fc" => RuleId::EncodedSeparator,
        encoded_backslash: "/a/%5C" => RuleId::EncodedSeparator,
        raw_backslash: "/a\\b" => RuleId::Backslash,
        dot_dot: "/a/../b" => RuleId::DotSegment,
        dot: "/a/./b" => RuleId::DotSegment,
        trailing_dot_dot: "/a/.." => RuleId::DotSegment,
        encoded_dot_dot: "/a/%2e%2e/b" => RuleId::DotSegment,
        encoded_dot_upper: "/a/%2E" => RuleId::DotSegment,
        half_encoded_dot_dot: "/a/.%2e" => RuleId::DotSegment,
        bad_hex: "/a/%zz" => RuleId::InvalidEncoding,
        short_escape: "/a/%4" => RuleId::InvalidEncoding,
        lone_percent: "/a/%" => RuleId::InvalidEncoding,
        decodes_to_invalid_utf8: "/a/%ff" => RuleId::InvalidEncoding,
        raw_non_ascii: "/a/\u{e9}" => RuleId::InvalidEncoding,
        encoded_nul: "/a/%00" => RuleId::ControlChar,
        encoded_newline: "/a/%0a" => RuleId::ControlChar,
        raw_nul: "/a/\0" => RuleId::ControlChar,
        raw_del: "/a/\x7f" => RuleId::ControlChar,
        double_slash: "/a//b" => RuleId::EmptySegment,
        leading_double_slash: "//a" => RuleId::EmptySegment,
        asterisk_form: "*" => RuleId::NotOriginForm,
        absolute_form: "http://x/a" => RuleId::NotOriginForm,
        empty: "" => RuleId::NotOriginForm,
        fragment: "/a#b" => RuleId::NotOriginForm,
    }

    #[test]
    fn root_has_no_segments() {
        assert_eq!(segments("/"), Ok(vec![]));
        assert_eq!(segments("/?a=b"), Ok(vec![]));
    }

    #[test]
    fn trailing_slash_is_an_empty_last_segment() {
        assert_eq!(segments("/pets/"), Ok(vec!["pets".into(), String::new()]));
    }

    #[test]
    fn query_is_split_off_and_kept_raw() {
        let parsed = parse(b"/pets?limit=1&x=%2F/..").ok();
        assert_eq!(
            parsed.as_ref().map(|p| p.segments.clone()),
            Some(vec![Cow::Borrowed("pets")])
        );
        assert_eq!(parsed.and_then(|p| p.query), Some(&b"limit=1&x=%2F/.."[..]));
    }

    #[test]
    fn segments_are_decoded_exactly_once() {
        assert_eq!(
            segments("/%70ets/%252F"),
            Ok(vec!["pets".into(), "%2F".into()])
        );
        assert_eq!(
            segments("/caf%C3%A9/a%20b"),
            Ok(vec!["café".into(), "a b".into()])
        );
    }

    #[test]
    fn dots_inside_a_segment_are_fine() {
        assert_eq!(
            segments("/reports/2024.csv/a..b/.well-known"),
            Ok(vec![
                "reports".into(),
                "2024.csv".into(),
                "a..b".into(),
                ".well-known".into()
            ])
        );
    }

    #[test]
    fn undecoded_segments_borrow() {
        let parsed = parse(b"/a/b").ok();
        assert!(parsed.is_some_and(|p| p.segments.iter().all(|s| matches!(s, Cow::Borrowed(_)))));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap exhaustive sweep over short byte strings; the fuzz target goes further.
        let alphabet = [
            b'/', b'%', b'.', b'2', b'f', b'\\', b'?', 0x00, 0xC3, 0xA9, b'a',
        ];
        for a in alphabet {
            for b in alphabet {
                for c in alphabet {
                    for d in alphabet {
                        let _ = parse(&[b'/', a, b, c, d]);
                    }
                }
            }
        }
    }
}
