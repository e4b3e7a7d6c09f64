//! SQL glue for `floe.version()` and `floe.health()`.

use super::checks;
use crate::check::{Check, Status};
use crate::error::{ErrorReport, FloeError};
use pgrx::prelude::*;

use crate::scheduler::SCHEDULER_TYPE as SCHEDULER_BACKEND_TYPE;

#[pg_extern(stable, parallel_safe)]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

// pgrx reads the column names from the signature, so the row type cannot be an alias.
#[allow(clippy::type_complexity)]
#[pg_extern(stable, strict)]
fn health(
    min_status: default!(&str, "'ok'"),
) -> Result<
    TableIterator<
        'static,
        (
            name!(check_name, String),
            name!(status, String),
            name!(detail, String),
            name!(hint, Option<String>),
        ),
    >,
    ErrorReport,
> {
    let min = Status::parse(min_status).ok_or_else(|| FloeError::InvalidArgument {
        argument: "min_status",
        value: min_status.to_string(),
        expected: "one of ok, warn, critical".into(),
    })?;
    let rows = gather()?
        .into_iter()
        .filter(move |c| c.status >= min)
        .map(|c| (c.name.to_string(), c.status.to_string(), c.detail, c.hint));
    Ok(TableIterator::new(rows))
}

const FACTS: &str = "
SELECT (SELECT e.extversion FROM pg_catalog.pg_extension e WHERE e.extname = 'floe'),
       pg_catalog.current_setting('server_version'),
       pg_catalog.current_database()::text,
       (SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity a
         WHERE a.backend_type = $1 AND a.datname = pg_catalog.current_database()),
       (SELECT s.pending_restart FROM pg_catalog.pg_settings s
         WHERE s.name = 'shared_preload_libraries'),
       pg_catalog.has_function_privilege('pg_catalog.pg_show_all_file_settings()', 'EXECUTE')";

/// The value the configuration files give `shared_preload_libraries` for the next start
/// (the last line wins; none means the empty default). Needs `pg_file_settings`.
const NEXT_PRELOAD: &str = "
SELECT COALESCE((SELECT f.setting FROM pg_catalog.pg_file_settings f
                  WHERE f.name = 'shared_preload_libraries' ORDER BY f.seqno DESC LIMIT 1), '')";

/// The server's current `shared_preload_libraries`, read through the C API: the SQL
/// `current_setting()` refuses this superuser-only setting to ordinary roles, and health
/// must work for every role.
fn running_preload_setting() -> String {
    // SAFETY: GetConfigOption returns NULL or a string owned by the GUC machinery; copied now.
    unsafe {
        let raw = pg_sys::GetConfigOption(c"shared_preload_libraries".as_ptr(), true, false);
        if raw.is_null() {
            String::new()
        } else {
            std::ffi::CStr::from_ptr(raw).to_string_lossy().into_owned()
        }
    }
}

/// Collects the facts every core check needs from the catalog, then judges them.
fn gather() -> Result<Vec<Check>, FloeError> {
    Spi::connect(|client| {
        let row = client
            .select(FACTS, Some(1), &[SCHEDULER_BACKEND_TYPE.into()])?
            .first();
        let installed: Option<String> = row.get(1)?;
        let server: String = row.get(2)?.unwrap_or_default();
        let database: String = row.get(3)?.unwrap_or_default();
        let workers: i64 = row.get(4)?.unwrap_or(0);
        // pg_settings hides superuser-only settings from other roles: NULL then.
        let pending_restart: bool = row.get(5)?.unwrap_or(false);
        let can_read_files: bool = row.get(6)?.unwrap_or(false);
        let running_value = running_preload_setting();
        let listed_for_next_start = if !pending_restart {
            Some(checks::lists_library(&running_value, "floe"))
        } else if can_read_files {
            let next: String = client
                .select(NEXT_PRELOAD, Some(1), &[])?
                .first()
                .get(1)?
                .unwrap_or_default();
            Some(checks::lists_library(&next, "floe"))
        } else {
            None
        };
        let loaded_at_start = crate::preload::loaded_at_start();
        let standby = crate::privileged::in_recovery();
        Ok::<_, FloeError>(vec![
            checks::version_check(env!("CARGO_PKG_VERSION"), installed.as_deref(), &server),
            checks::preload_check(checks::PreloadFacts {
                loaded_at_start,
                listed_for_next_start,
            }),
            checks::standby_check(standby),
            checks::scheduler_check(&database, workers, loaded_at_start, standby),
        ])
    })
    .and_then(|mut core| {
        let scheduler_running = core
            .iter()
            .any(|c| c.name == "scheduler.running" && c.status == Status::Ok);
        core.extend(crate::scheduler::health_checks(scheduler_running)?);
        core.extend(crate::tenant::health_checks()?);
        core.extend(crate::partition::health_checks()?);
        core.extend(crate::queue::health_checks()?);
        core.extend(crate::matview::health_checks()?);
        core.extend(crate::content::health_checks()?);
        core.extend(crate::audit::health_checks()?);
        core.extend(crate::references::health_checks()?);
        core.extend(super::server_facts::health_checks()?);
        core.extend(crate::citus::health_checks()?);
        Ok(core)
    })
}

// Postgres creates schema floe (named in floe.control) without privileges for anyone but
// its owner; every role may use floe's functions, which check their own permissions.
//
// First of all, the script refuses to run against an older library: a floe.so left over from
// an earlier build under newer control and SQL files (a partial install, or a server that was
// not restarted after the files were replaced: its backends keep the library they mapped)
// would otherwise create functions whose code is not there, or is not what the SQL expects.
// The library's version comes from floe.version()'s C symbol, bound for the check only.
// During CREATE EXTENSION, pg_extension already holds the version being installed.
extension_sql!(
    r#"
GRANT USAGE ON SCHEMA floe TO PUBLIC;
CREATE FUNCTION floe.library_version_during_install() RETURNS text
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'version_wrapper';
DO $check$
DECLARE
    library text := floe.library_version_during_install();
    scripts text := (SELECT e.extversion FROM pg_catalog.pg_extension e WHERE e.extname = 'floe');
BEGIN
    IF pg_catalog.string_to_array(library, '.')::int[] < pg_catalog.string_to_array(scripts, '.')::int[] THEN
        RAISE EXCEPTION 'floe''s library (floe.so) is version %, older than the extension scripts (version %)', library, scripts
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'The floe.so in $libdir (pg_config --pkglibdir), or the copy this server process has loaded, comes from an earlier build than floe.control and the SQL files.',
                  HINT = 'Install floe.so from the same build as the control and SQL files; if the server preloads floe (shared_preload_libraries), restart it so it loads the new library, then retry.';
    END IF;
END
$check$;
DROP FUNCTION floe.library_version_during_install();
"#,
    name = "schema_usage",
    bootstrap,
);

extension_sql!(
    r#"
COMMENT ON FUNCTION floe.version() IS
  'Version of the loaded floe library.';
COMMENT ON FUNCTION floe.health(text) IS
  'One row per health check (check_name, status ok|warn|critical, detail, hint); min_status filters out milder rows.';
"#,
    name = "health_comments",
    requires = [version, health],
);

extension_sql_file!(
    "../sql/inventory.sql",
    name = "inventory_sql",
    requires = [
        "tenant_sql",
        "partition_sql",
        "content_sql",
        "matview_sql",
        "audit_sql"
    ],
);
