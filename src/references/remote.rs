//! The target of a reference, on the other side of a `postgres_fdw` server (SPI, as the
//! extension's owner, whose user mapping on the server floe uses).
//!
//! At declaration floe imports the target table (`IMPORT FOREIGN SCHEMA … LIMIT TO`) into a
//! scratch schema, reads its columns' types and its unique indexes (through foreign tables
//! over the remote `pg_index`, `pg_class`, `pg_namespace`, `pg_attribute`), and keeps the
//! imported table as the reference's foreign table, `floe.reference_<id>_target`, through
//! which checks and scans read the target. The scratch schema lives only inside the
//! declaring transaction.

use super::statements::{columns_of, Shape};
use crate::error::FloeError;
use crate::privileged::Session;
use pgrx::prelude::*;

/// The server named, if it is a `postgres_fdw` server: `Ok(None)` when there is none.
const SERVER: &str = "
SELECT w.fdwname::text, pg_catalog.has_server_privilege($2, s.oid, 'USAGE')
  FROM pg_catalog.pg_foreign_server s
  JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw
 WHERE s.srvname = $1";

/// Checks that `server` exists, is a `postgres_fdw` server, and that the caller may use it:
/// floe reads the target through its own user mapping, which must not lend the caller a
/// server it has no USAGE on.
pub(super) fn check_server(s: &mut Session<'_, '_>, server: &str) -> Result<(), FloeError> {
    let caller = s.caller;
    let rows = s.run(SERVER, &[server.into(), caller.into()])?;
    if rows.is_empty() {
        return Err(FloeError::NotFound {
            kind: "foreign server",
            name: server.to_string(),
            hint: "Create it first: CREATE EXTENSION postgres_fdw; CREATE SERVER … FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host …, dbname …); CREATE USER MAPPING FOR <floe's owner> SERVER … (see the README, Cross-tier references).".into(),
        });
    }
    let row = rows.first();
    let fdw: String = row.get(1)?.unwrap_or_default();
    let usable: bool = row.get(2)?.unwrap_or(false);
    if !usable {
        return Err(FloeError::PermissionDenied {
            message: format!("permission denied for foreign server {server}"),
            detail: None,
            hint: format!(
                "floe reads a reference's target through its own user mapping, for roles that may use the server: GRANT USAGE ON FOREIGN SERVER {server} TO <role>."
            ),
        });
    }
    if fdw != "postgres_fdw" {
        return Err(FloeError::WrongObjectType {
            message: format!("server {server} is a {fdw} server, not a postgres_fdw one"),
            hint: "floe checks references in PostgreSQL databases through postgres_fdw.".into(),
        });
    }
    Ok(())
}

const LOCK_IMPORT: &str =
    "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('floe.reference_import'))";
/// Made and dropped inside the declaring transaction (so never left behind).
const MAKE_SCRATCH: &str = "CREATE SCHEMA floe_reference_import";
const IMPORT: &str = "
SELECT pg_catalog.format('IMPORT FOREIGN SCHEMA %I LIMIT TO (%I) FROM SERVER %I INTO floe_reference_import',
                         $1, $2, $3)";
const CATALOG_TABLES: &str = "
SELECT pg_catalog.format($f$
CREATE FOREIGN TABLE floe_reference_import.idx (indrelid oid, indisunique boolean, indisvalid boolean,
       indnkeyatts int2, indkey text, indpred text, indexprs text)
       SERVER %1$I OPTIONS (schema_name 'pg_catalog', table_name 'pg_index');
CREATE FOREIGN TABLE floe_reference_import.cls (oid oid, relname name, relnamespace oid)
       SERVER %1$I OPTIONS (schema_name 'pg_catalog', table_name 'pg_class');
CREATE FOREIGN TABLE floe_reference_import.nsp (oid oid, nspname name)
       SERVER %1$I OPTIONS (schema_name 'pg_catalog', table_name 'pg_namespace');
CREATE FOREIGN TABLE floe_reference_import.att (attrelid oid, attnum int2, attname name)
       SERVER %1$I OPTIONS (schema_name 'pg_catalog', table_name 'pg_attribute')$f$, $1)";

/// The imported table's columns (name, type without modifier), in order.
const IMPORTED_COLUMNS: &str = "
SELECT a.attname::text, pg_catalog.format_type(a.atttypid, NULL)
  FROM pg_catalog.pg_attribute a
 WHERE a.attrelid = pg_catalog.to_regclass(pg_catalog.format('floe_reference_import.%I', $1))
   AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum";

/// The key columns of the target's valid, non-partial unique indexes on plain columns.
const UNIQUE_INDEXES: &str = "
SELECT (SELECT pg_catalog.array_agg(a.attname::text ORDER BY a.attnum)
          FROM floe_reference_import.att a
         WHERE a.attrelid = i.indrelid
           AND a.attnum = ANY ((pg_catalog.string_to_array(i.indkey, ' ')::int2[])[1:i.indnkeyatts]))
  FROM floe_reference_import.idx i
  JOIN floe_reference_import.cls c ON c.oid = i.indrelid
  JOIN floe_reference_import.nsp n ON n.oid = c.relnamespace
 WHERE n.nspname = $1 AND c.relname = $2
   AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL";

const KEEP_TARGET: &str = "
SELECT pg_catalog.format('ALTER FOREIGN TABLE floe_reference_import.%1$I RENAME TO %2$I; '
                         'ALTER FOREIGN TABLE floe_reference_import.%2$I SET SCHEMA floe; '
                         'ALTER FOREIGN TABLE floe.%2$I OPTIONS (ADD fetch_size ''10000'')',
                         $1, $2)";
/// What is left in the scratch schema once the target has moved out (dropped one by one:
/// no NOTICE of a cascade reaches the caller).
const DROP_SCRATCH: &str = "
DROP FOREIGN TABLE floe_reference_import.idx, floe_reference_import.cls,
                   floe_reference_import.nsp, floe_reference_import.att;
DROP SCHEMA floe_reference_import";
const TARGET_EXISTS: &str =
    "SELECT pg_catalog.to_regclass(pg_catalog.format('floe.%I', $1)) IS NOT NULL";

/// What floe learned of a target table.
pub(super) struct Target {
    /// Every column, with its type (`format_type`, no modifier).
    pub(super) columns: Vec<(String, String)>,
    /// The key columns of each usable unique index.
    pub(super) unique_indexes: Vec<Vec<String>>,
}

fn formatted(
    s: &mut Session<'_, '_>,
    sql: &'static str,
    args: &[pgrx::datum::DatumWithOid<'_>],
) -> Result<String, FloeError> {
    Ok(s.run(sql, args)?
        .first()
        .get::<String>(1)?
        .unwrap_or_default())
}

/// Reads the target `schema.table` on `server` and keeps it as the foreign table
/// `floe.<keep_as>` (replacing one of that name). A connection failure is PostgreSQL's own
/// error (08001, naming the server); a missing table is 42P01.
pub(super) fn import_target(
    s: &mut Session<'_, '_>,
    server: &str,
    schema: &str,
    table: &str,
    keep_as: &str,
) -> Result<Target, FloeError> {
    s.run(LOCK_IMPORT, &[])?;
    s.execute(MAKE_SCRATCH)?;
    let import = formatted(s, IMPORT, &[schema.into(), table.into(), server.into()])?;
    s.execute(&import)?;
    let columns: Vec<(String, String)> = s
        .run(IMPORTED_COLUMNS, &[table.into()])?
        .map(|r| {
            (
                r.get::<String>(1).ok().flatten().unwrap_or_default(),
                r.get::<String>(2).ok().flatten().unwrap_or_default(),
            )
        })
        .collect();
    if columns.is_empty() {
        return Err(FloeError::Sql {
            code: PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            message: format!("table {schema}.{table} does not exist on server {server}"),
            detail: None,
            hint: "target_table names a table of the server's database, as schema.table (the user mapping's role must be able to see it).".into(),
        });
    }
    let catalog = formatted(s, CATALOG_TABLES, &[server.into()])?;
    s.execute(&catalog)?;
    let unique_indexes: Vec<Vec<String>> = s
        .run(UNIQUE_INDEXES, &[schema.into(), table.into()])?
        .map(|r| r.get::<Vec<String>>(1).ok().flatten().unwrap_or_default())
        .collect();
    drop_target(s, keep_as)?;
    let keep = formatted(s, KEEP_TARGET, &[table.into(), keep_as.into()])?;
    s.execute(&keep)?;
    s.execute(DROP_SCRATCH)?;
    Ok(Target {
        columns,
        unique_indexes,
    })
}

fn quote(ident: &str) -> String {
    pgrx::spi::quote_identifier(ident)
}

/// Drops a reference's foreign table.
pub(super) fn drop_target(s: &mut Session<'_, '_>, name: &str) -> Result<(), FloeError> {
    if s.run(TARGET_EXISTS, &[name.into()])?
        .first()
        .get::<bool>(1)?
        .unwrap_or(false)
    {
        s.execute(&format!("DROP FOREIGN TABLE floe.{}", quote(name)))?;
    }
    Ok(())
}

/// The keys of `keys` (each a text array: tenant first, then the columns; distinct) that have
/// no row in the reference's target: one query through its foreign table (see
/// [`Shape::missing`]). A connection failure is PostgreSQL's own ERROR (class 08).
pub(super) fn missing(
    s: &mut Session<'_, '_>,
    shape: &Shape,
    keys: &[Vec<String>],
) -> Result<Vec<Vec<String>>, FloeError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let sql = shape.missing();
    let args: Vec<pgrx::datum::DatumWithOid<'_>> = columns_of(keys, shape.local.len())
        .into_iter()
        .map(Into::into)
        .collect();
    let mut out = Vec::new();
    for row in s.run_assembled(&sql, &args)? {
        out.extend(at(keys, row.get::<i64>(1)?));
    }
    Ok(out)
}

/// The key at position `n` (from 1, as `WITH ORDINALITY` numbers them) of `keys`.
pub(super) fn at(keys: &[Vec<String>], n: Option<i64>) -> Option<Vec<String>> {
    let i = usize::try_from(n?.checked_sub(1)?).ok()?;
    keys.get(i).cloned()
}

/// Whether an ERROR says the target could not be reached (SQLSTATE class 08, connection
/// exception: refused, timed out, lost), as opposed to one the target itself raised.
pub(super) fn unreachable(code: PgSqlErrorCode) -> bool {
    // A SQLSTATE packs its five characters six bits each, the class in the low twelve.
    (code as i32) & 0xFFF == (PgSqlErrorCode::ERRCODE_CONNECTION_EXCEPTION as i32) & 0xFFF
}
