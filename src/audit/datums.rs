//! Datums of an entry's columns made from Rust values (text, name, uuid, text[], a built-in
//! function's result), and the ones every entry of a table or session carries, made once and
//! kept in Rust memory (`Blob`, `TableDatums`) (machinery: palloc'd datums).

use crate::error::FloeError;
use pgrx::pg_sys::{self, Datum};
use std::ffi::CString;

/// A built-in function called directly, whose result is not NULL for these arguments.
///
/// # Safety
/// `args` are the arguments `f` takes.
pub(super) unsafe fn call(
    f: unsafe fn(pg_sys::FunctionCallInfo) -> Datum,
    args: &[Option<Datum>],
) -> Result<Datum, FloeError> {
    // SAFETY: the caller's contract.
    unsafe { pgrx::fcinfo::direct_function_call_as_datum(f, args) }.ok_or_else(|| {
        FloeError::Internal {
            message: "audit: a function returned NULL for an entry".into(),
        }
    })
}

pub(super) fn cstring(s: &str) -> Result<CString, FloeError> {
    CString::new(s).map_err(|_| FloeError::Internal {
        message: "audit: an entry's text holds a NUL byte".into(),
    })
}

/// A datum's bytes kept in Rust memory (8-byte aligned, as a varlena or a NameData may be
/// read): what every entry of one table (or session) carries, made once instead of once per
/// statement. Postgres only reads them (the heap tuple copies them).
pub(super) struct Blob(Vec<u64>);

impl Blob {
    /// # Safety
    /// `p` points at `len` readable bytes.
    pub(super) unsafe fn copy(p: *const u8, len: usize) -> Blob {
        let mut words = vec![0u64; len.div_ceil(8)];
        // SAFETY: the caller's contract; `words` holds at least `len` bytes.
        unsafe { std::ptr::copy_nonoverlapping(p, words.as_mut_ptr().cast::<u8>(), len) };
        Blob(words)
    }

    pub(super) fn datum(&self) -> Datum {
        Datum::from(self.0.as_ptr())
    }
}

/// What every entry of one table carries.
pub(super) struct TableDatums {
    pub(super) schema: Blob,
    pub(super) table: Blob,
    pub(super) redacted: Blob,
    pub(super) classification: Blob,
}

impl TableDatums {
    /// The datums of a table's `schema` and `table` names and its `redact` and
    /// `classification` lists.
    pub(super) fn new(
        schema: &str,
        table: &str,
        redact: &[String],
        classification: &[String],
    ) -> Result<TableDatums, FloeError> {
        // SAFETY: each datum is made in the current memory context and copied at once: a
        // NameData is NAMEDATALEN bytes, an array a varlena of its VARSIZE.
        unsafe {
            let name = |s: &str| -> Result<Blob, FloeError> {
                let d = name_datum(s)?;
                Ok(Blob::copy(d.cast_mut_ptr(), pg_sys::NAMEDATALEN as usize))
            };
            let array = |items: &[String]| -> Result<Blob, FloeError> {
                let p = text_array(items)?.cast_mut_ptr::<pg_sys::varlena>();
                Ok(Blob::copy(p.cast(), pgrx::varlena::varsize_any(p)))
            };
            Ok(TableDatums {
                schema: name(schema)?,
                table: name(table)?,
                redacted: array(redact)?,
                classification: array(classification)?,
            })
        }
    }
}

pub(super) unsafe fn text_datum(s: &str) -> Datum {
    // SAFETY: copies `s` into a palloc'd text.
    unsafe {
        Datum::from(pg_sys::cstring_to_text_with_len(
            s.as_ptr().cast(),
            s.len() as i32,
        ))
    }
}

pub(super) unsafe fn name_datum(s: &str) -> Result<Datum, FloeError> {
    let c = cstring(s)?;
    // SAFETY: namein copies (and clips) the string into a palloc'd NameData.
    unsafe { call(pg_sys::namein, &[Some(Datum::from(c.as_ptr()))]) }
}

pub(super) unsafe fn uuid_datum(bytes: &[u8; 16]) -> Datum {
    // SAFETY: a uuid is 16 bytes, passed by reference.
    unsafe {
        let p = pg_sys::palloc(16).cast::<u8>();
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, 16);
        Datum::from(p)
    }
}

pub(super) unsafe fn text_array(items: &[String]) -> Result<Datum, FloeError> {
    // SAFETY: an array of palloc'd texts.
    unsafe {
        let mut elems: Vec<Datum> = items.iter().map(|s| text_datum(s)).collect();
        Ok(Datum::from(pg_sys::construct_array(
            elems.as_mut_ptr(),
            elems.len() as i32,
            pg_sys::TEXTOID,
            -1,
            false,
            pg_sys::TYPALIGN_INT as std::ffi::c_char,
        )))
    }
}
