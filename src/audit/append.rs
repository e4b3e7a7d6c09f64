//! Writing entries straight into the log's month: each entry's datums, a heap insert and the
//! month's index entries, as the executor does for `INSERT INTO <month> VALUES (…)`, without
//! the planner, executor start, projection and the partition constraint check around it
//! (the month's bounds hold the transaction's start time, which is every entry's
//! `logged_at`: `write.rs` keeps that target). A single-row statement's entry cost half as
//! much again through SQL. A month this writer cannot fill as SQL would (a trigger or rule
//! on it, row security, a column floe does not fill, no INSERT right) is left to the SQL path
//! in `write.rs`, whose defaults, triggers and errors then apply (machinery: heap, indexes,
//! datums).

use super::columns::{self, Attr, Col, Type};
use super::datums::{call, name_datum, text_datum, uuid_datum, Blob, TableDatums};
use super::entry::Pending;
use super::jsonb;
use crate::compat::{name_str, tuple_desc_attr};
use crate::error::FloeError;
use pgrx::pg_sys::{self, Datum};

/// Writes `entries` into `month` (its id sequence `seq`); `Ok(false)`, having written
/// nothing, when the month must be written through SQL instead. Run as the extension's owner.
pub(super) fn append(
    month: pg_sys::Oid,
    seq: pg_sys::Oid,
    entries: &[Pending],
) -> Result<bool, FloeError> {
    // SAFETY: the month is opened and locked as an INSERT would; every datum is made in the
    // executor state's memory, freed with it; the slot, indexes and relation are closed
    // below (an ERROR's abort releases them otherwise).
    unsafe {
        let rel = pg_sys::table_open(month, pg_sys::RowExclusiveLock as pg_sys::LOCKMODE);
        let Some(layout) = writable(rel) else {
            pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
            return Ok(false);
        };
        let estate = pg_sys::CreateExecutorState();
        let saved = pg_sys::MemoryContextSwitchTo((*estate).es_query_cxt);
        let rri = pg_sys::palloc0(std::mem::size_of::<pg_sys::ResultRelInfo>())
            .cast::<pg_sys::ResultRelInfo>();
        (*rri).type_ = pg_sys::NodeTag::T_ResultRelInfo;
        pg_sys::InitResultRelInfo(rri, rel, 0, std::ptr::null_mut(), 0);
        pg_sys::ExecOpenIndices(rri, false);
        let desc = (*rel).rd_att;
        let slot = pg_sys::MakeSingleTupleTableSlot(desc, &raw const pg_sys::TTSOpsVirtual);
        let checks = !(*desc).constr.is_null();

        let shared = Shared::now();
        let mut actors: Vec<(pg_sys::Oid, Datum)> = Vec::new();
        for group in entries.chunk_by(|a, b| std::rc::Rc::ptr_eq(&a.cfg, &b.cfg)) {
            let cfg = &group[0].cfg;
            let per_table = match cfg.datums.get() {
                Some(t) => t,
                None => {
                    let made = TableDatums::new(
                        &cfg.schema,
                        &cfg.table,
                        &cfg.redact,
                        &cfg.classification,
                    )?;
                    cfg.datums.get_or_init(|| made)
                }
            };
            for e in group {
                let actor = match actors.iter().find(|(o, _)| *o == e.caller) {
                    Some(&(_, d)) => d,
                    None => {
                        let d = actor_name(e.caller)?;
                        actors.push((e.caller, d));
                        d
                    }
                };
                pg_sys::ExecClearTuple(slot);
                let values = std::slice::from_raw_parts_mut((*slot).tts_values, layout.len());
                let nulls = std::slice::from_raw_parts_mut((*slot).tts_isnull, layout.len());
                for (i, col) in layout.iter().enumerate() {
                    let v = match col {
                        None => None,
                        Some(c) => value(*c, e, &shared, per_table, actor, seq)?,
                    };
                    nulls[i] = v.is_none();
                    values[i] = v.unwrap_or(Datum::from(0));
                }
                pg_sys::ExecStoreVirtualTuple(slot);
                if checks {
                    pg_sys::ExecConstraints(rri, slot, estate);
                }
                pg_sys::simple_table_tuple_insert(rel, slot);
                if (*rri).ri_NumIndices > 0 {
                    crate::compat::insert_index_tuples(rri, slot, estate);
                }
                let per_tuple = (*estate).es_per_tuple_exprcontext;
                if !per_tuple.is_null() {
                    pg_sys::MemoryContextReset((*per_tuple).ecxt_per_tuple_memory);
                }
            }
        }
        pg_sys::ExecDropSingleTupleTableSlot(slot);
        pg_sys::ExecCloseIndices(rri);
        pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
        pg_sys::MemoryContextSwitchTo(saved);
        pg_sys::FreeExecutorState(estate);
        // As after the SQL INSERT: later commands of the transaction see the entries.
        pg_sys::CommandCounterIncrement();
    }
    Ok(true)
}

/// The month's layout when this writer may fill it as an INSERT would; `None` otherwise.
unsafe fn writable(rel: pg_sys::Relation) -> Option<Vec<Option<Col>>> {
    // SAFETY: an open relation's cached catalog data.
    unsafe {
        let form = &*(*rel).rd_rel;
        if form.relkind != pg_sys::RELKIND_RELATION as std::ffi::c_char
            || form.relrowsecurity
            || !(*rel).rd_rules.is_null()
        {
            return None;
        }
        let trig = (*rel).trigdesc;
        if !trig.is_null() {
            let t = &*trig;
            if t.trig_insert_before_row
                || t.trig_insert_after_row
                || t.trig_insert_instead_row
                || t.trig_insert_before_statement
                || t.trig_insert_after_statement
                || t.trig_insert_new_table
            {
                return None;
            }
        }
        let desc = (*rel).rd_att;
        if !(*desc).constr.is_null() && (*(*desc).constr).has_generated_stored {
            return None;
        }
        if pg_sys::pg_class_aclcheck((*rel).rd_id, pg_sys::GetUserId(), pg_sys::ACL_INSERT as _)
            != pg_sys::AclResult::ACLCHECK_OK
        {
            return None;
        }
        let natts = (*desc).natts as usize;
        let attrs: Vec<Attr<'_>> = (0..natts)
            .map(|i| {
                let a = tuple_desc_attr(desc, i);
                Attr {
                    name: name_str(&a.attname),
                    typ: type_of(a.atttypid),
                    dropped: a.attisdropped,
                }
            })
            .collect();
        columns::layout(&attrs)
    }
}

fn type_of(typid: pg_sys::Oid) -> Option<Type> {
    Some(match typid {
        pg_sys::INT8OID => Type::Int8,
        pg_sys::TIMESTAMPTZOID => Type::Timestamptz,
        pg_sys::XID8OID => Type::Xid8,
        pg_sys::OIDOID => Type::Oid,
        pg_sys::NAMEOID => Type::Name,
        pg_sys::TEXTOID => Type::Text,
        pg_sys::UUIDOID => Type::Uuid,
        pg_sys::INETOID => Type::Inet,
        pg_sys::JSONBOID => Type::Jsonb,
        pg_sys::TEXTARRAYOID => Type::TextArray,
        _ => return None,
    })
}

/// What every entry of the flush shares: `now()`, the transaction id, the client address.
struct Shared {
    logged_at: Datum,
    xid: Datum,
    client_addr: Option<Datum>,
}

thread_local! {
    /// `inet_client_addr()`, which does not change in a session: made by the first flush.
    static CLIENT_ADDR: std::cell::OnceCell<Option<Blob>> = const { std::cell::OnceCell::new() };
}

impl Shared {
    unsafe fn now() -> Shared {
        // SAFETY: reads the transaction's start time and (assigning it, as the INSERT's heap
        // write would) its full id; inet_client_addr takes no argument and returns an inet
        // varlena, copied at once.
        unsafe {
            Shared {
                logged_at: Datum::from(pg_sys::GetCurrentTransactionStartTimestamp()),
                xid: Datum::from(pg_sys::GetTopFullTransactionId().value),
                client_addr: CLIENT_ADDR.with(|c| {
                    c.get_or_init(|| {
                        client_addr().map(|d| {
                            let p = d.cast_mut_ptr::<pg_sys::varlena>();
                            Blob::copy(p.cast(), pgrx::varlena::varsize_any(p))
                        })
                    })
                    .as_ref()
                    .map(Blob::datum)
                }),
            }
        }
    }
}

unsafe fn value(
    col: Col,
    e: &Pending,
    shared: &Shared,
    t: &TableDatums,
    actor: Datum,
    seq: pg_sys::Oid,
) -> Result<Option<Datum>, FloeError> {
    let json =
        |f: &Option<super::render::Fields>| f.as_ref().map(|f| jsonb::build(&e.cfg, f)).transpose();
    // SAFETY: each call makes a datum of the column's type in the current memory context.
    unsafe {
        Ok(match col {
            Col::Id => call(pg_sys::nextval_oid, &[Some(Datum::from(seq))]).map(Some)?,
            Col::LoggedAt => Some(shared.logged_at),
            Col::Xid => Some(shared.xid),
            Col::Relid => Some(Datum::from(e.cfg.log_relid)),
            Col::SchemaName => Some(t.schema.datum()),
            Col::TableName => Some(t.table.datum()),
            Col::Op => Some(text_datum(e.op)),
            Col::Tenant => e.tenant.map(|u| uuid_datum(u.as_bytes())),
            Col::Actor => Some(actor),
            Col::AppActor => e.actor.as_deref().map(|a| text_datum(a)),
            Col::ClientAddr => shared.client_addr,
            Col::Pk => json(&e.pk)?,
            Col::OldValues => json(&e.old)?,
            Col::NewValues => json(&e.new)?,
            Col::Redacted => Some(t.redacted.datum()),
            Col::Classification => Some(t.classification.datum()),
        })
    }
}

/// `pg_get_userbyid(role)`: the role's name, or `unknown (OID=n)` for a dropped one.
unsafe fn actor_name(role: pg_sys::Oid) -> Result<Datum, FloeError> {
    // SAFETY: a syscache lookup; the name is copied.
    unsafe {
        let p = pg_sys::GetUserNameFromId(role, true);
        if p.is_null() {
            return name_datum(&format!("unknown (OID={})", role.to_u32()));
        }
        call(pg_sys::namein, &[Some(Datum::from(p))])
    }
}

/// `inet_client_addr()`: NULL over a Unix socket; a palloc'd inet otherwise.
unsafe fn client_addr() -> Option<Datum> {
    // SAFETY: the function takes no argument and reads MyProcPort only.
    unsafe { pgrx::fcinfo::direct_function_call_as_datum(pg_sys::inet_client_addr, &[]) }
}
