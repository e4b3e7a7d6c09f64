//! Isolating tables: running the DDL `plan.rs` decides from the state `state.rs` reads, the
//! registry `floe.tenant_tables`, new and retired partitions of an isolated tree, and the
//! scope that marks floe's own tenant DDL (machinery).

use super::plan::{self, Options, Step, Tenancy};
use super::state::{
    free_index_name, partitions, policy_style, qi, registration, rel_info, rel_state,
    require_owner, resolve_tenancy,
};
use crate::error::FloeError;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use std::cell::Cell;

thread_local! {
    /// Set while floe itself runs tenant DDL, so the DDL event trigger does not re-enter.
    pub(super) static IN_DDL: Cell<bool> = const { Cell::new(false) };
}

/// Marks floe's own tenant DDL until the returned value is dropped (reset on unwind too).
pub(super) fn ddl_scope() -> crate::flag::Raised {
    crate::flag::raise(&IN_DDL)
}

/// Runs `f` as floe's own DDL: the DDL event trigger leaves the tables it touches alone
/// (the partition module lifts FORCE ROW LEVEL SECURITY on a default partition for the
/// moment it moves rows, and restores it before anyone else can see the table).
pub fn as_floe_ddl<T>(f: impl FnOnce() -> T) -> T {
    crate::flag::raised(&IN_DDL, f)
}

pub(super) fn run_steps(steps: &[Step], tenancy: &Tenancy) -> Result<Vec<String>, FloeError> {
    let mut done = Vec::with_capacity(steps.len());
    let style = policy_style(tenancy);
    crate::citus::with_unsafe_triggers(|| {
        for step in steps {
            let sql = plan::render(step, tenancy, style, &qi);
            Spi::run(&sql)?;
            done.push(sql);
        }
        Ok(())
    })?;
    Ok(done)
}

pub(super) fn enable(
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
        let style = policy_style(&tenancy);
        let root_state = rel_state(client, oid, &column, oid, style)?;
        let parts = partitions(client, oid, &column, style)?;
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

/// The registration of the nearest isolated member of a partition tree (the relation itself
/// included), as `floe.tenant_tables` holds it.
struct Isolated {
    root: pg_sys::Oid,
    column: String,
    via: Option<String>,
    force: bool,
    guard_updates: bool,
}

fn nearest_isolated(
    client: &SpiClient<'_>,
    oid: pg_sys::Oid,
) -> Result<Option<Isolated>, FloeError> {
    let row = client
        .select(
            "SELECT t.relid::oid, t.tenant_column::text, t.via_column::text, t.force, t.guard_updates
               FROM pg_catalog.pg_partition_ancestors($1::regclass) WITH ORDINALITY AS a(relid, ord)
               JOIN floe.tenant_tables t ON t.relid = a.relid
              ORDER BY a.ord LIMIT 1",
            Some(1),
            &[oid.into()],
        )?
        .first();
    if row.is_empty() {
        return Ok(None);
    }
    let Some(root) = row.get::<pg_sys::Oid>(1)? else {
        return Ok(None);
    };
    Ok(Some(Isolated {
        root,
        column: row.get::<String>(2)?.unwrap_or_default(),
        via: row.get::<String>(3)?,
        force: row.get::<bool>(4)?.unwrap_or(true),
        guard_updates: row.get::<bool>(5)?.unwrap_or(true),
    }))
}

/// A child retired from a tenant-isolated partition set (detached, or detached and moved to
/// an archive schema) is a table of its own now: it gets the isolation of the tree it left.
/// Its policies stay from when it was a partition, but the guard triggers (clones of the
/// parent's) leave with the detach; `enable` adds what is missing and registers the table.
/// `parent` is the set's parent (the tree's root or a member of it). Returns whether the tree
/// was isolated.
pub fn isolate_retired(child: pg_sys::Oid, parent: pg_sys::Oid) -> Result<bool, FloeError> {
    let Some(reg) = Spi::connect(|client| nearest_isolated(client, parent))? else {
        return Ok(false);
    };
    let _scope = ddl_scope();
    enable(
        child,
        &reg.column,
        reg.force,
        reg.via.as_deref(),
        reg.guard_updates,
    )?;
    Ok(true)
}

/// Isolates the partitions of a tenant-isolated tree that are not isolated yet (created or
/// attached after `enable_tenant_isolation`). `oid` may be any member of the tree. Called by
/// the DDL event trigger and by the partition module; returns the number of statements run.
pub fn apply_to_partitions(oid: pg_sys::Oid) -> Result<usize, FloeError> {
    if IN_DDL.get() {
        return Ok(0);
    }
    let _scope = ddl_scope();
    let found = Spi::connect(|client| {
        let Some(reg) = nearest_isolated(client, oid)? else {
            return Ok::<_, FloeError>(None);
        };
        let tenancy = match reg.via {
            Some(fk) => {
                let info = rel_info(client, reg.root)?;
                resolve_tenancy(client, reg.root, &info.name, &reg.column, Some(&fk))?
            }
            None => Tenancy::Column { column: reg.column },
        };
        let style = policy_style(&tenancy);
        let parts = partitions(client, reg.root, tenancy.indexed_column(), style)?;
        Ok(Some((tenancy, parts, reg.force)))
    })?;
    let Some((tenancy, parts, force)) = found else {
        return Ok(0);
    };
    let steps = plan::new_partition_steps(&parts, force);
    Ok(run_steps(&steps, &tenancy)?.len())
}
