//! `floe.declared_references`: the declared references, and the checks on a referencing
//! table before one is declared on it (SPI, as the extension's owner).

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
       tenant_column = EXCLUDED.tenant_column, on_unreachable = EXCLUDED.on_unreachable
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
