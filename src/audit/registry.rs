//! Which tables are audited: `floe.audit_tables`, the log's partition set (made with the
//! first audited table), the checks on a table before auditing it, and what a table's
//! entries say about it (`Facts`: from its registry row here, from a shard's trigger in
//! `distributed.rs`). Machinery (SPI).

use crate::error::FloeError;
use crate::privileged::Session;
use pgrx::prelude::*;

pub(super) const LOG_SET_EXISTS: &str =
    "SELECT EXISTS (SELECT 1 FROM floe.partition_sets WHERE parent = 'floe.audit_log')";
pub(super) const LOCK_LOG_SETUP: &str =
    "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('floe.audit_log'))";
pub(super) const CREATE_LOG_SET: &str = "
SELECT pg_catalog.set_config('default_tablespace', '', true),
       floe.create_parent('floe.audit_log', 'logged_at', part_interval => '1 month',
                          premake => 4, default_partition => true),
       floe.complete_own_partitions()";

/// The log becomes a monthly partition set with the first audited table (partitions made by
/// the install script would be extension members, which retention cannot drop).
pub(super) fn ensure_log_set(s: &mut Session<'_, '_>) -> Result<(), FloeError> {
    // floe makes the log's first months itself: the custody guard stands aside.
    super::custody::internal(|| s.create_once(LOG_SET_EXISTS, LOCK_LOG_SETUP, CREATE_LOG_SET))
}

pub(super) const COLUMNS: &str = "
SELECT a.attname::text FROM pg_catalog.pg_attribute a
 WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped";

pub(super) const UPSERT_TABLE: &str = "
INSERT INTO floe.audit_tables (relid, redact, classification, enabled_by, log_relid)
VALUES ($1, $2, $3, pg_catalog.pg_get_userbyid($4), $5)
ON CONFLICT (relid) DO UPDATE SET redact = EXCLUDED.redact, classification = EXCLUDED.classification";

/// What decides the relid of a table's entries (see `identity.rs`): its registry row if it
/// has one, its `schema.table`, whether another table carries its oid, the names in the entries under its oid
/// (its last seal's and the unsealed ones), and the largest relid in use.
pub(super) const LOG_RELID_FACTS: &str = "
WITH horizon AS (SELECT coalesce((SELECT r.horizon FROM floe.audit_seal_runs r ORDER BY r.run DESC LIMIT 1),
                                 '0'::xid8) AS h),
     last_seal AS (SELECT s.lo, s.hi FROM floe.audit_seals s WHERE s.relid = $1 ORDER BY s.run DESC LIMIT 1)
SELECT (SELECT a.log_relid FROM floe.audit_tables a WHERE a.relid = $1),
       (SELECT n.nspname::text || '.' || c.relname::text
          FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE c.oid = $1),
       EXISTS (SELECT 1 FROM floe.audit_tables a WHERE a.log_relid = $1 AND a.relid <> $1),
       EXISTS (SELECT 1 FROM last_seal),
       ARRAY(SELECT DISTINCT l.schema_name::text || '.' || l.table_name::text
               FROM floe.audit_log l
              WHERE l.relid = $1
                AND (l.xid >= (SELECT h FROM horizon)
                     OR EXISTS (SELECT 1 FROM last_seal ls WHERE l.xid >= ls.lo AND l.xid < ls.hi)))::text[],
       GREATEST((SELECT pg_catalog.max(a.log_relid::int8) FROM floe.audit_tables a),
                           (SELECT pg_catalog.max(s.relid::int8) FROM floe.audit_seals s),
                           (SELECT pg_catalog.max(l.relid::int8) FROM floe.audit_log l
                             WHERE l.xid >= (SELECT h FROM horizon)))";

/// The relid the entries of table `oid` carry: the one it has, or one for it now.
pub(super) fn log_relid_for(
    s: &mut Session<'_, '_>,
    oid: pg_sys::Oid,
) -> Result<pg_sys::Oid, FloeError> {
    let rows = s.run(LOG_RELID_FACTS, &[oid.into()])?;
    let row = rows.first();
    if let Some(existing) = row.get::<pg_sys::Oid>(1)? {
        return Ok(existing);
    }
    let name: String = row.get(2)?.unwrap_or_default();
    let history = super::identity::History {
        claimed: row.get::<bool>(3)?.unwrap_or(false),
        sealed: row.get::<bool>(4)?.unwrap_or(false),
        names: row.get::<Vec<String>>(5)?.unwrap_or_default(),
    };
    let max_known = row
        .get::<i64>(6)?
        .and_then(|m| u32::try_from(m).ok())
        .unwrap_or(0);
    super::identity::choose(oid.to_u32(), &name, &history, max_known)
        .map(pg_sys::Oid::from)
        .ok_or_else(|| FloeError::WrongState {
            message: "no relid is left for the audit log's entries".into(),
            hint: "The audit log carries relids up to 4294967295; contact floe's maintainers."
                .into(),
        })
}

pub(super) const DELETE_TABLE: &str = "DELETE FROM floe.audit_tables WHERE relid = $1 RETURNING 1";

/// The audited table's qualified name, after checking it can be audited by the caller.
pub(super) fn target(
    s: &mut Session<'_, '_>,
    oid: pg_sys::Oid,
    what: &str,
) -> Result<String, FloeError> {
    let t = s.table(
        oid,
        "Audit tables (plain or partitioned); views and foreign tables have no rows of their own.",
    )?;
    if t.schema == "floe" || t.schema == "pg_catalog" || t.schema == "information_schema" {
        return Err(FloeError::WrongObjectType {
            message: format!("{} is a system or floe table", t.qualified),
            hint: "floe keeps its own history; audit your application's tables.".into(),
        });
    }
    if t.partition {
        return Err(FloeError::WrongObjectType {
            message: format!("{} is a partition", t.qualified),
            hint: format!("{what} the partitioned table it belongs to: its partitions follow."),
        });
    }
    t.require_owner(what)?;
    Ok(t.qualified)
}

pub(super) fn classification_arg(values: Vec<Option<String>>) -> Result<Vec<String>, FloeError> {
    let mut out = Vec::new();
    for v in values {
        let v = v.unwrap_or_default().trim().to_lowercase();
        let ok = v.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && v.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !ok {
            return Err(crate::error::invalid(
                "classification",
                v,
                "flags such as gdpr, sox, hipaa, pci (letters, digits and _)",
            ));
        }
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out.sort();
    Ok(out)
}

pub(super) const TABLE_FACTS: &str = "
SELECT a.redact, a.classification,
       (SELECT t.tenant_column::text FROM floe.tenant_tables t
         WHERE t.relid = a.relid AND t.via_column IS NULL),
       n.nspname::text, c.relname::text, a.log_relid
  FROM floe.audit_tables a
  JOIN pg_catalog.pg_class c ON c.oid = a.relid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE a.relid = $1";

/// What the entries of a table say about it, from its registry row (one node) or from its
/// trigger's arguments and Citus's catalog (a shard: `distributed.rs`).
pub(super) struct Facts {
    pub(super) redact: Vec<String>,
    pub(super) classification: Vec<String>,
    pub(super) tenant_column: Option<String>,
    pub(super) schema: String,
    pub(super) table: String,
    pub(super) log_relid: pg_sys::Oid,
    pub(super) shell: bool,
}

pub(super) fn not_audited(root: pg_sys::Oid, why: &str) -> FloeError {
    FloeError::WrongState {
        message: format!(
            "table with oid {} has floe's audit trigger but is not audited{why}",
            root.to_u32()
        ),
        hint: "Call floe.enable_audit() on it (or floe.disable_audit() to remove the trigger)."
            .into(),
    }
}

pub(super) fn local_facts(s: &mut Session<'_, '_>, root: pg_sys::Oid) -> Result<Facts, FloeError> {
    let facts = s.run(TABLE_FACTS, &[root.into()])?;
    if facts.is_empty() {
        return Err(not_audited(root, ""));
    }
    let row = facts.first();
    Ok(Facts {
        redact: row.get::<Vec<String>>(1)?.unwrap_or_default(),
        classification: row.get::<Vec<String>>(2)?.unwrap_or_default(),
        tenant_column: row.get(3)?,
        schema: row.get(4)?.unwrap_or_default(),
        table: row.get(5)?.unwrap_or_default(),
        log_relid: row.get(6)?.unwrap_or(root),
        shell: false,
    })
}
