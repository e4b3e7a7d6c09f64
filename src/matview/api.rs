//! The matview module's SQL functions and triggers. Thin glue: arguments are checked here and
//! each function calls into `changes.rs` (the change trigger), `register.rs`, `refresh.rs` or
//! `views.rs`; shared memory and the transaction callbacks are `shmem.rs`, the decisions
//! `plan.rs`, `dirty.rs` and `checks.rs`.
//!
//! Rights: a role registers, refreshes and sees only materialized views it owns (has the
//! owner's privileges of). The registry tables are written as the extension's owner
//! (`privileged::run`) after that check; REFRESH itself runs as the caller (Postgres runs the
//! view's query as the view's owner in any case). The change trigger runs in every writer's
//! session; with shared memory it touches no table at all.

use super::changes::record_change;
use super::checks;
use super::plan;
use super::refresh;
use super::register::{self, owned_matview, register};
use super::views::{dirty_map, load_views, state_of};
use crate::error::ErrorReport;
use crate::relcache;
use crate::sqltypes::{interval, ts, wall_clock};
use pgrx::prelude::*;
use pgrx::PgRelation;

// ---------------------------------------------------------------------------------------
// The change trigger
// ---------------------------------------------------------------------------------------

/// Statement trigger on every table a change-tracked view reads: marks the views dirty.
/// With shared memory, the marks are published when the transaction commits (no table is
/// written); without, one row per view and transaction goes to floe.matview_changes.
#[pg_trigger]
fn matview_changed<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByRust>>, std::convert::Infallible> {
    let relid = trigger
        .relation()
        .map(|r| r.oid().to_u32())
        .unwrap_or_default();
    if let Err(e) = record_change(relid) {
        e.raise();
    }
    Ok(None)
}

/// Statement trigger on floe.matviews and floe.matview_sources: every backend reloads its
/// map of tables to views.
#[pg_trigger]
fn matview_registry_changed<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByRust>>, std::convert::Infallible> {
    relcache::invalidate_trigger_relation(trigger);
    Ok(None)
}

// ---------------------------------------------------------------------------------------
// Registration
// ---------------------------------------------------------------------------------------

#[allow(clippy::too_many_arguments)]
#[pg_extern(volatile)]
fn register_matview(
    view: Option<PgRelation>,
    refresh_every: default!(Option<Interval>, "NULL"),
    on_change: default!(Option<bool>, true),
    min_interval: default!(Option<Interval>, "'1 minute'"),
    max_staleness: default!(Option<Interval>, "NULL"),
    concurrently: default!(Option<bool>, true),
) -> Result<i32, ErrorReport> {
    Ok(register(
        view,
        refresh_every,
        on_change,
        min_interval,
        max_staleness,
        concurrently,
    )?)
}

#[pg_extern(volatile)]
fn unregister_matview(
    view: Option<PgRelation>,
    if_exists: default!(Option<bool>, false),
) -> Result<bool, ErrorReport> {
    Ok(register::unregister(view, if_exists)?)
}

// ---------------------------------------------------------------------------------------
// Refreshing
// ---------------------------------------------------------------------------------------

#[pg_extern(volatile)]
fn refresh(
    view: Option<PgRelation>,
    force: default!(Option<bool>, false),
) -> Result<bool, ErrorReport> {
    let target = owned_matview(view, "view")?;
    let force = force.unwrap_or(false);
    Ok(refresh::manual(&target, force)?)
}

#[allow(clippy::type_complexity)]
#[pg_extern(volatile)]
fn refresh_due() -> Result<
    TableIterator<
        'static,
        (
            name!(view, String),
            name!(reason, String),
            name!(succeeded, bool),
            name!(duration, Interval),
            name!(error, Option<String>),
        ),
    >,
    ErrorReport,
> {
    Ok(TableIterator::new(refresh::due()?))
}

// ---------------------------------------------------------------------------------------
// Status
// ---------------------------------------------------------------------------------------

#[allow(clippy::type_complexity)]
#[pg_extern(volatile)]
fn matview_status() -> Result<
    TableIterator<
        'static,
        (
            name!(view, String),
            name!(on_change, bool),
            name!(refresh_every, Option<Interval>),
            name!(min_interval, Interval),
            name!(max_staleness, Option<Interval>),
            name!(concurrent, bool),
            name!(dirty_since, Option<TimestampWithTimeZone>),
            name!(staleness, Interval),
            name!(last_start, Option<TimestampWithTimeZone>),
            name!(last_duration, Option<Interval>),
            name!(last_result, Option<String>),
            name!(last_error, Option<String>),
            name!(failures, i32),
            name!(running, bool),
            name!(next_due, Option<TimestampWithTimeZone>),
            name!(next_reason, Option<String>),
            name!(alarm, Option<String>),
        ),
    >,
    ErrorReport,
> {
    let views = load_views(None)?;
    let dirty = dirty_map(&views)?;
    let now = wall_clock();
    let rows: Vec<_> = views
        .into_iter()
        .map(|v| {
            let state = state_of(&v, dirty.get(&v.oid).copied().flatten());
            let due = plan::next_due(&v.policy, &state);
            (
                v.name,
                v.policy.on_change,
                v.policy.refresh_every.map(interval),
                interval(v.policy.min_interval),
                v.policy.max_staleness.map(interval),
                v.concurrently,
                plan::stale_since(&v.policy, &state)
                    .filter(|_| v.policy.on_change)
                    .map(ts),
                interval(plan::staleness(&v.policy, &state, now)),
                v.last_start.map(ts),
                v.last_duration.map(interval),
                v.last_result,
                v.last_error,
                v.failures as i32,
                v.running,
                due.map(|(at, _)| ts(at.max(now))),
                due.map(|(_, r)| r.as_str().to_string()),
                checks::alarm(&v.policy, &state, now),
            )
        })
        .collect();
    Ok(TableIterator::new(rows))
}

extension_sql_file!(
    "../sql/matview.sql",
    name = "matview_sql",
    requires = ["scheduler_sql", matview_changed]
);

extension_sql!(
    r#"
CREATE TRIGGER matview_registry_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON floe.matviews
    FOR EACH STATEMENT EXECUTE FUNCTION floe.matview_registry_changed();
CREATE TRIGGER matview_registry_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON floe.matview_sources
    FOR EACH STATEMENT EXECUTE FUNCTION floe.matview_registry_changed();
COMMENT ON FUNCTION floe.matview_registry_changed() IS
  'floe matview: trigger on floe.matviews and floe.matview_sources; makes every backend reload its map of tables to views.';
COMMENT ON FUNCTION floe.matview_changed() IS
  'floe matview: statement trigger on the tables registered views read; marks those views dirty when the transaction commits (shared memory; without preload, one floe.matview_changes row per view and transaction).';
COMMENT ON FUNCTION floe.register_matview(regclass, interval, boolean, interval, interval, boolean) IS
  'floe matview: registers (or re-registers with new settings) a materialized view you own. on_change: refresh after writes to the tables it reads (found through views; statement triggers, debounced by min_interval); refresh_every: also refresh on this period unless known clean; max_staleness: refresh once it lags this long, whatever min_interval says; concurrently: REFRESH CONCURRENTLY (needs a unique index) so readers never wait. Returns the number of tables watched.';
COMMENT ON FUNCTION floe.unregister_matview(regclass, boolean) IS
  'floe matview: stops refreshing a view and removes the change triggers no other view needs. True when it was registered.';
COMMENT ON FUNCTION floe.refresh(regclass, boolean) IS
  'floe matview: refreshes a registered view now, waiting for a refresh of it running elsewhere; skips a change-tracked view that is known clean unless force => true. True when it refreshed.';
COMMENT ON FUNCTION floe.refresh_due() IS
  'floe matview: refreshes, in dependency order, every registered view you own that is due (dirty past min_interval, due by refresh_every, or beyond max_staleness), each in a subtransaction: one failing view is recorded, backs off, and does not stop the others. The built-in job floe.refresh_due runs it every 10 seconds.';
COMMENT ON FUNCTION floe.matview_status() IS
  'floe matview: one row per registered view you own: policy, dirty since, staleness, last refresh, failures, whether a refresh runs now, the next refresh and why, and an alarm.';
CREATE VIEW floe.matview_status AS SELECT * FROM floe.matview_status();
COMMENT ON VIEW floe.matview_status IS
  'floe matview: one row per registered view you own (see floe.matview_status()).';
GRANT SELECT ON floe.matview_status TO PUBLIC;
"#,
    name = "matview_objects",
    requires = [
        "matview_sql",
        matview_registry_changed,
        register_matview,
        unregister_matview,
        refresh,
        refresh_due,
        matview_status
    ],
);
