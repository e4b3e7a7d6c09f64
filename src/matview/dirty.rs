//! Whether a registered view lags its base data, kept in shared memory without locks, and
//! what one transaction has to report at its commit. Pure: no pgrx, no SPI (the glue puts a
//! [`Table`] in shared memory and calls [`Pending`] from the transaction callbacks).
//!
//! Correctness rests on *when* things are stamped, from one cluster-wide monotonic clock
//! ([`refresh_stamp`], [`change_stamp`]):
//! - a writer stamps its changes **after its commit became visible** (the COMMIT transaction
//!   callback runs after the transaction left the proc array): `changed = max(changed, m)`;
//! - a refresh takes its stamp `t0` **before** the snapshot its REFRESH reads, and once it
//!   has committed sets `covered = max(covered, t0)`.
//!
//! If `m < t0`, the writer's stamp came first in the clock's order, so its commit is visible
//! to the refresh's snapshot: the refresh covers it. If `m > t0`, `changed > covered`
//! afterwards and the view stays dirty. Nothing is cleared before a refresh, so a refresh
//! that fails, or whose backend dies, leaves the view dirty. A new slot (first use after a
//! server start, or a registration) starts dirty: a restart marks every view dirty.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::SeqCst};

/// Microseconds (Postgres timestamps: since 2000-01-01 UTC).
pub type Micros = i64;

/// A slot's key: database oid in the high half, view oid in the low half (0: free).
pub fn key(database: u32, view: u32) -> u64 {
    ((database as u64) << 32) | view as u64
}

/// The database and view oids of a key.
pub fn split(key: u64) -> (u32, u32) {
    ((key >> 32) as u32, key as u32)
}

/// Marks a slot being set up by [`Table::find_or_claim`].
const RESERVED: u64 = u64::MAX;

/// A refresh's stamp, taken before its snapshot: moves the cluster-wide clock to
/// `max(now, clock + 1)` and returns one less. A writer that reads the clock after this
/// gets more than the stamp (so its change stays dirty); one that read it before has its
/// commit visible to the snapshot. The clock never goes back, whatever the wall clock does.
pub fn refresh_stamp(clock: &AtomicI64, now: Micros) -> Micros {
    let prev = clock
        .fetch_update(SeqCst, SeqCst, |c| Some(now.max(c.saturating_add(1))))
        .unwrap_or(now);
    now.max(prev.saturating_add(1)) - 1
}

/// A committed change's stamp, taken after the commit became visible: a read of the clock
/// (writers never write it, so they do not contend on it), or the wall clock if later.
pub fn change_stamp(clock: &AtomicI64, now: Micros) -> Micros {
    clock.load(SeqCst).max(now)
}

/// One view's change state.
#[derive(Debug, Default)]
#[repr(C)]
pub struct Slot {
    key: AtomicU64,
    /// Stamp of the latest committed change.
    changed: AtomicI64,
    /// Stamp of the first change after the last covered point (best effort: see
    /// [`Slot::dirty_since`]).
    first: AtomicI64,
    /// `t0` of the latest committed refresh.
    covered: AtomicI64,
}

impl Slot {
    pub fn key(&self) -> u64 {
        self.key.load(SeqCst)
    }

    /// Records a committed change at `stamp`.
    pub fn mark(&self, stamp: Micros) {
        // A read first: writers of a busy table mostly find a newer stamp there and leave
        // the cache line shared.
        if self.changed.load(SeqCst) < stamp {
            self.changed.fetch_max(stamp, SeqCst);
        }
        let covered = self.covered.load(SeqCst);
        let _ = self
            .first
            .fetch_update(SeqCst, SeqCst, |f| (f <= covered).then_some(stamp));
    }

    /// Records a committed refresh whose snapshot was taken after `t0`.
    pub fn cover(&self, t0: Micros) {
        self.covered.fetch_max(t0, SeqCst);
    }

    /// Since when the view lags its data (None: current). When a change raced a refresh
    /// the answer is the refresh's stamp, an upper bound of the lag, never an underestimate.
    pub fn dirty_since(&self) -> Option<Micros> {
        self.dirty_since_after(Micros::MIN)
    }

    /// [`Slot::dirty_since`], counting also a refresh stamped `floor` that is not published
    /// yet (made earlier in the asking transaction).
    pub fn dirty_since_after(&self, floor: Micros) -> Option<Micros> {
        let covered = self.covered.load(SeqCst).max(floor);
        let changed = self.changed.load(SeqCst);
        (changed > covered).then(|| self.first.load(SeqCst).max(covered.saturating_add(1)))
    }

    fn reset(&self, stamp: Micros) {
        self.covered.store(Micros::MIN, SeqCst);
        self.first.store(stamp, SeqCst);
        self.changed.store(stamp, SeqCst);
    }
}

/// A fixed array of slots, one per registered view of the cluster.
#[repr(C)]
pub struct Table<const N: usize> {
    slots: [Slot; N],
}

impl<const N: usize> Default for Table<N> {
    fn default() -> Self {
        Table {
            slots: std::array::from_fn(|_| Slot::default()),
        }
    }
}

impl<const N: usize> Table<N> {
    pub const CAPACITY: usize = N;

    pub fn slot(&self, index: usize) -> Option<&Slot> {
        self.slots.get(index)
    }

    /// The slot of `key`, if it has one.
    pub fn find(&self, key: u64) -> Option<usize> {
        self.slots.iter().position(|s| s.key() == key)
    }

    /// The slot of `key`, claiming a free one (dirty since `stamp`) when it has none; None
    /// when the table is full. The caller holds the claim lock: two claims of one key
    /// must not race (marks and reads need no lock).
    pub fn find_or_claim(&self, key: u64, stamp: Micros) -> Option<usize> {
        if key == 0 || key == RESERVED {
            return None;
        }
        if let Some(i) = self.find(key) {
            return Some(i);
        }
        for (i, s) in self.slots.iter().enumerate() {
            if s.key.compare_exchange(0, RESERVED, SeqCst, SeqCst).is_ok() {
                // Set up before the key is published, so no reader sees the old view's state.
                s.reset(stamp);
                s.key.store(key, SeqCst);
                return Some(i);
            }
        }
        None
    }

    /// Frees the slot of `key` (caller holds the claim lock).
    pub fn release(&self, key: u64) {
        if let Some(i) = self.find(key) {
            self.slots[i].key.store(0, SeqCst);
        }
    }

    /// The keys of the slots in use.
    pub fn keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.slots
            .iter()
            .map(Slot::key)
            .filter(|&k| k != 0 && k != RESERVED)
    }

    /// Slots in use.
    pub fn used(&self) -> usize {
        self.slots.iter().filter(|s| s.key() != 0).count()
    }
}

/// What a transaction did to one view, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// It changed a base table of the view (or refreshed a view the view reads).
    Mark,
    /// It refreshed the view with a snapshot taken after this stamp.
    Cover(Micros),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    key: u64,
    kind: Kind,
    /// The subtransaction nesting level that recorded it (1: top level).
    level: u32,
}

/// What one commit reports for one view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub key: u64,
    /// Set `covered` to this stamp.
    pub cover: Option<Micros>,
    /// A change after the last refresh in the transaction: mark it at commit.
    pub mark: bool,
}

/// The marks and covers of the running transaction, in the order they happened, kept until
/// it ends. A subtransaction that aborts takes its entries along; one that commits hands
/// them to its parent.
#[derive(Debug, Default)]
pub struct Pending {
    entries: Vec<Entry>,
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records a change to the view at nesting `level`; false when one is recorded already
    /// and no refresh of it came after (the trigger's fast path: nothing to do).
    pub fn mark(&mut self, key: u64, level: u32) -> bool {
        match self.entries.iter().rev().find(|e| e.key == key) {
            Some(e) if e.kind == Kind::Mark => false,
            _ => {
                self.entries.push(Entry {
                    key,
                    kind: Kind::Mark,
                    level,
                });
                true
            }
        }
    }

    /// Whether this transaction changed the view since it last refreshed it.
    pub fn is_marked(&self, key: u64) -> bool {
        self.entries
            .iter()
            .rev()
            .find(|e| e.key == key)
            .is_some_and(|e| e.kind == Kind::Mark)
    }

    /// The stamp of this transaction's refresh of the view, when no change of it came after.
    pub fn covered(&self, key: u64) -> Option<Micros> {
        match self.entries.iter().rev().find(|e| e.key == key) {
            Some(Entry {
                kind: Kind::Cover(t0),
                ..
            }) => Some(*t0),
            _ => None,
        }
    }

    /// Records a refresh of the view whose snapshot came after stamp `t0`.
    pub fn cover(&mut self, key: u64, t0: Micros, level: u32) {
        self.entries.push(Entry {
            key,
            kind: Kind::Cover(t0),
            level,
        });
    }

    /// The subtransaction at `level` committed: its entries belong to its parent now.
    pub fn commit_sub(&mut self, level: u32) {
        for e in &mut self.entries {
            if e.level >= level {
                e.level = level.saturating_sub(1).max(1);
            }
        }
    }

    /// The subtransaction at `level` aborted: what it recorded did not happen.
    pub fn abort_sub(&mut self, level: u32) {
        self.entries.retain(|e| e.level < level);
    }

    /// The transaction ended: what to report per view (in order of first appearance).
    pub fn take(&mut self) -> Vec<Outcome> {
        let entries = std::mem::take(&mut self.entries);
        let mut out: Vec<Outcome> = Vec::new();
        for e in entries {
            let i = match out.iter().position(|o| o.key == e.key) {
                Some(i) => i,
                None => {
                    out.push(Outcome {
                        key: e.key,
                        cover: None,
                        mark: false,
                    });
                    out.len() - 1
                }
            };
            let o = &mut out[i];
            match e.kind {
                Kind::Mark => o.mark = true,
                Kind::Cover(t0) => {
                    o.cover = Some(o.cover.map_or(t0, |c| c.max(t0)));
                    // The refresh saw every change of this transaction made before it.
                    o.mark = false;
                }
            }
        }
        out
    }

    /// Forgets everything (the transaction aborted).
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, Mutex};

    #[test]
    fn a_new_slot_is_dirty_and_a_refresh_cleans_it() {
        let t: Table<4> = Table::default();
        let i = t.find_or_claim(key(1, 10), 100).unwrap();
        let s = t.slot(i).unwrap();
        assert_eq!(s.dirty_since(), Some(100));
        s.cover(150);
        assert_eq!(s.dirty_since(), None);
        s.mark(160);
        s.mark(170);
        assert_eq!(s.dirty_since(), Some(160));
        // A refresh stamped before the change does not cover it.
        s.cover(155);
        assert_eq!(s.dirty_since(), Some(160));
        assert_eq!(
            s.dirty_since_after(175),
            None,
            "an unpublished refresh counts"
        );
        s.cover(175);
        assert_eq!(s.dirty_since(), None);
    }

    #[test]
    fn a_change_racing_a_refresh_keeps_the_view_dirty() {
        let t: Table<2> = Table::default();
        let s = t.slot(t.find_or_claim(key(1, 1), 10).unwrap()).unwrap();
        s.cover(20);
        s.mark(30); // first = 30
        s.mark(40);
        s.cover(35); // covers 30, not 40
                     // dirty, and since no earlier than the refresh's stamp
        assert_eq!(s.dirty_since(), Some(36));
    }

    #[test]
    fn slots_are_claimed_found_released_and_bounded() {
        let t: Table<2> = Table::default();
        let a = t.find_or_claim(key(1, 1), 5).unwrap();
        assert_eq!(t.find_or_claim(key(1, 1), 6), Some(a));
        let b = t.find_or_claim(key(2, 1), 5).unwrap();
        assert_ne!(a, b);
        assert_eq!(t.find_or_claim(key(3, 1), 5), None, "full");
        assert_eq!(t.used(), 2);
        assert_eq!(t.keys().map(|k| split(k).0).collect::<Vec<_>>(), vec![1, 2]);
        t.slot(a).unwrap().cover(100);
        t.release(key(1, 1));
        assert_eq!(t.find(key(1, 1)), None);
        // A reused slot starts dirty, whatever its previous view had.
        let c = t.find_or_claim(key(3, 1), 200).unwrap();
        assert_eq!(c, a);
        assert_eq!(t.slot(c).unwrap().dirty_since(), Some(200));
        assert_eq!(t.find_or_claim(0, 1), None);
    }

    #[test]
    fn the_clock_never_goes_back() {
        let clock = AtomicI64::new(0);
        assert_eq!(refresh_stamp(&clock, 100), 99);
        assert_eq!(refresh_stamp(&clock, 100), 100);
        assert_eq!(refresh_stamp(&clock, 50), 101, "wall clock stepped back");
        assert!(
            change_stamp(&clock, 50) > 101,
            "a later change is newer than every refresh"
        );
        assert_eq!(refresh_stamp(&clock, 500), 499);
        assert_eq!(change_stamp(&clock, 0), 500);
    }

    #[test]
    fn pending_dedups_marks_until_a_refresh() {
        let mut p = Pending::default();
        assert!(p.mark(7, 1));
        assert!(!p.mark(7, 1));
        assert!(!p.mark(7, 2));
        p.cover(7, 50, 1);
        assert!(!p.is_marked(7));
        assert_eq!(p.covered(7), Some(50));
        assert!(p.mark(7, 1), "a write after the refresh counts again");
        assert!(p.is_marked(7));
        let out = p.take();
        assert_eq!(
            out,
            vec![Outcome {
                key: 7,
                cover: Some(50),
                mark: true
            }]
        );
        assert!(p.is_empty());
    }

    #[test]
    fn pending_follows_subtransactions() {
        let mut p = Pending::default();
        p.mark(1, 1);
        p.cover(1, 10, 2); // refresh in a savepoint ...
        p.mark(2, 3);
        p.abort_sub(2); // ... rolled back: the write of view 1 still counts
        assert_eq!(
            p.take(),
            vec![Outcome {
                key: 1,
                cover: None,
                mark: true
            }]
        );
        p.mark(3, 2);
        p.commit_sub(2);
        p.abort_sub(2); // a later savepoint at the same level does not take it
        assert_eq!(p.take().len(), 1);
        p.mark(4, 2);
        assert!(!p.mark(4, 2));
        p.abort_sub(2);
        assert!(
            p.mark(4, 1),
            "the aborted mark is gone, so it is recorded again"
        );
    }

    /// Threads play writers (commit, then stamp) and a refresher (stamp, "snapshot",
    /// cover); a snapshot sees exactly the commits made before it. Whatever the
    /// interleaving, a view left clean has had every committed change seen by a refresh.
    #[test]
    fn concurrent_writers_and_refreshers_never_lose_a_change() {
        let mut clean_endings = 0;
        for _ in 0..100 {
            let clock = Arc::new(AtomicI64::new(0));
            let table: Arc<Table<1>> = Arc::new(Table::default());
            let claim = Mutex::new(());
            let idx = {
                let _g = claim.lock().unwrap();
                table
                    .find_or_claim(key(1, 1), change_stamp(&clock, 0))
                    .unwrap()
            };
            let commits = Arc::new(AtomicI64::new(0));
            let seen = Arc::new(AtomicI64::new(0));
            let done = Arc::new(AtomicBool::new(false));
            let writers: Vec<_> = (0..2)
                .map(|_| {
                    let (clock, table, commits) = (clock.clone(), table.clone(), commits.clone());
                    std::thread::spawn(move || {
                        for _ in 0..300 {
                            commits.fetch_add(1, SeqCst); // the commit becomes visible
                            table.slot(idx).unwrap().mark(change_stamp(&clock, 0));
                        }
                    })
                })
                .collect();
            let refresher = {
                let (clock, table, commits, seen, done) = (
                    clock.clone(),
                    table.clone(),
                    commits.clone(),
                    seen.clone(),
                    done.clone(),
                );
                std::thread::spawn(move || {
                    while !done.load(SeqCst) {
                        let t0 = refresh_stamp(&clock, 0);
                        seen.fetch_max(commits.load(SeqCst), SeqCst);
                        table.slot(idx).unwrap().cover(t0);
                    }
                })
            };
            for w in writers {
                w.join().unwrap();
            }
            done.store(true, SeqCst);
            refresher.join().unwrap();
            let s = table.slot(idx).unwrap();
            if s.dirty_since().is_none() {
                clean_endings += 1;
                assert_eq!(
                    seen.load(SeqCst),
                    commits.load(SeqCst),
                    "clean, yet a committed change was never seen by a refresh"
                );
            }
            let t0 = refresh_stamp(&clock, 0);
            s.cover(t0);
            assert_eq!(s.dirty_since(), None);
        }
        // Both endings occur in practice; the assertion above is what matters.
        let _ = clean_endings;
    }

    proptest! {
        /// A model check of Pending against the plain meaning: per view, the outcome says
        /// "mark" iff some surviving change came after the last surviving refresh.
        #[test]
        fn pending_matches_its_model(ops in proptest::collection::vec((0u8..5, 0u64..3), 0..60)) {
            let mut p = Pending::default();
            // model: a stack of levels, each a list of (key, is_cover)
            let mut stack: Vec<Vec<(u64, bool)>> = vec![Vec::new()];
            for (op, k) in ops {
                let level = stack.len() as u32;
                match op {
                    0 | 1 => { p.mark(k, level); stack.last_mut().unwrap().push((k, false)); }
                    2 => { p.cover(k, 1, level); stack.last_mut().unwrap().push((k, true)); }
                    3 => stack.push(Vec::new()),
                    _ => {
                        if stack.len() > 1 {
                            let top = stack.pop().unwrap();
                            if k == 0 { p.abort_sub(level); } else {
                                p.commit_sub(level);
                                stack.last_mut().unwrap().extend(top);
                            }
                        }
                    }
                }
            }
            // close open subtransactions by committing them
            while stack.len() > 1 {
                let level = stack.len() as u32;
                let top = stack.pop().unwrap();
                p.commit_sub(level);
                stack.last_mut().unwrap().extend(top);
            }
            let flat = stack.pop().unwrap();
            let out = p.take();
            for k in 0..3u64 {
                let last_cover = flat.iter().rposition(|&(x, c)| x == k && c);
                let last_mark = flat.iter().rposition(|&(x, c)| x == k && !c);
                let want_mark = match (last_mark, last_cover) {
                    (Some(m), Some(c)) => m > c,
                    (Some(_), None) => true,
                    _ => false,
                };
                let got = out.iter().find(|o| o.key == k);
                prop_assert_eq!(got.map(|o| o.mark).unwrap_or(false), want_mark, "key {}", k);
                prop_assert_eq!(got.and_then(|o| o.cover).is_some(), last_cover.is_some());
            }
        }
    }
}
