//! Token checks: who may call which operation, from the document's `securitySchemes`
//! and per-operation `security`, enforced with the policy's `security` settings.
//!
//! An operation's requirement is a list of alternatives, each a set of schemes that
//! must all hold (OpenAPI 3 "Security Requirement Object"). `oauth2`, `openIdConnect`
//! and `http` `bearer` schemes are JWTs checked by the provider of the same name
//! ([`Provider`]; tokens in [`jwt`], keys from [`jwks`]); `apiKey` schemes are keys
//! checked against stored hashes ([`apikey`]). Everything is compiled at configure time
//! from [`settings`]; a request only reads its credentials (`credentials`), verifies them
//! (or finds them in the [`cache`]) and compares scopes.
//!
//! The document's requirements are enforced only when the policy has a `security` key,
//! so that adding a contract that merely documents its security does not lock clients
//! out before keys are configured; once the key is there, every scheme a requirement
//! uses must be configured, or the policy is refused (a declared scheme no requirement
//! uses needs nothing: [`Security::unconfigured_schemes`] names them for a warning).
//!
//! Remote key sets are fetched by the host and installed in a [`KeyRing`], which also
//! holds the token cache: what changes while the policy serves lives there, owned by the
//! host's root and passed to each check, never in the compiled policy.

pub(crate) mod apikey;
pub(crate) mod cache;
mod credentials;
pub(crate) mod jwks;
pub(crate) mod jwt;
mod provider;
mod ring;
pub(crate) mod rsa;
pub(crate) mod settings;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::rc::Rc;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::contract::openapi::{SecurityRequirement, SecurityScheme};
use crate::error::{pointer_token, Location, PolicyError};
use crate::request::{Identity, RequestHead};
use crate::verdict::{RuleId, Violation};
use apikey::ApiKey;
use cache::Claims;
use credentials::{Credentials, Place};
use jwt::TokenError;
pub(crate) use provider::Provider;
pub(crate) use provider::Remote;
pub use ring::KeyRing;
use settings::{KeysUnavailable, SecuritySettings};

impl Identity {
    /// The `:path` to send upstream when a token not to be forwarded came in the query:
    /// `path` without that parameter, every other byte as it came. `None`: unchanged.
    pub fn upstream_path(&self, path: &[u8]) -> Option<Vec<u8>> {
        if self.remove_params.is_empty() {
            return None;
        }
        credentials::path_without_params(path, &self.remove_params)
    }

    /// The `Cookie` header to send upstream when a token not to be forwarded came in a
    /// cookie: the request's `Cookie` lines without it, the other cookies byte for byte.
    /// `None`: unchanged; `Some(None)`: no cookie is left, remove the header.
    pub fn upstream_cookie(&self, lines: &[&[u8]]) -> Option<Option<Vec<u8>>> {
        if self.remove_cookies.is_empty() {
            return None;
        }
        credentials::cookies_without(lines, &self.remove_cookies)
    }

    /// How a security event names the client: the API-key consumer id as configured (an
    /// operator's own label), else `sub:` and the first 16 bytes of SHA-256 over the
    /// provider and subject, so events correlate a client without carrying who it is.
    pub fn label(&self) -> Option<String> {
        if let Some(consumer) = &self.consumer {
            return Some(format!("consumer:{consumer}"));
        }
        let subject = self.subject.as_deref()?;
        let provider = self.provider.as_deref().unwrap_or_default();
        let digest = Sha256::digest(format!("{provider}\n{subject}").as_bytes());
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        Some(format!("sub:{hex}"))
    }
}

/// A compiled `apiKey` scheme.
#[derive(Debug)]
struct KeyScheme {
    location: Place,
    keys: Vec<ApiKey>,
}

#[derive(Debug)]
enum Scheme {
    Jwt(usize),
    ApiKey(KeyScheme),
    /// Declared by the document but not configured in the policy (no provider, no
    /// keys): fine while no requirement uses it, and refused where one does, with
    /// this pointer (into the policy) and message.
    Unconfigured {
        pointer: &'static str,
        message: String,
    },
}

/// One scheme of an alternative with the scopes it must grant.
#[derive(Debug)]
struct Need {
    scheme: usize,
    scopes: Vec<String>,
}

/// The compiled `security` of the policy.
#[derive(Debug, Default)]
pub struct Security {
    pub providers: Vec<Provider>,
    schemes: Vec<(String, Scheme)>,
    /// Per operation id: the alternatives; empty means no credentials are needed.
    operations: Vec<Vec<Vec<Need>>>,
    /// The policy's name in errors, for a requirement that uses an unconfigured scheme.
    policy_origin: String,
    enabled: bool,
    max_token_bytes: usize,
    keys_unavailable: KeysUnavailable,
    consumer_header: String,
    /// The token cache's size, for each [`KeyRing`].
    token_cache_entries: usize,
}

/// What one scheme made of a request.
enum Outcome {
    Missing,
    Invalid(Cow<'static, str>),
    Unavailable,
    Valid(Credential),
}

#[derive(Default)]
struct Credential {
    scopes: Vec<String>,
    identity: Identity,
}

impl Security {
    /// Compiles the settings against the document's schemes. `origin` names the policy.
    pub fn compile(
        settings: Option<SecuritySettings>,
        schemes: &BTreeMap<String, SecurityScheme>,
        origin: &str,
        doc_origin: &str,
    ) -> Result<Security, PolicyError> {
        let Some(settings) = settings else {
            return Ok(Security::default());
        };
        let invalid = |pointer: String, message: String| PolicyError::Invalid {
            at: Location::new(origin, pointer),
            message,
        };
        let mut providers = Vec::new();
        for (name, provider) in settings.providers {
            let at = format!("/security/providers/{}", pointer_token(&name));
            providers.push(provider::compile(name, provider, &at).map_err(|(p, m)| invalid(p, m))?);
        }
        let mut api_keys = settings.api_keys;
        let mut compiled = Vec::new();
        for (name, scheme) in schemes {
            let at = format!("/components/securitySchemes/{}", pointer_token(name));
            let doc_error = |message: String| PolicyError::Invalid {
                at: Location::new(doc_origin, at.clone()),
                message,
            };
            let kind = scheme.kind.as_deref().unwrap_or_default();
            let jwt = match (kind, scheme.scheme.as_deref()) {
                ("oauth2" | "openIdConnect", _) => true,
                ("http", Some(s)) if s.eq_ignore_ascii_case("bearer") => true,
                ("apiKey", _) => false,
                _ => {
                    return Err(doc_error(format!(
                        "security scheme type `{kind}` is not supported: apiguard checks \
                         `oauth2`, `openIdConnect`, `http` `bearer` (JWT) and `apiKey`"
                    )))
                }
            };
            let compiled_scheme = if jwt {
                match providers.iter().position(|p| &p.name == name) {
                    Some(index) => Scheme::Jwt(index),
                    None => Scheme::Unconfigured {
                        pointer: "/security/providers",
                        message: format!(
                            "the document's security scheme `{name}` needs a JWT provider of \
                             the same name"
                        ),
                    },
                }
            } else {
                let param = scheme.name.clone().unwrap_or_default();
                let location =
                    match scheme.location.as_deref() {
                        Some("header") => Place::Header {
                            name: param.to_ascii_lowercase(),
                            prefix: String::new(),
                        },
                        Some("query") => Place::Query(param),
                        Some("cookie") => Place::Cookie(param),
                        _ => return Err(doc_error(
                            "an `apiKey` scheme needs `in` (header, query or cookie) and `name`"
                                .to_owned(),
                        )),
                    };
                let Some(keys) = api_keys.remove(name) else {
                    compiled.push((
                        name.clone(),
                        Scheme::Unconfigured {
                            pointer: "/security/api_keys",
                            message: format!("the document's `apiKey` scheme `{name}` has no keys"),
                        },
                    ));
                    continue;
                };
                let keys = keys
                    .into_iter()
                    .enumerate()
                    .map(|(i, key)| {
                        let sha256 = apikey::parse_hash(&key.sha256).ok_or_else(|| {
                            invalid(
                                format!("/security/api_keys/{}/{i}/sha256", pointer_token(name)),
                                "must be a hex SHA-256 digest (64 hex digits)".to_owned(),
                            )
                        })?;
                        Ok(ApiKey {
                            sha256,
                            consumer: key.consumer,
                            scopes: key.scopes,
                        })
                    })
                    .collect::<Result<_, PolicyError>>()?;
                Scheme::ApiKey(KeyScheme { location, keys })
            };
            compiled.push((name.clone(), compiled_scheme));
        }
        if let Some(unused) = api_keys.keys().next() {
            return Err(invalid(
                format!("/security/api_keys/{}", pointer_token(unused)),
                "names no `apiKey` security scheme of the document".to_owned(),
            ));
        }
        Ok(Security {
            providers,
            schemes: compiled,
            operations: Vec::new(),
            policy_origin: origin.to_owned(),
            enabled: true,
            max_token_bytes: settings.max_token_bytes,
            keys_unavailable: settings.keys_unavailable,
            consumer_header: settings.consumer_header.to_ascii_lowercase(),
            token_cache_entries: settings.token_cache_entries,
        })
    }

    /// Compiles the requirement of the next operation (operations are added in id
    /// order): its own `security`, else the document's.
    pub fn add_operation(
        &mut self,
        requirement: Option<&Vec<SecurityRequirement>>,
        pointer: &str,
        doc_origin: &str,
    ) -> Result<(), PolicyError> {
        let mut alternatives = Vec::new();
        if self.enabled {
            for (i, alternative) in requirement.into_iter().flatten().enumerate() {
                let mut needs = Vec::new();
                for (name, scopes) in alternative {
                    let scheme = self
                        .schemes
                        .iter()
                        .position(|(n, _)| n == name)
                        .ok_or_else(|| PolicyError::Invalid {
                            at: Location::new(
                                doc_origin,
                                format!("{pointer}/security/{i}/{}", pointer_token(name)),
                            ),
                            message: "names no scheme in `components.securitySchemes`".to_owned(),
                        })?;
                    if let Some((
                        _,
                        Scheme::Unconfigured {
                            pointer: at,
                            message,
                        },
                    )) = self.schemes.get(scheme)
                    {
                        return Err(PolicyError::Invalid {
                            at: Location::new(&self.policy_origin, *at),
                            message: format!("{message} (the operation at {pointer} uses it)"),
                        });
                    }
                    needs.push(Need {
                        scheme,
                        scopes: scopes.clone(),
                    });
                }
                alternatives.push(needs);
            }
        }
        self.operations.push(alternatives);
        Ok(())
    }

    /// Security schemes the document declares that the policy does not configure and no
    /// operation uses: accepted, but worth a warning (a requirement added later that
    /// uses one is refused until it is configured).
    pub fn unconfigured_schemes(&self) -> impl Iterator<Item = &str> {
        self.schemes
            .iter()
            .filter(|(_, scheme)| matches!(scheme, Scheme::Unconfigured { .. }))
            .map(|(name, _)| name.as_str())
    }

    /// The query parameter (`query: true`) or cookie names credentials are read from:
    /// declared by the security schemes rather than as parameters, so strict mode does
    /// not count them as undeclared.
    pub fn credential_names(&self, query: bool) -> impl Iterator<Item = &str> {
        let providers = self.providers.iter().flat_map(|p| &p.locations);
        let keys = self.schemes.iter().filter_map(|(_, s)| match s {
            Scheme::ApiKey(k) => Some(&k.location),
            _ => None,
        });
        providers
            .chain(keys)
            .filter_map(move |place| match (place, query) {
                (Place::Query(name), true) | (Place::Cookie(name), false) => Some(name.as_str()),
                _ => None,
            })
    }

    /// Request headers the filter owns: removed from every request before the
    /// identity's are set, so a client cannot spoof them.
    pub fn managed_headers(&self) -> impl Iterator<Item = &str> {
        let consumer = self
            .schemes
            .iter()
            .any(|(_, s)| matches!(s, Scheme::ApiKey(_)))
            .then_some(self.consumer_header.as_str());
        self.providers
            .iter()
            .flat_map(|p| p.claim_to_headers.iter().map(|(header, _)| header.as_str()))
            .chain(consumer)
    }

    /// Whether `name` is not a managed header but reads as one once lowercased with `_`
    /// as `-` (`x_user`, `X_APIGUARD_CONSUMER` beside `x-user`, `x-apiguard-consumer`).
    /// CGI-style stacks (PHP, Python WSGI, Ruby Rack) turn both into `HTTP_X_USER`, and
    /// which one the application then reads depends on their order: the twin could stand
    /// in for the header the filter sets.
    pub fn twins_a_managed_header(&self, name: &str) -> bool {
        let fold = |b: u8| {
            if b == b'_' {
                b'-'
            } else {
                b.to_ascii_lowercase()
            }
        };
        self.managed_headers().any(|managed| {
            managed != name
                && managed.len() == name.len()
                && (managed.bytes().zip(name.bytes())).all(|(m, n)| fold(m) == fold(n))
        })
    }

    /// Checks an operation's requirement. `Ok(None)` when it needs no credentials.
    pub fn check(
        &self,
        operation: usize,
        head: &RequestHead<'_>,
        ring: &KeyRing,
        now: u64,
        enforced: bool,
    ) -> Result<Option<Identity>, Violation> {
        let Some(alternatives) = self.operations.get(operation) else {
            return Ok(None);
        };
        if alternatives.is_empty() || alternatives.iter().any(Vec::is_empty) {
            return Ok(None);
        }
        let request = Credentials::read(head);
        let mut outcomes: Vec<Option<Outcome>> = self.schemes.iter().map(|_| None).collect();
        let mut worst: Option<(RuleId, Cow<'static, str>, usize)> = None;
        let mut note = |rule: RuleId, reason: Cow<'static, str>, scheme: usize| {
            let rank = |r: RuleId| match r {
                RuleId::AuthKeysUnavailable => 0,
                RuleId::AuthInvalid => 1,
                RuleId::AuthInsufficientScope => 2,
                _ => 3,
            };
            if worst.as_ref().is_none_or(|(w, _, _)| rank(rule) < rank(*w)) {
                worst = Some((rule, reason, scheme));
            }
        };
        for alternative in alternatives {
            let mut holds = true;
            for need in alternative {
                let outcome = match outcomes.get_mut(need.scheme) {
                    Some(slot) => {
                        slot.get_or_insert_with(|| self.evaluate(need.scheme, &request, ring, now))
                    }
                    None => continue,
                };
                match outcome {
                    Outcome::Valid(c) if need.scopes.iter().all(|s| c.scopes.contains(s)) => {}
                    Outcome::Valid(_) => {
                        let reason = format!("requires the scopes: {}", need.scopes.join(" "));
                        note(RuleId::AuthInsufficientScope, reason.into(), need.scheme);
                        holds = false;
                    }
                    Outcome::Missing => {
                        note(RuleId::AuthMissing, "no credentials".into(), need.scheme);
                        holds = false;
                    }
                    Outcome::Invalid(reason) => {
                        note(RuleId::AuthInvalid, reason.clone(), need.scheme);
                        holds = false;
                    }
                    Outcome::Unavailable => {
                        note(
                            RuleId::AuthKeysUnavailable,
                            "the provider's keys could not be fetched".into(),
                            need.scheme,
                        );
                        holds = false;
                    }
                }
            }
            if holds {
                let mut identity = Identity::default();
                for need in alternative {
                    if let Some(Some(Outcome::Valid(c))) = outcomes.get(need.scheme) {
                        merge(&mut identity, &c.identity);
                    }
                }
                return Ok(Some(identity));
            }
        }
        let (rule, reason, scheme) =
            worst.unwrap_or((RuleId::AuthMissing, "no credentials".into(), 0));
        let open =
            rule == RuleId::AuthKeysUnavailable && self.keys_unavailable == KeysUnavailable::Allow;
        Err(Violation {
            rule,
            location: Some("security"),
            name: self.schemes.get(scheme).map(|(name, _)| name.clone()),
            reason,
            enforced: enforced && !open,
        })
    }

    fn evaluate(
        &self,
        scheme: usize,
        request: &Credentials<'_>,
        ring: &KeyRing,
        now: u64,
    ) -> Outcome {
        match self.schemes.get(scheme).map(|(_, s)| s) {
            Some(Scheme::Jwt(provider)) => match self.providers.get(*provider) {
                Some(p) => self.jwt(*provider, p, request, ring, now),
                None => Outcome::Missing,
            },
            // Never reached: a requirement that uses one is refused at compile time.
            Some(Scheme::Unconfigured { .. }) => Outcome::Missing,
            Some(Scheme::ApiKey(scheme)) => {
                let values = request.find(&scheme.location);
                match values.as_slice() {
                    [] => Outcome::Missing,
                    [(_, key)] => match apikey::find(&scheme.keys, key) {
                        Some(key) => Outcome::Valid(Credential {
                            scopes: key.scopes.clone(),
                            identity: Identity {
                                consumer: Some(key.consumer.clone()),
                                scopes: key.scopes.clone(),
                                headers: vec![(self.consumer_header.clone(), key.consumer.clone())],
                                ..Identity::default()
                            },
                        }),
                        None => Outcome::Invalid("the API key is not known".into()),
                    },
                    _ => Outcome::Invalid("more than one API key in the request".into()),
                }
            }
            None => Outcome::Missing,
        }
    }

    fn jwt(
        &self,
        index: usize,
        provider: &Provider,
        request: &Credentials<'_>,
        ring: &KeyRing,
        now: u64,
    ) -> Outcome {
        let found: Vec<(&Place, Option<&str>, &str)> = provider
            .locations
            .iter()
            .flat_map(|l| request.find(l).into_iter().map(move |(h, t)| (l, h, t)))
            .collect();
        let (place, header, token) = match found.as_slice() {
            [] => return Outcome::Missing,
            [one] => *one,
            _ => return Outcome::Invalid("more than one token in the request".into()),
        };
        let claims = match self.verified(index, provider, token, ring, now) {
            Ok(claims) => claims,
            Err(Some(e)) => return Outcome::Invalid(Cow::Owned(e.to_string())),
            Err(None) => return Outcome::Unavailable,
        };
        if let Err(e) = provider.rules.current(&claims, now) {
            return Outcome::Invalid(Cow::Owned(e.to_string()));
        }
        let scopes = jwt::scopes(&claims);
        let headers = provider
            .claim_to_headers
            .iter()
            .filter_map(|(header, claim)| {
                Some((header.clone(), provider::claim_text(claims.get(claim)?)?))
            })
            .collect();
        let mut identity = Identity {
            provider: Some(provider.name.clone()),
            subject: claims.get("sub").and_then(Value::as_str).map(str::to_owned),
            scopes: scopes.clone(),
            headers,
            ..Identity::default()
        };
        if !provider.forward {
            // Wherever the token came from, it stays here.
            match place {
                Place::Header { .. } => identity.remove.extend(header.map(str::to_owned)),
                Place::Query(name) => identity.remove_params.push(name.clone()),
                Place::Cookie(name) => identity.remove_cookies.push(name.clone()),
            }
        }
        Outcome::Valid(Credential { scopes, identity })
    }

    /// The claims of a token whose signature and issuer hold, from the cache when it
    /// was seen before. `Err(None)`: the provider has no keys yet.
    fn verified(
        &self,
        index: usize,
        provider: &Provider,
        token: &str,
        ring: &KeyRing,
        now: u64,
    ) -> Result<Claims, Option<TokenError>> {
        if let Some(claims) = ring.cache().get(index, token) {
            return Ok(claims);
        }
        let decoded = jwt::decode(token, self.max_token_bytes).map_err(Some)?;
        provider.rules.issuer(&decoded.claims).map_err(Some)?;
        let keys = (provider.local.clone())
            .or_else(|| ring.fetched(index))
            .ok_or(None)?;
        match decoded.verify(&keys.keys) {
            Ok(_) => {}
            Err(TokenError::NoKey) if provider.remote.is_some() && decoded.kid.is_some() => {
                ring.ask_refetch(index);
                return Err(Some(TokenError::NoKey));
            }
            Err(e) => return Err(Some(e)),
        }
        let claims: Claims = Rc::new(decoded.claims);
        ring.cache().insert(index, token, Rc::clone(&claims), now);
        Ok(claims)
    }
}

/// Seconds since the Unix epoch: the clock JWT time claims are read against. Under
/// Envoy this is WASI's realtime clock, which Envoy serves from its own time source.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The `WWW-Authenticate` challenge for a refused credential (RFC 6750 §3): no error
/// code when none was presented, `invalid_token` or `insufficient_scope` otherwise. The
/// realm is the API name, which the policy restricts to `[A-Za-z0-9._-]`.
pub(crate) fn challenge(api: &str, rule: RuleId) -> Option<String> {
    let error = match rule {
        RuleId::AuthMissing => return Some(format!("Bearer realm=\"{api}\"")),
        RuleId::AuthInvalid => "invalid_token",
        RuleId::AuthInsufficientScope => "insufficient_scope",
        _ => return None,
    };
    Some(format!("Bearer realm=\"{api}\", error=\"{error}\""))
}

fn merge(into: &mut Identity, from: &Identity) {
    into.provider = into.provider.take().or_else(|| from.provider.clone());
    into.subject = into.subject.take().or_else(|| from.subject.clone());
    into.consumer = into.consumer.take().or_else(|| from.consumer.clone());
    into.scopes.extend(from.scopes.iter().cloned());
    into.headers.extend(from.headers.iter().cloned());
    into.remove.extend(from.remove.iter().cloned());
    into.remove_params
        .extend(from.remove_params.iter().cloned());
    into.remove_cookies
        .extend(from.remove_cookies.iter().cloned());
}

#[cfg(test)]
mod tests;
