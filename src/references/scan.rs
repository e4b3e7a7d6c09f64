//! The scan: every declared reference's keys, page by page, looked up in the target; keys
//! with no target row are recorded in `floe.reference_orphans` (SPI, as the extension's
//! owner, machinery).
//!
//! A pass walks the referencing table's distinct keys in key order (keyset pages of
//! `page_size` keys, each with its row count), sends each page to the target in one query,
//! and records the page's orphans (first seen kept, last seen moved) and drops recorded
//! orphans the page found resolved. Each page is its own subtransaction and moves the
//! cursor in `floe.reference_scans`, so a run that stops (time budget, page budget, error)
//! resumes where it was. A pass that reaches the end removes the orphans it no longer saw
//! (their rows were fixed or deleted). Keys queued while the target was unreachable
//! (`on_unreachable => 'allow'`) are checked first.
//!
//! A target that cannot be reached, or answers with an error, stops that reference's run:
//! the error is recorded (health reports it) and nothing is recorded or removed.

use super::check::BATCH;
use super::registry::{self, Loaded};
use super::remote;
use crate::error::FloeError;
use crate::privileged::{self, Session};
use crate::sqltypes::{wall_clock, Micros};
use crate::subxact;
use std::collections::HashSet;

/// What one call may do.
pub(super) struct Limits {
    /// Wall-clock time after which no new page starts (each reference does one at least).
    pub(super) deadline: Micros,
    /// Most pages per reference (None: until the deadline or the pass's end).
    pub(super) max_pages: Option<i64>,
    pub(super) page_size: i64,
    /// Only references due: a pass in progress, keys queued, or the last pass older than
    /// the scan interval (the built-in job); false scans the references asked for.
    pub(super) due_only: bool,
    /// `floe.reference_scan_interval`, in seconds.
    pub(super) interval_secs: f64,
}

/// One reference's run, as `floe.scan_references` reports it.
pub(super) struct Report {
    pub(super) id: i32,
    pub(super) table: String,
    pub(super) columns: Vec<String>,
    pub(super) pages: i32,
    pub(super) keys: i64,
    pub(super) orphans: i64,
    pub(super) complete: bool,
    pub(super) error: Option<String>,
}

const STATE: &str = "
SELECT s.cursor, COALESCE(s.pass_started IS NOT NULL, false),
       s.last_pass_completed IS NULL
         OR s.last_pass_completed <= pg_catalog.now() - pg_catalog.make_interval(secs => $2),
       EXISTS (SELECT 1 FROM floe.reference_pending p WHERE p.reference_id = $1)
  FROM (SELECT $1 AS id) i LEFT JOIN floe.reference_scans s ON s.reference_id = i.id";

/// A new pass: its number is one more (orphans record the last pass that saw them).
const START_PASS: &str = "
INSERT INTO floe.reference_scans (reference_id, pass, pass_started, last_run)
VALUES ($1, 1, pg_catalog.now(), pg_catalog.now())
ON CONFLICT (reference_id) DO UPDATE
   SET pass = floe.reference_scans.pass + 1, pass_started = pg_catalog.now(), cursor = NULL,
       keys_checked = 0, last_run = pg_catalog.now()";

const ADVANCE: &str = "
UPDATE floe.reference_scans
   SET cursor = $2::text[], keys_checked = keys_checked + $3, last_run = pg_catalog.now(),
       last_error = NULL, last_error_at = NULL
 WHERE reference_id = $1";

/// The pass reached the end: orphans it did not see again are gone.
const COMPLETE: &str = "
WITH gone AS (DELETE FROM floe.reference_orphans o USING floe.reference_scans s
               WHERE o.reference_id = $1 AND s.reference_id = $1 AND o.last_pass < s.pass)
UPDATE floe.reference_scans
   SET last_pass_completed = pg_catalog.now(), last_pass_keys = keys_checked,
       pass_started = NULL, cursor = NULL, keys_checked = 0
 WHERE reference_id = $1";

const FAILED: &str = "
INSERT INTO floe.reference_scans (reference_id, last_run, last_error, last_error_at)
VALUES ($1, pg_catalog.now(), $2, pg_catalog.now())
ON CONFLICT (reference_id) DO UPDATE
   SET last_run = pg_catalog.now(), last_error = $2, last_error_at = pg_catalog.now()";

/// An orphan, seen by the current pass (or, from the queue, by the last one).
pub(super) const ORPHAN: &str = "
INSERT INTO floe.reference_orphans (reference_id, key, rows, last_pass)
VALUES ($1, $2::text[], $3,
        COALESCE((SELECT s.pass FROM floe.reference_scans s WHERE s.reference_id = $1), 0))
ON CONFLICT (reference_id, key) DO UPDATE
   SET rows = EXCLUDED.rows, last_seen = pg_catalog.now(), last_pass = EXCLUDED.last_pass";

pub(super) const RESOLVED: &str =
    "DELETE FROM floe.reference_orphans WHERE reference_id = $1 AND key = $2::text[]";

const KNOWN: &str = "SELECT key FROM floe.reference_orphans WHERE reference_id = $1";

const PENDING: &str = "
SELECT key FROM floe.reference_pending WHERE reference_id = $1 ORDER BY queued_at, key LIMIT $2";

const UNQUEUE: &str =
    "DELETE FROM floe.reference_pending WHERE reference_id = $1 AND key = $2::text[]";

const ORPHAN_COUNT: &str =
    "SELECT pg_catalog.count(*) FROM floe.reference_orphans WHERE reference_id = $1";

/// One scan of a reference at a time (the job and a manual call): a transaction lock, so a
/// pass started in a transaction that has not committed cannot be overtaken.
const LOCK: &str = "
SELECT pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext('floe.reference_scan'), $1)";

/// The table and columns of a declaration that cannot be loaded, for its report.
const NAMES: &str = "
SELECT d.tbl::text, d.columns::text[] FROM floe.declared_references d WHERE d.id = $1";

/// Scans references `ids` within `limits`.
pub(super) fn run(ids: &[i32], limits: &Limits) -> Result<Vec<Report>, FloeError> {
    let mut out: Vec<Report> = Vec::new();
    for &id in ids {
        if !out.is_empty() && wall_clock() >= limits.deadline {
            break;
        }
        out.extend(one(id, limits)?);
    }
    Ok(out)
}

fn one(id: i32, limits: &Limits) -> Result<Option<Report>, FloeError> {
    let reference = match privileged::run(|s| registry::load(s, id)) {
        Ok(Some(r)) => r,
        Ok(None) => return Ok(None),
        Err(e) => {
            let message = e.message();
            let (table, columns) = privileged::run(|s| {
                failed(s, id, &message)?;
                let rows = s.run(NAMES, &[id.into()])?;
                let row = rows.first();
                Ok((
                    row.get::<String>(1)?.unwrap_or_default(),
                    row.get::<Vec<String>>(2)?.unwrap_or_default(),
                ))
            })?;
            return Ok(Some(Report {
                id,
                table,
                columns,
                pages: 0,
                keys: 0,
                orphans: 0,
                complete: false,
                error: Some(message),
            }));
        }
    };
    let mut report = Report {
        id,
        table: reference.qualified.clone(),
        columns: reference.key_columns[reference.shape.tenant..].to_vec(),
        pages: 0,
        keys: 0,
        orphans: 0,
        complete: false,
        error: None,
    };
    let locked = privileged::run(|s| {
        Ok(s.run(LOCK, &[id.into()])?
            .first()
            .get::<bool>(1)?
            .unwrap_or(false))
    })?;
    if !locked {
        if limits.due_only {
            return Ok(None);
        }
        report.error =
            Some("another scan of this reference is running; this one skipped it".into());
        return Ok(Some(report));
    }
    let (cursor, in_progress, due, queued) = privileged::run(|s| {
        let rows = s.run(STATE, &[id.into(), limits.interval_secs.into()])?;
        let row = rows.first();
        Ok((
            row.get::<Vec<String>>(1)?,
            row.get::<bool>(2)?.unwrap_or(false),
            row.get::<bool>(3)?.unwrap_or(true),
            row.get::<bool>(4)?.unwrap_or(false),
        ))
    })?;
    if limits.due_only && !(in_progress || due || queued) {
        return Ok(None);
    }
    let mut known: HashSet<Vec<String>> = privileged::run(|s| {
        let mut set = HashSet::new();
        for row in s.run(KNOWN, &[id.into()])? {
            set.extend(row.get::<Vec<String>>(1)?);
        }
        Ok(set)
    })?;
    // Keys queued during an outage first, a batch per subtransaction, within the budget.
    let mut more = queued;
    while more {
        if report.pages > 0 && wall_clock() >= limits.deadline {
            return finish(report, None);
        }
        match subxact::try_run(|| privileged::run(|s| check_queued(s, &reference, &mut known))) {
            Ok(Ok(left)) => more = left,
            other => return finish(report, failure(other.map(|r| r.map(drop)))),
        }
    }
    let mut cursor = if in_progress {
        cursor
    } else {
        privileged::run(|s| s.run(START_PASS, &[id.into()]).map(drop))?;
        None
    };
    let size = limits.page_size.clamp(1, BATCH as i64);
    loop {
        let budget_left = limits.max_pages.is_none_or(|m| i64::from(report.pages) < m)
            && (report.pages == 0 || wall_clock() < limits.deadline);
        if !budget_left {
            break;
        }
        let done = subxact::try_run(|| {
            privileged::run(|s| page(s, &reference, cursor.clone(), size, &mut known))
        });
        match done {
            Ok(Ok(p)) => {
                report.pages += 1;
                report.keys += p.keys;
                cursor = p.last;
                if p.complete {
                    report.complete = true;
                    break;
                }
            }
            other => {
                let message = failure(other.map(|r| r.map(drop)));
                return finish(report, message);
            }
        }
    }
    finish(report, None)
}

/// The message of a failed step (None when it worked).
fn failure(r: Result<Result<(), FloeError>, subxact::Caught>) -> Option<String> {
    match r {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.message()),
        Err(caught) => Some(caught.describe()),
    }
}

fn finish(mut report: Report, error: Option<String>) -> Result<Option<Report>, FloeError> {
    let id = report.id;
    report.orphans = privileged::run(|s| {
        if let Some(message) = &error {
            failed(s, id, message)?;
        }
        Ok(s.run(ORPHAN_COUNT, &[id.into()])?
            .first()
            .get::<i64>(1)?
            .unwrap_or(0))
    })?;
    report.error = error;
    Ok(Some(report))
}

fn failed(s: &mut Session<'_, '_>, id: i32, message: &str) -> Result<(), FloeError> {
    s.run(FAILED, &[id.into(), message.into()])?;
    Ok(())
}

struct Page {
    keys: i64,
    last: Option<Vec<String>>,
    complete: bool,
}

/// One page: the next keys after `cursor`, checked, orphans recorded, the cursor moved.
fn page(
    s: &mut Session<'_, '_>,
    reference: &Loaded,
    cursor: Option<Vec<String>>,
    size: i64,
    known: &mut HashSet<Vec<String>>,
) -> Result<Page, FloeError> {
    let sql = reference.shape.page(cursor.is_some());
    let mut keys: Vec<(Vec<String>, i64)> = Vec::new();
    for row in s.run_assembled(&sql, &[cursor.into(), size.into()])? {
        let key: Vec<String> = row.get(1)?.unwrap_or_default();
        keys.push((key, row.get::<i64>(2)?.unwrap_or(0)));
    }
    let only_keys: Vec<Vec<String>> = keys.iter().map(|(k, _)| k.clone()).collect();
    let missing: HashSet<Vec<String>> = remote::missing(s, &reference.shape, &only_keys)?
        .into_iter()
        .collect();
    record(s, reference.id, &keys, &missing, known)?;
    let last = keys.last().map(|(k, _)| k.clone());
    let complete = (keys.len() as i64) < size;
    let id = reference.id;
    s.run(
        ADVANCE,
        &[id.into(), last.clone().into(), (keys.len() as i64).into()],
    )?;
    if complete {
        s.run(COMPLETE, &[id.into()])?;
    }
    Ok(Page {
        keys: keys.len() as i64,
        last,
        complete,
    })
}

/// Records the checked `keys` (with their row counts): the missing ones as orphans, the
/// others no longer as orphans.
fn record(
    s: &mut Session<'_, '_>,
    id: i32,
    keys: &[(Vec<String>, i64)],
    missing: &HashSet<Vec<String>>,
    known: &mut HashSet<Vec<String>>,
) -> Result<(), FloeError> {
    for (key, rows) in keys {
        if missing.contains(key) {
            s.run(ORPHAN, &[id.into(), key.clone().into(), (*rows).into()])?;
            known.insert(key.clone());
        } else if known.remove(key) {
            s.run(RESOLVED, &[id.into(), key.clone().into()])?;
        }
    }
    Ok(())
}

/// Checks one batch of the keys queued while the target could not be reached; whether more
/// are queued.
fn check_queued(
    s: &mut Session<'_, '_>,
    reference: &Loaded,
    known: &mut HashSet<Vec<String>>,
) -> Result<bool, FloeError> {
    let id = reference.id;
    let mut queued: Vec<Vec<String>> = Vec::new();
    for row in s.run(PENDING, &[id.into(), (BATCH as i64).into()])? {
        queued.extend(row.get::<Vec<String>>(1)?);
    }
    if queued.is_empty() {
        return Ok(false);
    }
    let missing: HashSet<Vec<String>> = remote::missing(s, &reference.shape, &queued)?
        .into_iter()
        .collect();
    let still: Vec<Vec<String>> = queued
        .iter()
        .filter(|k| missing.contains(*k))
        .cloned()
        .collect();
    let counted = rows_of(s, reference, &still)?;
    record(s, id, &counted, &missing, known)?;
    for key in &queued {
        s.run(UNQUEUE, &[id.into(), key.clone().into()])?;
    }
    Ok(queued.len() == BATCH)
}

/// The keys among `keys` (distinct) the referencing table still has, with their row counts.
pub(super) fn rows_of(
    s: &mut Session<'_, '_>,
    reference: &Loaded,
    keys: &[Vec<String>],
) -> Result<Vec<(Vec<String>, i64)>, FloeError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let args: Vec<pgrx::datum::DatumWithOid<'_>> =
        super::statements::columns_of(keys, reference.shape.local.len())
            .into_iter()
            .map(Into::into)
            .collect();
    let mut out = Vec::new();
    for row in s.run_assembled(&reference.shape.rows_of(), &args)? {
        if let Some(key) = remote::at(keys, row.get::<i64>(1)?) {
            out.push((key, row.get::<i64>(2)?.unwrap_or(0)));
        }
    }
    Ok(out)
}
