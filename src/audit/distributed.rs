//! Auditing Citus tables (issue #25): the machinery around `shard_args.rs`.
//!
//! A distributed table's rows change on the workers, in its shards; a reference table's on
//! every node holding a copy. floe's audit triggers, created on the coordinator with the
//! table's settings as arguments, are copied by Citus to every shard. Where one fires, the
//! entry is written to *that node's* `floe.audit_log`, in the same local transaction as the
//! change (Citus commits the nodes together): no entry without its change, no change without
//! its entry. Each node keeps one chain per table, sealed by its own scheduler.
//!
//! - [`shard_of`]: the Citus table a shard belongs to on this node (entries name the table,
//!   not the shard), or that the relation is a Citus table's shell (no rows of its own).
//! - [`register_here`]: the node's `floe.audit_tables` row for the table (made by the first
//!   entry on the node: the log's relid, verification, health), from the trigger's settings.
//! - [`share_key`]: the coordinator's redaction key copied to workers that have none, so a
//!   redacted value reads the same on every node (a shard may move).
//! - [`forget_on_workers`], [`worker_findings`]: `disable_audit` and `verify_audit` on the
//!   coordinator reach the workers' registries and chains.

use super::finding::Finding;
use super::registry::Facts;
use super::shard_args::ShardArgs;
use crate::error::FloeError;
use crate::privileged::Session;
use pgrx::prelude::*;

/// What a relation whose trigger carries Citus arguments is, on this node.
enum ShardOf {
    /// A Citus table (`table`, `schema.name`; tenant = its uuid distribution column): the
    /// relation is one of its shards, or (`shell`) the table itself, whose rows live in the
    /// shards (only a TRUNCATE is logged there: Citus does not copy TRUNCATE triggers to
    /// the shards, it truncates them from the table's own).
    Citus {
        shell: bool,
        table: pg_sys::Oid,
        schema: String,
        name: String,
        owner: pg_sys::Oid,
        distribution_column: Option<String>,
    },
    /// Neither: the arguments were written by hand on a table Citus does not know.
    Unknown,
}

/// The shard's id is the number its name ends with (`leads_102008`; Citus shortens a long
/// name and keeps `_<shard id>` at its end); the shard is in its table's schema. The shard
/// itself is not read from pg_class, where Citus hides shards from ordinary sessions.
const SHARD_OF: &str = "
WITH me AS (SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition p
                            WHERE p.logicalrelid = $1) AS shell)
SELECT me.shell, c.oid, n.nspname::text, c.relname::text, c.relowner,
       (SELECT pg_catalog.column_to_column_name(p.logicalrelid, p.partkey)
          FROM pg_catalog.pg_dist_partition p
         WHERE p.logicalrelid = c.oid AND p.partmethod = 'h')
  FROM me
  LEFT JOIN pg_catalog.pg_dist_shard s ON NOT me.shell AND s.shardid = $2
  LEFT JOIN pg_catalog.pg_class c
         ON c.oid = CASE WHEN me.shell THEN $1 ELSE s.logicalrelid END
        AND (me.shell OR c.relnamespace = $3)
  LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace";

fn shard_of(s: &mut Session<'_, '_>, relid: pg_sys::Oid) -> Result<ShardOf, FloeError> {
    if !crate::citus::present() {
        return Ok(ShardOf::Unknown);
    }
    // SAFETY: syscache look-ups of a relation the trigger manager has open.
    let (name, namespace) = unsafe {
        let name = pg_sys::get_rel_name(relid);
        let text = (!name.is_null()).then(|| {
            std::ffi::CStr::from_ptr(name)
                .to_string_lossy()
                .into_owned()
        });
        (text, pg_sys::get_rel_namespace(relid))
    };
    let shard = name.as_deref().and_then(crate::citus::nodes::shard_id_of);
    let rows = s.run(SHARD_OF, &[relid.into(), shard.into(), namespace.into()])?;
    let row = rows.first();
    let Some(table) = row.get::<pg_sys::Oid>(2)? else {
        return Ok(ShardOf::Unknown);
    };
    Ok(ShardOf::Citus {
        shell: row.get::<bool>(1)?.unwrap_or(false),
        table,
        schema: row.get(3)?.unwrap_or_default(),
        name: row.get(4)?.unwrap_or_default(),
        owner: row.get(5)?.unwrap_or(pg_sys::InvalidOid),
        distribution_column: row.get(6)?,
    })
}

/// A shard's facts: its table's, its settings from the trigger's arguments, the relid its
/// entries carry on this node (registered there at the first entry).
pub(super) fn shard_facts(
    s: &mut Session<'_, '_>,
    root: pg_sys::Oid,
    args: &ShardArgs,
) -> Result<Facts, FloeError> {
    match shard_of(s, root)? {
        ShardOf::Citus {
            shell,
            table,
            schema,
            name,
            owner,
            distribution_column,
        } => Ok(Facts {
            log_relid: register_here(s, table, owner, args)?,
            redact: args.redact.clone(),
            classification: args.classification.clone(),
            tenant_column: distribution_column,
            schema,
            table: name,
            shell,
        }),
        ShardOf::Unknown => Err(super::registry::not_audited(
            root,
            ": it is not a shard of a Citus table",
        )),
    }
}

/// A shard whose audit triggers carry no settings: its table was audited on one node and
/// distributed after; `enable_audit` again gives the triggers their settings.
pub(super) fn audited_before_distributed(
    s: &mut Session<'_, '_>,
    root: pg_sys::Oid,
    error: FloeError,
) -> Result<FloeError, FloeError> {
    Ok(match shard_of(s, root)? {
        ShardOf::Citus {
            shell: false,
            schema,
            name,
            ..
        } => FloeError::WrongState {
            message: format!(
                "{schema}.{name} was audited before it was distributed: its shards' audit triggers do not say how to audit them, and refuse the change"
            ),
            hint: format!("On the coordinator: SELECT floe.enable_audit('{schema}.{name}') (with its redact and classification) again."),
        },
        _ => error,
    })
}

/// The node's registry row, inserted or brought up to the trigger's settings (unchanged
/// settings write nothing).
const REGISTER_HERE: &str = "
INSERT INTO floe.audit_tables (relid, redact, classification, enabled_by, log_relid)
VALUES ($1, $2, $3, pg_catalog.pg_get_userbyid($4), $5)
ON CONFLICT (relid) DO UPDATE SET redact = EXCLUDED.redact, classification = EXCLUDED.classification
 WHERE (floe.audit_tables.redact, floe.audit_tables.classification)
       IS DISTINCT FROM (EXCLUDED.redact, EXCLUDED.classification)";

/// Registers the Citus table `table` for auditing on this node (the log's partition set
/// made, if this is the node's first audited table); returns the relid its entries carry
/// here.
fn register_here(
    s: &mut Session<'_, '_>,
    table: pg_sys::Oid,
    owner: pg_sys::Oid,
    args: &ShardArgs,
) -> Result<pg_sys::Oid, FloeError> {
    super::registry::ensure_log_set(s)?;
    let log_relid = super::registry::log_relid_for(s, table)?;
    s.run(
        REGISTER_HERE,
        &[
            table.into(),
            args.redact.clone().into(),
            args.classification.clone().into(),
            owner.into(),
            log_relid.into(),
        ],
    )?;
    Ok(log_relid)
}

/// On each worker: the key adopted when it has none; what it has then (`adopted`, `same`,
/// `different`). The key travels in the command over Citus's connection to the worker.
const SHARE_KEY: &str = "
SELECT w.nodename::text || ':' || w.nodeport::text, w.success, w.result
  FROM pg_catalog.run_command_on_workers(pg_catalog.format(
       $f$WITH made AS (INSERT INTO floe.audit_key (key)
                        SELECT pg_catalog.decode(%L, 'hex')
                         WHERE NOT EXISTS (SELECT 1 FROM floe.audit_key)
                        ON CONFLICT DO NOTHING RETURNING key)
          SELECT CASE WHEN EXISTS (SELECT 1 FROM made) THEN 'adopted'
                      WHEN (SELECT k.key FROM floe.audit_key k) = pg_catalog.decode(%L, 'hex') THEN 'same'
                      ELSE 'different' END$f$, $1, $1)) w
 ORDER BY 1";

/// Gives every worker the coordinator's redaction key where it has none; warns about a
/// worker that has a key of its own (its redacted values of this table will not match the
/// coordinator's), and fails when a worker cannot be reached (the table's triggers would
/// run there with a key of the worker's own making).
pub(super) fn share_key(s: &mut Session<'_, '_>, key: &[u8; 32]) -> Result<(), FloeError> {
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let mut different = Vec::new();
    for row in s.run(SHARE_KEY, &[hex.as_str().into()])? {
        let node: String = row.get(1)?.unwrap_or_default();
        let result: String = row.get(3)?.unwrap_or_default();
        if !row.get::<bool>(2)?.unwrap_or(false) {
            return Err(FloeError::WrongState {
                message: format!("cannot give the audit key to the Citus worker {node}: {result}"),
                hint: "Every worker must be reachable and have floe (floe.health() on the coordinator: citus.workers); then call floe.enable_audit() again.".into(),
            });
        }
        if result == "different" {
            different.push(node);
        }
    }
    if !different.is_empty() {
        pgrx::warning!(
            "the Citus workers {} have audit keys of their own: values redacted there do not match the coordinator's",
            different.join(", ")
        );
    }
    Ok(())
}

const FORGET_ON_WORKERS: &str = "
SELECT w.nodename::text || ':' || w.nodeport::text, w.success, w.result
  FROM pg_catalog.run_command_on_workers(pg_catalog.format(
       'DELETE FROM floe.audit_tables WHERE relid = pg_catalog.to_regclass(%L)', $1)) w";

/// Removes the workers' registry rows of a table no longer audited (its triggers are gone
/// from the shards with the coordinator's `DROP TRIGGER`).
pub(super) fn forget_on_workers(s: &mut Session<'_, '_>, qualified: &str) -> Result<(), FloeError> {
    for row in s.run(FORGET_ON_WORKERS, &[qualified.into()])? {
        if !row.get::<bool>(2)?.unwrap_or(false) {
            let node: String = row.get(1)?.unwrap_or_default();
            let result: String = row.get(3)?.unwrap_or_default();
            pgrx::warning!(
                "the Citus worker {node} still lists {qualified} as audited ({result}): run floe.disable_audit('{qualified}', if_exists => true) there when it is back"
            );
        }
    }
    Ok(())
}

/// Each worker's `floe.verify_audit()`, as JSON (times as microseconds since the Unix epoch).
const WORKER_FINDINGS: &str = "
SELECT w.nodename::text || ':' || w.nodeport::text, w.success, w.result
  FROM pg_catalog.run_command_on_workers(pg_catalog.format(
       $f$SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_array(
                     v.table_name, v.status, v.entry_id,
                     (pg_catalog.date_part('epoch', v.logged_at) * 1000000)::int8, v.detail)), '[]')
            FROM floe.verify_audit(%L::timestamptz) v$f$, $1::text)) w
 WHERE pg_catalog.citus_is_coordinator()
 ORDER BY 1";

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const PG_EPOCH_US: i64 = 946_684_800_000_000;

/// The workers' findings, each table named `<table> @ <node>`; on a coordinator only.
pub(super) fn worker_findings(
    s: &mut Session<'_, '_>,
    since: Option<TimestampWithTimeZone>,
) -> Result<Vec<Finding>, FloeError> {
    if !crate::citus::present() {
        return Ok(vec![]);
    }
    type Row = (String, String, Option<i64>, Option<i64>, String);
    let mut out = Vec::new();
    for row in s.run(WORKER_FINDINGS, &[since.into()])? {
        let node: String = row.get(1)?.unwrap_or_default();
        let result: String = row.get(3)?.unwrap_or_default();
        let parsed = if row.get::<bool>(2)?.unwrap_or(false) {
            serde_json::from_str::<Vec<Row>>(&result).map_err(|e| e.to_string())
        } else {
            Err(result)
        };
        match parsed {
            Ok(rows) => {
                out.extend(
                    rows.into_iter()
                        .map(|(table, status, entry, at, detail)| Finding {
                            table: format!("{table} @ {node}"),
                            status: super::verify::status_named(&status),
                            entry,
                            logged_at: at.map(|us| crate::sqltypes::ts(us - PG_EPOCH_US)),
                            detail,
                        }),
                )
            }
            Err(error) => out.push(Finding {
                table: format!("(every table) @ {node}"),
                status: "error",
                entry: None,
                logged_at: None,
                detail: format!("the worker's audit trail could not be verified: {error}"),
            }),
        }
    }
    Ok(out)
}

/// The audit triggers' argument list for a Citus table (`'citus', '<redact>', '<classes>'`).
pub(super) fn trigger_args(args: &ShardArgs) -> Result<String, FloeError> {
    let [mark, redact, classification] = args.encode();
    Ok(Spi::get_one_with_args::<String>(
        "SELECT pg_catalog.format('%L, %L, %L', $1, $2, $3)",
        &[
            mark.as_str().into(),
            redact.as_str().into(),
            classification.as_str().into(),
        ],
    )?
    .unwrap_or_default())
}
