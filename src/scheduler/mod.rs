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
