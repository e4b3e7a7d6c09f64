//! floe: the data-layer operations of a multi-tenant SaaS, inside PostgreSQL.
//!
//! This file only wires modules together; see `../shared/DESIGN.md` (the README summarises
//! it) for what each module does.

use pgrx::prelude::*;

pub mod audit;
pub mod check;
pub mod citus;
pub mod compat;
pub mod content;
pub mod error;
pub mod flag;
pub mod gucs;
pub mod health;
pub mod matview;
pub mod partition;
pub mod planner;
pub mod preload;
pub mod privileged;
pub mod queue;
pub mod references;
pub mod relcache;
pub mod scheduler;
pub mod sqltypes;
pub mod subxact;
pub mod tenant;
#[cfg(any(test, feature = "pg_test"))]
pub mod testing;
pub mod toplevel;

::pgrx::pg_module_magic!(name, version);

/// Runs once per process that loads floe: in the postmaster when preloaded (so every
/// backend inherits it), otherwise in the first backend that calls a floe function.
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    gucs::init();
    planner::init();
    preload::init();
    matview::init();
    scheduler::init();
}

/// Required by `cargo pgrx test`: settings for the throwaway cluster of the `#[pg_test]`s.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        // The #[pg_test] cluster runs floe the way production does: preloaded.
        vec!["shared_preload_libraries = 'floe'"]
    }
}
