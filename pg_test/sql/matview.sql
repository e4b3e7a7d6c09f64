-- Materialized-view refresh, by hand (no scheduler worker): registration and its checks,
-- sources found through views, change triggers on partitions (also ones made later),
-- dirtiness published at commit, dependency order, failures with backoff, rights, health,
-- and bad input that changes nothing. Timing columns are shown as booleans.
CREATE ROLE mv_owner;
CREATE ROLE mv_other;
CREATE OR REPLACE FUNCTION error_of(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
GRANT EXECUTE ON FUNCTION error_of(text) TO PUBLIC;
CREATE SCHEMA olap AUTHORIZATION mv_owner;
GRANT USAGE ON SCHEMA olap TO mv_other;

SET ROLE mv_owner;
CREATE TABLE olap.campaigns (id int PRIMARY KEY, name text NOT NULL, divisor int NOT NULL DEFAULT 1);
CREATE TABLE olap.sends (id bigint GENERATED ALWAYS AS IDENTITY, campaign int NOT NULL,
                         sent_at timestamptz NOT NULL) PARTITION BY RANGE (sent_at);
CREATE TABLE olap.sends_2026_10 PARTITION OF olap.sends
    FOR VALUES FROM ('2026-10-01') TO ('2026-11-01');
CREATE VIEW olap.named_sends AS
    SELECT s.campaign, c.name, c.divisor FROM olap.sends s JOIN olap.campaigns c ON c.id = s.campaign;
CREATE MATERIALIZED VIEW olap.per_campaign AS
    SELECT name, count(*) AS sends, sum(100 / divisor) AS weight FROM olap.named_sends GROUP BY name;
CREATE UNIQUE INDEX ON olap.per_campaign (name);
CREATE MATERIALIZED VIEW olap.totals AS SELECT count(*) AS campaigns, sum(sends) AS sends
    FROM olap.per_campaign;
CREATE MATERIALIZED VIEW olap.nightly AS SELECT count(*) AS n FROM olap.campaigns;

-- Bad input: a clear error each, nothing registered.
SELECT error_of($$SELECT floe.register_matview('olap.campaigns')$$);
SELECT error_of($$SELECT floe.register_matview('olap.named_sends')$$);
SELECT error_of($$SELECT floe.register_matview('olap.totals')$$);
SELECT error_of($$SELECT floe.register_matview('olap.nightly', on_change => false, concurrently => false)$$);
SELECT error_of($$SELECT floe.register_matview('olap.per_campaign', min_interval => '-1 second')$$);
SELECT error_of($$SELECT floe.register_matview('olap.per_campaign', refresh_every => '1 month')$$);
SELECT error_of($$SELECT floe.register_matview('olap.per_campaign', max_staleness => '0')$$);
SELECT error_of($$SELECT floe.register_matview(NULL)$$);
SELECT error_of($$SELECT floe.refresh('olap.per_campaign')$$);
SELECT error_of($$SELECT floe.unregister_matview('olap.per_campaign')$$);
SELECT floe.unregister_matview('olap.per_campaign', if_exists => true);
SELECT count(*) AS registered FROM floe.matviews;

-- Register: the base tables are found through the plain view, the partitioned table's
-- partitions get the trigger too; totals reads a registered matview.
SELECT floe.register_matview('olap.per_campaign', min_interval => '0');
SELECT floe.register_matview('olap.totals', min_interval => '0', concurrently => false);
SELECT floe.register_matview('olap.nightly', on_change => false, refresh_every => '1 day',
                             concurrently => false);
SELECT view, source, kind FROM floe.matview_sources ORDER BY view::text, source::text;
SELECT tgrelid::regclass AS has_trigger FROM pg_trigger
 WHERE tgname = 'floe_matview_changed' ORDER BY tgrelid::regclass::text;
-- A partition made later gets the trigger at once.
CREATE TABLE olap.sends_2026_11 PARTITION OF olap.sends
    FOR VALUES FROM ('2026-11-01') TO ('2026-12-01');
SELECT tgrelid::regclass AS has_trigger FROM pg_trigger
 WHERE tgname = 'floe_matview_changed' ORDER BY tgrelid::regclass::text;
-- Registering again changes the settings (and keeps one row).
SELECT floe.register_matview('olap.per_campaign', min_interval => '0', max_staleness => '1 hour');
SELECT view, on_change, refresh_every, min_interval, max_staleness, concurrent, registered_by
  FROM floe.matviews ORDER BY view::text;

-- New registrations are dirty: one pass refreshes them, in dependency order.
SELECT view, dirty_since IS NOT NULL AS dirty, next_reason FROM floe.matview_status ORDER BY view;
SELECT view, reason, succeeded, error FROM floe.refresh_due();
SELECT view, dirty_since IS NOT NULL AS dirty, staleness = '0' AS current, last_result, next_reason
  FROM floe.matview_status ORDER BY view;
-- Clean views cost nothing.
SELECT count(*) AS refreshed FROM floe.refresh_due();
SELECT floe.refresh('olap.per_campaign') AS refreshed_clean_view;

-- A write marks the views reading it dirty when it commits; a rolled-back one does not.
BEGIN;
INSERT INTO olap.campaigns VALUES (1, 'welcome', 1), (2, 'winback', 1);
ROLLBACK;
SELECT view, dirty_since IS NOT NULL AS dirty FROM floe.matview_status ORDER BY view;
INSERT INTO olap.campaigns VALUES (1, 'welcome', 1), (2, 'winback', 1);
INSERT INTO olap.sends (campaign, sent_at) VALUES (1, '2026-10-05'), (2, '2026-11-05');
SELECT view, dirty_since IS NOT NULL AS dirty, next_reason FROM floe.matview_status ORDER BY view;
-- The refresh of per_campaign makes totals dirty, and totals follows in the same pass.
SELECT view, reason, succeeded FROM floe.refresh_due();
SELECT * FROM olap.per_campaign ORDER BY name;
SELECT * FROM olap.totals;
SELECT view, dirty_since IS NOT NULL AS dirty FROM floe.matview_status ORDER BY view;

-- A write straight to a partition counts as well.
INSERT INTO olap.sends_2026_11 (id, campaign, sent_at) OVERRIDING SYSTEM VALUE VALUES (100, 1, '2026-11-06');
SELECT view, dirty_since IS NOT NULL AS dirty FROM floe.matview_status ORDER BY view;
-- Within one transaction: the write, then a refresh that sees it, leave the view clean;
-- a refresh rolled back to a savepoint leaves the write counted.
BEGIN;
SELECT floe.refresh('olap.per_campaign') AS refreshed;
INSERT INTO olap.sends (campaign, sent_at) VALUES (2, '2026-11-07');
SAVEPOINT s;
SELECT floe.refresh('olap.per_campaign') AS refreshed;
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT view, dirty_since IS NOT NULL AS dirty FROM floe.matview_status ORDER BY view;
BEGIN;
INSERT INTO olap.sends (campaign, sent_at) VALUES (2, '2026-11-08');
SELECT floe.refresh('olap.per_campaign') AS refreshed;
COMMIT;
SELECT view, dirty_since IS NOT NULL AS dirty FROM floe.matview_status WHERE view = 'olap.per_campaign';
SELECT floe.refresh('olap.totals') AS refreshed;
SELECT sends FROM olap.totals;
TRUNCATE olap.sends;
SELECT view, dirty_since IS NOT NULL AS dirty FROM floe.matview_status WHERE view = 'olap.per_campaign';
SELECT floe.refresh('olap.per_campaign', force => true) AS forced;

-- A failing refresh is recorded, backs off, and does not stop the other views.
INSERT INTO olap.sends (campaign, sent_at) VALUES (1, '2026-11-09');
UPDATE olap.campaigns SET divisor = 0 WHERE id = 1;
SELECT floe.register_matview('olap.nightly', on_change => true, min_interval => '0',
                             concurrently => false);
SELECT view, reason, succeeded, error FROM floe.refresh_due();
SELECT view, failures, last_result, last_error,
       next_due >= last_start + interval '10 seconds' AS backed_off, alarm
  FROM floe.matview_status WHERE view = 'olap.per_campaign';
SELECT count(*) AS retried_at_once FROM floe.refresh_due();
SELECT check_name, status, detail FROM floe.health() WHERE check_name LIKE 'matview.%';
-- Fixed data: a forced refresh clears the failures.
UPDATE olap.campaigns SET divisor = 1 WHERE id = 1;
SELECT floe.refresh('olap.per_campaign', force => true) AS refreshed;
SELECT view, failures, last_result, alarm FROM floe.matview_status ORDER BY view;
SELECT view, reason, result, error IS NOT NULL AS has_error FROM floe.matview_refreshes
 ORDER BY id;

-- Another role sees none of it and may not register, refresh or unregister these views.
SET ROLE mv_other;
SELECT count(*) AS visible FROM floe.matview_status;
SELECT count(*) AS visible FROM floe.matview_refreshes;
SELECT error_of($$SELECT floe.refresh('olap.per_campaign')$$);
SELECT error_of($$SELECT floe.unregister_matview('olap.per_campaign')$$);
SELECT error_of($$SELECT floe.register_matview('olap.nightly')$$);
SELECT count(*) AS refreshed FROM floe.refresh_due();
SELECT error_of($$INSERT INTO floe.matviews (view, on_change, min_interval, concurrent, registered_by)
                  VALUES ('olap.nightly', true, '0', false, 'x')$$);
RESET ROLE;
-- Tracking needs TRIGGER on the tables the view reads.
CREATE TABLE public.locked (id int);
CREATE MATERIALIZED VIEW olap.over_locked AS SELECT count(*) AS n FROM public.locked;
ALTER MATERIALIZED VIEW olap.over_locked OWNER TO mv_other;
GRANT SELECT ON public.locked TO mv_other;
SET ROLE mv_other;
SELECT error_of($$SELECT floe.register_matview('olap.over_locked', concurrently => false)$$);
SELECT floe.register_matview('olap.over_locked', on_change => false, refresh_every => '1 hour',
                             concurrently => false);
RESET ROLE;

-- Unregister drops the triggers no other view needs; DROP removes a view from the registry.
SET ROLE mv_owner;
SELECT floe.unregister_matview('olap.per_campaign');
SELECT tgrelid::regclass AS has_trigger FROM pg_trigger
 WHERE tgname = 'floe_matview_changed' ORDER BY tgrelid::regclass::text;
DROP MATERIALIZED VIEW olap.totals;
DROP MATERIALIZED VIEW olap.nightly;
SELECT view FROM floe.matviews ORDER BY view::text;
SELECT count(*) AS history_left FROM floe.matview_refreshes;
SELECT tgrelid::regclass AS has_trigger FROM pg_trigger
 WHERE tgname = 'floe_matview_changed' ORDER BY tgrelid::regclass::text;
RESET ROLE;
DROP SCHEMA olap CASCADE;
DROP TABLE public.locked;
SELECT count(*) AS registered FROM floe.matviews;
DROP FUNCTION error_of(text);
DROP ROLE mv_owner;
DROP ROLE mv_other;
