//! Finishing a job: complete (into the archive), fail (retry after a backoff, or a dead
//! letter), extend, cancel, and redrive dead letters; who may finish a job and why not
//! (SPI, as the extension's owner, machinery).

use super::catalog;
use super::deliver::{drop_floor, unit_random};
use super::errors::{not_member_job, refused};
use super::priority::{self, Tier};
use super::queues::check_access;
use super::retry::{self, AfterFailure, Found};
use crate::error::FloeError;
use crate::privileged::Session;
use crate::sqltypes::{interval, ts, us_of, Micros};
use pgrx::prelude::*;
use pgrx::Uuid;

/// The archive's insert, its columns in the order of every `SELECT` that feeds it.
macro_rules! into_archive {
    () => {
        "INSERT INTO floe.queue_archive (id, queue_id, state, tier, run_at, tenant, dedup_key,
            payload, attempts, enqueued_at, started_at, finished_at, last_error)"
    };
}
pub(super) use into_archive;

// $1 ids, $2 lease (single job only), $3 now. "Running" is tested as `lease IS NOT NULL`
// (the same thing), not `state = 'running'`: that would let the planner use the partial wake
// index (`state <> 'ready'`), and a generic plan then scans all of it instead of the primary
// key. Returns the queues of the completed jobs; the caller's membership is checked after
// (an ERROR then undoes the statement).
const COMPLETE: &str = concat!(
    "
WITH d AS (
    DELETE FROM floe.queue_jobs j
     WHERE j.id = ANY ($1) AND j.lease IS NOT NULL AND j.wake_at > $3
       AND ($2::uuid IS NULL OR j.lease = $2)
    RETURNING j.*
), a AS (
",
    into_archive!(),
    "
    SELECT id, queue_id, 'completed', tier, run_at, tenant, dedup_key, payload, attempts,
           enqueued_at, started_at, $3, last_error
      FROM d
     WHERE EXISTS (SELECT 1 FROM floe.queues q WHERE q.id = d.queue_id AND q.archive_completed)
)
SELECT id, queue_id FROM d"
);

/// Completes the jobs `ids` (all of them, or an ERROR naming the first that could not be).
pub(super) fn complete_jobs(
    s: &mut Session,
    ids: Vec<i64>,
    lease: Option<Uuid>,
    now: Micros,
) -> Result<i64, FloeError> {
    let table = s.run(
        COMPLETE,
        &[ids.clone().into(), lease.into(), ts(now).into()],
    )?;
    let mut done = Vec::with_capacity(table.len());
    let mut queues = Vec::new();
    for row in table {
        done.push(row.get::<i64>(1)?.unwrap_or(0));
        let qid = row.get::<i32>(2)?.unwrap_or(0);
        if !queues.contains(&qid) {
            queues.push(qid);
        }
    }
    for qid in queues {
        job_queue(s, qid, ids[0])?;
    }
    if done.len() == ids.len() {
        return Ok(done.len() as i64);
    }
    // The first job that could not be completed names the problem; the ERROR rolls back
    // the others.
    let first = ids
        .iter()
        .copied()
        .find(|i| !done.contains(i))
        .unwrap_or_default();
    Err(why_not(s, first, lease, now))
}

// $1 id
const LIVE_JOB: &str = "
SELECT j.state, j.wake_at, j.lease, j.attempts, j.queue_id FROM floe.queue_jobs j WHERE j.id = $1";

// $1 id
const FINISHED_JOB: &str = "
SELECT a.state, a.queue_id FROM floe.queue_archive a
 WHERE a.id = $1
 ORDER BY a.finished_at DESC
 LIMIT 1";

/// The queue of job `id` (in queue `qid`), when the caller may use it: 42501 without naming
/// the queue otherwise, and "no such job" when the queue is gone.
fn job_queue(s: &mut Session, qid: i32, id: i64) -> Result<std::rc::Rc<catalog::Queue>, FloeError> {
    match catalog::by_id(s, qid)? {
        Some(q) if catalog::is_member(s.caller, &q) => Ok(q),
        Some(_) => Err(not_member_job(id)),
        None => Err(refused(id, retry::Refusal::NoSuchJob)),
    }
}

/// Where job `id` is, for the caller (who must be a member of its queue's owner role).
fn find_job(
    s: &mut Session,
    id: i64,
    lease: Option<Uuid>,
    now: Micros,
) -> Result<Found, FloeError> {
    let table = s.run(LIVE_JOB, &[id.into()])?;
    if !table.is_empty() {
        let row = table.first();
        job_queue(s, row.get::<i32>(5)?.unwrap_or(0), id)?;
        let wake = row.get::<TimestampWithTimeZone>(2)?.map(us_of);
        let held: Option<Uuid> = row.get(3)?;
        return Ok(Found::Live {
            state: row.get::<String>(1)?.unwrap_or_default(),
            expired: wake.is_some_and(|w| w <= now),
            lease_matches: lease.map(|l| held == Some(l)),
            attempts: row.get::<i32>(4)?.unwrap_or(0),
        });
    }
    let table = s.run(FINISHED_JOB, &[id.into()])?;
    if !table.is_empty() {
        let row = table.first();
        job_queue(s, row.get::<i32>(2)?.unwrap_or(0), id)?;
        return Ok(Found::Finished {
            state: row.get::<String>(1)?.unwrap_or_default(),
        });
    }
    Ok(Found::Missing)
}

/// The error for a job the caller could not finish (there is always one: the statement
/// that would have finished it found nothing).
fn why_not(s: &mut Session, id: i64, lease: Option<Uuid>, now: Micros) -> FloeError {
    match find_job(s, id, lease, now) {
        Err(e) => e,
        Ok(found) => refused(
            id,
            retry::may_finish(&found).unwrap_or(retry::Refusal::Expired),
        ),
    }
}

// $1 id
const LOCK_JOB: &str = "
SELECT j.state, j.wake_at, j.lease, j.attempts, j.queue_id, j.tier FROM floe.queue_jobs j
 WHERE j.id = $1
   FOR UPDATE";

// $1 id, $2 run_at, $3 sort_key, $4 error
const RETRY_JOB: &str = "
UPDATE floe.queue_jobs
   SET state = 'scheduled', run_at = $2, sort_key = $3, wake_at = $2, lease = NULL, last_error = $4
 WHERE id = $1";

// $1 ids, $2 now, $3 state, $4 error (NULL: keep the job's)
const ARCHIVE_JOBS: &str = concat!(
    "
WITH d AS (DELETE FROM floe.queue_jobs WHERE id = ANY ($1) RETURNING *)
",
    into_archive!(),
    "
SELECT id, queue_id, $3, tier, run_at, tenant, dedup_key, payload, attempts, enqueued_at,
       started_at, $2, coalesce($4, last_error)
  FROM d"
);

/// The job, locked, when the caller holds it (running, visible, lease matching).
struct Held {
    attempts: i32,
    tier: Tier,
    queue: std::rc::Rc<catalog::Queue>,
}

fn lock_held(
    s: &mut Session,
    id: i64,
    lease: Option<Uuid>,
    now: Micros,
) -> Result<Held, FloeError> {
    let table = s.run(LOCK_JOB, &[id.into()])?;
    if table.is_empty() {
        return Err(why_not(s, id, lease, now));
    }
    let row = table.first();
    let queue = job_queue(s, row.get::<i32>(5)?.unwrap_or(0), id)?;
    let wake = row.get::<TimestampWithTimeZone>(2)?.map(us_of);
    let current: Option<Uuid> = row.get(3)?;
    let attempts = row.get::<i32>(4)?.unwrap_or(0);
    let found = Found::Live {
        state: row.get::<String>(1)?.unwrap_or_default(),
        expired: wake.is_some_and(|w| w <= now),
        lease_matches: lease.map(|l| current == Some(l)),
        attempts,
    };
    if let Some(why) = retry::may_finish(&found) {
        return Err(refused(id, why));
    }
    Ok(Held {
        attempts,
        tier: Tier::ALL[row.get::<i16>(6)?.unwrap_or(2).clamp(0, 4) as usize],
        queue,
    })
}

/// The machinery of `floe.fail`: "scheduled" (retried after a backoff) or "dead".
pub(super) fn fail_job(
    s: &mut Session,
    id: i64,
    error: Option<&str>,
    lease: Option<Uuid>,
    now: Micros,
) -> Result<String, FloeError> {
    let held = lock_held(s, id, lease, now)?;
    let message = error.unwrap_or("failed").to_string();
    match retry::after_failure(
        held.attempts,
        held.queue.max_attempts,
        held.queue.retry_base,
        held.queue.retry_max,
        unit_random(),
    ) {
        AfterFailure::Retry(delay) => {
            let run_at = now.saturating_add(delay);
            let key = priority::sort_key(run_at, held.tier, held.queue.aging_step);
            s.run(
                RETRY_JOB,
                &[id.into(), ts(run_at).into(), ts(key).into(), message.into()],
            )?;
            Ok("scheduled".to_string())
        }
        AfterFailure::Dead => {
            s.run(
                ARCHIVE_JOBS,
                &[
                    vec![id].into(),
                    ts(now).into(),
                    "dead".into(),
                    message.into(),
                ],
            )?;
            Ok("dead".to_string())
        }
    }
}

// $1 id, $2 lease, $3 now, $4 extension (NULL: the queue's visibility timeout)
const EXTEND: &str = "
UPDATE floe.queue_jobs j
   SET wake_at = $3 + coalesce($4, (SELECT q.visibility_timeout FROM floe.queues q
                                     WHERE q.id = j.queue_id))
 WHERE j.id = $1 AND j.lease IS NOT NULL AND j.wake_at > $3
   AND ($2::uuid IS NULL OR j.lease = $2)
RETURNING j.wake_at, j.queue_id";

/// The machinery of `floe.extend`: the job's new deadline.
pub(super) fn extend_job(
    s: &mut Session,
    id: i64,
    by: Option<Micros>,
    lease: Option<Uuid>,
    now: Micros,
) -> Result<TimestampWithTimeZone, FloeError> {
    let table = s.run(
        EXTEND,
        &[
            id.into(),
            lease.into(),
            ts(now).into(),
            by.map(interval).into(),
        ],
    )?;
    if table.is_empty() {
        return Err(why_not(s, id, lease, now));
    }
    let row = table.first();
    let until = row.get::<TimestampWithTimeZone>(1)?.unwrap_or(ts(now));
    job_queue(s, row.get::<i32>(2)?.unwrap_or(0), id)?;
    Ok(until)
}

// $1 id
const LOCK_PENDING: &str = "
SELECT j.state, j.queue_id FROM floe.queue_jobs j WHERE j.id = $1 FOR UPDATE";

/// The machinery of `floe.cancel`.
pub(super) fn cancel_job(s: &mut Session, id: i64, now: Micros) -> Result<(), FloeError> {
    let table = s.run(LOCK_PENDING, &[id.into()])?;
    if table.is_empty() {
        return Err(why_not(s, id, None, now));
    }
    let row = table.first();
    job_queue(s, row.get::<i32>(2)?.unwrap_or(0), id)?;
    if row.get::<String>(1)?.as_deref() == Some("running") {
        return Err(FloeError::WrongState {
            message: format!("job {id} is running"),
            hint: "A worker holds it: it ends with floe.complete() or floe.fail(), or comes back when its visibility timeout passes.".into(),
        });
    }
    s.run(
        ARCHIVE_JOBS,
        &[
            vec![id].into(),
            ts(now).into(),
            "cancelled".into(),
            "cancelled".into(),
        ],
    )?;
    Ok(())
}

// $1 queue id, $2 ids (NULL: all), $3 since (NULL: any time), $4 now. Inserts first and
// removes from the archive exactly what went in: a dead letter whose dedup key is live
// again, or taken by another dead letter of this call, stays dead instead of failing it all.
const REDRIVE: &str = "
WITH q AS (SELECT id, aging_step FROM floe.queues WHERE id = $1),
candidates AS (
    SELECT a.*, q.aging_step FROM floe.queue_archive a, q
     WHERE a.queue_id = q.id AND a.state = 'dead'
       AND ($2::bigint[] IS NULL OR a.id = ANY ($2))
       AND ($3::timestamptz IS NULL OR a.finished_at >= $3)
), back AS (
    INSERT INTO floe.queue_jobs (id, queue_id, state, tier, run_at, sort_key, tenant, dedup_key,
                                 payload, enqueued_at, attempts, last_error)
    SELECT id, queue_id, 'ready', tier, $4, $4 + aging_step * tier, tenant, dedup_key, payload,
           enqueued_at, 0, last_error
      FROM candidates
    ON CONFLICT DO NOTHING
    RETURNING id
), gone AS (
    DELETE FROM floe.queue_archive a USING back
     WHERE a.id = back.id AND a.queue_id = $1 AND a.state = 'dead'
)
SELECT id FROM back";

/// The machinery of `floe.redrive`: how many dead letters went back.
pub(super) fn redrive_dead(
    s: &mut Session,
    queue: &str,
    ids: &Option<Vec<i64>>,
    since: Option<TimestampWithTimeZone>,
    now: Micros,
) -> Result<i64, FloeError> {
    let qid = check_access(s, queue)?;
    drop_floor(qid);
    let table = s.run(
        REDRIVE,
        &[qid.into(), ids.clone().into(), since.into(), ts(now).into()],
    )?;
    Ok(table.len() as i64)
}
