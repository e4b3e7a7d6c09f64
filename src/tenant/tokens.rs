//! Signed tenant tokens in the database: the keys (`floe.tenant_token_keys`, readable by the
//! extension's owner only), minting, rotation, the roles that must use tokens
//! (`floe.tenant_token_roles`), and the record of the tenant a token verified in this
//! transaction, which the context check compares with (`session.rs`). The format and the
//! verification rules are `token.rs`.

use super::token::{self, Key, Refusal};
use crate::error::{tenant_denied, tenant_key, FloeError};
use crate::privileged;
use pgrx::prelude::*;
use std::cell::{Cell, RefCell};
use uuid::Uuid;

thread_local! {
    /// The tenant a token verified, and the local transaction it was verified in.
    static VERIFIED: Cell<Option<(u32, u128)>> = const { Cell::new(None) };
    /// The roles registered in floe.tenant_token_roles, and the relcache generation they were
    /// loaded under.
    static ROLES: RefCell<Option<(u64, Vec<pg_sys::Oid>)>> = const { RefCell::new(None) };
}

const KEYS: &str = "
SELECT k.id, k.key, (extract(epoch FROM k.retire_at))::int8
  FROM floe.tenant_token_keys k
 WHERE k.retire_at IS NULL OR k.retire_at > pg_catalog.now()";

const CURRENT_KEY: &str = "
SELECT k.id, k.key FROM floe.tenant_token_keys k WHERE k.retire_at IS NULL ORDER BY k.id DESC LIMIT 1";

const ROTATE: &str = "
WITH old AS (
    UPDATE floe.tenant_token_keys
       SET retire_at = pg_catalog.now() + pg_catalog.make_interval(secs => $2)
     WHERE retire_at IS NULL RETURNING id
), gone AS (
    DELETE FROM floe.tenant_token_keys WHERE retire_at <= pg_catalog.now()
)
INSERT INTO floe.tenant_token_keys (id, key)
SELECT coalesce((SELECT pg_catalog.max(id) FROM floe.tenant_token_keys), 0) + 1, $1
RETURNING id";

const TOKEN_ROLES: &str = "SELECT r.role::oid FROM floe.tenant_token_roles r";
const REGISTRY: &str = "SELECT pg_catalog.to_regclass('floe.tenant_token_roles')::oid";

fn now_secs() -> i64 {
    crate::sqltypes::wall_clock() / crate::sqltypes::SECOND
}

fn key_of(id: Option<i32>, bytes: Option<Vec<u8>>, until: Option<i64>) -> Option<Key> {
    let id = u32::try_from(id?).ok()?;
    let bytes: [u8; 32] = bytes?.try_into().ok()?;
    Some(Key {
        id,
        bytes,
        accepted_until: until,
    })
}

fn refused(r: Refusal) -> FloeError {
    tenant_denied(
        tenant_key::BAD_TOKEN,
        r.to_string(),
        None,
        "Get a fresh token from the auth service (floe.mint_tenant_token() or the format in the README) and pass it to floe.set_tenant_token() in this transaction; nothing was changed.".into(),
    )
}

/// The name of this database (what a token's MAC binds), without a query.
fn database_name() -> String {
    // SAFETY: the catalog lookup of this backend's own database; a palloc'd copy.
    unsafe {
        let name = pg_sys::get_database_name(pg_sys::MyDatabaseId);
        if name.is_null() {
            return String::new();
        }
        std::ffi::CStr::from_ptr(name)
            .to_string_lossy()
            .into_owned()
    }
}

/// Verifies `text` against this database's keys; the tenant it names.
pub(super) fn verify(text: &str) -> Result<Uuid, FloeError> {
    let keys = privileged::run(|s| {
        let mut keys = Vec::new();
        for row in s.run(KEYS, &[])? {
            keys.extend(key_of(row.get(1)?, row.get(2)?, row.get(3)?));
        }
        Ok(keys)
    })?;
    token::verify(text, &database_name(), &keys, now_secs()).map_err(refused)
}

/// Records that a token verified `tenant` in the current transaction.
pub(super) fn record_verified(tenant: Uuid) {
    VERIFIED.set(Some((
        crate::compat::local_transaction_id(),
        tenant.as_u128(),
    )));
}

/// Whether a token verified `tenant` in the current transaction.
pub(super) fn verified_now(tenant: Uuid) -> bool {
    VERIFIED.get() == Some((crate::compat::local_transaction_id(), tenant.as_u128()))
}

/// Whether the current user or the session user is registered (directly or through a role
/// it is a member of; superuser alone does not count) as having to use tokens. The registry
/// is cached per backend and reloaded after it changes (`crate::relcache`).
pub(super) fn required() -> Result<bool, FloeError> {
    // The common case, every statement of a platform without token roles: no allocation.
    let generation = crate::relcache::generation();
    let none = ROLES.with_borrow(|c| matches!(c, Some((g, r)) if *g == generation && r.is_empty()));
    if none {
        return Ok(false);
    }
    let roles = registered_roles()?;
    if roles.is_empty() {
        return Ok(false);
    }
    // SAFETY: reads of this backend's user ids and role memberships.
    Ok(unsafe {
        let (user, session) = (pg_sys::GetUserId(), pg_sys::GetSessionUserId());
        roles.iter().any(|&role| {
            pg_sys::is_member_of_role_nosuper(user, role)
                || pg_sys::is_member_of_role_nosuper(session, role)
        })
    })
}

fn registered_roles() -> Result<Vec<pg_sys::Oid>, FloeError> {
    let generation = crate::relcache::generation();
    if let Some((g, roles)) = ROLES.with_borrow(|c| c.clone()) {
        if g == generation {
            return Ok(roles);
        }
    }
    let (table, roles) = Spi::connect(|client| {
        // Absent while ALTER EXTENSION floe UPDATE from 0.8.0 runs: no role registered yet.
        let table = client
            .select(REGISTRY, None, &[])?
            .first()
            .get::<pg_sys::Oid>(1)?;
        let mut roles = Vec::new();
        if table.is_some() {
            for row in client.select(TOKEN_ROLES, None, &[])? {
                roles.extend(row.get::<pg_sys::Oid>(1)?);
            }
        }
        Ok::<_, FloeError>((table, roles))
    })?;
    if let Some(table) = table {
        crate::relcache::watch(table);
        ROLES.with_borrow_mut(|c| *c = Some((generation, roles.clone())));
    }
    Ok(roles)
}

/// Mints a token for `tenant` valid for `seconds` with the current key.
pub(super) fn mint(tenant: Uuid, seconds: i64) -> Result<String, FloeError> {
    if !(1..=token::MAX_LIFETIME_SECS).contains(&seconds) {
        return Err(crate::error::invalid(
            "valid_for",
            format!("{seconds} s"),
            "between 1 second and 24 hours",
        ));
    }
    let key = privileged::run(|s| {
        let row = s.run(CURRENT_KEY, &[])?;
        if row.is_empty() {
            return Ok(None);
        }
        let row = row.first();
        Ok(key_of(row.get(1)?, row.get(2)?, None))
    })?;
    // The first mint makes the database's first key (none is made at install, so that a
    // restore's copy of the keys meets an empty table).
    let key = match key {
        Some(k) => k,
        None => {
            rotate_secs(0)?;
            return mint(tenant, seconds);
        }
    };
    Ok(token::mint(
        &key,
        &database_name(),
        tenant,
        now_secs() + seconds,
    ))
}

/// An interval argument in whole seconds (months count 30 days, as Postgres's own
/// `extract(epoch ...)` does), saturating.
pub(super) fn seconds_of(i: &pgrx::datum::Interval) -> i64 {
    let secs = i.as_micros() / i128::from(crate::sqltypes::SECOND);
    secs.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// A new current key (32 bytes from the server's strong random source); the previous one
/// stays accepted for `grace`, and keys past their grace are deleted. The new key's id.
pub(super) fn rotate(grace: pgrx::datum::Interval) -> Result<i32, FloeError> {
    let secs = seconds_of(&grace);
    if secs < 0 {
        return Err(crate::error::invalid(
            "grace",
            format!("{secs} s"),
            "a grace period of zero or more",
        ));
    }
    rotate_secs(secs)
}

fn rotate_secs(grace_secs: i64) -> Result<i32, FloeError> {
    let mut bytes = [0u8; 32];
    // SAFETY: fills the buffer it is given.
    let ok = unsafe { pg_sys::pg_strong_random(bytes.as_mut_ptr().cast(), bytes.len()) };
    if !ok {
        return Err(FloeError::Internal {
            message: "the server's strong random source failed".into(),
        });
    }
    let id = privileged::run(|s| {
        Ok(s.run(ROTATE, &[bytes.to_vec().into(), grace_secs.into()])?
            .first()
            .get::<i32>(1)?)
    })?;
    id.ok_or_else(|| FloeError::Internal {
        message: "rotating the tenant token key returned no id".into(),
    })
}
