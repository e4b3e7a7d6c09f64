//! Running a piece of SQL work in a subtransaction and catching its ERROR, the way a PL/pgSQL
//! `BEGIN ... EXCEPTION` block does: on error the subtransaction is rolled back (locks,
//! buffers, SPI connections, user id and memory released), and the caller's transaction goes on.

use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

/// An ERROR caught in a subtransaction.
#[derive(Debug, Clone)]
pub struct Caught {
    pub code: PgSqlErrorCode,
    pub message: String,
    pub detail: Option<String>,
}

impl Caught {
    /// The message with its detail, as floe records it.
    pub fn describe(&self) -> String {
        match &self.detail {
            Some(d) if !d.is_empty() => format!("{} ({d})", self.message),
            _ => self.message.clone(),
        }
    }
}

/// Runs `f` in an internal subtransaction. Returns its value, or the ERROR it raised.
/// Rust panics inside `f` are caught too (as internal errors), so one bad job cannot take the
/// caller down.
pub fn run<T>(f: impl FnOnce() -> T) -> Result<T, Caught> {
    run_keeping(f, |_| false)
}

/// Like [`run`] for work that reports failure as an `Err`: the subtransaction is rolled
/// back then too, so a half-done step leaves nothing behind.
pub fn try_run<T, E>(f: impl FnOnce() -> Result<T, E>) -> Result<Result<T, E>, Caught> {
    run_keeping(f, |r| r.is_err())
}

fn run_keeping<T>(f: impl FnOnce() -> T, rollback: fn(&T) -> bool) -> Result<T, Caught> {
    // The closure's state is dropped or returned, never observed after an unwind.
    let f = std::panic::AssertUnwindSafe(f);
    // SAFETY: the classic exec_stmt_block sequence, on the backend's only thread.
    let (ctx, owner) = unsafe { (pg_sys::CurrentMemoryContext, pg_sys::CurrentResourceOwner) };
    unsafe {
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(ctx);
    }
    PgTryBuilder::new(|| {
        let value = f();
        unsafe {
            if rollback(&value) {
                pg_sys::RollbackAndReleaseCurrentSubTransaction();
            } else {
                pg_sys::ReleaseCurrentSubTransaction();
            }
            pg_sys::MemoryContextSwitchTo(ctx);
            pg_sys::CurrentResourceOwner = owner;
        }
        Ok(value)
    })
    .catch_others(|caught| {
        unsafe {
            pg_sys::MemoryContextSwitchTo(ctx);
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
            pg_sys::MemoryContextSwitchTo(ctx);
            pg_sys::CurrentResourceOwner = owner;
        }
        let report = match caught {
            CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => r,
            CaughtError::RustPanic { ereport, .. } => ereport,
        };
        Err(Caught {
            code: report.sql_error_code(),
            message: report.message().to_string(),
            detail: report.detail().map(str::to_string),
        })
    })
    .execute()
}
