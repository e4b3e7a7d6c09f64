//! SQL glue of the partition manager: `floe.create_parent`, the `floe.run_maintenance`
//! procedure and the maintenance steps, health checks. What to create and retire is decided
//! in `plan.rs`; this file reads the catalog, runs the DDL and maps errors.

use super::checks::{self, SetFacts};
use super::plan::{self, Child, ControlType, Range, RetentionMode, SetState, Step};
use crate::error::{invalid, required, ErrorReport, FloeError};
use crate::health::checks::Check;
use crate::sqltypes::Name;
use crate::{gucs, subxact};
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier as qi, quote_literal as ql};
use pgrx::{pg_sys, PgRelation, PgSqlErrorCode};
use std::cell::RefCell;

/// The parent table of a set, as the catalog names it.
#[derive(Debug, Clone)]
struct Parent {
    oid: pg_sys::Oid,
    key: String,
    schema: String,
    name: String,
    owner: pg_sys::Oid,
}

impl Parent {
    fn qualified(&self) -> String {
        format!("{}.{}", qi(&self.schema), qi(&self.name))
    }
    fn child(&self, name: &str) -> String {
        format!("{}.{}", qi(&self.schema), qi(name))
    }
}

/// A set's configuration plus the times of this pass, in microseconds since the epoch.
#[derive(Debug, Clone)]
struct SetConfig {
    control: String,
    control_type: ControlType,
    step: Step,
    premake: u32,
    start_us: i64,
    sub_by: Option<String>,
    sub_values: Vec<String>,
    cutoff_us: Option<i64>,
    mode: RetentionMode,
    archive_schema: Option<String>,
    as_of_us: i64,
    /// The table the set was made for (NULL: adopt the table of that name).
    relid: Option<pg_sys::Oid>,
}

/// A child being retired by `DETACH ... CONCURRENTLY`, which only the scheduler worker can
/// run (outside any transaction block); the rest of the retirement follows it.
#[derive(Debug, Clone)]
pub struct ConcurrentDetach {
    pub owner: pg_sys::Oid,
    pub detach_sql: String,
    pub after_sql: Option<String>,
}

fn caught(context: &str, c: subxact::Caught) -> FloeError {
    FloeError::Sql {
        code: c.code,
        message: format!("{context}: {}", c.message),
        detail: c.detail,
        hint: "The statement was rolled back; nothing of this step was kept.".into(),
    }
}

/// The table `oid` and its relkind, when the current user has its owner's privileges
/// (42501 otherwise): partition sets are managed by the owner.
fn owned_table(oid: pg_sys::Oid) -> Result<(Parent, String), FloeError> {
    let (parent, relkind, owner) = Spi::connect(|client| {
        let rows = client.select(
            "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname), n.nspname::text,
                    c.relname::text, c.relowner, c.relkind::text,
                    pg_catalog.pg_has_role(c.relowner, 'USAGE')
               FROM pg_catalog.pg_class c
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE c.oid = $1",
            Some(1),
            &[oid.into()],
        )?;
        if rows.is_empty() {
            return Err(FloeError::NotFound {
                kind: "relation",
                name: oid.to_u32().to_string(),
                hint: "The table was dropped.".into(),
            });
        }
        let row = rows.first();
        Ok((
            Parent {
                oid,
                key: row.get(1)?.unwrap_or_default(),
                schema: row.get(2)?.unwrap_or_default(),
                name: row.get(3)?.unwrap_or_default(),
                owner: row.get(4)?.unwrap_or(pg_sys::InvalidOid),
            },
            row.get::<String>(5)?.unwrap_or_default(),
            row.get::<bool>(6)?.unwrap_or(false),
        ))
    })?;
    if !owner {
        return Err(FloeError::PermissionDenied {
            message: format!("must be owner of table {}", parent.key),
            detail: None,
            hint: "Partition sets are managed by the owner of the parent table (or a member of its role).".into(),
        });
    }
    Ok((parent, relkind))
}

/// The children of `parent` (named `schema.table`, quoted: a partition may live in another
/// schema than its parent), with bounds in microseconds (UTC); `±infinity` bounds count as
/// MINVALUE/MAXVALUE.
/// Also returns the children whose `DETACH ... CONCURRENTLY` was interrupted.
fn children(
    parent: pg_sys::Oid,
    control_type: ControlType,
) -> Result<(Vec<Child>, Vec<String>), FloeError> {
    let ty = match control_type {
        ControlType::TimestampTz => "timestamptz",
        _ => "timestamp",
    };
    Spi::connect(|client| {
        let (mut out, mut pending) = (Vec::new(), Vec::new());
        let rows = client.select(
            // MATERIALIZED: each bound is deparsed once, not once per use of `m`.
            "WITH k AS MATERIALIZED (
               SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) AS name,
                      c.oid = p.partdefid AS is_default, i.inhdetachpending AS pending,
                      pg_catalog.regexp_match(pg_catalog.pg_get_expr(c.relpartbound, c.oid),
                                              '^FOR VALUES FROM \\((.*)\\) TO \\((.*)\\)$') AS m
                 FROM pg_catalog.pg_inherits i
                 JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                 JOIN pg_catalog.pg_partitioned_table p ON p.partrelid = i.inhparent
                WHERE i.inhparent = $1)
             SELECT name, is_default,
                    CASE WHEN m[1] IS NULL OR m[1] = 'MINVALUE' OR m[1] ILIKE '%infinity%' THEN NULL
                         WHEN $2 = 'timestamptz'
                         THEN (extract(epoch FROM pg_catalog.btrim(m[1], '''')::timestamptz) * 1000000)::int8
                         ELSE (extract(epoch FROM pg_catalog.btrim(m[1], '''')::timestamp) * 1000000)::int8 END,
                    CASE WHEN m[2] IS NULL OR m[2] = 'MAXVALUE' OR m[2] ILIKE '%infinity%' THEN NULL
                         WHEN $2 = 'timestamptz'
                         THEN (extract(epoch FROM pg_catalog.btrim(m[2], '''')::timestamptz) * 1000000)::int8
                         ELSE (extract(epoch FROM pg_catalog.btrim(m[2], '''')::timestamp) * 1000000)::int8 END,
                    pending
               FROM k ORDER BY name",
            None,
            &[parent.into(), ty.into()],
        )?;
        for row in rows {
            let name: String = row.get(1)?.unwrap_or_default();
            if row.get::<bool>(5)?.unwrap_or(false) {
                pending.push(name.clone());
            }
            out.push(Child {
                name,
                is_default: row.get(2)?.unwrap_or(false),
                lo: row.get(3)?,
                hi: row.get(4)?,
            });
        }
        Ok((out, pending))
    })
}

/// Runs one DDL statement under `floe.partition_lock_timeout`, retrying after a lock
/// timeout (with a growing pause, so the writers queued behind the failed attempt get
/// through first). Any other error is returned at once; the statement is rolled back.
fn ddl(sql: &str) -> Result<(), FloeError> {
    with_lock_retry(sql.lines().next().unwrap_or(sql), || Ok(Spi::run(sql)?))
}

/// Runs `step` in a subtransaction under `floe.partition_lock_timeout`. When a lock is not
/// granted in time the subtransaction is rolled back (releasing every lock the step took),
/// and after a growing pause the step is tried again, at most `floe.partition_lock_retries`
/// times. Any other error is returned at once, the step rolled back.
fn with_lock_retry(
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

/// Columns that a row move copies (no dropped or generated columns).
fn copy_columns(parent: pg_sys::Oid) -> Result<String, FloeError> {
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
fn copy_acl(from: pg_sys::Oid, target: &str) -> Result<(), FloeError> {
    let any = Spi::get_one_with_args::<bool>(
        "SELECT relacl IS NOT NULL FROM pg_catalog.pg_class WHERE oid = $1",
        &[from.into()],
    )?;
    if any != Some(true) {
        return Ok(());
    }
    let grants: Vec<String> = Spi::connect(|client| {
        let mut out = Vec::new();
        for row in client.select(
            "SELECT pg_catalog.format('GRANT %s ON TABLE %s TO %s%s', a.privilege_type, t.relid::regclass,
                        CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(r.rolname) END,
                        CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
               FROM pg_catalog.pg_class c
               CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a
               LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
               CROSS JOIN pg_catalog.pg_partition_tree($2::regclass) t
              WHERE c.oid = $1 AND a.grantee <> c.relowner",
            None,
            &[from.into(), target.into()],
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
fn drain_default(
    default: &str,
    child: &str,
    cfg: &SetConfig,
    cols: &str,
    r: &Range,
) -> Result<i64, FloeError> {
    let (lo, hi) = bounds(cfg, r)?;
    let col = qi(&cfg.control);
    let batch = gucs::partition_drain_batch().max(1);
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

fn plan_error(e: plan::PlanError) -> FloeError {
    match e {
        plan::PlanError::Overlap { wanted, existing } => FloeError::InvalidDefinition {
            message: format!("partition \"{wanted}\" would overlap existing partition \"{existing}\""),
            detail: None,
            hint: format!("Detach or drop \"{existing}\", or give floe.create_parent a start after it; floe does not adopt partitions with other bounds."),
        },
        other => FloeError::InvalidArgument {
            argument: "part_interval",
            value: other.to_string(),
            expected: "an interval floe can align to the calendar".into(),
        },
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
fn create_child(
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
fn create_or_stage_child(
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
            if !forced {
                drain_default(default, &child, cfg, &cols, r)?;
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
                        drain_default(default, &child, cfg, &cols, r)?;
                        Spi::run(&format!("ALTER TABLE {default} FORCE ROW LEVEL SECURITY"))?;
                        Ok::<_, FloeError>(())
                    })?;
                } else {
                    drain_default(default, &child, cfg, &cols, r)?;
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
fn exclusion_name(r: &Range) -> String {
    plan::child_name(&r.name, "floe_excl")
}

fn has_constraint(table: &str, name: &str) -> Result<bool, FloeError> {
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
fn validate_exclusion(default: &str, r: &Range) -> Result<(), FloeError> {
    ddl(&format!(
        "ALTER TABLE {default} VALIDATE CONSTRAINT {}",
        qi(exclusion_name(r))
    ))
}

/// Removes a staged child's exclusion CHECK (after a failed validation).
fn drop_exclusion(default: &str, r: &Range) -> Result<(), FloeError> {
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
fn attach_staged_child(
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
fn finish_child(
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

fn bounds(cfg: &SetConfig, r: &Range) -> Result<(String, String), FloeError> {
    Ok((
        ql(plan::bound_text(r.lo, cfg.control_type).map_err(plan_error)?),
        ql(plan::bound_text(r.hi, cfg.control_type).map_err(plan_error)?),
    ))
}

/// `ALTER TABLE parent ATTACH PARTITION child FOR VALUES FROM (lo) TO (hi)`.
fn attach_sql(parent: &Parent, cfg: &SetConfig, r: &Range) -> Result<String, FloeError> {
    let (lo, hi) = bounds(cfg, r)?;
    Ok(format!(
        "ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({lo}) TO ({hi})",
        parent.qualified(),
        parent.child(&r.name)
    ))
}

/// The CHECK a child carries while it waits for its ATTACH (unquoted).
fn bounds_check_name(r: &Range) -> String {
    plan::child_name(&r.name, "floe_bounds")
}

/// A plain table like the parent, LIST-partitioned into its sub-partitions when the set
/// has them.
fn create_child_table(
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

fn default_partition_of(kids: &[Child]) -> Option<String> {
    kids.iter().find(|c| c.is_default).map(|c| c.name.clone())
}

fn load_config(
    key: &str,
    as_of: Option<TimestampWithTimeZone>,
) -> Result<Option<SetConfig>, FloeError> {
    Spi::connect(|client| {
        let rows = client.select(
            "SELECT control::text, control_type, part_interval, premake,
                    (extract(epoch FROM start_at) * 1000000)::int8, default_partition,
                    sub_partition_by::text, sub_partition_values,
                    (extract(epoch FROM coalesce($2, pg_catalog.now()) - retention) * 1000000)::int8,
                    retention_mode, archive_schema::text,
                    (extract(epoch FROM coalesce($2, pg_catalog.now())) * 1000000)::int8, relid
               FROM floe.partition_sets WHERE parent = $1",
            Some(1),
            &[key.into(), as_of.into()],
        )?;
        if rows.is_empty() {
            return Ok(None);
        }
        let row = rows.first();
        let iv: Interval = row.get(3)?.ok_or_else(|| FloeError::Internal {
            message: "partition set without interval".into(),
        })?;
        let step = Step::from_interval(iv.months(), iv.days(), iv.micros()).map_err(plan_error)?;
        let control_type = ControlType::parse(&row.get::<String>(2)?.unwrap_or_default())
            .ok_or_else(|| FloeError::Internal {
                message: "partition set with an unknown control type".into(),
            })?;
        Ok(Some(SetConfig {
            control: row.get(1)?.unwrap_or_default(),
            control_type,
            step,
            premake: row.get::<i32>(4)?.unwrap_or(0).max(0) as u32,
            start_us: row.get(5)?.unwrap_or(0),
            sub_by: row.get(7)?,
            sub_values: row.get::<Vec<String>>(8)?.unwrap_or_default(),
            cutoff_us: row.get(9)?,
            mode: RetentionMode::parse(&row.get::<String>(10)?.unwrap_or_default())
                .unwrap_or(RetentionMode::Detach),
            archive_schema: row.get(11)?,
            as_of_us: row.get(12)?.unwrap_or(0),
            relid: row.get(13)?,
        }))
    })
}

/// Runs `f` as the parent's owner (children are then owned by it, and no trigger or default
/// expression of the table runs with the maintainer's rights).
fn as_owner<T>(
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

/// How a retired child leaves its set.
#[derive(Debug, Clone)]
enum Detach {
    /// `DETACH PARTITION` under lock_timeout (ACCESS EXCLUSIVE on the parent, briefly).
    Plain(String),
    /// `DETACH PARTITION ... CONCURRENTLY`, run by the worker as a top-level statement.
    Concurrent(String),
    /// `DETACH PARTITION ... FINALIZE` of an interrupted concurrent detach.
    Finalize(String),
}

/// What a pass over one set will do, planned in one short transaction.
struct SetWork {
    parent: Parent,
    cfg: SetConfig,
    default: Option<String>,
    create: Vec<Range>,
    retire: Vec<(Detach, Option<String>)>,
}

/// Plans a pass over a set: create what is missing, then (only if every wanted child will
/// exist) retire what is past retention. `None` when the set is gone.
fn plan_set(
    key: &str,
    as_of: Option<TimestampWithTimeZone>,
    in_worker: bool,
) -> Result<Option<SetWork>, FloeError> {
    let Some(oid) = Spi::get_one_with_args::<pg_sys::Oid>(
        "SELECT pg_catalog.to_regclass($1)::oid",
        &[key.into()],
    )?
    else {
        // DROP TABLE removes the set (event trigger): the table was renamed or moved.
        return Err(FloeError::NotFound {
            kind: "parent table",
            name: key.to_string(),
            hint: "Was it renamed? UPDATE floe.partition_sets SET parent = format('%I.%I', schema, new_name) WHERE parent = '<old>', or DELETE the row.".into(),
        });
    };
    let Some(cfg) = load_config(key, as_of)? else {
        return Ok(None);
    };
    // The name must still be the table the set was made for: a table renamed away and
    // another one created under its name is not adopted (its owner did not ask for it).
    if cfg.relid != Some(oid) {
        let renamed_away = match cfg.relid {
            Some(relid) => Spi::get_one_with_args::<bool>(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE oid = $1)",
                &[relid.into()],
            )?
            .unwrap_or(false),
            None => false,
        };
        if renamed_away {
            return Err(FloeError::WrongState {
                message: format!(
                    "{key} is no longer the table this partition set was made for (that one was renamed)"
                ),
                hint: "Point the set at the renamed table (UPDATE floe.partition_sets SET parent = ...), or, to manage the new table, SET relid = NULL after checking its configuration.".into(),
            });
        }
        // Restored from a dump (new oids), or adopted by name: the table of that name.
        Spi::run_with_args(
            "UPDATE floe.partition_sets SET relid = $2 WHERE parent = $1",
            &[key.into(), oid.into()],
        )?;
    }
    let (parent, _) = owned_table(oid)?;
    let (kids, pending) = children(oid, cfg.control_type)?;
    let state = SetState {
        base: &parent.name,
        step: cfg.step,
        premake: cfg.premake,
        start: cfg.start_us,
        retain_after: cfg.cutoff_us,
        children: &kids,
    };
    let p = plan::plan(&state, cfg.as_of_us).map_err(plan_error)?;
    let default = default_partition_of(&kids);
    let mut retire = Vec::new();
    if p.complete {
        for child in &p.retire {
            let sql = format!(
                "ALTER TABLE {} DETACH PARTITION {child}",
                parent.qualified()
            );
            let detach = if pending.contains(child) {
                Detach::Finalize(format!("{sql} FINALIZE"))
            } else if in_worker && default.is_none() {
                // CONCURRENTLY is refused when the set has a default partition.
                Detach::Concurrent(format!("{sql} CONCURRENTLY"))
            } else {
                Detach::Plain(sql)
            };
            let after = match cfg.mode {
                RetentionMode::Detach => None,
                RetentionMode::Drop => Some(format!("DROP TABLE {child}")),
                RetentionMode::Archive => Some(format!(
                    "ALTER TABLE {child} SET SCHEMA {}",
                    qi(cfg.archive_schema.as_deref().unwrap_or("public"))
                )),
            };
            retire.push((detach, after));
        }
    }
    Ok(Some(SetWork {
        parent,
        cfg,
        default,
        create: p.create,
        retire,
    }))
}

/// Where the steps of a maintenance run commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Txn {
    /// Inside the caller's transaction (a transaction block, or CALL from a function).
    Caller,
    /// A CALL outside a transaction block, through a non-atomic SPI connection.
    Procedure,
    /// The scheduler worker, between its own transactions.
    Worker,
}

/// Ends the current step's transaction and starts the next one (under a fresh snapshot).
fn commit(txn: Txn) {
    // SAFETY: in Procedure mode our non-atomic SPI connection is the innermost one (every
    // step's own SPI use has ended); in Worker mode the worker is inside a transaction it
    // started and finishes after us, and we leave it in one with a snapshot pushed.
    unsafe {
        match txn {
            Txn::Caller => {}
            Txn::Procedure => {
                pg_sys::PopActiveSnapshot();
                pg_sys::SPI_commit();
                pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
            }
            Txn::Worker => {
                pg_sys::PopActiveSnapshot();
                pg_sys::CommitTransactionCommand();
                pg_sys::StartTransactionCommand();
                pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
            }
        }
    }
    no_flush_wait(txn);
}

/// Maintenance's own transactions do not wait for their WAL flush: a crash can only lose
/// the last steps, which the next run redoes (every step is idempotent), and a run of many
/// short transactions is not slowed by one fsync each.
fn no_flush_wait(txn: Txn) {
    if txn != Txn::Caller {
        let _ = Spi::run("SET LOCAL synchronous_commit = off");
    }
}

/// One step as the set's owner, in a subtransaction: an error undoes the step only.
fn step(owner: pg_sys::Oid, f: impl FnOnce() -> Result<(), FloeError>) -> Result<(), FloeError> {
    match subxact::try_run(|| as_owner(owner, f)) {
        Ok(r) => r,
        Err(c) => Err(FloeError::Sql {
            code: c.code,
            message: c.message,
            detail: c.detail,
            hint: "The step was rolled back; maintenance retries at its next run.".into(),
        }),
    }
}

/// One pass over a set, each DDL step in its own transaction (unless `txn` is `Caller`), its
/// outcome recorded in `floe.partition_sets`; one failing set does not stop the others.
/// Returns the concurrent detaches left for the worker (which records the set after them).
fn maintain_set(
    key: &str,
    as_of: Option<TimestampWithTimeZone>,
    txn: Txn,
) -> (Option<String>, Vec<ConcurrentDetach>) {
    no_flush_wait(txn);
    // One maintenance of a set at a time (the worker and a CALL by hand, say): the second
    // skips the set instead of colliding with the first one's steps.
    if !lock_set(key, txn) {
        pgrx::notice!("floe: partition set {key} is being maintained by another session; skipped");
        return (None, Vec::new());
    }
    let planned = match subxact::try_run(|| plan_set(key, as_of, txn == Txn::Worker)) {
        Ok(r) => r,
        Err(c) => Err(caught("planning", c)),
    };
    let mut concurrent = Vec::new();
    let outcome = planned.and_then(|work| {
        let Some(w) = work else { return Ok(()) };
        let owner = w.parent.owner;
        let default = w.default.as_deref();
        commit(txn);
        // One transaction per new child and per retired child: the strong locks each takes
        // (the default partition, briefly the parent) last milliseconds, never a whole run.
        for r in &w.create {
            let mut staged = false;
            step(owner, || {
                staged = create_or_stage_child(&w.parent, &w.cfg, r, default, txn != Txn::Caller)?;
                Ok(())
            })?;
            commit(txn);
            if let (true, Some(default)) = (staged, default) {
                let validated = step(owner, || validate_exclusion(default, r));
                commit(txn);
                if let Err(e) = validated {
                    // A row of the period arrived: writers must not keep hitting the CHECK.
                    let _ = step(owner, || drop_exclusion(default, r));
                    commit(txn);
                    return Err(e);
                }
                step(owner, || attach_staged_child(&w.parent, &w.cfg, r, default))?;
                commit(txn);
            }
        }
        for (detach, after) in &w.retire {
            match detach {
                Detach::Concurrent(sql) => {
                    concurrent.push(ConcurrentDetach {
                        owner,
                        detach_sql: sql.clone(),
                        after_sql: after.clone(),
                    });
                    continue;
                }
                Detach::Plain(sql) | Detach::Finalize(sql) => step(owner, || {
                    ddl(sql)?;
                    if let Some(after) = after {
                        ddl(after)?;
                    }
                    Ok(())
                })?,
            }
            commit(txn);
        }
        Ok(())
    });
    let error = outcome.err().map(|e| e.to_string());
    if let Some(e) = &error {
        pgrx::warning!("floe: partition maintenance of {key} failed: {e}");
    }
    if concurrent.is_empty() || error.is_some() {
        record_caught(key, error.as_deref());
        concurrent.clear();
        unlock_set(key, txn);
    }
    (error, concurrent)
}

/// Advisory lock class of partition sets ("floe" in ASCII); the second key is the set's.
const SET_LOCK_CLASS: i32 = 0x666c_6f65;

/// Takes the set's advisory lock without waiting: for the caller's transaction when
/// maintenance runs inside it, else for the session (released by [`unlock_set`]).
fn lock_set(key: &str, txn: Txn) -> bool {
    let sql = if txn == Txn::Caller {
        "SELECT pg_catalog.pg_try_advisory_xact_lock($1, pg_catalog.hashtext($2))"
    } else {
        "SELECT pg_catalog.pg_try_advisory_lock($1, pg_catalog.hashtext($2))"
    };
    matches!(
        subxact::run(|| Spi::get_one_with_args::<bool>(sql, &[SET_LOCK_CLASS.into(), key.into()])),
        Ok(Ok(Some(true)))
    )
}

fn unlock_set(key: &str, txn: Txn) {
    if txn != Txn::Caller {
        let _ = subxact::run(|| {
            Spi::get_one_with_args::<bool>(
                "SELECT pg_catalog.pg_advisory_unlock($1, pg_catalog.hashtext($2))",
                &[SET_LOCK_CLASS.into(), key.into()],
            )
        });
    }
}

/// Records the outcome of a pass in `floe.partition_sets`.
fn record(key: &str, error: Option<&str>) -> Result<(), FloeError> {
    Spi::run_with_args(
        "UPDATE floe.partition_sets SET last_maintenance = pg_catalog.clock_timestamp(), last_error = $2
          WHERE parent = $1",
        &[key.into(), error.into()],
    )?;
    Ok(())
}

fn record_caught(key: &str, error: Option<&str>) {
    match subxact::run(|| record(key, error)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => pgrx::warning!("floe: could not record maintenance of {key}: {e}"),
        Err(c) => pgrx::warning!(
            "floe: could not record maintenance of {key}: {}",
            c.describe()
        ),
    }
}

/// The sets a maintenance run covers: one parent, or every automatic set the caller may see.
fn set_keys(parent: Option<pg_sys::Oid>) -> Result<Vec<String>, FloeError> {
    Spi::connect(|client| {
        let mut out = Vec::new();
        let rows = match parent {
            Some(oid) => client.select(
                "SELECT floe.partition_set_key($1::regclass)",
                None,
                &[oid.into()],
            )?,
            None => client.select(
                "SELECT parent FROM floe.partition_sets WHERE automatic ORDER BY parent",
                None,
                &[],
            )?,
        };
        for row in rows {
            if let Some(k) = row.get::<String>(1)? {
                out.push(k);
            }
        }
        Ok(out)
    })
}

thread_local! {
    /// A maintenance run the scheduler worker was asked for (by its built-in job) and runs
    /// after that job's transaction, one transaction per set.
    static DEFERRED: RefCell<Option<(Option<pg_sys::Oid>, Option<TimestampWithTimeZone>)>> = const { RefCell::new(None) };
}

/// Called by the scheduler worker after each job: a deferred maintenance run, if any.
pub fn take_deferred() -> Option<(Option<pg_sys::Oid>, Option<TimestampWithTimeZone>)> {
    DEFERRED.with(|d| d.borrow_mut().take())
}

/// The maintenance of the scheduler worker: each set in its own transaction, retired
/// children of sets without a default partition detached CONCURRENTLY as top-level
/// statements.
pub fn run_in_worker(parent: Option<pg_sys::Oid>, as_of: Option<TimestampWithTimeZone>) {
    use pgrx::bgworkers::BackgroundWorker;
    let keys = BackgroundWorker::transaction(|| subxact::run(|| set_keys(parent)));
    let keys = match keys {
        Ok(Ok(k)) => k,
        Ok(Err(e)) => {
            pgrx::warning!("floe: partition maintenance could not list its sets: {e}");
            return;
        }
        Err(c) => {
            pgrx::warning!(
                "floe: partition maintenance could not list its sets: {}",
                c.describe()
            );
            return;
        }
    };
    for key in keys {
        let (_, concurrent) =
            BackgroundWorker::transaction(|| maintain_set(&key, as_of, Txn::Worker));
        if concurrent.is_empty() {
            continue;
        }
        let mut first_error = None;
        for d in concurrent {
            // As the worker itself: DETACH CONCURRENTLY runs none of the table's code (it
            // adds the partition constraint as an already valid CHECK, scanning nothing).
            let detached =
                crate::scheduler::run_top_level(&d.detach_sql, gucs::partition_lock_timeout_ms());
            let error = match detached {
                Err(e) => Some(format!("{}: {e}", d.detach_sql)),
                Ok(()) => match &d.after_sql {
                    None => None,
                    Some(sql) => BackgroundWorker::transaction(|| {
                        step(d.owner, || ddl(sql)).err().map(|e| e.to_string())
                    }),
                },
            };
            if let Some(e) = error {
                pgrx::warning!("floe: partition retirement in {key} failed: {e}");
                // Only one detach can be pending per parent: the rest waits for next run.
                first_error = Some(e);
                break;
            }
        }
        BackgroundWorker::transaction(|| {
            record_caught(&key, first_error.as_deref());
            unlock_set(&key, Txn::Worker);
        });
    }
}

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
    if !nonatomic && superuser && crate::scheduler::is_scheduler_worker() {
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

/// The period of a new set, checked against its control column, and its premake.
fn checked_step(
    control_type: ControlType,
    interval: &Interval,
    premake: i32,
) -> Result<Step, FloeError> {
    let step = Step::from_interval(interval.months(), interval.days(), interval.micros())
        .map_err(plan_error)?;
    step.check_control(control_type).map_err(|e| {
        invalid(
            "part_interval",
            e.to_string(),
            "whole days or months for a date column",
        )
    })?;
    if !(0..=1000).contains(&premake) {
        return Err(invalid(
            "premake",
            premake.to_string(),
            "0 to 1000 partitions ahead",
        ));
    }
    Ok(step)
}

/// The control column's type, if floe partitions by it (22023 otherwise).
fn parse_control(control: &str, type_name: &str) -> Result<ControlType, FloeError> {
    ControlType::parse(type_name).ok_or_else(|| {
        invalid(
            "control",
            format!("{control} ({type_name})"),
            "a column of type timestamptz, timestamp or date",
        )
    })
}

/// A new row of `floe.partition_sets`, bound to the table's oid.
#[allow(clippy::too_many_arguments)]
fn insert_set(
    key: &str,
    control: &str,
    control_type: ControlType,
    interval: Interval,
    premake: i32,
    start_us: i64,
    default_partition: bool,
    sub: Option<(&str, &[String])>,
) -> Result<(), FloeError> {
    Spi::run_with_args(
        "INSERT INTO floe.partition_sets (parent, control, control_type, part_interval, premake, start_at,
                                          default_partition, sub_partition_by, sub_partition_values, relid)
         VALUES ($1, $2, $3, $4, $5, pg_catalog.to_timestamp($6::float8 / 1000000), $7, $8, $9,
                 pg_catalog.to_regclass($1)::oid)",
        &[
            key.into(),
            control.into(),
            control_type.sql_name().into(),
            interval.into(),
            premake.into(),
            start_us.into(),
            default_partition.into(),
            sub.map(|(by, _)| by).into(),
            sub.map(|(_, values)| values.to_vec()).into(),
        ],
    )?;
    Ok(())
}

/// 42710 when `key` is a partition set already.
fn require_new_set(key: &str) -> Result<(), FloeError> {
    let exists = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM floe.partition_sets WHERE parent = $1)",
        &[key.into()],
    )?
    .unwrap_or(false);
    if exists {
        return Err(FloeError::AlreadyExists {
            kind: "partition set",
            name: key.to_string(),
            hint: "Change it in floe.partition_sets, or floe.remove_parent() it first.".into(),
        });
    }
    Ok(())
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

#[allow(clippy::too_many_arguments)]
fn create_set(
    parent: Option<PgRelation>,
    control: Option<Name>,
    part_interval: Option<Interval>,
    premake: Option<i32>,
    start: Option<TimestampWithTimeZone>,
    default_partition: Option<bool>,
    sub_partition_by: Option<Name>,
    sub_partition_values: Option<Vec<String>>,
) -> Result<i32, FloeError> {
    let rel = required(parent, "parent")?;
    let control = required(control, "control")?.0;
    let interval = required(part_interval, "part_interval")?;
    let premake = required(premake, "premake")?;
    let default_partition = required(default_partition, "default_partition")?;
    let (parent, relkind) = owned_table(rel.oid())?;
    drop(rel);
    if relkind != "p" {
        return Err(invalid(
            "parent",
            &parent.key,
            "a table declared PARTITION BY RANGE (control), e.g. CREATE TABLE t (...) PARTITION BY RANGE (created_at)",
        )
        );
    }
    // The partition key: one plain column, by range.
    let key = Spi::connect(|client| {
        let rows = client.select(
            "SELECT p.partstrat::text, p.partnatts::int,
                    (SELECT a.attname::text FROM pg_catalog.pg_attribute a
                      WHERE a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]),
                    (SELECT pg_catalog.format_type(a.atttypid, NULL) FROM pg_catalog.pg_attribute a
                      WHERE a.attrelid = p.partrelid AND a.attname = $2 AND NOT a.attisdropped)
               FROM pg_catalog.pg_partitioned_table p WHERE p.partrelid = $1",
            Some(1),
            &[parent.oid.into(), control.as_str().into()],
        )?;
        let row = rows.first();
        Ok::<_, FloeError>((
            row.get::<String>(1)?.unwrap_or_default(),
            row.get::<i32>(2)?.unwrap_or(0),
            row.get::<String>(3)?,
            row.get::<String>(4)?,
        ))
    })?;
    let (strategy, natts, key_column, control_type_name) = key;
    let Some(control_type_name) = control_type_name else {
        return Err(FloeError::UndefinedColumn {
            table: parent.key.clone(),
            column: control,
            hint: "Name the column the table is partitioned by.".into(),
        });
    };
    if strategy != "r" || natts != 1 || key_column.as_deref() != Some(control.as_str()) {
        return Err(invalid(
            "control",
            &control,
            &format!(
                "the one column of a PARTITION BY RANGE key, but {} is partitioned BY {} ({})",
                parent.key,
                match strategy.as_str() {
                    "r" => "RANGE",
                    "l" => "LIST",
                    _ => "HASH",
                },
                match (natts, key_column.as_deref()) {
                    (1, Some(c)) => c.to_string(),
                    (1, None) => "an expression".to_string(),
                    (n, _) => format!("{n} columns"),
                }
            ),
        ));
    }
    let control_type = parse_control(&control, &control_type_name)?;
    let step = checked_step(control_type, &interval, premake)?;
    let sub_by = sub_partition_by.map(|n| n.0);
    let sub_values = sub_partition_values.unwrap_or_default();
    if let Some(sub) = &sub_by {
        if sub == &control {
            return Err(invalid(
                "sub_partition_by",
                sub,
                "a column other than the control column",
            ));
        }
        let exists = Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attname = $2 AND attnum > 0 AND NOT attisdropped)",
            &[parent.oid.into(), sub.as_str().into()],
        )?
        .unwrap_or(false);
        if !exists {
            return Err(FloeError::UndefinedColumn {
                table: parent.key.clone(),
                column: sub.clone(),
                hint: "sub_partition_by names the column each partition is LIST-partitioned by."
                    .into(),
            });
        }
        if sub_values.is_empty() {
            return Err(invalid(
                "sub_partition_values",
                "{}",
                "the list values, one sub-partition each (a default sub-partition is added)",
            ));
        }
        plan::value_suffixes(&sub_values).map_err(|(a, b)| {
            invalid(
                "sub_partition_values",
                format!("{a}, {b}"),
                "values that give distinct partition names",
            )
        })?;
    } else if !sub_values.is_empty() {
        return Err(invalid(
            "sub_partition_by",
            "NULL",
            "a column when sub_partition_values are given",
        ));
    }
    require_new_set(&parent.key)?;
    // Plan first: an overlap is reported before anything is changed.
    let as_of =
        Spi::get_one::<i64>("SELECT (extract(epoch FROM pg_catalog.now()) * 1000000)::int8")?
            .unwrap_or(0);
    let start_us = match start {
        Some(ts) => Spi::get_one_with_args::<i64>(
            "SELECT (extract(epoch FROM $1::timestamptz) * 1000000)::int8",
            &[ts.into()],
        )?
        .unwrap_or(as_of),
        None => as_of,
    };
    let start_us = step.floor(start_us.min(as_of)).map_err(plan_error)?;
    let (kids, _) = children(parent.oid, control_type)?;
    let state = SetState {
        base: &parent.name,
        step,
        premake: premake as u32,
        start: start_us,
        retain_after: None,
        children: &kids,
    };
    let p = plan::plan(&state, as_of).map_err(plan_error)?;
    insert_set(
        &parent.key,
        &control,
        control_type,
        interval,
        premake,
        start_us,
        default_partition,
        sub_by.as_deref().map(|by| (by, sub_values.as_slice())),
    )?;
    let cfg = SetConfig {
        control,
        control_type,
        step,
        premake: premake as u32,
        start_us,
        sub_by,
        sub_values,
        cutoff_us: None,
        mode: RetentionMode::Detach,
        archive_schema: None,
        as_of_us: as_of,
        relid: Some(parent.oid),
    };
    as_owner(parent.owner, || {
        let mut default = default_partition_of(&kids);
        if default_partition && default.is_none() {
            let name = parent.child(&plan::child_name(&parent.name, "default"));
            ddl(&format!(
                "CREATE TABLE {name} PARTITION OF {} DEFAULT",
                parent.qualified()
            ))?;
            copy_acl(parent.oid, &name)?;
            crate::tenant::apply_to_partitions(parent.oid)?;
            default = Some(name);
        }
        for r in &p.create {
            create_child(&parent, &cfg, r, default.as_deref())?;
        }
        Ok(p.create.len() as i32)
    })
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
    Ok(convert(tbl, control, part_interval, premake)?)
}

fn convert(
    tbl: Option<PgRelation>,
    control: Option<Name>,
    part_interval: Option<Interval>,
    premake: Option<i32>,
) -> Result<String, FloeError> {
    let rel = required(tbl, "tbl")?;
    let control = required(control, "control")?.0;
    let interval = required(part_interval, "part_interval")?;
    let premake = required(premake, "premake")?;
    let (table, relkind) = owned_table(rel.oid())?;
    drop(rel);
    if relkind != "r" {
        return Err(invalid(
            "tbl",
            &table.key,
            "a plain table (a partitioned one is managed with floe.create_parent)",
        ));
    }
    require_new_set(&table.key)?;
    let type_name = Spi::get_one_with_args::<String>(
        "SELECT pg_catalog.format_type(atttypid, NULL) FROM pg_catalog.pg_attribute
          WHERE attrelid = $1 AND attname = $2 AND attnum > 0 AND NOT attisdropped",
        &[table.oid.into(), control.as_str().into()],
    )?;
    let Some(type_name) = type_name else {
        return Err(FloeError::UndefinedColumn {
            table: table.key.clone(),
            column: control,
            hint: "Name the time column the partitions divide the table by.".into(),
        });
    };
    let control_type = parse_control(&control, &type_name)?;
    let step = checked_step(control_type, &interval, premake)?;
    // What a conversion cannot carry over: named, and nothing is changed.
    let blockers: Vec<String> = Spi::connect(|client| {
        let mut out = Vec::new();
        for row in client.select(
            "SELECT 'it is part of an inheritance tree'
               WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_inherits WHERE inhrelid = $1 OR inhparent = $1)
             UNION ALL
             SELECT 'row level security is enabled (disable tenant isolation, convert, enable it again)'
               FROM pg_catalog.pg_class WHERE oid = $1 AND relrowsecurity
             UNION ALL
             SELECT pg_catalog.format('trigger %I', tgname) FROM pg_catalog.pg_trigger
              WHERE tgrelid = $1 AND NOT tgisinternal
             UNION ALL
             SELECT DISTINCT pg_catalog.format('%s depends on it', r.ev_class::regclass)
               FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
              WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.refobjid = $1 AND r.ev_class <> $1
             UNION ALL
             SELECT pg_catalog.format('foreign key %I of %s references it', conname, conrelid::regclass)
               FROM pg_catalog.pg_constraint WHERE contype = 'f' AND confrelid = $1
             UNION ALL
             SELECT pg_catalog.format('it is in publication %I', p.pubname)
               FROM pg_catalog.pg_publication_rel r JOIN pg_catalog.pg_publication p ON p.oid = r.prpubid
              WHERE r.prrelid = $1
             UNION ALL
             SELECT pg_catalog.format('no index leads with %I (the rows are moved by ranges of it)', $2::text)
              WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a
                                  ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                                 WHERE i.indrelid = $1 AND a.attname = $2)",
            None,
            &[table.oid.into(), control.as_str().into()],
        )? {
            if let Some(b) = row.get::<String>(1)? {
                out.push(b);
            }
        }
        Ok::<_, FloeError>(out)
    })?;
    if !blockers.is_empty() {
        return Err(FloeError::WrongState {
            message: format!(
                "table {} cannot be converted as it stands: {}",
                table.key,
                blockers.join("; ")
            ),
            hint: "Remove or handle what is named (and put it back on the partitioned table after), or create the partitioned table yourself and floe.create_parent() it.".into(),
        });
    }
    let default_name = plan::child_name(&table.name, "default");
    let taken = Spi::get_one_with_args::<bool>(
        "SELECT pg_catalog.to_regclass($1) IS NOT NULL",
        &[table.child(&default_name).into()],
    )?
    .unwrap_or(false);
    if taken {
        return Err(FloeError::AlreadyExists {
            kind: "relation",
            name: format!("{}.{default_name}", table.schema),
            hint: "The table becomes its set's default partition under that name: rename or drop the one that has it.".into(),
        });
    }
    let col = qi(&control);
    let old = table.child(&default_name);
    let new = table.qualified();
    as_owner(table.owner, || {
        // The lock first, under floe.partition_lock_timeout; then renaming, creating and
        // attaching are catalog changes only (no row is read or moved).
        ddl(&format!("LOCK TABLE {new} IN ACCESS EXCLUSIVE MODE"))?;
        let epoch = match control_type {
            ControlType::TimestampTz => format!("extract(epoch FROM min({col}))"),
            _ => format!("extract(epoch FROM min({col})::timestamp)"),
        };
        let oldest = Spi::get_one::<i64>(&format!("SELECT ({epoch} * 1000000)::int8 FROM {new}"))?;
        let now =
            Spi::get_one::<i64>("SELECT (extract(epoch FROM pg_catalog.now()) * 1000000)::int8")?
                .unwrap_or(0);
        let start_us = step
            .floor(oldest.unwrap_or(now).min(now))
            .map_err(plan_error)?;
        let comment = Spi::get_one_with_args::<String>(
            "SELECT pg_catalog.obj_description($1, 'pg_class')",
            &[table.oid.into()],
        )?;
        Spi::run(&format!(
            "ALTER TABLE {new} RENAME TO {}",
            qi(&default_name)
        ))?;
        Spi::run(&format!(
            "CREATE TABLE {new} (LIKE {old} INCLUDING ALL) PARTITION BY RANGE ({col})"
        ))?;
        // Identity columns continue from where the old table's sequences are.
        let identities: Vec<(String, String)> = Spi::connect(|client| {
            let mut out = Vec::new();
            for row in client.select(
                "SELECT pg_catalog.pg_get_serial_sequence($1, attname), pg_catalog.pg_get_serial_sequence($2, attname)
                   FROM pg_catalog.pg_attribute
                  WHERE attrelid = $3 AND attidentity <> '' AND NOT attisdropped",
                None,
                &[old.as_str().into(), new.as_str().into(), table.oid.into()],
            )? {
                if let (Some(a), Some(b)) = (row.get::<String>(1)?, row.get::<String>(2)?) {
                    out.push((a, b));
                }
            }
            Ok::<_, FloeError>(out)
        })?;
        for (from, to) in identities {
            Spi::run(&format!(
                "SELECT pg_catalog.setval({}, last_value, is_called) FROM {from}",
                ql(&to)
            ))?;
        }
        Spi::run(&format!("ALTER TABLE {new} ATTACH PARTITION {old} DEFAULT"))?;
        // Foreign keys the table had: on the parent too (the partition's own is adopted).
        let fks: Vec<String> = Spi::connect(|client| {
            let mut out = Vec::new();
            for row in client.select(
                "SELECT pg_catalog.format('ADD CONSTRAINT %I %s', conname, pg_catalog.pg_get_constraintdef(oid))
                   FROM pg_catalog.pg_constraint WHERE conrelid = $1 AND contype = 'f' ORDER BY conname",
                None,
                &[table.oid.into()],
            )? {
                if let Some(f) = row.get::<String>(1)? {
                    out.push(f);
                }
            }
            Ok::<_, FloeError>(out)
        })?;
        for fk in fks {
            Spi::run(&format!("ALTER TABLE {new} {fk}"))?;
        }
        copy_acl(table.oid, &new)?;
        if let Some(c) = comment {
            Spi::run(&format!("COMMENT ON TABLE {new} IS {}", ql(&c)))?;
        }
        insert_set(
            &table.key,
            &control,
            control_type,
            interval,
            premake,
            start_us,
            true,
            None,
        )
    })?;
    Ok(old)
}

/// The facts `floe.health()` needs about each set the caller can see.
pub fn health_checks() -> Result<Vec<Check>, FloeError> {
    let (now, sets) = Spi::connect(|client| {
        let now = client
            .select(
                "SELECT (extract(epoch FROM pg_catalog.now()) * 1000000)::int8",
                None,
                &[],
            )?
            .first()
            .get::<i64>(1)?
            .unwrap_or(0);
        let mut out = Vec::new();
        for row in client.select(
            "SELECT parent, pg_catalog.to_regclass(parent)::oid, premake, last_error, control_type
               FROM floe.partition_sets ORDER BY parent",
            None,
            &[],
        )? {
            out.push((
                row.get::<String>(1)?.unwrap_or_default(),
                row.get::<pg_sys::Oid>(2)?,
                row.get::<i32>(3)?.unwrap_or(0) as i64,
                row.get::<String>(4)?,
                ControlType::parse(&row.get::<String>(5)?.unwrap_or_default()),
            ));
        }
        Ok::<_, FloeError>((now, out))
    })?;
    let mut facts = Vec::with_capacity(sets.len());
    for (parent, oid, premake, last_error, control_type) in sets {
        let mut f = SetFacts {
            parent,
            parent_exists: oid.is_some(),
            premake,
            last_error,
            ..Default::default()
        };
        if let (Some(oid), Some(control_type)) = (oid, control_type) {
            let (kids, _) = children(oid, control_type)?;
            (f.future_children, f.has_current) = plan::reach(&kids, now);
            if let Some(default) = default_partition_of(&kids) {
                let any = subxact::run(|| {
                    Spi::get_one::<bool>(&format!("SELECT EXISTS (SELECT 1 FROM {default})"))
                });
                // A default partition the caller may not read is reported as unknown (no rows).
                f.default_has_rows = matches!(any, Ok(Ok(Some(true))));
            }
        }
        facts.push(f);
    }
    Ok(vec![
        checks::premake_check(&facts),
        checks::default_rows_check(&facts),
        checks::maintenance_check(&facts),
    ])
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
