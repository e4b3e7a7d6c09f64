//! The partition manager's SQL surface: `floe.create_parent`, `floe.partition_existing`, the
//! `floe.run_maintenance` procedure and the SQL-language functions (`set_retention`,
//! `partitions`, `check_default`, ...). The work is done in `setup.rs` and `maintain.rs`.

use super::maintain::{commit, maintain_set, set_keys, Txn, DEFERRED};
use super::setup::{convert, create_set};
use crate::error::ErrorReport;
use crate::sqltypes::Name;
use pgrx::prelude::*;
use pgrx::{pg_sys, PgRelation};

/// `CALL floe.run_maintenance(parent, as_of)`: outside a transaction block every DDL step
/// commits on its own (locks are held for one step only); inside one (or from a function)
/// everything is the caller's transaction, each set in a subtransaction.
///
/// # Safety
/// Called by the function manager with a valid `fcinfo` for a procedure of two arguments.
#[no_mangle]
#[pg_guard]
pub unsafe extern "C-unwind" fn floe_run_maintenance(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: argument access through the function manager's own structures.
    let (parent, as_of, nonatomic) = unsafe {
        let parent: Option<pg_sys::Oid> = pgrx::fcinfo::pg_getarg(fcinfo, 0);
        let as_of: Option<TimestampWithTimeZone> = pgrx::fcinfo::pg_getarg(fcinfo, 1);
        let ctx = (*fcinfo).context;
        let nonatomic = !ctx.is_null()
            && (*ctx).type_ == pg_sys::NodeTag::T_CallContext
            && !(*(ctx as *mut pg_sys::CallContext)).atomic;
        (parent, as_of, nonatomic)
    };
    // SAFETY: a plain read of the current user's role attributes.
    let superuser = unsafe { pg_sys::superuser() };
    if !nonatomic && superuser && crate::toplevel::is_scheduler_worker() {
        // The built-in job (a superuser's) runs inside a transaction; the worker runs the
        // sets right after it, each step in its own transaction. Another role's job that
        // CALLs this runs as that role, in its job's transaction, over its own sets only.
        DEFERRED.with(|d| *d.borrow_mut() = Some((parent, as_of)));
        return pg_sys::Datum::from(0);
    }
    let keys = match set_keys(parent) {
        Ok(k) => k,
        Err(e) => e.raise(),
    };
    if !nonatomic {
        for key in &keys {
            let _ = maintain_set(key, as_of, Txn::Caller);
        }
        return pg_sys::Datum::from(0);
    }
    // SAFETY: a non-atomic CALL may commit through a non-atomic SPI connection, as PL/pgSQL's
    // COMMIT does; every step runs under a fresh snapshot in its own transaction.
    unsafe {
        pg_sys::SPI_connect_ext(pg_sys::SPI_OPT_NONATOMIC as i32);
        pg_sys::SPI_commit();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
        for key in &keys {
            let _ = maintain_set(key, as_of, Txn::Procedure);
            commit(Txn::Procedure);
        }
        pg_sys::PopActiveSnapshot();
        pg_sys::SPI_finish();
    }
    pg_sys::Datum::from(0)
}

/// The function-manager record of `floe_run_maintenance` (version 1 calling convention).
#[no_mangle]
pub extern "C" fn pg_finfo_floe_run_maintenance() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

#[allow(clippy::too_many_arguments)]
#[pg_extern(volatile)]
fn create_parent(
    parent: Option<PgRelation>,
    control: Option<Name>,
    part_interval: default!(Option<Interval>, "'1 month'"),
    premake: default!(Option<i32>, 4),
    start: default!(Option<TimestampWithTimeZone>, "NULL"),
    default_partition: default!(Option<bool>, true),
    sub_partition_by: default!(Option<Name>, "NULL"),
    sub_partition_values: default!(Option<Vec<String>>, "NULL"),
) -> Result<i32, ErrorReport> {
    if let Some(p) = &parent {
        crate::citus::refuse_shard(p)?;
    }
    Ok(create_set(
        parent,
        control,
        part_interval,
        premake,
        start,
        default_partition,
        sub_partition_by,
        sub_partition_values,
    )?)
}

/// `floe.partition_existing`: turns a plain table into a partition set, in the caller's
/// transaction and without moving a row: the table becomes the set's default partition
/// (renamed `<table>_default`), a partitioned table with its name, columns, defaults,
/// identity, constraints, indexes, foreign keys, grants and comment takes its place, and
/// `run_maintenance` then moves the rows into monthly (or other) partitions, one partition
/// per transaction, in batches.
#[pg_extern(volatile)]
fn partition_existing(
    tbl: Option<PgRelation>,
    control: Option<Name>,
    part_interval: default!(Option<Interval>, "'1 month'"),
    premake: default!(Option<i32>, 4),
) -> Result<String, ErrorReport> {
    if let Some(t) = &tbl {
        crate::citus::refuse_shard(t)?;
    }
    Ok(convert(tbl, control, part_interval, premake)?)
}

extension_sql_file!(
    "../sql/partition.sql",
    name = "partition_sql",
    requires = ["scheduler_sql"]
);

extension_sql!(
    r#"
COMMENT ON FUNCTION floe.create_parent(regclass, name, interval, integer, timestamptz, boolean, name, text[]) IS
  'Manages a table declared PARTITION BY RANGE (control) as a floe partition set: creates the default partition and the partitions from start through premake intervals ahead (names <parent>_YYYY_MM for months); with sub_partition_by each partition is LIST-partitioned by that column. Returns how many partitions it created.';
COMMENT ON FUNCTION floe.partition_existing(regclass, name, interval, integer) IS
  'Turns a plain table into a partition set without moving a row: it becomes the default partition (<table>_default) of a new partitioned table of its name, columns, indexes, constraints, foreign keys and grants; CALL floe.run_maintenance() then moves its rows into partitions, one per transaction. Returns the default partition.';
"#,
    name = "partition_comments",
    requires = [create_parent, partition_existing, "partition_sql"],
);
