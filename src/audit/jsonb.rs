//! An entry's fields (`render.rs`) as a jsonb value built in memory, without writing JSON
//! text and parsing it again (`jsonb_in` was a tenth of a single-row change's audit cost).
//! The value is the one `jsonb_in` makes of the entry's JSON text: keys in jsonb's order
//! (`record::jsonb_key_order`), numbers through `numeric_in` as the parser does, booleans,
//! strings and nulls as they are. An object holding a json or jsonb column's value (not
//! NULL), or a string longer than jsonb holds, is written from its text (machinery: jsonb's C
//! structures).

use super::datums::{call, cstring};
use super::record::{self, Kind};
use super::render::{json_text, Fields, TableConfig};
use crate::error::FloeError;
use pgrx::pg_sys::{self, Datum};

/// The fields as a jsonb datum, palloc'd in the current memory context.
pub(super) fn build(cfg: &TableConfig, fields: &Fields) -> Result<Datum, FloeError> {
    let as_text = |f: &super::render::Field| match &f.text {
        Some(t) => f.kind == Kind::Json || t.len() > pg_sys::JENTRY_OFFLENMASK as usize,
        None => false,
    };
    let order = if fields.iter().any(as_text) {
        None
    } else {
        let names: Vec<&str> = fields
            .iter()
            .map(|f| cfg.atts[f.att].name.as_str())
            .collect();
        record::jsonb_key_order(&names)
    };
    let Some(order) = order else {
        return from_text(&json_text(cfg, fields));
    };
    let mut pairs = Vec::with_capacity(order.len());
    for (n, &i) in order.iter().enumerate() {
        let f = &fields[i];
        let value = match (f.text.as_deref(), f.kind) {
            (None, _) => scalar(pg_sys::jbvType::jbvNull),
            (Some(t), Kind::Number) if record::is_json_number(t) => numeric(t)?,
            (Some("t"), Kind::Bool) => boolean(true),
            (Some("f"), Kind::Bool) => boolean(false),
            (Some(t), _) => string(t),
        };
        pairs.push(pg_sys::JsonbPair {
            key: string(&cfg.atts[f.att].name),
            value,
            order: n as u32,
        });
    }
    let mut object = scalar(pg_sys::jbvType::jbvObject);
    object.val.object = pg_sys::JsonbValue__bindgen_ty_1__bindgen_ty_3 {
        nPairs: pairs.len() as i32,
        pairs: pairs.as_mut_ptr(),
    };
    // SAFETY: an object of sorted, distinct keys whose strings (borrowed from `cfg` and
    // `fields`) and numerics outlive the call; the result is a new palloc'd jsonb.
    Ok(Datum::from(unsafe {
        pg_sys::JsonbValueToJsonb(&mut object)
    }))
}

/// `text::jsonb`.
pub(super) fn from_text(text: &str) -> Result<Datum, FloeError> {
    let c = cstring(text)?;
    // SAFETY: jsonb_in parses the text into a palloc'd jsonb (an ERROR on bad JSON).
    unsafe { call(pg_sys::jsonb_in, &[Some(Datum::from(c.as_ptr()))]) }
}

fn scalar(t: pg_sys::jbvType::Type) -> pg_sys::JsonbValue {
    // SAFETY: a zeroed JsonbValue is a valid value of every variant's plain fields.
    let mut v: pg_sys::JsonbValue = unsafe { std::mem::zeroed() };
    v.type_ = t;
    v
}

fn string(s: &str) -> pg_sys::JsonbValue {
    let mut v = scalar(pg_sys::jbvType::jbvString);
    v.val.string = pg_sys::JsonbValue__bindgen_ty_1__bindgen_ty_1 {
        len: s.len() as i32,
        // jsonb only reads it.
        val: s.as_ptr().cast_mut().cast(),
    };
    v
}

fn boolean(b: bool) -> pg_sys::JsonbValue {
    let mut v = scalar(pg_sys::jbvType::jbvBool);
    v.val.boolean = b;
    v
}

/// A JSON number as the parser reads it: `numeric_in(text, 0, -1)`.
fn numeric(text: &str) -> Result<pg_sys::JsonbValue, FloeError> {
    let c = cstring(text)?;
    // SAFETY: numeric_in's three arguments; the result is a palloc'd numeric.
    let d = unsafe {
        call(
            pg_sys::numeric_in,
            &[
                Some(Datum::from(c.as_ptr())),
                Some(Datum::from(pg_sys::InvalidOid)),
                Some(Datum::from(-1i32)),
            ],
        )
    }?;
    let mut v = scalar(pg_sys::jbvType::jbvNumeric);
    v.val.numeric = d.cast_mut_ptr();
    Ok(v)
}
