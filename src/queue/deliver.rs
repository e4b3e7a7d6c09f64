//! Delivery: due and expired jobs made ready (`wake`), ready jobs handed out in sort-key order
//! with a fresh lease (`pick`), and this backend's floor in each queue's ready index (SPI, as
//! the extension's owner, machinery).

use super::catalog;
use super::priority::Tier;
use crate::error::FloeError;
use crate::privileged::Session;
use crate::sqltypes::{ts, us_of, Jsonb, Micros};
use pgrx::prelude::*;
use pgrx::Uuid;

// $1 queue id, $2 max_attempts, $3 now. Due scheduled jobs and expired running jobs (with
// attempts left) become ready, at most WAKE_BATCH of them; returns a row per job.
const WAKE: &str = "
UPDATE floe.queue_jobs j
   SET state = 'ready', wake_at = NULL, lease = NULL,
       last_error = CASE WHEN j.state = 'running'
                         THEN 'visibility timeout expired on attempt ' || j.attempts
                         ELSE j.last_error END
 WHERE j.id = ANY (ARRAY(
           SELECT w.id FROM floe.queue_jobs w
            WHERE w.queue_id = $1 AND w.state <> 'ready' AND w.wake_at <= $3
              AND (w.state = 'scheduled' OR w.attempts < $2)
            ORDER BY w.wake_at
            LIMIT 1000
              FOR UPDATE SKIP LOCKED))
RETURNING 1";

/// The LIMIT of WAKE.
pub(super) const WAKE_BATCH: usize = 1000;

/// How often one backend makes a queue's due and expired jobs ready (besides when a
/// dequeue comes up short): bounds how late a retry or an expired job competes again.
const WAKE_EVERY: Micros = 100_000;

thread_local! {
    static LAST_WAKE: std::cell::RefCell<std::collections::HashMap<i32, Micros>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
    /// Per queue, the (sort_key, id) of the last job this backend's previous dequeue handed
    /// out, when it got a full batch. Every job before it in the ready index was handed out
    /// (its entry is dead until VACUUM), locked by a concurrent dequeue, or gone, so the next
    /// dequeue starts its index scan after it instead of stepping over the dead entries that
    /// pile up at the head of a busy queue (both floe and the textbook queue spent most of a
    /// dequeue there). The floor is dropped, and the scan starts at the head again, every
    /// WAKE_EVERY (with the wake), when a dequeue comes up short, and when this backend
    /// enqueues into the queue; so a job that another session enqueues before the floor (a
    /// more urgent one), or that a rolled-back dequeue leaves there, waits at most WAKE_EVERY
    /// for this backend.
    static FLOOR: std::cell::RefCell<std::collections::HashMap<i32, (Micros, i64)>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// Drops this backend's floor of a queue (it woke jobs, or redrove some).
pub(super) fn drop_floor(queue: i32) {
    FLOOR.with_borrow_mut(|f| {
        f.remove(&queue);
    });
}

/// This backend enqueued jobs whose keys are at least `key`: the floor goes if they may
/// sort before it.
pub(super) fn lower_floor(queue: i32, key: Micros) {
    FLOOR.with_borrow_mut(|f| {
        if f.get(&queue).is_some_and(|&(floor, _)| key <= floor) {
            f.remove(&queue);
        }
    });
}

fn wake_due(queue: i32, now: Micros) -> bool {
    LAST_WAKE.with_borrow(|m| {
        m.get(&queue)
            .is_none_or(|&t| now - t >= WAKE_EVERY || now < t)
    })
}

/// A job as `floe.dequeue` returns it.
pub(super) type DeliveredRow = (
    i64,
    Jsonb,
    String,
    Option<Uuid>,
    i32,
    TimestampWithTimeZone,
    TimestampWithTimeZone,
    TimestampWithTimeZone,
    Uuid,
    Option<String>,
);

/// The rows of `PICK`, each with its sort key.
fn delivered(
    table: pgrx::spi::SpiTupleTable<'_>,
    now: Micros,
) -> Result<Vec<(Micros, DeliveredRow)>, FloeError> {
    let mut rows = Vec::with_capacity(table.len());
    for row in table {
        let tier = Tier::ALL[row.get::<i16>(3)?.unwrap_or(2).clamp(0, 4) as usize];
        let sort_key = row
            .get::<TimestampWithTimeZone>(11)?
            .map(us_of)
            .unwrap_or(0);
        let (Some(id), Some(payload), Some(lease)) = (
            row.get::<i64>(1)?,
            row.get::<Jsonb>(2)?,
            row.get::<Uuid>(9)?,
        ) else {
            continue;
        };
        rows.push((
            sort_key,
            (
                id,
                payload,
                tier.as_str().to_string(),
                row.get::<Uuid>(4)?,
                row.get::<i32>(5)?.unwrap_or(0),
                row.get::<TimestampWithTimeZone>(6)?.unwrap_or(ts(now)),
                row.get::<TimestampWithTimeZone>(7)?.unwrap_or(ts(now)),
                row.get::<TimestampWithTimeZone>(8)?.unwrap_or(ts(now)),
                lease,
                row.get::<String>(10)?,
            ),
        ));
    }
    Ok(rows)
}

fn pick<'c>(
    s: &mut Session<'_, 'c>,
    q: &catalog::Queue,
    batch: i32,
    (until, now): (Micros, Micros),
    floor: Option<(Micros, i64)>,
) -> Result<pgrx::spi::SpiTupleTable<'c>, FloeError> {
    let (key, id) = floor.unwrap_or((Micros::MIN, i64::MIN));
    s.run(
        PICK,
        &[
            q.id.into(),
            batch.into(),
            ts(until).into(),
            ts(now).into(),
            new_lease().into(),
            ts(key).into(),
            id.into(),
        ],
    )
}

pub(super) fn wake(s: &mut Session, q: &catalog::Queue, now: Micros) -> Result<usize, FloeError> {
    drop_floor(q.id);
    let n = s
        .run(WAKE, &[q.id.into(), q.max_attempts.into(), ts(now).into()])?
        .len();
    LAST_WAKE.with_borrow_mut(|m| {
        if m.len() > 1000 {
            m.clear();
        }
        m.insert(q.id, now);
    });
    Ok(n)
}

// $1 queue id, $2 batch, $3 visible until, $4 now, $5 lease (one per delivery: the jobs of a
// batch share it), $6/$7 the floor: where this backend's previous dequeue ended (see FLOOR).
// The ids go through an array so that the update finds its rows by primary key whatever the
// generic plan thinks of LIMIT $2 (a join there can turn into a hash join over the whole
// table).
const PICK: &str = "
UPDATE floe.queue_jobs j
   SET state = 'running', attempts = j.attempts + 1, started_at = $4, wake_at = $3, lease = $5
 WHERE j.id = ANY (ARRAY(SELECT p.id FROM floe.queue_jobs p
                          WHERE p.queue_id = $1 AND p.state = 'ready'
                            AND (p.sort_key, p.id) > ($6, $7)
                          ORDER BY p.sort_key, p.id
                          LIMIT $2
                            FOR UPDATE SKIP LOCKED))
RETURNING j.id, j.payload, j.tier, j.tenant, j.attempts, j.run_at, j.enqueued_at, j.wake_at,
          j.lease, j.dedup_key, j.sort_key";

/// The machinery of `floe.dequeue`: up to `batch` jobs of `queue`, visible to others again
/// after `visibility` (the queue's visibility timeout when None).
pub(super) fn hand_out(
    s: &mut Session,
    queue: &str,
    batch: i32,
    visibility: Option<Micros>,
    now: Micros,
) -> Result<Vec<DeliveredRow>, FloeError> {
    let q = catalog::usable(s, queue)?;
    let until = now.saturating_add(visibility.unwrap_or(q.visibility));
    // Due and expired jobs become ready at most every WAKE_EVERY per backend and queue
    // (one statement fewer on the common path), and whenever the queue comes up short.
    let mut woke = false;
    if wake_due(q.id, now) {
        wake(s, &q, now)?;
        woke = true;
    }
    let floor = FLOOR.with_borrow(|f| f.get(&q.id).copied());
    let mut rows = delivered(pick(s, &q, batch, (until, now), floor)?, now)?;
    if (rows.len() as i32) < batch {
        // Short: wake due jobs (unless just done) and look again from the head.
        let woken = if woke { 0 } else { wake(s, &q, now)? };
        if floor.is_some() || woken > 0 {
            let more = batch - rows.len() as i32;
            rows.extend(delivered(pick(s, &q, more, (until, now), None)?, now)?);
        }
    }
    rows.sort_by_key(|(key, row)| (*key, row.0));
    let last = rows.last().map(|(key, row)| (*key, row.0));
    FLOOR.with_borrow_mut(|f| match last {
        Some(last) if rows.len() as i32 == batch => {
            if f.len() > 1000 {
                f.clear();
            }
            f.insert(q.id, last);
        }
        _ => {
            f.remove(&q.id);
        }
    });
    Ok(rows.into_iter().map(|(_, row)| row).collect::<Vec<_>>())
}

/// A fresh lease: a version-4 uuid from Postgres's generator (seeded per backend from a
/// strong source). A lease tells deliveries apart; it guards against stale workers, not
/// against other roles (membership does that), so it needs no cryptographic randomness.
fn new_lease() -> Uuid {
    // SAFETY: the backend's global PRNG state.
    let (hi, lo) = unsafe {
        (
            pg_sys::pg_prng_uint64(&raw mut pg_sys::pg_global_prng_state),
            pg_sys::pg_prng_uint64(&raw mut pg_sys::pg_global_prng_state),
        )
    };
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&hi.to_be_bytes());
    bytes[8..].copy_from_slice(&lo.to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Uuid::from_bytes(bytes)
}

/// A uniform draw in [0, 1) from Postgres's generator (seeded per backend).
pub(super) fn unit_random() -> f64 {
    // SAFETY: the backend's global PRNG state.
    unsafe { pg_sys::pg_prng_double(&raw mut pg_sys::pg_global_prng_state) }
}
