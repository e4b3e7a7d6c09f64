//! floe on Citus (issue #25): what floe does differently in a database where the `citus`
//! extension is installed.
//!
//! - `present()`: whether this database has Citus (read once per transaction). Tenant
//!   isolation then writes its policies without a sub-select (Citus propagates policies to
//!   the shards and refuses sub-selects in them).
//! - `planner.rs` (machinery) and `routing.rs` (pure): the planner hook that pins queries on
//!   tenant-isolated tables to the current tenant, so that Citus routes them to one shard.
//! - `utility.rs`: utility statements before Citus sees them (a token role's `SET LOCAL` of
//!   the tenant variable, `COPY <isolated table> TO`).

pub mod planner;
pub mod routing;
pub mod utility;

use pgrx::pg_sys;

/// Installs floe's planner hook (ahead of Citus's when both are preloaded).
pub fn init() {
    planner::init();
}
use std::cell::Cell;

thread_local! {
    /// (local transaction id, Citus present) of the last look-up.
    static PRESENT: Cell<(u32, bool)> = const { Cell::new((0, false)) };
}

/// Whether the `citus` extension is installed in the current database.
pub fn present() -> bool {
    let lxid = crate::compat::local_transaction_id();
    let (seen, present) = PRESENT.get();
    if seen == lxid && lxid != 0 {
        return present;
    }
    // SAFETY: a catalog look-up by name on the backend thread, inside a transaction.
    let present =
        unsafe { pg_sys::get_extension_oid(c"citus".as_ptr(), true) } != pg_sys::InvalidOid;
    PRESENT.set((lxid, present));
    present
}

/// The distributed table a Citus shard (`<table>_<shard id>`) belongs to, when `name` is
/// one on this node: for messages that should name the table, not the shard.
pub fn table_of_shard(schema: &str, name: &str) -> Option<String> {
    let (_, id) = name.rsplit_once('_')?;
    let shard: i64 = id.parse().ok()?;
    if !present() {
        return None;
    }
    pgrx::Spi::get_one_with_args::<String>(
        "SELECT s.logicalrelid::regclass::text FROM pg_catalog.pg_dist_shard s
          JOIN pg_catalog.pg_class c ON c.oid = s.logicalrelid
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE s.shardid = $1 AND n.nspname = $2",
        &[shard.into(), schema.into()],
    )
    .ok()
    .flatten()
}
