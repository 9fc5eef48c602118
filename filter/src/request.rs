//! The request as the engine sees it: its head as the host read it, its method, and —
//! once its credentials were accepted — who sent it. Every subsystem reads these; they
//! depend on nothing else in the crate.

use std::borrow::Cow;

/// What the engine needs of a request head, as the host has it.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    /// The `:method` pseudo-header, as sent (methods are case-sensitive).
    pub method: &'a [u8],
    /// The `:path` pseudo-header: path and query, as Envoy will route it.
    pub path: &'a [u8],
    /// The regular headers, names lowercase as Envoy gives them.
    pub headers: &'a [(&'a str, &'a str)],
    /// Whether a body stream follows the head. It may still turn out empty (a zero-length
    /// chunked body, an HTTP/2 empty DATA frame): [`crate::Policy::inspect_body`] then reads it as
    /// no body at all.
    pub has_body: bool,
}

impl RequestHead<'_> {
    /// The body length the head announces (`Content-Length`), when it parses.
    pub fn content_length(&self) -> Option<usize> {
        header_values(self.headers, "content-length")
            .next()
            .and_then(|l| l.trim().parse().ok())
    }

    /// A GET or HEAD with a body stream whose length the head does not announce: whether a
    /// body is there (`anomaly.body_on_get`) is only known at its first byte.
    pub(crate) fn body_on_get_pending(&self) -> bool {
        self.has_body
            && matches!(
                Method::from_request(self.method),
                Some(Method::Get | Method::Head)
            )
            && self.content_length().is_none_or(|l| l == 0)
    }
}

/// The HTTP methods an OpenAPI 3.0/3.1 path item can declare, in the order of the path
/// item's fields (which is also the order of the `Allow` header we send).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// `GET`
    Get,
    /// `PUT`
    Put,
    /// `POST`
    Post,
    /// `DELETE`
    Delete,
    /// `OPTIONS`
    Options,
    /// `HEAD`
    Head,
    /// `PATCH`
    Patch,
    /// `TRACE`
    Trace,
}

impl Method {
    /// Every method, in the path item's order.
    pub const ALL: [Method; 8] = [
        Method::Get,
        Method::Put,
        Method::Post,
        Method::Delete,
        Method::Options,
        Method::Head,
        Method::Patch,
        Method::Trace,
    ];

    /// Parses a request method. Methods are case-sensitive (RFC 9110 §9.1): `get` is not
    /// `GET`, and is as undeclared as `PROPFIND`.
    pub fn from_request(method: &[u8]) -> Option<Method> {
        Method::ALL
            .into_iter()
            .find(|m| m.as_str().as_bytes() == method)
    }

    /// The method as sent on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Head => "HEAD",
            Method::Patch => "PATCH",
            Method::Trace => "TRACE",
        }
    }

    /// The key of this method's operation in an OpenAPI path item.
    pub const fn openapi_key(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Put => "put",
            Method::Post => "post",
            Method::Delete => "delete",
            Method::Options => "options",
            Method::Head => "head",
            Method::Patch => "patch",
            Method::Trace => "trace",
        }
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

/// Who made a request, once its credentials were accepted. Available to later stages
/// (rate limits, events) through the verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The JWT provider that accepted a token.
    pub provider: Option<String>,
    /// The token's `sub`.
    pub subject: Option<String>,
    /// The consumer an API key belongs to.
    pub consumer: Option<String>,
    /// Every scope granted by the accepted credentials.
    pub scopes: Vec<String>,
    /// Headers to set on the request sent upstream (`claim_to_headers`, consumer).
    pub headers: Vec<(String, String)>,
    /// Headers that carried a token not to be forwarded upstream.
    pub remove: Vec<String>,
    /// Query parameters (decoded names) that carried a token not to be forwarded.
    pub remove_params: Vec<String>,
    /// Cookies that carried a token not to be forwarded.
    pub remove_cookies: Vec<String>,
}

/// Bytes of a request as text, lossily: borrowed when they are valid UTF-8, owned (with
/// U+FFFD for what is not) only when they are not, so the variant also says which.
/// Valid text is checked by `from_utf8`, which strides over ASCII a word at a time;
/// `from_utf8_lossy` alone walks byte by byte, and a JWT header made that walk a visible
/// share of a request's time in the VM.
pub(crate) fn lossy(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// The values of one header, in order; names are lowercase in Envoy.
pub(crate) fn header_values<'h>(
    headers: &'h [(&'h str, &'h str)],
    name: &'h str,
) -> impl Iterator<Item = &'h str> + 'h {
    headers
        .iter()
        .filter(move |(n, _)| *n == name)
        .map(|(_, v)| *v)
}
