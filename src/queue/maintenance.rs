//! `floe.queue_maintenance`: expired jobs out of attempts become dead letters, due and expired
//! jobs of every queue become ready, a metrics row per queue and tier, old metrics and fair
//! clocks pruned (SPI, as the extension's owner, machinery).

use super::catalog;
use super::deliver::{wake, WAKE_BATCH};
use super::finish::into_archive;
use super::health::RECORD_METRICS;
use crate::error::FloeError;
use crate::privileged::Session;
use crate::sqltypes::{ts, Micros, SECOND};
use pgrx::prelude::*;

// $1 caller, $2 now
const EXPIRED_TO_DEAD: &str = concat!(
    "
WITH q AS (
    SELECT id, max_attempts FROM floe.queues WHERE pg_catalog.pg_has_role($1, owner, 'USAGE')
), d AS (
    DELETE FROM floe.queue_jobs j
     WHERE j.id IN (SELECT x.id FROM floe.queue_jobs x JOIN q ON q.id = x.queue_id
                     WHERE x.state = 'running' AND x.wake_at <= $2
                       AND x.attempts >= q.max_attempts
                     LIMIT 10000
                       FOR UPDATE OF x SKIP LOCKED)
    RETURNING j.*
)
",
    into_archive!(),
    "
SELECT id, queue_id, 'dead', tier, run_at, tenant, dedup_key, payload, attempts, enqueued_at,
       started_at, $2, 'visibility timeout expired on the last attempt (' || attempts || ')'
  FROM d
RETURNING 1"
);

// $1 caller
const USABLE_QUEUES: &str = "
SELECT q.id FROM floe.queues q WHERE pg_catalog.pg_has_role($1, q.owner, 'USAGE') ORDER BY q.id";

// $1 caller, $2 now, $3 metrics kept until, $4 whether the caller may sweep orphans
const PRUNE: &str = "
WITH m AS (
    DELETE FROM floe.queue_metrics_log l
     USING floe.queues q
     WHERE q.id = l.queue_id AND l.at < $3 AND pg_catalog.pg_has_role($1, q.owner, 'USAGE')
    RETURNING 1
), c AS (
    DELETE FROM floe.queue_clocks k
     USING floe.queues q
     WHERE q.id = k.queue_id AND k.next_start < $2 - interval '1 hour'
       AND pg_catalog.pg_has_role($1, q.owner, 'USAGE')
    RETURNING 1
), orphans AS (
    DELETE FROM floe.queue_jobs j
     WHERE $4 AND NOT EXISTS (SELECT 1 FROM floe.queues q WHERE q.id = j.queue_id)
    RETURNING 1
)
SELECT (SELECT count(*) FROM m) + (SELECT count(*) FROM c) + (SELECT count(*) FROM orphans)";

/// The machinery of `floe.queue_maintenance` at `now` (`minute`: the metrics row's minute;
/// `keep`: how long metrics rows are kept): (returned, dead, metric_rows, pruned).
pub(super) fn run(
    s: &mut Session,
    now: Micros,
    minute: Micros,
    keep: Micros,
) -> Result<(i64, i64, i64, i64), FloeError> {
    let caller = s.caller;
    // SAFETY: catalog lookups of the caller's role.
    let may_sweep = unsafe { pg_sys::superuser_arg(caller) };
    let dead = s
        .run(EXPIRED_TO_DEAD, &[caller.into(), ts(now).into()])?
        .len() as i64;
    // Due and expired jobs of every queue, as dequeue wakes them (1000 at a time).
    let mut queues = Vec::new();
    for row in s.run(USABLE_QUEUES, &[caller.into()])? {
        queues.extend(row.get::<i32>(1)?);
    }
    let mut returned = 0;
    for qid in queues {
        let Some(q) = catalog::by_id(s, qid)? else {
            continue;
        };
        loop {
            let n = wake(s, &q, now)?;
            returned += n as i64;
            if n < WAKE_BATCH {
                break;
            }
        }
    }
    let metrics = s
        .run(
            RECORD_METRICS,
            &[
                caller.into(),
                ts(now).into(),
                ts(now - 60 * SECOND).into(),
                Option::<&str>::None.into(),
                ts(minute).into(),
            ],
        )?
        .len() as i64;
    let pruned = s
        .run(
            PRUNE,
            &[
                caller.into(),
                ts(now).into(),
                ts(now - keep).into(),
                may_sweep.into(),
            ],
        )?
        .first()
        .get::<i64>(1)?
        .unwrap_or(0);
    Ok((returned, dead, metrics, pruned))
}
