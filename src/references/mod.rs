//! Cross-tier references (issue #26): a table's columns pointing at rows of a table in
//! another database, declared over a `postgres_fdw` server, checked where the data is.
//!
//! Pure:
//! - `declaration.rs`: what a declaration must satisfy (arguments, types, a unique key);
//! - `statements.rs`: the SQL a reference runs (check, scan page, repair), from its names;
//! - `cache.rs`: the enforce check's per-session memory of keys found present;
//! - `checks.rs`: what `floe.health()` concludes.
//!
//! Machinery (SPI):
//! - `declare.rs`: declaring and dropping (catalog row, foreign table, enforce triggers);
//! - `remote.rs`: the target through `postgres_fdw`;
//! - `registry.rs`: `floe.declared_references` and the module's other tables;
//! - `check.rs`: the enforce trigger's work for one statement;
//! - `scan.rs`: the scan and its orphans;
//! - `repair.rs`: `floe.repair_references`;
//! - `health.rs`: the facts `floe.health()` judges.
//!
//! `api.rs` is the SQL surface.

mod api;
mod cache;
mod check;
pub mod checks;
pub mod declaration;
mod declare;
mod health;
mod registry;
mod remote;
mod repair;
mod scan;
pub mod statements;

pub use health::health_checks;
