//! Managed columns: the row trigger's work (each written body into the store, its hash
//! kept, replaced and deleted bodies released) and what `floe.manage_content()` checks and
//! creates (SPI as the extension's owner, DDL as the caller; machinery).

use super::store::{add_ref, put, release};
use crate::error::{invalid, FloeError};
use crate::partition::plan::child_name;
use crate::privileged::{self, Session};
use crate::sqltypes::Name;
use crate::tenant::authorize;
use pgrx::prelude::*;
use pgrx::{PgRelation, Uuid};

pub(super) fn managed_row<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByRust>>, FloeError> {
    let misuse = |why: &str| FloeError::WrongState {
        message: format!(
            "floe.content_managed on {}.{}: {why}",
            trigger.table_schema().unwrap_or_default(),
            trigger.table_name().unwrap_or_default()
        ),
        hint: "Create the trigger with floe.manage_content(), not by hand.".into(),
    };
    let args = trigger.extra_args().map_err(|_| misuse("no arguments"))?;
    let [column, hash_column, tenant_column, kind] = args.as_slice() else {
        return Err(misuse("it needs four arguments"));
    };
    let is_text = kind == "text";
    let tenant_of =
        |row: &PgHeapTuple<'_, AllocatedByPostgres>| -> Result<Option<Uuid>, FloeError> {
            if tenant_column.is_empty() {
                return Ok(None);
            }
            row.get_by_name::<Uuid>(tenant_column)
                .map_err(|_| misuse(&format!("\"{tenant_column}\" is not a uuid column")))
        };
    let body_of =
        |row: &PgHeapTuple<'_, AllocatedByPostgres>| -> Result<Option<Vec<u8>>, FloeError> {
            if is_text {
                row.get_by_name::<String>(column)
                    .map(|v| v.map(String::into_bytes))
            } else {
                row.get_by_name::<&[u8]>(column)
                    .map(|v| v.map(<[u8]>::to_vec))
            }
            .map_err(|_| misuse(&format!("cannot read \"{column}\"")))
        };
    let hash_of =
        |row: &PgHeapTuple<'_, AllocatedByPostgres>| -> Result<Option<Vec<u8>>, FloeError> {
            row.get_by_name::<&[u8]>(hash_column)
                .map(|v| v.map(<[u8]>::to_vec))
                .map_err(|_| misuse(&format!("\"{hash_column}\" is not a bytea column")))
        };
    let op = trigger.op().map_err(|_| misuse("unknown operation"))?;
    match op {
        PgTriggerOperation::Delete => {
            let old = trigger
                .old()
                .ok_or_else(|| misuse("it must be a row trigger"))?;
            if let Some(hash) = hash_of(&old)? {
                let tenant = authorize(tenant_of(&old)?, "releasing content")?;
                privileged::run(|s| release(s, tenant, &hash).map(|_| ()))?;
            }
            Ok(Some(old.into_owned()))
        }
        PgTriggerOperation::Insert | PgTriggerOperation::Update => {
            let new = trigger
                .new()
                .ok_or_else(|| misuse("it must be a row trigger"))?;
            let old = trigger.old();
            let old_hash = match &old {
                Some(o) => hash_of(o)?,
                None => None,
            };
            let body = body_of(&new)?;
            let new_hash = hash_of(&new)?;
            let tenant = tenant_of(&new)?;
            if body.is_none() && new_hash == old_hash {
                return Ok(Some(new.into_owned()));
            }
            let tenant = authorize(tenant, "storing content")?;
            let stored = privileged::run(|s| {
                let stored = match &body {
                    Some(b) => Some(put(s, tenant, b)?),
                    None => {
                        // The hash column was set directly: one more reference to that body.
                        if let Some(h) = &new_hash {
                            add_ref(s, tenant, h)?;
                        }
                        new_hash.clone()
                    }
                };
                if let Some(h) = &old_hash {
                    let old_tenant = match &old {
                        Some(o) => authorize(tenant_of(o)?, "releasing content")?,
                        None => tenant,
                    };
                    release(s, old_tenant, h)?;
                }
                Ok(stored)
            })?;
            let mut row = new.into_owned();
            if body.is_some() {
                row.set_by_name(hash_column, stored)
                    .map_err(|_| misuse(&format!("cannot set \"{hash_column}\"")))?;
                if is_text {
                    row.set_by_name(column, Option::<String>::None)
                } else {
                    row.set_by_name(column, Option::<Vec<u8>>::None)
                }
                .map_err(|_| misuse(&format!("cannot clear \"{column}\"")))?;
            }
            Ok(Some(row))
        }
        _ => Err(misuse("it must be an INSERT, UPDATE or DELETE trigger")),
    }
}

const COLUMN_TYPE: &str = "
    SELECT a.atttypid::regtype::text, a.attnum
      FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = $1 AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped";
const TENANT_COLUMN: &str =
    "SELECT tenant_column::text FROM floe.tenant_tables WHERE relid = $1::regclass";
const COLUMNS: &str = "
    SELECT a.attname::text FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum";
const REGISTER_COLUMN: &str = "
    INSERT INTO floe.content_columns (relid, column_name, hash_column, tenant_column, view)
    VALUES ($1::regclass, $2, $3, $4, $5::regclass)
    ON CONFLICT (relid, column_name) DO UPDATE
       SET hash_column = EXCLUDED.hash_column, tenant_column = EXCLUDED.tenant_column,
           view = EXCLUDED.view";

fn column_type(
    s: &mut Session<'_, '_>,
    rel: pg_sys::Oid,
    column: &str,
) -> Result<Option<String>, FloeError> {
    let rows = s.run(COLUMN_TYPE, &[rel.into(), column.into()])?;
    if rows.is_empty() {
        return Ok(None);
    }
    Ok(rows.first().get::<String>(1)?)
}

fn quote(ident: &str) -> String {
    pgrx::spi::quote_identifier(ident)
}

/// Puts `column` of `tbl` under management: its type and the tenant column checked, the hash
/// column, trigger and view created, the column registered; with `migrate`, the rows there
/// already moved into the store. Returns the rows moved.
pub(super) fn manage(
    tbl: PgRelation,
    column: String,
    tenant_column: Option<Name>,
    migrate: bool,
) -> Result<i64, FloeError> {
    let rel = tbl.oid();
    let schema = tbl.namespace().to_string();
    let table = tbl.name().to_string();
    let qualified = format!("{}.{}", quote(&schema), quote(&table));
    // SAFETY: reads the relation's kind from the open relation.
    let kind = unsafe { (*tbl.rd_rel).relkind } as u8;
    // Close it now: ALTER TABLE refuses a table this session holds open.
    drop(tbl);
    if kind != b'r' && kind != b'p' {
        return Err(FloeError::WrongObjectType {
            message: format!("{qualified} is not a table"),
            hint:
                "floe.manage_content() keeps the bodies of a table's column in the content store."
                    .into(),
        });
    }
    let hash_column = child_name(&column, "hash");
    let (kind, tenant_column, columns) = privileged::run(|s| {
        let kind = match column_type(s, rel, &column)?.as_deref() {
            None => {
                return Err(FloeError::UndefinedColumn {
                    table: qualified.clone(),
                    column: column.clone(),
                    hint: "Name the column that holds the bodies.".into(),
                })
            }
            Some("text") | Some("character varying") => "text",
            Some("bytea") => "bytea",
            Some(other) => {
                return Err(invalid(
                    "column",
                    format!("{column} of type {other}"),
                    "a text, varchar or bytea column",
                ))
            }
        };
        let tenant_column = match &tenant_column {
            Some(c) => Some(c.0.clone()),
            None => {
                let rows = s.run(TENANT_COLUMN, &[rel.into()])?;
                if rows.is_empty() {
                    None
                } else {
                    rows.first().get::<String>(1)?
                }
            }
        };
        if let Some(tc) = &tenant_column {
            if column_type(s, rel, tc)?.as_deref() != Some("uuid") {
                return Err(FloeError::UndefinedColumn {
                    table: qualified.clone(),
                    column: tc.clone(),
                    hint: "tenant_column must name a uuid column (leave it out to use the tenant context).".into(),
                });
            }
        }
        match column_type(s, rel, &hash_column)?.as_deref() {
            None | Some("bytea") => {}
            Some(other) => {
                return Err(FloeError::WrongState {
                    message: format!("{qualified} has a column \"{hash_column}\" of type {other}"),
                    hint: "floe.manage_content() keeps each body's hash in <column>_hash (bytea): rename that column.".into(),
                })
            }
        }
        let mut columns = Vec::new();
        for row in s.run(COLUMNS, &[rel.into()])? {
            columns.extend(row.get::<String>(1)?);
        }
        Ok((kind, tenant_column, columns))
    })?;

    // DDL as the caller: Postgres checks that the caller owns the table.
    let trigger = child_name("floe_content", &column);
    let view = child_name(&table, &format!("with_{column}"));
    let getter = if kind == "text" {
        "content_get_text"
    } else {
        "content_get"
    };
    let tenant_arg = tenant_column
        .as_ref()
        .map(|tc| format!(", tenant => t.{}", quote(tc)))
        .unwrap_or_default();
    let select: Vec<String> = columns
        .iter()
        .filter(|c| **c != hash_column)
        .map(|c| {
            if *c == column {
                format!(
                    "floe.{getter}(t.{}{tenant_arg}) AS {}",
                    quote(&hash_column),
                    quote(c)
                )
            } else {
                format!("t.{}", quote(c))
            }
        })
        .collect();
    let literal = |s: &str| pgrx::spi::quote_literal(s);
    let ddl = [
        format!("ALTER TABLE {qualified} ADD COLUMN IF NOT EXISTS {} bytea", quote(&hash_column)),
        format!(
            "CREATE OR REPLACE TRIGGER {} BEFORE INSERT OR UPDATE OR DELETE ON {qualified} FOR EACH ROW \
             EXECUTE FUNCTION floe.content_managed({}, {}, {}, {})",
            quote(&trigger),
            literal(&column),
            literal(&hash_column),
            literal(tenant_column.as_deref().unwrap_or("")),
            literal(kind)
        ),
        format!(
            "CREATE OR REPLACE VIEW {}.{} WITH (security_invoker = true) AS SELECT {} FROM {qualified} t",
            quote(&schema),
            quote(&view),
            select.join(", ")
        ),
    ];
    // On a Citus table, Citus copies the trigger (with its arguments) to every shard: the
    // bodies of a shard's rows are kept in the store of the node that holds it.
    crate::citus::with_unsafe_triggers(|| {
        for stmt in &ddl {
            Spi::run(stmt)?;
        }
        Ok(())
    })?;
    let view_name = format!("{}.{}", quote(&schema), quote(&view));
    privileged::run(|s| {
        s.run(
            REGISTER_COLUMN,
            &[
                rel.into(),
                column.as_str().into(),
                hash_column.as_str().into(),
                tenant_column.as_deref().into(),
                view_name.as_str().into(),
            ],
        )?;
        Ok(())
    })?;
    if !migrate {
        return Ok(0);
    }
    let moved = Spi::get_one::<i64>(&format!(
        "WITH m AS (UPDATE {qualified} SET {c} = {c} WHERE {c} IS NOT NULL RETURNING 1) SELECT count(*) FROM m",
        c = quote(&column)
    ))
    .map_err(FloeError::from)?
    .unwrap_or(0);
    Ok(moved)
}
