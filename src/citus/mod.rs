//! floe on Citus (issue #25): what floe does differently in a database where the `citus`
//! extension is installed.
//!
//! - `present()`: whether this database has Citus (read once per transaction). Tenant
//!   isolation then writes its policies without a sub-select (Citus propagates policies to
//!   the shards and refuses sub-selects in them).
//! - The planner pass that pins queries on tenant-isolated tables to the current tenant, so
//!   that Citus routes them to one shard, is tenant isolation's (`tenant/shard_pin.rs`,
//!   `tenant/shard_route.rs`), as is the refusal of a token role's `SET LOCAL`
//!   (`tenant/set_context.rs`): this module holds Citus's facts and never imports `tenant`.
//! - `nodes.rs` (pure): the `citus.workers` health check (floe on every worker, at the
//!   coordinator's version).
//! - `catalog.rs` (machinery): Citus's catalog and functions through SPI (shards, distribution
//!   columns, the workers' floe versions, `citus.enable_unsafe_triggers` for floe's DDL).
//! - `utility.rs`: `COPY <isolated table> TO` as a query, before Citus sees it.

mod catalog;
pub mod nodes;
pub mod utility;

pub use catalog::{
    distribute_beside, distribution_column, health_checks, is_citus_table, refuse_citus_table,
    refuse_shard, table_of_shard, with_unsafe_triggers,
};

use pgrx::pg_sys;
use std::cell::Cell;

thread_local! {
    /// (local transaction id, Citus present) of the last look-up.
    static PRESENT: Cell<(u32, bool)> = const { Cell::new((0, false)) };
}

/// Whether Citus's library is loaded in this backend (it defines its settings then): a
/// setting look-up, so that servers without Citus never read pg_extension for it.
pub(crate) fn loaded() -> bool {
    // SAFETY: a read of a setting by name; missing_ok.
    unsafe {
        !pg_sys::GetConfigOption(c"citus.propagate_set_commands".as_ptr(), true, false).is_null()
    }
}

/// Whether the `citus` extension is installed in the current database (Citus's library
/// loaded, then the catalog read once per transaction).
pub fn present() -> bool {
    if !loaded() {
        return false;
    }
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
