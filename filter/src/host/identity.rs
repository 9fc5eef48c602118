//! The resolved identity, as request headers for the upstream.
//!
//! Every header the filter owns (`claim_to_headers`, the API-key consumer header) that a
//! request carries is removed first, whether or not the operation needs credentials, so
//! a client cannot spoof an identity the upstream trusts. Then the identity's headers are
//! set, and a token header not configured to be forwarded is removed ([`strip_token`]
//! does the same for a token in the query or a cookie). Each change is a host call, so a
//! header the request does not carry is not removed again. Underscore twins of the
//! managed headers go too ([`remove_twins`]).

use proxy_wasm::types::MapType;

use super::set_header;
use crate::policy::Policy;
use crate::security::Identity;

/// `request`: the request's headers as read before the inspection (names lowercase, as
/// are the names the policy manages).
pub fn apply(policy: &Policy, identity: Option<&Identity>, request: &[(&str, &str)]) {
    let set =
        |name: &str, value: Option<&[u8]>| set_header(MapType::HttpRequestHeaders, name, value);
    remove_twins(policy, request);
    let carried = |name: &str| request.iter().any(|(n, _)| *n == name);
    for name in policy
        .security
        .managed_headers()
        .filter(|name| carried(name))
    {
        set(name, None);
    }
    let Some(identity) = identity else {
        return;
    };
    for name in &identity.remove {
        set(name, None);
    }
    for (name, value) in &identity.headers {
        set(name, Some(value.as_bytes()));
    }
}

/// Removes a token not to be forwarded that came in the query or a cookie: `:path`
/// rewritten without its parameter, the `Cookie` header without its cookie, every other
/// byte as the client sent it. Must run in the request-headers callback, before the
/// headers go on. `path` and `cookies` are the raw bytes of `:path` and the `Cookie` lines.
pub fn strip_token(identity: Option<&Identity>, path: &[u8], cookies: &[&[u8]]) {
    let Some(identity) = identity else {
        return;
    };
    if let Some(path) = identity.upstream_path(path) {
        set_header(MapType::HttpRequestHeaders, ":path", Some(&path));
    }
    if let Some(cookie) = identity.upstream_cookie(cookies) {
        set_header(MapType::HttpRequestHeaders, "cookie", cookie.as_deref());
    }
}

/// Removes every request header that twins a managed one (`x_user` beside `x-user`; see
/// [`crate::security::Security::twins_a_managed_header`]), so the upstream sees only the
/// header the filter set. The shipped Envoy configs refuse header names with underscores
/// (`headers_with_underscores_action: REJECT_MapType::HttpRequestHeaders`) before they get here; this holds
/// under a config that lets them through.
fn remove_twins(policy: &Policy, request: &[(&str, &str)]) {
    let twins = request
        .iter()
        .filter(|(name, _)| policy.security.twins_a_managed_header(name));
    for (name, _) in twins {
        set_header(MapType::HttpRequestHeaders, name, None);
    }
}
