//! The behavioural detection simulation, short (`make behaviour-sim` is the long one):
//! seed 1, 24 benign clients and one attacker of each kind for 15 s through Envoy with two
//! workers. No benign client may be refused, and every attacker must be found by its rule.
//!
//! Margins, so the outcome does not hang on timing: a benign client names at most 18
//! distinct pets (BOLA finds 31), fails at most 7 sign-ins and uses at most 2 usernames in
//! any 300 s (brute force finds 10 failures, stuffing 6 usernames), and checks out only
//! after its cart was answered; an attacker starts within the first 3 s and needs at most
//! about 40 requests, 10 to 60 ms apart. Every behaviour table has 65536 slots, where 30
//! clients share none in more than 99 runs of 100 (a shared slot can refuse a benign
//! checkout or delay a finding: see `SimOptions::slots`).

use std::time::Duration;

use apiguard_harness::behaviour_sim::{self, SimOptions};

#[test]
fn benign_clients_are_never_refused_and_every_attacker_is_found_by_its_rule() {
    let report = behaviour_sim::run(&SimOptions {
        seed: 1,
        benign: 24,
        attackers_per_kind: 1,
        duration: Duration::from_secs(15),
        concurrency: 2,
        slots: 65536,
    })
    .unwrap_or_else(|error| panic!("{error}"));
    let table = report.markdown();
    eprintln!("{table}");
    assert_eq!(report.benign_refused(), 0, "{table}");
    for rule in &report.rules {
        assert_eq!(rule.recall(), 1.0, "{}: {table}", rule.rule.id);
        assert_eq!(rule.benign_refused, 0, "{}: {table}", rule.rule.id);
        assert_eq!(rule.precision(), 1.0, "{}: {table}", rule.rule.id);
    }
    // The ground truth against Envoy's own count of each rule's refusals: what the clients
    // saw, plus at most the exchanges that failed (a refusal the client never read).
    let (failed_benign, failed_attackers) = report.failed();
    for rule in &report.rules {
        let refusals: usize = (report.clients.iter())
            .flat_map(|c| &c.outcomes)
            .filter(|o| o.rule.as_deref() == Some(rule.rule.id))
            .count();
        let counted = rule.counter as usize;
        assert!(
            (refusals..=refusals + failed_benign + failed_attackers).contains(&counted),
            "{}: Envoy counted {counted}, the clients saw {refusals}: {table}",
            rule.rule.id
        );
    }
    let benign_requests: usize = (report.clients.iter())
        .filter(|c| c.kind == behaviour_sim::Kind::Benign)
        .map(|c| c.outcomes.len())
        .sum();
    assert!(benign_requests > 24 * 10, "{table}");
}
