//! Turning a row into the text of its entry: the audited table's columns as the trigger reads
//! them (`Att`, `TableConfig`, loaded by `capture.rs`), deforming a tuple, each column's text
//! (ISO dates, redaction), the whole row, its key, an UPDATE's changed columns and the row's
//! tenant (machinery: tuple descriptors, output functions, datums; the JSON itself is
//! `record.rs`).

use super::record::{self, Kind, Object};
use crate::compat::{name_str, tuple_desc_attr};
use pgrx::prelude::*;
use std::ffi::CStr;

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
    /// What every entry of the table carries (names, flags) as datums, made by the first
    /// direct write (`append.rs`, `datums.rs`) and kept with the configuration.
    pub(super) datums: std::cell::OnceCell<super::datums::TableDatums>,
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

/// One field of an entry's JSON object: the attribute it names, how its value is written and
/// the value's text (already a hash when the column is redacted; `None`: JSON null). The
/// object is written as jsonb directly (`jsonb.rs`) or as JSON text ([`json_text`]).
pub(super) struct Field {
    pub(super) att: usize,
    pub(super) kind: Kind,
    pub(super) text: Option<String>,
}

pub(super) type Fields = Vec<Field>;

pub(super) fn add(fields: &mut Fields, i: usize, att: &Att, text: Option<String>, key: &[u8; 32]) {
    let (kind, text) = match text {
        Some(t) if att.redact => (Kind::Text, Some(record::redact(key, &t))),
        t => (att.kind, t),
    };
    fields.push(Field { att: i, kind, text });
}

/// The object's JSON text (what the SQL path passes as `$n::jsonb`).
pub(super) fn json_text(cfg: &TableConfig, fields: &Fields) -> String {
    let mut obj = Object::new();
    for f in fields {
        obj.value(&cfg.atts[f.att].name, f.kind, f.text.as_deref());
    }
    obj.finish()
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
) -> Fields {
    let mut fields = Vec::with_capacity(columns.len());
    for &i in columns {
        add(&mut fields, i, &cfg.atts[i], texts[i].clone(), key);
    }
    fields
}

/// An INSERTed or DELETEd row: the whole row and its key, each column's text made once.
pub(super) fn whole_row(cfg: &TableConfig, row: &Row, key: &[u8; 32]) -> (Fields, Option<Fields>) {
    let live: Vec<usize> = (0..cfg.atts.len())
        .filter(|&i| !cfg.atts[i].dropped)
        .collect();
    let mut texts = texts(cfg, row, &live);
    let pk = (!cfg.pk.is_empty()).then(|| object(cfg, &cfg.pk, &texts, key));
    let mut fields = Vec::with_capacity(live.len());
    for &i in &live {
        add(&mut fields, i, &cfg.atts[i], texts[i].take(), key);
    }
    (fields, pk)
}

/// The key of an UPDATEd row (its changed columns come from `changes`).
pub(super) fn key_of(cfg: &TableConfig, row: &Row, key: &[u8; 32]) -> Option<Fields> {
    (!cfg.pk.is_empty()).then(|| object(cfg, &cfg.pk, &texts(cfg, row, &cfg.pk), key))
}

/// The changed columns of an UPDATE: (old values, new values).
pub(super) fn changes(cfg: &TableConfig, old: &Row, new: &Row, key: &[u8; 32]) -> (Fields, Fields) {
    let (mut before, mut after) = (Vec::new(), Vec::new());
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
        add(&mut before, i, att, o, key);
        add(&mut after, i, att, n, key);
    }
    (before, after)
}

pub(super) fn row_tenant(cfg: &TableConfig, row: &Row) -> Option<pgrx::Uuid> {
    let i = cfg.tenant?;
    if row.nulls[i] {
        return None;
    }
    // SAFETY: the column is a uuid (checked when the configuration was loaded).
    unsafe { pgrx::Uuid::from_datum(row.values[i], false) }
}
