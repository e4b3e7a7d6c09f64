//! The enforce check: an AFTER statement trigger on the referencing table (one for INSERT,
//! one for UPDATE, both with transition tables) that looks up the keys the statement wrote in
//! the target, all at once, and rejects the statement when one is missing (SPI, machinery).
//!
//! Per statement: the distinct new keys are read from the transition table's tuplestore;
//! keys this session found present less than `floe.reference_cache_ttl` ago are skipped; the
//! rest go to the target in one query per [`BATCH`] keys (as the extension's owner, whose
//! user mapping the server has), in a subtransaction, so that a target that cannot be reached
//! is an answer (`on_unreachable`) rather than an abort from inside `postgres_fdw`.
//!
//! A check, not a lock: between the check and the commit the target row can be deleted in
//! its own database, and nothing here can stop it (there is no transaction across the two).
//! The scan finds such rows afterwards.

use super::cache::Positives;
use super::registry::{self, Loaded};
use super::remote;
use super::statements::describe_key;
use crate::compat::{name_str, tuple_desc_attr};
use crate::error::FloeError;
use crate::privileged::{self, floe_schema};
use crate::sqltypes::{wall_clock, SECOND};
use crate::subxact;
use pgrx::prelude::*;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::ffi::CStr;
use std::rc::Rc;

/// Most keys sent to the target in one query.
pub(super) const BATCH: usize = 10_000;

thread_local! {
    static POSITIVES: RefCell<Positives> = RefCell::new(Positives::default());
}

/// Declarations by id, as loaded under a relcache generation (see `crate::relcache`): a
/// change to `floe.declared_references` (declare, drop) reloads them in every backend.
struct Declarations {
    schema: pg_sys::Oid,
    generation: u64,
    by_id: HashMap<i32, Rc<Loaded>>,
}

thread_local! {
    static DECLARATIONS: RefCell<Option<Declarations>> = const { RefCell::new(None) };
}

fn declared_references_oid(schema: pg_sys::Oid) -> pg_sys::Oid {
    // SAFETY: a syscache lookup by name.
    unsafe { pg_sys::get_relname_relid(c"declared_references".as_ptr(), schema) }
}

/// Makes every backend reload the declarations it holds (at commit, with the change).
pub(super) fn invalidate_declarations() {
    let t = declared_references_oid(floe_schema());
    if t != pg_sys::InvalidOid {
        // SAFETY: queues a relcache invalidation, sent at commit.
        unsafe { pg_sys::CacheInvalidateRelcacheByRelid(t) };
    }
}

/// Declaration `id`, from the backend's cache or the catalog (`reload`: from the catalog).
fn declaration(id: i32, reload: bool) -> Result<Option<Rc<Loaded>>, FloeError> {
    let schema = floe_schema();
    let generation = crate::relcache::generation();
    let hit = DECLARATIONS.with_borrow(|d| {
        d.as_ref()
            .filter(|d| d.schema == schema && d.generation == generation && !reload)
            .and_then(|d| d.by_id.get(&id).cloned())
    });
    if hit.is_some() {
        return Ok(hit);
    }
    crate::relcache::watch(declared_references_oid(schema));
    let Some(loaded) = privileged::run(|s| registry::load(s, id))? else {
        return Ok(None);
    };
    let loaded = Rc::new(loaded);
    DECLARATIONS.with_borrow_mut(|d| {
        if d.as_ref()
            .is_none_or(|d| d.schema != schema || d.generation != generation)
        {
            *d = Some(Declarations {
                schema,
                generation,
                by_id: HashMap::new(),
            });
        }
        if let Some(d) = d.as_mut() {
            d.by_id.insert(id, loaded.clone());
        }
    });
    Ok(Some(loaded))
}

/// The trigger's work for one statement.
pub(super) fn statement(trigger: &PgTrigger<'_>) -> Result<(), FloeError> {
    let id = trigger
        .extra_args()
        .ok()
        .and_then(|a| a.first().and_then(|v| v.parse::<i32>().ok()))
        .ok_or_else(|| FloeError::InvalidDefinition {
            message: "floe.reference_check() needs the reference's id as its argument".into(),
            detail: None,
            hint: "floe.declare_reference creates these triggers; declare the reference again."
                .into(),
        })?;
    let Some(mut reference) = declaration(id, false)? else {
        // Dropped by a transaction this one does not see yet: nothing declared to check.
        return Ok(());
    };
    if !reference.enforce {
        return Ok(());
    }
    let data = trigger.trigger_data();
    // SAFETY: the trigger's relation, open while the trigger runs.
    let (relid, desc) = unsafe { ((*data.tg_relation).rd_id, (*data.tg_relation).rd_att) };
    if relid != reference.tbl || data.tg_newtable.is_null() {
        return Err(FloeError::InvalidDefinition {
            message: format!(
                "trigger {} fires floe.reference_check for reference {id} on another table than {}, or without a transition table of new rows",
                trigger.name().unwrap_or("?"),
                reference.qualified
            ),
            detail: None,
            hint: "floe.declare_reference places these triggers (mode => 'enforce'); drop this one and declare the reference again.".into(),
        });
    }
    let mut columns = KeyColumns::find(desc, &reference)?;
    if columns.types != reference.type_oids {
        // A key column's type changed since the declaration was cached (ALTER TABLE).
        let Some(fresh) = declaration(id, true)? else {
            return Ok(());
        };
        reference = fresh;
        columns = KeyColumns::find(desc, &reference)?;
    }
    // An UPDATE checks the keys it brought in: those its new rows have and its old rows had
    // not (held in memory: as many as the statement's distinct old keys).
    let old = if data.tg_oldtable.is_null() {
        HashSet::new()
    } else {
        let mut old = HashSet::new();
        // SAFETY: the statement's transition table, described by the relation's descriptor.
        unsafe {
            columns.keys_in(data.tg_oldtable, desc, |k| {
                old.insert(k);
                Ok(())
            })?
        };
        old
    };
    // New keys are checked BATCH distinct keys at a time, as they are read.
    let mut batch: HashSet<Vec<String>> = HashSet::new();
    // SAFETY: as above.
    unsafe {
        columns.keys_in(data.tg_newtable, desc, |k| {
            if !old.contains(&k) && batch.insert(k) && batch.len() >= BATCH {
                check_keys(&reference, std::mem::take(&mut batch).into_iter().collect())?;
            }
            Ok(())
        })?
    };
    check_keys(&reference, batch.into_iter().collect())
}

/// Where a reference's key columns are in the trigger relation, and their output functions.
struct KeyColumns {
    attnums: Vec<usize>,
    types: Vec<pg_sys::Oid>,
    out: Vec<pg_sys::FmgrInfo>,
}

impl KeyColumns {
    /// 42703 when a key column is gone (dropped or renamed since the declaration).
    fn find(desc: pg_sys::TupleDesc, reference: &Loaded) -> Result<KeyColumns, FloeError> {
        // SAFETY: desc is the trigger relation's descriptor.
        let natts = unsafe { (*desc).natts } as usize;
        let mut attnums = Vec::with_capacity(reference.key_columns.len());
        let mut types = Vec::with_capacity(reference.key_columns.len());
        let mut out = Vec::with_capacity(reference.key_columns.len());
        for name in &reference.key_columns {
            let found = (0..natts).find(|&i| {
                // SAFETY: i < natts.
                let att = unsafe { tuple_desc_attr(desc, i) };
                !att.attisdropped && name_str(&att.attname) == name
            });
            let Some(i) = found else {
                return Err(FloeError::UndefinedColumn {
                    table: reference.qualified.clone(),
                    column: name.clone(),
                    hint: format!(
                        "Reference {} names a column the table no longer has (dropped or renamed): declare the reference again with floe.declare_reference, or drop it with floe.drop_reference.",
                        reference.id
                    ),
                });
            };
            // SAFETY: i < natts; catalog lookups; an all-zero FmgrInfo is filled by fmgr_info.
            let (typid, info) = unsafe {
                let att = tuple_desc_attr(desc, i);
                let (mut foid, mut varlena) = (pg_sys::InvalidOid, false);
                pg_sys::getTypeOutputInfo(att.atttypid, &mut foid, &mut varlena);
                let mut info: pg_sys::FmgrInfo = std::mem::zeroed();
                pg_sys::fmgr_info(foid, &mut info);
                (att.atttypid, info)
            };
            attnums.push(i);
            types.push(typid);
            out.push(info);
        }
        Ok(KeyColumns {
            attnums,
            types,
            out,
        })
    }

    /// Calls `each` with the key (as text; none with a NULL: a foreign key's MATCH SIMPLE)
    /// of every row of a transition table, read straight from its tuplestore (through a
    /// read pointer of our own: other triggers of the statement read it too). Stops at the
    /// first error `each` returns.
    ///
    /// # Safety
    /// `store` is a transition table of the trigger relation whose descriptor is `desc`.
    unsafe fn keys_in(
        &mut self,
        store: *mut pg_sys::Tuplestorestate,
        desc: pg_sys::TupleDesc,
        mut each: impl FnMut(Vec<String>) -> Result<(), FloeError>,
    ) -> Result<(), FloeError> {
        let last = self.attnums.iter().copied().max().unwrap_or(0) as i32 + 1;
        let mut result = Ok(());
        // SAFETY: the caller's contract; the slot and the read pointer are ours, the slot is
        // dropped and pointer 0 selected again before returning (an ERROR aborts the
        // statement, whose memory holds both).
        unsafe {
            let slot = pg_sys::MakeSingleTupleTableSlot(desc, &pg_sys::TTSOpsMinimalTuple);
            let ptr = pg_sys::tuplestore_alloc_read_pointer(store, pg_sys::EXEC_FLAG_REWIND as i32);
            pg_sys::tuplestore_select_read_pointer(store, ptr);
            pg_sys::tuplestore_rescan(store);
            while result.is_ok() && pg_sys::tuplestore_gettupleslot(store, true, false, slot) {
                pg_sys::slot_getsomeattrs_int(slot, last);
                let mut key = Vec::with_capacity(self.attnums.len());
                for (&i, info) in self.attnums.iter().zip(self.out.iter_mut()) {
                    if *(*slot).tts_isnull.add(i) {
                        break;
                    }
                    let text = pg_sys::OutputFunctionCall(info, *(*slot).tts_values.add(i));
                    key.push(CStr::from_ptr(text).to_string_lossy().into_owned());
                    pg_sys::pfree(text.cast());
                }
                if key.len() == self.attnums.len() {
                    result = each(key);
                }
            }
            pg_sys::tuplestore_select_read_pointer(store, 0);
            pg_sys::ExecDropSingleTupleTableSlot(slot);
        }
        result
    }
}

/// Checks `keys` of `reference` against its target (see the module documentation).
pub(super) fn check_keys(reference: &Loaded, keys: Vec<Vec<String>>) -> Result<(), FloeError> {
    if keys.is_empty() {
        return Ok(());
    }
    let now = wall_clock();
    let ttl = i64::from(crate::gucs::reference_cache_ttl_secs()) * SECOND;
    let unknown: Vec<Vec<String>> = POSITIVES.with_borrow_mut(|p| {
        p.resize(crate::gucs::reference_cache_size());
        p.bind(
            reference.id,
            &format!("{} {:?}", reference.target_name, reference.shape.remote),
        );
        keys.into_iter()
            .filter(|k| !p.seen(reference.id, k, now, ttl))
            .collect()
    });
    for batch in unknown.chunks(BATCH) {
        let asked =
            subxact::try_run(|| privileged::run(|s| remote::missing(s, &reference.shape, batch)));
        match asked {
            Ok(Ok(missing)) if missing.is_empty() => POSITIVES.with_borrow_mut(|p| {
                for k in batch {
                    p.found(reference.id, k.clone(), now);
                }
            }),
            Ok(Ok(missing)) => return Err(dangling(reference, &missing)),
            Ok(Err(e)) => return Err(e),
            Err(caught) if remote::unreachable(caught.code) => {
                if !reference.allow_unreachable {
                    return Err(FloeError::Sql {
                        code: caught.code,
                        message: format!(
                            "cannot check reference {}: its target cannot be reached",
                            reference.describe()
                        ),
                        detail: Some(caught.describe()),
                        hint: "The write is refused (on_unreachable => 'reject'). Retry when the target's server is back, or declare the reference with on_unreachable => 'allow' to accept writes and check them at the next scan.".into(),
                    });
                }
                privileged::run(|s| registry::queue(s, reference.id, batch))?;
            }
            Err(caught) => {
                return Err(FloeError::Sql {
                    code: caught.code,
                    message: format!(
                        "cannot check reference {}: {}",
                        reference.describe(),
                        caught.message
                    ),
                    detail: caught.detail,
                    hint: "The check could not ask the target: see the error; if the target table, the server's user mapping or a key column's type changed, floe.declare_reference checks and records them again.".into(),
                })
            }
        }
    }
    Ok(())
}

/// 23503 naming the first missing key, the table, the column(s) and the target.
fn dangling(reference: &Loaded, missing: &[Vec<String>]) -> FloeError {
    // The smallest (as text): the same statement names the same key every time.
    let smallest = missing.iter().min().cloned().unwrap_or_default();
    let first = describe_key(&reference.key_columns, &smallest);
    FloeError::Sql {
        code: PgSqlErrorCode::ERRCODE_FOREIGN_KEY_VIOLATION,
        message: format!(
            "insert or update on table {} violates reference {}: key {first} is not present in {}",
            reference.qualified, reference.id, reference.target_name
        ),
        detail: (missing.len() > 1).then(|| {
            format!(
                "{} keys of the statement are missing; the first (as text) is shown.",
                missing.len()
            )
        }),
        hint: format!(
            "Create the target row first, or leave the column(s) NULL. The reference is floe.declared_references id {} (mode enforce).",
            reference.id
        ),
    }
}
