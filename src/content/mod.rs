//! The content store: bodies compressed (lz4, zstd, zstd with a tenant's trained
//! dictionary) and deduplicated per tenant by their BLAKE3 hash, moved between tiers by the
//! time since they were last read, with near-duplicate search.
//!
//! - `codec.rs`: the self-describing frame, encoding and decoding (pure);
//! - `cache.rs`: the least-recently-used, memory-bounded cache of prepared dictionaries (pure);
//! - `simhash.rs`: near-duplicate signatures (pure);
//! - `tier.rs`: tiering and retraining decisions (pure);
//!
//! Machinery (statements run as the extension's owner through `crate::privileged`):
//! - `store.rs`: put and release a reference to a body;
//! - `read.rs`: get a body, find similar ones;
//! - `dictionaries.rs`: the per-backend dictionary cache, encoding and decoding stored
//!   bodies, training and dropping dictionaries;
//! - `policies.rs`: a tenant's effective policy, setting and resetting it;
//! - `maintenance.rs`: garbage collection, tiering, retraining;
//! - `managed.rs`: the managed-column trigger's work and `floe.manage_content()`'s DDL;
//! - `health.rs`: what `floe.health()` says about the store;
//! - `errors.rs`: the errors they raise.
//!
//! `api.rs`: the SQL functions, the managed-column trigger, the COMMENTs (nothing imports it).

mod api;
pub mod cache;
pub mod codec;
mod dictionaries;
mod errors;
mod health;
mod maintenance;
mod managed;
mod policies;
mod read;
pub mod simhash;
mod store;
mod tests;
pub mod tier;

pub use health::health_checks;
