//! Maintenance passes: one set at a time, planned in a short transaction (`plan.rs` decides),
//! then each step committed on its own (procedure, scheduler worker) or inside the caller's
//! transaction; the set's advisory lock, its recorded outcome, the worker's deferred run.

use super::children::{children, default_partition_of, owned_table, plan_error, Parent, SetConfig};
use super::create::{
    attach_staged_child, create_or_stage_child, drop_exclusion, validate_exclusion,
};
use super::ddl::{as_owner, caught, ddl};
use super::plan::{self, ControlType, Range, RetentionMode, SetState, Step};
use crate::error::FloeError;
use crate::{gucs, subxact};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::quote_identifier as qi;
use std::cell::RefCell;

/// A child being retired by `DETACH ... CONCURRENTLY`, which only the scheduler worker can
/// run (outside any transaction block); the rest of the retirement follows it.
#[derive(Debug, Clone)]
pub struct ConcurrentDetach {
    pub owner: pg_sys::Oid,
    pub detach_sql: String,
    pub after_sql: Option<String>,
    /// The child, when it stays a table, and the set's parent: it keeps the set's tenant
    /// isolation (see `crate::tenant::isolate_retired`).
    pub kept: Option<(pg_sys::Oid, pg_sys::Oid)>,
}

/// A set's configuration for a pass at `as_of` (now when NULL). Premake looks ahead from
/// `as_of`; retention counts back from the earlier of `as_of` and now, so a future `as_of`
/// (a preview, planning ahead) never retires a child that today's clock still keeps.
pub(super) fn load_config(
    key: &str,
    as_of: Option<TimestampWithTimeZone>,
) -> Result<Option<SetConfig>, FloeError> {
    Spi::connect(|client| {
        let rows = client.select(
            "SELECT control::text, control_type, part_interval, premake,
                    (extract(epoch FROM start_at) * 1000000)::int8, default_partition,
                    sub_partition_by::text, sub_partition_values,
                    (extract(epoch FROM LEAST(coalesce($2, pg_catalog.now()), pg_catalog.now())
                                      - retention) * 1000000)::int8,
                    retention_mode, archive_schema::text,
                    (extract(epoch FROM coalesce($2, pg_catalog.now())) * 1000000)::int8, relid
               FROM floe.partition_sets WHERE parent = $1",
            Some(1),
            &[key.into(), as_of.into()],
        )?;
        if rows.is_empty() {
            return Ok(None);
        }
        let row = rows.first();
        let iv: Interval = row.get(3)?.ok_or_else(|| FloeError::Internal {
            message: "partition set without interval".into(),
        })?;
        let step = Step::from_interval(iv.months(), iv.days(), iv.micros()).map_err(plan_error)?;
        let control_type = ControlType::parse(&row.get::<String>(2)?.unwrap_or_default())
            .ok_or_else(|| FloeError::Internal {
                message: "partition set with an unknown control type".into(),
            })?;
        Ok(Some(SetConfig {
            control: row.get(1)?.unwrap_or_default(),
            control_type,
            step,
            premake: row.get::<i32>(4)?.unwrap_or(0).max(0) as u32,
            start_us: row.get(5)?.unwrap_or(0),
            sub_by: row.get(7)?,
            sub_values: row.get::<Vec<String>>(8)?.unwrap_or_default(),
            cutoff_us: row.get(9)?,
            mode: RetentionMode::parse(&row.get::<String>(10)?.unwrap_or_default())
                .unwrap_or(RetentionMode::Detach),
            archive_schema: row.get(11)?,
            as_of_us: row.get(12)?.unwrap_or(0),
            relid: row.get(13)?,
        }))
    })
}

/// How a retired child leaves its set.
#[derive(Debug, Clone)]
pub(super) enum Detach {
    /// `DETACH PARTITION` under lock_timeout (ACCESS EXCLUSIVE on the parent, briefly).
    Plain(String),
    /// `DETACH PARTITION ... CONCURRENTLY`, run by the worker as a top-level statement.
    Concurrent(String),
    /// `DETACH PARTITION ... FINALIZE` of an interrupted concurrent detach.
    Finalize(String),
}

/// What a pass over one set will do, planned in one short transaction.
pub(super) struct SetWork {
    pub(super) parent: Parent,
    pub(super) cfg: SetConfig,
    pub(super) default: Option<String>,
    pub(super) create: Vec<Range>,
    pub(super) retire: Vec<Retire>,
}

/// A retired child: how it leaves its set, what follows (drop, move to archive), and, when it
/// stays a table (detach, archive), its oid: it keeps the isolation of a tenant-isolated set
/// (its guard triggers, clones of the parent's, go with the detach).
pub(super) struct Retire {
    pub(super) child: String,
    pub(super) detach: Detach,
    pub(super) after: Option<String>,
    pub(super) kept: Option<pg_sys::Oid>,
}

/// Plans a pass over a set: create what is missing, then (only if every wanted child will
/// exist) retire what is past retention. `None` when the set is gone.
pub(super) fn plan_set(
    key: &str,
    as_of: Option<TimestampWithTimeZone>,
    in_worker: bool,
) -> Result<Option<SetWork>, FloeError> {
    let Some(oid) = Spi::get_one_with_args::<pg_sys::Oid>(
        "SELECT pg_catalog.to_regclass($1)::oid",
        &[key.into()],
    )?
    else {
        // DROP TABLE removes the set (event trigger): the table was renamed or moved.
        return Err(FloeError::NotFound {
            kind: "parent table",
            name: key.to_string(),
            hint: "Was it renamed? UPDATE floe.partition_sets SET parent = format('%I.%I', schema, new_name) WHERE parent = '<old>', or DELETE the row.".into(),
        });
    };
    let Some(cfg) = load_config(key, as_of)? else {
        return Ok(None);
    };
    // The name must still be the table the set was made for: a table renamed away and
    // another one created under its name is not adopted (its owner did not ask for it).
    if cfg.relid != Some(oid) {
        let renamed_away = match cfg.relid {
            Some(relid) => Spi::get_one_with_args::<bool>(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE oid = $1)",
                &[relid.into()],
            )?
            .unwrap_or(false),
            None => false,
        };
        if renamed_away {
            return Err(FloeError::WrongState {
                message: format!(
                    "{key} is no longer the table this partition set was made for (that one was renamed)"
                ),
                hint: "Point the set at the renamed table (UPDATE floe.partition_sets SET parent = ...), or, to manage the new table, SET relid = NULL after checking its configuration.".into(),
            });
        }
        // Restored from a dump (new oids), or adopted by name: the table of that name.
        Spi::run_with_args(
            "UPDATE floe.partition_sets SET relid = $2 WHERE parent = $1",
            &[key.into(), oid.into()],
        )?;
    }
    let (parent, _) = owned_table(oid)?;
    let (kids, pending) = children(oid, cfg.control_type)?;
    let state = SetState {
        base: &parent.name,
        step: cfg.step,
        premake: cfg.premake,
        start: cfg.start_us,
        retain_after: cfg.cutoff_us,
        children: &kids,
    };
    let p = plan::plan(&state, cfg.as_of_us).map_err(plan_error)?;
    let default = default_partition_of(&kids);
    let mut retire = Vec::new();
    // The audit log's months leave by drop only (a detached month could be edited), each one
    // recorded in floe.audit_retired first (see audit/custody.rs): never concurrently.
    let audit_log = key == crate::audit::LOG_SET;
    if audit_log && !p.retire.is_empty() && cfg.mode != RetentionMode::Drop {
        return Err(FloeError::WrongState {
            message: format!(
                "the retention mode of {key} is {}, and its months leave by drop only",
                cfg.mode.as_str()
            ),
            hint:
                "SELECT floe.set_retention('floe.audit_log', keep => '<how long>', mode => 'drop');"
                    .into(),
        });
    }
    // Citus refuses DETACH ... CONCURRENTLY on its tables.
    let citus = !p.retire.is_empty() && crate::citus::is_citus_table(parent.oid)?;
    if p.complete {
        for child in &p.retire {
            let sql = format!(
                "ALTER TABLE {} DETACH PARTITION {child}",
                parent.qualified()
            );
            let detach = if pending.contains(child) {
                Detach::Finalize(format!("{sql} FINALIZE"))
            } else if in_worker && default.is_none() && !audit_log && !citus {
                // CONCURRENTLY is refused when the set has a default partition.
                Detach::Concurrent(format!("{sql} CONCURRENTLY"))
            } else {
                Detach::Plain(sql)
            };
            let after = match cfg.mode {
                RetentionMode::Detach => None,
                RetentionMode::Drop => Some(format!("DROP TABLE {child}")),
                RetentionMode::Archive => Some(format!(
                    "ALTER TABLE {child} SET SCHEMA {}",
                    qi(cfg.archive_schema.as_deref().unwrap_or("public"))
                )),
            };
            let kept = match cfg.mode {
                RetentionMode::Drop => None,
                _ => Spi::get_one_with_args::<pg_sys::Oid>(
                    "SELECT $1::regclass::oid",
                    &[child.as_str().into()],
                )?,
            };
            retire.push(Retire {
                child: child.clone(),
                detach,
                after,
                kept,
            });
        }
    }
    Ok(Some(SetWork {
        parent,
        cfg,
        default,
        create: p.create,
        retire,
    }))
}

/// Where the steps of a maintenance run commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Txn {
    /// Inside the caller's transaction (a transaction block, or CALL from a function).
    Caller,
    /// A CALL outside a transaction block, through a non-atomic SPI connection.
    Procedure,
    /// The scheduler worker, between its own transactions.
    Worker,
}

/// Ends the current step's transaction and starts the next one (under a fresh snapshot).
pub(super) fn commit(txn: Txn) {
    // SAFETY: in Procedure mode our non-atomic SPI connection is the innermost one (every
    // step's own SPI use has ended); in Worker mode the worker is inside a transaction it
    // started and finishes after us, and we leave it in one with a snapshot pushed.
    unsafe {
        match txn {
            Txn::Caller => {}
            Txn::Procedure => {
                pg_sys::PopActiveSnapshot();
                pg_sys::SPI_commit();
                pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
            }
            Txn::Worker => {
                pg_sys::PopActiveSnapshot();
                pg_sys::CommitTransactionCommand();
                pg_sys::StartTransactionCommand();
                pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
            }
        }
    }
    no_flush_wait(txn);
}

/// Maintenance's own transactions do not wait for their WAL flush: a crash can only lose
/// the last steps, which the next run redoes (every step is idempotent), and a run of many
/// short transactions is not slowed by one fsync each.
pub(super) fn no_flush_wait(txn: Txn) {
    if txn != Txn::Caller {
        let _ = Spi::run("SET LOCAL synchronous_commit = off");
    }
}

/// One step as the set's owner, in a subtransaction: an error undoes the step only.
pub(super) fn step(
    owner: pg_sys::Oid,
    f: impl FnOnce() -> Result<(), FloeError>,
) -> Result<(), FloeError> {
    match subxact::try_run(|| as_owner(owner, f)) {
        Ok(r) => r,
        Err(c) => Err(FloeError::Sql {
            code: c.code,
            message: c.message,
            detail: c.detail,
            hint: "The step was rolled back; maintenance retries at its next run.".into(),
        }),
    }
}

/// One pass over a set, each DDL step in its own transaction (unless `txn` is `Caller`), its
/// outcome recorded in `floe.partition_sets`; one failing set does not stop the others.
/// Returns the concurrent detaches left for the worker (which records the set after them).
pub(super) fn maintain_set(
    key: &str,
    as_of: Option<TimestampWithTimeZone>,
    txn: Txn,
) -> (Option<String>, Vec<ConcurrentDetach>) {
    no_flush_wait(txn);
    // One maintenance of a set at a time (the worker and a CALL by hand, say): the second
    // skips the set instead of colliding with the first one's steps.
    if !lock_set(key, txn) {
        pgrx::notice!("floe: partition set {key} is being maintained by another session; skipped");
        return (None, Vec::new());
    }
    let planned = match subxact::try_run(|| plan_set(key, as_of, txn == Txn::Worker)) {
        Ok(r) => r,
        Err(c) => Err(caught("planning", c)),
    };
    let mut concurrent = Vec::new();
    let run = || {
        planned.and_then(|work| {
            let Some(w) = work else { return Ok(()) };
            let owner = w.parent.owner;
            let default = w.default.as_deref();
            commit(txn);
            // One transaction per new child and per retired child: the strong locks each takes
            // (the default partition, briefly the parent) last milliseconds, never a whole run.
            for r in &w.create {
                let mut staged = false;
                step(owner, || {
                    staged =
                        create_or_stage_child(&w.parent, &w.cfg, r, default, txn != Txn::Caller)?;
                    Ok(())
                })?;
                commit(txn);
                if let (true, Some(default)) = (staged, default) {
                    let validated = step(owner, || validate_exclusion(default, r));
                    commit(txn);
                    if let Err(e) = validated {
                        // A row of the period arrived: writers must not keep hitting the CHECK.
                        let _ = step(owner, || drop_exclusion(default, r));
                        commit(txn);
                        return Err(e);
                    }
                    step(owner, || attach_staged_child(&w.parent, &w.cfg, r, default))?;
                    commit(txn);
                }
            }
            for r in &w.retire {
                match &r.detach {
                    Detach::Concurrent(sql) => {
                        concurrent.push(ConcurrentDetach {
                            owner,
                            detach_sql: sql.clone(),
                            after_sql: r.after.clone(),
                            kept: r.kept.map(|oid| (oid, w.parent.oid)),
                        });
                        continue;
                    }
                    Detach::Plain(sql) | Detach::Finalize(sql) => step(owner, || {
                        let retire = || {
                            ddl(sql)?;
                            if let Some(after) = &r.after {
                                ddl(after)?;
                            }
                            if let Some(oid) = r.kept {
                                crate::tenant::isolate_retired(oid, w.parent.oid)?;
                            }
                            Ok(())
                        };
                        if key == crate::audit::LOG_SET {
                            crate::audit::retire_month(&r.child, retire)
                        } else {
                            retire()
                        }
                    })?,
                }
                commit(txn);
            }
            Ok(())
        })
    };
    // The audit log's own months are made and retired under floe's custody flag: the event
    // triggers that refuse a month detached or dropped by hand stand aside (audit/custody.rs).
    let outcome = if key == crate::audit::LOG_SET {
        crate::audit::internal(run)
    } else {
        run()
    };
    let error = outcome.err().map(|e| e.to_string());
    if let Some(e) = &error {
        pgrx::warning!("floe: partition maintenance of {key} failed: {e}");
    }
    if concurrent.is_empty() || error.is_some() {
        record_caught(key, error.as_deref());
        concurrent.clear();
        unlock_set(key, txn);
    }
    (error, concurrent)
}

/// Advisory lock class of partition sets ("floe" in ASCII); the second key is the set's.
pub(super) const SET_LOCK_CLASS: i32 = 0x666c_6f65;

/// Takes the set's advisory lock without waiting: for the caller's transaction when
/// maintenance runs inside it, else for the session (released by [`unlock_set`]).
pub(super) fn lock_set(key: &str, txn: Txn) -> bool {
    let sql = if txn == Txn::Caller {
        "SELECT pg_catalog.pg_try_advisory_xact_lock($1, pg_catalog.hashtext($2))"
    } else {
        "SELECT pg_catalog.pg_try_advisory_lock($1, pg_catalog.hashtext($2))"
    };
    matches!(
        subxact::run(|| Spi::get_one_with_args::<bool>(sql, &[SET_LOCK_CLASS.into(), key.into()])),
        Ok(Ok(Some(true)))
    )
}

pub(super) fn unlock_set(key: &str, txn: Txn) {
    if txn != Txn::Caller {
        let _ = subxact::run(|| {
            Spi::get_one_with_args::<bool>(
                "SELECT pg_catalog.pg_advisory_unlock($1, pg_catalog.hashtext($2))",
                &[SET_LOCK_CLASS.into(), key.into()],
            )
        });
    }
}

/// Records the outcome of a pass in `floe.partition_sets`.
pub(super) fn record(key: &str, error: Option<&str>) -> Result<(), FloeError> {
    Spi::run_with_args(
        "UPDATE floe.partition_sets SET last_maintenance = pg_catalog.clock_timestamp(), last_error = $2
          WHERE parent = $1",
        &[key.into(), error.into()],
    )?;
    Ok(())
}

pub(super) fn record_caught(key: &str, error: Option<&str>) {
    match subxact::run(|| record(key, error)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => pgrx::warning!("floe: could not record maintenance of {key}: {e}"),
        Err(c) => pgrx::warning!(
            "floe: could not record maintenance of {key}: {}",
            c.describe()
        ),
    }
}

/// The sets a maintenance run covers: one parent, or every automatic set the caller may see.
pub(super) fn set_keys(parent: Option<pg_sys::Oid>) -> Result<Vec<String>, FloeError> {
    Spi::connect(|client| {
        let mut out = Vec::new();
        let rows = match parent {
            Some(oid) => client.select(
                "SELECT floe.partition_set_key($1::regclass)",
                None,
                &[oid.into()],
            )?,
            None => client.select(
                "SELECT parent FROM floe.partition_sets WHERE automatic ORDER BY parent",
                None,
                &[],
            )?,
        };
        for row in rows {
            if let Some(k) = row.get::<String>(1)? {
                out.push(k);
            }
        }
        Ok(out)
    })
}

thread_local! {
    /// A maintenance run the scheduler worker was asked for (by its built-in job) and runs
    /// after that job's transaction, one transaction per set.
    pub(super) static DEFERRED: RefCell<Option<(Option<pg_sys::Oid>, Option<TimestampWithTimeZone>)>> = const { RefCell::new(None) };
}

/// Called by the scheduler worker after each job: a deferred maintenance run, if any.
pub fn take_deferred() -> Option<(Option<pg_sys::Oid>, Option<TimestampWithTimeZone>)> {
    DEFERRED.with(|d| d.borrow_mut().take())
}

/// The maintenance of the scheduler worker: each set in its own transaction, retired
/// children of sets without a default partition detached CONCURRENTLY as top-level
/// statements.
pub fn run_in_worker(parent: Option<pg_sys::Oid>, as_of: Option<TimestampWithTimeZone>) {
    use pgrx::bgworkers::BackgroundWorker;
    let keys = BackgroundWorker::transaction(|| subxact::run(|| set_keys(parent)));
    let keys = match keys {
        Ok(Ok(k)) => k,
        Ok(Err(e)) => {
            pgrx::warning!("floe: partition maintenance could not list its sets: {e}");
            return;
        }
        Err(c) => {
            pgrx::warning!(
                "floe: partition maintenance could not list its sets: {}",
                c.describe()
            );
            return;
        }
    };
    for key in keys {
        let (_, concurrent) =
            BackgroundWorker::transaction(|| maintain_set(&key, as_of, Txn::Worker));
        if concurrent.is_empty() {
            continue;
        }
        let mut first_error = None;
        for d in concurrent {
            // As the worker itself: DETACH CONCURRENTLY runs none of the table's code (it
            // adds the partition constraint as an already valid CHECK, scanning nothing).
            let detached =
                crate::toplevel::run_top_level(&d.detach_sql, gucs::partition_lock_timeout_ms());
            let error = match detached {
                Err(e) => Some(format!("{}: {e}", d.detach_sql)),
                Ok(()) if d.after_sql.is_none() && d.kept.is_none() => None,
                Ok(()) => BackgroundWorker::transaction(|| {
                    step(d.owner, || {
                        if let Some(sql) = &d.after_sql {
                            ddl(sql)?;
                        }
                        if let Some((child, parent)) = d.kept {
                            crate::tenant::isolate_retired(child, parent)?;
                        }
                        Ok(())
                    })
                    .err()
                    .map(|e| e.to_string())
                }),
            };
            if let Some(e) = error {
                pgrx::warning!("floe: partition retirement in {key} failed: {e}");
                // Only one detach can be pending per parent: the rest waits for next run.
                first_error = Some(e);
                break;
            }
        }
        BackgroundWorker::transaction(|| {
            record_caught(&key, first_error.as_deref());
            unlock_set(&key, Txn::Worker);
        });
    }
}
