//! The short, seeded version of the fuzzing that `cargo test` runs: every committed corpus
//! input and crash reproducer (`fuzz/corpus/<target>/`, `fuzz/regressions/<target>/`)
//! through its target, each within a time bound.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::TARGETS;

/// The most one input may take. libFuzzer's runs count more than 100 ms per input as a
/// hang (`-timeout` in the Makefile is the same bound, rounded up to its one-second
/// granularity, and `-report_slow_units`); this test runs the unoptimised test build,
/// measured at about 10 times slower than the fuzzers' optimised one on these inputs, so
/// it allows 10 times as much.
const BOUND: Duration = Duration::from_millis(1000);

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.filter_map(|e| Some(e.ok()?.path())).collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

#[test]
fn every_corpus_input_and_reproducer_runs_within_the_bound() {
    let mut slow = Vec::new();
    super::prepare();
    for (name, run) in TARGETS {
        let corpus = files(&fuzz_dir().join("corpus").join(name));
        assert!(!corpus.is_empty(), "fuzz/corpus/{name} has inputs");
        let regressions = files(&fuzz_dir().join("regressions").join(name));
        let mut slowest = Duration::ZERO;
        for file in corpus.iter().chain(&regressions) {
            let data = std::fs::read(file).unwrap();
            let start = Instant::now();
            run(&data);
            let took = start.elapsed();
            slowest = slowest.max(took);
            if took > BOUND {
                slow.push(format!("{} took {took:?}", file.display()));
            }
        }
        eprintln!(
            "{name}: {} corpus inputs, {} reproducers, slowest {slowest:?}",
            corpus.len(),
            regressions.len()
        );
    }
    assert!(slow.is_empty(), "over {BOUND:?}: {slow:#?}");
}

/// The fuzz crate has one target per entry of [`TARGETS`], and no other.
#[test]
fn every_fuzz_target_is_an_entry_point_here() {
    let mut files: Vec<String> = files(&fuzz_dir().join("fuzz_targets"))
        .iter()
        .filter_map(|f| Some(f.file_stem()?.to_str()?.to_owned()))
        .collect();
    files.sort();
    let mut names: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
    names.sort();
    assert_eq!(files, names);
}
