//! A set's children in the catalog and the DDL that makes them: reading a parent and its
//! children, creating a child (staged beside the default partition and attached without a
//! scan when the default holds rows), copying grants, draining the default partition, and
//! running a step as the parent's owner.

use super::plan::{self, Child, ControlType, Range, RetentionMode, Step};
use crate::error::{invalid, FloeError};
use crate::{gucs, subxact};
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier as qi, quote_literal as ql};
use pgrx::{pg_sys, PgSqlErrorCode};

/// The parent table of a set, as the catalog names it.
#[derive(Debug, Clone)]
pub(super) struct Parent {
    pub(super) oid: pg_sys::Oid,
    pub(super) key: String,
    pub(super) schema: String,
    pub(super) name: String,
    pub(super) owner: pg_sys::Oid,
}

impl Parent {
    pub(super) fn qualified(&self) -> String {
        format!("{}.{}", qi(&self.schema), qi(&self.name))
    }
    pub(super) fn child(&self, name: &str) -> String {
        format!("{}.{}", qi(&self.schema), qi(name))
    }
}

/// A set's configuration plus the times of this pass, in microseconds since the epoch.
#[derive(Debug, Clone)]
pub(super) struct SetConfig {
    pub(super) control: String,
    pub(super) control_type: ControlType,
    pub(super) step: Step,
    pub(super) premake: u32,
    pub(super) start_us: i64,
    pub(super) sub_by: Option<String>,
    pub(super) sub_values: Vec<String>,
    pub(super) cutoff_us: Option<i64>,
    pub(super) mode: RetentionMode,
    pub(super) archive_schema: Option<String>,
    pub(super) as_of_us: i64,
    /// The table the set was made for (NULL: adopt the table of that name).
    pub(super) relid: Option<pg_sys::Oid>,
}

pub(super) fn caught(context: &str, c: subxact::Caught) -> FloeError {
    FloeError::Sql {
        code: c.code,
        message: format!("{context}: {}", c.message),
        detail: c.detail,
        hint: "The statement was rolled back; nothing of this step was kept.".into(),
    }
}

/// The table `oid` and its relkind, when the current user has its owner's privileges
/// (42501 otherwise): partition sets are managed by the owner.
pub(super) fn owned_table(oid: pg_sys::Oid) -> Result<(Parent, String), FloeError> {
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
pub(super) fn children(
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

pub(super) fn plan_error(e: plan::PlanError) -> FloeError {
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

pub(super) fn default_partition_of(kids: &[Child]) -> Option<String> {
    kids.iter().find(|c| c.is_default).map(|c| c.name.clone())
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
