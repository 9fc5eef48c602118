//! `multipart/form-data` bodies (RFC 7578 / RFC 2046), parsed strictly: what another
//! multipart parser could read differently is refused.

use std::borrow::Cow;
use std::cell::Cell;

use serde_json::Value;

use super::form::Fields;
use super::json::parse_counted;
use super::media::{find_param, is_tchar, Cursor, Escapes};
use super::{BodyError, FormSpec, JsonCaps, JsonLimits, MediaType};

/// RFC 2046 §5.1.1: a boundary is 1 to 70 characters.
const MAX_BOUNDARY: usize = 70;

/// Parses a `multipart/form-data` body (RFC 7578) into a JSON object.
///
/// `boundary` is the Content-Type's `boundary` parameter ([`MediaType::param`], already
/// unquoted); the caller reports its absence as [`BodyError::MissingBoundary`], and a
/// boundary outside RFC 2046's syntax is reported the same way here. More than
/// `max_parts` parts are refused ([`BodyError::TooManyParts`]): each part costs a header
/// parse and a map entry, and a real form has tens.
///
/// Each part becomes a field, by the same rules as [`super::parse_form`] (an array field is one
/// item per part, in order):
/// - a part with a `filename` (or `filename*`), or whose Content-Type is neither
///   `text/plain` nor JSON, is a file: its value is the empty string. The schema of an
///   upload is `type: string, format: binary` (or `contentMediaType`), which any string
///   satisfies; its bytes are not something a JSON schema can check.
/// - a part whose Content-Type is JSON ([`MediaType::is_json`]) is parsed with `limits`
///   and used as is (in an array field, as one item, as OpenAPI sends arrays as repeated
///   parts). Its error positions are relative to the part.
/// - any other part is UTF-8 text (`charset`, if given, must say so), converted to the
///   field's types.
///
/// The framing is strict, because a part only we or only the upstream sees would skip
/// validation: the body must start with the first boundary (no preamble) and end with the
/// closing one plus at most a CRLF (no epilogue); lines end in CRLF; a delimiter line has
/// nothing after the boundary (no transport padding); header lines may not be folded; each
/// part has exactly one `Content-Disposition: form-data; name=…`, at most one Content-Type,
/// and no Content-Transfer-Encoding (RFC 7578 §4.7 forbids it, yet some upstreams decode
/// it). Other part headers are ignored, as RFC 7578 §4.8 requires.
pub(crate) fn parse_multipart(
    bytes: &[u8],
    boundary: &str,
    spec: &FormSpec,
    limits: &JsonLimits,
    max_parts: usize,
    caps: JsonCaps,
) -> Result<Value, BodyError> {
    let mut fields = Fields::new(spec);
    let containers = Cell::new(0);
    each_part(bytes, boundary, max_parts, |headers, content| {
        let json = JsonPart {
            limits,
            caps,
            containers: &containers,
        };
        read_part(headers, content, &mut fields, json)
    })?;
    Ok(fields.finish())
}

/// A multipart field as the anomaly checks read it: every field's name, the text of text
/// parts, the bytes of JSON parts; a file's content is not text to scan.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Field<'a> {
    /// Read lossily: a part the contract reads as text must be UTF-8, but one it does not
    /// read (a declaration without a schema) is scanned all the same.
    Text(String, Cow<'a, str>),
    Json(String, &'a [u8]),
    File(String),
}

/// The fields of a `multipart/form-data` body, framed as [`parse_multipart`] frames them
/// (and refused as it refuses them), without reading them against a form.
pub(crate) fn multipart_fields<'a>(
    bytes: &'a [u8],
    boundary: &str,
    max_parts: usize,
) -> Result<Vec<Field<'a>>, BodyError> {
    let mut fields = Vec::new();
    each_part(bytes, boundary, max_parts, |headers, content| {
        fields.push(match headers.kind() {
            Kind::File => Field::File(headers.name),
            Kind::Json => Field::Json(headers.name, content),
            Kind::Text => Field::Text(headers.name, String::from_utf8_lossy(content)),
        });
        Ok(())
    })?;
    Ok(fields)
}

/// Calls `each` with every part's headers and content, in order; more than `max_parts`
/// parts are refused.
fn each_part<'a>(
    bytes: &'a [u8],
    boundary: &str,
    max_parts: usize,
    mut each: impl FnMut(PartHeaders, &'a [u8]) -> Result<(), BodyError>,
) -> Result<(), BodyError> {
    if !valid_boundary(boundary) {
        return Err(BodyError::MissingBoundary);
    }
    let dash_boundary = [b"--", boundary.as_bytes()].concat();
    let delimiter = [b"\r\n", dash_boundary.as_slice()].concat();
    let mut rest = bytes
        .strip_prefix(dash_boundary.as_slice())
        .ok_or(BodyError::MalformedMultipart)?;
    let mut parts = 0usize;
    loop {
        if let Some(after) = rest.strip_prefix(b"--") {
            return if after.is_empty() || after == b"\r\n" {
                Ok(())
            } else {
                Err(BodyError::MalformedMultipart)
            };
        }
        rest = rest
            .strip_prefix(b"\r\n")
            .ok_or(BodyError::MalformedMultipart)?;
        parts += 1;
        if parts > max_parts {
            return Err(BodyError::TooManyParts { limit: max_parts });
        }
        // A missing closing boundary ends here too.
        let (part, after) = split_on(rest, &delimiter).ok_or(BodyError::MalformedMultipart)?;
        let (head, content) = split_on(part, b"\r\n\r\n").ok_or(BodyError::MalformedMultipart)?;
        each(PartHeaders::parse(head)?, content)?;
        rest = after;
    }
}

/// RFC 2046 `bchars`, not ending in a space.
fn valid_boundary(boundary: &str) -> bool {
    (1..=MAX_BOUNDARY).contains(&boundary.len())
        && !boundary.ends_with(' ')
        && boundary
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b" '()+_,-./:=?".contains(&b))
}

/// How a multipart body's JSON parts are parsed: one container count for all of them.
#[derive(Clone, Copy)]
struct JsonPart<'a> {
    limits: &'a JsonLimits,
    caps: JsonCaps,
    containers: &'a Cell<usize>,
}

/// One part, between delimiters: its headers and content.
fn read_part(
    headers: PartHeaders,
    content: &[u8],
    fields: &mut Fields<'_>,
    json: JsonPart<'_>,
) -> Result<(), BodyError> {
    match headers.kind() {
        Kind::File => fields.add(headers.name, Value::String(String::new())),
        Kind::Json => {
            let value = parse_counted(content, json.limits, json.caps, json.containers)?;
            fields.add(headers.name, value)
        }
        Kind::Text => {
            let utf8 = headers
                .content_type
                .as_ref()
                .and_then(|media| media.param("charset"))
                .is_none_or(|charset| {
                    charset.eq_ignore_ascii_case("utf-8")
                        || charset.eq_ignore_ascii_case("us-ascii")
                });
            if !utf8 {
                return Err(BodyError::InvalidEncoding);
            }
            let raw = std::str::from_utf8(content).map_err(|_| BodyError::InvalidEncoding)?;
            fields.add_text(headers.name, raw)
        }
    }
}

/// What a part's headers say about it.
struct PartHeaders {
    name: String,
    file: bool,
    content_type: Option<MediaType>,
}

/// How a part's content is read (see [`parse_multipart`]).
enum Kind {
    File,
    Json,
    Text,
}

impl PartHeaders {
    fn kind(&self) -> Kind {
        let text = match &self.content_type {
            None => true,
            Some(media) => media.is("text", "plain"),
        };
        let json = self.content_type.as_ref().is_some_and(MediaType::is_json);
        if self.file || !(text || json) {
            Kind::File
        } else if json {
            Kind::Json
        } else {
            Kind::Text
        }
    }

    fn parse(head: &[u8]) -> Result<PartHeaders, BodyError> {
        let malformed = BodyError::MalformedMultipart;
        let mut disposition: Option<(String, bool)> = None;
        let mut content_type: Option<MediaType> = None;
        let mut rest = Some(head);
        while let Some(block) = rest {
            let (line, after) = match split_on(block, b"\r\n") {
                Some((line, after)) => (line, Some(after)),
                None => (block, None),
            };
            rest = after;
            let (name, value) = header_line(line).ok_or_else(|| malformed.clone())?;
            if name.eq_ignore_ascii_case("content-disposition") {
                if disposition.is_some() {
                    return Err(malformed);
                }
                disposition = Some(form_data(value).ok_or_else(|| malformed.clone())?);
            } else if name.eq_ignore_ascii_case("content-type") {
                if content_type.is_some() {
                    return Err(malformed);
                }
                content_type = Some(MediaType::parse(value).ok_or_else(|| malformed.clone())?);
            } else if name.eq_ignore_ascii_case("content-transfer-encoding") {
                return Err(malformed);
            }
        }
        let (name, file) = disposition.ok_or(malformed)?;
        Ok(PartHeaders {
            name,
            file,
            content_type,
        })
    }
}

/// `name ":" OWS value OWS`, where the line is UTF-8 without control characters other than
/// HTAB (so no bare CR or LF) and does not start with whitespace (obsolete line folding).
fn header_line(line: &[u8]) -> Option<(&str, &str)> {
    let line = std::str::from_utf8(line).ok()?;
    if line.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7F) {
        return None;
    }
    let (name, value) = line.split_once(':')?;
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return None;
    }
    Some((name, value.trim_matches([' ', '\t'])))
}

/// `form-data; name="…"[; filename="…"]`: the field name, and whether the part is a file.
/// `name*` is refused: RFC 7578 §4.2 says RFC 5987's extended (`*`) parameter encoding
/// must not be used in form-data, and a parser that still reads `name*`, preferring it
/// over `name`, would file the part under a name we never checked.
fn form_data(value: &str) -> Option<(String, bool)> {
    let mut cursor = Cursor::new(value.as_bytes());
    if !cursor.token()?.eq_ignore_ascii_case("form-data") {
        return None;
    }
    let params = cursor.params(Escapes::Refused)?;
    if find_param(&params, "name*").is_some() {
        return None;
    }
    let name = find_param(&params, "name")?.to_owned();
    let file =
        find_param(&params, "filename").is_some() || find_param(&params, "filename*").is_some();
    Some((name, file))
}

/// Splits at the first occurrence of `needle`, dropping it. `memmem` is linear in the
/// haystack whatever the needle (a window-by-window compare costs up to the needle's
/// length per byte, 74 for a delimiter).
fn split_on<'a>(haystack: &'a [u8], needle: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    let at = memchr::memmem::find(haystack, needle)?;
    let (before, after) = haystack.split_at_checked(at)?;
    Some((before, after.get(needle.len()..)?))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::fixtures::{crlf, spec, CAPS, LIMITS, MAX_PARTS};
    use super::*;
    use crate::verdict::RuleId;

    fn multipart(body: &[u8], boundary: &str) -> Result<Value, BodyError> {
        parse_multipart(body, boundary, &spec(), &LIMITS, MAX_PARTS, CAPS)
    }

    #[test]
    fn reads_text_file_and_json_parts() {
        let body = crlf(&[
            "--XyZ",
            "Content-Disposition: form-data; name=\"age\"",
            "",
            "42",
            "--XyZ",
            "content-disposition: FORM-DATA; name=name",
            "X-Ignored: yes",
            "",
            "line one",
            "line two",
            "--XyZ",
            "Content-Disposition: form-data; name=\"photo\"; filename=\"cat.png\"",
            "Content-Type: image/png",
            "",
            "\u{1}PNG binary --XyZ- not a delimiter",
            "--XyZ",
            "Content-Disposition: form-data; name=\"meta\"",
            "Content-Type: application/json; charset=utf-8",
            "",
            "{\"a\": [1]}",
            "--XyZ",
            "Content-Disposition: form-data; name=\"tags\"",
            "Content-Type: text/plain; charset=UTF-8",
            "",
            "x",
            "--XyZ",
            "Content-Disposition: form-data; name=\"tags\"",
            "",
            "",
            "--XyZ",
            "Content-Disposition: form-data; name=\"ids\"",
            "Content-Type: application/json",
            "",
            "[7]",
            "--XyZ",
            "Content-Disposition: form-data; name=\"blob\"",
            "Content-Type: application/octet-stream",
            "",
            "\u{0}\u{1}",
            "--XyZ--",
            "",
        ]);
        assert_eq!(
            multipart(&body, "XyZ"),
            Ok(json!({
                "age": 42,
                "name": "line one\r\nline two",
                "photo": "",
                "meta": {"a": [1]},
                "tags": ["x", ""],
                "ids": [[7]],
                "blob": "",
            }))
        );
    }

    #[test]
    fn accepts_browser_framing_variants() {
        let cases: &[(&[u8], &str, Value)] = &[
            (b"--b--", "b", json!({})),
            (b"--b--\r\n", "b", json!({})),
            (
                b"--a b:c\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--a b:c--",
                "a b:c",
                json!({"x": "1"}),
            ),
            (
                b"--b\r\nContent-Disposition: form-data; name=\"caf\xc3\xa9\"\r\n\r\n\r\n--b--",
                "b",
                json!({"caf\u{e9}": ""}),
            ),
            (
                b"--b\r\nContent-Disposition: form-data; name=\"f\"; filename*=utf-8''a%20b\r\n\r\nzz\r\n--b--",
                "b",
                json!({"f": ""}),
            ),
        ];
        for (body, boundary, expected) in cases {
            assert_eq!(
                multipart(body, boundary),
                Ok(expected.clone()),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn boundary_comes_unquoted_from_the_content_type() {
        let media = MediaType::parse("multipart/form-data; boundary=\"----=_Part 1\"");
        let boundary = media.as_ref().and_then(|m| m.param("boundary"));
        assert_eq!(boundary, Some("----=_Part 1"));
        let body = crlf(&[
            "------=_Part 1",
            "Content-Disposition: form-data; name=\"age\"",
            "",
            "7",
            "------=_Part 1--",
        ]);
        assert_eq!(
            multipart(&body, boundary.unwrap_or_default()),
            Ok(json!({"age": 7}))
        );
    }

    #[test]
    fn refuses_malformed_multipart() {
        let part = "Content-Disposition: form-data; name=\"x\"";
        let malformed: &[&[u8]] = &[
            b"",
            b"--b",
            b"--b\r\n",
            // Missing final boundary.
            b"--b\r\nContent-Disposition: form-data; name=x\r\n\r\n1",
            b"--b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--b",
            b"--b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--b\r\n",
            // Preamble, epilogue, transport padding.
            b"preamble\r\n--b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--b--",
            b"\r\n--b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--b--",
            b"--b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--b--\r\nepilogue",
            b"--b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--b--\r\n\r\n",
            b"--b \r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--b--",
            // The boundary followed by something else inside a part.
            b"--b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--bb\r\n--b--",
            // LF-only line endings, bare CR in headers.
            b"--b\nContent-Disposition: form-data; name=x\n\n1\n--b--",
            b"--b\r\nContent-Disposition: form-data; name=x\n\n1\r\n--b--",
            b"--b\r\nContent-Disposition: form-data;\rname=x\r\n\r\n1\r\n--b--",
            // Headers.
            b"--b\r\n\r\n1\r\n--b--",
            b"--b\r\nContent-Type: text/plain\r\n\r\n1\r\n--b--",
            b"--b\r\nContent-Disposition: form-data\r\n\r\n1\r\n--b--",
            b"--b\r\nContent-Disposition: attachment; name=x\r\n\r\n1\r\n--b--",
            b"--b\r\nContent-Disposition: form-data; name=x; name=y\r\n\r\n1\r\n--b--",
            // RFC 7578 §4.2: no extended `name*`, with or without `name`.
            b"--b\r\nContent-Disposition: form-data; name=x; name*=utf-8''y\r\n\r\n1\r\n--b--",
            b"--b\r\nContent-Disposition: form-data; name*=utf-8''y\r\n\r\n1\r\n--b--",
            b"--b\r\nContent-Disposition: form-data; name=x\r\nContent-Disposition: form-data; name=y\r\n\r\n1\r\n--b--",
            b"--b\r\nContent-Disposition: form-data; name=\"x\\\"; name=y; z=\\\"\"\r\n\r\n1\r\n--b--",
            b"--b\r\nContent-Disposition: form-data; name=\"x\"; filename=\"C:\\a.txt\"\r\n\r\n1\r\n--b--",
            b"--b\r\nContent-Disposition : form-data; name=x\r\n\r\n1\r\n--b--",
            b"--b\r\nContent-Disposition: form-data;\r\n name=x\r\n\r\n1\r\n--b--",
            b"--b\r\nContent-Disposition: form-data; name=x\r\nContent-Type: text/plain\r\nContent-Type: text/plain\r\n\r\n1\r\n--b--",
            b"--b\r\nContent-Disposition: form-data; name=x\r\nContent-Type: text\r\n\r\n1\r\n--b--",
            b"--b\r\nContent-Disposition: form-data; name=x\r\nContent-Transfer-Encoding: base64\r\n\r\nMQ==\r\n--b--",
            b"--b\r\nContent-Disposition: form-data; name=x\r\nNo-Colon\r\n\r\n1\r\n--b--",
            b"--b\r\nContent-Disposition: form-data; name=\"x\xff\"\r\n\r\n1\r\n--b--",
        ];
        for body in malformed {
            assert_eq!(
                multipart(body, "b"),
                Err(BodyError::MalformedMultipart),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        let well_formed = crlf(&["--b", part, "", "1", "--b--"]);
        assert_eq!(multipart(&well_formed, "b"), Ok(json!({"x": "1"})));
    }

    #[test]
    fn refuses_bad_part_contents() {
        let with = |headers: &str, content: &[u8]| {
            [
                b"--b\r\nContent-Disposition: form-data; name=",
                headers.as_bytes(),
                b"\r\n\r\n",
                content,
                b"\r\n--b--",
            ]
            .concat()
        };
        let cases = [
            (with("x", b"\xff"), BodyError::InvalidEncoding),
            (
                with(
                    "x\r\nContent-Type: text/plain; charset=iso-8859-1",
                    b"caf\xe9",
                ),
                BodyError::InvalidEncoding,
            ),
            (
                with("x\r\nContent-Type: application/json", b"{\"a\":}"),
                BodyError::InvalidJson { line: 1, column: 6 },
            ),
            (
                with("x\r\nContent-Type: application/json", b"[[[[[1]]]]]"),
                BodyError::TooDeep { limit: 4 },
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(
                multipart(&body, "b"),
                Err(expected),
                "{:?}",
                String::from_utf8_lossy(&body)
            );
        }
        let repeated = crlf(&[
            "--b",
            "Content-Disposition: form-data; name=\"age\"",
            "",
            "1",
            "--b",
            "Content-Disposition: form-data; name=\"age\"; filename=\"a\"",
            "",
            "2",
            "--b--",
        ]);
        assert_eq!(
            multipart(&repeated, "b"),
            Err(BodyError::RepeatedField {
                name: Some("age".to_owned())
            })
        );
    }

    #[test]
    fn refuses_invalid_boundaries() {
        let long = "a".repeat(71);
        for boundary in [
            "",
            "a ",
            "a\"b",
            "a;b",
            "a\r\nb",
            "caf\u{e9}",
            long.as_str(),
        ] {
            assert_eq!(
                multipart(b"--x--", boundary),
                Err(BodyError::MissingBoundary),
                "{boundary:?}"
            );
        }
        let longest = "a".repeat(70);
        let body = format!("--{longest}--");
        assert_eq!(multipart(body.as_bytes(), &longest), Ok(json!({})));
    }

    #[test]
    fn counts_parts() {
        let body_with = |parts: usize| {
            let mut body = Vec::new();
            for _ in 0..parts {
                body.extend_from_slice(
                    b"--b\r\nContent-Disposition: form-data; name=\"tags\"\r\n\r\nt\r\n",
                );
            }
            body.extend_from_slice(b"--b--");
            body
        };
        let at_limit = multipart(&body_with(MAX_PARTS), "b");
        assert_eq!(
            at_limit
                .ok()
                .and_then(|v| v.get("tags").and_then(Value::as_array).map(Vec::len)),
            Some(MAX_PARTS)
        );
        assert_eq!(
            multipart(&body_with(MAX_PARTS + 1), "b"),
            Err(BodyError::TooManyParts { limit: MAX_PARTS })
        );
        assert_eq!(
            BodyError::TooManyParts { limit: 1 }.rule(),
            RuleId::LimitMultipartParts
        );
    }
}
