//! A set's parent and children as the catalog names them: the parent (checked to be the
//! current user's to manage), the set's configuration for a pass, the children with their
//! bounds, the default partition, and plan errors as floe errors (machinery: SPI; the DDL
//! that makes a child is `create.rs`).

use super::plan::{self, Child, ControlType, RetentionMode, Step};
use crate::error::FloeError;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::quote_identifier as qi;

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

pub(super) fn default_partition_of(kids: &[Child]) -> Option<String> {
    kids.iter().find(|c| c.is_default).map(|c| c.name.clone())
}
