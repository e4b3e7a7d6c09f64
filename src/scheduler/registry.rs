//! The shared registry of schedulers, as data: one slot per database with its scheduler's pid,
//! whether the database lacks floe, a DROP DATABASE hold, and how often the database was
//! released (pure logic; `wake.rs` places it in shared memory under an LWLock).

const MAX_SLOTS: usize = 64;

#[derive(Clone, Copy, Default, Debug, PartialEq)]
#[repr(C)]
pub struct Slot {
    dboid: u32,
    pub pid: i32,
    /// The database has no floe extension (set by its scheduler, cleared on a release).
    pub absent: bool,
    /// DROP DATABASE is stopping this database's scheduler: do not restart it.
    pub dropping_until: i64,
    /// How many times the database was released (CREATE EXTENSION, its commit, CREATE
    /// DATABASE ... TEMPLATE): a scheduler that looked for floe before the latest release
    /// must not record that floe is absent.
    pub releases: u64,
}

impl Slot {
    /// Ends a hold and forgets that the database lacked floe (CREATE EXTENSION and its commit).
    pub fn release(&mut self) {
        self.absent = false;
        self.dropping_until = 0;
        self.releases = self.releases.wrapping_add(1);
    }

    /// A scheduler found no floe in its database, having read `seen` releases before it
    /// looked. Records the absence (the launcher then leaves the database alone) unless a
    /// release came after the look: CREATE EXTENSION may have committed after the
    /// scheduler's snapshot was taken, and its release must not be overwritten by a stale
    /// "absent". Returns whether the absence was recorded; if not, the scheduler looks again.
    pub fn settle_absent(&mut self, seen: u64) -> bool {
        if self.releases != seen {
            return false;
        }
        self.absent = true;
        self.pid = 0;
        true
    }
}

#[derive(Clone, Copy)]
#[repr(C)]
pub struct Registry {
    slots: [Slot; MAX_SLOTS],
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            slots: [Slot::default(); MAX_SLOTS],
        }
    }
}

impl Registry {
    /// The slot of `dboid`, taking a free one the first time; None when all are taken.
    pub fn slot_mut(&mut self, dboid: u32) -> Option<&mut Slot> {
        if let Some(i) = self.slots.iter().position(|s| s.dboid == dboid) {
            return Some(&mut self.slots[i]);
        }
        let free = self.slots.iter().position(|s| s.dboid == 0)?;
        self.slots[free] = Slot {
            dboid,
            ..Slot::default()
        };
        Some(&mut self.slots[free])
    }

    pub fn get(&self, dboid: u32) -> Option<Slot> {
        self.slots.iter().find(|s| s.dboid == dboid).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The race CI met once: the scheduler's snapshot predates CREATE EXTENSION's commit, the
    /// commit's release runs, then the scheduler reports "absent". The stale report must lose.
    #[test]
    fn a_release_after_the_look_wins_over_a_stale_absent() {
        let mut reg = Registry::default();
        let slot = reg.slot_mut(42).unwrap();
        slot.release(); // CREATE EXTENSION, in its transaction
        let seen = slot.releases; // the scheduler reads the count, then looks: no floe yet
        slot.release(); // the commit
        assert!(!slot.settle_absent(seen));
        assert!(!reg.get(42).unwrap().absent);
    }

    #[test]
    fn an_absence_with_no_release_since_is_recorded() {
        let mut reg = Registry::default();
        let slot = reg.slot_mut(7).unwrap();
        slot.pid = 1234;
        let seen = slot.releases;
        assert!(slot.settle_absent(seen));
        let s = reg.get(7).unwrap();
        assert!(s.absent);
        assert_eq!(s.pid, 0);
        // and the next release clears it
        reg.slot_mut(7).unwrap().release();
        assert!(!reg.get(7).unwrap().absent);
    }

    #[test]
    fn slots_run_out_and_are_found_again() {
        let mut reg = Registry::default();
        for oid in 1..=MAX_SLOTS as u32 {
            assert!(reg.slot_mut(oid).is_some());
        }
        assert!(reg.slot_mut(10_000).is_none());
        reg.slot_mut(5).unwrap().pid = 99;
        assert_eq!(reg.get(5).unwrap().pid, 99);
        assert!(reg.get(10_000).is_none());
    }
}
