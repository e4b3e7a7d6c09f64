//! The content store's SQL functions. Thin glue: the frame is `codec.rs`, signatures are
//! `simhash.rs`, tier and retraining decisions are `tier.rs`. Every statement on floe's
//! tables runs through `crate::privileged` (as the extension's owner, from saved plans) after
//! the tenant check of `crate::tenant::authorize`: a caller acts for the tenant of its
//! context, or for any tenant in admin mode.

use super::cache;
use super::codec::{self, Codec, CodecError, Dictionary, Spec};
use super::simhash;
use super::tier::{self, Policy, Retrain, Tier};
use crate::error::{invalid, required, ErrorReport, FloeError};
use crate::gucs;
use crate::health::checks::Check;
use crate::partition::plan::child_name;
use crate::privileged::{self, Session};
use crate::sqltypes::{interval, micros_of, to_pg_uuid as to_pg, to_uuid, Name, SECOND};
use crate::tenant::authorize;
use pgrx::datum::Interval;
use pgrx::prelude::*;
use pgrx::{PgRelation, Uuid};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

fn codec_error(e: CodecError) -> FloeError {
    let message = e.to_string();
    match e {
        CodecError::Foreign(_) => FloeError::InvalidBinary {
            message,
            hint: "floe.decompress() reads frames made by floe.compress() or stored by the content store.".into(),
        },
        CodecError::Corrupted(_) | CodecError::WrongDictionary { .. } => FloeError::Corrupted {
            message,
            hint: "The bytes changed after floe wrote them; restore them from a backup. floe.frame_info() shows what the header claims.".into(),
        },
        CodecError::UnknownCodec(name) => invalid("codec", name, "none, lz4 or zstd"),
        CodecError::BadLevel { level, .. } => invalid(
            "level",
            level.to_string(),
            "a zstd level from -7 (fastest) to 22 (smallest); 3 is zstd's default",
        ),
        CodecError::TooLarge(_) => FloeError::TooLarge {
            message,
            hint: "Store bodies under 1 GB, or split them.".into(),
        },
        CodecError::DictionaryNotSupported(_) => invalid(
            "dictionary",
            "given",
            "NULL unless codec is zstd",
        ),
        CodecError::Library(_) => FloeError::WrongState {
            message,
            hint: "A dictionary needs enough varied samples: train it over more bodies (sample_rows), or a smaller dict_size.".into(),
        },
    }
}

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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn no_body(hash: &[u8]) -> FloeError {
    FloeError::NotFound {
        kind: "content",
        name: format!("\\x{}", hex(hash)),
        hint: "Pass a hash floe.content_put() returned for this tenant; released bodies are removed after floe.content_gc_grace.".into(),
    }
}

// ---------------------------------------------------------------------------------------
// Dictionaries and policies
// ---------------------------------------------------------------------------------------

const DICTIONARY: &str = "SELECT tenant, data FROM floe.content_dictionaries WHERE id = $1";
const LATEST_DICTIONARY: &str = "SELECT max(id) FROM floe.content_dictionaries WHERE tenant = $1";

/// A loaded dictionary and its tenant.
type Cached = (uuid::Uuid, Rc<Dictionary>);

impl cache::Weigh for Cached {
    fn weight(&self) -> usize {
        self.1.memory()
    }
}

thread_local! {
    /// The backend's prepared dictionaries by (oid of schema floe, id): ids are never reused
    /// within an installation, and a dictionary never changes.
    static DICTIONARIES: RefCell<cache::Lru<(u32, i32), Cached>> =
        RefCell::new(cache::Lru::new(64, CACHE_BYTES));
}

/// Memory of prepared dictionaries a backend keeps. A level-19 encoder of a 512 KiB
/// dictionary is about 10 MiB (preparing it, tens of ms): the tiering, which works tenant by tenant,
/// keeps a dozen tenants' encoders from batch to batch.
const CACHE_BYTES: usize = 128 << 20;

fn schema_oid() -> u32 {
    // SAFETY: a syscache lookup by name; missing_ok.
    unsafe { pg_sys::get_namespace_oid(c"floe".as_ptr(), true) }.to_u32()
}

/// Dictionary `id` and its tenant (not checked against the caller: see the callers).
fn dictionary(s: &mut Session<'_, '_>, id: i32) -> Result<(uuid::Uuid, Rc<Dictionary>), FloeError> {
    let key = (schema_oid(), id);
    if let Some(hit) = DICTIONARIES.with_borrow_mut(|d| d.get(&key)) {
        return Ok(hit);
    }
    let rows = s.run(DICTIONARY, &[id.into()])?;
    if rows.is_empty() {
        return Err(FloeError::NotFound {
            kind: "dictionary",
            name: id.to_string(),
            hint: "floe.content_dictionaries lists the dictionaries of your tenant.".into(),
        });
    }
    let row = rows.first();
    let tenant = to_uuid(row.get::<Uuid>(1)?.ok_or_else(|| FloeError::Internal {
        message: format!("dictionary {id} has no tenant"),
    })?);
    let data = row.get::<Vec<u8>>(2)?.unwrap_or_default();
    let dict = Rc::new(
        Dictionary::new(id as u32, data).map_err(|e| FloeError::Corrupted {
            message: format!("dictionary {id}: {e}"),
            hint: "Restore floe.content_dictionaries from a backup.".into(),
        })?,
    );
    DICTIONARIES.with_borrow_mut(|d| d.insert(key, (tenant, dict.clone())));
    Ok((tenant, dict))
}

const POLICY: &str = "
    SELECT coalesce(t.warm_after, g.warm_after), coalesce(t.cold_after, g.cold_after),
           coalesce(t.archive_after, g.archive_after), coalesce(t.cold_level, g.cold_level),
           coalesce(t.archive_level, g.archive_level), coalesce(t.retrain_every, g.retrain_every),
           coalesce(t.retrain_min_rows, g.retrain_min_rows)
      FROM floe.content_policies g LEFT JOIN floe.content_policies t ON t.tenant = $1
     WHERE g.tenant IS NULL";

/// The effective policy of `tenant` (its own row over the global one).
fn policy(s: &mut Session<'_, '_>, tenant: uuid::Uuid) -> Result<(Policy, Retrain), FloeError> {
    let rows = s.run(POLICY, &[to_pg(tenant).into()])?;
    let (mut p, mut r) = (Policy::default(), Retrain::default());
    if rows.is_empty() {
        return Ok((p, r));
    }
    let row = rows.first();
    p.warm_after = micros_of(row.get::<Interval>(1)?).or(p.warm_after);
    p.cold_after = micros_of(row.get::<Interval>(2)?).or(p.cold_after);
    p.archive_after = micros_of(row.get::<Interval>(3)?).or(p.archive_after);
    p.cold_level = row.get::<i32>(4)?.unwrap_or(p.cold_level);
    p.archive_level = row.get::<i32>(5)?.unwrap_or(p.archive_level);
    r.every = micros_of(row.get::<Interval>(6)?).unwrap_or(r.every);
    r.min_rows = row.get::<i32>(7)?.map_or(r.min_rows, i64::from);
    Ok((p, r))
}

/// The id of the tenant's newest dictionary, if it has one.
fn latest_dictionary(
    s: &mut Session<'_, '_>,
    tenant: uuid::Uuid,
) -> Result<Option<i32>, FloeError> {
    Ok(s.run(LATEST_DICTIONARY, &[to_pg(tenant).into()])?
        .first()
        .get::<i32>(1)?)
}

/// Encodes a body for `tier`: archive uses the tenant's newest dictionary when it has one.
fn encode_for(
    s: &mut Session<'_, '_>,
    tenant: uuid::Uuid,
    tier: Tier,
    p: &Policy,
    raw: &[u8],
    hash: &blake3::Hash,
) -> Result<(Vec<u8>, Option<i32>), FloeError> {
    let dict = if tier == Tier::Archive {
        match latest_dictionary(s, tenant)? {
            Some(id) => Some(dictionary(s, id)?.1),
            None => None,
        }
    } else {
        None
    };
    let frame =
        codec::encode_hashed(raw, hash, p.spec(tier), dict.as_deref()).map_err(codec_error)?;
    let used = codec::info(&frame).map_err(codec_error)?.dictionary;
    Ok((frame, (used != 0).then_some(used as i32)))
}

/// Decodes a stored frame and checks it against its key.
fn decode_stored(
    s: &mut Session<'_, '_>,
    frame: &[u8],
    dict: Option<i32>,
    hash: &[u8],
) -> Result<Vec<u8>, FloeError> {
    let dict = match dict {
        Some(id) => Some(dictionary(s, id)?.1),
        None => None,
    };
    let (raw, got) = codec::decode_hashed(frame, dict.as_deref()).map_err(codec_error)?;
    if got.as_bytes() != hash {
        return Err(FloeError::Corrupted {
            message: format!("content \\x{} decodes to bytes of another hash", hex(hash)),
            hint: "The stored frame was altered; restore the row from a backup.".into(),
        });
    }
    Ok(raw)
}

// ---------------------------------------------------------------------------------------
// Codec functions
// ---------------------------------------------------------------------------------------

/// A dictionary for `compress`/`decompress`, which the caller's tenant must own.
fn usable_dictionary(s: &mut Session<'_, '_>, id: i32) -> Result<Rc<Dictionary>, FloeError> {
    let (tenant, dict) = dictionary(s, id)?;
    authorize(Some(to_pg(tenant)), &format!("dictionary {id}"))?;
    Ok(dict)
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

const BUMP: &str = "
    UPDATE floe.content SET refs = refs + 1, puts = puts + 1, released_at = NULL
     WHERE tenant = $1 AND hash = $2 RETURNING 1";
const INSERT: &str = "
    INSERT INTO floe.content AS c
           (tenant, hash, tier, codec, dictionary, raw_size, stored_size, refs, simhash, data)
    VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $9)
    ON CONFLICT (tenant, hash) DO UPDATE
       SET refs = c.refs + 1, puts = c.puts + 1, released_at = NULL";
const GET: &str = "
    SELECT data, dictionary, last_read < pg_catalog.now() - interval '1 day'
      FROM floe.content WHERE tenant = $1 AND hash = $2";
const TOUCH: &str = "
    UPDATE floe.content SET last_read = pg_catalog.now()
     WHERE tenant = $1 AND hash = $2 AND last_read < pg_catalog.now() - interval '1 day'";
const RELEASE: &str = "
    UPDATE floe.content
       SET refs = refs - 1,
           released_at = CASE WHEN refs = 1 THEN pg_catalog.now() ELSE released_at END
     WHERE tenant = $1 AND hash = $2 AND refs > 0
    RETURNING refs";
const EXISTS: &str = "SELECT refs FROM floe.content WHERE tenant = $1 AND hash = $2";

/// Stores one reference to `body` for `tenant` (already authorized); returns the hash.
fn put(s: &mut Session<'_, '_>, tenant: uuid::Uuid, body: &[u8]) -> Result<Vec<u8>, FloeError> {
    if body.len() > codec::MAX_RAW {
        return Err(codec_error(CodecError::TooLarge(body.len())));
    }
    let hash = blake3::hash(body);
    let key = hash.as_bytes().to_vec();
    let pg_tenant = to_pg(tenant);
    if !s
        .run(BUMP, &[pg_tenant.into(), key.as_slice().into()])?
        .is_empty()
    {
        return Ok(key);
    }
    let (p, _) = policy(s, tenant)?;
    let tier = p.tier_for(0);
    let (frame, dict) = encode_for(s, tenant, tier, &p, body, &hash)?;
    let codec = codec::info(&frame).map_err(codec_error)?.codec;
    s.run(
        INSERT,
        &[
            pg_tenant.into(),
            key.as_slice().into(),
            tier.name().into(),
            codec.name().into(),
            dict.into(),
            (body.len() as i32).into(),
            (frame.len() as i32).into(),
            (simhash::signature(body) as i64).into(),
            frame.as_slice().into(),
        ],
    )?;
    Ok(key)
}

/// One more reference to a body that is in the store already.
fn add_ref(s: &mut Session<'_, '_>, tenant: uuid::Uuid, hash: &[u8]) -> Result<(), FloeError> {
    if s.run(BUMP, &[to_pg(tenant).into(), hash.into()])?
        .is_empty()
    {
        return Err(no_body(hash));
    }
    Ok(())
}

fn release(s: &mut Session<'_, '_>, tenant: uuid::Uuid, hash: &[u8]) -> Result<i64, FloeError> {
    let pg_tenant = to_pg(tenant);
    let left = s.run(RELEASE, &[pg_tenant.into(), hash.into()])?;
    if !left.is_empty() {
        return Ok(left.first().get::<i64>(1)?.unwrap_or(0));
    }
    if s.run(EXISTS, &[pg_tenant.into(), hash.into()])?.is_empty() {
        return Err(no_body(hash));
    }
    Err(FloeError::WrongState {
        message: format!("content \\x{} has no references left to release", hex(hash)),
        hint:
            "Each floe.content_put() is released once; it is removed after floe.content_gc_grace."
                .into(),
    })
}

fn get(tenant: Option<Uuid>, hash: &[u8]) -> Result<Vec<u8>, FloeError> {
    let tenant = authorize(tenant, "content_get")?;
    privileged::run(|s| {
        let pg_tenant = to_pg(tenant);
        let rows = s.run(GET, &[pg_tenant.into(), hash.into()])?;
        if rows.is_empty() {
            return Err(no_body(hash));
        }
        let row = rows.first();
        let frame = row.get::<&[u8]>(1)?.unwrap_or_default().to_vec();
        let dict = row.get::<i32>(2)?;
        let stale = row.get::<bool>(3)?.unwrap_or(false);
        let raw = decode_stored(s, &frame, dict, hash)?;
        // last_read moves at most once a day, and never where nothing can be written.
        // SAFETY: reads backend globals.
        let writable = unsafe { !pg_sys::RecoveryInProgress() && !pg_sys::XactReadOnly };
        if stale && writable {
            s.run(TOUCH, &[pg_tenant.into(), hash.into()])?;
        }
        Ok(raw)
    })
}

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

const SIMILAR_BASE: &str = "SELECT simhash FROM floe.content WHERE tenant = $1 AND hash = $2";
const SIMILAR: &str = "
    SELECT c.hash, x.similarity, c.raw_size, c.tier
      FROM floe.content c,
           LATERAL (SELECT (1 - pg_catalog.bit_count(pg_catalog.int8send(c.simhash # $3))::real / 64)::real
                           AS similarity) x
     WHERE c.tenant = $1 AND c.hash <> $2 AND c.refs > 0 AND x.similarity >= $4
     ORDER BY x.similarity DESC, c.hash
     LIMIT $5";

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
    let rows = privileged::run(|s| {
        let pg_tenant = to_pg(tenant);
        let base = s.run(SIMILAR_BASE, &[pg_tenant.into(), hash.into()])?;
        if base.is_empty() {
            return Err(no_body(hash));
        }
        let sig = base.first().get::<i64>(1)?.unwrap_or(0);
        let found = s.run(
            SIMILAR,
            &[
                pg_tenant.into(),
                hash.into(),
                sig.into(),
                min.into(),
                limit.into(),
            ],
        )?;
        let mut out = Vec::new();
        for row in found {
            out.push((
                row.get::<Vec<u8>>(1)?.unwrap_or_default(),
                row.get::<f32>(2)?.unwrap_or(0.0),
                row.get::<i32>(3)?.unwrap_or(0),
                row.get::<String>(4)?.unwrap_or_default(),
            ));
        }
        Ok(out)
    })?;
    Ok(TableIterator::new(rows))
}

// ---------------------------------------------------------------------------------------
// Dictionaries
// ---------------------------------------------------------------------------------------

const SAMPLES: &str = "
    SELECT hash, data, dictionary FROM floe.content
     WHERE tenant = $1 ORDER BY created_at DESC LIMIT $2";
const SAVE_DICTIONARY: &str = "
    INSERT INTO floe.content_dictionaries (tenant, samples, sample_bytes, size, data)
    VALUES ($1, $2, $3, $4, $5) RETURNING id";
/// `floe.train_dictionary()`'s defaults (spelled out again in its `default!`s), which the
/// retraining job uses too.
/// Measured on the bench corpus: 512 KiB over 4000 bodies stores archive frames 4-11 % smaller
/// than 112 640 bytes (zstd's CLI default) over 1000, and trains in about 2.5 s per tenant;
/// 1 MiB gains under 1 % more.
const SAMPLE_ROWS: i32 = 4000;
const DICT_SIZE: i32 = 524_288;
/// Most bytes handed to the trainer (zstd suggests about 100 times the dictionary size).
const MAX_SAMPLE_BYTES: usize = 256 << 20;

const MARK_CHECKED: &str =
    "UPDATE floe.content_dictionaries SET checked_at = pg_catalog.now() WHERE id = $1";

/// A trained dictionary not saved yet, and the bodies held out of its training.
struct Candidate {
    /// Loaded once: zstd can use what it made before anyone depends on it.
    dict: Dictionary,
    samples: i32,
    sample_bytes: i64,
    held: Vec<Vec<u8>>,
}

/// Trains a dictionary over the tenant's newest `sample_rows` bodies (decoded up to
/// MAX_SAMPLE_BYTES; only the text ones when text is the bulk of them, as attachments would
/// dilute a dictionary meant for the mail). With `hold_out`, every tenth body is kept out of
/// the training to judge the result by.
fn candidate(
    s: &mut Session<'_, '_>,
    tenant: uuid::Uuid,
    sample_rows: i32,
    dict_size: i32,
    hold_out: bool,
) -> Result<Candidate, FloeError> {
    let rows = s.run(SAMPLES, &[to_pg(tenant).into(), sample_rows.into()])?;
    let mut stored = Vec::new();
    for row in rows {
        stored.push((
            row.get::<Vec<u8>>(1)?.unwrap_or_default(),
            row.get::<Vec<u8>>(2)?.unwrap_or_default(),
            row.get::<i32>(3)?,
        ));
    }
    let mut bodies = Vec::with_capacity(stored.len());
    let mut decoded = 0usize;
    for (hash, frame, dict) in stored {
        let raw = decode_stored(s, &frame, dict, &hash)?;
        decoded += raw.len();
        bodies.push(raw);
        if decoded >= MAX_SAMPLE_BYTES {
            break;
        }
    }
    let text: Vec<bool> = bodies
        .iter()
        .map(|b| std::str::from_utf8(b).is_ok())
        .collect();
    if tier::train_on_text_only(text.iter().filter(|t| **t).count(), bodies.len()) {
        // retain visits the bodies once each, in order.
        let mut keep = text.into_iter();
        bodies.retain(|_| keep.next().unwrap_or(false));
    }
    let mut samples = Vec::with_capacity(bodies.len());
    let mut held = Vec::new();
    let mut total = 0usize;
    for (i, raw) in bodies.into_iter().enumerate() {
        if hold_out && tier::held_out(i) {
            held.push(raw);
            continue;
        }
        total += raw.len();
        samples.push(raw);
    }
    if samples.len() < 8 || total < 4 * 1024 {
        return Err(FloeError::WrongState {
            message: format!(
                "tenant {tenant} has too little content to train a dictionary ({} bodies, {total} bytes)",
                samples.len()
            ),
            hint: "Train once the tenant has stored at least a few hundred bodies.".into(),
        });
    }
    // zstd wants far more sample bytes than dictionary bytes: dict_size is a maximum.
    let size = (dict_size as usize).min((total / 8).max(1024));
    let bytes = codec::train(&samples, size).map_err(codec_error)?;
    Ok(Candidate {
        dict: Dictionary::new(1, bytes).map_err(codec_error)?,
        samples: samples.len() as i32,
        sample_bytes: total as i64,
        held,
    })
}

/// Saves a candidate as the tenant's newest dictionary; returns its id.
fn save(s: &mut Session<'_, '_>, tenant: uuid::Uuid, c: &Candidate) -> Result<i32, FloeError> {
    let id = s
        .run(
            SAVE_DICTIONARY,
            &[
                to_pg(tenant).into(),
                c.samples.into(),
                c.sample_bytes.into(),
                (c.dict.bytes.len() as i32).into(),
                c.dict.bytes.as_slice().into(),
            ],
        )?
        .first()
        .get::<i32>(1)?;
    id.ok_or_else(|| FloeError::Internal {
        message: "saving the dictionary returned no id".into(),
    })
}

/// Whether a candidate stores its held-out bodies at least [`tier::MIN_GAIN_PERCENT`]
/// smaller than dictionary `current` at zstd `level`.
fn beats(
    s: &mut Session<'_, '_>,
    c: &Candidate,
    current: i32,
    level: i32,
) -> Result<bool, FloeError> {
    let old = dictionary(s, current)?.1;
    let spec = Spec::new(Codec::Zstd, level).map_err(codec_error)?;
    let (mut new_bytes, mut old_bytes) = (0u64, 0u64);
    for raw in &c.held {
        new_bytes += codec::encode(raw, spec, Some(&c.dict))
            .map_err(codec_error)?
            .len() as u64;
        old_bytes += codec::encode(raw, spec, Some(&old))
            .map_err(codec_error)?
            .len() as u64;
    }
    Ok(tier::worth_replacing(new_bytes, old_bytes))
}

/// The retraining of one tenant: a tenant without a dictionary gets one; a tenant with one
/// gets the new one only if it [`beats`] the current one at the archive level, else the
/// current one is marked checked. Whether a dictionary was saved.
fn retrain_tenant(
    s: &mut Session<'_, '_>,
    tenant: uuid::Uuid,
    archive_level: i32,
) -> Result<bool, FloeError> {
    let current = latest_dictionary(s, tenant)?;
    let c = candidate(s, tenant, SAMPLE_ROWS, DICT_SIZE, current.is_some())?;
    if let Some(current) = current {
        if !beats(s, &c, current, archive_level)? {
            s.run(MARK_CHECKED, &[current.into()])?;
            return Ok(false);
        }
    }
    save(s, tenant, &c)?;
    Ok(true)
}

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

const DICTIONARY_USE: &str = "
    SELECT d.tenant, (SELECT count(*) FROM floe.content c WHERE c.dictionary = d.id)
      FROM floe.content_dictionaries d WHERE d.id = $1";
const DROP_DICTIONARY: &str = "DELETE FROM floe.content_dictionaries WHERE id = $1";

#[pg_extern(volatile, parallel_unsafe)]
fn drop_dictionary(id: Option<i32>) -> Result<bool, ErrorReport> {
    let id = required(id, "id")?;
    Ok(privileged::run(|s| {
        let rows = s.run(DICTIONARY_USE, &[id.into()])?;
        if rows.is_empty() {
            return Ok(false);
        }
        let row = rows.first();
        let tenant = row.get::<Uuid>(1)?;
        let users = row.get::<i64>(2)?.unwrap_or(0);
        authorize(tenant, &format!("dropping dictionary {id}"))?;
        if users > 0 {
            return Err(FloeError::WrongState {
                message: format!("dictionary {id} is used by {users} stored bodies"),
                hint: "A dictionary is dropped only when no body needs it: floe.content_maintenance() drops replaced, unused dictionaries by itself.".into(),
            });
        }
        s.run(DROP_DICTIONARY, &[id.into()])?;
        Ok(true)
    })?)
}

// ---------------------------------------------------------------------------------------
// Policies
// ---------------------------------------------------------------------------------------

const EXTENSION_OWNER_CHECK: &str = "
    SELECT pg_catalog.pg_has_role($1, e.extowner, 'USAGE')
      FROM pg_catalog.pg_extension e WHERE e.extname = 'floe'";
const UPDATE_POLICY: &str = "
    UPDATE floe.content_policies AS p SET
        warm_after = coalesce($2, p.warm_after), cold_after = coalesce($3, p.cold_after),
        archive_after = coalesce($4, p.archive_after), cold_level = coalesce($5, p.cold_level),
        archive_level = coalesce($6, p.archive_level), retrain_every = coalesce($7, p.retrain_every),
        retrain_min_rows = coalesce($8, p.retrain_min_rows)
     WHERE p.tenant IS NOT DISTINCT FROM $1
    RETURNING 1";
/// A tenant's first policy row (the global one always exists: the install script makes it).
const INSERT_POLICY: &str =
    "INSERT INTO floe.content_policies VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
const RESET_POLICY: &str = "DELETE FROM floe.content_policies WHERE tenant = $1 RETURNING 1";

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
        if tenant.is_none() {
            let caller = s.caller;
            let ok = s
                .run(EXTENSION_OWNER_CHECK, &[caller.into()])?
                .first()
                .get::<bool>(1)?
                .unwrap_or(false);
            if !ok {
                return Err(FloeError::PermissionDenied {
                    message: "only the owner of extension floe sets the global content policy".into(),
                    detail: None,
                    hint: "Set your tenant's policy: floe.set_content_policy(tenant => floe.current_tenant(), ...).".into(),
                });
            }
        }
        let args = [
            tenant.into(),
            warm_after.into(),
            cold_after.into(),
            archive_after.into(),
            cold_level.into(),
            archive_level.into(),
            retrain_every.into(),
            retrain_min_rows.into(),
        ];
        if s.run(UPDATE_POLICY, &args)?.is_empty() {
            s.run(INSERT_POLICY, &args)?;
        }
        // The result must be a valid policy for the tenant (or every tenant).
        let check: Vec<uuid::Uuid> = match tenant {
            Some(t) => vec![to_uuid(t)],
            None => vec![uuid::Uuid::nil()],
        };
        for t in check {
            let (p, _) = policy(s, t)?;
            p.validate().map_err(|e| FloeError::InvalidArgument {
                argument: "policy",
                value: e.to_string(),
                expected: "warm_after <= cold_after <= archive_after, and zstd levels from -7 to 22 (switch a tier off with a long interval such as '100 years')".into(),
            })?;
        }
        Ok(())
    })?)
}

#[pg_extern(volatile, parallel_unsafe)]
fn reset_content_policy(tenant: Option<Uuid>) -> Result<bool, ErrorReport> {
    let tenant = required(tenant, "tenant")?;
    authorize(Some(tenant), "reset_content_policy")?;
    Ok(privileged::run(|s| {
        Ok(!s.run(RESET_POLICY, &[tenant.into()])?.is_empty())
    })?)
}

// ---------------------------------------------------------------------------------------
// Maintenance: garbage collection, tiering, retraining
// ---------------------------------------------------------------------------------------

const GC: &str = "
    DELETE FROM floe.content
     WHERE refs = 0 AND released_at < pg_catalog.now() - $1::pg_catalog.interval";
const GC_DICTIONARIES: &str = "
    DELETE FROM floe.content_dictionaries d
     WHERE d.id < (SELECT max(x.id) FROM floe.content_dictionaries x WHERE x.tenant = d.tenant)
       AND NOT EXISTS (SELECT FROM floe.content c WHERE c.dictionary = d.id)";
const GC_COLUMNS: &str = "
    DELETE FROM floe.content_columns m
     WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid = m.relid::oid)";

/// `floe.content_gc_grace` as an interval argument.
fn gc_grace() -> pgrx::datum::Interval {
    interval(i64::from(gucs::content_gc_grace_secs()) * SECOND)
}

fn gc(s: &mut Session<'_, '_>) -> Result<i64, FloeError> {
    let removed = s.run(GC, &[gc_grace().into()])?.len() as i64;
    s.run(GC_DICTIONARIES, &[])?;
    s.run(GC_COLUMNS, &[])?;
    Ok(removed)
}

/// Bodies whose last read calls for another tier first, then archived zstd bodies not on
/// their tenant's newest dictionary (so that a replaced dictionary falls out of use and
/// `content_gc` can drop it). A body stored as it is (incompressible) stays as it is.
const TIER_CANDIDATES: &str = "
    WITH x AS (SELECT * FROM floe.content_tier_targets),
         n AS (SELECT tenant, max(id) AS id FROM floe.content_dictionaries GROUP BY tenant)
    SELECT c.tenant, c.hash, x.target
      FROM x JOIN floe.content c ON c.tenant = x.tenant AND c.hash = x.hash
      LEFT JOIN n ON n.tenant = x.tenant
     WHERE x.target <> x.tier
        OR (x.target = 'archive' AND c.codec = 'zstd' AND n.id IS NOT NULL
            AND c.dictionary IS DISTINCT FROM n.id)
     ORDER BY x.target = x.tier, x.last_read
     LIMIT $1
       FOR UPDATE OF c SKIP LOCKED";
const TIER_ROW: &str = "
    SELECT data, dictionary FROM floe.content WHERE tenant = $1 AND hash = $2";
const TIER_SWAP: &str = "
    UPDATE floe.content SET tier = $3, codec = $4, dictionary = $5, stored_size = $6, data = $7
     WHERE tenant = $1 AND hash = $2";

/// Moves up to `batch` bodies to the tier their last read calls for: each is decoded and
/// checked against its key, encoded for the new tier, decoded again and compared, and
/// swapped in (all in the caller's transaction). A body that fails its checks is left
/// where it is, with a WARNING.
fn tier_batch(s: &mut Session<'_, '_>, batch: i32) -> Result<i64, FloeError> {
    let rows = s.run(TIER_CANDIDATES, &[batch.into()])?;
    let mut todo = Vec::new();
    for row in rows {
        let tenant = row.get::<Uuid>(1)?.map(to_uuid);
        let hash = row.get::<Vec<u8>>(2)?;
        let target = row.get::<String>(3)?.as_deref().and_then(Tier::parse);
        if let (Some(t), Some(h), Some(target)) = (tenant, hash, target) {
            todo.push((t, h, target));
        }
    }
    // Tenant by tenant: each tenant's dictionary is prepared once per batch at most.
    todo.sort_by_key(|(t, _, _)| *t);
    let mut policies: HashMap<uuid::Uuid, Policy> = HashMap::new();
    let mut moved = 0;
    for (tenant, hash, target) in todo {
        let pg_tenant = to_pg(tenant);
        let row = s.run(TIER_ROW, &[pg_tenant.into(), hash.as_slice().into()])?;
        if row.is_empty() {
            continue;
        }
        let row = row.first();
        let frame = row.get::<Vec<u8>>(1)?.unwrap_or_default();
        let dict = row.get::<i32>(2)?;
        let raw = match decode_stored(s, &frame, dict, &hash) {
            Ok(raw) => raw,
            Err(e) => {
                pgrx::warning!(
                    "floe content: not moving \\x{} of tenant {tenant}: {e}",
                    hex(&hash)
                );
                continue;
            }
        };
        let p = match policies.get(&tenant) {
            Some(p) => *p,
            None => {
                let (p, _) = policy(s, tenant)?;
                policies.insert(tenant, p);
                p
            }
        };
        let key = blake3::Hash::from_bytes(hash.as_slice().try_into().map_err(|_| {
            FloeError::Internal {
                message: "a stored hash is not 32 bytes".into(),
            }
        })?);
        let (new_frame, new_dict) = encode_for(s, tenant, target, &p, &raw, &key)?;
        // The round trip: what will be stored must give back the same bytes.
        if decode_stored(s, &new_frame, new_dict, &hash)? != raw {
            return Err(FloeError::Internal {
                message: format!("recompressing \\x{} did not round-trip", hex(&hash)),
            });
        }
        let codec = codec::info(&new_frame).map_err(codec_error)?.codec;
        s.run(
            TIER_SWAP,
            &[
                pg_tenant.into(),
                hash.as_slice().into(),
                target.name().into(),
                codec.name().into(),
                new_dict.into(),
                (new_frame.len() as i32).into(),
                new_frame.as_slice().into(),
            ],
        )?;
        moved += 1;
    }
    Ok(moved)
}

const RETRAIN_FACTS: &str = "
    WITH d AS (SELECT DISTINCT ON (tenant) tenant, id,
                      greatest(trained_at, checked_at) AS trained_at
                 FROM floe.content_dictionaries ORDER BY tenant, id DESC)
    SELECT c.tenant, count(*), max(d.id),
           count(*) FILTER (WHERE c.created_at > d.trained_at),
           (extract(epoch FROM pg_catalog.now() - max(d.trained_at)) * 1000000)::bigint
      FROM floe.content c LEFT JOIN d ON d.tenant = c.tenant
     GROUP BY c.tenant
    HAVING count(*) FILTER (WHERE c.tier = 'archive') > 0";

fn retrain(s: &mut Session<'_, '_>) -> Result<i64, FloeError> {
    let rows = s.run(RETRAIN_FACTS, &[])?;
    let mut due = Vec::new();
    for row in rows {
        let Some(tenant) = row.get::<Uuid>(1)?.map(to_uuid) else {
            continue;
        };
        let count = row.get::<i64>(2)?.unwrap_or(0);
        let has = row.get::<i32>(3)?.is_some();
        let since = row.get::<i64>(4)?.unwrap_or(0);
        let age = row.get::<i64>(5)?.unwrap_or(0);
        due.push((tenant, count, has.then_some(since), age));
    }
    let mut trained = 0;
    for (tenant, count, since, age) in due {
        let (p, r) = policy(s, tenant)?;
        if r.due(count, since, age) {
            match crate::subxact::try_run(|| retrain_tenant(s, tenant, p.archive_level)) {
                Ok(Ok(true)) => trained += 1,
                Ok(Ok(false)) => {}
                Ok(Err(e)) => {
                    pgrx::warning!("floe content: training a dictionary for tenant {tenant}: {e}")
                }
                Err(caught) => pgrx::warning!(
                    "floe content: training a dictionary for tenant {tenant}: {}",
                    caught.message
                ),
            }
        }
    }
    Ok(trained)
}

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

fn managed_row<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByRust>>, FloeError> {
    let misuse = |why: &str| FloeError::WrongState {
        message: format!(
            "floe.content_managed on {}.{}: {why}",
            trigger.table_schema().unwrap_or_default(),
            trigger.table_name().unwrap_or_default()
        ),
        hint: "Create the trigger with floe.manage_content(), not by hand.".into(),
    };
    let args = trigger.extra_args().map_err(|_| misuse("no arguments"))?;
    let [column, hash_column, tenant_column, kind] = args.as_slice() else {
        return Err(misuse("it needs four arguments"));
    };
    let is_text = kind == "text";
    let tenant_of =
        |row: &PgHeapTuple<'_, AllocatedByPostgres>| -> Result<Option<Uuid>, FloeError> {
            if tenant_column.is_empty() {
                return Ok(None);
            }
            row.get_by_name::<Uuid>(tenant_column)
                .map_err(|_| misuse(&format!("\"{tenant_column}\" is not a uuid column")))
        };
    let body_of =
        |row: &PgHeapTuple<'_, AllocatedByPostgres>| -> Result<Option<Vec<u8>>, FloeError> {
            if is_text {
                row.get_by_name::<String>(column)
                    .map(|v| v.map(String::into_bytes))
            } else {
                row.get_by_name::<&[u8]>(column)
                    .map(|v| v.map(<[u8]>::to_vec))
            }
            .map_err(|_| misuse(&format!("cannot read \"{column}\"")))
        };
    let hash_of =
        |row: &PgHeapTuple<'_, AllocatedByPostgres>| -> Result<Option<Vec<u8>>, FloeError> {
            row.get_by_name::<&[u8]>(hash_column)
                .map(|v| v.map(<[u8]>::to_vec))
                .map_err(|_| misuse(&format!("\"{hash_column}\" is not a bytea column")))
        };
    let op = trigger.op().map_err(|_| misuse("unknown operation"))?;
    match op {
        PgTriggerOperation::Delete => {
            let old = trigger
                .old()
                .ok_or_else(|| misuse("it must be a row trigger"))?;
            if let Some(hash) = hash_of(&old)? {
                let tenant = authorize(tenant_of(&old)?, "releasing content")?;
                privileged::run(|s| release(s, tenant, &hash).map(|_| ()))?;
            }
            Ok(Some(old.into_owned()))
        }
        PgTriggerOperation::Insert | PgTriggerOperation::Update => {
            let new = trigger
                .new()
                .ok_or_else(|| misuse("it must be a row trigger"))?;
            let old = trigger.old();
            let old_hash = match &old {
                Some(o) => hash_of(o)?,
                None => None,
            };
            let body = body_of(&new)?;
            let new_hash = hash_of(&new)?;
            let tenant = tenant_of(&new)?;
            if body.is_none() && new_hash == old_hash {
                return Ok(Some(new.into_owned()));
            }
            let tenant = authorize(tenant, "storing content")?;
            let stored = privileged::run(|s| {
                let stored = match &body {
                    Some(b) => Some(put(s, tenant, b)?),
                    None => {
                        // The hash column was set directly: one more reference to that body.
                        if let Some(h) = &new_hash {
                            add_ref(s, tenant, h)?;
                        }
                        new_hash.clone()
                    }
                };
                if let Some(h) = &old_hash {
                    let old_tenant = match &old {
                        Some(o) => authorize(tenant_of(o)?, "releasing content")?,
                        None => tenant,
                    };
                    release(s, old_tenant, h)?;
                }
                Ok(stored)
            })?;
            let mut row = new.into_owned();
            if body.is_some() {
                row.set_by_name(hash_column, stored)
                    .map_err(|_| misuse(&format!("cannot set \"{hash_column}\"")))?;
                if is_text {
                    row.set_by_name(column, Option::<String>::None)
                } else {
                    row.set_by_name(column, Option::<Vec<u8>>::None)
                }
                .map_err(|_| misuse(&format!("cannot clear \"{column}\"")))?;
            }
            Ok(Some(row))
        }
        _ => Err(misuse("it must be an INSERT, UPDATE or DELETE trigger")),
    }
}

const COLUMN_TYPE: &str = "
    SELECT a.atttypid::regtype::text, a.attnum
      FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = $1 AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped";
const TENANT_COLUMN: &str =
    "SELECT tenant_column::text FROM floe.tenant_tables WHERE relid = $1::regclass";
const COLUMNS: &str = "
    SELECT a.attname::text FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum";
const REGISTER_COLUMN: &str = "
    INSERT INTO floe.content_columns (relid, column_name, hash_column, tenant_column, view)
    VALUES ($1::regclass, $2, $3, $4, $5::regclass)
    ON CONFLICT (relid, column_name) DO UPDATE
       SET hash_column = EXCLUDED.hash_column, tenant_column = EXCLUDED.tenant_column,
           view = EXCLUDED.view";

fn column_type(
    s: &mut Session<'_, '_>,
    rel: pg_sys::Oid,
    column: &str,
) -> Result<Option<String>, FloeError> {
    let rows = s.run(COLUMN_TYPE, &[rel.into(), column.into()])?;
    if rows.is_empty() {
        return Ok(None);
    }
    Ok(rows.first().get::<String>(1)?)
}

fn quote(ident: &str) -> String {
    pgrx::spi::quote_identifier(ident)
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
    let rel = tbl.oid();
    let schema = tbl.namespace().to_string();
    let table = tbl.name().to_string();
    let qualified = format!("{}.{}", quote(&schema), quote(&table));
    // SAFETY: reads the relation's kind from the open relation.
    let kind = unsafe { (*tbl.rd_rel).relkind } as u8;
    // Close it now: ALTER TABLE refuses a table this session holds open.
    drop(tbl);
    if kind != b'r' && kind != b'p' {
        return Err(FloeError::WrongObjectType {
            message: format!("{qualified} is not a table"),
            hint:
                "floe.manage_content() keeps the bodies of a table's column in the content store."
                    .into(),
        }
        .into());
    }
    let hash_column = child_name(&column, "hash");
    let (kind, tenant_column, columns) = privileged::run(|s| {
        let kind = match column_type(s, rel, &column)?.as_deref() {
            None => {
                return Err(FloeError::UndefinedColumn {
                    table: qualified.clone(),
                    column: column.clone(),
                    hint: "Name the column that holds the bodies.".into(),
                })
            }
            Some("text") | Some("character varying") => "text",
            Some("bytea") => "bytea",
            Some(other) => {
                return Err(invalid(
                    "column",
                    format!("{column} of type {other}"),
                    "a text, varchar or bytea column",
                ))
            }
        };
        let tenant_column = match &tenant_column {
            Some(c) => Some(c.0.clone()),
            None => {
                let rows = s.run(TENANT_COLUMN, &[rel.into()])?;
                if rows.is_empty() {
                    None
                } else {
                    rows.first().get::<String>(1)?
                }
            }
        };
        if let Some(tc) = &tenant_column {
            if column_type(s, rel, tc)?.as_deref() != Some("uuid") {
                return Err(FloeError::UndefinedColumn {
                    table: qualified.clone(),
                    column: tc.clone(),
                    hint: "tenant_column must name a uuid column (leave it out to use the tenant context).".into(),
                });
            }
        }
        match column_type(s, rel, &hash_column)?.as_deref() {
            None | Some("bytea") => {}
            Some(other) => {
                return Err(FloeError::WrongState {
                    message: format!("{qualified} has a column \"{hash_column}\" of type {other}"),
                    hint: "floe.manage_content() keeps each body's hash in <column>_hash (bytea): rename that column.".into(),
                })
            }
        }
        let mut columns = Vec::new();
        for row in s.run(COLUMNS, &[rel.into()])? {
            columns.extend(row.get::<String>(1)?);
        }
        Ok((kind, tenant_column, columns))
    })?;

    // DDL as the caller: Postgres checks that the caller owns the table.
    let trigger = child_name("floe_content", &column);
    let view = child_name(&table, &format!("with_{column}"));
    let getter = if kind == "text" {
        "content_get_text"
    } else {
        "content_get"
    };
    let tenant_arg = tenant_column
        .as_ref()
        .map(|tc| format!(", tenant => t.{}", quote(tc)))
        .unwrap_or_default();
    let select: Vec<String> = columns
        .iter()
        .filter(|c| **c != hash_column)
        .map(|c| {
            if *c == column {
                format!(
                    "floe.{getter}(t.{}{tenant_arg}) AS {}",
                    quote(&hash_column),
                    quote(c)
                )
            } else {
                format!("t.{}", quote(c))
            }
        })
        .collect();
    let literal = |s: &str| pgrx::spi::quote_literal(s);
    let ddl = [
        format!("ALTER TABLE {qualified} ADD COLUMN IF NOT EXISTS {} bytea", quote(&hash_column)),
        format!(
            "CREATE OR REPLACE TRIGGER {} BEFORE INSERT OR UPDATE OR DELETE ON {qualified} FOR EACH ROW \
             EXECUTE FUNCTION floe.content_managed({}, {}, {}, {})",
            quote(&trigger),
            literal(&column),
            literal(&hash_column),
            literal(tenant_column.as_deref().unwrap_or("")),
            literal(kind)
        ),
        format!(
            "CREATE OR REPLACE VIEW {}.{} WITH (security_invoker = true) AS SELECT {} FROM {qualified} t",
            quote(&schema),
            quote(&view),
            select.join(", ")
        ),
    ];
    // On a Citus table, Citus copies the trigger (with its arguments) to every shard: the
    // bodies of a shard's rows are kept in the store of the node that holds it.
    crate::citus::with_unsafe_triggers(|| {
        for stmt in &ddl {
            Spi::run(stmt)?;
        }
        Ok(())
    })?;
    let view_name = format!("{}.{}", quote(&schema), quote(&view));
    privileged::run(|s| {
        s.run(
            REGISTER_COLUMN,
            &[
                rel.into(),
                column.as_str().into(),
                hash_column.as_str().into(),
                tenant_column.as_deref().into(),
                view_name.as_str().into(),
            ],
        )?;
        Ok(())
    })?;
    if !migrate {
        return Ok(0);
    }
    let moved = Spi::get_one::<i64>(&format!(
        "WITH m AS (UPDATE {qualified} SET {c} = {c} WHERE {c} IS NOT NULL RETURNING 1) SELECT count(*) FROM m",
        c = quote(&column)
    ))
    .map_err(FloeError::from)?
    .unwrap_or(0);
    Ok(moved)
}

// ---------------------------------------------------------------------------------------
// Health
// ---------------------------------------------------------------------------------------

const BACKLOG: &str = "
    SELECT (SELECT count(*) FROM floe.content
             WHERE refs = 0 AND released_at < pg_catalog.now() - $1::pg_catalog.interval - interval '1 hour'),
           (SELECT count(*) FROM floe.content_tier_targets x
             WHERE x.target <> x.tier
               AND x.last_read + CASE x.target WHEN 'archive' THEN x.archive_after
                                               WHEN 'cold' THEN x.cold_after
                                               WHEN 'warm' THEN x.warm_after
                                               ELSE interval '0' END
                   < pg_catalog.now() - interval '1 hour')";

pub fn health_checks() -> Result<Vec<Check>, FloeError> {
    let (gc_late, tier_late) = privileged::run(|s| {
        let row = s.run(BACKLOG, &[gc_grace().into()])?;
        let row = row.first();
        Ok((
            row.get::<i64>(1)?.unwrap_or(0),
            row.get::<i64>(2)?.unwrap_or(0),
        ))
    })?;
    let gc = if gc_late == 0 {
        Check::ok(
            "content.gc_backlog",
            "no released body is overdue for removal".into(),
        )
    } else {
        Check::warn(
            "content.gc_backlog",
            format!("{gc_late} released bodies are more than an hour past floe.content_gc_grace"),
            "Is the scheduler running floe.content_maintenance? Run SELECT floe.content_gc(); and look at floe.job_runs.",
        )
    };
    let tiering = if tier_late == 0 {
        Check::ok(
            "content.tiering_backlog",
            "every body is in the tier its last read calls for".into(),
        )
    } else {
        Check::warn(
            "content.tiering_backlog",
            format!("{tier_late} bodies have waited more than an hour for their tier"),
            "Raise floe.content_tier_batch, or run SELECT floe.content_tier(); until it returns 0.",
        )
    };
    Ok(vec![gc, tiering])
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
