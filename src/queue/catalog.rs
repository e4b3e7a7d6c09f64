//! The queues' settings, cached per backend, so that the hot paths (enqueue, dequeue,
//! complete) bind what they need as parameters instead of joining `floe.queues` and
//! evaluating expressions in every statement.
//!
//! A statement trigger on `floe.queues` (`floe.queue_settings_changed`) sends a relcache
//! invalidation for it on any change (floe's functions or a superuser's UPDATE); every
//! backend then reloads at its next lookup (`crate::relcache`). Role
//! membership is checked with `has_privs_of_role`, which follows GRANT and REVOKE through
//! Postgres's own caches.

use super::errors::{no_queue, not_member};
use crate::error::FloeError;
use crate::privileged::Session;
use crate::relcache;
use crate::sqltypes::{micros_of, SECOND};
use pgrx::prelude::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// One queue's settings, durations in microseconds.
#[derive(Debug, Clone)]
pub struct Queue {
    pub id: i32,
    pub name: String,
    pub owner: pg_sys::Oid,
    pub visibility: i64,
    pub max_attempts: i32,
    pub aging_step: i64,
    pub retry_base: i64,
    pub retry_max: i64,
    pub fair: bool,
}

#[derive(Default)]
struct Cache {
    generation: u64,
    by_name: HashMap<String, Rc<Queue>>,
    by_id: HashMap<i32, Rc<Queue>>,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

const LOAD: &str = "
SELECT q.id, q.name, q.owner::oid, q.visibility_timeout, q.max_attempts, q.aging_step, q.fair,
       q.retry_base, q.retry_max, 'floe.queues'::regclass::oid
  FROM floe.queues q
 WHERE q.name = $1 OR q.id = $2";

fn micros(v: Option<Interval>) -> i64 {
    micros_of(v).unwrap_or(SECOND)
}

/// The cached queue, loaded by name or id when missing (None when there is no such queue).
fn lookup(
    s: &mut Session,
    name: Option<&str>,
    id: Option<i32>,
) -> Result<Option<Rc<Queue>>, FloeError> {
    let generation = relcache::generation();
    let hit = CACHE.with_borrow_mut(|c| {
        if c.generation != generation {
            c.by_name.clear();
            c.by_id.clear();
            c.generation = generation;
        }
        match (name, id) {
            (Some(n), _) => c.by_name.get(n).cloned(),
            (None, Some(i)) => c.by_id.get(&i).cloned(),
            _ => None,
        }
    });
    if hit.is_some() {
        return Ok(hit);
    }
    let table = s.run(LOAD, &[name.into(), id.into()])?;
    if table.is_empty() {
        return Ok(None);
    }
    let row = table.first();
    let queue = Rc::new(Queue {
        id: row.get::<i32>(1)?.unwrap_or(0),
        name: row.get::<String>(2)?.unwrap_or_default(),
        owner: row.get::<pg_sys::Oid>(3)?.unwrap_or(pg_sys::InvalidOid),
        visibility: micros(row.get(4)?),
        max_attempts: row.get::<i32>(5)?.unwrap_or(1),
        aging_step: micros(row.get(6)?),
        fair: row.get::<bool>(7)?.unwrap_or(false),
        retry_base: micros(row.get(8)?),
        retry_max: micros(row.get(9)?),
    });
    relcache::watch(row.get::<pg_sys::Oid>(10)?.unwrap_or(pg_sys::InvalidOid));
    // Only cache what was read under the current generation (an invalidation that arrived
    // while loading makes the next lookup load again).
    if relcache::generation() == generation {
        CACHE.with_borrow_mut(|c| {
            if c.by_name.len() > 10_000 {
                c.by_name.clear();
                c.by_id.clear();
            }
            c.by_name.insert(queue.name.clone(), queue.clone());
            c.by_id.insert(queue.id, queue.clone());
        });
    }
    Ok(Some(queue))
}

/// The queue named `name`, which the caller may use; 42704 or 42501 otherwise.
pub fn usable(s: &mut Session, name: &str) -> Result<Rc<Queue>, FloeError> {
    let queue = lookup(s, Some(name), None)?.ok_or_else(|| no_queue(name))?;
    require_member(s.caller, &queue)?;
    Ok(queue)
}

/// The queue with id `id` (a job's), if it still exists.
pub fn by_id(s: &mut Session, id: i32) -> Result<Option<Rc<Queue>>, FloeError> {
    lookup(s, None, Some(id))
}

/// Whether `caller` has the privileges of the queue's owner role.
pub fn is_member(caller: pg_sys::Oid, queue: &Queue) -> bool {
    // SAFETY: role membership from Postgres's caches.
    unsafe { pg_sys::has_privs_of_role(caller, queue.owner) }
}

/// 42501 unless `caller` has the privileges of the queue's owner role.
pub fn require_member(caller: pg_sys::Oid, queue: &Queue) -> Result<(), FloeError> {
    if is_member(caller, queue) {
        Ok(())
    } else {
        Err(not_member(&queue.name))
    }
}

/// Statement trigger on `floe.queues`: every backend drops its cached settings.
#[pg_trigger]
fn queue_settings_changed<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByRust>>, std::convert::Infallible> {
    relcache::invalidate_trigger_relation(trigger);
    Ok(None)
}

extension_sql!(
    r#"
CREATE TRIGGER queue_settings_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON floe.queues
    FOR EACH STATEMENT EXECUTE FUNCTION floe.queue_settings_changed();
COMMENT ON FUNCTION floe.queue_settings_changed() IS
  'floe queue: trigger on floe.queues; makes every backend reload the queue settings it caches.';
"#,
    name = "queue_settings_trigger",
    requires = [queue_settings_changed, "queue_sql"],
);
