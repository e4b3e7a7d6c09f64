//! The change-tracking slots in shared memory (one per registered view of the server), the
//! change clock, what the running transaction changed and refreshed, and the transaction
//! callbacks that publish it at commit (shared memory and backend state, machinery; the
//! slots' logic is `dirty.rs`).

use super::dirty::{self, Pending, Table};
use crate::sqltypes::{wall_clock, Micros};
use pgrx::lwlock::PgLwLock;
use pgrx::prelude::*;
use pgrx::shmem::PGRXSharedMemory;
use pgrx::{pg_shmem_init, PgAtomic};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::AtomicI64;

/// Registered views the cluster can track in shared memory (32 bytes each).
pub const SLOTS: usize = 1024;
type Slots = Table<SLOTS>;

// SAFETY: plain atomics, valid in any process that maps the segment.
unsafe impl PGRXSharedMemory for Table<SLOTS> {}

static TABLE: PgAtomic<Slots> = unsafe { PgAtomic::new(c"floe_matview_slots") };
static CLOCK: PgAtomic<AtomicI64> = unsafe { PgAtomic::new(c"floe_matview_clock") };
/// Held while a slot is claimed or released (marks and reads take no lock).
pub(super) static CLAIM: PgLwLock<bool> = unsafe { PgLwLock::new(c"floe_matview_claim") };

thread_local! {
    /// What the running transaction changed and refreshed, published at its commit.
    pub(super) static PENDING: RefCell<Pending> = RefCell::new(Pending::default());
    /// Slot index by key, checked against the slot's key before use.
    static SLOT_OF: RefCell<HashMap<u64, usize>> = RefCell::new(HashMap::new());
}

/// Shared memory, the change clock and the transaction callbacks. Called from `_PG_init`.
pub fn init() {
    // SAFETY: a plain read of a server global, from _PG_init on the main thread.
    if unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        pg_shmem_init!(TABLE);
        pg_shmem_init!(CLOCK);
        pg_shmem_init!(CLAIM);
    }
    // SAFETY: callbacks for the life of the process, registered once.
    unsafe {
        pg_sys::RegisterXactCallback(Some(on_xact), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(on_subxact), std::ptr::null_mut());
    }
}

/// The shared slots and clock, when floe was preloaded.
pub(super) fn shared() -> Option<(&'static Slots, &'static AtomicI64)> {
    crate::preload::loaded_at_start().then(|| (TABLE.get(), CLOCK.get()))
}

pub(super) fn database() -> u32 {
    // SAFETY: reads this backend's database id.
    unsafe { pg_sys::MyDatabaseId }.to_u32()
}

pub(super) fn nest_level() -> u32 {
    // SAFETY: reads the transaction state.
    unsafe { pg_sys::GetCurrentTransactionNestLevel() }.max(1) as u32
}

/// A refresh's stamp (the wall clock without shared memory).
pub(super) fn stamp() -> Micros {
    match shared() {
        Some((_, clock)) => dirty::refresh_stamp(clock, wall_clock()),
        None => wall_clock(),
    }
}

/// The slot of `key`, claimed (dirty) if it has none; None when every slot is taken.
pub(super) fn slot_index(table: &'static Slots, key: u64, stamp: Micros) -> Option<usize> {
    let cached = SLOT_OF.with_borrow(|m| m.get(&key).copied());
    if let Some(i) = cached.filter(|&i| table.slot(i).is_some_and(|s| s.key() == key)) {
        return Some(i);
    }
    let found = match table.find(key) {
        Some(i) => Some(i),
        None => {
            let _claim = CLAIM.exclusive();
            table.find_or_claim(key, stamp)
        }
    };
    if let Some(i) = found {
        SLOT_OF.with_borrow_mut(|m| m.insert(key, i));
    }
    found
}

/// Publishes the transaction's marks and covers (at commit; at PREPARE only the marks: the
/// refresh may yet be rolled back). Must not raise: the transaction has committed.
fn publish(covers: bool) {
    let outcomes = PENDING.with_borrow_mut(|p| if p.is_empty() { Vec::new() } else { p.take() });
    if outcomes.is_empty() {
        return;
    }
    let Some((table, clock)) = shared() else {
        return;
    };
    let now = dirty::change_stamp(clock, wall_clock());
    for o in outcomes {
        let Some(slot) = slot_index(table, o.key, now).and_then(|i| table.slot(i)) else {
            continue; // no slot: the refresher treats the view as dirty
        };
        if covers {
            if let Some(t0) = o.cover {
                slot.cover(t0);
            }
        }
        if o.mark {
            slot.mark(now);
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_xact(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    use pg_sys::XactEvent::*;
    match event {
        XACT_EVENT_COMMIT | XACT_EVENT_PARALLEL_COMMIT => publish(true),
        XACT_EVENT_PREPARE => publish(false),
        XACT_EVENT_ABORT | XACT_EVENT_PARALLEL_ABORT => PENDING.with_borrow_mut(Pending::clear),
        _ => {}
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_subxact(
    event: pg_sys::SubXactEvent::Type,
    _sub: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    use pg_sys::SubXactEvent::*;
    PENDING.with_borrow_mut(|p| {
        if p.is_empty() {
            return;
        }
        // The callback runs while the subtransaction is still the current one.
        let level = nest_level();
        match event {
            SUBXACT_EVENT_COMMIT_SUB => p.commit_sub(level),
            SUBXACT_EVENT_ABORT_SUB => p.abort_sub(level),
            _ => {}
        }
    });
}
