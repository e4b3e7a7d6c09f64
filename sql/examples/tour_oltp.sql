-- Tour of the OLTP tier (scripts/platform.sh prints it). Plain SQL from any client.
\pset footer off
-- (The tour runs as an operator; it picks a tenant in admin mode, as an operator must.)
BEGIN;
SET LOCAL floe.tenant_admin = on;
SELECT id AS tenant, name AS tenant_name FROM app.tenants ORDER BY name LIMIT 1 \gset
COMMIT;
\echo '-- tenant isolation: the application role sees nothing until it names its tenant (fails closed, 42501)'
SET ROLE platform_app;
\set ON_ERROR_STOP 0
SELECT count(*) FROM app.leads;
\set ON_ERROR_STOP 1
BEGIN;
SELECT floe.set_tenant(:'tenant') \g /dev/null
\echo '-- as' :tenant_name
SELECT (SELECT count(*) FROM app.tenants) AS tenants_visible, (SELECT count(*) FROM app.leads) AS leads_visible,
       (SELECT count(DISTINCT tenant_id) FROM app.leads) AS tenants_among_them;
\echo '-- writing a row of another tenant is refused (42501)'
\set ON_ERROR_STOP 0
INSERT INTO app.leads (tenant_id, email, name)
SELECT id, 'x@y.example', 'planted' FROM app.tenants WHERE false
UNION ALL SELECT '00000000-0000-4000-8000-000000000000', 'x@y.example', 'planted';
\set ON_ERROR_STOP 1
ROLLBACK;
RESET ROLE;
\echo '-- floe.tenant_coverage(): every tenant table protected'
SELECT table_name, rls_enabled, rls_forced, problems FROM floe.tenant_coverage() ORDER BY table_name;

\echo '-- audit: an application user changes a lead; the log says who, what changed, and hashes the address'
BEGIN;
SET LOCAL floe.tenant_admin = on;
SET LOCAL floe.actor = 'user:1@tenant-1';
UPDATE app.leads SET status = 'contacted', email = 'new.address@company1.example'
 WHERE id = (SELECT min(id) FROM app.leads);
COMMIT;
SELECT op, actor, app_actor, pk, old_values, new_values, classification
  FROM floe.audit_log WHERE table_name = 'leads' ORDER BY id DESC LIMIT 1;
SELECT floe.audit_seal() AS entries_sealed;
SELECT table_name, status, detail FROM floe.verify_audit() ORDER BY table_name;

\echo '-- a GDPR erasure deletes ten leads here; the Content tier keeps their messages (its tour finds them)'
BEGIN;
SET LOCAL floe.tenant_admin = on;
SET LOCAL floe.actor = 'gdpr-erasure';
WITH gone AS (DELETE FROM app.leads WHERE id <= 10 RETURNING id) SELECT count(*) AS leads_erased FROM gone;
COMMIT;

\echo '-- floe.inventory(): every table and what floe does to it'
SELECT table_name, tenant_isolation, audited, classification, row_estimate, pg_size_pretty(total_bytes) AS size
  FROM floe.inventory() ORDER BY table_name;
