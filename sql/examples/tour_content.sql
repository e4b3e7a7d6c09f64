-- Tour of the Content tier (scripts/platform.sh prints it).
\pset footer off
\echo '-- email bodies live in the content store: compressed (lz4 when written), deduplicated per tenant'
SELECT count(*) AS messages, count(DISTINCT body_hash) AS distinct_bodies FROM app.email_content;
SELECT bodies, dedup_hits, pg_size_pretty(logical_bytes) AS as_written, pg_size_pretty(stored_bytes) AS stored,
       ratio_with_dedup AS times_smaller
  FROM floe.content_stats WHERE tenant IS NULL AND tier IS NULL;
\echo '-- and read back with one view'
SELECT message_id, left(regexp_replace(body, '\s+', ' ', 'g'), 70) AS body_starts
  FROM app.email_content_with_body ORDER BY message_id LIMIT 2;
\echo '-- messages are partitioned by month (floe.partitions)'
SELECT partition, lower_bound, upper_bound, row_estimate FROM floe.partitions('app.email_messages');
\echo '-- floe.inventory()'
SELECT table_name, kind, tenant_isolation, partitions, months_ahead, content_columns, pg_size_pretty(total_bytes) AS size
  FROM floe.inventory() ORDER BY table_name;
