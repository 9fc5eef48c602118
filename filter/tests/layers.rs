//! The module graph is layered as `ARCHITECTURE.md` draws it: every `crate::` path in the
//! engine's code points to a module in a lower layer, so there is no import cycle between
//! subsystems; and inside each subsystem's folder, the files import each other without a
//! cycle either. Test code (`tests.rs`, `fixtures.rs`, `testkit.rs`, the fuzz entry points
//! `fuzzing.rs`, `#[cfg(test)] mod …`) may reach up:
//! it is not part of the graph.

// Outside `#[test]` functions too, a file that cannot be read is the test failing.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crate's top-level modules, from the top layer down. A module may use modules of
/// lower layers only; modules of one layer do not use each other.
const LAYERS: &[&[&str]] = &[
    &["host", "render"],
    &["exchange", "gateway"],
    &["policy"],
    &["config"],
    &["behaviour"],
    &["events", "problem"],
    &["abuse", "discovery", "security"],
    &["contract"],
    &["verdict"],
    &["error", "request", "settings", "structpb"],
];

/// A module's code: every `.rs` file of it that is not test code, comments removed.
struct Source {
    /// The path below `src/`, split: `["contract", "body", "json.rs"]`.
    parts: Vec<String>,
    code: String,
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn sources() -> Vec<Source> {
    let mut out = Vec::new();
    let mut dirs = vec![src()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let name = path.file_name().unwrap().to_str().unwrap();
            if !name.ends_with(".rs")
                || ["tests.rs", "fixtures.rs", "testkit.rs", "fuzzing.rs"].contains(&name)
            {
                continue;
            }
            let rel = path.strip_prefix(src()).unwrap();
            let parts: Vec<String> = rel.iter().map(|p| p.to_str().unwrap().to_owned()).collect();
            if parts[0] == "bin" || parts[0] == "lib.rs" {
                continue;
            }
            out.push(Source {
                parts,
                code: without_tests_and_comments(&std::fs::read_to_string(&path).unwrap()),
            });
        }
    }
    out
}

/// The code before its `#[cfg(test)] mod …`, without `//` comments (doc links name
/// modules without importing them).
fn without_tests_and_comments(text: &str) -> String {
    let code = text
        .find("#[cfg(test)]\nmod ")
        .map_or(text, |end| &text[..end]);
    code.lines()
        .map(|line| line.find("//").map_or(line, |c| &line[..c]))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module names that follow `prefix` in `code` (`crate::` → `contract`, `abuse`…).
fn names_after<'c>(code: &'c str, prefix: &str) -> BTreeSet<&'c str> {
    let mut names = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let end = rest
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(rest.len());
        if end > 0 {
            names.insert(&rest[..end]);
        }
    }
    names
}

fn module_of(parts: &[String]) -> &str {
    parts[0].trim_end_matches(".rs")
}

#[test]
fn every_subsystem_imports_only_the_layers_below_it() {
    let layer: BTreeMap<&str, usize> = (LAYERS.iter().enumerate())
        .flat_map(|(i, names)| names.iter().map(move |n| (*n, i)))
        .collect();
    let mut wrong = Vec::new();
    let mut seen = BTreeSet::new();
    for source in sources() {
        let from = module_of(&source.parts);
        seen.insert(from.to_owned());
        let Some(&from_layer) = layer.get(from) else {
            wrong.push(format!("{from}: not in LAYERS (nor in ARCHITECTURE.md?)"));
            continue;
        };
        for to in names_after(&source.code, "crate::") {
            if to == from {
                continue;
            }
            match layer.get(to) {
                Some(&to_layer) if to_layer > from_layer => {}
                _ => wrong.push(format!(
                    "{} uses crate::{to}, which is not in a layer below `{from}`",
                    source.parts.join("/")
                )),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let listed: BTreeSet<String> = layer.keys().map(|n| (*n).to_owned()).collect();
    assert_eq!(seen, listed, "LAYERS names a module that does not exist");
}

#[test]
fn no_subsystem_has_an_import_cycle_among_its_files() {
    // Per folder: its children (files or folders) and which of them each uses, through
    // `crate::<folder>::<child>` or, from a file directly in the folder, `super::<child>`.
    // The folder's `mod.rs` declares them all and is left out.
    let sources = sources();
    let mut graphs: BTreeMap<&str, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for source in sources.iter().filter(|s| s.parts.len() > 1) {
        let folder = source.parts[0].as_str();
        if source.parts[1..] == ["mod.rs"] {
            continue;
        }
        let node = source.parts[1].trim_end_matches(".rs").to_owned();
        let mut uses = names_after(&source.code, &format!("crate::{folder}::"));
        if source.parts.len() == 2 {
            uses.extend(names_after(&source.code, "super::"));
        }
        let children = |name: &str| {
            let dir = src().join(folder);
            dir.join(format!("{name}.rs")).is_file() || dir.join(name).is_dir()
        };
        let graph = graphs.entry(folder).or_default();
        let edges = graph.entry(node.clone()).or_default();
        edges.extend(
            uses.into_iter()
                .filter(|to| *to != node && children(to))
                .map(str::to_owned),
        );
    }
    for (folder, graph) in &graphs {
        if let Some(cycle) = find_cycle(graph) {
            panic!("{folder}/: import cycle {}", cycle.join(" -> "));
        }
    }
}

/// A cycle in `graph`, as the nodes along it, by depth-first search.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_cycle_finder_finds_a_cycle_and_only_a_cycle() {
    let graph = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry((*a).to_owned())
                .or_default()
                .insert((*b).to_owned());
        }
        g
    };
    let cycle = find_cycle(&graph(&[("a", "b"), ("b", "c"), ("c", "a")])).unwrap();
    assert_eq!(cycle, ["a", "b", "c", "a"]);
    assert!(find_cycle(&graph(&[("a", "b"), ("a", "c"), ("b", "c")])).is_none());
    let code = "use crate::contract::body;\n// crate::host in a comment\nlet x = my_crate::policy;";
    let code = without_tests_and_comments(code);
    assert_eq!(
        names_after(&code, "crate::"),
        BTreeSet::from(["contract"]),
        "comments and other crates' paths are not imports"
    );
}
