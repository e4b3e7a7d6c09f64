//! The scheduler's SQL functions. Thin glue: arguments are checked here and each function
//! calls into `jobs.rs` (schedule, alter, remove), `runs.rs` (run a job now, the due jobs,
//! prune the history) and `wake.rs` (wake the launcher and this database's scheduler). The
//! background workers (`worker.rs`) use the same machinery; nothing imports this file.

use super::jobs::{
    self, check_backoff, check_name, check_options, find_job, first_run, now_us, parse_schedule,
    require_job,
};
use super::runs::{prune_history, run_due, run_one, RunResult};
use super::wake;
use crate::error::{ErrorReport, FloeError};
use pgrx::datum::Interval;
use pgrx::prelude::*;

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
    let id = jobs::insert(
        name,
        schedule,
        command,
        max_runtime,
        retries,
        retry_backoff,
        overlap,
        enabled,
        now,
        next,
    )?;
    wake::wake_local_scheduler_at_commit();
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
    jobs::delete(jobid)?;
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
    jobs::update(
        jobid,
        schedule,
        command,
        max_runtime,
        retries,
        retry_backoff,
        overlap,
        enabled,
        next,
    )?;
    wake::wake_local_scheduler_at_commit();
    Ok(())
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

#[pg_extern(volatile)]
fn prune_job_history() -> Result<(), ErrorReport> {
    Ok(prune_history()?)
}

#[pg_extern(volatile)]
fn wake_scheduler() {
    wake::wake_launcher();
    wake::wake_local_scheduler_at_commit();
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
