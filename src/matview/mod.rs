//! Materialized-view refresh: on change (debounced by `min_interval`), on schedule, within
//! `max_staleness`, in dependency order, CONCURRENTLY so readers never wait.
//!
//! - `plan.rs`: when a view wants a refresh and in which order (pure);
//! - `dirty.rs`: change tracking in shared memory and per transaction (pure);
//! - `checks.rs`: what `floe.health()` says about registered views (pure);
//! - `api.rs`: the SQL functions, the change trigger, the shared memory and transaction
//!   callbacks.

mod api;
pub mod checks;
pub mod dirty;
pub mod plan;
mod tests;

pub use api::{health_checks, init};
