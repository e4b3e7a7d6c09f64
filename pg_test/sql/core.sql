-- floe's core surface: version, health, the error contract, and the house rules every module
-- keeps (comments, one schema, pinned search_path). Runs in a preloaded cluster.

SELECT floe.version() = e.extversion AS library_matches_extension
  FROM pg_extension e WHERE e.extname = 'floe';

-- One row per check, in a fixed order. (Whether the scheduler worker has started yet in this
-- fresh database is a matter of timing, so its status is not shown.)
SELECT check_name, CASE WHEN check_name = 'scheduler.running' THEN '-' ELSE status END AS status
  FROM floe.health();
SELECT check_name, status, detail FROM floe.health() WHERE check_name = 'core.preload';

-- min_status keeps the rows at or above a severity, named or positional, any case.
SELECT coalesce(bool_and(status IN ('warn', 'critical')), true) AS only_warn_or_worse
  FROM floe.health(min_status => 'Warn');
SELECT count(*) AS critical FROM floe.health('critical');
-- STRICT: a NULL filter gives no rows, not an error.
SELECT count(*) AS null_filter FROM floe.health(NULL);

-- A bad argument: message and hint, then the SQLSTATE alone.
SELECT * FROM floe.health('bogus');
\set VERBOSITY sqlstate
SELECT * FROM floe.health('bogus');
\set VERBOSITY default

-- Any role may call floe (schema floe is usable by PUBLIC).
CREATE ROLE regress_core_app;
SET ROLE regress_core_app;
SELECT floe.version() IS NOT NULL AS app_role_can_call, count(*) > 0 AS health_rows FROM floe.health();
RESET ROLE;
DROP ROLE regress_core_app;

-- The floe.* prefix is reserved: a misspelt setting is an error, not a silent placeholder.
SET floe.no_such_setting = 1;

-- House rules over every function the extension owns.
CREATE TEMP VIEW floe_functions AS
SELECT p.oid, p.oid::regprocedure AS func
  FROM pg_proc p
  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'floe';

-- every function has a comment
SELECT func AS missing_comment FROM floe_functions
 WHERE obj_description(oid, 'pg_proc') IS NULL ORDER BY 1;
-- every SECURITY DEFINER function pins search_path
SELECT f.func AS definer_without_search_path
  FROM floe_functions f JOIN pg_proc p ON p.oid = f.oid
 WHERE p.prosecdef
   AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%')
 ORDER BY 1;
-- everything lives in schema floe
SELECT func AS outside_floe_schema FROM floe_functions f JOIN pg_proc p ON p.oid = f.oid
 WHERE p.pronamespace <> 'floe'::regnamespace ORDER BY 1;
-- the signatures: named arguments, defaults, volatility, strictness, parallel safety
SELECT p.proname, pg_get_function_arguments(p.oid) AS arguments,
       p.provolatile AS vol, p.proisstrict AS strict, p.proparallel AS par
  FROM floe_functions f JOIN pg_proc p ON p.oid = f.oid
 ORDER BY 1, 2;
DROP VIEW floe_functions;

-- The extension drops and comes back cleanly. Postgres created schema floe for the control
-- file before the extension existed, so the schema outlives DROP EXTENSION, empty.
DROP EXTENSION floe;
SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = 'floe'::regnamespace)
     + (SELECT count(*) FROM pg_proc WHERE pronamespace = 'floe'::regnamespace) AS objects_left;
CREATE EXTENSION floe;
SELECT floe.version() IS NOT NULL AS back;
-- Reading through floe takes no transaction id (a read-only transaction writes no commit
-- record, and works on a hot standby): setting a tenant, health, inventory.
BEGIN;
SELECT floe.set_tenant('00000000-0000-0000-0000-00000000abcd');
SELECT count(*) > 0 AS checks FROM floe.health();
SELECT count(*) AS rows FROM floe.inventory();
SELECT pg_current_xact_id_if_assigned() IS NULL AS no_xid;
COMMIT;
