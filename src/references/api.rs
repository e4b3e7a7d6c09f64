//! The SQL surface of cross-tier references: `floe.declare_reference` and
//! `floe.drop_reference`. The checks are `declaration.rs`; the target is read through
//! `remote.rs`; the catalog is `registry.rs`.

use super::declaration::{self, check_columns, key_is_unique, target_parts, Mode, OnUnreachable};
use super::registry::{self, Declaration};
use super::remote;
use crate::error::{invalid, required, ErrorReport, FloeError};
use crate::privileged;
use crate::sqltypes::{Name, Names};
use pgrx::prelude::*;
use pgrx::PgRelation;

fn names(v: Option<Names>, argument: &'static str) -> Result<Vec<String>, FloeError> {
    let v = required(v, argument)?.0;
    v.into_iter()
        .collect::<Option<Vec<String>>>()
        .ok_or_else(|| invalid(argument, "an array with a NULL", "column names"))
}

#[allow(clippy::too_many_arguments)]
#[pg_extern(volatile, parallel_unsafe)]
fn declare_reference(
    tbl: Option<PgRelation>,
    columns: Option<Names>,
    target_server: Option<Name>,
    target_table: Option<String>,
    target_columns: Option<Names>,
    mode: default!(Option<String>, "'scan'"),
    tenant_column: default!(Option<Name>, "'tenant_id'"),
    on_unreachable: default!(Option<String>, "'reject'"),
) -> Result<i32, ErrorReport> {
    let rel = required(tbl, "tbl")?;
    let oid = rel.oid();
    drop(rel);
    let columns = names(columns, "columns")?;
    let target_columns = names(target_columns, "target_columns")?;
    let server = required(target_server, "target_server")?.0;
    let target_table = required(target_table, "target_table")?;
    let mode_text = required(mode, "mode")?;
    let mode = Mode::parse(&mode_text)
        .ok_or_else(|| invalid("mode", &mode_text, "'scan' or 'enforce'"))?;
    let unreachable_text = required(on_unreachable, "on_unreachable")?;
    let on_unreachable = OnUnreachable::parse(&unreachable_text)
        .ok_or_else(|| invalid("on_unreachable", &unreachable_text, "'reject' or 'allow'"))?;
    let tenant_column = tenant_column.map(|n| n.0);
    check_columns(&columns, &target_columns, tenant_column.as_deref()).map_err(|e| {
        FloeError::InvalidArgument {
            argument: e.argument,
            value: e.value,
            expected: e.expected,
        }
    })?;
    let id = privileged::run(|s| {
        let qualified = registry::referencing_table(s, oid)?;
        // The local columns (and the tenant column, a uuid) exist.
        let mut wanted = columns.clone();
        wanted.extend(tenant_column.clone());
        let local = registry::column_types(s, oid, &wanted)?;
        if let Some((c, _)) = local.iter().find(|(_, t)| t.is_none()) {
            return Err(FloeError::UndefinedColumn {
                table: qualified.clone(),
                column: c.clone(),
                hint: if Some(c) == tenant_column.as_ref() {
                    "tenant_column names the uuid tenant column of both tables; pass tenant_column => NULL for a reference that is not per tenant.".into()
                } else {
                    "columns names the referencing columns of tbl.".into()
                },
            });
        }
        let local: Vec<(String, String)> = local
            .into_iter()
            .map(|(c, t)| (c, t.unwrap_or_default()))
            .collect();
        if let Some(tc) = &tenant_column {
            let (_, t) = &local[columns.len()];
            if t != "uuid" {
                return Err(mismatch(format!(
                    "tenant column {tc} of {qualified} is {t}, not uuid"
                )));
            }
        }
        remote::check_server(s, &server)?;
        let parts = registry::parse_ident(s, &target_table)?;
        let (schema, table) = target_parts(&parts).ok_or_else(|| {
            invalid(
                "target_table",
                &target_table,
                "a table of the server's database, as schema.table or table",
            )
        })?;
        let id = registry::upsert(
            s,
            &Declaration {
                tbl: oid,
                columns: &columns,
                server: &server,
                target_table: &format!(
                    "{}.{}",
                    pgrx::spi::quote_identifier(&schema),
                    pgrx::spi::quote_identifier(&table)
                ),
                target_columns: &target_columns,
                mode: mode.as_str(),
                tenant_column: tenant_column.as_deref(),
                on_unreachable: on_unreachable.as_str(),
            },
        )?;
        let target = remote::import_target(
            s,
            &server,
            &schema,
            &table,
            &registry::target_table_name(id),
        )?;
        let remote_name = format!("{schema}.{table} on server {server}");
        let mut wanted_remote = target_columns.clone();
        wanted_remote.extend(tenant_column.clone());
        let mut remote_types = Vec::with_capacity(wanted_remote.len());
        for c in &wanted_remote {
            match target.columns.iter().find(|(name, _)| name == c) {
                Some(found) => remote_types.push(found.clone()),
                None => {
                    return Err(FloeError::UndefinedColumn {
                        table: remote_name.clone(),
                        column: c.clone(),
                        hint: "target_columns (and tenant_column) name columns of the target table, as they are spelled there.".into(),
                    })
                }
            }
        }
        if let Some((lc, lt, rc, rt)) = declaration::type_mismatch(&local, &remote_types) {
            return Err(mismatch(format!(
                "column {lc} of {qualified} is {lt}, column {rc} of {remote_name} is {rt}"
            )));
        }
        if !key_is_unique(&wanted_remote, &target.unique_indexes) {
            return Err(FloeError::Sql {
                code: PgSqlErrorCode::ERRCODE_INVALID_FOREIGN_KEY,
                message: format!(
                    "there is no unique index on ({}) of {remote_name}",
                    wanted_remote.join(", ")
                ),
                detail: None,
                hint: "A reference needs its target columns unique, as a foreign key does: a unique index (or primary key) on the target whose columns are all among them.".into(),
            });
        }
        Ok(id)
    })?;
    Ok(id)
}

fn mismatch(message: String) -> FloeError {
    FloeError::Sql {
        code: PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
        message,
        detail: None,
        hint:
            "A reference compares values of one type on both sides: give the columns the same type."
                .into(),
    }
}

#[pg_extern(volatile, parallel_unsafe)]
fn drop_reference(
    tbl: Option<PgRelation>,
    columns: Option<Names>,
    if_exists: default!(Option<bool>, false),
) -> Result<bool, ErrorReport> {
    let rel = required(tbl, "tbl")?;
    let oid = rel.oid();
    drop(rel);
    let columns = names(columns, "columns")?;
    let dropped = privileged::run(|s| {
        let qualified = registry::referencing_table(s, oid)?;
        match registry::delete(s, oid, &columns)? {
            Some(id) => {
                remote::drop_target(s, &registry::target_table_name(id))?;
                Ok(true)
            }
            None if if_exists.unwrap_or(false) => Ok(false),
            None => Err(FloeError::NotFound {
                kind: "reference",
                name: format!("{qualified} ({})", columns.join(", ")),
                hint: "floe.declared_references lists the declared references; pass if_exists => true to ignore.".into(),
            }),
        }
    })?;
    Ok(dropped)
}

extension_sql_file!(
    "../sql/references.sql",
    name = "references_sql",
    requires = ["scheduler_sql", declare_reference, drop_reference]
);
