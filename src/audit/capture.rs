//! Writing entries: the per-table configuration cache, turning a row change into an entry
//! (`record.rs` says what it contains), and the per-transaction buffer that inserts them into
//! the log as the extension's owner, reading nothing back.

use super::record::{self, Kind, Object};
use crate::error::FloeError;
use crate::privileged::{self, Session};
use crate::sqltypes::us_of;
use pgrx::prelude::*;
use pgrx::spi::OwnedPreparedStatement;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::CStr;
use std::rc::Rc;

pub(super) struct Att {
    pub(super) name: String,
    pub(super) typid: pg_sys::Oid,
    pub(super) kind: Kind,
    pub(super) byval: bool,
    pub(super) len: i16,
    pub(super) redact: bool,
    pub(super) dropped: bool,
    /// The type's output function, looked up once (lives in TopMemoryContext).
    pub(super) out: Box<pg_sys::FmgrInfo>,
}

pub(super) struct TableConfig {
    pub(super) generation: u64,
    /// The audited table: the root of a partition tree, or the table itself.
    pub(super) root: pg_sys::Oid,
    /// The relid its entries carry (`floe.audit_tables.log_relid`: its oid when auditing
    /// began, kept through a restore).
    pub(super) log_relid: pg_sys::Oid,
    pub(super) schema: String,
    pub(super) table: String,
    pub(super) atts: Vec<Att>,
    /// Indexes into `atts` of the primary key (or replica identity) columns.
    pub(super) pk: Vec<usize>,
    pub(super) tenant: Option<usize>,
    pub(super) redact: Vec<String>,
    pub(super) classification: Vec<String>,
    /// The trigger's arguments the configuration was loaded for (a Citus table's settings:
    /// `shard_args.rs`; none on one node).
    pub(super) args: Vec<String>,
    /// A Citus table's shell, which holds no rows (its shards' triggers log them): only a
    /// TRUNCATE is logged here (Citus truncates the shards from the table's own trigger).
    pub(super) shell: bool,
}

impl TableConfig {
    /// Whether the cached attributes still describe `desc`.
    pub(super) fn matches(&self, desc: pg_sys::TupleDesc) -> bool {
        // SAFETY: desc is the trigger relation's descriptor.
        let natts = unsafe { (*desc).natts } as usize;
        natts == self.atts.len()
            && self.atts.iter().enumerate().all(|(i, a)| {
                // SAFETY: i < natts.
                let att = unsafe { tuple_desc_attr(desc, i) };
                att.atttypid == a.typid
                    && att.attisdropped == a.dropped
                    && name_str(&att.attname) == a.name
            })
    }
}

pub(super) struct Cache {
    pub(super) schema: pg_sys::Oid,
    pub(super) key: Option<[u8; 32]>,
    pub(super) tables: HashMap<pg_sys::Oid, Rc<TableConfig>>,
}

thread_local! {
    static CACHE: RefCell<Option<Cache>> = const { RefCell::new(None) };
}

pub(super) use crate::compat::name_str;
use crate::compat::tuple_desc_attr;

pub(super) fn kind_of(typid: pg_sys::Oid) -> Kind {
    match typid {
        pg_sys::INT2OID
        | pg_sys::INT4OID
        | pg_sys::INT8OID
        | pg_sys::FLOAT4OID
        | pg_sys::FLOAT8OID
        | pg_sys::NUMERICOID => Kind::Number,
        pg_sys::BOOLOID => Kind::Bool,
        pg_sys::JSONOID | pg_sys::JSONBOID => Kind::Json,
        _ => Kind::Text,
    }
}

pub(super) use crate::privileged::floe_schema;

pub(super) const TABLE_FACTS: &str = "
SELECT a.redact, a.classification,
       (SELECT t.tenant_column::text FROM floe.tenant_tables t
         WHERE t.relid = a.relid AND t.via_column IS NULL),
       n.nspname::text, c.relname::text, a.log_relid
  FROM floe.audit_tables a
  JOIN pg_catalog.pg_class c ON c.oid = a.relid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE a.relid = $1";

pub(super) const ROOT_OF: &str = "SELECT coalesce(pg_catalog.pg_partition_root($1), $1)";

/// The primary key's columns, or else the replica identity index's, in index order.
pub(super) const KEY_COLUMNS: &str = "
SELECT a.attname::text
  FROM (SELECT i.indkey FROM pg_catalog.pg_index i
         WHERE i.indrelid = $1 AND (i.indisprimary OR i.indisreplident)
         ORDER BY i.indisprimary DESC LIMIT 1) x,
       unnest(x.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
  JOIN pg_catalog.pg_attribute a ON a.attrelid = $1 AND a.attnum = k.attnum
 ORDER BY k.ord";

/// The database's redaction key, made on first use (by the first `enable_audit`: not by the
/// install script, so that a restore brings the old key back without a conflict).
pub(super) const AUDIT_KEY: &str = "
WITH made AS (
    INSERT INTO floe.audit_key (key)
    SELECT pg_catalog.substr(pg_catalog.uuid_send(pg_catalog.gen_random_uuid())
                             OPERATOR(pg_catalog.||) pg_catalog.uuid_send(pg_catalog.gen_random_uuid())
                             OPERATOR(pg_catalog.||) pg_catalog.uuid_send(pg_catalog.gen_random_uuid()), 1, 32)
     WHERE NOT EXISTS (SELECT 1 FROM floe.audit_key)
    ON CONFLICT DO NOTHING
    RETURNING key)
SELECT made.key FROM made UNION ALL SELECT k.key FROM floe.audit_key k";

/// The key, made if there is none yet (a second look when another transaction made it first).
pub(super) fn audit_key(s: &mut Session<'_, '_>) -> Result<[u8; 32], FloeError> {
    let mut key_bytes: Option<Vec<u8>> = s.run(AUDIT_KEY, &[])?.first().get::<Vec<u8>>(1)?;
    if key_bytes.is_none() {
        key_bytes = s
            .run("SELECT k.key FROM floe.audit_key k", &[])?
            .first()
            .get::<Vec<u8>>(1)?;
    }
    key_bytes
        .unwrap_or_default()
        .try_into()
        .map_err(|_| FloeError::Corrupted {
            message: "floe.audit_key does not hold a 32-byte key".into(),
            hint: "Restore floe.audit_key from a backup of this database.".into(),
        })
}

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

fn local_facts(s: &mut Session<'_, '_>, root: pg_sys::Oid) -> Result<Facts, FloeError> {
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

pub(super) fn load_config(
    s: &mut Session<'_, '_>,
    relid: pg_sys::Oid,
    desc: pg_sys::TupleDesc,
    args: &[String],
    generation: u64,
) -> Result<TableConfig, FloeError> {
    let root = s
        .run(ROOT_OF, &[relid.into()])?
        .first()
        .get::<pg_sys::Oid>(1)?
        .unwrap_or(relid);
    let facts = match super::shard_args::decode(args) {
        Ok(super::shard_args::Decoded::Local) => match local_facts(s, root) {
            Err(e) if crate::citus::present() => {
                return Err(super::distributed::audited_before_distributed(s, root, e)?)
            }
            other => other?,
        },
        Ok(super::shard_args::Decoded::Distributed(a)) => {
            super::distributed::shard_facts(s, root, &a)?
        }
        Err(why) => return Err(not_audited(root, &format!(": its trigger has {why}"))),
    };
    let Facts {
        redact,
        classification,
        tenant_column,
        schema,
        table,
        log_relid,
        shell,
    } = facts;
    let keys: Vec<String> = s
        .run(KEY_COLUMNS, &[relid.into()])?
        .map(|r| r.get::<String>(1).ok().flatten().unwrap_or_default())
        .collect();
    // SAFETY: desc is the trigger relation's descriptor.
    let natts = unsafe { (*desc).natts } as usize;
    let mut atts = Vec::with_capacity(natts);
    for i in 0..natts {
        // SAFETY: i < natts.
        let att = unsafe { tuple_desc_attr(desc, i) };
        let name = name_str(&att.attname).to_string();
        // SAFETY: an all-zero FmgrInfo is filled by fmgr_info_cxt below.
        let mut out: Box<pg_sys::FmgrInfo> = Box::new(unsafe { std::mem::zeroed() });
        if !att.attisdropped {
            let (mut foid, mut varlena) = (pg_sys::InvalidOid, false);
            // SAFETY: catalog lookups; the FmgrInfo's extra data goes to TopMemoryContext,
            // which outlives the cache entry.
            unsafe {
                pg_sys::getTypeOutputInfo(att.atttypid, &mut foid, &mut varlena);
                pg_sys::fmgr_info_cxt(foid, &mut *out, pg_sys::TopMemoryContext);
            }
        }
        atts.push(Att {
            redact: redact.contains(&name),
            kind: kind_of(att.atttypid),
            typid: att.atttypid,
            byval: att.attbyval,
            len: att.attlen,
            dropped: att.attisdropped,
            name,
            out,
        });
    }
    let index_of = |n: &str| atts.iter().position(|a| !a.dropped && a.name == n);
    let pk = keys.iter().filter_map(|k| index_of(k)).collect();
    let tenant = tenant_column
        .as_deref()
        .and_then(index_of)
        .filter(|&i| atts[i].typid == pg_sys::UUIDOID);
    Ok(TableConfig {
        generation,
        root,
        log_relid,
        schema,
        table,
        pk,
        tenant,
        redact,
        classification,
        atts,
        args: args.to_vec(),
        shell,
    })
}

/// The cached configuration of the trigger's relation (SPI only when it must be loaded).
pub(super) fn config_for(
    relid: pg_sys::Oid,
    desc: pg_sys::TupleDesc,
    args: &[String],
) -> Result<(Rc<TableConfig>, [u8; 32]), FloeError> {
    let schema = floe_schema();
    let generation = crate::relcache::generation();
    let hit = CACHE.with_borrow(|c| {
        let c = c.as_ref().filter(|c| c.schema == schema)?;
        let t = c.tables.get(&relid)?;
        (t.generation == generation && t.args == args && t.matches(desc))
            .then(|| (t.clone(), c.key))
    });
    if let Some((t, Some(key))) = hit {
        return Ok((t, key));
    }
    if let Some(oid) = audit_tables_oid() {
        crate::relcache::watch(oid);
    }
    let (key, t) = privileged::run(|s| {
        let key = audit_key(s)?;
        Ok((key, Rc::new(load_config(s, relid, desc, args, generation)?)))
    })?;
    CACHE.with_borrow_mut(|c| {
        if c.as_ref().map(|c| c.schema) != Some(schema) {
            *c = Some(Cache {
                schema,
                key: None,
                tables: HashMap::new(),
            });
        }
        if let Some(c) = c.as_mut() {
            c.key = Some(key);
            c.tables.insert(relid, t.clone());
        }
    });
    Ok((t, key))
}

pub(super) fn audit_tables_oid() -> Option<pg_sys::Oid> {
    let schema = floe_schema();
    if schema == pg_sys::InvalidOid {
        return None;
    }
    // SAFETY: syscache lookup by name.
    let oid = unsafe { pg_sys::get_relname_relid(c"audit_tables".as_ptr(), schema) };
    (oid != pg_sys::InvalidOid).then_some(oid)
}

/// Makes every backend reload its cached audit configurations at commit (a relcache
/// invalidation of floe.audit_tables).
pub(super) fn invalidate_configs() {
    if let Some(t) = audit_tables_oid() {
        // SAFETY: queues a relcache invalidation, sent at commit.
        unsafe { pg_sys::CacheInvalidateRelcacheByRelid(t) };
    }
}

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
        "INSERT INTO {table} ({ENTRY_COLUMNS})
         VALUES ({ENTRY_DEFAULTS}, $1, $2, $3, $6, $7, pg_catalog.pg_get_userbyid($8), $9,
                 pg_catalog.inet_client_addr(), $10::pg_catalog.jsonb, $11::pg_catalog.jsonb,
                 $12::pg_catalog.jsonb, $4, $5)"
    )
}

/// A batch of one table's entries (one executor start per batch, not per row).
pub(super) fn insert_many_sql(table: &str) -> String {
    format!(
        "INSERT INTO {table} ({ENTRY_COLUMNS})
         SELECT {ENTRY_DEFAULTS}, $1, $2, $3, u.op, u.tenant, pg_catalog.pg_get_userbyid(u.actor),
                u.app_actor, pg_catalog.inet_client_addr(), u.pk::pg_catalog.jsonb,
                u.old::pg_catalog.jsonb, u.new::pg_catalog.jsonb, $4, $5
           FROM ROWS FROM (pg_catalog.unnest($6::pg_catalog.text[]), pg_catalog.unnest($7::pg_catalog.uuid[]),
                           pg_catalog.unnest($8::pg_catalog.oid[]), pg_catalog.unnest($9::pg_catalog.text[]),
                           pg_catalog.unnest($10::pg_catalog.text[]), pg_catalog.unnest($11::pg_catalog.text[]),
                           pg_catalog.unnest($12::pg_catalog.text[]))
                WITH ORDINALITY AS u(op, tenant, actor, app_actor, pk, old, new, ord)
          ORDER BY u.ord"
    )
}

pub(super) const ENTRY_COLUMNS: &str =
    "id, logged_at, xid, relid, schema_name, table_name, op, tenant, \
    actor, app_actor, client_addr, pk, old_values, new_values, redacted, classification";
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
    TARGET.with_borrow_mut(|t| match t.as_mut() {
        // The same table (the parent again): keep its prepared statements.
        Some(t) if t.schema == schema && t.table == table => {
            (t.partition, t.lo, t.hi) = (partition, lo, hi);
        }
        _ => {
            *t = Some(LogTarget {
                schema,
                partition,
                lo,
                hi,
                table,
                one: None,
                many: None,
            })
        }
    });
    Ok(())
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

/// Row entries wait here until their statement ends (the statement-level trigger
/// `floe_audit_flush`), FLUSH_AT of them pile up, or the transaction commits; a
/// (sub)transaction abort drops the ones it made.
pub(super) struct Pending {
    pub(super) cfg: Rc<TableConfig>,
    pub(super) subxact: pg_sys::SubTransactionId,
    pub(super) op: &'static str,
    pub(super) tenant: Option<pgrx::Uuid>,
    pub(super) caller: pg_sys::Oid,
    pub(super) actor: Option<String>,
    pub(super) pk: Option<String>,
    pub(super) old: Option<String>,
    pub(super) new: Option<String>,
}

pub(super) const FLUSH_AT: usize = 1000;

thread_local! {
    static PENDING: RefCell<Vec<Pending>> = const { RefCell::new(Vec::new()) };
    static CALLBACKS: Cell<bool> = const { Cell::new(false) };
}

#[pg_guard]
unsafe extern "C-unwind" fn on_xact(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    match event {
        // Entries of a statement whose flush trigger did not run (a write straight into a
        // partition of an audited table): written before the commit, or no commit.
        pg_sys::XactEvent::XACT_EVENT_PRE_COMMIT
        | pg_sys::XactEvent::XACT_EVENT_PARALLEL_PRE_COMMIT
        | pg_sys::XactEvent::XACT_EVENT_PRE_PREPARE
            if PENDING.with_borrow(|p| !p.is_empty()) =>
        {
            // SAFETY: commit has released the statement's snapshot; SPI needs one. An ERROR
            // aborts the transaction, which cleans the snapshot stack.
            unsafe { pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot()) };
            let flushed = flush();
            unsafe { pg_sys::PopActiveSnapshot() };
            if let Err(e) = flushed {
                e.raise();
            }
        }
        pg_sys::XactEvent::XACT_EVENT_ABORT
        | pg_sys::XactEvent::XACT_EVENT_PARALLEL_ABORT
        | pg_sys::XactEvent::XACT_EVENT_COMMIT
        | pg_sys::XactEvent::XACT_EVENT_PARALLEL_COMMIT
        | pg_sys::XactEvent::XACT_EVENT_PREPARE => {
            PENDING.with_borrow_mut(Vec::clear);
        }
        _ => {}
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_subxact(
    event: pg_sys::SubXactEvent::Type,
    my_subid: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        PENDING.with_borrow_mut(|p| p.retain(|e| e.subxact < my_subid));
    }
}

pub(super) fn ensure_callbacks() {
    if !CALLBACKS.get() {
        // SAFETY: registered once per backend, for its life.
        unsafe {
            pg_sys::RegisterXactCallback(Some(on_xact), std::ptr::null_mut());
            pg_sys::RegisterSubXactCallback(Some(on_subxact), std::ptr::null_mut());
        }
        CALLBACKS.set(true);
    }
}

/// Writes every pending entry, one INSERT per run of entries of one table.
pub(super) fn flush() -> Result<(), FloeError> {
    let pending = PENDING.with_borrow_mut(std::mem::take);
    if pending.is_empty() {
        return Ok(());
    }
    ensure_target()?;
    privileged::run_qualified(|s| {
        for group in pending.chunk_by(|a, b| a.cfg.root == b.cfg.root) {
            let cfg = &group[0].cfg;
            let mut args: Vec<pgrx::datum::DatumWithOid<'_>> = vec![
                cfg.log_relid.into(),
                cfg.schema.as_str().into(),
                cfg.table.as_str().into(),
                cfg.redact.clone().into(),
                cfg.classification.clone().into(),
            ];
            if let [e] = group {
                args.extend([
                    e.op.into(),
                    e.tenant.into(),
                    e.caller.into(),
                    e.actor.clone().into(),
                    e.pk.clone().into(),
                    e.old.clone().into(),
                    e.new.clone().into(),
                ]);
            } else {
                let col =
                    |f: fn(&Pending) -> Option<String>| group.iter().map(f).collect::<Vec<_>>();
                args.extend([
                    col(|e| Some(e.op.to_string())).into(),
                    group.iter().map(|e| e.tenant).collect::<Vec<_>>().into(),
                    group.iter().map(|e| e.caller).collect::<Vec<_>>().into(),
                    col(|e| e.actor.clone()).into(),
                    col(|e| e.pk.clone()).into(),
                    col(|e| e.old.clone()).into(),
                    col(|e| e.new.clone()).into(),
                ]);
            }
            run_on_target(s, group.len() > 1, &args)?;
        }
        Ok(())
    })
}

/// One row's values, deformed.
pub(super) struct Row {
    pub(super) values: Vec<pg_sys::Datum>,
    pub(super) nulls: Vec<bool>,
}

pub(super) fn deform(
    tuple: *mut pg_sys::HeapTupleData,
    desc: pg_sys::TupleDesc,
    natts: usize,
) -> Row {
    let mut row = Row {
        values: vec![pg_sys::Datum::from(0); natts],
        nulls: vec![true; natts],
    };
    // SAFETY: tuple belongs to the trigger relation, whose descriptor has natts attributes.
    unsafe {
        pg_sys::heap_deform_tuple(tuple, desc, row.values.as_mut_ptr(), row.nulls.as_mut_ptr())
    };
    row
}

/// Date and time types are written as `to_jsonb` writes them (ISO 8601, whatever the
/// session's DateStyle), so an entry does not depend on who wrote it.
pub(super) fn is_datetime(typid: pg_sys::Oid) -> bool {
    matches!(
        typid,
        pg_sys::DATEOID
            | pg_sys::TIMEOID
            | pg_sys::TIMETZOID
            | pg_sys::TIMESTAMPOID
            | pg_sys::TIMESTAMPTZOID
    )
}

pub(super) fn output(att: &Att, value: pg_sys::Datum) -> String {
    // SAFETY: `out` is the output function of the attribute's type (JsonEncodeDateTime takes
    // the five date/time types); the result is palloc'd in the trigger's (per-event) memory
    // context and copied at once.
    unsafe {
        let out = &*att.out as *const pg_sys::FmgrInfo as *mut pg_sys::FmgrInfo;
        let p = if is_datetime(att.typid) {
            pg_sys::JsonEncodeDateTime(std::ptr::null_mut(), value, att.typid, std::ptr::null())
        } else {
            pg_sys::OutputFunctionCall(out, value)
        };
        let s = CStr::from_ptr(p).to_string_lossy().into_owned();
        pg_sys::pfree(p.cast());
        s
    }
}

/// Whether two values of the attribute's type have the same bytes (`None`: cannot tell
/// without detoasting; the caller compares their text then).
pub(super) fn same_image(att: &Att, a: pg_sys::Datum, b: pg_sys::Datum) -> Option<bool> {
    if att.byval {
        return Some(a == b);
    }
    // SAFETY: by-reference values of the attribute's type: `len` bytes, or a varlena.
    unsafe {
        if att.len > 0 {
            let (pa, pb) = (a.cast_mut_ptr::<u8>(), b.cast_mut_ptr::<u8>());
            let n = att.len as usize;
            return Some(std::slice::from_raw_parts(pa, n) == std::slice::from_raw_parts(pb, n));
        }
        if att.len != -1 {
            return None;
        }
        let (va, vb) = (
            a.cast_mut_ptr::<pg_sys::varlena>(),
            b.cast_mut_ptr::<pg_sys::varlena>(),
        );
        if va == vb {
            return Some(true);
        }
        // Two TOAST pointers to the same value (an UPDATE that left the column alone).
        if pgrx::varlena::varatt_is_1b_e(va) && pgrx::varlena::varatt_is_1b_e(vb) {
            let raw = |v: *mut pg_sys::varlena| {
                std::slice::from_raw_parts(v as *const u8, pgrx::varlena::varsize_any(v))
            };
            if raw(va) == raw(vb) {
                return Some(true);
            }
        }
        let plain = |v| !pgrx::varlena::varatt_is_1b_e(v) && !pgrx::varlena::varatt_is_4b_c(v);
        if !plain(va) || !plain(vb) {
            return None;
        }
        Some(pgrx::varlena::varlena_to_byte_slice(va) == pgrx::varlena::varlena_to_byte_slice(vb))
    }
}

pub(super) fn add(obj: &mut Object, att: &Att, text: Option<&str>, key: &[u8; 32]) {
    match text {
        Some(t) if att.redact => obj.value(&att.name, Kind::Text, Some(&record::redact(key, t))),
        _ => obj.value(&att.name, att.kind, text),
    }
}

/// The text of each column in `columns` (NULL, or not asked for: `None`), by attribute index.
pub(super) fn texts(cfg: &TableConfig, row: &Row, columns: &[usize]) -> Vec<Option<String>> {
    let mut out = vec![None; cfg.atts.len()];
    for &i in columns {
        if !row.nulls[i] {
            out[i] = Some(output(&cfg.atts[i], row.values[i]));
        }
    }
    out
}

pub(super) fn object(
    cfg: &TableConfig,
    columns: &[usize],
    texts: &[Option<String>],
    key: &[u8; 32],
) -> String {
    let mut obj = Object::new();
    for &i in columns {
        add(&mut obj, &cfg.atts[i], texts[i].as_deref(), key);
    }
    obj.finish()
}

/// An INSERTed or DELETEd row: the whole row and its key, each column's text made once.
pub(super) fn whole_row(cfg: &TableConfig, row: &Row, key: &[u8; 32]) -> (String, Option<String>) {
    let live: Vec<usize> = (0..cfg.atts.len())
        .filter(|&i| !cfg.atts[i].dropped)
        .collect();
    let texts = texts(cfg, row, &live);
    let pk = (!cfg.pk.is_empty()).then(|| object(cfg, &cfg.pk, &texts, key));
    (object(cfg, &live, &texts, key), pk)
}

/// The key of an UPDATEd row (its changed columns come from `changes`).
pub(super) fn key_of(cfg: &TableConfig, row: &Row, key: &[u8; 32]) -> Option<String> {
    (!cfg.pk.is_empty()).then(|| object(cfg, &cfg.pk, &texts(cfg, row, &cfg.pk), key))
}

/// The changed columns of an UPDATE: (old values, new values).
pub(super) fn changes(cfg: &TableConfig, old: &Row, new: &Row, key: &[u8; 32]) -> (String, String) {
    let (mut before, mut after) = (Object::new(), Object::new());
    for (i, att) in cfg.atts.iter().enumerate().filter(|(_, a)| !a.dropped) {
        let (o, n) = match (old.nulls[i], new.nulls[i]) {
            (true, true) => continue,
            (false, false) => {
                if same_image(att, old.values[i], new.values[i]) == Some(true) {
                    continue;
                }
                let (o, n) = (output(att, old.values[i]), output(att, new.values[i]));
                if o == n {
                    continue;
                }
                (Some(o), Some(n))
            }
            (false, true) => (Some(output(att, old.values[i])), None),
            (true, false) => (None, Some(output(att, new.values[i]))),
        };
        add(&mut before, att, o.as_deref(), key);
        add(&mut after, att, n.as_deref(), key);
    }
    (before.finish(), after.finish())
}

pub(super) fn row_tenant(cfg: &TableConfig, row: &Row) -> Option<pgrx::Uuid> {
    let i = cfg.tenant?;
    if row.nulls[i] {
        return None;
    }
    // SAFETY: the column is a uuid (checked when the configuration was loaded).
    unsafe { pgrx::Uuid::from_datum(row.values[i], false) }
}

pub(super) fn log_change(trigger: &PgTrigger<'_>) -> Result<(), FloeError> {
    let td = trigger.trigger_data();
    let op = trigger.op().map_err(|e| FloeError::Internal {
        message: format!("floe.audit_trigger: {e}"),
    })?;
    if matches!(trigger.level(), PgTriggerLevel::Statement)
        && !matches!(op, PgTriggerOperation::Truncate)
    {
        // floe_audit_flush: the statement's rows are all logged.
        return flush();
    }
    ensure_callbacks();
    // SAFETY: the trigger manager's relation and tuples, valid for this call.
    let (relid, desc) = unsafe { ((*td.tg_relation).rd_id, (*td.tg_relation).rd_att) };
    let args = trigger.extra_args().unwrap_or_default();
    let (cfg, key) = config_for(relid, desc, &args)?;
    if cfg.shell && !matches!(op, PgTriggerOperation::Truncate) {
        return Ok(());
    }
    let natts = cfg.atts.len();
    let (op, tenant, pk, old, new) = match op {
        PgTriggerOperation::Insert => {
            let new = deform(td.tg_trigtuple, desc, natts);
            let (row, pk) = whole_row(&cfg, &new, &key);
            ("INSERT", row_tenant(&cfg, &new), pk, None, Some(row))
        }
        PgTriggerOperation::Delete => {
            let old = deform(td.tg_trigtuple, desc, natts);
            let (row, pk) = whole_row(&cfg, &old, &key);
            ("DELETE", row_tenant(&cfg, &old), pk, Some(row), None)
        }
        PgTriggerOperation::Update => {
            let old = deform(td.tg_trigtuple, desc, natts);
            let new = deform(td.tg_newtuple, desc, natts);
            let (before, after) = changes(&cfg, &old, &new, &key);
            let tenant = row_tenant(&cfg, &new);
            (
                "UPDATE",
                tenant,
                key_of(&cfg, &new, &key),
                Some(before),
                Some(after),
            )
        }
        PgTriggerOperation::Truncate => ("TRUNCATE", None, None, None, None),
    };
    let entry = Pending {
        tenant: tenant.or_else(|| crate::tenant::context_tenant().map(crate::sqltypes::to_pg_uuid)),
        // SAFETY: reads the current role and subtransaction.
        caller: unsafe { pg_sys::GetUserId() },
        subxact: unsafe { pg_sys::GetCurrentSubTransactionId() },
        actor: crate::gucs::actor(),
        cfg,
        op,
        pk,
        old,
        new,
    };
    let full = PENDING.with_borrow_mut(|p| {
        p.push(entry);
        p.len() >= FLUSH_AT
    });
    if full || op == "TRUNCATE" {
        flush()?;
    }
    Ok(())
}
