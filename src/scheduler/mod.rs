//! The in-database scheduler: jobs in `floe.jobs`, runs in `floe.job_runs`.
//!
//! Pure logic: `schedule.rs` (cron and interval schedules, next run), `retry.rs` (what a run's
//! outcome means for the next one), `checks.rs` (the health check). Machinery: `jobs.rs` (the
//! job rows, schedule parsing and option checks), `runs.rs` (running a job and its run
//! bookkeeping), `execute.rs` (a command as the job's owner under `max_runtime`), `wake.rs`
//! (the shared registry of schedulers and the wakeups; the registry's data and rules are
//! pure, `registry.rs`), `dropdb.rs` (the ProcessUtility
//! hook), `health.rs`; `src/toplevel.rs` (crate level) marks the worker's process and runs
//! its top-level statements. `worker.rs`: the launcher and the per-database
//! scheduler; `api.rs`: the SQL functions. Both use the machinery; nothing imports them.

mod api;
pub mod checks;
mod dropdb;
mod execute;
mod health;
mod jobs;
mod registry;
pub mod retry;
mod runs;
mod wake;

pub use health::health_checks;
pub mod schedule;
mod worker;

pub use worker::SCHEDULER_TYPE;

/// Starts the launcher and the DROP DATABASE hook when floe is preloaded.
pub fn init() {
    // SAFETY: a plain read of a server global, from _PG_init on the main thread.
    if unsafe { pgrx::pg_sys::process_shared_preload_libraries_in_progress } {
        worker::init();
    }
}
