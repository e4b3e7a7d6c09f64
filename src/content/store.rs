//! Storing bodies: one more reference to a body (stored once per tenant, encoded for the tier
//! of a new body), one reference less (SPI, as the extension's owner, machinery).

use super::codec::{self, CodecError};
use super::dictionaries::encode_for;
use super::errors::{codec_error, hex, no_body};
use super::policies::policy;
use super::simhash;
use crate::error::FloeError;
use crate::privileged::Session;
use crate::sqltypes::to_pg_uuid as to_pg;

const BUMP: &str = "
    UPDATE floe.content SET refs = refs + 1, puts = puts + 1, released_at = NULL
     WHERE tenant = $1 AND hash = $2 RETURNING 1";
const INSERT: &str = "
    INSERT INTO floe.content AS c
           (tenant, hash, tier, codec, dictionary, raw_size, stored_size, refs, simhash, data)
    VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $9)
    ON CONFLICT (tenant, hash) DO UPDATE
       SET refs = c.refs + 1, puts = c.puts + 1, released_at = NULL";

const RELEASE: &str = "
    UPDATE floe.content
       SET refs = refs - 1,
           released_at = CASE WHEN refs = 1 THEN pg_catalog.now() ELSE released_at END
     WHERE tenant = $1 AND hash = $2 AND refs > 0
    RETURNING refs";
const EXISTS: &str = "SELECT refs FROM floe.content WHERE tenant = $1 AND hash = $2";

/// Stores one reference to `body` for `tenant` (already authorized); returns the hash.
pub(super) fn put(
    s: &mut Session<'_, '_>,
    tenant: uuid::Uuid,
    body: &[u8],
) -> Result<Vec<u8>, FloeError> {
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
pub(super) fn add_ref(
    s: &mut Session<'_, '_>,
    tenant: uuid::Uuid,
    hash: &[u8],
) -> Result<(), FloeError> {
    if s.run(BUMP, &[to_pg(tenant).into(), hash.into()])?
        .is_empty()
    {
        return Err(no_body(hash));
    }
    Ok(())
}

pub(super) fn release(
    s: &mut Session<'_, '_>,
    tenant: uuid::Uuid,
    hash: &[u8],
) -> Result<i64, FloeError> {
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
