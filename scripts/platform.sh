#!/usr/bin/env bash
# The four-tier reference platform on one running cluster: (re)creates the databases oltp,
# content, queue and olap with floe, applies sql/examples/<tier>.sql, loads N tenants and M
# templated emails (bodies from pg_test/bench/gen_corpus.py), then prints the tour
# (sql/examples/tour_<tier>.sql) and floe.health() of every tier.
#
# Connection: PGHOST, PGPORT, PGUSER (a superuser) in the environment; FLOE_PG_BIN. Used by
# scripts/setup.sh (the demo cluster) and pg_test/tests/platform.sh (the end-to-end test).
# Usage: scripts/platform.sh [tenants, default 6] [emails, default 3000]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TENANTS=${1:-6}
EMAILS=${2:-3000}
TIERS=(oltp content queue olap)
FLOE_PG_BIN=${FLOE_PG_BIN:-$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)}
PSQL=("$FLOE_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1)
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"
WORK=$(mktemp -d /tmp/floe-platform.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "tier databases: ${TIERS[*]} (dropped and created again)"
for db in "${TIERS[@]}"; do
    "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
    "${PSQL[@]}" -d "$db" -c "SET client_min_messages = warning" -c "CREATE EXTENSION floe"
    "${PSQL[@]}" -d "$db" -At -c "SET client_min_messages = warning" -f "$ROOT/sql/examples/$db.sql" >/dev/null
    printf '  %-8s floe %s, schema from sql/examples/%s.sql\n' "$db" \
        "$("${PSQL[@]}" -d "$db" -At -c 'SELECT floe.version()')" "$db"
done

say "data: $TENANTS tenants, $EMAILS emails (pg_test/bench/gen_corpus.py)"
python3 "$ROOT/pg_test/bench/gen_corpus.py" --rows "$EMAILS" --tenants "$TENANTS" \
    --out "$WORK/corpus.tsv" 2>"$WORK/corpus.log"
grep -E "total|distinct" "$WORK/corpus.log" | sed 's/^/  /'
# The loader runs as an operator: a superuser is not a tenant admin until granted (floe never
# lets superuser alone cross tenants), and admin mode is set per transaction.
"${PSQL[@]}" -d postgres -c "GRANT floe_tenant_admin TO CURRENT_USER" 2>/dev/null || true
STAGE="CREATE TEMP TABLE corpus (id bigint, tenant uuid, template int, body text);
\\copy corpus FROM '$WORK/corpus.tsv'"

"${PSQL[@]}" -d oltp <<SQL
$STAGE
BEGIN;
SET LOCAL floe.tenant_admin = on;
SET LOCAL floe.actor = 'loader';
INSERT INTO app.tenants (id, name, domain, plan)
SELECT tenant, 'Tenant ' || row_number() OVER (ORDER BY tenant),
       'tenant' || row_number() OVER (ORDER BY tenant) || '.example',
       (ARRAY['free', 'starter', 'growth', 'enterprise'])[1 + (row_number() OVER (ORDER BY tenant)) % 4]
  FROM (SELECT DISTINCT tenant FROM corpus) t;
INSERT INTO app.users (tenant_id, email, name, role)
SELECT t.id, 'user' || g || '@' || lower(replace(t.name, ' ', '')) || '.example', 'User ' || g,
       CASE WHEN g = 1 THEN 'owner' ELSE 'member' END
  FROM app.tenants t, generate_series(1, 5) g;
-- Ids in tenant order (the r-th tenant by id has campaigns 4(r-1)+1..4r, leads
-- 200(r-1)+1..200r, sender accounts 3(r-1)+1..3r): the other tiers' loaders point at them.
INSERT INTO app.companies (tenant_id, name, domain)
SELECT t.id, 'Company ' || g, 'company' || g || '.example' FROM app.tenants t, generate_series(1, 20) g
 ORDER BY t.id, g;
INSERT INTO app.campaigns (tenant_id, name, status)
SELECT t.id, 'Campaign ' || g, (ARRAY['running', 'paused', 'done'])[1 + g % 3]
  FROM app.tenants t, generate_series(1, 4) g ORDER BY t.id, g;
INSERT INTO app.leads (tenant_id, company_id, campaign_id, email, name, score)
SELECT c.tenant_id, c.id, (SELECT min(id) FROM app.campaigns k WHERE k.tenant_id = c.tenant_id),
       'lead' || c.id || '.' || g || '@' || c.domain, 'Lead ' || g, (c.id * 7 + g) % 100
  FROM app.companies c, generate_series(1, 10) g ORDER BY c.id, g;
INSERT INTO app.email_accounts (tenant_id, address, provider)
SELECT t.id, 'sender' || g || '@' || lower(replace(t.name, ' ', '')) || '.example', (ARRAY['gmail', 'outlook', 'smtp'])[g]
  FROM app.tenants t, generate_series(1, 3) g ORDER BY t.id, g;
COMMIT;
SQL

# Cross-tier references: content and olap reach oltp through a postgres_fdw server, and
# declare what points there (sql/examples/<tier>_references.sql). postgres_fdw ships with
# PostgreSQL's contrib; a server without it (the PyPI builds of 16 and 18) skips this.
if [ "$("${PSQL[@]}" -d oltp -At -c "SELECT count(*) FROM pg_available_extensions WHERE name = 'postgres_fdw'")" = 1 ]; then
    say "cross-tier references: content and olap -> oltp (postgres_fdw server tier_oltp)"
    for db in content olap; do
        "${PSQL[@]}" -d "$db" -c "SET client_min_messages = warning" -c "CREATE EXTENSION postgres_fdw" \
            -c "CREATE SERVER tier_oltp FOREIGN DATA WRAPPER postgres_fdw
                  OPTIONS (host '${PGHOST:-/var/run/postgresql}', port '${PGPORT:-5432}', dbname 'oltp')" \
            -c "CREATE USER MAPPING FOR CURRENT_USER SERVER tier_oltp OPTIONS (user '${PGUSER:-$(id -un)}')"
        "${PSQL[@]}" -d "$db" -At -f "$ROOT/sql/examples/${db}_references.sql" >/dev/null
        "${PSQL[@]}" -d "$db" -At -F ' ' -c "SELECT '  ' || '$db', tbl, columns, '->', target_table, target_columns, mode
                                              FROM floe.declared_references ORDER BY id"
    done
else
    say "cross-tier references: skipped (no postgres_fdw in this PostgreSQL build)"
fi

"${PSQL[@]}" -d content <<SQL
$STAGE
BEGIN;
SET LOCAL floe.tenant_admin = on;
INSERT INTO app.email_messages (id, tenant_id, campaign_id, email_account_id, lead_id, template, subject, sent_at)
SELECT id, tenant, 4 * (r - 1) + 1 + id % 4, 3 * (r - 1) + 1 + id % 3, 200 * (r - 1) + 1 + id % 200,
       template, 'Template ' || template || ' for message ' || id,
       now() - (id % 1440) * interval '1 minute' * 40
  FROM (SELECT c.*, dense_rank() OVER (ORDER BY c.tenant) AS r FROM corpus c) c;
INSERT INTO app.email_content (message_id, tenant_id, body) SELECT id, tenant, body FROM corpus;
COMMIT;
SQL

"${PSQL[@]}" -d queue -o /dev/null <<SQL
$STAGE
-- A backlog as the platform has it at a busy moment: sends of every priority, the lower the
-- priority the longer they have waited (critical: up to 4 minutes ... background: 32 to 36;
-- the queue guarantees 40 minutes, 4 aging steps).
SELECT count(floe.enqueue('email_send', jsonb_build_object('message', id, 'template', template),
                          priority => (ARRAY['critical', 'high', 'normal', 'low', 'background'])[1 + (id / 10) % 5],
                          run_at => now() - (((id / 10) % 5) * 8 + (id / 50) % 5) * interval '1 minute',
                          tenant => tenant))
  FROM corpus WHERE id % 10 = 0;
SELECT count(floe.enqueue('email_process', jsonb_build_object('message', id, 'step', 'classify'),
                          priority => 'normal', tenant => tenant))
  FROM corpus WHERE id % 25 = 0;
SQL

"${PSQL[@]}" -d olap <<SQL
$STAGE
BEGIN;
SET LOCAL floe.tenant_admin = on;
INSERT INTO app.campaign_analytics (tenant_id, campaign_id, day, sent, opened, clicked)
SELECT t.tenant, 4 * (t.r - 1) + c, d::date, 200 + (c * 37 + extract(doy FROM d)::int + t.k) % 300,
       60 + (c * 13 + extract(doy FROM d)::int + t.k) % 90, 5 + (c * 7 + extract(doy FROM d)::int + t.k) % 20
  FROM (SELECT tenant, abs(hashtext(tenant::text)) % 97 AS k, row_number() OVER (ORDER BY tenant) AS r
          FROM (SELECT DISTINCT tenant FROM corpus) d) t, generate_series(1, 4) c,
       generate_series(date_trunc('month', now()) - interval '2 months', now(), interval '1 day') d;
INSERT INTO app.billing_analytics (tenant_id, at, event, amount)
SELECT t.tenant, d, (ARRAY['send', 'seat', 'overage'])[1 + extract(day FROM d)::int % 3],
       round((10 + extract(day FROM d)::int % 50)::numeric, 2)
  FROM (SELECT DISTINCT tenant FROM corpus) t,
       generate_series(date_trunc('month', now()) - interval '2 months', now(), interval '1 day') d;
INSERT INTO app.mailbox_analytics (tenant_id, account_id, day, sent, bounced)
SELECT t.tenant, 3 * (t.r - 1) + a, d::date, 100 + a * 10, a % 3
  FROM (SELECT tenant, row_number() OVER (ORDER BY tenant) AS r FROM (SELECT DISTINCT tenant FROM corpus) d) t,
       generate_series(1, 3) a,
       generate_series(now() - interval '13 days', now(), interval '1 day') d;
COMMIT;
SQL

# What the scheduler would do within a minute or two, done now so the tour shows a settled
# platform: refresh the dashboards, seal the audit entries, run the maintenance jobs.
for db in "${TIERS[@]}"; do
    "${PSQL[@]}" -d "$db" -At -c "ANALYZE" \
        -c "SELECT floe.run_job(name) FROM floe.jobs WHERE builtin ORDER BY name" >/dev/null
done

for db in "${TIERS[@]}"; do
    say "tour: $db"
    "${PSQL[@]}" -d "$db" -f "$ROOT/sql/examples/tour_$db.sql"
done

say "floe.health() in every tier (anything not ok is listed)"
bad=0
for db in "${TIERS[@]}"; do
    n=$("${PSQL[@]}" -d "$db" -At -c "SELECT count(*) FROM floe.health() WHERE status <> 'ok'")
    total=$("${PSQL[@]}" -d "$db" -At -c "SELECT count(*) FROM floe.health()")
    if [ "$n" = 0 ]; then
        printf '  %-8s all %s checks ok\n' "$db" "$total"
    else
        bad=1
        printf '  %-8s %s of %s checks not ok:\n' "$db" "$n" "$total"
        "${PSQL[@]}" -d "$db" -c "SELECT check_name, status, detail, hint FROM floe.health('warn')"
    fi
done
exit $bad
