//! Enqueue: one job by the common path (a single INSERT) or the general one (dedup keys, the
//! fair clock), several in one statement (SPI, as the extension's owner, machinery).

use super::catalog;
use super::deliver::lower_floor;
use super::errors::no_queue;
use super::priority::{self, Tier};
use super::queues::check_access;
use crate::error::{invalid, FloeError};
use crate::privileged::Session;
use crate::sqltypes::{ts, Jsonb, JsonbArray, Micros};
use pgrx::datum::DatumWithOid;
use pgrx::Uuid;

// The common case, without dedup key or fair clock: every value computed by the caller.
// $1 queue id, $2 state, $3 tier, $4 run_at, $5 sort_key, $6 wake_at, $7 tenant, $8 payload,
// $9 now. Only while the queue exists: drop_queue locks floe.queue_jobs against writers, so
// an insert that waited for it sees the drop (its snapshot is taken after its locks), and no
// job is left behind for a dropped queue. No row: the caller goes the general way.
const INSERT_JOB: &str = "
INSERT INTO floe.queue_jobs (queue_id, state, tier, run_at, sort_key, wake_at, tenant, payload,
                             enqueued_at)
SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9
 WHERE EXISTS (SELECT 1 FROM floe.queues q WHERE q.id = $1)
RETURNING id";

// $1 queue, $2 caller, $3 dedup keys
const PENDING_WITH_KEYS: &str = "
SELECT j.dedup_key, j.id FROM floe.queue_jobs j JOIN floe.queues q ON q.id = j.queue_id
 WHERE q.name = $1 AND pg_catalog.pg_has_role($2, q.owner, 'USAGE')
   AND j.dedup_key = ANY ($3)";

fn existing_with_keys(
    s: &mut Session,
    queue: &str,
    keys: Vec<String>,
) -> Result<std::collections::HashMap<String, i64>, FloeError> {
    let mut out = std::collections::HashMap::new();
    for row in s.run(
        PENDING_WITH_KEYS,
        &[queue.into(), s.caller.into(), keys.into()],
    )? {
        if let (Some(k), Some(id)) = (row.get::<String>(1)?, row.get::<i64>(2)?) {
            out.insert(k, id);
        }
    }
    Ok(out)
}

/// The machinery of `floe.enqueue`: the new job's id (or, with a dedup key, the live job's).
pub(super) fn one(
    s: &mut Session,
    queue: &str,
    payload: Jsonb,
    (tier, run_at, tenant, now): (Tier, Micros, Option<Uuid>, Micros),
    dedup_key: Option<&str>,
) -> Result<i64, FloeError> {
    let q = catalog::usable(s, queue)?;
    // A fair queue's virtual start is never before run_at: this is the lowest key.
    lower_floor(q.id, priority::sort_key(run_at, tier, q.aging_step));
    if dedup_key.is_none() && !(q.fair && tenant.is_some()) {
        let ready = run_at <= now;
        let table = s.run(
            INSERT_JOB,
            &[
                q.id.into(),
                if ready { "ready" } else { "scheduled" }.into(),
                (tier.rank() as i16).into(),
                ts(run_at).into(),
                ts(priority::sort_key(run_at, tier, q.aging_step)).into(),
                (!ready).then(|| ts(run_at)).into(),
                tenant.into(),
                payload.into(),
                ts(now).into(),
            ],
        )?;
        if let Some(id) = table.first().get::<i64>(1).ok().flatten() {
            return Ok(id);
        }
    }
    // With a dedup key or a fair clock: the bulk statement, for one payload.
    let ids = insert_many(
        s,
        queue,
        vec![payload].into(),
        1,
        (tier, run_at, tenant, now),
        vec![dedup_key.map(str::to_string)],
    )?;
    ids.first().copied().ok_or_else(|| no_queue(queue))
}

// $1 queue, $2 caller, $3 run_at, $4 tier, $5 tenant, $6 payloads, $7 dedup keys, $8 now,
// $9 how many
const ENQUEUE_MANY: &str = "
WITH q AS (
    SELECT id, aging_step, fair, fair_share FROM floe.queues
     WHERE name = $1 AND pg_catalog.pg_has_role($2, owner, 'USAGE')
), clock AS (
    INSERT INTO floe.queue_clocks AS c (queue_id, tenant, tier, next_start)
    SELECT q.id, $5, $4, $3 + q.fair_share * $9 FROM q WHERE q.fair AND $5 IS NOT NULL
    ON CONFLICT (queue_id, tenant, tier) DO UPDATE
       SET next_start = GREATEST(c.next_start, $3)
                      + (SELECT f.fair_share * $9 FROM floe.queues f WHERE f.id = c.queue_id)
    RETURNING c.next_start
)
INSERT INTO floe.queue_jobs (queue_id, state, tier, run_at, sort_key, wake_at, tenant, dedup_key,
                             payload, enqueued_at)
SELECT q.id,
       CASE WHEN $3 <= $8 THEN 'ready' ELSE 'scheduled' END,
       $4, $3,
       coalesce((SELECT next_start FROM clock) - q.fair_share * ($9 - p.n + 1), $3)
           + q.aging_step * $4,
       CASE WHEN $3 <= $8 THEN NULL ELSE $3 END,
       $5, ($7::text[])[p.n], p.payload, $8
  FROM q, unnest($6::jsonb[]) WITH ORDINALITY AS p (payload, n)
 ORDER BY p.n
ON CONFLICT (queue_id, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING
RETURNING id, dedup_key";

/// Inserts `n` payloads (a `jsonb[]`) with their dedup keys (one per payload, or none) in one
/// statement; returns the ids in input order, a live job's id for a key that has one.
fn insert_many(
    s: &mut Session,
    queue: &str,
    payloads: DatumWithOid<'_>,
    n: i32,
    (tier, run_at, tenant, now): (Tier, Micros, Option<Uuid>, Micros),
    keys: Vec<Option<String>>,
) -> Result<Vec<i64>, FloeError> {
    let table = s.run(
        ENQUEUE_MANY,
        &[
            queue.into(),
            s.caller.into(),
            ts(run_at).into(),
            (tier.rank() as i32).into(),
            tenant.into(),
            payloads,
            keys.clone().into(),
            ts(now).into(),
            n.into(),
        ],
    )?;
    let mut plain = Vec::new();
    let mut keyed = std::collections::HashMap::new();
    for row in table {
        let id = row.get::<i64>(1)?.unwrap_or(0);
        match row.get::<String>(2)? {
            Some(k) => {
                keyed.insert(k, id);
            }
            None => plain.push(id),
        }
    }
    if n > 0 && plain.is_empty() && keyed.is_empty() {
        check_access(s, queue)?;
    }
    let missing: Vec<String> = keys
        .iter()
        .flatten()
        .filter(|k| !keyed.contains_key(*k))
        .cloned()
        .collect();
    if !missing.is_empty() {
        keyed.extend(existing_with_keys(s, queue, missing)?);
    }
    // In input order: a key's job (new or live), or the next new id.
    let mut plain = plain.into_iter();
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n as usize {
        let id = match keys.get(i).cloned().flatten() {
            Some(k) => keyed.get(&k).copied(),
            None => plain.next(),
        };
        out.push(id.ok_or_else(|| FloeError::WrongState {
            message: "a job with one of the dedup keys finished during the call".into(),
            hint: "Retry the call.".into(),
        })?);
    }
    Ok(out)
}

const ARRAY_LENGTH: &str =
    "SELECT pg_catalog.cardinality($1::jsonb[]), pg_catalog.array_position($1::jsonb[], NULL)";

/// The machinery of `floe.enqueue_many`: the ids in input order.
pub(super) fn many(
    s: &mut Session,
    queue: &str,
    payloads: JsonbArray,
    (tier, run_at, tenant, now): (Tier, Micros, Option<Uuid>, Micros),
    dedup_keys: &Option<Vec<Option<String>>>,
) -> Result<Vec<i64>, FloeError> {
    let q = catalog::usable(s, queue)?;
    lower_floor(q.id, priority::sort_key(run_at, tier, q.aging_step));
    let row = s.run(ARRAY_LENGTH, &[payloads.into()])?;
    let row = row.first();
    let n = row.get::<i32>(1)?.unwrap_or(0);
    if row.get::<i32>(2)?.is_some() {
        return Err(invalid(
            "payloads",
            "an array with NULL",
            "jsonb values (no NULL)",
        ));
    }
    let keys: Vec<Option<String>> = dedup_keys.clone().unwrap_or_default();
    if dedup_keys.is_some() && keys.len() != n as usize {
        return Err(invalid(
            "dedup_keys",
            format!("{} keys", keys.len()),
            &format!("one key (or NULL) per payload: {n}"),
        ));
    }
    insert_many(
        s,
        queue,
        payloads.into(),
        n,
        (tier, run_at, tenant, now),
        keys,
    )
}
