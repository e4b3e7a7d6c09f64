//! The queue's SQL functions. Thin glue: arguments are checked here and each function calls
//! one machinery function: `queues.rs` (create, alter, drop), `enqueue.rs`, `deliver.rs`
//! (dequeue), `finish.rs` (complete, fail, extend, cancel, redrive), `health.rs` and
//! `maintenance.rs`; the ordering, retry and health logic is in `priority.rs`, `retry.rs` and
//! `checks.rs`. Every statement runs through `crate::privileged` (as the extension's owner,
//! from saved plans), checking the caller's membership in the queue's owner role inside the
//! statement itself.

use super::checks;
use super::finish::{self, complete_jobs};
use super::health::stats;
use super::priority::{self, Tier};
use super::queues::{self, check_access, valid_queue_name, Settings};
use super::{deliver, enqueue, maintenance};
use crate::error::{invalid, required, tenant_denied, tenant_key, ErrorReport, FloeError};
use crate::privileged;
use crate::sqltypes::{
    duration, interval, us_of, wall_clock, Jsonb, JsonbArray, Micros, DAY, SECOND,
};
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

// ---------------------------------------------------------------------------------------
// Queues
// ---------------------------------------------------------------------------------------

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
        queues::create(
            session,
            name,
            &s,
            (aging, max_wait, retry_base, retry_max),
            if_not_exists,
        )
    })?)
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
    Ok(privileged::run(|session| queues::alter(session, name, &s))?)
}

#[pg_extern(volatile)]
fn drop_queue(
    name: Option<&str>,
    force: default!(Option<bool>, false),
) -> Result<i64, ErrorReport> {
    let name = required(name, "name")?;
    Ok(privileged::run(|session| {
        queues::remove(session, name, force)
    })?)
}

// ---------------------------------------------------------------------------------------
// Enqueue
// ---------------------------------------------------------------------------------------

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
        enqueue::one(s, queue, payload, (tier, run_at, tenant, now), dedup_key)
    })?)
}

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
        enqueue::many(s, queue, payloads, (tier, run_at, tenant, now), &dedup_keys)
    })?;
    Ok(SetOfIterator::new(ids))
}

// ---------------------------------------------------------------------------------------
// Dequeue
// ---------------------------------------------------------------------------------------

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
    let (queue, batch, visibility) = dequeue_args("dequeue", queue, batch, visibility_timeout)?;
    let now = wall_clock();
    let rows = privileged::run(|s| deliver::hand_out(s, queue, batch, visibility, now))?;
    Ok(TableIterator::new(rows))
}

/// The checked arguments of a dequeue: the queue, the batch size and the visibility timeout.
fn dequeue_args<'a>(
    function: &str,
    queue: Option<&'a str>,
    batch: Option<i32>,
    visibility_timeout: Option<Interval>,
) -> Result<(&'a str, i32, Option<Micros>), FloeError> {
    let queue = queue_name(queue)?;
    // A worker's function: it hands out every tenant's jobs, so not to a transaction that
    // serves one tenant (no tenant context shows another tenant's jobs).
    if crate::tenant::serving_a_tenant() {
        return Err(tenant_denied(
            tenant_key::TENANT_CONTEXT,
            format!("floe.{function} hands out every tenant's jobs: it is refused while a tenant context is set"),
            Some("A queue's workers serve all tenants; the job's tenant column says whose job each one is."),
            "Dequeue in a transaction without a tenant (a worker's), or in admin mode (SET LOCAL floe.tenant_admin = on).".into(),
        )
        );
    }
    let batch = batch.unwrap_or(1);
    if !(1..=10_000).contains(&batch) {
        return Err(invalid("batch", batch.to_string(), "1 to 10000"));
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
    Ok((queue, batch, visibility))
}

// ---------------------------------------------------------------------------------------
// Finishing a job: complete, fail, extend, cancel
// ---------------------------------------------------------------------------------------

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
    let ids = distinct_ids("ids", required(ids, "ids")?)?;
    let now = wall_clock();
    Ok(privileged::run(|s| complete_jobs(s, ids, None, now))?)
}

/// The ids of an array argument, NULLs left out, refused when one repeats.
fn distinct_ids(argument: &'static str, ids: Vec<Option<i64>>) -> Result<Vec<i64>, FloeError> {
    let ids: Vec<i64> = ids.into_iter().flatten().collect();
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    if unique.len() != ids.len() {
        return Err(invalid(
            argument,
            "an array with repeated ids",
            "distinct job ids",
        ));
    }
    Ok(unique)
}

/// A worker's loop in one call: completes the jobs it finished (`done`, as `complete_many`;
/// with `lease`, the one job of `done` as `complete(id, lease)`), then dequeues the next
/// `batch` from `queue` as `dequeue` does, in the same transaction: one round trip per job
/// instead of two. All or nothing: a job that cannot be completed is named in the ERROR
/// and nothing is dequeued.
#[allow(clippy::type_complexity)]
#[pg_extern(volatile)]
fn complete_and_dequeue(
    queue: Option<&str>,
    done: default!(Option<Vec<Option<i64>>>, "NULL"),
    lease: default!(Option<Uuid>, "NULL"),
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
    let (queue, batch, visibility) =
        dequeue_args("complete_and_dequeue", queue, batch, visibility_timeout)?;
    let done = distinct_ids("done", done.unwrap_or_default())?;
    if lease.is_some() && done.len() != 1 {
        return Err(invalid(
            "lease",
            "a lease with other than one job in done",
            "NULL, or one job id in done (the lease of that delivery)",
        )
        .into());
    }
    let now = wall_clock();
    let rows = privileged::run(|s| {
        if !done.is_empty() {
            complete_jobs(s, done, lease, now)?;
        }
        deliver::hand_out(s, queue, batch, visibility, now)
    })?;
    Ok(TableIterator::new(rows))
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
        finish::fail_job(s, id, error, lease, now)
    })?)
}

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
        finish::extend_job(s, id, by, lease, now)
    })?)
}

#[pg_extern(volatile)]
fn cancel(id: Option<i64>) -> Result<(), ErrorReport> {
    let id = required(id, "id")?;
    let now = wall_clock();
    Ok(privileged::run(|s| finish::cancel_job(s, id, now))?)
}

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
        finish::redrive_dead(s, queue, &ids, since, now)
    })?)
}

// ---------------------------------------------------------------------------------------
// Health, metrics and maintenance
// ---------------------------------------------------------------------------------------

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
    let row = privileged::run(|s| maintenance::run(s, now, minute, keep))?;
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
COMMENT ON FUNCTION floe.complete_and_dequeue(text, bigint[], uuid, integer, interval) IS
  'floe queue: a worker''s loop in one call: completes the jobs in done (as complete_many; with lease, the one job of done as complete(id, lease)), then dequeues up to batch jobs from queue (as dequeue), in one transaction. All or nothing: a job that cannot be completed is named and nothing is dequeued.';
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
        complete_and_dequeue,
        fail,
        extend,
        cancel,
        redrive,
        queue_health,
        queue_maintenance,
        "queue_sql"
    ],
);
