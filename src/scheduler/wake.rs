//! The scheduler's shared state and wakeups: the registry of each database's scheduler (its
//! pid, whether the database lacks floe, a DROP DATABASE hold), the launcher's wake counter
//! and latch, waking the launcher or this database's scheduler, and kill(2) (shared memory and
//! signals, machinery).

use pgrx::lwlock::PgLwLock;
use pgrx::prelude::*;
use pgrx::shmem::PGRXSharedMemory;
use pgrx::{pg_shmem_init, PgAtomic};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

pub(super) use super::registry::{Registry, Slot};

unsafe impl PGRXSharedMemory for Registry {}

pub(super) static REGISTRY: PgLwLock<Registry> =
    unsafe { PgLwLock::new(c"floe_scheduler_registry") };
pub(super) static WAKE: PgAtomic<AtomicU64> = unsafe { PgAtomic::new(c"floe_scheduler_wake") };
/// The launcher's PGPROC: its index in `ProcGlobal->allProcs`, plus one (0: not started).
static LAUNCHER_PROC: PgAtomic<AtomicU32> = unsafe { PgAtomic::new(c"floe_launcher_proc") };

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
    pg_shmem_init!(LAUNCHER_PROC);
}

/// Called by the launcher as it starts: where [`release`] finds the latch to set.
pub(super) fn register_launcher() {
    // SAFETY: a background worker with shared memory access has its PGPROC (MyProc) in
    // ProcGlobal->allProcs, both set up before its main function runs.
    let index = unsafe {
        let global = pg_sys::ProcGlobal;
        if global.is_null() || pg_sys::MyProc.is_null() {
            return;
        }
        pg_sys::MyProc.offset_from((*global).allProcs)
    };
    if let Ok(index) = u32::try_from(index) {
        LAUNCHER_PROC.get().store(index + 1, Ordering::SeqCst);
    }
}

/// Sets the launcher's latch: it looks at once instead of at its next second. After a
/// launcher restart the slot may belong to another process until the new launcher registers;
/// a latch set for nothing is a spurious wakeup, which every Postgres wait loop tolerates.
fn set_launcher_latch() {
    let slot = LAUNCHER_PROC.get().load(Ordering::SeqCst);
    if slot == 0 {
        return;
    }
    // SAFETY: ProcGlobal->allProcs has allProcCount entries for the life of the server; the
    // index is checked against it; SetLatch on another process's latch is how Postgres wakes
    // processes.
    unsafe {
        let global = pg_sys::ProcGlobal;
        if global.is_null() || slot > (*global).allProcCount {
            return;
        }
        let proc = (*global).allProcs.add((slot - 1) as usize);
        pg_sys::SetLatch(&raw mut (*proc).procLatch);
    }
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
        release_now_and_at_commit(dboid);
    }
}

/// [`release`] now, and once more when this transaction commits: the launcher wakes at once,
/// and what it then looks for (the extension, a new database) is visible only after the
/// commit; a scheduler started before it found nothing and said so.
pub(super) fn release_now_and_at_commit(dboid: u32) {
    release(dboid);
    pgrx::register_xact_callback(pgrx::PgXactCallbackEvent::Commit, move || release(dboid));
}

/// Lets the launcher start database `dboid`'s scheduler at once: ends a hold (DROP
/// DATABASE/EXTENSION, CREATE DATABASE ... TEMPLATE), forgets that it lacked floe, and wakes
/// the launcher.
pub(super) fn release(dboid: u32) {
    set_slot(dboid, Slot::release);
    WAKE.get().fetch_add(1, Ordering::SeqCst);
    set_launcher_latch();
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
