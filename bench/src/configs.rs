//! The Envoy configurations under test, rendered from the shipped `envoy/envoy.yaml` (the
//! same file the tests and docker-compose use) and edited only where a benchmark must:
//!
//! - the route answers with a `direct_response`, so Envoy does no upstream work and the
//!   filters' own cost is what changes between configurations; a request carrying
//!   `x-bench-route: proxied` is instead routed to a local upstream (a second view);
//! - the HTTP filter chain is one of [`Filters`], followed in every configuration by the
//!   shipped config's `buffer` filter just before the router. apiguard lets a request's
//!   headers go on while it holds the body, and a `direct_response` route answers on the
//!   headers alone: without a filter that waits for the whole body before the router, the
//!   response would go out before apiguard had read the body, and the POST scenarios would
//!   measure no validation at all. The probe that an invalid body is refused (400) guards
//!   this.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use apiguard_harness::render::{RenderOptions, Template};
use apiguard_harness::{locate, Envoy};
use serde_json::{json, Value};

use crate::{tokens, BenchError};

/// The header that selects the proxied view.
pub const ROUTE_HEADER: &str = "x-bench-route";
/// What the `direct_response` route answers.
pub const DIRECT_BODY: &str = "{\"ok\":true}";

/// The filter chain in front of the router.
pub enum Filters<'a> {
    /// Bare Envoy: the router alone.
    None,
    /// A reference Rust proxy-wasm filter (`bench/noop-filter`): `mode` is its plugin
    /// configuration, `None` for the no-op filter, `floor` or `floor-body` for the floor.
    Reference {
        wasm: &'a Path,
        mode: Option<&'static str>,
    },
    /// Envoy's own `jwt_authn` (JWT cache on) and `local_ratelimit`: what a user would
    /// deploy instead of apiguard.
    Native { jwks: &'a str },
    /// apiguard with a bundled policy.
    Apiguard { wasm: &'a Path, policy: &'a Value },
}

/// The rendered config of one configuration; `upstream` is where the proxied view goes.
pub fn render(filters: &Filters<'_>, upstream: SocketAddr) -> Result<Value, BenchError> {
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let filter_wasm = locate::filter_wasm()?;
    let (with_filter, wasm, policy) = match filters {
        Filters::Apiguard { wasm, policy } => (true, *wasm, Some(*policy)),
        Filters::Reference { wasm, .. } => (true, *wasm, None),
        Filters::None | Filters::Native { .. } => (false, filter_wasm.as_path(), None),
    };
    let mut config = Template::load(&locate::envoy_yaml())?.render(&RenderOptions {
        listen: loopback,
        admin: loopback,
        upstream,
        wasm,
        policy,
        with_filter,
        jwks: None,
        downstream: Default::default(),
    })?;
    let hcm = connection_manager(&mut config)?;
    hcm["route_config"]["virtual_hosts"][0]["routes"] = json!([
        {
            "match": {"prefix": "/", "headers": [
                {"name": ROUTE_HEADER, "string_match": {"exact": "proxied"}},
            ]},
            "route": {"cluster": apiguard_harness::render::CLUSTER},
        },
        {
            "match": {"prefix": "/"},
            "direct_response": {"status": 200, "body": {"inline_string": DIRECT_BODY}},
        },
    ]);
    let chain = hcm["http_filters"]
        .as_array_mut()
        .ok_or_else(|| BenchError::Config("the listener has no http_filters list".into()))?;
    match filters {
        Filters::Reference { mode, .. } => {
            let plugin = chain
                .first_mut()
                .and_then(|filter| filter.pointer_mut("/typed_config/config"))
                .and_then(Value::as_object_mut)
                .ok_or_else(|| BenchError::Config("no Wasm filter to replace".into()))?;
            plugin.insert("name".into(), json!("noop"));
            plugin.insert("root_id".into(), json!("noop"));
            match mode {
                Some(mode) => plugin.insert(
                    "configuration".into(),
                    json!({"@type": "type.googleapis.com/google.protobuf.StringValue", "value": mode}),
                ),
                None => plugin.remove("configuration"),
            };
        }
        Filters::Native { jwks } => {
            chain.splice(0..0, native_filters(jwks));
        }
        Filters::None | Filters::Apiguard { .. } => {}
    }
    Ok(config)
}

/// The proxied view's upstream: bare Envoy whose every route answers directly (the
/// requests it gets still carry the proxied-route header).
pub fn upstream() -> Result<Value, BenchError> {
    let nowhere = SocketAddr::from((Ipv4Addr::LOCALHOST, 9));
    let mut config = render(&Filters::None, nowhere)?;
    let routes = connection_manager(&mut config)?
        .pointer_mut("/route_config/virtual_hosts/0/routes")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| BenchError::Config("no routes to edit".into()))?;
    routes.retain(|route| route.get("direct_response").is_some());
    Ok(config)
}

/// Starts Envoy on `config` with one worker and pins all its threads to `cpu`.
pub fn start(config: &Value, cpu: usize) -> Result<Envoy, BenchError> {
    let envoy = Envoy::launch(config, 1, std::time::Duration::from_secs(120))?;
    crate::pin(envoy.pid(), cpu)?;
    Ok(envoy)
}

/// Envoy's `jwt_authn` verifying the bench token (its JWKS inline, the verified-token
/// cache on) and a `local_ratelimit` bucket large enough never to refuse, so its
/// per-request accounting is measured, not its 429s.
fn native_filters(jwks: &str) -> [Value; 2] {
    let always = |key: &str| json!({"runtime_key": key, "default_value": {"numerator": 100, "denominator": "HUNDRED"}});
    [
        json!({
            "name": "envoy.filters.http.jwt_authn",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                "providers": {"bench": {
                    "issuer": tokens::ISSUER,
                    "audiences": [tokens::AUDIENCE],
                    "local_jwks": {"inline_string": jwks},
                    "jwt_cache_config": {"jwt_cache_size": 100},
                }},
                "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "bench"}}],
            },
        }),
        json!({
            "name": "envoy.filters.http.local_ratelimit",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
                "stat_prefix": "bench",
                "token_bucket": {
                    "max_tokens": 1_000_000_000u64,
                    "tokens_per_fill": 1_000_000_000u64,
                    "fill_interval": "1s",
                },
                "filter_enabled": always("bench.local_ratelimit.enabled"),
                "filter_enforced": always("bench.local_ratelimit.enforced"),
            },
        }),
    ]
}

fn connection_manager(config: &mut Value) -> Result<&mut Value, BenchError> {
    config
        .pointer_mut("/static_resources/listeners")
        .and_then(Value::as_array_mut)
        .and_then(|listeners| {
            listeners
                .iter_mut()
                .find(|l| l["name"] == apiguard_harness::render::LISTENER)
        })
        .and_then(|listener| listener.pointer_mut("/filter_chains/0/filters/0/typed_config"))
        .ok_or_else(|| BenchError::Config("no HTTP connection manager on `ingress`".into()))
}
