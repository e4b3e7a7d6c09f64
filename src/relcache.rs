//! Invalidation of the per-backend caches floe keeps of its own registry tables (the queues'
//! settings, the matview sources map).
//!
//! A statement trigger on a registry table calls [`invalidate_trigger_relation`], which
//! queues a relcache invalidation for it, sent to every backend at commit (and processed in
//! the writing backend at its next command). Each backend's callback bumps one generation
//! counter when a watched relation is invalidated; a cache stores the generation it was
//! loaded under and reloads when the counter has moved. One counter serves every cache:
//! registry changes are rare, and a reload is cheap.

use pgrx::prelude::*;
use std::cell::Cell;

/// Most relations watched per backend (floe's registry tables).
const MAX_WATCHED: usize = 8;

thread_local! {
    static GENERATION: Cell<u64> = const { Cell::new(1) };
    /// Plain `Copy` state: the callback may run while any RefCell of a cache is borrowed.
    static WATCHED: Cell<[pg_sys::Oid; MAX_WATCHED]> =
        const { Cell::new([pg_sys::InvalidOid; MAX_WATCHED]) };
    static REGISTERED: Cell<bool> = const { Cell::new(false) };
}

#[pg_guard]
extern "C-unwind" fn on_invalidate(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    // InvalidOid: the whole relcache was reset.
    if relid == pg_sys::InvalidOid || WATCHED.get().contains(&relid) {
        GENERATION.set(GENERATION.get() + 1);
    }
}

/// The current generation; a cache loaded under an older one is stale. Read it *before*
/// loading, and store that value: an invalidation that arrives during the load then makes
/// the next lookup load again.
pub fn generation() -> u64 {
    if !REGISTERED.get() {
        // SAFETY: registers a callback for the life of the backend (once).
        unsafe {
            pg_sys::CacheRegisterRelcacheCallback(Some(on_invalidate), pg_sys::Datum::from(0))
        };
        REGISTERED.set(true);
    }
    GENERATION.get()
}

/// Makes invalidations of `relid` bump the generation.
pub fn watch(relid: pg_sys::Oid) {
    let mut watched = WATCHED.get();
    if relid == pg_sys::InvalidOid || watched.contains(&relid) {
        return;
    }
    if let Some(free) = watched.iter_mut().find(|r| **r == pg_sys::InvalidOid) {
        *free = relid;
    } else {
        // Full (a dropped and re-created extension leaves stale oids): start over.
        watched = [pg_sys::InvalidOid; MAX_WATCHED];
        watched[0] = relid;
    }
    WATCHED.set(watched);
}

/// The body of floe's registry triggers: queue a relcache invalidation of the trigger's
/// table, sent at commit.
pub fn invalidate_trigger_relation(trigger: &PgTrigger<'_>) {
    if let Ok(rel) = trigger.relation() {
        // SAFETY: queues an invalidation message for an open relation.
        unsafe { pg_sys::CacheInvalidateRelcacheByRelid(rel.oid()) };
    }
}
