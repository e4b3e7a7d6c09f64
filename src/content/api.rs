//! The content store's SQL functions and the managed-column trigger. Thin glue: arguments are
//! checked here and each function calls into `store.rs` (put, release), `read.rs` (get,
//! similar), `dictionaries.rs`, `policies.rs`, `maintenance.rs` (gc, tiering, retraining) and
//! `managed.rs`; the frame is `codec.rs`, signatures are `simhash.rs`, tier and retraining
//! decisions are `tier.rs`. Every statement on floe's tables runs through `crate::privileged`
//! (as the extension's owner, from saved plans) after the tenant check of
//! `crate::tenant::authorize`: a caller acts for the tenant of its context, or for any tenant
//! in admin mode.

use super::codec::{self, Codec, CodecError, Spec};
use super::dictionaries::{self, candidate, save, usable_dictionary};
use super::errors::codec_error;
use super::maintenance::{gc, retrain, tier_batch};
use super::managed::{self, managed_row};
use super::policies;
use super::read::{self, get};
use super::store::{put, release};
use crate::error::{invalid, required, ErrorReport, FloeError};
use crate::gucs;
use crate::privileged;
use crate::sqltypes::Name;
use crate::tenant::authorize;
use pgrx::datum::Interval;
use pgrx::prelude::*;
use pgrx::{PgRelation, Uuid};

// ---------------------------------------------------------------------------------------
// Codec functions
// ---------------------------------------------------------------------------------------

fn hash_arg(hash: Option<&[u8]>) -> Result<&[u8], FloeError> {
    let hash = required(hash, "hash")?;
    if hash.len() != 32 {
        return Err(invalid(
            "hash",
            format!("{} bytes", hash.len()),
            "the 32-byte BLAKE3 hash floe.content_put() returned",
        ));
    }
    Ok(hash)
}

fn compress_bytes(
    data: &[u8],
    codec: Option<&str>,
    level: Option<i32>,
    dictionary: Option<i32>,
) -> Result<Vec<u8>, FloeError> {
    let codec = Codec::parse(required(codec, "codec")?).map_err(codec_error)?;
    let spec = Spec::new(codec, required(level, "level")?).map_err(codec_error)?;
    match dictionary {
        None => codec::encode(data, spec, None).map_err(codec_error),
        Some(id) => {
            if codec != Codec::Zstd {
                return Err(codec_error(CodecError::DictionaryNotSupported(codec)));
            }
            privileged::run(|s| {
                let dict = usable_dictionary(s, id)?;
                codec::encode(data, spec, Some(&dict)).map_err(codec_error)
            })
        }
    }
}

fn decompress_bytes(frame: &[u8]) -> Result<Vec<u8>, FloeError> {
    let info = codec::info(frame).map_err(codec_error)?;
    if info.dictionary == 0 {
        return codec::decode(frame, None).map_err(codec_error);
    }
    privileged::run(|s| {
        let dict = usable_dictionary(s, info.dictionary as i32)?;
        codec::decode(frame, Some(&dict)).map_err(codec_error)
    })
}

fn utf8(bytes: Vec<u8>) -> Result<String, FloeError> {
    String::from_utf8(bytes).map_err(|e| FloeError::Sql {
        code: PgSqlErrorCode::ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
        message: format!(
            "the body is not valid UTF-8 text (byte {})",
            e.utf8_error().valid_up_to()
        ),
        detail: None,
        hint: "Read it as bytea (floe.decompress() or floe.content_get()).".into(),
    })
}

#[pg_extern(stable, parallel_restricted)]
fn compress(
    data: Option<&[u8]>,
    codec: default!(Option<&str>, "'zstd'"),
    level: default!(Option<i32>, 3),
    dictionary: default!(Option<i32>, "NULL"),
) -> Result<Option<Vec<u8>>, ErrorReport> {
    let Some(data) = data else { return Ok(None) };
    Ok(Some(compress_bytes(data, codec, level, dictionary)?))
}

#[pg_extern(stable, parallel_restricted, name = "compress")]
fn compress_text(
    data: Option<&str>,
    codec: default!(Option<&str>, "'zstd'"),
    level: default!(Option<i32>, 3),
    dictionary: default!(Option<i32>, "NULL"),
) -> Result<Option<Vec<u8>>, ErrorReport> {
    let Some(data) = data else { return Ok(None) };
    Ok(Some(compress_bytes(
        data.as_bytes(),
        codec,
        level,
        dictionary,
    )?))
}

#[pg_extern(stable, strict, parallel_restricted)]
fn decompress(frame: &[u8]) -> Result<Vec<u8>, ErrorReport> {
    Ok(decompress_bytes(frame)?)
}

#[pg_extern(stable, strict, parallel_restricted)]
fn decompress_text(frame: &[u8]) -> Result<String, ErrorReport> {
    Ok(utf8(decompress_bytes(frame)?)?)
}

#[allow(clippy::type_complexity)] // pgrx needs the row type spelled out
#[pg_extern(immutable, strict, parallel_safe)]
fn frame_info(
    frame: &[u8],
) -> Result<
    TableIterator<
        'static,
        (
            name!(version, i32),
            name!(codec, String),
            name!(dictionary, Option<i32>),
            name!(raw_size, i64),
            name!(stored_size, i64),
        ),
    >,
    ErrorReport,
> {
    let i = codec::info(frame).map_err(codec_error)?;
    Ok(TableIterator::once((
        i32::from(i.version),
        i.codec.name().to_string(),
        (i.dictionary != 0).then_some(i.dictionary as i32),
        i64::from(i.raw_len),
        i.stored_len as i64,
    )))
}

// ---------------------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------------------

#[pg_extern(volatile, parallel_unsafe, requires = [current_tenant])]
fn content_put(
    body: Option<&[u8]>,
    tenant: default!(Option<Uuid>, "floe.current_tenant()"),
) -> Result<Option<Vec<u8>>, ErrorReport> {
    let Some(body) = body else { return Ok(None) };
    let tenant = authorize(tenant, "content_put")?;
    Ok(Some(privileged::run(|s| put(s, tenant, body))?))
}

#[pg_extern(volatile, parallel_unsafe, name = "content_put", requires = [current_tenant])]
fn content_put_text(
    body: Option<&str>,
    tenant: default!(Option<Uuid>, "floe.current_tenant()"),
) -> Result<Option<Vec<u8>>, ErrorReport> {
    content_put(body.map(str::as_bytes), tenant)
}

#[pg_extern(volatile, parallel_unsafe, requires = [current_tenant])]
fn content_get(
    hash: Option<&[u8]>,
    tenant: default!(Option<Uuid>, "floe.current_tenant()"),
) -> Result<Option<Vec<u8>>, ErrorReport> {
    if hash.is_none() {
        return Ok(None);
    }
    Ok(Some(get(tenant, hash_arg(hash)?)?))
}

#[pg_extern(volatile, parallel_unsafe, requires = [current_tenant])]
fn content_get_text(
    hash: Option<&[u8]>,
    tenant: default!(Option<Uuid>, "floe.current_tenant()"),
) -> Result<Option<String>, ErrorReport> {
    if hash.is_none() {
        return Ok(None);
    }
    Ok(Some(utf8(get(tenant, hash_arg(hash)?)?)?))
}

#[pg_extern(volatile, parallel_unsafe, requires = [current_tenant])]
fn content_release(
    hash: Option<&[u8]>,
    tenant: default!(Option<Uuid>, "floe.current_tenant()"),
) -> Result<i64, ErrorReport> {
    let hash = hash_arg(hash)?;
    let tenant = authorize(tenant, "content_release")?;
    Ok(privileged::run(|s| release(s, tenant, hash))?)
}

#[allow(clippy::type_complexity)] // pgrx needs the row type spelled out
#[pg_extern(volatile, parallel_unsafe, requires = [current_tenant])]
fn similar_content(
    hash: Option<&[u8]>,
    min_similarity: default!(Option<f32>, 0.8),
    tenant: default!(Option<Uuid>, "floe.current_tenant()"),
    max_results: default!(Option<i32>, 10),
) -> Result<
    TableIterator<
        'static,
        (
            name!(hash, Vec<u8>),
            name!(similarity, f32),
            name!(raw_size, i32),
            name!(tier, String),
        ),
    >,
    ErrorReport,
> {
    let hash = hash_arg(hash)?;
    let min = required(min_similarity, "min_similarity")?;
    if !(0.0..=1.0).contains(&min) {
        return Err(invalid("min_similarity", min.to_string(), "a number from 0 to 1").into());
    }
    let limit = required(max_results, "max_results")?;
    if limit < 1 {
        return Err(invalid("max_results", limit.to_string(), "at least 1").into());
    }
    let tenant = authorize(tenant, "similar_content")?;

    let rows = privileged::run(|s| read::similar(s, tenant, hash, min, limit))?;
    Ok(TableIterator::new(rows))
}

// ---------------------------------------------------------------------------------------
// Dictionaries
// ---------------------------------------------------------------------------------------

#[pg_extern(volatile, parallel_unsafe, requires = [current_tenant])]
fn train_dictionary(
    tenant: default!(Option<Uuid>, "floe.current_tenant()"),
    sample_rows: default!(Option<i32>, 4000),
    dict_size: default!(Option<i32>, 524288),
) -> Result<i32, ErrorReport> {
    let sample_rows = required(sample_rows, "sample_rows")?;
    if !(8..=1_000_000).contains(&sample_rows) {
        return Err(invalid("sample_rows", sample_rows.to_string(), "8 to 1000000").into());
    }
    let dict_size = required(dict_size, "dict_size")?;
    if !(1024..=16 << 20).contains(&dict_size) {
        return Err(invalid("dict_size", dict_size.to_string(), "1024 bytes to 16 MiB").into());
    }
    let tenant = authorize(tenant, "train_dictionary")?;
    Ok(privileged::run(|s| {
        let c = candidate(s, tenant, sample_rows, dict_size, false)?;
        save(s, tenant, &c)
    })?)
}

#[pg_extern(volatile, parallel_unsafe)]
fn drop_dictionary(id: Option<i32>) -> Result<bool, ErrorReport> {
    let id = required(id, "id")?;
    Ok(privileged::run(|s| dictionaries::remove(s, id))?)
}

// ---------------------------------------------------------------------------------------
// Policies
// ---------------------------------------------------------------------------------------

#[allow(clippy::too_many_arguments)]
#[pg_extern(volatile, parallel_unsafe)]
fn set_content_policy(
    tenant: default!(Option<Uuid>, "NULL"),
    warm_after: default!(Option<Interval>, "NULL"),
    cold_after: default!(Option<Interval>, "NULL"),
    archive_after: default!(Option<Interval>, "NULL"),
    cold_level: default!(Option<i32>, "NULL"),
    archive_level: default!(Option<i32>, "NULL"),
    retrain_every: default!(Option<Interval>, "NULL"),
    retrain_min_rows: default!(Option<i32>, "NULL"),
) -> Result<(), ErrorReport> {
    if let Some(t) = tenant {
        authorize(Some(t), "set_content_policy")?;
    }

    Ok(privileged::run(|s| {
        policies::set(
            s,
            tenant,
            warm_after,
            cold_after,
            archive_after,
            cold_level,
            archive_level,
            retrain_every,
            retrain_min_rows,
        )
    })?)
}

#[pg_extern(volatile, parallel_unsafe)]
fn reset_content_policy(tenant: Option<Uuid>) -> Result<bool, ErrorReport> {
    let tenant = required(tenant, "tenant")?;
    authorize(Some(tenant), "reset_content_policy")?;
    Ok(privileged::run(|s| policies::reset(s, tenant))?)
}

// ---------------------------------------------------------------------------------------
// Maintenance: garbage collection, tiering, retraining
// ---------------------------------------------------------------------------------------

#[pg_extern(volatile, parallel_unsafe)]
fn content_gc() -> Result<i64, ErrorReport> {
    Ok(privileged::run(gc)?)
}

#[pg_extern(volatile, parallel_unsafe)]
fn content_tier(batch: default!(Option<i32>, "NULL")) -> Result<i64, ErrorReport> {
    let batch = batch.unwrap_or_else(gucs::content_tier_batch);
    if batch < 1 {
        return Err(invalid("batch", batch.to_string(), "at least 1").into());
    }
    Ok(privileged::run(|s| tier_batch(s, batch))?)
}

#[pg_extern(volatile, parallel_unsafe)]
fn content_retrain() -> Result<i64, ErrorReport> {
    Ok(privileged::run(retrain)?)
}

#[pg_extern(volatile, parallel_unsafe)]
fn content_maintenance() -> Result<
    TableIterator<'static, (name!(removed, i64), name!(moved, i64), name!(trained, i64))>,
    ErrorReport,
> {
    let batch = gucs::content_tier_batch();
    let (removed, moved, trained) = privileged::run(|s| {
        let removed = gc(s)?;
        let trained = retrain(s)?;
        let moved = tier_batch(s, batch)?;
        Ok((removed, moved, trained))
    })?;
    Ok(TableIterator::once((removed, moved, trained)))
}

// ---------------------------------------------------------------------------------------
// Managed columns
// ---------------------------------------------------------------------------------------

/// The row trigger of a managed column. Arguments: the column, its hash column, the tenant
/// column ('' for none: the tenant context), and 'text' or 'bytea'.
#[pg_trigger]
fn content_managed<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByRust>>, std::convert::Infallible> {
    match managed_row(trigger) {
        Ok(row) => Ok(row),
        Err(e) => e.raise(),
    }
}

#[pg_extern(volatile, parallel_unsafe)]
fn manage_content(
    tbl: Option<PgRelation>,
    column: Option<Name>,
    tenant_column: default!(Option<Name>, "NULL"),
    migrate: default!(Option<bool>, true),
) -> Result<i64, ErrorReport> {
    let tbl = required(tbl, "tbl")?;
    crate::citus::refuse_shard(&tbl)?;
    let column = required(column, "column")?.0;
    let migrate = required(migrate, "migrate")?;

    Ok(managed::manage(tbl, column, tenant_column, migrate)?)
}

extension_sql_file!(
    "../sql/content.sql",
    name = "content_sql",
    requires = [
        "scheduler_sql",
        "tenant_sql",
        current_tenant,
        current_tenant_or_null,
        tenant_admin_active
    ]
);

extension_sql!(
    r#"
REVOKE EXECUTE ON FUNCTION floe.content_gc(), floe.content_tier(integer), floe.content_retrain(),
                           floe.content_maintenance() FROM PUBLIC;
COMMENT ON FUNCTION floe.compress(bytea, text, integer, integer) IS
  'floe content: compresses bytes into a self-describing floe frame (codec none, lz4 or zstd; level for zstd, -7 to 22; dictionary: the id of one of your tenant''s zstd dictionaries). A codec that does not shrink the bytes stores them as they are.';
COMMENT ON FUNCTION floe.compress(text, text, integer, integer) IS
  'floe content: compresses text into a floe frame (see floe.compress(bytea, ...)).';
COMMENT ON FUNCTION floe.decompress(bytea) IS
  'floe content: the bytes of a floe frame. A value that is not a floe frame raises 22P03; a damaged frame (truncated, altered, wrong dictionary) raises XX001.';
COMMENT ON FUNCTION floe.decompress_text(bytea) IS
  'floe content: the text of a floe frame (22021 if the bytes are not valid UTF-8).';
COMMENT ON FUNCTION floe.frame_info(bytea) IS
  'floe content: what a frame''s header says: format version, codec, dictionary id, raw size, stored size (the frame''s own length).';
COMMENT ON FUNCTION floe.content_put(bytea, uuid) IS
  'floe content: stores one reference to a body for the tenant (default: the current one) and returns its BLAKE3 hash. A body the tenant stored already is not stored twice: its reference count goes up.';
COMMENT ON FUNCTION floe.content_put(text, uuid) IS
  'floe content: floe.content_put() for text.';
COMMENT ON FUNCTION floe.content_get(bytea, uuid) IS
  'floe content: the body stored under this hash for the tenant (default: the current one), checked against its hash. NULL for a NULL hash.';
COMMENT ON FUNCTION floe.content_get_text(bytea, uuid) IS
  'floe content: floe.content_get() as text.';
COMMENT ON FUNCTION floe.content_release(bytea, uuid) IS
  'floe content: drops one reference to a body and returns the references left; a body at zero is removed after floe.content_gc_grace unless put again.';
COMMENT ON FUNCTION floe.similar_content(bytea, real, uuid, integer) IS
  'floe content: the tenant''s bodies most like this one by SimHash over 4-word shingles (similarity = 1 - differing bits / 64; unrelated texts score about 0.5), best first.';
COMMENT ON FUNCTION floe.train_dictionary(uuid, integer, integer) IS
  'floe content: trains a zstd dictionary over the tenant''s newest sample_rows bodies (at most dict_size bytes) and returns its id; the archive tier compresses with the newest one.';
COMMENT ON FUNCTION floe.drop_dictionary(integer) IS
  'floe content: drops one of your tenant''s dictionaries; refused (55000) while a stored body uses it. False if there is no such dictionary.';
COMMENT ON FUNCTION floe.set_content_policy(uuid, interval, interval, interval, integer, integer, interval, integer) IS
  'floe content: sets the tiering and retraining policy of a tenant (tenant NULL: the global policy, for the extension owner). Arguments left NULL keep their value (a tenant''s: the global one). A tier is switched off with a long interval such as ''100 years''.';
COMMENT ON FUNCTION floe.reset_content_policy(uuid) IS
  'floe content: removes a tenant''s own policy, so the global one applies. True if it had one.';
COMMENT ON FUNCTION floe.content_gc() IS
  'floe content: removes bodies without references for longer than floe.content_gc_grace, replaced dictionaries no body uses, and registrations of dropped tables. Returns the bodies removed.';
COMMENT ON FUNCTION floe.content_tier(integer) IS
  'floe content: moves up to batch (default floe.content_tier_batch) bodies to the tier their last read calls for; each is recompressed, verified by a round trip and swapped in this transaction. Returns the bodies moved.';
COMMENT ON FUNCTION floe.content_retrain() IS
  'floe content: trains a new dictionary for each tenant whose policy says it is due (retrain_every, retrain_min_rows) and that has archived bodies. Returns the dictionaries trained.';
COMMENT ON FUNCTION floe.content_maintenance() IS
  'floe content: floe.content_gc(), floe.content_retrain() and one floe.content_tier() batch; the built-in job floe.content_maintenance runs it every minute.';
COMMENT ON FUNCTION floe.content_managed() IS
  'floe content: row trigger of a managed column (floe.manage_content): moves the body into the store, keeps its hash, releases replaced and deleted bodies.';
COMMENT ON FUNCTION floe.manage_content(regclass, name, name, boolean) IS
  'floe content: keeps the bodies of a text or bytea column in the content store: adds <column>_hash, a trigger that stores each written body and clears the column, and the view <table>_with_<column> that reads the bodies back. tenant_column defaults to the table''s floe tenant column (else the tenant context); migrate moves the rows already there. Returns the rows moved.';
"#,
    name = "content_objects",
    requires = [
        "content_sql",
        compress,
        compress_text,
        decompress,
        decompress_text,
        frame_info,
        content_put,
        content_put_text,
        content_get,
        content_get_text,
        content_release,
        similar_content,
        train_dictionary,
        drop_dictionary,
        set_content_policy,
        reset_content_policy,
        content_gc,
        content_tier,
        content_retrain,
        content_maintenance,
        content_managed,
        manage_content
    ],
);
