-- floe 0.11.0 -> 0.12.0: cross-tier references checked (issue #26): the enforce trigger
-- floe.reference_check, floe.scan_references and its built-in job floe.reference_scan,
-- floe.repair_references, the tables floe.reference_scans, floe.reference_orphans,
-- floe.reference_pending and floe.reference_archive, and floe.on_sql_drop() taking a dropped
-- table's references along.
--
-- First, as every update from 0.8.0 on: refuse a library older than these scripts (a stale
-- floe.so, or a preloaded server not restarted after the install).
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

-- The tables (as src/sql/references.sql makes them) -----------------------------------------
-- The scan's progress per reference (floe.scan_references; the built-in job floe.reference_scan).
CREATE TABLE floe.reference_scans (
    reference_id        integer     PRIMARY KEY,
    pass                bigint      NOT NULL DEFAULT 0,  -- the current (or last) pass, from 1
    cursor              text[],                 -- the last key of the pass in progress
    pass_started        timestamptz,            -- NULL: no pass in progress
    keys_checked        bigint      NOT NULL DEFAULT 0,  -- by the pass in progress
    last_pass_completed timestamptz,
    last_pass_keys      bigint,
    last_run            timestamptz,
    last_error          text,                   -- the last run's failure, until a page succeeds
    last_error_at       timestamptz
);
COMMENT ON TABLE floe.reference_scans IS
  'floe references: each declared reference''s scan: the pass in progress (cursor, pass_started, keys_checked), the last complete pass, and the last run''s error (a target that could not be reached: nothing was recorded or removed).';

-- Keys whose rows point at nothing, as the scan found them.
CREATE TABLE floe.reference_orphans (
    reference_id integer     NOT NULL,
    key          text[]      NOT NULL,  -- the tenant (per tenant), then the columns' values
    rows         bigint      NOT NULL,  -- rows of the referencing table with this key
    first_seen   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    last_seen    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    last_pass    bigint      NOT NULL DEFAULT 0,  -- the last pass that saw it
    PRIMARY KEY (reference_id, key)
);
COMMENT ON TABLE floe.reference_orphans IS
  'floe references: keys of referencing rows with no target row (as of last_seen), each with its row count and when the scan first found it. floe.repair_references acts on them.';

-- Keys written while the target could not be reached (on_unreachable => 'allow').
CREATE TABLE floe.reference_pending (
    reference_id integer     NOT NULL,
    key          text[]      NOT NULL,
    queued_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (reference_id, key)
);
COMMENT ON TABLE floe.reference_pending IS
  'floe references: keys an enforce check let through while the target could not be reached (on_unreachable => ''allow''); the next scan checks them first.';

-- Rows floe.repair_references(action => 'archive') removed.
CREATE TABLE floe.reference_archive (
    reference_id integer     NOT NULL,
    table_name   text        NOT NULL,  -- schema.table when archived (the rows outlive it)
    table_owner  regrole     NOT NULL,  -- who may read them
    key          text[]      NOT NULL,
    row_data     jsonb       NOT NULL,  -- the whole row (to_jsonb)
    archived_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    archived_by  name        NOT NULL
);
CREATE INDEX ON floe.reference_archive (table_name, archived_at);
COMMENT ON TABLE floe.reference_archive IS
  'floe references: rows removed by floe.repair_references(action => ''archive''), whole (to_jsonb), with the orphan key they held.';
SELECT pg_catalog.pg_extension_config_dump('floe.reference_archive', '');

-- A role reads the rows of the references it can see (those of the tables it owns: the
-- policy of floe.declared_references applies inside these policies too); the archive by the
-- owner its table had when the rows were archived.
ALTER TABLE floe.reference_scans ENABLE ROW LEVEL SECURITY;
CREATE POLICY reference_scans_owner ON floe.reference_scans FOR SELECT
    USING (reference_id IN (SELECT d.id FROM floe.declared_references d));
ALTER TABLE floe.reference_orphans ENABLE ROW LEVEL SECURITY;
CREATE POLICY reference_orphans_owner ON floe.reference_orphans FOR SELECT
    USING (reference_id IN (SELECT d.id FROM floe.declared_references d));
ALTER TABLE floe.reference_pending ENABLE ROW LEVEL SECURITY;
CREATE POLICY reference_pending_owner ON floe.reference_pending FOR SELECT
    USING (reference_id IN (SELECT d.id FROM floe.declared_references d));
ALTER TABLE floe.reference_archive ENABLE ROW LEVEL SECURITY;
CREATE POLICY reference_archive_owner ON floe.reference_archive FOR SELECT
    USING (pg_catalog.pg_has_role(table_owner, 'USAGE'));
GRANT SELECT ON floe.reference_scans, floe.reference_orphans, floe.reference_pending,
                floe.reference_archive TO PUBLIC;

-- The functions (as pgrx generates them) ---------------------------------------------------
CREATE FUNCTION floe."scan_references"(
	"tbl" regclass DEFAULT NULL, /* Option < PgRelation > */
	"max_seconds" double precision DEFAULT 10.0, /* Option < f64 > */
	"page_size" INT DEFAULT 1000, /* Option < i32 > */
	"max_pages" INT DEFAULT NULL /* Option < i32 > */
) RETURNS TABLE (
	"reference_id" INT,  /* i32 */
	"table_name" TEXT,  /* String */
	"columns" TEXT[],  /* Vec < String > */
	"pages" INT,  /* i32 */
	"keys_checked" bigint,  /* i64 */
	"orphans" bigint,  /* i64 */
	"pass_complete" bool,  /* bool */
	"error" TEXT  /* Option < String > */
)
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'scan_references_wrapper';

CREATE FUNCTION floe."repair_references"(
	"tbl" regclass, /* Option < PgRelation > */
	"action" TEXT DEFAULT 'report', /* Option < String > */
	"dry_run" bool DEFAULT true, /* Option < bool > */
	"batch_size" INT DEFAULT 1000 /* Option < i32 > */
) RETURNS TABLE (
	"reference_id" INT,  /* i32 */
	"columns" TEXT[],  /* Vec < String > */
	"key" TEXT[],  /* Vec < String > */
	"first_seen" timestamp with time zone,  /* Option < TimestampWithTimeZone > */
	"rows" bigint,  /* i64 */
	"action" TEXT,  /* String */
	"applied" bool  /* bool */
)
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'repair_references_wrapper';

CREATE FUNCTION floe."reference_check"()
	RETURNS TRIGGER
	LANGUAGE c
	AS 'MODULE_PATHNAME', 'reference_check_wrapper';

COMMENT ON FUNCTION floe.scan_references(regclass, double precision, integer, integer) IS
  'floe references: scans the references of tbl (NULL: every reference due, as the built-in job floe.reference_scan does), resuming each pass where it stopped: keyset pages of page_size distinct keys, one query to the target per page, until max_pages or max_seconds. Records orphans in floe.reference_orphans; a target that cannot be reached is reported (error) and changes nothing. One row per reference scanned.';
COMMENT ON FUNCTION floe.repair_references(regclass, text, boolean, integer) IS
  'floe references: the recorded orphans of tbl''s references. action => ''report'' lists them; ''null'' clears the referencing columns of their rows, ''delete'' deletes the rows, ''archive'' moves them to floe.reference_archive, after asking the target again (keys present again are reported resolved). dry_run (true by default) reports what would be done and changes nothing. Runs as the caller, batch_size keys per statement.';
-- The trigger is floe's to place (declare_reference does, as the extension's owner): a role
-- placing it on a table of its own could ask another reference's target through floe's user
-- mapping. (It also checks that it fires on its reference's own table.)
REVOKE EXECUTE ON FUNCTION floe.reference_check() FROM PUBLIC;
COMMENT ON FUNCTION floe.reference_check() IS
  'floe references: the statement trigger of an enforce-mode reference (argument: its id): rejects keys the statement wrote that have no row in the target (23503), asking the target once per statement.';

-- The scan runs every minute and starts a new pass of a reference every
-- floe.reference_scan_interval; each run stops starting pages after 10 seconds.
INSERT INTO floe.jobs (jobid, name, schedule, command, builtin, next_run) OVERRIDING SYSTEM VALUE
VALUES (-7, 'floe.reference_scan', '1 minute', 'SELECT pg_catalog.count(*) FROM floe.scan_references()', true,
        pg_catalog.now() + interval '1 minute');

-- A dropped table takes its references along (as src/sql/tenant.sql makes it) -----------------
CREATE OR REPLACE FUNCTION floe.on_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    gone integer;
BEGIN
    -- Most drops concern no registered table; skipping the joins keeps DROP TABLE (and
    -- partition retention) cheap.
    IF EXISTS (SELECT 1 FROM floe.tenant_tables) THEN
        DELETE FROM floe.tenant_tables t
         USING pg_catalog.pg_event_trigger_dropped_objects() d
         WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.objsubid = 0
           AND t.relid::pg_catalog.oid = d.objid;
    END IF;
    -- A dropped parent takes its partition set along (object_identity quotes like the key).
    IF EXISTS (SELECT 1 FROM floe.partition_sets) THEN
        DELETE FROM floe.partition_sets p
         USING pg_catalog.pg_event_trigger_dropped_objects() d
         WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.objsubid = 0 AND d.object_type = 'table'
           AND (p.relid = d.objid
                OR (p.relid IS NULL AND p.parent = d.object_identity));
    END IF;
    -- A dropped materialized view leaves the refresh registry (its sources go along), its
    -- history goes too, and change triggers no other view needs are removed.
    IF EXISTS (SELECT 1 FROM floe.matview_refreshes) THEN
        DELETE FROM floe.matview_refreshes h
         USING pg_catalog.pg_event_trigger_dropped_objects() d
         WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.objsubid = 0 AND h.view::pg_catalog.oid = d.objid;
    END IF;
    IF EXISTS (SELECT 1 FROM floe.matviews) THEN
        DELETE FROM floe.matviews m
         USING pg_catalog.pg_event_trigger_dropped_objects() d
         WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.objsubid = 0 AND m.view::pg_catalog.oid = d.objid;
        IF FOUND THEN
            PERFORM floe.matview_sync_triggers();
        END IF;
    END IF;
    -- A dropped table takes its declared references along (their triggers went with it):
    -- scan state, orphans, queued keys and the foreign table over the target.
    IF EXISTS (SELECT 1 FROM floe.declared_references) THEN
        FOR gone IN
            WITH r AS (DELETE FROM floe.declared_references f
                        USING pg_catalog.pg_event_trigger_dropped_objects() d
                        WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                          AND d.objsubid = 0 AND f.tbl::pg_catalog.oid = d.objid
                       RETURNING f.id)
            SELECT r.id FROM r
        LOOP
            DELETE FROM floe.reference_scans WHERE reference_id = gone;
            DELETE FROM floe.reference_orphans WHERE reference_id = gone;
            DELETE FROM floe.reference_pending WHERE reference_id = gone;
            EXECUTE pg_catalog.format('DROP FOREIGN TABLE IF EXISTS floe.%I', 'reference_' || gone || '_target');
        END LOOP;
    END IF;
END
$fn$;

-- Declarations made with 0.11.0: those of tables dropped since (0.11.0 did not remove them)
-- go, with their foreign tables; enforce-mode ones get the triggers 0.11.0 did not make yet
-- (as floe.declare_reference makes them).
DO $declared$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT d.id FROM floe.declared_references d
              WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = d.tbl::pg_catalog.oid)
    LOOP
        DELETE FROM floe.declared_references WHERE id = r.id;
        EXECUTE pg_catalog.format('DROP FOREIGN TABLE IF EXISTS floe.%I', 'reference_' || r.id || '_target');
    END LOOP;
    FOR r IN SELECT d.id, d.tbl FROM floe.declared_references d WHERE d.mode = 'enforce' LOOP
        EXECUTE pg_catalog.format(
            'CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS floe_new '
            'FOR EACH STATEMENT EXECUTE FUNCTION floe.reference_check(%L)',
            'floe_reference_' || r.id || '_insert', r.tbl, r.id);
        EXECUTE pg_catalog.format(
            'CREATE TRIGGER %I AFTER UPDATE ON %s REFERENCING OLD TABLE AS floe_old NEW TABLE AS floe_new '
            'FOR EACH STATEMENT EXECUTE FUNCTION floe.reference_check(%L)',
            'floe_reference_' || r.id || '_update', r.tbl, r.id);
    END LOOP;
END
$declared$;
