-- floe 0.9.0 -> 0.10.0: operations (issue #24): restores that keep the audit chain, its key and
-- floe's configuration; per-partition indexes on floe's own partitioned tables.
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

-- 1. The audit chain keeps its identity through a restore ----------------------------------
-- Entries and seals carry the relid a table had when auditing began, now kept in the registry
-- (a restore gives the table a new oid; entries keep theirs).
ALTER TABLE floe.audit_tables ADD COLUMN log_relid oid;
UPDATE floe.audit_tables SET log_relid = relid::oid;
ALTER TABLE floe.audit_tables ALTER COLUMN log_relid SET NOT NULL, ADD UNIQUE (log_relid);
COMMENT ON TABLE floe.audit_tables IS
  'floe audit: the audited tables (floe.enable_audit), the columns logged only as a keyed BLAKE3 hash, and the classification stamped on their entries; log_relid is the relid their entries and seals carry (the table''s oid when auditing began, kept through dump and restore).';
-- The key is made by the first enable_audit from now on (an existing key stays).
COMMENT ON TABLE floe.audit_key IS
  'floe audit: the key of the redaction hashes, made by the first floe.enable_audit() (readable by the extension''s owner only; never changes; dump and restore keep it).';
-- The log's ids go on after a restore.
SELECT pg_catalog.pg_extension_config_dump('floe.audit_log_id_seq', '');

-- 2. floe's own partitioned tables: indexes per month, not on the parent -------------------
-- (A restore made the parent's index with CREATE EXTENSION and each month's with the month:
-- they collided.) Rebuilds the indexes of every month of the audit log and queue archive.
DROP INDEX floe.audit_log_xid_idx;
DROP INDEX floe.queue_archive_dead_idx;
DROP INDEX floe.queue_archive_finished_idx;
DROP INDEX floe.queue_archive_id_idx;
DROP FUNCTION floe.audit_protect();
CREATE OR REPLACE FUNCTION floe.audit_on_ddl() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $fn$
BEGIN
    -- A month of the log detached by this statement: refused (floe's retention stands aside).
    -- (A detach is an ALTER TABLE of the log itself.)
    IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() c
               WHERE c.command_tag = 'ALTER TABLE' AND c.classid = 'pg_class'::regclass
                 AND c.objid = 'floe.audit_log'::regclass) THEN
        PERFORM floe.audit_guard_months('ddl_command_end');
    END IF;
END
$fn$;
COMMENT ON FUNCTION floe.audit_on_ddl() IS
  'Event trigger: refuses detaching a month of floe.audit_log (only floe''s retention retires months).';

-- floe's own partitioned tables (the audit log, the queue archive) keep no index on the
-- parent: pg_dump would restore the parent's index with CREATE EXTENSION, every month's copy
-- of it with the month, and the two would collide. Each month gets its own indexes here
-- instead (and the audit log's months their append-only TRUNCATE trigger), made when a month
-- is created or attached (event trigger floe_own_partitions); a restore brings them with the
-- months.
CREATE FUNCTION floe.complete_own_partitions() RETURNS integer
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog AS $fn$
DECLARE
    leaf record;
    ix   record;
    name text;
    n    integer := 0;
BEGIN
    FOR leaf IN
        SELECT r.parent, p.relid, c.relname, ns.nspname
          FROM (VALUES ('floe.audit_log'), ('floe.queue_archive')) r(parent)
          CROSS JOIN LATERAL pg_partition_tree(to_regclass(r.parent)) p
          JOIN pg_class c ON c.oid = p.relid
          JOIN pg_namespace ns ON ns.oid = c.relnamespace
         WHERE p.isleaf
         ORDER BY p.relid
    LOOP
        FOR ix IN
            SELECT d.suffix, d.def
              FROM (VALUES ('floe.audit_log', 'xid_idx', '(xid)'),
                           ('floe.queue_archive', 'dead_idx', '(queue_id, finished_at) WHERE state = ''dead'''),
                           ('floe.queue_archive', 'finished_idx', 'USING brin (finished_at) WITH (autosummarize = on)'),
                           ('floe.queue_archive', 'id_idx', 'USING brin (id) WITH (autosummarize = on)')) d(parent, suffix, def)
             WHERE d.parent = leaf.parent
        LOOP
            name := left(leaf.relname, 63 - length(ix.suffix) - 1) || '_' || ix.suffix;
            IF to_regclass(format('%I.%I', leaf.nspname, name)) IS NULL THEN
                EXECUTE format('CREATE INDEX %I ON %I.%I %s', name, leaf.nspname, leaf.relname, ix.def);
                n := n + 1;
            END IF;
        END LOOP;
        IF leaf.parent = 'floe.audit_log'
           AND NOT EXISTS (SELECT 1 FROM pg_trigger t
                            WHERE t.tgrelid = leaf.relid AND t.tgname = 'floe_append_only_truncate') THEN
            EXECUTE format('CREATE TRIGGER floe_append_only_truncate BEFORE TRUNCATE ON %I.%I
                            FOR EACH STATEMENT EXECUTE FUNCTION floe.audit_append_only()', leaf.nspname, leaf.relname);
            EXECUTE format('ALTER TABLE %I.%I ENABLE ALWAYS TRIGGER floe_append_only_truncate', leaf.nspname, leaf.relname);
            n := n + 1;
        END IF;
    END LOOP;
    RETURN n;
END
$fn$;
COMMENT ON FUNCTION floe.complete_own_partitions() IS
  'floe: gives every month of floe.audit_log and floe.queue_archive the indexes the parent does not hand down (and the log''s months their append-only TRUNCATE trigger); the event trigger floe_own_partitions calls it; returns how many objects it made.';
REVOKE EXECUTE ON FUNCTION floe.complete_own_partitions() FROM PUBLIC;

CREATE FUNCTION floe.own_partitions_on_ddl() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $fn$
BEGIN
    -- pg_dump output (it starts with SET check_function_bodies = false) brings every month's
    -- indexes and triggers itself: making them here would make its own statements fail.
    IF current_setting('check_function_bodies') = 'off' THEN
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() c
                JOIN pg_inherits i ON i.inhrelid = c.objid OR i.inhparent = c.objid
               WHERE c.classid = 'pg_class'::regclass
                 AND i.inhparent IN (to_regclass('floe.audit_log'), to_regclass('floe.queue_archive'))) THEN
        PERFORM floe.complete_own_partitions();
    END IF;
END
$fn$;
COMMENT ON FUNCTION floe.own_partitions_on_ddl() IS
  'Event trigger: completes the months created or attached under floe.audit_log and floe.queue_archive (floe.complete_own_partitions()); stands aside while pg_dump output is restored.';
CREATE EVENT TRIGGER floe_own_partitions ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE')
    EXECUTE FUNCTION floe.own_partitions_on_ddl();

SELECT floe.complete_own_partitions();

-- 3. Built-in jobs: fixed ids, dumped with their settings -----------------------------------
ALTER TABLE floe.jobs ALTER COLUMN jobid SET GENERATED BY DEFAULT;
UPDATE floe.job_runs r SET jobid = v.id
  FROM floe.jobs j, (VALUES (-1, 'floe.prune_job_history'), (-2, 'floe.partition_maintenance'),
                            (-3, 'floe.queue_maintenance'), (-4, 'floe.audit_seal'),
                            (-5, 'floe.refresh_due'), (-6, 'floe.content_maintenance')) v(id, name)
 WHERE j.builtin AND j.name = v.name AND r.jobid = j.jobid;
UPDATE floe.jobs j SET jobid = v.id
  FROM (VALUES (-1, 'floe.prune_job_history'), (-2, 'floe.partition_maintenance'),
               (-3, 'floe.queue_maintenance'), (-4, 'floe.audit_seal'),
               (-5, 'floe.refresh_due'), (-6, 'floe.content_maintenance')) v(id, name)
 WHERE j.builtin AND j.name = v.name;
ALTER TABLE floe.jobs ALTER COLUMN jobid SET GENERATED ALWAYS;
-- Every job is dumped, the built-in ones too; restoring a built-in job updates the installed one.
SELECT pg_catalog.pg_extension_config_dump('floe.jobs', '');
SELECT pg_catalog.pg_extension_config_dump('floe.jobs_jobid_seq', '');

-- A built-in job inserted when one of that name exists (pg_restore's COPY, a plain dump's
-- COPY): its settings and state go to the existing row, which keeps the command and id of
-- the installed version.
CREATE FUNCTION floe.jobs_restore_builtin() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $fn$
BEGIN
    UPDATE floe.jobs j
       SET schedule = NEW.schedule, max_runtime = NEW.max_runtime, retries = NEW.retries,
           retry_backoff = NEW.retry_backoff, overlap = NEW.overlap, enabled = NEW.enabled,
           next_run = NEW.next_run, anchor = NEW.anchor, attempt = NEW.attempt,
           last_start = NEW.last_start, last_finish = NEW.last_finish,
           last_status = NEW.last_status, last_error = NEW.last_error
     WHERE j.name = NEW.name AND j.builtin;
    IF FOUND THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION floe.jobs_restore_builtin() IS
  'floe scheduler: trigger on floe.jobs; a built-in job inserted again (a restore) updates the installed one''s settings instead.';
CREATE TRIGGER floe_restore_builtin BEFORE INSERT ON floe.jobs
    FOR EACH ROW WHEN (NEW.builtin) EXECUTE FUNCTION floe.jobs_restore_builtin();


-- 4. Content: the global policy is restored onto the installed one -------------------------
-- The global row is made here and dumped with the rest: restoring it (pg_restore's COPY)
-- updates the one CREATE EXTENSION made instead of failing on the unique tenant.
CREATE FUNCTION floe.content_policies_restore_global() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $fn$
BEGIN
    UPDATE floe.content_policies p
       SET warm_after = NEW.warm_after, cold_after = NEW.cold_after,
           archive_after = NEW.archive_after, cold_level = NEW.cold_level,
           archive_level = NEW.archive_level, retrain_every = NEW.retrain_every,
           retrain_min_rows = NEW.retrain_min_rows
     WHERE p.tenant IS NULL;
    IF FOUND THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION floe.content_policies_restore_global() IS
  'floe content: trigger on floe.content_policies; the global policy (tenant NULL) inserted again (a restore) updates the existing one instead.';
CREATE TRIGGER floe_restore_global BEFORE INSERT ON floe.content_policies
    FOR EACH ROW WHEN (NEW.tenant IS NULL) EXECUTE FUNCTION floe.content_policies_restore_global();


-- 5. No foreign keys between floe's tables (pg_restore -j loads them in any order) ----------
ALTER TABLE floe.content DROP CONSTRAINT content_dictionary_fkey;
ALTER TABLE floe.audit_seals DROP CONSTRAINT audit_seals_run_fkey;
ALTER TABLE floe.matview_sources DROP CONSTRAINT matview_sources_view_fkey;
CREATE FUNCTION floe.content_dictionary_in_use() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $fn$
BEGIN
    IF EXISTS (SELECT 1 FROM floe.content c WHERE c.dictionary = OLD.id) THEN
        RAISE EXCEPTION 'content dictionary % is used by stored bodies', OLD.id
              USING ERRCODE = 'foreign_key_violation',
                    HINT = 'floe.content_gc() drops a dictionary once no body uses it.';
    END IF;
    RETURN OLD;
END
$fn$;
COMMENT ON FUNCTION floe.content_dictionary_in_use() IS
  'floe content: trigger on floe.content_dictionaries; refuses deleting a dictionary a stored body uses.';
CREATE TRIGGER floe_in_use BEFORE DELETE ON floe.content_dictionaries
    FOR EACH ROW EXECUTE FUNCTION floe.content_dictionary_in_use();
CREATE FUNCTION floe.matview_sources_follow() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $fn$
BEGIN
    DELETE FROM floe.matview_sources s WHERE s.view = OLD.view;
    RETURN OLD;
END
$fn$;
COMMENT ON FUNCTION floe.matview_sources_follow() IS
  'floe matview: trigger on floe.matviews; an unregistered view''s rows in floe.matview_sources go with it.';
CREATE TRIGGER floe_sources AFTER DELETE ON floe.matviews
    FOR EACH ROW EXECUTE FUNCTION floe.matview_sources_follow();
