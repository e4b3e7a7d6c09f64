//! `floe.declared_references`: the declared references, and the checks on a referencing
//! table before one is declared on it (SPI, as the extension's owner).

use super::statements::Shape;
use crate::error::FloeError;
use crate::privileged::Session;
use pgrx::prelude::*;

/// The referencing table's qualified name, after checking it is a table the caller owns.
pub(super) fn referencing_table(
    s: &mut Session<'_, '_>,
    oid: pg_sys::Oid,
) -> Result<String, FloeError> {
    let t = s.table(
        oid,
        "References are declared on tables (plain or partitioned).",
    )?;
    t.require_owner("declare references on")?;
    Ok(t.qualified)
}

/// The types (`format_type`, no modifier) of the named columns, in order; `None` for a
/// column the table does not have.
const COLUMN_TYPES: &str = "
SELECT u.name, (SELECT pg_catalog.format_type(a.atttypid, NULL) FROM pg_catalog.pg_attribute a
                 WHERE a.attrelid = $1 AND a.attname = u.name AND a.attnum > 0 AND NOT a.attisdropped)
  FROM pg_catalog.unnest($2::text[]) WITH ORDINALITY u(name, ord)
 ORDER BY u.ord";

pub(super) fn column_types(
    s: &mut Session<'_, '_>,
    oid: pg_sys::Oid,
    columns: &[String],
) -> Result<Vec<(String, Option<String>)>, FloeError> {
    let mut out = Vec::with_capacity(columns.len());
    for row in s.run(COLUMN_TYPES, &[oid.into(), columns.to_vec().into()])? {
        out.push((
            row.get::<String>(1)?.unwrap_or_default(),
            row.get::<String>(2)?,
        ));
    }
    Ok(out)
}

/// `parse_ident` of the target table argument (22023 from PostgreSQL when it is not one).
pub(super) const PARSE_IDENT: &str = "SELECT pg_catalog.parse_ident($1)";

pub(super) fn parse_ident(s: &mut Session<'_, '_>, text: &str) -> Result<Vec<String>, FloeError> {
    Ok(s.run(PARSE_IDENT, &[text.into()])?
        .first()
        .get::<Vec<String>>(1)?
        .unwrap_or_default())
}

/// The declaration, inserted or brought up to the arguments; its id.
const UPSERT: &str = "
INSERT INTO floe.declared_references
       (tbl, columns, target_server, target_table, target_columns, mode, tenant_column,
        on_unreachable, declared_by)
VALUES ($1, $2::name[], $3, $4, $5::name[], $6, $7, $8, pg_catalog.pg_get_userbyid($9))
ON CONFLICT (tbl, columns) DO UPDATE
   SET target_server = EXCLUDED.target_server, target_table = EXCLUDED.target_table,
       target_columns = EXCLUDED.target_columns, mode = EXCLUDED.mode,
       tenant_column = EXCLUDED.tenant_column, on_unreachable = EXCLUDED.on_unreachable,
       declared_at = EXCLUDED.declared_at, declared_by = EXCLUDED.declared_by
RETURNING id";

pub(super) struct Declaration<'a> {
    pub(super) tbl: pg_sys::Oid,
    pub(super) columns: &'a [String],
    pub(super) server: &'a str,
    pub(super) target_table: &'a str,
    pub(super) target_columns: &'a [String],
    pub(super) mode: &'static str,
    pub(super) tenant_column: Option<&'a str>,
    pub(super) on_unreachable: &'static str,
}

pub(super) fn upsert(s: &mut Session<'_, '_>, d: &Declaration<'_>) -> Result<i32, FloeError> {
    let caller = s.caller;
    let rows = s.run(
        UPSERT,
        &[
            d.tbl.into(),
            d.columns.to_vec().into(),
            d.server.into(),
            d.target_table.into(),
            d.target_columns.to_vec().into(),
            d.mode.into(),
            d.tenant_column.into(),
            d.on_unreachable.into(),
            caller.into(),
        ],
    )?;
    rows.first()
        .get::<i32>(1)?
        .ok_or_else(|| FloeError::Internal {
            message: "declared_references: no id returned".into(),
        })
}

const DELETE: &str = "
DELETE FROM floe.declared_references WHERE tbl = $1 AND columns = $2::name[] RETURNING id";

/// Removes a declaration; its id, if there was one.
pub(super) fn delete(
    s: &mut Session<'_, '_>,
    tbl: pg_sys::Oid,
    columns: &[String],
) -> Result<Option<i32>, FloeError> {
    let rows = s.run(DELETE, &[tbl.into(), columns.to_vec().into()])?;
    if rows.is_empty() {
        return Ok(None);
    }
    Ok(rows.first().get::<i32>(1)?)
}

/// The name of a reference's foreign table in schema floe.
pub(super) fn target_table_name(id: i32) -> String {
    format!("reference_{id}_target")
}

/// A declaration as the check, the scan and the repair use it.
pub(super) struct Loaded {
    pub(super) id: i32,
    pub(super) tbl: pg_sys::Oid,
    /// `schema.table`, quoted.
    pub(super) qualified: String,
    /// The key columns of the referencing table, unquoted: the tenant column first.
    pub(super) key_columns: Vec<String>,
    /// `app.leads on server tier_oltp`.
    pub(super) target_name: String,
    pub(super) enforce: bool,
    pub(super) allow_unreachable: bool,
    /// The key columns' types when loaded (a cached declaration is stale once they change).
    pub(super) type_oids: Vec<pg_sys::Oid>,
    pub(super) shape: Shape,
}

impl Loaded {
    /// `app.email_messages (lead_id) -> app.leads on server tier_oltp`.
    pub(super) fn describe(&self) -> String {
        format!(
            "{} ({}) -> {}",
            self.qualified,
            self.key_columns[self.shape.tenant..].join(", "),
            self.target_name
        )
    }
}

/// A declaration with its table's name and its local key columns' types (`format_type` with
/// typmod -1 under floe's pinned search_path: schema-qualified outside pg_catalog, and
/// `bpchar`, not `character`, which would mean `char(1)` in a cast) and type oids; a column
/// that was dropped or renamed since has no type (NULL in the arrays).
const LOAD: &str = "
SELECT d.tbl::oid, pg_catalog.format('%I.%I', n.nspname, c.relname),
       (CASE WHEN d.tenant_column IS NULL THEN '{}'::text[] ELSE ARRAY[d.tenant_column::text] END)
         || d.columns::text[],
       (CASE WHEN d.tenant_column IS NULL THEN '{}'::text[] ELSE ARRAY[d.tenant_column::text] END)
         || d.target_columns::text[],
       d.target_server::text, d.target_table, d.mode, d.on_unreachable,
       ARRAY(SELECT (SELECT pg_catalog.format_type(a.atttypid, -1) FROM pg_catalog.pg_attribute a
                      WHERE a.attrelid = d.tbl AND a.attname = u.col AND a.attnum > 0 AND NOT a.attisdropped)
               FROM pg_catalog.unnest(CASE WHEN d.tenant_column IS NULL THEN d.columns
                                           ELSE ARRAY[d.tenant_column] || d.columns END)
                    WITH ORDINALITY u(col, o)
              ORDER BY u.o),
       d.tenant_column IS NOT NULL,
       ARRAY(SELECT (SELECT a.atttypid FROM pg_catalog.pg_attribute a
                      WHERE a.attrelid = d.tbl AND a.attname = u.col AND a.attnum > 0 AND NOT a.attisdropped)
               FROM pg_catalog.unnest(CASE WHEN d.tenant_column IS NULL THEN d.columns
                                           ELSE ARRAY[d.tenant_column] || d.columns END)
                    WITH ORDINALITY u(col, o)
              ORDER BY u.o)
  FROM floe.declared_references d
  JOIN pg_catalog.pg_class c ON c.oid = d.tbl
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE d.id = $1";

/// Declaration `id`, or None when there is none (dropped meanwhile). 42703 when one of its
/// columns was dropped or renamed since it was declared.
pub(super) fn load(s: &mut Session<'_, '_>, id: i32) -> Result<Option<Loaded>, FloeError> {
    let rows = s.run(LOAD, &[id.into()])?;
    if rows.is_empty() {
        return Ok(None);
    }
    let row = rows.first();
    let tbl: pg_sys::Oid = row.get(1)?.unwrap_or(pg_sys::InvalidOid);
    let qualified: String = row.get(2)?.unwrap_or_default();
    let key_columns: Vec<String> = row.get(3)?.unwrap_or_default();
    let target_columns: Vec<String> = row.get(4)?.unwrap_or_default();
    let server: String = row.get(5)?.unwrap_or_default();
    let target_table: String = row.get(6)?.unwrap_or_default();
    let mode: String = row.get(7)?.unwrap_or_default();
    let unreachable: String = row.get(8)?.unwrap_or_default();
    let types: Vec<Option<String>> = row.get(9)?.unwrap_or_default();
    let per_tenant: bool = row.get(10)?.unwrap_or(false);
    let type_oids: Vec<pg_sys::Oid> = row
        .get::<Vec<Option<pg_sys::Oid>>>(11)?
        .unwrap_or_default()
        .into_iter()
        .map(|t| t.unwrap_or(pg_sys::InvalidOid))
        .collect();
    if let Some(i) = types.iter().position(Option::is_none) {
        return Err(FloeError::UndefinedColumn {
            table: qualified,
            column: key_columns.get(i).cloned().unwrap_or_default(),
            hint: format!(
                "Reference {id} names a column the table no longer has (dropped or renamed): declare the reference again with floe.declare_reference, or drop it with floe.drop_reference."
            ),
        });
    }
    let quote =
        |v: &[String]| -> Vec<String> { v.iter().map(pgrx::spi::quote_identifier).collect() };
    let shape = Shape {
        table: qualified.clone(),
        target: format!(
            "floe.{}",
            pgrx::spi::quote_identifier(target_table_name(id))
        ),
        local: quote(&key_columns),
        remote: quote(&target_columns),
        types: types.into_iter().flatten().collect(),
        tenant: usize::from(per_tenant),
    };
    Ok(Some(Loaded {
        id,
        tbl,
        qualified,
        key_columns,
        target_name: format!("{target_table} on server {server}"),
        enforce: mode == "enforce",
        allow_unreachable: unreachable == "allow",
        type_oids,
        shape,
    }))
}

/// The references of `tbl` (all when NULL) whose table the caller owns, by id.
const OWNED: &str = "
SELECT d.id FROM floe.declared_references d
  JOIN pg_catalog.pg_class c ON c.oid = d.tbl
 WHERE ($1::oid IS NULL OR d.tbl = $1::oid)
   AND pg_catalog.pg_has_role($2, c.relowner, 'USAGE')
 ORDER BY d.id";

pub(super) fn owned(
    s: &mut Session<'_, '_>,
    tbl: Option<pg_sys::Oid>,
) -> Result<Vec<i32>, FloeError> {
    let caller = s.caller;
    let mut out = Vec::new();
    for row in s.run(OWNED, &[tbl.into(), caller.into()])? {
        out.extend(row.get::<i32>(1)?);
    }
    Ok(out)
}

/// A reference's scan state, orphans and queued keys go with it.
const FORGET: &str = "
WITH s AS (DELETE FROM floe.reference_scans WHERE reference_id = $1),
     o AS (DELETE FROM floe.reference_orphans WHERE reference_id = $1)
DELETE FROM floe.reference_pending WHERE reference_id = $1";

pub(super) fn forget(s: &mut Session<'_, '_>, id: i32) -> Result<(), FloeError> {
    s.run(FORGET, &[id.into()])?;
    Ok(())
}

const QUEUE: &str = "
INSERT INTO floe.reference_pending (reference_id, key) VALUES ($1, $2::text[])
ON CONFLICT (reference_id, key) DO NOTHING";

/// Queues keys written while the target could not be reached, for the next scan.
pub(super) fn queue(
    s: &mut Session<'_, '_>,
    id: i32,
    keys: &[Vec<String>],
) -> Result<(), FloeError> {
    for key in keys {
        s.run(QUEUE, &[id.into(), key.clone().into()])?;
    }
    Ok(())
}

/// What an existing declaration of `tbl (columns)` points at: `(id, target)`, the target
/// spelled as [`target_of`] spells it. A declaration pointing elsewhere starts afresh (its
/// scan state, orphans and queued keys are of the old target).
const TARGET_OF: &str = "
SELECT d.id, pg_catalog.concat_ws(' ', d.target_server, d.target_table, d.target_columns::text,
                                  COALESCE(d.tenant_column::text, '-'))
  FROM floe.declared_references d WHERE d.tbl = $1 AND d.columns = $2::name[]";

pub(super) fn current_target(
    s: &mut Session<'_, '_>,
    tbl: pg_sys::Oid,
    columns: &[String],
) -> Result<Option<(i32, String)>, FloeError> {
    let rows = s.run(TARGET_OF, &[tbl.into(), columns.to_vec().into()])?;
    if rows.is_empty() {
        return Ok(None);
    }
    let row = rows.first();
    Ok(row
        .get::<i32>(1)?
        .map(|id| (id, row.get::<String>(2).ok().flatten().unwrap_or_default())))
}
