//! Utility statements on a Citus coordinator, before Citus sees them (floe's ProcessUtility
//! hook runs ahead of Citus's; the tenant module's `SET LOCAL` refusal, `tenant/set_context.rs`,
//! runs just before this):
//!
//! - `COPY <isolated table> TO STDOUT` becomes `COPY (SELECT … FROM <table>) TO STDOUT`, as
//!   PostgreSQL itself does for a table with row-level security: Citus copies a table out
//!   shard by shard outside the transaction's remote transactions, where the workers see no
//!   tenant (every such COPY failed); a query is planned, pinned and forwarded like any other.

use crate::error::FloeError;
use pgrx::is_a;
use pgrx::pg_sys;

/// The statement to run instead of `pstmt` (or `pstmt` itself); an error refuses it.
///
/// # Safety
/// `pstmt` is the utility statement ProcessUtility was given.
pub unsafe fn before(
    pstmt: *mut pg_sys::PlannedStmt,
) -> Result<*mut pg_sys::PlannedStmt, FloeError> {
    // SAFETY: the caller's contract; node types are checked before each cast.
    unsafe {
        if pstmt.is_null() || (*pstmt).utilityStmt.is_null() {
            return Ok(pstmt);
        }
        let stmt = (*pstmt).utilityStmt;
        if !is_a(stmt, pg_sys::NodeTag::T_CopyStmt) || !super::present() {
            return Ok(pstmt);
        }
        copy_to_as_query(pstmt)
    }
}

/// `COPY t [(cols)] TO STDOUT` on a table whose row-level security applies to the current
/// user: the same COPY of `SELECT cols FROM t`.
///
/// # Safety
/// `pstmt` holds a CopyStmt.
unsafe fn copy_to_as_query(
    pstmt: *mut pg_sys::PlannedStmt,
) -> Result<*mut pg_sys::PlannedStmt, FloeError> {
    // SAFETY: the caller's contract; the new nodes are built in the current memory context,
    // which outlives the statement.
    unsafe {
        let copy = (*pstmt).utilityStmt as *mut pg_sys::CopyStmt;
        if (*copy).is_from || (*copy).relation.is_null() || !(*copy).query.is_null() {
            return Ok(pstmt);
        }
        let relid = pg_sys::RangeVarGetRelidExtended(
            (*copy).relation,
            pg_sys::NoLock as pg_sys::LOCKMODE,
            pg_sys::RVROption::RVR_MISSING_OK,
            None,
            std::ptr::null_mut(),
        );
        if relid == pg_sys::InvalidOid
            || pg_sys::check_enable_rls(relid, pg_sys::InvalidOid, true)
                != pg_sys::CheckEnableRlsResult::RLS_ENABLED as i32
        {
            return Ok(pstmt);
        }
        let mut targets = std::ptr::null_mut::<pg_sys::List>();
        if (*copy).attlist.is_null() {
            let star =
                pg_sys::palloc0(std::mem::size_of::<pg_sys::A_Star>()) as *mut pg_sys::A_Star;
            (*star).type_ = pg_sys::NodeTag::T_A_Star;
            targets = pg_sys::lappend(
                targets,
                column_target(pg_sys::lappend(std::ptr::null_mut(), star.cast())).cast(),
            );
        } else {
            for i in 0..(*(*copy).attlist).length {
                // The column names of the attlist are String nodes.
                let name = pg_sys::list_nth((*copy).attlist, i);
                let fields = pg_sys::lappend(std::ptr::null_mut(), pg_sys::copyObjectImpl(name));
                targets = pg_sys::lappend(targets, column_target(fields).cast());
            }
        }
        let select =
            pg_sys::palloc0(std::mem::size_of::<pg_sys::SelectStmt>()) as *mut pg_sys::SelectStmt;
        (*select).type_ = pg_sys::NodeTag::T_SelectStmt;
        (*select).targetList = targets;
        (*select).fromClause = pg_sys::lappend(
            std::ptr::null_mut(),
            pg_sys::copyObjectImpl((*copy).relation.cast()),
        );
        // The rest zeroed, as PostgreSQL's own COPY-with-RLS conversion leaves it.
        let new = pg_sys::copyObjectImpl(pstmt.cast()) as *mut pg_sys::PlannedStmt;
        let new_copy = (*new).utilityStmt as *mut pg_sys::CopyStmt;
        (*new_copy).relation = std::ptr::null_mut();
        (*new_copy).attlist = std::ptr::null_mut();
        (*new_copy).query = select.cast();
        Ok(new)
    }
}

/// A `ResTarget` of the column reference `fields`.
///
/// # Safety
/// `fields` is a list of String or A_Star nodes.
unsafe fn column_target(fields: *mut pg_sys::List) -> *mut pg_sys::ResTarget {
    // SAFETY: fresh nodes in the current memory context.
    unsafe {
        let column =
            pg_sys::palloc0(std::mem::size_of::<pg_sys::ColumnRef>()) as *mut pg_sys::ColumnRef;
        (*column).type_ = pg_sys::NodeTag::T_ColumnRef;
        (*column).fields = fields;
        (*column).location = -1;
        let target =
            pg_sys::palloc0(std::mem::size_of::<pg_sys::ResTarget>()) as *mut pg_sys::ResTarget;
        (*target).type_ = pg_sys::NodeTag::T_ResTarget;
        (*target).val = column.cast();
        (*target).location = -1;
        target
    }
}
