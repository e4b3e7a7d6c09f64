//! Every `floe.*` setting lives here: private statics, one [`init`], typed accessors.
//!
//! Modules never touch the statics; they call the accessors, so a setting's name, default,
//! range and context are stated once. `init` also reserves the `floe.` prefix, so a typo such
//! as `SET floe.tenant_settng = ...` is an error instead of a silently ignored placeholder.
//!
//! Each module adds its settings here as it lands (and the README's settings table with them).

use pgrx::{pg_sys, GucContext, GucFlags, GucRegistry, GucSetting};
use std::ffi::{CStr, CString};

/// The prefix every floe setting uses.
pub const PREFIX: &std::ffi::CStr = c"floe";

static TENANT_SETTING: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"app.current_tenant_id"));
static TENANT_ADMIN: GucSetting<bool> = GucSetting::<bool>::new(false);
static SESSION_TENANT: GucSetting<bool> = GucSetting::<bool>::new(false);
static CITUS_TENANT_ROUTING: GucSetting<bool> = GucSetting::<bool>::new(true);
static JOB_HISTORY_RETENTION: GucSetting<i32> = GucSetting::<i32>::new(7 * 24 * 3600);
static MAX_WORKERS: GucSetting<i32> = GucSetting::<i32>::new(8);
static DATABASES: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c""));
static PARTITION_LOCK_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(1000);
static PARTITION_LOCK_RETRIES: GucSetting<i32> = GucSetting::<i32>::new(5);
static PARTITION_DRAIN_BATCH: GucSetting<i32> = GucSetting::<i32>::new(10_000);
static QUEUE_METRICS_RETENTION: GucSetting<i32> = GucSetting::<i32>::new(7 * 24 * 3600);
static MATVIEW_HISTORY_RETENTION: GucSetting<i32> = GucSetting::<i32>::new(7 * 24 * 3600);
static CONTENT_GC_GRACE: GucSetting<i32> = GucSetting::<i32>::new(24 * 3600);
static CONTENT_TIER_BATCH: GucSetting<i32> = GucSetting::<i32>::new(1000);
static ACTOR: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static HEALTH_IDLE_IN_TRANSACTION: GucSetting<i32> = GucSetting::<i32>::new(300);
static HEALTH_XMIN_AGE: GucSetting<i32> = GucSetting::<i32>::new(900);
static REFERENCE_CACHE_SIZE: GucSetting<i32> = GucSetting::<i32>::new(10_000);
static REFERENCE_CACHE_TTL: GucSetting<i32> = GucSetting::<i32>::new(60);
static REFERENCE_SCAN_INTERVAL: GucSetting<i32> = GucSetting::<i32>::new(3600);

/// Registers every floe setting. Called once from `_PG_init`.
pub fn init() {
    GucRegistry::define_string_guc(
        c"floe.tenant_setting",
        c"Name of the custom variable that holds the current tenant (a uuid).",
        c"floe.set_tenant() sets it with SET LOCAL and floe.current_tenant() reads it. Keep the \
default app.current_tenant_id for applications that already set that variable.",
        &TENANT_SETTING,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"floe.tenant_admin",
        c"Cross-tenant admin mode for members of role floe_tenant_admin.",
        c"When on, and only for members of floe_tenant_admin, tenant-isolated tables show and \
accept every tenant's rows. Per transaction: only a value set in the current transaction \
(SET LOCAL) counts; a session-wide SET or ALTER ROLE ... SET is ignored.",
        &TENANT_ADMIN,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"floe.session_tenant",
        c"Accept a tenant context set for the whole session.",
        c"Off (the default): only a tenant set in the current transaction counts (floe.set_tenant(), \
SET LOCAL); one left from an earlier transaction, ALTER ROLE ... SET or the connection's \
options is refused, since behind a transaction pooler it would reach other clients. On: \
for dedicated connections only. Superuser-only.",
        &SESSION_TENANT,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"floe.citus_tenant_routing",
        c"On Citus, pin queries on tenant-isolated tables to the current tenant.",
        c"On (the default): floe's planner hook adds tenant_id = '<current tenant>' to the row \
security quals of every tenant-isolated table a query reads, so that Citus routes it to the \
tenant's one shard and the coordinator, not the workers alone, judges the tenant. Off: such \
queries fan out to every shard and the workers' policies filter (for comparison). \
Superuser-only.",
        &CITUS_TENANT_ROUTING,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"floe.job_history_retention",
        c"How long finished job runs stay in floe.job_runs.",
        c"The scheduler deletes older runs as it goes (pg_cron never prunes its history).",
        &JOB_HISTORY_RETENTION,
        60,
        i32::MAX,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"floe.queue_metrics_retention",
        c"How long per-minute queue metrics stay in floe.queue_metrics.",
        c"floe.queue_maintenance() deletes older rows each minute.",
        &QUEUE_METRICS_RETENTION,
        60,
        i32::MAX,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"floe.matview_history_retention",
        c"How long refreshes stay in floe.matview_refreshes.",
        c"floe.refresh_due() deletes older rows (the built-in job runs it every 10 seconds).",
        &MATVIEW_HISTORY_RETENTION,
        60,
        i32::MAX,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"floe.content_gc_grace",
        c"How long a content body stays after its last reference is released.",
        c"floe.content_gc() (run by floe.content_maintenance every minute) removes bodies that \
have had no reference for this long; a put within the grace period revives the body.",
        &CONTENT_GC_GRACE,
        0,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"floe.content_tier_batch",
        c"Most content bodies one floe.content_maintenance() run recompresses (into another tier, or onto a newer dictionary).",
        c"Each body is recompressed, verified by a round trip, and swapped in the job's \
transaction; a smaller batch keeps the job short.",
        &CONTENT_TIER_BATCH,
        1,
        1_000_000,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"floe.health_idle_in_transaction",
        c"How long a session may sit idle in a transaction before floe.health() reports it.",
        c"server.idle_in_transaction warns from this age and is critical from 12 times it.",
        &HEALTH_IDLE_IN_TRANSACTION,
        1,
        i32::MAX,
        GucContext::Userset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"floe.health_xmin_age",
        c"How old the oldest snapshot may be before floe.health() reports it.",
        c"server.xmin_horizon warns when a transaction holding back VACUUM began longer ago than \
this, and is critical from 16 times it.",
        &HEALTH_XMIN_AGE,
        1,
        i32::MAX,
        GucContext::Userset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"floe.max_workers",
        c"Most floe scheduler workers (one per database) the launcher starts.",
        c"Databases beyond the cap get no scheduler; the launcher logs which. Each worker also takes a max_worker_processes slot.",
        &MAX_WORKERS,
        0,
        1000,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"floe.databases",
        c"Comma-separated databases that get a floe scheduler; empty means every database with the extension.",
        c"",
        &DATABASES,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"floe.partition_lock_timeout",
        c"lock_timeout of each DDL step of partition maintenance.",
        c"A step that cannot get its lock in time gives up, lets the writers queued behind it \
through, and retries (floe.partition_lock_retries); so no writer waits longer than this.",
        &PARTITION_LOCK_TIMEOUT,
        1,
        600_000,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"floe.partition_lock_retries",
        c"How many times partition maintenance retries a DDL step that hit its lock timeout.",
        c"After the last retry the set is left for the next maintenance run and its error is recorded in floe.partition_sets.",
        &PARTITION_LOCK_RETRIES,
        0,
        100,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"floe.partition_drain_batch",
        c"Rows moved per statement when partition maintenance drains a default partition.",
        c"",
        &PARTITION_DRAIN_BATCH,
        1,
        10_000_000,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"floe.actor",
        c"Who the application acts for (a user id, an email): stamped on audit entries as app_actor.",
        c"Set it per transaction (SET LOCAL floe.actor = '...') from a connection pool; the \
audit log records it beside current_user.",
        &ACTOR,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"floe.reference_cache_size",
        c"Most keys each session remembers as present in their target (enforce-mode references).",
        c"A key found in its target is not asked again for floe.reference_cache_ttl; least \
recently used keys leave first. 0 asks the target for every key of every statement. \
Superuser-only: a writer must not widen its own window.",
        &REFERENCE_CACHE_SIZE,
        0,
        10_000_000,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"floe.reference_cache_ttl",
        c"How long a session trusts that a key it found in its target is still there.",
        c"The window in which a target row deleted remotely is still accepted by the enforce \
check (the scan finds what got through). 0 disables the cache. Superuser-only: a writer \
must not widen its own window.",
        &REFERENCE_CACHE_TTL,
        0,
        86_400,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"floe.reference_scan_interval",
        c"How often the built-in job floe.reference_scan starts a new scan of each declared reference.",
        c"A pass is done in pages over several runs (each run bounded in time); health's \
references.scan warns when a reference's last full pass is older than twice this.",
        &REFERENCE_SCAN_INTERVAL,
        60,
        i32::MAX,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    reserve_prefix();
}

/// `floe.reference_cache_size`.
pub fn reference_cache_size() -> usize {
    usize::try_from(REFERENCE_CACHE_SIZE.get()).unwrap_or(0)
}

/// `floe.reference_cache_ttl`, in seconds.
pub fn reference_cache_ttl_secs() -> i32 {
    REFERENCE_CACHE_TTL.get()
}

/// `floe.reference_scan_interval`, in seconds.
pub fn reference_scan_interval_secs() -> i32 {
    REFERENCE_SCAN_INTERVAL.get()
}

/// `floe.actor`, when set and not empty.
pub fn actor() -> Option<String> {
    ACTOR
        .get()
        .and_then(|s| s.into_string().ok())
        .filter(|s| !s.is_empty())
}

/// `floe.partition_lock_timeout`, in milliseconds.
pub fn partition_lock_timeout_ms() -> i32 {
    PARTITION_LOCK_TIMEOUT.get()
}

/// `floe.partition_lock_retries`.
pub fn partition_lock_retries() -> i32 {
    PARTITION_LOCK_RETRIES.get()
}

/// `floe.partition_drain_batch`.
pub fn partition_drain_batch() -> i32 {
    PARTITION_DRAIN_BATCH.get()
}

/// `floe.max_workers`.
pub fn health_idle_in_transaction_secs() -> i32 {
    HEALTH_IDLE_IN_TRANSACTION.get()
}

pub fn health_xmin_age_secs() -> i32 {
    HEALTH_XMIN_AGE.get()
}

pub fn max_workers() -> i32 {
    MAX_WORKERS.get()
}

/// `floe.job_history_retention`, in seconds.
pub fn job_history_retention_secs() -> i32 {
    JOB_HISTORY_RETENTION.get()
}

/// `floe.queue_metrics_retention`, in seconds.
pub fn queue_metrics_retention_secs() -> i32 {
    QUEUE_METRICS_RETENTION.get()
}

/// `floe.matview_history_retention`, in seconds.
pub fn matview_history_retention_secs() -> i32 {
    MATVIEW_HISTORY_RETENTION.get()
}

/// `floe.content_gc_grace`, in seconds.
pub fn content_gc_grace_secs() -> i32 {
    CONTENT_GC_GRACE.get()
}

/// `floe.content_tier_batch`.
pub fn content_tier_batch() -> i32 {
    CONTENT_TIER_BATCH.get()
}

/// Calls `f` with the name in `floe.tenant_setting`, without copying it.
pub fn with_tenant_setting<R>(f: impl FnOnce(&CStr) -> R) -> R {
    // SAFETY: the GUC machinery owns the string and only replaces it between statements;
    // we read it on the backend's only thread and do not keep the reference.
    let raw = unsafe { *TENANT_SETTING.as_ptr() };
    if raw.is_null() {
        return f(c"");
    }
    f(unsafe { CStr::from_ptr(raw) })
}

/// `floe.tenant_admin` as it counts: on, and set in the current transaction.
pub fn tenant_admin() -> bool {
    TENANT_ADMIN.get() && crate::compat::set_in_this_transaction(c"floe.tenant_admin")
}

/// `floe.tenant_admin` is on, but from outside the current transaction (a session-wide SET,
/// ALTER ROLE ... SET): ignored, and worth saying so in an error.
pub fn tenant_admin_stale() -> bool {
    TENANT_ADMIN.get() && !crate::compat::set_in_this_transaction(c"floe.tenant_admin")
}

/// `floe.citus_tenant_routing`: floe's planner hook pins tenant queries on Citus.
pub fn citus_tenant_routing() -> bool {
    CITUS_TENANT_ROUTING.get()
}

/// `floe.session_tenant`: a tenant context set for the whole session counts too.
pub fn session_tenant() -> bool {
    SESSION_TENANT.get()
}

fn reserve_prefix() {
    // SAFETY: called from _PG_init in the main backend thread with a static C string.
    #[cfg(not(any(feature = "pg13", feature = "pg14")))]
    unsafe {
        pg_sys::MarkGUCPrefixReserved(PREFIX.as_ptr());
    }
    // Before PostgreSQL 15 the closest equivalent only warns about unknown placeholders.
    #[cfg(any(feature = "pg13", feature = "pg14"))]
    unsafe {
        pg_sys::EmitWarningsOnPlaceholders(PREFIX.as_ptr());
    }
}
