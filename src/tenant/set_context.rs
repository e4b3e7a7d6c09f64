//! Setting the tenant context: floe's own `SET [LOCAL]` of the tenant variable, and on a
//! Citus coordinator the refusal of anyone else's.
//!
//! `SET LOCAL` of the tenant variable by a role restricted to signed tokens, on a Citus
//! coordinator, is refused (floe's ProcessUtility hook calls [`refuse`] before Citus sees the
//! statement). Citus forwards every `SET LOCAL` to the workers, whose copies of floe's
//! policies would take the tenant as set; on the coordinator floe ignores it for such a role
//! (only a token's tenant counts), but an INSERT is judged on the worker only. floe's own
//! `set_tenant_token()` sets the variable through the same statement and passes
//! ([`floe_sets`]).

use crate::error::FloeError;
use crate::gucs;
use pgrx::is_a;
use pgrx::pg_sys;
use pgrx::spi::{quote_identifier, quote_literal};
use std::cell::Cell;
use std::ffi::CStr;

thread_local! {
    /// floe itself is running a `SET LOCAL` of the tenant variable.
    static FLOE_SETS: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` (floe's own `SET LOCAL` of the tenant context) with the refusal lifted. The flag
/// is put back when `f` returns or an ERROR unwinds through it (else the refusal would stay
/// lifted for the rest of the session).
fn floe_sets<R>(f: impl FnOnce() -> R) -> R {
    crate::flag::raised(&FLOE_SETS, f)
}

/// Sets the tenant context with a real `SET [LOCAL]` statement (so that Citus forwards it),
/// run through SPI without taking a transaction id (`privileged::run_utility`).
pub(super) fn set_context(local: bool, value: &str) -> Result<(), FloeError> {
    if local && crate::citus::present() {
        // Citus forwards a SET LOCAL to the workers (where the shards' policies read the
        // context) only under this setting; it is itself never forwarded.
        crate::privileged::run_utility("SET LOCAL citus.propagate_set_commands = 'local'")?;
    }
    let statement = set_statement(local, value)?;
    floe_sets(|| crate::privileged::run_utility(&statement))?;
    super::shard_pin::tenant_changed();
    Ok(())
}

/// `SET [LOCAL] <setting> = <value>`, with each part of the setting name quoted.
fn set_statement(local: bool, value: &str) -> Result<String, FloeError> {
    gucs::with_tenant_setting(|name| {
        let name = name.to_str().unwrap_or("");
        let parts = super::context::setting_parts(name).map_err(FloeError::from)?;
        let quoted: Vec<String> = parts.iter().map(quote_identifier).collect();
        Ok(format!(
            "SET {}{} = {}",
            if local { "LOCAL " } else { "" },
            quoted.join("."),
            quote_literal(value)
        ))
    })
}

/// Refuses `pstmt` when it is such a `SET LOCAL` on a database with Citus.
///
/// # Safety
/// `pstmt` is null or the utility statement ProcessUtility was given.
pub unsafe fn refuse(pstmt: *const pg_sys::PlannedStmt) -> Result<(), FloeError> {
    // SAFETY: the caller's contract; the node type is checked before the cast.
    unsafe {
        if pstmt.is_null() || (*pstmt).utilityStmt.is_null() {
            return Ok(());
        }
        let stmt = (*pstmt).utilityStmt;
        if !is_a(stmt, pg_sys::NodeTag::T_VariableSetStmt) || !crate::citus::present() {
            return Ok(());
        }
        refuse_token_role_set(stmt as *mut pg_sys::VariableSetStmt)
    }
}

/// # Safety
/// `set` is a VariableSetStmt.
unsafe fn refuse_token_role_set(set: *mut pg_sys::VariableSetStmt) -> Result<(), FloeError> {
    // SAFETY: the caller's contract.
    unsafe {
        if !(*set).is_local || (*set).name.is_null() || FLOE_SETS.get() {
            return Ok(());
        }
        let name = CStr::from_ptr((*set).name);
        let ours = crate::gucs::with_tenant_setting(|t| {
            t.to_bytes().eq_ignore_ascii_case(name.to_bytes())
        });
        if ours && super::session::token_role() {
            return Err(super::session::token_required(format!(
                "SET LOCAL {} is refused for this role on Citus: the workers would take the tenant as set",
                name.to_string_lossy()
            )));
        }
        Ok(())
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::{floe_sets, FLOE_SETS};
    use pgrx::prelude::*;

    /// A Postgres ERROR raised while floe's own `SET LOCAL` runs (here a division by zero in
    /// its place) unwinds through `floe_sets`: the refusal must be back in force afterwards,
    /// else a token role's `SET LOCAL` of the tenant would pass for the rest of the session.
    #[pg_test]
    fn an_error_inside_floe_sets_puts_the_refusal_back() {
        assert!(!FLOE_SETS.get());
        let caught = crate::subxact::run(|| {
            floe_sets(|| {
                assert!(FLOE_SETS.get());
                Spi::run("SELECT 1 / 0")
            })
        });
        let err = caught.expect_err("the division by zero is caught in the subtransaction");
        assert!(err.message.contains("division by zero"), "{}", err.message);
        assert!(
            !FLOE_SETS.get(),
            "the refusal stayed lifted after the ERROR"
        );
        assert!(floe_sets(|| FLOE_SETS.get()));
        assert!(!FLOE_SETS.get());
    }
}
