//! The partition manager: monthly (or hourly ... yearly) range partitions with premake,
//! retention, default-partition drain and sub-partitions, without long locks.
//!
//! Pure logic: `plan.rs` (calendar steps, names, what to create and retire), `checks.rs`
//! (health). `api.rs`: the SQL functions, the `floe.run_maintenance` procedure and the
//! maintenance the scheduler worker runs one set per transaction.

mod api;
pub mod checks;
pub mod plan;
mod tests;

pub use api::{health_checks, run_in_worker, take_deferred};
