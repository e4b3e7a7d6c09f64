//! Signed tenant tokens: what the platform's auth service mints and `floe.set_tenant_token()`
//! accepts. Pure: keys and clock come in, a tenant or a refusal goes out.
//!
//! A token is the unpadded base64url text of 61 bytes:
//!
//! ```text
//! version (1 byte, = 1) | key id (u32, big endian) | tenant (16 bytes) |
//! expires at (i64 unix seconds, big endian) | MAC (32 bytes)
//! ```
//!
//! where `MAC = BLAKE3-keyed(key, "floe tenant token v1" || database name || 0x00 || the first
//! 29 bytes)`. The key is the database's token key with that id (32 random bytes, readable
//! only by the extension's owner); binding the database name makes a token of another
//! database (or of a database restored under another name) fail even if its key leaked there.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::fmt;
use uuid::Uuid;

/// The token format's version byte.
pub const VERSION: u8 = 1;
/// Bytes before the MAC.
const BODY: usize = 1 + 4 + 16 + 8;
/// Bytes of a whole token.
pub const TOKEN_BYTES: usize = BODY + 32;
/// Domain separation: a MAC of this format is never a valid BLAKE3-keyed hash of anything
/// floe computes for another purpose.
const CONTEXT: &[u8] = b"floe tenant token v1";
/// The longest a token may be valid for (minting refuses more; verification too).
pub const MAX_LIFETIME_SECS: i64 = 24 * 3600;

/// A key as verification sees it: its id, its bytes, and until when it is accepted (None:
/// the current key; Some(t): a rotated key, accepted until unix second t).
#[derive(Clone)]
pub struct Key {
    pub id: u32,
    pub bytes: [u8; 32],
    pub accepted_until: Option<i64>,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key's bytes.
        f.debug_struct("Key")
            .field("id", &self.id)
            .field("accepted_until", &self.accepted_until)
            .finish_non_exhaustive()
    }
}

/// Why a token is refused. None of them echoes the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Empty,
    NotBase64,
    WrongLength {
        bytes: usize,
    },
    UnknownVersion {
        version: u8,
    },
    /// No key with the token's id, or a rotated key past its grace period.
    UnknownKey {
        id: u32,
    },
    /// The MAC does not match: forged, altered, or minted for another database.
    BadSignature,
    Expired {
        seconds_ago: i64,
    },
    /// Valid for longer than [`MAX_LIFETIME_SECS`] from now: not minted by floe's rules.
    TooLong,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Empty => write!(f, "the tenant token is empty"),
            Refusal::NotBase64 => write!(f, "the tenant token is not base64url text"),
            Refusal::WrongLength { bytes } => write!(
                f,
                "the tenant token has {bytes} bytes, not {TOKEN_BYTES} (truncated or not a floe token)"
            ),
            Refusal::UnknownVersion { version } => {
                write!(f, "the tenant token has an unknown version ({version})")
            }
            Refusal::UnknownKey { id } => write!(
                f,
                "the tenant token's key {id} is not a key of this database (unknown, or rotated out)"
            ),
            Refusal::BadSignature => write!(
                f,
                "the tenant token's signature does not match (forged, altered, or minted for another database)"
            ),
            Refusal::Expired { seconds_ago } => {
                write!(f, "the tenant token expired {seconds_ago} s ago")
            }
            Refusal::TooLong => write!(
                f,
                "the tenant token is valid for more than {MAX_LIFETIME_SECS} s from now"
            ),
        }
    }
}

fn mac(key: &[u8; 32], database: &str, body: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(CONTEXT);
    h.update(database.as_bytes());
    h.update(&[0]);
    h.update(body);
    *h.finalize().as_bytes()
}

/// Mints a token for `tenant`, valid until unix second `expires`, with `key`.
pub fn mint(key: &Key, database: &str, tenant: Uuid, expires: i64) -> String {
    let mut raw = Vec::with_capacity(TOKEN_BYTES);
    raw.push(VERSION);
    raw.extend_from_slice(&key.id.to_be_bytes());
    raw.extend_from_slice(tenant.as_bytes());
    raw.extend_from_slice(&expires.to_be_bytes());
    let tag = mac(&key.bytes, database, &raw);
    raw.extend_from_slice(&tag);
    URL_SAFE_NO_PAD.encode(raw)
}

/// Verifies `token` for `database` at unix second `now` against `keys`; the tenant it names.
pub fn verify(token: &str, database: &str, keys: &[Key], now: i64) -> Result<Uuid, Refusal> {
    let text = token.trim();
    if text.is_empty() {
        return Err(Refusal::Empty);
    }
    let raw = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| Refusal::NotBase64)?;
    if raw.len() != TOKEN_BYTES {
        return Err(Refusal::WrongLength { bytes: raw.len() });
    }
    if raw[0] != VERSION {
        return Err(Refusal::UnknownVersion { version: raw[0] });
    }
    let id = u32::from_be_bytes([raw[1], raw[2], raw[3], raw[4]]);
    let key = keys
        .iter()
        .find(|k| k.id == id && k.accepted_until.is_none_or(|until| now < until))
        .ok_or(Refusal::UnknownKey { id })?;
    let expected = mac(&key.bytes, database, &raw[..BODY]);
    // Constant time: a byte-by-byte compare would tell an attacker how much of a MAC is right.
    if !constant_time_eq(&expected, &raw[BODY..]) {
        return Err(Refusal::BadSignature);
    }
    let mut tenant = [0u8; 16];
    tenant.copy_from_slice(&raw[5..21]);
    let mut exp = [0u8; 8];
    exp.copy_from_slice(&raw[21..29]);
    let expires = i64::from_be_bytes(exp);
    if expires <= now {
        return Err(Refusal::Expired {
            seconds_ago: now.saturating_sub(expires),
        });
    }
    if expires.saturating_sub(now) > MAX_LIFETIME_SECS {
        return Err(Refusal::TooLong);
    }
    Ok(Uuid::from_bytes(tenant))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DB: &str = "oltp";
    const NOW: i64 = 1_800_000_000;

    fn key(id: u32, fill: u8) -> Key {
        Key {
            id,
            bytes: [fill; 32],
            accepted_until: None,
        }
    }

    fn tenant() -> Uuid {
        Uuid::from_u128(0x6f1c_0000_0000_4000_8000_0000_0000_0001)
    }

    #[test]
    fn a_minted_token_verifies() {
        let k = key(1, 7);
        let t = mint(&k, DB, tenant(), NOW + 300);
        assert_eq!(t.len(), 82, "61 bytes of base64url without padding");
        assert_eq!(verify(&t, DB, &[k], NOW), Ok(tenant()));
    }

    #[test]
    fn refusals() {
        let k = key(1, 7);
        let good = mint(&k, DB, tenant(), NOW + 300);
        let keys = [k.clone()];
        assert_eq!(verify("", DB, &keys, NOW), Err(Refusal::Empty));
        assert_eq!(verify("  ", DB, &keys, NOW), Err(Refusal::Empty));
        assert_eq!(
            verify("not base64!", DB, &keys, NOW),
            Err(Refusal::NotBase64)
        );
        assert_eq!(
            verify(&good[..40], DB, &keys, NOW),
            Err(Refusal::WrongLength { bytes: 30 })
        );
        assert_eq!(
            verify(&good, "content", &keys, NOW),
            Err(Refusal::BadSignature),
            "minted for another database"
        );
        assert_eq!(
            verify(&good, DB, &[key(1, 8)], NOW),
            Err(Refusal::BadSignature),
            "another database's key"
        );
        assert_eq!(
            verify(&good, DB, &[key(2, 7)], NOW),
            Err(Refusal::UnknownKey { id: 1 })
        );
        assert_eq!(
            verify(&good, DB, &keys, NOW + 301),
            Err(Refusal::Expired { seconds_ago: 1 }),
            "replayed after expiry"
        );
        assert_eq!(
            verify(&good, DB, &keys, NOW + 300),
            Err(Refusal::Expired { seconds_ago: 0 })
        );
        let long = mint(&k, DB, tenant(), NOW + MAX_LIFETIME_SECS + 1);
        assert_eq!(verify(&long, DB, &keys, NOW), Err(Refusal::TooLong));
        let mut raw = URL_SAFE_NO_PAD.decode(&good).unwrap();
        raw[0] = 2;
        assert_eq!(
            verify(&URL_SAFE_NO_PAD.encode(&raw), DB, &keys, NOW),
            Err(Refusal::UnknownVersion { version: 2 })
        );
    }

    #[test]
    fn a_rotated_key_is_accepted_for_its_grace_period_only() {
        let old = Key {
            accepted_until: Some(NOW + 60),
            ..key(1, 7)
        };
        let new = key(2, 9);
        let by_old = mint(&old, DB, tenant(), NOW + 300);
        let keys = [old, new.clone()];
        assert_eq!(verify(&by_old, DB, &keys, NOW + 59), Ok(tenant()));
        assert_eq!(
            verify(&by_old, DB, &keys, NOW + 60),
            Err(Refusal::UnknownKey { id: 1 })
        );
        let by_new = mint(&new, DB, tenant(), NOW + 300);
        assert_eq!(verify(&by_new, DB, &keys, NOW + 60), Ok(tenant()));
    }

    #[test]
    fn messages_never_echo_the_token_or_a_key() {
        let k = key(1, 7);
        assert!(!format!("{k:?}").contains("7, 7"), "{k:?}");
        let good = mint(&k, DB, tenant(), NOW + 300);
        for r in [
            verify(&good, "x", std::slice::from_ref(&k), NOW).unwrap_err(),
            verify(&good[..50], DB, std::slice::from_ref(&k), NOW).unwrap_err(),
        ] {
            let m = r.to_string();
            assert!(!m.contains(&good[..20]), "{m}");
            assert!(!m.contains("6f1c"), "{m}");
        }
    }

    proptest! {
        /// Any change to any byte of a token (tenant, expiry, key id, MAC) is refused.
        #[test]
        fn any_altered_byte_is_refused(pos in 0usize..TOKEN_BYTES, flip in 1u8..=255) {
            let k = key(1, 7);
            let good = mint(&k, DB, tenant(), NOW + 300);
            let mut raw = URL_SAFE_NO_PAD.decode(&good).unwrap();
            raw[pos] ^= flip;
            prop_assert!(verify(&URL_SAFE_NO_PAD.encode(&raw), DB, &[k], NOW).is_err());
        }

        #[test]
        fn verify_never_panics(text in ".{0,120}") {
            let _ = verify(&text, DB, &[key(1, 7)], NOW);
        }

        #[test]
        fn round_trips_any_tenant(id in any::<u128>(), ttl in 1i64..MAX_LIFETIME_SECS) {
            let k = key(3, 1);
            let t = Uuid::from_u128(id);
            prop_assert_eq!(verify(&mint(&k, DB, t, NOW + ttl), DB, &[k], NOW), Ok(t));
        }
    }
}
