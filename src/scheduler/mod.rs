//! The in-database scheduler: jobs in `floe.jobs`, runs in `floe.job_runs`.
//!
//! Pure logic: `schedule.rs` (cron and interval schedules, next run), `retry.rs` (what a run's
//! outcome means for the next one). The SQL surface and background workers come next.

pub mod retry;
pub mod schedule;
