//! The SQL surface of cross-tier references: `floe.declare_reference`,
//! `floe.drop_reference`, `floe.scan_references`, `floe.repair_references` and the enforce
//! trigger `floe.reference_check`. Declaring is `declare.rs`, checking a statement
//! `check.rs`, scanning `scan.rs`, repairing `repair.rs`.

use super::declaration::{check_columns, Mode, OnUnreachable};
use super::repair::Action;
use super::{check, declare, repair, scan};
use crate::error::{invalid, required, ErrorReport, FloeError};
use crate::privileged;
use crate::sqltypes::{wall_clock, Name, Names, SECOND};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::PgRelation;

fn names(v: Option<Names>, argument: &'static str) -> Result<Vec<String>, FloeError> {
    let v = required(v, argument)?.0;
    v.into_iter()
        .collect::<Option<Vec<String>>>()
        .ok_or_else(|| invalid(argument, "an array with a NULL", "column names"))
}

#[allow(clippy::too_many_arguments)]
#[pg_extern(volatile, parallel_unsafe)]
fn declare_reference(
    tbl: Option<PgRelation>,
    columns: Option<Names>,
    target_server: Option<Name>,
    target_table: Option<String>,
    target_columns: Option<Names>,
    mode: default!(Option<String>, "'scan'"),
    tenant_column: default!(Option<Name>, "'tenant_id'"),
    on_unreachable: default!(Option<String>, "'reject'"),
) -> Result<i32, ErrorReport> {
    let rel = required(tbl, "tbl")?;
    let oid = rel.oid();
    drop(rel);
    let columns = names(columns, "columns")?;
    let target_columns = names(target_columns, "target_columns")?;
    let server = required(target_server, "target_server")?.0;
    let target_table = required(target_table, "target_table")?;
    let mode_text = required(mode, "mode")?;
    let mode = Mode::parse(&mode_text)
        .ok_or_else(|| invalid("mode", &mode_text, "'scan' or 'enforce'"))?;
    let unreachable_text = required(on_unreachable, "on_unreachable")?;
    let on_unreachable = OnUnreachable::parse(&unreachable_text)
        .ok_or_else(|| invalid("on_unreachable", &unreachable_text, "'reject' or 'allow'"))?;
    let tenant_column = tenant_column.map(|n| n.0);
    check_columns(&columns, &target_columns, tenant_column.as_deref()).map_err(|e| {
        FloeError::InvalidArgument {
            argument: e.argument,
            value: e.value,
            expected: e.expected,
        }
    })?;
    Ok(declare::declare(declare::Request {
        tbl: oid,
        columns,
        server,
        target_table,
        target_columns,
        mode,
        tenant_column,
        on_unreachable,
    })?)
}

#[pg_extern(volatile, parallel_unsafe)]
fn drop_reference(
    tbl: Option<PgRelation>,
    columns: Option<Names>,
    if_exists: default!(Option<bool>, false),
) -> Result<bool, ErrorReport> {
    let rel = required(tbl, "tbl")?;
    let oid = rel.oid();
    drop(rel);
    let columns = names(columns, "columns")?;
    Ok(declare::drop(oid, &columns, if_exists.unwrap_or(false))?)
}

// pgrx reads the column names from the signature, so the row type cannot be an alias.
#[allow(clippy::type_complexity)]
#[pg_extern(volatile, parallel_unsafe)]
fn scan_references(
    tbl: default!(Option<PgRelation>, "NULL"),
    max_seconds: default!(Option<f64>, 10.0),
    page_size: default!(Option<i32>, 1000),
    max_pages: default!(Option<i32>, "NULL"),
) -> Result<
    TableIterator<
        'static,
        (
            name!(reference_id, i32),
            name!(table_name, String),
            name!(columns, Vec<String>),
            name!(pages, i32),
            name!(keys_checked, i64),
            name!(orphans, i64),
            name!(pass_complete, bool),
            name!(error, Option<String>),
        ),
    >,
    ErrorReport,
> {
    let oid = tbl.map(|r| r.oid());
    let seconds = required(max_seconds, "max_seconds")?;
    if seconds.is_nan() || seconds <= 0.0 {
        return Err(invalid(
            "max_seconds",
            seconds.to_string(),
            "a positive number of seconds",
        )
        .into());
    }
    let page_size = required(page_size, "page_size")?;
    if page_size < 1 {
        return Err(invalid("page_size", page_size.to_string(), "at least 1").into());
    }
    if let Some(m) = max_pages.filter(|m| *m < 1) {
        return Err(invalid("max_pages", m.to_string(), "at least 1, or NULL").into());
    }
    let ids = privileged::run(|s| {
        if let Some(oid) = oid {
            let t = s.table(
                oid,
                "floe.scan_references takes a referencing table, or NULL for all.",
            )?;
            t.require_owner("scan references of")?;
        }
        super::registry::owned(s, oid)
    })?;
    let limits = scan::Limits {
        deadline: wall_clock() + (seconds * SECOND as f64) as i64,
        max_pages: max_pages.map(i64::from),
        page_size: i64::from(page_size),
        due_only: oid.is_none(),
        interval_secs: f64::from(crate::gucs::reference_scan_interval_secs()),
    };
    let rows = scan::run(&ids, &limits)?.into_iter().map(|r| {
        (
            r.id, r.table, r.columns, r.pages, r.keys, r.orphans, r.complete, r.error,
        )
    });
    Ok(TableIterator::new(rows.collect::<Vec<_>>()))
}

#[allow(clippy::type_complexity)]
#[pg_extern(volatile, parallel_unsafe)]
fn repair_references(
    tbl: Option<PgRelation>,
    action: default!(Option<String>, "'report'"),
    dry_run: default!(Option<bool>, true),
    batch_size: default!(Option<i32>, 1000),
) -> Result<
    TableIterator<
        'static,
        (
            name!(reference_id, i32),
            name!(columns, Vec<String>),
            name!(key, Vec<String>),
            name!(first_seen, Option<TimestampWithTimeZone>),
            name!(rows, i64),
            name!(action, String),
            name!(applied, bool),
        ),
    >,
    ErrorReport,
> {
    let rel = required(tbl, "tbl")?;
    let oid = rel.oid();
    drop(rel);
    let action_text = required(action, "action")?;
    let action = Action::parse(&action_text).ok_or_else(|| {
        invalid(
            "action",
            &action_text,
            "'report', 'null', 'delete' or 'archive'",
        )
    })?;
    let dry_run = required(dry_run, "dry_run")?;
    let batch = required(batch_size, "batch_size")?;
    if batch < 1 {
        return Err(invalid("batch_size", batch.to_string(), "at least 1").into());
    }
    let lines = repair::repair(oid, action, dry_run, batch as usize)?;
    Ok(TableIterator::new(
        lines
            .into_iter()
            .map(|l| {
                (
                    l.id,
                    l.columns,
                    l.key,
                    l.first_seen,
                    l.rows,
                    l.action,
                    l.applied,
                )
            })
            .collect::<Vec<_>>(),
    ))
}

/// The enforce check (AFTER INSERT and AFTER UPDATE, FOR EACH STATEMENT, with transition
/// tables; its argument is the reference's id): see `check.rs`.
#[pg_trigger]
fn reference_check<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByRust>>, std::convert::Infallible> {
    if let Err(e) = check::statement(trigger) {
        e.raise();
    }
    Ok(None)
}

extension_sql_file!(
    "../sql/references.sql",
    name = "references_sql",
    requires = [
        "scheduler_sql",
        declare_reference,
        drop_reference,
        scan_references,
        repair_references,
        reference_check
    ]
);
