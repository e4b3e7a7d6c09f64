//! Change tracking: the per-backend map of tables to the on-change views reading them
//! (reloaded after a registry change), and the marks a write leaves on those views (published
//! at commit, or without shared memory logged in floe.matview_changes) (SPI, as the
//! extension's owner, machinery).

use super::dirty;
use super::shmem::{database, nest_level, shared, PENDING};
use crate::error::FloeError;
use crate::{privileged, relcache};
use pgrx::prelude::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

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

pub(super) fn record_change(relid: u32) -> Result<(), FloeError> {
    let views = views_reading(relid)?;
    if views.is_empty() {
        return Ok(());
    }
    mark_changed(&views)
}

/// Records that this transaction changed `views` (published at commit; without shared
/// memory, logged now, once per view and transaction).
pub(super) fn mark_changed(views: &[u32]) -> Result<(), FloeError> {
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
