//! Tenant isolation that fails closed: the tenant context, RLS policies and guard triggers
//! per table (and per partition), cross-tenant admin mode, and the coverage audit.
//!
//! Pure logic: `context.rs` (the context variable), `guard.rs` (what the trigger does with a
//! row), `plan.rs` (the DDL that isolates a table), `coverage.rs` (naming the holes).
//! `api.rs` is the SQL glue; `src/sql/tenant.sql` holds the registry and event triggers.

mod api;
pub mod context;
pub mod coverage;
pub mod guard;
pub mod plan;
mod tests;

pub use api::{apply_to_partitions, as_floe_ddl, authorize, context_tenant, health_checks};
