//! Jobs: schedules parsed (cron or interval) and their errors, the option checks, the job row
//! as the runner reads it, finding, creating, changing and removing jobs (SPI as the caller:
//! row level security on floe.jobs shows each role its own jobs; machinery).

use super::schedule::{self, Schedule, ScheduleError};
use crate::error::FloeError;
use crate::subxact;
use pgrx::datum::Interval;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;

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

pub(super) fn now_us() -> Result<i64, FloeError> {
    Ok(Spi::get_one::<i64>(&format!("SELECT {UNIX_US}"))?.unwrap_or(0))
}

fn interval_us(i: &Interval) -> i64 {
    i64::from(i.days())
        .saturating_mul(86_400_000_000)
        .saturating_add(i.micros())
        .saturating_add(i64::from(i.months()).saturating_mul(30 * 86_400_000_000))
}

/// Parses a schedule: five fields are cron, anything else must be a Postgres interval.
pub(super) fn parse_schedule(text: &str) -> Result<Schedule, FloeError> {
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

pub(super) fn check_name(name: &str) -> Result<(), FloeError> {
    if name.trim().is_empty() || name.len() > 200 {
        return Err(FloeError::InvalidArgument {
            argument: "name",
            value: name.to_string(),
            expected: "a non-empty job name of at most 200 bytes".into(),
        });
    }
    Ok(())
}

pub(super) fn check_options(
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

pub(super) fn check_backoff(backoff: Option<&Interval>) -> Result<(), FloeError> {
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
pub(super) fn first_run(parsed: &Schedule, text: &str, now: i64) -> Result<i64, FloeError> {
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
pub(super) struct Job {
    pub(super) jobid: i64,
    pub(super) name: String,
    pub(super) schedule: String,
    pub(super) command: String,
    pub(super) owner: String,
    pub(super) max_runtime_us: i64,
    pub(super) retries: u32,
    pub(super) backoff_us: i64,
    pub(super) attempt: u32,
    pub(super) anchor_us: i64,
    pub(super) next_run_us: i64,
}

pub(super) const JOB_COLUMNS: &str = "jobid, name, schedule, command, owner::text,
    COALESCE((extract(epoch FROM max_runtime) * 1000000)::int8, 0),
    retries, (extract(epoch FROM retry_backoff) * 1000000)::int8,
    attempt, (extract(epoch FROM anchor) * 1000000)::int8,
    (extract(epoch FROM next_run) * 1000000)::int8";

pub(super) fn job_from(row: &pgrx::spi::SpiHeapTupleData<'_>) -> Result<Job, FloeError> {
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
pub(super) fn find_job(
    client: &SpiClient<'_>,
    name: &str,
) -> Result<Option<(i64, String, bool)>, FloeError> {
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

pub(super) fn require_job(name: &str) -> Result<(i64, String, bool), FloeError> {
    Spi::connect(|client| find_job(client, name))?.ok_or_else(|| not_found(name))
}

/// Inserts a job; returns its id.
#[allow(clippy::too_many_arguments)]
pub(super) fn insert(
    name: &str,
    schedule: &str,
    command: &str,
    max_runtime: Option<Interval>,
    retries: i32,
    retry_backoff: Interval,
    overlap: &str,
    enabled: bool,
    now: i64,
    next: i64,
) -> Result<Option<i64>, FloeError> {
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
    Ok(id)
}

/// Removes job `jobid`.
pub(super) fn delete(jobid: i64) -> Result<(), FloeError> {
    Spi::run_with_args("DELETE FROM floe.jobs WHERE jobid = $1", &[jobid.into()])
        .map_err(FloeError::from)?;
    Ok(())
}

/// Changes job `jobid`: NULL leaves a property as it is; `next` is the new schedule's anchor
/// and first run.
#[allow(clippy::too_many_arguments)]
pub(super) fn update(
    jobid: i64,
    schedule: Option<&str>,
    command: Option<&str>,
    max_runtime: Option<Interval>,
    retries: Option<i32>,
    retry_backoff: Option<Interval>,
    overlap: Option<&str>,
    enabled: Option<bool>,
    next: Option<(i64, i64)>,
) -> Result<(), FloeError> {
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
    Ok(())
}

/// The job's next regular run after `now` (an hour on, should its stored schedule no longer
/// parse, so that a broken row cannot make the worker spin).
pub(super) fn next_regular(job: &Job, now: i64) -> i64 {
    parse_schedule(&job.schedule)
        .ok()
        .and_then(|s| s.next_after(now, job.anchor_us))
        .unwrap_or(now.saturating_add(3_600_000_000))
}

pub(super) fn load_job(jobid: i64) -> Result<Option<Job>, FloeError> {
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
