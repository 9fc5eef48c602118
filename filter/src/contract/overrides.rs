//! Method and URL override channels: headers and a query parameter through which a
//! request asks the upstream to treat it as another method or another path.
//!
//! Many frameworks honour them (`X-HTTP-Method-Override` in Express's `method-override`,
//! Symfony, Laravel, ASP.NET; `_method` in Rails, Laravel and Symfony; `X-Original-URL` and
//! `X-Rewrite-URL` in IIS and Symfony). Through one, a `GET` the filter checked as a `GET`
//! becomes a `DELETE` upstream, skipping the `DELETE`'s scopes and contract; a request to
//! one path becomes a request to another. So they are refused (`request.override`) unless
//! the operation declares the channel as a parameter of its own, whose schema then says
//! what it may carry.
//!
//! Names are compared without regard to case, and with `_` and `-` as the same character:
//! Envoy forwards header names with underscores by default
//! (`headers_with_underscores_action: ALLOW`), and CGI-style servers (PHP, WSGI, Rack)
//! turn `-` into `_`, so `x_http_method_override` reaches the application as the same
//! variable. A declared parameter covers only the name as declared (headers: any case),
//! because that is the only one the contract reads. In the query, a name that old parsers
//! would see after a raw `;` (`?a=1;_method=DELETE`) is refused even when declared, as
//! the contract reads it as part of `a`.

use crate::contract::params::{In, ParamSpec};
use crate::contract::percent::form_decode;

/// Headers through which a request names another method or path.
pub(crate) const HEADERS: [&str; 5] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-url",
    "x-rewrite-url",
];

/// Query parameters through which a request names another method.
pub(crate) const QUERY: [&str; 1] = ["_method"];

/// An override channel a request uses: where and which (the canonical name above, never
/// the request's spelling, so it can be shown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Channel {
    pub location: &'static str,
    pub name: &'static str,
}

/// The first override channel the request uses that `declared` (the operation's
/// parameters) does not declare. Linear in the headers and the query.
pub(crate) fn find(
    headers: &[(&str, &str)],
    query: Option<&[u8]>,
    declared: &[ParamSpec],
) -> Option<Channel> {
    let declares = |location: In, name: &str| {
        declared.iter().any(|p| {
            p.location == location
                && match location {
                    In::Header => p.name.eq_ignore_ascii_case(name),
                    _ => p.name == name,
                }
        })
    };
    for (name, _) in headers {
        if let Some(channel) = channel(&HEADERS, name) {
            if !declares(In::Header, name) {
                return Some(Channel {
                    location: "header",
                    name: channel,
                });
            }
        }
    }
    for pair in query.unwrap_or_default().split(|&b| b == b'&') {
        // The pair's own name, then what a parser that splits on `;` would take for names.
        let mut pieces = pair.split(|&b| b == b';');
        let own = pieces.next().unwrap_or_default();
        let hidden = pieces.map(|piece| (piece, false));
        for (piece, proper) in std::iter::once((own, true)).chain(hidden) {
            let raw = piece.split(|&b| b == b'=').next().unwrap_or_default();
            let Some(name) = form_decode(raw) else {
                continue;
            };
            if let Some(channel) = channel(&QUERY, &name) {
                if !(proper && declares(In::Query, &name)) {
                    return Some(Channel {
                        location: "query",
                        name: channel,
                    });
                }
            }
        }
    }
    None
}

/// The channel of `names` that `name` spells, ignoring case and `_`/`-`.
fn channel(names: &[&'static str], name: &str) -> Option<&'static str> {
    let same =
        |a: u8, b: u8| a.eq_ignore_ascii_case(&b) || (b"-_".contains(&a) && b"-_".contains(&b));
    names.iter().copied().find(|candidate| {
        candidate.len() == name.len()
            && candidate.bytes().zip(name.bytes()).all(|(a, b)| same(a, b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::params::Style;
    use crate::contract::shape::{Shape, Types};

    fn param(name: &str, location: In) -> ParamSpec {
        ParamSpec {
            name: name.to_owned(),
            location,
            style: Style::default_for(location),
            explode: false,
            shape: Shape::Scalar(Types::STRING),
            required: false,
            allow_empty_value: false,
            allow_reserved: false,
        }
    }

    fn found(headers: &[(&str, &str)], query: &str, declared: &[ParamSpec]) -> Option<String> {
        let query = (!query.is_empty()).then_some(query.as_bytes());
        find(headers, query, declared).map(|c| format!("{} {}", c.location, c.name))
    }

    #[test]
    fn every_channel_is_found_in_any_spelling() {
        for name in [
            "x-http-method-override",
            "X-HTTP-Method-Override",
            "x_http_method_override",
            "X_Http-Method_Override",
        ] {
            assert_eq!(
                found(&[(name, "DELETE")], "", &[]).as_deref(),
                Some("header x-http-method-override"),
                "{name}"
            );
        }
        for name in HEADERS {
            assert!(found(&[(name, "x")], "", &[]).is_some(), "{name}");
        }
        for query in [
            "_method=DELETE",
            "a=1&_METHOD=DELETE",
            "%5Fmethod=DELETE",
            "-method=DELETE",
            "_method",
            "a=1;_method=DELETE",
        ] {
            assert_eq!(
                found(&[], query, &[]).as_deref(),
                Some("query _method"),
                "{query}"
            );
        }
    }

    #[test]
    fn look_alikes_are_not_channels() {
        for name in [
            "x-http-method-overrides",
            "x-method",
            "x-original-uri",
            "method",
        ] {
            assert_eq!(found(&[(name, "DELETE")], "", &[]), None, "{name}");
        }
        for query in ["method=DELETE", "_methods=1", "q=_method", "a=%zz"] {
            assert_eq!(found(&[], query, &[]), None, "{query}");
        }
    }

    #[test]
    fn a_declared_channel_is_the_contracts_to_check_in_its_declared_spelling_only() {
        let declared = [
            param("X-HTTP-Method-Override", In::Header),
            param("_method", In::Query),
        ];
        assert_eq!(
            found(
                &[("x-http-method-override", "DELETE")],
                "_method=DELETE",
                &declared
            ),
            None
        );
        assert_eq!(
            found(&[("x_http_method_override", "DELETE")], "", &declared).as_deref(),
            Some("header x-http-method-override")
        );
        assert_eq!(
            found(&[], "_METHOD=DELETE", &declared).as_deref(),
            Some("query _method")
        );
        assert_eq!(
            found(&[], "a=1;_method=DELETE", &declared).as_deref(),
            Some("query _method"),
            "the contract reads this `_method` as part of `a`"
        );
        let elsewhere = [param("_method", In::Cookie)];
        assert!(found(&[], "_method=DELETE", &elsewhere).is_some());
    }
}
