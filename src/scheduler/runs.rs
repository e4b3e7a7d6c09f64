//! The run bookkeeping both runners share (`floe.run_job`/`floe.run_due_jobs` in api.rs, the
//! scheduler worker): one run of a job (locked, recorded in floe.job_runs, the job moved on
//! under its retry rules), the due jobs, skipped runs, runs a stop interrupted, the history's
//! pruning (SPI, machinery).

use super::execute::{execute_as, role_oid};
use super::jobs::{job_from, load_job, next_regular, now_us, Job, JOB_COLUMNS};
use super::retry::{self, Outcome};
use crate::error::FloeError;
use crate::gucs;
use crate::subxact;
use pgrx::prelude::*;

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
pub(super) fn run_one(
    jobid: i64,
    manual: bool,
    pre_run: Option<i64>,
) -> Result<RunResult, FloeError> {
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
pub(super) fn prune_history() -> Result<(), FloeError> {
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
