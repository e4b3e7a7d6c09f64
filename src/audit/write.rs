//! Where entries are written and how: the log's partition for now() (the target, kept per
//! backend) and the prepared INSERTs of one entry or a batch, run as the extension's owner
//! (machinery: SPI, syscache).

use super::columns::column_list;
use crate::error::FloeError;
use crate::privileged::{self, floe_schema, Session};
use crate::sqltypes::us_of;
use pgrx::prelude::*;
use pgrx::spi::OwnedPreparedStatement;
use std::cell::RefCell;
use std::rc::Rc;

/// Where entries are written: straight into the partition of the current month (through the
/// parent, partition routing is set up for every statement: most of a single-row
/// statement's extra cost), or the parent while no partition covers now() (its default
/// partition takes them). Every column is spelled out, the defaults too (a partition attached
/// by hand may lack them); every name is schema-qualified and there is no operator: run
/// through `privileged::run_qualified`.
pub(super) fn insert_one_sql(table: &str) -> String {
    // One entry (a statement that changed one row): a plain VALUES, which runs from a
    // generic plan; the batch's unnest would be planned again for every single-row array.
    format!(
        "INSERT INTO {table} ({})
         VALUES ({ENTRY_DEFAULTS}, $1, $2, $3, $6, $7, pg_catalog.pg_get_userbyid($8), $9,
                 pg_catalog.inet_client_addr(), $10::pg_catalog.jsonb, $11::pg_catalog.jsonb,
                 $12::pg_catalog.jsonb, $4, $5)",
        column_list()
    )
}

/// A batch of one table's entries (one executor start per batch, not per row).
pub(super) fn insert_many_sql(table: &str) -> String {
    format!(
        "INSERT INTO {table} ({})
         SELECT {ENTRY_DEFAULTS}, $1, $2, $3, u.op, u.tenant, pg_catalog.pg_get_userbyid(u.actor),
                u.app_actor, pg_catalog.inet_client_addr(), u.pk::pg_catalog.jsonb,
                u.old::pg_catalog.jsonb, u.new::pg_catalog.jsonb, $4, $5
           FROM ROWS FROM (pg_catalog.unnest($6::pg_catalog.text[]), pg_catalog.unnest($7::pg_catalog.uuid[]),
                           pg_catalog.unnest($8::pg_catalog.oid[]), pg_catalog.unnest($9::pg_catalog.text[]),
                           pg_catalog.unnest($10::pg_catalog.text[]), pg_catalog.unnest($11::pg_catalog.text[]),
                           pg_catalog.unnest($12::pg_catalog.text[]))
                WITH ORDINALITY AS u(op, tenant, actor, app_actor, pk, old, new, ord)
          ORDER BY u.ord",
        column_list()
    )
}

pub(super) const ENTRY_DEFAULTS: &str =
    "pg_catalog.nextval('floe.audit_log_id_seq'::pg_catalog.regclass), \
    pg_catalog.now(), pg_catalog.pg_current_xact_id()";

/// The table entries go to, its bounds, and its two statements (prepared on first use),
/// kept per backend.
pub(super) struct LogTarget {
    pub(super) schema: pg_sys::Oid,
    /// The month partition; `None`: the parent.
    pub(super) partition: Option<pg_sys::Oid>,
    pub(super) lo: i64,
    pub(super) hi: i64,
    pub(super) table: String,
    /// `floe.audit_log_id_seq`, for the direct writer (`append.rs`).
    pub(super) seq: pg_sys::Oid,
    pub(super) one: Option<Rc<OwnedPreparedStatement>>,
    pub(super) many: Option<Rc<OwnedPreparedStatement>>,
}

thread_local! {
    static TARGET: RefCell<Option<LogTarget>> = const { RefCell::new(None) };
}

/// The leaf partition of the log for now() (not the default one), with its bounds.
pub(super) const PARTITION_NOW: &str = "
SELECT p.partition::oid, p.partition::text,
       pg_catalog.btrim(p.lower_bound, '''')::timestamptz, pg_catalog.btrim(p.upper_bound, '''')::timestamptz
  FROM floe.partitions('floe.audit_log') p
 WHERE NOT p.is_default
   AND pg_catalog.btrim(p.lower_bound, '''')::timestamptz <= pg_catalog.now()
   AND pg_catalog.now() < pg_catalog.btrim(p.upper_bound, '''')::timestamptz";

/// Keeps the cached target while it still takes this transaction's entries (same
/// installation, a partition whose bounds hold now(), still a partition); else looks it up
/// again (while the parent is the target, at every flush: a partition may have been made).
pub(super) fn ensure_target() -> Result<(), FloeError> {
    let schema = floe_schema();
    // SAFETY: reads the transaction's start time (what now() returns).
    let now = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() };
    let valid = TARGET.with_borrow(|t| {
        t.as_ref().is_some_and(|t| {
            t.schema == schema
                && t.lo <= now
                && now < t.hi
                // SAFETY: a syscache lookup.
                && t.partition.is_some_and(|p| unsafe { pg_sys::get_rel_relispartition(p) })
        })
    });
    if valid {
        return Ok(());
    }
    let found = privileged::run(|s| {
        let rows = s.run(PARTITION_NOW, &[])?;
        if rows.is_empty() {
            return Ok(None);
        }
        let row = rows.first();
        let (Some(oid), Some(name), Some(lo), Some(hi)) = (
            row.get::<pg_sys::Oid>(1)?,
            row.get::<String>(2)?,
            row.get::<TimestampWithTimeZone>(3)?,
            row.get::<TimestampWithTimeZone>(4)?,
        ) else {
            return Ok(None);
        };
        Ok(Some((oid, name, us_of(lo), us_of(hi))))
    })?;
    let (partition, table, lo, hi) = match found {
        Some((oid, name, lo, hi)) => (Some(oid), name, lo, hi),
        None => (None, "floe.audit_log".to_string(), 0, 0),
    };
    // SAFETY: a syscache lookup by name.
    let seq = unsafe { pg_sys::get_relname_relid(c"audit_log_id_seq".as_ptr(), schema) };
    TARGET.with_borrow_mut(|t| match t.as_mut() {
        // The same table (the parent again): keep its prepared statements.
        Some(t) if t.schema == schema && t.table == table => {
            (t.partition, t.lo, t.hi, t.seq) = (partition, lo, hi, seq);
        }
        _ => {
            *t = Some(LogTarget {
                schema,
                partition,
                lo,
                hi,
                table,
                seq,
                one: None,
                many: None,
            })
        }
    });
    Ok(())
}

/// The month entries go to and the log's id sequence, when a month is the target (not the
/// parent) and both are known: for the direct writer, `append.rs`.
pub(super) fn month_target() -> Option<(pg_sys::Oid, pg_sys::Oid)> {
    TARGET.with_borrow(|t| {
        let t = t.as_ref()?;
        let month = t.partition?;
        (t.seq != pg_sys::InvalidOid).then_some((month, t.seq))
    })
}

/// Runs the single-entry or batch statement on the current target.
pub(super) fn run_on_target(
    s: &mut Session<'_, '_>,
    many: bool,
    args: &[pgrx::datum::DatumWithOid<'_>],
) -> Result<(), FloeError> {
    let cached = TARGET.with_borrow(|t| {
        t.as_ref()
            .map(|t| (if many { &t.many } else { &t.one }.clone(), t.table.clone()))
    });
    let Some((stmt, table)) = cached else {
        return Err(FloeError::Internal {
            message: "audit: no target table".into(),
        });
    };
    let stmt = match stmt {
        Some(stmt) => stmt,
        None => {
            let sql = if many {
                insert_many_sql(&table)
            } else {
                insert_one_sql(&table)
            };
            let types: Vec<pg_sys::Oid> = args.iter().map(|a| a.oid()).collect();
            let stmt = Rc::new(s.prepare_kept(&sql, &types)?);
            TARGET.with_borrow_mut(|t| {
                if let Some(t) = t.as_mut() {
                    *(if many { &mut t.many } else { &mut t.one }) = Some(stmt.clone());
                }
            });
            stmt
        }
    };
    s.run_kept(&stmt, args)?;
    Ok(())
}
