//! The resolved identity, as changes to the request headers the upstream receives.
//!
//! Every header the filter owns (`claim_to_headers`, the API-key consumer header) that a
//! request carries is removed first, whether or not the operation needs credentials, so
//! a client cannot spoof an identity the upstream trusts. Then the identity's headers are
//! set, and a token header not configured to be forwarded is removed ([`strip_token`]
//! does the same for a token in the query or a cookie). Each change is a host call, so a
//! header the request does not carry is not removed again. Underscore twins of the
//! managed headers go too.

use super::HeaderChange;
use crate::policy::Policy;
use crate::request::Identity;

/// `request`: the request's regular headers as read before the inspection (names
/// lowercase, as are the names the policy manages).
pub(super) fn identity_headers(
    policy: &Policy,
    identity: Option<&Identity>,
    request: &[(&str, &str)],
) -> Vec<HeaderChange> {
    let remove = |name: &str| HeaderChange::Set(name.to_owned(), None);
    // Twins of a managed header (`x_user` beside `x-user`; see
    // [`crate::security::Security::twins_a_managed_header`]), so the upstream sees only
    // the header the filter set. The shipped Envoy configs refuse header names with
    // underscores before they get here; this holds under a config that lets them through.
    let twins = request
        .iter()
        .filter(|(name, _)| policy.security.twins_a_managed_header(name))
        .map(|(name, _)| remove(name));
    let carried = |name: &str| request.iter().any(|(n, _)| *n == name);
    let managed = (policy.security.managed_headers())
        .filter(|name| carried(name))
        .map(remove);
    let mut changes: Vec<HeaderChange> = twins.chain(managed).collect();
    let Some(identity) = identity else {
        return changes;
    };
    changes.extend(identity.remove.iter().map(|name| remove(name)));
    changes.extend(
        identity
            .headers
            .iter()
            .map(|(name, value)| HeaderChange::Set(name.clone(), Some(value.as_bytes().to_vec()))),
    );
    changes
}

/// Removes a token not to be forwarded that came in the query or a cookie: `:path`
/// rewritten without its parameter, the `Cookie` header without its cookie, every other
/// byte as the client sent it. `path` and `cookies` are the raw bytes of `:path` and the
/// `Cookie` lines.
pub(super) fn strip_token(
    identity: Option<&Identity>,
    path: &[u8],
    cookies: &[&[u8]],
) -> Vec<HeaderChange> {
    let Some(identity) = identity else {
        return Vec::new();
    };
    let path = identity
        .upstream_path(path)
        .map(|path| HeaderChange::Set(":path".to_owned(), Some(path)));
    let cookie = identity
        .upstream_cookie(cookies)
        .map(|cookie| HeaderChange::Set("cookie".to_owned(), cookie));
    path.into_iter().chain(cookie).collect()
}
