-- The psql tour that scripts/setup.sh runs against the oltp database. It grows as floe's
-- modules land; everything here is plain SQL that works from any client. Re-runnable: the
-- demo schema is rebuilt each time.
\pset footer off
\set VERBOSITY default
\echo
\echo '== Which floe is this?'
SELECT floe.version();

\echo
\echo '== floe.health(): one row per check, ok / warn / critical, with a hint when not ok'
SELECT check_name, status, detail FROM floe.health();

\echo
\echo '== Bad arguments get a real SQLSTATE and a hint:'
\set ON_ERROR_STOP 0
SELECT * FROM floe.health('bogus');
\set ON_ERROR_STOP 1

\echo
\echo '== Tenant isolation: a table of email messages shared by two tenants'
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS demo CASCADE;
DROP ROLE IF EXISTS demo_app;
RESET client_min_messages;
CREATE ROLE demo_app;
CREATE SCHEMA demo;
GRANT USAGE ON SCHEMA demo TO demo_app;
CREATE TABLE demo.email_messages (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id uuid NOT NULL,
    subject text NOT NULL
);
GRANT SELECT, INSERT, UPDATE, DELETE ON demo.email_messages TO demo_app;
SELECT * FROM floe.enable_tenant_isolation('demo.email_messages');

\echo '-- load both tenants as an operator, in explicit admin mode'
BEGIN;
SET LOCAL floe.tenant_admin = on;
INSERT INTO demo.email_messages (tenant_id, subject) VALUES
    ('11111111-1111-4111-8111-111111111111', 'Acme: welcome'),
    ('11111111-1111-4111-8111-111111111111', 'Acme: invoice'),
    ('22222222-2222-4222-8222-222222222222', 'Globex: launch plan');
COMMIT;

\echo '-- the application role, with no tenant set: fails closed (42501)'
SET ROLE demo_app;
\set ON_ERROR_STOP 0
SELECT subject FROM demo.email_messages;
\set ON_ERROR_STOP 1

\echo '-- with a tenant (per transaction: safe behind pgbouncer): only its own rows'
BEGIN;
SELECT floe.set_tenant('11111111-1111-4111-8111-111111111111');
SELECT subject FROM demo.email_messages ORDER BY id;
INSERT INTO demo.email_messages (subject) VALUES ('Acme: tenant filled in from the context')
    RETURNING tenant_id, subject;
COMMIT;

\echo '-- writing a row for another tenant is refused'
BEGIN;
SELECT floe.set_tenant('11111111-1111-4111-8111-111111111111');
\set ON_ERROR_STOP 0
INSERT INTO demo.email_messages (tenant_id, subject)
VALUES ('22222222-2222-4222-8222-222222222222', 'planted');
\set ON_ERROR_STOP 1
ROLLBACK;
RESET ROLE;

\echo
\echo '== floe.tenant_coverage(): what each tenant table lacks (an unprotected one, for show)'
BEGIN;
CREATE TABLE demo.unprotected (id int, tenant_id uuid);
SELECT schema_name, table_name, rls_enabled, rls_forced, policy_efficient, problems
  FROM floe.tenant_coverage() WHERE schema_name = 'demo' ORDER BY table_name;
ROLLBACK;

\echo
\echo '== The scheduler: a launcher and one worker per tier database'
SELECT backend_type, datname FROM pg_stat_activity WHERE backend_type LIKE 'floe%' ORDER BY 1, 2;

\echo '-- a job every second, for a moment (it runs as the role that scheduled it)'
SET client_min_messages = warning;
SELECT floe.unschedule(name) FROM floe.jobs WHERE name = 'demo_heartbeat';
RESET client_min_messages;
CREATE TABLE IF NOT EXISTS demo.heartbeat (at timestamptz DEFAULT clock_timestamp());
SELECT floe.schedule('demo_heartbeat', '1 second', 'INSERT INTO demo.heartbeat DEFAULT VALUES') > 0 AS scheduled;
SELECT pg_sleep(3.5);
SELECT job_name, status, count(*) AS runs FROM floe.job_runs WHERE job_name = 'demo_heartbeat' GROUP BY 1, 2;
SELECT floe.unschedule('demo_heartbeat');

\echo '-- built-in jobs are rows too, pausable and retimable'
SELECT name, schedule, builtin, enabled, next_run > now() AS scheduled_ahead FROM floe.jobs WHERE builtin;

\echo
\echo '== Partitions: a monthly set with premake, retention and a default partition'
CREATE TABLE demo.billing_events (
    id bigint GENERATED ALWAYS AS IDENTITY, at timestamptz NOT NULL, amount numeric,
    PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);
SELECT floe.create_parent('demo.billing_events', 'at', premake => 2,
                          start => now() - interval '3 months') AS partitions_created;
SELECT floe.set_retention('demo.billing_events', '13 months', 'drop');
\echo '-- a row six months ahead waits in the default partition; health warns'
INSERT INTO demo.billing_events (at, amount) VALUES (now(), 10), (now() + interval '6 months', 20);
SELECT * FROM floe.check_default('demo.billing_events');
\echo '-- maintenance as if it were six months later: the new months premade, the waiting row'
\echo '-- moved into its month (months older than the 13-month retention would be dropped);'
\echo '-- every step its own short transaction'
CALL floe.run_maintenance('demo.billing_events', as_of => now() + interval '6 months');
SELECT partition, lower_bound, upper_bound, is_default, row_estimate
  FROM floe.partitions('demo.billing_events');
SELECT * FROM floe.check_default('demo.billing_events');
SELECT tableoid::regclass AS stored_in, amount FROM demo.billing_events ORDER BY at;

\echo
\echo '== Queue (in the queue database): five tiers that age, leases, retries, dead letters'
\connect queue
SELECT floe.drop_queue(name, force => true) FROM floe.queue_settings WHERE name = 'demo_sending';
SELECT floe.create_queue('demo_sending', visibility_timeout => '30 seconds', max_attempts => 2,
                         retry_base => '0', retry_max => '0');
SELECT floe.enqueue('demo_sending', '{"message": 1}', 'normal') AS normal_now,
       floe.enqueue('demo_sending', '{"message": 2}', 'critical') AS critical_now,
       floe.enqueue('demo_sending', '{"message": 3}', 'background',
                    run_at => now() - interval '45 minutes') AS background_waited_45min;
\echo '-- dequeue order: a background job that waited 45 min outranks a new critical one'
\echo '-- (one tier gained per 10 minutes waited; no UPDATE ever ages a job)'
SELECT id, priority, payload, attempt FROM floe.dequeue('demo_sending', batch => 3);
SELECT floe.complete(id) FROM floe.queued_jobs WHERE queue = 'demo_sending' AND payload->>'message' <> '1';
\echo '-- a failing job is retried, then becomes a dead letter; redrive puts it back'
SELECT floe.fail(id, 'smtp 451 try later') FROM floe.queued_jobs WHERE queue = 'demo_sending';
SELECT id, attempt FROM floe.dequeue('demo_sending');
SELECT floe.fail(id, 'smtp 550 no such user') FROM floe.queued_jobs WHERE queue = 'demo_sending';
SELECT id, queue, attempts, last_error FROM floe.dead_letters WHERE queue = 'demo_sending';
SELECT floe.redrive('demo_sending') AS redriven;
SELECT queue, priority, ready, in_flight, completed, dead_letters, alarm
  FROM floe.queue_health('demo_sending') WHERE ready + in_flight + completed + dead_letters > 0;
SELECT floe.cancel(id) FROM floe.queued_jobs WHERE queue = 'demo_sending';
SELECT check_name, status, detail FROM floe.health() WHERE check_name LIKE 'queue.%';

\echo
\echo '== Materialized views (in the olap database): refreshed when their data changed'
\connect olap
DROP MATERIALIZED VIEW IF EXISTS demo_totals;
DROP MATERIALIZED VIEW IF EXISTS demo_campaign_stats;
DROP TABLE IF EXISTS demo_sends;
CREATE TABLE demo_sends (id bigint GENERATED ALWAYS AS IDENTITY, campaign int NOT NULL,
                         opened boolean NOT NULL DEFAULT false);
INSERT INTO demo_sends (campaign, opened) SELECT g % 3, g % 2 = 0 FROM generate_series(1, 1000) g;
CREATE MATERIALIZED VIEW demo_campaign_stats AS
    SELECT campaign, count(*) AS sends, count(*) FILTER (WHERE opened) AS opens
      FROM demo_sends GROUP BY campaign;
CREATE UNIQUE INDEX ON demo_campaign_stats (campaign);
CREATE MATERIALIZED VIEW demo_totals AS SELECT sum(sends) AS sends FROM demo_campaign_stats;
\echo '-- register: the base table gets a statement trigger; CONCURRENTLY needs a unique index'
SELECT floe.register_matview('demo_campaign_stats', min_interval => '0');
SELECT floe.register_matview('demo_totals', min_interval => '0', concurrently => false);
\set ON_ERROR_STOP 0
SELECT floe.register_matview('demo_totals') AS without_unique_index;
\set ON_ERROR_STOP 1
\echo '-- a write marks both dirty at commit; one pass refreshes them in dependency order'
INSERT INTO demo_sends (campaign) VALUES (1);
SELECT view, dirty_since IS NOT NULL AS dirty, next_reason FROM floe.matview_status;
SELECT view, reason, succeeded FROM floe.refresh_due();
SELECT * FROM demo_totals;
\echo '-- nothing changed: nothing to do (the built-in job floe.refresh_due runs every 10 s)'
SELECT count(*) AS refreshed FROM floe.refresh_due();
SELECT check_name, status, detail FROM floe.health() WHERE check_name LIKE 'matview.%';
\connect oltp

\echo
\echo '== floe.health() now'
SELECT check_name, status, detail FROM floe.health();
