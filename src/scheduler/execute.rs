//! Running a job's command: in a subtransaction, as the job's owner, under `max_runtime` as
//! statement timeout, with no setting left behind (machinery: user id, GUC nest level and
//! the timeout FFI).

use super::jobs::Job;
use super::retry::Outcome;
use crate::subxact;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use std::ffi::{c_int, CString};

/// `utils/timeout.h` is not in pgrx's bindings; these two are stable across PG 13-17.
mod timeout {
    use std::ffi::c_int;
    unsafe extern "C-unwind" {
        pub fn enable_timeout_after(id: c_int, delay_ms: c_int);
        pub fn disable_timeout(id: c_int, keep_indicator: bool);
    }
    /// `TimeoutId::STATEMENT_TIMEOUT` (the fourth predefined reason in PG 13-17).
    pub const STATEMENT_TIMEOUT: c_int = 3;
}

/// The role a job runs as.
pub(super) fn role_oid(name: &str) -> Option<pg_sys::Oid> {
    let c = CString::new(name).ok()?;
    // SAFETY: syscache lookup by name on the backend thread.
    let oid = unsafe { pg_sys::get_role_oid(c.as_ptr(), true) };
    (oid != pg_sys::InvalidOid).then_some(oid)
}

/// Runs the job's command in a subtransaction as `owner`, under `max_runtime`.
pub(super) fn execute_as(job: &Job, owner: pg_sys::Oid) -> (Outcome, Option<String>) {
    let limit_ms = (job.max_runtime_us / 1000).clamp(0, i64::from(c_int::MAX)) as c_int;
    let started = std::time::Instant::now();
    let result = subxact::run(|| {
        // The subtransaction restores user id, security context and settings if the command
        // fails; on success the settings the job changed (SET, SET LOCAL, set_config) are
        // undone below, so no job can leave a search_path or role behind for the next one.
        let (mut saved_user, mut saved_ctx) = (pg_sys::InvalidOid, 0);
        let guc_level = unsafe { pg_sys::NewGUCNestLevel() };
        unsafe {
            pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_ctx);
            pg_sys::SetUserIdAndSecContext(
                owner,
                saved_ctx | pg_sys::SECURITY_LOCAL_USERID_CHANGE as c_int,
            );
            if limit_ms > 0 {
                timeout::enable_timeout_after(timeout::STATEMENT_TIMEOUT, limit_ms);
            }
        }
        // Jobs run with the database's default search_path, whatever the runner's session has.
        let ran = Spi::run("SET LOCAL search_path TO DEFAULT").and_then(|_| Spi::run(&job.command));
        unsafe {
            if limit_ms > 0 {
                timeout::disable_timeout(timeout::STATEMENT_TIMEOUT, false);
            }
            pg_sys::AtEOXact_GUC(false, guc_level);
            pg_sys::SetUserIdAndSecContext(saved_user, saved_ctx);
        }
        ran
    });
    if limit_ms > 0 {
        // SAFETY: disabling an inactive timeout is a no-op.
        unsafe { timeout::disable_timeout(timeout::STATEMENT_TIMEOUT, false) };
    }
    // A cancel at or after max_runtime is ours (whatever the message's language).
    let past_limit = limit_ms > 0 && started.elapsed().as_millis() >= limit_ms as u128;
    match result {
        Ok(Ok(())) => (Outcome::Succeeded, None),
        Ok(Err(pgrx::spi::SpiError::SpiError(pgrx::spi::SpiErrorCodes::Transaction))) => (
            Outcome::Failed,
            Some("transaction control (COMMIT, ROLLBACK, PREPARE TRANSACTION) cannot be used in a job".into()),
        ),
        Ok(Err(e)) => (Outcome::Failed, Some(e.to_string())),
        Err(caught) if caught.code == PgSqlErrorCode::ERRCODE_QUERY_CANCELED && past_limit =>
        {
            (
                Outcome::TimedOut,
                Some(format!("cancelled after max_runtime ({} ms)", limit_ms)),
            )
        }
        Err(caught) => (Outcome::Failed, Some(caught.describe())),
    }
}
