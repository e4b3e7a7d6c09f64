//! Tenant isolation that fails closed: the tenant context, RLS policies and guard triggers
//! per table (and per partition), cross-tenant admin mode, and the coverage audit.
//!
//! Pure logic: `context.rs` (the context variable), `guard.rs` (what the trigger does with a
//! row), `plan.rs` (the DDL that isolates a table), `coverage.rs` (naming the holes),
//! `token.rs` (signed tenant tokens).
//! `api.rs` is the SQL surface; machinery: `session.rs` (the context of this session, admin
//! mode, authorizing a tenant), `state.rs` (what the catalog says about a table),
//! `isolate.rs` (the isolating DDL, the registry, new and retired partitions),
//! `guard_trigger.rs` (the guard trigger's work), `inspect.rs` (coverage and health facts),
//! `inline.rs` (the planner pass that lets statements that write read the context without a
//! sub-select).
//! `set_context.rs` (floe's own `SET [LOCAL]` of the tenant variable; on Citus, a token
//! role's refused). On Citus: `shard_pin.rs` (the planner pass that pins queries on isolated
//! tables to the current tenant, so Citus routes them to one shard; what to do per relation
//! is `shard_route.rs`, pure). The `citus` module holds the Citus facts these use and never
//! imports this module.
//! `src/sql/tenant.sql` holds the registry and event triggers.

mod api;
pub mod context;
pub mod coverage;
pub mod guard;
mod guard_trigger;
mod inline;
mod inspect;
mod isolate;
pub mod plan;
mod session;
mod set_context;
mod shard_pin;
mod shard_route;
mod state;
mod tests;
pub mod token;
mod tokens;

pub use inline::{floe_call, inline_context};
pub use inspect::health_checks;
pub use isolate::{apply_to_partitions, as_floe_ddl, isolate_retired};
pub use session::{authorize, context_tenant, policy_context, serving_a_tenant};
pub use set_context::refuse as refuse_token_role_set;
pub use shard_pin::route as pin_to_shard;
