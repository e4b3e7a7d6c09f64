//! The scheduler's shared state and wakeups: the registry of each database's scheduler (its
//! pid, whether the database lacks floe, a DROP DATABASE hold), the launcher's wake counter,
//! waking the launcher or this database's scheduler, and kill(2) (shared memory and signals,
//! machinery).

use pgrx::lwlock::PgLwLock;
use pgrx::prelude::*;
use pgrx::shmem::PGRXSharedMemory;
use pgrx::{pg_shmem_init, PgAtomic};
use std::sync::atomic::{AtomicU64, Ordering};

pub(super) use super::registry::{Registry, Slot};

unsafe impl PGRXSharedMemory for Registry {}

pub(super) static REGISTRY: PgLwLock<Registry> =
    unsafe { PgLwLock::new(c"floe_scheduler_registry") };
pub(super) static WAKE: PgAtomic<AtomicU64> = unsafe { PgAtomic::new(c"floe_scheduler_wake") };

pub(super) fn unix_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The registry and the wake counter in shared memory. Only when preloading.
pub(super) fn init() {
    pg_shmem_init!(REGISTRY);
    pg_shmem_init!(WAKE);
}

/// Whether the shared state exists (floe was preloaded).
fn shared_ready() -> bool {
    crate::preload::loaded_at_start()
}

/// Asks the launcher to look for databases again (after CREATE EXTENSION). No-op when floe
/// is not preloaded.
pub fn wake_launcher() {
    if shared_ready() {
        // SAFETY: reads this backend's database id.
        let dboid = unsafe { pg_sys::MyDatabaseId }.to_u32();
        // A DROP EXTENSION earlier (in this session or another) held the scheduler off:
        // CREATE EXTENSION ends that at once.
        release(dboid);
        // Once more at commit: a scheduler started before the extension was visible found
        // none and said so.
        pgrx::register_xact_callback(pgrx::PgXactCallbackEvent::Commit, move || release(dboid));
    }
}

/// Lets the launcher start database `dboid`'s scheduler at once: ends a hold (DROP
/// DATABASE/EXTENSION, CREATE DATABASE ... TEMPLATE), forgets that it lacked floe, and wakes
/// the launcher.
pub(super) fn release(dboid: u32) {
    set_slot(dboid, Slot::release);
    WAKE.get().fetch_add(1, Ordering::SeqCst);
}

/// Wakes this database's scheduler when the current transaction commits (after a job was
/// scheduled or changed), so it sees the change at once instead of at its next idle check.
pub fn wake_local_scheduler_at_commit() {
    if !shared_ready() {
        return;
    }
    pgrx::register_xact_callback(pgrx::PgXactCallbackEvent::Commit, || {
        // SAFETY: reads this backend's database id.
        let dboid = unsafe { pg_sys::MyDatabaseId }.to_u32();
        let pid = REGISTRY.share().get(dboid).map_or(0, |s| s.pid);
        if pid > 0 {
            // SIGUSR1 sets the worker's latch (procsignal_sigusr1_handler).
            libc_kill(pid, 10);
        }
    });
}

/// This database's release count now: read by a scheduler before it looks for the extension
/// (see [`Slot::settle_absent`]).
pub(super) fn releases(dboid: u32) -> u64 {
    REGISTRY.share().get(dboid).map_or(0, |s| s.releases)
}

pub(super) fn set_slot(dboid: u32, f: impl FnOnce(&mut Slot)) {
    let mut reg = REGISTRY.exclusive();
    if let Some(slot) = reg.slot_mut(dboid) {
        f(slot);
    }
}

pub(super) fn libc_kill(pid: i32, sig: i32) -> i32 {
    unsafe extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
    }
    // SAFETY: kill(2) with a pid from floe's registry.
    unsafe { kill(pid, sig) }
}
