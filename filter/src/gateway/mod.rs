//! Several APIs behind one listener: one plugin configuration lists them (`apis:`), each a
//! whole policy with its `match` (authorities and base path), and every request is judged
//! by the one API its `:authority` and `:path` select ([`select`]). A request no API
//! matches is `route.unknown_api`: refused with a 404 problem (the gateway's `mode:
//! monitor` lets it through), counted and evented under the gateway's name and owner.
//!
//! Why one configuration rather than Envoy's per-route configuration: Envoy's Wasm HTTP
//! filter has no per-route configuration (its `typed_per_filter_config` can only disable
//! it), and a composite filter or one filter per API would start one VM per API and
//! worker, each with its own copy of the filter's code and heap. One configuration keeps
//! one VM per worker, whose memory grows by each API's compiled policy only (README,
//! "Several APIs behind one gateway").
//!
//! A configuration without `apis:` is one API, as before; with a `match` it refuses what
//! does not match it as `route.unknown_api` under its own name.

pub mod bundle;
// The host polls a remote source; natively only the tests do.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) mod remote;
mod select;

use std::rc::Rc;

use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::config::GatewayConfig;
use crate::error::{parse_json, Location, PolicyError};
use crate::events::{self, hash64, Event, EventSettings, LogLevel, RequestContext};
use crate::policy::{self, Policy, Scope, PLUGIN_CONFIGURATION};
use crate::problem::{self, Reply};
use crate::request::lossy;
use crate::settings::Mode;
use crate::verdict::{Action, RuleId, Verdict, Violation};
use select::{api_pointer, Entry, Selector};

pub use bundle::{bundle, load_bundle, load_contract};

/// The compiled APIs of one configuration and how requests are dealt among them.
/// Immutable, like each [`Policy`]; the host hands each request the `Rc` of its API.
#[derive(Debug)]
pub struct Gateway {
    apis: Vec<Rc<Policy>>,
    selector: Selector,
    /// What a request no API matches meets.
    mode: Mode,
    /// What `route.unknown_api` events carry: the gateway's name and owner (a single
    /// policy's own).
    events: EventSettings,
    /// Whether the configuration lists its APIs (`apis:`).
    listed: bool,
}

/// What a request no API matches comes to.
#[derive(Debug)]
pub struct Unmatched {
    /// `Block`, or `Monitor` when the gateway only records.
    pub action: Action,
    /// The 404 problem, when refused.
    pub reply: Option<Reply>,
    /// The `route.unknown_api` event.
    pub event: Option<Event>,
    /// The log level of the gateway's events.
    pub log: LogLevel,
}

impl Gateway {
    /// Compiles the plugin configuration Envoy hands over (either form): what requests can
    /// reach, as [`Policy::compile`].
    pub fn compile(configuration: impl Into<Vec<u8>>) -> Result<Gateway, PolicyError> {
        Gateway::compile_scoped(configuration, PLUGIN_CONFIGURATION, Scope::Reachable)
    }

    /// Compiles a bundled configuration, everything checked, naming `origin` in errors
    /// (the CLI's compile, as [`Policy::compile_from`]).
    pub fn compile_from(
        configuration: impl Into<Vec<u8>>,
        origin: &str,
    ) -> Result<Gateway, PolicyError> {
        Gateway::compile_scoped(configuration, origin, Scope::Everything)
    }

    fn compile_scoped(
        configuration: impl Into<Vec<u8>>,
        origin: &str,
        scope: Scope,
    ) -> Result<Gateway, PolicyError> {
        let configuration = configuration.into();
        let hash = hash64(&configuration);
        let json = policy::json_text(configuration, origin)?;
        #[derive(Deserialize)]
        struct Probe {
            apis: Option<IgnoredAny>,
        }
        let listed = serde_json::from_str::<Probe>(&json).is_ok_and(|p| p.apis.is_some());
        if !listed {
            let mut config = policy::parse_config(&json, origin)?;
            drop(json);
            let matcher = config.matcher.take();
            let policy = Policy::compile_parsed(config, origin, hash, scope)?;
            let entry = Entry {
                pointer: String::new(),
                name: &policy.name,
                matcher: matcher.as_ref(),
            };
            let selector = Selector::build(&[entry], origin)?;
            return Ok(Gateway {
                selector,
                mode: policy.mode,
                events: policy.events.clone(),
                listed,
                apis: vec![Rc::new(policy)],
            });
        }
        let config: GatewayConfig =
            parse_json(&json, origin).map_err(|e| in_entry(e, &json, origin))?;
        drop(json);
        policy::check_name(&config.name, origin)?;
        if config.apis.is_empty() {
            return Err(PolicyError::Invalid {
                at: Location::new(origin, "/apis"),
                message: "list at least one API: a policy with its `match`".to_owned(),
            });
        }
        let events = EventSettings::new(&config.name, hash, &config.events, None);
        let mut apis: Vec<Rc<Policy>> = Vec::new();
        let mut matchers = Vec::new();
        for (index, mut api) in config.apis.into_iter().enumerate() {
            let at = api_pointer(index);
            let prefix = stats_prefix(&api.name);
            if let Some(twin) = apis.iter().position(|p| p.stats_prefix == prefix) {
                return Err(PolicyError::Invalid {
                    at: Location::new(origin, format!("{at}/name")),
                    message: format!(
                        "API {twin} has this name (`.` and `_` are alike in stat names): each \
                         API needs its own, which names its stats, events and shared data"
                    ),
                });
            }
            matchers.push(api.matcher.take());
            let mut policy = Policy::compile_parsed(api, origin, hash, scope)
                .map_err(|e| e.under(origin, &at))?;
            policy.stats_prefix = prefix;
            apis.push(Rc::new(policy));
        }
        let entries: Vec<Entry<'_>> = (apis.iter().zip(&matchers).enumerate())
            .map(|(index, (policy, matcher))| Entry {
                pointer: api_pointer(index),
                name: &policy.name,
                matcher: matcher.as_ref(),
            })
            .collect();
        let selector = Selector::build(&entries, origin)?;
        Ok(Gateway {
            apis,
            selector,
            mode: config.mode,
            events,
            listed,
        })
    }

    /// The APIs, in the order the configuration lists them.
    pub fn apis(&self) -> &[Rc<Policy>] {
        &self.apis
    }

    /// The one policy of a configuration that does not list APIs (`None` for a gateway).
    pub fn into_single(self) -> Option<Policy> {
        match (self.listed, <[_; 1]>::try_from(self.apis)) {
            (false, Ok([policy])) => Rc::try_unwrap(policy).ok(),
            _ => None,
        }
    }

    /// Whether the configuration lists its APIs (`apis:`), each with stats of its own;
    /// otherwise it is one policy, whose stats are named as they always were.
    pub fn is_listed(&self) -> bool {
        self.listed
    }

    /// The gateway's name (a single policy's own).
    pub fn name(&self) -> &str {
        &self.events.api
    }

    /// What a request no API matches meets.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The log level of the gateway's own events (`route.unknown_api`).
    pub fn log_level(&self) -> LogLevel {
        self.events.log
    }

    /// What the gateway's own events carry (a single policy's own settings).
    // The host reports a remote source's failures with them; natively nothing does.
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    pub(crate) fn event_settings(&self) -> &EventSettings {
        &self.events
    }

    /// The API for a request, by its `:authority` (`host` without one) and `:path`; `None`
    /// when no API matches ([`Gateway::unmatched`]).
    pub fn select<N: AsRef<str>, V: AsRef<[u8]>>(&self, headers: &[(N, V)]) -> Option<usize> {
        let header = |name: &str| {
            (headers.iter())
                .find(|(n, _)| n.as_ref() == name)
                .map(|(_, v)| v.as_ref())
        };
        let authority = header(":authority").or_else(|| header("host"));
        self.selector
            .select(authority, header(":path").unwrap_or_default())
    }

    /// The request no API matched: the verdict as the gateway's `mode` has it, its reply
    /// and its event. `time_ms`: the time now; `peer`: the downstream address.
    pub fn unmatched<N: AsRef<str>, V: AsRef<[u8]>>(
        &self,
        headers: &[(N, V)],
        time_ms: u64,
        peer: Option<&str>,
    ) -> Unmatched {
        let header = |name: &str| {
            (headers.iter())
                .find(|(n, _)| n.as_ref() == name)
                .map(|(_, v)| lossy(v.as_ref()))
                .unwrap_or_default()
        };
        let rule = RuleId::UnknownApi;
        let mut verdict = Verdict {
            violations: vec![Violation {
                rule,
                location: None,
                name: None,
                reason: "no API of this gateway has the request's authority and base path".into(),
                enforced: self.mode == Mode::Enforce,
            }],
            ..Verdict::default()
        };
        verdict.settle();
        let (method, path, request_id) =
            (header(":method"), header(":path"), header("x-request-id"));
        let context = RequestContext {
            time_ms,
            method: &method,
            path: &path,
            client: peer.map(events::client_ip),
            identity: None,
            request_id: Some(&*request_id).filter(|id| !id.is_empty()),
            status: None,
        };
        Unmatched {
            action: verdict.action,
            reply: (verdict.action == Action::Block)
                .then(|| problem::reply(&self.events.api, rule, &verdict)),
            event: Event::from_verdict(&self.events, &verdict, &context),
            log: self.events.log,
        }
    }
}

/// An error inside an API's entry, located as a single policy's would be (an inlined
/// document's in the document's own file), under the entry's pointer. Only a configuration
/// that does not parse pays for this second pass.
fn in_entry(error: PolicyError, json: &str, origin: &str) -> PolicyError {
    #[derive(Deserialize)]
    struct Entries<'a> {
        #[serde(borrow)]
        apis: Vec<&'a serde_json::value::RawValue>,
    }
    let index = (error.location())
        .and_then(|at| at.pointer.strip_prefix("/apis/"))
        .and_then(|rest| rest.split('/').next())
        .and_then(|index| index.parse::<usize>().ok());
    let entries = serde_json::from_str::<Entries<'_>>(json).ok();
    let entry = index
        .zip(entries)
        .and_then(|(i, e)| Some((i, *e.apis.get(i)?)));
    match entry {
        Some((index, raw)) => match policy::parse_config(raw.get(), origin) {
            Err(located) => located.under(origin, &api_pointer(index)),
            Ok(_) => error,
        },
        None => error,
    }
}

/// What the stats of a listed API start with: `apiguard.api.<name>.`, its `.`s turned to
/// `_` so the name is one segment (the `api` tag of `envoy.yaml` reads it).
fn stats_prefix(name: &str) -> String {
    format!("apiguard.api.{}.", name.replace('.', "_"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::request::RequestHead;
    use serde_json::{json, Value};

    fn api(name: &str, authorities: &[&str], base: &str, path: &str) -> Value {
        json!({
            "name": name,
            "events": {"owner": {"team": format!("{name}-team")}},
            "match": {"authorities": authorities, "base_path": base},
            "openapi": {"document": {
                "openapi": "3.0.3",
                "servers": [{"url": base}],
                "paths": {path: {"get": {"operationId": format!("{name}-get")}}},
            }},
        })
    }

    fn gateway() -> Gateway {
        let config = json!({
            "name": "edge",
            "events": {"owner": {"team": "platform"}},
            "apis": [
                api("pets", &["pets.example.com"], "/v1", "/pets"),
                api("shop", &["*.shop.example.com"], "/", "/orders"),
                api("pets.v2", &["pets.example.com"], "/v2", "/pets"),
            ],
        });
        Gateway::compile(config.to_string()).unwrap()
    }

    fn pick<'g>(g: &'g Gateway, authority: &str, path: &str) -> Option<&'g str> {
        let headers = [(":authority", authority), (":path", path)];
        g.select(&headers).map(|i| g.apis()[i].name())
    }

    #[test]
    fn each_request_goes_to_its_api_and_is_judged_by_its_contract() {
        let g = gateway();
        assert!(g.is_listed());
        assert_eq!(pick(&g, "pets.example.com", "/v1/pets"), Some("pets"));
        assert_eq!(
            pick(&g, "Pets.Example.com:443", "/v2/pets"),
            Some("pets.v2")
        );
        assert_eq!(pick(&g, "eu.shop.example.com", "/orders"), Some("shop"));
        assert_eq!(pick(&g, "pets.example.com", "/v3/pets"), None);
        assert_eq!(pick(&g, "shop.example.com", "/orders"), None);
        // Each API's contract: the shop's path is unknown to the pets API.
        let pets = &g.apis()[0];
        let (verdict, _) = pets.inspect(&RequestHead::get("/v1/orders"));
        assert_eq!(verdict.rule(), Some(RuleId::UnknownPath));
        // Stats and events are the API's own.
        assert_eq!(pets.stats_prefix, "apiguard.api.pets.");
        assert_eq!(g.apis()[2].stats_prefix, "apiguard.api.pets_v2.");
        assert_eq!(pets.events.owner.team.as_deref(), Some("pets-team"));
    }

    #[test]
    fn the_host_header_stands_in_for_a_missing_authority() {
        let g = gateway();
        let headers = [("host", "pets.example.com"), (":path", "/v1/pets")];
        assert_eq!(g.select(&headers), Some(0));
    }

    #[test]
    fn an_unknown_api_is_refused_and_evented_under_the_gateway() {
        let g = gateway();
        let headers = [
            (":method", "GET"),
            (":authority", "evil.example.net"),
            (":path", "/v1/pets"),
        ];
        let unmatched = g.unmatched(&headers, 7, Some("192.0.2.9:4000"));
        assert_eq!(unmatched.action, Action::Block);
        let reply = unmatched.reply.unwrap();
        assert_eq!(reply.status, 404);
        let problem: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(
            (problem["rule"].as_str(), problem["api"].as_str()),
            (Some("route.unknown_api"), Some("edge"))
        );
        let event = unmatched.event.unwrap();
        assert_eq!(
            (event.rule.as_str(), event.api.as_str()),
            ("route.unknown_api", "edge")
        );
        assert_eq!(event.owner.team.as_deref(), Some("platform"));
        let facts = event.request.unwrap();
        assert_eq!(facts.client.as_deref(), Some("192.0.2.9"));
        assert_eq!(facts.path.as_deref(), Some("/v1/pets"));
    }

    #[test]
    fn a_monitoring_gateway_passes_unknown_apis_with_the_finding() {
        let config = json!({"mode": "monitor", "apis": [api("pets", &["pets.example.com"], "/v1", "/pets")]});
        let g = Gateway::compile(config.to_string()).unwrap();
        let unmatched = g.unmatched(&[(":path", "/x")], 0, None);
        assert_eq!(unmatched.action, Action::Monitor);
        assert!(unmatched.reply.is_none());
        assert_eq!(unmatched.event.unwrap().api, "gateway");
    }

    #[test]
    fn a_single_policy_is_one_api_for_every_request_and_keeps_its_stat_names() {
        let mut config = api("pets", &[], "/v1", "/pets");
        config.as_object_mut().unwrap().remove("match");
        let g = Gateway::compile(config.to_string()).unwrap();
        assert!(!g.is_listed());
        assert_eq!(pick(&g, "anything", "/elsewhere"), Some("pets"));
        assert_eq!(g.apis()[0].stats_prefix, "apiguard.");
        // With a `match`, it refuses the rest under its own name.
        let g = Gateway::compile(api("pets", &["pets.example.com"], "/v1", "/pets").to_string())
            .unwrap();
        assert_eq!(pick(&g, "other.example.com", "/v1/pets"), None);
        assert_eq!(
            g.unmatched(&[(":path", "/")], 0, None).event.unwrap().api,
            "pets"
        );
    }

    #[test]
    fn errors_name_the_api_they_are_in() {
        let refused = |config: Value| Gateway::compile(config.to_string()).unwrap_err();
        let mut bad = api("shop", &["shop.example.com"], "/", "/orders");
        bad["mode"] = json!("audit");
        let e = refused(json!({"apis": [api("pets", &["pets.example.com"], "/v1", "/pets"), bad]}));
        assert_eq!(e.location().unwrap().pointer, "/apis/1/mode");
        let mut bad = api("shop", &["shop.example.com"], "/", "/orders");
        bad["operations"] = json!({"nope": {"mode": "off"}});
        let e = refused(json!({"apis": [bad]}));
        assert_eq!(e.location().unwrap().pointer, "/apis/0/operations/nope");
        let mut bad = api("shop", &["shop.example.com"], "/", "/orders");
        bad["openapi"]["document"]["paths"] = json!({"orders": {}});
        let e = refused(json!({"apis": [bad]}));
        assert_eq!(
            e.location().unwrap().origin,
            "plugin configuration /apis/0/openapi/document"
        );
        let e = refused(json!({"apis": [
            api("pets.v2", &["a.example.com"], "/", "/a"),
            api("pets_v2", &["b.example.com"], "/", "/a"),
        ]}));
        assert_eq!(e.location().unwrap().pointer, "/apis/1/name");
        // A document that does not parse is located in its own file, as for one policy.
        let mut bad = api("shop", &["shop.example.com"], "/", "/orders");
        bad["openapi"]["source"] = json!("shop.yaml");
        bad["openapi"]["document"]["paths"]["/orders"]["get"]["parameters"] = json!(7);
        let e = refused(json!({"apis": [api("a", &["a.example.com"], "/", "/a"), bad]}));
        let at = e.location().unwrap();
        assert_eq!(
            (at.origin.as_str(), at.pointer.as_str()),
            ("shop.yaml", "/paths/~1orders/get/parameters")
        );
        let e = refused(json!({"apis": []}));
        assert_eq!(e.location().unwrap().pointer, "/apis");
        let e = refused(json!({"apis": [api("a", &["a.example.com"], "/", "/a")], "mood": 1}));
        assert_eq!(e.location().unwrap().pointer, "/mood");
        let e = refused(json!({"apis": [
            api("a", &["a.example.com"], "/v1", "/a"),
            api("b", &["A.example.com"], "/v1", "/a"),
        ]}));
        assert_eq!(e.location().unwrap().pointer, "/apis/1/match/authorities/0");
    }
}
