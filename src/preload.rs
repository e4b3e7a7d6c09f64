//! How floe was loaded: through `shared_preload_libraries` at server start, or on first use.
//! A leaf: `health` reports it, the scheduler and matview's shared memory depend on it.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set when `_PG_init` runs inside the postmaster's preload phase. Backends are forked from
/// the postmaster, so every backend of a preloaded server sees `true`; a backend that loaded
/// floe on first use sees `false`.
static LOADED_AT_START: AtomicBool = AtomicBool::new(false);

/// Records how floe was loaded. Called once from `_PG_init`.
pub fn init() {
    // SAFETY: a plain read of a server global, from _PG_init on the main thread.
    let preloading = unsafe { pgrx::pg_sys::process_shared_preload_libraries_in_progress };
    LOADED_AT_START.store(preloading, Ordering::Relaxed);
}

/// Whether floe was loaded through `shared_preload_libraries` when the server started.
pub fn loaded_at_start() -> bool {
    LOADED_AT_START.load(Ordering::Relaxed)
}
