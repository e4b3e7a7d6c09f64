//! Refreshing: one view by hand, every due view in dependency order (each in a
//! subtransaction), the record of each refresh, and the history's and slots' housekeeping
//! (SPI, REFRESH as the caller, the registry as the extension's owner; machinery).

use super::dirty;
use super::plan;
use super::register::{not_registered, Target};
use super::shmem::{database, nest_level, shared, stamp, CLAIM, PENDING};
use super::views::{dirty_map, load_edges, load_views, lock_key, state_of, View};
use crate::error::FloeError;
use crate::sqltypes::{interval, ts, wall_clock, Micros, SECOND};
use crate::{gucs, privileged, subxact};
use pgrx::prelude::*;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

const CLEAR_LOG: &str = "DELETE FROM floe.matview_changes WHERE view = $1";

const RECORD: &str = "
WITH s AS (
    UPDATE floe.matviews
       SET last_start = $2, last_duration = $3 - $2, last_result = $4, last_error = $5,
           failures = CASE WHEN $4 = 'succeeded' THEN 0 ELSE failures + 1 END,
           last_success = CASE WHEN $4 = 'succeeded' THEN $2 ELSE last_success END
     WHERE view = $1::pg_catalog.oid::pg_catalog.regclass
    RETURNING view)
INSERT INTO floe.matview_refreshes (view, reason, started_at, finished_at, concurrent, result, error)
SELECT s.view, $6, $2, $3, $7, $4, $5 FROM s";

const PRUNE: &str = "DELETE FROM floe.matview_refreshes WHERE started_at < $1";

/// What one refresh did.
struct Outcome {
    started: Micros,
    finished: Micros,
    concurrently: bool,
    error: Option<String>,
}

/// Refreshes `v` (the caller holds its refresh lock): the stamp first, then the snapshot.
fn refresh_now(v: &View) -> Result<(), FloeError> {
    if shared().is_none() {
        // The changes this snapshot sees are reflected by the REFRESH that follows.
        privileged::run(|s| {
            s.run(CLEAR_LOG, &[pg_sys::Oid::from(v.oid).into()])?;
            Ok(())
        })?;
    }
    let concurrently = v.concurrently && v.populated;
    Spi::run(&format!(
        "REFRESH MATERIALIZED VIEW {}{}",
        if concurrently { "CONCURRENTLY " } else { "" },
        v.name
    ))?;
    Ok(())
}

/// After a successful refresh in this transaction: the view is covered from `t0` on, and
/// the registered views that read it are changed (published at commit).
fn note_success(v: &View, t0: Micros, readers: &[u32]) {
    let (db, level) = (database(), nest_level());
    PENDING.with_borrow_mut(|p| {
        p.cover(dirty::key(db, v.oid), t0, level);
        for &r in readers {
            p.mark(dirty::key(db, r), level);
        }
    });
}

fn record(v: &View, reason: &str, o: &Outcome) -> Result<(), FloeError> {
    let result = if o.error.is_none() {
        "succeeded"
    } else {
        "failed"
    };
    privileged::run(|s| {
        s.run(
            RECORD,
            &[
                pg_sys::Oid::from(v.oid).into(),
                ts(o.started).into(),
                ts(o.finished).into(),
                result.into(),
                o.error.clone().into(),
                reason.into(),
                o.concurrently.into(),
            ],
        )?;
        Ok(())
    })
}

fn try_lock(view: u32) -> Result<bool, FloeError> {
    Ok(Spi::get_one_with_args::<bool>(
        "SELECT pg_catalog.pg_try_advisory_xact_lock($1)",
        &[lock_key(view).into()],
    )?
    .unwrap_or(false))
}

fn direct_readers(view: u32, edges: &[(u32, u32)]) -> Vec<u32> {
    edges
        .iter()
        .filter(|&&(_, read)| read == view)
        .map(|&(r, _)| r)
        .collect()
}

/// `floe.refresh()`: refreshes `target` now, unless it is change-tracked, known clean and
/// not `force`d; whether it refreshed.
pub(super) fn manual(target: &Target, force: bool) -> Result<bool, FloeError> {
    // Wait for a refresh of it that runs elsewhere; then decide on what it left.
    Spi::run_with_args(
        "SELECT pg_catalog.pg_advisory_xact_lock($1)",
        &[lock_key(target.oid).into()],
    )
    .map_err(FloeError::from)?;
    let v = load_views(Some(target.oid))?
        .pop()
        .ok_or_else(|| not_registered(&target.name))?;
    let dirty = dirty_map(std::slice::from_ref(&v))?
        .get(&v.oid)
        .copied()
        .flatten();
    if !force && v.policy.on_change && dirty.is_none() && v.last_success.is_some() {
        return Ok(false);
    }
    let edges = load_edges()?;
    let t0 = stamp();
    refresh_now(&v)?;
    note_success(&v, t0, &direct_readers(v.oid, &edges));
    record(
        &v,
        "manual",
        &Outcome {
            started: t0,
            finished: wall_clock(),
            concurrently: v.concurrently && v.populated,
            error: None,
        },
    )?;
    Ok(true)
}

/// A refresh `refresh_due` made: view, reason, succeeded, duration, error.
pub(super) type Done = (String, String, bool, Interval, Option<String>);

/// Refreshes every due view the caller owns, in dependency order.
pub(super) fn due() -> Result<Vec<Done>, FloeError> {
    let views = load_views(None)?;
    let edges = load_edges()?;
    let mut dirty = dirty_map(&views)?;
    let ids: Vec<u32> = views.iter().map(|v| v.oid).collect();
    let order = plan::refresh_order(&ids, &edges).unwrap_or(ids);
    let by_oid: BTreeMap<u32, &View> = views.iter().map(|v| (v.oid, v)).collect();
    let mut out = Vec::new();
    for oid in order {
        let Some(v) = by_oid.get(&oid) else { continue };
        let state = state_of(v, dirty.get(&oid).copied().flatten());
        let Some(reason) = plan::decide(&v.policy, &state, wall_clock()) else {
            continue;
        };
        if !try_lock(oid)? {
            continue; // a refresh of it runs elsewhere
        }
        let readers = direct_readers(oid, &edges);
        let t0 = stamp();
        let result = subxact::try_run(|| refresh_now(v));
        let error = match result {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.message()),
            // The message only: a debug build's detail holds a Rust backtrace.
            Err(caught) => Some(caught.message),
        };
        if error.is_none() {
            note_success(v, t0, &readers);
            // Readers refreshed later in this pass see the new contents.
            for r in &readers {
                let d = dirty.entry(*r).or_default();
                d.get_or_insert(t0);
            }
        }
        let o = Outcome {
            started: t0,
            finished: wall_clock(),
            concurrently: v.concurrently && v.populated,
            error,
        };
        record(v, reason.as_str(), &o)?;
        out.push((
            v.name.clone(),
            reason.as_str().to_string(),
            o.error.is_none(),
            interval(o.finished - o.started),
            o.error,
        ));
    }
    housekeeping(&views)?;

    Ok(out)
}

/// Prunes the history; a superuser's call (the built-in job's) also frees the shared slots
/// of this database's views that are no longer registered.
fn housekeeping(views: &[View]) -> Result<(), FloeError> {
    let keep = Micros::from(gucs::matview_history_retention_secs()) * SECOND;
    privileged::run(|s| {
        s.run(PRUNE, &[ts(wall_clock() - keep).into()])?;
        Ok(())
    })?;
    // SAFETY: reads the current role's superuser flag.
    if unsafe { pg_sys::superuser() } {
        if let Some((table, _)) = shared() {
            let db = database();
            let now = wall_clock();
            let unregistered: Vec<u64> = table
                .keys()
                .filter(|&k| {
                    let (d, v) = dirty::split(k);
                    d == db && !views.iter().any(|x| x.oid == v)
                })
                .collect();
            // A view registered by a transaction still open looks unregistered too: free a
            // slot only after it has looked so for a while (a freed slot of a live view would
            // only cost one extra refresh, but no need).
            let stale = SUSPECTS.with_borrow_mut(|m| {
                m.retain(|k, _| unregistered.contains(k));
                unregistered
                    .iter()
                    .filter(|&&k| now - *m.entry(k).or_insert(now) >= SLOT_GRACE)
                    .copied()
                    .collect::<Vec<u64>>()
            });
            if !stale.is_empty() {
                let _claim = CLAIM.exclusive();
                for k in stale {
                    table.release(k);
                }
            }
        }
    }
    Ok(())
}

/// How long a slot must belong to no registered view before `housekeeping` frees it.
const SLOT_GRACE: Micros = 600 * SECOND;

thread_local! {
    /// Slots that looked unregistered to this backend, since when.
    static SUSPECTS: RefCell<HashMap<u64, Micros>> = RefCell::new(HashMap::new());
}
