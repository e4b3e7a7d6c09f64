//! SQL glue of the matview module: the registry functions, the refresher, the change
//! trigger, the shared memory and the transaction callbacks that publish changes at commit.
//!
//! Rights: a role registers, refreshes and sees only materialized views it owns (has the
//! owner's privileges of). The registry tables are written as the extension's owner
//! (`privileged::run`) after that check; REFRESH itself runs as the caller (Postgres runs the
//! view's query as the view's owner in any case). The change trigger runs in every writer's
//! session; with shared memory it touches no table at all.

use super::checks::{self, ViewFacts};
use super::dirty::{self, Pending, Table};
use super::plan::{self, Policy, State};
use crate::error::{invalid, required, ErrorReport, FloeError};
use crate::health::checks::Check;
use crate::sqltypes::{duration, interval, micros_of, ts, us_of, wall_clock, Micros, DAY, SECOND};
use crate::{gucs, subxact};
use crate::{privileged, relcache};
use pgrx::lwlock::PgLwLock;
use pgrx::prelude::*;
use pgrx::shmem::PGRXSharedMemory;
use pgrx::{pg_shmem_init, PgAtomic, PgRelation};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::atomic::AtomicI64;

// ---------------------------------------------------------------------------------------
// Shared memory and the transaction callbacks
// ---------------------------------------------------------------------------------------

/// Registered views the cluster can track in shared memory (32 bytes each).
pub const SLOTS: usize = 1024;
type Slots = Table<SLOTS>;

// SAFETY: plain atomics, valid in any process that maps the segment.
unsafe impl PGRXSharedMemory for Table<SLOTS> {}

static TABLE: PgAtomic<Slots> = unsafe { PgAtomic::new(c"floe_matview_slots") };
static CLOCK: PgAtomic<AtomicI64> = unsafe { PgAtomic::new(c"floe_matview_clock") };
/// Held while a slot is claimed or released (marks and reads take no lock).
static CLAIM: PgLwLock<bool> = unsafe { PgLwLock::new(c"floe_matview_claim") };

thread_local! {
    /// What the running transaction changed and refreshed, published at its commit.
    static PENDING: RefCell<Pending> = RefCell::new(Pending::default());
    /// Slot index by key, checked against the slot's key before use.
    static SLOT_OF: RefCell<HashMap<u64, usize>> = RefCell::new(HashMap::new());
}

/// Shared memory, the change clock and the transaction callbacks. Called from `_PG_init`.
pub fn init() {
    // SAFETY: a plain read of a server global, from _PG_init on the main thread.
    if unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        pg_shmem_init!(TABLE);
        pg_shmem_init!(CLOCK);
        pg_shmem_init!(CLAIM);
    }
    // SAFETY: callbacks for the life of the process, registered once.
    unsafe {
        pg_sys::RegisterXactCallback(Some(on_xact), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(on_subxact), std::ptr::null_mut());
    }
}

/// The shared slots and clock, when floe was preloaded.
fn shared() -> Option<(&'static Slots, &'static AtomicI64)> {
    crate::health::loaded_at_start().then(|| (TABLE.get(), CLOCK.get()))
}

fn database() -> u32 {
    // SAFETY: reads this backend's database id.
    unsafe { pg_sys::MyDatabaseId }.to_u32()
}

fn nest_level() -> u32 {
    // SAFETY: reads the transaction state.
    unsafe { pg_sys::GetCurrentTransactionNestLevel() }.max(1) as u32
}

/// A refresh's stamp (the wall clock without shared memory).
fn stamp() -> Micros {
    match shared() {
        Some((_, clock)) => dirty::refresh_stamp(clock, wall_clock()),
        None => wall_clock(),
    }
}

/// The slot of `key`, claimed (dirty) if it has none; None when every slot is taken.
fn slot_index(table: &'static Slots, key: u64, stamp: Micros) -> Option<usize> {
    let cached = SLOT_OF.with_borrow(|m| m.get(&key).copied());
    if let Some(i) = cached.filter(|&i| table.slot(i).is_some_and(|s| s.key() == key)) {
        return Some(i);
    }
    let found = match table.find(key) {
        Some(i) => Some(i),
        None => {
            let _claim = CLAIM.exclusive();
            table.find_or_claim(key, stamp)
        }
    };
    if let Some(i) = found {
        SLOT_OF.with_borrow_mut(|m| m.insert(key, i));
    }
    found
}

/// Publishes the transaction's marks and covers (at commit; at PREPARE only the marks: the
/// refresh may yet be rolled back). Must not raise: the transaction has committed.
fn publish(covers: bool) {
    let outcomes = PENDING.with_borrow_mut(|p| if p.is_empty() { Vec::new() } else { p.take() });
    if outcomes.is_empty() {
        return;
    }
    let Some((table, clock)) = shared() else {
        return;
    };
    let now = dirty::change_stamp(clock, wall_clock());
    for o in outcomes {
        let Some(slot) = slot_index(table, o.key, now).and_then(|i| table.slot(i)) else {
            continue; // no slot: the refresher treats the view as dirty
        };
        if covers {
            if let Some(t0) = o.cover {
                slot.cover(t0);
            }
        }
        if o.mark {
            slot.mark(now);
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_xact(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    use pg_sys::XactEvent::*;
    match event {
        XACT_EVENT_COMMIT | XACT_EVENT_PARALLEL_COMMIT => publish(true),
        XACT_EVENT_PREPARE => publish(false),
        XACT_EVENT_ABORT | XACT_EVENT_PARALLEL_ABORT => PENDING.with_borrow_mut(Pending::clear),
        _ => {}
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_subxact(
    event: pg_sys::SubXactEvent::Type,
    _sub: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    use pg_sys::SubXactEvent::*;
    PENDING.with_borrow_mut(|p| {
        if p.is_empty() {
            return;
        }
        // The callback runs while the subtransaction is still the current one.
        let level = nest_level();
        match event {
            SUBXACT_EVENT_COMMIT_SUB => p.commit_sub(level),
            SUBXACT_EVENT_ABORT_SUB => p.abort_sub(level),
            _ => {}
        }
    });
}

// ---------------------------------------------------------------------------------------
// The change trigger and its per-backend map of tables to views
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Sources {
    generation: u64,
    /// Views (on_change) reading each table, partitions included.
    by_table: HashMap<u32, Rc<[u32]>>,
}

thread_local! {
    static SOURCES: RefCell<Option<Sources>> = const { RefCell::new(None) };
}

const REGISTRY_OIDS: &str = "
SELECT 'floe.matviews'::pg_catalog.regclass::pg_catalog.oid,
       'floe.matview_sources'::pg_catalog.regclass::pg_catalog.oid";

const LOAD_SOURCES: &str = "
SELECT t.relid, s.view::pg_catalog.oid
  FROM floe.matview_sources s
  JOIN floe.matviews m ON m.view = s.view AND m.on_change
 CROSS JOIN LATERAL (SELECT s.source::pg_catalog.oid AS relid
                     UNION
                     SELECT p.relid::pg_catalog.oid
                       FROM pg_catalog.pg_partition_tree(s.source) p) t
 WHERE s.kind IN ('r', 'p')";

/// Loads the map of tables to the on-change views reading them.
fn load_sources() -> Result<HashMap<u32, Rc<[u32]>>, FloeError> {
    let mut map: HashMap<u32, Vec<u32>> = HashMap::new();
    privileged::run(|s| {
        let oids = s.run(REGISTRY_OIDS, &[])?.first();
        for col in [1, 2] {
            relcache::watch(oids.get::<pg_sys::Oid>(col)?.unwrap_or(pg_sys::InvalidOid));
        }
        for row in s.run(LOAD_SOURCES, &[])? {
            if let (Some(t), Some(v)) = (row.get::<pg_sys::Oid>(1)?, row.get::<pg_sys::Oid>(2)?) {
                let views = map.entry(t.to_u32()).or_default();
                if !views.contains(&v.to_u32()) {
                    views.push(v.to_u32());
                }
            }
        }
        Ok(())
    })?;
    Ok(map.into_iter().map(|(t, v)| (t, Rc::from(v))).collect())
}

/// The on-change views reading table `relid`. A table missing from the map is looked up
/// again once per registry change (a partition created since the map was loaded).
fn views_reading(relid: u32) -> Result<Rc<[u32]>, FloeError> {
    let generation = relcache::generation();
    let hit = SOURCES.with_borrow(|c| {
        c.as_ref()
            .filter(|c| c.generation == generation)
            .and_then(|c| c.by_table.get(&relid).cloned())
    });
    if let Some(v) = hit {
        return Ok(v);
    }
    let mut by_table = load_sources()?;
    let views = by_table
        .entry(relid)
        .or_insert_with(|| Rc::from(Vec::new()))
        .clone();
    // Stored under the generation read before loading: an invalidation that arrived during
    // the load makes the next call load again.
    SOURCES.set(Some(Sources {
        generation,
        by_table,
    }));
    Ok(views)
}

const INSERT_CHANGE: &str = "INSERT INTO floe.matview_changes (view) VALUES ($1)";

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

fn record_change(relid: u32) -> Result<(), FloeError> {
    let views = views_reading(relid)?;
    if views.is_empty() {
        return Ok(());
    }
    mark_changed(&views)
}

/// Records that this transaction changed `views` (published at commit; without shared
/// memory, logged now, once per view and transaction).
fn mark_changed(views: &[u32]) -> Result<(), FloeError> {
    let (db, level) = (database(), nest_level());
    let fresh: Vec<u32> = PENDING.with_borrow_mut(|p| {
        views
            .iter()
            .copied()
            .filter(|&v| p.mark(dirty::key(db, v), level))
            .collect()
    });
    if !fresh.is_empty() && shared().is_none() {
        privileged::run(|s| {
            for v in &fresh {
                s.run(INSERT_CHANGE, &[pg_sys::Oid::from(*v).into()])?;
            }
            Ok(())
        })?;
    }
    Ok(())
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
// The registry
// ---------------------------------------------------------------------------------------

/// One registered view as the refresher sees it.
#[derive(Debug, Clone)]
struct View {
    oid: u32,
    /// `schema.name`, quoted by format('%I.%I').
    name: String,
    populated: bool,
    policy: Policy,
    concurrently: bool,
    last_start: Option<Micros>,
    last_success: Option<Micros>,
    last_duration: Option<Micros>,
    last_result: Option<String>,
    last_error: Option<String>,
    failures: u32,
    running: bool,
}

/// Advisory lock space of refreshes: `pg_locks` shows classid 0x6d76 ('mv'), objid the view.
const LOCK_SPACE: i64 = 0x6d76;

fn lock_key(view: u32) -> i64 {
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

fn load_views(only: Option<u32>) -> Result<Vec<View>, FloeError> {
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

fn load_edges() -> Result<Vec<(u32, u32)>, FloeError> {
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
fn dirty_map(views: &[View]) -> Result<HashMap<u32, Option<Micros>>, FloeError> {
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

fn state_of(v: &View, dirty_since: Option<Micros>) -> State {
    State {
        dirty_since,
        last_start: v.last_start,
        last_success: v.last_success,
        failures: v.failures,
        running: v.running,
    }
}

// ---------------------------------------------------------------------------------------
// Registration
// ---------------------------------------------------------------------------------------

/// The relations a view reads, directly or through plain views (a materialized view is a
/// node of its own: it changes only when refreshed).
const WALK: &str = "
WITH RECURSIVE walk(relid) AS (
    SELECT $1::pg_catalog.oid
  UNION
    SELECT d.refobjid
      FROM walk w
      JOIN pg_catalog.pg_class wc ON wc.oid = w.relid
      JOIN pg_catalog.pg_rewrite r ON r.ev_class = w.relid
      JOIN pg_catalog.pg_depend d
        ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = r.oid
       AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid <> w.relid
     WHERE w.relid = $1::pg_catalog.oid OR wc.relkind = 'v'
)
SELECT c.oid, c.relkind::text, pg_catalog.format('%I.%I', n.nspname, c.relname),
       pg_catalog.has_table_privilege(c.oid, 'TRIGGER')
  FROM walk w
  JOIN pg_catalog.pg_class c ON c.oid = w.relid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE w.relid <> $1::pg_catalog.oid AND c.relkind IN ('r', 'p', 'm', 'f')
 ORDER BY 3";

struct Source {
    oid: u32,
    kind: String,
    name: String,
    may_trigger: bool,
}

fn sources_of(view: u32) -> Result<Vec<Source>, FloeError> {
    Spi::connect(|client| {
        let mut out = Vec::new();
        for row in client.select(WALK, None, &[pg_sys::Oid::from(view).into()])? {
            out.push(Source {
                oid: row.get::<pg_sys::Oid>(1)?.unwrap_or_default().to_u32(),
                kind: row.get::<String>(2)?.unwrap_or_default(),
                name: row.get::<String>(3)?.unwrap_or_default(),
                may_trigger: row.get::<bool>(4)?.unwrap_or(false),
            });
        }
        Ok(out)
    })
}

const VIEW_FACTS: &str = "
SELECT c.relkind::text, pg_catalog.format('%I.%I', n.nspname, c.relname),
       pg_catalog.pg_has_role(c.relowner, 'USAGE'),
       EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                WHERE i.indrelid = c.oid AND i.indisunique AND i.indisvalid
                  AND i.indpred IS NULL AND i.indexprs IS NULL)
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.oid = $1::pg_catalog.oid";

struct Target {
    oid: u32,
    name: String,
    has_unique_index: bool,
}

/// The materialized view `rel`, which the caller must own.
fn owned_matview(rel: Option<PgRelation>, argument: &'static str) -> Result<Target, FloeError> {
    let oid = required(rel, argument)?.oid().to_u32();
    let (kind, name, owner, unique) = Spi::connect(|client| {
        let row = client
            .select(VIEW_FACTS, Some(1), &[pg_sys::Oid::from(oid).into()])?
            .first();
        Ok::<_, FloeError>((
            row.get::<String>(1)?.unwrap_or_default(),
            row.get::<String>(2)?.unwrap_or_default(),
            row.get::<bool>(3)?.unwrap_or(false),
            row.get::<bool>(4)?.unwrap_or(false),
        ))
    })?;
    if kind != "m" {
        return Err(FloeError::WrongObjectType {
            message: format!("\"{name}\" is not a materialized view"),
            hint: "floe refreshes materialized views (CREATE MATERIALIZED VIEW); a plain view \
                   needs no refresh."
                .into(),
        });
    }
    if !owner {
        return Err(FloeError::PermissionDenied {
            message: format!("must be owner of materialized view {name}"),
            detail: None,
            hint: "Only the view's owner (or a member of the owning role) may register, refresh \
                   or unregister it, as for REFRESH MATERIALIZED VIEW."
                .into(),
        });
    }
    Ok(Target {
        oid,
        name,
        has_unique_index: unique,
    })
}

fn not_registered(name: &str) -> FloeError {
    FloeError::NotFound {
        kind: "registered materialized view",
        name: name.to_string(),
        hint: "Register it with floe.register_matview(view); floe.matview_status lists the \
               registered views you own."
            .into(),
    }
}

const UPSERT: &str = "
INSERT INTO floe.matviews AS m (view, refresh_every, on_change, min_interval, max_staleness,
                                concurrent, registered_by)
VALUES ($1::pg_catalog.oid::pg_catalog.regclass, $2, $3, $4, $5, $6,
        (SELECT r.rolname FROM pg_catalog.pg_roles r WHERE r.oid = $7::pg_catalog.oid))
ON CONFLICT (view) DO UPDATE
   SET refresh_every = EXCLUDED.refresh_every, on_change = EXCLUDED.on_change,
       min_interval = EXCLUDED.min_interval, max_staleness = EXCLUDED.max_staleness,
       concurrent = EXCLUDED.concurrent, failures = 0";

const CLEAR_SOURCES: &str = "
DELETE FROM floe.matview_sources WHERE view = $1::pg_catalog.oid::pg_catalog.regclass";

const ADD_SOURCES: &str = "
INSERT INTO floe.matview_sources (view, source, kind)
SELECT $1::pg_catalog.oid::pg_catalog.regclass, u.s::pg_catalog.regclass, u.k::\"char\"
  FROM ROWS FROM (pg_catalog.unnest($2::pg_catalog.oid[]), pg_catalog.unnest($3::text[])) AS u(s, k)";

const SYNC_TRIGGERS: &str = "SELECT floe.matview_sync_triggers()";

const IS_REGISTERED: &str = "
SELECT EXISTS (SELECT 1 FROM floe.matviews WHERE view = $1::pg_catalog.oid::pg_catalog.regclass)";

const UNREGISTER: &str = "
DELETE FROM floe.matviews WHERE view = $1::pg_catalog.oid::pg_catalog.regclass RETURNING 1";

fn is_registered(s: &mut privileged::Session, oid: u32) -> Result<bool, FloeError> {
    Ok(s.run(IS_REGISTERED, &[pg_sys::Oid::from(oid).into()])?
        .first()
        .get::<bool>(1)?
        .unwrap_or(false))
}

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

fn register(
    view: Option<PgRelation>,
    refresh_every: Option<Interval>,
    on_change: Option<bool>,
    min_interval: Option<Interval>,
    max_staleness: Option<Interval>,
    concurrently: Option<bool>,
) -> Result<i32, FloeError> {
    let target = owned_matview(view, "view")?;
    let on_change = required(on_change, "on_change")?;
    let concurrently = required(concurrently, "concurrently")?;
    let min_interval = duration(
        "min_interval",
        required(min_interval, "min_interval")?,
        0,
        365 * DAY,
        "an interval from 0 to 365 days, without months",
    )?;
    let every = refresh_every
        .map(|v| {
            duration(
                "refresh_every",
                v,
                SECOND,
                365 * DAY,
                "NULL or an interval from 1 second to 365 days, without months",
            )
        })
        .transpose()?;
    let max_staleness = max_staleness
        .map(|v| {
            duration(
                "max_staleness",
                v,
                SECOND,
                365 * DAY,
                "NULL or an interval from 1 second to 365 days, without months",
            )
        })
        .transpose()?;
    if !on_change && every.is_none() && max_staleness.is_none() {
        return Err(invalid(
            "on_change",
            "false",
            "a way to refresh: on_change => true, or a refresh_every or max_staleness \
             interval (with none of them the view would never be refreshed)",
        ));
    }
    if concurrently && !target.has_unique_index {
        return Err(FloeError::WrongState {
            message: format!(
                "materialized view {} has no unique index, which REFRESH CONCURRENTLY needs",
                target.name
            ),
            hint: format!(
                "Create one on columns that identify a row, with no WHERE clause and no \
                 expressions (CREATE UNIQUE INDEX ON {} (...)), or register with \
                 concurrently => false: readers then wait while it refreshes.",
                target.name
            ),
        });
    }
    let sources = sources_of(target.oid)?;
    if on_change {
        for s in sources
            .iter()
            .filter(|s| matches!(s.kind.as_str(), "r" | "p"))
        {
            crate::citus::refuse_citus_table(
                pgrx::pg_sys::Oid::from(s.oid),
                &s.name,
                "on-change refresh",
                &format!(
                    "Changes to it happen on the workers, where the coordinator's change tracking cannot see them: register {} with on_change => false and refresh_every => '<interval>' (or max_staleness).",
                    target.name
                ),
            )?;
        }
        if let Some(s) = sources
            .iter()
            .find(|s| matches!(s.kind.as_str(), "r" | "p") && !s.may_trigger)
        {
            return Err(FloeError::PermissionDenied {
                message: format!(
                    "permission denied to track changes of table {} (read by {})",
                    s.name, target.name
                ),
                detail: Some(
                    "On-change refresh puts a statement trigger on every table the view reads."
                        .into(),
                ),
                hint: format!(
                    "GRANT TRIGGER ON {} TO the registering role, or register with \
                     on_change => false and a refresh_every interval.",
                    s.name
                ),
            });
        }
    }
    if let Some((table, clock)) = shared() {
        let now = dirty::change_stamp(clock, wall_clock());
        if slot_index(table, dirty::key(database(), target.oid), now).is_none() {
            return Err(FloeError::WrongState {
                message: format!("all {SLOTS} change-tracking slots of the server are in use"),
                hint: "Unregister views that no longer need refreshing (floe.unregister_matview) \
                       in any database of this server."
                    .into(),
            });
        }
    }
    let oids: Vec<pg_sys::Oid> = sources.iter().map(|s| pg_sys::Oid::from(s.oid)).collect();
    let kinds: Vec<String> = sources.iter().map(|s| s.kind.clone()).collect();
    let unregistered = privileged::run(|s| {
        let oid = pg_sys::Oid::from(target.oid);
        s.run(
            UPSERT,
            &[
                oid.into(),
                every.map(interval).into(),
                on_change.into(),
                interval(min_interval).into(),
                max_staleness.map(interval).into(),
                concurrently.into(),
                s.caller.into(),
            ],
        )?;
        s.run(CLEAR_SOURCES, &[oid.into()])?;
        s.run(
            ADD_SOURCES,
            &[oid.into(), oids.clone().into(), kinds.clone().into()],
        )?;
        s.run(SYNC_TRIGGERS, &[])?;
        let mut unregistered = Vec::new();
        for src in sources.iter().filter(|x| x.kind == "m") {
            if !is_registered(s, src.oid)? {
                unregistered.push(src.name.clone());
            }
        }
        Ok(unregistered)
    })?;
    let tables = sources
        .iter()
        .filter(|s| matches!(s.kind.as_str(), "r" | "p"))
        .count() as i32;
    let triggers = if on_change { tables } else { 0 };
    // What the view holds is unknown to floe from here on: it counts as changed.
    mark_changed(&[target.oid])?;
    if on_change {
        for name in &unregistered {
            notice!(
                "floe: {} reads materialized view {name}, which floe does not refresh: its \
                 refreshes do not mark {} dirty (register it too)",
                target.name,
                target.name
            );
        }
        for s in sources.iter().filter(|s| s.kind == "f") {
            notice!(
                "floe: {} reads foreign table {}: changes on the remote server are not seen \
                 (set refresh_every or max_staleness)",
                target.name,
                s.name
            );
        }
        if triggers == 0 && !sources.iter().any(|s| s.kind == "m") {
            notice!(
                "floe: {} reads no table floe can watch (tables read inside functions are not \
                 seen); it is refreshed only by refresh_every, max_staleness or by hand",
                target.name
            );
        }
    }
    Ok(triggers)
}

#[pg_extern(volatile)]
fn unregister_matview(
    view: Option<PgRelation>,
    if_exists: default!(Option<bool>, false),
) -> Result<bool, ErrorReport> {
    let target = owned_matview(view, "view")?;
    let removed = privileged::run(|s| {
        let gone = !s
            .run(UNREGISTER, &[pg_sys::Oid::from(target.oid).into()])?
            .is_empty();
        if gone {
            s.run(SYNC_TRIGGERS, &[])?;
        }
        Ok(gone)
    })?;
    if !removed && !if_exists.unwrap_or(false) {
        return Err(not_registered(&target.name).into());
    }
    if removed {
        if let Some((table, _)) = shared() {
            let _claim = CLAIM.exclusive();
            table.release(dirty::key(database(), target.oid));
        }
    }
    Ok(removed)
}

// ---------------------------------------------------------------------------------------
// Refreshing
// ---------------------------------------------------------------------------------------

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

#[pg_extern(volatile)]
fn refresh(
    view: Option<PgRelation>,
    force: default!(Option<bool>, false),
) -> Result<bool, ErrorReport> {
    let target = owned_matview(view, "view")?;
    let force = force.unwrap_or(false);
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
    Ok(TableIterator::new(out))
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

// ---------------------------------------------------------------------------------------
// Status and health
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

/// `matview.stale` and `matview.failing` over the views the caller can see.
pub fn health_checks() -> Result<Vec<Check>, FloeError> {
    let views = load_views(None)?;
    let dirty = dirty_map(&views)?;
    let facts: Vec<ViewFacts> = views
        .into_iter()
        .map(|v| ViewFacts {
            state: state_of(&v, dirty.get(&v.oid).copied().flatten()),
            name: v.name,
            policy: v.policy,
            last_error: v.last_error,
        })
        .collect();
    Ok(checks::view_checks(&facts, wall_clock()))
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
