//! The contract of one operation, compiled: its parameters, request body and responses,
//! and how strictly they apply.
//!
//! Built once per operation by [`compile`] from the document (resolving `$ref`s into
//! `components`) and the policy's settings. Checking a request against it is the job of
//! [`crate::policy::inspect`]; this module only decides what there is to check.

use std::collections::BTreeMap;
use std::rc::Rc;

use serde_json::value::RawValue;

use crate::contract::body::{FieldShape, FormSpec, MediaRange, MediaType};
use crate::contract::openapi::{
    Components, MediaTypeObject, Parameter, RequestBody, Response, SecurityRequirement,
};
use crate::contract::params::{self, In, ParamSpec, Style};
use crate::contract::route::Site;
use crate::contract::schema::{Context, Direction, Schema, SchemaSet};
use crate::contract::shape::{Shape, Types};
use crate::error::{pointer_token, Location, PolicyError};
use crate::request::Method;
use crate::settings::{OperationMode, OperationSettings, Sensitive};

/// One operation: what identifies it in verdicts, and its contract.
#[derive(Debug)]
pub struct CompiledOperation {
    pub method: Method,
    pub template: String,
    pub operation_id: Option<String>,
    /// Its label in stats and access logs: the `operationId`, or `METHOD /template`, with
    /// every character outside `[A-Za-z0-9_-]` turned into `_`. Made once here, since
    /// every request's access-log field carries it (an `Rc`, so that costs no copy).
    pub label: Rc<str>,
    pub contract: Contract,
    /// `deprecated: true` in the document: calls to it are counted and reported.
    pub deprecated: bool,
    /// Where the document declares it: a JSON pointer (`/paths/~1pets/get`).
    pub pointer: String,
    /// Its security requirement as the document declares it (its own, else the
    /// document's), whether or not the policy checks credentials: what `apiguard diff`
    /// compares. `None`: no requirement.
    pub security: Option<Vec<SecurityRequirement>>,
}

/// The operation label of requests that matched no operation (the analytics' stats).
pub(crate) const UNMATCHED_LABEL: &str = "_unknown";

/// Makes the operations' stat labels distinct. A label is the operation's name with the
/// characters stats cannot carry replaced, so two operations can come out alike
/// (`list.pets`, `list_pets`), or like [`UNMATCHED_LABEL`]; the later ones get a numbered
/// suffix, so no two operations (or an operation and the unmatched requests) share a stat.
pub(crate) fn distinct_labels(operations: &mut [CompiledOperation]) {
    let mut taken: std::collections::HashSet<Rc<str>> =
        std::iter::once(Rc::from(UNMATCHED_LABEL)).collect();
    for operation in operations {
        let mut label = Rc::clone(&operation.label);
        let mut suffix = 2;
        while taken.contains(&label) {
            label = format!("{}_{suffix}", operation.label).into();
            suffix += 1;
        }
        taken.insert(Rc::clone(&label));
        operation.label = label;
    }
}

impl CompiledOperation {
    pub fn new(
        method: Method,
        template: String,
        operation_id: Option<String>,
        contract: Contract,
        deprecated: bool,
        pointer: String,
    ) -> CompiledOperation {
        let name = match &operation_id {
            Some(id) => id.clone(),
            None => format!("{} {template}", method.as_str()),
        };
        let label: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        CompiledOperation {
            method,
            template,
            operation_id,
            label: label.into(),
            contract,
            deprecated,
            pointer,
            security: None,
        }
    }
}

/// What one operation accepts and returns.
#[derive(Debug)]
pub struct Contract {
    /// `Off` skips every check below; the operation stays routable.
    pub mode: OperationMode,
    /// Undeclared query parameters and body properties are refused, not just recorded.
    pub strict: bool,
    /// The path parameters whose values name objects (for `behaviour.bola`).
    pub object_ids: ObjectIds,
    /// `x-apiguard: {sensitive: login}` (or the policy's `operations`).
    pub sensitive: Option<Sensitive>,
    /// Declared parameters (path item's and operation's, merged), and beside each, in
    /// the same order, what its value is checked against.
    pub params: Vec<ParamSpec>,
    pub param_checks: Vec<ParamCheck>,
    pub body: Option<BodyContract>,
    /// Declared responses by status: exact codes, then `1XX`…`5XX`, then `default`.
    pub responses: Vec<(StatusKey, Option<Content>)>,
}

/// Which path parameters name objects: as `x-apiguard: {object_id: …}` (or the policy's
/// `operations`) declares, or else those whose schema is an integer or a uuid — the ids
/// of rows and records, which an enumerating client walks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectIds {
    Declared(Vec<String>),
    Inferred(Vec<String>),
}

/// Whether a path parameter's schema says its values are ids: `type: integer` alone, or
/// `format: uuid` written on the schema itself (a `$ref` is not followed).
fn names_an_object(spec: &ParamSpec, check: &ParamCheck) -> bool {
    if spec.shape == Shape::Scalar(Types::INTEGER) {
        return true;
    }
    let Some(schema) = &check.schema else {
        return false;
    };
    #[derive(serde::Deserialize)]
    struct Format {
        format: Option<String>,
    }
    serde_json::from_str::<Format>(schema.raw().get())
        .is_ok_and(|f| f.format.as_deref() == Some("uuid"))
}

#[derive(Debug)]
pub struct ParamCheck {
    /// The schema the converted value is checked against.
    pub schema: Option<Schema>,
    /// `content: application/json` parameters are parsed as JSON first.
    pub json: bool,
}

#[derive(Debug)]
pub struct BodyContract {
    pub required: bool,
    pub content: Content,
}

/// The media types a body may have, with how to read and check each.
#[derive(Debug)]
pub struct Content {
    pub ranges: Vec<MediaRange>,
    pub media: Vec<Media>,
}

/// One declared media type. How a body is read (JSON, form, multipart, or not at all)
/// follows the request's own `Content-Type`; the declaration it selects brings the schema.
#[derive(Debug)]
pub struct Media {
    /// The media type (range) as declared, e.g. `application/json`.
    pub declared: String,
    pub schema: Option<Schema>,
    /// The fields of the schema, for declarations a form body can select.
    pub form: Option<FormSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusKey {
    Exact(u16),
    /// `2XX` is `Class(2)`.
    Class(u16),
    Default,
}

impl StatusKey {
    fn parse(key: &str) -> Option<StatusKey> {
        if key == "default" {
            return Some(StatusKey::Default);
        }
        let bytes = key.as_bytes();
        match bytes {
            [c @ b'1'..=b'5', b'X' | b'x', b'X' | b'x'] => {
                Some(StatusKey::Class(u16::from(c - b'0')))
            }
            [b'1'..=b'5', b'0'..=b'9', b'0'..=b'9'] => key.parse().ok().map(StatusKey::Exact),
            _ => None,
        }
    }

    fn rank(self) -> u8 {
        match self {
            StatusKey::Exact(_) => 0,
            StatusKey::Class(_) => 1,
            StatusKey::Default => 2,
        }
    }

    pub fn matches(self, status: u16) -> bool {
        match self {
            StatusKey::Exact(code) => code == status,
            StatusKey::Class(class) => status / 100 == class,
            StatusKey::Default => true,
        }
    }
}

impl Contract {
    /// Every schema of the contract: parameters, request bodies, and (with `responses`)
    /// responses.
    pub fn schemas(&self, responses: bool) -> impl Iterator<Item = &Schema> {
        let params = self.param_checks.iter().filter_map(|c| c.schema.as_ref());
        let bodies = self.body.iter().map(|b| &b.content);
        let responses = self
            .responses
            .iter()
            .filter(move |_| responses)
            .filter_map(|(_, c)| c.as_ref());
        let media = bodies.chain(responses).flat_map(|c| &c.media);
        params.chain(media.filter_map(|m| m.schema.as_ref()))
    }

    /// The declared response for a status: exact code first, then its class, then
    /// `default`. `None` when the status is not declared.
    pub fn response(&self, status: u16) -> Option<&Option<Content>> {
        self.responses
            .iter()
            .find(|(key, _)| key.matches(status))
            .map(|(_, content)| content)
    }
}

/// The policy-wide inputs to compiling an operation.
pub(crate) struct Settings<'a> {
    pub origin: &'a str,
    pub mode: OperationMode,
    pub strict: bool,
    /// The policy's `operations`, by `operationId` or `METHOD /template`.
    pub overrides: &'a BTreeMap<String, OperationSettings>,
    pub components: &'a Components,
    pub schemas: &'a SchemaSet,
    /// Whether to build response contracts (not when nothing will check responses).
    pub responses: bool,
}

/// Compiles one operation's contract.
pub(crate) fn compile(site: &Site<'_>, settings: &Settings<'_>) -> Result<Contract, PolicyError> {
    let key = format!("{} {}", site.method.as_str(), site.template);
    let own = site.operation.apiguard.clone().unwrap_or_default();
    let overrides = site
        .operation
        .operation_id
        .as_deref()
        .and_then(|id| settings.overrides.get(id))
        .or_else(|| settings.overrides.get(&key))
        .cloned()
        .unwrap_or_default();
    let mode = overrides.mode.or(own.mode).unwrap_or(settings.mode);
    let strict = overrides.strict.or(own.strict).unwrap_or(settings.strict);
    let object_ids = overrides.object_id.or(own.object_id);
    let sensitive = overrides.sensitive.or(own.sensitive);
    let compiler = Compiler {
        settings,
        request: Context {
            direction: Direction::Request,
            strict,
        },
    };

    let mut params: Vec<(ParamSpec, ParamCheck)> = Vec::new();
    let path_level = site.item.parameters.iter().enumerate().map(|(i, p)| {
        let pointer = format!("/paths/{}/parameters/{i}", pointer_token(site.template));
        (p, pointer)
    });
    let own_level = site
        .operation
        .parameters
        .iter()
        .enumerate()
        .map(|(i, p)| (p, format!("{}/parameters/{i}", site.pointer)));
    for (parameter, pointer) in path_level.chain(own_level) {
        let Some((spec, check)) = compiler.parameter(parameter, &pointer)? else {
            continue;
        };
        // An operation's parameter overrides the path item's of the same name and place.
        params.retain(|(p, _)| !(p.name == spec.name && p.location == spec.location));
        params.push((spec, check));
    }
    let body = match &site.operation.request_body {
        Some(body) => Some(compiler.request_body(body, &format!("{}/requestBody", site.pointer))?),
        None => None,
    };
    let mut responses = Vec::new();
    let declared = settings.responses.then_some(&site.operation.responses);
    for (status, response) in declared.into_iter().flatten() {
        let pointer = format!("{}/responses/{}", site.pointer, pointer_token(status));
        let key = StatusKey::parse(status).ok_or_else(|| {
            compiler.invalid(
                &pointer,
                format!("`{status}` is not a status code, `1XX`-`5XX` or `default`"),
            )
        })?;
        responses.push((key, compiler.response(response, &pointer)?));
    }
    responses.sort_by_key(|(key, _)| key.rank());
    let object_ids = match object_ids {
        Some(declared) => ObjectIds::Declared(declared.names().to_vec()),
        None => ObjectIds::Inferred(
            (params.iter())
                .filter(|(spec, check)| spec.location == In::Path && names_an_object(spec, check))
                .map(|(spec, _)| spec.name.clone())
                .collect(),
        ),
    };
    let (params, param_checks) = params.into_iter().unzip();
    Ok(Contract {
        mode,
        strict,
        object_ids,
        sensitive,
        params,
        param_checks,
        body,
        responses,
    })
}

struct Compiler<'a> {
    settings: &'a Settings<'a>,
    request: Context,
}

impl Compiler<'_> {
    fn invalid(&self, pointer: &str, message: String) -> PolicyError {
        PolicyError::Invalid {
            at: Location::new(self.settings.origin, pointer),
            message,
        }
    }

    /// A `$ref` into `components.<kind>`, resolved.
    fn component<'c, T>(
        &self,
        reference: &str,
        kind: &str,
        table: &'c BTreeMap<String, T>,
        pointer: &str,
    ) -> Result<&'c T, PolicyError> {
        reference
            .strip_prefix(&format!("#/components/{kind}/"))
            .and_then(|name| table.get(name))
            .ok_or_else(|| {
                self.invalid(
                    pointer,
                    format!("`$ref: {reference}` does not name an entry of `components.{kind}`"),
                )
            })
    }

    fn parameter(
        &self,
        parameter: &Parameter,
        pointer: &str,
    ) -> Result<Option<(ParamSpec, ParamCheck)>, PolicyError> {
        let parameter = match &parameter.reference {
            Some(reference) => self.component(
                reference,
                "parameters",
                &self.settings.components.parameters,
                pointer,
            )?,
            None => parameter,
        };
        let (Some(name), Some(location)) = (&parameter.name, &parameter.location) else {
            return Err(self.invalid(pointer, "a parameter needs `name` and `in`".to_owned()));
        };
        let location = match location.as_str() {
            "path" => In::Path,
            "query" => In::Query,
            "header" => In::Header,
            "cookie" => In::Cookie,
            other => {
                return Err(self.invalid(
                    &format!("{pointer}/in"),
                    format!("`in: {other}` is not path, query, header or cookie"),
                ))
            }
        };
        // OpenAPI: these header parameters "SHALL be ignored"; other fields say them.
        if location == In::Header
            && ["accept", "content-type", "authorization"]
                .contains(&name.to_ascii_lowercase().as_str())
        {
            return Ok(None);
        }
        let style = match &parameter.style {
            Some(style) => Style::parse(style).ok_or_else(|| {
                self.invalid(
                    &format!("{pointer}/style"),
                    format!("unknown style `{style}`"),
                )
            })?,
            None => Style::default_for(location),
        };
        if !params::style_allowed(style, location) {
            return Err(self.invalid(
                &format!("{pointer}/style"),
                format!(
                    "style `{style:?}` is not allowed for `in: {}`",
                    location.as_str()
                ),
            ));
        }
        // `content` instead of `schema`: a single media type; JSON is parsed, others only
        // presence-checked.
        let (raw, json, at) = match (&parameter.schema, &parameter.content) {
            (Some(raw), _) => (Some(raw), false, format!("{pointer}/schema")),
            (None, Some(content)) => match content.iter().next() {
                Some((key, media)) => {
                    let json = MediaType::parse(key).is_some_and(|m| m.is_json());
                    let at = format!("{pointer}/content/{}/schema", pointer_token(key));
                    (media.schema.as_ref().filter(|_| json), json, at)
                }
                None => (None, false, String::new()),
            },
            (None, None) => (None, false, String::new()),
        };
        let shape = match (raw, json) {
            (Some(raw), false) => self.settings.schemas.shape(raw),
            _ => Shape::Scalar(Types::STRING),
        };
        let schema = raw.map(|raw| Schema::new(raw.to_owned(), at, self.request));
        Ok(Some((
            ParamSpec {
                name: name.clone(),
                location,
                style,
                explode: parameter.explode.unwrap_or(params::default_explode(style)),
                shape,
                // Path parameters are always required: the template has the segment.
                required: parameter.required || location == In::Path,
                allow_empty_value: parameter.allow_empty_value,
                allow_reserved: parameter.allow_reserved,
            },
            ParamCheck { schema, json },
        )))
    }

    fn request_body(&self, body: &RequestBody, pointer: &str) -> Result<BodyContract, PolicyError> {
        let body = match &body.reference {
            Some(reference) => self.component(
                reference,
                "requestBodies",
                &self.settings.components.request_bodies,
                pointer,
            )?,
            None => body,
        };
        Ok(BodyContract {
            required: body.required,
            content: self.content(&body.content, &format!("{pointer}/content"), self.request)?,
        })
    }

    fn response(&self, response: &Response, pointer: &str) -> Result<Option<Content>, PolicyError> {
        let response = match &response.reference {
            Some(reference) => self.component(
                reference,
                "responses",
                &self.settings.components.responses,
                pointer,
            )?,
            None => response,
        };
        let context = Context {
            direction: Direction::Response,
            strict: false,
        };
        match &response.content {
            Some(content) => Ok(Some(self.content(
                content,
                &format!("{pointer}/content"),
                context,
            )?)),
            None => Ok(None),
        }
    }

    fn content(
        &self,
        content: &BTreeMap<String, MediaTypeObject>,
        pointer: &str,
        context: Context,
    ) -> Result<Content, PolicyError> {
        let mut ranges = Vec::new();
        let mut media = Vec::new();
        for (declared, object) in content {
            let at = format!("{pointer}/{}", pointer_token(declared));
            let range = MediaRange::parse(declared)
                .ok_or_else(|| self.invalid(&at, format!("`{declared}` is not a media type")))?;
            // Wildcards can select a form too; an exact other type cannot.
            let formable = match MediaType::parse(declared) {
                Some(media) => FORM_TYPES.contains(&media.essence().as_str()),
                None => true,
            };
            let form = match &object.schema {
                Some(raw) if formable => Some(form_spec(self.settings.schemas, raw)),
                _ => None,
            };
            let schema = object
                .schema
                .as_deref()
                .map(|raw| Schema::new(raw.to_owned(), format!("{at}/schema"), context));
            ranges.push(range);
            let declared = declared.clone();
            media.push(Media {
                declared,
                schema,
                form,
            });
        }
        Ok(Content { ranges, media })
    }
}

/// The media types whose bodies are read as forms.
pub(crate) const FORM_TYPES: [&str; 2] =
    ["application/x-www-form-urlencoded", "multipart/form-data"];

/// A form's fields from its object schema.
fn form_spec(schemas: &SchemaSet, raw: &RawValue) -> FormSpec {
    let (properties, additional) = schemas.property_shapes(raw);
    let fields = properties
        .into_iter()
        .map(|(name, shape)| {
            let field = match shape {
                Shape::Array { items, .. } => FieldShape::Array(items),
                Shape::Scalar(types) => FieldShape::Scalar(types),
                // A nested object in a form is a JSON text part (multipart) or unsupported.
                Shape::Object { .. } => FieldShape::Scalar(Types::ANY),
            };
            (name, field)
        })
        .collect();
    FormSpec { fields, additional }
}
