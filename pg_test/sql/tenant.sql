-- Tenant isolation, exercised as an unprivileged application role (not the owner, not a
-- superuser): fail closed, own rows only, guard, partitions, indirect tenancy, admin mode,
-- bad input that changes nothing, and the coverage audit.
\set A 00000000-0000-4000-8000-00000000000a
\set B 00000000-0000-4000-8000-00000000000b
CREATE ROLE regress_owner;
CREATE ROLE regress_app;
CREATE ROLE regress_ops;
GRANT floe_tenant_admin TO regress_ops;
CREATE SCHEMA app AUTHORIZATION regress_owner;
GRANT USAGE ON SCHEMA app TO regress_app, regress_ops;
ALTER DEFAULT PRIVILEGES FOR ROLE regress_owner IN SCHEMA app
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO regress_app, regress_ops;
ALTER DEFAULT PRIVILEGES FOR ROLE regress_owner IN SCHEMA app
    GRANT USAGE ON SEQUENCES TO regress_app, regress_ops;

-- The owner (not a superuser) isolates its table; the call lists what it ran.
SET ROLE regress_owner;
CREATE TABLE app.jobs (id bigserial PRIMARY KEY, tenant_id uuid, payload text);
SELECT * FROM floe.enable_tenant_isolation('app.jobs');
-- Idempotent: the second call has nothing left to do.
SELECT count(*) AS statements FROM floe.enable_tenant_isolation('app.jobs');
SELECT relid, tenant_column, via_column, force, rls_was_enabled, created_index
  FROM floe.tenant_tables;
RESET ROLE;

-- Seed as an operator in explicit admin mode (membership alone is not enough).
SET ROLE regress_ops;
INSERT INTO app.jobs (tenant_id, payload) VALUES (:'A', 'a1');
BEGIN;
SET LOCAL floe.tenant_admin = on;
INSERT INTO app.jobs (tenant_id, payload) VALUES (:'A', 'a1'), (:'A', 'a2'), (:'B', 'b1');
INSERT INTO app.jobs (payload) VALUES ('whose?');
ROLLBACK;
BEGIN;
SET LOCAL floe.tenant_admin = on;
INSERT INTO app.jobs (tenant_id, payload) VALUES (:'A', 'a1'), (:'A', 'a2'), (:'B', 'b1');
SELECT floe.current_tenant() IS NULL AS admin_has_no_tenant, count(*) AS all_rows FROM app.jobs;
COMMIT;
RESET ROLE;

SET ROLE regress_app;
-- No tenant: every statement fails with 42501 (never "all rows", never "no filter").
SELECT * FROM app.jobs;
INSERT INTO app.jobs (payload) VALUES ('x');
UPDATE app.jobs SET payload = 'x';
DELETE FROM app.jobs;
\set VERBOSITY sqlstate
SELECT * FROM app.jobs;
\set VERBOSITY default
-- Admin mode is ignored for a role that is not a member of floe_tenant_admin.
BEGIN;
SET LOCAL floe.tenant_admin = on;
SELECT floe.tenant_admin_active();
SELECT count(*) FROM app.jobs;
ROLLBACK;

-- Tenant A sees and changes only A's rows; a missing tenant_id is filled in.
BEGIN;
SELECT floe.set_tenant(:'A');
SELECT floe.current_tenant();
SELECT tenant_id, payload FROM app.jobs ORDER BY id;
UPDATE app.jobs SET payload = payload || '!' RETURNING tenant_id, payload;
INSERT INTO app.jobs (payload) VALUES ('a3') RETURNING tenant_id, payload;
DELETE FROM app.jobs WHERE payload = 'a3' RETURNING payload;
COMMIT;

-- A row of another tenant, as A: 42501 and nothing written.
BEGIN;
SELECT floe.set_tenant(:'A');
INSERT INTO app.jobs (tenant_id, payload) VALUES (:'B', 'planted');
ROLLBACK;
-- Changing the tenant of a row: 42501 (the policy's WITH CHECK).
BEGIN;
SELECT floe.set_tenant(:'A');
UPDATE app.jobs SET tenant_id = :'B' WHERE payload = 'a1!';
ROLLBACK;
BEGIN;
SELECT floe.set_tenant(:'A');
UPDATE app.jobs SET tenant_id = NULL WHERE payload = 'a1!';
ROLLBACK;
RESET ROLE;
-- Not even admin mode may change the tenant of a row (the guard trigger, 42501).
BEGIN;
SET LOCAL ROLE regress_ops;
SET LOCAL floe.tenant_admin = on;
UPDATE app.jobs SET tenant_id = :'B' WHERE payload = 'a1!';
ROLLBACK;
-- The update guard fires for UPDATEs whose SET list names the tenant column (UPDATE OF): one
-- that writes the same tenant back (an ORM saving every column) passes, an upsert that would
-- move the row is refused, an UPDATE that leaves the column out cannot change it.
BEGIN;
SET LOCAL ROLE regress_ops;
SET LOCAL floe.tenant_admin = on;
UPDATE app.jobs SET tenant_id = tenant_id, payload = payload WHERE payload = 'a1!' RETURNING payload;
SAVEPOINT s;
INSERT INTO app.jobs (id, tenant_id, payload) SELECT id, :'B', 'moved' FROM app.jobs WHERE payload = 'a1!'
    ON CONFLICT (id) DO UPDATE SET tenant_id = EXCLUDED.tenant_id, payload = EXCLUDED.payload;
ROLLBACK TO s;
SELECT count(*) AS still_a FROM app.jobs WHERE payload = 'a1!' AND tenant_id = :'A';
ROLLBACK;
-- Statements that write read the context without the policy's sub-select (floe's planner
-- pass: they never run in parallel workers); reads keep the InitPlan, whose value the leader
-- hands to parallel workers, which could not tell a transaction's tenant from a session's.
-- (The plan's lines, with the spelling of an InitPlan's output normalised: $0 up to
-- PostgreSQL 16, (InitPlan 1).col1 from 17.)
CREATE FUNCTION pg_temp.plan_of(q text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE line text;
BEGIN
    FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
        RETURN NEXT regexp_replace(regexp_replace(line, '\(InitPlan 1\)\.col1|\$0', '<initplan>', 'g'),
                                   'InitPlan 1( \(returns <initplan>\))?', 'InitPlan 1');
    END LOOP;
END $$;
SET ROLE regress_app;
BEGIN;
SELECT floe.set_tenant(:'A');
SELECT EXISTS (SELECT FROM pg_temp.plan_of('UPDATE app.jobs SET payload = payload WHERE id = 1') l WHERE strpos(l, 'InitPlan') > 0) AS update_initplan,
       EXISTS (SELECT FROM pg_temp.plan_of('UPDATE app.jobs SET payload = payload WHERE id = 1') l WHERE strpos(l, 'floe.current_tenant()') > 0) AS update_calls,
       EXISTS (SELECT FROM pg_temp.plan_of('DELETE FROM app.jobs WHERE id = 1') l WHERE strpos(l, 'InitPlan') > 0) AS delete_initplan,
       EXISTS (SELECT FROM pg_temp.plan_of('SELECT * FROM app.jobs WHERE id = 1') l WHERE strpos(l, 'InitPlan') > 0) AS select_initplan,
       EXISTS (SELECT FROM pg_temp.plan_of('WITH d AS (DELETE FROM app.jobs WHERE id = 0 RETURNING id) SELECT * FROM app.jobs') l WHERE strpos(l, 'InitPlan') > 0) AS modifying_cte_initplan;
SET LOCAL parallel_setup_cost = 0;
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0;
SET LOCAL max_parallel_workers_per_gather = 2;
SET LOCAL parallel_leader_participation = off;
SET LOCAL enable_indexscan = off;
SET LOCAL enable_bitmapscan = off;
SELECT EXISTS (SELECT FROM pg_temp.plan_of('SELECT count(*) FROM app.jobs') l WHERE strpos(l, 'Gather') > 0) AS parallel_read;
SELECT count(*) AS rows_of_a FROM app.jobs;
COMMIT;
-- An update guard from before 0.13.0 (without UPDATE OF) is replaced by the next enable;
-- the current one is left alone.
RESET ROLE;
SET ROLE regress_owner;
DROP TRIGGER floe_tenant_guard_update ON app.jobs;
CREATE TRIGGER floe_tenant_guard_update AFTER UPDATE ON app.jobs FOR EACH ROW
    WHEN (OLD.tenant_id IS DISTINCT FROM NEW.tenant_id) EXECUTE FUNCTION floe.tenant_guard('tenant_id');
SELECT * FROM floe.enable_tenant_isolation('app.jobs');
SELECT count(*) AS steps FROM floe.enable_tenant_isolation('app.jobs');
RESET ROLE;
SET ROLE regress_app;

-- local => true ends with the transaction: the next one on this connection has no tenant.
BEGIN;
SELECT floe.set_tenant(:'B');
SELECT payload FROM app.jobs;
COMMIT;
SELECT payload FROM app.jobs;
-- Outside a transaction block, local => true lasts only for its own statement.
SELECT floe.set_tenant(:'B');
SELECT payload FROM app.jobs;
-- A session-wide tenant is refused: it outlives its transaction, and behind a transaction
-- pooler the next client's transactions would run as that tenant.
SELECT floe.set_tenant(:'B', local => false);
-- A plain SET lasts for the session too: it counts in the transaction that ran it, and is
-- refused (not silently used) in the next ones.
BEGIN;
SET app.current_tenant_id = :'B';
SELECT payload FROM app.jobs;
COMMIT;
SELECT payload FROM app.jobs;
INSERT INTO app.jobs (payload) VALUES ('leaked?');
SELECT floe.clear_tenant(local => false);
SELECT payload FROM app.jobs;
-- Only a superuser can allow session-wide tenants (dedicated connections).
SET floe.session_tenant = on;
RESET ROLE;
SET floe.session_tenant = on;
SET ROLE regress_app;
SELECT floe.set_tenant(:'B', local => false);
SELECT payload FROM app.jobs;
SELECT floe.clear_tenant(local => false);
RESET ROLE;
RESET floe.session_tenant;
-- Admin mode is per transaction as well: a session-wide SET is ignored, and the error says so.
SET ROLE regress_ops;
SET floe.tenant_admin = on;
SELECT count(*) FROM app.jobs;
BEGIN;
SET LOCAL floe.tenant_admin = on;
SELECT count(*) > 0 AS admin_sees_rows FROM app.jobs;
COMMIT;
RESET floe.tenant_admin;
SET ROLE regress_app;
-- Applications that already SET app.current_tenant_id keep working.
BEGIN;
SET LOCAL app.current_tenant_id = :'B';
SELECT payload FROM app.jobs;
ROLLBACK;
-- A value that is not a uuid fails closed too; NULL is refused.
BEGIN;
SET LOCAL app.current_tenant_id = 'tenant-b';
SELECT payload FROM app.jobs;
ROLLBACK;
SELECT floe.set_tenant(NULL);
RESET ROLE;

-- The operator's view after all that: B's rows untouched.
BEGIN;
SET LOCAL ROLE regress_ops;
SET LOCAL floe.tenant_admin = on;
SELECT tenant_id, payload FROM app.jobs ORDER BY id;
COMMIT;

-- The policy reads the context once per statement (InitPlan) and can use the index.
SET enable_seqscan = off;
BEGIN;
SET LOCAL ROLE regress_app;
SELECT floe.set_tenant(:'A');
SELECT * FROM pg_temp.plan_of($$SELECT * FROM app.jobs WHERE payload LIKE 'a%'$$);
COMMIT;
RESET enable_seqscan;

-- Partitioned tables: existing partitions and ones created later are isolated; a partition
-- queried directly shows only the tenant's rows.
SET ROLE regress_owner;
CREATE TABLE app.events (tenant_id uuid NOT NULL, at timestamptz NOT NULL, what text)
    PARTITION BY RANGE (at);
CREATE TABLE app.events_2026_10 PARTITION OF app.events
    FOR VALUES FROM ('2026-10-01') TO ('2026-11-01');
SELECT count(*) AS statements FROM floe.enable_tenant_isolation('app.events');
CREATE TABLE app.events_2026_11 PARTITION OF app.events
    FOR VALUES FROM ('2026-11-01') TO ('2026-12-01');
CREATE TABLE app.events_2026_12 (LIKE app.events);
ALTER TABLE app.events ATTACH PARTITION app.events_2026_12
    FOR VALUES FROM ('2026-12-01') TO ('2027-01-01');
SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
       (SELECT array_agg(polname ORDER BY polname) FROM pg_policy WHERE polrelid = c.oid) AS policies,
       (SELECT array_agg(tgname ORDER BY tgname) FROM pg_trigger WHERE tgrelid = c.oid) AS triggers
  FROM pg_class c WHERE c.relname LIKE 'events%' AND c.relkind IN ('r', 'p') ORDER BY 1;
RESET ROLE;
BEGIN;
SET LOCAL ROLE regress_ops;
SET LOCAL floe.tenant_admin = on;
INSERT INTO app.events VALUES (:'A', '2026-11-05', 'a-nov'), (:'B', '2026-11-06', 'b-nov'),
                              (:'B', '2026-12-24', 'b-dec');
COMMIT;
BEGIN;
SET LOCAL ROLE regress_app;
SELECT floe.set_tenant(:'A');
SELECT what FROM app.events_2026_11;
SELECT what FROM app.events_2026_12;
SELECT what FROM ONLY app.events_2026_11 WHERE tenant_id = :'B';
COMMIT;

-- A partition detached, opened up, and attached again is isolated again by the DDL hook.
SET ROLE regress_owner;
ALTER TABLE app.events DETACH PARTITION app.events_2026_12;
ALTER TABLE app.events_2026_12 DISABLE ROW LEVEL SECURITY;
ALTER POLICY floe_tenant_isolation ON app.events_2026_12 USING (true);
ALTER TABLE app.events ATTACH PARTITION app.events_2026_12
    FOR VALUES FROM ('2026-12-01') TO ('2027-01-01');
SELECT relrowsecurity, pg_get_expr(p.polqual, p.polrelid) AS policy
  FROM pg_class c JOIN pg_policy p ON p.polrelid = c.oid AND p.polname = 'floe_tenant_isolation'
 WHERE c.oid = 'app.events_2026_12'::regclass;
RESET ROLE;

-- A table partitioned by tenant: moving a row to another tenant's partition is refused even
-- in admin mode (the update guard of a partitioned table fires BEFORE the row moves).
SET ROLE regress_owner;
CREATE TABLE app.by_tenant (tenant_id uuid NOT NULL, what text) PARTITION BY LIST (tenant_id);
CREATE TABLE app.by_tenant_a PARTITION OF app.by_tenant FOR VALUES IN ('00000000-0000-4000-8000-00000000000a');
CREATE TABLE app.by_tenant_b PARTITION OF app.by_tenant FOR VALUES IN ('00000000-0000-4000-8000-00000000000b');
SELECT count(*) AS statements FROM floe.enable_tenant_isolation('app.by_tenant');
RESET ROLE;
BEGIN;
SET LOCAL ROLE regress_ops;
SET LOCAL floe.tenant_admin = on;
INSERT INTO app.by_tenant VALUES (:'A', 'a-row');
UPDATE app.by_tenant SET tenant_id = :'B' WHERE what = 'a-row';
ROLLBACK;

-- Indirect tenancy: analytics rows belong to a tenant through companies.tenant_id.
SET ROLE regress_owner;
CREATE TABLE app.companies (id bigint PRIMARY KEY, tenant_id uuid NOT NULL, name text);
CREATE TABLE app.campaign_analytics (id bigserial PRIMARY KEY,
    company_id bigint NOT NULL REFERENCES app.companies (id), clicks int);
SELECT count(*) AS statements FROM floe.enable_tenant_isolation('app.companies');
SELECT * FROM floe.enable_tenant_isolation('app.campaign_analytics', via => 'company_id');
RESET ROLE;
BEGIN;
SET LOCAL ROLE regress_ops;
SET LOCAL floe.tenant_admin = on;
INSERT INTO app.companies VALUES (1, :'A', 'acme'), (2, :'B', 'globex');
INSERT INTO app.campaign_analytics (company_id, clicks) VALUES (1, 10), (2, 20), (2, 30);
COMMIT;
BEGIN;
SET LOCAL ROLE regress_app;
SELECT floe.set_tenant(:'A');
SELECT company_id, clicks FROM app.campaign_analytics;
UPDATE app.campaign_analytics SET clicks = clicks + 1 RETURNING company_id, clicks;
INSERT INTO app.campaign_analytics (company_id, clicks) VALUES (2, 99);
ROLLBACK;

-- Bad input gets a clear error and changes nothing.
SET ROLE regress_owner;
CREATE TABLE app.notes (id int, owner_tenant text, body text);
SELECT floe.enable_tenant_isolation('app.notes');
SELECT floe.enable_tenant_isolation('app.notes', tenant_column => 'owner_tenant');
SELECT floe.enable_tenant_isolation('app.notes', via => 'id');
CREATE VIEW app.notes_v AS SELECT * FROM app.notes;
SELECT floe.enable_tenant_isolation('app.notes_v');
SELECT floe.enable_tenant_isolation('app.no_such_table');
SELECT floe.disable_tenant_isolation('app.notes');
SELECT floe.enable_tenant_isolation('app.notes', tenant_column => NULL);
SELECT floe.enable_tenant_isolation('app.notes', force => NULL);
SELECT floe.assert_tenant_coverage(NULL);
-- A column name made to break out of the trigger argument is only ever a column name.
CREATE TABLE app.odd ("x\'); DROP TABLE app.notes; --" uuid);
SET standard_conforming_strings = off;
SELECT count(*) AS statements FROM floe.enable_tenant_isolation('app.odd', tenant_column => E'x\\\'); DROP TABLE app.notes; --');
RESET standard_conforming_strings;
SELECT tgname, pg_get_triggerdef(t.oid) LIKE '%DROP TABLE%' AS argument_kept_whole
  FROM pg_trigger t WHERE tgrelid = 'app.odd'::regclass ORDER BY 1;
SELECT to_regclass('app.notes') IS NOT NULL AS notes_still_there;
SELECT count(*) AS undone FROM floe.disable_tenant_isolation('app.odd');
DROP TABLE app.odd;
SELECT relrowsecurity, (SELECT count(*) FROM pg_policy WHERE polrelid = 'app.notes'::regclass) AS policies,
       (SELECT count(*) FROM floe.tenant_tables WHERE relid = 'app.notes'::regclass) AS registered
  FROM pg_class WHERE oid = 'app.notes'::regclass;
RESET ROLE;
-- A table someone else owns cannot be isolated (or registered) by the app role.
SET ROLE regress_app;
SELECT floe.enable_tenant_isolation('app.jobs');
INSERT INTO floe.tenant_tables (relid, tenant_column, rls_was_enabled, rls_was_forced)
VALUES ('app.notes', 'id', false, false);
RESET ROLE;

-- Coverage: one table (or object) per kind of hole.
SET ROLE regress_owner;
CREATE TABLE app.h_no_rls (id int, tenant_id uuid);
CREATE TABLE app.h_not_forced (id int, tenant_id uuid);
ALTER TABLE app.h_not_forced ENABLE ROW LEVEL SECURITY;
CREATE POLICY p ON app.h_not_forced USING (tenant_id = (SELECT floe.current_tenant()));
CREATE INDEX ON app.h_not_forced (tenant_id);
CREATE TABLE app.h_per_row (id int, tenant_id uuid);
ALTER TABLE app.h_per_row ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.h_per_row FORCE ROW LEVEL SECURITY;
CREATE POLICY h_per_row_tenant ON app.h_per_row
    USING (tenant_id = current_setting('app.current_tenant_id')::uuid);
CREATE INDEX ON app.h_per_row (tenant_id);
CREATE TABLE app.h_order_items (id int, job_id bigint REFERENCES app.jobs (id));
CREATE POLICY legacy_read ON app.companies FOR SELECT USING (name IS NOT NULL);
CREATE VIEW app.h_jobs_view AS SELECT id, payload FROM app.jobs;
CREATE VIEW app.h_jobs_invoker WITH (security_invoker = true) AS SELECT id, payload FROM app.jobs;
GRANT TRUNCATE ON app.h_not_forced TO regress_app;
CREATE MATERIALIZED VIEW app.h_jobs_mv AS SELECT tenant_id, count(*) FROM app.jobs GROUP BY 1
    WITH NO DATA;
GRANT SELECT ON app.h_jobs_mv TO regress_app;
-- an operators' dashboard: every tenant's rows, but no role besides its owner may read it
CREATE MATERIALIZED VIEW app.h_jobs_dashboard AS SELECT tenant_id, count(*) FROM app.jobs GROUP BY 1
    WITH NO DATA;
REVOKE ALL ON app.h_jobs_dashboard FROM PUBLIC, regress_app, regress_ops;
RESET ROLE;
-- a view owned by a superuser reads around the policy (h_jobs_view, owned by the table's
-- owner under FORCE ROW LEVEL SECURITY, does not)
CREATE VIEW app.h_jobs_su_view AS SELECT id, payload FROM app.jobs;
CREATE ROLE regress_bypass LOGIN BYPASSRLS;
-- a NOLOGIN BYPASSRLS role counts when some login role can SET ROLE to it
CREATE ROLE regress_bypass_hidden NOLOGIN BYPASSRLS;
CREATE ROLE regress_bypass_unreachable NOLOGIN BYPASSRLS;
CREATE ROLE regress_login LOGIN;
GRANT regress_bypass_hidden TO regress_login;
ALTER ROLE regress_login SET app.current_tenant_id = '00000000-0000-4000-8000-00000000000a';
ALTER ROLE regress_login SET floe.tenant_admin = on;
SELECT schema_name, table_name, kind, tenant_column, via, rls_enabled, rls_forced,
       policy_present, policy_efficient, guard_present, tenant_index
  FROM floe.tenant_coverage() ORDER BY kind, schema_name, table_name;
SELECT table_name, unnest(problems) AS problem
  FROM floe.tenant_coverage() WHERE problems <> '{}' ORDER BY kind, table_name, 2;
SELECT floe.assert_tenant_coverage();
SELECT check_name, status FROM floe.health() WHERE check_name LIKE 'tenant.%';
SELECT detail FROM floe.health() WHERE check_name = 'tenant.defaults';
ALTER ROLE regress_login RESET app.current_tenant_id;
ALTER ROLE regress_login RESET floe.tenant_admin;

-- Foreign keys between tenant tables must carry the tenant column: a foreign key check
-- bypasses row level security, so through a single-column key tenant A can point at tenant
-- B's row (and B then cannot delete it). Coverage names such keys; a composite key refuses.
CREATE SCHEMA fk;
CREATE TABLE fk.companies (id bigint PRIMARY KEY, tenant_id uuid NOT NULL, UNIQUE (tenant_id, id));
CREATE TABLE fk.leads (id bigint PRIMARY KEY, tenant_id uuid NOT NULL,
                       company_id bigint REFERENCES fk.companies (id));
CREATE TABLE fk.deals (id bigint PRIMARY KEY, tenant_id uuid NOT NULL, company_id bigint,
                       FOREIGN KEY (tenant_id, company_id) REFERENCES fk.companies (tenant_id, id));
SELECT count(*) > 0 AS isolated
  FROM unnest('{fk.companies,fk.leads,fk.deals}'::regclass[]) t, LATERAL floe.enable_tenant_isolation(t);
SELECT table_name, unnest(problems) AS problem
  FROM floe.tenant_coverage() WHERE schema_name = 'fk' ORDER BY 1, 2;
BEGIN;
SELECT floe.set_tenant(:'B');
INSERT INTO fk.companies VALUES (1, :'B');
COMMIT;
BEGIN;
SELECT floe.set_tenant(:'A');
INSERT INTO fk.leads VALUES (1, :'A', 1);     -- the hole coverage names: accepted
SAVEPOINT composite;
INSERT INTO fk.deals VALUES (1, :'A', 1);     -- the composite key: refused
ROLLBACK TO SAVEPOINT composite;
ROLLBACK;
DROP SCHEMA fk CASCADE;

-- One SQLSTATE for every refusal (42501, as Postgres's own), told apart by the key that
-- starts floe's DETAIL: no tenant, another tenant's row, and (no key: Postgres's own) a
-- missing grant and a row level security violation.
CREATE FUNCTION public.refusal_key(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    d text;
BEGIN
    EXECUTE stmt;
    RETURN 'no error';
EXCEPTION WHEN insufficient_privilege THEN
    GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
    RETURN '42501 ' || coalesce(nullif(split_part(d, ':', 1), ''), '(no floe key)');
END
$$;
GRANT EXECUTE ON FUNCTION public.refusal_key(text) TO PUBLIC;
SET ROLE regress_app;
SELECT public.refusal_key($$SELECT count(*) FROM app.jobs$$) AS no_tenant;
BEGIN;
SELECT floe.set_tenant(:'A');
SELECT public.refusal_key(format('INSERT INTO app.jobs (tenant_id, payload) VALUES (%L, %L)', :'B', 'x')) AS other_tenant;
SELECT public.refusal_key($$SELECT count(*) FROM floe.tenant_token_keys$$) AS missing_grant;
SELECT public.refusal_key(format('UPDATE app.jobs SET tenant_id = %L', :'B')) AS rls_violation;
ROLLBACK;
RESET ROLE;
DROP FUNCTION public.refusal_key(text);

-- Signed tenant tokens: the auth service mints (here the owner does, as a service with
-- EXECUTE on floe.mint_tenant_token would), the application presents the token.
CREATE FUNCTION public.token_error(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
GRANT EXECUTE ON FUNCTION public.token_error(text) TO PUBLIC;
SELECT floe.mint_tenant_token(:'B', '5 minutes') AS token_b \gset
SELECT length(:'token_b') AS token_chars, :'token_b' ~ '^[A-Za-z0-9_-]+$' AS base64url;
SET ROLE regress_app;
SELECT public.token_error($$SELECT floe.mint_tenant_token('00000000-0000-4000-8000-00000000000b')$$) AS app_cannot_mint;
SELECT public.token_error($$SELECT key FROM floe.tenant_token_keys$$) AS app_cannot_read_keys;
BEGIN;
SELECT floe.set_tenant_token(:'token_b') = :'B' AS tenant_from_token;
SELECT payload FROM app.jobs;
COMMIT;
-- Bad tokens: 42501 with a hint, and no tenant set.
\set VERBOSITY default
BEGIN;
SELECT floe.set_tenant_token('');
ROLLBACK;
BEGIN;
SELECT floe.set_tenant_token(NULL);
ROLLBACK;
BEGIN;
SELECT floe.set_tenant_token(left(:'token_b', 40));
ROLLBACK;
BEGIN;
SELECT floe.set_tenant_token('this is not base64 at all!');
ROLLBACK;
BEGIN;   -- one character changed: forged (or minted for another database)
SELECT floe.set_tenant_token(overlay(:'token_b' placing CASE WHEN substr(:'token_b', 60, 1) = 'A' THEN 'B' ELSE 'A' END from 60 for 1));
ROLLBACK;
SELECT public.token_error($$SELECT payload FROM app.jobs$$) AS nothing_was_set;
RESET ROLE;
-- Expired: valid for 1 second, presented 1.5 s later (a replay after expiry).
SELECT floe.mint_tenant_token(:'B', '1 second') AS token_short \gset
SELECT pg_sleep(1.5);
SELECT regexp_replace(public.token_error(format('SELECT floe.set_tenant_token(%L)', :'token_short')),
                      '\d+ s ago', 'N s ago') AS expired;
SELECT public.token_error($$SELECT floe.mint_tenant_token('00000000-0000-4000-8000-00000000000b', '2 days')$$) AS too_long;
-- Rotation: the old key's tokens stay valid for the grace period, then are refused.
SELECT floe.rotate_tenant_token_key('1 hour') > 1 AS rotated;
BEGIN;
SELECT floe.set_tenant_token(:'token_b') = :'B' AS old_token_within_grace;
COMMIT;
SELECT floe.mint_tenant_token(:'B', '5 minutes') AS token_k2 \gset
-- No grace this time: the key just replaced (the one token_k2 was signed with) is out at once;
-- the first key keeps the hour it was given.
SELECT floe.rotate_tenant_token_key('0 seconds') > 2 AS rotated_again;
SELECT public.token_error(format('SELECT floe.set_tenant_token(%L)', :'token_k2')) AS token_after_grace;
SELECT public.token_error(format('SELECT floe.set_tenant_token(%L)', :'token_b')) AS first_key_still_in_grace;
SELECT count(*) AS keys_kept FROM floe.tenant_token_keys;
-- A role can be restricted to tokens: then its credentials alone open no tenant, neither
-- through floe.set_tenant() nor by setting the variable.
SELECT floe.require_tenant_token('regress_app');
SELECT floe.mint_tenant_token(:'A', '5 minutes') AS token_a \gset
SET ROLE regress_app;
BEGIN;
SELECT floe.set_tenant(:'A');
ROLLBACK;
BEGIN;
SET LOCAL app.current_tenant_id = :'A';
SELECT payload FROM app.jobs;
ROLLBACK;
BEGIN;
SELECT floe.set_tenant_token(:'token_a') = :'A' AS tenant_from_token;
SELECT count(*) > 0 AS sees_its_rows FROM app.jobs;
-- switching the variable by hand after the token does not carry the token's blessing
SET LOCAL app.current_tenant_id = :'B';
SELECT payload FROM app.jobs;
ROLLBACK;
RESET ROLE;
SELECT floe.require_tenant_token('regress_app', required => false);
SELECT count(*) AS token_roles FROM floe.tenant_token_roles;
DROP FUNCTION public.token_error(text);

-- disable undoes exactly what enable did: no floe policy, trigger or index is left on jobs.
SET ROLE regress_owner;
DROP VIEW app.h_jobs_view, app.h_jobs_invoker, app.h_jobs_su_view;
DROP MATERIALIZED VIEW app.h_jobs_mv, app.h_jobs_dashboard;
DROP TABLE app.h_order_items;
DROP POLICY legacy_read ON app.companies;
SELECT * FROM floe.disable_tenant_isolation('app.jobs');
SELECT c.relrowsecurity, c.relforcerowsecurity,
       (SELECT count(*) FROM pg_policy WHERE polrelid = c.oid) AS policies,
       (SELECT count(*) FROM pg_trigger WHERE tgrelid = c.oid) AS triggers,
       (SELECT count(*) FROM pg_index WHERE indrelid = c.oid) AS indexes
  FROM pg_class c WHERE c.oid = 'app.jobs'::regclass;
-- Dropping an isolated table removes it from the registry.
DROP TABLE app.events;
SELECT relid FROM floe.tenant_tables ORDER BY 1;
RESET ROLE;

DROP SCHEMA app CASCADE;
DROP ROLE regress_owner, regress_app, regress_ops, regress_bypass, regress_bypass_hidden,
    regress_bypass_unreachable, regress_login;
