//! Health and inventory: `floe.version()` and `floe.health()`.
//!
//! `checks.rs` decides what the facts mean (pure); `api.rs` gathers the facts from the
//! catalog and returns the rows. Other modules contribute checks as they land. `server.rs`
//! (pure) and `server_facts.rs` are the connection checks: connections in use, sessions idle in
//! a transaction, the xmin horizon.

mod api;
pub mod checks;
pub mod server;
mod server_facts;

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

mod tests;
