//! Maintenance: garbage collection (released bodies past floe.content_gc_grace, replaced
//! dictionaries no body uses, registrations of dropped tables), tiering and retraining (SPI,
//! as the extension's owner, machinery).

use super::codec;
use super::dictionaries::{decode_stored, encode_for, retrain_tenant};
use super::errors::{codec_error, hex};
use super::policies::policy;
use super::tier::{Policy, Tier};
use crate::error::FloeError;
use crate::gucs;
use crate::privileged::Session;
use crate::sqltypes::{interval, to_pg_uuid as to_pg, to_uuid, SECOND};
use pgrx::Uuid;
use std::collections::HashMap;

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
pub(super) fn gc_grace() -> pgrx::datum::Interval {
    interval(i64::from(gucs::content_gc_grace_secs()) * SECOND)
}

pub(super) fn gc(s: &mut Session<'_, '_>) -> Result<i64, FloeError> {
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
pub(super) fn tier_batch(s: &mut Session<'_, '_>, batch: i32) -> Result<i64, FloeError> {
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

pub(super) fn retrain(s: &mut Session<'_, '_>) -> Result<i64, FloeError> {
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
