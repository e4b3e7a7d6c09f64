//! One row of `floe.verify_audit`: what `examine.rs` finds on this node and what
//! `distributed.rs` gathers from the Citus workers (a type both use; it carries a pgrx
//! timestamp).

use pgrx::prelude::*;

/// One row of `floe.verify_audit`.
pub struct Finding {
    pub table: String,
    pub status: &'static str,
    pub entry: Option<i64>,
    pub logged_at: Option<TimestampWithTimeZone>,
    pub detail: String,
}
