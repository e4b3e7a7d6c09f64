//! floe's planner pass on Citus: pins queries on tenant-isolated tables to the current
//! tenant's constant (see `shard_route.rs`), ahead of Citus's planner, which then routes them to
//! one shard. The hook itself is `src/planner.rs`.
//!
//! floe is loaded after Citus (`shared_preload_libraries = 'citus,floe'`: Citus insists on
//! being first), so floe's hook wraps Citus's and sees each query first. The hook does
//! nothing unless the database has Citus.
//!
//! A pinned constant stays in a cached plan (a prepared statement, PL/pgSQL): such a plan
//! would keep the tenant it was planned under. floe resets the backend's plan cache at the
//! end of a transaction that pinned a query, and when `floe.set_tenant()` changes the tenant
//! after a pin in the same transaction, so the next use re-plans under the tenant of its
//! transaction. (A stale plan could not show another tenant's rows anyway: the workers'
//! policies filter by the tenant the transaction set; it would find nothing.)

use super::shard_route::{self, Policies, Route};
use crate::error::FloeError;
use pgrx::is_a;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::Cell;

thread_local! {
    /// A query was pinned in the current transaction (the plan cache is reset at its end).
    static PINNED: Cell<bool> = const { Cell::new(false) };
    static XACT_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

/// Pins the query's relations under floe's tenant policy to the current tenant, when the
/// database has Citus and `floe.citus_tenant_routing` is on (called by floe's planner hook,
/// `src/planner.rs`).
pub fn route(parse: *mut pg_sys::Query) -> Result<(), FloeError> {
    if !parse.is_null() && crate::gucs::citus_tenant_routing() && crate::citus::present() {
        pin_tenant(parse)?;
    }
    Ok(())
}

/// What the walk over a query needs and finds.
struct Walk {
    /// The query the planner was given: its UPDATE/DELETE target is pinned, a modifying CTE's
    /// is not (Citus fails on a modifying CTE pruned to no shard: "could not find valid entry
    /// for shard 0", where the application's own filter names another tenant).
    top: *mut pg_sys::Query,
    /// floe's schema and uuid's equality operator, looked up at the first relation under
    /// row security (most queries have none): `resolved` says whether they were.
    resolved: Option<bool>,
    floe_namespace: pg_sys::Oid,
    uuid_eq: pg_sys::Oid,
    /// The context and admin mode, read at the first relation with floe's policy.
    context: Option<(Result<uuid::Uuid, super::context::ContextError>, bool)>,
    error: Option<FloeError>,
}

impl Walk {
    /// Looks up floe's schema and uuid's equality operator once; false when either is
    /// missing (floe's policies cannot be there then).
    fn resolve(&mut self) -> bool {
        if let Some(ok) = self.resolved {
            return ok;
        }
        // SAFETY: catalog look-ups on the backend thread, inside the planning transaction.
        unsafe {
            self.floe_namespace = crate::privileged::floe_schema();
            let tc = pg_sys::lookup_type_cache(pg_sys::UUIDOID, pg_sys::TYPECACHE_EQ_OPR as i32);
            if !tc.is_null() {
                self.uuid_eq = (*tc).eq_opr;
            }
        }
        let ok = self.floe_namespace != pg_sys::InvalidOid && self.uuid_eq != pg_sys::InvalidOid;
        self.resolved = Some(ok);
        ok
    }

    /// What to do with a relation under floe's policy, from the context read once per walk.
    fn route(&mut self) -> Route {
        let (context, admin) = self
            .context
            .get_or_insert_with(super::policy_context)
            .clone();
        shard_route::decide(Policies::FloeTenant, context, admin)
    }
}

fn pin_tenant(parse: *mut pg_sys::Query) -> Result<(), FloeError> {
    let mut walk = Walk {
        top: parse,
        resolved: None,
        floe_namespace: pg_sys::InvalidOid,
        uuid_eq: pg_sys::InvalidOid,
        context: None,
        error: None,
    };
    // SAFETY: walks the query the planner was given; the walker only appends to security
    // quals, in the planner's memory context.
    unsafe {
        walker(parse.cast(), (&mut walk as *mut Walk).cast());
    }
    match walk.error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn walker(node: *mut pg_sys::Node, ctx: *mut std::ffi::c_void) -> bool {
    if node.is_null() {
        return false;
    }
    // SAFETY: ctx is the Walk of pin_tenant; node is a node of the query tree.
    unsafe {
        let walk = &mut *(ctx as *mut Walk);
        if walk.error.is_some() {
            return true;
        }
        if is_a(node, pg_sys::NodeTag::T_Query) {
            let q = node as *mut pg_sys::Query;
            let nested_target = if q != walk.top
                && matches!(
                    (*q).commandType,
                    pg_sys::CmdType::CMD_UPDATE | pg_sys::CmdType::CMD_DELETE
                ) {
                (*q).resultRelation
            } else {
                0
            };
            let rtable = (*q).rtable;
            let n = if rtable.is_null() {
                0
            } else {
                (*rtable).length
            };
            for i in 0..n {
                let rte = pg_sys::list_nth(rtable, i) as *mut pg_sys::RangeTblEntry;
                if (*rte).rtekind == pg_sys::RTEKind::RTE_RELATION
                    && !(*rte).securityQuals.is_null()
                    && i + 1 != nested_target
                {
                    examine(walk, rte);
                    if walk.error.is_some() {
                        return true;
                    }
                }
            }
            if (*q).commandType == pg_sys::CmdType::CMD_INSERT && (*q).resultRelation > 0 {
                fill_tenant(walk, q);
                if walk.error.is_some() {
                    return true;
                }
            }
            // Subqueries, CTEs and sub-selects reach this walker as Query nodes.
            return pg_sys::query_tree_walker(q, Some(walker), ctx, 0);
        }
        pg_sys::expression_tree_walker(node, Some(walker), ctx)
    }
}

/// Pins one relation whose security quals are floe's tenant policy.
///
/// # Safety
/// `rte` is a relation entry of the query being planned.
unsafe fn examine(walk: &mut Walk, rte: *mut pg_sys::RangeTblEntry) {
    // SAFETY: the caller's contract; list cells hold expression nodes.
    unsafe {
        if !walk.resolve() {
            return;
        }
        let quals = (*rte).securityQuals;
        let mut tenant_var: Option<*mut pg_sys::Var> = None;
        for i in 0..(*quals).length {
            let qual = pg_sys::list_nth(quals, i) as *mut pg_sys::Node;
            if let Some(var) = floe_policy(walk, qual) {
                tenant_var = Some(var);
            } else if already_pinned(walk, qual) {
                // Planned before (a subquery Citus plans again): pinned once is enough.
                return;
            }
        }
        let Some(var) = tenant_var else { return };
        match walk.route() {
            Route::Leave => {}
            Route::Refuse(e) => walk.error = Some(e.into()),
            Route::Pin(tenant) => {
                let value = uuid_const(tenant);
                let column = pg_sys::copyObjectImpl(var.cast()) as *mut pg_sys::Expr;
                let pin = pg_sys::make_opclause(
                    walk.uuid_eq,
                    pg_sys::BOOLOID,
                    false,
                    column,
                    value.cast(),
                    pg_sys::InvalidOid,
                    pg_sys::InvalidOid,
                );
                (*rte).securityQuals = pg_sys::lappend(quals, pin.cast());
                note_pinned();
            }
        }
    }
}

/// An INSERT into a tenant-isolated table that leaves the tenant column out (or NULL) gets
/// the current tenant, as floe's guard trigger fills it on one node: Citus must know the
/// distribution column's value before any trigger runs ("cannot perform an INSERT without a
/// partition column value"), and refuses a default on that column.
///
/// # Safety
/// `q` is an INSERT query of the tree being planned.
unsafe fn fill_tenant(walk: &mut Walk, q: *mut pg_sys::Query) {
    // SAFETY: the caller's contract; node types are checked before each cast.
    unsafe {
        let checks = (*q).withCheckOptions;
        // No row security on the target (most INSERTs): nothing to look up.
        if checks.is_null() || !walk.resolve() {
            return;
        }
        let n = (*checks).length;
        let mut column = None;
        for i in 0..n {
            let wco = pg_sys::list_nth(checks, i) as *mut pg_sys::WithCheckOption;
            if (*wco).kind == pg_sys::WCOKind::WCO_RLS_INSERT_CHECK {
                if let Some(var) = floe_policy(walk, (*wco).qual) {
                    column = Some((*var).varattno);
                }
            }
        }
        let Some(attno) = column else { return };
        let targets = (*q).targetList;
        let len = if targets.is_null() {
            0
        } else {
            (*targets).length
        };
        let mut position = len;
        for i in 0..len {
            let te = pg_sys::list_nth(targets, i) as *mut pg_sys::TargetEntry;
            if (*te).resno == attno {
                let given = (*te).expr as *mut pg_sys::Node;
                if !(is_a(given, pg_sys::NodeTag::T_Const)
                    && (*(given as *mut pg_sys::Const)).constisnull)
                {
                    return;
                }
                position = i;
                break;
            }
            if (*te).resno > attno {
                position = i;
                break;
            }
        }
        let tenant = match walk.route() {
            Route::Pin(t) => t,
            // Admin mode names the tenant in the row; the guard and policy judge it.
            Route::Leave => return,
            Route::Refuse(e) => {
                walk.error = Some(e.into());
                return;
            }
        };
        let rte =
            pg_sys::list_nth((*q).rtable, (*q).resultRelation - 1) as *mut pg_sys::RangeTblEntry;
        let name = pg_sys::get_attname((*rte).relid, attno, false);
        let te = pg_sys::makeTargetEntry(uuid_const(tenant).cast(), attno, name, false);
        if position < len
            && (*(pg_sys::list_nth(targets, position) as *mut pg_sys::TargetEntry)).resno == attno
        {
            let cell = (*targets).elements.add(position as usize);
            (*cell).ptr_value = te.cast();
        } else {
            (*q).targetList = pg_sys::list_insert_nth(targets, position, te.cast());
        }
    }
}

/// A uuid constant, in the current memory context.
///
/// # Safety
/// Inside a transaction (palloc).
unsafe fn uuid_const(tenant: uuid::Uuid) -> *mut pg_sys::Const {
    // SAFETY: the caller's contract.
    unsafe {
        let bytes = pg_sys::palloc(16) as *mut u8;
        std::ptr::copy_nonoverlapping(tenant.as_bytes().as_ptr(), bytes, 16);
        pg_sys::makeConst(
            pg_sys::UUIDOID,
            -1,
            pg_sys::InvalidOid,
            16,
            pg_sys::Datum::from(bytes),
            false,
            false,
        )
    }
}

/// The tenant column of `qual` when it is floe's tenant policy: `column =
/// floe.current_tenant()`, alone or OR'ed with `floe.tenant_admin_active()` only.
///
/// # Safety
/// `qual` is an expression node.
unsafe fn floe_policy(walk: &Walk, qual: *mut pg_sys::Node) -> Option<*mut pg_sys::Var> {
    // SAFETY: the caller's contract; node types are checked before each cast.
    unsafe {
        if is_a(qual, pg_sys::NodeTag::T_BoolExpr) {
            let b = qual as *mut pg_sys::BoolExpr;
            if (*b).boolop != pg_sys::BoolExprType::OR_EXPR {
                return None;
            }
            let mut var = None;
            for i in 0..(*(*b).args).length {
                let arg = pg_sys::list_nth((*b).args, i) as *mut pg_sys::Node;
                if let Some(v) = tenant_equality(walk, arg) {
                    var = Some(v);
                } else if !super::floe_call(arg, walk.floe_namespace, &[c"tenant_admin_active"]) {
                    return None;
                }
            }
            return var;
        }
        tenant_equality(walk, qual)
    }
}

/// `column = floe.current_tenant()` (uuid equality): the column.
///
/// # Safety
/// `node` is an expression node.
unsafe fn tenant_equality(walk: &Walk, node: *mut pg_sys::Node) -> Option<*mut pg_sys::Var> {
    // SAFETY: the caller's contract; node types are checked before each cast.
    unsafe {
        if !is_a(node, pg_sys::NodeTag::T_OpExpr) {
            return None;
        }
        let op = node as *mut pg_sys::OpExpr;
        if (*op).opno != walk.uuid_eq || (*(*op).args).length != 2 {
            return None;
        }
        let left = pg_sys::list_nth((*op).args, 0) as *mut pg_sys::Node;
        let right = pg_sys::list_nth((*op).args, 1) as *mut pg_sys::Node;
        let (var, call) = if is_a(left, pg_sys::NodeTag::T_Var) {
            (left, right)
        } else {
            (right, left)
        };
        let var = var as *mut pg_sys::Var;
        (is_a(var.cast(), pg_sys::NodeTag::T_Var)
            && (*var).varlevelsup == 0
            && super::floe_call(call, walk.floe_namespace, &[c"current_tenant"]))
        .then_some(var)
    }
}

/// `qual` is a pin floe added before: `column = '<uuid>'`.
///
/// # Safety
/// `qual` is an expression node.
unsafe fn already_pinned(walk: &Walk, qual: *mut pg_sys::Node) -> bool {
    // SAFETY: the caller's contract; node types are checked before each cast.
    unsafe {
        if !is_a(qual, pg_sys::NodeTag::T_OpExpr) {
            return false;
        }
        let op = qual as *mut pg_sys::OpExpr;
        (*op).opno == walk.uuid_eq
            && (*(*op).args).length == 2
            && is_a(
                pg_sys::list_nth((*op).args, 0).cast(),
                pg_sys::NodeTag::T_Var,
            )
            && is_a(
                pg_sys::list_nth((*op).args, 1).cast(),
                pg_sys::NodeTag::T_Const,
            )
    }
}

fn note_pinned() {
    PINNED.set(true);
    if !XACT_CALLBACK.get() {
        // SAFETY: registers a callback for the life of the backend (once).
        unsafe { pg_sys::RegisterXactCallback(Some(on_xact), std::ptr::null_mut()) };
        XACT_CALLBACK.set(true);
    }
}

/// The tenant changes in a transaction that pinned a query: plans cached under the old one
/// are planned again.
pub fn tenant_changed() {
    if PINNED.get() {
        // SAFETY: marks the backend's cached plans invalid; no catalog access.
        unsafe { pg_sys::ResetPlanCache() };
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_xact(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    if matches!(
        event,
        pg_sys::XactEvent::XACT_EVENT_COMMIT
            | pg_sys::XactEvent::XACT_EVENT_ABORT
            | pg_sys::XactEvent::XACT_EVENT_PARALLEL_COMMIT
            | pg_sys::XactEvent::XACT_EVENT_PARALLEL_ABORT
            | pg_sys::XactEvent::XACT_EVENT_PREPARE
    ) && PINNED.get()
    {
        PINNED.set(false);
        // SAFETY: marks the backend's cached plans invalid; no catalog access.
        unsafe { pg_sys::ResetPlanCache() };
    }
}
