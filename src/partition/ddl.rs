//! Running a set's DDL: one statement or a step in a subtransaction under
//! `floe.partition_lock_timeout`, retried after a lock timeout, and any work as the parent's
//! owner in a security-restricted operation (machinery: subtransactions, GUC nest levels,
//! the user id).

use super::plan;
use crate::error::FloeError;
use crate::{gucs, subxact};
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode};

pub(super) fn caught(context: &str, c: subxact::Caught) -> FloeError {
    FloeError::Sql {
        code: c.code,
        message: format!("{context}: {}", c.message),
        detail: c.detail,
        hint: "The statement was rolled back; nothing of this step was kept.".into(),
    }
}

/// Runs one DDL statement under `floe.partition_lock_timeout`, retrying after a lock
/// timeout (with a growing pause, so the writers queued behind the failed attempt get
/// through first). Any other error is returned at once; the statement is rolled back.
pub(super) fn ddl(sql: &str) -> Result<(), FloeError> {
    with_lock_retry(sql.lines().next().unwrap_or(sql), || Ok(Spi::run(sql)?))
}

/// Runs `step` in a subtransaction under `floe.partition_lock_timeout`. When a lock is not
/// granted in time the subtransaction is rolled back (releasing every lock the step took),
/// and after a growing pause the step is tried again, at most `floe.partition_lock_retries`
/// times. Any other error is returned at once, the step rolled back.
pub(super) fn with_lock_retry(
    what: &str,
    mut step: impl FnMut() -> Result<(), FloeError>,
) -> Result<(), FloeError> {
    let timeout = gucs::partition_lock_timeout_ms();
    let retries = gucs::partition_lock_retries().max(0) as u32;
    let mut attempt = 0;
    loop {
        let result = subxact::try_run(|| {
            // SAFETY: a nest level undone below (or by the subtransaction's abort).
            let level = unsafe { pg_sys::NewGUCNestLevel() };
            Spi::run(&format!("SET LOCAL lock_timeout = {timeout}"))?;
            let done = step();
            unsafe { pg_sys::AtEOXact_GUC(false, level) };
            done
        });
        match result {
            Ok(r) => return r,
            Err(c) if c.code == PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE => {
                if attempt >= retries {
                    return Err(FloeError::LockNotAvailable {
                        message: format!(
                            "could not get the lock for \"{what}\" within {timeout} ms, {} attempt(s)",
                            attempt + 1
                        ),
                        hint: "Something held a conflicting lock (a long query or transaction); maintenance retries at its next run. Raise floe.partition_lock_timeout or floe.partition_lock_retries to wait longer.".into(),
                    });
                }
                let ms = plan::lock_retry_delay_ms(attempt);
                // SAFETY: a plain sleep, then the usual interrupt check.
                unsafe { pg_sys::pg_usleep((ms * 1000) as std::ffi::c_long) };
                check_for_interrupts!();
                attempt += 1;
            }
            Err(c) => return Err(caught(what, c)),
        }
    }
}

/// Runs `f` as the parent's owner (children are then owned by it, and no trigger or default
/// expression of the table runs with the maintainer's rights).
pub(super) fn as_owner<T>(
    owner: pg_sys::Oid,
    f: impl FnOnce() -> Result<T, FloeError>,
) -> Result<T, FloeError> {
    let (mut saved_user, mut saved_ctx) = (pg_sys::InvalidOid, 0);
    // SAFETY: saved and restored around `f`; an ERROR's (sub)transaction abort restores too.
    // A security-restricted operation, as VACUUM runs index functions: the table's code
    // cannot switch roles, and every setting it changes (even session-level, through
    // set_config in a trigger) is undone with the GUC nest level, so nothing it does can
    // reach the maintainer's own later statements.
    let level = unsafe {
        pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_ctx);
        pg_sys::SetUserIdAndSecContext(
            owner,
            saved_ctx
                | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32
                | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
        );
        pg_sys::NewGUCNestLevel()
    };
    let out = Spi::run("SET LOCAL search_path = pg_catalog, pg_temp")
        .map_err(FloeError::from)
        .and_then(|_| f());
    unsafe {
        pg_sys::AtEOXact_GUC(false, level);
        pg_sys::SetUserIdAndSecContext(saved_user, saved_ctx);
    }
    out
}
