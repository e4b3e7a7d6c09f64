//! Verification and health: reads the seals and the log and hands them to `verify.rs`, whose
//! conclusions `floe.verify_audit()` and `floe.health()` report.

use super::finding::Finding;
use super::record::{self, Digest, Seal, SealHash};
use super::seal::{entry_of, hash_arr, parse_xid, ENTRIES_OF_SEAL};
use super::verify::{self, MonthGone, Problem};
use crate::check::Check;
use crate::error::FloeError;
use crate::privileged::{self};
use pgrx::prelude::*;
use std::collections::{BTreeMap, HashMap};

/// Every relid with seals or an audited table, and the table's name: now, for an audited
/// table (entries carry `floe.audit_tables.log_relid`, not the table's oid, which a restore
/// changes); otherwise as its last sealed entries spell it, for a table no longer audited.
pub(super) const SEALED_TABLES: &str = "
SELECT t.relid,
       coalesce((SELECT a.relid::text FROM floe.audit_tables a WHERE a.log_relid = t.relid),
                (SELECT pg_catalog.format('%I.%I', l.schema_name, l.table_name)
                        || CASE WHEN pg_catalog.to_regclass(pg_catalog.format('%I.%I', l.schema_name, l.table_name)) IS NULL
                                THEN ' (dropped)' ELSE ' (no longer audited)' END
                   FROM (SELECT s.lo, s.hi FROM floe.audit_seals s WHERE s.relid = t.relid
                          ORDER BY s.run DESC LIMIT 1) s,
                        floe.audit_log l
                  WHERE l.relid = t.relid AND l.xid >= s.lo AND l.xid < s.hi
                  ORDER BY l.id DESC LIMIT 1),
                'dropped table (relid ' || t.relid::text || ')')
  FROM (SELECT DISTINCT s.relid FROM floe.audit_seals s
        UNION SELECT a.log_relid FROM floe.audit_tables a) t
 ORDER BY 2, 1";

pub(super) const SEALS_OF: &str = "
SELECT s.run, s.lo::text, s.hi::text, s.entry_ids, s.digests, s.prev_hash, s.hash,
       pg_catalog.to_char(s.month, 'YYYY-MM-DD')
  FROM floe.audit_seals s
 WHERE s.relid = $1 AND ($2::timestamptz IS NULL OR s.max_logged_at >= $2)
 ORDER BY s.run, s.month";
/// Sealed months of which the log holds no entry: retired (floe.audit_retired), detached (a
/// table of that month exists, out of the log or being detached), dropped (no such table), or
/// emptied (its partition is attached and empty).
pub(super) const MONTHS_GONE: &str = "
SELECT pg_catalog.to_char(m.month, 'YYYY-MM-DD'),
       CASE WHEN EXISTS (SELECT 1 FROM floe.audit_retired r WHERE r.month = m.month) THEN 'retired'
            WHEN c.oid IS NULL THEN 'dropped'
            WHEN NOT c.relispartition
                 OR EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i
                             WHERE i.inhrelid = c.oid AND i.inhdetachpending) THEN 'detached'
            ELSE 'emptied' END
  FROM (WITH RECURSIVE sealed AS (   -- the distinct months, one index probe each
            SELECT pg_catalog.min(s.month) AS month FROM floe.audit_seals s
            UNION ALL
            SELECT (SELECT pg_catalog.min(s.month) FROM floe.audit_seals s WHERE s.month > sealed.month)
              FROM sealed WHERE sealed.month IS NOT NULL)
        SELECT sealed.month FROM sealed WHERE sealed.month IS NOT NULL) m
  LEFT JOIN pg_catalog.pg_class c
         ON c.relnamespace = 'floe'::regnamespace AND c.relkind = 'r'
        AND c.relname = 'audit_log_' || pg_catalog.to_char(m.month, 'YYYY_MM')
 WHERE NOT EXISTS (SELECT 1 FROM floe.audit_log a
                    WHERE a.logged_at >= (m.month::timestamp AT TIME ZONE 'UTC')
                      AND a.logged_at < ((m.month + interval '1 month') AT TIME ZONE 'UTC'))
 ORDER BY 1";

/// [`MONTHS_GONE`], by month.
fn months_gone(
    s: &mut privileged::Session<'_, '_>,
) -> Result<BTreeMap<String, MonthGone>, FloeError> {
    let mut out = BTreeMap::new();
    for row in s.run(MONTHS_GONE, &[])? {
        if let (Some(month), Some(how)) = (row.get::<String>(1)?, row.get::<String>(2)?) {
            if let Some(how) = MonthGone::parse(&how) {
                out.insert(month, how);
            }
        }
    }
    Ok(out)
}

/// The audit triggers of a registered table that do not fire (switched off by its owner).
pub(super) const TRIGGERS_OFF: &str = "
SELECT o.relation::text, o.trigger_name::text, o.state
  FROM floe.audit_tables a, floe.audit_triggers_off(a.relid) o
 WHERE a.log_relid = $1";

/// Every registered table with an audit trigger that does not fire.
pub(super) const CAPTURE_OFF: &str = "
SELECT a.relid::text || ' (' || pg_catalog.string_agg(
           o.trigger_name::text
           || CASE WHEN o.relation <> a.relid THEN ' on ' || o.relation::text ELSE '' END
           || ' ' || o.state, ', ' ORDER BY o.relation::text, o.trigger_name) || ')'
  FROM floe.audit_tables a, floe.audit_triggers_off(a.relid) o
 GROUP BY a.relid
 ORDER BY 1";

pub(super) const SEALED_HORIZON: &str = "
SELECT (SELECT r.horizon::text FROM floe.audit_seal_runs r ORDER BY r.run DESC LIMIT 1)";

pub(super) const UNSEALED: &str = "
SELECT pg_catalog.count(*) FROM floe.audit_log a
 WHERE a.relid = $1 AND a.xid >= coalesce($2::text::xid8, '0'::xid8)";

pub(super) struct StoredSeal {
    pub(super) seal: Seal,
    pub(super) prev: SealHash,
    pub(super) hash: SealHash,
    pub(super) intact_digests: bool,
}

pub(super) fn stored_seal(
    relid: pg_sys::Oid,
    row: &pgrx::spi::SpiHeapTupleData<'_>,
) -> Result<StoredSeal, FloeError> {
    let ids: Vec<i64> = row.get::<Vec<i64>>(4)?.unwrap_or_default();
    let digests = record::unpack(&row.get::<Vec<u8>>(5)?.unwrap_or_default());
    let intact_digests = digests.as_ref().is_some_and(|d| d.len() == ids.len());
    Ok(StoredSeal {
        seal: Seal {
            relid: relid.to_u32(),
            run: row.get::<i64>(1)?.unwrap_or(0),
            month: row.get::<String>(8)?.unwrap_or_default(),
            lo: parse_xid(row.get::<String>(2)?)?,
            hi: parse_xid(row.get::<String>(3)?)?,
            entries: ids.into_iter().zip(digests.unwrap_or_default()).collect(),
        },
        prev: hash_arr(row.get::<Vec<u8>>(6)?),
        hash: hash_arr(row.get::<Vec<u8>>(7)?),
        intact_digests,
    })
}

/// Verifies every audited table's seals (those ending at or after `since`) against the log;
/// on a Citus coordinator, each worker's too (`distributed.rs`).
pub fn verify(since: Option<TimestampWithTimeZone>) -> Result<Vec<Finding>, FloeError> {
    privileged::run(|s| {
        let gone = months_gone(s)?;
        let mut findings = verify_with(s, since, &gone)?;
        findings.extend(super::distributed::worker_findings(s, since)?);
        Ok(findings)
    })
}

/// [`verify`], with the sealed months gone from the log already read ([`months_gone`]).
fn verify_with(
    s: &mut privileged::Session<'_, '_>,
    since: Option<TimestampWithTimeZone>,
    gone: &BTreeMap<String, MonthGone>,
) -> Result<Vec<Finding>, FloeError> {
    let horizon: Option<String> = s.run(SEALED_HORIZON, &[])?.first().get(1)?;
    let horizon_xid = horizon
        .as_deref()
        .map(|h| parse_xid(Some(h.to_string())))
        .transpose()?;
    let mut tables = Vec::new();
    for row in s.run(SEALED_TABLES, &[])? {
        if let (Some(relid), Some(name)) = (row.get::<pg_sys::Oid>(1)?, row.get::<String>(2)?) {
            tables.push((relid, name));
        }
    }
    let mut out = Vec::new();
    for (relid, table) in tables {
        let mut seals = Vec::new();
        for row in s.run(SEALS_OF, &[relid.into(), since.into()])? {
            seals.push(stored_seal(relid, &row)?);
        }
        let (mut problems, mut checked, mut expired) = (0usize, 0usize, 0usize);
        // Sealed months gone from the log without retention: one finding per month.
        let mut months_out: BTreeMap<String, usize> = BTreeMap::new();
        let mut push = |status: &'static str, entry: Option<i64>, at, detail: String| {
            out.push(Finding {
                table: table.clone(),
                status,
                entry,
                logged_at: at,
                detail,
            });
        };
        // The chain: each seal hashes the one before it (the first one read is the
        // anchor); a run's range starts where the table's previous run ended.
        let mut prev: Option<(i64, u64, u64, SealHash)> = None; // run, lo, hi, hash
        for st in &seals {
            let link_ok = match prev {
                None => true,
                Some((run, lo, hi, hash)) => {
                    let start = if run == st.seal.run { lo } else { hi };
                    hash == st.prev && start == st.seal.lo
                }
            };
            if !st.intact_digests || !link_ok || !verify::seal_intact(&st.prev, &st.seal, &st.hash)
            {
                problems += 1;
                push(
                    "broken_seal",
                    None,
                    None,
                    format!(
                        "the seal of run {} for {} (transactions {}..{}) does not match its hash or the seal before it: the seals were changed",
                        st.seal.run, st.seal.month, st.seal.lo, st.seal.hi
                    ),
                );
            }
            prev = Some((st.seal.run, st.seal.lo, st.seal.hi, st.hash));
        }
        // The entries, run by run: each month's seal against the entries of that month in
        // the run's range; entries of a month no seal of the run covers were inserted.
        for run in seals.chunk_by(|a, b| a.seal.run == b.seal.run) {
            let (lo, hi, number) = (run[0].seal.lo, run[0].seal.hi, run[0].seal.run);
            let mut by_month: HashMap<String, Vec<(i64, Digest)>> = HashMap::new();
            let mut when: HashMap<i64, TimestampWithTimeZone> = HashMap::new();
            for row in s.run(
                ENTRIES_OF_SEAL,
                &[relid.into(), lo.to_string().into(), hi.to_string().into()],
            )? {
                let r = entry_of(&row)?;
                when.insert(r.entry.id, r.logged_at);
                by_month
                    .entry(r.month)
                    .or_default()
                    .push((r.entry.id, record::digest(&r.entry)));
            }
            let mut findings = Vec::new();
            for st in run {
                let found = by_month.remove(&st.seal.month).unwrap_or_default();
                match gone.get(&st.seal.month).filter(|_| found.is_empty()) {
                    Some(MonthGone::Retired) => {
                        expired += st.seal.entries.len();
                        continue;
                    }
                    Some(MonthGone::Detached | MonthGone::Dropped) => {
                        *months_out.entry(st.seal.month.clone()).or_insert(0) +=
                            st.seal.entries.len();
                        continue;
                    }
                    Some(MonthGone::Emptied) | None => {}
                }
                checked += st.seal.entries.len();
                findings.extend(verify::compare(&st.seal.entries, &found));
            }
            for found in by_month.into_values() {
                findings.extend(verify::compare(&[], &found));
            }
            findings.sort();
            for (id, problem) in findings {
                problems += 1;
                let detail = match problem {
                    Problem::Altered => {
                        format!("entry {id} differs from what run {number} sealed")
                    }
                    Problem::Removed => {
                        format!("entry {id}, sealed by run {number}, is gone from the log")
                    }
                    Problem::Inserted => format!(
                        "entry {id} is in the transactions run {number} sealed, but no seal lists it"
                    ),
                };
                push(problem.as_str(), Some(id), when.get(&id).copied(), detail);
            }
        }
        for (month, entries) in &months_out {
            let how = gone.get(month).copied().unwrap_or(MonthGone::Dropped);
            if let Some((status, detail)) = how.finding(month, *entries) {
                problems += 1;
                push(status, None, None, detail);
            }
        }
        // Auditing switched off: the table's changes are not reaching the log.
        for row in s.run(TRIGGERS_OFF, &[relid.into()])? {
            let relation: String = row.get(1)?.unwrap_or_default();
            let trigger: String = row.get(2)?.unwrap_or_default();
            let state: String = row.get(3)?.unwrap_or_default();
            problems += 1;
            push(
                "disabled",
                None,
                None,
                format!(
                    "audit trigger {trigger} on {relation} is {state}: changes to it are not logged meanwhile"
                ),
            );
        }
        // Entries below the sealed horizon after this table's last seal: nobody sealed
        // them, so they were written behind floe's back.
        let tail_lo = prev.map(|(_, _, hi, _)| hi).unwrap_or(0);
        if let Some(h) = horizon_xid.filter(|h| *h > tail_lo) {
            if since.is_none() || !seals.is_empty() {
                for row in s.run(
                    ENTRIES_OF_SEAL,
                    &[
                        relid.into(),
                        tail_lo.to_string().into(),
                        h.to_string().into(),
                    ],
                )? {
                    let r = entry_of(&row)?;
                    problems += 1;
                    push(
                        Problem::Inserted.as_str(),
                        Some(r.entry.id),
                        Some(r.logged_at),
                        format!(
                            "entry {} is below the sealed horizon but no seal lists it",
                            r.entry.id
                        ),
                    );
                }
            }
        }
        let unsealed: i64 = s
            .run(UNSEALED, &[relid.into(), horizon.clone().into()])?
            .first()
            .get::<i64>(1)?
            .unwrap_or(0);
        let retired_note = if expired > 0 {
            format!(" ({expired} more in months retired by retention)")
        } else {
            String::new()
        };
        push(
            if problems == 0 { "ok" } else { "tampered" },
            None,
            None,
            format!(
                "{checked} entries in {} seals checked{retired_note}, {problems} problems; {unsealed} entries not sealed yet",
                seals.len()
            ),
        );
    }
    Ok(out)
}

pub(super) const SEAL_BACKLOG: &str = "
SELECT (SELECT pg_catalog.count(*) FROM floe.audit_tables),
       (SELECT pg_catalog.count(*) FROM floe.audit_log a
         WHERE a.logged_at < pg_catalog.now() - interval '15 minutes'
           AND a.xid >= coalesce((SELECT r.horizon FROM floe.audit_seal_runs r
                                   ORDER BY r.run DESC LIMIT 1), '0'::xid8))";

/// `audit.sealing` (entries waiting long for their seal) and `audit.chain` (the newest
/// seals, checked against the log: the full check is `floe.verify_audit()`).
pub fn health_checks() -> Result<Vec<Check>, FloeError> {
    let (tables, late, gone, off, findings) = privileged::run(|s| {
        let row = s.run(SEAL_BACKLOG, &[])?;
        let row = row.first();
        let (tables, late) = (
            row.get::<i64>(1)?.unwrap_or(0),
            row.get::<i64>(2)?.unwrap_or(0),
        );
        let mut off = Vec::new();
        for row in s.run(CAPTURE_OFF, &[])? {
            off.extend(row.get::<String>(1)?);
        }
        // The newest seals (the last hour's) against the log; the full check is verify_audit.
        let gone = months_gone(s)?;
        let since =
            crate::sqltypes::ts(crate::sqltypes::wall_clock() - 3600 * crate::sqltypes::SECOND);
        let findings = verify_with(s, Some(since), &gone)?;
        Ok((tables, late, gone, off, findings))
    })?;
    let capture = if off.is_empty() {
        Check::ok(
            "audit.capture",
            format!("the audit triggers of all {tables} audited tables fire"),
        )
    } else {
        Check {
            name: "audit.capture",
            status: crate::check::Status::Critical,
            detail: format!(
                "auditing is switched off, changes are not logged: {}",
                off.join(", ")
            ),
            hint: Some("ALTER TABLE <table> ENABLE TRIGGER <trigger> for each one named (SELECT * FROM floe.audit_triggers_off('<table>') lists them); changes made meanwhile are not in the log.".into()),
        }
    };
    // Every sealed month, however old: gone from the log other than by retention.
    let gone: Vec<String> = gone
        .into_iter()
        .filter(|(_, how)| *how != MonthGone::Retired)
        .map(|(month, how)| {
            let how = match how {
                MonthGone::Detached => "detached",
                MonthGone::Emptied => "emptied",
                _ => "dropped",
            };
            format!("{} ({how})", month.get(..7).unwrap_or(&month))
        })
        .collect();
    let sealing = if late == 0 {
        Check::ok(
            "audit.sealing",
            format!("{tables} audited tables; no entry waits long for its seal"),
        )
    } else {
        Check::warn(
            "audit.sealing",
            format!("{late} audit entries older than 15 minutes are not sealed"),
            "Is the scheduler running floe.audit_seal? Run SELECT floe.audit_seal(); and look at floe.job_runs.",
        )
    };
    let bad: Vec<&Finding> = findings.iter().filter(|f| f.status == "tampered").collect();
    let chain = if !gone.is_empty() {
        Check {
            name: "audit.chain",
            status: crate::check::Status::Critical,
            detail: format!(
                "sealed months of the audit log are gone, and floe's retention did not retire them: {}",
                gone.join(", ")
            ),
            hint: Some("SELECT * FROM floe.verify_audit() WHERE status <> 'ok'; names each month and table. Re-attach a detached month (ALTER TABLE floe.audit_log ATTACH PARTITION ...) or restore a dropped one from a backup.".into()),
        }
    } else if bad.is_empty() {
        Check::ok(
            "audit.chain",
            "the seals of the last hour match the log (floe.verify_audit() checks them all)".into(),
        )
    } else {
        Check {
            name: "audit.chain",
            status: crate::check::Status::Critical,
            detail: format!(
                "the audit log of {} does not match its seals: {}",
                bad.iter().map(|f| f.table.as_str()).collect::<Vec<_>>().join(", "),
                bad[0].detail
            ),
            hint: Some("SELECT * FROM floe.verify_audit() WHERE status <> 'ok'; names every altered, inserted or removed entry.".into()),
        }
    };
    Ok(vec![sealing, capture, chain])
}
