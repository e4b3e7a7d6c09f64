//! Making a child: the table like the parent (with its sub-partitions), rows of its period
//! drained from the default partition, the ATTACH without a scan (staged beside the default
//! partition when that holds rows of other periods), grants and tenant isolation carried
//! over (machinery: SPI DDL, run through `ddl.rs`).

use super::children::{plan_error, Parent, SetConfig};
use super::ddl::{ddl, with_lock_retry};
use super::plan::{self, Range};
use crate::error::{invalid, FloeError};
use crate::gucs;
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier as qi, quote_literal as ql};

/// Columns that a row move copies (no dropped or generated columns).
pub(super) fn copy_columns(parent: pg_sys::Oid) -> Result<String, FloeError> {
    let cols = Spi::get_one_with_args::<String>(
        "SELECT pg_catalog.string_agg(pg_catalog.quote_ident(attname), ', ' ORDER BY attnum)
           FROM pg_catalog.pg_attribute
          WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND attgenerated = ''",
        &[parent.into()],
    )?;
    cols.ok_or_else(|| FloeError::Internal {
        message: "parent table has no columns".into(),
    })
}

/// Grants on `target` (and its own partitions) the privileges others hold on `from`.
pub(super) fn copy_acl(from: pg_sys::Oid, target: &str) -> Result<(), FloeError> {
    copy_acls(from, &[target])
}

/// [`copy_acl`] onto several new tables: one query for all their grants.
pub(super) fn copy_acls(from: pg_sys::Oid, targets: &[&str]) -> Result<(), FloeError> {
    let any = Spi::get_one_with_args::<bool>(
        "SELECT relacl IS NOT NULL FROM pg_catalog.pg_class WHERE oid = $1",
        &[from.into()],
    )?;
    if any != Some(true) {
        return Ok(());
    }
    let targets: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
    let grants: Vec<String> = Spi::connect(|client| {
        let mut out = Vec::new();
        for row in client.select(
            "SELECT pg_catalog.format('GRANT %s ON TABLE %s TO %s%s', a.privilege_type, t.relid::regclass,
                        CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(r.rolname) END,
                        CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
               FROM pg_catalog.pg_class c
               CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a
               LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
               CROSS JOIN pg_catalog.unnest($2::pg_catalog.text[]) g(target)
               CROSS JOIN LATERAL pg_catalog.pg_partition_tree(g.target::pg_catalog.regclass) t
              WHERE c.oid = $1 AND a.grantee <> c.relowner",
            None,
            &[from.into(), targets.into()],
        )? {
            if let Some(g) = row.get::<String>(1)? {
                out.push(g);
            }
        }
        Ok::<_, FloeError>(out)
    })?;
    for g in grants {
        Spi::run(&g)?;
    }
    Ok(())
}

/// Moves rows of `[lo, hi)` from the default partition into `child`, in batches.
pub(super) fn drain_default(
    default: &str,
    child: &str,
    cfg: &SetConfig,
    cols: &str,
    r: &Range,
    citus: bool,
) -> Result<i64, FloeError> {
    let (lo, hi) = bounds(cfg, r)?;
    let col = qi(&cfg.control);
    let batch = gucs::partition_drain_batch().max(1);
    if citus {
        // A distributed default partition: the child was distributed beside it first, and
        // the rows move shard by shard in two statements Citus pushes down to the workers
        // (a ctid means nothing across shards). The caller holds the default partition
        // ACCESS EXCLUSIVE: nothing writes in between.
        let n = Spi::get_one::<i64>(&format!(
            "WITH ins AS (INSERT INTO {child} ({cols}) SELECT {cols} FROM {default}
                           WHERE {col} >= {lo} AND {col} < {hi} RETURNING 1)
             SELECT count(*) FROM ins"
        ))?
        .unwrap_or(0);
        Spi::run(&format!(
            "DELETE FROM {default} WHERE {col} >= {lo} AND {col} < {hi}"
        ))?;
        return Ok(n);
    }
    let sql = format!(
        "WITH moved AS (
           DELETE FROM {default} WHERE ctid = ANY (ARRAY(
             SELECT ctid FROM {default} WHERE {col} >= {lo} AND {col} < {hi} LIMIT {batch}))
           RETURNING {cols}),
         ins AS (INSERT INTO {child} ({cols}) SELECT {cols} FROM moved RETURNING 1)
         SELECT count(*) FROM ins"
    );
    let mut total = 0;
    loop {
        // (floe's audit log refuses DELETE, except for floe's own moves.)
        let n = crate::audit::internal(|| Spi::get_one::<i64>(&sql))?.unwrap_or(0);
        total += n;
        if n < batch as i64 {
            return Ok(total);
        }
    }
}

/// Creates one child, in one transaction (a step of maintenance, or create_parent's):
///
/// - A plain table like the parent (with its sub-partitions), ATTACHed: SHARE UPDATE
///   EXCLUSIVE on the parent, so writers never wait for it; the empty table needs no
///   validation scan.
/// - When rows for its range wait in the default partition: the table first gets the
///   partition constraint as a CHECK and most rows in batches (blocking no one); then, in one
///   short sub-step under lock_timeout, writers are held at the parent (SHARE: they wait
///   before routing a row, so no row lands in the default partition to fail its check after
///   the ATTACH), the last rows move and the child is attached with no validation scan; a
///   lock timeout rolls that sub-step back and lets the writers through before the retry.
///   The CHECK is dropped after. Rows move as the owner (the step runs as the owner): no
///   code of the table (triggers, defaults, generated columns, CHECKs, index expressions) ever
///   runs with the maintainer's rights. The unattached child has no triggers yet, and the
///   tenant guard does not watch DELETE, so a moved row fires only the default partition's
///   own DELETE triggers.
/// - Grants and tenant isolation carry over.
pub(super) fn create_child(
    parent: &Parent,
    cfg: &SetConfig,
    r: &Range,
    default: Option<&str>,
) -> Result<(), FloeError> {
    create_or_stage_child(parent, cfg, r, default, false).map(|_| ())
}

/// Like [`create_child`]; with `may_stage`, when the default partition holds rows (of other
/// periods only), stops after preparing the child and putting a NOT VALID exclusion CHECK for
/// the period on the default partition, and returns `true`: the caller then validates that
/// CHECK in its own transaction (SHARE UPDATE EXCLUSIVE, blocking no one) and attaches with
/// [`attach_staged_child`], so ATTACH does not scan the default partition under its ACCESS
/// EXCLUSIVE lock. A child left by an interrupted run is taken up where it stopped.
pub(super) fn create_or_stage_child(
    parent: &Parent,
    cfg: &SetConfig,
    r: &Range,
    default: Option<&str>,
    may_stage: bool,
) -> Result<bool, FloeError> {
    let child = parent.child(&r.name);
    let col = qi(&cfg.control);
    let (lo, hi) = bounds(cfg, r)?;
    let attach = attach_sql(parent, cfg, r)?;
    let check = qi(bounds_check_name(r));
    // A default partition under forced row security (a tenant-isolated set) hides rows from
    // its owner too: its rows are looked for and moved only inside the locked step, where
    // FORCE is lifted and restored before anyone else can see the table. And an earlier run
    // may have left the child prepared (with its CHECK) but not attached.
    let (forced, leftover) = Spi::connect(|client| {
        let row = client
            .select(
                "SELECT coalesce((SELECT relrowsecurity AND relforcerowsecurity FROM pg_catalog.pg_class
                                   WHERE oid = pg_catalog.to_regclass($1)), false),
                        EXISTS (SELECT 1 FROM pg_catalog.pg_class c
                                  JOIN pg_catalog.pg_constraint k ON k.conrelid = c.oid AND k.conname = $3
                                 WHERE c.oid = pg_catalog.to_regclass($2) AND NOT c.relispartition)",
                Some(1),
                &[default.into(), child.as_str().into(), bounds_check_name(r).into()],
            )?
            .first();
        Ok::<_, FloeError>((
            row.get::<bool>(1)?.unwrap_or(false),
            row.get::<bool>(2)?.unwrap_or(false),
        ))
    })?;
    let waiting = match default {
        Some(_) if forced => true,
        Some(default) => Spi::get_one::<bool>(&format!(
            "SELECT EXISTS (SELECT 1 FROM {default} WHERE {col} >= {lo} AND {col} < {hi})"
        ))?
        .unwrap_or(true),
        None => false,
    };
    // Staged (see above) when the default partition holds rows of other periods only.
    let stage = match default {
        Some(default) if may_stage && !forced && !waiting => {
            Spi::get_one::<bool>(&format!("SELECT EXISTS (SELECT 1 FROM {default})"))?
                .unwrap_or(true)
        }
        _ => false,
    };
    // The partition constraint as a CHECK when the child gets rows before its ATTACH (or
    // waits for it across transactions): ATTACH then needs no scan of the child. An empty
    // child attached at once needs none.
    let with_check = leftover || waiting || stage;
    if !leftover {
        create_child_table(parent, cfg, r, &child)?;
        if with_check {
            Spi::run(&format!(
                "ALTER TABLE {child} ADD CONSTRAINT {check} CHECK ({col} IS NOT NULL AND {col} >= {lo} AND {col} < {hi})"
            ))?;
        }
    }
    match default {
        Some(default) if waiting => {
            let cols = copy_columns(parent.oid)?;
            // On Citus the child becomes a distributed table co-located with its parent
            // before rows move into it (ATTACH would distribute it, but only after the move).
            let citus = match crate::citus::distribution_column(parent.oid)? {
                Some(column) => {
                    crate::citus::distribute_beside(&child, &column, &parent.qualified())?;
                    true
                }
                None => false,
            };
            if !forced {
                drain_default(default, &child, cfg, &cols, r, citus)?;
            }
            with_lock_retry(&attach, || {
                Spi::run(&format!("LOCK TABLE {} IN SHARE MODE", parent.qualified()))?;
                Spi::run(&format!("LOCK TABLE {default} IN ACCESS EXCLUSIVE MODE"))?;
                if forced {
                    // As floe's own DDL: the tenant event trigger would restore FORCE at once.
                    crate::tenant::as_floe_ddl(|| {
                        Spi::run(&format!(
                            "ALTER TABLE {default} NO FORCE ROW LEVEL SECURITY"
                        ))?;
                        drain_default(default, &child, cfg, &cols, r, citus)?;
                        Spi::run(&format!("ALTER TABLE {default} FORCE ROW LEVEL SECURITY"))?;
                        Ok::<_, FloeError>(())
                    })?;
                } else {
                    drain_default(default, &child, cfg, &cols, r, citus)?;
                }
                Spi::run(&attach)?;
                Ok(())
            })?;
        }
        Some(default) if stage => {
            if !has_constraint(default, &exclusion_name(r))? {
                ddl(&format!(
                    "ALTER TABLE {default} ADD CONSTRAINT {} CHECK (NOT ({col} >= {lo} AND {col} < {hi})) NOT VALID",
                    qi(exclusion_name(r))
                ))?;
            }
            return Ok(true);
        }
        _ => ddl(&attach)?,
    }
    finish_child(parent, r, &child, default, with_check)?;
    Ok(false)
}

/// The exclusion CHECK a staged child puts on the default partition.
pub(super) fn exclusion_name(r: &Range) -> String {
    plan::child_name(&r.name, "floe_excl")
}

pub(super) fn has_constraint(table: &str, name: &str) -> Result<bool, FloeError> {
    Ok(Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint
                         WHERE conrelid = pg_catalog.to_regclass($1) AND conname = $2)",
        &[table.into(), name.into()],
    )?
    .unwrap_or(false))
}

/// The middle step of a staged child: validates the exclusion CHECK on the default
/// partition (a scan under SHARE UPDATE EXCLUSIVE: reads and writes go on). Fails if a row of
/// the period arrived in the default partition meanwhile; the caller then removes the CHECK.
pub(super) fn validate_exclusion(default: &str, r: &Range) -> Result<(), FloeError> {
    ddl(&format!(
        "ALTER TABLE {default} VALIDATE CONSTRAINT {}",
        qi(exclusion_name(r))
    ))
}

/// Removes a staged child's exclusion CHECK (after a failed validation).
pub(super) fn drop_exclusion(default: &str, r: &Range) -> Result<(), FloeError> {
    if has_constraint(default, &exclusion_name(r))? {
        ddl(&format!(
            "ALTER TABLE {default} DROP CONSTRAINT {}",
            qi(exclusion_name(r))
        ))?;
    }
    Ok(())
}

/// The last step of a staged child: ATTACH without scanning the default partition (its
/// valid exclusion CHECK proves the period is not there), then the usual finish.
pub(super) fn attach_staged_child(
    parent: &Parent,
    cfg: &SetConfig,
    r: &Range,
    default: &str,
) -> Result<(), FloeError> {
    ddl(&attach_sql(parent, cfg, r)?)?;
    finish_child(parent, r, &parent.child(&r.name), Some(default), true)
}

/// Drops the CHECKs that made ATTACH cheap (the child's, and a staged exclusion on the
/// default partition), carries grants and tenant isolation over.
pub(super) fn finish_child(
    parent: &Parent,
    r: &Range,
    child: &str,
    default: Option<&str>,
    with_check: bool,
) -> Result<(), FloeError> {
    if with_check {
        ddl(&format!(
            "ALTER TABLE {child} DROP CONSTRAINT {}",
            qi(bounds_check_name(r))
        ))?;
        // A staged exclusion left by an interrupted run (there is none otherwise).
        if let Some(default) = default {
            drop_exclusion(default, r)?;
        }
    }
    copy_acl(parent.oid, child)?;
    crate::tenant::apply_to_partitions(parent.oid)?;
    Ok(())
}

pub(super) fn bounds(cfg: &SetConfig, r: &Range) -> Result<(String, String), FloeError> {
    Ok((
        ql(plan::bound_text(r.lo, cfg.control_type).map_err(plan_error)?),
        ql(plan::bound_text(r.hi, cfg.control_type).map_err(plan_error)?),
    ))
}

/// `ALTER TABLE parent ATTACH PARTITION child FOR VALUES FROM (lo) TO (hi)`.
pub(super) fn attach_sql(parent: &Parent, cfg: &SetConfig, r: &Range) -> Result<String, FloeError> {
    let (lo, hi) = bounds(cfg, r)?;
    Ok(format!(
        "ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({lo}) TO ({hi})",
        parent.qualified(),
        parent.child(&r.name)
    ))
}

/// The CHECK a child carries while it waits for its ATTACH (unquoted).
pub(super) fn bounds_check_name(r: &Range) -> String {
    plan::child_name(&r.name, "floe_bounds")
}

/// A plain table like the parent, LIST-partitioned into its sub-partitions when the set
/// has them.
pub(super) fn create_child_table(
    parent: &Parent,
    cfg: &SetConfig,
    r: &Range,
    child: &str,
) -> Result<(), FloeError> {
    let sub = cfg
        .sub_by
        .as_ref()
        .map(|s| format!(" PARTITION BY LIST ({})", qi(s)))
        .unwrap_or_default();
    Spi::run(&format!(
        "CREATE TABLE {child} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE \
         INCLUDING COMMENTS INCLUDING GENERATED INCLUDING COMPRESSION INCLUDING STATISTICS){sub}",
        parent.qualified()
    ))?;
    if cfg.sub_by.is_some() {
        let suffixes = plan::value_suffixes(&cfg.sub_values).map_err(|(a, b)| {
            invalid(
                "sub_partition_values",
                format!("{a}, {b}"),
                "values with distinct names",
            )
        })?;
        for (value, suffix) in cfg.sub_values.iter().zip(suffixes) {
            Spi::run(&format!(
                "CREATE TABLE {} PARTITION OF {child} FOR VALUES IN ({})",
                parent.child(&plan::child_name(&r.name, &suffix)),
                ql(value)
            ))?;
        }
        Spi::run(&format!(
            "CREATE TABLE {} PARTITION OF {child} DEFAULT",
            parent.child(&plan::child_name(&r.name, "default"))
        ))?;
    }
    Ok(())
}
