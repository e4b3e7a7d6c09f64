//! SQL glue of the scheduler: managing jobs, and running them (by hand, or from the worker).

use super::retry::{self, Outcome};
use super::schedule::{self, Schedule, ScheduleError};
use crate::error::{ErrorReport, FloeError};
use crate::gucs;
use crate::subxact;
use pgrx::datum::Interval;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::PgSqlErrorCode;
use std::ffi::{c_int, CString};

/// `utils/timeout.h` is not in pgrx's bindings; these two are stable across PG 13-17.
mod timeout {
    use std::ffi::c_int;
    unsafe extern "C-unwind" {
        pub fn enable_timeout_after(id: c_int, delay_ms: c_int);
        pub fn disable_timeout(id: c_int, keep_indicator: bool);
    }
    /// `TimeoutId::STATEMENT_TIMEOUT` (the fourth predefined reason in PG 13-17).
    pub const STATEMENT_TIMEOUT: c_int = 3;
}

impl From<ScheduleError> for FloeError {
    fn from(err: ScheduleError) -> FloeError {
        let value = match &err {
            ScheduleError::BadCron { text, .. } => text.clone(),
            ScheduleError::IntervalTooShort { micros } => format!("{micros} microseconds"),
            ScheduleError::IntervalWithMonths => "an interval with months".into(),
        };
        FloeError::InvalidArgument {
            argument: "schedule",
            value,
            expected: format!(
                "a 5-field cron expression such as '*/5 * * * *' (UTC) or an interval of at least 1 second such as '30 seconds' ({err})"
            ),
        }
    }
}

const UNIX_US: &str = "(extract(epoch FROM pg_catalog.clock_timestamp()) * 1000000)::int8";

fn now_us() -> Result<i64, FloeError> {
    Ok(Spi::get_one::<i64>(&format!("SELECT {UNIX_US}"))?.unwrap_or(0))
}

fn interval_us(i: &Interval) -> i64 {
    i64::from(i.days())
        .saturating_mul(86_400_000_000)
        .saturating_add(i.micros())
        .saturating_add(i64::from(i.months()).saturating_mul(30 * 86_400_000_000))
}

/// Parses a schedule: five fields are cron, anything else must be a Postgres interval.
fn parse_schedule(text: &str) -> Result<Schedule, FloeError> {
    if schedule::looks_like_cron(text) {
        return Ok(schedule::parse_cron(text)?);
    }
    let parsed =
        subxact::run(|| Spi::get_one_with_args::<Interval>("SELECT $1::interval", &[text.into()]));
    match parsed {
        Ok(Ok(Some(i))) => Ok(schedule::every(i.months(), i.days(), i.micros())?),
        _ => Err(FloeError::InvalidArgument {
            argument: "schedule",
            value: text.to_string(),
            expected: "a 5-field cron expression such as '*/5 * * * *' (UTC) or an interval such as '30 seconds'".into(),
        }),
    }
}

fn check_name(name: &str) -> Result<(), FloeError> {
    if name.trim().is_empty() || name.len() > 200 {
        return Err(FloeError::InvalidArgument {
            argument: "name",
            value: name.to_string(),
            expected: "a non-empty job name of at most 200 bytes".into(),
        });
    }
    Ok(())
}

fn check_options(
    retries: Option<i32>,
    overlap: Option<&str>,
    max_runtime: Option<&Interval>,
) -> Result<(), FloeError> {
    if let Some(r) = retries {
        if !(0..=100).contains(&r) {
            return Err(FloeError::InvalidArgument {
                argument: "retries",
                value: r.to_string(),
                expected: "a number of retries from 0 to 100".into(),
            });
        }
    }
    if let Some(o) = overlap {
        if o != "skip" && o != "queue" {
            return Err(FloeError::InvalidArgument {
                argument: "overlap",
                value: o.to_string(),
                expected: "'skip' (a run due while the previous one runs is skipped) or 'queue' (it waits)".into(),
            });
        }
    }
    if let Some(m) = max_runtime {
        let us = interval_us(m);
        if !(0..=7 * 86_400_000_000).contains(&us) {
            return Err(FloeError::InvalidArgument {
                argument: "max_runtime",
                value: format!("{m}"),
                expected: "an interval up to 7 days, or '0' for no limit".into(),
            });
        }
    }
    Ok(())
}

fn check_backoff(backoff: Option<&Interval>) -> Result<(), FloeError> {
    if let Some(b) = backoff {
        let us = interval_us(b);
        if !(0..=86_400_000_000).contains(&us) {
            return Err(FloeError::InvalidArgument {
                argument: "retry_backoff",
                value: format!("{b}"),
                expected: "an interval from 0 to 1 day".into(),
            });
        }
    }
    Ok(())
}

/// A schedule that never fires (a cron date that does not exist) is refused.
fn first_run(parsed: &Schedule, text: &str, now: i64) -> Result<i64, FloeError> {
    match parsed.next_after(now, now) {
        Some(next) if next - now <= 366 * 86_400_000_000 * 5 => Ok(next),
        _ => Err(FloeError::InvalidArgument {
            argument: "schedule",
            value: text.to_string(),
            expected: "a schedule that fires within five years".into(),
        }),
    }
}

/// A job as the runner needs it.
struct Job {
    jobid: i64,
    name: String,
    schedule: String,
    command: String,
    owner: String,
    max_runtime_us: i64,
    retries: u32,
    backoff_us: i64,
    attempt: u32,
    anchor_us: i64,
    next_run_us: i64,
}

const JOB_COLUMNS: &str = "jobid, name, schedule, command, owner::text,
    COALESCE((extract(epoch FROM max_runtime) * 1000000)::int8, 0),
    retries, (extract(epoch FROM retry_backoff) * 1000000)::int8,
    attempt, (extract(epoch FROM anchor) * 1000000)::int8,
    (extract(epoch FROM next_run) * 1000000)::int8";

fn job_from(row: &pgrx::spi::SpiHeapTupleData<'_>) -> Result<Job, FloeError> {
    Ok(Job {
        jobid: row.get(1)?.unwrap_or(0),
        name: row.get(2)?.unwrap_or_default(),
        schedule: row.get(3)?.unwrap_or_default(),
        command: row.get(4)?.unwrap_or_default(),
        owner: row.get(5)?.unwrap_or_default(),
        max_runtime_us: row.get(6)?.unwrap_or(0),
        retries: row.get::<i32>(7)?.unwrap_or(0).max(0) as u32,
        backoff_us: row.get(8)?.unwrap_or(30_000_000),
        attempt: row.get::<i32>(9)?.unwrap_or(0).max(0) as u32,
        anchor_us: row.get(10)?.unwrap_or(0),
        next_run_us: row.get(11)?.unwrap_or(i64::MAX),
    })
}

/// The job named `name`, if the caller may see it (row level security on floe.jobs).
fn find_job(client: &SpiClient<'_>, name: &str) -> Result<Option<(i64, String, bool)>, FloeError> {
    let row = client
        .select(
            "SELECT jobid, owner::text, builtin FROM floe.jobs WHERE name = $1",
            Some(1),
            &[name.into()],
        )?
        .first();
    if row.is_empty() {
        return Ok(None);
    }
    Ok(Some((
        row.get(1)?.unwrap_or(0),
        row.get(2)?.unwrap_or_default(),
        row.get(3)?.unwrap_or(false),
    )))
}

fn not_found(name: &str) -> FloeError {
    FloeError::NotFound {
        kind: "job",
        name: name.to_string(),
        hint: "SELECT name FROM floe.jobs lists the jobs you may see (your own and your roles')."
            .into(),
    }
}

fn require_job(name: &str) -> Result<(i64, String, bool), FloeError> {
    Spi::connect(|client| find_job(client, name))?.ok_or_else(|| not_found(name))
}

#[allow(clippy::too_many_arguments)]
#[pg_extern(volatile)]
fn schedule(
    name: &str,
    schedule: &str,
    command: &str,
    max_runtime: default!(Option<Interval>, "NULL"),
    retries: default!(i32, 0),
    retry_backoff: default!(Interval, "'30 seconds'"),
    overlap: default!(&str, "'skip'"),
    enabled: default!(bool, true),
) -> Result<i64, ErrorReport> {
    check_name(name)?;
    check_options(Some(retries), Some(overlap), max_runtime.as_ref())?;
    check_backoff(Some(&retry_backoff))?;
    let parsed = parse_schedule(schedule)?;
    if command.trim().is_empty() {
        return Err(FloeError::InvalidArgument {
            argument: "command",
            value: String::new(),
            expected: "the SQL to run".into(),
        }
        .into());
    }
    if Spi::connect(|client| find_job(client, name))?.is_some() {
        return Err(FloeError::AlreadyExists {
            kind: "job",
            name: name.to_string(),
            hint: "Change it with floe.alter_job(), or remove it with floe.unschedule() first."
                .into(),
        }
        .into());
    }
    let now = now_us()?;
    let next = first_run(&parsed, schedule, now)?;
    let id = Spi::get_one_with_args::<i64>(
        "INSERT INTO floe.jobs (name, schedule, command, max_runtime, retries, retry_backoff,
                                overlap, enabled, anchor, next_run)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8,
                 pg_catalog.to_timestamp($9::float8 / 1000000), pg_catalog.to_timestamp($10::float8 / 1000000))
         RETURNING jobid",
        &[
            name.into(),
            schedule.trim().into(),
            command.into(),
            max_runtime.into(),
            retries.into(),
            retry_backoff.into(),
            overlap.into(),
            enabled.into(),
            now.into(),
            next.into(),
        ],
    )
    .map_err(FloeError::from)?;
    super::worker::wake_local_scheduler_at_commit();
    Ok(id.unwrap_or(0))
}

#[pg_extern(volatile, strict)]
fn unschedule(name: &str) -> Result<(), ErrorReport> {
    let (jobid, _, builtin) = require_job(name)?;
    if builtin {
        return Err(FloeError::WrongState {
            message: format!("job \"{name}\" is built into floe and cannot be removed"),
            hint: format!("Pause it instead: SELECT floe.alter_job('{name}', enabled => false)."),
        }
        .into());
    }
    Spi::run_with_args("DELETE FROM floe.jobs WHERE jobid = $1", &[jobid.into()])
        .map_err(FloeError::from)?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
#[pg_extern(volatile)]
fn alter_job(
    name: &str,
    schedule: default!(Option<&str>, "NULL"),
    command: default!(Option<&str>, "NULL"),
    max_runtime: default!(Option<Interval>, "NULL"),
    retries: default!(Option<i32>, "NULL"),
    retry_backoff: default!(Option<Interval>, "NULL"),
    overlap: default!(Option<&str>, "NULL"),
    enabled: default!(Option<bool>, "NULL"),
) -> Result<(), ErrorReport> {
    let (jobid, _, builtin) = require_job(name)?;
    check_options(retries, overlap, max_runtime.as_ref())?;
    check_backoff(retry_backoff.as_ref())?;
    if builtin && command.is_some() {
        return Err(FloeError::WrongState {
            message: format!("the command of built-in job \"{name}\" cannot be changed"),
            hint: "Change its schedule, limits or enabled flag instead.".into(),
        }
        .into());
    }
    let next = match schedule {
        Some(text) => {
            let parsed = parse_schedule(text)?;
            let now = now_us()?;
            Some((now, first_run(&parsed, text, now)?))
        }
        None => None,
    };
    Spi::run_with_args(
        "UPDATE floe.jobs SET
             schedule = COALESCE($2, schedule),
             command = COALESCE($3, command),
             max_runtime = CASE WHEN $4::interval IS NULL THEN max_runtime
                                WHEN $4::interval = '0' THEN NULL ELSE $4::interval END,
             retries = COALESCE($5, retries),
             retry_backoff = COALESCE($6, retry_backoff),
             overlap = COALESCE($7, overlap),
             enabled = COALESCE($8, enabled),
             anchor = COALESCE(pg_catalog.to_timestamp($9::float8 / 1000000), anchor),
             next_run = COALESCE(pg_catalog.to_timestamp($10::float8 / 1000000),
                                 CASE WHEN $8 AND NOT enabled THEN pg_catalog.clock_timestamp() END,
                                 next_run),
             attempt = CASE WHEN $2 IS NULL THEN attempt ELSE 0 END
           WHERE jobid = $1",
        &[
            jobid.into(),
            schedule.map(str::trim).into(),
            command.into(),
            max_runtime.into(),
            retries.into(),
            retry_backoff.into(),
            overlap.into(),
            enabled.into(),
            next.map(|(a, _)| a).into(),
            next.map(|(_, n)| n).into(),
        ],
    )
    .map_err(FloeError::from)?;
    super::worker::wake_local_scheduler_at_commit();
    Ok(())
}

/// The role a job runs as.
fn role_oid(name: &str) -> Option<pg_sys::Oid> {
    let c = CString::new(name).ok()?;
    // SAFETY: syscache lookup by name on the backend thread.
    let oid = unsafe { pg_sys::get_role_oid(c.as_ptr(), true) };
    (oid != pg_sys::InvalidOid).then_some(oid)
}

/// How one attempt to run a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunResult {
    Ran(Outcome),
    /// Another run of the job holds it (`overlap => 'skip'` records a skipped run).
    Busy,
    /// The due run was skipped while the job was busy: it moved on to its next regular time.
    SkippedEarlier,
}

/// Runs the job `jobid` now, in a subtransaction of the current transaction, as the job's
/// owner and with `max_runtime` as statement timeout; records the run. `manual` runs (from
/// `floe.run_job`) leave the schedule alone; scheduled runs move `next_run` on, with retries.
fn run_one(jobid: i64, manual: bool, pre_run: Option<i64>) -> Result<RunResult, FloeError> {
    // Lock the job row for the run: a second runner skips it (SKIP LOCKED) instead of waiting.
    let job = Spi::connect_mut(|client| {
        let row = client
            .update(
                &format!(
                    "SELECT {JOB_COLUMNS} FROM floe.jobs WHERE jobid = $1 FOR UPDATE SKIP LOCKED"
                ),
                Some(1),
                &[jobid.into()],
            )?
            .first();
        if row.is_empty() {
            return Ok::<_, FloeError>(None);
        }
        let heap = row.get_heap_tuple()?.ok_or_else(|| FloeError::Internal {
            message: "job row vanished while locked".into(),
        })?;
        Ok(Some(job_from(&heap)?))
    })?;
    let Some(job) = job else {
        return Ok(RunResult::Busy);
    };
    // overlap => 'skip': a due run recorded as skipped while the job was busy is not made up
    // for once the job is free; the job moves on to its next regular time.
    if !manual {
        let skipped = Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT 1 FROM floe.job_runs r, floe.jobs j
                             WHERE r.jobid = $1 AND j.jobid = $1 AND r.status = 'skipped'
                               AND r.started_at >= j.next_run)",
            &[jobid.into()],
        )?
        .unwrap_or(false);
        if skipped {
            let next = next_regular(&job, now_us()?);
            Spi::run_with_args(
                "UPDATE floe.jobs SET next_run = pg_catalog.to_timestamp($2::float8 / 1000000) WHERE jobid = $1",
                &[jobid.into(), next.into()],
            )?;
            if let Some(runid) = pre_run {
                Spi::run_with_args(
                    "DELETE FROM floe.job_runs WHERE runid = $1",
                    &[runid.into()],
                )?;
            }
            return Ok(RunResult::SkippedEarlier);
        }
    }
    let runid = match pre_run {
        Some(runid) => runid,
        None => insert_run(&job)?,
    };

    let (outcome, error) = match role_oid(&job.owner) {
        None => (
            Outcome::Failed,
            Some(format!(
                "role \"{}\" (the job's owner) does not exist",
                job.owner
            )),
        ),
        Some(owner) => execute_as(&job, owner),
    };

    let finished = now_us()?;
    let (next_run, attempt) = if manual {
        (None, job.attempt)
    } else {
        let regular = next_regular(&job, finished);
        let (next, attempt) = retry::after_run(
            outcome,
            job.attempt,
            job.retries,
            finished,
            job.backoff_us,
            regular,
        );
        (Some(next), attempt)
    };
    Spi::run_with_args(
        "UPDATE floe.job_runs SET finished_at = pg_catalog.clock_timestamp(), status = $2, error = $3
          WHERE runid = $1",
        &[runid.into(), outcome.as_str().into(), error.clone().into()],
    )?;
    Spi::run_with_args(
        "UPDATE floe.jobs SET last_start = (SELECT started_at FROM floe.job_runs WHERE runid = $2),
                last_finish = pg_catalog.clock_timestamp(), last_status = $3, last_error = $4,
                attempt = $5,
                next_run = COALESCE(pg_catalog.to_timestamp($6::float8 / 1000000), next_run)
          WHERE jobid = $1",
        &[
            job.jobid.into(),
            runid.into(),
            outcome.as_str().into(),
            error.into(),
            (attempt as i32).into(),
            next_run.into(),
        ],
    )?;
    Ok(RunResult::Ran(outcome))
}

/// The job's next regular run after `now` (an hour on, should its stored schedule no longer
/// parse, so that a broken row cannot make the worker spin).
fn next_regular(job: &Job, now: i64) -> i64 {
    parse_schedule(&job.schedule)
        .ok()
        .and_then(|s| s.next_after(now, job.anchor_us))
        .unwrap_or(now.saturating_add(3_600_000_000))
}

/// Records the start of a run of `job` and returns its id.
fn insert_run(job: &Job) -> Result<i64, FloeError> {
    Ok(Spi::get_one_with_args::<i64>(
        "INSERT INTO floe.job_runs (jobid, job_name, owner, attempt, started_at, status, pid)
         VALUES ($1, $2, $3::name, $4, pg_catalog.clock_timestamp(), 'running', pg_catalog.pg_backend_pid())
         RETURNING runid",
        &[
            job.jobid.into(),
            job.name.as_str().into(),
            job.owner.as_str().into(),
            (job.attempt as i32).into(),
        ],
    )?
    .unwrap_or(0))
}

fn load_job(jobid: i64) -> Result<Option<Job>, FloeError> {
    Spi::connect(|client| {
        let row = client
            .select(
                &format!("SELECT {JOB_COLUMNS} FROM floe.jobs WHERE jobid = $1"),
                Some(1),
                &[jobid.into()],
            )?
            .first();
        if row.is_empty() {
            return Ok(None);
        }
        match row.get_heap_tuple()? {
            Some(heap) => Ok(Some(job_from(&heap)?)),
            None => Ok(None),
        }
    })
}

/// What a starting scheduler does with the runs a crash, kill or restart left `running`: each
/// is marked failed, and its job moves on under its retry rules (`retry::after_interrupted`)
/// instead of running again at once. Returns the runs recovered.
pub fn recover_interrupted_runs() -> Result<usize, FloeError> {
    let runs = Spi::connect(|client| {
        let mut runs = Vec::new();
        for row in client.select(
            "SELECT r.runid, r.jobid, (extract(epoch FROM r.started_at) * 1000000)::int8
               FROM floe.job_runs r WHERE r.status = 'running' ORDER BY r.runid",
            None,
            &[],
        )? {
            runs.push((
                row.get::<i64>(1)?.unwrap_or(0),
                row.get::<i64>(2)?.unwrap_or(0),
                row.get::<i64>(3)?.unwrap_or(0),
            ));
        }
        Ok::<_, FloeError>(runs)
    })?;
    const WHY: &str = "the scheduler stopped during this run (crash, kill or restart)";
    for &(runid, jobid, started) in &runs {
        Spi::run_with_args(
            "UPDATE floe.job_runs SET status = 'failed', finished_at = pg_catalog.clock_timestamp(),
                    error = $2
              WHERE runid = $1",
            &[runid.into(), WHY.into()],
        )?;
        let Some(job) = load_job(jobid)? else {
            continue;
        };
        let now = now_us()?;
        let was_due = job.next_run_us <= started;
        let Some((next, attempt)) = retry::after_interrupted(
            was_due,
            job.attempt,
            job.retries,
            now,
            job.backoff_us,
            next_regular(&job, now),
        ) else {
            continue;
        };
        Spi::run_with_args(
            "UPDATE floe.jobs SET last_status = 'failed', last_error = $2,
                    last_finish = pg_catalog.clock_timestamp(), attempt = $3,
                    next_run = pg_catalog.to_timestamp($4::float8 / 1000000)
              WHERE jobid = $1",
            &[
                jobid.into(),
                WHY.into(),
                (attempt as i32).into(),
                next.into(),
            ],
        )?;
    }
    Ok(runs.len())
}

/// The background worker's first step for a due job: the run row, committed on its own so
/// that a crash during the job leaves a `running` row for the next start to mark failed.
pub fn open_run(jobid: i64) -> Result<Option<i64>, FloeError> {
    // The trace must survive a crash even where commits are asynchronous.
    Spi::run("SET LOCAL synchronous_commit = on")?;
    match load_job(jobid)? {
        Some(job) => Ok(Some(insert_run(&job)?)),
        None => Ok(None),
    }
}

/// The background worker's second step: run the job against the run row `pre_run`.
/// Returns whether it ran (false: another runner holds the job).
pub fn run_scheduled(jobid: i64, skip: bool, pre_run: Option<i64>) -> Result<bool, FloeError> {
    match run_one(jobid, false, pre_run)? {
        RunResult::Ran(_) | RunResult::SkippedEarlier => Ok(true),
        RunResult::Busy => {
            if let Some(runid) = pre_run {
                Spi::run_with_args(
                    "DELETE FROM floe.job_runs WHERE runid = $1",
                    &[runid.into()],
                )?;
            }
            if skip {
                record_skip(jobid)?;
            }
            Ok(false)
        }
    }
}

/// After floe itself failed to handle a job (not the job's own error): record it and try
/// again in a minute.
pub fn postpone(jobid: i64, error: &str) -> Result<(), FloeError> {
    Spi::run_with_args(
        "UPDATE floe.jobs SET next_run = pg_catalog.clock_timestamp() + interval '1 minute',
                last_status = 'failed', last_error = $2, last_finish = pg_catalog.clock_timestamp()
          WHERE jobid = $1",
        &[
            jobid.into(),
            format!("floe could not run this job: {error}").into(),
        ],
    )?;
    Ok(())
}

/// The enabled jobs that are due, oldest first, with whether a busy one is skipped.
pub fn due_jobs() -> Result<Vec<(i64, bool)>, FloeError> {
    Spi::connect(|client| {
        let mut ids = Vec::new();
        for row in client.select(
            "SELECT jobid, overlap = 'skip' FROM floe.jobs
              WHERE enabled AND next_run <= pg_catalog.clock_timestamp()
              ORDER BY next_run, jobid",
            None,
            &[],
        )? {
            ids.push((
                row.get::<i64>(1)?.unwrap_or(0),
                row.get::<bool>(2)?.unwrap_or(true),
            ));
        }
        Ok::<_, FloeError>(ids)
    })
}

/// Runs the job's command in a subtransaction as `owner`, under `max_runtime`.
fn execute_as(job: &Job, owner: pg_sys::Oid) -> (Outcome, Option<String>) {
    let limit_ms = (job.max_runtime_us / 1000).clamp(0, i64::from(c_int::MAX)) as c_int;
    let started = std::time::Instant::now();
    let result = subxact::run(|| {
        // The subtransaction restores user id, security context and settings if the command
        // fails; on success the settings the job changed (SET, SET LOCAL, set_config) are
        // undone below, so no job can leave a search_path or role behind for the next one.
        let (mut saved_user, mut saved_ctx) = (pg_sys::InvalidOid, 0);
        let guc_level = unsafe { pg_sys::NewGUCNestLevel() };
        unsafe {
            pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_ctx);
            pg_sys::SetUserIdAndSecContext(
                owner,
                saved_ctx | pg_sys::SECURITY_LOCAL_USERID_CHANGE as c_int,
            );
            if limit_ms > 0 {
                timeout::enable_timeout_after(timeout::STATEMENT_TIMEOUT, limit_ms);
            }
        }
        // Jobs run with the database's default search_path, whatever the runner's session has.
        let ran = Spi::run("SET LOCAL search_path TO DEFAULT").and_then(|_| Spi::run(&job.command));
        unsafe {
            if limit_ms > 0 {
                timeout::disable_timeout(timeout::STATEMENT_TIMEOUT, false);
            }
            pg_sys::AtEOXact_GUC(false, guc_level);
            pg_sys::SetUserIdAndSecContext(saved_user, saved_ctx);
        }
        ran
    });
    if limit_ms > 0 {
        // SAFETY: disabling an inactive timeout is a no-op.
        unsafe { timeout::disable_timeout(timeout::STATEMENT_TIMEOUT, false) };
    }
    // A cancel at or after max_runtime is ours (whatever the message's language).
    let past_limit = limit_ms > 0 && started.elapsed().as_millis() >= limit_ms as u128;
    match result {
        Ok(Ok(())) => (Outcome::Succeeded, None),
        Ok(Err(pgrx::spi::SpiError::SpiError(pgrx::spi::SpiErrorCodes::Transaction))) => (
            Outcome::Failed,
            Some("transaction control (COMMIT, ROLLBACK, PREPARE TRANSACTION) cannot be used in a job".into()),
        ),
        Ok(Err(e)) => (Outcome::Failed, Some(e.to_string())),
        Err(caught) if caught.code == PgSqlErrorCode::ERRCODE_QUERY_CANCELED && past_limit =>
        {
            (
                Outcome::TimedOut,
                Some(format!("cancelled after max_runtime ({} ms)", limit_ms)),
            )
        }
        Err(caught) => (Outcome::Failed, Some(caught.describe())),
    }
}

#[pg_extern(volatile, strict)]
fn run_job(name: &str) -> Result<String, ErrorReport> {
    let (jobid, _, _) = require_job(name)?;
    match run_one(jobid, true, None)? {
        RunResult::Ran(outcome) => Ok(outcome.as_str().to_string()),
        RunResult::SkippedEarlier => Ok("skipped".to_string()),
        RunResult::Busy => Err(FloeError::WrongState {
            message: format!("job \"{name}\" is running already"),
            hint: "Wait for the running run to finish (see floe.job_runs).".into(),
        }
        .into()),
    }
}

/// Runs every enabled job that is due, oldest due first; returns how many ran. Jobs the
/// caller may not see (other roles') are left to their owners or the scheduler.
pub fn run_due() -> Result<i64, FloeError> {
    let due = due_jobs()?;
    let mut ran = 0;
    for (jobid, skip) in due {
        match run_one(jobid, false, None)? {
            RunResult::Ran(_) => ran += 1,
            RunResult::SkippedEarlier => {}
            RunResult::Busy if skip => record_skip(jobid)?,
            RunResult::Busy => {}
        }
    }
    prune_history()?;
    Ok(ran)
}

/// A due run of a busy job with `overlap => 'skip'`: recorded, and the job moves on to its
/// next regular time.
fn record_skip(jobid: i64) -> Result<(), FloeError> {
    let row = load_job(jobid)?;
    let Some(job) = row else { return Ok(()) };
    let next = next_regular(&job, now_us()?);
    Spi::run_with_args(
        "INSERT INTO floe.job_runs (jobid, job_name, owner, attempt, started_at, finished_at, status, error)
         SELECT $1, $2, $3::name, $4, pg_catalog.clock_timestamp(), pg_catalog.clock_timestamp(), 'skipped',
                'the previous run was still running (overlap => skip)'
          WHERE NOT EXISTS (SELECT 1 FROM floe.job_runs r, floe.jobs j
                             WHERE r.jobid = $1 AND j.jobid = $1 AND r.status = 'skipped'
                               AND r.started_at >= j.next_run)",
        &[job.jobid.into(), job.name.as_str().into(), job.owner.as_str().into(), (job.attempt as i32).into()],
    )?;
    // The job row is locked by the running run: NOWAIT would fail, so leave next_run to it
    // when we cannot take the lock right away.
    let _ = subxact::run(|| {
        Spi::run_with_args(
            "UPDATE floe.jobs SET next_run = pg_catalog.to_timestamp($2::float8 / 1000000)
              WHERE jobid = (SELECT jobid FROM floe.jobs WHERE jobid = $1 FOR UPDATE NOWAIT)",
            &[job.jobid.into(), next.into()],
        )
    });
    Ok(())
}

/// Deletes finished runs older than `floe.job_history_retention` (at most 10 000 per call).
fn prune_history() -> Result<(), FloeError> {
    Spi::run_with_args(
        "DELETE FROM floe.job_runs WHERE runid IN (
             SELECT runid FROM floe.job_runs
              WHERE status <> 'running'
                AND started_at < pg_catalog.clock_timestamp() - pg_catalog.make_interval(secs => $1)
              ORDER BY started_at LIMIT 10000)",
        &[f64::from(gucs::job_history_retention_secs()).into()],
    )?;
    Ok(())
}

/// The scheduler's rows of `floe.health()`. Overdue means due more than five minutes ago.
pub fn health_checks(
    scheduler_running: bool,
) -> Result<Vec<crate::health::checks::Check>, FloeError> {
    let (total, failing, overdue) = Spi::connect(|client| {
        let mut total = 0;
        let mut failing = Vec::new();
        let mut overdue = Vec::new();
        for row in client.select(
            "SELECT name, enabled AND last_status IN ('failed', 'timed out'),
                    enabled AND next_run < pg_catalog.now() - interval '5 minutes'
               FROM floe.jobs ORDER BY name",
            None,
            &[],
        )? {
            total += 1;
            let name: String = row.get(1)?.unwrap_or_default();
            if row.get::<bool>(2)?.unwrap_or(false) {
                failing.push(name.clone());
            }
            if row.get::<bool>(3)?.unwrap_or(false) {
                overdue.push(name);
            }
        }
        Ok::<_, FloeError>((total, failing, overdue))
    })?;
    Ok(vec![super::checks::jobs_check(
        total,
        &failing,
        &overdue,
        scheduler_running,
    )])
}

#[pg_extern(volatile)]
fn prune_job_history() -> Result<(), ErrorReport> {
    Ok(prune_history()?)
}

#[pg_extern(volatile)]
fn wake_scheduler() {
    super::worker::wake_launcher();
    super::worker::wake_local_scheduler_at_commit();
}

#[pg_extern(volatile)]
fn run_due_jobs() -> Result<i64, ErrorReport> {
    Ok(run_due()?)
}

extension_sql_file!("../sql/scheduler.sql", name = "scheduler_sql");

extension_sql!(
    r#"
COMMENT ON FUNCTION floe.schedule(text, text, text, interval, integer, interval, text, boolean) IS
  'Schedules SQL to run as the calling role: schedule is a 5-field cron expression (UTC) or an interval such as ''30 seconds''. Returns the job id.';
COMMENT ON FUNCTION floe.unschedule(text) IS
  'Removes a job (its run history stays until it ages out). Built-in jobs can only be paused.';
COMMENT ON FUNCTION floe.alter_job(text, text, text, interval, integer, interval, text, boolean) IS
  'Changes a job; NULL leaves a property as it is, max_runtime => ''0'' removes the limit.';
COMMENT ON FUNCTION floe.run_job(text) IS
  'Runs a job now, in this transaction (in a subtransaction, as its owner, under max_runtime), and returns its status; the schedule is unchanged.';
COMMENT ON FUNCTION floe.prune_job_history() IS
  'Deletes finished runs older than floe.job_history_retention (the built-in job floe.prune_job_history runs it hourly).';
COMMENT ON FUNCTION floe.wake_scheduler() IS
  'Asks floe''s launcher to look for databases that need a scheduler now (CREATE EXTENSION calls it).';
COMMENT ON FUNCTION floe.run_due_jobs() IS
  'Runs every due job you may see, as the scheduler worker does; returns how many ran. For use when the scheduler is off.';
"#,
    name = "scheduler_comments",
    requires = [
        schedule,
        unschedule,
        alter_job,
        run_job,
        run_due_jobs,
        wake_scheduler,
        prune_job_history,
        "scheduler_sql"
    ],
);

// A new database with floe gets its scheduler within a second or two.
extension_sql!(
    "SELECT floe.wake_scheduler();",
    name = "scheduler_wake_on_install",
    finalize,
);
