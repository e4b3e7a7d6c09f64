//! What differs between the PostgreSQL majors floe builds for, in one place: each function
//! here has one body per group of majors (`#[cfg(feature = "pgNN")]`), the rest of floe calls
//! it and never looks at the version.

use pgrx::pg_sys;
use std::ffi::CStr;

/// The GUC record of the setting `name` (a placeholder too, such as `app.current_tenant_id`
/// once something set it), or null when this backend has no such setting.
///
/// # Safety
/// On the backend's main thread; the record stays valid while the setting exists.
unsafe fn guc_record(name: &CStr) -> *mut pg_sys::config_generic {
    #[cfg(any(feature = "pg13", feature = "pg14", feature = "pg15"))]
    {
        // Up to 15 the records are an array sorted by name, compared as guc_name_compare
        // does (ASCII case-insensitively); find_option is static there.
        let vars = pg_sys::get_guc_variables();
        let n = usize::try_from(pg_sys::GetNumConfigOptions()).unwrap_or(0);
        if vars.is_null() || n == 0 {
            return std::ptr::null_mut();
        }
        let key = name.to_bytes();
        let (mut lo, mut hi) = (0usize, n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let g = *vars.add(mid);
            let here = CStr::from_ptr((*g).name).to_bytes();
            // Byte-wise, ASCII case folded, shorter first: guc_name_compare's order, without
            // allocating (this runs for every tenant context read).
            match here
                .iter()
                .map(u8::to_ascii_lowercase)
                .cmp(key.iter().map(u8::to_ascii_lowercase))
            {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return g,
            }
        }
        std::ptr::null_mut()
    }
    #[cfg(not(any(feature = "pg13", feature = "pg14", feature = "pg15")))]
    {
        pg_sys::find_option(name.as_ptr(), false, true, pgrx::PgLogLevel::ERROR as i32)
    }
}

/// Whether the setting `name` was given its value in the current transaction (`SET`, `SET
/// LOCAL`, `set_config()`, a function's `SET` clause): until the transaction ends, the
/// setting's GUC stack holds what to restore. A value from an earlier transaction of the
/// session, from `ALTER ROLE/DATABASE ... SET`, the connection's options or the configuration
/// file has an empty stack.
pub fn set_in_this_transaction(name: &CStr) -> bool {
    // SAFETY: a read of the backend's own GUC record, on its main thread.
    unsafe {
        let g = guc_record(name);
        !g.is_null() && !(*g).stack.is_null()
    }
}

/// The value of the string setting `name` (NULL when unset) and whether it was set in the
/// current transaction, from one look-up of its GUC record (what `GetConfigOption` returns
/// for a string, without searching a second time): the tenant context is read per statement.
pub fn string_setting(name: &CStr) -> (*const std::ffi::c_char, bool) {
    // SAFETY: reads of the backend's own GUC record, on its main thread; a string record's
    // `variable` points at the current value (NULL or a string the GUC machinery owns).
    unsafe {
        let g = guc_record(name);
        if g.is_null() {
            return (std::ptr::null(), false);
        }
        let this_transaction = !(*g).stack.is_null();
        if (*g).vartype != pg_sys::config_type::PGC_STRING {
            return (
                pg_sys::GetConfigOption(name.as_ptr(), true, false),
                this_transaction,
            );
        }
        let variable = (*(g as *mut pg_sys::config_string)).variable;
        let value = if variable.is_null() {
            std::ptr::null()
        } else {
            *variable as *const _
        };
        (value, this_transaction)
    }
}

/// This backend's local transaction id: it identifies the current transaction (a new one
/// gets a new number, with or without an xid assigned).
pub fn local_transaction_id() -> u32 {
    // SAFETY: MyProc is this backend's own PGPROC, set before any SQL runs.
    unsafe {
        let proc_ = pg_sys::MyProc;
        if proc_.is_null() {
            return 0;
        }
        #[cfg(any(feature = "pg13", feature = "pg14", feature = "pg15", feature = "pg16"))]
        {
            (*proc_).lxid
        }
        #[cfg(not(any(feature = "pg13", feature = "pg14", feature = "pg15", feature = "pg16")))]
        {
            (*proc_).vxid.lxid
        }
    }
}

/// Whether a partitioned table's identity columns are its partitions' too (PostgreSQL 17 on):
/// a table attached as a partition must then have no identity of its own.
pub const PARTITIONS_SHARE_IDENTITY: bool = cfg!(any(feature = "pg17", feature = "pg18"));

/// A `name` as text (empty if it is not UTF-8).
pub fn name_str(n: &pg_sys::NameData) -> &str {
    // SAFETY: NameData is NUL-terminated within its 64 bytes.
    unsafe { std::ffi::CStr::from_ptr(n.data.as_ptr()) }
        .to_str()
        .unwrap_or("")
}

/// Attribute `i` of a tuple descriptor (`TupleDescAttr`): an array field up to 17; from 18 the
/// attributes follow the compact ones, behind Postgres's inline function.
///
/// # Safety
/// `desc` is a valid tuple descriptor and `i` < its `natts`.
pub unsafe fn tuple_desc_attr<'a>(
    desc: pg_sys::TupleDesc,
    i: usize,
) -> &'a pg_sys::FormData_pg_attribute {
    #[cfg(not(feature = "pg18"))]
    {
        // SAFETY: the caller's contract.
        unsafe { &*(*desc).attrs.as_ptr().add(i) }
    }
    #[cfg(feature = "pg18")]
    {
        // SAFETY: the caller's contract.
        unsafe { &*pg_sys::TupleDescAttr(desc, i as i32) }
    }
}

/// Installs a signal handler the way the backend does (`pqsignal`, `pqsignal_be` from 18).
///
/// # Safety
/// Called on the backend's main thread, with a handler safe to run as a signal handler.
pub unsafe fn install_signal_handler(
    signo: i32,
    handler: unsafe extern "C-unwind" fn(std::ffi::c_int),
) {
    #[cfg(not(feature = "pg18"))]
    // SAFETY: the caller's contract.
    unsafe {
        pg_sys::pqsignal(signo, Some(handler));
    }
    #[cfg(feature = "pg18")]
    // SAFETY: the caller's contract.
    unsafe {
        pg_sys::pqsignal_be(signo, Some(handler));
    }
}

/// `PortalRun` to completion into `dest` (its `run_once` argument went away in 18).
///
/// # Safety
/// `portal` was started with `PortalStart`; `dest` and `qc` are valid.
pub unsafe fn portal_run(
    portal: pg_sys::Portal,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    #[cfg(not(feature = "pg18"))]
    // SAFETY: the caller's contract.
    unsafe {
        pg_sys::PortalRun(portal, std::ffi::c_long::MAX, true, true, dest, dest, qc);
    }
    #[cfg(feature = "pg18")]
    // SAFETY: the caller's contract.
    unsafe {
        pg_sys::PortalRun(portal, std::ffi::c_long::MAX, true, dest, dest, qc);
    }
}

/// Index entries for a tuple just inserted into `rri`'s relation (no ON CONFLICT, every index:
/// the `onlySummarizing` argument came in 16).
///
/// # Safety
/// `rri` has its indexes open (`ExecOpenIndices`); `slot` holds the inserted tuple.
pub unsafe fn insert_index_tuples(
    rri: *mut pg_sys::ResultRelInfo,
    slot: *mut pg_sys::TupleTableSlot,
    estate: *mut pg_sys::EState,
) {
    #[cfg(any(feature = "pg13", feature = "pg14", feature = "pg15"))]
    // SAFETY: the caller's contract.
    let recheck = unsafe {
        pg_sys::ExecInsertIndexTuples(
            rri,
            slot,
            estate,
            false,
            false,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    #[cfg(not(any(feature = "pg13", feature = "pg14", feature = "pg15")))]
    // SAFETY: the caller's contract.
    let recheck = unsafe {
        pg_sys::ExecInsertIndexTuples(
            rri,
            slot,
            estate,
            false,
            false,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            false,
        )
    };
    // SAFETY: the list of deferred-uniqueness indexes, not used here.
    unsafe { pg_sys::list_free(recheck) };
}

/// Blocks of tables and indexes written since the statistics were reset: by backends in
/// normal operation (evictions), by everyone in normal operation, and by backends' bulk
/// operations (NULL up to 15, where `pg_stat_bgwriter.buffers_backend` counts evictions and
/// bulk writes as one). `health::server::buffer_writes_check` reads the three columns.
#[cfg(any(feature = "pg13", feature = "pg14", feature = "pg15"))]
pub const BUFFER_WRITES: &str = "
SELECT b.buffers_backend::int8,
       (b.buffers_backend OPERATOR(pg_catalog.+) b.buffers_clean
        OPERATOR(pg_catalog.+) b.buffers_checkpoint)::int8,
       NULL::int8
  FROM pg_catalog.pg_stat_bgwriter b";
/// See the other majors' definition; from 16 `pg_stat_io` separates the contexts.
#[cfg(not(any(feature = "pg13", feature = "pg14", feature = "pg15")))]
pub const BUFFER_WRITES: &str = "
SELECT coalesce(pg_catalog.sum(i.writes) FILTER (WHERE i.context OPERATOR(pg_catalog.=) 'normal'
           AND i.backend_type NOT IN ('checkpointer', 'background writer')), 0)::int8,
       coalesce(pg_catalog.sum(i.writes) FILTER (WHERE i.context OPERATOR(pg_catalog.=) 'normal'), 0)::int8,
       coalesce(pg_catalog.sum(i.writes) FILTER (WHERE i.context OPERATOR(pg_catalog.<>) 'normal'
           AND i.backend_type NOT IN ('checkpointer', 'background writer')), 0)::int8
  FROM pg_catalog.pg_stat_io i
 WHERE i.object OPERATOR(pg_catalog.=) 'relation'
   AND i.backend_type OPERATOR(pg_catalog.<>) 'standalone backend'";
