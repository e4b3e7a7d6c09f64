//! The facts behind the server checks of `server.rs`, read from `pg_stat_activity`,
//! `pg_replication_slots`, `pg_prepared_xacts` and the I/O statistics (`compat::BUFFER_WRITES`)
//! as the extension's owner (an ordinary role
//! sees other roles' sessions without their state). Only pids, ages and counts come out.

use super::server::{self, BufferWrites, Connections, Horizon, Session};
use crate::check::Check;
use crate::error::FloeError;
use crate::privileged;

const CONNECTIONS: &str = "
SELECT (SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity a
         WHERE a.backend_type OPERATOR(pg_catalog.=) 'client backend'),
       pg_catalog.current_setting('max_connections')::int8,
       pg_catalog.current_setting('superuser_reserved_connections')::int8
       OPERATOR(pg_catalog.+) coalesce(pg_catalog.current_setting('reserved_connections', true)::int8, 0)";

const IDLE_IN_TRANSACTION: &str = "
SELECT a.pid, pg_catalog.floor(pg_catalog.date_part('epoch', pg_catalog.clock_timestamp()
                                    OPERATOR(pg_catalog.-) a.state_change))::int8
  FROM pg_catalog.pg_stat_activity a
 WHERE a.state IN ('idle in transaction', 'idle in transaction (aborted)')
 ORDER BY a.state_change
 LIMIT 20";

const HORIZON: &str = "
SELECT a.pid, a.secs, a.age, sl.name, sl.age, p.gid, p.secs, p.age
  FROM (SELECT 1) one
  LEFT JOIN LATERAL (
        SELECT x.pid,
               pg_catalog.floor(pg_catalog.date_part('epoch', pg_catalog.clock_timestamp()
                                    OPERATOR(pg_catalog.-) x.xact_start))::int8 AS secs,
               pg_catalog.age(x.backend_xmin)::int8 AS age
          FROM pg_catalog.pg_stat_activity x
         WHERE x.backend_xmin IS NOT NULL AND x.xact_start IS NOT NULL
           AND x.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()
         ORDER BY pg_catalog.age(x.backend_xmin) DESC LIMIT 1) a ON true
  LEFT JOIN LATERAL (
        SELECT x.slot_name::text AS name,
               GREATEST(pg_catalog.age(x.xmin), pg_catalog.age(x.catalog_xmin))::int8 AS age
          FROM pg_catalog.pg_replication_slots x
         WHERE x.xmin IS NOT NULL OR x.catalog_xmin IS NOT NULL
         ORDER BY 2 DESC LIMIT 1) sl ON true
  LEFT JOIN LATERAL (
        SELECT x.gid,
               pg_catalog.floor(pg_catalog.date_part('epoch', pg_catalog.clock_timestamp()
                                    OPERATOR(pg_catalog.-) x.prepared))::int8 AS secs,
               pg_catalog.age(x.transaction)::int8 AS age
          FROM pg_catalog.pg_prepared_xacts x
         ORDER BY pg_catalog.age(x.transaction) DESC LIMIT 1) p ON true";

/// `server.connections`, `server.idle_in_transaction`, `server.xmin_horizon`,
/// `server.buffer_writes`.
pub fn health_checks() -> Result<Vec<Check>, FloeError> {
    privileged::run(|s| {
        let row = s.run(CONNECTIONS, &[])?;
        let row = row.first();
        let connections = Connections {
            in_use: row.get::<i64>(1)?.unwrap_or(0),
            max_connections: row.get::<i64>(2)?.unwrap_or(0),
            reserved: row.get::<i64>(3)?.unwrap_or(0),
        };
        let mut idle = Vec::new();
        for r in s.run(IDLE_IN_TRANSACTION, &[])? {
            if let (Some(pid), Some(secs)) = (r.get::<i32>(1)?, r.get::<i64>(2)?) {
                idle.push(Session { pid, secs });
            }
        }
        let h = s.run(HORIZON, &[])?;
        let h = h.first();
        let session = match (h.get::<i32>(1)?, h.get::<i64>(2)?, h.get::<i64>(3)?) {
            (Some(pid), Some(secs), Some(age)) => Some((Session { pid, secs }, age)),
            _ => None,
        };
        let slot = match (h.get::<String>(4)?, h.get::<i64>(5)?) {
            (Some(name), Some(age)) => Some((name, age)),
            _ => None,
        };
        let prepared = match (h.get::<String>(6)?, h.get::<i64>(7)?, h.get::<i64>(8)?) {
            (Some(gid), Some(secs), Some(age)) => Some((gid, secs, age)),
            _ => None,
        };
        let w = s.run(crate::compat::BUFFER_WRITES, &[])?;
        let w = w.first();
        let writes = BufferWrites {
            by_backends: w.get::<i64>(1)?.unwrap_or(0),
            total: w.get::<i64>(2)?.unwrap_or(0),
            bulk: w.get::<i64>(3)?,
        };
        Ok(vec![
            server::connections_check(connections),
            server::idle_in_transaction_check(
                &idle,
                crate::gucs::health_idle_in_transaction_secs().into(),
            ),
            server::xmin_horizon_check(
                &Horizon {
                    session,
                    slot,
                    prepared,
                },
                crate::gucs::health_xmin_age_secs().into(),
            ),
            server::buffer_writes_check(writes),
        ])
    })
}
