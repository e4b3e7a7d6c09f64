//! The partition manager: monthly (or hourly ... yearly) range partitions with premake,
//! retention, default-partition drain and sub-partitions, without long locks.
//!
//! Pure logic: `plan.rs` (calendar steps, names, what to create and retire), `checks.rs`
//! (health). `api.rs`: the SQL surface (`create_parent`, `partition_existing`, the
//! `floe.run_maintenance` procedure, the SQL-language functions). Machinery: `children.rs`
//! (a set's parent and children in the catalog), `create.rs` (the DDL that makes a child),
//! `ddl.rs` (DDL under lock timeout with retries, as the parent's owner), `maintain.rs`
//! (maintenance passes, in the caller's transaction, a procedure's or the scheduler
//! worker's), `setup.rs` (making a set, converting a table), `health.rs` (the facts
//! `checks.rs` judges).

mod api;
pub mod checks;
mod children;
mod create;
mod ddl;
mod health;
mod maintain;
pub mod plan;
mod setup;
mod tests;

pub use health::health_checks;
pub use maintain::{run_in_worker, take_deferred};
