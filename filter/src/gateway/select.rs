//! Which API of a gateway a request is for: its authority (exact, `*.suffix`, or any),
//! then its base path (on a segment boundary). Built once at configure; a request costs a
//! scan of the routes, most specific first (a few hundred byte comparisons at 50 APIs).
//!
//! The most specific route wins, whatever the order of the list: an exact authority before
//! a wildcard, a longer wildcard suffix before a shorter one, any authority last; then the
//! longer base path. Two routes of different APIs that can match one request are refused
//! at configure unless one is at least as specific as the other in both respects: the
//! same authority and base path twice, or one route with the more specific authority and
//! the other with the longer base path (`api.example.com` + `/` against `*.example.com` +
//! `/admin`), would leave the choice to an order nobody wrote down.
//!
//! The request's authority is compared as a host name: ASCII case folded, the port and one
//! trailing dot removed (`API.Example.com.:8443` is `api.example.com`). One that is no
//! host name (userinfo, spaces, a second colon outside brackets) matches only a route for
//! any authority. The base path is compared segment by segment, with percent-encoded
//! unreserved characters decoded (`/v%31` is under `/v1`, as the upstream will read it);
//! whatever else is odd in the path (dot segments, `//`, encoded separators) is for the
//! chosen API's own path checks to refuse.

use std::cell::OnceCell;

use crate::config::ApiMatch;
use crate::error::{Location, PolicyError};

/// An authority pattern of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// One host name, lower case, without a trailing dot.
    Exact(String),
    /// Every host name ending in this suffix (`.example.com`), with at least one label
    /// before it.
    Suffix(String),
    /// Any authority, or none.
    Any,
}

impl Pattern {
    /// Reads a configured authority; the error says what to write instead.
    fn parse(text: &str) -> Result<Pattern, String> {
        if text == "*" {
            return Ok(Pattern::Any);
        }
        let (wildcard, name) = match text.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        if name.contains(':') && !name.starts_with('[') {
            return Err(format!(
                "`{text}`: authorities are matched without their port; write the host alone"
            ));
        }
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        let Some(host) = host_name(name.as_bytes()) else {
            return Err(format!(
                "`{text}` is not a host name: write `api.example.com`, `*.example.com` (every \
                 subdomain) or `*` (any authority)"
            ));
        };
        if host != name || (wildcard && host.starts_with('[')) {
            return Err(format!("`{text}` is not a host name"));
        }
        Ok(match wildcard {
            true => Pattern::Suffix(format!(".{host}")),
            false => Pattern::Exact(host),
        })
    }

    /// The request's normalised host name, `None` when it has none or it is no host name.
    fn matches(&self, host: Option<&str>) -> bool {
        match (self, host) {
            (Pattern::Any, _) => true,
            (Pattern::Exact(name), Some(host)) => name == host,
            (Pattern::Suffix(suffix), Some(host)) => {
                host.len() > suffix.len() && host.ends_with(suffix.as_str())
            }
            (_, None) => false,
        }
    }

    /// How specific the pattern is; only compared between patterns that overlap.
    fn rank(&self) -> (u8, usize) {
        match self {
            Pattern::Exact(name) => (2, name.len()),
            Pattern::Suffix(suffix) => (1, suffix.len()),
            Pattern::Any => (0, 0),
        }
    }

    /// Whether one host name can match both patterns.
    fn overlaps(&self, other: &Pattern) -> bool {
        match (self, other) {
            (Pattern::Any, _) | (_, Pattern::Any) => true,
            (Pattern::Exact(a), Pattern::Exact(b)) => a == b,
            (Pattern::Exact(name), suffix @ Pattern::Suffix(_))
            | (suffix @ Pattern::Suffix(_), Pattern::Exact(name)) => suffix.matches(Some(name)),
            (Pattern::Suffix(a), Pattern::Suffix(b)) => {
                a.ends_with(b.as_str()) || b.ends_with(a.as_str())
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Pattern::Exact(name) => name.clone(),
            Pattern::Suffix(suffix) => format!("*{suffix}"),
            Pattern::Any => "any authority".to_owned(),
        }
    }
}

/// One authority and base path of an API.
#[derive(Debug, Clone)]
struct Route {
    authority: Pattern,
    /// The base path's segments; none for `/`.
    base: Vec<String>,
    api: usize,
}

impl Route {
    /// Whether `self` is chosen over `other` for every request both match.
    fn dominates(&self, other: &Route) -> bool {
        self.authority.rank() >= other.authority.rank() && self.base.len() >= other.base.len()
    }

    /// Whether one request can match both.
    fn overlaps(&self, other: &Route) -> bool {
        let nested = |a: &[String], b: &[String]| b.len() >= a.len() && b.starts_with(a);
        self.authority.overlaps(&other.authority)
            && (nested(&self.base, &other.base) || nested(&other.base, &self.base))
    }

    fn describe(&self) -> String {
        format!(
            "{} under /{}",
            self.authority.describe(),
            self.base.join("/")
        )
    }
}

/// One API's `match` as the selector reads it: where it sits in the configuration (for
/// errors) and its name.
pub(crate) struct Entry<'a> {
    pub pointer: String,
    pub name: &'a str,
    pub matcher: Option<&'a ApiMatch>,
}

/// The routes of every API, most specific first.
#[derive(Debug, Clone)]
pub(crate) struct Selector {
    routes: Vec<Route>,
}

impl Selector {
    /// Compiles the APIs' `match`es (an API without one matches every request), refusing
    /// patterns that are not host names, base paths that are not plain paths, and two APIs
    /// that would match one request without one being the more specific.
    pub(crate) fn build(entries: &[Entry<'_>], origin: &str) -> Result<Selector, PolicyError> {
        let mut routes: Vec<Route> = Vec::new();
        for (api, entry) in entries.iter().enumerate() {
            let at = |pointer: String, message: String| PolicyError::Invalid {
                at: Location::new(origin, pointer),
                message,
            };
            let matcher = entry.matcher.cloned().unwrap_or_default();
            let base = match &matcher.base_path {
                Some(path) => base_path(path)
                    .map_err(|m| at(format!("{}/match/base_path", entry.pointer), m))?,
                None => Vec::new(),
            };
            let mut authorities = Vec::new();
            for (k, text) in matcher.authorities.iter().enumerate() {
                let pattern = Pattern::parse(text)
                    .map_err(|m| at(format!("{}/match/authorities/{k}", entry.pointer), m))?;
                authorities.push((pattern, format!("{}/match/authorities/{k}", entry.pointer)));
            }
            if authorities.is_empty() {
                authorities.push((Pattern::Any, format!("{}/match", entry.pointer)));
            }
            for (authority, pointer) in authorities {
                let route = Route {
                    authority,
                    base: base.clone(),
                    api,
                };
                for other in &routes {
                    let (Some(mine), Some(theirs)) = (entries.get(api), entries.get(other.api))
                    else {
                        continue;
                    };
                    let crossed = !route.dominates(other) && !other.dominates(&route);
                    let same = route.dominates(other) && other.dominates(&route);
                    if other.api != api && route.overlaps(other) && (crossed || same) {
                        let why = match same {
                            true => "the same requests",
                            false => "requests where neither is the more specific (one by authority, the other by base path)",
                        };
                        return Err(at(
                            pointer,
                            format!(
                                "API `{}` ({}) and API `{}` at {} ({}) match {why}: give each \
                                 its own authority or base path",
                                mine.name,
                                route.describe(),
                                theirs.name,
                                if theirs.pointer.is_empty() {
                                    "/"
                                } else {
                                    &theirs.pointer
                                },
                                other.describe(),
                            ),
                        ));
                    }
                }
                routes.push(route);
            }
        }
        routes.sort_by(|a, b| {
            (b.authority.rank(), b.base.len()).cmp(&(a.authority.rank(), a.base.len()))
        });
        Ok(Selector { routes })
    }

    /// The API (its index in the configuration) for a request with this `:authority` and
    /// `:path`; `None` when no API has them.
    pub(crate) fn select(&self, authority: Option<&[u8]>, path: &[u8]) -> Option<usize> {
        // Read only when a route asks: a single API for any host at `/` (the common
        // case) needs neither, and building them allocated per request in the VM.
        let host = OnceCell::new();
        let segments = OnceCell::new();
        self.routes
            .iter()
            .find(|route| {
                let authority_matches = matches!(route.authority, Pattern::Any)
                    || (route.authority).matches(
                        host.get_or_init(|| authority.and_then(request_host))
                            .as_deref(),
                    );
                authority_matches
                    && (route.base.is_empty()
                        || under(segments.get_or_init(|| path_segments(path)), &route.base))
            })
            .map(|route| route.api)
    }
}

/// The request's host name: the authority without its port and one trailing dot, in lower
/// case; `None` when it is no host name.
fn request_host(authority: &[u8]) -> Option<String> {
    let host = match authority.first() {
        Some(b'[') => {
            let end = authority.iter().position(|&b| b == b']')?;
            let (host, rest) = authority.split_at(end + 1);
            port(rest)?;
            host
        }
        _ => match authority.iter().rposition(|&b| b == b':') {
            Some(colon) => {
                let (host, rest) = authority.split_at(colon);
                port(rest)?;
                host
            }
            None => authority,
        },
    };
    let host = host.strip_suffix(b".").unwrap_or(host);
    host_name(&host.to_ascii_lowercase())
}

/// `Some` when `rest` is empty or `:` and digits.
fn port(rest: &[u8]) -> Option<()> {
    match rest.split_first() {
        None => Some(()),
        Some((b':', digits)) if digits.iter().all(u8::is_ascii_digit) => Some(()),
        _ => None,
    }
}

/// A lower-case host name (labels of `a-z 0-9 -` joined by dots) or a bracketed IPv6
/// literal, as text; `None` otherwise.
fn host_name(host: &[u8]) -> Option<String> {
    let ok = match host {
        [b'[', inner @ .., b']'] => {
            !inner.is_empty()
                && inner
                    .iter()
                    .all(|b| b.is_ascii_hexdigit() || b":.".contains(b))
        }
        _ => {
            !host.is_empty()
                && host.split(|&b| b == b'.').all(|label| {
                    !label.is_empty()
                        && (label.iter()).all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-'))
                })
        }
    };
    ok.then(|| String::from_utf8_lossy(host).into_owned())
}

/// A configured base path as segments: `/` and letters, digits and `-._~` only, no empty,
/// `.` or `..` segment; a trailing `/` is ignored.
fn base_path(text: &str) -> Result<Vec<String>, String> {
    let refuse = || {
        format!(
            "`{text}` is not a plain base path: write `/` and segments of letters, digits and \
             `-._~` (`/v1`, `/shop/v2`), as in the document's `servers`"
        )
    };
    let rest = text.strip_prefix('/').ok_or_else(refuse)?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let segments: Vec<String> = rest.split('/').map(str::to_owned).collect();
    let plain = |s: &String| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    };
    if segments.iter().all(plain) {
        Ok(segments)
    } else {
        Err(refuse())
    }
}

/// The path's segments before the query, each with its percent-encoded unreserved
/// characters decoded; a path that does not start with `/` has none (only `/` routes
/// take it, and the API's path checks refuse it).
fn path_segments(path: &[u8]) -> Vec<Vec<u8>> {
    let end = path.iter().position(|&b| b == b'?' || b == b'#');
    let path = end.map_or(path, |end| path.get(..end).unwrap_or_default());
    let Some(rest) = path.strip_prefix(b"/") else {
        return Vec::new();
    };
    rest.split(|&b| b == b'/').map(decode_unreserved).collect()
}

fn decode_unreserved(segment: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(segment.len());
    let mut rest = segment;
    while let Some((&byte, tail)) = rest.split_first() {
        let decoded = match (byte, tail) {
            (b'%', [high, low, ..]) => hex(*high)
                .zip(hex(*low))
                .map(|(h, l)| h << 4 | l)
                .filter(|b| b.is_ascii_alphanumeric() || b"-._~".contains(b)),
            _ => None,
        };
        match (decoded, tail.get(2..)) {
            (Some(decoded), Some(after)) => {
                out.push(decoded);
                rest = after;
            }
            _ => {
                out.push(byte);
                rest = tail;
            }
        }
    }
    out
}

fn hex(digit: u8) -> Option<u8> {
    (digit as char)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Whether the path's segments start with the base's.
fn under(segments: &[Vec<u8>], base: &[String]) -> bool {
    segments.len() >= base.len()
        && base
            .iter()
            .zip(segments)
            .all(|(want, got)| want.as_bytes() == got.as_slice())
}

/// Where an API of the `apis:` list sits in the configuration.
pub(crate) fn api_pointer(index: usize) -> String {
    format!("/apis/{index}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn matcher(authorities: &[&str], base: Option<&str>) -> ApiMatch {
        ApiMatch {
            authorities: authorities.iter().map(|a| (*a).to_owned()).collect(),
            base_path: base.map(str::to_owned),
        }
    }

    fn build(apis: &[(&str, ApiMatch)]) -> Result<Selector, PolicyError> {
        let entries: Vec<Entry<'_>> = (apis.iter().enumerate())
            .map(|(i, (name, m))| Entry {
                pointer: api_pointer(i),
                name,
                matcher: Some(m),
            })
            .collect();
        Selector::build(&entries, "gw.yaml")
    }

    fn pick(selector: &Selector, authority: &str, path: &str) -> Option<usize> {
        selector.select(Some(authority.as_bytes()), path.as_bytes())
    }

    #[test]
    fn authorities_are_host_names_whatever_their_case_port_or_trailing_dot() {
        let s = build(&[
            ("pets", matcher(&["pets.example.com"], None)),
            ("shop", matcher(&["Shop.Example.com."], None)),
        ])
        .unwrap();
        for authority in [
            "pets.example.com",
            "PETS.example.COM",
            "pets.example.com:8443",
            "pets.example.com.",
            "pets.example.com.:80",
        ] {
            assert_eq!(pick(&s, authority, "/v1/pets"), Some(0), "{authority}");
        }
        assert_eq!(pick(&s, "shop.example.com", "/"), Some(1));
        for authority in [
            "pets.example.com..",
            "pets.example.com:x",
            "user@pets.example.com",
            "pets.example.com.evil.net",
            "evil.net#pets.example.com",
            "pets.example.com:80:80",
            "",
        ] {
            assert_eq!(pick(&s, authority, "/v1/pets"), None, "{authority}");
        }
        assert_eq!(s.select(None, b"/v1/pets"), None, "no authority");
    }

    #[test]
    fn wildcards_take_subdomains_only_and_exact_names_win() {
        let s = build(&[
            ("any-tenant", matcher(&["*.example.com"], None)),
            ("admin", matcher(&["admin.example.com"], None)),
            ("deep", matcher(&["*.eu.example.com"], None)),
            ("v6", matcher(&["[::1]"], None)),
        ])
        .unwrap();
        assert_eq!(pick(&s, "a.example.com", "/"), Some(0));
        assert_eq!(pick(&s, "admin.example.com", "/"), Some(1));
        assert_eq!(pick(&s, "x.eu.example.com", "/"), Some(2));
        assert_eq!(pick(&s, "eu.example.com", "/"), Some(0));
        assert_eq!(
            pick(&s, "example.com", "/"),
            None,
            "the apex is not a subdomain"
        );
        assert_eq!(pick(&s, "badexample.com", "/"), None);
        assert_eq!(pick(&s, "[::1]:8080", "/"), Some(3));
    }

    #[test]
    fn the_longest_base_path_wins_on_a_segment_boundary() {
        let s = build(&[
            ("root", matcher(&["api.example.com"], None)),
            ("v1", matcher(&["api.example.com"], Some("/v1/"))),
            ("v1-admin", matcher(&["api.example.com"], Some("/v1/admin"))),
        ])
        .unwrap();
        let cases = [
            ("/v1", 1),
            ("/v1/pets?x=/v1/admin", 1),
            ("/v1/admin", 2),
            ("/v1/admin/users", 2),
            ("/v1/administrators", 1),
            ("/v10/pets", 0),
            ("/V1/pets", 0),
            ("/v%31/pets", 1),
            ("/v1/%61dmin/users", 2),
            ("/v1%2Fadmin/users", 0),
            ("//v1/pets", 0),
            ("/", 0),
            ("*", 0),
            ("http://api.example.com/v1/pets", 0),
        ];
        for (path, api) in cases {
            assert_eq!(pick(&s, "api.example.com", path), Some(api), "{path}");
        }
    }

    #[test]
    fn no_authorities_match_any_but_specific_ones_win() {
        let s = build(&[
            ("fallback", matcher(&[], None)),
            ("pets", matcher(&["pets.example.com"], Some("/v1"))),
        ])
        .unwrap();
        assert_eq!(pick(&s, "pets.example.com", "/v1/pets"), Some(1));
        assert_eq!(pick(&s, "pets.example.com", "/v2/pets"), Some(0));
        assert_eq!(pick(&s, "user@host", "/v1/pets"), Some(0));
        assert_eq!(s.select(None, b"/v1/pets"), Some(0));
    }

    #[test]
    fn ambiguous_apis_are_refused_with_both_named() {
        let refused = |apis: &[(&str, ApiMatch)]| build(apis).unwrap_err();
        let e = refused(&[
            ("a", matcher(&["api.example.com"], Some("/v1"))),
            ("b", matcher(&["API.example.com."], Some("/v1/"))),
        ]);
        assert_eq!(e.location().unwrap().pointer, "/apis/1/match/authorities/0");
        assert!(
            e.to_string().contains("`b`") && e.to_string().contains("/apis/0"),
            "{e}"
        );
        assert!(e.to_string().contains("the same requests"), "{e}");
        let e = refused(&[
            ("tenants", matcher(&["*.example.com"], Some("/admin"))),
            ("api", matcher(&["api.example.com"], None)),
        ]);
        assert!(
            e.to_string().contains("neither is the more specific"),
            "{e}"
        );
        let e = refused(&[
            ("a", matcher(&["*.example.com"], None)),
            ("b", matcher(&["other.net", "*.EXAMPLE.com"], None)),
        ]);
        assert_eq!(e.location().unwrap().pointer, "/apis/1/match/authorities/1");
        let e = refused(&[("a", matcher(&[], None)), ("b", matcher(&["*"], Some("/")))]);
        assert!(e.to_string().contains("the same requests"), "{e}");
        // Overlapping wildcards are ordered by their suffix; disjoint ones never meet.
        assert!(build(&[
            ("a", matcher(&["*.example.com"], None)),
            ("b", matcher(&["*.eu.example.com"], Some("/v1"))),
            ("c", matcher(&["*.example.net"], None)),
        ])
        .is_ok());
        // One API may list an authority twice.
        assert!(build(&[("a", matcher(&["a.example.com", "A.example.com"], None))]).is_ok());
    }

    #[test]
    fn arbitrary_authorities_and_paths_never_panic_and_only_any_takes_non_hosts() {
        let s = build(&[
            (
                "a",
                matcher(&["a.example.com", "*.b.example.com", "[::1]"], Some("/v1")),
            ),
            ("any", matcher(&["*"], None)),
        ])
        .unwrap();
        let alphabet = b"aA.:[]%31/v1x@-*?#\\x00\xff ";
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let mut bytes = |len: u64| -> Vec<u8> {
                (0..next() % len)
                    .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                    .collect()
            };
            let (authority, path) = (bytes(24), bytes(24));
            let picked = s.select(Some(&authority), &path);
            if request_host(&authority).is_none() {
                assert_ne!(picked, Some(0), "{authority:?} {path:?}");
            }
        }
    }

    #[test]
    fn bad_patterns_and_base_paths_say_what_to_write() {
        for (authority, says) in [
            ("api.example.com:8443", "without their port"),
            ("api example.com", "not a host name"),
            ("*.*.example.com", "not a host name"),
            ("https://api.example.com", "without their port"),
            ("", "not a host name"),
        ] {
            let e = build(&[("a", matcher(&[authority], None))]).unwrap_err();
            assert!(e.to_string().contains(says), "{authority}: {e}");
            assert_eq!(e.location().unwrap().pointer, "/apis/0/match/authorities/0");
        }
        for base in ["v1", "/v1//x", "/v1/../x", "/v%31", "/v1?x", "/v 1"] {
            let e = build(&[("a", matcher(&[], Some(base)))]).unwrap_err();
            assert_eq!(
                e.location().unwrap().pointer,
                "/apis/0/match/base_path",
                "{base}"
            );
        }
    }
}
