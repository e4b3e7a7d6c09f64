//! Queues themselves: their settings, creating, altering and dropping them, and the check
//! that the caller may use one (SPI, as the extension's owner, machinery).

use super::catalog;
use super::errors::no_queue;
use crate::error::{invalid, FloeError};
use crate::privileged::Session;
use crate::sqltypes::{duration, interval, Micros, DAY, SECOND};
use pgrx::prelude::*;

/// The settings of `create_queue`/`alter_queue`, in microseconds.
pub(super) struct Settings {
    pub(super) visibility_timeout: Option<Micros>,
    pub(super) max_attempts: Option<i32>,
    pub(super) aging_step: Option<Micros>,
    pub(super) max_wait: Option<Micros>,
    pub(super) retry_base: Option<Micros>,
    pub(super) retry_max: Option<Micros>,
    pub(super) fair: Option<bool>,
    pub(super) fair_share: Option<Micros>,
    pub(super) archive_completed: Option<bool>,
}

impl Settings {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn parse(
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

/// The machinery of `floe.create_queue`, with the defaults of the settings resolved: true when
/// created, false when the caller's own queue of that name exists and `if_not_exists` is set.
pub(super) fn create(
    session: &mut Session,
    name: &str,
    s: &Settings,
    (aging, max_wait, retry_base, retry_max): (Micros, Micros, Micros, Micros),
    if_not_exists: Option<bool>,
) -> Result<bool, FloeError> {
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
}

/// Queue names: what `floe.queues` checks, so the error comes before the insert.
pub(super) fn valid_queue_name(name: &str) -> bool {
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
pub(super) fn check_access(s: &mut Session, name: &str) -> Result<i32, FloeError> {
    Ok(catalog::usable(s, name)?.id)
}

/// The machinery of `floe.alter_queue`.
pub(super) fn alter(session: &mut Session, name: &str, s: &Settings) -> Result<(), FloeError> {
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

/// The machinery of `floe.drop_queue`: the number of jobs discarded.
pub(super) fn remove(
    session: &mut Session,
    name: &str,
    force: Option<bool>,
) -> Result<i64, FloeError> {
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
}
