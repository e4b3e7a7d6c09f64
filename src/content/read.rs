//! Reading bodies: one body by its hash, checked against it (its last read recorded at most
//! once a day), and the tenant's bodies most like one (SPI, as the extension's owner,
//! machinery).

use super::dictionaries::decode_stored;
use super::errors::no_body;
use crate::error::FloeError;
use crate::privileged::{self, Session};
use crate::sqltypes::to_pg_uuid as to_pg;
use crate::tenant::authorize;
use pgrx::prelude::*;
use pgrx::Uuid;

const GET: &str = "
    SELECT data, dictionary, last_read < pg_catalog.now() - interval '1 day'
      FROM floe.content WHERE tenant = $1 AND hash = $2";
const TOUCH: &str = "
    UPDATE floe.content SET last_read = pg_catalog.now()
     WHERE tenant = $1 AND hash = $2 AND last_read < pg_catalog.now() - interval '1 day'";

pub(super) fn get(tenant: Option<Uuid>, hash: &[u8]) -> Result<Vec<u8>, FloeError> {
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

const SIMILAR_BASE: &str = "SELECT simhash FROM floe.content WHERE tenant = $1 AND hash = $2";
const SIMILAR: &str = "
    SELECT c.hash, x.similarity, c.raw_size, c.tier
      FROM floe.content c,
           LATERAL (SELECT (1 - pg_catalog.bit_count(pg_catalog.int8send(c.simhash # $3))::real / 64)::real
                           AS similarity) x
     WHERE c.tenant = $1 AND c.hash <> $2 AND c.refs > 0 AND x.similarity >= $4
     ORDER BY x.similarity DESC, c.hash
     LIMIT $5";

/// A body like another: its hash, similarity, raw size and tier.
pub(super) type Similar = (Vec<u8>, f32, i32, String);

/// The tenant's bodies other than `hash` at least `min` like it, best first, at most `limit`.
pub(super) fn similar(
    s: &mut Session<'_, '_>,
    tenant: uuid::Uuid,
    hash: &[u8],
    min: f32,
    limit: i32,
) -> Result<Vec<Similar>, FloeError> {
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
}
