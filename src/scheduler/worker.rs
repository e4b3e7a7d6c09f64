//! The background workers: one launcher per cluster, one scheduler per database with floe.
//!
//! The launcher (static, restarted by the postmaster) connects to the `postgres` database,
//! lists the databases, and starts a dynamic "floe scheduler" worker for each one that has
//! not said it lacks the extension. `CREATE EXTENSION floe` bumps a shared wake counter, so a
//! new database gets its worker within a second or two; a scheduler exits when its database
//! drops the extension, and a ProcessUtility hook stops it before `DROP DATABASE`.
//!
//! A scheduler sleeps on its latch until the next job is due (at most `IDLE_CHECK`), marks
//! runs left `running` by a crash as failed when it starts, and runs each due job in its own
//! transaction (the run row is committed first, so a crash leaves a trace). History pruning
//! is the built-in job `floe.prune_job_history`.
//!
//! This file is the two workers' loops (surface, like `api.rs`): the registry of schedulers
//! and the wakeups are `wake.rs`, the DROP DATABASE hook `dropdb.rs`, running a job and its
//! run rows `runs.rs`.

use super::dropdb;
use super::runs;
use super::wake::{self, libc_kill, set_slot, unix_secs, REGISTRY, WAKE};
use crate::gucs;
use pgrx::bgworkers::*;
use pgrx::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The bgw_type of the per-database worker (what `pg_stat_activity.backend_type` shows).
pub const SCHEDULER_TYPE: &str = "floe scheduler";
const LAUNCHER_TYPE: &str = "floe launcher";
/// Longest sleep of a scheduler: how soon it notices DROP EXTENSION or a new job.
const IDLE_CHECK: Duration = Duration::from_secs(5);
/// How often the launcher lists the databases without being woken.
const RESCAN: Duration = Duration::from_secs(30);

/// Registers shared memory, the launcher and the DROP DATABASE hook. Only when preloading.
pub fn init() {
    wake::init();
    BackgroundWorkerBuilder::new(LAUNCHER_TYPE)
        .set_type(LAUNCHER_TYPE)
        .set_function("floe_launcher_main")
        .set_library("floe")
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(Some(Duration::from_secs(5)))
        .load();
    dropdb::install_utility_hook();
}

/// Re-reads the configuration after a SIGHUP; true when it did.
fn reload_config_if_asked() -> bool {
    if BackgroundWorker::sighup_received() {
        // SAFETY: the standard SIGHUP handling of a background worker.
        unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        return true;
    }
    false
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn floe_launcher_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    BackgroundWorker::connect_worker_to_spi(Some("postgres"), None);
    wake::register_launcher();
    let mut workers: HashMap<u32, DynamicBackgroundWorker> = HashMap::new();
    let mut seen_wake = u64::MAX;
    let mut last_scan: Option<Instant> = None;
    let mut warned_cap = false;
    while BackgroundWorker::wait_latch(Some(Duration::from_secs(1))) {
        // A reload may have changed floe.max_workers: follow it now, not at the next rescan.
        let reloaded = reload_config_if_asked();
        let cap = usize::try_from(gucs::max_workers()).unwrap_or(0);
        if workers.len() > cap {
            let mut running: Vec<u32> = workers.keys().copied().collect();
            running.sort_unstable();
            for dboid in running.split_off(cap) {
                if let Some(w) = workers.remove(&dboid) {
                    log!("floe launcher: floe.max_workers = {cap}: stopping the scheduler of database oid {dboid}");
                    let _ = w.terminate();
                }
            }
            warned_cap = false;
        }
        let before = workers.len();
        // A worker that has not started yet is still ours: forgetting it would start a
        // second scheduler for the same database.
        workers.retain(|_, w| {
            !matches!(
                w.pid(),
                Err(BackgroundWorkerStatus::Stopped | BackgroundWorkerStatus::PostmasterDied)
            )
        });
        // a worker that ended (a database without floe, or a dropped one) frees a slot
        let freed = workers.len() < before;
        let wake = WAKE.get().load(Ordering::SeqCst);
        let woken = wake != seen_wake;
        seen_wake = wake;
        if !woken && !freed && !reloaded && last_scan.is_some_and(|t| t.elapsed() < RESCAN) {
            continue;
        }
        last_scan = Some(Instant::now());
        let databases = BackgroundWorker::transaction(|| {
            Spi::connect(|client| {
                let mut out = Vec::new();
                let rows = client.select(
                    &format!(
                        "SELECT oid::int8, datname::text FROM pg_catalog.pg_database
                          WHERE datallowconn AND NOT datistemplate AND {}
                          ORDER BY oid",
                        listed_in_floe_databases("datname")
                    ),
                    None,
                    &[],
                )?;
                for row in rows {
                    if let (Some(oid), Some(name)) = (row.get::<i64>(1)?, row.get::<String>(2)?) {
                        out.push((oid as u32, name));
                    }
                }
                Ok::<_, pgrx::spi::SpiError>(out)
            })
            .unwrap_or_default()
        });
        let now = unix_secs();
        for (dboid, name) in databases {
            if workers.contains_key(&dboid) {
                continue;
            }
            let slot = REGISTRY.share().get(dboid);
            if slot.is_some_and(|s| s.absent || s.dropping_until > now) {
                continue;
            }
            if workers.len() >= cap {
                if !warned_cap {
                    log!(
                        "floe launcher: floe.max_workers = {cap} reached; database \"{name}\" is not checked for floe and gets no scheduler (raise floe.max_workers)"
                    );
                    warned_cap = true;
                }
                continue;
            }
            match BackgroundWorkerBuilder::new(&format!("{SCHEDULER_TYPE} for {name}"))
                .set_type(SCHEDULER_TYPE)
                .set_function("floe_scheduler_main")
                .set_library("floe")
                .set_argument(Some(pg_sys::Datum::from(dboid)))
                .enable_spi_access()
                .set_start_time(BgWorkerStartTime::RecoveryFinished)
                .set_restart_time(None)
                .set_notify_pid(unsafe { pg_sys::MyProcPid })
                .load_dynamic()
            {
                Ok(worker) => {
                    workers.insert(dboid, worker);
                }
                Err(_) => {
                    if !warned_cap {
                        log!("floe launcher: no background worker slot left for database \"{name}\" (raise max_worker_processes)");
                        warned_cap = true;
                    }
                }
            }
        }
    }
    for (_, w) in workers.drain() {
        let _ = w.terminate();
    }
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn floe_scheduler_main(arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    // SIGTERM must also end a job that is running (shutdown, DROP DATABASE): Postgres's own
    // handler makes the next interrupt check exit, where pgrx's would wait for the job.
    // SAFETY: installing the standard backend handler; signals are unblocked by pgrx above.
    unsafe {
        crate::compat::install_signal_handler(15, postgres_die);
    }
    let dboid = arg.value() as u32;
    crate::toplevel::mark_scheduler_worker();
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(pg_sys::Oid::from(dboid)), None);
    // No floe here: say so, so the launcher leaves the database alone until a release
    // (CREATE EXTENSION). A release that came after this look (the extension committed after
    // our snapshot) keeps the database in play: look again.
    loop {
        let seen = wake::releases(dboid);
        if extension_present() {
            break;
        }
        let mut recorded = true;
        set_slot(dboid, |s| recorded = s.settle_absent(seen));
        if recorded {
            return;
        }
    }
    // One scheduler per database: if another one is alive, leave.
    let me = unsafe { pg_sys::MyProcPid };
    let mut duplicate = false;
    set_slot(dboid, |s| {
        if s.pid > 0 && s.pid != me && libc_kill(s.pid, 0) == 0 {
            duplicate = true;
        } else {
            s.pid = me;
            s.absent = false;
        }
    });
    if duplicate {
        log!("floe scheduler: another scheduler already serves this database; exiting");
        return;
    }
    BackgroundWorker::transaction(|| {
        let recovered = crate::subxact::run(runs::recover_interrupted_runs)
            .map_err(|c| c.describe())
            .and_then(|r| r.map_err(|e| e.to_string()));
        if let Err(e) = recovered {
            pgrx::warning!("floe scheduler: could not recover the runs a stop interrupted: {e}");
        }
    });
    // floe's own statements run with a search_path no job owner can write to.
    BackgroundWorker::transaction(|| {
        let _ = Spi::run("SET search_path = pg_catalog, pg_temp");
    });
    let mut sleep = Duration::from_millis(100);
    while BackgroundWorker::wait_latch(Some(sleep)) {
        reload_config_if_asked();
        if !extension_present() {
            break;
        }
        let busy = run_due_jobs_once();
        sleep = until_next_due();
        if busy {
            // A due job is held by a manual run elsewhere: check back in a second, not a spin.
            sleep = sleep.max(Duration::from_secs(1));
        }
    }
    set_slot(dboid, |s| {
        if s.pid == me {
            s.pid = 0;
        }
    });
}

/// SQL: the database named by `expr` gets a scheduler under `floe.databases` (empty: all).
fn listed_in_floe_databases(expr: &str) -> String {
    format!(
        "(pg_catalog.current_setting('floe.databases') = '' OR {expr} = ANY (pg_catalog.string_to_array(
             pg_catalog.replace(pg_catalog.current_setting('floe.databases'), ' ', ''), ',')))"
    )
}

/// Whether this database still wants a scheduler: floe is installed, and `floe.databases` is
/// empty or lists it.
fn extension_present() -> bool {
    BackgroundWorker::transaction(|| {
        Spi::get_one::<bool>(&format!(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'floe') AND {}",
            listed_in_floe_databases("pg_catalog.current_database()")
        ))
        .ok()
        .flatten()
        .unwrap_or(false)
    })
}

/// Each due job in its own transaction; the run row is committed before the job starts.
/// Returns whether some due job was busy (held by another runner). An error in floe's own
/// handling of a job is logged, recorded on the job and pushes it a minute on; it never ends
/// the worker (which would restart and fail again in a loop).
fn run_due_jobs_once() -> bool {
    let due = BackgroundWorker::transaction(|| {
        crate::subxact::run(|| runs::due_jobs().unwrap_or_default()).unwrap_or_default()
    });
    let mut busy = false;
    for (jobid, skip) in due {
        if BackgroundWorker::sigterm_received() {
            break;
        }
        // A maintenance request left by an earlier job that then failed is not honoured.
        let _ = crate::partition::take_deferred();
        let outcome = BackgroundWorker::transaction(|| {
            crate::subxact::run(|| runs::open_run(jobid))
                .map_err(|c| c.describe())
                .and_then(|r| r.map_err(|e| e.to_string()))
        });
        let ran = match outcome {
            Ok(run) => BackgroundWorker::transaction(|| {
                crate::subxact::run(|| runs::run_scheduled(jobid, skip, run))
                    .map_err(|c| c.describe())
                    .and_then(|r| r.map_err(|e| e.to_string()))
            }),
            Err(e) => Err(e),
        };
        match ran {
            Ok(ran) => busy |= !ran,
            Err(e) => {
                log!("floe scheduler: job {jobid} could not be run: {e}");
                BackgroundWorker::transaction(|| {
                    let _ = crate::subxact::run(|| runs::postpone(jobid, &e));
                });
            }
        }
        // A job that asked for partition maintenance (CALL floe.run_maintenance()) gets it
        // now, one transaction per set, outside the job's transaction.
        if let Some((parent, as_of)) = crate::partition::take_deferred() {
            crate::partition::run_in_worker(parent, as_of);
        }
        // Nothing a job left in this session may reach the next job (another role's):
        // temporary objects, prepared statements, session advisory locks.
        BackgroundWorker::transaction(|| {
            let _ = crate::subxact::run(|| {
                Spi::run("DISCARD TEMP; DEALLOCATE ALL; SELECT pg_catalog.pg_advisory_unlock_all()")
            });
        });
    }
    busy
}

fn until_next_due() -> Duration {
    let ms = BackgroundWorker::transaction(|| {
        Spi::get_one::<f64>(
            "SELECT (extract(epoch FROM min(next_run) - pg_catalog.clock_timestamp()) * 1000)::float8
               FROM floe.jobs WHERE enabled",
        )
        .ok()
        .flatten()
    });
    match ms {
        Some(ms) if ms > 0.0 => Duration::from_millis(ms as u64).min(IDLE_CHECK),
        Some(_) => Duration::from_millis(10),
        None => IDLE_CHECK,
    }
    .max(Duration::from_millis(10))
}

unsafe extern "C-unwind" {
    /// Postgres's SIGTERM handler for backends (tcop/postgres.c).
    #[link_name = "die"]
    fn postgres_die(signal: std::ffi::c_int);
}
