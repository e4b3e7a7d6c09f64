//! The tenant module's SQL surface: the context functions, the guard trigger, isolating and
//! un-isolating tables, coverage. The work is done in `session.rs`, `isolate.rs`, `state.rs`,
//! `guard_trigger.rs` and `inspect.rs`.

use super::context::ContextError;
use super::coverage::Kind;
use super::guard_trigger::guard_row;
use super::inspect::coverage_rows;
use super::isolate::{apply_to_partitions, ddl_scope, enable, run_steps};
use super::plan::{self, QualName, Tenancy};
use super::session::{admin_active, read_context, token_required};
use super::set_context::set_context;
use super::state::{partitions, qi, registration, rel_info, rel_state, require_owner};
use super::tokens;
use crate::error::{required, ErrorReport, FloeError};
use crate::sqltypes::{to_pg_uuid as to_pg, to_uuid, Name};
use pgrx::prelude::*;
use pgrx::spi::quote_identifier;
use pgrx::PgRelation;

#[pg_extern(volatile)]
fn set_tenant(tenant: Option<pgrx::Uuid>, local: default!(bool, true)) -> Result<(), ErrorReport> {
    let tenant = tenant.ok_or(FloeError::InvalidArgument {
        argument: "tenant",
        value: "NULL".into(),
        expected: "a tenant uuid (use floe.clear_tenant() to clear the context)".into(),
    })?;
    if tokens::required()? {
        return Err(token_required(
            "this role must set its tenant with floe.set_tenant_token()".into(),
        )
        .into());
    }
    if !local && !crate::gucs::session_tenant() {
        return Err(FloeError::WrongState {
            message: "a session-wide tenant (local => false) is refused".into(),
            hint: "Call floe.set_tenant('<tenant uuid>') in each transaction: behind a transaction pooler a session-wide tenant would reach the next client. On dedicated connections, a superuser can allow it: floe.session_tenant = on.".into(),
        }
        .into());
    }
    set_context(local, &to_uuid(tenant).to_string())?;
    Ok(())
}

/// `floe.set_tenant_token(token)`: the tenant context from a token the auth service signed
/// (see `token.rs`); refused (42501, nothing set) unless it verifies against this database's
/// keys. Returns the tenant.
#[pg_extern(volatile)]
fn set_tenant_token(token: Option<&str>) -> Result<Option<pgrx::Uuid>, ErrorReport> {
    let tenant = tokens::verify(token.unwrap_or(""))?;
    set_context(true, &tenant.to_string())?;
    tokens::record_verified(tenant);
    Ok(Some(to_pg(tenant)))
}

/// `floe.mint_tenant_token(tenant, valid_for)`: a token for `tenant`, signed with the current
/// key (for an auth service that mints through the database; not executable by PUBLIC).
#[pg_extern(volatile)]
fn mint_tenant_token(
    tenant: Option<pgrx::Uuid>,
    valid_for: default!(Option<Interval>, "'5 minutes'"),
) -> Result<Option<String>, ErrorReport> {
    let tenant = required(tenant, "tenant")?;
    let valid_for = required(valid_for, "valid_for")?;
    Ok(Some(tokens::mint(
        to_uuid(tenant),
        tokens::seconds_of(&valid_for),
    )?))
}

/// `floe.rotate_tenant_token_key(grace)`: a new signing key; tokens of the previous one are
/// accepted for `grace` more. The new key's id.
#[pg_extern(volatile)]
fn rotate_tenant_token_key(
    grace: default!(Option<Interval>, "'1 hour'"),
) -> Result<Option<i32>, ErrorReport> {
    let grace = required(grace, "grace")?;
    Ok(Some(tokens::rotate(grace)?))
}

/// Statement trigger on floe.tenant_token_roles: every backend reloads the registry.
#[pg_trigger]
fn tenant_token_roles_changed<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByRust>>, std::convert::Infallible> {
    crate::relcache::invalidate_trigger_relation(trigger);
    Ok(None)
}

#[pg_extern(volatile)]
fn clear_tenant(local: default!(Option<bool>, true)) -> Result<(), ErrorReport> {
    let local = required(local, "local")?;
    set_context(local, "")?;
    Ok(())
}

#[pg_extern(stable, parallel_safe)]
fn current_tenant() -> Result<Option<pgrx::Uuid>, ErrorReport> {
    match read_context() {
        Ok(id) => Ok(Some(to_pg(id))),
        // Admin mode without a tenant: NULL, so the tenant policy matches nothing and only
        // the admin policy (for members of floe_tenant_admin) lets rows through.
        Err(
            ContextError::Unset { .. }
            | ContextError::SessionWide { .. }
            | ContextError::TokenRequired { .. },
        ) if admin_active() => Ok(None),
        Err(e) => Err(FloeError::from(e).into()),
    }
}

#[pg_extern(stable, parallel_safe)]
fn tenant_admin_active() -> bool {
    admin_active()
}

/// `floe.current_tenant_or_null()`: the tenant context when one is set in this transaction and
/// valid, NULL otherwise; never an error. For views and policies that also show rows of no
/// tenant (floe's own catalogs), where "no tenant" must hide every tenant's rows, not fail.
#[pg_extern(stable, parallel_safe)]
fn current_tenant_or_null() -> Option<pgrx::Uuid> {
    read_context().ok().map(to_pg)
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

// ---------------------------------------------------------------------------------------
// enable / disable
// ---------------------------------------------------------------------------------------

#[pg_extern(volatile)]
fn enable_tenant_isolation(
    tbl: Option<PgRelation>,
    tenant_column: default!(Option<Name>, "'tenant_id'"),
    force: default!(Option<bool>, true),
    via: default!(Option<Name>, "NULL"),
    guard_updates: default!(Option<bool>, true),
) -> Result<SetOfIterator<'static, String>, ErrorReport> {
    let tbl = required(tbl, "tbl")?;
    crate::citus::refuse_shard(&tbl)?;
    let tenant_column = required(tenant_column, "tenant_column")?;
    let force = required(force, "force")?;
    let guard_updates = required(guard_updates, "guard_updates")?;
    let _scope = ddl_scope();
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

#[pg_extern(volatile)]
fn disable_tenant_isolation(
    tbl: PgRelation,
) -> Result<SetOfIterator<'static, String>, ErrorReport> {
    let _scope = ddl_scope();
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
        // Disabling drops floe's policies whatever their style.
        let style = super::state::policy_style(&tenancy);
        let root_state = rel_state(client, oid, &indexed, oid, style)?;
        let parts = partitions(client, oid, &indexed, style)?;
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

#[pg_extern(volatile, strict)]
fn tenant_apply_partitions(tbl: PgRelation) -> Result<i32, ErrorReport> {
    let oid = tbl.oid();
    drop(tbl);
    Ok(i32::try_from(apply_to_partitions(oid)?).unwrap_or(i32::MAX))
}

// ---------------------------------------------------------------------------------------
// coverage
// ---------------------------------------------------------------------------------------

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

extension_sql_file!(
    "../sql/tenant.sql",
    name = "tenant_sql",
    requires = [tenant_apply_partitions, tenant_token_roles_changed]
);

extension_sql!(
    r#"
COMMENT ON FUNCTION floe.set_tenant(uuid, boolean) IS
  'Sets the tenant context (the variable named by floe.tenant_setting) with SET LOCAL; local => false (SET, for the session) is refused unless floe.session_tenant is on.';
COMMENT ON FUNCTION floe.clear_tenant(boolean) IS
  'Clears the tenant context: every tenant-isolated statement fails with 42501 until a tenant is set.';
COMMENT ON FUNCTION floe.current_tenant() IS
  'The current tenant (uuid); raises 42501 when none is set. NULL only in cross-tenant admin mode.';
COMMENT ON FUNCTION floe.current_tenant_or_null() IS
  'The current tenant (uuid) when one is set in this transaction, else NULL; never raises (for views and policies over rows that may have no tenant).';
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
COMMENT ON FUNCTION floe.set_tenant_token(text) IS
  'floe tenant tokens: sets the tenant context (SET LOCAL) from a token the auth service minted (floe.mint_tenant_token or the README''s format); refuses with 42501 and changes nothing for an empty, truncated, non-base64, forged, expired, other-database or rotated-out token. Returns the tenant.';
COMMENT ON FUNCTION floe.mint_tenant_token(uuid, interval) IS
  'floe tenant tokens: a token for tenant, signed with the database''s current key, valid for valid_for (1 second to 24 hours). For the auth service''s role; not executable by PUBLIC.';
COMMENT ON FUNCTION floe.rotate_tenant_token_key(interval) IS
  'floe tenant tokens: makes a new signing key (32 bytes of the server''s strong random source); tokens signed with the previous key stay valid for grace. Returns the new key''s id. Owner only.';
COMMENT ON FUNCTION floe.tenant_token_roles_changed() IS
  'floe tenant tokens: statement trigger of floe.tenant_token_roles; every backend reloads the registry.';
REVOKE EXECUTE ON FUNCTION floe.mint_tenant_token(uuid, interval) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION floe.rotate_tenant_token_key(interval) FROM PUBLIC;
"#,
    name = "tenant_comments",
    requires = [
        set_tenant_token,
        mint_tenant_token,
        rotate_tenant_token_key,
        set_tenant,
        clear_tenant,
        current_tenant,
        current_tenant_or_null,
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
