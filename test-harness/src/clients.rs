//! Bounded state under many clients (`harness soak-clients`, `make soak-clients`): up to a
//! million distinct client keys through the soak policy's rate limits and quarantine, on
//! loopback, as fast as the load threads go and within a wall-time cap; Envoy's memory and
//! the shared-data bound before and after.
//!
//! Each key is one request carrying it in both rate limits' headers and the quarantine's
//! (`x-soak-client`, `x-soak-abuser`): an even key's request is valid (admitted, so both
//! rate-limit tables store its bucket: 200, or 429 when it shares a slot with a recent
//! key), an odd key's breaks the contract (400, a strike in the quarantine table; 403 if a
//! shared slot already holds a quarantine of its own fingerprint cannot happen, but a
//! collision can start one, so 403 is accepted too).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::soak::{self, Sample, Stack, SLOTS};
use crate::{Client, Error, HttpVersion};

#[derive(Debug, Clone)]
pub struct ClientsOptions {
    pub keys: u64,
    pub max_wall: Duration,
    pub threads: usize,
    pub concurrency: u16,
}

#[derive(Debug)]
pub struct ClientsReport {
    pub before: Sample,
    pub after: Sample,
    pub keys: u64,
    pub unexpected: u64,
    pub elapsed: Duration,
    pub slot_lost: u64,
}

impl ClientsReport {
    pub fn summary(&self) -> String {
        let rate = self.keys as f64 / self.elapsed.as_secs_f64().max(0.001);
        format!(
            "{keys} distinct client keys in {secs:.0} s ({rate:.0}/s), {unexpected} unexpected statuses\n\
             shared-data entries (derived from the config, not read from Envoy: {slots} slots × 4 tables + the slot secret): {bound} before and after\n\
             slot collisions counted: {collisions}; slot updates lost: {lost}; quarantines started: {quarantines}\n\
             Envoy RSS: {rss0} KiB before, {rss1} KiB after ({drss:+} KiB)\n\
             Envoy heap allocated: {heap0} KiB before, {heap1} KiB after\n\
             VM linear memory: {vm0} KiB before, {vm1} KiB after\n",
            keys = self.keys,
            secs = self.elapsed.as_secs_f64(),
            unexpected = self.unexpected,
            slots = SLOTS,
            bound = self.after.shared_data_entries_bound,
            collisions = self.after.collisions,
            lost = self.slot_lost,
            quarantines = self.after.quarantines,
            rss0 = self.before.rss_kib,
            rss1 = self.after.rss_kib,
            drss = self.after.rss_kib as i64 - self.before.rss_kib as i64,
            heap0 = self.before.envoy_allocated_kib,
            heap1 = self.after.envoy_allocated_kib,
            vm0 = self.before.vm_memory_kib,
            vm1 = self.after.vm_memory_kib,
        )
    }
}

pub fn run(options: &ClientsOptions) -> Result<ClientsReport, Error> {
    let stack = Stack::start(soak::policy()?, options.concurrency, None)?;
    let bound = soak::shared_data_bound(SLOTS);
    let started = Instant::now();
    // A few requests first, so "before" is a VM that has served traffic, not a fresh one.
    let warm = Client::new(stack.envoy.listener(), HttpVersion::Http1)?;
    let token = soak::token(soak::SECRET, "clients");
    for _ in 0..100 {
        let _ = soak::send(&warm, "/v1/pets", Some(&token), &[]);
    }
    std::thread::sleep(Duration::from_secs(1));
    let before = soak::sample_counts(&stack, started, 0, 0, bound);
    let next_key = Arc::new(AtomicU64::new(0));
    let unexpected = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + options.max_wall;
    let load = Instant::now();
    let threads: Vec<_> = (0..options.threads)
        .map(|_| {
            let (next_key, unexpected) = (Arc::clone(&next_key), Arc::clone(&unexpected));
            let (listener, token, keys) = (stack.envoy.listener(), token.clone(), options.keys);
            std::thread::spawn(move || {
                let Ok(client) = Client::new(listener, HttpVersion::Http1) else {
                    return;
                };
                while Instant::now() < deadline {
                    let key = next_key.fetch_add(1, Ordering::Relaxed);
                    if key >= keys {
                        return;
                    }
                    let name = format!("k{key}");
                    let (target, expected): (_, &[u16]) = if key % 2 == 0 {
                        ("/v1/pets", &[200, 429])
                    } else {
                        ("/v1/pets?limit=1000", &[400, 403])
                    };
                    let headers = [
                        ("x-soak-client", name.as_str()),
                        ("x-soak-abuser", name.as_str()),
                    ];
                    let status = soak::send(&client, target, Some(&token), &headers);
                    if !status.is_ok_and(|status| expected.contains(&status)) {
                        unexpected.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
    let elapsed = load.elapsed();
    let keys = next_key.load(Ordering::Relaxed).min(options.keys);
    std::thread::sleep(Duration::from_secs(2));
    let unexpected = unexpected.load(Ordering::Relaxed);
    let after = soak::sample_counts(&stack, started, keys, unexpected, bound);
    let stats = stack.envoy.stats().unwrap_or_default();
    let slot_lost = stats
        .wasm_counter("apiguard.abuse.slot_lost")
        .unwrap_or(0.0) as u64;
    Ok(ClientsReport {
        before,
        after,
        keys,
        unexpected,
        elapsed,
        slot_lost,
    })
}
