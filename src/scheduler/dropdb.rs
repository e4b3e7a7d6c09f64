//! The ProcessUtility hook: DROP DATABASE, CREATE DATABASE ... TEMPLATE and DROP EXTENSION
//! floe stop the database's scheduler first (a connected worker makes the first two fail)
//! (machinery: the registry in `wake.rs`).

use super::wake::{libc_kill, release, release_now_and_at_commit, unix_secs, REGISTRY};
use pgrx::prelude::*;
use std::time::Duration;

static mut PREV_UTILITY: pg_sys::ProcessUtility_hook_type = None;

pub(super) fn install_utility_hook() {
    // SAFETY: _PG_init of the postmaster, single-threaded.
    unsafe {
        PREV_UTILITY = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(floe_process_utility);
    }
}

/// Whether `stmt` is a DROP EXTENSION that names floe.
///
/// # Safety
/// `stmt` must be a valid parse node.
unsafe fn drops_floe(stmt: *mut pg_sys::Node) -> bool {
    unsafe {
        if (*stmt).type_ != pg_sys::NodeTag::T_DropStmt {
            return false;
        }
        let drop = stmt as *mut pg_sys::DropStmt;
        if (*drop).removeType != pg_sys::ObjectType::OBJECT_EXTENSION {
            return false;
        }
        let names = pgrx::list::PgList::<pg_sys::Node>::from_pg((*drop).objects);
        let found = names.iter_ptr().any(|node| {
            !node.is_null()
                && (*node).type_ == pg_sys::NodeTag::T_String
                && !(*(node as *mut pg_sys::String)).sval.is_null()
                && std::ffi::CStr::from_ptr((*(node as *mut pg_sys::String)).sval).to_bytes()
                    == b"floe"
        });
        found
    }
}

/// The database CREATE DATABASE copies (its TEMPLATE option), if `stmt` is one that names it.
///
/// # Safety
/// `stmt` must be a valid parse node.
unsafe fn template_of(stmt: *mut pg_sys::Node) -> Option<pg_sys::Oid> {
    unsafe {
        if (*stmt).type_ != pg_sys::NodeTag::T_CreatedbStmt {
            return None;
        }
        let create = stmt as *mut pg_sys::CreatedbStmt;
        let options = pgrx::list::PgList::<pg_sys::DefElem>::from_pg((*create).options);
        let template = options.iter_ptr().find(|d| {
            !d.is_null()
                && !(**d).defname.is_null()
                && std::ffi::CStr::from_ptr((**d).defname).to_bytes() == b"template"
        })?;
        let name = pg_sys::defGetString(template);
        let oid = pg_sys::get_database_oid(name, true);
        (oid != pg_sys::InvalidOid).then_some(oid)
    }
}

/// Before DROP DATABASE (of that database), CREATE DATABASE ... TEMPLATE (of the template) or
/// DROP EXTENSION floe (in this one), stops the database's scheduler and waits (up to 5 s) for
/// it: a connected worker would make DROP DATABASE and CREATE DATABASE fail, and a running
/// job would hold up DROP EXTENSION until it ends. Returns the template's oid after stopping
/// its scheduler for CREATE DATABASE (which the caller lets start again afterwards).
fn stop_scheduler_before_dropdb(stmt: *mut pg_sys::Node) -> Option<u32> {
    // SAFETY: `stmt` is a valid parse node handed to ProcessUtility.
    unsafe {
        if stmt.is_null() {
            return None;
        }
        let template = template_of(stmt);
        let (dboid, hold) = if (*stmt).type_ == pg_sys::NodeTag::T_DropdbStmt {
            let drop = stmt as *mut pg_sys::DropdbStmt;
            (pg_sys::get_database_oid((*drop).dbname, true), 60)
        } else if let Some(oid) = template {
            // Held off while CREATE DATABASE starts copying; a scheduler started later waits
            // for the copy on the database's lock, which is harmless.
            (oid, 10)
        } else if drops_floe(stmt) {
            // A DROP EXTENSION rolled back lets the scheduler return at once.
            let dboid = pg_sys::MyDatabaseId.to_u32();
            pgrx::register_xact_callback(pgrx::PgXactCallbackEvent::Abort, move || release(dboid));
            (pg_sys::MyDatabaseId, 60)
        } else {
            return None;
        };
        if dboid == pg_sys::InvalidOid {
            return None;
        }
        let dboid = dboid.to_u32();
        let pid = {
            let mut reg = REGISTRY.exclusive();
            match reg.slot_mut(dboid) {
                Some(slot) => {
                    slot.dropping_until = unix_secs() + hold;
                    slot.pid
                }
                None => 0,
            }
        };
        let template = template.map(|_| dboid);
        if pid <= 0 {
            return template;
        }
        libc_kill(pid, 15);
        for _ in 0..500 {
            if libc_kill(pid, 0) != 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
            pg_sys::check_for_interrupts!();
        }
        template
    }
}

/// What both hook signatures do before the statement runs: on a Citus coordinator, before
/// Citus sees it, a token role's `SET LOCAL` of the tenant refused and `COPY <isolated table>
/// TO` made a query; before a DROP/CREATE DATABASE, the scheduler stopped. Returns the
/// statement to run and what [`after_createdb`] needs.
///
/// # Safety
/// `pstmt` is the statement ProcessUtility was given.
unsafe fn before_utility(
    pstmt: *mut pg_sys::PlannedStmt,
) -> (*mut pg_sys::PlannedStmt, Option<u32>) {
    // SAFETY: the caller's contract; each callee checks the node types it reads.
    unsafe {
        if let Err(e) = crate::tenant::refuse_token_role_set(pstmt) {
            e.raise()
        }
        let pstmt = match crate::citus::utility::before(pstmt) {
            Ok(p) => p,
            Err(e) => e.raise(),
        };
        let template = if pstmt.is_null() {
            None
        } else {
            stop_scheduler_before_dropdb((*pstmt).utilityStmt)
        };
        (pstmt, template)
    }
}

/// After CREATE DATABASE ... TEMPLATE: the template's scheduler may start again, and the new
/// database (a copy of one with floe) gets its own (the launcher sees it in pg_database only
/// after the commit).
fn after_createdb(template: Option<u32>) {
    if let Some(dboid) = template {
        release_now_and_at_commit(dboid);
    }
}

// The signature is Postgres's ProcessUtility_hook_type.
#[cfg(not(feature = "pg13"))]
#[allow(clippy::too_many_arguments)]
#[pg_guard]
unsafe extern "C-unwind" fn floe_process_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const std::ffi::c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    query_env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    unsafe {
        let (pstmt, template) = before_utility(pstmt);
        match PREV_UTILITY {
            Some(prev) => prev(
                pstmt,
                query_string,
                read_only_tree,
                context,
                params,
                query_env,
                dest,
                qc,
            ),
            None => pg_sys::standard_ProcessUtility(
                pstmt,
                query_string,
                read_only_tree,
                context,
                params,
                query_env,
                dest,
                qc,
            ),
        }
        after_createdb(template);
    }
}

#[cfg(feature = "pg13")]
#[pg_guard]
unsafe extern "C-unwind" fn floe_process_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const std::ffi::c_char,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    query_env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    unsafe {
        let (pstmt, template) = before_utility(pstmt);
        match PREV_UTILITY {
            Some(prev) => prev(pstmt, query_string, context, params, query_env, dest, qc),
            None => pg_sys::standard_ProcessUtility(
                pstmt,
                query_string,
                context,
                params,
                query_env,
                dest,
                qc,
            ),
        }
        after_createdb(template);
    }
}
