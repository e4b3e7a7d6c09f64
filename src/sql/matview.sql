-- floe matview refresh: the registry of views (floe.matviews), what each reads
-- (floe.matview_sources), the change log of servers without preload (floe.matview_changes),
-- the refresh history (floe.matview_refreshes), the change triggers' upkeep, the built-in job.
--
-- floe's functions write these tables as the extension's owner after checking the caller
-- owns the view (src/matview/api.rs); roles read the rows of the views they own.

CREATE TABLE floe.matviews (
    view           regclass    PRIMARY KEY,
    refresh_every  interval    CHECK (refresh_every >= interval '1 second'),
    on_change      boolean     NOT NULL,
    min_interval   interval    NOT NULL CHECK (min_interval >= interval '0'),
    max_staleness  interval    CHECK (max_staleness >= interval '1 second'),
    concurrent     boolean     NOT NULL,   -- REFRESH CONCURRENTLY
    registered_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    registered_by  name        NOT NULL,
    -- state, kept by the refresher
    last_start     timestamptz,
    last_success   timestamptz,   -- the moment whose data the view holds
    last_duration  interval,
    last_result    text        CHECK (last_result IN ('succeeded', 'failed')),
    last_error     text,
    failures       integer     NOT NULL DEFAULT 0,
    CHECK (on_change OR refresh_every IS NOT NULL OR max_staleness IS NOT NULL)
);
COMMENT ON TABLE floe.matviews IS
  'floe matview: one row per registered materialized view (floe.register_matview): its refresh policy and the state of its last refresh.';
SELECT pg_catalog.pg_extension_config_dump('floe.matviews', '');

CREATE TABLE floe.matview_sources (
    view    regclass NOT NULL,   -- a floe.matviews view; its rows go with it (trigger floe_sources)
    source  regclass NOT NULL,
    kind    "char"   NOT NULL,   -- the source's relkind: r, p (tables), m (a matview), f (foreign)
    PRIMARY KEY (view, source)
);
COMMENT ON TABLE floe.matview_sources IS
  'floe matview: the relations each registered view reads, directly or through plain views (found in pg_rewrite and pg_depend at registration).';
CREATE INDEX matview_sources_source_idx ON floe.matview_sources (source);
SELECT pg_catalog.pg_extension_config_dump('floe.matview_sources', '');

-- An unregistered view's sources go with it (a trigger, not ON DELETE CASCADE: floe's tables
-- have no foreign keys between them, so that pg_restore -j may load them in any order).
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

-- Without shared_preload_libraries there is no shared memory: the change trigger inserts a
-- row per view and transaction instead (no row is ever updated, so writers never wait on
-- each other), and a refresh deletes the rows its snapshot sees before it reads the data.
CREATE TABLE floe.matview_changes (
    view        oid         NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()
);
COMMENT ON TABLE floe.matview_changes IS
  'floe matview: committed changes not yet refreshed, when floe is not preloaded (with preload, shared memory keeps this).';
CREATE INDEX matview_changes_view_idx ON floe.matview_changes (view, changed_at);

CREATE TABLE floe.matview_refreshes (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    view         regclass    NOT NULL,
    reason       text        NOT NULL CHECK (reason IN ('changed', 'stale', 'scheduled', 'manual')),
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz NOT NULL,
    duration     interval    GENERATED ALWAYS AS (finished_at - started_at) STORED,
    concurrent   boolean     NOT NULL,
    result       text        NOT NULL CHECK (result IN ('succeeded', 'failed')),
    error        text
);
COMMENT ON TABLE floe.matview_refreshes IS
  'floe matview: history of refreshes, kept floe.matview_history_retention.';
CREATE INDEX matview_refreshes_view_idx ON floe.matview_refreshes (view, started_at);
CREATE INDEX matview_refreshes_started_idx ON floe.matview_refreshes (started_at);

-- A role reads the rows of the views it owns (has the owner's privileges of).
ALTER TABLE floe.matviews ENABLE ROW LEVEL SECURITY;
ALTER TABLE floe.matview_refreshes ENABLE ROW LEVEL SECURITY;
CREATE POLICY matviews_owner ON floe.matviews FOR SELECT
    USING (pg_catalog.pg_has_role((SELECT c.relowner FROM pg_catalog.pg_class c
                                    WHERE c.oid OPERATOR(pg_catalog.=) view), 'USAGE'));
CREATE POLICY matview_refreshes_owner ON floe.matview_refreshes FOR SELECT
    USING (pg_catalog.pg_has_role((SELECT c.relowner FROM pg_catalog.pg_class c
                                    WHERE c.oid OPERATOR(pg_catalog.=) view), 'USAGE'));
GRANT SELECT ON floe.matviews, floe.matview_refreshes, floe.matview_sources TO PUBLIC;

-- The change triggers: one statement trigger per table a change-tracked view reads, on every
-- member of a partition tree (a statement aimed at a partition fires only that partition's
-- statement triggers). Run as the extension's owner by floe's functions; not for PUBLIC.
CREATE FUNCTION floe.matview_sync_triggers() RETURNS integer
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    fn  oid := 'floe.matview_changed()'::regprocedure;
    r   record;
    n   integer := 0;
BEGIN
    FOR r IN
        WITH want AS (
            SELECT DISTINCT t.relid
              FROM floe.matview_sources s
              JOIN floe.matviews m ON m.view = s.view AND m.on_change
             CROSS JOIN LATERAL (SELECT s.source::oid AS relid
                                 UNION
                                 SELECT p.relid::oid FROM pg_partition_tree(s.source) p) t
              JOIN pg_class c ON c.oid = t.relid AND c.relkind IN ('r', 'p')
             WHERE s.kind IN ('r', 'p')),
        have AS (
            SELECT tg.tgrelid AS relid FROM pg_trigger tg
             WHERE tg.tgname = 'floe_matview_changed' AND tg.tgfoid = fn)
        SELECT w.relid, true AS add FROM want w WHERE w.relid NOT IN (SELECT relid FROM have)
        UNION ALL
        SELECT h.relid, false FROM have h WHERE h.relid NOT IN (SELECT relid FROM want)
    LOOP
        IF r.add THEN
            EXECUTE format('CREATE TRIGGER floe_matview_changed
                              AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s
                              FOR EACH STATEMENT EXECUTE FUNCTION floe.matview_changed()',
                           r.relid::regclass);
        ELSE
            EXECUTE format('DROP TRIGGER floe_matview_changed ON %s', r.relid::regclass);
        END IF;
        n := n + 1;
    END LOOP;
    RETURN n;
END
$fn$;
REVOKE ALL ON FUNCTION floe.matview_sync_triggers() FROM PUBLIC;
COMMENT ON FUNCTION floe.matview_sync_triggers() IS
  'floe matview (internal): adds the change trigger to every table a change-tracked view reads and removes it where no view needs it; returns the number of triggers added or removed.';

-- A partition created or attached under a tracked table gets the change trigger at once.
CREATE FUNCTION floe.matview_on_ddl() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM floe.matview_sources WHERE kind = 'p') THEN
        RETURN;
    END IF;
    -- pg_dump restores the triggers itself.
    IF pg_catalog.current_setting('check_function_bodies') = 'off' THEN
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger_ddl_commands() c
                 JOIN pg_catalog.pg_class k ON k.oid = c.objid
                WHERE c.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                  AND k.relispartition
                  AND pg_catalog.pg_partition_root(k.oid) IN
                      (SELECT s.source FROM floe.matview_sources s WHERE s.kind = 'p')) THEN
        PERFORM floe.matview_sync_triggers();
    END IF;
END
$fn$;
COMMENT ON FUNCTION floe.matview_on_ddl() IS
  'Event trigger: adds the matview change trigger to partitions created or attached under a table a registered view reads.';
CREATE EVENT TRIGGER floe_matview_on_ddl ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE')
    EXECUTE FUNCTION floe.matview_on_ddl();

-- The refresher: every 10 seconds, the views that are due (dirty past min_interval, due by
-- refresh_every or beyond max_staleness); a clean view costs nothing.
INSERT INTO floe.jobs (jobid, name, schedule, command, builtin, next_run) OVERRIDING SYSTEM VALUE
VALUES (-5, 'floe.refresh_due', '10 seconds', 'SELECT pg_catalog.count(*) FROM floe.refresh_due()', true,
        pg_catalog.now() + interval '10 seconds');
