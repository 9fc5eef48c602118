//! Percent-decoding, shared by every part of a request that is percent-encoded.

/// The value of one hex digit.
pub(crate) fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes one `application/x-www-form-urlencoded` name or value (a query pair or a form
/// field): `+` is a space, each `%XX` is decoded once. `None` for a bad escape or text
/// that is not UTF-8 once decoded.
pub(crate) fn form_decode(raw: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.next().and_then(|&h| hex_value(h))?;
                let lo = bytes.next().and_then(|&l| hex_value(l))?;
                out.push((hi << 4) | lo);
            }
            _ => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_forms_once() {
        assert_eq!(
            form_decode(b"a+b%20c%2Bd%252F").as_deref(),
            Some("a b c+d%2F")
        );
        assert_eq!(form_decode(b"caf%C3%A9").as_deref(), Some("café"));
        for bad in [&b"%zz"[..], b"%4", b"%", b"%ff", b"\xff"] {
            assert_eq!(form_decode(bad), None, "{bad:?}");
        }
    }
}
