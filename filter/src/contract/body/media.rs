//! Media types: a `Content-Type` read strictly (RFC 9110), and which of an operation's
//! declared `content` ranges it falls under, most specific first, as OpenAPI says.

/// A parsed media type: lowercase type and subtype, parameters (lowercase names; values
/// unquoted). RFC 9110 §8.3.1 syntax; `Content-Type: application/json; charset=utf-8`.
///
/// Parsing is strict, because the upstream picks its body parser from this header too:
/// no whitespace around `/` or `=`, no wildcards (a request body has one concrete type),
/// and a parameter named twice is refused (`boundary=a; boundary=b` would let us and the
/// upstream split the body at different places).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MediaType {
    type_: String,
    subtype: String,
    params: Vec<(String, String)>,
}

impl MediaType {
    pub(crate) fn parse(s: &str) -> Option<MediaType> {
        parse_media(s).filter(|media| media.type_ != "*" && media.subtype != "*")
    }

    /// `type/subtype`, without parameters.
    pub(crate) fn essence(&self) -> String {
        format!("{}/{}", self.type_, self.subtype)
    }

    /// Whether the body is JSON text: `application/json` or any `+json` structured suffix
    /// (RFC 6839), such as `application/merge-patch+json`. This decides how to parse, not
    /// which declared content applies; that is [`select`]'s job.
    pub(crate) fn is_json(&self) -> bool {
        (self.type_ == "application" && self.subtype == "json")
            || self
                .subtype
                .strip_suffix("+json")
                .is_some_and(|base| !base.is_empty())
    }

    /// The value of a parameter; names are case-insensitive.
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        find_param(&self.params, name)
    }

    pub(super) fn is(&self, type_: &str, subtype: &str) -> bool {
        self.type_ == type_ && self.subtype == subtype
    }
}

/// A declared `content` key of an OpenAPI requestBody/response: `application/json`,
/// `application/*`, `*/*`, `text/plain; charset=utf-8`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRange {
    kind: RangeKind,
    params: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum RangeKind {
    /// `*/*`
    Any,
    /// `type/*`
    Type(String),
    /// `type/subtype`
    Exact(String, String),
}

impl RangeKind {
    /// How specific the range is; more specific declarations win.
    fn rank(&self) -> u8 {
        match self {
            RangeKind::Any => 0,
            RangeKind::Type(_) => 1,
            RangeKind::Exact(..) => 2,
        }
    }

    fn covers(&self, media: &MediaType) -> bool {
        match self {
            RangeKind::Any => true,
            RangeKind::Type(type_) => *type_ == media.type_,
            RangeKind::Exact(type_, subtype) => media.is(type_, subtype),
        }
    }
}

impl MediaRange {
    /// Same syntax as [`MediaType::parse`], plus `*/*` and `type/*` (but not `*/subtype`).
    pub fn parse(s: &str) -> Option<MediaRange> {
        let MediaType {
            type_,
            subtype,
            params,
        } = parse_media(s)?;
        let kind = match (type_.as_str(), subtype.as_str()) {
            ("*", "*") => RangeKind::Any,
            ("*", _) => return None,
            (_, "*") => RangeKind::Type(type_),
            _ => RangeKind::Exact(type_, subtype),
        };
        Some(MediaRange { kind, params })
    }

    /// Whether every declared parameter has the same value in the request. Only `charset`
    /// is known to be case-insensitive (RFC 9110 §8.3.2); other values compare exactly.
    fn params_match(&self, media: &MediaType) -> bool {
        self.params
            .iter()
            .all(|(name, declared)| match media.param(name) {
                Some(given) if name == "charset" => given.eq_ignore_ascii_case(declared),
                Some(given) => given == declared,
                None => false,
            })
    }
}

/// Which declared range a request's media type selects, most specific first, as OpenAPI
/// says ("text/plain; charset=utf-8" > "text/plain" > "text/*" > "*/*"): exact type/subtype
/// beats subtype wildcard beats `*/*`; at the same level, a range with parameters matches
/// only if every declared parameter equals the request's, and more matched parameters
/// win. Returns the index into `declared`; of equally specific ranges the first wins.
///
/// `application/merge-patch+json` does not select a declared `application/json`: the
/// contract did not declare it, even though it is parsed as JSON.
pub(crate) fn select(declared: &[MediaRange], request: &MediaType) -> Option<usize> {
    let mut best: Option<((u8, usize), usize)> = None;
    for (i, range) in declared.iter().enumerate() {
        if !range.kind.covers(request) || !range.params_match(request) {
            continue;
        }
        let score = (range.kind.rank(), range.params.len());
        if best.is_none_or(|(best_score, _)| score > best_score) {
            best = Some((score, i));
        }
    }
    best.map(|(_, i)| i)
}

/// `type "/" subtype *( OWS ";" OWS [ name "=" ( token / quoted-string ) ] )`, with
/// surrounding whitespace trimmed. Type, subtype and names come back lowercase; wildcards
/// are let through for the callers to judge.
fn parse_media(s: &str) -> Option<MediaType> {
    let mut cursor = Cursor::new(s.as_bytes());
    cursor.skip_ows();
    let type_ = cursor.token()?.to_ascii_lowercase();
    cursor.eat(b'/').then_some(())?;
    let subtype = cursor.token()?.to_ascii_lowercase();
    let params = cursor.params(Escapes::Allowed)?;
    Some(MediaType {
        type_,
        subtype,
        params,
    })
}

pub(super) fn find_param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Whether a quoted-string may contain `\` escapes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Escapes {
    /// RFC 9110 quoted-pairs, as in `Content-Type`.
    Allowed,
    /// Refused: in multipart `Content-Disposition`, browsers percent-encode `"` instead of
    /// escaping it, and parsers disagree on whether `\"` ends the string, which lets a
    /// crafted header carry a field name only the upstream sees.
    Refused,
}

/// A position in a header value, for the RFC 9110 grammar.
pub(super) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        let found = self.peek() == Some(b);
        if found {
            self.pos += 1;
        }
        found
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// One or more `tchar`s (RFC 9110 §5.6.2).
    pub(super) fn token(&mut self) -> Option<&'a str> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        let token = self.bytes.get(start..self.pos)?;
        if token.is_empty() {
            return None;
        }
        std::str::from_utf8(token).ok()
    }

    /// A quoted-string after its opening `"`, unquoted.
    fn quoted_rest(&mut self, escapes: Escapes) -> Option<String> {
        let mut out = Vec::new();
        loop {
            let b = self.peek()?;
            self.pos += 1;
            match b {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' if escapes == Escapes::Allowed => {
                    let escaped = self.peek().filter(|&e| e == b'\t' || e >= b' ')?;
                    if escaped == 0x7F {
                        return None;
                    }
                    self.pos += 1;
                    out.push(escaped);
                }
                b'\\' => return None,
                // qdtext: HTAB, SP, visible ASCII, obs-text.
                b'\t' | b' '..=b'~' | 0x80..=0xFF => out.push(b),
                _ => return None,
            }
        }
    }

    /// The parameters up to the end of the input, names lowercase; a repeated name is
    /// refused.
    pub(super) fn params(&mut self, escapes: Escapes) -> Option<Vec<(String, String)>> {
        let mut params: Vec<(String, String)> = Vec::new();
        loop {
            self.skip_ows();
            if self.peek().is_none() {
                return Some(params);
            }
            self.eat(b';').then_some(())?;
            self.skip_ows();
            // An empty parameter (`a/b;;c=d`, `a/b;`) is allowed by the grammar.
            if matches!(self.peek(), None | Some(b';')) {
                continue;
            }
            let name = self.token()?.to_ascii_lowercase();
            self.eat(b'=').then_some(())?;
            let value = if self.eat(b'"') {
                self.quoted_rest(escapes)?
            } else {
                self.token()?.to_owned()
            };
            if find_param(&params, &name).is_some() {
                return None;
            }
            params.push((name, value));
        }
    }
}

pub(super) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn media(s: &str) -> Option<(String, Vec<(String, String)>)> {
        MediaType::parse(s).map(|m| (m.essence(), m.params))
    }

    fn params(pairs: &[Param]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    type Param<'a> = (&'a str, &'a str);

    #[test]
    fn parses_media_types() {
        let cases: &[(&str, &str, &[Param])] = &[
            ("application/json", "application/json", &[]),
            (
                "Application/JSON; Charset=UTF-8",
                "application/json",
                &[("charset", "UTF-8")],
            ),
            (
                "text/plain;charset=\"utf-8\"",
                "text/plain",
                &[("charset", "utf-8")],
            ),
            (
                "multipart/form-data; boundary=\"a b\\\"c\"",
                "multipart/form-data",
                &[("boundary", "a b\"c")],
            ),
            (
                "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxk",
                "multipart/form-data",
                &[("boundary", "----WebKitFormBoundary7MA4YWxk")],
            ),
            (" \ttext/plain \t", "text/plain", &[]),
            ("text/plain;", "text/plain", &[]),
            ("text/plain ; ; a=b ;", "text/plain", &[("a", "b")]),
            ("text/plain; a=\"\"", "text/plain", &[("a", "")]),
            (
                "text/plain; a=\"caf\u{e9}\"",
                "text/plain",
                &[("a", "caf\u{e9}")],
            ),
            (
                "application/vnd.api+json; ext=\"a;b=c\"",
                "application/vnd.api+json",
                &[("ext", "a;b=c")],
            ),
        ];
        for (input, essence, expected) in cases {
            assert_eq!(
                media(input),
                Some(((*essence).to_owned(), params(expected))),
                "{input:?}"
            );
        }
    }

    #[test]
    fn refuses_malformed_media_types() {
        for input in [
            "",
            " ",
            "text",
            "text/",
            "/plain",
            "text /plain",
            "text/ plain",
            "text/plain/x",
            "text/plain x",
            "text/plain; charset",
            "text/plain; charset=",
            "text/plain; charset = utf-8",
            "text/plain; charset= utf-8",
            "text/plain; a=\"unterminated",
            "text/plain; a=b c",
            "text/plain; a=\"b\"c",
            "text/plain; a=1; A=2",
            "text/plain; a=\"\x01\"",
            "text/plain; a=\"\\\x01\"",
            "text/plain\0",
            "t\u{eb}xt/plain",
            "*/*",
            "text/*",
            "*/plain",
        ] {
            assert_eq!(MediaType::parse(input), None, "{input:?}");
        }
    }

    #[test]
    fn recognises_json_media_types() {
        for (input, json) in [
            ("application/json", true),
            ("APPLICATION/JSON; charset=utf-8", true),
            ("application/problem+json", true),
            ("application/vnd.api+json", true),
            ("text/plain", false),
            ("text/json", false),
            ("application/jsonp", false),
            ("application/json-seq", false),
            ("application/+json", false),
            ("application/x-www-form-urlencoded", false),
        ] {
            let parsed = MediaType::parse(input);
            assert_eq!(parsed.map(|m| m.is_json()), Some(json), "{input:?}");
        }
    }

    #[test]
    fn params_are_found_by_any_case() {
        let parsed = MediaType::parse("multipart/form-data; BOUNDARY=xyz");
        assert_eq!(
            parsed.as_ref().and_then(|m| m.param("boundary")),
            Some("xyz")
        );
        assert_eq!(
            parsed.as_ref().and_then(|m| m.param("Boundary")),
            Some("xyz")
        );
        assert_eq!(parsed.as_ref().and_then(|m| m.param("charset")), None);
    }

    #[test]
    fn parses_media_ranges() {
        for input in [
            "*/*",
            "application/*",
            "text/plain; charset=utf-8",
            "Text/*",
        ] {
            assert!(MediaRange::parse(input).is_some(), "{input:?}");
        }
        for input in ["*/json", "*", "", "text/", "application/*; x"] {
            assert_eq!(MediaRange::parse(input), None, "{input:?}");
        }
    }

    fn selected(declared: &[&str], request: &str) -> Option<usize> {
        let declared: Vec<MediaRange> = declared
            .iter()
            .map(|d| MediaRange::parse(d).unwrap_or_else(|| panic!("bad range {d:?}")))
            .collect();
        let request = MediaType::parse(request).unwrap_or_else(|| panic!("bad type {request:?}"));
        select(&declared, &request)
    }

    #[test]
    fn selects_the_most_specific_declared_range() {
        let declared = [
            "*/*",
            "text/*",
            "text/plain",
            "text/plain; charset=utf-8",
            "application/json",
        ];
        let cases = [
            ("text/plain; charset=UTF-8", Some(3)),
            ("text/plain;charset=\"utf-8\"", Some(3)),
            ("text/plain; charset=latin1", Some(2)),
            ("text/plain", Some(2)),
            ("TEXT/PLAIN", Some(2)),
            ("text/html", Some(1)),
            ("image/png", Some(0)),
            ("application/json", Some(4)),
            ("application/json; charset=utf-8", Some(4)),
            ("application/merge-patch+json", Some(0)),
        ];
        for (request, expected) in cases {
            assert_eq!(selected(&declared, request), expected, "{request:?}");
        }
    }

    #[test]
    fn selection_only_admits_what_is_declared() {
        let cases: &[(&[&str], &str, Option<usize>)] = &[
            (&["application/json"], "application/merge-patch+json", None),
            (
                &["application/json", "application/*"],
                "application/merge-patch+json",
                Some(1),
            ),
            (&["application/json"], "text/plain", None),
            (&["text/plain; charset=utf-8"], "text/plain", None),
            (
                &["text/plain; charset=utf-8"],
                "text/plain; charset=latin1",
                None,
            ),
            // Only charset compares case-insensitively.
            (
                &["text/plain; format=flowed"],
                "text/plain; format=Flowed",
                None,
            ),
            (
                &["text/*; charset=utf-8", "text/plain"],
                "text/plain; charset=utf-8",
                Some(1),
            ),
            (
                &[
                    "text/plain; charset=utf-8",
                    "text/plain; charset=utf-8; format=flowed",
                ],
                "text/plain; format=flowed; charset=utf-8",
                Some(1),
            ),
            (
                &["application/json", "Application/JSON"],
                "application/json",
                Some(0),
            ),
            (
                &["multipart/form-data"],
                "multipart/form-data; boundary=x",
                Some(0),
            ),
            (&[], "application/json", None),
        ];
        for (declared, request, expected) in cases {
            assert_eq!(
                selected(declared, request),
                *expected,
                "{declared:?} {request:?}"
            );
        }
    }
}
