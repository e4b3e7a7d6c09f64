//! Health and inventory: `floe.version()` and `floe.health()`.
//!
//! `checks.rs` decides what the facts mean (pure); `api.rs` gathers the facts from the
//! catalog and returns the rows. Every module contributes its own checks (of type
//! `crate::check::Check`, a leaf, so that no module imports `health`). `server.rs`
//! (pure) and `server_facts.rs` are the connection checks: connections in use, sessions idle in
//! a transaction, the xmin horizon.

mod api;
pub mod checks;
pub mod server;
mod server_facts;

mod tests;
