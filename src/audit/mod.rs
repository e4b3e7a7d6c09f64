//! The audit trail: an append-only, hash-chained log of row changes, stamped with tenant and
//! actor.
//!
//! - `record.rs`: what an entry says (JSON of the changed columns, redaction) and its digest,
//!   and the seal hash that chains a table's seals (pure);
//! - `verify.rs`: what a comparison of seals and log concludes (pure);
//! - `identity.rs`: the relid a table's entries carry, kept through a restore (pure);
//! - `shard_args.rs`: the settings a Citus table's audit triggers carry to its shards (pure);
//! - `api.rs`: the SQL surface: the triggers, `floe.enable_audit`, the sealing job,
//!   `floe.verify_audit`;
//! - machinery: `capture.rs` (the per-table configuration and turning a row change into an
//!   entry), `render.rs` (a row's columns as the entry's text), `pending.rs` (the
//!   transaction's buffer of entries and its flush), `write.rs` (the log partition entries go
//!   to and the INSERTs), `append.rs` (entries written straight into the month's heap and
//!   indexes, their JSON built as jsonb in `jsonb.rs`, their other datums in `datums.rs`; the
//!   month's columns matched in `columns.rs`, pure; one entry is `entry.rs`), `registry.rs` (audited tables, their facts, the log's partition
//!   set), `seal.rs` (sealing), `examine.rs` (reading seals and log for verification and
//!   health; its rows: `finding.rs`), `custody.rs` (floe's own moves and retirements of
//!   audit rows), `distributed.rs` (Citus tables: entries logged on the node that holds the
//!   shard).

mod api;
mod append;
mod capture;
pub mod columns;
mod custody;
mod datums;
mod distributed;
mod entry;
mod examine;
mod finding;
pub mod identity;
mod jsonb;
mod pending;
pub mod record;
mod registry;
mod render;
mod seal;
pub mod shard_args;
mod tests;
pub mod verify;
mod write;

pub use custody::{internal, retire_month, LOG_SET};
pub use examine::health_checks;
