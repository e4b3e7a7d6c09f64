//! The guard trigger's work: reads the row's tenant column and the session's context, asks
//! `guard.rs` what to do, and fills the column or raises the error (machinery: the trigger's
//! tuples, errors that name no tenant).

use super::guard::{self, Decision, GuardError, Op};
use super::session::{admin_active, read_context};
use crate::error::{tenant_denied, tenant_key, FloeError};
use crate::sqltypes::{to_pg_uuid as to_pg, to_uuid};
use pgrx::prelude::*;

pub(super) fn guard_row<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByRust>>, FloeError> {
    // On a Citus worker the trigger fires on a shard (leads_102008): name the table.
    let table = || {
        let schema = trigger.table_schema().unwrap_or_default();
        let name = trigger.table_name().unwrap_or_default();
        crate::citus::table_of_shard(&schema, &name).unwrap_or_else(|| format!("{schema}.{name}"))
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
        // No tenant id in any message: errors reach logs and clients that must not learn
        // another tenant's id.
        Decision::Reject(GuardError::ForeignRow { .. }) => {
            Err(tenant_denied(
                tenant_key::OTHER_TENANT,
                format!(
                    "new row for {} belongs to another tenant than the current one",
                    table()
                ),
                None,
                format!("Leave {column} empty to have it filled from the tenant context, or first switch to that tenant with floe.set_tenant()."),
            ))
        }
        Decision::Reject(GuardError::TenantChanged { .. }) => {
            Err(tenant_denied(
                tenant_key::TENANT_CHANGE,
                format!("the tenant of a row of {} cannot change", table()),
                None,
                "Copy the row to the other tenant and delete the original instead (as floe_tenant_admin, for cross-tenant moves).".into(),
            ))
        }
        Decision::Reject(GuardError::AdminWithoutTenant) => Err(tenant_denied(
            tenant_key::ADMIN_WITHOUT_TENANT,
            format!("admin mode insert into {} without {column}", table()),
            None,
            format!("In admin mode there is no current tenant to fill in: give {column} explicitly."),
        )),
    }
}
