//! A second view: the engine's own per-request cost, natively (no VM, no host calls),
//! timed with a plain `Instant` loop. Differences between these and the in-Envoy figures
//! are what the VM and the host ABI cost.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use apiguard_filter::{Action, Exchange, MemoryStore, Next, Policy, SlotSecret, Values};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::scenarios::{Config, Scenario};
use crate::{BenchError, Bundles};

/// How long each loop runs; long enough to average out a scheduler tick.
const LOOP_TIME: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Engine {
    /// `Policy::compile` of each policy natively: time and heap (peak, kept).
    #[serde(default)]
    pub compiles: Vec<Compile>,
    /// Per scenario id: nanoseconds for the request through the engine's pipeline
    /// ([`Exchange::request`]): what the VM path runs, less the host calls.
    pub inspect_ns: Vec<(String, f64)>,
    /// Adversarial request inputs against typical ones (absent from runs recorded before).
    #[serde(default)]
    pub worst: Vec<crate::worst::WorstCase>,
}

/// One policy's compile, natively.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Compile {
    pub policy: String,
    pub ms: f64,
    /// Heap at the compile's peak and what the compiled policy keeps, MiB.
    pub peak_mib: f64,
    pub kept_mib: f64,
}

impl Engine {
    pub fn markdown(&self) -> String {
        let mut md = String::from("### The engine natively (no VM, no host calls)\n\n");
        md.push_str(
            "| `Policy::compile` of | ms | heap peak, MiB | heap kept, MiB |\n|---|---|---|---|\n",
        );
        for c in &self.compiles {
            let _ = writeln!(
                md,
                "| {} | {:.0} | {:.1} | {:.1} |",
                c.policy, c.ms, c.peak_mib, c.kept_mib
            );
        }
        md.push_str(
            "\n| Scenario | ns per request (inspect + anomalies, head and body) |\n|---|---|\n",
        );
        for (id, ns) in &self.inspect_ns {
            let _ = writeln!(md, "| {id} | {ns:.0} |");
        }
        if !self.worst.is_empty() {
            md.push_str(&crate::worst::markdown(&self.worst));
        }
        md
    }
}

pub fn measure(bundles: &Bundles, scenarios: &[Scenario]) -> Result<Engine, BenchError> {
    let mut compiles = Vec::new();
    let mut compile = |name: &str, bundle: &Value| -> Result<Rc<Policy>, BenchError> {
        // The configuration's bytes are counted, as in the VM, where Envoy copies them in.
        let bytes = serde_json::to_vec(bundle).map_err(|e| BenchError::Config(e.to_string()))?;
        let started = Instant::now();
        let (policy, heap) = crate::heap::measure(|| Policy::compile(bytes.clone()));
        let ms = started.elapsed().as_secs_f64() * 1e3;
        let policy = policy?;
        let mib = |bytes: usize| bytes as f64 / f64::from(1 << 20);
        compiles.push(Compile {
            policy: name.to_owned(),
            ms,
            peak_mib: mib(heap.peak),
            kept_mib: mib(heap.kept),
        });
        Ok(Rc::new(policy))
    };
    let github_policy = compile("GitHub", &bundles.github)?;
    drop(compile("GitHub, `schemas: lazy`", &bundles.github_lazy)?);
    let one_policy = compile("GitHub, one path", &bundles.github_one)?;
    let full_policy = compile("bench full.yaml", &bundles.full)?;
    let no_jwt_policy = compile("bench full.yaml without `security`", &bundles.full_no_jwt)?;
    let candidate_policy = compile("bench full.yaml with a candidate", &bundles.full_candidate)?;
    let discovery_policy = compile("bench full.yaml with `discovery`", &bundles.full_discovery)?;
    let learn_policy = compile("bench full.yaml learning", &bundles.full_learn)?;
    let behaviour_policy = compile(
        "bench full.yaml with `behaviour.bola` and `behaviour.baselines`",
        &bundles.full_behaviour,
    )?;
    let mut cold_policies = BTreeMap::new();
    for (algorithm, bundle) in &bundles.jwt_cold {
        let name = format!("bench full.yaml, token cache off, {algorithm} key");
        cold_policies.insert(*algorithm, compile(&name, bundle)?);
    }
    let mut inspect_ns = Vec::new();
    // Refusals are measured in Envoy only: the native loop times allowed requests.
    for scenario in scenarios.iter().filter(|s| s.status == 200) {
        let policy = match scenario.config {
            Config::Full => &full_policy,
            Config::JwtCold(algorithm) => match cold_policies.get(&algorithm) {
                Some(policy) => policy,
                None => continue,
            },
            Config::FullNoJwt => &no_jwt_policy,
            Config::FullCandidate => &candidate_policy,
            Config::FullDiscovery => &discovery_policy,
            Config::FullLearn => &learn_policy,
            Config::FullBehaviour => &behaviour_policy,
            Config::GitHub => &github_policy,
            Config::GitHubOnePath => &one_policy,
            _ => continue,
        };
        inspect_ns.push((scenario.id.clone(), per_request_ns(policy, scenario)?));
    }
    Ok(Engine {
        compiles,
        inspect_ns,
        worst: crate::worst::measure()?,
    })
}

/// The `:authority` Envoy sees: the listener's loopback address.
const AUTHORITY: &str = "127.0.0.1";

/// Checks the scenario's request is allowed natively too, then times it.
fn per_request_ns(policy: &Rc<Policy>, scenario: &Scenario) -> Result<f64, BenchError> {
    let request = &scenario.request;
    let mut headers: Vec<(&str, &str)> = vec![
        (":method", request.method),
        (":path", request.target.as_str()),
        (":authority", AUTHORITY),
    ];
    headers.extend((request.headers.iter()).map(|(n, v)| (n.as_str(), v.as_str())));
    let body = (request.body.as_deref())
        .filter(|body| !body.is_empty())
        .map(str::as_bytes);
    let input = Values {
        now: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
        downstream: Some("127.0.0.1:40000".to_owned()),
        store: MemoryStore::default(),
        secret: SlotSecret::new([1; SlotSecret::BYTES]),
    };
    // What the VM path runs (filter/src/host/http.rs): the request through the engine's
    // pipeline, head and body, with the outputs the host would forward.
    // One ring for the loop, as one VM keeps one: a token is verified once, then cached.
    let ring = Rc::new(policy.key_ring());
    let once = || {
        let mut exchange = Exchange::new(Rc::clone(policy), Rc::clone(&ring));
        let next = exchange.request(&input, black_box(&headers), black_box(body));
        let outputs = exchange.take_outputs();
        black_box(&outputs);
        match next {
            Next::Reply(_) => Action::Block,
            _ => outputs
                .filter_state
                .map_or(Action::Allow, |state| state.action),
        }
    };
    if once() != Action::Allow {
        return Err(BenchError::Probe {
            scenario: scenario.id.clone(),
            message: "the engine does not allow this request natively".into(),
        });
    }
    let started = Instant::now();
    let mut iterations = 0u64;
    while started.elapsed() < LOOP_TIME {
        for _ in 0..100 {
            black_box(once());
        }
        iterations += 100;
    }
    Ok(started.elapsed().as_nanos() as f64 / iterations as f64)
}

#[cfg(test)]
mod tests {
    use apiguard_filter::Policy;
    use apiguard_filter::RequestHead;
    use apiguard_filter::{Action, RuleId};
    use apiguard_harness::locate;

    use crate::scenarios::{self, Config};
    use crate::tokens::{Keys, ALGORITHMS};
    use crate::wrk::Request;

    /// The signing of `tokens.rs` is right: each algorithm's token verifies in
    /// apiguard's own engine against the JWKS the bench publishes for it, and the same
    /// token with a changed signature is refused for its signature. Without this, a
    /// wrongly encoded key or signature would only show as a failed probe in Envoy.
    #[test]
    fn every_algorithms_token_verifies_natively_and_a_tampered_one_does_not() {
        let dir = std::env::temp_dir().join(format!("apiguard-bench-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let full = locate::workspace_root().join("bench/policies/full.yaml");
        let made = Keys::generate().and_then(|keys| {
            let bundles = crate::jwt_cold_bundles(&full, &keys, &dir)?;
            Ok((keys, bundles))
        });
        std::fs::remove_dir_all(&dir).unwrap();
        let (keys, bundles) = made.unwrap();
        assert_eq!(bundles.len(), ALGORITHMS.len());
        let scenarios = scenarios::all(&keys);
        for credentials in &keys.per_algorithm {
            let algorithm = credentials.algorithm;
            let policy =
                Policy::compile(serde_json::to_vec(&bundles[&algorithm]).unwrap()).unwrap();
            let request = &scenarios
                .iter()
                .find(|s| s.config == Config::JwtCold(algorithm))
                .unwrap()
                .request;
            assert_eq!(
                verdict(&policy, request, &credentials.token),
                (Action::Allow, None),
                "{algorithm}"
            );
            assert_eq!(
                verdict(&policy, request, &tampered(&credentials.token)),
                (
                    Action::Block,
                    Some((RuleId::AuthInvalid, "the signature does not verify".into()))
                ),
                "{algorithm}"
            );
        }
    }

    /// The engine's verdict on `request`'s head with `token` as its bearer token: the
    /// action, and the deciding rule with its reason.
    fn verdict(
        policy: &Policy,
        request: &Request,
        token: &str,
    ) -> (Action, Option<(RuleId, String)>) {
        let bearer = format!("Bearer {token}");
        let headers: Vec<(&str, &str)> = request
            .headers
            .iter()
            .map(|(name, value)| match name.as_str() {
                "authorization" => (name.as_str(), bearer.as_str()),
                _ => (name.as_str(), value.as_str()),
            })
            .collect();
        let head = RequestHead {
            method: request.method.as_bytes(),
            path: request.target.as_bytes(),
            headers: &headers,
            has_body: false,
        };
        let (verdict, _) = policy.inspect(&head);
        let deciding = verdict
            .deciding()
            .map(|violation| (violation.rule, violation.reason.to_string()));
        (verdict.action, deciding)
    }

    /// `token` with the first character of its signature changed: all six of its bits
    /// are signature bits (never only base64url padding), so the signature differs.
    fn tampered(token: &str) -> String {
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let mut chars = signature.chars();
        let other = if chars.next() == Some('A') { 'B' } else { 'A' };
        format!("{signed}.{other}{}", chars.as_str())
    }
}
