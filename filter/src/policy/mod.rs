//! The compiled policy: everything a request is checked against, built once.

mod anomalies;
mod candidate;
pub(crate) mod diff;
pub(crate) mod inspect;
pub(crate) mod response;

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::abuse::slots::Table;
use crate::abuse::Abuse;
use crate::behaviour::Behaviour;
use crate::config::{
    InlineDocument, PolicyConfig, ResponseSettings, SchemaCompilation, StatsSettings,
};
use crate::contract::openapi::Document;
use crate::contract::route::Router;
use crate::contract::schema::{Schema, SchemaSet};
use crate::contract::{self, CompiledOperation};
use crate::discovery::DiscoverySettings;
use crate::error::{parse_json, parse_text, pointer_token, Location, PolicyError};
use crate::events::{hash64, EventSettings};
use crate::security::{KeyRing, Security};
use crate::settings::{Limits, Mode, OperationMode};
use crate::structpb;

pub use inspect::BodyCheck;

/// How errors name the configuration Envoy handed over, which has no file name.
pub(crate) const PLUGIN_CONFIGURATION: &str = "plugin configuration";

/// An immutable, pre-indexed policy. Shared by every request of a configuration; a
/// reconfiguration builds a new one. (Schemas compiled lazily fill a cache on first use;
/// nothing else changes.)
#[derive(Debug)]
pub struct Policy {
    /// The API's name: a label in stats, problems and events.
    pub(crate) name: String,
    pub(crate) mode: Mode,
    pub(crate) router: Router,
    pub(crate) limits: Limits,
    pub(crate) responses: ResponseSettings,
    pub(crate) stats: StatsSettings,
    /// Every operation, indexed by the id the router hands back.
    pub(crate) operations: Vec<CompiledOperation>,
    /// The document's component schemas, which compiled schemas refer to.
    pub(crate) schemas: SchemaSet,
    /// When the schemas are compiled.
    compilation: SchemaCompilation,
    /// Credentials and scopes per operation.
    pub(crate) security: Security,
    /// Rate limits, anomaly checks and quarantine, when the policy has `abuse`.
    pub(crate) abuse: Option<Abuse>,
    /// Behavioural detection, when the policy has `behaviour`.
    pub(crate) behaviour: Option<Behaviour>,
    /// Whether requests no template matches are recorded, and within what ceiling.
    pub(crate) discovery: Option<DiscoverySettings>,
    /// What every security event of this policy carries (owner, bundle hash).
    pub(crate) events: EventSettings,
    /// The contract canary: the next version of the contract, evaluated beside this one
    /// and never enforced (see [`crate::exchange`]). A candidate has none itself.
    pub(crate) candidate: Option<Box<Policy>>,
    /// What the names of this policy's stats start with: [`STATS_PREFIX`], or
    /// `apiguard.api.<name>.` for an API of a gateway ([`crate::gateway`]), so two APIs'
    /// stats never add up.
    pub(crate) stats_prefix: String,
}

/// Which contract of a configuration is being compiled: the enforced one (`openapi`) or
/// the canary's (`candidate.openapi`), which errors name by their own pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Enforced,
    Candidate,
}

impl Role {
    /// Where the role's `openapi` section sits in the configuration.
    fn openapi_pointer(self) -> &'static str {
        match self {
            Role::Enforced => "/openapi",
            Role::Candidate => "/candidate/openapi",
        }
    }
}

/// How far a background compilation ([`Policy::compile_some`]) has got; the host keeps it
/// between ticks, so the policy stays immutable.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SchemaCursor(usize);

impl Policy {
    /// The API's name: a label in stats, problems and events.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether violations are answered (`enforce`) or only recorded (`monitor`).
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// How many path templates the router holds.
    pub fn templates(&self) -> usize {
        self.router.len()
    }

    /// Security schemes the document declares but the policy does not configure: no
    /// operation may use them, so `apiguard check` warns about each.
    pub fn unconfigured_schemes(&self) -> impl Iterator<Item = &str> {
        self.security.unconfigured_schemes()
    }

    /// The policy's `discovery` settings, when it records undeclared requests.
    pub fn discovery(&self) -> Option<DiscoverySettings> {
        self.discovery
    }

    /// Where the document declares the operation an access log or a verdict names by
    /// `label` (its `operationId`, or `METHOD_/template` as in stats): a JSON pointer.
    pub fn operation_pointer(&self, label: &str) -> Option<&str> {
        (self.operations.iter())
            .find(|op| &*op.label == label)
            .map(|op| op.pointer.as_str())
    }

    /// An empty key ring for this policy's token checks: what a filter root owns.
    pub fn key_ring(&self) -> KeyRing {
        KeyRing::new(&self.security)
    }

    /// Compiles the plugin configuration Envoy hands over: a serialised
    /// `google.protobuf.Struct`, or JSON or YAML text (a `StringValue`).
    ///
    /// Only what requests can reach is built: response contracts are left out when
    /// responses are not checked. `apiguard check` ([`Policy::compile_from`]) builds them
    /// all, so a document's response errors are still refused before deployment.
    pub fn compile(configuration: impl Into<Vec<u8>>) -> Result<Policy, PolicyError> {
        Policy::compile_scoped(configuration, PLUGIN_CONFIGURATION, Scope::Reachable)
    }

    /// Compiles a bundled policy, naming `origin` in errors.
    ///
    /// The configuration is taken by value so that, once turned into JSON text, its bytes
    /// are freed before anything is compiled: a VM's linear memory never shrinks, so its
    /// size is the compile's peak, and a large API's configuration is megabytes.
    pub fn compile_from(
        configuration: impl Into<Vec<u8>>,
        origin: &str,
    ) -> Result<Policy, PolicyError> {
        Policy::compile_scoped(configuration, origin, Scope::Everything)
    }

    fn compile_scoped(
        configuration: impl Into<Vec<u8>>,
        origin: &str,
        scope: Scope,
    ) -> Result<Policy, PolicyError> {
        let configuration = configuration.into();
        let configuration_hash = hash64(&configuration);
        let json = json_text(configuration, origin)?;
        let config = parse_config(&json, origin)?;
        // Everything is read: the text (megabytes for a large API) goes before compiling.
        drop(json);
        Policy::compile_parsed(config, origin, configuration_hash, scope)
    }

    /// Compiles a policy read from a configuration (one API's entry of a gateway, or the
    /// whole configuration), with its candidate. `configuration_hash` names the
    /// configuration in events.
    pub(crate) fn compile_parsed(
        mut config: PolicyConfig,
        origin: &str,
        configuration_hash: u64,
        scope: Scope,
    ) -> Result<Policy, PolicyError> {
        let candidate = (config.candidate.take()).map(|c| candidate::config(&config, c));
        let mut policy =
            Policy::compile_config(config, origin, configuration_hash, scope, Role::Enforced)?;
        if let Some(candidate) = candidate {
            let compiled = Policy::compile_config(
                candidate,
                origin,
                configuration_hash,
                scope,
                Role::Candidate,
            )?;
            policy.candidate = Some(Box::new(compiled));
        }
        Ok(policy)
    }

    /// Compiles one contract of a configuration with the policy's settings.
    /// `configuration_hash` names the configuration in events.
    fn compile_config(
        config: PolicyConfig,
        origin: &str,
        configuration_hash: u64,
        scope: Scope,
        role: Role,
    ) -> Result<Policy, PolicyError> {
        let name = config.name;
        check_name(&name, origin)?;
        if let Some(discovery) = &config.discovery {
            if !(0.0..=1.0).contains(&discovery.learn) {
                return Err(PolicyError::Invalid {
                    at: Location::new(origin, "/discovery/learn"),
                    message: format!(
                        "`{}` is no sample rate: give the fraction of declared operations' \
                         exchanges to learn, from 0 (none) to 1 (all)",
                        discovery.learn
                    ),
                });
            }
        }
        let source = config.openapi;
        let openapi = role.openapi_pointer();
        if source.file.is_some() {
            return Err(PolicyError::Invalid {
                at: Location::new(origin, format!("{openapi}/file")),
                message: "a plugin inside Envoy cannot read files: inline the document with \
                          `apiguard bundle <policy.yaml>` and use its output as the plugin \
                          configuration"
                    .to_owned(),
            });
        }
        let Some(inline) = source.document else {
            return Err(PolicyError::Shape {
                at: Location::new(origin, openapi),
                message: "missing `document` (or `file`, resolved by `apiguard bundle`)".to_owned(),
            });
        };
        let doc_origin = document_origin(source.source, origin, openapi);
        let document = match inline {
            InlineDocument::Parsed(document) => *document,
            InlineDocument::Text(text) => parse_text(&text, &doc_origin)?,
        };
        let Some(version) = document.version() else {
            return Err(PolicyError::Invalid {
                at: Location::new(&doc_origin, "/openapi"),
                message: format!(
                    "OpenAPI version `{}` is not supported: apiguard reads 3.0.x and 3.1.x \
                     (convert Swagger 2.0 documents first)",
                    document.openapi
                ),
            });
        };
        let events = EventSettings::new(
            &name,
            configuration_hash,
            &config.events,
            document.info.owner.as_ref(),
        );
        let Document {
            paths,
            servers,
            mut components,
            security: document_security,
            ..
        } = document;
        let mut security = Security::compile(
            config.security,
            &components.security_schemes,
            origin,
            &doc_origin,
        )?;
        let component_schemas = std::mem::take(&mut components.schemas);
        let schemas = SchemaSet::new(version, component_schemas, &doc_origin);
        let settings = contract::Settings {
            origin: &doc_origin,
            mode: match config.mode {
                Mode::Enforce => OperationMode::Enforce,
                Mode::Monitor => OperationMode::Monitor,
            },
            strict: config.strict,
            overrides: &config.operations,
            components: &components,
            schemas: &schemas,
            responses: scope == Scope::Everything || config.responses.mode != OperationMode::Off,
        };
        let mut operations = Vec::new();
        let mut used = BTreeSet::new();
        let router = Router::build(&paths, &servers, &doc_origin, &mut |site| {
            let key = format!("{} {}", site.method.as_str(), site.template);
            let operation_id = site.operation.operation_id.clone();
            used.extend(operation_id.iter().cloned().chain([key]));
            let requirement = site.operation.security.as_ref();
            security.add_operation(
                requirement.or(document_security.as_ref()),
                &site.pointer,
                &doc_origin,
            )?;
            let mut operation = CompiledOperation::new(
                site.method,
                site.template.to_owned(),
                operation_id,
                contract::compile(site, &settings)?,
                site.operation.deprecated,
                site.pointer.clone(),
            );
            operation.security = requirement.or(document_security.as_ref()).cloned();
            operations.push(operation);
            Ok(operations.len() - 1)
        })?;
        contract::distinct_labels(&mut operations);
        // A candidate may remove an operation the policy's settings name: canarying that
        // removal is the point, so only the enforced contract refuses unknown names.
        let unknown = config.operations.keys().find(|k| !used.contains(*k));
        if let Some(unknown) = unknown.filter(|_| role == Role::Enforced) {
            return Err(PolicyError::Invalid {
                at: Location::new(origin, format!("/operations/{}", pointer_token(unknown))),
                message: "names no operation of the document: use an operationId or \
                          `METHOD /template` as written in the document"
                    .to_owned(),
            });
        }
        let find = |name: &str| {
            operations.iter().position(|op| {
                op.operation_id.as_deref() == Some(name)
                    || format!("{} {}", op.method.as_str(), op.template) == name
            })
        };
        let abuse = config
            .abuse
            .as_ref()
            .map(|abuse| Abuse::compile(abuse, &name, &operations, &find, origin))
            .transpose()?;
        let behaviour = config
            .behaviour
            .as_ref()
            .map(|b| Behaviour::compile(b, &name, &operations, &find, abuse.as_ref(), origin))
            .transpose()?;
        let policy = Policy {
            abuse,
            behaviour,
            name,
            mode: config.mode,
            router,
            limits: config.limits,
            responses: config.responses,
            stats: config.stats,
            discovery: config.discovery,
            operations,
            schemas,
            compilation: config.schemas,
            security,
            events,
            candidate: None,
            stats_prefix: STATS_PREFIX.to_owned(),
        };
        if config.schemas == SchemaCompilation::Eager {
            policy.compile_reachable_schemas()?;
        }
        Ok(policy)
    }

    /// Every slot table of shared data the policy keeps state in (rate limits,
    /// quarantine, behaviour windows), for the host to create at configure time.
    pub(crate) fn slot_tables(&self) -> impl Iterator<Item = &Table> {
        let abuse = self.abuse.iter().flat_map(Abuse::tables);
        abuse.chain(self.behaviour.iter().flat_map(Behaviour::tables))
    }

    /// Compiles every schema now, reporting the first that does not compile. What
    /// `apiguard check` does always, so that a lazy policy's schemas, and those this
    /// policy never uses, are checked before it is deployed.
    pub fn compile_schemas(&self) -> Result<(), PolicyError> {
        self.operations
            .iter()
            .flat_map(|op| op.contract.schemas(true))
            .try_for_each(|schema| schema.compile(&self.schemas).map(drop))?;
        (self.candidate.iter()).try_for_each(|candidate| candidate.compile_schemas())
    }

    /// What `schemas: eager` compiles at configure time: the schemas a request or response
    /// can reach.
    fn compile_reachable_schemas(&self) -> Result<(), PolicyError> {
        (self.reachable_schemas()).try_for_each(|schema| schema.compile(&self.schemas).map(drop))
    }

    /// The schemas a request or response can reach, in a fixed order. Those of operations
    /// in `mode: off`, and response schemas when responses are not checked, are never
    /// used; compiling them anyway cost GitHub's API (`make bench`) most of its configure
    /// time and about 110 MiB of the VM's memory.
    fn reachable_schemas(&self) -> impl Iterator<Item = &Schema> {
        let responses = self.responses.mode != OperationMode::Off;
        self.operations
            .iter()
            .filter(|op| op.contract.mode != OperationMode::Off)
            .flat_map(move |op| op.contract.schemas(responses))
    }

    /// Whether the schemas are left to compile after configure (`schemas: lazy`).
    pub fn schemas_are_lazy(&self) -> bool {
        self.compilation == SchemaCompilation::Lazy
    }

    /// With `schemas: lazy`, compiles the reachable schemas in the background: from
    /// `cursor` on, while `more()` allows (the host's time budget for one tick). Returns
    /// where to go on from, `None` once every schema is compiled, and the schemas that do
    /// not compile (their values fail closed, `body.schema` or `param.invalid`). A schema a
    /// request needed first was compiled then, and costs nothing here.
    pub fn compile_some(
        &self,
        cursor: SchemaCursor,
        mut more: impl FnMut() -> bool,
    ) -> (Option<SchemaCursor>, Vec<PolicyError>) {
        let mut failed = Vec::new();
        for (at, schema) in (cursor.0..).zip(self.reachable_schemas().skip(cursor.0)) {
            if !more() {
                return (Some(SchemaCursor(at)), failed);
            }
            if let Err(error) = schema.compile(&self.schemas) {
                failed.push(error);
            }
        }
        (None, failed)
    }
}

/// Refuses a `name` (at `/name`) that cannot label stats, problems and events.
pub(crate) fn check_name(name: &str, origin: &str) -> Result<(), PolicyError> {
    let label = |b: u8| b.is_ascii_alphanumeric() || b"._-".contains(&b);
    if name.is_empty() || name.len() > 64 || !name.bytes().all(label) {
        return Err(PolicyError::Invalid {
            at: Location::new(origin, "/name"),
            message: "`name` must be 1 to 64 characters of A-Z a-z 0-9 . _ -".to_owned(),
        });
    }
    Ok(())
}

/// Reads a one-API configuration from its JSON text; an error inside its inlined document
/// is located in the document.
pub(crate) fn parse_config(json: &str, origin: &str) -> Result<PolicyConfig, PolicyError> {
    parse_json(json, origin).map_err(|e| in_document(e, json, origin))
}

/// The prefix of a single policy's stats (an API of a gateway has its own).
pub(crate) const STATS_PREFIX: &str = "apiguard.";

/// How much of the contract a compile builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Every part, checked: what the CLI and the tools compile.
    Everything,
    /// What requests can reach: the plugin's compile, where configure time counts (GitHub's
    /// response contracts were a sixth of it, built for nothing with responses off).
    Reachable,
}

/// What errors in the inlined document name: the file it was bundled from, if known, else
/// where it sits in the configuration (`openapi`: the pointer of its section).
fn document_origin(source: Option<String>, origin: &str, openapi: &str) -> String {
    source.unwrap_or_else(|| format!("{origin} {openapi}/document"))
}

/// An error inside an inlined document object (the enforced one, or the candidate's),
/// located as users read it: in the document's own file (`openapi.source`), by a pointer
/// into the document, not into the bundle. Only a policy that does not compile pays for
/// this second pass.
fn in_document(error: PolicyError, json: &str, origin: &str) -> PolicyError {
    #[derive(Deserialize)]
    struct Bundle<'a> {
        #[serde(borrow)]
        openapi: Option<Source<'a>>,
        #[serde(borrow)]
        candidate: Option<Candidate<'a>>,
    }
    #[derive(Deserialize)]
    struct Candidate<'a> {
        #[serde(borrow)]
        openapi: Option<Source<'a>>,
    }
    #[derive(Deserialize)]
    struct Source<'a> {
        #[serde(borrow)]
        document: Option<&'a RawValue>,
        source: Option<String>,
    }
    let role = [Role::Enforced, Role::Candidate].into_iter().find(|role| {
        let document = format!("{}/document", role.openapi_pointer());
        (error.location()).is_some_and(|at| at.pointer.starts_with(&document))
    });
    let Some(role) = role else {
        return error;
    };
    let Ok(bundle) = serde_json::from_str::<Bundle<'_>>(json) else {
        return error;
    };
    let section = match role {
        Role::Enforced => bundle.openapi,
        Role::Candidate => bundle.candidate.and_then(|c| c.openapi),
    };
    let Some((raw, source)) = section.and_then(|s| Some((s.document?, s.source))) else {
        return error;
    };
    let doc_origin = document_origin(source, origin, role.openapi_pointer());
    parse_json::<Document>(raw.get(), &doc_origin)
        .err()
        .unwrap_or(error)
}

/// The configuration as JSON text, whatever form it came in, so the document inside can be
/// borrowed from one representation. JSON text is taken over without a copy.
pub(crate) fn json_text(configuration: Vec<u8>, origin: &str) -> Result<String, PolicyError> {
    let syntax = |message: String| PolicyError::Syntax {
        at: Location::new(origin, ""),
        message,
    };
    if let Some(transcoded) = structpb::to_json_if_struct(&configuration) {
        return transcoded.map_err(syntax);
    }
    let text = String::from_utf8(configuration).map_err(|e| syntax(format!("not UTF-8: {e}")))?;
    if text.trim_start().starts_with('{') {
        return Ok(text);
    }
    let value: serde_json::Value = parse_text(&text, origin)?;
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Method;
    use crate::request::RequestHead;
    use crate::verdict::{Action, RuleId};

    const DOC: &str = r#"{"openapi": "3.0.3", "servers": [{"url": "/v1"}],
        "paths": {"/pets": {"get": {"operationId": "listPets"}, "post": {}},
                  "/pets/{id}": {"get": {"operationId": "showPet"}}}}"#;

    fn policy(mode: &str, document: &str) -> Result<Policy, PolicyError> {
        let config = format!(
            r#"{{"name": "pets", "mode": "{mode}", "openapi": {{"document": {document}}}}}"#
        );
        Policy::compile(config.as_bytes())
    }

    fn verdict(policy: &Policy, method: &str, path: &str) -> (Action, Option<RuleId>) {
        let (v, _) = policy.inspect(&RequestHead::new(method, path));
        (v.action, v.rule())
    }

    #[test]
    fn enforce_blocks_and_allows() {
        let p = policy("enforce", DOC).unwrap();
        assert_eq!(verdict(&p, "GET", "/v1/pets"), (Action::Allow, None));
        assert_eq!(
            verdict(&p, "GET", "/v1/cats"),
            (Action::Block, Some(RuleId::UnknownPath))
        );
        assert_eq!(
            verdict(&p, "DELETE", "/v1/pets"),
            (Action::Block, Some(RuleId::MethodNotAllowed))
        );
        assert_eq!(
            verdict(&p, "get", "/v1/pets"),
            (Action::Block, Some(RuleId::MethodNotAllowed)),
            "methods are case-sensitive"
        );
        assert_eq!(
            verdict(&p, "GET", "/v1/pets/%2e%2e"),
            (Action::Block, Some(RuleId::DotSegment))
        );
    }

    #[test]
    fn allowed_verdict_names_the_operation() {
        let p = policy("enforce", DOC).unwrap();
        let (v, _) = p.inspect(&RequestHead::get("/v1/pets/7"));
        let op = v.operation.unwrap();
        assert_eq!(
            (op.method, op.template, op.operation_id),
            (Method::Get, "/pets/{id}", Some("showPet"))
        );
    }

    #[test]
    fn method_not_allowed_carries_the_allow_list() {
        let p = policy("enforce", DOC).unwrap();
        let (v, _) = p.inspect(&RequestHead::new("PUT", "/v1/pets"));
        assert_eq!(v.allowed, Some(("/pets", vec![Method::Get, Method::Post])));
    }

    #[test]
    fn monitor_lets_everything_through_but_keeps_the_rule() {
        let p = policy("monitor", DOC).unwrap();
        assert_eq!(
            verdict(&p, "GET", "/v1/cats"),
            (Action::Monitor, Some(RuleId::UnknownPath))
        );
        assert_eq!(verdict(&p, "GET", "/v1/pets"), (Action::Allow, None));
    }

    #[test]
    fn the_document_may_be_yaml_text() {
        let yaml = serde_json::to_string("openapi: 3.1.0\npaths:\n  /a:\n    get: {}\n").unwrap();
        let p = policy("enforce", &yaml).unwrap();
        assert_eq!(verdict(&p, "GET", "/a"), (Action::Allow, None));
    }

    #[test]
    fn the_configuration_may_be_yaml_text() {
        let p = Policy::compile(
            b"name: a\nopenapi:\n  document:\n    openapi: 3.0.0\n    paths: {/a: {get: {}}}\n",
        )
        .unwrap();
        assert_eq!((p.name.as_str(), p.mode), ("a", Mode::Enforce));
    }

    fn error(config: &str) -> PolicyError {
        Policy::compile(config.as_bytes()).expect_err("the policy should be refused")
    }

    /// The plugin builds response contracts only when responses are checked; the CLI's
    /// compile (`apiguard check`) builds them always, so their errors are still caught.
    #[test]
    fn response_contracts_are_built_where_they_are_used_and_checked_by_the_cli() {
        let config = |responses: &str| {
            format!(
                r#"{{"name": "a", "responses": {{"mode": "{responses}"}}, "openapi": {{"document":
                {{"openapi": "3.1.0", "paths": {{"/a": {{"get": {{"responses": {{"2x": {{}}}}}}}}}}}}}}}}"#
            )
        };
        assert!(Policy::compile(config("off")).is_ok());
        for e in [
            Policy::compile(config("monitor")).expect_err("responses checked"),
            Policy::compile_from(config("off"), "a.yaml").expect_err("the CLI builds all"),
        ] {
            assert_eq!(e.location().unwrap().pointer, "/paths/~1a/get/responses/2x");
        }
    }

    /// Stat labels replace what stats cannot carry, so two operation names can come out
    /// alike, or like the unmatched requests' label: each operation still gets its own.
    #[test]
    fn every_operation_has_a_stat_label_of_its_own() {
        let p = Policy::compile(
            r#"{"name": "a", "openapi": {"document": {"openapi": "3.1.0", "paths": {
                "/a": {"get": {"operationId": "list.pets"}, "put": {"operationId": "list_pets"}},
                "/b": {"get": {"operationId": "_unknown"}, "put": {"operationId": "list_pets_2"}}
            }}}}"#,
        )
        .unwrap();
        let labels: Vec<&str> = p.operations.iter().map(|op| &*op.label).collect();
        assert_eq!(
            labels,
            ["list_pets", "list_pets_2", "_unknown_2", "list_pets_2_2"]
        );
    }

    #[test]
    fn unknown_keys_are_refused_with_their_pointer() {
        let e =
            error(r#"{"name": "a", "openapi": {"document": {"openapi": "3.1.0"}, "fil": "x"}}"#);
        assert!(matches!(e, PolicyError::Shape { .. }), "{e}");
        assert_eq!(e.location().unwrap().pointer, "/openapi/fil");
        let e = error(r#"{"name": "a", "mood": "monitor", "openapi": {}}"#);
        assert_eq!(e.location().unwrap().pointer, "/mood");
        assert!(e.to_string().contains("unknown field `mood`"), "{e}");
    }

    #[test]
    fn bad_values_are_refused_with_their_pointer() {
        let e = error(r#"{"name": "a", "mode": "audit", "openapi": {"document": {}}}"#);
        assert_eq!(e.location().unwrap().pointer, "/mode");
        let e = error(r#"{"name": "a b", "openapi": {"document": {"openapi": "3.0.0"}}}"#);
        assert_eq!(e.location().unwrap().pointer, "/name");
    }

    #[test]
    fn unsupported_versions_are_refused() {
        for doc in [r#"{"openapi": "2.0"}"#, r#"{"openapi": "3.2.0"}"#] {
            let e = policy("enforce", doc).unwrap_err();
            assert!(e.to_string().contains("not supported"), "{e}");
            assert_eq!(e.location().unwrap().pointer, "/openapi");
        }
        let e = policy("enforce", r#"{"swagger": "2.0", "paths": {}}"#).unwrap_err();
        assert!(e.to_string().contains("missing field `openapi`"), "{e}");
    }

    #[test]
    fn a_file_reference_says_how_to_inline_it() {
        let e = error(r#"{"name": "a", "openapi": {"file": "api.yaml"}}"#);
        assert!(e.to_string().contains("apiguard bundle"), "{e}");
    }

    #[test]
    fn document_errors_name_the_source_file() {
        let e = error(
            r#"{"name": "a", "openapi": {"source": "api.yaml", "document": {"openapi": "3.0.0", "paths": {"x": {"get": {}}}}}}"#,
        );
        assert_eq!(e.to_string().split(" at ").next(), Some("api.yaml"));
        assert_eq!(e.location().unwrap().pointer, "/paths/x");
    }

    #[test]
    fn unparsable_input_is_a_syntax_error_with_a_line() {
        let e = error("name: [unclosed\nopenapi: {}\n");
        assert!(matches!(e, PolicyError::Syntax { .. }), "{e}");
        assert!(e.location().unwrap().line_column.is_some(), "{e}");
        let e = error("{\"name\": ");
        assert!(matches!(e, PolicyError::Syntax { .. }), "{e}");
        assert!(matches!(error("\u{0}\u{ff}"), PolicyError::Syntax { .. }));
    }

    #[test]
    fn arbitrary_requests_never_panic() {
        // Deterministic xorshift noise over the bytes that matter to the path parser,
        // mixed with arbitrary ones, at lengths up to 4 KiB (Envoy caps headers at 60 KiB).
        let p = policy("enforce", DOC).unwrap();
        let alphabet = b"/%.2fFeE5cC\\?#0a{}~ \x00\x7f\xc3\xa9";
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = (next() % 64) as usize + if next() % 100 == 0 { 4096 } else { 0 };
            let path: Vec<u8> = (0..len)
                .map(|_| match next() % 4 {
                    0 => next() as u8,
                    _ => alphabet[(next() % alphabet.len() as u64) as usize],
                })
                .collect();
            let method: &[u8] = [&b"GET"[..], b"get", b"", b"\xff"][(next() % 4) as usize];
            let (v, _) = p.inspect(&RequestHead {
                method,
                path: &path,
                headers: &[],
                has_body: false,
            });
            assert_eq!(v.rule().is_some(), v.action == Action::Block);
        }
    }

    #[test]
    fn arbitrary_configuration_bytes_never_panic() {
        for bytes in [
            &b"\n"[..],
            b"\n\x05",
            b"\n\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
            b"- a",
            b"~",
            b"",
            b"null",
            b"[]",
        ] {
            assert!(Policy::compile(bytes).is_err());
        }
    }

    /// An unusable schema (an invalid `pattern`) in a response, and in an operation that
    /// is `mode: off`: eager compilation refuses it only where it can be reached, while
    /// `compile_schemas` (`apiguard check`) still reports it.
    #[test]
    fn eager_compiles_only_reachable_schemas() {
        let broken = r#"{"type": "string", "pattern": "("}"#;
        let document = format!(
            r#"{{"openapi": "3.1.0", "paths": {{
                "/a": {{"get": {{"responses": {{"200": {{"description": "ok",
                    "content": {{"application/json": {{"schema": {broken}}}}}}}}}}}}},
                "/b": {{"get": {{"operationId": "b", "parameters": [
                    {{"name": "q", "in": "query", "schema": {broken}}}]}}}}}}}}"#
        );
        let compile = |responses: &str, b: &str| {
            Policy::compile(
                format!(
                    r#"{{"name": "x", "responses": {{"mode": "{responses}"}},
                        "operations": {{"b": {{"mode": "{b}"}}}},
                        "openapi": {{"document": {document}}}}}"#
                )
                .as_bytes(),
            )
        };
        let unused = compile("off", "off").unwrap();
        assert!(unused.compile_schemas().is_err());
        assert!(compile("monitor", "off").is_err());
        assert!(compile("off", "enforce").is_err());
    }
}
