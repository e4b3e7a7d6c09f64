//! The tiering and retraining policies: a tenant's effective one (its own row over the
//! global one), setting and resetting them (SPI, as the extension's owner, machinery).

use super::tier::{Policy, Retrain};
use crate::error::FloeError;
use crate::privileged::Session;
use crate::sqltypes::{micros_of, to_pg_uuid as to_pg, to_uuid};
use pgrx::datum::Interval;
use pgrx::Uuid;

const POLICY: &str = "
    SELECT coalesce(t.warm_after, g.warm_after), coalesce(t.cold_after, g.cold_after),
           coalesce(t.archive_after, g.archive_after), coalesce(t.cold_level, g.cold_level),
           coalesce(t.archive_level, g.archive_level), coalesce(t.retrain_every, g.retrain_every),
           coalesce(t.retrain_min_rows, g.retrain_min_rows)
      FROM floe.content_policies g LEFT JOIN floe.content_policies t ON t.tenant = $1
     WHERE g.tenant IS NULL";

/// The effective policy of `tenant` (its own row over the global one).
pub(super) fn policy(
    s: &mut Session<'_, '_>,
    tenant: uuid::Uuid,
) -> Result<(Policy, Retrain), FloeError> {
    let rows = s.run(POLICY, &[to_pg(tenant).into()])?;
    let (mut p, mut r) = (Policy::default(), Retrain::default());
    if rows.is_empty() {
        return Ok((p, r));
    }
    let row = rows.first();
    p.warm_after = micros_of(row.get::<Interval>(1)?).or(p.warm_after);
    p.cold_after = micros_of(row.get::<Interval>(2)?).or(p.cold_after);
    p.archive_after = micros_of(row.get::<Interval>(3)?).or(p.archive_after);
    p.cold_level = row.get::<i32>(4)?.unwrap_or(p.cold_level);
    p.archive_level = row.get::<i32>(5)?.unwrap_or(p.archive_level);
    r.every = micros_of(row.get::<Interval>(6)?).unwrap_or(r.every);
    r.min_rows = row.get::<i32>(7)?.map_or(r.min_rows, i64::from);
    Ok((p, r))
}

const EXTENSION_OWNER_CHECK: &str = "
    SELECT pg_catalog.pg_has_role($1, e.extowner, 'USAGE')
      FROM pg_catalog.pg_extension e WHERE e.extname = 'floe'";
const UPDATE_POLICY: &str = "
    UPDATE floe.content_policies AS p SET
        warm_after = coalesce($2, p.warm_after), cold_after = coalesce($3, p.cold_after),
        archive_after = coalesce($4, p.archive_after), cold_level = coalesce($5, p.cold_level),
        archive_level = coalesce($6, p.archive_level), retrain_every = coalesce($7, p.retrain_every),
        retrain_min_rows = coalesce($8, p.retrain_min_rows)
     WHERE p.tenant IS NOT DISTINCT FROM $1
    RETURNING 1";
/// A tenant's first policy row (the global one always exists: the install script makes it).
const INSERT_POLICY: &str =
    "INSERT INTO floe.content_policies VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
const RESET_POLICY: &str = "DELETE FROM floe.content_policies WHERE tenant = $1 RETURNING 1";

/// Sets the policy of `tenant` (NULL: the global one, for the extension's owner only);
/// arguments left NULL keep their value. The result must be a valid policy.
#[allow(clippy::too_many_arguments)]
pub(super) fn set(
    s: &mut Session<'_, '_>,
    tenant: Option<Uuid>,
    warm_after: Option<Interval>,
    cold_after: Option<Interval>,
    archive_after: Option<Interval>,
    cold_level: Option<i32>,
    archive_level: Option<i32>,
    retrain_every: Option<Interval>,
    retrain_min_rows: Option<i32>,
) -> Result<(), FloeError> {
    if tenant.is_none() {
        let caller = s.caller;
        let ok = s
            .run(EXTENSION_OWNER_CHECK, &[caller.into()])?
            .first()
            .get::<bool>(1)?
            .unwrap_or(false);
        if !ok {
            return Err(FloeError::PermissionDenied {
                    message: "only the owner of extension floe sets the global content policy".into(),
                    detail: None,
                    hint: "Set your tenant's policy: floe.set_content_policy(tenant => floe.current_tenant(), ...).".into(),
                });
        }
    }
    let args = [
        tenant.into(),
        warm_after.into(),
        cold_after.into(),
        archive_after.into(),
        cold_level.into(),
        archive_level.into(),
        retrain_every.into(),
        retrain_min_rows.into(),
    ];
    if s.run(UPDATE_POLICY, &args)?.is_empty() {
        s.run(INSERT_POLICY, &args)?;
    }
    // The result must be a valid policy for the tenant (or every tenant).
    let check: Vec<uuid::Uuid> = match tenant {
        Some(t) => vec![to_uuid(t)],
        None => vec![uuid::Uuid::nil()],
    };
    for t in check {
        let (p, _) = policy(s, t)?;
        p.validate().map_err(|e| FloeError::InvalidArgument {
                argument: "policy",
                value: e.to_string(),
                expected: "warm_after <= cold_after <= archive_after, and zstd levels from -7 to 22 (switch a tier off with a long interval such as '100 years')".into(),
            })?;
    }
    Ok(())
}

/// Removes `tenant`'s own policy; whether it had one.
pub(super) fn reset(s: &mut Session<'_, '_>, tenant: Uuid) -> Result<bool, FloeError> {
    Ok(!s.run(RESET_POLICY, &[tenant.into()])?.is_empty())
}
