//! What only floe's scheduler worker process may do, and whether this process is one: running
//! one utility statement as a top-level command, outside any transaction block (what `DETACH
//! PARTITION ... CONCURRENTLY` requires and what SPI cannot give: SPI statements are never
//! top-level), between its transactions, much as `exec_simple_query` would for a client.
//! Machinery below both the scheduler (which marks its process) and the partition manager
//! (which detaches concurrently when it runs there), so neither imports the other for it.

use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use std::ffi::CString;

static IS_SCHEDULER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Marks this process as a floe scheduler worker (at its start).
pub fn mark_scheduler_worker() {
    IS_SCHEDULER.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Whether this process is a floe scheduler worker.
pub fn is_scheduler_worker() -> bool {
    IS_SCHEDULER.load(std::sync::atomic::Ordering::Relaxed)
}

/// Runs `sql` (exactly one utility statement) as the worker's own role in its own
/// transaction (the statement may commit and start more, as DETACH CONCURRENTLY does), under
/// `lock_timeout` (milliseconds; 0 for none). Returns the error message if it failed; the
/// transaction is then aborted and the worker goes on. No user switch: a role switched
/// inside would outlive the statement's own commits (and Postgres asserts no security
/// context is set when a transaction starts), so callers run only statements that execute
/// no code of the table's owner.
pub fn run_top_level(sql: &str, lock_timeout_ms: i32) -> Result<(), String> {
    let text = CString::new(sql).map_err(|_| "statement contains a NUL byte".to_string())?;
    let timeout = CString::new(lock_timeout_ms.max(0).to_string()).unwrap_or_default();
    // SAFETY: called by the scheduler worker between transactions. The parse tree and the
    // plan live in a context of our own that outlives the transactions the statement may
    // commit and start, and is deleted at the end.
    unsafe {
        let ctx = pg_sys::AllocSetContextCreateInternal(
            pg_sys::TopMemoryContext,
            c"floe top-level statement".as_ptr(),
            pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
        );
        let (mut saved_user, mut saved_ctx) = (pg_sys::InvalidOid, 0);
        pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_ctx);
        let result = PgTryBuilder::new(|| {
            pg_sys::SetCurrentStatementStartTimestamp();
            pg_sys::StartTransactionCommand();
            pg_sys::SetConfigOption(
                c"lock_timeout".as_ptr(),
                timeout.as_ptr(),
                pg_sys::GucContext::PGC_SUSET,
                pg_sys::GucSource::PGC_S_SESSION,
            );
            pg_sys::MemoryContextSwitchTo(ctx);
            let parsed = pg_sys::pg_parse_query(text.as_ptr());
            if parsed.is_null() || (*parsed).length != 1 {
                error!("floe: a top-level statement must be exactly one statement");
            }
            let raw = (*(*parsed).elements).ptr_value as *mut pg_sys::RawStmt;
            let pstmt = pg_sys::palloc0(std::mem::size_of::<pg_sys::PlannedStmt>())
                as *mut pg_sys::PlannedStmt;
            (*pstmt).type_ = pg_sys::NodeTag::T_PlannedStmt;
            (*pstmt).commandType = pg_sys::CmdType::CMD_UTILITY;
            (*pstmt).canSetTag = true;
            (*pstmt).utilityStmt = (*raw).stmt;
            (*pstmt).stmt_location = (*raw).stmt_location;
            (*pstmt).stmt_len = (*raw).stmt_len;
            // Through an (unnamed, invisible) portal as exec_simple_query does: the portal
            // keeps the snapshot and the memory such statements expect across the commits
            // they make themselves.
            let portal = pg_sys::CreatePortal(c"".as_ptr(), true, true);
            (*portal).visible = false;
            let stmts = pg_sys::lappend(std::ptr::null_mut(), pstmt.cast());
            pg_sys::PortalDefineQuery(
                portal,
                std::ptr::null(),
                text.as_ptr(),
                pg_sys::CreateCommandTag((*raw).stmt),
                stmts,
                std::ptr::null_mut(),
            );
            pg_sys::PortalStart(portal, std::ptr::null_mut(), 0, std::ptr::null_mut());
            let dest = pg_sys::CreateDestReceiver(pg_sys::CommandDest::DestNone);
            let mut qc: pg_sys::QueryCompletion = std::mem::zeroed();
            crate::compat::portal_run(portal, dest, &mut qc);
            pg_sys::PortalDrop(portal, false);
            pg_sys::CommitTransactionCommand();
            Ok(())
        })
        .catch_others(|e| {
            pg_sys::MemoryContextSwitchTo(pg_sys::TopMemoryContext);
            // Releases locks, snapshots and memory of the statement.
            pg_sys::AbortCurrentTransaction();
            pg_sys::SetUserIdAndSecContext(saved_user, saved_ctx);
            Err(match e {
                CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => {
                    r.message().to_string()
                }
                CaughtError::RustPanic { ereport, .. } => ereport.message().to_string(),
            })
        })
        .execute();
        // Back to the worker's own setting (a session-level SET survives the abort).
        pg_sys::StartTransactionCommand();
        pg_sys::SetConfigOption(
            c"lock_timeout".as_ptr(),
            std::ptr::null(),
            pg_sys::GucContext::PGC_SUSET,
            pg_sys::GucSource::PGC_S_SESSION,
        );
        pg_sys::CommitTransactionCommand();
        pg_sys::MemoryContextSwitchTo(pg_sys::TopMemoryContext);
        pg_sys::MemoryContextDelete(ctx);
        result
    }
}
