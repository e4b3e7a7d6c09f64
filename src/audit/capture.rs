//! Writing entries: the per-table configuration cache (the redaction key, the table's
//! columns, key and tenant column, its facts from the registry or a shard's trigger) and
//! `log_change`, which turns a row change into an entry (`render.rs`) and queues it in the
//! transaction's buffer (`pending.rs`), written by `write.rs` as the extension's owner
//! (machinery).

use super::entry::Pending;
use super::pending::{ensure_callbacks, flush, FLUSH_AT, PENDING};
use super::registry::{local_facts, not_audited, Facts};
use super::render::{changes, deform, key_of, kind_of, row_tenant, whole_row, Att, TableConfig};
use crate::compat::{name_str, tuple_desc_attr};
use crate::error::FloeError;
use crate::privileged::{self, floe_schema, Session};
use pgrx::prelude::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

pub(super) struct Cache {
    pub(super) schema: pg_sys::Oid,
    pub(super) key: Option<[u8; 32]>,
    pub(super) tables: HashMap<pg_sys::Oid, Rc<TableConfig>>,
}

thread_local! {
    static CACHE: RefCell<Option<Cache>> = const { RefCell::new(None) };
}

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
        datums: std::cell::OnceCell::new(),
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
