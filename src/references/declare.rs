//! Declaring and dropping a reference (SPI, as the extension's owner, machinery): the
//! checks of both sides, the catalog row, the foreign table, and in enforce mode the two
//! statement triggers of the referencing table.

use super::declaration::{self, key_is_unique, target_parts, Mode, OnUnreachable};
use super::registry::{self, Declaration};
use super::remote;
use crate::error::{invalid, FloeError};
use crate::privileged::{self, Session};
use pgrx::prelude::*;

/// A declaration's arguments, checked for shape by the surface.
pub(super) struct Request {
    pub(super) tbl: pg_sys::Oid,
    pub(super) columns: Vec<String>,
    pub(super) server: String,
    pub(super) target_table: String,
    pub(super) target_columns: Vec<String>,
    pub(super) mode: Mode,
    pub(super) tenant_column: Option<String>,
    pub(super) on_unreachable: OnUnreachable,
}

/// Declares (or declares again) a reference; its id.
pub(super) fn declare(r: Request) -> Result<i32, FloeError> {
    let Request {
        tbl: oid,
        columns,
        server,
        target_table,
        target_columns,
        mode,
        tenant_column,
        on_unreachable,
    } = r;
    privileged::run(|s| {
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
        let before = registry::current_target(s, oid, &columns)?;
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
        if let Some((_, was)) = before {
            if registry::current_target(s, oid, &columns)?.map(|(_, now)| now) != Some(was) {
                registry::forget(s, id)?;
            }
        }
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
        sync_triggers(s, id, oid, &qualified, mode == Mode::Enforce)?;
        super::check::invalidate_declarations();
        Ok(id)
    })
}

/// Drops the reference of `tbl (columns)`: its triggers, foreign table, scan state and
/// orphans. True when there was one.
pub(super) fn drop(
    tbl: pg_sys::Oid,
    columns: &[String],
    if_exists: bool,
) -> Result<bool, FloeError> {
    privileged::run(|s| {
        let qualified = registry::referencing_table(s, tbl)?;
        match registry::delete(s, tbl, columns)? {
            Some(id) => {
                sync_triggers(s, id, tbl, &qualified, false)?;
                remote::drop_target(s, &registry::target_table_name(id))?;
                registry::forget(s, id)?;
                super::check::invalidate_declarations();
                Ok(true)
            }
            None if if_exists => Ok(false),
            None => Err(FloeError::NotFound {
                kind: "reference",
                name: format!("{qualified} ({})", columns.join(", ")),
                hint: "floe.declared_references lists the declared references; pass if_exists => true to ignore.".into(),
            }),
        }
    })
}

/// The enforce triggers' names (the id keeps two references of one table apart).
fn trigger_names(id: i32) -> [String; 2] {
    [
        format!("floe_reference_{id}_insert"),
        format!("floe_reference_{id}_update"),
    ]
}

const TRIGGER_EXISTS: &str = "
SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid = $1 AND tgname = $2)";

/// Creates (`enforce`) or drops the statement triggers of reference `id` on its table.
fn sync_triggers(
    s: &mut Session<'_, '_>,
    id: i32,
    tbl: pg_sys::Oid,
    qualified: &str,
    enforce: bool,
) -> Result<(), FloeError> {
    let [insert, update] = trigger_names(id);
    let q = pgrx::spi::quote_identifier;
    for name in [&insert, &update] {
        let exists = s
            .run(TRIGGER_EXISTS, &[tbl.into(), name.as_str().into()])?
            .first()
            .get::<bool>(1)?
            .unwrap_or(false);
        if exists {
            s.execute(&format!("DROP TRIGGER {} ON {qualified}", q(name)))?;
        }
    }
    if !enforce {
        return Ok(());
    }
    crate::citus::refuse_citus_table(
        tbl,
        qualified,
        "mode => 'enforce'",
        "Declare the reference with mode => 'scan' (the scan reads a Citus table through the coordinator).",
    )?;
    s.execute(&format!(
        "CREATE TRIGGER {} AFTER INSERT ON {qualified} REFERENCING NEW TABLE AS floe_new \
         FOR EACH STATEMENT EXECUTE FUNCTION floe.reference_check('{id}')",
        q(&insert)
    ))?;
    s.execute(&format!(
        "CREATE TRIGGER {} AFTER UPDATE ON {qualified} REFERENCING OLD TABLE AS floe_old NEW TABLE AS floe_new \
         FOR EACH STATEMENT EXECUTE FUNCTION floe.reference_check('{id}')",
        q(&update)
    ))?;
    Ok(())
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
