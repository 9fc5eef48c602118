//! Per-client state shared by every worker of an Envoy process, in a fixed number of slots.
//!
//! Envoy runs one Wasm VM per worker thread; the only memory they share is proxy-wasm
//! *shared data*, a process-wide key/value map with compare-and-swap but with no delete
//! and no expiry. So per-client state cannot be a key per client (the map would grow with
//! every address that ever connected). Instead each table (one per rate limit, one for
//! quarantine) is a fixed array of slots, keys `apiguard.<table>.<i>`: a client's key is
//! hashed to a fingerprint ([`SlotSecret::fingerprint`]), the fingerprint picks the slot,
//! and the slot holds that fingerprint and one instant. An entry whose instant has passed is *stale* (a full
//! bucket, an ended quarantine: there is nothing left to remember) and the next client
//! hashed there reuses it. Memory is therefore bounded by `slots ×` [`SLOT_BYTES`] per
//! table (plus Envoy's per-key overhead), whatever the number of clients.
//!
//! The engine reaches shared data only through [`SharedStore`], which the host implements
//! over `proxy_wasm::hostcalls`; tests use an in-memory store that simulates other workers
//! writing between a read and a write ([`MemoryStore`]).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;

use governor::nanos::Nanos;
use governor::state::{NotKeyed, StateStore};
use siphasher::sip::SipHasher13;

/// Bytes of one slot's value: the client fingerprint and an instant, both u64 LE.
pub(crate) const SLOT_BYTES: usize = 16;

/// How many times a write that lost a compare-and-swap race is retried.
const MAX_ATTEMPTS: usize = 8;

/// Why the store could not be read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// Another worker wrote the key since it was read; read again.
    CasMismatch,
    /// Anything else the host refused.
    Unavailable,
}

/// Process-wide key/value data with compare-and-swap, as proxy-wasm shared data offers.
pub trait SharedStore {
    /// The value and its CAS token; `(None, None)` when the key was never written.
    fn get(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), StoreError>;
    /// Writes `value` if the key still has the token `cas` (`None`: unconditionally).
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError>;
}

/// The secret key of the slot hash: one per Envoy process, shared by every worker.
///
/// A client's slot is its fingerprint modulo the table size. Were the hash unkeyed (it
/// was FNV-1a), anyone could compute which slot an address, token subject or header value
/// lands in, and pick keys that land on a victim's: sharing the victim's rate-limit bucket
/// gets them refused, and a quarantine started in their slot ends theirs. Keyed with a
/// secret the attacker never sees, the slot of a key cannot be computed, only found by
/// trial against a live Envoy, and the secret changes with every process.
///
/// The hash is SipHash-1-3, std's `HashMap` hash: a keyed function made for short inputs
/// chosen by an attacker (hash flooding), fast on them, and with a 128-bit key. std's own
/// keyed hasher (`RandomState`) cannot be used: its key can be neither set nor read, and
/// every worker's VM must compute the same fingerprint for a client. So the key is drawn
/// once per process and kept in shared data, beside the slots ([`SlotSecret::shared`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SlotSecret([u8; SlotSecret::BYTES]);

impl SlotSecret {
    /// Its length: a SipHash-1-3 key.
    pub const BYTES: usize = 16;
    /// Its shared-data key.
    pub const KEY: &'static str = "apiguard.slot_secret";

    /// A secret of these bytes (random ones: the host draws them once per process).
    pub const fn new(bytes: [u8; SlotSecret::BYTES]) -> SlotSecret {
        SlotSecret(bytes)
    }

    /// The fingerprint of a client key.
    pub fn fingerprint(&self, key: &[u8]) -> u64 {
        SipHasher13::new_with_key(&self.0).hash(key)
    }

    /// The process's secret from shared data, stored first if there is none (`fresh`, the
    /// caller's random bytes).
    ///
    /// Shared data has compare-and-swap but no "insert if absent": a first write is
    /// unconditional. So every write is followed by a read, and the secret used is the one
    /// read: a value another VM wrote meanwhile wins over ours. A write that finds a value
    /// that is not a secret (another format) replaces it with that value's CAS token. Two
    /// VMs that both find no secret and write at once could each read their own back if
    /// their reads fell between the writes; Envoy rules that out in practice, as it runs
    /// a plugin's first configuration on the main thread (its configuration canary) before
    /// any worker's VM exists, so workers only ever read the secret that one stored.
    pub fn shared<S: SharedStore>(
        store: &S,
        fresh: [u8; SlotSecret::BYTES],
    ) -> Result<SlotSecret, StoreError> {
        for _ in 0..MAX_ATTEMPTS {
            let (value, cas) = store.get(SlotSecret::KEY)?;
            if let Some(secret) = value.as_deref().and_then(SlotSecret::decode) {
                return Ok(secret);
            }
            match store.set(SlotSecret::KEY, &fresh, cas) {
                Ok(()) | Err(StoreError::CasMismatch) => {}
                Err(error) => return Err(error),
            }
        }
        Err(StoreError::CasMismatch)
    }

    fn decode(bytes: &[u8]) -> Option<SlotSecret> {
        bytes.try_into().ok().map(SlotSecret)
    }
}

/// Never printed: whoever knows it can aim at a victim's slot.
impl fmt::Debug for SlotSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SlotSecret(..)")
    }
}

/// One fixed-size table of slots in shared data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Table {
    /// The shared-data key prefix, e.g. `apiguard.rl.petstore.per-ip`.
    prefix: String,
    slots: u32,
}

/// What a slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Entry {
    pub fingerprint: u64,
    /// Nanoseconds since the Unix epoch: a rate limit's theoretical arrival time, or the
    /// end of a quarantine.
    pub until: u64,
}

impl Entry {
    fn encode(self) -> [u8; SLOT_BYTES] {
        let mut bytes = [0; SLOT_BYTES];
        let (fp, until) = bytes.split_at_mut(8);
        fp.copy_from_slice(&self.fingerprint.to_le_bytes());
        until.copy_from_slice(&self.until.to_le_bytes());
        bytes
    }

    /// Anything that is not exactly one entry (another plugin's key, a newer format)
    /// reads as empty, and is overwritten.
    fn decode(bytes: &[u8]) -> Option<Entry> {
        let (fp, until) = bytes.split_at_checked(8)?;
        Some(Entry {
            fingerprint: u64::from_le_bytes(fp.try_into().ok()?),
            until: u64::from_le_bytes(until.try_into().ok()?),
        })
    }

    /// Whether the entry still means something at `now`.
    pub(crate) fn live(self, now: u64) -> bool {
        self.until > now
    }
}

impl Table {
    pub(crate) fn new(prefix: String, slots: u32) -> Table {
        Table {
            prefix,
            slots: slots.max(1),
        }
    }

    /// The shared-data key of the slot a fingerprint hashes to.
    pub(crate) fn key_for(&self, fingerprint: u64) -> String {
        self.slot_key(fingerprint % u64::from(self.slots))
    }

    fn slot_key(&self, index: u64) -> String {
        format!("{}.{index}", self.prefix)
    }

    /// Every slot key, for the host to create them all at configure time: memory is then
    /// committed up front, and every later write is a compare-and-swap (shared data has no
    /// "insert if absent", so a first write could otherwise overwrite a concurrent one).
    pub(crate) fn all_keys(&self) -> impl Iterator<Item = String> + '_ {
        (0..u64::from(self.slots)).map(|i| self.slot_key(i))
    }

    /// Creates the slots that do not exist yet. Existing ones (another worker's, or the
    /// previous configuration's) are kept. Returns how many the store refused.
    pub(crate) fn create<S: SharedStore>(&self, store: &S) -> usize {
        let empty = Entry::default().encode();
        self.all_keys()
            .filter(|key| {
                !matches!(store.get(key), Ok((Some(_), _))) && store.set(key, &empty, None).is_err()
            })
            .count()
    }

    /// Reads the slot of `fingerprint`.
    pub(crate) fn read<S: SharedStore>(&self, store: &S, fingerprint: u64) -> Option<Entry> {
        match store.get(&self.key_for(fingerprint)) {
            Ok((Some(bytes), _)) => Entry::decode(&bytes),
            _ => None,
        }
    }

    /// The raw value of the slot of `fingerprint`, for tables whose slots hold more than an
    /// [`Entry`] (the `behaviour` section's windows); `None` when unreadable.
    pub(crate) fn read_raw<S: SharedStore>(&self, store: &S, fingerprint: u64) -> Option<Vec<u8>> {
        store.get(&self.key_for(fingerprint)).ok()?.0
    }

    /// A read-modify-write of the slot of `fingerprint`, as every worker may do at once:
    /// `change` gets the value read (`None`: none, or unreadable) and answers its result
    /// and the value to store (`None`: nothing to store); the write carries the read's CAS
    /// token, and a lost race reads and changes again, [`MAX_ATTEMPTS`] times at most. The
    /// result is that of the last attempt; `lost` when its value was never stored.
    pub(crate) fn update<S: SharedStore, T>(
        &self,
        store: &S,
        fingerprint: u64,
        mut change: impl FnMut(Option<&[u8]>) -> (T, Option<Vec<u8>>),
    ) -> (T, SlotReport) {
        let key = self.key_for(fingerprint);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (bytes, cas) = store.get(&key).unwrap_or((None, None));
            let (result, value) = change(bytes.as_deref());
            let Some(value) = value else {
                return (result, SlotReport::default());
            };
            match store.set(&key, &value, cas) {
                Ok(()) => return (result, SlotReport::default()),
                Err(StoreError::CasMismatch) if attempts < MAX_ATTEMPTS => {}
                Err(_) => {
                    let lost = SlotReport {
                        lost: true,
                        ..SlotReport::default()
                    };
                    return (result, lost);
                }
            }
        }
    }

    /// Writes `entry` into its slot unconditionally (the last writer wins).
    pub(crate) fn write<S: SharedStore>(&self, store: &S, entry: Entry) -> Result<(), StoreError> {
        store.set(&self.key_for(entry.fingerprint), &entry.encode(), None)
    }
}

/// What happened in a slot during one decision, for the host to count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlotReport {
    /// The slot held a live entry of another client, whose bucket this client now shares.
    pub collision: bool,
    /// The update could not be stored (host error, or [`MAX_ATTEMPTS`] lost races): the
    /// decision stands, but this request was not counted.
    pub lost: bool,
}

/// governor's [`StateStore`] over one slot, for one decision at one instant.
///
/// governor keeps each theoretical arrival time (TAT) relative to the instant its
/// `RateLimiter` was created, and each worker VM would create its own at a different
/// instant. So a limiter is made per decision, anchored at `now` (the host's clock), and
/// this store translates: slots hold absolute TATs (ns since the epoch), governor sees
/// them relative to `now`. A TAT already past reads as "no state", which GCRA treats the
/// same way.
pub(crate) struct SlotState<'s, S> {
    store: &'s S,
    key: String,
    fingerprint: u64,
    now: u64,
    report: Cell<SlotReport>,
}

impl<'s, S: SharedStore> SlotState<'s, S> {
    pub(crate) fn new(store: &'s S, table: &Table, fingerprint: u64, now: u64) -> Self {
        SlotState {
            store,
            key: table.key_for(fingerprint),
            fingerprint,
            now,
            report: Cell::new(SlotReport::default()),
        }
    }

    pub(crate) fn report(&self) -> SlotReport {
        self.report.get()
    }

    fn note(&self, change: impl FnOnce(&mut SlotReport)) {
        let mut report = self.report.get();
        change(&mut report);
        self.report.set(report);
    }
}

impl<S: SharedStore> StateStore for SlotState<'_, S> {
    type Key = NotKeyed;

    /// Read with the CAS token, decide, write with it; on a lost race read again.
    fn measure_and_replace<T, F, E>(&self, _key: &NotKeyed, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (bytes, cas) = self.store.get(&self.key).unwrap_or((None, None));
            let previous = bytes.as_deref().and_then(Entry::decode);
            let tat = previous.filter(|e| e.live(self.now)).map(|e| {
                if e.fingerprint != self.fingerprint {
                    self.note(|r| r.collision = true);
                }
                Nanos::from(e.until.saturating_sub(self.now))
            });
            let (outcome, next) = f(tat)?;
            let entry = Entry {
                fingerprint: self.fingerprint,
                until: self.now.saturating_add(next.as_u64()),
            };
            match self.store.set(&self.key, &entry.encode(), cas) {
                Ok(()) => return Ok(outcome),
                Err(StoreError::CasMismatch) if attempts < MAX_ATTEMPTS => {
                    self.note(|r| r.collision = false);
                }
                Err(_) => {
                    self.note(|r| r.lost = true);
                    return Ok(outcome);
                }
            }
        }
    }
}

/// Shared data in memory, with CAS tokens as Envoy hands them out: the store of unit
/// tests, the policies' case files and the bench, which run the engine without Envoy. `interfere` makes
/// the next `n` writes find that "another worker" wrote first.
#[derive(Default)]
pub struct MemoryStore {
    /// Every key, with its value and CAS token.
    pub map: RefCell<HashMap<String, (Vec<u8>, u32)>>,
    /// How many of the next writes are to find their CAS token stale.
    pub interfere: Cell<usize>,
    /// How many writes found their CAS token stale.
    pub conflicts: Cell<usize>,
}

impl SharedStore for MemoryStore {
    fn get(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), StoreError> {
        Ok(match self.map.borrow().get(key) {
            Some((value, cas)) => (Some(value.clone()), Some(*cas)),
            None => (None, None),
        })
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        let mut map = self.map.borrow_mut();
        if self.interfere.get() > 0 {
            self.interfere.set(self.interfere.get() - 1);
            if let Some((_, token)) = map.get_mut(key) {
                *token += 1;
            }
        }
        let current = map.get(key).map(|(_, token)| *token);
        if cas.is_some() && cas != current {
            self.conflicts.set(self.conflicts.get() + 1);
            return Err(StoreError::CasMismatch);
        }
        map.insert(key.to_owned(), (value.to_vec(), current.unwrap_or(0) + 1));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::SECRET;

    fn client(i: usize) -> Vec<u8> {
        format!("10.0.{}.{}", i / 256, i % 256).into_bytes()
    }

    #[test]
    fn keyed_slots_are_stable_for_one_secret_and_spread() {
        let again = SlotSecret::new([7; SlotSecret::BYTES]);
        assert_eq!(
            SECRET.fingerprint(b"10.0.0.1"),
            again.fingerprint(b"10.0.0.1")
        );
        let table = Table::new("t".into(), 64);
        let used: std::collections::HashSet<_> = (0..1000)
            .map(|i| table.key_for(SECRET.fingerprint(&client(i))))
            .collect();
        assert_eq!(used.len(), 64, "1000 clients reach every one of 64 slots");
    }

    /// Regression: the slot hash was unkeyed FNV-1a, so an attacker could compute which
    /// keys share a victim's slot. Under another secret, the keys that shared a slot
    /// under the first are spread again like any others.
    #[test]
    fn slot_hash_unkeyed_lets_clients_aim_at_a_victims_slot() {
        let other = SlotSecret::new(*b"another secret!!");
        assert_ne!(
            SECRET.fingerprint(b"10.0.0.1"),
            other.fingerprint(b"10.0.0.1")
        );
        let table = Table::new("t".into(), 64);
        let victim = client(0);
        let slot = |secret: &SlotSecret, key: &[u8]| table.key_for(secret.fingerprint(key));
        // The keys an attacker would have found to share the victim's slot, with one
        // secret: 1 in 64 of 6400.
        let aimed: Vec<Vec<u8>> = (1..6400)
            .map(client)
            .filter(|key| slot(&SECRET, key) == slot(&SECRET, &victim))
            .collect();
        assert!(aimed.len() > 60, "{}", aimed.len());
        let still = (aimed.iter())
            .filter(|key| slot(&other, key) == slot(&other, &victim))
            .count();
        assert!(
            still < 10,
            "{still} of {} still hit the victim",
            aimed.len()
        );
    }

    #[test]
    fn the_secret_is_stored_once_and_every_vm_reads_that_one() {
        let store = MemoryStore::default();
        let first = SlotSecret::shared(&store, [1; 16]).unwrap();
        assert_eq!(first, SlotSecret::new([1; 16]));
        let second = SlotSecret::shared(&store, [2; 16]).unwrap();
        assert_eq!(second, first, "a later VM reads the stored secret");
        assert_eq!(format!("{first:?}"), "SlotSecret(..)");
    }

    /// A store where "another VM" stores its secret just before our first write.
    struct Racing {
        store: MemoryStore,
        theirs: Cell<Option<[u8; SlotSecret::BYTES]>>,
    }

    impl SharedStore for Racing {
        fn get(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), StoreError> {
            self.store.get(key)
        }

        fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
            if let Some(theirs) = self.theirs.take() {
                let (_, token) = self.store.get(key)?;
                self.store.set(key, &theirs, token)?;
            }
            self.store.set(key, value, cas)
        }
    }

    #[test]
    fn a_value_that_is_no_secret_is_replaced_and_a_concurrent_writer_wins() {
        let store = MemoryStore::default();
        store.set(SlotSecret::KEY, b"old format", None).unwrap();
        let ours = SlotSecret::shared(&store, [3; 16]);
        assert_eq!(ours, Ok(SlotSecret::new([3; 16])));

        let racing = Racing {
            store: MemoryStore::default(),
            theirs: Cell::new(Some([4; 16])),
        };
        racing.store.set(SlotSecret::KEY, b"", None).unwrap();
        let read = SlotSecret::shared(&racing, [5; 16]);
        assert_eq!(read, Ok(SlotSecret::new([4; 16])), "theirs, not ours");
        assert_eq!(racing.store.conflicts.get(), 1);
    }

    #[test]
    fn slots_are_created_once_and_kept() {
        let store = MemoryStore::default();
        let table = Table::new("apiguard.t".into(), 4);
        assert_eq!(table.create(&store), 0);
        assert_eq!(store.map.borrow().len(), 4);
        let entry = Entry {
            fingerprint: 9,
            until: 5,
        };
        table.write(&store, entry).unwrap();
        table.create(&store);
        assert_eq!(table.read(&store, 9), Some(entry));
        assert_eq!(
            store.map.borrow().get("apiguard.t.1").map(|v| v.0.len()),
            Some(SLOT_BYTES)
        );
    }

    #[test]
    fn undecodable_values_read_as_empty() {
        assert_eq!(Entry::decode(b"short"), None);
        assert_eq!(Entry::decode(&[0; 17]), None);
        assert_eq!(Entry::decode(&[0; 16]), Some(Entry::default()));
    }
}
