//! `floe.repair_references`: what to do with the rows of recorded orphans (machinery).
//!
//! `report` lists the recorded orphans. `null`, `delete` and `archive` first ask the target
//! again for every recorded orphan key (a target row restored since the scan makes the key
//! resolved, not repaired), then act on the rows of the keys still missing, `batch` keys per
//! statement: the statements run as the caller (its row security applies, the table's audit
//! trigger, if any, records the caller, and its own triggers run under its `search_path`:
//! the statements qualify their operators). With `dry_run` (the default) nothing changes:
//! each key is reported with the rows the caller's statement would touch.
//! A target that cannot be reached stops the repair before anything changed.

use super::registry::{self, Loaded};
use super::remote;
use super::scan::{rows_of, RESOLVED};
use super::statements::columns_of;
use crate::error::FloeError;
use crate::privileged;
use crate::subxact;
use pgrx::datum::TimestampWithTimeZone;
use std::collections::{HashMap, HashSet};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    Report,
    Null,
    Delete,
    Archive,
}

impl Action {
    pub(super) fn parse(text: &str) -> Option<Action> {
        match text {
            "report" => Some(Action::Report),
            "null" => Some(Action::Null),
            "delete" => Some(Action::Delete),
            "archive" => Some(Action::Archive),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Action::Report => "report",
            Action::Null => "null",
            Action::Delete => "delete",
            Action::Archive => "archive",
        }
    }
}

/// One key's line of the answer.
pub(super) struct Line {
    pub(super) id: i32,
    pub(super) columns: Vec<String>,
    pub(super) key: Vec<String>,
    pub(super) first_seen: Option<TimestampWithTimeZone>,
    pub(super) rows: i64,
    /// `report`, `null`, `delete`, `archive`, or `resolved` (the target has the key again).
    pub(super) action: String,
    pub(super) applied: bool,
}

const ORPHANS: &str = "
SELECT key, rows, first_seen FROM floe.reference_orphans WHERE reference_id = $1 ORDER BY key";

const LEFT: &str = "
UPDATE floe.reference_orphans SET rows = $3 WHERE reference_id = $1 AND key = $2::text[]";

const ARCHIVE: &str = "
INSERT INTO floe.reference_archive (reference_id, table_name, table_owner, key, row_data, archived_by)
SELECT $1, pg_catalog.format('%I.%I', n.nspname, c.relname), c.relowner, $3::text[], $4,
       pg_catalog.pg_get_userbyid($5)
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.oid = $2";

/// Repairs the recorded orphans of every reference of `tbl` (see the module documentation).
pub(super) fn repair(
    tbl: pgrx::pg_sys::Oid,
    action: Action,
    dry_run: bool,
    batch: usize,
) -> Result<Vec<Line>, FloeError> {
    let references = privileged::run(|s| {
        let table = s.table(tbl, "floe.repair_references takes the referencing table.")?;
        table.require_owner("repair references of")?;
        let ids = registry::owned(s, Some(tbl))?;
        if ids.is_empty() {
            return Err(FloeError::NotFound {
                kind: "reference",
                name: format!("on table {}", table.qualified),
                hint: "floe.declare_reference declares one; floe.declared_references lists them."
                    .into(),
            });
        }
        let mut out = Vec::new();
        for id in ids {
            out.extend(registry::load(s, id)?);
        }
        Ok(out)
    })?;
    let mut lines = Vec::new();
    for reference in &references {
        lines.extend(one(reference, action, dry_run, batch)?);
    }
    Ok(lines)
}

fn one(
    reference: &Loaded,
    action: Action,
    dry_run: bool,
    batch: usize,
) -> Result<Vec<Line>, FloeError> {
    let id = reference.id;
    let columns = reference.key_columns[reference.shape.tenant..].to_vec();
    let recorded: Vec<(Vec<String>, i64, Option<TimestampWithTimeZone>)> = privileged::run(|s| {
        let mut out = Vec::new();
        for row in s.run(ORPHANS, &[id.into()])? {
            out.push((
                row.get(1)?.unwrap_or_default(),
                row.get(2)?.unwrap_or(0),
                row.get(3)?,
            ));
        }
        Ok(out)
    })?;
    let line = |key: Vec<String>, rows, first_seen, action: &str, applied| Line {
        id,
        columns: columns.clone(),
        key,
        first_seen,
        rows,
        action: action.to_string(),
        applied,
    };
    if action == Action::Report {
        return Ok(recorded
            .into_iter()
            .map(|(k, rows, seen)| line(k, rows, seen, "report", false))
            .collect());
    }
    let first_seen: HashMap<Vec<String>, Option<TimestampWithTimeZone>> = recorded
        .iter()
        .map(|(k, _, seen)| (k.clone(), *seen))
        .collect();
    let keys: Vec<Vec<String>> = recorded.into_iter().map(|(k, _, _)| k).collect();
    let mut out = Vec::new();
    for chunk in keys.chunks(batch.max(1)) {
        let missing: HashSet<Vec<String>> = ask(reference, chunk)?.into_iter().collect();
        let (still, back): (Vec<Vec<String>>, Vec<Vec<String>>) =
            chunk.iter().cloned().partition(|k| missing.contains(k));
        if !dry_run {
            privileged::run(|s| {
                for key in &back {
                    s.run(RESOLVED, &[id.into(), key.clone().into()])?;
                }
                Ok(())
            })?;
        }
        for key in back {
            let seen = first_seen.get(&key).copied().flatten();
            out.push(line(key, 0, seen, "resolved", !dry_run));
        }
        let touched: Vec<(Vec<String>, i64)> = if dry_run {
            // As the caller: the rows its statement would reach (row security applies).
            privileged::run_as_caller(|s| rows_of(s, reference, &still))?
        } else {
            apply(reference, action, &still)?
        };
        let counted: HashMap<Vec<String>, i64> = touched.into_iter().collect();
        for key in still {
            let seen = first_seen.get(&key).copied().flatten();
            let rows = counted.get(&key).copied().unwrap_or(0);
            out.push(line(key, rows, seen, action.as_str(), !dry_run));
        }
    }
    Ok(out)
}

/// Runs the repair's statement over the rows of `keys` as the caller; the rows touched per
/// key. Archived rows go to `floe.reference_archive`; the keys with no row left leave the
/// orphans.
fn apply(
    reference: &Loaded,
    action: Action,
    keys: &[Vec<String>],
) -> Result<Vec<(Vec<String>, i64)>, FloeError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let sql = match action {
        Action::Null => reference.shape.set_null(),
        _ => reference.shape.delete(),
    };
    let touched: Vec<(Vec<String>, Option<pgrx::JsonB>)> = privileged::run_as_caller(|s| {
        let args: Vec<pgrx::datum::DatumWithOid<'_>> =
            columns_of(keys, reference.shape.local.len())
                .into_iter()
                .map(Into::into)
                .collect();
        let mut out = Vec::new();
        for row in s.run_assembled(&sql, &args)? {
            let Some(key) = remote::at(keys, row.get::<i64>(1)?) else {
                continue;
            };
            let whole = if action == Action::Archive {
                row.get::<pgrx::JsonB>(2)?
            } else {
                None
            };
            out.push((key, whole));
        }
        Ok(out)
    })?;
    let mut counted: HashMap<Vec<String>, i64> = HashMap::new();
    privileged::run(|s| {
        let caller = s.caller;
        for (key, whole) in touched {
            *counted.entry(key.clone()).or_default() += 1;
            if let Some(row) = whole {
                s.run(
                    ARCHIVE,
                    &[
                        reference.id.into(),
                        reference.tbl.into(),
                        key.into(),
                        row.into(),
                        caller.into(),
                    ],
                )?;
            }
        }
        // A key leaves the orphans only when no row of it is left (rows the caller's
        // statement could not reach, hidden by row security, keep it, with their count).
        let left: HashMap<Vec<String>, i64> = rows_of(s, reference, keys)?.into_iter().collect();
        for key in keys {
            match left.get(key) {
                Some(&rows) => s.run(
                    LEFT,
                    &[reference.id.into(), key.clone().into(), rows.into()],
                )?,
                None => s.run(RESOLVED, &[reference.id.into(), key.clone().into()])?,
            };
        }
        Ok(())
    })?;
    Ok(counted.into_iter().collect())
}

/// The keys of `keys` still missing in the target. A target that cannot be asked stops the
/// repair (its ERROR, with the reference named).
fn ask(reference: &Loaded, keys: &[Vec<String>]) -> Result<Vec<Vec<String>>, FloeError> {
    match subxact::try_run(|| privileged::run(|s| remote::missing(s, &reference.shape, keys))) {
        Ok(answer) => answer,
        Err(caught) => Err(FloeError::Sql {
            code: caught.code,
            message: format!(
                "cannot repair reference {}: its target could not confirm the orphans: {}",
                reference.describe(),
                caught.message
            ),
            detail: caught.detail,
            hint: "Nothing was changed. Repair acts only on keys the target confirms missing at that moment; retry when the target's server answers.".into(),
        }),
    }
}
