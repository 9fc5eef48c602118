//! What a bundled policy's OpenAPI document declares, as concrete requests: the paths a
//! client may call (under the server's base path) and their methods. Tests walk it, and
//! `harness up` prints example requests from it for whichever policy it runs.

use std::collections::BTreeSet;

use serde_json::Value;

/// The methods probed for: the ones an OpenAPI path item can declare that carry a meaning
/// for routing (HEAD and OPTIONS are left out: Envoy or upstreams may answer them anyway).
pub const METHODS: [&str; 5] = ["GET", "PUT", "POST", "DELETE", "PATCH"];

/// One declared path as a request path, and the methods it declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredPath {
    pub path: String,
    pub methods: BTreeSet<String>,
}

impl DeclaredPath {
    /// A method the path does not declare, if any is left.
    pub fn undeclared_method(&self) -> Option<&'static str> {
        METHODS
            .into_iter()
            .find(|method| !self.methods.contains(*method))
    }
}

/// Every path of the bundle's document, under the base path, with each `{param}` filled in
/// with `1` (`/reports/{year}.{format}` -> `/reports/1.1`). That satisfies routing, which is
/// what the filter checks of a path today; should it validate parameter values, take them
/// from the parameters' `example`s instead.
pub fn declared_paths(bundle: &Value) -> Vec<DeclaredPath> {
    let base = base_path(bundle);
    let paths = bundle["openapi"]["document"]["paths"].as_object();
    paths
        .into_iter()
        .flatten()
        .map(|(template, item)| DeclaredPath {
            path: format!("{base}{}", fill_parameters(template)),
            methods: METHODS
                .into_iter()
                .filter(|method| item.get(method.to_lowercase()).is_some())
                .map(str::to_owned)
                .collect(),
        })
        .collect()
}

/// The path of the first server URL (`http://localhost:10000/v1` -> `/v1`), without a
/// trailing `/`; empty when there is none.
pub fn base_path(bundle: &Value) -> String {
    let url = bundle["openapi"]["document"]["servers"][0]["url"]
        .as_str()
        .unwrap_or_default();
    let path = match url.split_once("://") {
        Some((_scheme, rest)) => rest.find('/').map_or("", |slash| &rest[slash..]),
        None => url,
    };
    path.trim_end_matches('/').to_owned()
}

fn fill_parameters(template: &str) -> String {
    let mut path = String::with_capacity(template.len());
    let mut rest = template;
    while let Some((literal, after_open)) = rest.split_once('{') {
        path.push_str(literal);
        path.push('1');
        rest = after_open
            .split_once('}')
            .map_or("", |(_name, after)| after);
    }
    path.push_str(rest);
    path
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn declared_paths_are_concrete_and_under_the_base_path() {
        let bundle = json!({"openapi": {"document": {
            "servers": [{"url": "https://api.example.com/shop/v2/"}],
            "paths": {
                "/books/{isbn}": {"parameters": [], "get": {}, "delete": {}},
                "/reports/{year}.{format}": {"get": {}},
            },
        }}});
        let declared = declared_paths(&bundle);
        assert_eq!(declared[0].path, "/shop/v2/books/1");
        let methods: Vec<_> = declared[0].methods.iter().collect();
        assert_eq!(methods, ["DELETE", "GET"]);
        assert_eq!(declared[0].undeclared_method(), Some("PUT"));
        assert_eq!(declared[1].path, "/shop/v2/reports/1.1");
    }

    #[test]
    fn base_path_of_a_relative_or_missing_server() {
        let relative = json!({"openapi": {"document": {"servers": [{"url": "/v1"}]}}});
        assert_eq!(base_path(&relative), "/v1");
        assert_eq!(base_path(&json!({})), "");
    }
}
