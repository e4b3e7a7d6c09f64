//! The in-database scheduler: jobs in `floe.jobs`, runs in `floe.job_runs`.
//!
//! Pure logic: `schedule.rs` (cron and interval schedules, next run), `retry.rs` (what a run's
//! outcome means for the next one). `api.rs`: managing jobs and running them by hand; the
//! background workers that run them on time come next.

mod api;
pub mod checks;
pub mod retry;

pub use api::health_checks;
pub mod schedule;
mod toplevel;
mod worker;

pub use toplevel::run_top_level;
pub use worker::is_scheduler_worker;

pub use worker::SCHEDULER_TYPE;

/// Starts the launcher and the DROP DATABASE hook when floe is preloaded.
pub fn init() {
    // SAFETY: a plain read of a server global, from _PG_init on the main thread.
    if unsafe { pgrx::pg_sys::process_shared_preload_libraries_in_progress } {
        worker::init();
    }
}
