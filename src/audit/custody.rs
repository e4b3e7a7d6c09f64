//! floe's own custody of the audit log: the backend-local flag under which floe itself moves
//! or retires audit rows (default-partition drain, retention), which no SQL can set; the
//! record of each month retention retires (`floe.audit_retired`); the check behind the event
//! triggers that refuse any other way for a month to leave the log.

use crate::error::FloeError;
use pgrx::prelude::*;
use std::cell::Cell;

thread_local! {
    /// Set while floe itself moves or expires audit rows (default-partition drain, seal
    /// expiry). Backend-local and not reachable from SQL.
    static INTERNAL: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the append-only triggers standing aside (floe's own row moves).
pub fn internal<T>(f: impl FnOnce() -> T) -> T {
    crate::flag::raised(&INTERNAL, f)
}

/// Whether floe itself is moving or retiring audit rows in this backend right now.
pub(super) fn is_internal() -> bool {
    INTERNAL.get()
}

/// The partition set of the audit log (`floe.partition_sets.parent`).
pub const LOG_SET: &str = "floe.audit_log";

/// Tables that are (or were) partitions of the log, not attached or being detached, with the
/// transaction ids that last wrote their catalog rows.
const OUT_OF_LOG: &str = "
SELECT c.oid::regclass::text, c.xmin::text,
       (SELECT i.xmin::text FROM pg_catalog.pg_inherits i
         WHERE i.inhrelid = c.oid AND i.inhdetachpending),
       c.oid
  FROM pg_catalog.pg_class c
 WHERE c.relnamespace = 'floe'::regnamespace AND c.relkind = 'r'
   AND c.relname ~ '^audit_log_'
   AND (NOT c.relispartition
        OR EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i
                    WHERE i.inhrelid = c.oid AND i.inhdetachpending))";

/// Partitions of the log dropped by the current statement (unless the whole extension goes).
const DROPPED_MONTHS: &str = "
SELECT d.object_identity
  FROM pg_catalog.pg_event_trigger_dropped_objects() d
 WHERE d.object_type = 'table' AND d.schema_name = 'floe' AND d.object_name ~ '^audit_log_'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger_dropped_objects() e
                    WHERE e.object_type = 'extension')";

fn refused(table: &str, what: &str) -> FloeError {
    FloeError::PermissionDenied {
        message: format!(
            "{table} holds a month of the audit log: {what} it is refused, for every role"
        ),
        detail: Some(
            "Months leave the audit log only by floe's retention, which records each one in floe.audit_retired; a month removed any other way is reported by floe.verify_audit() and floe.health().".into(),
        ),
        hint: "To keep less history: SELECT floe.set_retention('floe.audit_log', keep => '7 years', mode => 'drop'); the next maintenance retires the months past it.".into(),
    }
}

/// The check behind the audit event triggers: a month of the log detached (`ddl_command_end`)
/// or dropped (`sql_drop`) by this transaction is refused, unless floe's retention does it.
pub(super) fn guard_months(event: &str) -> Result<(), FloeError> {
    if is_internal() {
        return Ok(());
    }
    match event {
        "ddl_command_end" => Spi::connect(|client| {
            for row in client.select(OUT_OF_LOG, None, &[])? {
                let table: String = row.get(1)?.unwrap_or_default();
                let written_now = [row.get::<String>(2)?, row.get::<String>(3)?]
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x.parse::<u32>().ok())
                    // SAFETY: a lookup in this backend's transaction state.
                    .any(|x| unsafe {
                        pg_sys::TransactionIdIsCurrentTransactionId(
                            pg_sys::TransactionId::from_inner(x),
                        )
                    });
                // A month created by this transaction (a restore in one transaction makes
                // each month before it attaches it) has nothing sealed to lose.
                let created_now = row
                    .get::<pg_sys::Oid>(4)?
                    .is_some_and(created_in_this_transaction);
                if written_now && !created_now {
                    return Err(refused(&table, "detaching"));
                }
            }
            Ok(())
        }),
        "sql_drop" => {
            match Spi::get_one::<String>(&format!("{DROPPED_MONTHS} LIMIT 1"))? {
                Some(table) => Err(refused(&table, "dropping")),
                None => Ok(()),
            }
        }
        other => Err(crate::error::invalid(
            "event",
            other.to_string(),
            "Expected ddl_command_end or sql_drop (the event triggers floe_audit_on_ddl and floe_audit_on_drop call this).",
        )),
    }
}

/// Whether relation `oid` was created by the current transaction.
fn created_in_this_transaction(oid: pg_sys::Oid) -> bool {
    // SAFETY: a relcache lookup of a relation the caller just found in pg_class; the
    // reference is released before returning.
    unsafe {
        let rel = pg_sys::RelationIdGetRelation(oid);
        if rel.is_null() {
            return false;
        }
        let created = (*rel).rd_createSubid != 0; // InvalidSubTransactionId
        pg_sys::RelationClose(rel);
        created
    }
}

/// Records a month of the log in `floe.audit_retired` (its bounds, the retention, the entries
/// it holds): called by partition maintenance while the month is still attached, right before
/// `retire` detaches and drops it, both under floe's custody flag.
pub fn retire_month(
    child: &str,
    retire: impl FnOnce() -> Result<(), FloeError>,
) -> Result<(), FloeError> {
    internal(|| {
        let entries = Spi::get_one::<i64>(&format!("SELECT pg_catalog.count(*) FROM {child}"))?;
        Spi::run_with_args(
            "INSERT INTO floe.audit_retired (month, retention, entries)
             SELECT (pg_catalog.btrim(p.lower_bound, '''')::timestamptz AT TIME ZONE 'UTC')::date,
                    (SELECT s.retention FROM floe.partition_sets s WHERE s.parent = 'floe.audit_log'),
                    $2
               FROM floe.partitions('floe.audit_log') p
              WHERE p.partition = $1::regclass AND NOT p.is_default
             ON CONFLICT (month) DO NOTHING",
            &[child.into(), entries.into()],
        )?;
        retire()
    })
}
