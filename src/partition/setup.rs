//! Making a set: `create_parent`'s checks and first children, and `partition_existing`'s
//! conversion of a plain table into a set whose default partition it becomes.

use super::children::{children, default_partition_of, owned_table, plan_error, Parent, SetConfig};
use super::create::{bounds, copy_acl, copy_acls, create_child};
use super::ddl::{as_owner, ddl, with_lock_retry};
use super::plan::{self, ControlType, RetentionMode, SetState, Step};
use crate::error::{invalid, required, FloeError};
use crate::sqltypes::Name;
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier as qi, quote_literal as ql};
use pgrx::PgRelation;

/// The period of a new set, checked against its control column, and its premake.
pub(super) fn checked_step(
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
pub(super) fn parse_control(control: &str, type_name: &str) -> Result<ControlType, FloeError> {
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
pub(super) fn insert_set(
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
pub(super) fn require_new_set(key: &str) -> Result<(), FloeError> {
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
pub(super) fn create_set(
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
    // A new set (no partition yet, so no row and no reader of one): its children are made
    // `PARTITION OF` the parent in one DDL batch, as pg_partman would ATTACH them, instead of
    // one table and one ATTACH each (see `fresh_set`).
    if kids.is_empty() && cfg.sub_by.is_none() && !crate::citus::is_citus_table(parent.oid)? {
        return as_owner(parent.owner, || {
            fresh_set(&parent, &cfg, &p.create, default_partition)
        });
    }
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

/// The children (and the default partition) of a set that had no partition before
/// `create_parent`: created `PARTITION OF` the parent in one statement batch. That takes
/// ACCESS EXCLUSIVE on the parent until `create_parent` commits, where one child at a time
/// (created, then ATTACHed under SHARE UPDATE EXCLUSIVE) takes none: but a partitioned table
/// without partitions holds no row and can take none (an INSERT fails to route it), so no
/// reader or writer of data waits. The children are the same: columns, defaults, CHECK and
/// NOT NULL constraints, generated columns and the parent's partitioned indexes come from the
/// parent either way; grants and tenant isolation carry over after.
fn fresh_set(
    parent: &Parent,
    cfg: &SetConfig,
    create: &[plan::Range],
    default_partition: bool,
) -> Result<i32, FloeError> {
    let mut names = Vec::with_capacity(create.len() + 1);
    let mut batch = String::new();
    if default_partition {
        let name = parent.child(&plan::child_name(&parent.name, "default"));
        batch.push_str(&format!(
            "CREATE TABLE {name} PARTITION OF {} DEFAULT;\n",
            parent.qualified()
        ));
        names.push(name);
    }
    for r in create {
        let (lo, hi) = bounds(cfg, r)?;
        let child = parent.child(&r.name);
        batch.push_str(&format!(
            "CREATE TABLE {child} PARTITION OF {} FOR VALUES FROM ({lo}) TO ({hi});\n",
            parent.qualified()
        ));
        names.push(child);
    }
    if batch.is_empty() {
        return Ok(0);
    }
    with_lock_retry("CREATE TABLE ... PARTITION OF (a new set)", || {
        Ok(Spi::run(&batch)?)
    })?;
    copy_acls(
        parent.oid,
        &names.iter().map(String::as_str).collect::<Vec<_>>(),
    )?;
    crate::tenant::apply_to_partitions(parent.oid)?;
    Ok(create.len() as i32)
}

pub(super) fn convert(
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
        let identities: Vec<(String, String, String)> = Spi::connect(|client| {
            let mut out = Vec::new();
            for row in client.select(
                "SELECT pg_catalog.pg_get_serial_sequence($1, attname), pg_catalog.pg_get_serial_sequence($2, attname),
                        attname::text
                   FROM pg_catalog.pg_attribute
                  WHERE attrelid = $3 AND attidentity <> '' AND NOT attisdropped",
                None,
                &[old.as_str().into(), new.as_str().into(), table.oid.into()],
            )? {
                if let (Some(a), Some(b), Some(c)) =
                    (row.get::<String>(1)?, row.get::<String>(2)?, row.get::<String>(3)?)
                {
                    out.push((a, b, c));
                }
            }
            Ok::<_, FloeError>(out)
        })?;
        for (from, to, column) in identities {
            Spi::run(&format!(
                "SELECT pg_catalog.setval({}, last_value, is_called) FROM {from}",
                ql(&to)
            ))?;
            if crate::compat::PARTITIONS_SHARE_IDENTITY {
                // From PostgreSQL 17 a partition takes its parent's identity and may not
                // bring its own: the old table's goes (its sequence went over above).
                Spi::run(&format!(
                    "ALTER TABLE {old} ALTER COLUMN {} DROP IDENTITY",
                    qi(&column)
                ))?;
            }
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
