-- Partition manager, by hand (no worker): create_parent per interval and with
-- sub-partitions, premake as time passes (as_of), default-partition drain, retention in each
-- mode, what carries over to new children, and bad input that must change nothing.
-- Output is relative to now() (in UTC) so the suite passes on any date; names are checked
-- against the period they cover.
-- The session computes in UTC, as floe's partition grid does: in pg_regress's PST8PDT,
-- now() + interval '6 months' lands in the UTC month after the expected one during the last
-- hours of a month (the calendar layer found it at its autumn DST edge, 00:59 UTC on the 31st).
SET TimeZone = 'UTC';
CREATE ROLE part_owner;
CREATE ROLE part_reader;
CREATE ROLE part_stranger;
CREATE SCHEMA part AUTHORIZATION part_owner;
CREATE SCHEMA part_archive AUTHORIZATION part_owner;
GRANT USAGE ON SCHEMA part TO part_reader, part_stranger;

-- The children of a set: the period each covers relative to now (in units of the set's
-- interval), whether its name is <parent>_<period>, its sub-partitions.
CREATE FUNCTION layout(p regclass, unit text)
RETURNS TABLE (period text, name_ok boolean, subs integer, is_default boolean)
LANGUAGE sql SET datestyle = 'ISO, YMD' AS $$
    WITH x AS (
        SELECT c.relname::text AS name, f.is_default, sub_partitions,
               CASE WHEN lower_bound ~ '[+-][0-9:]+''$'
                    THEN pg_catalog.btrim(lower_bound, '''')::timestamptz AT TIME ZONE 'UTC'
                    ELSE pg_catalog.btrim(lower_bound, '''')::timestamp END AS lb,
               now() AT TIME ZONE 'UTC' AS n,
               (SELECT relname::text FROM pg_class WHERE oid = p) AS base
          FROM floe.partitions(p) f JOIN pg_class c ON c.oid = f.partition)
    SELECT CASE WHEN x.is_default THEN 'default' ELSE
             'now' || to_char(CASE unit
               WHEN 'month' THEN (extract(year FROM lb) * 12 + extract(month FROM lb))
                               - (extract(year FROM n) * 12 + extract(month FROM n))
               WHEN 'quarter' THEN ((extract(year FROM lb) * 12 + extract(month FROM lb))
                               - (extract(year FROM date_trunc('quarter', n)) * 12
                                  + extract(month FROM date_trunc('quarter', n)))) / 3
               WHEN 'year' THEN extract(year FROM lb) - extract(year FROM n)
               WHEN 'week' THEN (lb::date - date_trunc('week', n)::date) / 7
               WHEN 'day' THEN lb::date - n::date
               WHEN 'hour' THEN extract(epoch FROM lb - date_trunc('hour', n)) / 3600
             END, 'FMSG999') END,
           x.is_default OR name = base || '_' || to_char(lb, CASE unit
               WHEN 'month' THEN 'YYYY_MM' WHEN 'quarter' THEN 'YYYY_"q"Q'
               WHEN 'year' THEN 'YYYY' WHEN 'week' THEN 'IYYY_"w"IW'
               WHEN 'day' THEN 'YYYY_MM_DD' WHEN 'hour' THEN 'YYYY_MM_DD_HH24' END),
           sub_partitions, x.is_default
      FROM x ORDER BY x.is_default, lb;
$$;

-- An error's SQLSTATE and message with dates masked (the suite runs on any date).
CREATE FUNCTION error_of(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9]{4}_[0-9]{2}(_[0-9]{2})?', '<date>', 'g');
END
$$;

-- now() is the transaction's start: the steps below that compare layouts with now() run in
-- one transaction, so a month (or hour) that turns while the suite runs (the calendar layer
-- moves the clock across such edges) cannot shift "now" between a step and its check.
BEGIN;
SET ROLE part_owner;
CREATE TABLE part.events (
    id         bigint GENERATED ALWAYS AS IDENTITY,
    created_at timestamptz NOT NULL,
    kind       text NOT NULL DEFAULT 'mail' CHECK (kind <> ''),
    body       text,
    body_len   int GENERATED ALWAYS AS (length(body)) STORED,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX events_kind_idx ON part.events (kind, created_at);
GRANT SELECT ON part.events TO part_reader;

-- Monthly, two premade, starting two months back: five children plus the default.
SELECT floe.create_parent('part.events', 'created_at', premake => 2,
                          start => now() - interval '2 months') AS created;
SELECT * FROM layout('part.events', 'month');
SELECT parent, control, control_type, part_interval, premake, default_partition, retention
  FROM floe.partition_sets;

-- Children carry the parent's indexes, owner and grants; rows route to them.
SELECT c.relname ~ '_default$' AS is_default, pg_get_userbyid(c.relowner) AS owner,
       has_table_privilege('part_reader', c.oid, 'SELECT') AS reader_can_select,
       (SELECT count(*) FROM pg_index i WHERE i.indrelid = c.oid) AS indexes
  FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid
 WHERE h.inhparent = 'part.events'::regclass
 GROUP BY 1, 2, 3, 4 ORDER BY 1;
INSERT INTO part.events (created_at, body) VALUES (now(), 'hello'), (now() - interval '1 month', 'older');
SELECT tableoid::regclass = ('part.events_' || to_char(created_at AT TIME ZONE 'UTC', 'YYYY_MM'))::regclass
       AS in_its_month, body_len
  FROM part.events ORDER BY id;

-- Rows beyond the premade months land in the default partition; health says so.
INSERT INTO part.events (created_at, body)
SELECT now() + interval '5 months', 'future ' || g FROM generate_series(1, 25) g;
SELECT partition_set, default_partition, row_count FROM floe.check_default();
RESET ROLE;
SELECT check_name, status FROM floe.health() WHERE check_name LIKE 'partition.%';
SET ROLE part_owner;

-- Time passes: six months later maintenance premakes through +8 and drains the default
-- partition in batches (3 rows per statement here) into the new child.
SET floe.partition_drain_batch = 3;
CALL floe.run_maintenance('part.events', as_of => now() + interval '6 months');
RESET floe.partition_drain_batch;
SELECT * FROM layout('part.events', 'month');
SELECT partition_set, row_count FROM floe.check_default();
SELECT count(*) AS moved_rows FROM part.events WHERE body LIKE 'future%';
SELECT count(*) AS in_default FROM part.events_default;
SELECT last_error, last_maintenance IS NOT NULL AS maintained FROM floe.partition_sets;
-- The months made while the default partition still held rows were attached without
-- scanning it under ACCESS EXCLUSIVE (an exclusion CHECK validated first); none of floe's
-- helper constraints are left behind.
SELECT count(*) AS helper_constraints FROM pg_constraint
 WHERE conname LIKE '%floe_excl' OR conname LIKE '%floe_bounds';
-- Running again changes nothing.
CALL floe.run_maintenance('part.events', as_of => now() + interval '6 months');
SELECT count(*) AS children FROM floe.partitions('part.events');

-- Retention counts back from now: a set that began nine months ago, a row in each month.
CREATE TABLE part.aged (at timestamptz NOT NULL, n int) PARTITION BY RANGE (at);
SELECT floe.create_parent('part.aged', 'at', premake => 1, start => now() - interval '9 months');
INSERT INTO part.aged SELECT now() - g * interval '1 month', g FROM generate_series(0, 9) g;
-- Mode detach: children that ended more than 7 months ago leave the set and stay as plain
-- tables. A future as_of (a preview, planning ahead) moves premake only: retention still
-- counts from today, so this run retires now-9 and now-8, not the months that would be 7
-- months old at as_of.
SELECT floe.set_retention('part.aged', '7 months');
CALL floe.run_maintenance('part.aged', as_of => now() + interval '3 months');
SELECT * FROM layout('part.aged', 'month');
SELECT count(*) AS detached_tables
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'part' AND c.relname ~ '^aged_[0-9]' AND NOT c.relispartition;
-- Far ahead, the same: nothing today's clock keeps is retired.
CALL floe.run_maintenance('part.aged', as_of => now() + interval '2 years');
SELECT count(*) AS past_children, (array_agg(period))[1] AS oldest
  FROM layout('part.aged', 'month') WHERE period ~ '^now-';

-- Mode archive: retired children move to the archive schema.
SELECT floe.set_retention('part.aged', '5 months', 'archive', 'part_archive');
CALL floe.run_maintenance('part.aged');
SELECT count(*) FILTER (WHERE period ~ '^now-') AS past_children FROM layout('part.aged', 'month');
SELECT count(*) AS archived FROM pg_tables WHERE schemaname = 'part_archive';

-- Mode drop: retired children are gone.
SELECT floe.set_retention('part.aged', '3 months', 'drop');
CALL floe.run_maintenance('part.aged');
SELECT * FROM layout('part.aged', 'month') WHERE period ~ '^now-';
SELECT count(*) AS plain_tables_left
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'part' AND c.relname ~ '^aged_[0-9]' AND NOT c.relispartition;
SELECT retention, retention_mode, archive_schema FROM floe.partition_sets WHERE parent = 'part.aged';
SELECT floe.set_retention('part.aged', NULL);
SELECT count(*) AS rows_left, min(n) AS newest, max(n) AS oldest FROM part.aged;

-- Inside a transaction block the whole run is the caller's transaction: rolled back, nothing
-- happened.
SAVEPOINT before_run;
CALL floe.run_maintenance('part.events', as_of => now() + interval '9 months');
SELECT count(*) AS children_inside FROM floe.partitions('part.events');
ROLLBACK TO SAVEPOINT before_run;
SELECT count(*) AS children_after_rollback FROM floe.partitions('part.events');

-- Other intervals: names per period.
CREATE TABLE part.daily (d date NOT NULL) PARTITION BY RANGE (d);
SELECT floe.create_parent('part.daily', 'd', part_interval => '1 day', premake => 2);
SELECT * FROM layout('part.daily', 'day');
CREATE TABLE part.weekly (t timestamp NOT NULL) PARTITION BY RANGE (t);
SELECT floe.create_parent('part.weekly', 't', part_interval => '1 week', premake => 1,
                          default_partition => false);
SELECT * FROM layout('part.weekly', 'week');
CREATE TABLE part.quarterly (t timestamptz NOT NULL) PARTITION BY RANGE (t);
SELECT floe.create_parent('part.quarterly', 't', part_interval => '3 months', premake => 1);
SELECT * FROM layout('part.quarterly', 'quarter');
CREATE TABLE part.yearly (d date NOT NULL) PARTITION BY RANGE (d);
SELECT floe.create_parent('part.yearly', 'd', part_interval => '1 year', premake => 1);
SELECT * FROM layout('part.yearly', 'year');
CREATE TABLE part.hourly (t timestamptz NOT NULL) PARTITION BY RANGE (t);
SELECT floe.create_parent('part.hourly', 't', part_interval => '1 hour', premake => 2);
SELECT * FROM layout('part.hourly', 'hour');

-- Sub-partitions: each month is LIST-partitioned by queue, with a default per month.
CREATE TABLE part.jobs_done (
    id bigint NOT NULL, queue text NOT NULL, done_at timestamptz NOT NULL
) PARTITION BY RANGE (done_at);
SELECT floe.create_parent('part.jobs_done', 'done_at', premake => 1,
                          sub_partition_by => 'queue',
                          sub_partition_values => ARRAY['send', 'Process-Bounce']);
SELECT * FROM layout('part.jobs_done', 'month');
SELECT regexp_replace(relid::text, '_[0-9]{4}_[0-9]{2}', '_<month>') AS relation,
       regexp_replace(parentrelid::text, '_[0-9]{4}_[0-9]{2}', '_<month>') AS parent,
       level, isleaf, count(*) AS months
  FROM pg_partition_tree('part.jobs_done') GROUP BY 1, 2, 3, 4 ORDER BY 3, 1;
INSERT INTO part.jobs_done VALUES (1, 'send', now()), (2, 'Process-Bounce', now()),
                                  (3, 'other', now()), (4, 'send', now() + interval '4 months');
SELECT id, regexp_replace(tableoid::regclass::text, '_[0-9]{4}_[0-9]{2}', '_<month>') AS stored_in
  FROM part.jobs_done ORDER BY id;
-- A month later the new month comes with its sub-partitions; the early row moves into them.
CALL floe.run_maintenance('part.jobs_done', as_of => now() + interval '3 months');
SELECT * FROM layout('part.jobs_done', 'month');
SELECT id, regexp_replace(tableoid::regclass::text, '_[0-9]{4}_[0-9]{2}', '_<month>') AS stored_in
  FROM part.jobs_done WHERE id = 4;

-- Tenant isolation carries over to new children.
CREATE TABLE part.tenant_log (tenant_id uuid NOT NULL, at timestamptz NOT NULL, msg text)
    PARTITION BY RANGE (at);
RESET ROLE;
SELECT floe.create_parent('part.tenant_log', 'at', premake => 1);
SELECT count(*) > 0 AS isolated FROM floe.enable_tenant_isolation('part.tenant_log');
CALL floe.run_maintenance('part.tenant_log', as_of => now() + interval '2 months');
SELECT count(*) AS children, bool_and(c.relrowsecurity AND c.relforcerowsecurity) AS all_rls,
       bool_and(EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid)) AS all_policies
  FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid
 WHERE h.inhparent = 'part.tenant_log'::regclass;
SELECT count(*) AS tables, bool_and(cardinality(problems) = 0) AS no_problems
  FROM floe.tenant_coverage() WHERE schema_name = 'part' AND table_name LIKE 'tenant_log%';
-- The guard still stands on the new children: no tenant, no row.
SAVEPOINT guard;
INSERT INTO part.tenant_log VALUES ('00000000-0000-0000-0000-000000000001', now() + interval '2 months', 'x');
ROLLBACK TO SAVEPOINT guard;
-- Rows of two tenants waiting in the default partition are moved by maintenance (as the
-- owner, with FORCE ROW LEVEL SECURITY lifted inside the locked step), none hidden or lost.
SET floe.tenant_admin = on;
INSERT INTO part.tenant_log VALUES ('00000000-0000-0000-0000-000000000001', now() + interval '5 months', 'a'),
                                   ('00000000-0000-0000-0000-000000000002', now() + interval '5 months', 'b');
RESET floe.tenant_admin;
CALL floe.run_maintenance('part.tenant_log', as_of => now() + interval '4 months');
SELECT msg, tableoid::regclass::text ~ '_default$' AS in_default FROM part.tenant_log ORDER BY msg;
-- Retired children of an isolated set stay isolated: a detached month is a table of its own
-- with the set's policies and guard triggers, registered in floe.tenant_tables, and coverage
-- finds no hole (its guard triggers, clones of the parent's, would leave with the detach).
CREATE TABLE part.tenant_old (tenant_id uuid NOT NULL, at timestamptz NOT NULL, msg text)
    PARTITION BY RANGE (at);
SELECT floe.create_parent('part.tenant_old', 'at', premake => 1, start => now() - interval '3 months');
SELECT count(*) > 0 AS isolated FROM floe.enable_tenant_isolation('part.tenant_old');
SELECT floe.set_retention('part.tenant_old', '1 month', 'detach');
CALL floe.run_maintenance('part.tenant_old');
SELECT count(*) AS retired, bool_and(t.relid IS NOT NULL) AS registered,
       bool_and(c.relrowsecurity AND c.relforcerowsecurity) AS rls_forced
  FROM pg_class c LEFT JOIN floe.tenant_tables t ON t.relid = c.oid
 WHERE c.relnamespace = 'part'::regnamespace AND c.relname ~ '^tenant_old_[0-9]' AND c.relkind = 'r'
   AND NOT c.relispartition;
SELECT count(*) AS tables, bool_and(cardinality(problems) = 0) AS no_problems
  FROM floe.tenant_coverage() WHERE schema_name = 'part' AND table_name LIKE 'tenant_old%';
SELECT error_of(format('INSERT INTO %s (tenant_id, at) VALUES (%L, now() - interval ''3 months'')',
                       (SELECT c.oid::regclass FROM pg_class c
                         WHERE c.relnamespace = 'part'::regnamespace AND c.relname ~ '^tenant_old_[0-9]'
                           AND c.relkind = 'r' AND NOT c.relispartition ORDER BY c.relname LIMIT 1),
                       '00000000-0000-0000-0000-000000000001')) AS guard_on_a_retired_month;
COMMIT;

-- Bad input: a clear error, and nothing changed.
\set VERBOSITY default
SET ROLE part_owner;
CREATE TABLE part.plain (t timestamptz);
SELECT floe.create_parent('part.plain', 't');
CREATE TABLE part.by_list (t timestamptz, q text) PARTITION BY LIST (q);
SELECT floe.create_parent('part.by_list', 't');
CREATE TABLE part.by_id (id bigint, t timestamptz) PARTITION BY RANGE (id);
SELECT floe.create_parent('part.by_id', 't');
SELECT floe.create_parent('part.by_id', 'id');
SELECT floe.create_parent('part.by_id', 'nope');
CREATE TABLE part.ranged (t timestamptz NOT NULL, d date NOT NULL) PARTITION BY RANGE (t);
SELECT floe.create_parent('part.ranged', 't', part_interval => '1 month 1 day');
SELECT floe.create_parent('part.ranged', 't', part_interval => '5 hours');
SELECT floe.create_parent('part.ranged', 't', premake => 1001);
SELECT floe.create_parent('part.ranged', 't', sub_partition_by => 'd');
SELECT floe.create_parent('part.ranged', 't', sub_partition_by => 'x', sub_partition_values => '{a}');
SELECT floe.create_parent('part.ranged', 't', sub_partition_by => 'd', sub_partition_values => '{a b,a-b}');
SELECT floe.create_parent('part.events', 'created_at');
SELECT floe.create_parent(NULL, 't');
CREATE TABLE part.dated (d date NOT NULL) PARTITION BY RANGE (d);
SELECT floe.create_parent('part.dated', 'd', part_interval => '6 hours');
-- An existing child that overlaps the wanted months: refused before anything is created.
CREATE TABLE part.overlap (t timestamptz NOT NULL) PARTITION BY RANGE (t);
CREATE TABLE part.overlap_mine PARTITION OF part.overlap
    FOR VALUES FROM (date_trunc('month', now()) + interval '10 days')
                 TO (date_trunc('month', now()) + interval '40 days');
SELECT error_of($$SELECT floe.create_parent('part.overlap', 't')$$);
SELECT partition FROM floe.partitions('part.overlap');
SELECT count(*) AS sets FROM floe.partition_sets WHERE parent LIKE 'part.overlap%' OR parent LIKE 'part.ranged%'
    OR parent LIKE 'part.dated%' OR parent LIKE 'part.by%' OR parent LIKE 'part.plain%';
SELECT floe.set_retention('part.plain', '1 month');
SELECT floe.set_retention('part.events', '1 month', 'shred');
SELECT floe.set_retention('part.events', '-1 month');
SELECT floe.set_retention('part.events', '1 month', 'archive');
SELECT floe.set_retention('part.events', '1 month', 'archive', 'no_such_schema');
SELECT retention, retention_mode FROM floe.partition_sets WHERE parent = 'part.events';
SELECT * FROM floe.check_default('part.plain');
CALL floe.run_maintenance('part.plain');
-- Someone else's table: not theirs to manage.
SET ROLE part_stranger;
SELECT floe.create_parent('part.overlap', 't');
SELECT count(*) AS visible_sets FROM floe.partition_sets;
CALL floe.run_maintenance();
RESET ROLE;
\set VERBOSITY terse

-- One failing set does not stop the others: a hand-made child in the way of daily's
-- future fails daily (recorded), weekly still gets its new week.
CREATE TABLE part.daily_blocker PARTITION OF part.daily
    FOR VALUES FROM ((now() AT TIME ZONE 'UTC')::date + 20) TO ((now() AT TIME ZONE 'UTC')::date + 40);
SET client_min_messages = error;
CALL floe.run_maintenance(as_of => now() + interval '25 days');
RESET client_min_messages;
SELECT parent, last_error IS NOT NULL AS failed,
       regexp_replace(last_error, '"[^"]*"', '"…"', 'g') AS error
  FROM floe.partition_sets WHERE parent IN ('part.daily', 'part.weekly') ORDER BY 1;
SELECT count(*) > 3 AS weekly_moved_on FROM floe.partitions('part.weekly');
SELECT check_name, status FROM floe.health() WHERE check_name = 'partition.maintenance';
DROP TABLE part.daily_blocker;
CALL floe.run_maintenance('part.daily', as_of => now() + interval '25 days');
SELECT last_error FROM floe.partition_sets WHERE parent = 'part.daily';

-- A dropped parent takes its set along; a renamed one is reported, not forgotten.
DROP TABLE part.hourly;
SELECT count(*) AS hourly_sets FROM floe.partition_sets WHERE parent = 'part.hourly';
ALTER TABLE part.quarterly RENAME TO quarterly_renamed;
SET client_min_messages = error;
CALL floe.run_maintenance();
RESET client_min_messages;
SELECT parent, last_error FROM floe.partition_sets WHERE parent = 'part.quarterly';
SELECT check_name, status, detail FROM floe.health() WHERE check_name = 'partition.premake';
-- Another table taking the old name is not adopted (its owner did not ask for it), and
-- dropping it leaves the set alone.
CREATE TABLE part.quarterly (t timestamptz NOT NULL) PARTITION BY RANGE (t);
SET client_min_messages = error;
CALL floe.run_maintenance('part.quarterly');
RESET client_min_messages;
SELECT parent, last_error FROM floe.partition_sets WHERE parent = 'part.quarterly';
SELECT count(*) AS impostor_children FROM floe.partitions('part.quarterly');
DROP TABLE part.quarterly;
UPDATE floe.partition_sets SET parent = 'part.quarterly_renamed' WHERE parent = 'part.quarterly';
CALL floe.run_maintenance('part.quarterly_renamed');
SELECT parent, last_error FROM floe.partition_sets WHERE parent LIKE 'part.quarterly%';
-- Every child stays (3, or 4 when a new year began during the suite and maintenance premade
-- one more).
SELECT count(*) AS yearly_children FROM floe.partitions('part.yearly') \gset
SELECT floe.remove_parent('part.yearly');
SELECT count(*) AS yearly_sets FROM floe.partition_sets WHERE parent = 'part.yearly';
SELECT count(*) = :yearly_children AND count(*) >= 3 AS yearly_children_kept FROM floe.partitions('part.yearly');

-- Converting an existing table: no row moves in the conversion itself; the table becomes
-- the set's default partition, and maintenance moves its rows month by month, in batches
-- (one transaction again, for the layout's sake).
BEGIN;
SET ROLE part_owner;
CREATE TABLE part.refs (id int PRIMARY KEY);
INSERT INTO part.refs VALUES (1), (2);
CREATE TABLE part.legacy (
    id  bigint GENERATED ALWAYS AS IDENTITY,
    at  timestamptz NOT NULL,
    msg text DEFAULT 'hello',
    ref int REFERENCES part.refs (id),
    PRIMARY KEY (id, at)
);
COMMENT ON TABLE part.legacy IS 'an old log';
CREATE INDEX legacy_at_idx ON part.legacy (at);
GRANT SELECT ON part.legacy TO part_reader;
-- 50 days from the first of the month before last (UTC): two months of rows.
INSERT INTO part.legacy (at, ref)
SELECT (date_trunc('month', now() AT TIME ZONE 'UTC') - interval '2 months') AT TIME ZONE 'UTC'
       + g * interval '1 day' + interval '12 hours', 1
  FROM generate_series(0, 49) g;
SELECT floe.partition_existing('part.legacy', 'at') AS default_partition;
SELECT c.relkind, obj_description(c.oid, 'pg_class') AS comment,
       has_table_privilege('part_reader', c.oid, 'SELECT') AS reader_can_select,
       (SELECT count(*) FROM part.legacy_default) AS rows_in_default
  FROM pg_class c WHERE c.oid = 'part.legacy'::regclass;
INSERT INTO part.legacy (at, ref) VALUES (now(), 2) RETURNING id > 50 AS identity_continues, msg;
SET floe.partition_drain_batch = 7;
CALL floe.run_maintenance('part.legacy');
RESET floe.partition_drain_batch;
SELECT * FROM layout('part.legacy', 'month');
SELECT row_count FROM floe.check_default('part.legacy');
SELECT count(*) AS all_rows, count(DISTINCT id) AS distinct_ids FROM part.legacy;
-- The foreign key holds on the partitioned table (and its new partitions).
SELECT error_of($$INSERT INTO part.legacy (at, ref) VALUES (now(), 3)$$);
COMMIT;
-- What a conversion cannot carry is named, and nothing changes.
CREATE TABLE part.viewed (at timestamptz NOT NULL, PRIMARY KEY (at));
CREATE VIEW part.viewed_v AS SELECT * FROM part.viewed;
SELECT floe.partition_existing('part.viewed', 'at');
CREATE TABLE part.no_index (id int, at timestamptz NOT NULL);
SELECT floe.partition_existing('part.no_index', 'at');
CREATE TABLE part.bad_key (id int PRIMARY KEY, at timestamptz NOT NULL);
CREATE INDEX ON part.bad_key (at);
SELECT floe.partition_existing('part.bad_key', 'at');
SELECT c.relname, c.relkind FROM pg_class c
 WHERE c.relnamespace = 'part'::regnamespace AND c.relname IN ('viewed', 'no_index', 'bad_key')
 ORDER BY 1;
SELECT floe.partition_existing('part.events', 'created_at');
RESET ROLE;

-- The built-in job that runs maintenance hourly.
SELECT name, schedule, command, builtin FROM floe.jobs WHERE name = 'floe.partition_maintenance';
