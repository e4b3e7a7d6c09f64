//! What the catalog says about a table floe isolates or is asked to: its name and kind, the
//! state of its RLS, policies, guard triggers and index (and its partitions'), how its rows
//! belong to a tenant (its column or a foreign key), what `floe.tenant_tables` recorded, a
//! free name for the tenant index, ownership (machinery: SPI and catalog look-ups; what to do
//! about it is `plan.rs`).

use super::plan::{self, PolicyStyle, QualName, Registration, RelState, Tenancy};
use crate::error::FloeError;
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, SpiClient};

/// Postgres's `quote_ident`, as a plain function of `&str`.
pub(super) fn qi(ident: &str) -> String {
    quote_identifier(ident)
}

/// Name and kind of a relation.
pub(super) struct RelInfo {
    pub(super) name: QualName,
    pub(super) relkind: String,
}

pub(super) fn rel_info(client: &SpiClient<'_>, oid: pg_sys::Oid) -> Result<RelInfo, FloeError> {
    let row = client
        .select(
            "SELECT n.nspname::text, c.relname::text, c.relkind::text
               FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE c.oid = $1",
            Some(1),
            &[oid.into()],
        )?
        .first();
    match (
        row.get::<String>(1)?,
        row.get::<String>(2)?,
        row.get::<String>(3)?,
    ) {
        (Some(schema), Some(name), Some(relkind)) => Ok(RelInfo {
            name: QualName::new(&schema, &name),
            relkind,
        }),
        _ => Err(FloeError::NotFound {
            kind: "relation",
            name: oid.to_u32().to_string(),
            hint: "Pass an existing table.".into(),
        }),
    }
}

pub(super) const REL_STATE: &str = "
SELECT c.relrowsecurity, c.relforcerowsecurity,
       EXISTS (SELECT 1 FROM pg_catalog.pg_policy p WHERE p.polrelid = c.oid AND p.polname = 'floe_tenant_isolation'),
       EXISTS (SELECT 1 FROM pg_catalog.pg_policy p WHERE p.polrelid = c.oid AND p.polname = 'floe_tenant_admin'),
       EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = 'floe_tenant_guard_insert'),
       EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = 'floe_tenant_guard_update'),
       EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                WHERE i.indrelid = c.oid AND a.attname = $2),
       -- the floe policy says what the root's says (a partition's policy can be tampered with,
       -- or come along on a table attached later)
       c.oid = $3 OR EXISTS (
           SELECT 1 FROM pg_catalog.pg_policy p, pg_catalog.pg_policy r
            WHERE p.polrelid = c.oid AND p.polname = 'floe_tenant_isolation'
              AND r.polrelid = $3 AND r.polname = 'floe_tenant_isolation' AND p.polpermissive
              AND p.polroles = r.polroles AND p.polcmd = r.polcmd
              AND pg_catalog.pg_get_expr(p.polqual, p.polrelid) IS NOT DISTINCT FROM pg_catalog.pg_get_expr(r.polqual, r.polrelid)
              AND pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) IS NOT DISTINCT FROM pg_catalog.pg_get_expr(r.polwithcheck, r.polrelid)),
       -- floe's policies read the context in a sub-select exactly when $4 asks for it
       NOT EXISTS (
           SELECT 1 FROM pg_catalog.pg_policy p
            WHERE p.polrelid = c.oid AND p.polname IN ('floe_tenant_isolation', 'floe_tenant_admin')
              AND (pg_catalog.strpos(p.polqual::text, '{SUBLINK') > 0) IS DISTINCT FROM $4),
       -- the update guard fires only when the SET list names the tenant column (UPDATE OF)
       EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                WHERE t.tgrelid = c.oid AND t.tgname = 'floe_tenant_guard_update'
                  AND pg_catalog.cardinality(t.tgattr::pg_catalog.int2[]) > 0)
  FROM pg_catalog.pg_class c WHERE c.oid = $1";

/// The style of floe's policies for a table of this tenancy: without a sub-select in a
/// database with Citus (which propagates policies to shards and refuses sub-selects there),
/// with one (an InitPlan) everywhere else. Tenancy through a parent table needs its
/// sub-select: such a table stays local on Citus.
pub(super) fn policy_style(tenancy: &Tenancy) -> PolicyStyle {
    match tenancy {
        Tenancy::Column { .. } if crate::citus::present() => PolicyStyle::Plain,
        _ => PolicyStyle::InitPlan,
    }
}

/// What is in place on `oid` (a tree's root, or one of its partitions: `root`), floe's
/// policies compared with `style`.
pub(super) fn rel_state(
    client: &SpiClient<'_>,
    oid: pg_sys::Oid,
    column: &str,
    root: pg_sys::Oid,
    style: PolicyStyle,
) -> Result<RelState, FloeError> {
    let subselect = style == PolicyStyle::InitPlan;
    let row = client
        .select(
            REL_STATE,
            Some(1),
            &[oid.into(), column.into(), root.into(), subselect.into()],
        )?
        .first();
    let flag = |i: usize| -> Result<bool, FloeError> { Ok(row.get::<bool>(i)?.unwrap_or(false)) };
    Ok(RelState {
        rls_enabled: flag(1)?,
        rls_forced: flag(2)?,
        has_policy: flag(3)?,
        has_admin_policy: flag(4)?,
        has_guard_insert: flag(5)?,
        has_guard_update: flag(6)?,
        guard_update_by_column: flag(10)?,
        has_tenant_index: flag(7)?,
        policy_matches: flag(8)?,
        style_matches: flag(9)?,
    })
}

/// Every partition below `oid` (all levels), with its state.
pub(super) fn partitions(
    client: &SpiClient<'_>,
    oid: pg_sys::Oid,
    column: &str,
    style: PolicyStyle,
) -> Result<Vec<(QualName, RelState)>, FloeError> {
    let rows = client.select(
        "SELECT t.relid::oid, n.nspname::text, c.relname::text
           FROM pg_catalog.pg_partition_tree($1::regclass) t
           JOIN pg_catalog.pg_class c ON c.oid = t.relid
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE t.relid <> $1::regclass AND c.relkind IN ('r', 'p')
          ORDER BY t.level, c.relname",
        None,
        &[oid.into()],
    )?;
    let mut found = Vec::new();
    for row in rows {
        let (Some(part), Some(schema), Some(name)) = (
            row.get::<pg_sys::Oid>(1)?,
            row.get::<String>(2)?,
            row.get::<String>(3)?,
        ) else {
            continue;
        };
        found.push((part, QualName::new(&schema, &name)));
    }
    found
        .into_iter()
        .map(|(part, name)| Ok((name, rel_state(client, part, column, oid, style)?)))
        .collect()
}

/// Checks that `table` has a uuid column `column`.
pub(super) fn require_uuid_column(
    client: &SpiClient<'_>,
    oid: pg_sys::Oid,
    table: &QualName,
    column: &str,
) -> Result<(), FloeError> {
    let row = client
        .select(
            "SELECT a.atttypid = 'pg_catalog.uuid'::pg_catalog.regtype
               FROM pg_catalog.pg_attribute a
              WHERE a.attrelid = $1 AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
            Some(1),
            &[oid.into(), column.into()],
        )?
        .first();
    let is_uuid = if row.is_empty() {
        None
    } else {
        row.get::<bool>(1)?
    };
    match is_uuid {
        None => Err(FloeError::UndefinedColumn {
            table: table.quoted(&qi),
            column: column.to_string(),
            hint: "Name the tenant column with tenant_column => '...', or use via => '<foreign key column>' for a table whose tenant comes through a foreign key.".into(),
        }),
        Some(false) => Err(FloeError::InvalidArgument {
            argument: "tenant_column",
            value: column.to_string(),
            expected: format!("a uuid column of {}", table.quoted(&qi)),
        }),
        Some(true) => Ok(()),
    }
}

/// How `oid`'s rows belong to a tenant: its own column, or through the foreign key on `via`.
pub(super) fn resolve_tenancy(
    client: &SpiClient<'_>,
    oid: pg_sys::Oid,
    table: &QualName,
    tenant_column: &str,
    via: Option<&str>,
) -> Result<Tenancy, FloeError> {
    let Some(fk_column) = via else {
        require_uuid_column(client, oid, table, tenant_column)?;
        return Ok(Tenancy::Column {
            column: tenant_column.to_string(),
        });
    };
    let row = client
        .select(
            "SELECT k.confrelid, rn.nspname::text, rc.relname::text, ra.attname::text
               FROM pg_catalog.pg_constraint k
               JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
               JOIN pg_catalog.pg_class rc ON rc.oid = k.confrelid
               JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace
               JOIN pg_catalog.pg_attribute ra ON ra.attrelid = k.confrelid AND ra.attnum = k.confkey[1]
              WHERE k.conrelid = $1 AND k.contype = 'f'
                AND pg_catalog.cardinality(k.conkey) = 1 AND a.attname = $2
              ORDER BY k.conname LIMIT 1",
            Some(1),
            &[oid.into(), fk_column.into()],
        )?
        .first();
    let found = if row.is_empty() {
        (None, None, None, None)
    } else {
        (
            row.get::<pg_sys::Oid>(1)?,
            row.get::<String>(2)?,
            row.get::<String>(3)?,
            row.get::<String>(4)?,
        )
    };
    let (Some(parent_oid), Some(schema), Some(name), Some(key)) = found else {
        return Err(FloeError::InvalidArgument {
            argument: "via",
            value: fk_column.to_string(),
            expected: format!(
                "a column of {} with a single-column FOREIGN KEY to the table that holds the tenant column",
                table.quoted(&qi)
            ),
        });
    };
    let parent = QualName::new(&schema, &name);
    if parent_oid == oid {
        return Err(FloeError::InvalidArgument {
            argument: "via",
            value: fk_column.to_string(),
            expected: "a foreign key to another table (this one references the table itself)"
                .into(),
        });
    }
    require_uuid_column(client, parent_oid, &parent, tenant_column)?;
    Ok(Tenancy::Via {
        fk_column: fk_column.to_string(),
        parent,
        parent_key: key,
        parent_tenant: tenant_column.to_string(),
    })
}

/// What floe recorded when it isolated `oid`: (registration, tenant column, via column, force).
type Registered = (Registration, String, Option<String>, bool);

pub(super) fn registration(
    client: &SpiClient<'_>,
    oid: pg_sys::Oid,
    schema: &str,
) -> Result<Option<Registered>, FloeError> {
    let row = client
        .select(
            "SELECT rls_was_enabled, rls_was_forced,
                    -- only if it still is an index of this very table
                    CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                                        JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
                                       WHERE i.indrelid = t.relid AND ic.relname = t.created_index)
                         THEN created_index::text END,
                    tenant_column::text, via_column::text, force
               FROM floe.tenant_tables t WHERE relid = $1::regclass",
            Some(1),
            &[oid.into()],
        )?
        .first();
    if row.is_empty() {
        return Ok(None);
    }
    let reg = Registration {
        rls_was_enabled: row.get::<bool>(1)?.unwrap_or(false),
        rls_was_forced: row.get::<bool>(2)?.unwrap_or(false),
        created_index: row.get::<String>(3)?.map(|i| QualName::new(schema, &i)),
    };
    Ok(Some((
        reg,
        row.get::<String>(4)?.unwrap_or_default(),
        row.get::<String>(5)?,
        row.get::<bool>(6)?.unwrap_or(true),
    )))
}

/// floe's index name for the table, with a numeric suffix if a relation of that name exists
/// already in the schema (long table names sharing a prefix are cut to the same name).
pub(super) fn free_index_name(table: &QualName, column: &str) -> Result<String, FloeError> {
    let base = plan::index_name(&table.name, column);
    for n in 0..100 {
        let candidate = if n == 0 {
            base.clone()
        } else {
            let suffix = format!("{n}");
            let mut cut = base.len().min(63 - suffix.len());
            while !base.is_char_boundary(cut) {
                cut -= 1;
            }
            format!("{}{suffix}", &base[..cut])
        };
        let taken = Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c
                              JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                             WHERE n.nspname = $1 AND c.relname = $2)",
            &[table.schema.as_str().into(), candidate.as_str().into()],
        )?
        .unwrap_or(false);
        if !taken {
            return Ok(candidate);
        }
    }
    Err(FloeError::WrongState {
        message: format!("no free name for the tenant index of {}", table.quoted(&qi)),
        hint: "Create an index led by the tenant column yourself; floe then uses it.".into(),
    })
}

/// Whether the current user owns the relation (or is a superuser), as ALTER TABLE requires.
pub(super) fn owns(oid: pg_sys::Oid) -> bool {
    // SAFETY: catalog permission checks on the backend thread.
    unsafe {
        let me = pg_sys::GetUserId();
        #[cfg(any(feature = "pg13", feature = "pg14", feature = "pg15"))]
        {
            pg_sys::pg_class_ownercheck(oid, me)
        }
        #[cfg(not(any(feature = "pg13", feature = "pg14", feature = "pg15")))]
        {
            pg_sys::object_ownercheck(pg_sys::RelationRelationId, oid, me)
        }
    }
}

pub(super) fn require_owner(
    oid: pg_sys::Oid,
    name: &QualName,
    what: &str,
) -> Result<(), FloeError> {
    if owns(oid) {
        return Ok(());
    }
    Err(FloeError::PermissionDenied {
        message: format!("must be owner of table {} to {what}", name.quoted(&qi)),
        detail: None,
        hint: "Run it as the table's owner (or a member of the owning role).".into(),
    })
}
