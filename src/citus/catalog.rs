//! What floe reads from and asks of Citus's catalog and functions (SPI): shards and the
//! tables they belong to, distribution columns, the workers' floe versions, and the settings
//! floe's own trigger DDL needs. Each function returns at once where Citus is not installed.

use super::{nodes, present};
use crate::error::FloeError;
use pgrx::pg_sys;

/// The distributed table a Citus shard (`<table>_<shard id>`) belongs to, when `name` is
/// one on this node: for messages that should name the table, not the shard.
pub fn table_of_shard(schema: &str, name: &str) -> Option<String> {
    let shard = nodes::shard_id_of(name)?;
    if !present() {
        return None;
    }
    pgrx::Spi::get_one_with_args::<String>(
        "SELECT s.logicalrelid::regclass::text FROM pg_catalog.pg_dist_shard s
          JOIN pg_catalog.pg_class c ON c.oid = s.logicalrelid
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE s.shardid = $1 AND n.nspname = $2",
        &[shard.into(), schema.into()],
    )
    .ok()
    .flatten()
}

/// Refuses a Citus shard where floe wants a table: floe manages the distributed table, on
/// the coordinator (a shard changed on its own would drift from the others).
pub fn refuse_shard(rel: &pgrx::PgRelation) -> Result<(), FloeError> {
    match table_of_shard(rel.namespace(), rel.name()) {
        Some(table) => Err(FloeError::InvalidArgument {
            argument: "tbl",
            value: format!("{}.{}", rel.namespace(), rel.name()),
            expected: format!(
                "a table, not a Citus shard: call it on the coordinator for the distributed table {table}"
            ),
        }),
        None => Ok(()),
    }
}

const IS_COORDINATOR: &str = "SELECT pg_catalog.citus_is_coordinator(),
       (SELECT e.extversion FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'floe')";
const WORKER_VERSIONS: &str = "
SELECT w.nodename OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) w.nodeport::text, w.success, w.result
  FROM pg_catalog.run_command_on_workers($$SELECT coalesce((SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'floe'), '')$$) w
 ORDER BY 1";

/// `citus.workers` on a Citus coordinator; nothing elsewhere.
pub fn health_checks() -> Result<Vec<crate::check::Check>, FloeError> {
    if !present() {
        return Ok(vec![]);
    }
    crate::privileged::run(|s| {
        let me = s.run(IS_COORDINATOR, &[])?;
        let me = me.first();
        if !me.get::<bool>(1)?.unwrap_or(false) {
            return Ok(vec![]);
        }
        let version = me.get::<String>(2)?.unwrap_or_default();
        let mut workers = Vec::new();
        for row in s.run(WORKER_VERSIONS, &[])? {
            let node = row.get::<String>(1)?.unwrap_or_default();
            let result = row.get::<String>(3)?.unwrap_or_default();
            let answer = if row.get::<bool>(2)?.unwrap_or(false) {
                nodes::Worker::Answered((!result.is_empty()).then_some(result))
            } else {
                nodes::Worker::Unreachable(result)
            };
            workers.push((node, answer));
        }
        Ok(vec![nodes::workers_check(&version, &workers)])
    })
}

/// The distribution column of `relid` when it is a hash-distributed Citus table.
pub fn distribution_column(relid: pg_sys::Oid) -> Result<Option<String>, FloeError> {
    if !present() {
        return Ok(None);
    }
    Ok(pgrx::Spi::get_one_with_args::<String>(
        "SELECT pg_catalog.column_to_column_name(p.logicalrelid, p.partkey)
           FROM pg_catalog.pg_dist_partition p
          WHERE p.logicalrelid = $1 AND p.partmethod = 'h'",
        &[relid.into()],
    )?)
}

/// Distributes `table` by `column`, co-located with `beside`, unless it is a Citus table
/// already (a child left by an interrupted maintenance run).
pub fn distribute_beside(table: &str, column: &str, beside: &str) -> Result<(), FloeError> {
    pgrx::Spi::get_one_with_args::<bool>(
        "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition
                                   WHERE logicalrelid = pg_catalog.to_regclass($1)) THEN true
                     ELSE (SELECT true FROM pg_catalog.create_distributed_table($1::regclass, $2, colocate_with => $3)) END",
        &[table.into(), column.into(), beside.into()],
    )?;
    Ok(())
}

/// Whether `relid` is a Citus table of any kind (distributed, reference, Citus local).
pub fn is_citus_table(relid: pg_sys::Oid) -> Result<bool, FloeError> {
    if !present() {
        return Ok(false);
    }
    Ok(pgrx::Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1)",
        &[relid.into()],
    )?
    .unwrap_or(false))
}

/// Runs `f` (floe's own trigger DDL) with `citus.enable_unsafe_triggers` on for the
/// transaction, restored after: Citus refuses triggers on its tables otherwise, and floe's
/// triggers are safe there (they read the row and settings of the shard's node).
pub fn with_unsafe_triggers<T>(f: impl FnOnce() -> Result<T, FloeError>) -> Result<T, FloeError> {
    if !present() {
        return f();
    }
    let before = pgrx::Spi::get_one::<String>(
        "SELECT pg_catalog.current_setting('citus.enable_unsafe_triggers')",
    )?;
    pgrx::Spi::get_one::<String>(
        "SELECT pg_catalog.set_config('citus.enable_unsafe_triggers', 'on', true)",
    )?;
    let out = f()?;
    pgrx::Spi::get_one_with_args::<String>(
        "SELECT pg_catalog.set_config('citus.enable_unsafe_triggers', $1, true)",
        &[before.unwrap_or_else(|| "off".into()).as_str().into()],
    )?;
    Ok(out)
}

/// Refuses a Citus table for a floe feature that does not follow its rows onto the workers
/// yet (`what`: "on-change refresh" of a matview), naming what to do instead.
pub fn refuse_citus_table(
    relid: pg_sys::Oid,
    name: &str,
    what: &str,
    instead: &str,
) -> Result<(), FloeError> {
    if is_citus_table(relid)? {
        return Err(FloeError::NotSupported {
            message: format!(
                "{what} of the Citus table {name} is not supported: its rows change on the workers, where floe's registry does not reach"
            ),
            hint: instead.to_string(),
        });
    }
    Ok(())
}
