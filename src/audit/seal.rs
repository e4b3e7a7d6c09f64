//! Sealing: the entries of ended transactions, one chained seal per table and month, as the
//! job `floe.audit_seal` runs it every minute.

use super::record::{self, Entry, Seal, SealHash, ENTRY_FIELDS};
use crate::error::FloeError;
use crate::privileged::{self};
use crate::sqltypes::{ts, us_of};
use pgrx::prelude::*;
use std::collections::HashMap;

pub(super) const LOCK_SEALER: &str =
    "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('floe.audit_seal'))";

pub(super) const SEAL_STATE: &str = "
SELECT coalesce((SELECT max(r.run) FROM floe.audit_seal_runs r), 0),
       (SELECT r.horizon::text FROM floe.audit_seal_runs r ORDER BY r.run DESC LIMIT 1),
       pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())::text";

/// The columns of an entry, in the order `entry_of` reads them.
macro_rules! entry_select {
    ($rest:literal) => {
        concat!(
            "SELECT a.id, a.logged_at, a.xid::text, a.relid, a.schema_name::text, a.table_name::text,
                    a.op, a.tenant::text, a.actor::text, a.app_actor, a.client_addr::text,
                    a.pk::text, a.old_values::text, a.new_values::text, a.redacted::text,
                    a.classification::text,
                    pg_catalog.to_char(a.logged_at AT TIME ZONE 'UTC', 'YYYY-MM-01')
               FROM floe.audit_log a ",
            $rest
        )
    };
}

pub(super) const ENTRIES_TO_SEAL: &str = entry_select!(
    "WHERE a.xid >= $1::text::xid8 AND a.xid < $2::text::xid8 ORDER BY a.relid, 17, a.xid, a.id"
);

pub(super) const ENTRIES_OF_SEAL: &str = entry_select!(
    "WHERE a.relid = $1 AND a.xid >= $2::text::xid8 AND a.xid < $3::text::xid8 ORDER BY a.xid, a.id"
);

pub(super) const LAST_SEAL: &str = "
SELECT s.hi::text, s.hash FROM floe.audit_seals s WHERE s.relid = $1
 ORDER BY s.run DESC, s.month DESC LIMIT 1";

pub(super) const INSERT_RUN: &str =
    "INSERT INTO floe.audit_seal_runs (run, horizon, entries) VALUES ($1, $2::text::xid8, $3)";

pub(super) const INSERT_SEAL: &str = "
INSERT INTO floe.audit_seals (relid, run, month, lo, hi, entry_ids, digests, min_logged_at,
                              max_logged_at, prev_hash, hash)
VALUES ($1, $2, $11::date, $3::text::xid8, $4::text::xid8, $5, $6, $7, $8, $9, $10)";

pub(super) fn parse_xid(text: Option<String>) -> Result<u64, FloeError> {
    let text = text.unwrap_or_else(|| "0".into());
    text.parse().map_err(|_| FloeError::Internal {
        message: format!("unexpected xid8 {text}"),
    })
}

/// One entry read back, with its logged_at and its month (UTC, as `YYYY-MM-01`: the log's
/// partitions are UTC months).
pub(super) struct Read {
    pub(super) entry: Entry,
    pub(super) logged_at: TimestampWithTimeZone,
    pub(super) month: String,
}

pub(super) fn entry_of(row: &pgrx::spi::SpiHeapTupleData<'_>) -> Result<Read, FloeError> {
    let logged_at: TimestampWithTimeZone = row.get(2)?.ok_or_else(|| FloeError::Internal {
        message: "audit entry without logged_at".into(),
    })?;
    let mut fields = Vec::with_capacity(ENTRY_FIELDS);
    for i in 0..ENTRY_FIELDS {
        fields.push(row.get::<String>(5 + i)?);
    }
    Ok(Read {
        entry: Entry {
            id: row.get::<i64>(1)?.unwrap_or(0),
            logged_at_us: us_of(logged_at),
            xid: parse_xid(row.get::<String>(3)?)?,
            relid: row.get::<pg_sys::Oid>(4)?.map(|o| o.to_u32()).unwrap_or(0),
            fields,
        },
        logged_at,
        month: row.get::<String>(5 + ENTRY_FIELDS)?.unwrap_or_default(),
    })
}

pub(super) fn hash_arr(bytes: Option<Vec<u8>>) -> SealHash {
    let mut h = [0u8; 32];
    if let Some(b) = bytes.filter(|b| b.len() == 32) {
        h.copy_from_slice(&b);
    }
    h
}

/// Seals the entries of every transaction that has ended; returns how many it sealed.
pub(super) fn seal() -> Result<i64, FloeError> {
    privileged::run(|s| {
        s.run(LOCK_SEALER, &[])?;
        let state = s.run(SEAL_STATE, &[])?;
        let state = state.first();
        let run = state.get::<i64>(1)?.unwrap_or(0) + 1;
        let prev_horizon = parse_xid(state.get::<String>(2)?)?;
        let horizon = parse_xid(state.get::<String>(3)?)?;
        if horizon <= prev_horizon {
            return Ok(0);
        }
        // Entries by table and month, in (xid, id) order: a table's seals of one run are
        // one per month, so retention, which drops whole months, drops whole seals.
        let mut groups: Vec<(u32, String, Vec<Read>)> = Vec::new();
        {
            let rows = s.run(
                ENTRIES_TO_SEAL,
                &[prev_horizon.to_string().into(), horizon.to_string().into()],
            )?;
            for row in rows {
                let r = entry_of(&row)?;
                match groups.last_mut() {
                    Some((relid, month, v)) if *relid == r.entry.relid && *month == r.month => {
                        v.push(r)
                    }
                    _ => groups.push((r.entry.relid, r.month.clone(), vec![r])),
                }
            }
        }
        let total: i64 = groups.iter().map(|(_, _, v)| v.len() as i64).sum();
        if total == 0 {
            // Nothing new: no run (the next one starts from the same horizon).
            return Ok(0);
        }
        s.run(
            INSERT_RUN,
            &[run.into(), horizon.to_string().into(), total.into()],
        )?;
        // Per table: where this run's range starts and the hash to chain to.
        let mut chain: HashMap<u32, (u64, SealHash)> = HashMap::new();
        for (relid, month, entries) in groups {
            let oid = pg_sys::Oid::from(relid);
            let (lo, prev) = match chain.get(&relid) {
                Some(c) => *c,
                None => {
                    let last = s.run(LAST_SEAL, &[oid.into()])?;
                    if last.is_empty() {
                        (0, [0u8; 32])
                    } else {
                        let l = last.first();
                        (
                            parse_xid(l.get::<String>(1)?)?,
                            hash_arr(l.get::<Vec<u8>>(2)?),
                        )
                    }
                }
            };
            let seal = Seal {
                relid,
                run,
                month: month.clone(),
                lo,
                hi: horizon,
                entries: entries
                    .iter()
                    .map(|r| (r.entry.id, record::digest(&r.entry)))
                    .collect(),
            };
            let hash = record::seal_hash(&prev, &seal);
            chain.insert(relid, (lo, hash));
            let at = |f: fn(i64, i64) -> i64| {
                entries
                    .iter()
                    .map(|r| r.entry.logged_at_us)
                    .reduce(f)
                    .unwrap_or(0)
            };
            s.run(
                INSERT_SEAL,
                &[
                    oid.into(),
                    run.into(),
                    lo.to_string().into(),
                    horizon.to_string().into(),
                    seal.entries
                        .iter()
                        .map(|(id, _)| *id)
                        .collect::<Vec<i64>>()
                        .into(),
                    record::pack(seal.entries.iter().map(|(_, d)| *d)).into(),
                    ts(at(i64::min)).into(),
                    ts(at(i64::max)).into(),
                    prev.to_vec().into(),
                    hash.to_vec().into(),
                    month.into(),
                ],
            )?;
        }
        Ok(total)
    })
}
