//! The content store: bodies compressed (lz4, zstd, zstd with a tenant's trained
//! dictionary) and deduplicated per tenant by their BLAKE3 hash, moved between tiers by the
//! time since they were last read, with near-duplicate search.
//!
//! - `codec.rs`: the self-describing frame, encoding and decoding (pure);
//! - `cache.rs`: the least-recently-used, memory-bounded cache of prepared dictionaries (pure);
//! - `simhash.rs`: near-duplicate signatures (pure);
//! - `tier.rs`: tiering and retraining decisions (pure);
//! - `api.rs`: the SQL functions, the managed-column trigger, the maintenance job.

mod api;
pub mod cache;
pub mod codec;
pub mod simhash;
mod tests;
pub mod tier;

pub use api::health_checks;
