//! API discovery: the endpoints a contract does not declare (shadow APIs), inferred from
//! the requests that reach them.
//!
//! A request the router cannot match is recorded by its method and path segments in a
//! bounded [`tree::Tree`]; reading the tree infers templates — values become typed
//! parameters by their form ([`segment`]) or by how many distinct words fill a position —
//! so `GET /repos/octocat/hello/hooks/42` and its kind are reported as
//! `GET /repos/{repoId}/{param2}/hooks/{hookId}` with an integer last parameter, never as
//! the values themselves.

pub(crate) mod learn;
pub(crate) mod segment;
pub(crate) mod tree;

use serde::Deserialize;

use crate::request::Method;
pub use learn::{Learned, Sample, Schema};
use tree::Tree;
pub use tree::{Seen, Template};

/// The policy's `discovery:` section: record the requests no template matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoverySettings {
    /// Nodes of the path tree per VM (about 200 bytes each): the memory ceiling.
    pub max_nodes: usize,
    /// How often each VM reports the templates whose traffic grew (`discovery.endpoint`
    /// events), in seconds.
    pub report_seconds: u64,
    /// Endpoints per VM whose JSON bodies are learned into schemas (each at most two
    /// schemas of [`learn::MAX_NODES`] nodes); 0 learns none, and reads no body.
    pub learn_endpoints: usize,
}

impl Default for DiscoverySettings {
    fn default() -> Self {
        DiscoverySettings {
            max_nodes: 4096,
            report_seconds: 60,
            learn_endpoints: 16,
        }
    }
}

/// A request no template matched: what discovery records of it (the exchange's output),
/// and later what its body and response taught ([`Lesson`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undeclared {
    /// Its method.
    pub method: Method,
    /// Its path segments, percent-decoded.
    pub segments: Vec<String>,
    /// When it came, in seconds since the Unix epoch.
    pub time: u64,
}

/// What an undeclared request's body, or its response, taught (the exchange's output,
/// after the [`Undeclared`] request it is about).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lesson {
    /// The request, as it was recorded.
    pub request: Undeclared,
    /// The request's or the response's media type and body shape.
    pub sample: Sample,
}

/// What one VM learnt of undeclared endpoints: fed each [`Undeclared`] request, it infers
/// their templates ([`Discovery::templates`]).
#[derive(Debug, Clone)]
pub struct Discovery {
    tree: Tree,
}

impl Discovery {
    /// An empty record, within `settings`' memory ceiling.
    pub fn new(settings: DiscoverySettings) -> Discovery {
        Discovery {
            tree: Tree::new(settings.max_nodes, settings.learn_endpoints),
        }
    }

    /// Records one undeclared request.
    pub fn observe(&mut self, request: &Undeclared) {
        (self.tree).observe(request.method, &request.segments, request.time);
    }

    /// Adds what an undeclared request's body or response taught to its endpoint.
    pub fn learn(&mut self, lesson: &Lesson) {
        let request = &lesson.request;
        (self.tree).learn(request.method, &request.segments, &lesson.sample);
    }

    /// The templates the requests so far support, most requested first.
    pub fn templates(&self) -> Vec<Template> {
        self.tree.templates()
    }

    /// Requests not recorded: the memory ceiling was reached, or the path was too deep.
    pub fn dropped(&self) -> u64 {
        self.tree.dropped
    }
}
