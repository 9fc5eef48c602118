//! The paths of undeclared requests, kept as a tree of segments with counts, and the
//! templates inferred from it.
//!
//! A segment whose form says it is a value (a number, a UUID, a hash…: [`classify`]) goes
//! straight into its position's parameter. A word is kept as itself, with how often it was
//! seen, until the inference decides what its position is: a literal part of the template
//! (a few words, each seen again and again: `issues`, `pulls`), or a parameter (words that
//! keep being new: owner and repository names). The decision is made when templates are
//! read ([`Tree::templates`]), over all the evidence so far, and merges the subtrees of
//! the words it turns into one parameter.
//!
//! Memory is bounded: at most `max_nodes` nodes (each about 200 bytes with its word,
//! words longer than [`MAX_WORD`] being parameters by their length), and a position holding
//! more than [`MAX_WORDS`] distinct words is a parameter without waiting.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};

use super::learn::{Learned, Sample};
use super::segment::{classify, Kind};
use crate::request::Method;

/// Words longer than this are values (names, slugs, encoded data), never literals.
pub(crate) const MAX_WORD: usize = 64;
/// Distinct words one position keeps before it is taken for a parameter.
pub(crate) const MAX_WORDS: usize = 128;
/// Segments per path; deeper paths are not recorded.
pub(crate) const MAX_DEPTH: usize = 24;

/// A position whose words are at least this many, and new at least every other time one
/// came, holds values: literals repeat, identifiers keep coming.
const FEW_DISTINCT: usize = 3;
/// With this many distinct words, a position holds values when one word in [`NEW_ONE_IN`]
/// was seen only once (Good-Turing: how likely the next word is new).
const MANY_DISTINCT: usize = 8;
const NEW_ONE_IN: u64 = 10;
/// Words lead alike when each leads, on average, to this many tenths of their continuations.
const ALIKE_TENTHS: usize = 7;
/// See [`literals_among_values`].
const LITERAL_VISITS: u64 = 8;
const LITERAL_TIMES: u64 = 4;
/// Nodes inference may visit per node of the tree (its ceiling), counting the subtrees that
/// comparing continuations infers again: reading templates stays linear in the ceiling.
const WORK_PER_NODE: usize = 64;

/// What is known of one method of one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// Requests.
    pub count: u64,
    /// The first, in seconds since the Unix epoch.
    pub first: u64,
    /// The last, in seconds since the Unix epoch.
    pub last: u64,
}

impl Seen {
    fn merge(&mut self, other: Seen) {
        self.count += other.count;
        self.first = self.first.min(other.first);
        self.last = self.last.max(other.last);
    }
}

#[derive(Debug, Clone, Default)]
struct Node {
    /// Observations that went on from here to a child.
    seen: u64,
    /// Word children, by word, each with how often it was taken.
    words: BTreeMap<Box<str>, Node>,
    /// The parameter child: values of a parameter's form, or words known to be values.
    param: Option<(Kind, Box<Node>)>,
    /// More than [`MAX_WORDS`] distinct words came: every word here is a parameter value.
    words_are_values: bool,
    /// The requests that ended at this path, per method.
    ends: BTreeMap<Method, Seen>,
    /// What their bodies and responses taught, per method (within the tree's budget of
    /// learned endpoints).
    learned: BTreeMap<Method, Box<Learned>>,
}

impl Node {
    /// The child a segment goes to, made if it is new and the budget allows.
    fn child(&mut self, segment: &str, budget: &mut usize) -> Option<&mut Node> {
        let kind = classify(segment);
        let word = kind == Kind::Word && segment.len() <= MAX_WORD && !self.words_are_values;
        if word && !self.words.contains_key(segment) {
            if self.words.len() >= MAX_WORDS {
                self.words_become_values();
            } else if *budget > 0 {
                *budget -= 1;
                self.words.insert(segment.into(), Node::default());
            } else {
                return None;
            }
        }
        self.seen += 1;
        if word && !self.words_are_values {
            return self.words.get_mut(segment);
        }
        if self.param.is_none() {
            if *budget == 0 {
                return None;
            }
            *budget -= 1;
        }
        let (param_kind, node) = self
            .param
            .get_or_insert_with(|| (kind, Box::new(Node::default())));
        *param_kind = param_kind.widen(kind);
        Some(node)
    }

    /// Turns this position's words into values of its parameter, their subtrees merged.
    fn words_become_values(&mut self) {
        self.words_are_values = true;
        let words = std::mem::take(&mut self.words);
        for (_, node) in words {
            self.merge_param(Kind::Word, node);
        }
    }

    fn merge_param(&mut self, kind: Kind, node: Node) {
        match &mut self.param {
            Some((k, into)) => {
                *k = k.widen(kind);
                into.merge(node);
            }
            None => self.param = Some((kind, Box::new(node))),
        }
    }

    fn merge(&mut self, other: Node) {
        self.seen += other.seen;
        self.words_are_values |= other.words_are_values;
        for (word, node) in other.words {
            match self.words.get_mut(&word) {
                Some(into) => into.merge(node),
                None => {
                    self.words.insert(word, node);
                }
            }
        }
        if let Some((kind, node)) = other.param {
            self.merge_param(kind, *node);
        }
        for (method, seen) in other.ends {
            self.ends
                .entry(method)
                .and_modify(|s| s.merge(seen))
                .or_insert(seen);
        }
        for (method, learned) in other.learned {
            match self.learned.get_mut(&method) {
                Some(into) => into.merge(&learned),
                None => {
                    self.learned.insert(method, learned);
                }
            }
        }
        if self.words_are_values && !self.words.is_empty() {
            self.words_become_values();
        }
    }

    /// Whether the words at this position are values of a parameter: several, and mostly
    /// new when they came; or many, and still arriving new. Literals repeat (`issues`,
    /// `pulls` again and again); identifiers keep coming.
    fn words_look_like_values(&self) -> bool {
        let distinct = self.words.len();
        let taken: u64 = self.words.values().map(Node::visits).sum();
        let once = self.words.values().filter(|n| n.visits() == 1).count() as u64;
        let mostly_new = distinct >= FEW_DISTINCT && distinct as u64 * 2 >= taken;
        let still_new = distinct >= MANY_DISTINCT && once * NEW_ONE_IN >= taken;
        mostly_new || still_new
    }

    /// How often this node was reached: requests that went on, plus those that ended here.
    fn visits(&self) -> u64 {
        self.seen + self.ends.values().map(|s| s.count).sum::<u64>()
    }
}

/// One inferred operation: a method and a path template with typed parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The method.
    pub method: Method,
    /// `/repos/{repoId}/{param2}/hooks/{hookId}`.
    pub path: String,
    /// Each parameter's name and form, in path order.
    pub params: Vec<(String, Kind)>,
    /// The requests it was inferred from.
    pub seen: Seen,
    /// What their bodies and responses taught, when any was learned.
    pub learned: Option<Learned>,
}

/// The tree of observed paths.
#[derive(Debug, Clone)]
pub(crate) struct Tree {
    root: Node,
    /// Nodes that may still be made.
    budget: usize,
    /// The most nodes it may hold.
    max_nodes: usize,
    /// Requests not recorded: the tree was full, or the path too deep.
    pub(crate) dropped: u64,
    /// Endpoints that may still start learning (each holds at most two schemas of
    /// [`super::learn::MAX_NODES`] nodes).
    learning: usize,
}

impl Tree {
    /// A tree of at most `max_nodes` nodes.
    /// A tree of at most `max_nodes` nodes, learning at most `max_learned` endpoints.
    pub(crate) fn new(max_nodes: usize, max_learned: usize) -> Tree {
        Tree {
            root: Node::default(),
            budget: max_nodes,
            max_nodes,
            dropped: 0,
            learning: max_learned,
        }
    }

    /// Adds what one request to `segments` with `method` taught (see [`Sample`]) to the
    /// path [`Tree::observe`] recorded it at. Walks the tree without changing it; a path
    /// not recorded (the tree was full) learns nothing, nor does a new endpoint once
    /// `max_learned` endpoints learn.
    pub(crate) fn learn<S: AsRef<str>>(&mut self, method: Method, segments: &[S], sample: &Sample) {
        let mut node = &mut self.root;
        for segment in segments.iter().take(MAX_DEPTH + 1) {
            let segment = segment.as_ref();
            let word = classify(segment) == Kind::Word && segment.len() <= MAX_WORD;
            let literal = word && !node.words_are_values && node.words.contains_key(segment);
            let next = if literal {
                node.words.get_mut(segment)
            } else {
                node.param.as_mut().map(|(_, child)| child.as_mut())
            };
            let Some(next) = next else {
                return;
            };
            node = next;
        }
        if !node.ends.contains_key(&method) {
            return;
        }
        if !node.learned.contains_key(&method) {
            if self.learning == 0 {
                return;
            }
            self.learning -= 1;
        }
        node.learned.entry(method).or_default().add(sample);
    }

    /// Records a request to `segments` (percent-decoded) with `method`, at `now` (seconds).
    pub(crate) fn observe<S: AsRef<str>>(&mut self, method: Method, segments: &[S], now: u64) {
        if segments.len() > MAX_DEPTH {
            self.dropped += 1;
            return;
        }
        let mut node = &mut self.root;
        for segment in segments {
            match node.child(segment.as_ref(), &mut self.budget) {
                Some(child) => node = child,
                None => {
                    self.dropped += 1;
                    return;
                }
            }
        }
        node.ends
            .entry(method)
            .and_modify(|s| {
                s.count += 1;
                s.last = s.last.max(now);
            })
            .or_insert(Seen {
                count: 1,
                first: now,
                last: now,
            });
    }

    /// The templates the observations so far support, most requested first.
    pub(crate) fn templates(&self) -> Vec<Template> {
        let mut out = Vec::new();
        let work = Cell::new(WORK_PER_NODE.saturating_mul(self.max_nodes));
        infer(self.root.clone(), &mut Vec::new(), &mut out, &work);
        out.sort_by(|a, b| {
            b.seen
                .count
                .cmp(&a.seen.count)
                .then_with(|| a.path.cmp(&b.path))
        });
        out
    }
}

/// A template's segment as inference left it.
#[derive(Debug, Clone)]
enum Part {
    Literal(String),
    Param(Kind),
}

fn infer(mut node: Node, path: &mut Vec<Part>, out: &mut Vec<Template>, work: &Cell<usize>) {
    work.set(work.get().saturating_sub(1));
    if node.words_look_like_values() || words_lead_alike(&node, work) {
        let kept = literals_among_values(&mut node, work);
        node.words_become_values();
        node.words = kept;
        node.words_are_values = false;
    }
    for (method, seen) in &node.ends {
        let learned = node.learned.get(method).map(|l| l.as_ref().clone());
        out.push(template(*method, path, *seen, learned));
    }
    for (word, child) in std::mem::take(&mut node.words) {
        path.push(Part::Literal(word.into()));
        infer(child, path, out, work);
        path.pop();
    }
    if let Some((kind, child)) = node.param.take() {
        path.push(Part::Param(kind));
        infer(*child, path, out, work);
        path.pop();
    }
}

/// The words of a position of values that are literals all the same: requested far more
/// than the values (at least [`LITERAL_VISITS`] times, and [`LITERAL_TIMES`] the median
/// word's), and leading elsewhere than the values do (`/user/{name}` beside
/// `/user/codespaces/{id}/stop`, `POST /user/keys`). Taken out of `node.words`.
fn literals_among_values(node: &mut Node, work: &Cell<usize>) -> BTreeMap<Box<str>, Node> {
    let mut visits: Vec<u64> = node.words.values().map(Node::visits).collect();
    visits.sort_unstable();
    let median = visits.get(visits.len() / 2).copied().unwrap_or(0);
    let threshold = LITERAL_VISITS.max(median * LITERAL_TIMES);
    let heavy: Vec<Box<str>> = (node.words.iter())
        .filter(|(_, child)| child.visits() >= threshold)
        .map(|(word, _)| word.clone())
        .collect();
    let mut values = Node::default();
    for (word, child) in &node.words {
        if !heavy.contains(word) {
            values.merge(child.clone());
        }
    }
    let values = endings(values, work);
    let mut kept = BTreeMap::new();
    for word in heavy {
        let Some(child) = node.words.remove(&word) else {
            continue;
        };
        let own = endings(child.clone(), work);
        let shared = own.intersection(&values).count();
        if shared * 2 < own.len() {
            kept.insert(word, child);
        } else {
            node.words.insert(word, child);
        }
    }
    kept
}

/// Every `METHOD /shape` a subtree's templates end in, relative to it.
fn endings(node: Node, work: &Cell<usize>) -> BTreeSet<String> {
    let mut below = Vec::new();
    infer(node, &mut Vec::new(), &mut below, work);
    below
        .into_iter()
        .map(|t| format!("{} {}", t.method.as_str(), shape(&t.path)))
        .collect()
}

/// Whether the words at a position are interchangeable: at least [`FEW_DISTINCT`] of them,
/// each leading somewhere (not the path's end), and to mostly the same continuations —
/// the values of an enumerated parameter (`/packages/{npm,maven,docker}/{name}`), which
/// repeat like literals. Literal siblings lead to different places (`hooks/{id}/pings`,
/// `labels/{name}`).
fn words_lead_alike(node: &Node, work: &Cell<usize>) -> bool {
    // Comparing continuations infers subtrees again, at every level above them: past the
    // budget the words are taken for literals, which keeps reading the tree linear.
    work.get() > 0
        && node.words.len() >= FEW_DISTINCT
        && (continuations_alike(node, work, |child| child.clone())
            || continuations_alike(node, work, |child| singletons_as_values(child.clone())))
}

/// Whether the words' continuations, each subtree seen through `view`, are mostly the same.
fn continuations_alike(node: &Node, work: &Cell<usize>, view: impl Fn(&Node) -> Node) -> bool {
    let mut continuations = Vec::with_capacity(node.words.len());
    for child in node.words.values() {
        let mut below = Vec::new();
        infer(view(child), &mut Vec::new(), &mut below, work);
        let shapes: BTreeSet<String> = below
            .into_iter()
            .filter(|t| t.path != "/")
            .map(|t| shape(&t.path))
            .collect();
        if shapes.is_empty() {
            return false;
        }
        continuations.push(shapes);
    }
    let all: BTreeSet<&String> = continuations.iter().flatten().collect();
    let shared: usize = continuations.iter().map(BTreeSet::len).sum();
    // On average, each word leads to at least this share of all the continuations.
    shared * 10 >= all.len() * continuations.len() * ALIKE_TENTHS
}

/// The subtree with every word seen only once taken for a value: what a rarely used
/// continuation would look like with more traffic, for comparing continuations.
fn singletons_as_values(mut node: Node) -> Node {
    let words = std::mem::take(&mut node.words);
    for (word, child) in words {
        let child = singletons_as_values(child);
        if child.visits() == 1 {
            node.merge_param(Kind::Word, child);
        } else {
            node.words.insert(word, child);
        }
    }
    if let Some((kind, child)) = node.param.take() {
        node.param = Some((kind, Box::new(singletons_as_values(*child))));
    }
    node
}

/// A path template with every parameter as `{}` (`/a/{b}/c` → `/a/{}/c`): how templates
/// are compared whatever their parameters are named.
pub fn shape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut param = false;
    for c in path.chars() {
        match c {
            '{' => {
                param = true;
                out.push_str("{}");
            }
            '}' => param = false,
            _ if param => {}
            _ => out.push(c),
        }
    }
    out
}

/// Writes a template, naming each parameter after the literal before it (`/hooks/{hookId}`,
/// the way most APIs name them), else by its position (`{param2}`).
fn template(method: Method, parts: &[Part], seen: Seen, learned: Option<Learned>) -> Template {
    let mut path = String::new();
    let mut params = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        path.push('/');
        match part {
            Part::Literal(word) => path.push_str(word),
            Part::Param(kind) => {
                let after = i.checked_sub(1).and_then(|p| match parts.get(p) {
                    Some(Part::Literal(word)) => Some(word.as_str()),
                    _ => None,
                });
                let name = match after.map(singular) {
                    Some(noun) if !noun.is_empty() => format!("{noun}Id"),
                    _ => format!("param{}", params.len() + 1),
                };
                let name = if params.iter().any(|(n, _)| *n == name) {
                    format!("{name}{}", params.len() + 1)
                } else {
                    name
                };
                path.push('{');
                path.push_str(&name);
                path.push('}');
                params.push((name, *kind));
            }
        }
    }
    if path.is_empty() {
        path.push('/');
    }
    Template {
        method,
        path,
        params,
        seen,
        learned,
    }
}

/// `hooks` → `hook`, `categories` → `category`; a name made of ASCII letters only.
fn singular(word: &str) -> String {
    let letters: String = word.chars().filter(char::is_ascii_alphanumeric).collect();
    if let Some(stem) = letters.strip_suffix("ies") {
        format!("{stem}y")
    } else if let Some(stem) = letters.strip_suffix('s') {
        stem.to_owned()
    } else {
        letters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(tree: &Tree) -> Vec<String> {
        let mut paths: Vec<String> = (tree.templates().into_iter())
            .map(|t| format!("{} {}", t.method.as_str(), t.path))
            .collect();
        paths.sort();
        paths
    }

    fn observe(tree: &mut Tree, method: Method, path: &str) {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        tree.observe(method, &segments, 1_700_000_000);
    }

    #[test]
    fn values_of_a_form_are_parameters_at_once() {
        let mut tree = Tree::new(100, 0);
        observe(&mut tree, Method::Get, "/pets/42");
        observe(
            &mut tree,
            Method::Get,
            "/pets/7/toys/123e4567-e89b-12d3-a456-426614174000",
        );
        observe(&mut tree, Method::Delete, "/pets/9");
        assert_eq!(
            paths(&tree),
            [
                "DELETE /pets/{petId}",
                "GET /pets/{petId}",
                "GET /pets/{petId}/toys/{toyId}"
            ]
        );
        let toys = tree
            .templates()
            .into_iter()
            .find(|t| t.path.ends_with("{toyId}"));
        let kinds: Vec<Kind> = toys.unwrap().params.iter().map(|(_, k)| *k).collect();
        assert_eq!(kinds, [Kind::Integer, Kind::Uuid]);
    }

    #[test]
    fn words_that_keep_coming_new_are_a_parameter_and_words_that_repeat_are_literals() {
        let endpoints = ["issues", "pulls", "hooks", "labels", "milestones"];
        // 400 requests from ~400 owners, each with a project of their own.
        let mut tree = Tree::new(10_000, 0);
        for i in 0..400u32 {
            let owner = format!("user-{}", char_name(i));
            let repo = format!("proj-{}", char_name(i * 7 + 1));
            let path = format!("/repos/{owner}/{repo}/{}", endpoints[i as usize % 5]);
            observe(&mut tree, Method::Get, &path);
        }
        assert_eq!(
            paths(&tree),
            [
                "GET /repos/{repoId}/{param2}/hooks",
                "GET /repos/{repoId}/{param2}/issues",
                "GET /repos/{repoId}/{param2}/labels",
                "GET /repos/{repoId}/{param2}/milestones",
                "GET /repos/{repoId}/{param2}/pulls",
            ]
        );
    }

    /// A name made of letters for `i`, so it classifies as a word.
    fn char_name(mut i: u32) -> String {
        let mut name = String::new();
        loop {
            name.push(char::from(b'a' + (i % 26) as u8));
            i /= 26;
            if i == 0 {
                return name;
            }
        }
    }

    #[test]
    fn a_few_words_seen_rarely_stay_literals() {
        let mut tree = Tree::new(100, 0);
        for path in ["/admin/debug", "/admin/metrics", "/internal/health"] {
            observe(&mut tree, Method::Get, path);
        }
        assert_eq!(
            paths(&tree),
            [
                "GET /admin/debug",
                "GET /admin/metrics",
                "GET /internal/health"
            ]
        );
    }

    #[test]
    fn inference_is_linear_in_the_tree_however_deep_it_is() {
        // At every level three words, the first leading on: comparing continuations must
        // not infer each subtree again at every level above it (3^depth).
        let mut tree = Tree::new(10_000, 0);
        let mut path = String::new();
        for level in 0..MAX_DEPTH - 1 {
            for last in ["y", "z"] {
                observe(&mut tree, Method::Get, &format!("{path}/{last}"));
            }
            path.push_str(&format!("/a{}", char_name(level as u32)));
        }
        observe(&mut tree, Method::Get, &path);
        let started = std::time::Instant::now();
        let templates = tree.templates();
        let requests: u64 = templates.iter().map(|t| t.seen.count).sum();
        assert_eq!(
            requests,
            2 * (MAX_DEPTH as u64 - 1) + 1,
            "every request in a template"
        );
        // A guard against the exponential walk (3^23 subtrees would take days), not a
        // speed target: the linear walk takes about 1.6 s unoptimised on an idle machine,
        // and more on a loaded one, so the bound is far above it.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn what_requests_teach_is_kept_with_their_template_and_merged_with_it() {
        use crate::discovery::learn::Schema;
        use serde_json::json;
        // Forty owners' endpoints, each recorded apart until inference takes the names
        // for values, spend the forty endpoints that may learn.
        let mut tree = Tree::new(10_000, 40);
        // Owner names keep coming new: the words become one parameter, and what each
        // taught is merged into its template.
        for i in 0..40u32 {
            let path = format!("/users/{}/notes", char_name(i));
            let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            tree.observe(Method::Post, &segments, 1);
            let body = json!({"text": "x".repeat(i as usize + 1), "pinned": i % 2 == 0});
            let sample = Sample::Request {
                media: Some("application/json".to_owned()),
                schema: Some(Schema::of(&body)),
            };
            tree.learn(Method::Post, &segments, &sample);
        }
        // A second endpoint finds the budget of learned endpoints spent; a path never
        // observed learns nothing.
        observe(&mut tree, Method::Get, "/health");
        let sample = Sample::Response {
            status: 200,
            media: None,
            schema: None,
        };
        tree.learn(Method::Get, &["health"], &sample);
        tree.learn(Method::Get, &["nowhere"], &sample);
        let templates = tree.templates();
        let notes = templates.iter().find(|t| t.path == "/users/{userId}/notes");
        let learned = notes.and_then(|t| t.learned.as_ref()).unwrap().to_json();
        assert_eq!(
            learned["request"]["properties"]["text"],
            json!({"type": "string", "minLength": 1, "maxLength": 40})
        );
        assert_eq!(learned["request"]["required"], json!(["pinned", "text"]));
        let health = templates.iter().find(|t| t.path == "/health").unwrap();
        assert_eq!(health.learned, None);
    }

    #[test]
    fn memory_is_bounded_and_what_does_not_fit_is_counted() {
        let mut tree = Tree::new(10, 0);
        for i in 0..1000u32 {
            observe(
                &mut tree,
                Method::Get,
                &format!("/a/{}/b/{}", char_name(i), char_name(i + 1)),
            );
        }
        assert!(tree.dropped > 900, "{}", tree.dropped);
        let deep = vec!["x"; MAX_DEPTH + 1];
        tree.observe(Method::Get, &deep, 0);
        // A position with more distinct words than it keeps becomes a parameter.
        let mut tree = Tree::new(100_000, 0);
        for i in 0..(MAX_WORDS as u32 + 10) {
            observe(&mut tree, Method::Get, &format!("/users/{}", char_name(i)));
        }
        assert_eq!(paths(&tree), ["GET /users/{userId}"]);
    }
}
