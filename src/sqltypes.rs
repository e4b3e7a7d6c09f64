//! SQL types pgrx does not map on its own.

use pgrx::callconv::{Arg, ArgAbi};
use pgrx::nullable::Nullable;
use pgrx::pg_sys;
use pgrx::pgrx_sql_entity_graph::metadata::{
    ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable, TypeOrigin,
};
use pgrx::FromDatum;
use std::ffi::{c_char, CStr};

/// A Postgres `name` argument: the identifier type of the catalogs (at most 63 bytes).
/// floe takes column names as `name`, as the catalogs and pg_partman do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(pub String);

impl Name {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromDatum for Name {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _typoid: pg_sys::Oid,
    ) -> Option<Self> {
        if is_null || datum.is_null() {
            return None;
        }
        // SAFETY: a `name` datum points to a NUL-terminated NameData.
        let text = unsafe { CStr::from_ptr(datum.cast_mut_ptr::<c_char>()) };
        Some(Name(text.to_string_lossy().into_owned()))
    }
}

/// Arguments unboxed through `FromDatum` (floe's functions take them as `Option`, so the
/// panic for a NULL in a non-`Option` argument is never reached).
macro_rules! arg_from_datum {
    ($ty:ty) => {
        unsafe impl<'fcx> ArgAbi<'fcx> for $ty {
            unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
                let index = arg.index();
                unsafe { arg.unbox_arg_using_from_datum() }
                    .unwrap_or_else(|| panic!("argument {index} must not be null"))
            }

            unsafe fn unbox_nullable_arg(arg: Arg<'_, 'fcx>) -> Nullable<Self> {
                unsafe { arg.unbox_arg_using_from_datum() }.into()
            }
        }
    };
}

arg_from_datum!(Name);

unsafe impl SqlTranslatable for Name {
    const TYPE_IDENT: &'static str = pgrx::pgrx_resolved_type!(Name);
    const TYPE_ORIGIN: TypeOrigin = TypeOrigin::External;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> = Ok(SqlMappingRef::literal("name"));
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> =
        Ok(ReturnsRef::One(SqlMappingRef::literal("name")));
}

/// A Postgres `name[]` argument (column lists, as the catalogs spell them); NULL elements
/// are kept as `None` for the caller to refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names(pub Vec<Option<String>>);

impl FromDatum for Names {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _typoid: pg_sys::Oid,
    ) -> Option<Self> {
        if is_null || datum.is_null() {
            return None;
        }
        let (mut elems, mut nulls, mut n) = (std::ptr::null_mut(), std::ptr::null_mut(), 0);
        // SAFETY: a non-null name[] datum (detoasted here); its elements are NameData
        // (NAMEDATALEN bytes, by reference, char-aligned), each NUL-terminated.
        unsafe {
            let array = pg_sys::pg_detoast_datum(datum.cast_mut_ptr()).cast::<pg_sys::ArrayType>();
            pg_sys::deconstruct_array(
                array,
                pg_sys::NAMEOID,
                pg_sys::NAMEDATALEN as i32,
                false,
                pg_sys::TYPALIGN_CHAR as c_char,
                &mut elems,
                &mut nulls,
                &mut n,
            );
            let n = usize::try_from(n).unwrap_or(0);
            Some(Names(
                (0..n)
                    .map(|i| {
                        (!*nulls.add(i)).then(|| {
                            CStr::from_ptr((*elems.add(i)).cast_mut_ptr::<c_char>())
                                .to_string_lossy()
                                .into_owned()
                        })
                    })
                    .collect(),
            ))
        }
    }
}

arg_from_datum!(Names);

unsafe impl SqlTranslatable for Names {
    const TYPE_IDENT: &'static str = pgrx::pgrx_resolved_type!(Names);
    const TYPE_ORIGIN: TypeOrigin = TypeOrigin::External;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> = Ok(SqlMappingRef::literal("name[]"));
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> =
        Ok(ReturnsRef::One(SqlMappingRef::literal("name[]")));
}

/// A `jsonb` (or `jsonb[]`) value passed through untouched: floe stores and returns job
/// payloads as they came, with no parse and no serde round trip (which would round numbers
/// beyond an f64's precision).
macro_rules! raw_varlena {
    ($(#[$doc:meta])* $ty:ident, $sql:literal, $oid:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $ty(pg_sys::Datum);

        impl FromDatum for $ty {
            unsafe fn from_polymorphic_datum(
                datum: pg_sys::Datum,
                is_null: bool,
                _typoid: pg_sys::Oid,
            ) -> Option<Self> {
                (!is_null && !datum.is_null()).then_some($ty(datum))
            }

            /// A flat copy in `context`: a value read from an SPI tuple table points into
            /// memory SPI frees when it finishes, and may be toasted.
            unsafe fn from_datum_in_memory_context(
                mut context: pgrx::PgMemoryContexts,
                datum: pg_sys::Datum,
                is_null: bool,
                _typoid: pg_sys::Oid,
            ) -> Option<Self> {
                if is_null || datum.is_null() {
                    return None;
                }
                // SAFETY: a non-null varlena datum; the copy is palloc'd in `context`.
                Some(context.switch_to(|_| unsafe {
                    $ty(pg_sys::Datum::from(pg_sys::pg_detoast_datum_copy(
                        datum.cast_mut_ptr(),
                    )))
                }))
            }
        }

        impl pgrx::IntoDatum for $ty {
            fn into_datum(self) -> Option<pg_sys::Datum> {
                Some(self.0)
            }

            fn type_oid() -> pg_sys::Oid {
                $oid
            }
        }

        arg_from_datum!($ty);

        unsafe impl pgrx::callconv::BoxRet for $ty {
            unsafe fn box_into<'fcx>(
                self,
                fcinfo: &mut pgrx::callconv::FcInfo<'fcx>,
            ) -> pgrx::datum::Datum<'fcx> {
                unsafe { fcinfo.return_raw_datum(self.0) }
            }
        }

        unsafe impl SqlTranslatable for $ty {
            const TYPE_IDENT: &'static str = pgrx::pgrx_resolved_type!($ty);
            const TYPE_ORIGIN: TypeOrigin = TypeOrigin::External;
            const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> =
                Ok(SqlMappingRef::literal($sql));
            const RETURN_SQL: Result<ReturnsRef, ReturnsError> =
                Ok(ReturnsRef::One(SqlMappingRef::literal($sql)));
        }
    };
}

raw_varlena!(
    /// A `jsonb` datum, unparsed.
    Jsonb,
    "jsonb",
    pg_sys::JSONBOID
);
raw_varlena!(
    /// A `jsonb[]` datum, unparsed.
    JsonbArray,
    "jsonb[]",
    pg_sys::JSONBARRAYOID
);

// ---------------------------------------------------------------------------------------
// Times and durations as microseconds (Postgres's own unit and epoch, 2000-01-01 UTC).
// ---------------------------------------------------------------------------------------

use crate::error::{invalid, FloeError};
use pgrx::datum::{Interval, TimestampWithTimeZone};

/// Microseconds.
pub type Micros = i64;
pub const SECOND: Micros = 1_000_000;
pub const DAY: Micros = 86_400 * SECOND;

/// The current time as Postgres counts it (microseconds since 2000-01-01), read once per call:
/// the wall clock, not the transaction start, so visibility works inside long transactions.
pub fn wall_clock() -> Micros {
    // SAFETY: reads the clock.
    unsafe { pg_sys::GetCurrentTimestamp() }
}

pub fn ts(us: Micros) -> TimestampWithTimeZone {
    TimestampWithTimeZone::try_from(us).unwrap_or_else(|_| {
        if us < 0 {
            TimestampWithTimeZone::negative_infinity()
        } else {
            TimestampWithTimeZone::positive_infinity()
        }
    })
}

pub fn us_of(t: TimestampWithTimeZone) -> Micros {
    t.into_inner()
}

/// An interval argument as microseconds, within `[min, max]` and without months (a month
/// has no fixed length; days count 24 hours).
pub fn duration(
    argument: &'static str,
    value: Interval,
    min: Micros,
    max: Micros,
    expected: &str,
) -> Result<Micros, FloeError> {
    let us = value.as_micros();
    if value.months() != 0 || us < min as i128 || us > max as i128 {
        return Err(invalid(argument, value.to_string(), expected));
    }
    Ok(us as Micros)
}

/// A stored interval as microseconds (days count 24 hours, months 30 days; never negative).
pub fn micros_of(i: Option<Interval>) -> Option<Micros> {
    i.map(|i| i.as_micros().clamp(0, i64::MAX as i128) as Micros)
}

/// An interval of `us` microseconds (all in its time part, as `make_interval(secs => …)`
/// gives), built directly: pgrx's `from_micros` goes through a float and `make_interval`,
/// which from PostgreSQL 17 refuses what is near the range's end ("interval out of range").
pub fn interval(us: Micros) -> Interval {
    match Interval::new(0, 0, us) {
        Ok(i) => i,
        // (Only a month count of another sign than the rest is refused: none here.)
        Err(_) => Interval::from_micros(0),
    }
}

// ---------------------------------------------------------------------------------------
// uuids: pgrx's (SQL) and the uuid crate's (pure code)
// ---------------------------------------------------------------------------------------

pub fn to_uuid(id: pgrx::Uuid) -> uuid::Uuid {
    uuid::Uuid::from_bytes(*id.as_bytes())
}

pub fn to_pg_uuid(id: uuid::Uuid) -> pgrx::Uuid {
    pgrx::Uuid::from_bytes(*id.as_bytes())
}
