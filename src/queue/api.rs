//! The queue's SQL functions. Thin glue: arguments are checked here, the ordering, retry and
//! health logic is in `priority.rs`, `retry.rs` and `checks.rs`, and every statement runs
//! through `crate::privileged` (as the extension's owner, from saved plans), checking the
//! caller's membership in the queue's owner role inside the statement itself.

use super::catalog;
use super::checks::{self, QueueFacts};
use super::priority::{self, Tier};
use super::retry::{self, AfterFailure, Found};
use crate::error::{invalid, required, tenant_denied, tenant_key, ErrorReport, FloeError};
use crate::health::checks::Check;
use crate::privileged::{self, Session};
use crate::sqltypes::{
    duration, interval, ts, us_of, wall_clock, Jsonb, JsonbArray, Micros, DAY, SECOND,
};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::Uuid;

fn tier_of(priority: Option<&str>) -> Result<Tier, FloeError> {
    let text = priority.unwrap_or("normal");
    Tier::parse(text).ok_or_else(|| {
        invalid(
            "priority",
            text,
            "one of critical, high, normal, low, background",
        )
    })
}

fn queue_name(queue: Option<&str>) -> Result<&str, FloeError> {
    required(queue, "queue")
}

pub(super) fn no_queue(name: &str) -> FloeError {
    FloeError::NotFound {
        kind: "queue",
        name: name.to_string(),
        hint: "floe.queue_settings lists the queues you can use; floe.create_queue() makes one."
            .into(),
    }
}

/// 42501 for a job of a queue the caller may not use (without naming the queue).
fn not_member_job(id: i64) -> FloeError {
    FloeError::PermissionDenied {
        message: format!("permission denied for job {id}"),
        detail: None,
        hint: "A queue's jobs are handled by its owner role and that role's members.".into(),
    }
}

pub(super) fn not_member(name: &str) -> FloeError {
    FloeError::PermissionDenied {
        message: format!("permission denied for queue \"{name}\""),
        detail: None,
        hint: "A queue is used by its owner role and that role's members: GRANT the owner role to this role.".into(),
    }
}

fn refused(id: i64, why: retry::Refusal) -> FloeError {
    let (message, hint) = why.explain(id);
    match why {
        retry::Refusal::NoSuchJob => FloeError::NotFound {
            kind: "job",
            name: id.to_string(),
            hint: hint.into(),
        },
        _ => FloeError::WrongState {
            message,
            hint: hint.into(),
        },
    }
}

// ---------------------------------------------------------------------------------------
// Queues
// ---------------------------------------------------------------------------------------

/// The settings of `create_queue`/`alter_queue`, in microseconds.
struct Settings {
    visibility_timeout: Option<Micros>,
    max_attempts: Option<i32>,
    aging_step: Option<Micros>,
    max_wait: Option<Micros>,
    retry_base: Option<Micros>,
    retry_max: Option<Micros>,
    fair: Option<bool>,
    fair_share: Option<Micros>,
    archive_completed: Option<bool>,
}

impl Settings {
    #[allow(clippy::too_many_arguments)]
    fn parse(
        visibility_timeout: Option<Interval>,
        max_attempts: Option<i32>,
        aging_step: Option<Interval>,
        max_wait: Option<Interval>,
        retry_base: Option<Interval>,
        retry_max: Option<Interval>,
        fair: Option<bool>,
        fair_share: Option<Interval>,
        archive_completed: Option<bool>,
    ) -> Result<Settings, FloeError> {
        let ms = 1000;
        let opt = |arg, v: Option<Interval>, min, max, expected| {
            v.map(|v| duration(arg, v, min, max, expected)).transpose()
        };
        if let Some(n) = max_attempts {
            if !(1..=1000).contains(&n) {
                return Err(invalid("max_attempts", n.to_string(), "1 to 1000"));
            }
        }
        Ok(Settings {
            visibility_timeout: opt(
                "visibility_timeout",
                visibility_timeout,
                10 * ms,
                7 * DAY,
                "an interval from 10 milliseconds to 7 days",
            )?,
            max_attempts,
            aging_step: opt(
                "aging_step",
                aging_step,
                ms,
                7 * DAY,
                "an interval from 1 millisecond to 7 days",
            )?,
            max_wait: opt(
                "max_wait",
                max_wait,
                ms,
                365 * DAY,
                "an interval from 1 millisecond to 365 days",
            )?,
            retry_base: opt(
                "retry_base",
                retry_base,
                0,
                DAY,
                "an interval from 0 to 1 day",
            )?,
            retry_max: opt(
                "retry_max",
                retry_max,
                0,
                7 * DAY,
                "an interval from 0 to 7 days",
            )?,
            fair,
            fair_share: opt(
                "fair_share",
                fair_share,
                1,
                3600 * SECOND,
                "an interval from 1 microsecond to 1 hour",
            )?,
            archive_completed,
        })
    }
}

const CREATE_QUEUE: &str = "
INSERT INTO floe.queues AS q (name, owner, visibility_timeout, max_attempts, aging_step, max_wait,
                              retry_base, retry_max, fair, fair_share, archive_completed)
VALUES ($1, $2::oid::regrole, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (name) DO NOTHING
RETURNING q.id";

const QUEUE_OWNER: &str = "SELECT q.owner::oid FROM floe.queues q WHERE q.name = $1";

const ARCHIVE_SET_EXISTS: &str =
    "SELECT EXISTS (SELECT 1 FROM floe.partition_sets WHERE parent = 'floe.queue_archive')";

const LOCK_ARCHIVE_SETUP: &str =
    "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('floe.queue_archive'))";

// (default_tablespace comes from the caller's session: the archive goes to the database's.)
const CREATE_ARCHIVE_SET: &str = "
SELECT pg_catalog.set_config('default_tablespace', '', true),
       floe.create_parent('floe.queue_archive', 'finished_at', part_interval => '1 month',
                          premake => 2, default_partition => true),
       floe.set_retention('floe.queue_archive', '3 months', 'drop'),
       floe.complete_own_partitions()";

/// The archive becomes a monthly partition set with the first queue (not in the install
/// script: partitions made there would be extension members, which retention cannot drop and
/// pg_dump would not dump).
fn ensure_archive(s: &mut Session) -> Result<(), FloeError> {
    s.create_once(ARCHIVE_SET_EXISTS, LOCK_ARCHIVE_SETUP, CREATE_ARCHIVE_SET)
}

#[allow(clippy::too_many_arguments)]
#[pg_extern(volatile)]
fn create_queue(
    name: Option<&str>,
    visibility_timeout: default!(Option<Interval>, "'5 minutes'"),
    max_attempts: default!(Option<i32>, 5),
    aging_step: default!(Option<Interval>, "'10 minutes'"),
    max_wait: default!(Option<Interval>, "NULL"),
    retry_base: default!(Option<Interval>, "'10 seconds'"),
    retry_max: default!(Option<Interval>, "'1 hour'"),
    fair: default!(Option<bool>, false),
    fair_share: default!(Option<Interval>, "'100 milliseconds'"),
    archive_completed: default!(Option<bool>, true),
    if_not_exists: default!(Option<bool>, false),
) -> Result<bool, ErrorReport> {
    let name = required(name, "name")?;
    if !valid_queue_name(name) {
        return Err(invalid(
            "name",
            name,
            "1 to 63 characters: letters, digits, _ . : - (not starting with . : -)",
        )
        .into());
    }
    let s = Settings::parse(
        visibility_timeout,
        max_attempts,
        aging_step,
        max_wait,
        retry_base,
        retry_max,
        fair,
        fair_share,
        archive_completed,
    )?;
    let aging = s.aging_step.unwrap_or(600 * SECOND);
    let max_wait = s
        .max_wait
        .unwrap_or_else(|| priority::overtaking_horizon(0, aging));
    let retry_base = s.retry_base.unwrap_or(10 * SECOND);
    let retry_max = s.retry_max.unwrap_or(3600 * SECOND);
    if retry_max < retry_base {
        return Err(invalid(
            "retry_max",
            interval(retry_max).to_string(),
            "at least retry_base",
        )
        .into());
    }
    Ok(privileged::run(|session| {
        let created = !session
            .run(
                CREATE_QUEUE,
                &[
                    name.into(),
                    session.caller.into(),
                    interval(s.visibility_timeout.unwrap_or(300 * SECOND)).into(),
                    s.max_attempts.unwrap_or(5).into(),
                    interval(aging).into(),
                    interval(max_wait).into(),
                    interval(retry_base).into(),
                    interval(retry_max).into(),
                    s.fair.unwrap_or(false).into(),
                    interval(s.fair_share.unwrap_or(100_000)).into(),
                    s.archive_completed.unwrap_or(true).into(),
                ],
            )?
            .is_empty();
        if !created {
            // Only the queue's own owner gets "exists, fine": a role with the privileges of
            // every role (a superuser, an admin) must not silently adopt a queue that
            // someone else created under the name it wanted.
            let owner = session.run(QUEUE_OWNER, &[name.into()])?;
            let same =
                !owner.is_empty() && owner.first().get::<pg_sys::Oid>(1)? == Some(session.caller);
            if if_not_exists.unwrap_or(false) && same {
                return Ok(false);
            }
            return Err(FloeError::AlreadyExists {
                kind: "queue",
                name: name.to_string(),
                hint: if same {
                    "Pick another name, pass if_not_exists => true, or change it with floe.alter_queue()."
                } else {
                    "Another role owns a queue of that name: pick another name, or create it as that role."
                }
                .into(),
            });
        }
        ensure_archive(session)?;
        Ok(true)
    })?)
}

/// Queue names: what `floe.queues` checks, so the error comes before the insert.
fn valid_queue_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(b))
}

const ALTER_QUEUE: &str = "
UPDATE floe.queues q
   SET visibility_timeout = coalesce($3, q.visibility_timeout),
       max_attempts       = coalesce($4, q.max_attempts),
       aging_step         = coalesce($5, q.aging_step),
       max_wait           = coalesce($6, q.max_wait),
       retry_base         = coalesce($7, q.retry_base),
       retry_max          = coalesce($8, q.retry_max),
       fair               = coalesce($9, q.fair),
       fair_share         = coalesce($10, q.fair_share),
       archive_completed  = coalesce($11, q.archive_completed)
 WHERE q.name = $1 AND pg_catalog.pg_has_role($2, q.owner, 'USAGE')
RETURNING q.retry_base <= q.retry_max";

/// The queue's id when it exists and the caller may use it; the reason otherwise.
fn check_access(s: &mut Session, name: &str) -> Result<i32, FloeError> {
    Ok(catalog::usable(s, name)?.id)
}

#[allow(clippy::too_many_arguments)]
#[pg_extern(volatile)]
fn alter_queue(
    name: Option<&str>,
    visibility_timeout: default!(Option<Interval>, "NULL"),
    max_attempts: default!(Option<i32>, "NULL"),
    aging_step: default!(Option<Interval>, "NULL"),
    max_wait: default!(Option<Interval>, "NULL"),
    retry_base: default!(Option<Interval>, "NULL"),
    retry_max: default!(Option<Interval>, "NULL"),
    fair: default!(Option<bool>, "NULL"),
    fair_share: default!(Option<Interval>, "NULL"),
    archive_completed: default!(Option<bool>, "NULL"),
) -> Result<(), ErrorReport> {
    let name = required(name, "name")?;
    let s = Settings::parse(
        visibility_timeout,
        max_attempts,
        aging_step,
        max_wait,
        retry_base,
        retry_max,
        fair,
        fair_share,
        archive_completed,
    )?;
    Ok(privileged::run(|session| {
        let table = session.run(
            ALTER_QUEUE,
            &[
                name.into(),
                session.caller.into(),
                s.visibility_timeout.map(interval).into(),
                s.max_attempts.into(),
                s.aging_step.map(interval).into(),
                s.max_wait.map(interval).into(),
                s.retry_base.map(interval).into(),
                s.retry_max.map(interval).into(),
                s.fair.into(),
                s.fair_share.map(interval).into(),
                s.archive_completed.into(),
            ],
        )?;
        if table.is_empty() {
            check_access(session, name)?;
            return Err(no_queue(name));
        }
        if !table.first().get::<bool>(1)?.unwrap_or(true) {
            return Err(invalid(
                "retry_max",
                "less than retry_base",
                "at least retry_base",
            ));
        }
        Ok(())
    })?)
}

// (Under lock_timeout: waiting behind a long transaction would make every queue's writers
// wait behind drop_queue.)
const LOCK_TIMEOUT: &str = "SELECT pg_catalog.set_config('lock_timeout', '2s', true)";
const LOCK_JOBS: &str = "LOCK TABLE floe.queue_jobs IN SHARE ROW EXCLUSIVE MODE";

const LIVE_JOBS: &str = "SELECT count(*) FROM floe.queue_jobs WHERE queue_id = $1";

const DROP_QUEUE: &str = "
WITH jobs AS (DELETE FROM floe.queue_jobs WHERE queue_id = $1 RETURNING 1),
     clocks AS (DELETE FROM floe.queue_clocks WHERE queue_id = $1),
     metrics AS (DELETE FROM floe.queue_metrics_log WHERE queue_id = $1),
     queue AS (DELETE FROM floe.queues WHERE id = $1)
SELECT count(*) FROM jobs";

#[pg_extern(volatile)]
fn drop_queue(
    name: Option<&str>,
    force: default!(Option<bool>, false),
) -> Result<i64, ErrorReport> {
    let name = required(name, "name")?;
    Ok(privileged::run(|session| {
        let id = check_access(session, name)?;
        // Writers of every queue wait (briefly) while the queue goes: a job enqueued
        // meanwhile is either counted here or sees the queue gone.
        session.run(LOCK_TIMEOUT, &[])?;
        session.run(LOCK_JOBS, &[])?;
        let id = match check_access(session, name) {
            Ok(again) if again == id => id,
            _ => return Err(no_queue(name)),
        };
        let live = session
            .run(LIVE_JOBS, &[id.into()])?
            .first()
            .get::<i64>(1)?
            .unwrap_or(0);
        if live > 0 && !force.unwrap_or(false) {
            return Err(FloeError::WrongState {
                message: format!("queue \"{name}\" has {live} live jobs (ready, scheduled or running)"),
                hint: "Let workers drain it, or call floe.drop_queue(name, force => true) to discard them (they are not archived).".into(),
            });
        }
        Ok(session
            .run(DROP_QUEUE, &[id.into()])?
            .first()
            .get::<i64>(1)?
            .unwrap_or(0))
    })?)
}

// ---------------------------------------------------------------------------------------
// Enqueue
// ---------------------------------------------------------------------------------------

// The common case, without dedup key or fair clock: every value computed by the caller.
// $1 queue id, $2 state, $3 tier, $4 run_at, $5 sort_key, $6 wake_at, $7 tenant, $8 payload,
// $9 now. Only while the queue exists: drop_queue locks floe.queue_jobs against writers, so
// an insert that waited for it sees the drop (its snapshot is taken after its locks), and no
// job is left behind for a dropped queue. No row: the caller goes the general way.
const INSERT_JOB: &str = "
INSERT INTO floe.queue_jobs (queue_id, state, tier, run_at, sort_key, wake_at, tenant, payload,
                             enqueued_at)
SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9
 WHERE EXISTS (SELECT 1 FROM floe.queues q WHERE q.id = $1)
RETURNING id";

// $1 queue, $2 caller, $3 dedup keys
const PENDING_WITH_KEYS: &str = "
SELECT j.dedup_key, j.id FROM floe.queue_jobs j JOIN floe.queues q ON q.id = j.queue_id
 WHERE q.name = $1 AND pg_catalog.pg_has_role($2, q.owner, 'USAGE')
   AND j.dedup_key = ANY ($3)";

fn existing_with_keys(
    s: &mut Session,
    queue: &str,
    keys: Vec<String>,
) -> Result<std::collections::HashMap<String, i64>, FloeError> {
    let mut out = std::collections::HashMap::new();
    for row in s.run(
        PENDING_WITH_KEYS,
        &[queue.into(), s.caller.into(), keys.into()],
    )? {
        if let (Some(k), Some(id)) = (row.get::<String>(1)?, row.get::<i64>(2)?) {
            out.insert(k, id);
        }
    }
    Ok(out)
}

#[pg_extern(volatile)]
fn enqueue(
    queue: Option<&str>,
    payload: Option<Jsonb>,
    priority: default!(Option<&str>, "'normal'"),
    run_at: default!(Option<TimestampWithTimeZone>, "now()"),
    tenant: default!(Option<Uuid>, "NULL"),
    dedup_key: default!(Option<&str>, "NULL"),
) -> Result<i64, ErrorReport> {
    let queue = queue_name(queue)?;
    let payload = required(payload, "payload")?;
    let tier = tier_of(priority)?;
    let now = wall_clock();
    let run_at = run_at.map(us_of).unwrap_or(now);
    Ok(privileged::run(|s| {
        let q = catalog::usable(s, queue)?;
        // A fair queue's virtual start is never before run_at: this is the lowest key.
        lower_floor(q.id, priority::sort_key(run_at, tier, q.aging_step));
        if dedup_key.is_none() && !(q.fair && tenant.is_some()) {
            let ready = run_at <= now;
            let table = s.run(
                INSERT_JOB,
                &[
                    q.id.into(),
                    if ready { "ready" } else { "scheduled" }.into(),
                    (tier.rank() as i16).into(),
                    ts(run_at).into(),
                    ts(priority::sort_key(run_at, tier, q.aging_step)).into(),
                    (!ready).then(|| ts(run_at)).into(),
                    tenant.into(),
                    payload.into(),
                    ts(now).into(),
                ],
            )?;
            if let Some(id) = table.first().get::<i64>(1).ok().flatten() {
                return Ok(id);
            }
        }
        // With a dedup key or a fair clock: the bulk statement, for one payload.
        let ids = insert_many(
            s,
            queue,
            vec![payload].into(),
            1,
            (tier, run_at, tenant, now),
            vec![dedup_key.map(str::to_string)],
        )?;
        ids.first().copied().ok_or_else(|| no_queue(queue))
    })?)
}

// $1 queue, $2 caller, $3 run_at, $4 tier, $5 tenant, $6 payloads, $7 dedup keys, $8 now,
// $9 how many
const ENQUEUE_MANY: &str = "
WITH q AS (
    SELECT id, aging_step, fair, fair_share FROM floe.queues
     WHERE name = $1 AND pg_catalog.pg_has_role($2, owner, 'USAGE')
), clock AS (
    INSERT INTO floe.queue_clocks AS c (queue_id, tenant, tier, next_start)
    SELECT q.id, $5, $4, $3 + q.fair_share * $9 FROM q WHERE q.fair AND $5 IS NOT NULL
    ON CONFLICT (queue_id, tenant, tier) DO UPDATE
       SET next_start = GREATEST(c.next_start, $3)
                      + (SELECT f.fair_share * $9 FROM floe.queues f WHERE f.id = c.queue_id)
    RETURNING c.next_start
)
INSERT INTO floe.queue_jobs (queue_id, state, tier, run_at, sort_key, wake_at, tenant, dedup_key,
                             payload, enqueued_at)
SELECT q.id,
       CASE WHEN $3 <= $8 THEN 'ready' ELSE 'scheduled' END,
       $4, $3,
       coalesce((SELECT next_start FROM clock) - q.fair_share * ($9 - p.n + 1), $3)
           + q.aging_step * $4,
       CASE WHEN $3 <= $8 THEN NULL ELSE $3 END,
       $5, ($7::text[])[p.n], p.payload, $8
  FROM q, unnest($6::jsonb[]) WITH ORDINALITY AS p (payload, n)
 ORDER BY p.n
ON CONFLICT (queue_id, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING
RETURNING id, dedup_key";

/// Inserts `n` payloads (a `jsonb[]`) with their dedup keys (one per payload, or none) in one
/// statement; returns the ids in input order, a live job's id for a key that has one.
fn insert_many(
    s: &mut Session,
    queue: &str,
    payloads: DatumWithOid<'_>,
    n: i32,
    (tier, run_at, tenant, now): (Tier, Micros, Option<Uuid>, Micros),
    keys: Vec<Option<String>>,
) -> Result<Vec<i64>, FloeError> {
    let table = s.run(
        ENQUEUE_MANY,
        &[
            queue.into(),
            s.caller.into(),
            ts(run_at).into(),
            (tier.rank() as i32).into(),
            tenant.into(),
            payloads,
            keys.clone().into(),
            ts(now).into(),
            n.into(),
        ],
    )?;
    let mut plain = Vec::new();
    let mut keyed = std::collections::HashMap::new();
    for row in table {
        let id = row.get::<i64>(1)?.unwrap_or(0);
        match row.get::<String>(2)? {
            Some(k) => {
                keyed.insert(k, id);
            }
            None => plain.push(id),
        }
    }
    if n > 0 && plain.is_empty() && keyed.is_empty() {
        check_access(s, queue)?;
    }
    let missing: Vec<String> = keys
        .iter()
        .flatten()
        .filter(|k| !keyed.contains_key(*k))
        .cloned()
        .collect();
    if !missing.is_empty() {
        keyed.extend(existing_with_keys(s, queue, missing)?);
    }
    // In input order: a key's job (new or live), or the next new id.
    let mut plain = plain.into_iter();
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n as usize {
        let id = match keys.get(i).cloned().flatten() {
            Some(k) => keyed.get(&k).copied(),
            None => plain.next(),
        };
        out.push(id.ok_or_else(|| FloeError::WrongState {
            message: "a job with one of the dedup keys finished during the call".into(),
            hint: "Retry the call.".into(),
        })?);
    }
    Ok(out)
}

const ARRAY_LENGTH: &str =
    "SELECT pg_catalog.cardinality($1::jsonb[]), pg_catalog.array_position($1::jsonb[], NULL)";

#[pg_extern(volatile)]
fn enqueue_many(
    queue: Option<&str>,
    payloads: Option<JsonbArray>,
    priority: default!(Option<&str>, "'normal'"),
    run_at: default!(Option<TimestampWithTimeZone>, "now()"),
    tenant: default!(Option<Uuid>, "NULL"),
    dedup_keys: default!(Option<Vec<Option<String>>>, "NULL"),
) -> Result<SetOfIterator<'static, i64>, ErrorReport> {
    let queue = queue_name(queue)?;
    let payloads = required(payloads, "payloads")?;
    let tier = tier_of(priority)?;
    let now = wall_clock();
    let run_at = run_at.map(us_of).unwrap_or(now);
    let ids = privileged::run(|s| {
        let q = catalog::usable(s, queue)?;
        lower_floor(q.id, priority::sort_key(run_at, tier, q.aging_step));
        let row = s.run(ARRAY_LENGTH, &[payloads.into()])?;
        let row = row.first();
        let n = row.get::<i32>(1)?.unwrap_or(0);
        if row.get::<i32>(2)?.is_some() {
            return Err(invalid(
                "payloads",
                "an array with NULL",
                "jsonb values (no NULL)",
            ));
        }
        let keys: Vec<Option<String>> = dedup_keys.clone().unwrap_or_default();
        if dedup_keys.is_some() && keys.len() != n as usize {
            return Err(invalid(
                "dedup_keys",
                format!("{} keys", keys.len()),
                &format!("one key (or NULL) per payload: {n}"),
            ));
        }
        insert_many(
            s,
            queue,
            payloads.into(),
            n,
            (tier, run_at, tenant, now),
            keys,
        )
    })?;
    Ok(SetOfIterator::new(ids))
}

// ---------------------------------------------------------------------------------------
// Dequeue
// ---------------------------------------------------------------------------------------

// $1 queue id, $2 max_attempts, $3 now. Due scheduled jobs and expired running jobs (with
// attempts left) become ready, at most WAKE_BATCH of them; returns a row per job.
const WAKE: &str = "
UPDATE floe.queue_jobs j
   SET state = 'ready', wake_at = NULL, lease = NULL,
       last_error = CASE WHEN j.state = 'running'
                         THEN 'visibility timeout expired on attempt ' || j.attempts
                         ELSE j.last_error END
 WHERE j.id = ANY (ARRAY(
           SELECT w.id FROM floe.queue_jobs w
            WHERE w.queue_id = $1 AND w.state <> 'ready' AND w.wake_at <= $3
              AND (w.state = 'scheduled' OR w.attempts < $2)
            ORDER BY w.wake_at
            LIMIT 1000
              FOR UPDATE SKIP LOCKED))
RETURNING 1";

/// The LIMIT of WAKE.
const WAKE_BATCH: usize = 1000;

/// How often one backend makes a queue's due and expired jobs ready (besides when a
/// dequeue comes up short): bounds how late a retry or an expired job competes again.
const WAKE_EVERY: Micros = 100_000;

thread_local! {
    static LAST_WAKE: std::cell::RefCell<std::collections::HashMap<i32, Micros>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
    /// Per queue, the (sort_key, id) of the last job this backend's previous dequeue handed
    /// out, when it got a full batch. Every job before it in the ready index was handed out
    /// (its entry is dead until VACUUM), locked by a concurrent dequeue, or gone, so the next
    /// dequeue starts its index scan after it instead of stepping over the dead entries that
    /// pile up at the head of a busy queue (both floe and the textbook queue spent most of a
    /// dequeue there). The floor is dropped, and the scan starts at the head again, every
    /// WAKE_EVERY (with the wake), when a dequeue comes up short, and when this backend
    /// enqueues into the queue; so a job that another session enqueues before the floor (a
    /// more urgent one), or that a rolled-back dequeue leaves there, waits at most WAKE_EVERY
    /// for this backend.
    static FLOOR: std::cell::RefCell<std::collections::HashMap<i32, (Micros, i64)>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// Drops this backend's floor of a queue (it woke jobs, or redrove some).
fn drop_floor(queue: i32) {
    FLOOR.with_borrow_mut(|f| {
        f.remove(&queue);
    });
}

/// This backend enqueued jobs whose keys are at least `key`: the floor goes if they may
/// sort before it.
fn lower_floor(queue: i32, key: Micros) {
    FLOOR.with_borrow_mut(|f| {
        if f.get(&queue).is_some_and(|&(floor, _)| key <= floor) {
            f.remove(&queue);
        }
    });
}

fn wake_due(queue: i32, now: Micros) -> bool {
    LAST_WAKE.with_borrow(|m| {
        m.get(&queue)
            .is_none_or(|&t| now - t >= WAKE_EVERY || now < t)
    })
}

/// A job as `floe.dequeue` returns it.
type DeliveredRow = (
    i64,
    Jsonb,
    String,
    Option<Uuid>,
    i32,
    TimestampWithTimeZone,
    TimestampWithTimeZone,
    TimestampWithTimeZone,
    Uuid,
    Option<String>,
);

/// The rows of `PICK`, each with its sort key.
fn delivered(
    table: pgrx::spi::SpiTupleTable<'_>,
    now: Micros,
) -> Result<Vec<(Micros, DeliveredRow)>, FloeError> {
    let mut rows = Vec::with_capacity(table.len());
    for row in table {
        let tier = Tier::ALL[row.get::<i16>(3)?.unwrap_or(2).clamp(0, 4) as usize];
        let sort_key = row
            .get::<TimestampWithTimeZone>(11)?
            .map(us_of)
            .unwrap_or(0);
        let (Some(id), Some(payload), Some(lease)) = (
            row.get::<i64>(1)?,
            row.get::<Jsonb>(2)?,
            row.get::<Uuid>(9)?,
        ) else {
            continue;
        };
        rows.push((
            sort_key,
            (
                id,
                payload,
                tier.as_str().to_string(),
                row.get::<Uuid>(4)?,
                row.get::<i32>(5)?.unwrap_or(0),
                row.get::<TimestampWithTimeZone>(6)?.unwrap_or(ts(now)),
                row.get::<TimestampWithTimeZone>(7)?.unwrap_or(ts(now)),
                row.get::<TimestampWithTimeZone>(8)?.unwrap_or(ts(now)),
                lease,
                row.get::<String>(10)?,
            ),
        ));
    }
    Ok(rows)
}

fn pick<'c>(
    s: &mut Session<'_, 'c>,
    q: &catalog::Queue,
    batch: i32,
    (until, now): (Micros, Micros),
    floor: Option<(Micros, i64)>,
) -> Result<pgrx::spi::SpiTupleTable<'c>, FloeError> {
    let (key, id) = floor.unwrap_or((Micros::MIN, i64::MIN));
    s.run(
        PICK,
        &[
            q.id.into(),
            batch.into(),
            ts(until).into(),
            ts(now).into(),
            new_lease().into(),
            ts(key).into(),
            id.into(),
        ],
    )
}

fn wake(s: &mut Session, q: &catalog::Queue, now: Micros) -> Result<usize, FloeError> {
    drop_floor(q.id);
    let n = s
        .run(WAKE, &[q.id.into(), q.max_attempts.into(), ts(now).into()])?
        .len();
    LAST_WAKE.with_borrow_mut(|m| {
        if m.len() > 1000 {
            m.clear();
        }
        m.insert(q.id, now);
    });
    Ok(n)
}

// $1 queue id, $2 batch, $3 visible until, $4 now, $5 lease (one per delivery: the jobs of a
// batch share it), $6/$7 the floor: where this backend's previous dequeue ended (see FLOOR).
// The ids go through an array so that the update finds its rows by primary key whatever the
// generic plan thinks of LIMIT $2 (a join there can turn into a hash join over the whole
// table).
const PICK: &str = "
UPDATE floe.queue_jobs j
   SET state = 'running', attempts = j.attempts + 1, started_at = $4, wake_at = $3, lease = $5
 WHERE j.id = ANY (ARRAY(SELECT p.id FROM floe.queue_jobs p
                          WHERE p.queue_id = $1 AND p.state = 'ready'
                            AND (p.sort_key, p.id) > ($6, $7)
                          ORDER BY p.sort_key, p.id
                          LIMIT $2
                            FOR UPDATE SKIP LOCKED))
RETURNING j.id, j.payload, j.tier, j.tenant, j.attempts, j.run_at, j.enqueued_at, j.wake_at,
          j.lease, j.dedup_key, j.sort_key";

// pgrx reads the column names from the tuple type itself, so it cannot be a type alias.
#[allow(clippy::type_complexity)]
#[pg_extern(volatile)]
fn dequeue(
    queue: Option<&str>,
    batch: default!(Option<i32>, 1),
    visibility_timeout: default!(Option<Interval>, "NULL"),
) -> Result<
    TableIterator<
        'static,
        (
            name!(id, i64),
            name!(payload, Jsonb),
            name!(priority, String),
            name!(tenant, Option<Uuid>),
            name!(attempt, i32),
            name!(run_at, TimestampWithTimeZone),
            name!(enqueued_at, TimestampWithTimeZone),
            name!(visible_until, TimestampWithTimeZone),
            name!(lease, Uuid),
            name!(dedup_key, Option<String>),
        ),
    >,
    ErrorReport,
> {
    let queue = queue_name(queue)?;
    // A worker's function: it hands out every tenant's jobs, so not to a transaction that
    // serves one tenant (no tenant context shows another tenant's jobs).
    if crate::tenant::serving_a_tenant() {
        return Err(tenant_denied(
            tenant_key::TENANT_CONTEXT,
            "floe.dequeue hands out every tenant's jobs: it is refused while a tenant context is set".into(),
            Some("A queue's workers serve all tenants; the job's tenant column says whose job each one is."),
            "Dequeue in a transaction without a tenant (a worker's), or in admin mode (SET LOCAL floe.tenant_admin = on).".into(),
        )
        .into());
    }
    let batch = batch.unwrap_or(1);
    if !(1..=10_000).contains(&batch) {
        return Err(invalid("batch", batch.to_string(), "1 to 10000").into());
    }
    let visibility = visibility_timeout
        .map(|v| {
            duration(
                "visibility_timeout",
                v,
                10_000,
                7 * DAY,
                "an interval from 10 milliseconds to 7 days",
            )
        })
        .transpose()?;
    let now = wall_clock();
    let rows = privileged::run(|s| {
        let q = catalog::usable(s, queue)?;
        let until = now.saturating_add(visibility.unwrap_or(q.visibility));
        // Due and expired jobs become ready at most every WAKE_EVERY per backend and queue
        // (one statement fewer on the common path), and whenever the queue comes up short.
        let mut woke = false;
        if wake_due(q.id, now) {
            wake(s, &q, now)?;
            woke = true;
        }
        let floor = FLOOR.with_borrow(|f| f.get(&q.id).copied());
        let mut rows = delivered(pick(s, &q, batch, (until, now), floor)?, now)?;
        if (rows.len() as i32) < batch {
            // Short: wake due jobs (unless just done) and look again from the head.
            let woken = if woke { 0 } else { wake(s, &q, now)? };
            if floor.is_some() || woken > 0 {
                let more = batch - rows.len() as i32;
                rows.extend(delivered(pick(s, &q, more, (until, now), None)?, now)?);
            }
        }
        rows.sort_by_key(|(key, row)| (*key, row.0));
        let last = rows.last().map(|(key, row)| (*key, row.0));
        FLOOR.with_borrow_mut(|f| match last {
            Some(last) if rows.len() as i32 == batch => {
                if f.len() > 1000 {
                    f.clear();
                }
                f.insert(q.id, last);
            }
            _ => {
                f.remove(&q.id);
            }
        });
        Ok(rows.into_iter().map(|(_, row)| row).collect::<Vec<_>>())
    })?;
    Ok(TableIterator::new(rows))
}

// ---------------------------------------------------------------------------------------
// Finishing a job: complete, fail, extend, cancel
// ---------------------------------------------------------------------------------------

/// The archive's insert, its columns in the order of every `SELECT` that feeds it.
macro_rules! into_archive {
    () => {
        "INSERT INTO floe.queue_archive (id, queue_id, state, tier, run_at, tenant, dedup_key,
            payload, attempts, enqueued_at, started_at, finished_at, last_error)"
    };
}

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
fn complete_jobs(
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

#[pg_extern(volatile)]
fn complete(id: Option<i64>, lease: default!(Option<Uuid>, "NULL")) -> Result<(), ErrorReport> {
    let id = required(id, "id")?;
    let now = wall_clock();
    Ok(privileged::run(|s| {
        complete_jobs(s, vec![id], lease, now).map(|_| ())
    })?)
}

#[pg_extern(volatile)]
fn complete_many(ids: Option<Vec<Option<i64>>>) -> Result<i64, ErrorReport> {
    let ids: Vec<i64> = required(ids, "ids")?.into_iter().flatten().collect();
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    if unique.len() != ids.len() {
        return Err(invalid("ids", "an array with repeated ids", "distinct job ids").into());
    }
    let now = wall_clock();
    Ok(privileged::run(|s| complete_jobs(s, unique, None, now))?)
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

/// A fresh lease: a version-4 uuid from Postgres's generator (seeded per backend from a
/// strong source). A lease tells deliveries apart; it guards against stale workers, not
/// against other roles (membership does that), so it needs no cryptographic randomness.
fn new_lease() -> Uuid {
    // SAFETY: the backend's global PRNG state.
    let (hi, lo) = unsafe {
        (
            pg_sys::pg_prng_uint64(&raw mut pg_sys::pg_global_prng_state),
            pg_sys::pg_prng_uint64(&raw mut pg_sys::pg_global_prng_state),
        )
    };
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&hi.to_be_bytes());
    bytes[8..].copy_from_slice(&lo.to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Uuid::from_bytes(bytes)
}

/// A uniform draw in [0, 1) from Postgres's generator (seeded per backend).
fn unit_random() -> f64 {
    // SAFETY: the backend's global PRNG state.
    unsafe { pg_sys::pg_prng_double(&raw mut pg_sys::pg_global_prng_state) }
}

#[pg_extern(volatile)]
fn fail(
    id: Option<i64>,
    error: default!(Option<&str>, "NULL"),
    lease: default!(Option<Uuid>, "NULL"),
) -> Result<String, ErrorReport> {
    let id = required(id, "id")?;
    let now = wall_clock();
    Ok(privileged::run(|s| {
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
    })?)
}

// $1 id, $2 lease, $3 now, $4 extension (NULL: the queue's visibility timeout)
const EXTEND: &str = "
UPDATE floe.queue_jobs j
   SET wake_at = $3 + coalesce($4, (SELECT q.visibility_timeout FROM floe.queues q
                                     WHERE q.id = j.queue_id))
 WHERE j.id = $1 AND j.lease IS NOT NULL AND j.wake_at > $3
   AND ($2::uuid IS NULL OR j.lease = $2)
RETURNING j.wake_at, j.queue_id";

#[pg_extern(volatile)]
fn extend(
    id: Option<i64>,
    by: default!(Option<Interval>, "NULL"),
    lease: default!(Option<Uuid>, "NULL"),
) -> Result<TimestampWithTimeZone, ErrorReport> {
    let id = required(id, "id")?;
    let by = by
        .map(|v| {
            duration(
                "by",
                v,
                10_000,
                7 * DAY,
                "an interval from 10 milliseconds to 7 days",
            )
        })
        .transpose()?;
    let now = wall_clock();
    Ok(privileged::run(|s| {
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
    })?)
}

// $1 id
const LOCK_PENDING: &str = "
SELECT j.state, j.queue_id FROM floe.queue_jobs j WHERE j.id = $1 FOR UPDATE";

#[pg_extern(volatile)]
fn cancel(id: Option<i64>) -> Result<(), ErrorReport> {
    let id = required(id, "id")?;
    let now = wall_clock();
    Ok(privileged::run(|s| {
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
    })?)
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

#[pg_extern(volatile)]
fn redrive(
    queue: Option<&str>,
    ids: default!(Option<Vec<Option<i64>>>, "NULL"),
    since: default!(Option<TimestampWithTimeZone>, "NULL"),
) -> Result<i64, ErrorReport> {
    let queue = queue_name(queue)?;
    let ids: Option<Vec<i64>> = ids.map(|v| v.into_iter().flatten().collect());
    let now = wall_clock();
    Ok(privileged::run(|s| {
        let qid = check_access(s, queue)?;
        drop_floor(qid);
        let table = s.run(
            REDRIVE,
            &[qid.into(), ids.clone().into(), since.into(), ts(now).into()],
        )?;
        Ok(table.len() as i64)
    })?)
}

// ---------------------------------------------------------------------------------------
// Health, metrics and maintenance
// ---------------------------------------------------------------------------------------

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

const RECORD_METRICS: &str = concat!(
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
struct Stat {
    name: String,
    tier: Tier,
    ready: i64,
    scheduled: i64,
    in_flight: i64,
    oldest_wait: Option<Interval>,
    p50: Option<Interval>,
    p95: Option<Interval>,
    completed: i64,
    dead: i64,
    dead_letters: i64,
    max_wait: Micros,
    expired: i64,
}

fn stats(
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

// pgrx reads the column names from the tuple type itself, so it cannot be a type alias.
#[allow(clippy::type_complexity)]
#[pg_extern(volatile)]
fn queue_health(
    queue: default!(Option<&str>, "NULL"),
    lookback: default!(Option<Interval>, "'15 minutes'"),
) -> Result<
    TableIterator<
        'static,
        (
            name!(queue, String),
            name!(priority, String),
            name!(ready, i64),
            name!(scheduled, i64),
            name!(in_flight, i64),
            name!(oldest_wait, Option<Interval>),
            name!(wait_p50, Option<Interval>),
            name!(wait_p95, Option<Interval>),
            name!(completed, i64),
            name!(dead_letters, i64),
            name!(alarm, Option<String>),
        ),
    >,
    ErrorReport,
> {
    let lookback = duration(
        "lookback",
        required(lookback, "lookback")?,
        SECOND,
        31 * DAY,
        "an interval from 1 second to 31 days",
    )?;
    let now = wall_clock();
    let rows = privileged::run(|s| {
        if let Some(name) = queue {
            check_access(s, name)?;
        }
        Ok(stats(s, queue, now, lookback)?
            .into_iter()
            .map(|st| {
                let alarm = checks::wait_alarm(
                    st.oldest_wait.map(|i| i.as_micros() as Micros),
                    st.max_wait,
                );
                (
                    st.name,
                    st.tier.as_str().to_string(),
                    st.ready,
                    st.scheduled,
                    st.in_flight,
                    st.oldest_wait,
                    st.p50,
                    st.p95,
                    st.completed,
                    st.dead_letters,
                    alarm,
                )
            })
            .collect::<Vec<_>>())
    })?;
    Ok(TableIterator::new(rows))
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

#[pg_extern(volatile)]
fn queue_maintenance() -> Result<
    TableIterator<
        'static,
        (
            name!(returned, i64),
            name!(dead, i64),
            name!(metric_rows, i64),
            name!(pruned, i64),
        ),
    >,
    ErrorReport,
> {
    let now = wall_clock();
    let minute = now - now.rem_euclid(60 * SECOND);
    let keep = i64::from(crate::gucs::queue_metrics_retention_secs()) * SECOND;
    let row = privileged::run(|s| {
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
    })?;
    Ok(TableIterator::once(row))
}

extension_sql_file!(
    "../sql/queue.sql",
    name = "queue_sql",
    requires = ["partition_sql", current_tenant_or_null, tenant_admin_active]
);

extension_sql!(
    r#"
COMMENT ON FUNCTION floe.create_queue(text, interval, integer, interval, interval, interval, interval, boolean, interval, boolean, boolean) IS
  'floe queue: creates a queue owned by the current role (its members may use it). visibility_timeout: how long a dequeued job stays hidden; max_attempts: deliveries before a dead letter; aging_step: one priority tier gained per step waited; max_wait: the wait that raises an alarm (default 4 aging steps); retry_base/retry_max: exponential backoff with jitter; fair: per-tenant virtual time at each tier, fair_share being the time one job of a tenant is worth; archive_completed: keep completed jobs in floe.queue_archive. True when created.';
COMMENT ON FUNCTION floe.alter_queue(text, interval, integer, interval, interval, interval, interval, boolean, interval, boolean) IS
  'floe queue: changes the given settings of a queue (NULL keeps one); a new aging_step or fairness applies to jobs enqueued afterwards.';
COMMENT ON FUNCTION floe.drop_queue(text, boolean) IS
  'floe queue: drops a queue; refuses while it has live jobs unless force => true, which discards them. Its archived jobs stay until the archive''s retention. Returns the number of jobs discarded.';
COMMENT ON FUNCTION floe.enqueue(text, jsonb, text, timestamptz, uuid, text) IS
  'floe queue: adds a job (priority critical, high, normal, low or background; runnable from run_at) and returns its id. With a dedup_key, returns the pending job of that key instead of adding another.';
COMMENT ON FUNCTION floe.enqueue_many(text, jsonb[], text, timestamptz, uuid, text[]) IS
  'floe queue: adds one job per payload in one statement; returns their ids in order (for a dedup key already pending, that job''s id).';
COMMENT ON FUNCTION floe.dequeue(text, integer, interval) IS
  'floe queue: hands out up to batch ready jobs in aging order (tier plus one per aging_step waited since run_at), hidden from other workers for the visibility timeout; jobs whose visibility passed are delivered again. FOR UPDATE SKIP LOCKED: concurrent workers never wait on each other.';
COMMENT ON FUNCTION floe.complete(bigint, uuid) IS
  'floe queue: finishes a dequeued job (into the archive). Refused, changing nothing, when the job is not in flight, its visibility passed, or (with lease) it was delivered again.';
COMMENT ON FUNCTION floe.complete_many(bigint[]) IS
  'floe queue: completes several dequeued jobs at once; all or none (the first refused job is named). Returns how many.';
COMMENT ON FUNCTION floe.fail(bigint, text, uuid) IS
  'floe queue: records a failed attempt: the job is retried after an exponential backoff with jitter (returns scheduled) or, out of attempts, becomes a dead letter (returns dead).';
COMMENT ON FUNCTION floe.extend(bigint, interval, uuid) IS
  'floe queue: heartbeat: keeps a dequeued job hidden for another interval (default the queue''s visibility_timeout) from now; returns the new deadline.';
COMMENT ON FUNCTION floe.cancel(bigint) IS
  'floe queue: removes a job that is not running (ready or scheduled) into the archive as cancelled.';
COMMENT ON FUNCTION floe.redrive(text, bigint[], timestamptz) IS
  'floe queue: puts dead letters of a queue back as ready jobs with fresh attempts (only ids, only those dead since, or all); skips a job whose dedup key is pending again. Returns how many.';
COMMENT ON FUNCTION floe.queue_health(text, interval) IS
  'floe queue: per queue and priority: ready, scheduled and in-flight jobs, the oldest wait, p50/p95 wait over the lookback, completed jobs, dead letters, and an alarm when a job has waited beyond the queue''s max_wait.';
COMMENT ON FUNCTION floe.queue_maintenance() IS
  'floe queue: returns expired in-flight jobs (dead letters when out of attempts), makes due scheduled jobs ready, records a metrics row per queue and priority, and prunes old metrics; the built-in job floe.queue_maintenance runs it every minute.';
"#,
    name = "queue_comments",
    requires = [
        create_queue,
        alter_queue,
        drop_queue,
        enqueue,
        enqueue_many,
        dequeue,
        complete,
        complete_many,
        fail,
        extend,
        cancel,
        redrive,
        queue_health,
        queue_maintenance,
        "queue_sql"
    ],
);
