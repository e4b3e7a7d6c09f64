//! Cross-tier references (issue #26): a table's columns pointing at rows of a table in
//! another database, declared over a `postgres_fdw` server, checked where the data is.
//!
//! - `declaration.rs` (pure): what a declaration must satisfy (arguments, types, a unique
//!   key on the target);
//! - `remote.rs` (machinery): the target through `postgres_fdw` (its columns, its unique
//!   indexes, the reference's foreign table);
//! - `registry.rs` (machinery): `floe.declared_references`;
//! - `api.rs`: the SQL surface, `floe.declare_reference` and `floe.drop_reference`.

mod api;
pub mod declaration;
mod registry;
mod remote;
