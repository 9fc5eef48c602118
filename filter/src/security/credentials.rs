//! Where credentials are in a request — headers (with an auth-scheme prefix), query
//! parameters, cookies — read once per request for every scheme to look into, and only
//! where a scheme looks: most read a header, and then the query and cookies are never
//! parsed.

use std::cell::OnceCell;

use crate::inspect::RequestHead;
use crate::params;

/// Where a credential is read from a request.
#[derive(Debug, Clone)]
pub enum Place {
    Header { name: String, prefix: String },
    Query(String),
    Cookie(String),
}

/// The places credentials can be in, each parsed on its first look, once per request.
pub struct Credentials<'a> {
    headers: &'a [(&'a str, &'a str)],
    path: &'a [u8],
    query: OnceCell<Vec<(String, String)>>,
    cookies: OnceCell<Vec<(String, String)>>,
}

impl<'a> Credentials<'a> {
    pub fn read(head: &RequestHead<'a>) -> Credentials<'a> {
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
    pub fn find(&self, location: &Place) -> Vec<(Option<&'a str>, &str)> {
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

fn pairs<'s>(pairs: &'s [(String, String)], name: &str) -> Vec<(Option<&'static str>, &'s str)> {
    pairs
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| (None, v.as_str()))
        .collect()
}
