//! What is normal for an operation, learnt while serving, and what is not (OWASP API4
//! and API1's bulk exfiltration): a spike of requests (`behaviour.volume`), of error
//! answers (`behaviour.errors`), or one response far larger than the operation's others
//! (`behaviour.response_size`).
//!
//! Each operation has one slot of shared data ([`Baselines::table`]), so every worker
//! feeds one baseline: the requests and answers of the current bucket (`bucket_seconds`
//! long, a "minute" the tests can shorten), and exponentially weighted means and
//! variances ([`Ewma`], Finch 2009) of the requests per bucket and the error share per
//! bucket, folded in as a bucket closes, and of the response body size, folded in per
//! response. Buckets are counted by the clock the exchange is given
//! ([`crate::exchange::Input::now`]): the engine reads no clock of its own. Every change is
//! a read-modify-write with the CAS token ([`Table::update`]), as the behaviour windows
//! are, so N workers count what one would.
//!
//! A value is a spike when it is more than `sigma` standard deviations above the mean,
//! once `warmup_buckets` buckets have closed and the count it is made of reaches
//! `min_count`. The deviation has a floor, so that a perfectly steady operation does not
//! make every small wobble a spike: the Poisson deviation `√mean` for request counts, the
//! binomial one `√(p(1−p)/n)` for an error share over n answers, and 5 % of the mean for
//! sizes. Every sample is folded in, spikes included: a lasting change becomes the new
//! normal after about `1/smoothing` buckets (or responses), while a burst stays one.
//!
//! With `client_share`, each identity's requests to each operation are also counted over
//! a window of one bucket (a [`Windows`] table, `slots` of them), and an identity that
//! alone makes more than that share of the operation's normal requests per bucket is found
//! (`behaviour.client_share`): one client turning into most of an operation's traffic.

use serde::Deserialize;

use crate::abuse::slots::{SharedStore, SlotReport, Table};
use crate::behaviour::window::Windows;
use crate::behaviour::{default_slots, Finding, Reaction};
use crate::events::Evidence;
use crate::verdict::RuleId;

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// Empty buckets folded in at most when a quiet operation is called again: past this the
/// means have decayed to nothing anyway (0.9^64 ≈ 0.1 %).
const MAX_GAP: u64 = 64;

/// `behaviour.baselines` in the policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BaselineConfig {
    /// The length of a bucket (1-3600; 60: a minute).
    #[serde(default = "default_bucket")]
    pub bucket_seconds: u32,
    /// Closed buckets before anything is found (1-10000).
    #[serde(default = "default_warmup")]
    pub warmup_buckets: u32,
    /// The weight of the newest bucket (or response) in the means, (0, 1].
    #[serde(default = "default_smoothing")]
    pub smoothing: f64,
    /// How many standard deviations above the mean is a spike (k > 0).
    #[serde(default = "default_sigma")]
    pub sigma: f64,
    /// The fewest requests (answers, responses seen) a finding is made of.
    #[serde(default = "default_min_count")]
    pub min_count: u32,
    /// For `behaviour.volume`: `log` (default) or `block` (a circuit breaker: the
    /// operation's requests past the spike's threshold are refused until the bucket
    /// ends). Errors and sizes are found once the upstream answered: only recorded.
    #[serde(default)]
    pub action: Reaction,
    /// Which baselines are kept (default: all three).
    #[serde(default = "every_measure")]
    pub measures: Vec<Measure>,
    /// Find an identity making more than this share (0, 1] of its operation's normal
    /// requests per bucket by itself (unset: not counted; needs the `volume` baseline).
    pub client_share: Option<f64>,
    /// The slots of the identities' counts, with `client_share`.
    #[serde(default = "default_slots")]
    pub slots: u32,
}

/// A baseline an operation keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Measure {
    /// Requests per bucket (`behaviour.volume`).
    Volume,
    /// The share of 4xx and 5xx answers per bucket (`behaviour.errors`).
    Errors,
    /// Response body bytes (`behaviour.response_size`).
    ResponseSize,
}

fn default_bucket() -> u32 {
    60
}

fn default_warmup() -> u32 {
    10
}

fn default_smoothing() -> f64 {
    0.1
}

fn default_sigma() -> f64 {
    4.0
}

fn default_min_count() -> u32 {
    20
}

fn every_measure() -> Vec<Measure> {
    vec![Measure::Volume, Measure::Errors, Measure::ResponseSize]
}

/// An exponentially weighted mean and variance (Finch, "Incremental calculation of
/// weighted mean and variance", 2009): constant memory, no history kept.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Ewma {
    pub mean: f64,
    pub variance: f64,
}

impl Ewma {
    pub(crate) const BYTES: usize = 16;

    /// Folds `x` in with weight `alpha`; the first sample (`first`) is the mean.
    pub(crate) fn fold(&mut self, x: f64, alpha: f64, first: bool) {
        if first {
            *self = Ewma {
                mean: x,
                variance: 0.0,
            };
            return;
        }
        let diff = x - self.mean;
        let increment = alpha * diff;
        self.mean += increment;
        self.variance = (1.0 - alpha) * (self.variance + diff * increment);
    }

    pub(crate) fn deviation(&self) -> f64 {
        self.variance.max(0.0).sqrt()
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.mean.to_le_bytes());
        out.extend_from_slice(&self.variance.to_le_bytes());
    }

    /// `None` for anything but 16 bytes of two finite numbers.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Ewma> {
        let (mean, variance) = bytes.split_at_checked(8)?;
        let ewma = Ewma {
            mean: f64::from_le_bytes(mean.try_into().ok()?),
            variance: f64::from_le_bytes(variance.try_into().ok()?),
        };
        (ewma.mean.is_finite() && ewma.variance.is_finite()).then_some(ewma)
    }
}

/// Bytes of an operation's slot: the bucket, its three counters, the closed buckets and
/// the responses folded, the three means.
pub(crate) const RECORD_BYTES: usize = 8 + 4 * 3 + 4 + 4 + 3 * Ewma::BYTES;

/// What an operation's slot holds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Record {
    /// The current bucket's number (`now / bucket`); 0 in a slot never written.
    bucket: u64,
    requests: u32,
    answers: u32,
    errors: u32,
    /// Buckets folded into `volume` (and `errors`, when they had answers): the warm-up.
    closed: u32,
    /// Response sizes folded into `size`.
    sized: u32,
    volume: Ewma,
    errors_share: Ewma,
    size: Ewma,
}

impl Record {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(RECORD_BYTES);
        out.extend_from_slice(&self.bucket.to_le_bytes());
        for n in [
            self.requests,
            self.answers,
            self.errors,
            self.closed,
            self.sized,
        ] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        self.volume.encode(&mut out);
        self.errors_share.encode(&mut out);
        self.size.encode(&mut out);
        out
    }

    /// Anything that is not exactly a record (the empty entry a slot is created with)
    /// reads as none: a fresh baseline.
    fn decode(bytes: &[u8]) -> Option<Record> {
        if bytes.len() != RECORD_BYTES {
            return None;
        }
        let (bucket, mut rest) = bytes.split_at_checked(8)?;
        let mut counter = || {
            let (n, tail) = rest.split_at_checked(4)?;
            rest = tail;
            Some(u32::from_le_bytes(n.try_into().ok()?))
        };
        let (requests, answers, errors, closed, sized) =
            (counter()?, counter()?, counter()?, counter()?, counter()?);
        let (volume, rest) = rest.split_at_checked(Ewma::BYTES)?;
        let (errors_share, size) = rest.split_at_checked(Ewma::BYTES)?;
        Some(Record {
            bucket: u64::from_le_bytes(bucket.try_into().ok()?),
            requests,
            answers,
            errors,
            closed,
            sized,
            volume: Ewma::decode(volume)?,
            errors_share: Ewma::decode(errors_share)?,
            size: Ewma::decode(size)?,
        })
    }
}

/// The compiled `baselines` section: one slot per operation.
#[derive(Debug)]
pub(crate) struct Baselines {
    pub table: Table,
    bucket_seconds: u32,
    warmup: u32,
    alpha: f64,
    sigma: f64,
    min_count: u32,
    reaction: Reaction,
    measures: Vec<Measure>,
    /// With `client_share`: each identity's requests per operation over one bucket, and
    /// the share it may make.
    pub clients: Option<(Windows, f64)>,
}

impl Baselines {
    /// `operations`: how many the policy has, one slot each.
    pub(crate) fn new(config: &BaselineConfig, prefix: String, operations: usize) -> Baselines {
        let slots = u32::try_from(operations).unwrap_or(u32::MAX);
        Baselines {
            bucket_seconds: config.bucket_seconds,
            warmup: config.warmup_buckets,
            alpha: config.smoothing,
            sigma: config.sigma,
            min_count: config.min_count,
            reaction: config.action,
            measures: config.measures.clone(),
            clients: config.client_share.map(|share| {
                let windows = Windows::new(
                    format!("{prefix}.client"),
                    config.slots,
                    config.bucket_seconds,
                );
                (windows, share)
            }),
            table: Table::new(prefix, slots),
        }
    }

    /// Whether the baseline of `measure` is kept.
    pub(crate) fn keeps(&self, measure: Measure) -> bool {
        self.measures.contains(&measure)
    }

    fn bucket_of(&self, now: u64) -> u64 {
        now / u64::from(self.bucket_seconds).saturating_mul(NANOS_PER_SECOND)
    }

    /// The operation's record at `now`: the buckets that ended since it was written are
    /// folded into the means (the empty ones as zero requests), and the current one is
    /// empty. A clock behind the record's (another worker's) counts into the record's
    /// bucket.
    fn roll(&self, bytes: Option<&[u8]>, now: u64) -> Record {
        let bucket = self.bucket_of(now);
        let Some(mut record) = bytes.and_then(Record::decode).filter(|r| r.bucket > 0) else {
            return Record {
                bucket,
                ..Record::default()
            };
        };
        if bucket <= record.bucket {
            return record;
        }
        let gap = (bucket - record.bucket - 1).min(MAX_GAP);
        let first = record.closed == 0;
        record
            .volume
            .fold(f64::from(record.requests), self.alpha, first);
        // A bucket without answers says nothing of the error share (but the first one
        // starts it, at 0).
        if record.answers > 0 || first {
            let share = f64::from(record.errors) / f64::from(record.answers.max(1));
            record.errors_share.fold(share, self.alpha, first);
        }
        for _ in 0..gap {
            record.volume.fold(0.0, self.alpha, false);
        }
        // `gap` is at most MAX_GAP.
        record.closed = (record.closed.saturating_add(1)).saturating_add(gap as u32);
        Record {
            bucket,
            requests: 0,
            answers: 0,
            errors: 0,
            ..record
        }
    }

    /// A read-modify-write of operation `operation`'s slot; `change` answers what the
    /// caller needs of it (on a lost race it runs again on the record read again).
    fn update<S: SharedStore, T>(
        &self,
        store: &S,
        operation: usize,
        now: u64,
        change: impl Fn(&mut Record) -> T,
    ) -> (T, SlotReport) {
        self.table.update(store, operation as u64, |bytes| {
            let mut record = self.roll(bytes, now);
            let result = change(&mut record);
            let value = record.encode();
            (result, Some(value))
        })
    }

    fn warm(&self, record: &Record) -> bool {
        record.closed >= self.warmup
    }

    /// Seconds until the current bucket ends (at least 1): `Retry-After` of a refusal.
    fn seconds_left(&self, now: u64) -> u64 {
        let bucket = u64::from(self.bucket_seconds).saturating_mul(NANOS_PER_SECOND);
        let end = (self.bucket_of(now) + 1).saturating_mul(bucket);
        end.saturating_sub(now).div_ceil(NANOS_PER_SECOND).max(1)
    }

    fn finding(&self, rule: RuleId, spike: Spike, reaction: Reaction, retry: u64) -> Finding {
        let evidence = Evidence {
            rule: rule.as_str().to_owned(),
            measure: spike.measure.to_owned(),
            count: spike.value.round() as u64,
            // Found when the count is above it, as for the other rules.
            threshold: spike.threshold.floor() as u64,
            window_seconds: self.bucket_seconds,
            answers: None,
            denied: None,
            mean: Some(spike.mean.round() as u64),
            sigma: Some(spike.sigma.round() as u64),
        };
        Finding::new(rule, reaction, evidence, retry)
    }

    /// A request to `operation` at its head: counted in the bucket; the finding when the
    /// bucket's requests are a spike.
    pub(crate) fn request<S: SharedStore>(
        &self,
        store: &S,
        operation: usize,
        now: u64,
    ) -> (Option<Finding>, SlotReport) {
        let (record, report) = self.update(store, operation, now, |r| {
            r.requests = r.requests.saturating_add(1);
            *r
        });
        let count = f64::from(record.requests);
        let mean = record.volume.mean;
        let sigma = record.volume.deviation().max(mean.sqrt()).max(1.0);
        let spike = (self.warm(&record) && record.requests >= self.min_count)
            .then(|| Spike::above("requests", count, mean, sigma, self.sigma))
            .flatten();
        let finding = spike.map(|spike| {
            let retry = self.seconds_left(now);
            self.finding(RuleId::BehaviourVolume, spike, self.reaction, retry)
        });
        (finding, report)
    }

    /// A request of the identity with `fingerprint` (at this operation, as
    /// [`crate::behaviour::bola::Bola::fingerprint`] makes it) to `operation`: counted in
    /// its window; the finding when it alone is past `client_share` of the operation's
    /// normal requests per bucket.
    pub(crate) fn client<S: SharedStore>(
        &self,
        store: &S,
        operation: usize,
        fingerprint: u64,
        now: u64,
    ) -> Option<(Option<Finding>, SlotReport)> {
        let (windows, share) = self.clients.as_ref()?;
        let counted = windows.count(store, fingerprint, now, |r| {
            r.first = r.first.saturating_add(1);
        });
        let bytes = self.table.read_raw(store, operation as u64);
        let normal = bytes
            .as_deref()
            .and_then(Record::decode)
            .unwrap_or_default();
        let count = counted.record.first;
        let mean = normal.volume.mean;
        let limit = share * mean.max(1.0);
        let found = self.warm(&normal) && count >= self.min_count && f64::from(count) > limit;
        let finding = found.then(|| {
            let spike = Spike {
                measure: "requests_of_client",
                value: f64::from(count),
                threshold: limit,
                mean,
                sigma: normal.volume.deviation(),
            };
            let retry = windows.seconds_left(&counted.record, now);
            self.finding(RuleId::BehaviourClientShare, spike, self.reaction, retry)
        });
        Some((finding, counted.report))
    }

    /// The upstream's answer to a request to `operation`: 4xx and 5xx are errors; the
    /// finding when the bucket's error share is a spike.
    pub(crate) fn response<S: SharedStore>(
        &self,
        store: &S,
        operation: usize,
        status: u16,
        now: u64,
    ) -> (Option<Finding>, SlotReport) {
        let error = u32::from(status >= 400);
        let (record, report) = self.update(store, operation, now, |r| {
            r.answers = r.answers.saturating_add(1);
            r.errors = r.errors.saturating_add(error);
            *r
        });
        let n = f64::from(record.answers);
        let share = f64::from(record.errors) / n.max(1.0);
        let mean = record.errors_share.mean;
        let p = mean.clamp(0.01, 0.99);
        let sigma = (record.errors_share.deviation()).max((p * (1.0 - p) / n.max(1.0)).sqrt());
        let spike = (self.warm(&record) && record.answers >= self.min_count)
            .then(|| Spike::above("errors_permille", share, mean, sigma, self.sigma))
            .flatten()
            .map(|s| s.scaled(1000.0));
        let finding = spike.map(|s| self.finding(RuleId::BehaviourErrors, s, Reaction::Log, 0));
        (finding, report)
    }

    /// A response body of `bytes` from `operation`: the finding when it is an outlier
    /// among the operation's sizes; folded in either way.
    pub(crate) fn response_size<S: SharedStore>(
        &self,
        store: &S,
        operation: usize,
        bytes: u64,
        now: u64,
    ) -> (Option<Finding>, SlotReport) {
        let size = bytes as f64;
        let (spike, report) = self.update(store, operation, now, |r| {
            // Judged against the sizes before it, then folded in.
            let mean = r.size.mean;
            let sigma = r.size.deviation().max(mean / 20.0).max(1.0);
            let spike = (self.warm(r) && r.sized >= self.min_count)
                .then(|| Spike::above("response_bytes", size, mean, sigma, self.sigma))
                .flatten();
            r.size.fold(size, self.alpha, r.sized == 0);
            r.sized = r.sized.saturating_add(1);
            spike
        });
        let finding =
            spike.map(|s| self.finding(RuleId::BehaviourResponseSize, s, Reaction::Log, 0));
        (finding, report)
    }
}

/// A value above its mean by more than k deviations.
#[derive(Debug, Clone, Copy)]
struct Spike {
    measure: &'static str,
    value: f64,
    threshold: f64,
    mean: f64,
    sigma: f64,
}

impl Spike {
    fn above(measure: &'static str, value: f64, mean: f64, sigma: f64, k: f64) -> Option<Spike> {
        let threshold = mean + k * sigma;
        (value > threshold).then_some(Spike {
            measure,
            value,
            threshold,
            mean,
            sigma,
        })
    }

    /// The spike in other units (a share in permille).
    fn scaled(self, by: f64) -> Spike {
        Spike {
            value: self.value * by,
            threshold: self.threshold * by,
            mean: self.mean * by,
            sigma: self.sigma * by,
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abuse::slots::MemoryStore;
    use crate::testkit::{SECOND, T0};

    /// 10-second buckets (T0 starts one), a warm-up of 5, spikes at 4 sigma from 5 up.
    fn baselines(action: Reaction) -> Baselines {
        let config = BaselineConfig {
            bucket_seconds: 10,
            warmup_buckets: 5,
            smoothing: 0.1,
            sigma: 4.0,
            min_count: 5,
            action,
            measures: every_measure(),
            client_share: Some(0.5),
            slots: 8,
        };
        Baselines::new(&config, "apiguard.b.test.base".into(), 3)
    }

    /// `n` requests to operation 1 spread over bucket `b`, each answered `status`; the
    /// findings.
    fn bucket(b: &Baselines, store: &MemoryStore, at: u64, n: u32, errors: u32) -> Vec<Finding> {
        let start = T0 + at * 10 * SECOND;
        (0..n)
            .flat_map(|i| {
                let now = start + u64::from(i) * 1_000_000;
                // The errors spread over the bucket.
                let status = if (i * errors) % n < errors { 500 } else { 200 };
                let (volume, _) = b.request(store, 1, now);
                let (error, _) = b.response(store, 1, status, now);
                volume.into_iter().chain(error)
            })
            .collect()
    }

    #[test]
    fn the_ewma_of_a_steady_series_is_its_value_and_of_a_mixed_one_its_spread() {
        let mut e = Ewma::default();
        e.fold(5.0, 0.1, true);
        for _ in 0..50 {
            e.fold(5.0, 0.1, false);
        }
        assert_eq!((e.mean, e.deviation()), (5.0, 0.0));
        for i in 0..2000 {
            e.fold(if i % 2 == 0 { 0.0 } else { 10.0 }, 0.05, false);
        }
        assert!((e.mean - 5.0).abs() < 0.5, "{e:?}");
        assert!((e.deviation() - 5.0).abs() < 0.5, "{e:?}");
    }

    #[test]
    fn a_volume_spike_after_the_warm_up_is_found_at_mean_plus_k_sigma() {
        let (store, b) = (MemoryStore::default(), baselines(Reaction::Block));
        // A spike during the warm-up is learnt, not found.
        assert!(bucket(&b, &store, 0, 40, 0).is_empty());
        // …and forgotten: 0.9^80 of it is left.
        for at in 1..=80 {
            assert!(bucket(&b, &store, at, 10, 0).is_empty(), "bucket {at}");
        }
        // mean ≈ 10, deviation floored at √10 ≈ 3.2: the threshold is about 22.6.
        let start = T0 + 81 * 10 * SECOND;
        let first = (1..=40u64)
            .find_map(|i| b.request(&store, 1, start + i).0.map(|f| (i, f)))
            .expect("a spike");
        let (at, finding) = first;
        assert_eq!(at, 23, "{finding:?}");
        assert_eq!(finding.rule, RuleId::BehaviourVolume);
        assert_eq!(finding.reaction, Reaction::Block);
        let e = &finding.evidence;
        assert_eq!((e.measure.as_str(), e.count), ("requests", 23));
        assert_eq!((e.threshold, e.mean, e.sigma), (22, Some(10), Some(3)));
        assert_eq!(e.window_seconds, 10);
        assert_eq!(finding.retry_after, 10, "until the bucket ends");
        // Another operation has its own baseline.
        assert_eq!(b.request(&store, 2, start).0, None);
    }

    #[test]
    fn one_client_making_most_of_an_operations_normal_traffic_is_found() {
        let (store, b) = (MemoryStore::default(), baselines(Reaction::Block));
        // Before the warm-up, nothing: counts start, no normal yet.
        assert_eq!(b.client(&store, 1, 7, T0).and_then(|c| c.0), None);
        for at in 0..=6 {
            bucket(&b, &store, at, 40, 0);
        }
        let now = T0 + 70 * SECOND;
        // The normal is 40 per bucket: a client is found past 20 of them in its window.
        let found = (1..=30u64).find_map(|i| {
            b.client(&store, 1, 7, now + i)
                .and_then(|c| c.0.map(|f| (i, f)))
        });
        let (at, finding) = found.expect("the client is found");
        assert_eq!(at, 21);
        assert_eq!(finding.rule, RuleId::BehaviourClientShare);
        let e = &finding.evidence;
        assert_eq!((e.count, e.threshold, e.mean), (21, 20, Some(40)));
        assert_eq!(finding.retry_after, 10);
        assert_eq!(
            b.client(&store, 1, 8, now).and_then(|c| c.0),
            None,
            "another client"
        );
    }

    #[test]
    fn an_error_spike_is_found_and_a_steady_error_share_never() {
        let (store, b) = (MemoryStore::default(), baselines(Reaction::Log));
        for at in 0..=20 {
            assert!(bucket(&b, &store, at, 40, 4).is_empty(), "bucket {at}");
        }
        let found = bucket(&b, &store, 21, 40, 30);
        let finding = found.first().expect("an error spike");
        assert_eq!(finding.rule, RuleId::BehaviourErrors);
        assert_eq!(finding.reaction, Reaction::Log, "recorded only");
        let e = &finding.evidence;
        assert_eq!((e.measure.as_str(), e.mean), ("errors_permille", Some(100)));
        assert!(e.count > e.threshold, "{e:?}");
        assert!(found.iter().all(|f| f.rule == RuleId::BehaviourErrors));
    }

    #[test]
    fn a_response_far_larger_than_the_operations_is_an_outlier() {
        let (store, b) = (MemoryStore::default(), baselines(Reaction::Log));
        for at in 0..=6u64 {
            for i in 0..10u64 {
                let now = T0 + at * 10 * SECOND + i;
                let (found, _) = b.response_size(&store, 1, 1000 + (i % 5) * 20, now);
                assert_eq!(found, None, "{at}/{i}");
            }
        }
        let now = T0 + 70 * SECOND;
        assert_eq!(
            b.response_size(&store, 1, 1200, now).0,
            None,
            "within the spread"
        );
        let finding = b
            .response_size(&store, 1, 250_000, now)
            .0
            .expect("an outlier");
        assert_eq!(finding.rule, RuleId::BehaviourResponseSize);
        let e = &finding.evidence;
        assert_eq!((e.measure.as_str(), e.count), ("response_bytes", 250_000));
        assert!(e.mean.is_some_and(|m| (1000..1100).contains(&m)), "{e:?}");
        assert!(e.threshold < 2000, "{e:?}");
    }

    #[test]
    fn quiet_buckets_fold_in_as_zero_and_time_going_back_counts_in_the_current_one() {
        let (store, b) = (MemoryStore::default(), baselines(Reaction::Log));
        for at in 0..10 {
            bucket(&b, &store, at, 20, 0);
        }
        // 20 buckets later: the 20 empty ones decayed the mean to 20 · 0.9^20 ≈ 2.4.
        b.request(&store, 1, T0 + 30 * 10 * SECOND);
        let bytes = b.table.read_raw(&store, 1).unwrap_or_default();
        let record = Record::decode(&bytes).expect("a record");
        assert!((2.0..3.5).contains(&record.volume.mean), "{record:?}");
        assert_eq!((record.closed, record.requests), (30, 1));
        b.request(&store, 1, T0);
        let bytes = b.table.read_raw(&store, 1).unwrap_or_default();
        assert_eq!(Record::decode(&bytes).map(|r| r.requests), Some(2));
    }

    /// Two workers over one store, losing races: every request counts in one baseline.
    #[test]
    fn workers_feed_one_baseline() {
        let store = MemoryStore::default();
        let (a, b) = (baselines(Reaction::Log), baselines(Reaction::Log));
        assert_eq!(a.table.create(&store), 0);
        for i in 0..100u64 {
            store.interfere.set((i % 3) as usize);
            let worker = if i % 2 == 0 { &a } else { &b };
            assert!(!worker.request(&store, 0, T0 + i).1.lost);
        }
        assert!(store.conflicts.get() > 0);
        let bytes = a.table.read_raw(&store, 0).unwrap_or_default();
        assert_eq!(Record::decode(&bytes).map(|r| r.requests), Some(100));
    }

    #[test]
    fn records_round_trip_and_anything_else_is_a_fresh_baseline() {
        let record = Record {
            bucket: 7,
            requests: 1,
            answers: 2,
            errors: 3,
            closed: 4,
            sized: 5,
            volume: Ewma {
                mean: 1.5,
                variance: 2.5,
            },
            errors_share: Ewma::default(),
            size: Ewma {
                mean: 100.0,
                variance: 9.0,
            },
        };
        assert_eq!(record.encode().len(), RECORD_BYTES);
        assert_eq!(Record::decode(&record.encode()), Some(record));
        assert_eq!(Record::decode(&[0; 16]), None);
        let mut nan = record.encode();
        nan.splice(28..36, f64::NAN.to_le_bytes());
        assert_eq!(Record::decode(&nan), None);
    }
}
