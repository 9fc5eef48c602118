//! One client's counts over a window, in a fixed slot of shared data.
//!
//! A behaviour table is an [`abuse::slots::Table`](crate::abuse::slots::Table) whose slots
//! hold a [`Record`] ([`RECORD_BYTES`]) instead of a rate limit's 16-byte entry: the
//! client's fingerprint, when its window started, two counters and a [`Distinct`] sketch.
//! Windows are fixed (tumbling): the first request of a client whose record is missing,
//! ended or another client's starts one, and it lasts `window_seconds`. Every change is a
//! read-modify-write with the CAS token ([`Table::update`]), so N workers count what one
//! would. A live record of another client in the slot is replaced (and reported as a
//! collision): its client's counts start again, so a collision can delay a finding, never
//! make one.

use crate::abuse::slots::{SharedStore, SlotReport, Table};
use crate::behaviour::sketch::Distinct;

/// Bytes of a record: fingerprint, start, two counters, the sketch.
pub(crate) const RECORD_BYTES: usize = 8 + 8 + 4 + 4 + Distinct::BYTES;

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// What a slot of a behaviour table holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Record {
    pub fingerprint: u64,
    /// When the window started, ns since the Unix epoch.
    pub start: u64,
    /// What the rule counts in its first counter (answers, failures).
    pub first: u32,
    /// …and in its second (answers that were 403/404).
    pub second: u32,
    /// The distinct values seen (object ids, hashed usernames).
    pub seen: Distinct,
}

impl Record {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(RECORD_BYTES);
        out.extend_from_slice(&self.fingerprint.to_le_bytes());
        out.extend_from_slice(&self.start.to_le_bytes());
        out.extend_from_slice(&self.first.to_le_bytes());
        out.extend_from_slice(&self.second.to_le_bytes());
        self.seen.encode(&mut out);
        out
    }

    /// Anything that is not exactly a record (the empty entry a slot is created with,
    /// another format) reads as none.
    fn decode(bytes: &[u8]) -> Option<Record> {
        if bytes.len() != RECORD_BYTES {
            return None;
        }
        let (fingerprint, rest) = bytes.split_at_checked(8)?;
        let (start, rest) = rest.split_at_checked(8)?;
        let (first, rest) = rest.split_at_checked(4)?;
        let (second, seen) = rest.split_at_checked(4)?;
        Some(Record {
            fingerprint: u64::from_le_bytes(fingerprint.try_into().ok()?),
            start: u64::from_le_bytes(start.try_into().ok()?),
            first: u32::from_le_bytes(first.try_into().ok()?),
            second: u32::from_le_bytes(second.try_into().ok()?),
            seen: Distinct::decode(seen)?,
        })
    }
}

/// A table of windows.
#[derive(Debug)]
pub(crate) struct Windows {
    pub table: Table,
    pub window_seconds: u32,
}

/// A client's record after a change, and what happened in its slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counted {
    pub record: Record,
    pub report: SlotReport,
    /// The same client's previous window, when this change started a new one after it
    /// ended: what a rule learns its normal from.
    pub ended: Option<Record>,
}

impl Windows {
    pub(crate) fn new(prefix: String, slots: u32, window_seconds: u32) -> Windows {
        Windows {
            table: Table::new(prefix, slots),
            window_seconds,
        }
    }

    fn window(&self) -> u64 {
        u64::from(self.window_seconds).saturating_mul(NANOS_PER_SECOND)
    }

    /// The client's record as it stands at `now`: `None` when the slot holds none of
    /// theirs or their window has ended.
    fn open(&self, bytes: Option<&[u8]>, fingerprint: u64, now: u64) -> Option<Record> {
        let record = Record::decode(bytes?)?;
        let open = now < record.start.saturating_add(self.window()) && now >= record.start;
        (record.fingerprint == fingerprint && open).then_some(record)
    }

    /// The client's open record, unchanged.
    pub(crate) fn read<S: SharedStore>(
        &self,
        store: &S,
        fingerprint: u64,
        now: u64,
    ) -> Option<Record> {
        let bytes = self.table.read_raw(store, fingerprint);
        self.open(bytes.as_deref(), fingerprint, now)
    }

    /// Applies `change` to the client's open record, or to a fresh one starting `now`.
    pub(crate) fn count<S: SharedStore>(
        &self,
        store: &S,
        fingerprint: u64,
        now: u64,
        change: impl Fn(&mut Record),
    ) -> Counted {
        let ((record, collision, ended), mut report) =
            self.table.update(store, fingerprint, |bytes| {
                let mut collision = false;
                let mut ended = None;
                let mut record = self.open(bytes, fingerprint, now).unwrap_or_else(|| {
                    let previous = bytes.and_then(Record::decode);
                    collision = previous.is_some_and(|p| {
                        p.fingerprint != fingerprint && now < p.start.saturating_add(self.window())
                    });
                    ended = previous.filter(|p| p.fingerprint == fingerprint && p.start > 0);
                    Record {
                        fingerprint,
                        start: now,
                        ..Record::default()
                    }
                });
                change(&mut record);
                let value = record.encode();
                ((record, collision, ended), Some(value))
            });
        report.collision = collision;
        Counted {
            record,
            report,
            ended,
        }
    }

    /// Applies `change` to the client's open record only: what a response adds to a
    /// window its request opened (a response never starts one). `None` when there is
    /// none.
    pub(crate) fn amend<S: SharedStore>(
        &self,
        store: &S,
        fingerprint: u64,
        now: u64,
        change: impl Fn(&mut Record),
    ) -> Option<Counted> {
        let (record, report) = self.table.update(store, fingerprint, |bytes| {
            match self.open(bytes, fingerprint, now) {
                Some(mut record) => {
                    change(&mut record);
                    let value = record.encode();
                    (Some(record), Some(value))
                }
                None => (None, None),
            }
        });
        Some(Counted {
            record: record?,
            report,
            ended: None,
        })
    }

    /// Seconds until the window that `record` is in ends (at least 1): `Retry-After`.
    pub(crate) fn seconds_left(&self, record: &Record, now: u64) -> u64 {
        let end = record.start.saturating_add(self.window());
        end.saturating_sub(now).div_ceil(NANOS_PER_SECOND).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abuse::slots::MemoryStore;

    const SECOND: u64 = NANOS_PER_SECOND;
    const T0: u64 = 1_700_000_000 * SECOND;

    fn windows() -> Windows {
        Windows::new("apiguard.b.test".into(), 8, 60)
    }

    #[test]
    fn counts_add_up_within_the_window_and_start_again_after_it() {
        let store = MemoryStore::default();
        let w = windows();
        w.table.create(&store);
        for i in 0..5 {
            w.count(&store, 1, T0 + i * SECOND, |r| r.first += 1);
        }
        assert_eq!(
            w.read(&store, 1, T0 + 59 * SECOND).map(|r| r.first),
            Some(5)
        );
        assert_eq!(w.read(&store, 1, T0 + 60 * SECOND), None, "ended");
        let next = w.count(&store, 1, T0 + 61 * SECOND, |r| r.first += 1);
        assert_eq!(
            (next.record.first, next.record.start),
            (1, T0 + 61 * SECOND)
        );
        assert_eq!(next.ended.map(|r| r.first), Some(5), "the window it closed");
        assert_eq!(w.seconds_left(&next.record, T0 + 61 * SECOND), 60);
    }

    #[test]
    fn a_response_amends_an_open_window_only() {
        let store = MemoryStore::default();
        let w = windows();
        assert_eq!(w.amend(&store, 1, T0, |r| r.second += 1), None);
        w.count(&store, 1, T0, |_| {});
        let amended = w.amend(&store, 1, T0 + SECOND, |r| r.second += 1);
        assert_eq!(amended.map(|c| c.record.second), Some(1));
        assert_eq!(
            w.amend(&store, 1, T0 + 61 * SECOND, |r| r.second += 1),
            None
        );
    }

    #[test]
    fn another_clients_live_record_is_replaced_and_reported() {
        let store = MemoryStore::default();
        let w = windows();
        // 1 and 9 share slot 1 of 8.
        w.count(&store, 1, T0, |r| r.first = 7);
        let theirs = w.count(&store, 9, T0, |r| r.first += 1);
        assert!(theirs.report.collision);
        assert_eq!(
            theirs.record.first, 1,
            "nothing of the other client's counts"
        );
        assert_eq!(w.read(&store, 1, T0), None);
        let stale = w.count(&store, 1, T0 + 120 * SECOND, |_| {});
        assert!(!stale.report.collision, "an ended window is free");
    }

    /// Two workers over one store, each losing races: every count lands.
    #[test]
    fn lost_races_are_retried_so_counts_are_exact_across_workers() {
        let store = MemoryStore::default();
        let (a, b) = (windows(), windows());
        assert_eq!(a.table.create(&store), 0);
        for i in 0..100 {
            store.interfere.set(i % 3);
            let worker = if i % 2 == 0 { &a } else { &b };
            let counted = worker.count(&store, 5, T0, |r| r.first += 1);
            assert!(!counted.report.lost);
        }
        assert_eq!(a.read(&store, 5, T0).map(|r| r.first), Some(100));
        assert!(store.conflicts.get() > 0);
        store.interfere.set(100);
        assert!(a.count(&store, 5, T0, |r| r.first += 1).report.lost);
    }

    #[test]
    fn records_round_trip_and_anything_else_reads_as_none() {
        let record = Record {
            fingerprint: 3,
            start: T0,
            first: 4,
            second: 5,
            seen: Distinct([1, 2, 3, 4]),
        };
        assert_eq!(Record::decode(&record.encode()), Some(record));
        assert_eq!(Record::decode(&[0; 16]), None);
        assert_eq!(Record::decode(&[]), None);
    }
}
