//! Registration: the materialized view the caller owns, the relations it reads (through
//! plain views), registering it with its sources and change triggers, unregistering it (SPI:
//! the catalogs as the caller, floe's tables as the extension's owner; machinery).

use super::changes::mark_changed;
use super::dirty;
use super::shmem::{database, shared, slot_index, CLAIM, SLOTS};
use crate::error::{invalid, required, FloeError};
use crate::privileged;
use crate::sqltypes::{duration, interval, wall_clock, DAY, SECOND};
use pgrx::prelude::*;
use pgrx::PgRelation;

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

pub(super) struct Target {
    pub(super) oid: u32,
    pub(super) name: String,
    has_unique_index: bool,
}

/// The materialized view `rel`, which the caller must own.
pub(super) fn owned_matview(
    rel: Option<PgRelation>,
    argument: &'static str,
) -> Result<Target, FloeError> {
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

pub(super) fn not_registered(name: &str) -> FloeError {
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

pub(super) fn register(
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

/// Unregisters the materialized view `view` (the caller's) and frees its shared slot; whether
/// it was registered (not being registered is an error unless `if_exists`).
pub(super) fn unregister(
    view: Option<PgRelation>,
    if_exists: Option<bool>,
) -> Result<bool, FloeError> {
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
        return Err(not_registered(&target.name));
    }
    if removed {
        if let Some((table, _)) = shared() {
            let _claim = CLAIM.exclusive();
            table.release(dirty::key(database(), target.oid));
        }
    }
    Ok(removed)
}
