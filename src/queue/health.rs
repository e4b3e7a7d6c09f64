//! The queues' numbers: depth, waits and outcomes per queue and tier (`STATS`), the metrics
//! row `queue_maintenance` records from the same query, and `floe.health()`'s queue checks
//! (SPI, as the extension's owner, machinery).

use super::checks::{self, QueueFacts};
use super::priority::Tier;
use crate::check::Check;
use crate::error::FloeError;
use crate::privileged::{self, Session};
use crate::sqltypes::{ts, wall_clock, Micros, SECOND};
use pgrx::prelude::*;

/// Per queue and tier: depth, waits and outcomes since `$3` up to `$2`, for the queues the
/// caller (`$1`) may use (only `$4` when given).
macro_rules! stats_sql {
    () => {
        "
WITH q AS (
    SELECT id, name, max_wait FROM floe.queues
     WHERE ($4::text IS NULL OR name = $4) AND pg_catalog.pg_has_role($1, owner, 'USAGE')
), live AS (
    SELECT j.queue_id, j.tier,
           count(*) FILTER (WHERE j.state = 'ready') AS ready,
           count(*) FILTER (WHERE j.state = 'scheduled') AS scheduled,
           count(*) FILTER (WHERE j.state = 'running') AS in_flight,
           count(*) FILTER (WHERE j.state = 'running' AND j.wake_at <= $2) AS expired,
           min(j.run_at) FILTER (WHERE j.state = 'ready') AS oldest
      FROM floe.queue_jobs j
     WHERE j.queue_id IN (SELECT id FROM q)
     GROUP BY 1, 2
), arch AS (
    SELECT a.queue_id, a.tier, a.state, a.started_at, a.run_at
      FROM floe.queue_archive a
     WHERE a.queue_id IN (SELECT id FROM q) AND a.finished_at >= $3 AND a.finished_at <= $2
), waits AS (
    SELECT queue_id, tier, started_at - run_at AS waited FROM arch WHERE started_at >= $3
    UNION ALL
    SELECT j.queue_id, j.tier, j.started_at - j.run_at FROM floe.queue_jobs j
     WHERE j.queue_id IN (SELECT id FROM q) AND j.state = 'running' AND j.started_at >= $3
), w AS (
    SELECT queue_id, tier, count(*) AS dequeued,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY waited) AS p50,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY waited) AS p95
      FROM waits GROUP BY 1, 2
), done AS (
    SELECT queue_id, tier, count(*) FILTER (WHERE state = 'completed') AS completed,
           count(*) FILTER (WHERE state = 'dead') AS dead
      FROM arch GROUP BY 1, 2
), dead AS (
    SELECT a.queue_id, a.tier, count(*) AS n
      FROM floe.queue_archive a
     WHERE a.state = 'dead' AND a.queue_id IN (SELECT id FROM q)
     GROUP BY 1, 2
)
SELECT q.id AS queue_id, q.name, t.tier::smallint AS tier,
       coalesce(l.ready, 0) AS ready, coalesce(l.scheduled, 0) AS scheduled,
       coalesce(l.in_flight, 0) AS in_flight, $2 - l.oldest AS oldest_wait,
       w.p50 AS wait_p50, w.p95 AS wait_p95, coalesce(w.dequeued, 0) AS dequeued,
       coalesce(done.completed, 0) AS completed, coalesce(done.dead, 0) AS dead,
       coalesce(dead.n, 0) AS dead_letters, q.max_wait, coalesce(l.expired, 0) AS expired
  FROM q CROSS JOIN generate_series(0, 4) AS t (tier)
  LEFT JOIN live l ON l.queue_id = q.id AND l.tier = t.tier
  LEFT JOIN w ON w.queue_id = q.id AND w.tier = t.tier
  LEFT JOIN done ON done.queue_id = q.id AND done.tier = t.tier
  LEFT JOIN dead ON dead.queue_id = q.id AND dead.tier = t.tier
 ORDER BY q.name, t.tier"
    };
}

const STATS: &str = stats_sql!();

pub(super) const RECORD_METRICS: &str = concat!(
    "INSERT INTO floe.queue_metrics_log (at, queue_id, tier, ready, scheduled, in_flight,
       oldest_wait, dequeued, completed, dead, wait_p50, wait_p95)
SELECT $5, queue_id, tier, ready, scheduled, in_flight, oldest_wait, dequeued, completed, dead,
       wait_p50, wait_p95
  FROM (",
    stats_sql!(),
    ") s
ON CONFLICT DO NOTHING"
);

/// One row of `STATS`.
pub(super) struct Stat {
    pub(super) name: String,
    pub(super) tier: Tier,
    pub(super) ready: i64,
    pub(super) scheduled: i64,
    pub(super) in_flight: i64,
    pub(super) oldest_wait: Option<Interval>,
    pub(super) p50: Option<Interval>,
    pub(super) p95: Option<Interval>,
    pub(super) completed: i64,
    pub(super) dead: i64,
    pub(super) dead_letters: i64,
    pub(super) max_wait: Micros,
    pub(super) expired: i64,
}

pub(super) fn stats(
    s: &mut Session,
    queue: Option<&str>,
    now: Micros,
    lookback: Micros,
) -> Result<Vec<Stat>, FloeError> {
    let table = s.run(
        STATS,
        &[
            s.caller.into(),
            ts(now).into(),
            ts(now - lookback).into(),
            queue.into(),
        ],
    )?;
    let mut out = Vec::with_capacity(table.len());
    for row in table {
        out.push(Stat {
            name: row.get::<String>(2)?.unwrap_or_default(),
            tier: Tier::ALL[row.get::<i16>(3)?.unwrap_or(2).clamp(0, 4) as usize],
            ready: row.get::<i64>(4)?.unwrap_or(0),
            scheduled: row.get::<i64>(5)?.unwrap_or(0),
            in_flight: row.get::<i64>(6)?.unwrap_or(0),
            oldest_wait: row.get(7)?,
            p50: row.get(8)?,
            p95: row.get(9)?,
            completed: row.get::<i64>(11)?.unwrap_or(0),
            dead: row.get::<i64>(12)?.unwrap_or(0),
            dead_letters: row.get::<i64>(13)?.unwrap_or(0),
            max_wait: row
                .get::<Interval>(14)?
                .map(|i| i.as_micros() as Micros)
                .unwrap_or(i64::MAX),
            expired: row.get::<i64>(15)?.unwrap_or(0),
        });
    }
    Ok(out)
}

/// `floe.health()`'s queue checks, over the queues the caller may use.
pub fn health_checks() -> Result<Vec<Check>, FloeError> {
    let now = wall_clock();
    let stats = privileged::run(|s| stats(s, None, now, 3600 * SECOND))?;
    let mut facts: Vec<QueueFacts> = Vec::new();
    for st in stats {
        if facts.last().map(|f| f.name.as_str()) != Some(st.name.as_str()) {
            facts.push(QueueFacts {
                name: st.name.clone(),
                max_wait: st.max_wait,
                ..Default::default()
            });
        }
        if let Some(f) = facts.last_mut() {
            let wait = st.oldest_wait.map(|i| i.as_micros() as Micros);
            f.oldest_wait = f.oldest_wait.max(wait);
            f.new_dead += st.dead;
            f.expired += st.expired;
        }
    }
    Ok(vec![
        checks::max_wait_check(&facts),
        checks::dead_letter_check(&facts),
    ])
}
