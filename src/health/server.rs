//! Connection health (pure): what `floe.health()` says about the server's connections, the
//! sessions left idle in a transaction, the oldest snapshot holding back cleanup, and queries
//! that write out shared buffers themselves.
//!
//! These are the conditions behind a pooler that stops handing out connections, maintenance
//! that queues behind a forgotten `BEGIN` (partition DETACH/ATTACH, refreshes, VACUUM), and
//! queue and audit tables that bloat because VACUUM may not remove what an old snapshot can
//! still see.

use crate::check::{Check, Status};

/// Connections in use against `max_connections`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connections {
    /// Client backends (what counts against `max_connections`).
    pub in_use: i64,
    pub max_connections: i64,
    /// `superuser_reserved_connections` (and, from PostgreSQL 16, `reserved_connections`).
    pub reserved: i64,
}

/// `server.connections`: warn from 80 % of `max_connections`, critical once the slots open to
/// ordinary roles are (nearly: 95 %) all taken.
pub fn connections_check(c: Connections) -> Check {
    const NAME: &str = "server.connections";
    let max = c.max_connections.max(1);
    let open_to_all = (max - c.reserved).max(1);
    let percent = c.in_use * 100 / max;
    let detail = format!(
        "{} of {} connections in use ({percent} %), {} reserved for superusers",
        c.in_use, c.max_connections, c.reserved
    );
    let status = if c.in_use >= open_to_all || c.in_use * 100 >= max * 95 {
        Status::Critical
    } else if c.in_use * 100 >= max * 80 {
        Status::Warn
    } else {
        Status::Ok
    };
    Check {
        name: NAME,
        status,
        detail,
        hint: (status != Status::Ok).then(|| {
            "Put a pooler (pgbouncer in transaction mode) in front of the applications, close idle connections, or raise max_connections (restart).".into()
        }),
    }
}

/// A session of interest: its pid and for how long it has been in that state (seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub pid: i32,
    pub secs: i64,
}

fn duration(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{} h", s / 3600),
    }
}

fn list(sessions: &[Session], most: usize) -> String {
    let mut parts: Vec<String> = sessions
        .iter()
        .take(most)
        .map(|s| format!("pid {} for {}", s.pid, duration(s.secs)))
        .collect();
    if sessions.len() > most {
        parts.push(format!("{} more", sessions.len() - most));
    }
    parts.join(", ")
}

/// `server.idle_in_transaction`: sessions idle inside a transaction for at least `limit_secs`
/// (`floe.health_idle_in_transaction`); they hold their locks and snapshot. Warn; critical
/// when one has been idle 12 times the limit (an hour at the default five minutes).
/// `sessions` are sorted longest first.
pub fn idle_in_transaction_check(sessions: &[Session], limit_secs: i64) -> Check {
    const NAME: &str = "server.idle_in_transaction";
    let over: Vec<Session> = sessions
        .iter()
        .copied()
        .filter(|s| s.secs >= limit_secs)
        .collect();
    if over.is_empty() {
        return Check::ok(
            NAME,
            format!(
                "no session idle in a transaction for {} or more",
                duration(limit_secs)
            ),
        );
    }
    let status = if over[0].secs >= limit_secs.saturating_mul(12) {
        Status::Critical
    } else {
        Status::Warn
    };
    Check {
        name: NAME,
        status,
        detail: format!(
            "idle in a transaction for {} or more: {}",
            duration(limit_secs),
            list(&over, 5)
        ),
        hint: Some(
            "They hold locks floe's maintenance waits for and a snapshot that keeps VACUUM from cleaning the queue and audit tables: end them (pg_terminate_backend(pid)) and fix the application; idle_in_transaction_session_timeout ends them by itself.".into(),
        ),
    }
}

/// What holds the xmin horizon back: the oldest snapshot of a session (seconds since its
/// transaction began, and the xid age), of a replication slot and of a prepared transaction
/// (xid ages; the prepared one's age in seconds too).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Horizon {
    pub session: Option<(Session, i64)>,
    pub slot: Option<(String, i64)>,
    pub prepared: Option<(String, i64, i64)>,
}

/// xid age beyond which a replication slot or prepared transaction is reported whatever its
/// time (autovacuum's freeze age is 200 million by default).
pub const XID_AGE_WARN: i64 = 10_000_000;

/// `server.xmin_horizon`: the oldest snapshot must be younger than `limit_secs`
/// (`floe.health_xmin_age`), and no slot or prepared transaction may hold back more than
/// [`XID_AGE_WARN`] transactions; critical at 16 times the limit or 10 times the age.
pub fn xmin_horizon_check(h: &Horizon, limit_secs: i64) -> Check {
    const NAME: &str = "server.xmin_horizon";
    let mut problems = Vec::new();
    let mut status = Status::Ok;
    let mut raise = |s: Status| status = status.max(s);
    if let Some((s, age)) = h.session {
        if s.secs >= limit_secs {
            raise(if s.secs >= limit_secs.saturating_mul(16) {
                Status::Critical
            } else {
                Status::Warn
            });
            problems.push(format!(
                "the transaction of pid {} began {} ago ({age} transactions)",
                s.pid,
                duration(s.secs)
            ));
        }
    }
    if let Some((slot, age)) = &h.slot {
        if *age >= XID_AGE_WARN {
            raise(if *age >= XID_AGE_WARN * 10 {
                Status::Critical
            } else {
                Status::Warn
            });
            problems.push(format!(
                "replication slot {slot} holds back {age} transactions"
            ));
        }
    }
    if let Some((gid, secs, age)) = &h.prepared {
        if *secs >= limit_secs || *age >= XID_AGE_WARN {
            raise(
                if *age >= XID_AGE_WARN * 10 || *secs >= limit_secs.saturating_mul(16) {
                    Status::Critical
                } else {
                    Status::Warn
                },
            );
            problems.push(format!(
                "prepared transaction {gid} is {} old ({age} transactions)",
                duration(*secs)
            ));
        }
    }
    if problems.is_empty() {
        let oldest = h
            .session
            .map(|(s, _)| format!("the oldest transaction began {} ago", duration(s.secs)))
            .unwrap_or_else(|| "no transaction holds a snapshot".into());
        return Check::ok(NAME, oldest);
    }
    Check {
        name: NAME,
        status,
        detail: problems.join("; "),
        hint: Some(
            "While it lasts VACUUM keeps every row version it might see: floe's queue tables, the audit log and every busy table bloat, and audit sealing waits. End the transaction (pg_terminate_backend), commit or roll back the prepared one (COMMIT PREPARED / ROLLBACK PREPARED), or drop the unused slot (pg_drop_replication_slot).".into(),
        ),
    }
}

/// Who wrote the shared buffers of tables and indexes to disk, in blocks since the counters
/// were last reset: `by_backends` by the processes that needed a buffer (client backends,
/// autovacuum, background workers: an eviction), `total` with the checkpointer and the
/// background writer. `bulk` is what backends wrote through their small ring of buffers
/// (COPY, CREATE TABLE AS, VACUUM, large scans): expected, and no sign of a small
/// `shared_buffers`. PostgreSQL 16's `pg_stat_io` tells the two apart; up to 15
/// `pg_stat_bgwriter.buffers_backend` counts both as one (`bulk` is `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferWrites {
    pub by_backends: i64,
    pub total: i64,
    pub bulk: Option<i64>,
}

/// Writes (8 kB blocks, about 80 MB) below which `server.buffer_writes` says nothing: a share
/// of a few writes means nothing.
pub const BUFFER_WRITES_MIN: i64 = 10_000;

/// `server.buffer_writes`: warn when backends wrote half or more of the buffers written in
/// normal operation (at least [`BUFFER_WRITES_MIN`]): they waited for their own writes, because
/// `shared_buffers` is too small for the working set or the background writer does too little.
/// Never above ok where the bulk writes cannot be told apart (up to PostgreSQL 15): a `COPY`
/// would raise it falsely, so the figures are only shown.
pub fn buffer_writes_check(w: BufferWrites) -> Check {
    const NAME: &str = "server.buffer_writes";
    let percent = if w.total > 0 {
        w.by_backends * 100 / w.total
    } else {
        0
    };
    let Some(bulk) = w.bulk else {
        return Check::ok(
            NAME,
            format!(
                "backends wrote {} of {} buffers ({percent} %), bulk writes (COPY, VACUUM) included: PostgreSQL 16's pg_stat_io tells evictions apart",
                w.by_backends, w.total
            ),
        );
    };
    let detail = format!(
        "backends evicted {} of {} buffers written ({percent} %); {bulk} more written by bulk operations (COPY, VACUUM, large scans)",
        w.by_backends, w.total
    );
    if w.by_backends < BUFFER_WRITES_MIN || percent < 50 {
        return Check::ok(NAME, detail);
    }
    Check {
        name: NAME,
        status: Status::Warn,
        detail,
        hint: Some(
            "Queries wait for their own writes: raise shared_buffers (restart), let the background writer do more (bgwriter_lru_maxpages, bgwriter_lru_multiplier), then SELECT pg_stat_reset_shared('io') so the check counts anew.".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn connections_by_share_of_max() {
        let c = |in_use| {
            connections_check(Connections {
                in_use,
                max_connections: 100,
                reserved: 3,
            })
        };
        assert_eq!(c(10).status, Status::Ok);
        assert_eq!(c(79).status, Status::Ok);
        assert_eq!(c(80).status, Status::Warn);
        assert_eq!(c(94).status, Status::Warn);
        assert_eq!(c(95).status, Status::Critical);
        assert!(c(80)
            .detail
            .contains("80 of 100 connections in use (80 %), 3 reserved"));
        assert!(c(80).hint.is_some() && c(10).hint.is_none());
        // A small server: the slots open to ordinary roles run out before 95 %.
        let small = connections_check(Connections {
            in_use: 17,
            max_connections: 20,
            reserved: 3,
        });
        assert_eq!(small.status, Status::Critical);
    }

    #[test]
    fn idle_in_transaction_over_the_limit() {
        let s = |pid, secs| Session { pid, secs };
        assert_eq!(idle_in_transaction_check(&[], 300).status, Status::Ok);
        assert_eq!(
            idle_in_transaction_check(&[s(1, 299)], 300).status,
            Status::Ok
        );
        let w = idle_in_transaction_check(&[s(7, 900), s(8, 301), s(9, 10)], 300);
        assert_eq!(w.status, Status::Warn);
        assert_eq!(
            w.detail,
            "idle in a transaction for 5 min or more: pid 7 for 15 min, pid 8 for 5 min"
        );
        assert_eq!(
            idle_in_transaction_check(&[s(7, 3600)], 300).status,
            Status::Critical
        );
        let many: Vec<Session> = (0..8).map(|i| s(i, 400)).collect();
        assert!(idle_in_transaction_check(&many, 300)
            .detail
            .ends_with("3 more"));
    }

    #[test]
    fn horizon_sources() {
        let ok = xmin_horizon_check(&Horizon::default(), 900);
        assert_eq!(
            (ok.status, ok.detail.as_str()),
            (Status::Ok, "no transaction holds a snapshot")
        );
        let young = Horizon {
            session: Some((Session { pid: 3, secs: 60 }, 12)),
            ..Default::default()
        };
        assert_eq!(xmin_horizon_check(&young, 900).status, Status::Ok);
        let old = Horizon {
            session: Some((Session { pid: 3, secs: 1000 }, 5000)),
            ..Default::default()
        };
        let c = xmin_horizon_check(&old, 900);
        assert_eq!(c.status, Status::Warn);
        assert_eq!(
            c.detail,
            "the transaction of pid 3 began 16 min ago (5000 transactions)"
        );
        let ancient = Horizon {
            session: Some((
                Session {
                    pid: 3,
                    secs: 900 * 16,
                },
                1,
            )),
            ..Default::default()
        };
        assert_eq!(xmin_horizon_check(&ancient, 900).status, Status::Critical);
        let slot = Horizon {
            slot: Some(("standby1".into(), XID_AGE_WARN)),
            ..Default::default()
        };
        assert_eq!(xmin_horizon_check(&slot, 900).status, Status::Warn);
        let slot = Horizon {
            slot: Some(("standby1".into(), XID_AGE_WARN - 1)),
            ..Default::default()
        };
        assert_eq!(xmin_horizon_check(&slot, 900).status, Status::Ok);
        let prepared = Horizon {
            prepared: Some(("tx1".into(), 2000, 3)),
            ..Default::default()
        };
        let c = xmin_horizon_check(&prepared, 900);
        assert_eq!(c.status, Status::Warn);
        assert!(c.detail.contains("prepared transaction tx1 is 33 min old"));
    }

    #[test]
    fn buffer_writes_by_share_and_volume() {
        let w = |by_backends, total| BufferWrites {
            by_backends,
            total,
            bulk: Some(50_000),
        };
        // Bulk writes do not count; few writes say nothing.
        assert_eq!(buffer_writes_check(w(0, 0)).status, Status::Ok);
        assert_eq!(buffer_writes_check(w(9_999, 9_999)).status, Status::Ok);
        assert_eq!(buffer_writes_check(w(10_000, 20_001)).status, Status::Ok);
        let c = buffer_writes_check(w(10_000, 20_000));
        assert_eq!(c.status, Status::Warn);
        assert!(
            c.detail.contains("10000 of 20000 buffers written (50 %)"),
            "{}",
            c.detail
        );
        assert!(c.hint.unwrap().contains("shared_buffers"));
        // Up to 15 the same figures are only shown.
        let old = buffer_writes_check(BufferWrites {
            by_backends: 90_000,
            total: 90_000,
            bulk: None,
        });
        assert_eq!(old.status, Status::Ok);
        assert!(old.detail.contains("pg_stat_io"), "{}", old.detail);
    }

    proptest! {
        /// More connections never make the check milder.
        #[test]
        fn connections_monotone(max in 1i64..10_000, reserved in 0i64..10, a in 0i64..10_000, b in 0i64..10_000) {
            let (lo, hi) = (a.min(b), a.max(b));
            let check = |in_use| connections_check(Connections { in_use, max_connections: max, reserved }).status;
            prop_assert!(check(lo) <= check(hi));
        }

        /// A longer idle session never makes the check milder, and below the limit it is ok.
        #[test]
        fn idle_monotone(limit in 1i64..10_000, a in 0i64..1_000_000, b in 0i64..1_000_000) {
            let (lo, hi) = (a.min(b), a.max(b));
            let check = |secs| idle_in_transaction_check(&[Session { pid: 1, secs }], limit).status;
            prop_assert!(check(lo) <= check(hi));
            prop_assert_eq!(check(limit - 1), Status::Ok);
        }

        /// More backend writes out of the same total never lower the status.
        #[test]
        fn buffer_writes_monotone(total in 0i64..1_000_000, a in 0i64..1_000_000, b in 0i64..1_000_000, bulk in proptest::option::of(0i64..1_000_000)) {
            let (lo, hi) = (a.min(b).min(total), a.max(b).min(total));
            let check = |by_backends| buffer_writes_check(BufferWrites { by_backends, total, bulk }).status;
            prop_assert!(check(lo) <= check(hi));
        }
    }
}
