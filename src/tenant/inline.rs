//! Statements that write read the tenant context directly, not through the policies'
//! sub-selects (machinery, called by floe's planner hook, `src/planner.rs`).
//!
//! floe's policies read the context in a sub-select, `tenant_id = (SELECT
//! floe.current_tenant())`: an InitPlan, evaluated once per statement by the leader, whose
//! value parallel workers receive (a worker cannot tell whether the leader's context was set in
//! this transaction, so it must not read the context itself). Planning that sub-select costs
//! every statement a few microseconds: 8-9 % of a single-row UPDATE (`tenant_rls.sh`). A
//! statement that writes (INSERT, UPDATE, DELETE, MERGE, or a query with a data-modifying
//! WITH) never runs in parallel workers, so there the sub-select buys nothing: for such a
//! statement the hook replaces each `(SELECT floe.current_tenant())` and `(SELECT
//! floe.tenant_admin_active())` of a policy (the security quals of its relations and its
//! WITH CHECK options) by the stable call itself, which is still an index condition
//! evaluated once per scan, raises the same errors, and in a WITH CHECK costs one call per
//! written row (~0.15 µs). Queries that only read keep the sub-select. Only floe's
//! policy shapes are touched: a comparison or an OR of them, whose operand is exactly that
//! sub-select; anything else, a user's own sub-select included, stays as written.

use pgrx::is_a;
use pgrx::pg_sys;
use std::ffi::CStr;

/// floe's functions a policy reads the context with.
const CONTEXT_FUNCTIONS: [&CStr; 3] = [
    c"current_tenant",
    c"tenant_admin_active",
    c"current_tenant_or_null",
];

struct Inline {
    /// floe's schema, looked up at the first candidate sub-select (most statements have none).
    floe_namespace: Option<pg_sys::Oid>,
    /// Sub-selects replaced so far.
    inlined: usize,
}

/// Inlines the context sub-selects of floe's policies in `parse` when it writes.
///
/// # Safety
/// `parse` is the query the planner was given, in the planner's memory context.
pub unsafe fn inline_context(parse: *mut pg_sys::Query) {
    // SAFETY: the caller's contract.
    unsafe {
        if parse.is_null()
            || ((*parse).commandType == pg_sys::CmdType::CMD_SELECT && !(*parse).hasModifyingCTE)
        {
            return;
        }
        let mut state = Inline {
            floe_namespace: None,
            inlined: 0,
        };
        walker(parse.cast(), (&mut state as *mut Inline).cast());
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn walker(node: *mut pg_sys::Node, ctx: *mut std::ffi::c_void) -> bool {
    if node.is_null() {
        return false;
    }
    // SAFETY: ctx is the Inline of inline_context; node is a node of the query tree.
    unsafe {
        let state = &mut *(ctx as *mut Inline);
        if is_a(node, pg_sys::NodeTag::T_Query) {
            let q = node as *mut pg_sys::Query;
            let before = state.inlined;
            for rte in list_items((*q).rtable) {
                let rte = rte as *mut pg_sys::RangeTblEntry;
                if (*rte).rtekind == pg_sys::RTEKind::RTE_RELATION {
                    for cell in list_cells((*rte).securityQuals) {
                        fix(state, cell);
                    }
                }
            }
            for wco in list_items((*q).withCheckOptions) {
                let wco = wco as *mut pg_sys::WithCheckOption;
                fix(state, (&raw mut (*wco).qual).cast());
            }
            // Without a sub-select left, the planner skips its passes that look for them.
            if state.inlined > before && (*q).hasSubLinks {
                (*q).hasSubLinks = pg_sys::query_tree_walker(
                    q,
                    Some(finds_sublink),
                    std::ptr::null_mut(),
                    pg_sys::QTW_IGNORE_RC_SUBQUERIES as i32,
                );
            }
            // CTEs, subqueries and sub-selects reach this walker as Query nodes.
            return pg_sys::query_tree_walker(q, Some(walker), ctx, 0);
        }
        pg_sys::expression_tree_walker(node, Some(walker), ctx)
    }
}

/// Whether a query's own expressions (not those of its subqueries and CTEs, which have
/// their own flag) hold a sub-select: Query.hasSubLinks as the parser would set it.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn finds_sublink(
    node: *mut pg_sys::Node,
    ctx: *mut std::ffi::c_void,
) -> bool {
    if node.is_null() {
        return false;
    }
    // SAFETY: node is a node of the query tree.
    unsafe {
        if is_a(node, pg_sys::NodeTag::T_SubLink) {
            return true;
        }
        if is_a(node, pg_sys::NodeTag::T_Query) {
            return false;
        }
        pg_sys::expression_tree_walker(node, Some(finds_sublink), ctx)
    }
}

/// Replaces the expression at `at` when it is a context sub-select, or looks into it when it
/// is a comparison or a boolean combination (the shapes of floe's policies and of several
/// permissive policies OR'ed together).
///
/// # Safety
/// `at` points at an expression node pointer of the query tree.
unsafe fn fix(state: &mut Inline, at: *mut *mut pg_sys::Node) {
    // SAFETY: the caller's contract; node types are checked before each cast.
    unsafe {
        let node = *at;
        if node.is_null() {
            return;
        }
        if is_a(node, pg_sys::NodeTag::T_SubLink) {
            if let Some(call) = context_call(state, node as *mut pg_sys::SubLink) {
                *at = pg_sys::copyObjectImpl(call.cast()).cast();
                state.inlined += 1;
            }
        } else if is_a(node, pg_sys::NodeTag::T_OpExpr) {
            for cell in list_cells((*(node as *mut pg_sys::OpExpr)).args) {
                fix(state, cell);
            }
        } else if is_a(node, pg_sys::NodeTag::T_BoolExpr) {
            for cell in list_cells((*(node as *mut pg_sys::BoolExpr)).args) {
                fix(state, cell);
            }
        }
    }
}

/// The call `f()` when `link` is exactly `(SELECT floe.f())` for one of floe's context
/// functions: a scalar sub-select with no FROM, WHERE, grouping, ordering or limit.
///
/// # Safety
/// `link` is a SubLink of the query tree.
unsafe fn context_call(
    state: &mut Inline,
    link: *mut pg_sys::SubLink,
) -> Option<*mut pg_sys::FuncExpr> {
    // SAFETY: the caller's contract; node types are checked before each cast.
    unsafe {
        if (*link).subLinkType != pg_sys::SubLinkType::EXPR_SUBLINK
            || !(*link).testexpr.is_null()
            || !is_a((*link).subselect, pg_sys::NodeTag::T_Query)
        {
            return None;
        }
        let q = (*link).subselect as *mut pg_sys::Query;
        let jointree = (*q).jointree;
        let bare = (*q).commandType == pg_sys::CmdType::CMD_SELECT
            && (*q).rtable.is_null()
            && (jointree.is_null()
                || ((*jointree).fromlist.is_null() && (*jointree).quals.is_null()))
            && (*q).cteList.is_null()
            && (*q).groupClause.is_null()
            && (*q).havingQual.is_null()
            && (*q).sortClause.is_null()
            && (*q).distinctClause.is_null()
            && (*q).limitCount.is_null()
            && (*q).limitOffset.is_null()
            && (*q).setOperations.is_null()
            && !(*q).hasAggs
            && !(*q).hasWindowFuncs
            && !(*q).hasTargetSRFs
            && !(*q).hasSubLinks
            && list_items((*q).targetList).len() == 1;
        if !bare {
            return None;
        }
        let te = pg_sys::list_nth((*q).targetList, 0) as *mut pg_sys::TargetEntry;
        let call = (*te).expr as *mut pg_sys::Node;
        let floe = *state
            .floe_namespace
            .get_or_insert_with(crate::privileged::floe_schema);
        (!(*te).resjunk && floe_call(call, floe, &CONTEXT_FUNCTIONS))
            .then_some(call as *mut pg_sys::FuncExpr)
    }
}

/// `node` is a call, without arguments, of one of floe's functions `names` (in schema
/// `floe`, InvalidOid when floe is not installed: then never).
///
/// # Safety
/// `node` is an expression node.
pub unsafe fn floe_call(node: *mut pg_sys::Node, floe: pg_sys::Oid, names: &[&CStr]) -> bool {
    // SAFETY: the caller's contract; node types are checked before each cast; syscache
    // look-ups of the function.
    unsafe {
        if floe == pg_sys::InvalidOid || !is_a(node, pg_sys::NodeTag::T_FuncExpr) {
            return false;
        }
        let f = node as *mut pg_sys::FuncExpr;
        if !(*f).args.is_null() || pg_sys::get_func_namespace((*f).funcid) != floe {
            return false;
        }
        let name = pg_sys::get_func_name((*f).funcid);
        !name.is_null() && names.contains(&CStr::from_ptr(name))
    }
}

/// The elements of a pointer list (none for NIL).
///
/// # Safety
/// `list` is NIL or a pointer list.
unsafe fn list_items(list: *mut pg_sys::List) -> Vec<*mut pg_sys::Node> {
    // SAFETY: the caller's contract.
    unsafe { list_cells(list).into_iter().map(|cell| *cell).collect() }
}

/// Where each element of a pointer list is stored, to read or replace it.
///
/// # Safety
/// `list` is NIL or a pointer list, not changed in length while the pointers are used.
unsafe fn list_cells(list: *mut pg_sys::List) -> Vec<*mut *mut pg_sys::Node> {
    // SAFETY: the caller's contract; cells are contiguous in a List since PostgreSQL 13.
    unsafe {
        if list.is_null() {
            return Vec::new();
        }
        (0..(*list).length as usize)
            .map(|i| (&raw mut (*(*list).elements.add(i)).ptr_value).cast())
            .collect()
    }
}
