//! floe's planner hook: each module's pass over a query before the planner (and Citus's
//! planner, when Citus is preloaded first) sees it. Wiring only:
//! - `tenant::inline_context`: statements that write read the tenant context directly,
//!   not through the policies' sub-selects (`src/tenant/inline.rs`);
//! - `tenant::pin_to_shard`: on Citus, queries on tenant-isolated tables are pinned to the
//!   current tenant, so that Citus routes them to one shard (`src/tenant/shard_pin.rs`).

use pgrx::pg_sys;
use pgrx::prelude::*;

static mut PREV_PLANNER: pg_sys::planner_hook_type = None;

/// Installs the hook (in `_PG_init`), chaining the one installed before (Citus's).
pub fn init() {
    // SAFETY: in _PG_init, before any query is planned; the previous hook is chained.
    unsafe {
        PREV_PLANNER = pg_sys::planner_hook;
        pg_sys::planner_hook = Some(floe_planner);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn floe_planner(
    parse: *mut pg_sys::Query,
    query_string: *const std::ffi::c_char,
    cursor_options: std::ffi::c_int,
    bound_params: pg_sys::ParamListInfo,
) -> *mut pg_sys::PlannedStmt {
    // SAFETY: the query the planner was given, in the planner's memory context.
    unsafe { crate::tenant::inline_context(parse) };
    if let Err(e) = crate::tenant::pin_to_shard(parse) {
        e.raise();
    }
    // SAFETY: the planner's own arguments, passed on unchanged.
    unsafe {
        match PREV_PLANNER {
            Some(prev) => prev(parse, query_string, cursor_options, bound_params),
            None => pg_sys::standard_planner(parse, query_string, cursor_options, bound_params),
        }
    }
}
