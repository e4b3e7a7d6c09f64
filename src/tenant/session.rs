//! The tenant context of this session: reading and caching it, cross-tenant admin mode, and
//! the check that a caller may act for a tenant (`authorize`).

use super::context::{ContextError, ParseCache};
use super::guard::{self, Decision, GuardError, Op};
use super::tokens;
use crate::error::{tenant_denied, tenant_key, FloeError};
use crate::gucs;
use crate::sqltypes::to_uuid;
use pgrx::prelude::*;
use std::cell::RefCell;
use std::ffi::CStr;

thread_local! {
    static CACHE: RefCell<ParseCache> = RefCell::new(ParseCache::default());
}

impl From<ContextError> for FloeError {
    fn from(err: ContextError) -> FloeError {
        match err {
            ContextError::Unset { setting } if gucs::tenant_admin_stale() => {
                tenant_denied(
                    tenant_key::NO_TENANT,
                    format!("no tenant is set: {setting} is empty, and floe.tenant_admin = on was set outside this transaction"),
                    Some("Admin mode is per transaction: a session-wide SET floe.tenant_admin or ALTER ROLE ... SET floe.tenant_admin is ignored."),
                    "Run SET LOCAL floe.tenant_admin = on inside the transaction that needs every tenant (as a member of floe_tenant_admin), or set a tenant with floe.set_tenant().".into(),
                )
            }
            ContextError::Unset { setting } => tenant_denied(
                tenant_key::NO_TENANT,
                format!("no tenant is set: {setting} is empty"),
                None,
                format!(
                    "Call floe.set_tenant('<tenant uuid>') in this transaction (or SET LOCAL {setting} = '<tenant uuid>'). \
                     For cross-tenant maintenance, a member of floe_tenant_admin runs SET LOCAL floe.tenant_admin = on."
                ),
            ),
            ContextError::TokenRequired { setting } => token_required(format!(
                "this role must set its tenant with floe.set_tenant_token(): {setting} set any other way is refused"
            )),
            ContextError::SessionWide { setting } => tenant_denied(
                tenant_key::SESSION_TENANT,
                format!("the tenant context {setting} was set for the session, not in this transaction"),
                Some("A session-wide tenant outlives the transaction that set it; behind a transaction pooler it would reach the next client. It is ignored."),
                "Call floe.set_tenant('<tenant uuid>') in each transaction. On dedicated connections, a superuser can allow session-wide tenants: floe.session_tenant = on.".into(),
            ),
            ContextError::Malformed { setting, .. } => tenant_denied(
                tenant_key::MALFORMED_TENANT,
                format!("tenant context {setting} is not a uuid"),
                None,
                "Set the tenant with floe.set_tenant(), which only accepts a uuid.".into(),
            ),
            ContextError::BadSettingName { name } => FloeError::InvalidArgument {
                argument: "floe.tenant_setting",
                value: name,
                expected: "a custom variable name with a dot, such as app.current_tenant_id".into(),
            },
        }
    }
}

/// The refusal for a role restricted to signed tokens (`floe.tenant_token_roles`).
pub fn token_required(message: String) -> FloeError {
    tenant_denied(
        tenant_key::TOKEN_REQUIRED,
        message,
        Some("The role (or a role it is a member of) is listed in floe.tenant_token_roles: its database credentials alone do not open a tenant."),
        "Pass the token the auth service minted for this tenant to floe.set_tenant_token() in each transaction.".into(),
    )
}

/// The tenant context of this transaction, parsed (and cached while it does not change).
pub(super) fn read_context() -> Result<uuid::Uuid, ContextError> {
    gucs::with_tenant_setting(|name: &CStr| {
        let (raw, set_now) = crate::compat::string_setting(name);
        // SAFETY: NULL or a string owned by the GUC machinery, read before anything can SET it.
        let raw = (!raw.is_null()).then(|| unsafe { CStr::from_ptr(raw) });
        let setting = name.to_str().unwrap_or("");
        let value = raw.map(|r| r.to_str().unwrap_or("\u{fffd}"));
        let id = CACHE.with(|c| c.borrow_mut().parse(setting, value))?;
        let id = super::context::scope(setting, id, set_now, gucs::session_tenant())?;
        // Roles registered for signed tokens: only the tenant a token verified in this
        // transaction counts (checked in the leader; parallel workers get its InitPlans).
        // SAFETY: a read of this backend's parallel worker number.
        let in_worker = unsafe { pg_sys::ParallelWorkerNumber >= 0 };
        if !in_worker && tokens::required().unwrap_or(true) && !tokens::verified_now(id) {
            return Err(ContextError::TokenRequired {
                setting: setting.to_string(),
            });
        }
        Ok(id)
    })
}

/// The tenant of the context, when one is set (and valid); for stamping, never for access.
pub fn context_tenant() -> Option<uuid::Uuid> {
    read_context().ok()
}

/// Whether the current user must set its tenant with a signed token (unknown counts as yes).
pub fn token_role() -> bool {
    tokens::required().unwrap_or(true)
}

/// The tenant context as floe's policies read it, and admin mode: what floe's Citus planner
/// hook pins a query to (`shard_route.rs`).
pub fn policy_context() -> (Result<uuid::Uuid, ContextError>, bool) {
    (read_context(), admin_active())
}

/// Whether this transaction serves one tenant: a tenant is set (in this transaction) and
/// admin mode is off. Functions that hand out every tenant's data (a queue worker's dequeue)
/// refuse then.
pub fn serving_a_tenant() -> bool {
    context_tenant().is_some() && !admin_active()
}

/// Cross-tenant admin mode: `floe.tenant_admin` is on and the current user has the privileges
/// of role floe_tenant_admin. Never implied by superuser or BYPASSRLS alone.
pub(super) fn admin_active() -> bool {
    if !gucs::tenant_admin() {
        return false;
    }
    // SAFETY: catalog lookups by name/oid on the backend thread.
    unsafe {
        let role = pg_sys::get_role_oid(c"floe_tenant_admin".as_ptr(), true);
        role != pg_sys::InvalidOid && pg_sys::has_privs_of_role(pg_sys::GetUserId(), role)
    }
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
            _ => tenant_denied(
                tenant_key::ADMIN_WITHOUT_TENANT,
                format!("{what} needs a tenant"),
                None,
                "In admin mode there is no current tenant: pass tenant => '<uuid>'.".into(),
            ),
        });
    };
    match guard::decide(Op::Insert, None, Some(tenant), &context, admin) {
        Decision::Keep => Ok(tenant),
        Decision::Reject(GuardError::ForeignRow { .. }) => {
            Err(tenant_denied(
                tenant_key::OTHER_TENANT,
                format!("{what} is for another tenant than the one of this transaction"),
                None,
                "Switch to that tenant with floe.set_tenant() first, or leave tenant out to use the current one.".into(),
            ))
        }
        Decision::Reject(GuardError::NoContext(e)) => Err(e.into()),
        other => Err(FloeError::Internal {
            message: format!("unexpected tenant decision {other:?} for {what}"),
        }),
    }
}
