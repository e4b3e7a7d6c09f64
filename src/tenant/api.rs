//! SQL glue of the tenant module: read the catalog, call the pure logic, run the DDL.

use super::context::{ContextError, ParseCache};
use super::coverage::{self, Facts, Kind, Policy, Verdict};
use super::guard::{self, Decision, GuardError, Op};
use super::plan::{self, Options, QualName, Registration, RelState, Step, Tenancy};
use crate::error::{required, ErrorReport, FloeError};
use crate::gucs;
use crate::health::checks::{Check, Status};
use crate::sqltypes::{to_pg_uuid as to_pg, to_uuid, Name};
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, quote_literal, SpiClient};
use pgrx::PgRelation;
use std::cell::{Cell, RefCell};
use std::ffi::CStr;

thread_local! {
    static CACHE: RefCell<ParseCache> = RefCell::new(ParseCache::default());
    /// Set while floe itself runs tenant DDL, so the DDL event trigger does not re-enter.
    static IN_DDL: Cell<bool> = const { Cell::new(false) };
}

impl From<ContextError> for FloeError {
    fn from(err: ContextError) -> FloeError {
        match err {
            ContextError::Unset { setting } => FloeError::PermissionDenied {
                message: format!("no tenant is set: {setting} is empty"),
                detail: None,
                hint: format!(
                    "Call floe.set_tenant('<tenant uuid>') in this transaction (or SET LOCAL {setting} = '<tenant uuid>'). \
                     For cross-tenant maintenance, a member of floe_tenant_admin runs SET LOCAL floe.tenant_admin = on."
                ),
            },
            ContextError::Malformed { setting, value } => FloeError::PermissionDenied {
                message: format!("tenant context {setting} = \"{value}\" is not a uuid"),
                detail: None,
                hint: "Set the tenant with floe.set_tenant(), which only accepts a uuid.".into(),
            },
            ContextError::BadSettingName { name } => FloeError::InvalidArgument {
                argument: "floe.tenant_setting",
                value: name,
                expected: "a custom variable name with a dot, such as app.current_tenant_id".into(),
            },
        }
    }
}

/// Marks floe's own tenant DDL for the duration of a scope (reset on unwind too).
struct DdlScope(bool);

impl DdlScope {
    fn enter() -> DdlScope {
        DdlScope(IN_DDL.with(|f| f.replace(true)))
    }
}

impl Drop for DdlScope {
    fn drop(&mut self) {
        IN_DDL.with(|f| f.set(self.0));
    }
}

/// Runs `f` as floe's own DDL: the DDL event trigger leaves the tables it touches alone
/// (the partition module lifts FORCE ROW LEVEL SECURITY on a default partition for the
/// moment it moves rows, and restores it before anyone else can see the table).
pub fn as_floe_ddl<T>(f: impl FnOnce() -> T) -> T {
    let _scope = DdlScope::enter();
    f()
}

/// Postgres's `quote_ident`, as a plain function of `&str`.
fn qi(ident: &str) -> String {
    quote_identifier(ident)
}

/// The tenant context of this transaction, parsed (and cached while it does not change).
fn read_context() -> Result<uuid::Uuid, ContextError> {
    gucs::with_tenant_setting(|name: &CStr| {
        // SAFETY: GetConfigOption returns NULL or a string owned by the GUC machinery.
        let raw = unsafe { pg_sys::GetConfigOption(name.as_ptr(), true, false) };
        let raw = (!raw.is_null()).then(|| unsafe { CStr::from_ptr(raw) });
        let setting = name.to_str().unwrap_or("");
        let value = raw.map(|r| r.to_str().unwrap_or("\u{fffd}"));
        CACHE.with(|c| c.borrow_mut().parse(setting, value))
    })
}

/// The tenant of the context, when one is set (and valid); for stamping, never for access.
pub fn context_tenant() -> Option<uuid::Uuid> {
    read_context().ok()
}

/// Cross-tenant admin mode: `floe.tenant_admin` is on and the current user has the privileges
/// of role floe_tenant_admin. Never implied by superuser or BYPASSRLS alone.
fn admin_active() -> bool {
    if !gucs::tenant_admin() {
        return false;
    }
    // SAFETY: catalog lookups by name/oid on the backend thread.
    unsafe {
        let role = pg_sys::get_role_oid(c"floe_tenant_admin".as_ptr(), true);
        role != pg_sys::InvalidOid && pg_sys::has_privs_of_role(pg_sys::GetUserId(), role)
    }
}

/// `SET [LOCAL] <setting> = <value>`, with each part of the setting name quoted.
fn set_statement(local: bool, value: &str) -> Result<String, FloeError> {
    gucs::with_tenant_setting(|name| {
        let name = name.to_str().unwrap_or("");
        let parts = super::context::setting_parts(name).map_err(FloeError::from)?;
        let quoted: Vec<String> = parts.iter().map(quote_identifier).collect();
        Ok(format!(
            "SET {}{} = {}",
            if local { "LOCAL " } else { "" },
            quoted.join("."),
            quote_literal(value)
        ))
    })
}

#[pg_extern(volatile)]
fn set_tenant(tenant: Option<pgrx::Uuid>, local: default!(bool, true)) -> Result<(), ErrorReport> {
    let tenant = tenant.ok_or(FloeError::InvalidArgument {
        argument: "tenant",
        value: "NULL".into(),
        expected: "a tenant uuid (use floe.clear_tenant() to clear the context)".into(),
    })?;
    let stmt = set_statement(local, &to_uuid(tenant).to_string())?;
    Spi::run(&stmt).map_err(FloeError::from)?;
    Ok(())
}

#[pg_extern(volatile)]
fn clear_tenant(local: default!(Option<bool>, true)) -> Result<(), ErrorReport> {
    let local = required(local, "local")?;
    let stmt = set_statement(local, "")?;
    Spi::run(&stmt).map_err(FloeError::from)?;
    Ok(())
}

#[pg_extern(stable, parallel_safe)]
fn current_tenant() -> Result<Option<pgrx::Uuid>, ErrorReport> {
    match read_context() {
        Ok(id) => Ok(Some(to_pg(id))),
        // Admin mode without a tenant: NULL, so the tenant policy matches nothing and only
        // the admin policy (for members of floe_tenant_admin) lets rows through.
        Err(ContextError::Unset { .. }) if admin_active() => Ok(None),
        Err(e) => Err(FloeError::from(e).into()),
    }
}

#[pg_extern(stable, parallel_safe)]
fn tenant_admin_active() -> bool {
    admin_active()
}

/// Checks that the caller may act for `tenant` (the current tenant, or any tenant in admin
/// mode), as the guard trigger would for a row of that tenant; returns it. `None` (what
/// `floe.current_tenant()` gives in admin mode without a tenant) is rejected: admin mode must
/// name the tenant. Used by functions that take a `tenant` argument (the content store's).
pub fn authorize(tenant: Option<pgrx::Uuid>, what: &str) -> Result<uuid::Uuid, FloeError> {
    let context = read_context();
    let admin = admin_active();
    let Some(tenant) = tenant.map(to_uuid) else {
        return Err(match context {
            Err(e) if !admin => e.into(),
            _ => FloeError::PermissionDenied {
                message: format!("{what} needs a tenant"),
                detail: None,
                hint: "In admin mode there is no current tenant: pass tenant => '<uuid>'.".into(),
            },
        });
    };
    match guard::decide(Op::Insert, None, Some(tenant), &context, admin) {
        Decision::Keep => Ok(tenant),
        Decision::Reject(GuardError::ForeignRow { row, current }) => {
            Err(FloeError::PermissionDenied {
                message: format!("{what} for tenant {row} is not allowed in tenant {current}'s context"),
                detail: None,
                hint: "Switch to that tenant with floe.set_tenant() first, or leave tenant out to use the current one.".into(),
            })
        }
        Decision::Reject(GuardError::NoContext(e)) => Err(e.into()),
        other => Err(FloeError::Internal {
            message: format!("unexpected tenant decision {other:?} for {what}"),
        }),
    }
}

// ---------------------------------------------------------------------------------------
// The guard trigger
// ---------------------------------------------------------------------------------------

#[pg_trigger]
fn tenant_guard<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByRust>>, std::convert::Infallible> {
    match guard_row(trigger) {
        Ok(row) => Ok(row),
        Err(e) => e.raise(),
    }
}

fn guard_row<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByRust>>, FloeError> {
    let table = || {
        format!(
            "{}.{}",
            trigger.table_schema().unwrap_or_default(),
            trigger.table_name().unwrap_or_default()
        )
    };
    let misuse = |why: &str| FloeError::WrongState {
        message: format!("floe.tenant_guard on {}: {why}", table()),
        hint: "Create the guard with floe.enable_tenant_isolation(), not by hand.".into(),
    };
    let column = trigger
        .extra_args()
        .ok()
        .and_then(|a| a.into_iter().next())
        .ok_or_else(|| misuse("the trigger has no tenant column argument"))?;
    let op = match trigger.op() {
        Ok(PgTriggerOperation::Insert) => Op::Insert,
        Ok(PgTriggerOperation::Update) => Op::Update,
        _ => return Err(misuse("it must be an INSERT or UPDATE row trigger")),
    };
    let new = trigger
        .new()
        .ok_or_else(|| misuse("it must be a row-level trigger"))?;
    let read = |t: &PgHeapTuple<'_, AllocatedByPostgres>| {
        t.get_by_name::<pgrx::Uuid>(&column)
            .map(|v| v.map(to_uuid))
            .map_err(|_| misuse(&format!("\"{column}\" is not a uuid column")))
    };
    let new_tenant = read(&new)?;
    let old_tenant = match op {
        Op::Update => match trigger.old() {
            Some(old) => read(&old)?,
            None => None,
        },
        Op::Insert => None,
    };
    let context = read_context();
    let admin = admin_active();
    match guard::decide(op, old_tenant, new_tenant, &context, admin) {
        Decision::Keep => Ok(Some(new.into_owned())),
        Decision::Fill(tenant) => {
            let mut row = new.into_owned();
            row.set_by_name(&column, to_pg(tenant))
                .map_err(|_| misuse(&format!("cannot set \"{column}\"")))?;
            Ok(Some(row))
        }
        Decision::Reject(GuardError::NoContext(e)) => Err(e.into()),
        Decision::Reject(GuardError::ForeignRow { row, current }) => {
            Err(FloeError::PermissionDenied {
                message: format!(
                    "new row for {} belongs to tenant {row}, not to the current tenant {current}",
                    table()
                ),
                detail: None,
                hint: format!("Leave {column} empty to have it filled from the tenant context, or first switch to that tenant with floe.set_tenant()."),
            })
        }
        Decision::Reject(GuardError::TenantChanged { old, new }) => {
            let show = |t: Option<uuid::Uuid>| t.map_or("NULL".to_string(), |t| t.to_string());
            Err(FloeError::PermissionDenied {
                message: format!(
                    "the tenant of a row of {} cannot change ({} to {})",
                    table(),
                    show(old),
                    show(new)
                ),
                detail: None,
                hint: "Copy the row to the other tenant and delete the original instead (as floe_tenant_admin, for cross-tenant moves).".into(),
            })
        }
        Decision::Reject(GuardError::AdminWithoutTenant) => Err(FloeError::PermissionDenied {
            message: format!("admin mode insert into {} without {column}", table()),
            detail: None,
            hint: format!("In admin mode there is no current tenant to fill in: give {column} explicitly."),
        }),
    }
}

// ---------------------------------------------------------------------------------------
// enable / disable
// ---------------------------------------------------------------------------------------

/// Name and kind of a relation.
struct RelInfo {
    name: QualName,
    relkind: String,
}

fn rel_info(client: &SpiClient<'_>, oid: pg_sys::Oid) -> Result<RelInfo, FloeError> {
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

const REL_STATE: &str = "
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
              AND pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) IS NOT DISTINCT FROM pg_catalog.pg_get_expr(r.polwithcheck, r.polrelid))
  FROM pg_catalog.pg_class c WHERE c.oid = $1";

/// What is in place on `oid` (a tree's root, or one of its partitions: `root`).
fn rel_state(
    client: &SpiClient<'_>,
    oid: pg_sys::Oid,
    column: &str,
    root: pg_sys::Oid,
) -> Result<RelState, FloeError> {
    let row = client
        .select(
            REL_STATE,
            Some(1),
            &[oid.into(), column.into(), root.into()],
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
        has_tenant_index: flag(7)?,
        policy_matches: flag(8)?,
    })
}

/// Every partition below `oid` (all levels), with its state.
fn partitions(
    client: &SpiClient<'_>,
    oid: pg_sys::Oid,
    column: &str,
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
        .map(|(part, name)| Ok((name, rel_state(client, part, column, oid)?)))
        .collect()
}

/// Checks that `table` has a uuid column `column`.
fn require_uuid_column(
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
fn resolve_tenancy(
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

fn registration(
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
fn free_index_name(table: &QualName, column: &str) -> Result<String, FloeError> {
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
fn owns(oid: pg_sys::Oid) -> bool {
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

fn require_owner(oid: pg_sys::Oid, name: &QualName, what: &str) -> Result<(), FloeError> {
    if owns(oid) {
        return Ok(());
    }
    Err(FloeError::PermissionDenied {
        message: format!("must be owner of table {} to {what}", name.quoted(&qi)),
        detail: None,
        hint: "Run it as the table's owner (or a member of the owning role).".into(),
    })
}

fn run_steps(steps: &[Step], tenancy: &Tenancy) -> Result<Vec<String>, FloeError> {
    let mut done = Vec::with_capacity(steps.len());
    for step in steps {
        let sql = plan::render(step, tenancy, &qi);
        Spi::run(&sql)?;
        done.push(sql);
    }
    Ok(done)
}

#[pg_extern(volatile)]
fn enable_tenant_isolation(
    tbl: Option<PgRelation>,
    tenant_column: default!(Option<Name>, "'tenant_id'"),
    force: default!(Option<bool>, true),
    via: default!(Option<Name>, "NULL"),
    guard_updates: default!(Option<bool>, true),
) -> Result<SetOfIterator<'static, String>, ErrorReport> {
    let tbl = required(tbl, "tbl")?;
    let tenant_column = required(tenant_column, "tenant_column")?;
    let force = required(force, "force")?;
    let guard_updates = required(guard_updates, "guard_updates")?;
    let _scope = DdlScope::enter();
    let oid = tbl.oid();
    drop(tbl);
    let done = enable(
        oid,
        tenant_column.as_str(),
        force,
        via.as_ref().map(Name::as_str),
        guard_updates,
    )?;
    Ok(SetOfIterator::new(done))
}

fn enable(
    oid: pg_sys::Oid,
    tenant_column: &str,
    force: bool,
    via: Option<&str>,
    guard_updates: bool,
) -> Result<Vec<String>, FloeError> {
    let (info, tenancy, prev, root_state, parts) = Spi::connect(|client| {
        let info = rel_info(client, oid)?;
        require_owner(oid, &info.name, "isolate it by tenant")?;
        if !matches!(info.relkind.as_str(), "r" | "p") {
            return Err(FloeError::InvalidArgument {
                argument: "tbl",
                value: info.name.quoted(&qi),
                expected:
                    "a table or a partitioned table (views read through security_invoker instead)"
                        .into(),
            });
        }
        let tenancy = resolve_tenancy(client, oid, &info.name, tenant_column, via)?;
        let prev = registration(client, oid, &info.name.schema)?;
        let column = tenancy.indexed_column().to_string();
        let root_state = rel_state(client, oid, &column, oid)?;
        let parts = partitions(client, oid, &column)?;
        Ok::<_, FloeError>((info, tenancy, prev, root_state, parts))
    })?;
    let changed = prev
        .as_ref()
        .is_some_and(|(_, col, prev_via, _)| col != tenant_column || prev_via.as_deref() != via);
    let index_name = free_index_name(&info.name, tenancy.indexed_column())?;
    let steps = plan::enable_steps(
        &info.name,
        &root_state,
        &parts,
        &tenancy,
        &index_name,
        Options {
            force,
            refresh_policies: changed,
            guard_updates,
            partitioned: info.relkind == "p",
        },
    );
    let done = run_steps(&steps, &tenancy)?;
    let created_index = steps
        .iter()
        .any(|s| matches!(s, Step::CreateIndex { .. }))
        .then_some(index_name);
    let (was_enabled, was_forced) = match &prev {
        Some((reg, ..)) => (reg.rls_was_enabled, reg.rls_was_forced),
        None => (root_state.rls_enabled, root_state.rls_forced),
    };
    Spi::run_with_args(
        "INSERT INTO floe.tenant_tables AS t
                (relid, tenant_column, via_column, force, rls_was_enabled, rls_was_forced,
                 created_index, guard_updates)
         VALUES ($1::regclass, $2::name, $3::name, $4, $5, $6, $7::name, $8)
         ON CONFLICT (relid) DO UPDATE
            SET tenant_column = EXCLUDED.tenant_column, via_column = EXCLUDED.via_column,
                force = EXCLUDED.force, guard_updates = EXCLUDED.guard_updates,
                created_index = COALESCE(t.created_index, EXCLUDED.created_index)",
        &[
            oid.into(),
            tenant_column.into(),
            via.into(),
            force.into(),
            was_enabled.into(),
            was_forced.into(),
            created_index.into(),
            guard_updates.into(),
        ],
    )?;
    Ok(done)
}

#[pg_extern(volatile)]
fn disable_tenant_isolation(
    tbl: PgRelation,
) -> Result<SetOfIterator<'static, String>, ErrorReport> {
    let _scope = DdlScope::enter();
    let oid = tbl.oid();
    drop(tbl);
    let (info, reg, tenancy, root_state, parts) = Spi::connect(|client| {
        let info = rel_info(client, oid)?;
        require_owner(oid, &info.name, "end its tenant isolation")?;
        let Some((reg, column, via, _)) = registration(client, oid, &info.name.schema)? else {
            return Err(FloeError::WrongState {
                message: format!("{} is not tenant-isolated by floe", info.name.quoted(&qi)),
                hint: "floe.tenant_coverage() lists the tables floe isolates.".into(),
            });
        };
        let tenancy = match via {
            Some(fk_column) => Tenancy::Via {
                fk_column,
                parent: QualName::new("", ""),
                parent_key: String::new(),
                parent_tenant: column,
            },
            None => Tenancy::Column { column },
        };
        let indexed = tenancy.indexed_column().to_string();
        let root_state = rel_state(client, oid, &indexed, oid)?;
        let parts = partitions(client, oid, &indexed)?;
        Ok::<_, FloeError>((info, reg, tenancy, root_state, parts))
    })?;
    let steps = plan::disable_steps(&info.name, &root_state, &parts, &reg);
    let done = run_steps(&steps, &tenancy)?;
    Spi::run_with_args(
        "DELETE FROM floe.tenant_tables WHERE relid = $1::regclass",
        &[oid.into()],
    )
    .map_err(FloeError::from)?;
    Ok(SetOfIterator::new(done))
}

/// Isolates the partitions of a tenant-isolated tree that are not isolated yet (created or
/// attached after `enable_tenant_isolation`). `oid` may be any member of the tree. Called by
/// the DDL event trigger and by the partition module; returns the number of statements run.
pub fn apply_to_partitions(oid: pg_sys::Oid) -> Result<usize, FloeError> {
    if IN_DDL.with(|f| f.get()) {
        return Ok(0);
    }
    let _scope = DdlScope::enter();
    let found = Spi::connect(|client| {
        let row = client
            .select(
                "SELECT a.relid::oid
                   FROM pg_catalog.pg_partition_ancestors($1::regclass) WITH ORDINALITY AS a(relid, ord)
                   JOIN floe.tenant_tables t ON t.relid = a.relid
                  ORDER BY a.ord LIMIT 1",
                Some(1),
                &[oid.into()],
            )?
            .first();
        let root = if row.is_empty() {
            None
        } else {
            row.get::<pg_sys::Oid>(1)?
        };
        let Some(root) = root else {
            return Ok::<_, FloeError>(None);
        };
        let info = rel_info(client, root)?;
        let Some((_, column, via, force)) = registration(client, root, &info.name.schema)? else {
            return Ok(None);
        };
        let tenancy = match via {
            Some(fk) => resolve_tenancy(client, root, &info.name, &column, Some(&fk))?,
            None => Tenancy::Column { column },
        };
        let parts = partitions(client, root, tenancy.indexed_column())?;
        Ok(Some((tenancy, parts, force)))
    })?;
    let Some((tenancy, parts, force)) = found else {
        return Ok(0);
    };
    let steps = plan::new_partition_steps(&parts, force);
    Ok(run_steps(&steps, &tenancy)?.len())
}

#[pg_extern(volatile, strict)]
fn tenant_apply_partitions(tbl: PgRelation) -> Result<i32, ErrorReport> {
    let oid = tbl.oid();
    drop(tbl);
    Ok(i32::try_from(apply_to_partitions(oid)?).unwrap_or(i32::MAX))
}

// ---------------------------------------------------------------------------------------
// coverage
// ---------------------------------------------------------------------------------------

const COVERAGE_TABLES: &str = "
WITH cand AS (
  SELECT c.oid, n.nspname::text AS schema_name, c.relname::text AS table_name,
         c.relkind::text AS relkind, c.relispartition, c.relrowsecurity, c.relforcerowsecurity,
         c.relacl, c.relowner,
         reg.tenant_column::text AS reg_column, reg.via_column::text AS reg_via, reg.force AS reg_force,
         reg.guard_updates AS reg_guard_updates,
         (SELECT a.attname::text FROM pg_catalog.pg_attribute a
           WHERE a.attrelid = c.oid AND a.attname = $1 AND a.attnum > 0 AND NOT a.attisdropped) AS own_column,
         (SELECT a.attname::text
            FROM pg_catalog.pg_constraint k
            JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
           WHERE k.conrelid = c.oid AND k.contype = 'f' AND pg_catalog.cardinality(k.conkey) = 1
             AND EXISTS (SELECT 1 FROM pg_catalog.pg_attribute pa
                          WHERE pa.attrelid = k.confrelid AND pa.attname = $1
                            AND pa.attnum > 0 AND NOT pa.attisdropped)
           ORDER BY k.conname LIMIT 1) AS fk_column
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN LATERAL (
      -- the table itself, then its ancestors (pg_partition_ancestors() is empty for a table
      -- outside any partition tree)
      SELECT t.tenant_column, t.via_column, t.force, t.guard_updates
        FROM (SELECT c.oid AS relid, 0::bigint AS ord
              UNION ALL
              SELECT a.relid, a.ord FROM pg_catalog.pg_partition_ancestors(c.oid) WITH ORDINALITY AS a(relid, ord)) an
        JOIN floe.tenant_tables t ON t.relid = an.relid
       ORDER BY an.ord LIMIT 1) reg ON true
   WHERE c.relkind IN ('r', 'p')
     AND n.nspname <> ALL ('{pg_catalog,information_schema}')
     AND n.nspname !~ '^pg_(toast|temp_)'
), cov AS (
  SELECT cand.*,
         COALESCE(reg_via, CASE WHEN reg_column IS NULL AND own_column IS NULL THEN fk_column END) AS via,
         CASE WHEN reg_via IS NOT NULL THEN NULL ELSE COALESCE(reg_column, own_column) END AS tenant_column
    FROM cand
   WHERE reg_column IS NOT NULL OR own_column IS NOT NULL OR fk_column IS NOT NULL
)
SELECT cov.oid, schema_name, table_name, relkind, relispartition, relrowsecurity, relforcerowsecurity,
       tenant_column, via, reg_force,
       ARRAY(SELECT p.polname::text || CASE WHEN p.polpermissive THEN '' ELSE ' (restrictive)' END
               FROM pg_catalog.pg_policy p WHERE p.polrelid = cov.oid ORDER BY p.polname),
       ARRAY(SELECT COALESCE(pg_catalog.pg_get_expr(p.polqual, p.polrelid), '')
               FROM pg_catalog.pg_policy p WHERE p.polrelid = cov.oid ORDER BY p.polname),
       ARRAY(SELECT COALESCE(pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid), '')
               FROM pg_catalog.pg_policy p WHERE p.polrelid = cov.oid ORDER BY p.polname),
       EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                WHERE t.tgrelid = cov.oid AND t.tgname = 'floe_tenant_guard_insert'
                  AND t.tgfoid = 'floe.tenant_guard()'::pg_catalog.regprocedure AND t.tgenabled <> 'D')
         AND (reg_guard_updates IS FALSE
              OR EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                          WHERE t.tgrelid = cov.oid AND t.tgname = 'floe_tenant_guard_update'
                            AND t.tgfoid = 'floe.tenant_guard()'::pg_catalog.regprocedure
                            AND t.tgenabled <> 'D')),
       EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                WHERE i.indrelid = cov.oid AND a.attname = COALESCE(via, tenant_column)),
       -- TRUNCATE ignores row level security
       ARRAY(SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                                  ELSE pg_catalog.pg_get_userbyid(a.grantee)::text END
               FROM pg_catalog.aclexplode(cov.relacl) a
              WHERE a.privilege_type = 'TRUNCATE' AND a.grantee <> cov.relowner
              ORDER BY 1)
  FROM cov
 ORDER BY schema_name, table_name";

const COVERAGE_VIEWS: &str = "
SELECT n.nspname::text, v.relname::text, v.relkind::text,
       COALESCE(v.reloptions, '{}')::text[],
       ARRAY(SELECT DISTINCT pg_catalog.quote_ident(bn.nspname) || '.' || pg_catalog.quote_ident(b.relname)
               FROM pg_catalog.pg_rewrite rw
               JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
                    AND d.objid = rw.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
               JOIN pg_catalog.pg_class b ON b.oid = d.refobjid
               JOIN pg_catalog.pg_namespace bn ON bn.oid = b.relnamespace
              WHERE rw.ev_class = v.oid AND b.oid <> v.oid AND b.oid = ANY ($1)
                -- a view reads with its owner's rights: that only leaks when the owner
                -- bypasses the table's policy. A materialized view stores every tenant's
                -- rows: that leaks when a role other than its owner may read it (an
                -- operators' dashboard nobody else is granted is fine).
                AND (CASE WHEN v.relkind = 'm'
                          THEN EXISTS (SELECT 1 FROM pg_catalog.aclexplode(
                                           COALESCE(v.relacl, pg_catalog.acldefault('r', v.relowner))) a
                                        WHERE a.privilege_type = 'SELECT' AND a.grantee <> v.relowner)
                          ELSE o.rolsuper OR o.rolbypassrls OR NOT b.relrowsecurity
                               OR (b.relowner = v.relowner AND NOT b.relforcerowsecurity)
                     END)
              ORDER BY 1) AS leaking_reads,
       EXISTS (SELECT 1 FROM pg_catalog.pg_rewrite rw
                 JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
                      AND d.objid = rw.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                WHERE rw.ev_class = v.oid AND d.refobjid <> v.oid AND d.refobjid = ANY ($1)) AS reads_tenant
  FROM pg_catalog.pg_class v
  JOIN pg_catalog.pg_namespace n ON n.oid = v.relnamespace
  JOIN pg_catalog.pg_roles o ON o.oid = v.relowner
 WHERE v.relkind IN ('v', 'm')
   AND n.nspname <> ALL ('{pg_catalog,information_schema}')
 ORDER BY 1, 2";

/// Roles that bypass RLS (and are not superusers) and can log in, or can be reached with
/// SET ROLE from a role that can log in.
const COVERAGE_ROLES: &str = "
WITH RECURSIVE reach(roleid, via) AS (
    SELECT r.oid, r.oid FROM pg_catalog.pg_roles r WHERE r.rolcanlogin
  UNION
    SELECT m.roleid, reach.via FROM pg_catalog.pg_auth_members m JOIN reach ON m.member = reach.roleid
)
SELECT r.rolname::text FROM pg_catalog.pg_roles r
 WHERE r.rolbypassrls AND NOT r.rolsuper
   AND EXISTS (SELECT 1 FROM reach WHERE reach.roleid = r.oid)
 ORDER BY 1";

/// One row of `floe.tenant_coverage()`.
pub struct CoverageRow {
    pub schema: Option<String>,
    pub name: String,
    pub kind: Kind,
    pub tenant_column: Option<String>,
    pub via: Option<String>,
    pub rls_enabled: Option<bool>,
    pub rls_forced: Option<bool>,
    pub guard: Option<bool>,
    pub tenant_index: Option<bool>,
    pub verdict: Verdict,
}

impl CoverageRow {
    /// A row for a view or role: no table columns to report.
    fn non_table(schema: Option<String>, name: String, kind: Kind, facts: &Facts) -> CoverageRow {
        CoverageRow {
            schema,
            name,
            kind,
            tenant_column: None,
            via: None,
            rls_enabled: None,
            rls_forced: None,
            guard: None,
            tenant_index: None,
            verdict: coverage::judge(facts),
        }
    }
}

fn is_true_option(opt: &str, key: &str) -> bool {
    opt.split_once('=').is_some_and(|(k, v)| {
        k.eq_ignore_ascii_case(key)
            && matches!(v.to_ascii_lowercase().as_str(), "true" | "on" | "1" | "yes")
    })
}

pub fn coverage_rows(tenant_column: &str) -> Result<Vec<CoverageRow>, FloeError> {
    Spi::connect(|client| {
        let mut out = Vec::new();
        let mut tenant_oids: Vec<pg_sys::Oid> = Vec::new();
        for row in client.select(COVERAGE_TABLES, None, &[tenant_column.into()])? {
            let oid: pg_sys::Oid = row.get(1)?.unwrap_or(pg_sys::InvalidOid);
            tenant_oids.push(oid);
            let relkind: String = row.get(4)?.unwrap_or_default();
            let is_partition: bool = row.get(5)?.unwrap_or(false);
            let kind = Kind::from_relkind(&relkind, is_partition).unwrap_or(Kind::Table);
            let rls_enabled: bool = row.get(6)?.unwrap_or(false);
            let rls_forced: bool = row.get(7)?.unwrap_or(false);
            let column: Option<String> = row.get(8)?;
            let via: Option<String> = row.get(9)?;
            let reg_force: Option<bool> = row.get(10)?;
            let names: Vec<String> = row.get::<Vec<String>>(11)?.unwrap_or_default();
            let using: Vec<String> = row.get::<Vec<String>>(12)?.unwrap_or_default();
            let check: Vec<String> = row.get::<Vec<String>>(13)?.unwrap_or_default();
            let guard: bool = row.get(14)?.unwrap_or(false);
            let tenant_index: bool = row.get(15)?.unwrap_or(false);
            let truncaters: Vec<String> = row.get::<Vec<String>>(16)?.unwrap_or_default();
            let nonempty = |s: &String| (!s.is_empty()).then(|| s.clone());
            let policies = names
                .iter()
                .enumerate()
                .map(|(i, name)| Policy {
                    permissive: !name.ends_with(" (restrictive)"),
                    name: name.trim_end_matches(" (restrictive)").to_string(),
                    using: using.get(i).and_then(nonempty),
                    with_check: check.get(i).and_then(nonempty),
                })
                .collect();
            let facts = Facts {
                kind,
                via: via.is_some(),
                unforced_by_choice: reg_force == Some(false),
                rls_enabled,
                rls_forced,
                policies,
                guard,
                tenant_index,
                index_column: via.clone().or_else(|| column.clone()).unwrap_or_default(),
                security_invoker: false,
                reads: vec![],
                truncaters,
            };
            out.push(CoverageRow {
                schema: row.get(2)?,
                name: row.get(3)?.unwrap_or_default(),
                kind,
                tenant_column: column,
                via,
                rls_enabled: Some(rls_enabled),
                rls_forced: Some(rls_forced),
                guard: Some(guard),
                tenant_index: Some(tenant_index),
                verdict: coverage::judge(&facts),
            });
        }
        for row in client.select(COVERAGE_VIEWS, None, &[tenant_oids.into()])? {
            // every view over a tenant table gets a row; a problem only when it leaks
            let reads: Vec<String> = row.get::<Vec<String>>(5)?.unwrap_or_default();
            if !row.get::<bool>(6)?.unwrap_or(false) {
                continue;
            }
            let options: Vec<String> = row.get::<Vec<String>>(4)?.unwrap_or_default();
            let kind = if row.get::<String>(3)?.as_deref() == Some("m") {
                Kind::MaterializedView
            } else {
                Kind::View
            };
            let invoker = options
                .iter()
                .any(|o| is_true_option(o, "security_invoker"));
            let facts = Facts::non_table(kind, invoker, reads);
            out.push(CoverageRow::non_table(
                row.get(1)?,
                row.get(2)?.unwrap_or_default(),
                kind,
                &facts,
            ));
        }
        for row in client.select(COVERAGE_ROLES, None, &[])? {
            let facts = Facts::non_table(Kind::Role, false, vec![]);
            out.push(CoverageRow::non_table(
                None,
                row.get(1)?.unwrap_or_default(),
                Kind::Role,
                &facts,
            ));
        }
        Ok(out)
    })
}

// pgrx reads the column names from the signature, so the row type cannot be an alias.
#[allow(clippy::type_complexity)]
#[pg_extern(stable)]
fn tenant_coverage(
    tenant_column: default!(Option<Name>, "'tenant_id'"),
) -> Result<
    TableIterator<
        'static,
        (
            name!(schema_name, Option<String>),
            name!(table_name, String),
            name!(kind, String),
            name!(tenant_column, Option<String>),
            name!(via, Option<String>),
            name!(rls_enabled, Option<bool>),
            name!(rls_forced, Option<bool>),
            name!(policy_present, Option<bool>),
            name!(policy_efficient, Option<bool>),
            name!(guard_present, Option<bool>),
            name!(tenant_index, Option<bool>),
            name!(problems, Vec<String>),
        ),
    >,
    ErrorReport,
> {
    let tenant_column = required(tenant_column, "tenant_column")?;
    let rows = coverage_rows(tenant_column.as_str())?;
    Ok(TableIterator::new(rows.into_iter().map(|r| {
        let is_table = matches!(
            r.kind,
            Kind::Table | Kind::PartitionedTable | Kind::Partition
        );
        (
            r.schema,
            r.name,
            r.kind.as_str().to_string(),
            r.tenant_column,
            r.via,
            r.rls_enabled,
            r.rls_forced,
            is_table.then_some(r.verdict.policy_present),
            is_table.then_some(r.verdict.policy_efficient),
            r.guard,
            r.tenant_index,
            r.verdict.problems,
        )
    })))
}

#[pg_extern(stable)]
fn assert_tenant_coverage(
    tenant_column: default!(Option<Name>, "'tenant_id'"),
) -> Result<(), ErrorReport> {
    let tenant_column = required(tenant_column, "tenant_column")?;
    let rows = coverage_rows(tenant_column.as_str())?;
    let mut lines = Vec::new();
    for r in &rows {
        let who = match &r.schema {
            Some(s) => format!(
                "{} {}.{}",
                r.kind.as_str(),
                quote_identifier(s),
                quote_identifier(&r.name)
            ),
            None => format!("{} {}", r.kind.as_str(), quote_identifier(&r.name)),
        };
        lines.extend(r.verdict.problems.iter().map(|p| format!("{who}: {p}")));
    }
    if lines.is_empty() {
        return Ok(());
    }
    Err(FloeError::PermissionDenied {
        message: format!("tenant coverage has {} problem(s)", lines.len()),
        detail: Some(lines.join("\n")),
        hint: "Run floe.enable_tenant_isolation() on each table listed; floe.tenant_coverage() shows the details.".into(),
    }
    .into())
}

/// The tenant module's rows of `floe.health()`.
pub fn health_checks() -> Result<Vec<Check>, FloeError> {
    let rows = coverage_rows("tenant_id")?;
    let with_problems: Vec<&CoverageRow> = rows
        .iter()
        .filter(|r| !r.verdict.problems.is_empty())
        .collect();
    let leaking = with_problems.iter().filter(|r| r.verdict.leaks).count();
    let tables = rows
        .iter()
        .filter(|r| {
            matches!(
                r.kind,
                Kind::Table | Kind::PartitionedTable | Kind::Partition
            )
        })
        .count();
    let check = if with_problems.is_empty() {
        Check {
            name: "tenant.coverage",
            status: Status::Ok,
            detail: format!("{tables} tenant table(s), all isolated"),
            hint: None,
        }
    } else {
        let names: Vec<String> = with_problems
            .iter()
            .take(5)
            .map(|r| r.name.clone())
            .collect();
        Check {
            name: "tenant.coverage",
            status: if leaking > 0 { Status::Critical } else { Status::Warn },
            detail: format!(
                "{} object(s) with tenant isolation problems ({} can leak rows across tenants), e.g. {}",
                with_problems.len(),
                leaking,
                names.join(", ")
            ),
            hint: Some("SELECT * FROM floe.tenant_coverage() WHERE problems <> '{}' shows each problem and what fixes it.".into()),
        }
    };
    let bypass = Spi::connect(|client| {
        let mut names = Vec::new();
        for row in client.select(
            "SELECT r.rolname::text FROM pg_catalog.pg_roles r
              WHERE r.rolcanlogin AND r.rolsuper ORDER BY 1",
            None,
            &[],
        )? {
            names.push(row.get::<String>(1)?.unwrap_or_default());
        }
        Ok::<_, FloeError>(names)
    })?;
    let defaults = gucs::with_tenant_setting(|name| {
        Spi::get_one_with_args::<i64>(
            "SELECT pg_catalog.count(*) FROM pg_catalog.pg_db_role_setting s,
                    pg_catalog.unnest(s.setconfig) c WHERE c LIKE $1 || '=%'",
            &[name.to_str().unwrap_or("").into()],
        )
    })?
    .unwrap_or(0);
    let defaults_check = if defaults == 0 {
        Check {
            name: "tenant.defaults",
            status: Status::Ok,
            detail: "no role or database sets a default tenant".into(),
            hint: None,
        }
    } else {
        Check {
            name: "tenant.defaults",
            status: Status::Warn,
            detail: format!("{defaults} ALTER ROLE/DATABASE ... SET of the tenant variable: a transaction that forgets floe.set_tenant() silently runs as that tenant instead of failing"),
            hint: Some("Remove them (SELECT * FROM pg_db_role_setting shows where) and set the tenant per transaction.".into()),
        }
    };
    let bypass_check = Check {
        name: "tenant.bypass",
        status: Status::Ok,
        detail: if bypass.is_empty() {
            "no superuser can log in".to_string()
        } else {
            format!(
                "superuser login role(s) {} bypass row level security when they read; floe's guard still requires a tenant or admin mode for their writes (BYPASSRLS roles appear in floe.tenant_coverage())",
                bypass.join(", ")
            )
        },
        hint: None,
    };
    Ok(vec![check, defaults_check, bypass_check])
}

extension_sql_file!(
    "../sql/tenant.sql",
    name = "tenant_sql",
    requires = [tenant_apply_partitions]
);

extension_sql!(
    r#"
COMMENT ON FUNCTION floe.set_tenant(uuid, boolean) IS
  'Sets the tenant context (the variable named by floe.tenant_setting) with SET LOCAL, or SET when local is false.';
COMMENT ON FUNCTION floe.clear_tenant(boolean) IS
  'Clears the tenant context: every tenant-isolated statement fails with 42501 until a tenant is set.';
COMMENT ON FUNCTION floe.current_tenant() IS
  'The current tenant (uuid); raises 42501 when none is set. NULL only in cross-tenant admin mode.';
COMMENT ON FUNCTION floe.tenant_admin_active() IS
  'True when floe.tenant_admin is on and the current user has the privileges of role floe_tenant_admin.';
COMMENT ON FUNCTION floe.tenant_guard() IS
  'Row trigger of tenant-isolated tables: fills a missing tenant column from the context, rejects foreign rows and tenant changes (42501).';
COMMENT ON FUNCTION floe.enable_tenant_isolation(regclass, name, boolean, name, boolean) IS
  'Isolates a table (and each of its partitions) by tenant: RLS enabled and forced, policy, guard triggers, tenant index. Idempotent; returns the statements it ran.';
COMMENT ON FUNCTION floe.disable_tenant_isolation(regclass) IS
  'Undoes floe.enable_tenant_isolation exactly: drops its policies, triggers and index, restores the RLS flags found before.';
COMMENT ON FUNCTION floe.tenant_apply_partitions(regclass) IS
  'Isolates the partitions of a tenant-isolated tree that are not yet isolated; run automatically on CREATE/ALTER TABLE.';
COMMENT ON FUNCTION floe.tenant_coverage(name) IS
  'One row per tenant table, partition, view over tenant tables and BYPASSRLS login role, with what isolation it lacks (problems).';
COMMENT ON FUNCTION floe.assert_tenant_coverage(name) IS
  'Raises 42501 listing every tenant-isolation problem of floe.tenant_coverage(); returns nothing when there is none.';
REVOKE ALL ON FUNCTION floe.tenant_apply_partitions(regclass) FROM PUBLIC;
"#,
    name = "tenant_comments",
    requires = [
        set_tenant,
        clear_tenant,
        current_tenant,
        tenant_admin_active,
        tenant_guard,
        enable_tenant_isolation,
        disable_tenant_isolation,
        tenant_apply_partitions,
        tenant_coverage,
        assert_tenant_coverage,
        "tenant_sql"
    ],
);
