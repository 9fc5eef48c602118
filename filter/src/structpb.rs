//! Transcoding of a serialised `google.protobuf.Struct` to JSON text.
//!
//! Envoy hands a plugin its `configuration` (a `google.protobuf.Any`) as raw bytes: the
//! string itself for a `StringValue`, but the protobuf encoding for anything else. A
//! `Struct` is what users want to write — the policy as plain YAML inside `envoy.yaml` or
//! Istio's `pluginConfig` — so the engine reads that encoding. It writes JSON text
//! straight from the wire format, without an intermediate tree, because the OpenAPI
//! document inside can be many megabytes.
//!
//! Wire format (struct.proto): `Struct { map<string, Value> fields = 1 }`, a map entry
//! being `{ string key = 1; Value value = 2 }`; `Value` is a oneof of `null_value = 1`,
//! `number_value = 2` (double), `string_value = 3`, `bool_value = 4`,
//! `struct_value = 5`, `list_value = 6`; `ListValue { repeated Value values = 1 }`.

use std::fmt::Write;

/// Nesting deeper than this is refused rather than risking the wasm stack.
const MAX_DEPTH: usize = 128;

/// Whether `bytes` look like a serialised `Struct` rather than JSON or YAML text: a
/// `Struct` starts with field 1, length-delimited (`0x0A`), and must decode completely.
pub(crate) fn to_json_if_struct(bytes: &[u8]) -> Option<Result<String, String>> {
    if bytes.first() != Some(&0x0A) {
        return None;
    }
    let mut out = String::with_capacity(bytes.len() + bytes.len() / 4);
    match write_struct(&mut Reader { bytes, pos: 0 }, &mut out, 0) {
        Ok(()) => Some(Ok(out)),
        Err(e) => Some(Err(format!("not a valid google.protobuf.Struct: {e}"))),
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.bytes.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            value |= u64::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint too long".to_owned())
    }

    /// A field key: (field number, wire type).
    fn key(&mut self) -> Result<(u64, u8), String> {
        let key = self.varint()?;
        Ok((key >> 3, (key & 7) as u8))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(len).ok_or("length overflow")?;
        let slice = self.bytes.get(self.pos..end).ok_or("truncated field")?;
        self.pos = end;
        Ok(slice)
    }

    /// A length-delimited field's contents, as a reader of its own.
    fn nested(&mut self) -> Result<Reader<'a>, String> {
        let len = usize::try_from(self.varint()?).map_err(|_| "length overflow")?;
        Ok(Reader {
            bytes: self.take(len)?,
            pos: 0,
        })
    }

    fn string(&mut self) -> Result<&'a str, String> {
        let len = usize::try_from(self.varint()?).map_err(|_| "length overflow")?;
        std::str::from_utf8(self.take(len)?).map_err(|_| "string is not UTF-8".to_owned())
    }

    /// Skips a field of a wire type we do not read (forward compatibility).
    fn skip(&mut self, wire_type: u8) -> Result<(), String> {
        match wire_type {
            0 => self.varint().map(drop),
            1 => self.take(8).map(drop),
            2 => self.nested().map(drop),
            5 => self.take(4).map(drop),
            other => Err(format!("unsupported wire type {other}")),
        }
    }
}

fn write_struct(r: &mut Reader<'_>, out: &mut String, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("nested deeper than {MAX_DEPTH}"));
    }
    out.push('{');
    let mut first = true;
    while !r.is_empty() {
        match r.key()? {
            (1, 2) => {
                let mut entry = r.nested()?;
                let (mut key, mut value) = (None, None);
                while !entry.is_empty() {
                    match entry.key()? {
                        (1, 2) => key = Some(entry.string()?),
                        (2, 2) => value = Some(entry.nested()?),
                        (_, wire) => entry.skip(wire)?,
                    }
                }
                if !first {
                    out.push(',');
                }
                first = false;
                write_string(out, key.unwrap_or(""));
                out.push(':');
                match value {
                    Some(mut value) => write_value(&mut value, out, depth + 1)?,
                    None => out.push_str("null"),
                }
            }
            (_, wire) => r.skip(wire)?,
        }
    }
    out.push('}');
    Ok(())
}

fn write_value(r: &mut Reader<'_>, out: &mut String, depth: usize) -> Result<(), String> {
    // An empty Value (no oneof set) is JSON null, as in the canonical JSON mapping.
    let mut written = false;
    while !r.is_empty() {
        let (field, wire) = r.key()?;
        written = true;
        match (field, wire) {
            (1, 0) => {
                r.varint()?;
                out.push_str("null");
            }
            (2, 1) => {
                let bits = r.take(8)?;
                let mut le = [0u8; 8];
                le.copy_from_slice(bits);
                write_number(out, f64::from_le_bytes(le))?;
            }
            (3, 2) => write_string(out, r.string()?),
            (4, 0) => out.push_str(if r.varint()? != 0 { "true" } else { "false" }),
            (5, 2) => write_struct(&mut r.nested()?, out, depth + 1)?,
            (6, 2) => write_list(&mut r.nested()?, out, depth + 1)?,
            (field, _) => return Err(format!("unknown Value field {field}")),
        }
        if !r.is_empty() {
            return Err("a Value with more than one field".to_owned());
        }
    }
    if !written {
        out.push_str("null");
    }
    Ok(())
}

fn write_list(r: &mut Reader<'_>, out: &mut String, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("nested deeper than {MAX_DEPTH}"));
    }
    out.push('[');
    let mut first = true;
    while !r.is_empty() {
        match r.key()? {
            (1, 2) => {
                if !first {
                    out.push(',');
                }
                first = false;
                write_value(&mut r.nested()?, out, depth + 1)?;
            }
            (_, wire) => r.skip(wire)?,
        }
    }
    out.push(']');
    Ok(())
}

/// Struct numbers are doubles; integral ones are written as integers so that schema
/// keywords such as `minItems: 1` read back as the integers they were.
fn write_number(out: &mut String, n: f64) -> Result<(), String> {
    if !n.is_finite() {
        return Err("a number that is not finite".to_owned());
    }
    // Below 2^53 every integer is exact in a double.
    if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
        let _ = write!(out, "{}", n as i64);
    } else {
        let _ = write!(out, "{n}");
    }
    Ok(())
}

fn write_string(out: &mut String, s: &str) {
    // serde_json's escaping, so the output is JSON by construction.
    out.push_str(&serde_json::Value::from(s).to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny encoder, the inverse of the transcoder, for building test input.
    fn len_field(field: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![(field << 3) | 2];
        let mut len = body.len();
        loop {
            let byte = (len & 0x7F) as u8;
            len >>= 7;
            if len == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
        out.extend_from_slice(body);
        out
    }

    fn entry(key: &str, value: Vec<u8>) -> Vec<u8> {
        let mut body = len_field(1, key.as_bytes());
        body.extend(len_field(2, &value));
        len_field(1, &body)
    }

    fn number(n: f64) -> Vec<u8> {
        let mut v = vec![(2 << 3) | 1];
        v.extend_from_slice(&n.to_le_bytes());
        v
    }

    #[test]
    fn transcodes_every_value_kind() {
        let list = [
            number(1.0),
            len_field(3, b"x"),
            vec![4 << 3, 1],
            vec![1 << 3, 0],
        ]
        .iter()
        .flat_map(|v| len_field(1, v))
        .collect::<Vec<u8>>();
        let inner = entry("n", number(2.5));
        let mut bytes = entry("list", len_field(6, &list));
        bytes.extend(entry("obj", len_field(5, &inner)));
        bytes.extend(entry("s\"q", len_field(3, "é\n".as_bytes())));
        let json = to_json_if_struct(&bytes).and_then(Result::ok);
        let parsed: Option<serde_json::Value> = json.and_then(|j| serde_json::from_str(&j).ok());
        assert_eq!(
            parsed,
            Some(serde_json::json!({
                "list": [1, "x", true, null],
                "obj": {"n": 2.5},
                "s\"q": "é\n",
            }))
        );
    }

    #[test]
    fn text_is_not_a_struct() {
        assert!(to_json_if_struct(b"{\"name\": 1}").is_none());
        assert!(to_json_if_struct(b"name: x").is_none());
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let bytes = entry("key", len_field(3, b"value"));
        for cut in 1..bytes.len() {
            assert!(
                matches!(to_json_if_struct(&bytes[..cut]), Some(Err(_))),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut value = len_field(3, b"leaf");
        for _ in 0..200 {
            value = len_field(5, &entry("a", value));
        }
        let bytes = entry("root", value);
        assert!(matches!(to_json_if_struct(&bytes), Some(Err(e)) if e.contains("deeper")));
    }
}
