//! The registered views as the refresher sees them: their settings and last refresh, the
//! edges between them, since when each lags its data, and the advisory lock of a refresh
//! (SPI, machinery).

use super::dirty;
use super::plan::{Policy, State};
use super::shmem::{database, shared, slot_index, PENDING};
use crate::error::FloeError;
use crate::privileged;
use crate::sqltypes::{micros_of, us_of, wall_clock, Micros};
use pgrx::prelude::*;
use std::collections::HashMap;

/// One registered view as the refresher sees it.
#[derive(Debug, Clone)]
pub(super) struct View {
    pub(super) oid: u32,
    /// `schema.name`, quoted by format('%I.%I').
    pub(super) name: String,
    pub(super) populated: bool,
    pub(super) policy: Policy,
    pub(super) concurrently: bool,
    pub(super) last_start: Option<Micros>,
    pub(super) last_success: Option<Micros>,
    pub(super) last_duration: Option<Micros>,
    pub(super) last_result: Option<String>,
    pub(super) last_error: Option<String>,
    pub(super) failures: u32,
    pub(super) running: bool,
}

/// Advisory lock space of refreshes: `pg_locks` shows classid 0x6d76 ('mv'), objid the view.
const LOCK_SPACE: i64 = 0x6d76;

pub(super) fn lock_key(view: u32) -> i64 {
    (LOCK_SPACE << 32) | view as i64
}

/// The registered views the caller owns (RLS), or the one named.
const LOAD_VIEWS: &str = "
SELECT m.view::pg_catalog.oid, pg_catalog.format('%I.%I', n.nspname, c.relname), c.relispopulated,
       m.refresh_every, m.on_change, m.min_interval, m.max_staleness, m.concurrent,
       m.last_start, m.last_success, m.last_duration, m.last_result, m.last_error, m.failures,
       EXISTS (SELECT 1 FROM pg_catalog.pg_locks l
                WHERE l.locktype = 'advisory' AND l.granted
                  AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d
                                     WHERE d.datname = pg_catalog.current_database())
                  AND l.classid = $2::pg_catalog.oid AND l.objid = m.view::pg_catalog.oid
                  AND l.objsubid = 1
                  AND l.pid <> pg_catalog.pg_backend_pid())
  FROM floe.matviews m
  JOIN pg_catalog.pg_class c ON c.oid = m.view
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE $1::pg_catalog.oid IS NULL OR m.view = $1::pg_catalog.oid
 ORDER BY m.view";

pub(super) fn load_views(only: Option<u32>) -> Result<Vec<View>, FloeError> {
    Spi::connect(|client| {
        let mut out = Vec::new();
        let rows = client.select(
            LOAD_VIEWS,
            None,
            &[
                only.map(pg_sys::Oid::from).into(),
                pg_sys::Oid::from(LOCK_SPACE as u32).into(),
            ],
        )?;
        for row in rows {
            out.push(View {
                oid: row.get::<pg_sys::Oid>(1)?.unwrap_or_default().to_u32(),
                name: row.get::<String>(2)?.unwrap_or_default(),
                populated: row.get::<bool>(3)?.unwrap_or(false),
                policy: Policy {
                    refresh_every: micros_of(row.get(4)?),
                    on_change: row.get::<bool>(5)?.unwrap_or(true),
                    min_interval: micros_of(row.get(6)?).unwrap_or(0),
                    max_staleness: micros_of(row.get(7)?),
                },
                concurrently: row.get::<bool>(8)?.unwrap_or(false),
                last_start: row.get::<TimestampWithTimeZone>(9)?.map(us_of),
                last_success: row.get::<TimestampWithTimeZone>(10)?.map(us_of),
                last_duration: micros_of(row.get(11)?),
                last_result: row.get(12)?,
                last_error: row.get(13)?,
                failures: row.get::<i32>(14)?.unwrap_or(0).max(0) as u32,
                running: row.get::<bool>(15)?.unwrap_or(false),
            });
        }
        Ok(out)
    })
}

/// `(reader, read)` pairs among registered views.
const LOAD_EDGES: &str = "
SELECT s.view::pg_catalog.oid, s.source::pg_catalog.oid
  FROM floe.matview_sources s
 WHERE s.kind = 'm' AND EXISTS (SELECT 1 FROM floe.matviews m WHERE m.view = s.source)";

pub(super) fn load_edges() -> Result<Vec<(u32, u32)>, FloeError> {
    privileged::run(|s| {
        let mut out = Vec::new();
        for row in s.run(LOAD_EDGES, &[])? {
            if let (Some(a), Some(b)) = (row.get::<pg_sys::Oid>(1)?, row.get::<pg_sys::Oid>(2)?) {
                out.push((a.to_u32(), b.to_u32()));
            }
        }
        Ok(out)
    })
}

const DIRTY_FROM_LOG: &str = "
SELECT c.view, pg_catalog.min(c.changed_at) FROM floe.matview_changes c GROUP BY c.view";

/// Since when each view lags its data (None: current), from shared memory or the log.
pub(super) fn dirty_map(views: &[View]) -> Result<HashMap<u32, Option<Micros>>, FloeError> {
    let db = database();
    match shared() {
        Some((table, clock)) => {
            let now = dirty::change_stamp(clock, wall_clock());
            Ok(views
                .iter()
                .map(|v| {
                    let key = dirty::key(db, v.oid);
                    // A refresh made earlier in this transaction is not published yet.
                    let floor = PENDING
                        .with_borrow(|p| p.covered(key))
                        .unwrap_or(Micros::MIN);
                    let since = slot_index(table, key, now)
                        .and_then(|i| table.slot(i))
                        // Without a slot (all taken) nothing is known: treat it as dirty.
                        .map_or(v.last_success.or(Some(now)), |s| s.dirty_since_after(floor))
                        // This transaction's own writes are not published yet.
                        .or_else(|| PENDING.with_borrow(|p| p.is_marked(key)).then_some(now));
                    (v.oid, since)
                })
                .collect())
        }
        None => {
            let logged: HashMap<u32, Micros> = privileged::run(|s| {
                let mut m = HashMap::new();
                for row in s.run(DIRTY_FROM_LOG, &[])? {
                    if let (Some(v), Some(t)) = (
                        row.get::<pg_sys::Oid>(1)?,
                        row.get::<TimestampWithTimeZone>(2)?,
                    ) {
                        m.insert(v.to_u32(), us_of(t));
                    }
                }
                Ok(m)
            })?;
            Ok(views
                .iter()
                // (a registration logs a change of its own)
                .map(|v| (v.oid, logged.get(&v.oid).copied()))
                .collect())
        }
    }
}

pub(super) fn state_of(v: &View, dirty_since: Option<Micros>) -> State {
    State {
        dirty_since,
        last_start: v.last_start,
        last_success: v.last_success,
        failures: v.failures,
        running: v.running,
    }
}
