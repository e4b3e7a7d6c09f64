//! The tenants' zstd dictionaries: loaded once per backend (a memory-bounded cache), used to
//! encode and decode stored bodies, trained over a tenant's newest bodies, saved, dropped
//! (SPI, as the extension's owner, machinery).

use super::cache;
use super::codec::{self, Codec, Dictionary, Spec};
use super::errors::{codec_error, hex};
use super::tier::{self, Policy, Tier};
use crate::error::FloeError;
use crate::privileged::Session;
use crate::sqltypes::{to_pg_uuid as to_pg, to_uuid};
use crate::tenant::authorize;
use pgrx::prelude::*;
use pgrx::Uuid;
use std::cell::RefCell;
use std::rc::Rc;

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
pub(super) fn encode_for(
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
pub(super) fn decode_stored(
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

/// A dictionary for `compress`/`decompress`, which the caller's tenant must own.
pub(super) fn usable_dictionary(
    s: &mut Session<'_, '_>,
    id: i32,
) -> Result<Rc<Dictionary>, FloeError> {
    let (tenant, dict) = dictionary(s, id)?;
    authorize(Some(to_pg(tenant)), &format!("dictionary {id}"))?;
    Ok(dict)
}

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
pub(super) struct Candidate {
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
pub(super) fn candidate(
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
pub(super) fn save(
    s: &mut Session<'_, '_>,
    tenant: uuid::Uuid,
    c: &Candidate,
) -> Result<i32, FloeError> {
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
pub(super) fn retrain_tenant(
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

const DICTIONARY_USE: &str = "
    SELECT d.tenant, (SELECT count(*) FROM floe.content c WHERE c.dictionary = d.id)
      FROM floe.content_dictionaries d WHERE d.id = $1";
const DROP_DICTIONARY: &str = "DELETE FROM floe.content_dictionaries WHERE id = $1";

/// Drops dictionary `id` (its tenant's, unused by any stored body); false if there is none.
pub(super) fn remove(s: &mut Session<'_, '_>, id: i32) -> Result<bool, FloeError> {
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
}
