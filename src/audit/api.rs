//! The audit log's SQL functions and triggers. Thin glue: what an entry says and its digest
//! are `record.rs`; what verification concludes is `verify.rs`.
//!
//! - `floe.audit_trigger()` (row: AFTER INSERT/UPDATE/DELETE, statement: AFTER TRUNCATE)
//!   writes one entry per change, as the extension's owner (`crate::privileged`), reading
//!   nothing back: writers never wait for each other on the chain.
//! - `floe.audit_seal()` (the job `floe.audit_seal`, every minute) seals the entries of
//!   transactions below the oldest running one, per table, chaining each seal to the last.
//! - `floe.verify_audit()` recomputes every digest and seal hash and names what differs.
//! - `floe.audit_append_only()` refuses UPDATE, DELETE and TRUNCATE on the log and its seals,
//!   except for floe's own moves out of the default partition ([`internal`]).

use super::record::{self, Digest, Entry, Kind, Object, Seal, SealHash, ENTRY_FIELDS};
use super::verify::{self, Problem};
use crate::error::{ErrorReport, FloeError};
use crate::health::checks::Check;
use crate::privileged::{self, Session};
use crate::sqltypes::{ts, us_of};
use pgrx::prelude::*;
use pgrx::spi::OwnedPreparedStatement;
use pgrx::PgRelation;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::CStr;
use std::rc::Rc;

// ---------------------------------------------------------------------------------------
// Append-only
// ---------------------------------------------------------------------------------------

thread_local! {
    /// Set while floe itself moves or expires audit rows (default-partition drain, seal
    /// expiry). Backend-local and not reachable from SQL.
    static INTERNAL: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the append-only triggers standing aside (floe's own row moves).
pub fn internal<T>(f: impl FnOnce() -> T) -> T {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            INTERNAL.set(self.0);
        }
    }
    let _reset = Reset(INTERNAL.replace(true));
    f()
}

#[pg_trigger]
fn audit_append_only<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByRust>>, std::convert::Infallible> {
    if INTERNAL.get() {
        return Ok(trigger.old().map(|t| t.into_owned()));
    }
    let table = format!(
        "{}.{}",
        trigger.table_schema().unwrap_or_default(),
        trigger.table_name().unwrap_or_default()
    );
    let op = match trigger.op() {
        Ok(PgTriggerOperation::Update) => "UPDATE",
        Ok(PgTriggerOperation::Delete) => "DELETE",
        Ok(PgTriggerOperation::Truncate) => "TRUNCATE",
        _ => "this change",
    };
    FloeError::PermissionDenied {
        message: format!("{table} is append-only: {op} is refused, for every role"),
        detail: None,
        hint: "Audit entries leave only with their month, by retention: floe.set_retention('floe.audit_log', keep => '7 years', mode => 'drop').".into(),
    }
    .raise()
}

// ---------------------------------------------------------------------------------------
// Per-table configuration, cached per backend
// ---------------------------------------------------------------------------------------

struct Att {
    name: String,
    typid: pg_sys::Oid,
    kind: Kind,
    byval: bool,
    len: i16,
    redact: bool,
    dropped: bool,
    /// The type's output function, looked up once (lives in TopMemoryContext).
    out: Box<pg_sys::FmgrInfo>,
}

struct TableConfig {
    generation: u64,
    /// The audited table: the root of a partition tree, or the table itself.
    root: pg_sys::Oid,
    schema: String,
    table: String,
    atts: Vec<Att>,
    /// Indexes into `atts` of the primary key (or replica identity) columns.
    pk: Vec<usize>,
    tenant: Option<usize>,
    redact: Vec<String>,
    classification: Vec<String>,
}

impl TableConfig {
    /// Whether the cached attributes still describe `desc`.
    fn matches(&self, desc: pg_sys::TupleDesc) -> bool {
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

struct Cache {
    schema: pg_sys::Oid,
    key: Option<[u8; 32]>,
    tables: HashMap<pg_sys::Oid, Rc<TableConfig>>,
}

thread_local! {
    static CACHE: RefCell<Option<Cache>> = const { RefCell::new(None) };
}

/// SAFETY: `i` < natts of `desc`.
unsafe fn tuple_desc_attr<'a>(
    desc: pg_sys::TupleDesc,
    i: usize,
) -> &'a pg_sys::FormData_pg_attribute {
    &*(*desc).attrs.as_ptr().add(i)
}

fn name_str(n: &pg_sys::NameData) -> &str {
    // SAFETY: NameData is NUL-terminated within its 64 bytes.
    unsafe { CStr::from_ptr(n.data.as_ptr()) }
        .to_str()
        .unwrap_or("")
}

fn kind_of(typid: pg_sys::Oid) -> Kind {
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

fn floe_schema() -> pg_sys::Oid {
    // SAFETY: syscache lookup by name.
    unsafe { pg_sys::get_namespace_oid(c"floe".as_ptr(), true) }
}

const TABLE_FACTS: &str = "
SELECT a.redact, a.classification,
       (SELECT t.tenant_column::text FROM floe.tenant_tables t
         WHERE t.relid = a.relid AND t.via_column IS NULL),
       n.nspname::text, c.relname::text
  FROM floe.audit_tables a
  JOIN pg_catalog.pg_class c ON c.oid = a.relid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE a.relid = $1";

const ROOT_OF: &str = "SELECT coalesce(pg_catalog.pg_partition_root($1), $1)";

/// The primary key's columns, or else the replica identity index's, in index order.
const KEY_COLUMNS: &str = "
SELECT a.attname::text
  FROM (SELECT i.indkey FROM pg_catalog.pg_index i
         WHERE i.indrelid = $1 AND (i.indisprimary OR i.indisreplident)
         ORDER BY i.indisprimary DESC LIMIT 1) x,
       unnest(x.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
  JOIN pg_catalog.pg_attribute a ON a.attrelid = $1 AND a.attnum = k.attnum
 ORDER BY k.ord";

const AUDIT_KEY: &str = "SELECT k.key FROM floe.audit_key k";

fn load_config(
    s: &mut Session<'_, '_>,
    relid: pg_sys::Oid,
    desc: pg_sys::TupleDesc,
    generation: u64,
) -> Result<TableConfig, FloeError> {
    let root = s
        .run(ROOT_OF, &[relid.into()])?
        .first()
        .get::<pg_sys::Oid>(1)?
        .unwrap_or(relid);
    let facts = s.run(TABLE_FACTS, &[root.into()])?;
    if facts.is_empty() {
        return Err(FloeError::WrongState {
            message: format!(
                "table with oid {} has floe's audit trigger but is not audited",
                root.to_u32()
            ),
            hint: "Call floe.enable_audit() on it (or floe.disable_audit() to remove the trigger)."
                .into(),
        });
    }
    let row = facts.first();
    let redact: Vec<String> = row.get::<Vec<String>>(1)?.unwrap_or_default();
    let classification: Vec<String> = row.get::<Vec<String>>(2)?.unwrap_or_default();
    let tenant_column: Option<String> = row.get(3)?;
    let schema: String = row.get(4)?.unwrap_or_default();
    let table: String = row.get(5)?.unwrap_or_default();
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
        schema,
        table,
        pk,
        tenant,
        redact,
        classification,
        atts,
    })
}

/// The cached configuration of the trigger's relation (SPI only when it must be loaded).
fn config_for(
    relid: pg_sys::Oid,
    desc: pg_sys::TupleDesc,
) -> Result<(Rc<TableConfig>, [u8; 32]), FloeError> {
    let schema = floe_schema();
    let generation = crate::relcache::generation();
    let hit = CACHE.with_borrow(|c| {
        let c = c.as_ref().filter(|c| c.schema == schema)?;
        let t = c.tables.get(&relid)?;
        (t.generation == generation && t.matches(desc)).then(|| (t.clone(), c.key))
    });
    if let Some((t, Some(key))) = hit {
        return Ok((t, key));
    }
    if let Some(oid) = audit_tables_oid() {
        crate::relcache::watch(oid);
    }
    let (key, t) = privileged::run(|s| {
        let key_bytes: Vec<u8> = s
            .run(AUDIT_KEY, &[])?
            .first()
            .get::<Vec<u8>>(1)?
            .unwrap_or_default();
        let key: [u8; 32] = key_bytes.try_into().map_err(|_| FloeError::Corrupted {
            message: "floe.audit_key does not hold a 32-byte key".into(),
            hint: "Restore floe.audit_key from a backup of this database.".into(),
        })?;
        Ok((key, Rc::new(load_config(s, relid, desc, generation)?)))
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

fn audit_tables_oid() -> Option<pg_sys::Oid> {
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
fn invalidate_configs() {
    if let Some(t) = audit_tables_oid() {
        // SAFETY: queues a relcache invalidation, sent at commit.
        unsafe { pg_sys::CacheInvalidateRelcacheByRelid(t) };
    }
}

// ---------------------------------------------------------------------------------------
// The audit trigger
// ---------------------------------------------------------------------------------------

/// Where entries are written: straight into the partition of the current month (through the
/// parent, partition routing is set up for every statement: most of a single-row
/// statement's extra cost), or the parent while no partition covers now() (its default
/// partition takes them). Every column is spelled out, the defaults too (a partition attached
/// by hand may lack them); every name is schema-qualified and there is no operator: run
/// through `privileged::run_qualified`.
fn insert_one_sql(table: &str) -> String {
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
fn insert_many_sql(table: &str) -> String {
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

const ENTRY_COLUMNS: &str = "id, logged_at, xid, relid, schema_name, table_name, op, tenant, \
    actor, app_actor, client_addr, pk, old_values, new_values, redacted, classification";
const ENTRY_DEFAULTS: &str = "pg_catalog.nextval('floe.audit_log_id_seq'::pg_catalog.regclass), \
    pg_catalog.now(), pg_catalog.pg_current_xact_id()";

/// The table entries go to, its bounds, and its two statements (prepared on first use),
/// kept per backend.
struct LogTarget {
    schema: pg_sys::Oid,
    /// The month partition; `None`: the parent.
    partition: Option<pg_sys::Oid>,
    lo: i64,
    hi: i64,
    table: String,
    one: Option<Rc<OwnedPreparedStatement>>,
    many: Option<Rc<OwnedPreparedStatement>>,
}

thread_local! {
    static TARGET: RefCell<Option<LogTarget>> = const { RefCell::new(None) };
}

/// The leaf partition of the log for now() (not the default one), with its bounds.
const PARTITION_NOW: &str = "
SELECT p.partition::oid, p.partition::text,
       pg_catalog.btrim(p.lower_bound, '''')::timestamptz, pg_catalog.btrim(p.upper_bound, '''')::timestamptz
  FROM floe.partitions('floe.audit_log') p
 WHERE NOT p.is_default
   AND pg_catalog.btrim(p.lower_bound, '''')::timestamptz <= pg_catalog.now()
   AND pg_catalog.now() < pg_catalog.btrim(p.upper_bound, '''')::timestamptz";

/// Keeps the cached target while it still takes this transaction's entries (same
/// installation, a partition whose bounds hold now(), still a partition); else looks it up
/// again (while the parent is the target, at every flush: a partition may have been made).
fn ensure_target() -> Result<(), FloeError> {
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
fn run_on_target(
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
struct Pending {
    cfg: Rc<TableConfig>,
    subxact: pg_sys::SubTransactionId,
    op: &'static str,
    tenant: Option<pgrx::Uuid>,
    caller: pg_sys::Oid,
    actor: Option<String>,
    pk: Option<String>,
    old: Option<String>,
    new: Option<String>,
}

const FLUSH_AT: usize = 1000;

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

fn ensure_callbacks() {
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
fn flush() -> Result<(), FloeError> {
    let pending = PENDING.with_borrow_mut(std::mem::take);
    if pending.is_empty() {
        return Ok(());
    }
    ensure_target()?;
    privileged::run_qualified(|s| {
        for group in pending.chunk_by(|a, b| a.cfg.root == b.cfg.root) {
            let cfg = &group[0].cfg;
            let mut args: Vec<pgrx::datum::DatumWithOid<'_>> = vec![
                cfg.root.into(),
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

#[pg_trigger]
fn audit_trigger<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByRust>>, std::convert::Infallible> {
    match log_change(trigger) {
        Ok(()) => Ok(None),
        Err(e) => e.raise(),
    }
}

/// One row's values, deformed.
struct Row {
    values: Vec<pg_sys::Datum>,
    nulls: Vec<bool>,
}

fn deform(tuple: *mut pg_sys::HeapTupleData, desc: pg_sys::TupleDesc, natts: usize) -> Row {
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
fn is_datetime(typid: pg_sys::Oid) -> bool {
    matches!(
        typid,
        pg_sys::DATEOID
            | pg_sys::TIMEOID
            | pg_sys::TIMETZOID
            | pg_sys::TIMESTAMPOID
            | pg_sys::TIMESTAMPTZOID
    )
}

fn output(att: &Att, value: pg_sys::Datum) -> String {
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
fn same_image(att: &Att, a: pg_sys::Datum, b: pg_sys::Datum) -> Option<bool> {
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

fn add(obj: &mut Object, att: &Att, text: Option<&str>, key: &[u8; 32]) {
    match text {
        Some(t) if att.redact => obj.value(&att.name, Kind::Text, Some(&record::redact(key, t))),
        _ => obj.value(&att.name, att.kind, text),
    }
}

/// The text of each column in `columns` (NULL, or not asked for: `None`), by attribute index.
fn texts(cfg: &TableConfig, row: &Row, columns: &[usize]) -> Vec<Option<String>> {
    let mut out = vec![None; cfg.atts.len()];
    for &i in columns {
        if !row.nulls[i] {
            out[i] = Some(output(&cfg.atts[i], row.values[i]));
        }
    }
    out
}

fn object(
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
fn whole_row(cfg: &TableConfig, row: &Row, key: &[u8; 32]) -> (String, Option<String>) {
    let live: Vec<usize> = (0..cfg.atts.len())
        .filter(|&i| !cfg.atts[i].dropped)
        .collect();
    let texts = texts(cfg, row, &live);
    let pk = (!cfg.pk.is_empty()).then(|| object(cfg, &cfg.pk, &texts, key));
    (object(cfg, &live, &texts, key), pk)
}

/// The key of an UPDATEd row (its changed columns come from `changes`).
fn key_of(cfg: &TableConfig, row: &Row, key: &[u8; 32]) -> Option<String> {
    (!cfg.pk.is_empty()).then(|| object(cfg, &cfg.pk, &texts(cfg, row, &cfg.pk), key))
}

/// The changed columns of an UPDATE: (old values, new values).
fn changes(cfg: &TableConfig, old: &Row, new: &Row, key: &[u8; 32]) -> (String, String) {
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

fn row_tenant(cfg: &TableConfig, row: &Row) -> Option<pgrx::Uuid> {
    let i = cfg.tenant?;
    if row.nulls[i] {
        return None;
    }
    // SAFETY: the column is a uuid (checked when the configuration was loaded).
    unsafe { pgrx::Uuid::from_datum(row.values[i], false) }
}

fn log_change(trigger: &PgTrigger<'_>) -> Result<(), FloeError> {
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
    let (cfg, key) = config_for(relid, desc)?;
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

// ---------------------------------------------------------------------------------------
// enable_audit / disable_audit
// ---------------------------------------------------------------------------------------

const LOG_SET_EXISTS: &str =
    "SELECT EXISTS (SELECT 1 FROM floe.partition_sets WHERE parent = 'floe.audit_log')";
const LOCK_LOG_SETUP: &str =
    "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('floe.audit_log'))";
const CREATE_LOG_SET: &str = "
SELECT pg_catalog.set_config('default_tablespace', '', true),
       floe.create_parent('floe.audit_log', 'logged_at', part_interval => '1 month',
                          premake => 4, default_partition => true),
       floe.audit_protect()";

/// The log becomes a monthly partition set with the first audited table (partitions made by
/// the install script would be extension members, which retention cannot drop).
fn ensure_log_set(s: &mut Session<'_, '_>) -> Result<(), FloeError> {
    s.create_once(LOG_SET_EXISTS, LOCK_LOG_SETUP, CREATE_LOG_SET)
}

const TABLE_INFO: &str = "
SELECT c.relkind::text, n.nspname::text, c.relname::text,
       pg_catalog.pg_has_role($2, c.relowner, 'USAGE'),
       pg_catalog.format('%I.%I', n.nspname, c.relname),
       c.relispartition
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.oid = $1";

const COLUMNS: &str = "
SELECT a.attname::text FROM pg_catalog.pg_attribute a
 WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped";

const UPSERT_TABLE: &str = "
INSERT INTO floe.audit_tables (relid, redact, classification, enabled_by)
VALUES ($1, $2, $3, pg_catalog.pg_get_userbyid($4))
ON CONFLICT (relid) DO UPDATE SET redact = EXCLUDED.redact, classification = EXCLUDED.classification";

const DELETE_TABLE: &str = "DELETE FROM floe.audit_tables WHERE relid = $1 RETURNING 1";

/// The audited table's qualified name, after checking it can be audited by the caller.
fn target(s: &mut Session<'_, '_>, oid: pg_sys::Oid, what: &str) -> Result<String, FloeError> {
    let rows = s.run(TABLE_INFO, &[oid.into(), s.caller.into()])?;
    if rows.is_empty() {
        return Err(FloeError::NotFound {
            kind: "table",
            name: format!("with oid {}", oid.to_u32()),
            hint: "Pass an existing table.".into(),
        });
    }
    let row = rows.first();
    let kind: String = row.get(1)?.unwrap_or_default();
    let schema: String = row.get(2)?.unwrap_or_default();
    let owner: bool = row.get(4)?.unwrap_or(false);
    let qualified: String = row.get(5)?.unwrap_or_default();
    let partition: bool = row.get(6)?.unwrap_or(false);
    if kind != "r" && kind != "p" {
        return Err(FloeError::WrongObjectType {
            message: format!("{qualified} is not a table"),
            hint: "Audit tables (plain or partitioned); views and foreign tables have no rows of their own.".into(),
        });
    }
    if schema == "floe" || schema == "pg_catalog" || schema == "information_schema" {
        return Err(FloeError::WrongObjectType {
            message: format!("{qualified} is a system or floe table"),
            hint: "floe keeps its own history; audit your application's tables.".into(),
        });
    }
    if partition {
        return Err(FloeError::WrongObjectType {
            message: format!("{qualified} is a partition"),
            hint: format!("{what} the partitioned table it belongs to: its partitions follow."),
        });
    }
    if !owner {
        return Err(FloeError::PermissionDenied {
            message: format!("must be owner of table {qualified} to {what} it"),
            detail: None,
            hint: "Run it as the table's owner (or a member of the owning role).".into(),
        });
    }
    Ok(qualified)
}

fn classification_arg(values: Vec<Option<String>>) -> Result<Vec<String>, FloeError> {
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

#[pg_extern(volatile)]
fn enable_audit(
    tbl: Option<PgRelation>,
    redact: default!(Option<Vec<Option<String>>>, "'{}'"),
    classification: default!(Option<Vec<Option<String>>>, "'{}'"),
) -> Result<(), ErrorReport> {
    let rel = crate::error::required(tbl, "tbl")?;
    let oid = rel.oid();
    drop(rel);
    let classification = classification_arg(classification.unwrap_or_default())?;
    let redact: Vec<String> = {
        let mut r: Vec<String> = redact.unwrap_or_default().into_iter().flatten().collect();
        r.sort();
        r.dedup();
        r
    };
    let qualified = privileged::run(|s| {
        let t = target(s, oid, "audit")?;
        let columns: Vec<String> = s
            .run(COLUMNS, &[oid.into()])?
            .map(|r| r.get::<String>(1).ok().flatten().unwrap_or_default())
            .collect();
        if let Some(missing) = redact.iter().find(|c| !columns.contains(c)) {
            return Err(FloeError::UndefinedColumn {
                table: t.clone(),
                column: missing.clone(),
                hint: "redact names columns of the table, as they are spelled (case matters)."
                    .into(),
            });
        }
        ensure_log_set(s)?;
        s.run(
            UPSERT_TABLE,
            &[
                oid.into(),
                redact.clone().into(),
                classification.clone().into(),
                s.caller.into(),
            ],
        )?;
        Ok(t)
    })?;
    // The triggers, with the caller's rights (the caller owns the table).
    for sql in [
        format!("CREATE OR REPLACE TRIGGER floe_audit AFTER INSERT OR UPDATE OR DELETE ON {qualified} FOR EACH ROW EXECUTE FUNCTION floe.audit_trigger()"),
        format!("CREATE OR REPLACE TRIGGER floe_audit_flush AFTER INSERT OR UPDATE OR DELETE ON {qualified} FOR EACH STATEMENT EXECUTE FUNCTION floe.audit_trigger()"),
        format!("CREATE OR REPLACE TRIGGER floe_audit_truncate AFTER TRUNCATE ON {qualified} FOR EACH STATEMENT EXECUTE FUNCTION floe.audit_trigger()"),
    ] {
        Spi::run(&sql).map_err(FloeError::from)?;
    }
    invalidate_configs();
    Ok(())
}

#[pg_extern(volatile)]
fn disable_audit(
    tbl: Option<PgRelation>,
    if_exists: default!(Option<bool>, false),
) -> Result<bool, ErrorReport> {
    let rel = crate::error::required(tbl, "tbl")?;
    let oid = rel.oid();
    drop(rel);
    let (qualified, removed) = privileged::run(|s| {
        let t = target(s, oid, "stop auditing")?;
        let removed = !s.run(DELETE_TABLE, &[oid.into()])?.is_empty();
        Ok((t, removed))
    })?;
    if !removed && !if_exists.unwrap_or(false) {
        return Err(FloeError::NotFound {
            kind: "audited table",
            name: qualified,
            hint: "floe.audit_tables lists the audited tables; pass if_exists => true to ignore."
                .into(),
        }
        .into());
    }
    for sql in [
        format!("DROP TRIGGER IF EXISTS floe_audit ON {qualified}"),
        format!("DROP TRIGGER IF EXISTS floe_audit_flush ON {qualified}"),
        format!("DROP TRIGGER IF EXISTS floe_audit_truncate ON {qualified}"),
    ] {
        Spi::run(&sql).map_err(FloeError::from)?;
    }
    invalidate_configs();
    Ok(removed)
}

// ---------------------------------------------------------------------------------------
// Sealing
// ---------------------------------------------------------------------------------------

const LOCK_SEALER: &str =
    "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('floe.audit_seal'))";

const SEAL_STATE: &str = "
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

const ENTRIES_TO_SEAL: &str = entry_select!(
    "WHERE a.xid >= $1::text::xid8 AND a.xid < $2::text::xid8 ORDER BY a.relid, 17, a.xid, a.id"
);

const ENTRIES_OF_SEAL: &str = entry_select!(
    "WHERE a.relid = $1 AND a.xid >= $2::text::xid8 AND a.xid < $3::text::xid8 ORDER BY a.xid, a.id"
);

const LAST_SEAL: &str = "
SELECT s.hi::text, s.hash FROM floe.audit_seals s WHERE s.relid = $1
 ORDER BY s.run DESC, s.month DESC LIMIT 1";

const INSERT_RUN: &str =
    "INSERT INTO floe.audit_seal_runs (run, horizon, entries) VALUES ($1, $2::text::xid8, $3)";

const INSERT_SEAL: &str = "
INSERT INTO floe.audit_seals (relid, run, month, lo, hi, entry_ids, digests, min_logged_at,
                              max_logged_at, prev_hash, hash)
VALUES ($1, $2, $11::date, $3::text::xid8, $4::text::xid8, $5, $6, $7, $8, $9, $10)";

fn parse_xid(text: Option<String>) -> Result<u64, FloeError> {
    let text = text.unwrap_or_else(|| "0".into());
    text.parse().map_err(|_| FloeError::Internal {
        message: format!("unexpected xid8 {text}"),
    })
}

/// One entry read back, with its logged_at and its month (UTC, as `YYYY-MM-01`: the log's
/// partitions are UTC months).
struct Read {
    entry: Entry,
    logged_at: TimestampWithTimeZone,
    month: String,
}

fn entry_of(row: &pgrx::spi::SpiHeapTupleData<'_>) -> Result<Read, FloeError> {
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

fn hash_arr(bytes: Option<Vec<u8>>) -> SealHash {
    let mut h = [0u8; 32];
    if let Some(b) = bytes.filter(|b| b.len() == 32) {
        h.copy_from_slice(&b);
    }
    h
}

/// Seals the entries of every transaction that has ended; returns how many it sealed.
fn seal() -> Result<i64, FloeError> {
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

#[pg_extern(volatile)]
fn audit_seal() -> Result<i64, ErrorReport> {
    Ok(seal()?)
}

// ---------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------

/// Every table with seals or auditing, and its name now (or that it was dropped).
const SEALED_TABLES: &str = "
SELECT t.relid,
       coalesce((SELECT c.oid::regclass::text FROM pg_catalog.pg_class c WHERE c.oid = t.relid),
                'dropped table (oid ' || t.relid::text || ')')
  FROM (SELECT DISTINCT s.relid FROM floe.audit_seals s
        UNION SELECT a.relid::oid FROM floe.audit_tables a) t
 ORDER BY 1";

const SEALS_OF: &str = "
SELECT s.run, s.lo::text, s.hi::text, s.entry_ids, s.digests, s.prev_hash, s.hash,
       pg_catalog.to_char(s.month, 'YYYY-MM-DD')
  FROM floe.audit_seals s
 WHERE s.relid = $1 AND ($2::timestamptz IS NULL OR s.max_logged_at >= $2)
 ORDER BY s.run, s.month";
/// The first month the log still holds (earlier ones were retired by retention).
const OLDEST_MONTH: &str = "
SELECT pg_catalog.to_char(pg_catalog.min(pg_catalog.btrim(p.lower_bound, '''')::timestamptz)
                          AT TIME ZONE 'UTC', 'YYYY-MM-01')
  FROM floe.partitions('floe.audit_log') p
 WHERE NOT p.is_default";

const SEALED_HORIZON: &str = "
SELECT (SELECT r.horizon::text FROM floe.audit_seal_runs r ORDER BY r.run DESC LIMIT 1)";

const UNSEALED: &str = "
SELECT pg_catalog.count(*) FROM floe.audit_log a
 WHERE a.relid = $1 AND a.xid >= coalesce($2::text::xid8, '0'::xid8)";

/// One row of `floe.verify_audit`.
pub struct Finding {
    pub table: String,
    pub status: &'static str,
    pub entry: Option<i64>,
    pub logged_at: Option<TimestampWithTimeZone>,
    pub detail: String,
}

struct StoredSeal {
    seal: Seal,
    prev: SealHash,
    hash: SealHash,
    intact_digests: bool,
}

fn stored_seal(
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

/// Verifies every audited table's seals (those ending at or after `since`) against the log.
pub fn verify(since: Option<TimestampWithTimeZone>) -> Result<Vec<Finding>, FloeError> {
    privileged::run(|s| {
        let horizon: Option<String> = s.run(SEALED_HORIZON, &[])?.first().get(1)?;
        let horizon_xid = horizon
            .as_deref()
            .map(|h| parse_xid(Some(h.to_string())))
            .transpose()?;
        let oldest: Option<String> = s.run(OLDEST_MONTH, &[])?.first().get(1)?;
        let retired = |month: &str| oldest.as_deref().is_some_and(|o| month < o);
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
                if !st.intact_digests
                    || !link_ok
                    || !verify::seal_intact(&st.prev, &st.seal, &st.hash)
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
                    if retired(&st.seal.month) && found.is_empty() {
                        expired += st.seal.entries.len();
                        continue;
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
    })
}

#[allow(clippy::type_complexity)]
#[pg_extern(volatile)]
fn verify_audit(
    since: default!(Option<TimestampWithTimeZone>, "NULL"),
) -> Result<
    TableIterator<
        'static,
        (
            name!(table_name, String),
            name!(status, String),
            name!(entry_id, Option<i64>),
            name!(logged_at, Option<TimestampWithTimeZone>),
            name!(detail, String),
        ),
    >,
    ErrorReport,
> {
    let rows = verify(since)?.into_iter().map(|f| {
        (
            f.table,
            f.status.to_string(),
            f.entry,
            f.logged_at,
            f.detail,
        )
    });
    Ok(TableIterator::new(rows))
}

// ---------------------------------------------------------------------------------------
// Health
// ---------------------------------------------------------------------------------------

const SEAL_BACKLOG: &str = "
SELECT (SELECT pg_catalog.count(*) FROM floe.audit_tables),
       (SELECT pg_catalog.count(*) FROM floe.audit_log a
         WHERE a.logged_at < pg_catalog.now() - interval '15 minutes'
           AND a.xid >= coalesce((SELECT r.horizon FROM floe.audit_seal_runs r
                                   ORDER BY r.run DESC LIMIT 1), '0'::xid8))";

/// `audit.sealing` (entries waiting long for their seal) and `audit.chain` (the newest
/// seals, checked against the log: the full check is `floe.verify_audit()`).
pub fn health_checks() -> Result<Vec<Check>, FloeError> {
    let (tables, late) = privileged::run(|s| {
        let row = s.run(SEAL_BACKLOG, &[])?;
        let row = row.first();
        Ok((
            row.get::<i64>(1)?.unwrap_or(0),
            row.get::<i64>(2)?.unwrap_or(0),
        ))
    })?;
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
    let since = crate::sqltypes::ts(crate::sqltypes::wall_clock() - 3600 * crate::sqltypes::SECOND);
    let findings = verify(Some(since))?;
    let bad: Vec<&Finding> = findings.iter().filter(|f| f.status == "tampered").collect();
    let chain = if bad.is_empty() {
        Check::ok(
            "audit.chain",
            "the seals of the last hour match the log (floe.verify_audit() checks them all)".into(),
        )
    } else {
        Check {
            name: "audit.chain",
            status: crate::health::checks::Status::Critical,
            detail: format!(
                "the audit log of {} does not match its seals: {}",
                bad.iter().map(|f| f.table.as_str()).collect::<Vec<_>>().join(", "),
                bad[0].detail
            ),
            hint: Some("SELECT * FROM floe.verify_audit() WHERE status <> 'ok'; names every altered, inserted or removed entry.".into()),
        }
    };
    Ok(vec![sealing, chain])
}

extension_sql_file!(
    "../sql/audit.sql",
    name = "audit_sql",
    requires = [
        "scheduler_sql",
        "partition_sql",
        audit_append_only,
        audit_trigger,
        enable_audit,
        disable_audit,
        audit_seal,
        verify_audit
    ]
);
