-- Tour of the Content tier (scripts/platform.sh prints it).
\pset footer off
\echo '-- email bodies live in the content store: compressed (lz4 when written), deduplicated per tenant'
SELECT count(*) AS messages, count(DISTINCT body_hash) AS distinct_bodies FROM app.email_content;
SELECT bodies, dedup_hits, pg_size_pretty(logical_bytes) AS as_written, pg_size_pretty(stored_bytes) AS stored,
       pg_size_pretty(logical_bytes - stored_bytes) AS saved, ratio_with_dedup AS times_smaller
  FROM floe.content_stats WHERE tenant IS NULL AND tier IS NULL;
\echo '-- archiving: each tenant gets a zstd dictionary trained on its own mail, and an archive policy'
\echo '-- (here: archive at once) recompresses the bodies with it, each one verified by a round trip'
BEGIN;
SET LOCAL floe.tenant_admin = on;
SELECT count(floe.train_dictionary(t.tenant)) AS dictionaries_trained
  FROM (SELECT DISTINCT tenant_id AS tenant FROM app.email_content) t;
COMMIT;
SELECT floe.set_content_policy(warm_after => '0', cold_after => '0', archive_after => '0') \g /dev/null
SELECT sum(moved) AS bodies_archived FROM (SELECT floe.content_tier(100000) AS moved) x;
SELECT bodies, pg_size_pretty(logical_bytes) AS as_written, pg_size_pretty(stored_bytes) AS stored,
       pg_size_pretty(logical_bytes - stored_bytes) AS saved, ratio_with_dedup AS times_smaller
  FROM floe.content_stats WHERE tenant IS NULL;
\echo '-- and read back with one view (here by an operator in admin mode; the application sets its tenant)'
BEGIN;
SET LOCAL floe.tenant_admin = on;
SELECT message_id, left(regexp_replace(body, '\s+', ' ', 'g'), 70) AS body_starts
  FROM app.email_content_with_body ORDER BY message_id LIMIT 2;
COMMIT;
SELECT EXISTS (SELECT FROM floe.declared_references) AS has_references \gset
\if :has_references
\echo '-- cross-tier references: messages point at OLTP campaigns, sender accounts and leads'
SELECT id, columns, target_server, target_table, target_columns, mode FROM floe.declared_references ORDER BY id;
\echo '-- a message for a campaign OLTP does not have is refused (23503; one query to OLTP per statement)'
\set ON_ERROR_STOP 0
BEGIN;
SET LOCAL floe.tenant_admin = on;
INSERT INTO app.email_messages (id, tenant_id, campaign_id, template, subject, sent_at)
SELECT 999999, tenant_id, 999999, 1, 'lost', now() FROM app.email_messages LIMIT 1;
ROLLBACK;
\set ON_ERROR_STOP 1
\echo '-- OLTP erased leads (its tour): the scan finds the messages left pointing at them'
SELECT table_name, columns, keys_checked, orphans, pass_complete FROM floe.scan_references('app.email_messages');
SELECT check_name, status, detail FROM floe.health() WHERE check_name = 'references.orphans';
\echo '-- repaired: the messages keep their history, the erased lead is cleared (dry_run => false)'
BEGIN;
SET LOCAL floe.tenant_admin = on;
SELECT action, count(*) AS lead_keys, sum(rows) AS messages, bool_and(applied) AS applied
  FROM floe.repair_references('app.email_messages', action => 'null', dry_run => false) GROUP BY action;
COMMIT;
\endif
\echo '-- messages are partitioned by month (floe.partitions)'
SELECT partition, lower_bound, upper_bound, row_estimate FROM floe.partitions('app.email_messages');
\echo '-- floe.inventory()'
SELECT table_name, kind, tenant_isolation, partitions, months_ahead, content_columns, pg_size_pretty(total_bytes) AS size
  FROM floe.inventory() ORDER BY table_name;
