//! The facts `floe.health()` judges about declared references (SPI, as the extension's
//! owner, limited to the references of tables the caller owns).

use super::checks::{orphans_check, scan_check, ReferenceFacts};
use crate::check::Check;
use crate::error::FloeError;
use crate::privileged;
use crate::sqltypes::SECOND;

/// Ages in microseconds, as of the transaction's start.
const FACTS: &str = "
SELECT pg_catalog.format('%s (%s) -> %s on server %s', d.tbl, pg_catalog.array_to_string(d.columns, ', '),
                         d.target_table, d.target_server),
       o.keys, o.rows,
       (EXTRACT(epoch FROM pg_catalog.now() - o.oldest) * 1e6)::bigint,
       (SELECT pg_catalog.count(*) FROM floe.reference_pending p WHERE p.reference_id = d.id),
       (EXTRACT(epoch FROM pg_catalog.now() - s.last_pass_completed) * 1e6)::bigint,
       (EXTRACT(epoch FROM pg_catalog.now() - d.declared_at) * 1e6)::bigint,
       s.last_error
  FROM floe.declared_references d
  JOIN pg_catalog.pg_class c ON c.oid = d.tbl
  LEFT JOIN floe.reference_scans s ON s.reference_id = d.id
  CROSS JOIN LATERAL (SELECT pg_catalog.count(*) AS keys, COALESCE(pg_catalog.sum(r.rows), 0)::bigint AS rows,
                             pg_catalog.min(r.first_seen) AS oldest
                        FROM floe.reference_orphans r WHERE r.reference_id = d.id) o
 WHERE pg_catalog.pg_has_role($1, c.relowner, 'USAGE')
 ORDER BY d.id";

pub fn health_checks() -> Result<Vec<Check>, FloeError> {
    let facts = privileged::run(|s| {
        let caller = s.caller;
        let mut out = Vec::new();
        for row in s.run(FACTS, &[caller.into()])? {
            out.push(ReferenceFacts {
                name: row.get(1)?.unwrap_or_default(),
                orphan_keys: row.get(2)?.unwrap_or(0),
                orphan_rows: row.get(3)?.unwrap_or(0),
                oldest_orphan: row.get(4)?,
                pending: row.get(5)?.unwrap_or(0),
                since_pass: row.get(6)?,
                declared: row.get(7)?.unwrap_or(0),
                error: row.get(8)?,
            });
        }
        Ok(out)
    })?;
    let interval = i64::from(crate::gucs::reference_scan_interval_secs()) * SECOND;
    Ok(vec![orphans_check(&facts), scan_check(&facts, interval)])
}
