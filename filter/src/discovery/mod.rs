//! API discovery: the endpoints a contract does not declare (shadow APIs), inferred from
//! the requests that reach them.
//!
//! A request the router cannot match is recorded by its method and path segments in a
//! bounded [`tree::Tree`]; reading the tree infers templates — values become typed
//! parameters by their form ([`segment`]) or by how many distinct words fill a position —
//! so `GET /repos/octocat/hello/hooks/42` and its kind are reported as
//! `GET /repos/{repoId}/{param2}/hooks/{hookId}` with an integer last parameter, never as
//! the values themselves.
//!
//! With `learn: <rate>`, a sampled fraction of the exchanges of declared operations is
//! learned too ([`Subject::Operation`]): what their bodies look like in traffic, for
//! `apiguard learn`'s drift report against the contract.

pub(crate) mod learn;
pub(crate) mod segment;
pub(crate) mod tree;

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::request::Method;
pub use learn::{Learned, Sample, Schema};
use tree::Tree;
pub use tree::{Seen, Template};

/// The policy's `discovery:` section: record the requests no template matches.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
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
    /// The fraction (0 to 1) of declared operations' exchanges whose JSON bodies are
    /// learned, for the drift report; 0 learns none, at the cost of one branch.
    pub learn: f64,
    /// Declared operations per VM that learn (each at most two schemas of
    /// [`learn::MAX_NODES`] nodes): the first sampled ones; later ones are not learned.
    pub learn_operations: usize,
}

impl Default for DiscoverySettings {
    fn default() -> Self {
        DiscoverySettings {
            max_nodes: 4096,
            report_seconds: 60,
            learn_endpoints: 16,
            learn: 0.0,
            learn_operations: 32,
        }
    }
}

impl DiscoverySettings {
    /// Whether the exchange that `key` stands for is one of the sampled `learn` fraction.
    /// The key (a hash of the request's clock reading and path: uniform enough in
    /// traffic, fixed in tests) is computed only when learning is on.
    pub(crate) fn samples(&self, key: impl FnOnce() -> u64) -> bool {
        // 53 bits: the precision of the rate, so that 1.0 takes every key.
        const UNIT: f64 = (1u64 << 53) as f64;
        self.learn > 0.0 && ((key() >> 11) as f64) < self.learn * UNIT
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

/// What a lesson is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A request no template matched, as it was recorded.
    Undeclared(Undeclared),
    /// A sampled exchange of a declared operation.
    Operation {
        /// The operation's index in the policy.
        id: usize,
        /// When the request came, in seconds since the Unix epoch.
        time: u64,
    },
}

/// What a request's body, or its response, taught (the exchange's output, after the
/// request it is about).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lesson {
    /// The undeclared request or declared operation it is about.
    pub about: Subject,
    /// The request's or the response's media type and body shape.
    pub sample: Sample,
}

/// What the sampled exchanges of one declared operation taught.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The operation's index in the policy.
    pub id: usize,
    /// Sampled responses (each sampled exchange that reached the upstream counts once),
    /// and when the first and last sampled requests came.
    pub seen: Seen,
    /// What their bodies and responses taught.
    pub learned: Learned,
}

/// What one VM learnt of undeclared endpoints: fed each [`Undeclared`] request, it infers
/// their templates ([`Discovery::templates`]).
#[derive(Debug, Clone)]
pub struct Discovery {
    tree: Tree,
    /// Declared operations learned, by index: at most `learn_operations`.
    observed: BTreeMap<usize, Observed>,
    max_observed: usize,
}

impl Discovery {
    /// An empty record, within `settings`' memory ceiling.
    pub fn new(settings: DiscoverySettings) -> Discovery {
        Discovery {
            tree: Tree::new(settings.max_nodes, settings.learn_endpoints),
            observed: BTreeMap::new(),
            max_observed: settings.learn_operations,
        }
    }

    /// Records one undeclared request.
    pub fn observe(&mut self, request: &Undeclared) {
        (self.tree).observe(request.method, &request.segments, request.time);
    }

    /// Adds what a request's body or response taught: to its undeclared endpoint, or to
    /// its declared operation while fewer than `learn_operations` learn.
    pub fn learn(&mut self, lesson: &Lesson) {
        let (id, time) = match &lesson.about {
            Subject::Undeclared(request) => {
                (self.tree).learn(request.method, &request.segments, &lesson.sample);
                return;
            }
            Subject::Operation { id, time } => (*id, *time),
        };
        if !self.observed.contains_key(&id) && self.observed.len() >= self.max_observed {
            return;
        }
        let observed = self.observed.entry(id).or_insert_with(|| Observed {
            id,
            seen: Seen {
                count: 0,
                first: time,
                last: time,
            },
            learned: Learned::default(),
        });
        if matches!(lesson.sample, Sample::Response { .. }) {
            observed.seen.count = observed.seen.count.saturating_add(1);
        }
        observed.seen.first = observed.seen.first.min(time);
        observed.seen.last = observed.seen.last.max(time);
        observed.learned.add(&lesson.sample);
    }

    /// The declared operations learned so far, by index.
    pub fn observed(&self) -> impl Iterator<Item = &Observed> {
        self.observed.values()
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testkit;

    /// Lessons about declared operations: at most `learn_operations` operations learn,
    /// each counting its sampled responses; the first ones keep learning.
    #[test]
    fn at_most_learn_operations_declared_operations_learn() {
        let settings = DiscoverySettings {
            learn: 1.0,
            learn_operations: 2,
            ..DiscoverySettings::default()
        };
        let mut discovery = Discovery::new(settings);
        let response = |id, time| Lesson {
            about: Subject::Operation { id, time },
            sample: Sample::Response {
                status: 200,
                media: Some("application/json".into()),
                schema: Some(Schema::of(&json!({"id": 1}))),
            },
        };
        for (id, time) in [(4, 10), (9, 11), (5, 12), (4, 13)] {
            discovery.learn(&response(id, time));
        }
        let observed: Vec<(usize, Seen)> = discovery.observed().map(|o| (o.id, o.seen)).collect();
        assert_eq!(
            observed,
            [
                (
                    4,
                    Seen {
                        count: 2,
                        first: 10,
                        last: 13
                    }
                ),
                (
                    9,
                    Seen {
                        count: 1,
                        first: 11,
                        last: 11
                    }
                ),
            ]
        );
    }

    #[test]
    fn a_sample_rate_outside_0_to_1_is_refused() {
        let document = json!({"openapi": "3.1.0", "paths": {"/a": {"get": {"operationId": "a"}}}});
        for rate in [-0.1, 1.5] {
            let sections = json!({"discovery": {"learn": rate}});
            let error = testkit::try_policy("api", document.clone(), sections).unwrap_err();
            assert!(error.to_string().contains("/discovery/learn"), "{error}");
        }
        let sections = json!({"discovery": {"learn": 0.25}});
        let policy = testkit::try_policy("api", document, sections);
        assert!(policy.is_ok(), "{:?}", policy.err());
    }
}
