-- floe 0.12.0 -> 0.13.0: performance lead (issue #27): floe.complete_and_dequeue, a worker's
-- loop (complete what it finished, dequeue the next) in one call and one round trip; the
-- event trigger function floe.own_partitions_on_ddl() looks its tables up by index.
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

CREATE FUNCTION floe."complete_and_dequeue"(
	"queue" TEXT,
	"done" bigint[] DEFAULT NULL,
	"lease" uuid DEFAULT NULL,
	"batch" INT DEFAULT 1,
	"visibility_timeout" interval DEFAULT NULL
) RETURNS TABLE (
	"id" bigint,
	"payload" jsonb,
	"priority" TEXT,
	"tenant" uuid,
	"attempt" INT,
	"run_at" timestamp with time zone,
	"enqueued_at" timestamp with time zone,
	"visible_until" timestamp with time zone,
	"lease" uuid,
	"dedup_key" TEXT
)
VOLATILE
LANGUAGE c
AS 'MODULE_PATHNAME', 'complete_and_dequeue_wrapper';
COMMENT ON FUNCTION floe.complete_and_dequeue(text, bigint[], uuid, integer, interval) IS
  'floe queue: a worker''s loop in one call: completes the jobs in done (as complete_many; with lease, the one job of done as complete(id, lease)), then dequeues up to batch jobs from queue (as dequeue), in one transaction. All or nothing: a job that cannot be completed is named and nothing is dequeued.';

-- Looks the statement's table up in pg_inherits by index (creating many partitions in one
-- transaction was quadratic).
CREATE OR REPLACE FUNCTION floe.own_partitions_on_ddl() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $fn$
DECLARE
    parents oid[] := ARRAY[to_regclass('floe.audit_log'), to_regclass('floe.queue_archive')];
BEGIN
    -- pg_dump output (it starts with SET check_function_bodies = false) brings every month's
    -- indexes and triggers itself: making them here would make its own statements fail.
    IF current_setting('check_function_bodies') = 'off' THEN
        RETURN;
    END IF;
    -- A month created or attached: the statement's table is in the tree of one of the two
    -- parents (the parent itself for an ATTACH). pg_partition_root reads the catalog cache:
    -- a join with pg_inherits read all of it for every CREATE and ALTER TABLE, which made
    -- creating many partitions in one transaction quadratic.
    IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() c
               WHERE c.classid = 'pg_class'::regclass
                 AND pg_partition_root(c.objid)::oid = ANY (parents)) THEN
        PERFORM floe.complete_own_partitions();
    END IF;
END
$fn$;
