-- floe health: floe.inventory(), one row per user table (and materialized view) with what
-- every floe module does to it: the seeds' "entity -> store -> status" matrix, read from the
-- catalogs and floe's registries each time, so it is always current.
CREATE FUNCTION floe.inventory()
RETURNS TABLE (database name, schema_name name, table_name name, relid regclass, kind text,
               tenant_isolation text, partition_set boolean, partitions integer,
               months_ahead integer, content_columns name[], audited boolean,
               classification text[], matviews regclass[], matview_registered boolean,
               row_estimate bigint, total_bytes bigint)
LANGUAGE sql STABLE SET search_path = pg_catalog AS $fn$
WITH rels AS (
    SELECT c.oid, n.nspname, c.relname, c.relkind
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p', 'm')
       AND NOT c.relispartition
       AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'floe', 'pg_toast')
       AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast_temp%'
), tree AS (
    -- pg_partition_tree() lists nothing for a table that is not partitioned: itself then.
    SELECT r.oid,
           count(*) FILTER (WHERE t.isleaf AND t.level > 0) AS leaves,
           sum(pg_total_relation_size(c.oid)) AS bytes,
           sum(c.reltuples) FILTER (WHERE coalesce(t.isleaf, true) AND c.reltuples >= 0) AS tuples   -- NULL: never analyzed
      FROM rels r
      LEFT JOIN LATERAL pg_partition_tree(r.oid) t ON true
      JOIN pg_class c ON c.oid = coalesce(t.relid, r.oid)
     GROUP BY r.oid
)
SELECT current_database()::name, r.nspname, r.relname, r.oid::regclass,
       CASE r.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table' ELSE 'materialized view' END,
       CASE
           WHEN tt.relid IS NOT NULL AND tt.via_column IS NOT NULL
               THEN 'isolated via ' || tt.via_column
           WHEN tt.relid IS NOT NULL THEN 'isolated by ' || tt.tenant_column
           WHEN EXISTS (SELECT 1 FROM pg_attribute a
                         WHERE a.attrelid = r.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
               THEN 'not isolated'
           ELSE 'no tenant column'
       END,
       ps.parent IS NOT NULL,
       CASE WHEN r.relkind = 'p' THEN tree.leaves::integer END,
       (SELECT (extract(year FROM u.ahead) * 12 + extract(month FROM u.ahead))::integer - 1
          FROM (SELECT age(max(btrim(p.upper_bound, '''')::timestamptz) AT TIME ZONE 'UTC',
                           date_trunc('month', now(), 'UTC') AT TIME ZONE 'UTC') AS ahead
                  FROM floe.partitions(r.oid) p
                 WHERE NOT p.is_default AND ps.parent IS NOT NULL) u
         WHERE u.ahead IS NOT NULL),
       (SELECT array_agg(cc.column_name ORDER BY cc.column_name) FROM floe.content_columns cc WHERE cc.relid = r.oid),
       -- audited: registered, and every audit trigger fires (not switched off by the owner)
       at.relid IS NOT NULL AND NOT EXISTS (SELECT 1 FROM floe.audit_triggers_off(r.oid)),
       at.classification,
       (SELECT array_agg(DISTINCT ms.view ORDER BY ms.view) FROM floe.matview_sources ms WHERE ms.source = r.oid),
       CASE WHEN r.relkind = 'm' THEN EXISTS (SELECT 1 FROM floe.matviews m WHERE m.view = r.oid) END,
       tree.tuples::bigint,
       tree.bytes::bigint
  FROM rels r
  JOIN tree ON tree.oid = r.oid
  LEFT JOIN floe.tenant_tables tt ON tt.relid = r.oid
  LEFT JOIN floe.partition_sets ps ON ps.relid = r.oid
  LEFT JOIN floe.audit_tables at ON at.relid = r.oid
 ORDER BY r.nspname, r.relname
$fn$;
COMMENT ON FUNCTION floe.inventory() IS
  'floe health: one row per user table and materialized view (partitions are counted under their parent): tenant isolation, partition set (partitions, whole months premade after the current one), content-managed columns, audit and classification, the registered matviews reading it (or, for a matview, whether it is registered), row estimate and total size.';
