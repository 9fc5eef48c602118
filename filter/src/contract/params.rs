//! Request parameters, from the raw request parts to the typed JSON value each declared
//! parameter's schema is checked against.
//!
//! OpenAPI describes how a parameter is laid out on the wire with `style` and `explode`
//! (the Parameter Object's "Style Values" and "Style Examples" tables, after RFC 6570;
//! the tests follow the examples table of OpenAPI 3.1.1 row by row). [`extract`] reads
//! one declared parameter back out of the request that way and converts each scalar with
//! the types its schema admits ([`crate::contract::shape::coerce`]); the `schema` module then judges
//! the value. Nothing here validates: a value that fits no type stays text, so the schema,
//! not this parser, reports it.
//!
//! Reading decisions that the specification leaves open, made once here:
//!
//! - Values are percent-decoded before they are split, so `%2C` in a `form` value splits
//!   like `,` (and a path value, which the router has already decoded, likewise). RFC 6570
//!   would read an encoded delimiter as data, but common server frameworks decode first
//!   and split after; splitting the same way means the items we check are the items the
//!   upstream handles.
//! - An empty string is read literally: `?color=` is `[""]` for an array, and an error for
//!   an object (whose items come in pairs). RFC 6570 never serialises an empty list or map
//!   (they are "undefined", i.e. the parameter is left out), so there is no empty-collection
//!   form to recognise.
//! - `spaceDelimited` and `pipeDelimited` with `explode: true` (undefined in the table) read
//!   as `form` with `explode: true`, as Swagger's documentation shows them; `deepObject` is
//!   read the same whatever `explode` says (only `true` is defined).
//! - A style a location does not allow reads as that location's default style, so that
//!   [`extract`] is total; [`style_allowed`] lets the policy compiler refuse such documents
//!   before they get here.
//!
//! Every error is a fixed kind without request bytes, because its reason reaches the
//! client.

use std::borrow::Cow;
use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::contract::percent::form_decode;
use crate::contract::shape::{coerce, Shape, Types};

/// Where a parameter is, the Parameter Object's `in`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum In {
    Path,
    Query,
    Header,
    Cookie,
}

impl In {
    /// The keyword as OpenAPI spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            In::Path => "path",
            In::Query => "query",
            In::Header => "header",
            In::Cookie => "cookie",
        }
    }
}

/// How a parameter value is serialised, the Parameter Object's `style`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Style {
    /// `name=a,b` or, exploded, `name=a&name=b` (query, cookie).
    Form,
    /// `a,b` (path, header).
    Simple,
    /// `.a,b` or, exploded, `.a.b` (path).
    Label,
    /// `;name=a,b` or, exploded, `;name=a;name=b` (path).
    Matrix,
    /// `name=a%20b` (query).
    SpaceDelimited,
    /// `name=a|b` (query).
    PipeDelimited,
    /// `name[key]=value` (query, objects).
    DeepObject,
}

impl Style {
    /// Parses a `style` value; `None` for a name OpenAPI does not define (they are
    /// case-sensitive, like every OpenAPI keyword).
    pub fn parse(s: &str) -> Option<Style> {
        match s {
            "form" => Some(Style::Form),
            "simple" => Some(Style::Simple),
            "label" => Some(Style::Label),
            "matrix" => Some(Style::Matrix),
            "spaceDelimited" => Some(Style::SpaceDelimited),
            "pipeDelimited" => Some(Style::PipeDelimited),
            "deepObject" => Some(Style::DeepObject),
            _ => None,
        }
    }

    /// The style a parameter without `style` has: `form` in the query and cookies,
    /// `simple` in the path and headers.
    pub const fn default_for(location: In) -> Style {
        match location {
            In::Query | In::Cookie => Style::Form,
            In::Path | In::Header => Style::Simple,
        }
    }
}

/// The `explode` a parameter without `explode` has: `true` for `form`, `false` otherwise.
pub(crate) const fn default_explode(style: Style) -> bool {
    matches!(style, Style::Form)
}

/// Whether OpenAPI allows `style` for parameters `in` a location (the "Style Values"
/// table). The policy compiler refuses a document that breaks this, because a parameter
/// serialised in a way its location cannot carry has no defined reading.
pub(crate) const fn style_allowed(style: Style, location: In) -> bool {
    match style {
        Style::Matrix | Style::Label => matches!(location, In::Path),
        Style::Simple => matches!(location, In::Path | In::Header),
        Style::Form => matches!(location, In::Query | In::Cookie),
        Style::SpaceDelimited | Style::PipeDelimited | Style::DeepObject => {
            matches!(location, In::Query)
        }
    }
}

/// A declared parameter, compiled from a Parameter Object once per policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSpec {
    /// The name as declared; header names are matched without regard to case.
    pub name: String,
    pub location: In,
    pub style: Style,
    pub explode: bool,
    /// How the schema lays the value out, and which types its scalars convert to.
    pub shape: Shape,
    pub required: bool,
    /// A query parameter sent empty (`?name=`) counts as absent, as OpenAPI says the
    /// server should read it ("the parameter being unused").
    pub allow_empty_value: bool,
    /// `allowReserved` (query only): the value may carry reserved characters such as `;`
    /// raw. Without it, strict mode refuses a raw `;` in the value, which old parsers
    /// split on.
    pub allow_reserved: bool,
}

/// The parts of one request parameters are read from; borrowed, built once per request.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Source<'a> {
    /// Path template variables as the router captured them, already percent-decoded.
    pub path_values: &'a [(&'a str, &'a str)],
    /// The query string as [`parse_query`] splits it.
    pub query: &'a [(String, String)],
    /// Request headers, one entry per header line, names lowercase as Envoy gives them.
    pub headers: &'a [(&'a str, &'a str)],
    /// Cookies as [`parse_cookies`] splits them.
    pub cookies: &'a [(String, String)],
}

/// Why a parameter could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParamError {
    /// A `%` not followed by two hex digits, or text that is not UTF-8 once decoded.
    InvalidEncoding,
    /// A parameter (or object property) that holds one value is given more than once, so
    /// which one the upstream uses is anyone's guess.
    Repeated,
    /// A query parameter sent empty (`?name=`) without `allowEmptyValue: true`.
    Empty,
    /// The value does not follow the parameter's style: a missing `.` or `;` prefix, an
    /// object with a key but no value, a `deepObject` key that is not `name[key]`.
    Malformed,
}

impl ParamError {
    /// A short fixed sentence for the client; never contains request data.
    pub(crate) const fn reason(&self) -> &'static str {
        match self {
            ParamError::InvalidEncoding => {
                "The parameter is not validly percent-encoded or not UTF-8"
            }
            ParamError::Repeated => "The parameter is given more than once",
            ParamError::Empty => "The parameter is empty, and the contract does not allow that",
            ParamError::Malformed => "The parameter does not follow its declared style",
        }
    }
}

/// Splits a query string into `(name, value)` pairs, decoded, in request order.
///
/// The `form` style refers to `application/x-www-form-urlencoded`, so `+` is a space and
/// `%2B` a plus. Each `%XX` is decoded once. Only `&` separates pairs (`;` is data, as in
/// the WHATWG URL standard), a pair without `=` has the value `""`, and empty pairs
/// (`a=1&&b=2`) are skipped. Raw non-ASCII is accepted when it is UTF-8: unlike a path
/// segment, a query value reads the same either way.
pub(crate) fn parse_query(raw: &[u8]) -> Result<Vec<(String, String)>, ParamError> {
    raw.split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let mut parts = pair.splitn(2, |&b| b == b'=');
            let name = parts.next().unwrap_or_default();
            let value = parts.next().unwrap_or_default();
            let decode = |raw| form_decode(raw).ok_or(ParamError::InvalidEncoding);
            Ok((decode(name)?, decode(value)?))
        })
        .collect()
}

/// Splits `Cookie` header values (`a=1; b=2`, one or more lines: HTTP/2 sends one line per
/// cookie) into `(name, value)` pairs in order.
///
/// RFC 6265 defines no decoding, so none is done: names and values are trimmed of spaces
/// and tabs, and a value in double quotes loses the quotes. A part without `=` is a name
/// with the value `""`, as in the query; empty parts are skipped.
pub(crate) fn parse_cookies(header_values: &[&str]) -> Vec<(String, String)> {
    header_values
        .iter()
        .flat_map(|line| line.split(';'))
        .map(|part| part.trim_matches(OWS))
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            let value = value.trim_matches(OWS);
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            (name.trim_matches(OWS).to_owned(), value.to_owned())
        })
        .collect()
}

/// Optional whitespace around header list items and cookie pairs (RFC 9110 §5.6.3).
const OWS: [char; 2] = [' ', '\t'];

/// Reads the parameter `spec` from the request: `Ok(None)` when it is absent (the caller
/// decides whether that breaks `required`), otherwise its value as JSON with scalars
/// converted to the types the shape admits.
///
/// `declared` is every parameter of the operation (`spec` among them). Only an exploded
/// `form` object that admits undeclared properties needs it: such an object
/// (`?R=100&G=200`) has no name of its own on the wire, so it takes every query pair that
/// no other declared parameter claims, and `declared` says which those are.
///
/// Per location:
/// - path: the router's decoded value, read as `simple`, `label` (`.a,b` / `.a.b`) or
///   `matrix` (`;name=a,b` / `;name=a;name=b`);
/// - query and cookie: `form` (`name=a,b`; exploded, repeated names, or an object's
///   properties as names), `spaceDelimited`, `pipeDelimited`, `deepObject` (`name[key]`);
///   a parameter that is not an array given more than once is [`ParamError::Repeated`];
/// - header: `simple`, several lines of one header being one comma-separated list
///   (RFC 9110 §5.3), items trimmed of whitespace.
pub(crate) fn extract(
    spec: &ParamSpec,
    declared: &[ParamSpec],
    source: &Source<'_>,
) -> Result<Option<Value>, ParamError> {
    match spec.location {
        In::Path => source
            .path_values
            .iter()
            .find(|(name, _)| *name == spec.name)
            .map(|(_, value)| from_path(spec, value))
            .transpose(),
        In::Header => header_value(&spec.name, source.headers)
            .map(|value| simple(&value, spec.explode, &spec.shape, true))
            .transpose(),
        In::Query => from_pairs(spec, declared, source.query),
        In::Cookie => from_pairs(spec, declared, source.cookies),
    }
}

/// Query parameter names that no declared query parameter claims, each once, in request
/// order: the "undeclared query parameter" findings of strict mode.
///
/// A name is claimed by the parameter of that name; by a `deepObject` parameter `name`
/// when it is `name[…]`; by an exploded `form` object when it is one of its declared
/// properties, or any name no other parameter claims if the object admits undeclared
/// properties — exactly the pairs [`extract`] reads into that parameter.
pub(crate) fn undeclared_query<'q>(
    specs: &[ParamSpec],
    query: &'q [(String, String)],
) -> Vec<&'q str> {
    undeclared(specs, In::Query, query)
}

/// Cookie names that no declared cookie parameter claims, each once, in request order, by
/// the same rules as [`undeclared_query`]. Names are case-sensitive (RFC 6265 compares
/// them octet by octet): `SessionId` is not the declared `sessionid`.
pub(crate) fn undeclared_cookies<'c>(
    specs: &[ParamSpec],
    cookies: &'c [(String, String)],
) -> Vec<&'c str> {
    undeclared(specs, In::Cookie, cookies)
}

fn undeclared<'p>(
    specs: &[ParamSpec],
    location: In,
    pairs: &'p [(String, String)],
) -> Vec<&'p str> {
    let mut seen = HashSet::new();
    pairs
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| {
            !specs
                .iter()
                .any(|spec| spec.location == location && claims(spec, specs, name))
        })
        .filter(|name| seen.insert(*name))
        .collect()
}

/// Query values that carry a raw `;` (before decoding: `%3B` is data to every parser),
/// by the name of the pair, when no declared parameter that claims the pair allows
/// reserved characters (`allowReserved`). Parsers that split pairs on `;` as well as `&`
/// (older PHP, Python before 3.9.2, some Java containers) would read a second parameter
/// there that the contract never saw. Names that are not declared at all are left to
/// [`undeclared_query`]. `raw` is the query string after `?`.
pub(crate) fn raw_semicolons(specs: &[ParamSpec], raw: &[u8]) -> Vec<String> {
    raw.split(|&b| b == b'&')
        .filter_map(|pair| {
            let mut parts = pair.splitn(2, |&b| b == b'=');
            let name = form_decode(parts.next().unwrap_or_default())?;
            if !parts.next().unwrap_or_default().contains(&b';') {
                return None;
            }
            let claiming = || {
                specs
                    .iter()
                    .filter(|spec| spec.location == In::Query && claims(spec, specs, &name))
            };
            let declared = claiming().next().is_some();
            (declared && !claiming().any(|spec| spec.allow_reserved)).then_some(name)
        })
        .collect()
}

/// The style a parameter is read with at its location (see the module documentation).
fn effective_style(spec: &ParamSpec) -> Style {
    match (spec.location, spec.style) {
        (In::Path, style @ (Style::Label | Style::Matrix))
        | (In::Query, style @ (Style::SpaceDelimited | Style::PipeDelimited | Style::DeepObject)) => {
            style
        }
        (location, _) => Style::default_for(location),
    }
}

/// The object shape of a parameter whose properties are names of their own on the wire
/// (`?R=100&G=200`), or `None` for any other parameter.
fn exploded_object(spec: &ParamSpec) -> Option<&Shape> {
    let pairwise = matches!(spec.location, In::Query | In::Cookie);
    let exploded = spec.explode && effective_style(spec) != Style::DeepObject;
    (pairwise && exploded && matches!(spec.shape, Shape::Object { .. })).then_some(&spec.shape)
}

/// Whether `name` belongs to the parameter by what the parameter declares, ignoring the
/// open-ended claim of a free-form exploded object.
fn claims_by_declaration(spec: &ParamSpec, name: &str) -> bool {
    if effective_style(spec) == Style::DeepObject {
        return name
            .strip_prefix(spec.name.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('['));
    }
    match exploded_object(spec) {
        Some(Shape::Object { properties, .. }) => properties.contains_key(name),
        _ => name == spec.name,
    }
}

/// Whether the pair `name` (at the parameter's location) belongs to the parameter.
fn claims(spec: &ParamSpec, declared: &[ParamSpec], name: &str) -> bool {
    if claims_by_declaration(spec, name) {
        return true;
    }
    let open = matches!(
        exploded_object(spec),
        Some(Shape::Object { additional, .. }) if *additional != Types::default()
    );
    open && !declared
        .iter()
        .any(|other| other.location == spec.location && claims_by_declaration(other, name))
}

/// All lines of a header, joined with `,` when there are several.
fn header_value<'h>(name: &str, headers: &[(&str, &'h str)]) -> Option<Cow<'h, str>> {
    let mut lines = headers
        .iter()
        .filter(|(header, _)| header.eq_ignore_ascii_case(name))
        .map(|(_, value)| *value);
    let first = lines.next()?;
    Some(lines.fold(Cow::Borrowed(first), |mut joined, line| {
        let joined_mut = joined.to_mut();
        joined_mut.push(',');
        joined_mut.push_str(line);
        joined
    }))
}

fn from_path(spec: &ParamSpec, value: &str) -> Result<Value, ParamError> {
    match effective_style(spec) {
        Style::Label => {
            let rest = value.strip_prefix('.').ok_or(ParamError::Malformed)?;
            if spec.explode {
                exploded(rest, '.', &spec.shape, false)
            } else {
                delimited(rest, ',', &spec.shape, false)
            }
        }
        Style::Matrix => matrix(spec, value),
        _ => simple(value, spec.explode, &spec.shape, false),
    }
}

/// `a,b` for arrays; `k,v,k2,v2` or, exploded, `k=v,k2=v2` for objects.
fn simple(value: &str, explode: bool, shape: &Shape, trim: bool) -> Result<Value, ParamError> {
    if explode {
        exploded(value, ',', shape, trim)
    } else {
        delimited(value, ',', shape, trim)
    }
}

/// `;name=value` with `value` read like `simple`; exploded, `;name=a;name=b` for arrays and
/// `;k=v;k2=v2` for objects. An item without `=` has the empty value (RFC 6570's `;`
/// operator drops the `=` of an empty value).
fn matrix(spec: &ParamSpec, value: &str) -> Result<Value, ParamError> {
    let rest = value.strip_prefix(';').ok_or(ParamError::Malformed)?;
    let mut items = rest
        .split(';')
        .map(|item| item.split_once('=').unwrap_or((item, "")));
    match (&spec.shape, spec.explode) {
        (Shape::Array { items: types, .. }, true) => {
            let mut values = Vec::new();
            for (name, value) in items {
                if name != spec.name {
                    return Err(ParamError::Malformed);
                }
                values.push(coerce(value, *types));
            }
            Ok(Value::Array(values))
        }
        (Shape::Object { .. }, true) => {
            let mut object = ObjectBuilder::new(&spec.shape);
            for (key, value) in items {
                object.insert(key, value)?;
            }
            Ok(object.finish())
        }
        _ => {
            let (name, value) = items.next().unwrap_or_default();
            match items.next() {
                Some((again, _)) if again == spec.name => return Err(ParamError::Repeated),
                Some(_) => return Err(ParamError::Malformed),
                None => {}
            }
            if name != spec.name {
                return Err(ParamError::Malformed);
            }
            delimited(value, ',', &spec.shape, false)
        }
    }
}

/// Query or cookie pairs.
fn from_pairs(
    spec: &ParamSpec,
    declared: &[ParamSpec],
    pairs: &[(String, String)],
) -> Result<Option<Value>, ParamError> {
    let style = effective_style(spec);
    if style == Style::DeepObject {
        return deep_object(spec, pairs);
    }
    if let Some(shape) = exploded_object(spec) {
        let mut object = ObjectBuilder::new(shape);
        let mut found = false;
        for (name, value) in pairs {
            if claims(spec, declared, name) {
                object.insert(name, value)?;
                found = true;
            }
        }
        return Ok(found.then(|| object.finish()));
    }
    let mut values = pairs
        .iter()
        .filter(|(name, _)| *name == spec.name)
        .map(|(_, value)| value.as_str());
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if let (Shape::Array { items, .. }, true) = (&spec.shape, spec.explode) {
        let all = std::iter::once(first).chain(values);
        return Ok(Some(Value::Array(all.map(|v| coerce(v, *items)).collect())));
    }
    if values.next().is_some() {
        return Err(ParamError::Repeated);
    }
    if first.is_empty() && spec.location == In::Query {
        // `allowEmptyValue` (default false) decides whether `?name=` may be sent at all;
        // when it may, it means the parameter is unused.
        return if spec.allow_empty_value {
            Ok(None)
        } else {
            Err(ParamError::Empty)
        };
    }
    let separator = match style {
        Style::SpaceDelimited => ' ',
        Style::PipeDelimited => '|',
        _ => ',',
    };
    delimited(first, separator, &spec.shape, false).map(Some)
}

/// `name[key]=value` pairs into an object. A bare `name=` or a key that is not exactly
/// `name[key]` (nested `name[a][b]`, empty `name[]`, unclosed `name[a`) is malformed:
/// OpenAPI defines no reading for them, and upstream frameworks disagree about them.
fn deep_object(spec: &ParamSpec, pairs: &[(String, String)]) -> Result<Option<Value>, ParamError> {
    let mut object = ObjectBuilder::new(&spec.shape);
    let mut found = false;
    for (name, value) in pairs {
        let Some(rest) = name.strip_prefix(spec.name.as_str()) else {
            continue;
        };
        if rest.is_empty() {
            return Err(ParamError::Malformed);
        }
        let Some(inner) = rest.strip_prefix('[') else {
            // A longer name (`colors` for `color`): another parameter.
            continue;
        };
        let key = inner
            .strip_suffix(']')
            .filter(|key| !key.is_empty() && !key.contains(['[', ']']))
            .ok_or(ParamError::Malformed)?;
        object.insert(key, value)?;
        found = true;
    }
    Ok(found.then(|| object.finish()))
}

/// One value split at `separator`: a scalar whole, an array item by item, an object as
/// alternating keys and values.
fn delimited(value: &str, separator: char, shape: &Shape, trim: bool) -> Result<Value, ParamError> {
    let mut items = value
        .split(separator)
        .map(|item| if trim { item.trim_matches(OWS) } else { item });
    match shape {
        Shape::Scalar(types) => Ok(coerce(value, *types)),
        Shape::Array { items: types, .. } => Ok(Value::Array(
            items.map(|item| coerce(item, *types)).collect(),
        )),
        Shape::Object { .. } => {
            let mut object = ObjectBuilder::new(shape);
            while let Some(key) = items.next() {
                let value = items.next().ok_or(ParamError::Malformed)?;
                object.insert(key, value)?;
            }
            Ok(object.finish())
        }
    }
}

/// One value split at `separator` into items; an object's items are `key=value`.
fn exploded(value: &str, separator: char, shape: &Shape, trim: bool) -> Result<Value, ParamError> {
    let Shape::Object { .. } = shape else {
        return delimited(value, separator, shape, trim);
    };
    let mut object = ObjectBuilder::new(shape);
    for item in value.split(separator) {
        let item = if trim { item.trim_matches(OWS) } else { item };
        let (key, value) = item.split_once('=').ok_or(ParamError::Malformed)?;
        object.insert(key, value)?;
    }
    Ok(object.finish())
}

/// An object built property by property, each converted to the types the shape gives it.
struct ObjectBuilder<'s> {
    shape: &'s Shape,
    map: Map<String, Value>,
}

impl<'s> ObjectBuilder<'s> {
    fn new(shape: &'s Shape) -> Self {
        ObjectBuilder {
            shape,
            map: Map::new(),
        }
    }

    /// A property given twice is refused, like a repeated scalar parameter.
    fn insert(&mut self, key: &str, value: &str) -> Result<(), ParamError> {
        if self.map.contains_key(key) {
            return Err(ParamError::Repeated);
        }
        let value = coerce(value, self.shape.property(key));
        self.map.insert(key.to_owned(), value);
        Ok(())
    }

    fn finish(self) -> Value {
        Value::Object(self.map)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    /// The spec's style examples use a parameter named `color`.
    fn spec(location: In, style: Style, explode: bool, shape: Shape) -> ParamSpec {
        ParamSpec {
            name: "color".to_owned(),
            location,
            style,
            explode,
            shape,
            required: false,
            allow_empty_value: false,
            allow_reserved: false,
        }
    }

    fn scalar(types: Types) -> Shape {
        Shape::Scalar(types)
    }

    fn array(items: Types) -> Shape {
        Shape::Array {
            items,
            scalar: Types::default(),
        }
    }

    /// `{R, G, B}` integers, nothing else.
    fn rgb() -> Shape {
        object(
            &[
                ("R", Types::INTEGER),
                ("G", Types::INTEGER),
                ("B", Types::INTEGER),
            ],
            Types::default(),
        )
    }

    fn object(properties: &[(&str, Types)], additional: Types) -> Shape {
        Shape::Object {
            properties: properties
                .iter()
                .map(|(name, types)| ((*name).to_owned(), *types))
                .collect::<BTreeMap<_, _>>(),
            additional,
        }
    }

    const STRING: Types = Types::STRING;
    const INTEGER: Types = Types::INTEGER;

    /// Reads `spec` from a request whose part at the parameter's location is `raw`: the
    /// path value, the query string, header lines separated by `\n`, or a `Cookie` header.
    fn read(spec: &ParamSpec, raw: &str) -> Result<Option<Value>, ParamError> {
        let path = [(spec.name.as_str(), raw)];
        let header_name = spec.name.to_ascii_lowercase();
        let headers: Vec<(&str, &str)> =
            raw.split('\n').map(|l| (header_name.as_str(), l)).collect();
        let query = match spec.location {
            In::Query => parse_query(raw.as_bytes())?,
            _ => Vec::new(),
        };
        let cookies = parse_cookies(&[raw]);
        let mut source = Source::default();
        match spec.location {
            In::Path => source.path_values = &path,
            In::Query => source.query = &query,
            In::Header => source.headers = &headers,
            In::Cookie => source.cookies = &cookies,
        }
        extract(spec, std::slice::from_ref(spec), &source)
    }

    fn ok(value: Value) -> Result<Option<Value>, ParamError> {
        Ok(Some(value))
    }

    const MALFORMED: Result<Option<Value>, ParamError> = Err(ParamError::Malformed);
    const REPEATED: Result<Option<Value>, ParamError> = Err(ParamError::Repeated);
    const EMPTY: Result<Option<Value>, ParamError> = Err(ParamError::Empty);
    const ABSENT: Result<Option<Value>, ParamError> = Ok(None);

    /// `name: location style explode shape, raw => expected`, one test each.
    macro_rules! reads {
        ($($name:ident: $location:ident $style:ident $explode:literal $shape:expr, $raw:expr => $expected:expr,)*) => {$(
            #[test]
            fn $name() {
                let spec = spec(In::$location, Style::$style, $explode, $shape);
                assert_eq!(read(&spec, $raw), $expected, "{:?}", $raw);
            }
        )*};
    }

    // The style examples table of OpenAPI 3.1.1, row by row, then what breaks each row.
    reads! {
        matrix_empty: Path Matrix false scalar(STRING), ";color" => ok(json!("")),
        matrix_string: Path Matrix false scalar(STRING), ";color=blue" => ok(json!("blue")),
        matrix_array: Path Matrix false array(STRING), ";color=blue,black,brown" => ok(json!(["blue", "black", "brown"])),
        matrix_object: Path Matrix false rgb(), ";color=R,100,G,200,B,150" => ok(json!({"R": 100, "G": 200, "B": 150})),
        matrix_explode_string: Path Matrix true scalar(STRING), ";color=blue" => ok(json!("blue")),
        matrix_explode_array: Path Matrix true array(STRING), ";color=blue;color=black;color=brown" => ok(json!(["blue", "black", "brown"])),
        matrix_explode_object: Path Matrix true rgb(), ";R=100;G=200;B=150" => ok(json!({"R": 100, "G": 200, "B": 150})),
        matrix_explode_object_empty_value: Path Matrix true rgb(), ";R;G=1" => ok(json!({"R": "", "G": 1})),
        matrix_without_semicolon: Path Matrix false scalar(STRING), "color=blue" => MALFORMED,
        matrix_other_name: Path Matrix false scalar(STRING), ";colour=blue" => MALFORMED,
        matrix_string_twice: Path Matrix false scalar(STRING), ";color=blue;color=black" => REPEATED,
        matrix_string_and_more: Path Matrix false scalar(STRING), ";color=blue;x=1" => MALFORMED,
        matrix_exploded_array_not_exploded: Path Matrix false array(STRING), ";color=blue;color=black" => REPEATED,
        matrix_explode_array_other_name: Path Matrix true array(STRING), ";color=blue;colour=black" => MALFORMED,
        matrix_object_odd_items: Path Matrix false rgb(), ";color=R,100,G" => MALFORMED,
        matrix_explode_object_twice: Path Matrix true rgb(), ";R=1;R=2" => REPEATED,

        label_empty: Path Label false scalar(STRING), "." => ok(json!("")),
        label_string: Path Label false scalar(STRING), ".blue" => ok(json!("blue")),
        label_array: Path Label false array(STRING), ".blue,black,brown" => ok(json!(["blue", "black", "brown"])),
        label_object: Path Label false rgb(), ".R,100,G,200,B,150" => ok(json!({"R": 100, "G": 200, "B": 150})),
        label_explode_string: Path Label true scalar(STRING), ".blue" => ok(json!("blue")),
        label_explode_array: Path Label true array(STRING), ".blue.black.brown" => ok(json!(["blue", "black", "brown"])),
        label_explode_object: Path Label true rgb(), ".R=100.G=200.B=150" => ok(json!({"R": 100, "G": 200, "B": 150})),
        label_explode_number_stays_whole: Path Label true scalar(Types::NUMBER), ".1.5" => ok(json!(1.5)),
        label_without_dot: Path Label false scalar(STRING), "blue" => MALFORMED,
        label_array_not_exploded_keeps_dots: Path Label false array(STRING), ".blue.black" => ok(json!(["blue.black"])),
        label_explode_object_key_without_value: Path Label true rgb(), ".R=100.G" => MALFORMED,

        simple_empty: Path Simple false scalar(STRING), "" => ok(json!("")),
        simple_string: Path Simple false scalar(STRING), "blue" => ok(json!("blue")),
        simple_array: Path Simple false array(STRING), "blue,black,brown" => ok(json!(["blue", "black", "brown"])),
        simple_object: Path Simple false rgb(), "R,100,G,200,B,150" => ok(json!({"R": 100, "G": 200, "B": 150})),
        simple_explode_string: Path Simple true scalar(STRING), "blue" => ok(json!("blue")),
        simple_explode_array: Path Simple true array(STRING), "blue,black,brown" => ok(json!(["blue", "black", "brown"])),
        simple_explode_object: Path Simple true rgb(), "R=100,G=200,B=150" => ok(json!({"R": 100, "G": 200, "B": 150})),
        simple_string_keeps_commas: Path Simple false scalar(STRING), "blue,black" => ok(json!("blue,black")),
        simple_empty_array_is_one_empty_item: Path Simple false array(STRING), "" => ok(json!([""])),
        simple_object_odd_items: Path Simple false rgb(), "R,100,G" => MALFORMED,
        simple_object_empty: Path Simple false rgb(), "" => MALFORMED,
        simple_object_twice: Path Simple false rgb(), "R,1,R,2" => REPEATED,
        simple_explode_object_key_without_value: Path Simple true rgb(), "R=100,G" => MALFORMED,
        simple_explode_object_not_exploded: Path Simple true rgb(), "R,100,G,200" => MALFORMED,
        simple_undeclared_property_is_kept_for_the_schema: Path Simple false rgb(), "R,1,X,2" => ok(json!({"R": 1, "X": "2"})),

        form_empty_without_allow_empty_value: Query Form false scalar(STRING), "color=" => EMPTY,
        form_string: Query Form false scalar(STRING), "color=blue" => ok(json!("blue")),
        form_array: Query Form false array(STRING), "color=blue,black,brown" => ok(json!(["blue", "black", "brown"])),
        form_object: Query Form false rgb(), "color=R,100,G,200,B,150" => ok(json!({"R": 100, "G": 200, "B": 150})),
        form_explode_empty_without_allow_empty_value: Query Form true scalar(STRING), "color=" => EMPTY,
        form_explode_string: Query Form true scalar(STRING), "color=blue" => ok(json!("blue")),
        form_explode_array: Query Form true array(STRING), "color=blue&color=black&color=brown" => ok(json!(["blue", "black", "brown"])),
        form_explode_object: Query Form true rgb(), "R=100&G=200&B=150" => ok(json!({"R": 100, "G": 200, "B": 150})),
        form_absent: Query Form true scalar(STRING), "colour=blue" => ABSENT,
        form_explode_array_absent: Query Form true array(STRING), "x=1" => ABSENT,
        form_explode_object_absent: Query Form true rgb(), "x=1" => ABSENT,
        form_string_twice: Query Form true scalar(STRING), "color=blue&color=black" => REPEATED,
        form_array_not_exploded_twice: Query Form false array(STRING), "color=blue&color=black" => REPEATED,
        form_explode_array_keeps_commas: Query Form true array(STRING), "color=blue,black" => ok(json!(["blue,black"])),
        form_explode_object_property_twice: Query Form true rgb(), "R=1&R=2" => REPEATED,
        form_explode_object_ignores_undeclared_when_closed: Query Form true rgb(), "R=1&X=2&color=3" => ok(json!({"R": 1})),
        form_object_odd_items: Query Form false rgb(), "color=R,100,G" => MALFORMED,
        form_decoded_comma_splits: Query Form false array(STRING), "color=blue%2Cblack" => ok(json!(["blue", "black"])),

        space_delimited_array: Query SpaceDelimited false array(STRING), "color=blue%20black%20brown" => ok(json!(["blue", "black", "brown"])),
        space_delimited_array_plus: Query SpaceDelimited false array(STRING), "color=blue+black+brown" => ok(json!(["blue", "black", "brown"])),
        space_delimited_object: Query SpaceDelimited false rgb(), "color=R%20100%20G%20200%20B%20150" => ok(json!({"R": 100, "G": 200, "B": 150})),
        space_delimited_keeps_commas: Query SpaceDelimited false array(STRING), "color=blue,black" => ok(json!(["blue,black"])),
        space_delimited_twice: Query SpaceDelimited false array(STRING), "color=blue&color=black" => REPEATED,
        space_delimited_object_odd_items: Query SpaceDelimited false rgb(), "color=R%20100%20G" => MALFORMED,
        space_delimited_explode_reads_as_form: Query SpaceDelimited true array(STRING), "color=blue&color=black" => ok(json!(["blue", "black"])),

        pipe_delimited_array: Query PipeDelimited false array(STRING), "color=blue|black|brown" => ok(json!(["blue", "black", "brown"])),
        pipe_delimited_array_encoded: Query PipeDelimited false array(STRING), "color=blue%7Cblack%7Cbrown" => ok(json!(["blue", "black", "brown"])),
        pipe_delimited_object: Query PipeDelimited false rgb(), "color=R%7C100%7CG%7C200%7CB%7C150" => ok(json!({"R": 100, "G": 200, "B": 150})),
        pipe_delimited_keeps_spaces: Query PipeDelimited false array(STRING), "color=blue+black" => ok(json!(["blue black"])),
        pipe_delimited_object_odd_items: Query PipeDelimited false rgb(), "color=R|100|G" => MALFORMED,
        pipe_delimited_explode_reads_as_form: Query PipeDelimited true array(INTEGER), "color=1&color=2" => ok(json!([1, 2])),

        deep_object: Query DeepObject true rgb(), "color%5BR%5D=100&color%5BG%5D=200&color%5BB%5D=150" => ok(json!({"R": 100, "G": 200, "B": 150})),
        deep_object_raw_brackets: Query DeepObject true rgb(), "color[R]=100&color[G]=200&x=1" => ok(json!({"R": 100, "G": 200})),
        deep_object_not_exploded_reads_the_same: Query DeepObject false rgb(), "color[R]=100" => ok(json!({"R": 100})),
        deep_object_absent: Query DeepObject true rgb(), "colors[R]=1&x=1" => ABSENT,
        deep_object_bare_name: Query DeepObject true rgb(), "color=1&color[R]=1" => MALFORMED,
        deep_object_unclosed: Query DeepObject true rgb(), "color[R=100" => MALFORMED,
        deep_object_nested: Query DeepObject true rgb(), "color[R][x]=1" => MALFORMED,
        deep_object_empty_key: Query DeepObject true rgb(), "color[]=1" => MALFORMED,
        deep_object_trailing: Query DeepObject true rgb(), "color[R]x=1" => MALFORMED,
        deep_object_property_twice: Query DeepObject true rgb(), "color[R]=1&color[R]=2" => REPEATED,

        header_string: Header Simple false scalar(STRING), "blue" => ok(json!("blue")),
        header_array: Header Simple false array(STRING), "blue,black,brown" => ok(json!(["blue", "black", "brown"])),
        header_array_trims_whitespace: Header Simple false array(STRING), "blue, black ,\tbrown" => ok(json!(["blue", "black", "brown"])),
        header_array_over_lines: Header Simple false array(STRING), "blue,black\nbrown" => ok(json!(["blue", "black", "brown"])),
        header_string_over_lines_is_one_list: Header Simple false scalar(STRING), "blue\nblack" => ok(json!("blue,black")),
        header_object: Header Simple false rgb(), "R,100,G,200,B,150" => ok(json!({"R": 100, "G": 200, "B": 150})),
        header_explode_object: Header Simple true rgb(), "R=100, G=200\nB=150" => ok(json!({"R": 100, "G": 200, "B": 150})),
        header_explode_object_key_without_value: Header Simple true rgb(), "R=100,G" => MALFORMED,
        header_object_odd_items: Header Simple false rgb(), "R,100,G" => MALFORMED,

        cookie_string: Cookie Form false scalar(STRING), "color=blue" => ok(json!("blue")),
        cookie_quoted: Cookie Form false scalar(STRING), "a=1; color=\"blue\"" => ok(json!("blue")),
        cookie_array: Cookie Form false array(STRING), "color=blue,black,brown; x=1" => ok(json!(["blue", "black", "brown"])),
        cookie_explode_array: Cookie Form true array(STRING), "color=blue; color=black" => ok(json!(["blue", "black"])),
        cookie_explode_object: Cookie Form true rgb(), "R=100; G=200;B=150" => ok(json!({"R": 100, "G": 200, "B": 150})),
        cookie_object: Cookie Form false rgb(), "color=R,100,G,200,B,150" => ok(json!({"R": 100, "G": 200, "B": 150})),
        cookie_string_twice: Cookie Form false scalar(STRING), "color=blue; color=black" => REPEATED,
        cookie_not_decoded: Cookie Form false scalar(STRING), "color=a%20b+c" => ok(json!("a%20b+c")),
        cookie_absent: Cookie Form false scalar(STRING), "colour=blue" => ABSENT,

        // Conversion: each scalar, item and property to the types the shape gives it.
        integer: Query Form true scalar(INTEGER), "color=10" => ok(json!(10)),
        integer_not_a_number_stays_text: Query Form true scalar(INTEGER), "color=ten" => ok(json!("ten")),
        number: Path Simple false scalar(Types::NUMBER), "-2.5" => ok(json!(-2.5)),
        boolean: Header Simple false scalar(Types::BOOLEAN), "true" => ok(json!(true)),
        string_stays_text: Query Form true scalar(STRING), "color=10" => ok(json!("10")),
        integer_array: Query Form false array(INTEGER), "color=1,2,3" => ok(json!([1, 2, 3])),
        integer_array_exploded: Query Form true array(INTEGER), "color=1&color=x" => ok(json!([1, "x"])),
        integer_array_path: Path Simple false array(INTEGER), "1,02" => ok(json!([1, "02"])),
        empty_integer_stays_text: Cookie Form true scalar(INTEGER), "color=" => ok(json!("")),
        empty_nullable_integer_is_null: Cookie Form true scalar(INTEGER.union(Types::NULL)), "color=" => ok(json!(null)),
        object_properties_typed_per_property: Query DeepObject true object(&[("n", INTEGER), ("b", Types::BOOLEAN)], STRING), "color[n]=1&color[b]=true&color[s]=1" => ok(json!({"n": 1, "b": true, "s": "1"})),
        plus_is_a_space: Query Form true scalar(STRING), "color=light+blue" => ok(json!("light blue")),
        encoded_space: Query Form true scalar(STRING), "color=light%20blue" => ok(json!("light blue")),
        encoded_plus_is_a_plus: Query Form true scalar(STRING), "color=a%2Bb" => ok(json!("a+b")),
        decoded_once: Query Form true scalar(STRING), "color=%2541" => ok(json!("%41")),
        encoded_name: Query Form true scalar(STRING), "c%6Flor=blue" => ok(json!("blue")),
        invalid_encoding_anywhere_fails_the_query: Query Form true scalar(STRING), "color=blue&x=%zz" => Err(ParamError::InvalidEncoding),
    }

    #[test]
    fn allow_empty_value_makes_an_empty_query_value_absent() {
        let mut limit = spec(In::Query, Style::Form, true, scalar(INTEGER));
        limit.allow_empty_value = true;
        assert_eq!(read(&limit, "color="), ABSENT);
        assert_eq!(read(&limit, "color"), ABSENT);
        assert_eq!(read(&limit, "color=5"), ok(json!(5)));
        assert_eq!(read(&limit, "color=&color="), REPEATED);
    }

    #[test]
    fn header_names_match_without_case() {
        let mut spec = spec(In::Header, Style::Simple, false, array(INTEGER));
        spec.name = "X-Request-Ids".to_owned();
        let headers = [
            ("x-request-ids", "1, 2"),
            ("x-other", "3"),
            ("X-REQUEST-IDS", "4"),
        ];
        let source = Source {
            headers: &headers,
            ..Source::default()
        };
        assert_eq!(
            extract(&spec, std::slice::from_ref(&spec), &source),
            ok(json!([1, 2, 4]))
        );
    }

    #[test]
    fn path_values_are_found_by_exact_name() {
        let spec = spec(In::Path, Style::Simple, false, scalar(INTEGER));
        let values = [("Color", "1"), ("color", "2")];
        let source = Source {
            path_values: &values,
            ..Source::default()
        };
        assert_eq!(extract(&spec, &[], &source), ok(json!(2)));
        assert_eq!(extract(&spec, &[], &Source::default()), ABSENT);
    }

    #[test]
    fn a_free_form_exploded_object_takes_the_pairs_nobody_else_claims() {
        let free = ParamSpec {
            name: "filter".to_owned(),
            ..spec(
                In::Query,
                Style::Form,
                true,
                object(&[("n", INTEGER)], INTEGER),
            )
        };
        let limit = ParamSpec {
            name: "limit".to_owned(),
            ..spec(In::Query, Style::Form, true, scalar(INTEGER))
        };
        let deep = ParamSpec {
            name: "page".to_owned(),
            ..spec(In::Query, Style::DeepObject, true, rgb())
        };
        let header = ParamSpec {
            name: "x".to_owned(),
            ..spec(In::Header, Style::Simple, false, scalar(STRING))
        };
        let declared = [free.clone(), limit, deep, header];
        let query = parse_query(b"n=1&limit=5&page[R]=1&x=2&y=z").unwrap();
        let source = Source {
            query: &query,
            ..Source::default()
        };
        assert_eq!(
            extract(&free, &declared, &source),
            ok(json!({"n": 1, "x": 2, "y": "z"}))
        );
        assert_eq!(undeclared_query(&declared, &query), Vec::<&str>::new());
    }

    #[test]
    fn undeclared_query_names() {
        let declared = [
            ParamSpec {
                name: "limit".to_owned(),
                ..spec(In::Query, Style::Form, true, scalar(INTEGER))
            },
            spec(In::Query, Style::DeepObject, true, rgb()),
            ParamSpec {
                name: "rgb".to_owned(),
                ..spec(In::Query, Style::Form, true, rgb())
            },
            ParamSpec {
                name: "offset".to_owned(),
                ..spec(In::Header, Style::Simple, false, scalar(INTEGER))
            },
        ];
        let query = parse_query(
            b"limit=1&color[R]=1&color=2&colors=3&R=4&G=5&rgb=6&offset=7&X=8&offset=9&a%20b=",
        )
        .unwrap();
        // `rgb` is an exploded object: its name is not on the wire, its properties are.
        // `offset` is declared, but as a header.
        assert_eq!(
            undeclared_query(&declared, &query),
            vec!["colors", "rgb", "offset", "X", "a b"]
        );
        assert_eq!(undeclared_query(&[], &query).len(), 10);
    }

    #[test]
    fn parses_query_pairs() {
        let pairs = |raw: &str| parse_query(raw.as_bytes());
        let owned = |list: &[(&str, &str)]| {
            Ok(list
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>())
        };
        assert_eq!(pairs(""), owned(&[]));
        assert_eq!(pairs("a=1&&b=2&"), owned(&[("a", "1"), ("b", "2")]));
        assert_eq!(pairs("a&b=&=c"), owned(&[("a", ""), ("b", ""), ("", "c")]));
        assert_eq!(pairs("a=1=2"), owned(&[("a", "1=2")]));
        assert_eq!(pairs("a=x;b=y"), owned(&[("a", "x;b=y")]));
        assert_eq!(pairs("a+b=c+d%20e"), owned(&[("a b", "c d e")]));
        assert_eq!(
            pairs("q=caf%C3%A9&r=caf\u{e9}"),
            owned(&[("q", "café"), ("r", "café")])
        );
        assert_eq!(pairs("a=1&a=2"), owned(&[("a", "1"), ("a", "2")]));
    }

    #[test]
    fn refuses_invalid_query_encoding() {
        for raw in [
            &b"a=%zz"[..],
            b"a=%4",
            b"a=%",
            b"%=1",
            b"a=%ff",
            b"a=%C3",
            b"a=\xff",
            b"a=%%41",
        ] {
            assert_eq!(
                parse_query(raw),
                Err(ParamError::InvalidEncoding),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn parses_cookies() {
        let owned = |list: &[(&str, &str)]| {
            list.iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            parse_cookies(&["a=1; b=\"two\";c=3", "d = 4 ;; e; f=\"\"; g=\"x"]),
            owned(&[
                ("a", "1"),
                ("b", "two"),
                ("c", "3"),
                ("d", "4"),
                ("e", ""),
                ("f", ""),
                ("g", "\"x")
            ])
        );
        assert_eq!(parse_cookies(&[]), owned(&[]));
        assert_eq!(parse_cookies(&[" ; "]), owned(&[]));
    }

    #[test]
    fn style_table() {
        use In::{Cookie, Header, Path, Query};
        let allowed: [(Style, &[In]); 7] = [
            (Style::Matrix, &[Path]),
            (Style::Label, &[Path]),
            (Style::Simple, &[Path, Header]),
            (Style::Form, &[Query, Cookie]),
            (Style::SpaceDelimited, &[Query]),
            (Style::PipeDelimited, &[Query]),
            (Style::DeepObject, &[Query]),
        ];
        for (style, locations) in allowed {
            for location in [Path, Query, Header, Cookie] {
                assert_eq!(
                    style_allowed(style, location),
                    locations.contains(&location),
                    "{style:?} in {}",
                    location.as_str()
                );
            }
        }
        for location in [Path, Query, Header, Cookie] {
            assert!(style_allowed(Style::default_for(location), location));
        }
        assert_eq!(Style::parse("deepObject"), Some(Style::DeepObject));
        assert_eq!(Style::parse("spaceDelimited"), Some(Style::SpaceDelimited));
        assert_eq!(Style::parse("DeepObject"), None);
        assert!(default_explode(Style::Form));
        assert!(!default_explode(Style::DeepObject));
        assert!(!default_explode(Style::Simple));
    }

    #[test]
    fn a_style_not_allowed_at_a_location_reads_as_its_default() {
        let matrix_header = spec(In::Header, Style::Matrix, false, array(STRING));
        assert_eq!(read(&matrix_header, "a,b"), ok(json!(["a", "b"])));
        let deep_cookie = spec(In::Cookie, Style::DeepObject, false, scalar(STRING));
        assert_eq!(read(&deep_cookie, "color=a"), ok(json!("a")));
    }

    /// Every combination of `where_how` × explode × a few shapes, named `a`.
    fn every_spec(where_how: &[(In, Style)]) -> Vec<ParamSpec> {
        let shapes = [
            scalar(INTEGER),
            array(INTEGER),
            rgb(),
            object(&[], Types::ANY),
        ];
        let mut specs = Vec::new();
        for &(location, style) in where_how {
            for explode in [true, false] {
                for shape in &shapes {
                    specs.push(ParamSpec {
                        name: "a".to_owned(),
                        ..spec(location, style, explode, shape.clone())
                    });
                }
            }
        }
        specs
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap exhaustive sweep over short byte strings, read as every style; the fuzz
        // target goes further.
        let alphabet = [
            b'a', b'=', b'&', b'%', b'+', b'2', b'C', b'[', b']', b',', b';', b'.', b'|', 0xC3,
            0xA9,
        ];
        let query_specs = every_spec(&[
            (In::Query, Style::Form),
            (In::Query, Style::SpaceDelimited),
            (In::Query, Style::PipeDelimited),
            (In::Query, Style::DeepObject),
        ]);
        let other_specs = every_spec(&[
            (In::Path, Style::Simple),
            (In::Path, Style::Label),
            (In::Path, Style::Matrix),
            (In::Header, Style::Simple),
            (In::Cookie, Style::Form),
        ]);
        for a in alphabet {
            for b in alphabet {
                for c in alphabet {
                    for d in alphabet {
                        let raw = [a, b, c, d];
                        if let Ok(query) = parse_query(&raw) {
                            let source = Source {
                                query: &query,
                                ..Source::default()
                            };
                            for spec in &query_specs {
                                let _ = extract(spec, &query_specs, &source);
                            }
                            let _ = undeclared_query(&query_specs, &query);
                        }
                        if let Ok(text) = std::str::from_utf8(&raw) {
                            for spec in &other_specs {
                                let _ = read(spec, text);
                            }
                        }
                    }
                }
            }
        }
    }
}
