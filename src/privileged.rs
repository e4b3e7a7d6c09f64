//! Statements on floe's own tables for functions every role may call (the queue's), run as
//! the extension's owner from plans saved once per backend.
//!
//! The pattern of a SECURITY DEFINER function, kept in Rust so that the caller's identity
//! survives: `run` records the calling role (`Session::caller`, bound as a parameter so that
//! each statement checks membership in the owner role of what it touches), switches to the
//! extension's owner with `search_path` pinned to `pg_catalog, pg_temp` (no operator or
//! function of the caller's schemas can be picked up), runs the statements and switches back.
//! An ERROR unwinds to the (sub)transaction abort, which restores the role and the settings.
//! Plans are prepared on first use and kept (`SPI_keepplan`), and run as generic plans
//! (`plan_cache_mode` is forced too: the statements are written for their generic plans, and
//! custom plans would be re-planned on every call). The plan cache revalidates them after
//! DDL; they are dropped when the extension is re-created (its schema gets a new oid).

use crate::error::FloeError;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys::{self, PgOid};
use pgrx::spi::{OwnedPreparedStatement, Spi, SpiClient, SpiTupleTable};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

struct Cache {
    schema: pg_sys::Oid,
    owner: pg_sys::Oid,
    /// Saved plans by the address of their SQL, with the argument types they were made for.
    plans: HashMap<usize, (Rc<OwnedPreparedStatement>, Vec<pg_sys::Oid>)>,
    /// Saved plans of statements assembled at run time, by their text and argument types.
    assembled: HashMap<(String, Vec<pg_sys::Oid>), Rc<OwnedPreparedStatement>>,
}

thread_local! {
    static CACHE: RefCell<Option<Cache>> = const { RefCell::new(None) };
}

/// An open SPI connection running as the extension's owner.
pub struct Session<'a, 'conn> {
    client: &'a mut SpiClient<'conn>,
    /// The role that called floe (bind it as `$n::oid` where the statement checks rights).
    pub caller: pg_sys::Oid,
}

impl<'conn> Session<'_, 'conn> {
    /// Runs one of floe's statements (a `&'static str`: its address keys the saved plan)
    /// with `args`, whose types the plan is prepared with on first use.
    pub fn run(
        &mut self,
        sql: &'static str,
        args: &[DatumWithOid<'_>],
    ) -> Result<SpiTupleTable<'conn>, FloeError> {
        let key = sql.as_ptr() as usize;
        let types: Vec<pg_sys::Oid> = args.iter().map(|a| a.oid()).collect();
        let cached = CACHE.with_borrow(|c| c.as_ref().and_then(|c| c.plans.get(&key).cloned()));
        let stmt = match cached {
            Some((stmt, made_for)) if made_for == types => stmt,
            Some(_) => {
                // pgrx does not check argument types against a saved plan; floe does.
                return Err(FloeError::Internal {
                    message: format!(
                        "a saved statement was called with other argument types: {sql}"
                    ),
                });
            }
            None => {
                let pg_types: Vec<PgOid> = types.iter().map(|&t| PgOid::from(t)).collect();
                let stmt = Rc::new(self.client.prepare_mut(sql, &pg_types)?.keep());
                CACHE.with_borrow_mut(|c| {
                    if let Some(c) = c.as_mut() {
                        c.plans.insert(key, (stmt.clone(), types));
                    }
                });
                stmt
            }
        };
        // Every statement is prepared as mutating (prepare_mut: run with read_only = false,
        // seeing the transaction's own writes); select() runs it without pgrx's update()'s
        // first step, asking for a transaction id. A write gets one when it writes; a read
        // stays a read: a read-only transaction through floe writes no commit record, and
        // works on a hot standby, where asking for an id is an error.
        Ok(self.client.select(&*stmt, None, args)?)
    }

    /// Creates something once per database: when `exists` (a statement returning one
    /// boolean) says it is missing, takes `lock` (an advisory transaction lock) and, if it is
    /// still missing, runs `create`. Concurrent first callers wait for each other instead of
    /// both creating it.
    pub fn create_once(
        &mut self,
        exists: &'static str,
        lock: &'static str,
        create: &'static str,
    ) -> Result<(), FloeError> {
        let present = |s: &mut Self| -> Result<bool, FloeError> {
            Ok(s.run(exists, &[])?.first().get::<bool>(1)?.unwrap_or(false))
        };
        if present(self)? {
            return Ok(());
        }
        self.run(lock, &[])?;
        if !present(self)? {
            self.run(create, &[])?;
        }
        Ok(())
    }

    /// Prepares a statement floe assembles at run time (around an identifier it quoted
    /// itself), kept for the life of the backend; the caller caches it (and runs it with
    /// [`Session::run_kept`]).
    pub fn prepare_kept(
        &mut self,
        sql: &str,
        types: &[pg_sys::Oid],
    ) -> Result<OwnedPreparedStatement, FloeError> {
        let pg_types: Vec<PgOid> = types.iter().map(|&t| PgOid::from(t)).collect();
        Ok(self.client.prepare_mut(sql, &pg_types)?.keep())
    }

    /// Runs, once, a statement floe assembled at run time around identifiers quoted by
    /// `format('%I')` (DDL); no plan is kept.
    pub fn execute(&mut self, sql: &str) -> Result<(), FloeError> {
        self.client.update(sql, None, &[])?;
        Ok(())
    }

    /// Runs a statement floe assembled at run time (identifiers it quoted itself, values
    /// bound as `args`), preparing it on first use and keeping the plan for the backend's
    /// life, keyed by its text and argument types.
    pub fn run_assembled(
        &mut self,
        sql: &str,
        args: &[DatumWithOid<'_>],
    ) -> Result<SpiTupleTable<'conn>, FloeError> {
        let key = (
            sql.to_string(),
            args.iter().map(|a| a.oid()).collect::<Vec<_>>(),
        );
        let cached = CACHE.with_borrow(|c| c.as_ref().and_then(|c| c.assembled.get(&key).cloned()));
        let stmt = match cached {
            Some(stmt) => stmt,
            None => {
                let stmt = Rc::new(self.prepare_kept(sql, &key.1)?);
                CACHE.with_borrow_mut(|c| {
                    if let Some(c) = c.as_mut() {
                        c.assembled.insert(key, stmt.clone());
                    }
                });
                stmt
            }
        };
        // As in `run`: prepared as mutating, run without asking for a transaction id.
        Ok(self.client.select(&*stmt, None, args)?)
    }

    /// Runs a statement from [`Session::prepare_kept`].
    pub fn run_kept(
        &mut self,
        stmt: &OwnedPreparedStatement,
        args: &[DatumWithOid<'_>],
    ) -> Result<SpiTupleTable<'conn>, FloeError> {
        Ok(self.client.update(stmt, None, args)?)
    }
}

const TABLE_FACTS: &str = "
SELECT c.relkind::text, n.nspname::text, pg_catalog.pg_has_role($2, c.relowner, 'USAGE'),
       pg_catalog.format('%I.%I', n.nspname, c.relname), c.relispartition
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.oid = $1";

/// A table (plain or partitioned) a floe function was given, and whether its caller owns it.
pub struct CallerTable {
    /// `schema.table`, quoted as `format('%I.%I')` quotes.
    pub qualified: String,
    pub schema: String,
    pub partition: bool,
    owned: bool,
}

impl CallerTable {
    /// 42501 unless the caller owns the table (or is a member of the owning role).
    pub fn require_owner(&self, what: &str) -> Result<(), FloeError> {
        if self.owned {
            return Ok(());
        }
        Err(FloeError::PermissionDenied {
            message: format!("must be owner of table {} to {what} it", self.qualified),
            detail: None,
            hint: "Run it as the table's owner (or a member of the owning role).".into(),
        })
    }
}

impl Session<'_, '_> {
    /// Relation `oid` as a table: 42704 when there is none, 42809 with the hint `takes`
    /// (what the function takes) when it is not a plain or partitioned table.
    pub fn table(&mut self, oid: pg_sys::Oid, takes: &str) -> Result<CallerTable, FloeError> {
        let caller = self.caller;
        let rows = self.run(TABLE_FACTS, &[oid.into(), caller.into()])?;
        if rows.is_empty() {
            return Err(FloeError::NotFound {
                kind: "table",
                name: format!("with oid {}", oid.to_u32()),
                hint: "Pass an existing table.".into(),
            });
        }
        let row = rows.first();
        let kind: String = row.get(1)?.unwrap_or_default();
        let table = CallerTable {
            schema: row.get(2)?.unwrap_or_default(),
            owned: row.get(3)?.unwrap_or(false),
            qualified: row.get(4)?.unwrap_or_default(),
            partition: row.get(5)?.unwrap_or(false),
        };
        if kind != "r" && kind != "p" {
            return Err(FloeError::WrongObjectType {
                message: format!("{} is not a table", table.qualified),
                hint: takes.to_string(),
            });
        }
        Ok(table)
    }
}

/// The oid of schema `floe` (InvalidOid when the extension is not installed): a syscache
/// lookup, cheap enough for every call.
pub fn floe_schema() -> pg_sys::Oid {
    // SAFETY: a syscache lookup by name; missing_ok.
    unsafe { pg_sys::get_namespace_oid(c"floe".as_ptr(), true) }
}

/// The owner of the installed extension, from the cache or the catalog (dropping saved plans
/// of an earlier installation). The cache is keyed by the oid of schema `floe`, which
/// CREATE EXTENSION makes: a syscache lookup per call instead of a scan of pg_extension.
fn extension_owner() -> Result<pg_sys::Oid, FloeError> {
    let schema = floe_schema();
    if schema == pg_sys::InvalidOid {
        return Err(FloeError::WrongState {
            message: "extension floe is not installed in this database".into(),
            hint: "CREATE EXTENSION floe;".into(),
        });
    }
    if let Some(owner) =
        CACHE.with_borrow(|c| c.as_ref().filter(|c| c.schema == schema).map(|c| c.owner))
    {
        return Ok(owner);
    }
    let owner = Spi::connect(|client| {
        // Run as the caller under the caller's search_path: the operator is spelled out so
        // that no `=` of the caller's schemas can answer instead. (A read: no transaction id.)
        client
            .select(
                "SELECT extowner FROM pg_catalog.pg_extension
                  WHERE extname OPERATOR(pg_catalog.=) 'floe'::pg_catalog.name",
                Some(1),
                &[],
            )?
            .first()
            .get::<pg_sys::Oid>(1)
    })?
    .ok_or_else(|| FloeError::WrongState {
        message: "extension floe is not installed in this database".into(),
        hint: "CREATE EXTENSION floe;".into(),
    })?;
    // Dropping the old plans frees them (SPI_freeplan needs no connection).
    CACHE.set(Some(Cache {
        schema,
        owner,
        plans: HashMap::new(),
        assembled: HashMap::new(),
    }));
    Ok(owner)
}

/// Runs `f` as the extension's owner (see the module documentation).
pub fn run<T>(
    f: impl FnOnce(&mut Session<'_, '_>) -> Result<T, FloeError>,
) -> Result<T, FloeError> {
    run_as_owner(true, f)
}

/// [`run`] without pinning `search_path` and `plan_cache_mode`: only for statements in which
/// every name is schema-qualified and no operator appears (so no `search_path` can change
/// what they mean, even when re-planned), on paths where the two settings' save and restore
/// would be a large part of the cost (the audit trigger's writes).
pub fn run_qualified<T>(
    f: impl FnOnce(&mut Session<'_, '_>) -> Result<T, FloeError>,
) -> Result<T, FloeError> {
    run_as_owner(false, f)
}

/// Runs `f` as the calling role itself, in its own settings: for statements floe assembles
/// that must act with the caller's rights (its row security applies, its triggers record it
/// and run under its `search_path`, as a foreign key's actions do). Such statements
/// schema-qualify every name and spell their operators `OPERATOR(pg_catalog.=)`.
pub fn run_as_caller<T>(
    f: impl FnOnce(&mut Session<'_, '_>) -> Result<T, FloeError>,
) -> Result<T, FloeError> {
    // SAFETY: reads the current role.
    let caller = unsafe { pg_sys::GetUserId() };
    Spi::connect_mut(|client| {
        let mut session = Session { client, caller };
        f(&mut session)
    })
}

fn run_as_owner<T>(
    pin_settings: bool,
    f: impl FnOnce(&mut Session<'_, '_>) -> Result<T, FloeError>,
) -> Result<T, FloeError> {
    // SAFETY: reads the current role.
    let caller = unsafe { pg_sys::GetUserId() };
    as_owner(|| {
        if pin_settings {
            with_pinned_settings(caller, f)
        } else {
            Spi::connect_mut(|client| {
                let mut session = Session { client, caller };
                f(&mut session)
            })
        }
    })
}

/// Runs `f` as the extension's owner with no SPI connection and no settings pinned: for
/// work that runs no SQL (the audit log's direct writer).
pub fn as_owner<T>(f: impl FnOnce() -> Result<T, FloeError>) -> Result<T, FloeError> {
    let owner = extension_owner()?;
    let (mut saved_user, mut saved_ctx) = (pg_sys::InvalidOid, 0);
    // SAFETY: saved and restored below; an ERROR's (sub)transaction abort restores the role.
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_ctx);
        pg_sys::SetUserIdAndSecContext(
            owner,
            saved_ctx | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32,
        );
    }
    let out = f();
    // SAFETY: restores what was saved above.
    unsafe { pg_sys::SetUserIdAndSecContext(saved_user, saved_ctx) };
    out
}

/// Runs `f` in an SPI connection with `search_path` and `plan_cache_mode` pinned (restored
/// after; an ERROR's (sub)transaction abort restores the GUC nest level).
fn with_pinned_settings<T>(
    caller: pg_sys::Oid,
    f: impl FnOnce(&mut Session<'_, '_>) -> Result<T, FloeError>,
) -> Result<T, FloeError> {
    // SAFETY: a GUC nest level of our own, popped below.
    let level = unsafe {
        let level = pg_sys::NewGUCNestLevel();
        for (name, value) in [
            (c"search_path", c"pg_catalog, pg_temp"),
            // floe's statements are written for their generic plans (checked with
            // EXPLAIN); custom plans would be re-planned on every call.
            (c"plan_cache_mode", c"force_generic_plan"),
        ] {
            pg_sys::set_config_option(
                name.as_ptr(),
                value.as_ptr(),
                pg_sys::GucContext::PGC_USERSET,
                pg_sys::GucSource::PGC_S_SESSION,
                pg_sys::GucAction::GUC_ACTION_SAVE,
                true,
                pgrx::PgLogLevel::ERROR as i32,
                false,
            );
        }
        level
    };
    let out = Spi::connect_mut(|client| {
        let mut session = Session { client, caller };
        f(&mut session)
    });
    // SAFETY: pops the level pushed above.
    unsafe { pg_sys::AtEOXact_GUC(true, level) };
    out
}

/// Whether this server is a hot standby (recovery in progress): only reads work there.
pub fn in_recovery() -> bool {
    // SAFETY: reads shared recovery state.
    unsafe { pg_sys::RecoveryInProgress() }
}

/// Runs a utility statement (floe's `SET LOCAL` of the tenant context) through SPI without
/// asking for a transaction id, as pgrx's `Spi::run` does: a read-only transaction that sets
/// its tenant stays read-only (no xid, no commit record to flush) and works on a standby.
pub fn run_utility(sql: &str) -> Result<(), FloeError> {
    let text = std::ffi::CString::new(sql).map_err(|_| FloeError::Internal {
        message: "a statement with a NUL byte".into(),
    })?;
    Spi::connect(|_client| {
        // SAFETY: inside an SPI connection (pgrx finishes it); read_only = false, so the
        // statement may be a utility command; an ERROR unwinds through pgrx's guard.
        let rc = unsafe { pg_sys::SPI_execute(text.as_ptr(), false, 0) };
        if rc < 0 {
            return Err(FloeError::Internal {
                message: format!("SPI_execute returned {rc} for a utility statement"),
            });
        }
        Ok(())
    })
}
