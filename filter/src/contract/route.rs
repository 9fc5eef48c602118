//! The route matcher: a segment trie over the document's path templates.
//!
//! Built once per policy. Matching walks the request's decoded segments down the trie,
//! trying at each position a literal child first, then mixed segments such as
//! `{year}.{format}`, then a whole-segment parameter — so `/users/me` beats
//! `/users/{id}`, as OpenAPI requires — and backtracks when a branch dead-ends
//! deeper down (`/users/me/posts` still finds `/users/{id}/posts`). Each trie node is
//! visited at most once per request, so the cost is bounded by the request's depth and
//! the trie's fan-out, not by the number of operations.
//!
//! The path matches first, the method second: `DELETE /users/me` against a document with
//! `GET /users/me` and `DELETE /users/{id}` is a 405, because the concrete path is the
//! resource the client named.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use crate::contract::openapi::{PathItem, Server};
use crate::error::{pointer_token, Location, PolicyError};
use crate::request::Method;

/// One path shape: the operations of every template that matches the same requests.
///
/// Usually that is one path item. Templates that differ only in parameter names
/// (`/orgs/{org}/attestations/{subject_digest}` for `GET` and `…/{attestation_id}` for
/// `DELETE`, both in GitHub's API) share a shape; they are merged here as long as no
/// method is declared twice, which is the real conflict.
#[derive(Debug, Default)]
pub(crate) struct Route {
    operations: [Option<Operation>; 8],
}

/// What the engine keeps of an operation.
#[derive(Debug)]
pub(crate) struct Operation {
    /// The template as written in the document, e.g. `/pets/{petId}`.
    pub template: Rc<str>,
    /// Parameter names in the order they appear in the template.
    pub params: Rc<[String]>,
    /// What the `compile` callback of [`Router::build`] returned for this operation.
    pub id: usize,
}

/// An operation of the document, as [`Router::build`] hands it to be compiled.
pub(crate) struct Site<'d> {
    pub template: &'d str,
    /// JSON pointer of the operation, e.g. `/paths/~1pets/get`.
    pub pointer: String,
    pub item: &'d PathItem,
    pub method: Method,
    pub operation: &'d crate::contract::openapi::Operation,
}

impl Route {
    pub(crate) fn operation(&self, method: Method) -> Option<&Operation> {
        self.operations[method.index()].as_ref()
    }

    /// The declared methods, in path-item order (the `Allow` header).
    pub(crate) fn methods(&self) -> Vec<Method> {
        Method::ALL
            .into_iter()
            .filter(|m| self.operation(*m).is_some())
            .collect()
    }

    /// The template of the first declared operation: the context of a 405.
    pub(crate) fn template(&self) -> &str {
        self.operations
            .iter()
            .flatten()
            .next()
            .map_or("", |op| &op.template)
    }
}

/// A request path matched to a route, with the parameter values it captured.
#[derive(Debug)]
pub(crate) struct RouteMatch<'r, 's> {
    pub route: &'r Route,
    /// Decoded values, in the order of [`Operation::params`].
    pub values: Vec<&'s str>,
}

#[derive(Debug, Default)]
pub(crate) struct Router {
    root: Node,
    routes: Vec<Route>,
}

#[derive(Debug, Default)]
struct Node {
    literals: HashMap<Box<str>, Node>,
    /// Mixed segments, most literal characters first.
    patterns: Vec<(Pattern, Node)>,
    param: Option<Box<Node>>,
    route: Option<usize>,
}

/// A segment that mixes literals and parameters, e.g. `{year}.{format}`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern(Vec<Piece>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Param,
}

/// A parsed template segment.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param,
    Pattern(Pattern),
}

impl Router {
    /// Builds the trie from every path item that declares at least one operation.
    /// `compile` is called once per operation and returns the id the router hands back
    /// for it (see [`Operation::id`]); matching stays independent of what is compiled.
    pub(crate) fn build(
        paths: &BTreeMap<String, PathItem>,
        servers: &[Server],
        origin: &str,
        compile: &mut dyn FnMut(&Site<'_>) -> Result<usize, PolicyError>,
    ) -> Result<Router, PolicyError> {
        let document_bases = base_paths(servers, "/servers", origin)?;
        let mut router = Router::default();
        for (template, item) in paths {
            let at = format!("/paths/{}", pointer_token(template));
            let invalid = |message: String| PolicyError::Invalid {
                at: Location::new(origin, &at),
                message,
            };
            if item.reference.is_some() {
                return Err(invalid(
                    "`$ref` path items are not supported: inline the path item".to_owned(),
                ));
            }
            let methods: Vec<Method> = Method::ALL
                .into_iter()
                .filter(|m| item.operation(*m).is_some())
                .collect();
            if methods.is_empty() {
                continue;
            }
            let (segments, names) = parse_template(template).map_err(invalid)?;
            let bases = match &item.servers {
                Some(servers) if !servers.is_empty() => {
                    base_paths(servers, &format!("{at}/servers"), origin)?
                }
                _ => document_bases.clone(),
            };
            let shared_template: Rc<str> = template.as_str().into();
            let params: Rc<[String]> = names.into();
            let mut ids = [None; 8];
            for (method, operation) in methods
                .iter()
                .filter_map(|&m| Some((m, item.operation(m)?)))
            {
                ids[method.index()] = Some(compile(&Site {
                    template,
                    pointer: format!("{at}/{}", method.openapi_key()),
                    item,
                    method,
                    operation,
                })?);
            }
            for base in &bases {
                let full = base.iter().map(|s| Segment::Literal(s.clone()));
                // A URL is the server URL followed by the template, so `/` under the base
                // `/api` is `/api/`: the template's slash stays a trailing one.
                let root_slash = (segments.is_empty() && !base.is_empty())
                    .then(|| Segment::Literal(String::new()));
                let node = router
                    .root
                    .insert(full.chain(segments.iter().cloned()).chain(root_slash));
                let index = *node.route.get_or_insert_with(|| {
                    router.routes.push(Route::default());
                    router.routes.len() - 1
                });
                let route = &mut router.routes[index];
                for (method, id) in Method::ALL
                    .into_iter()
                    .zip(ids)
                    .filter_map(|(m, id)| Some((m, id?)))
                {
                    let slot = &mut route.operations[method.index()];
                    if let Some(existing) = slot {
                        return Err(invalid(conflict(&existing.template, template, method)));
                    }
                    *slot = Some(Operation {
                        template: Rc::clone(&shared_template),
                        params: Rc::clone(&params),
                        id,
                    });
                }
            }
        }
        if router.routes.is_empty() {
            return Err(PolicyError::Invalid {
                at: Location::new(origin, "/paths"),
                message: "the document declares no operations, so every request would be \
                          refused: add paths with operations"
                    .to_owned(),
            });
        }
        Ok(router)
    }

    /// Finds the route for decoded request segments.
    pub(crate) fn find<'r, 's, S: AsRef<str>>(
        &'r self,
        segments: &'s [S],
    ) -> Option<RouteMatch<'r, 's>> {
        let mut values = Vec::new();
        let index = self.root.find(segments, &mut values)?;
        let route = self.routes.get(index)?;
        Some(RouteMatch { route, values })
    }

    /// How many distinct path shapes were compiled.
    pub(crate) fn len(&self) -> usize {
        self.routes.len()
    }
}

fn conflict(existing: &str, template: &str, method: Method) -> String {
    format!(
        "`{method} {template}` is the same operation as `{method} {existing}` (templates that \
         differ only in parameter names, or that meet under a server base path, match the same \
         requests): remove one of them",
        method = method.as_str(),
    )
}

impl Node {
    fn insert(&mut self, segments: impl Iterator<Item = Segment>) -> &mut Node {
        let mut node = self;
        for segment in segments {
            node = match segment {
                Segment::Literal(lit) => node.literals.entry(lit.into()).or_default(),
                Segment::Param => node.param.get_or_insert_with(Default::default),
                Segment::Pattern(pattern) => {
                    let i = match node.patterns.iter().position(|(p, _)| *p == pattern) {
                        Some(i) => i,
                        None => {
                            let weight = pattern.literal_len();
                            let i = node
                                .patterns
                                .iter()
                                .position(|(p, _)| p.literal_len() < weight)
                                .unwrap_or(node.patterns.len());
                            node.patterns.insert(i, (pattern, Node::default()));
                            i
                        }
                    };
                    &mut node.patterns[i].1
                }
            };
        }
        node
    }

    fn find<'s, S: AsRef<str>>(
        &self,
        segments: &'s [S],
        values: &mut Vec<&'s str>,
    ) -> Option<usize> {
        let Some((segment, rest)) = segments.split_first() else {
            return self.route;
        };
        let segment = segment.as_ref();
        if let Some(found) = self
            .literals
            .get(segment)
            .and_then(|n| n.find(rest, values))
        {
            return Some(found);
        }
        let mark = values.len();
        for (pattern, child) in &self.patterns {
            if pattern.capture(segment, values) {
                if let Some(found) = child.find(rest, values) {
                    return Some(found);
                }
            }
            values.truncate(mark);
        }
        if let Some(child) = self.param.as_deref().filter(|_| !segment.is_empty()) {
            values.push(segment);
            if let Some(found) = child.find(rest, values) {
                return Some(found);
            }
            values.truncate(mark);
        }
        None
    }
}

impl Pattern {
    fn literal_len(&self) -> usize {
        self.0
            .iter()
            .map(|p| match p {
                Piece::Literal(l) => l.len(),
                Piece::Param => 0,
            })
            .sum()
    }

    /// Matches `s` against the pattern, pushing each parameter's value. A parameter
    /// takes at least one character and is always followed by a literal or the segment's
    /// end (adjacent parameters are refused at compile time).
    ///
    /// One pass: a parameter followed by a literal and then another parameter takes the
    /// text up to the first occurrence of that literal. If the segment matches at all,
    /// it matches that way (the next parameter absorbs whatever this one could have taken
    /// more), which is also the match a search trying occurrences from the left finds
    /// first — but such a search retries every occurrence of every literal when the end
    /// fails, O(n^k) for k parameters on a hostile segment. A parameter followed by the
    /// final literal takes what is left before it.
    fn capture<'s>(&self, s: &'s str, values: &mut Vec<&'s str>) -> bool {
        let mut rest = s;
        let mut pieces = self.0.iter().peekable();
        while let Some(piece) = pieces.next() {
            let next = match (piece, pieces.peek()) {
                (Piece::Literal(lit), _) => match rest.strip_prefix(lit.as_str()) {
                    Some(tail) => {
                        rest = tail;
                        continue;
                    }
                    None => return false,
                },
                (Piece::Param, None) => {
                    values.push(rest);
                    return !rest.is_empty();
                }
                (Piece::Param, Some(Piece::Param)) => return false,
                (Piece::Param, Some(Piece::Literal(next))) => next.as_str(),
            };
            // The parameter's first character, then where `next` starts.
            let Some((start, _)) = rest.char_indices().nth(1) else {
                return false;
            };
            let last = pieces.clone().nth(1).is_none();
            let at = if last {
                rest.len()
                    .checked_sub(next.len())
                    .filter(|&at| at >= start && rest.get(at..) == Some(next))
            } else {
                rest.get(start..)
                    .and_then(|tail| tail.find(next))
                    .map(|found| start + found)
            };
            let Some((value, tail)) = at.and_then(|at| rest.split_at_checked(at)) else {
                return false;
            };
            values.push(value);
            rest = tail;
        }
        rest.is_empty()
    }
}

/// Splits a path template into segments and collects its parameter names.
fn parse_template(template: &str) -> Result<(Vec<Segment>, Vec<String>), String> {
    let Some(rest) = template.strip_prefix('/') else {
        return Err("a path template must start with `/`".to_owned());
    };
    let mut names: Vec<String> = Vec::new();
    let mut segments = Vec::new();
    if rest.is_empty() {
        return Ok((segments, names));
    }
    let raw: Vec<&str> = rest.split('/').collect();
    let last = raw.len() - 1;
    for (i, text) in raw.into_iter().enumerate() {
        if text.is_empty() && i != last {
            return Err("a path template cannot contain `//`: no request can match it".to_owned());
        }
        if text == "." || text == ".." {
            return Err(
                "a path template cannot contain dot segments: no request can match it".to_owned(),
            );
        }
        let pieces = parse_segment(text, &mut names)?;
        segments.push(match pieces.as_slice() {
            [Piece::Param] => Segment::Param,
            [Piece::Literal(lit)] => Segment::Literal(lit.clone()),
            [] => Segment::Literal(String::new()),
            _ => Segment::Pattern(Pattern(pieces)),
        });
    }
    Ok((segments, names))
}

/// Parses one template segment into pieces, appending its parameter names to `names`.
/// Names must be unique across the template.
fn parse_segment(text: &str, names: &mut Vec<String>) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        match rest.find(['{', '}']) {
            Some(0) if rest.starts_with('{') => {
                let end = rest
                    .find('}')
                    .ok_or_else(|| format!("segment `{text}` has an unclosed `{{`"))?;
                let name = &rest[1..end];
                if name.is_empty() || name.contains('{') {
                    return Err(format!("segment `{text}` has an empty or nested parameter"));
                }
                if pieces.last() == Some(&Piece::Param) {
                    return Err(format!(
                        "segment `{text}` has two adjacent parameters: no request can be split \
                         between them unambiguously"
                    ));
                }
                if names.iter().any(|n| n == name) {
                    return Err(format!(
                        "parameter `{{{name}}}` appears twice in the template"
                    ));
                }
                names.push(name.to_owned());
                pieces.push(Piece::Param);
                rest = &rest[end + 1..];
            }
            Some(i) if rest[i..].starts_with('}') => {
                return Err(format!("segment `{text}` has a `}}` without `{{`"));
            }
            found => {
                let end = found.unwrap_or(rest.len());
                pieces.push(Piece::Literal(rest[..end].to_owned()));
                rest = &rest[end..];
            }
        }
    }
    Ok(pieces)
}

/// The base paths of a server list, as literal segments. Variables in a URL's path are
/// expanded to each of their `enum` values, or to their `default`.
fn base_paths(servers: &[Server], at: &str, origin: &str) -> Result<Vec<Vec<String>>, PolicyError> {
    const MAX_EXPANSIONS: usize = 64;
    if servers.is_empty() {
        return Ok(vec![Vec::new()]);
    }
    let mut bases: Vec<Vec<String>> = Vec::new();
    for (i, server) in servers.iter().enumerate() {
        let invalid = |message: String| PolicyError::Invalid {
            at: Location::new(origin, format!("{at}/{i}/url")),
            message,
        };
        let mut expanded = vec![url_path(&server.url).to_owned()];
        for (name, variable) in &server.variables {
            let placeholder = format!("{{{name}}}");
            if !expanded[0].contains(&placeholder) {
                continue;
            }
            let values = variable
                .allowed
                .clone()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| vec![variable.default.clone()]);
            expanded = expanded
                .iter()
                .flat_map(|path| values.iter().map(|v| path.replace(&placeholder, v)))
                .collect();
            if expanded.len() > MAX_EXPANSIONS {
                return Err(invalid(format!(
                    "server variables expand to more than {MAX_EXPANSIONS} base paths"
                )));
            }
        }
        for path in expanded {
            if path.contains(['{', '}']) {
                return Err(invalid(format!(
                    "the URL's path `{path}` uses a variable that `variables` does not define"
                )));
            }
            let base: Vec<String> = path
                .split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            if !bases.contains(&base) {
                bases.push(base);
            }
        }
    }
    Ok(bases)
}

/// The path of a server URL: absolute (`https://host/v1`), scheme-relative (`//host/v1`)
/// or relative (`/v1`, `v1`).
fn url_path(url: &str) -> &str {
    let after_scheme = match url.find("://") {
        Some(i) => Some(&url[i + 3..]),
        None => url.strip_prefix("//"),
    };
    match after_scheme {
        Some(rest) => rest.find('/').map_or("", |i| &rest[i..]),
        None => url,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::parse_text;

    fn router(yaml: &str) -> Result<Router, PolicyError> {
        let doc: crate::contract::openapi::Document = parse_text(yaml, "test.yaml")?;
        let mut count = 0;
        Router::build(&doc.paths, &doc.servers, "test.yaml", &mut |_| {
            count += 1;
            Ok(count)
        })
    }

    fn paths(servers: &str, templates: &[&str]) -> String {
        let mut yaml = format!("openapi: 3.1.0\n{servers}\npaths:\n");
        for t in templates {
            yaml.push_str(&format!("  '{t}':\n    get: {{operationId: 'get {t}'}}\n"));
        }
        yaml
    }

    /// The template a request path matches, with captured values.
    fn find(router: &Router, path: &str) -> Option<(String, Vec<String>)> {
        let parsed = crate::contract::path::parse(path.as_bytes()).ok()?;
        let found = router.find(&parsed.segments)?;
        Some((
            found.route.template().to_owned(),
            found.values.iter().map(|v| v.to_string()).collect(),
        ))
    }

    macro_rules! matches {
        ($router:expr, $($path:expr => $template:expr $(, [$($value:expr),*])?;)*) => {$(
            let expected: Option<&str> = $template;
            let found = find(&$router, $path);
            assert_eq!(found.as_ref().map(|f| f.0.as_str()), expected, "path {}", $path);
            $( assert_eq!(found.unwrap().1, vec![$($value.to_string()),*], "values of {}", $path); )?
        )*};
    }

    #[test]
    fn concrete_beats_template_and_backtracks() {
        let r = router(&paths(
            "",
            &[
                "/users/me",
                "/users/{id}",
                "/users/{id}/posts",
                "/users/me/profile",
            ],
        ))
        .unwrap();
        matches!(r,
            "/users/me" => Some("/users/me");
            "/users/42" => Some("/users/{id}"), ["42"];
            "/users/me/profile" => Some("/users/me/profile");
            "/users/me/posts" => Some("/users/{id}/posts"), ["me"];
            "/users/42/profile" => None;
            "/users" => None;
            "/users/" => None;
            "/" => None;
        );
    }

    #[test]
    fn trailing_slash_and_root_are_exact() {
        let r = router(&paths("", &["/", "/a/", "/b"])).unwrap();
        matches!(r,
            "/" => Some("/");
            "/a/" => Some("/a/");
            "/a" => None;
            "/b" => Some("/b");
            "/b/" => None;
        );
    }

    #[test]
    fn root_template_under_a_base_path_keeps_its_slash() {
        let r = router(&paths("servers:\n  - url: /api/v0\n", &["/", "/a"])).unwrap();
        matches!(r,
            "/api/v0/" => Some("/");
            "/api/v0" => None;
            "/api/v0/a" => Some("/a");
            "/" => None;
        );
    }

    #[test]
    fn mixed_segments_capture_between_literals() {
        let r = router(&paths(
            "",
            &[
                "/reports/{year}.{format}",
                "/reports/{id}",
                "/files/{name}.tar.gz",
                "/v{major}/x",
            ],
        ))
        .unwrap();
        matches!(r,
            "/reports/2024.csv" => Some("/reports/{year}.{format}"), ["2024", "csv"];
            "/reports/2024.01.csv" => Some("/reports/{year}.{format}"), ["2024", "01.csv"];
            "/reports/2024" => Some("/reports/{id}"), ["2024"];
            "/reports/.csv" => Some("/reports/{id}"), [".csv"];
            "/files/a.b.tar.gz" => Some("/files/{name}.tar.gz"), ["a.b"];
            "/files/.tar.gz" => None;
            "/v2/x" => Some("/v{major}/x"), ["2"];
            "/v/x" => None;
        );
    }

    /// A backtracking capture retried every `-` for every parameter: a 20,000-byte
    /// segment of dashes that misses the final literal cost O(n^2) or worse.
    #[test]
    fn hostile_segments_are_matched_in_one_pass() {
        let r = router(&paths("", &["/t/{a}-{b}-{c}.json", "/t/{id}"])).unwrap();
        matches!(r,
            "/t/1-2-3.json" => Some("/t/{a}-{b}-{c}.json"), ["1", "2", "3"];
            "/t/1-2-3-4.json" => Some("/t/{a}-{b}-{c}.json"), ["1", "2", "3-4"];
            "/t/1--2-3.json" => Some("/t/{a}-{b}-{c}.json"), ["1", "-2", "3"];
            "/t/1-2-.json" => Some("/t/{id}"), ["1-2-.json"];
            "/t/1-2.json.json" => Some("/t/{id}"), ["1-2.json.json"];
        );
        let hostile = format!("/t/x{}", "-".repeat(20_000));
        assert_eq!(
            find(&r, &hostile).map(|(t, _)| t).as_deref(),
            Some("/t/{id}")
        );
    }

    #[test]
    fn parameters_match_decoded_values_and_never_empty_ones() {
        let r = router(&paths("", &["/pets/{petId}", "/café"])).unwrap();
        matches!(r,
            "/pets/a%20b" => Some("/pets/{petId}"), ["a b"];
            "/pets/%252F" => Some("/pets/{petId}"), ["%2F"];
            "/caf%C3%A9" => Some("/café");
            "/pets/" => None;
        );
    }

    #[test]
    fn base_paths_from_servers() {
        let servers = "servers:\n  - url: https://api.example.com/shop/v2/\n  - url: /shop/v2\n  - url: '{scheme}://h/{region}/api'\n    variables:\n      scheme: {default: https}\n      region: {default: eu, enum: [eu, us]}\n  - url: //cdn.example.com\n";
        let r = router(&paths(servers, &["/items"])).unwrap();
        matches!(r,
            "/shop/v2/items" => Some("/items");
            "/eu/api/items" => Some("/items");
            "/us/api/items" => Some("/items");
            "/items" => Some("/items");
            "/asia/api/items" => None;
            "/shop/items" => None;
        );
    }

    #[test]
    fn path_level_servers_replace_the_documents() {
        let yaml = "openapi: 3.0.3\nservers: [{url: /v1}]\npaths:\n  /a:\n    get: {}\n  /b:\n    servers: [{url: /legacy}]\n    get: {}\n";
        let r = router(yaml).unwrap();
        matches!(r,
            "/v1/a" => Some("/a");
            "/legacy/b" => Some("/b");
            "/v1/b" => None;
        );
    }

    #[test]
    fn allow_lists_methods_in_path_item_order() {
        let yaml = "openapi: 3.0.3\npaths:\n  /a:\n    patch: {}\n    delete: {}\n    get: {}\n";
        let r = router(yaml).unwrap();
        let parsed = crate::contract::path::parse(b"/a").unwrap();
        let found = r.find(&parsed.segments).unwrap();
        assert_eq!(
            found.route.methods(),
            vec![Method::Get, Method::Delete, Method::Patch]
        );
    }

    #[test]
    fn path_items_without_operations_are_not_routes() {
        let yaml = "openapi: 3.0.3\npaths:\n  /a:\n    get: {}\n  /b:\n    parameters: []\n";
        let r = router(yaml).unwrap();
        assert_eq!(r.len(), 1);
        matches!(r, "/b" => None;);
    }

    fn refused(yaml: &str) -> (String, String) {
        match router(yaml) {
            Err(PolicyError::Invalid { at, message }) => (at.pointer, message),
            other => panic!("expected an invalid-policy error, got {other:?}"),
        }
    }

    #[test]
    fn templates_differing_only_in_names_conflict_on_a_shared_method() {
        let (pointer, message) = refused(&paths("", &["/users/{id}", "/users/{name}"]));
        assert_eq!(pointer, "/paths/~1users~1{name}");
        assert!(message.contains("`GET /users/{id}`"), "{message}");
    }

    #[test]
    fn templates_differing_only_in_names_merge_on_disjoint_methods() {
        let yaml = "openapi: 3.0.3\npaths:\n  /a/{x}:\n    get: {operationId: g}\n  /a/{y}:\n    delete: {operationId: d}\n";
        let r = router(yaml).unwrap();
        let parsed = crate::contract::path::parse(b"/a/1").unwrap();
        let route = r.find(&parsed.segments).unwrap().route;
        assert_eq!(route.methods(), vec![Method::Get, Method::Delete]);
        let delete = route.operation(Method::Delete).unwrap();
        assert_eq!(
            (&*delete.template, &delete.params[..]),
            ("/a/{y}", &["y".to_owned()][..])
        );
    }

    #[test]
    fn templates_meeting_under_a_base_path_conflict() {
        let yaml = "openapi: 3.0.3\nservers: [{url: /v1}, {url: /}]\npaths:\n  /v1/a:\n    get: {}\n  /a:\n    get: {}\n";
        let (_, message) = refused(yaml);
        assert!(message.contains("same operation"), "{message}");
    }

    #[test]
    fn malformed_templates_are_refused_with_their_pointer() {
        for (template, needle) in [
            ("pets", "start with `/`"),
            ("/pets/{id", "unclosed"),
            ("/pets/id}", "without"),
            ("/pets/{}", "empty"),
            ("/pets/{a}{b}", "adjacent"),
            ("/pets/{id}/x/{id}", "twice"),
            ("/pets//x", "`//`"),
            ("/pets/../x", "dot segments"),
        ] {
            let (pointer, message) = refused(&paths("", &[template]));
            assert_eq!(pointer, format!("/paths/{}", pointer_token(template)));
            assert!(message.contains(needle), "{template}: {message}");
        }
    }

    #[test]
    fn undefined_server_variables_and_refs_are_refused() {
        let (pointer, message) = refused(&paths("servers: [{url: '/{v}/api'}]", &["/a"]));
        assert_eq!(pointer, "/servers/0/url");
        assert!(message.contains("variable"), "{message}");
        let yaml = "openapi: 3.1.0\npaths:\n  /a:\n    $ref: '#/components/pathItems/a'\n";
        let (pointer, message) = refused(yaml);
        assert_eq!(pointer, "/paths/~1a");
        assert!(message.contains("$ref"), "{message}");
    }

    #[test]
    fn a_document_without_operations_is_refused() {
        let (pointer, _) = refused("openapi: 3.1.0\npaths: {}\n");
        assert_eq!(pointer, "/paths");
    }

    #[test]
    fn many_sibling_templates_share_one_level() {
        // 2,000 sibling literals at one level: each is a hash-map key, not a list entry.
        let templates: Vec<String> = (0..2000).map(|i| format!("/r{i}/{{id}}/x")).collect();
        let refs: Vec<&str> = templates.iter().map(String::as_str).collect();
        let r = router(&paths("", &refs)).unwrap();
        matches!(r,
            "/r1999/7/x" => Some("/r1999/{id}/x"), ["7"];
            "/r2000/7/x" => None;
        );
    }
}
