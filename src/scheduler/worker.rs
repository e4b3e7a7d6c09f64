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

use super::api;
use crate::gucs;
use pgrx::bgworkers::*;
use pgrx::lwlock::PgLwLock;
use pgrx::prelude::*;
use pgrx::shmem::PGRXSharedMemory;
use pgrx::{pg_shmem_init, PgAtomic};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The bgw_type of the per-database worker (what `pg_stat_activity.backend_type` shows).
pub const SCHEDULER_TYPE: &str = "floe scheduler";
const LAUNCHER_TYPE: &str = "floe launcher";
/// Longest sleep of a scheduler: how soon it notices DROP EXTENSION or a new job.
const IDLE_CHECK: Duration = Duration::from_secs(5);
/// How often the launcher lists the databases without being woken.
const RESCAN: Duration = Duration::from_secs(30);
const MAX_SLOTS: usize = 64;

#[derive(Clone, Copy, Default)]
#[repr(C)]
pub struct Slot {
    dboid: u32,
    pid: i32,
    /// The database has no floe extension (set by its scheduler, cleared on a wake).
    absent: bool,
    /// DROP DATABASE is stopping this database's scheduler: do not restart it.
    dropping_until: i64,
}

#[derive(Clone, Copy)]
#[repr(C)]
pub struct Registry {
    slots: [Slot; MAX_SLOTS],
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            slots: [Slot::default(); MAX_SLOTS],
        }
    }
}

unsafe impl PGRXSharedMemory for Registry {}

static REGISTRY: PgLwLock<Registry> = unsafe { PgLwLock::new(c"floe_scheduler_registry") };
static WAKE: PgAtomic<AtomicU64> = unsafe { PgAtomic::new(c"floe_scheduler_wake") };

fn unix_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Registry {
    fn slot_mut(&mut self, dboid: u32) -> Option<&mut Slot> {
        if let Some(i) = self.slots.iter().position(|s| s.dboid == dboid) {
            return Some(&mut self.slots[i]);
        }
        let free = self.slots.iter().position(|s| s.dboid == 0)?;
        self.slots[free] = Slot {
            dboid,
            ..Slot::default()
        };
        Some(&mut self.slots[free])
    }

    fn get(&self, dboid: u32) -> Option<Slot> {
        self.slots.iter().find(|s| s.dboid == dboid).copied()
    }
}

/// Registers shared memory, the launcher and the DROP DATABASE hook. Only when preloading.
pub fn init() {
    pg_shmem_init!(REGISTRY);
    pg_shmem_init!(WAKE);
    BackgroundWorkerBuilder::new(LAUNCHER_TYPE)
        .set_type(LAUNCHER_TYPE)
        .set_function("floe_launcher_main")
        .set_library("floe")
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(Some(Duration::from_secs(5)))
        .load();
    install_utility_hook();
}

/// Whether the shared state exists (floe was preloaded).
fn shared_ready() -> bool {
    crate::health::loaded_at_start()
}

/// Asks the launcher to look for databases again (after CREATE EXTENSION). No-op when floe
/// is not preloaded.
pub fn wake_launcher() {
    if shared_ready() {
        // SAFETY: reads this backend's database id.
        let dboid = unsafe { pg_sys::MyDatabaseId }.to_u32();
        // A DROP EXTENSION earlier (in this session or another) held the scheduler off:
        // CREATE EXTENSION ends that at once.
        release(dboid);
        // Once more at commit: a scheduler started before the extension was visible found
        // none and said so.
        pgrx::register_xact_callback(pgrx::PgXactCallbackEvent::Commit, move || release(dboid));
    }
}

/// Lets the launcher start database `dboid`'s scheduler at once: ends a hold (DROP
/// DATABASE/EXTENSION, CREATE DATABASE ... TEMPLATE), forgets that it lacked floe, and wakes
/// the launcher.
fn release(dboid: u32) {
    set_slot(dboid, |s| {
        s.absent = false;
        s.dropping_until = 0;
    });
    WAKE.get().fetch_add(1, Ordering::SeqCst);
}

/// Wakes this database's scheduler when the current transaction commits (after a job was
/// scheduled or changed), so it sees the change at once instead of at its next idle check.
pub fn wake_local_scheduler_at_commit() {
    if !shared_ready() {
        return;
    }
    pgrx::register_xact_callback(pgrx::PgXactCallbackEvent::Commit, || {
        // SAFETY: reads this backend's database id.
        let dboid = unsafe { pg_sys::MyDatabaseId }.to_u32();
        let pid = REGISTRY.share().get(dboid).map_or(0, |s| s.pid);
        if pid > 0 {
            // SIGUSR1 sets the worker's latch (procsignal_sigusr1_handler).
            libc_kill(pid, 10);
        }
    });
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

fn set_slot(dboid: u32, f: impl FnOnce(&mut Slot)) {
    let mut reg = REGISTRY.exclusive();
    if let Some(slot) = reg.slot_mut(dboid) {
        f(slot);
    }
}

static IS_SCHEDULER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this process is a floe scheduler worker.
pub fn is_scheduler_worker() -> bool {
    IS_SCHEDULER.load(std::sync::atomic::Ordering::Relaxed)
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
    IS_SCHEDULER.store(true, std::sync::atomic::Ordering::Relaxed);
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(pg_sys::Oid::from(dboid)), None);
    if !extension_present() {
        set_slot(dboid, |s| {
            s.absent = true;
            s.pid = 0;
        });
        return;
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
        let recovered = crate::subxact::run(api::recover_interrupted_runs)
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
        crate::subxact::run(|| api::due_jobs().unwrap_or_default()).unwrap_or_default()
    });
    let mut busy = false;
    for (jobid, skip) in due {
        if BackgroundWorker::sigterm_received() {
            break;
        }
        // A maintenance request left by an earlier job that then failed is not honoured.
        let _ = crate::partition::take_deferred();
        let outcome = BackgroundWorker::transaction(|| {
            crate::subxact::run(|| api::open_run(jobid))
                .map_err(|c| c.describe())
                .and_then(|r| r.map_err(|e| e.to_string()))
        });
        let ran = match outcome {
            Ok(run) => BackgroundWorker::transaction(|| {
                crate::subxact::run(|| api::run_scheduled(jobid, skip, run))
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
                    let _ = crate::subxact::run(|| api::postpone(jobid, &e));
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

// ---------------------------------------------------------------------------------------
// DROP DATABASE: stop the database's scheduler first (a connected worker makes it fail).
// ---------------------------------------------------------------------------------------

static mut PREV_UTILITY: pg_sys::ProcessUtility_hook_type = None;

fn install_utility_hook() {
    // SAFETY: _PG_init of the postmaster, single-threaded.
    unsafe {
        PREV_UTILITY = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(floe_process_utility);
    }
}

/// Whether `stmt` is a DROP EXTENSION that names floe.
///
/// # Safety
/// `stmt` must be a valid parse node.
unsafe fn drops_floe(stmt: *mut pg_sys::Node) -> bool {
    unsafe {
        if (*stmt).type_ != pg_sys::NodeTag::T_DropStmt {
            return false;
        }
        let drop = stmt as *mut pg_sys::DropStmt;
        if (*drop).removeType != pg_sys::ObjectType::OBJECT_EXTENSION {
            return false;
        }
        let names = pgrx::list::PgList::<pg_sys::Node>::from_pg((*drop).objects);
        let found = names.iter_ptr().any(|node| {
            !node.is_null()
                && (*node).type_ == pg_sys::NodeTag::T_String
                && !(*(node as *mut pg_sys::String)).sval.is_null()
                && std::ffi::CStr::from_ptr((*(node as *mut pg_sys::String)).sval).to_bytes()
                    == b"floe"
        });
        found
    }
}

/// The database CREATE DATABASE copies (its TEMPLATE option), if `stmt` is one that names it.
///
/// # Safety
/// `stmt` must be a valid parse node.
unsafe fn template_of(stmt: *mut pg_sys::Node) -> Option<pg_sys::Oid> {
    unsafe {
        if (*stmt).type_ != pg_sys::NodeTag::T_CreatedbStmt {
            return None;
        }
        let create = stmt as *mut pg_sys::CreatedbStmt;
        let options = pgrx::list::PgList::<pg_sys::DefElem>::from_pg((*create).options);
        let template = options.iter_ptr().find(|d| {
            !d.is_null()
                && !(**d).defname.is_null()
                && std::ffi::CStr::from_ptr((**d).defname).to_bytes() == b"template"
        })?;
        let name = pg_sys::defGetString(template);
        let oid = pg_sys::get_database_oid(name, true);
        (oid != pg_sys::InvalidOid).then_some(oid)
    }
}

/// Before DROP DATABASE (of that database), CREATE DATABASE ... TEMPLATE (of the template) or
/// DROP EXTENSION floe (in this one), stops the database's scheduler and waits (up to 5 s) for
/// it: a connected worker would make DROP DATABASE and CREATE DATABASE fail, and a running
/// job would hold up DROP EXTENSION until it ends. Returns the template's oid after stopping
/// its scheduler for CREATE DATABASE (which the caller lets start again afterwards).
fn stop_scheduler_before_dropdb(stmt: *mut pg_sys::Node) -> Option<u32> {
    // SAFETY: `stmt` is a valid parse node handed to ProcessUtility.
    unsafe {
        if stmt.is_null() {
            return None;
        }
        let template = template_of(stmt);
        let (dboid, hold) = if (*stmt).type_ == pg_sys::NodeTag::T_DropdbStmt {
            let drop = stmt as *mut pg_sys::DropdbStmt;
            (pg_sys::get_database_oid((*drop).dbname, true), 60)
        } else if let Some(oid) = template {
            // Held off while CREATE DATABASE starts copying; a scheduler started later waits
            // for the copy on the database's lock, which is harmless.
            (oid, 10)
        } else if drops_floe(stmt) {
            // A DROP EXTENSION rolled back lets the scheduler return at once.
            let dboid = pg_sys::MyDatabaseId.to_u32();
            pgrx::register_xact_callback(pgrx::PgXactCallbackEvent::Abort, move || release(dboid));
            (pg_sys::MyDatabaseId, 60)
        } else {
            return None;
        };
        if dboid == pg_sys::InvalidOid {
            return None;
        }
        let dboid = dboid.to_u32();
        let pid = {
            let mut reg = REGISTRY.exclusive();
            match reg.slot_mut(dboid) {
                Some(slot) => {
                    slot.dropping_until = unix_secs() + hold;
                    slot.pid
                }
                None => 0,
            }
        };
        let template = template.map(|_| dboid);
        if pid <= 0 {
            return template;
        }
        libc_kill(pid, 15);
        for _ in 0..500 {
            if libc_kill(pid, 0) != 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
            pg_sys::check_for_interrupts!();
        }
        template
    }
}

/// After CREATE DATABASE ... TEMPLATE: the template's scheduler may start again, and the new
/// database (a copy of one with floe) gets its own.
fn after_createdb(template: Option<u32>) {
    if let Some(dboid) = template {
        release(dboid);
    }
}

unsafe extern "C-unwind" {
    /// Postgres's SIGTERM handler for backends (tcop/postgres.c).
    #[link_name = "die"]
    fn postgres_die(signal: std::ffi::c_int);
}

fn libc_kill(pid: i32, sig: i32) -> i32 {
    unsafe extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
    }
    // SAFETY: kill(2) with a pid from floe's registry.
    unsafe { kill(pid, sig) }
}

// The signature is Postgres's ProcessUtility_hook_type.
#[cfg(not(feature = "pg13"))]
#[allow(clippy::too_many_arguments)]
#[pg_guard]
unsafe extern "C-unwind" fn floe_process_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const std::ffi::c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    query_env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    unsafe {
        // On a Citus coordinator, before Citus sees it (a refusal, or COPY TO as a query).
        let pstmt = match crate::citus::utility::before(pstmt) {
            Ok(p) => p,
            Err(e) => e.raise(),
        };
        let template = if pstmt.is_null() {
            None
        } else {
            stop_scheduler_before_dropdb((*pstmt).utilityStmt)
        };
        match PREV_UTILITY {
            Some(prev) => prev(
                pstmt,
                query_string,
                read_only_tree,
                context,
                params,
                query_env,
                dest,
                qc,
            ),
            None => pg_sys::standard_ProcessUtility(
                pstmt,
                query_string,
                read_only_tree,
                context,
                params,
                query_env,
                dest,
                qc,
            ),
        }
        after_createdb(template);
    }
}

#[cfg(feature = "pg13")]
#[pg_guard]
unsafe extern "C-unwind" fn floe_process_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const std::ffi::c_char,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    query_env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    unsafe {
        // On a Citus coordinator, before Citus sees it (a refusal, or COPY TO as a query).
        let pstmt = match crate::citus::utility::before(pstmt) {
            Ok(p) => p,
            Err(e) => e.raise(),
        };
        let template = if pstmt.is_null() {
            None
        } else {
            stop_scheduler_before_dropdb((*pstmt).utilityStmt)
        };
        match PREV_UTILITY {
            Some(prev) => prev(pstmt, query_string, context, params, query_env, dest, qc),
            None => pg_sys::standard_ProcessUtility(
                pstmt,
                query_string,
                context,
                params,
                query_env,
                dest,
                qc,
            ),
        }
        after_createdb(template);
    }
}
