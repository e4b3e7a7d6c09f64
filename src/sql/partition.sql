-- floe partition manager: the configuration of each partition set (floe.partition_sets),
-- the SQL-language parts of its API, and its hourly maintenance job.

CREATE TABLE floe.partition_sets (
    parent               text        PRIMARY KEY,  -- format('%I.%I', schema, table)
    relid                oid,        -- the table the set was made for (NULL: adopt by name)
    control              name        NOT NULL,
    control_type         text        NOT NULL CHECK (control_type IN ('timestamptz', 'timestamp', 'date')),
    part_interval        interval    NOT NULL,
    premake              integer     NOT NULL CHECK (premake BETWEEN 0 AND 1000),
    start_at             timestamptz NOT NULL,
    default_partition    boolean     NOT NULL,
    sub_partition_by     name,
    sub_partition_values text[],
    retention            interval    CHECK (retention > interval '0'),
    retention_mode       text        NOT NULL DEFAULT 'detach'
                         CHECK (retention_mode IN ('detach', 'drop', 'archive')),
    archive_schema       name,
    automatic            boolean     NOT NULL DEFAULT true,
    created_at           timestamptz NOT NULL DEFAULT pg_catalog.now(),
    last_maintenance     timestamptz,
    last_error           text,
    CHECK ((sub_partition_by IS NULL) = (sub_partition_values IS NULL)),
    CHECK (retention_mode <> 'archive' OR archive_schema IS NOT NULL)
);
COMMENT ON TABLE floe.partition_sets IS
  'floe partition manager: one row per partition set (floe.create_parent); premake, retention and automatic may be changed with UPDATE.';
SELECT pg_catalog.pg_extension_config_dump('floe.partition_sets', '');

-- A role sees and changes only the sets of tables it owns (has the owner's privileges of).
-- A row it writes must name its table canonically (schema-qualified, as format('%I.%I')
-- spells it, so no search_path can make it mean another table) and carry that table's oid.
ALTER TABLE floe.partition_sets ENABLE ROW LEVEL SECURITY;
CREATE POLICY partition_sets_owner ON floe.partition_sets
    USING (EXISTS (SELECT 1 FROM pg_catalog.pg_class c
                    WHERE c.oid = coalesce(relid, pg_catalog.to_regclass(parent))
                      AND pg_catalog.pg_has_role(c.relowner, 'USAGE')))
    WITH CHECK (EXISTS (SELECT 1 FROM pg_catalog.pg_class c
                          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                         WHERE c.oid = relid
                           AND parent = pg_catalog.format('%I.%I', n.nspname, c.relname)
                           AND pg_catalog.pg_has_role(c.relowner, 'USAGE')));
GRANT SELECT, INSERT, UPDATE, DELETE ON floe.partition_sets TO PUBLIC;

-- The set row of a parent, or a clear error.
CREATE FUNCTION floe.partition_set_key(parent regclass) RETURNS text
LANGUAGE plpgsql VOLATILE STRICT SET search_path = pg_catalog AS $$
DECLARE
    key text;
BEGIN
    SELECT format('%I.%I', n.nspname, c.relname) INTO key
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = parent;
    IF NOT EXISTS (SELECT 1 FROM floe.partition_sets s WHERE s.parent = key) THEN
        RAISE EXCEPTION 'partition set "%" does not exist', key
              USING ERRCODE = 'undefined_object',
                    HINT = 'Create it with floe.create_parent(); floe.partition_sets lists the sets you own.';
    END IF;
    RETURN key;
END
$$;
COMMENT ON FUNCTION floe.partition_set_key(regclass) IS
  'floe partition manager: the floe.partition_sets key of a parent table; raises 42704 when it is not a floe partition set.';

CREATE FUNCTION floe.set_retention(parent regclass, keep interval,
                                   mode text DEFAULT 'detach', archive_schema name DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog AS $$
DECLARE
    key  text := floe.partition_set_key(parent);
    m    text := lower(btrim(coalesce(mode, 'detach')));
BEGIN
    IF keep IS NOT NULL AND keep <= interval '0' THEN
        RAISE EXCEPTION 'invalid value for argument "keep": "%"', keep
              USING ERRCODE = 'invalid_parameter_value',
                    HINT = 'Expected a positive interval such as ''12 months'', or NULL to keep everything.';
    END IF;
    IF m NOT IN ('detach', 'drop', 'archive') THEN
        RAISE EXCEPTION 'invalid value for argument "mode": "%"', mode
              USING ERRCODE = 'invalid_parameter_value',
                    HINT = 'Expected detach, drop or archive.';
    END IF;
    IF key = 'floe.audit_log' AND keep IS NOT NULL AND m <> 'drop' THEN
        RAISE EXCEPTION 'the audit log''s months leave by drop only, not by %', m
              USING ERRCODE = 'invalid_parameter_value',
                    DETAIL = 'A detached or archived month would be an ordinary table, open to UPDATE and DELETE.',
                    HINT = 'SELECT floe.set_retention(''floe.audit_log'', keep => ''7 years'', mode => ''drop''); each retired month is recorded in floe.audit_retired.';
    END IF;
    IF m = 'archive' AND archive_schema IS NULL THEN
        RAISE EXCEPTION 'mode archive needs an archive_schema'
              USING ERRCODE = 'invalid_parameter_value',
                    HINT = 'Pass archive_schema => ''some_schema'' (it must exist).';
    END IF;
    IF archive_schema IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = archive_schema) THEN
        RAISE EXCEPTION 'schema "%" does not exist', archive_schema
              USING ERRCODE = 'invalid_schema_name',
                    HINT = 'Create the archive schema first.';
    END IF;
    UPDATE floe.partition_sets s
       SET retention = keep, retention_mode = m,
           archive_schema = CASE WHEN m = 'archive' THEN set_retention.archive_schema END
     WHERE s.parent = key;
END
$$;
COMMENT ON FUNCTION floe.set_retention(regclass, interval, text, name) IS
  'floe partition manager: retire partitions that end more than keep ago (NULL keeps everything) by detach, drop or archive (move to archive_schema); applied by run_maintenance, never before the newer partitions exist.';

CREATE FUNCTION floe.remove_parent(parent regclass) RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog AS $$
    DELETE FROM floe.partition_sets s
     WHERE s.parent = (SELECT floe.partition_set_key(remove_parent.parent));
$$;
COMMENT ON FUNCTION floe.remove_parent(regclass) IS
  'floe partition manager: stop managing a partition set; its partitions and data stay as they are.';

CREATE FUNCTION floe.partitions(parent regclass)
RETURNS TABLE (partition regclass, lower_bound text, upper_bound text, is_default boolean,
               sub_partitions integer, row_estimate bigint, total_bytes bigint,
               detach_pending boolean)
LANGUAGE sql STABLE STRICT SET search_path = pg_catalog AS $$
    SELECT c.oid::regclass,
           b.m[1], b.m[2],
           c.oid = pt.partdefid,
           (SELECT count(*)::int FROM pg_inherits s WHERE s.inhparent = c.oid),
           (SELECT coalesce(sum(greatest(l.reltuples, 0)), 0)::bigint
              FROM pg_partition_tree(c.oid) t JOIN pg_class l ON l.oid = t.relid WHERE t.isleaf),
           (SELECT coalesce(sum(pg_total_relation_size(t.relid)), 0)::bigint
              FROM pg_partition_tree(c.oid) t WHERE t.isleaf),
           i.inhdetachpending
      FROM pg_inherits i
      JOIN pg_class c ON c.oid = i.inhrelid
      JOIN pg_partitioned_table pt ON pt.partrelid = i.inhparent
      -- OFFSET 0: each bound is deparsed once, not once per use of m.
      LEFT JOIN LATERAL (SELECT regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                             '^FOR VALUES FROM \((.*)\) TO \((.*)\)$') AS m
                         OFFSET 0) b ON true
     WHERE i.inhparent = partitions.parent
     ORDER BY c.oid = pt.partdefid, c.relname;  -- floe names sort by period
$$;
COMMENT ON FUNCTION floe.partitions(regclass) IS
  'floe partition manager: the children of a partitioned table with their bounds, sub-partition count, row estimate (from statistics) and size.';

CREATE FUNCTION floe.check_default(parent regclass DEFAULT NULL)
RETURNS TABLE (partition_set text, default_partition regclass, row_count bigint)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog AS $$
DECLARE
    s record;
    only_key text := CASE WHEN check_default.parent IS NOT NULL
                          THEN floe.partition_set_key(check_default.parent) END;
BEGIN
    FOR s IN
        SELECT ps.parent AS key, d.oid::regclass AS def
          FROM floe.partition_sets ps
          JOIN pg_inherits i ON i.inhparent = to_regclass(ps.parent)
          JOIN pg_partitioned_table pt ON pt.partrelid = i.inhparent
          JOIN pg_class d ON d.oid = i.inhrelid AND d.oid = pt.partdefid
         WHERE only_key IS NULL OR ps.parent = only_key
         ORDER BY ps.parent
    LOOP
        partition_set := s.key;
        default_partition := s.def;
        EXECUTE format('SELECT count(*) FROM %s', s.def) INTO row_count;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION floe.check_default(regclass) IS
  'floe partition manager: rows sitting in the default partition of each set (all sets when parent is NULL); run_maintenance moves them into their partitions once those exist.';

CREATE PROCEDURE floe.run_maintenance(parent regclass DEFAULT NULL, as_of timestamptz DEFAULT NULL)
LANGUAGE c AS 'MODULE_PATHNAME', 'floe_run_maintenance';
COMMENT ON PROCEDURE floe.run_maintenance(regclass, timestamptz) IS
  'floe partition manager: create partitions premake ahead, drain default partitions, apply retention; every set (or only parent) in its own transaction when CALLed outside a transaction block. as_of replaces now() (previews and tests).';

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
COMMENT ON FUNCTION floe.own_partitions_on_ddl() IS
  'Event trigger: completes the months created or attached under floe.audit_log and floe.queue_archive (floe.complete_own_partitions()); stands aside while pg_dump output is restored.';
CREATE EVENT TRIGGER floe_own_partitions ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE')
    EXECUTE FUNCTION floe.own_partitions_on_ddl();

-- Hourly, like pg_partman's background worker default.
INSERT INTO floe.jobs (jobid, name, schedule, command, builtin, next_run) OVERRIDING SYSTEM VALUE
VALUES (-2, 'floe.partition_maintenance', '1 hour', 'CALL floe.run_maintenance()', true,
        pg_catalog.now() + interval '1 hour');
