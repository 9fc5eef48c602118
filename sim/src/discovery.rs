//! The discovery simulation: GitHub's API with holes cut in its contract, a seeded mix of
//! requests to every operation through the filter's pipeline ([`Exchange`]), and the
//! templates discovery infers from the undeclared ones, scored against the holes. The
//! requests to the cut operations carry JSON bodies drawn from their request schemas, and
//! get answers drawn from their first 2xx response schema ([`crate::bodies`]): the
//! schemas learned of the correctly inferred templates are scored against those.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use apiguard_filter::{
    template_shape, Discovery, Exchange, MemoryStore, Policy, SegmentKind, SlotSecret, Values,
};
use serde_json::{json, Value};

use crate::bodies::{self, Agreement};
use crate::github::{self, Filler, Operation};
use crate::rng::{Rng, Zipf};
use crate::SimError;

/// What a run is asked to do.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub seed: u64,
    pub requests: usize,
    /// The share of the document's paths cut out.
    pub holes: f64,
    /// Distinct values per name parameter (owners, repositories…).
    pub names: usize,
}

/// What a run found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub operations: usize,
    pub removed_paths: usize,
    /// Removed operations that received requests.
    pub removed_with_traffic: usize,
    /// Of those, the ones whose requests all matched a declared template (the router
    /// placed them elsewhere, so they are refused as invalid parameters, not undeclared).
    pub shadowed_by_declared: usize,
    pub undeclared_requests: u64,
    pub inferred: usize,
    /// Inferred templates that are a removed operation (method and shape).
    pub correct: usize,
    pub precision: f64,
    /// Over removed operations whose requests reached discovery.
    pub recall: f64,
    /// Parameters of correct templates whose inferred form agrees with the schema
    /// (integer for integers, a string form for strings).
    pub params_agreeing: usize,
    pub params_compared: usize,
    pub dropped: u64,
    /// Inferred templates that are not a removed operation, for reading.
    pub wrong: Vec<String>,
    /// Removed operations that reached discovery but were not inferred.
    pub missed: Vec<String>,
    /// Learned request and response schemas of correct templates against the schemas
    /// their bodies were drawn from.
    pub requests_agreement: Agreement,
    pub responses_agreement: Agreement,
}

pub fn run(document: &Value, plan: Plan) -> Result<Report, SimError> {
    let mut rng = Rng::new(plan.seed);
    let operations = github::operations(document);
    let (cut, removed) = github::with_holes(document, plan.holes, &mut rng);
    let removed: BTreeSet<&str> = removed.iter().map(String::as_str).collect();
    let config = json!({
        "name": "github",
        "mode": "monitor",
        "schemas": "lazy",
        // Every endpoint learns: the simulation measures learning, not its ceiling.
        "discovery": {"max_nodes": 20_000, "learn_endpoints": 100_000},
        "openapi": {"document": cut},
    });
    let policy =
        Rc::new(Policy::compile(config.to_string()).map_err(|e| SimError::Policy(e.to_string()))?);
    let settings = policy.discovery().unwrap_or_default();
    let ring = Rc::new(policy.key_ring());
    let mut discovery = Discovery::new(settings);
    let filler = Filler::new(plan.names, &mut rng);
    // Bodies draw from their own stream, so the paths (and the path scores) stay those of
    // the seed without bodies.
    let mut body_rng = Rng::new(plan.seed ^ 0x00b0_d1e5);
    // Popular endpoints get most requests; which ones are popular is part of the seed.
    let mut order: Vec<usize> = (0..operations.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let popularity = Zipf::new(operations.len(), 0.9);
    let input = Values {
        now: 1_700_000_000_000_000_000,
        downstream: Some("192.0.2.1:40000".to_owned()),
        store: MemoryStore::default(),
        secret: SlotSecret::new([1; SlotSecret::BYTES]),
    };
    // Per removed operation: requests sent, and requests that reached discovery.
    let mut sent: BTreeMap<usize, (u64, u64)> = BTreeMap::new();
    let mut report = Report {
        operations: operations.len(),
        removed_paths: removed.len(),
        ..Report::default()
    };
    for _ in 0..plan.requests {
        let index = order[popularity.sample(&mut rng)];
        let operation = &operations[index];
        let path = filler.path(operation, &mut rng);
        let is_removed = removed.contains(operation.template.as_str());
        // Only the cut operations' requests carry bodies: the rest only need routing.
        let body = |request| match is_removed {
            true => bodies::schema(document, &operation.template, &operation.method, request),
            false => None,
        };
        let mut draw = |schema| bodies::draw(document, schema, &mut body_rng, 0).to_string();
        let request_body = body(true).map(&mut draw);
        let response_body = body(false).map(&mut draw);
        let headers = [
            (":method", operation.method.as_str()),
            (":path", path.as_str()),
            (":authority", "api.github.com"),
            ("user-agent", "apiguard-sim"),
            ("content-type", "application/json"),
        ];
        // Without a body, no `content-type`.
        let headers = &headers[..headers.len() - usize::from(request_body.is_none())];
        let mut exchange = Exchange::new(Rc::clone(&policy), Rc::clone(&ring));
        exchange.request(&input, headers, request_body.as_deref().map(str::as_bytes));
        if is_removed {
            let answer = [(":status", "200"), ("content-type", "application/json")];
            exchange.response(&input, &answer, response_body.as_deref().map(str::as_bytes));
        }
        let outputs = exchange.take_outputs();
        if let Some(undeclared) = &outputs.undeclared {
            discovery.observe(undeclared);
            report.undeclared_requests += 1;
        }
        for lesson in &outputs.lessons {
            discovery.learn(lesson);
        }
        if is_removed {
            let entry = sent.entry(index).or_default();
            entry.0 += 1;
            entry.1 += u64::from(outputs.undeclared.is_some());
        }
    }
    let truth: BTreeMap<String, &Operation> = sent
        .iter()
        .filter(|(_, (_, reached))| *reached > 0)
        .map(|(&i, _)| {
            (
                key(&operations[i].method, &operations[i].shape()),
                &operations[i],
            )
        })
        .collect();
    report.removed_with_traffic = sent.len();
    report.shadowed_by_declared = sent.values().filter(|(_, reached)| *reached == 0).count();
    let templates = discovery.templates();
    report.inferred = templates.len();
    report.dropped = discovery.dropped();
    let mut found = BTreeSet::new();
    for template in &templates {
        let k = key(template.method.as_str(), &template_shape(&template.path));
        match truth.get(&k) {
            Some(operation) => {
                report.correct += 1;
                found.insert(k);
                let learned = template.learned.as_ref();
                for (request, agreement) in [
                    (true, &mut report.requests_agreement),
                    (false, &mut report.responses_agreement),
                ] {
                    let truth =
                        bodies::schema(document, &operation.template, &operation.method, request);
                    let schema = learned.and_then(|l| {
                        if request {
                            l.request.as_ref()
                        } else {
                            l.response.as_ref()
                        }
                    });
                    if let (Some(truth), Some(schema)) = (truth, schema) {
                        agreement.compare(document, &schema.to_json(), truth);
                    }
                }
                let spec: Vec<bool> = spec_integers(operation);
                for ((_, kind), integer) in template.params.iter().zip(spec) {
                    report.params_compared += 1;
                    let agrees = (*kind == SegmentKind::Integer) == integer;
                    report.params_agreeing += usize::from(agrees);
                }
            }
            None => report
                .wrong
                .push(format!("{} (x{})", k, template.seen.count)),
        }
    }
    report.missed = truth
        .keys()
        .filter(|k| !found.contains(*k))
        .cloned()
        .collect();
    report.precision = ratio(report.correct, report.inferred);
    report.recall = ratio(found.len(), truth.len());
    Ok(report)
}

fn key(method: &str, shape: &str) -> String {
    format!("{method} {shape}")
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
}

/// Per parameter of the template, in path order: whether the schema says integer.
fn spec_integers(operation: &Operation) -> Vec<bool> {
    let mut names = Vec::new();
    let mut rest = operation.template.as_str();
    while let Some(start) = rest.find('{') {
        let Some(end) = rest[start..].find('}') else {
            break;
        };
        names.push(&rest[start + 1..start + end]);
        rest = &rest[start + end + 1..];
    }
    names
        .into_iter()
        .map(|n| matches!(operation.params.get(n), Some(github::Values::Integer)))
        .collect()
}

/// The run as a Markdown section: the plan, the scores, and what was wrong or missed.
pub fn markdown(plan: &Plan, report: &Report) -> String {
    let mut out = format!(
        "| seed | requests | holes | operations | removed paths | removed ops with traffic | shadowed by a declared template | undeclared requests | inferred | correct | precision | recall | parameter forms agreeing | dropped |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n\
         | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.3} | {:.3} | {}/{} | {} |\n",
        plan.seed,
        plan.requests,
        plan.holes,
        report.operations,
        report.removed_paths,
        report.removed_with_traffic,
        report.shadowed_by_declared,
        report.undeclared_requests,
        report.inferred,
        report.correct,
        report.precision,
        report.recall,
        report.params_agreeing,
        report.params_compared,
        report.dropped,
    );
    out.push_str(
        "\n| learned schemas of correct templates | compared | properties learned | in the truth | in both | property precision | property recall | types agreeing | required agreeing |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for (what, a) in [
        ("request bodies", &report.requests_agreement),
        ("responses (first 2xx)", &report.responses_agreement),
    ] {
        out.push_str(&format!(
            "| {what} | {} | {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} |\n",
            a.schemas,
            a.learned,
            a.truth,
            a.both,
            a.precision(),
            a.recall(),
            a.types(),
            a.required(),
        ));
    }
    for (title, list) in [
        ("inferred, not a removed operation", &report.wrong),
        ("removed, not inferred", &report.missed),
    ] {
        if !list.is_empty() {
            out.push_str(&format!("\n{title} ({}):\n", list.len()));
            for line in list.iter().take(20) {
                out.push_str(&format!("- `{line}`\n"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The short, seeded version of `sim discovery` that `make test` runs: GitHub's API with
    /// a tenth of its paths cut out, 100,000 requests.
    #[test]
    fn discovery_finds_githubs_missing_endpoints() {
        let document = github::load(&github::spec_path()).unwrap_or_else(|e| panic!("{e}"));
        let plan = Plan {
            seed: 1,
            requests: 100_000,
            holes: 0.1,
            names: 5_000,
        };
        let report = run(&document, plan).unwrap();
        let table = markdown(&plan, &report);
        assert!(report.removed_with_traffic > 100, "{table}");
        assert!(report.precision >= 0.95, "{table}");
        assert!(report.recall >= 0.95, "{table}");
        assert_eq!(report.params_agreeing, report.params_compared, "{table}");
        // Learned schemas: nothing learned that the truth lacks, of the type it has; what
        // is missing is what the caps or the draws left out (README, "Schema learning").
        let requests = report.requests_agreement;
        assert!(requests.schemas >= 20, "{table}");
        assert!(requests.precision() >= 0.99, "{table}");
        assert!(requests.recall() >= 0.7, "{table}");
        assert!(requests.types() >= 0.99, "{table}");
        assert!(report.responses_agreement.precision() >= 0.99, "{table}");
    }
}
