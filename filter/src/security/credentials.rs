//! Where credentials are in a request — headers (with an auth-scheme prefix), query
//! parameters, cookies — read once per request for every scheme to look into, and only
//! where a scheme looks: most read a header, and then the query and cookies are never
//! parsed.

use std::cell::OnceCell;

use crate::contract::params;
use crate::request::RequestHead;

/// Where a credential is read from a request.
#[derive(Debug, Clone)]
pub(super) enum Place {
    Header { name: String, prefix: String },
    Query(String),
    Cookie(String),
}

/// The places credentials can be in, each parsed on its first look, once per request.
pub(super) struct Credentials<'a> {
    headers: &'a [(&'a str, &'a str)],
    path: &'a [u8],
    query: OnceCell<Vec<(String, String)>>,
    cookies: OnceCell<Vec<(String, String)>>,
}

impl<'a> Credentials<'a> {
    pub(super) fn read(head: &RequestHead<'a>) -> Credentials<'a> {
        Credentials {
            headers: head.headers,
            path: head.path,
            query: OnceCell::new(),
            cookies: OnceCell::new(),
        }
    }

    fn query(&self) -> &[(String, String)] {
        self.query.get_or_init(|| {
            (self.path.iter().position(|&b| b == b'?'))
                .and_then(|q| self.path.get(q + 1..))
                .and_then(|raw| params::parse_query(raw).ok())
                .unwrap_or_default()
        })
    }

    fn cookies(&self) -> &[(String, String)] {
        self.cookies.get_or_init(|| {
            let lines: Vec<&str> = (self.headers.iter())
                .filter(|(n, _)| *n == "cookie")
                .map(|(_, v)| *v)
                .collect();
            params::parse_cookies(&lines)
        })
    }

    /// Every value at `location`, with the header name when it came from a header.
    pub(super) fn find(&self, location: &Place) -> Vec<(Option<&'a str>, &str)> {
        match location {
            Place::Header { name, prefix } => self
                .headers
                .iter()
                .filter(|(n, _)| n == name)
                .filter_map(|(n, v)| {
                    // A value with another prefix (`Basic …`) is not ours. The auth
                    // scheme is case-insensitive (RFC 9110 §11.1).
                    let token = v
                        .get(..prefix.len())
                        .filter(|p| p.eq_ignore_ascii_case(prefix))
                        .and_then(|_| v.get(prefix.len()..))?;
                    Some((Some(*n), token.trim()))
                })
                .collect(),
            Place::Query(name) => pairs(self.query(), name),
            Place::Cookie(name) => pairs(self.cookies(), name),
        }
    }
}

/// `path` (a `:path`) without the query pairs whose names, decoded as
/// [`params::parse_query`] decodes them, are in `names`; every other byte as it came (the
/// `?` goes too when no pair is left). `None` when no pair is removed.
pub(super) fn path_without_params(path: &[u8], names: &[String]) -> Option<Vec<u8>> {
    let at = path.iter().position(|&b| b == b'?')?;
    let (before, query) = path.split_at(at);
    let query = query.get(1..).unwrap_or_default();
    let named = |pair: &[u8]| {
        let name = pair.split(|&b| b == b'=').next().unwrap_or_default();
        crate::contract::percent::form_decode(name).is_some_and(|name| names.contains(&name))
    };
    if !query.split(|&b| b == b'&').any(named) {
        return None;
    }
    let kept: Vec<&[u8]> = query.split(|&b| b == b'&').filter(|p| !named(p)).collect();
    let mut out = before.to_vec();
    if !kept.is_empty() {
        out.push(b'?');
        out.extend_from_slice(&kept.join(&b'&'));
    }
    Some(out)
}

/// The `Cookie` header without the cookies named `names` (as [`params::parse_cookies`]
/// names them: trimmed, case-sensitive), the other cookies byte for byte, the lines joined
/// with `; ` (one header, as HTTP/1.1 requires). `None` when no cookie is removed,
/// `Some(None)` when none is left.
pub(super) fn cookies_without(lines: &[&[u8]], names: &[String]) -> Option<Option<Vec<u8>>> {
    let named = |part: &[u8]| {
        let name = part.split(|&b| b == b'=').next().unwrap_or_default();
        names.iter().any(|n| n.as_bytes() == trim_ows(name))
    };
    let parts = || lines.iter().flat_map(|line| line.split(|&b| b == b';'));
    if !parts().any(named) {
        return None;
    }
    let kept: Vec<Vec<u8>> = lines
        .iter()
        .map(|line| {
            let kept: Vec<&[u8]> = line.split(|&b| b == b';').filter(|p| !named(p)).collect();
            trim_ows(&kept.join(&b';')).to_vec()
        })
        .filter(|line| !line.is_empty())
        .collect();
    Some((!kept.is_empty()).then(|| kept.join(&b"; "[..])))
}

/// Without leading and trailing spaces and tabs (RFC 9110 OWS), as [`params::parse_cookies`]
/// trims.
fn trim_ows(bytes: &[u8]) -> &[u8] {
    let ows = |b: &u8| matches!(b, b' ' | b'\t');
    let start = bytes.iter().position(|b| !ows(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !ows(b))
        .map_or(start, |last| last + 1);
    bytes.get(start..end).unwrap_or_default()
}

fn pairs<'s>(pairs: &'s [(String, String)], name: &str) -> Vec<(Option<&'static str>, &'s str)> {
    pairs
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| (None, v.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn a_query_parameter_is_removed_and_the_rest_kept_byte_for_byte() {
        let strip = |path: &str| {
            path_without_params(path.as_bytes(), &names(&["access_token"]))
                .map(|p| String::from_utf8(p).unwrap())
        };
        assert_eq!(
            strip("/a?x=%2F&access_token=t&y=a+b;c").as_deref(),
            Some("/a?x=%2F&y=a+b;c")
        );
        assert_eq!(strip("/a?access_token=t").as_deref(), Some("/a"));
        assert_eq!(
            strip("/a?access%5Ftoken=t&access_token=u&&z").as_deref(),
            Some("/a?&z")
        );
        assert_eq!(strip("/a?access_token").as_deref(), Some("/a"));
        for unchanged in [
            "/a",
            "/a?",
            "/a?x=1",
            "/a?access_token_2=t",
            "/a?x=access_token",
            "/a?%zz=1",
        ] {
            assert_eq!(strip(unchanged), None, "{unchanged}");
        }
    }

    #[test]
    fn a_cookie_is_removed_and_the_others_kept_byte_for_byte() {
        let strip = |lines: &[&str]| {
            let lines: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
            cookies_without(&lines, &names(&["sid"]))
                .map(|c| c.map(|c| String::from_utf8(c).unwrap()))
        };
        assert_eq!(
            strip(&["a=1; sid=t; b=\"x y\""]),
            Some(Some("a=1; b=\"x y\"".to_owned()))
        );
        assert_eq!(strip(&["sid=t; a=1"]), Some(Some("a=1".to_owned())));
        assert_eq!(strip(&[" sid = t "]), Some(None));
        assert_eq!(
            strip(&["a=1", "sid=t", "b=2"]),
            Some(Some("a=1; b=2".to_owned()))
        );
        assert_eq!(
            strip(&["a=1; SID=t; sids=2"]),
            None,
            "names are case-sensitive and whole"
        );
        assert_eq!(strip(&[]), None);
    }
}
