//! The job queue: five priority tiers with aging that needs no UPDATE, a max-wait
//! guarantee, per-tenant fairness, retries with backoff, dead letters and an archive.
//!
//! Pure logic: `priority.rs` (the time-invariant sort key, the fair clock), `retry.rs`
//! (backoff with jitter, who may finish a job), `checks.rs` (alarms and health). Machinery
//! (statements run as the extension's owner through `crate::privileged`): `catalog.rs` (the
//! cached settings), `queues.rs`, `enqueue.rs`, `deliver.rs`, `finish.rs`, `health.rs`,
//! `maintenance.rs`, and their errors in `errors.rs`. `api.rs`: the SQL functions (nothing
//! imports it).

mod api;
mod catalog;
pub mod checks;
mod deliver;
mod enqueue;
mod errors;
mod finish;
mod health;
mod maintenance;
pub mod priority;
mod queues;
pub mod retry;
mod tests;

pub use health::health_checks;
