//! The audit trail's SQL surface: its functions and triggers. The work is done in
//! `capture.rs` (entries), `registry.rs` (audited tables), `seal.rs`, `examine.rs`
//! (verification, health) and `custody.rs`; what an entry says and its digest are
//! `record.rs`, what verification concludes is `verify.rs`.
//!
//! - `floe.audit_trigger()` (row: AFTER INSERT/UPDATE/DELETE, statement: AFTER TRUNCATE)
//!   writes one entry per change, as the extension's owner (`crate::privileged`), reading
//!   nothing back: writers never wait for each other on the chain.
//! - `floe.audit_seal()` (the job `floe.audit_seal`, every minute) seals the entries of
//!   transactions below the oldest running one, per table, chaining each seal to the last.
//! - `floe.verify_audit()` recomputes every digest and seal hash and names what differs.
//! - `floe.audit_append_only()` refuses UPDATE, DELETE and TRUNCATE on the log and its seals,
//!   except for floe's own moves out of the default partition ([`internal`]).

use super::capture::{audit_key, invalidate_configs, log_change};
use super::custody::{guard_months, is_internal};
use super::distributed::{forget_on_workers, share_key, trigger_args};
use super::examine::verify;
use super::registry::{
    classification_arg, ensure_log_set, log_relid_for, target, COLUMNS, DELETE_TABLE, UPSERT_TABLE,
};
use super::seal::seal;
use super::shard_args::ShardArgs;
use crate::error::{ErrorReport, FloeError};
use crate::privileged::{self};
use pgrx::prelude::*;
use pgrx::PgRelation;

// ---------------------------------------------------------------------------------------
// Append-only
// ---------------------------------------------------------------------------------------

#[pg_trigger]
fn audit_append_only<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByRust>>, std::convert::Infallible> {
    if is_internal() {
        return Ok(trigger.old().map(|t| t.into_owned()));
    }
    let table = format!(
        "{}.{}",
        trigger.table_schema().unwrap_or_default(),
        trigger.table_name().unwrap_or_default()
    );
    let op = match trigger.op() {
        Ok(PgTriggerOperation::Update) => "UPDATE",
        Ok(PgTriggerOperation::Delete) => "DELETE",
        Ok(PgTriggerOperation::Truncate) => "TRUNCATE",
        _ => "this change",
    };
    FloeError::PermissionDenied {
        message: format!("{table} is append-only: {op} is refused, for every role"),
        detail: None,
        hint: "Audit entries leave only with their month, by retention: floe.set_retention('floe.audit_log', keep => '7 years', mode => 'drop').".into(),
    }
    .raise()
}

// ---------------------------------------------------------------------------------------
// The audit trigger
// ---------------------------------------------------------------------------------------

#[pg_trigger]
fn audit_trigger<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByRust>>, std::convert::Infallible> {
    match log_change(trigger) {
        Ok(()) => Ok(None),
        Err(e) => e.raise(),
    }
}

// ---------------------------------------------------------------------------------------
// enable_audit / disable_audit
// ---------------------------------------------------------------------------------------

#[pg_extern(volatile)]
fn enable_audit(
    tbl: Option<PgRelation>,
    redact: default!(Option<Vec<Option<String>>>, "'{}'"),
    classification: default!(Option<Vec<Option<String>>>, "'{}'"),
) -> Result<(), ErrorReport> {
    let rel = crate::error::required(tbl, "tbl")?;
    crate::citus::refuse_shard(&rel)?;
    let oid = rel.oid();
    drop(rel);
    let classification = classification_arg(classification.unwrap_or_default())?;
    let redact: Vec<String> = {
        let mut r: Vec<String> = redact.unwrap_or_default().into_iter().flatten().collect();
        r.sort();
        r.dedup();
        r
    };
    let citus = crate::citus::is_citus_table(oid)?;
    let (qualified, key) = privileged::run(|s| {
        let t = target(s, oid, "audit")?;
        let columns: Vec<String> = s
            .run(COLUMNS, &[oid.into()])?
            .map(|r| r.get::<String>(1).ok().flatten().unwrap_or_default())
            .collect();
        if let Some(missing) = redact.iter().find(|c| !columns.contains(c)) {
            return Err(FloeError::UndefinedColumn {
                table: t.clone(),
                column: missing.clone(),
                hint: "redact names columns of the table, as they are spelled (case matters)."
                    .into(),
            });
        }
        ensure_log_set(s)?;
        // The redaction key exists before the first entry needs it.
        let key = audit_key(s)?;
        let log_relid = log_relid_for(s, oid)?;
        s.run(
            UPSERT_TABLE,
            &[
                oid.into(),
                redact.clone().into(),
                classification.clone().into(),
                s.caller.into(),
                log_relid.into(),
            ],
        )?;
        Ok((t, key))
    })?;
    // A Citus table's triggers carry its settings to the shards, whose nodes log its rows.
    let args = if citus {
        privileged::run(|s| share_key(s, &key))?;
        trigger_args(&ShardArgs {
            redact,
            classification,
        })?
    } else {
        String::new()
    };
    // The triggers, with the caller's rights (the caller owns the table).
    crate::citus::with_unsafe_triggers(|| {
        for sql in [
            format!("CREATE OR REPLACE TRIGGER floe_audit AFTER INSERT OR UPDATE OR DELETE ON {qualified} FOR EACH ROW EXECUTE FUNCTION floe.audit_trigger({args})"),
            format!("CREATE OR REPLACE TRIGGER floe_audit_flush AFTER INSERT OR UPDATE OR DELETE ON {qualified} FOR EACH STATEMENT EXECUTE FUNCTION floe.audit_trigger({args})"),
            format!("CREATE OR REPLACE TRIGGER floe_audit_truncate AFTER TRUNCATE ON {qualified} FOR EACH STATEMENT EXECUTE FUNCTION floe.audit_trigger({args})"),
        ] {
            Spi::run(&sql)?;
        }
        Ok(())
    })?;
    invalidate_configs();
    Ok(())
}

#[pg_extern(volatile)]
fn disable_audit(
    tbl: Option<PgRelation>,
    if_exists: default!(Option<bool>, false),
) -> Result<bool, ErrorReport> {
    let rel = crate::error::required(tbl, "tbl")?;
    let oid = rel.oid();
    drop(rel);
    let citus = crate::citus::is_citus_table(oid)?;
    let (qualified, removed) = privileged::run(|s| {
        let t = target(s, oid, "stop auditing")?;
        let removed = !s.run(DELETE_TABLE, &[oid.into()])?.is_empty();
        Ok((t, removed))
    })?;
    if !removed && !if_exists.unwrap_or(false) {
        return Err(FloeError::NotFound {
            kind: "audited table",
            name: qualified,
            hint: "floe.audit_tables lists the audited tables; pass if_exists => true to ignore."
                .into(),
        }
        .into());
    }
    crate::citus::with_unsafe_triggers(|| {
        for sql in [
            format!("DROP TRIGGER IF EXISTS floe_audit ON {qualified}"),
            format!("DROP TRIGGER IF EXISTS floe_audit_flush ON {qualified}"),
            format!("DROP TRIGGER IF EXISTS floe_audit_truncate ON {qualified}"),
        ] {
            Spi::run(&sql)?;
        }
        Ok(())
    })?;
    if citus {
        privileged::run(|s| forget_on_workers(s, &qualified))?;
    }
    invalidate_configs();
    Ok(removed)
}

/// `floe.audit_guard_months(event)`: the event triggers' check that no month leaves the log
/// by hand (see `custody.rs`).
#[pg_extern(volatile)]
fn audit_guard_months(event: &str) -> Result<(), ErrorReport> {
    Ok(guard_months(event)?)
}

// ---------------------------------------------------------------------------------------
// Sealing
// ---------------------------------------------------------------------------------------

#[pg_extern(volatile)]
fn audit_seal() -> Result<i64, ErrorReport> {
    Ok(seal()?)
}

// ---------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------

#[allow(clippy::type_complexity)]
#[pg_extern(volatile)]
fn verify_audit(
    since: default!(Option<TimestampWithTimeZone>, "NULL"),
) -> Result<
    TableIterator<
        'static,
        (
            name!(table_name, String),
            name!(status, String),
            name!(entry_id, Option<i64>),
            name!(logged_at, Option<TimestampWithTimeZone>),
            name!(detail, String),
        ),
    >,
    ErrorReport,
> {
    let rows = verify(since)?.into_iter().map(|f| {
        (
            f.table,
            f.status.to_string(),
            f.entry,
            f.logged_at,
            f.detail,
        )
    });
    Ok(TableIterator::new(rows))
}

extension_sql_file!(
    "../sql/audit.sql",
    name = "audit_sql",
    requires = [
        "scheduler_sql",
        "partition_sql",
        audit_append_only,
        audit_guard_months,
        audit_trigger,
        enable_audit,
        disable_audit,
        audit_seal,
        verify_audit
    ]
);
