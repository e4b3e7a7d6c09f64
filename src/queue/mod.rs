//! The job queue: five priority tiers with aging that needs no UPDATE, a max-wait
//! guarantee, per-tenant fairness, retries with backoff, dead letters and an archive.
//!
//! Pure logic: `priority.rs` (the time-invariant sort key, the fair clock), `retry.rs`
//! (backoff with jitter, who may finish a job), `checks.rs` (alarms and health). `api.rs`:
//! the SQL functions, running as the extension's owner through `crate::privileged`.

mod api;
mod catalog;
pub mod checks;
pub mod priority;
pub mod retry;
mod tests;

pub use api::health_checks;
