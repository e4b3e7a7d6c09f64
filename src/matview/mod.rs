//! Materialized-view refresh: on change (debounced by `min_interval`), on schedule, within
//! `max_staleness`, in dependency order, CONCURRENTLY so readers never wait.
//!
//! - `plan.rs`: when a view wants a refresh and in which order (pure);
//! - `dirty.rs`: change tracking in shared memory and per transaction (pure);
//! - `checks.rs`: what `floe.health()` says about registered views (pure);
//!
//! Machinery:
//! - `shmem.rs`: the shared slots and clock, the transaction's pending marks, the transaction
//!   callbacks that publish them;
//! - `changes.rs`: the map of tables to views, the marks a write leaves;
//! - `views.rs`: the registered views, their edges and since when each lags;
//! - `register.rs`: registering and unregistering a view;
//! - `refresh.rs`: refreshing one view or every due one, the record, housekeeping;
//! - `health.rs`: what `floe.health()` says about registered views.
//!
//! `api.rs`: the SQL functions, the change triggers, the COMMENTs (nothing imports it).

mod api;
mod changes;
pub mod checks;
pub mod dirty;
mod health;
pub mod plan;
mod refresh;
mod register;
mod shmem;
mod tests;
mod views;

pub use health::health_checks;
pub use shmem::init;
