//! The audit trail: an append-only, hash-chained log of row changes, stamped with tenant and
//! actor.
//!
//! - `record.rs`: what an entry says (JSON of the changed columns, redaction) and its digest,
//!   and the seal hash that chains a table's seals (pure);
//! - `verify.rs`: what a comparison of seals and log concludes (pure);
//! - `api.rs`: the triggers, `floe.enable_audit`, the sealing job, `floe.verify_audit`.

mod api;
pub mod record;
mod tests;
pub mod verify;

pub use api::{health_checks, internal};
