#!/usr/bin/env bash
# End to end: the four-tier reference platform (scripts/platform.sh, what the README's first
# command runs) on a throwaway preloaded cluster with its scheduler workers: the schemas of
# sql/examples/, the generated tenants and emails, the tour, and floe.health() all ok in all
# four databases. Then a few facts of the tour, checked.
source "$(dirname "$0")/../lib/testlib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

cluster_throwaway yes
out=$(bash "$ROOT/scripts/platform.sh" 4 800 2>&1) || { echo "$out" | tail -40; fail "platform.sh failed"; }
expect_match "$out" "oltp +all [0-9]+ checks ok" "oltp: floe.health() all ok"
expect_match "$out" "content +all [0-9]+ checks ok" "content: floe.health() all ok"
expect_match "$out" "queue +all [0-9]+ checks ok" "queue: floe.health() all ok"
expect_match "$out" "olap +all [0-9]+ checks ok" "olap: floe.health() all ok"

expect_match "$(qd oltp "SET ROLE platform_app; SELECT count(*) FROM app.leads" 2>&1 || true)" "no tenant is set" \
    "oltp: no tenant, no rows (fails closed)"
tenant=$(qd oltp "BEGIN; SET LOCAL floe.tenant_admin = on; SELECT id FROM app.tenants ORDER BY id LIMIT 1; COMMIT")
expect_eq "$(qd oltp "SET ROLE platform_app; BEGIN; SELECT floe.set_tenant('$tenant');
    SELECT count(DISTINCT tenant_id) || ' ' || min(tenant_id::text) FROM app.leads; COMMIT" | tail -1)" "1 $tenant" \
    "oltp: a tenant sees only its own leads"
expect_eq "$(qd oltp "SELECT count(*) FROM floe.verify_audit() WHERE status <> 'ok'")" 0 "oltp: audit verified"
expect_eq "$(qd content "SELECT count(*) FROM app.email_content WHERE body IS NOT NULL")" 0 \
    "content: bodies are in the store, not the table"
expect_eq "$(qd content "BEGIN; SET LOCAL floe.tenant_admin = on;
    SELECT count(*) = 800 FROM app.email_content_with_body WHERE body IS NOT NULL; COMMIT")" t \
    "content: every body reads back"
expect_match "$(qd content "SELECT ratio_with_dedup FROM floe.content_stats WHERE tenant IS NULL AND tier IS NULL")" \
    "^[0-9]+\.[0-9]+$" "content: compression ratio reported"
if [ "$(qd content "SELECT count(*) FROM pg_extension WHERE extname = 'postgres_fdw'")" = 1 ]; then
    expect_eq "$(qd content "SELECT count(*) FROM floe.declared_references")/$(qd olap "SELECT count(*) FROM floe.declared_references")" "3/2" \
        "references: content declares 3 into oltp, olap 2"
    expect_match "$out" "(leads_erased[^0-9]+10)" "oltp's tour erases 10 leads"
    expect_match "$out" "app.email_messages \| \{lead_id\} +\| +[0-9]+ \| +[1-9][0-9]* \| t" \
        "content's tour: the scan finds the messages of the erased leads"
    expect_eq "$(qd content "SELECT count(*) FROM floe.reference_orphans")/$(qd content "SELECT count(*) FROM app.email_messages WHERE lead_id <= 10")" "0/0" \
        "and the repair cleared them"
    expect_eq "$(qd olap "SELECT count(*) FROM floe.reference_scans WHERE last_pass_completed IS NOT NULL")/$(qd olap "SELECT count(*) FROM floe.reference_orphans")" "2/0" \
        "olap: both references scanned in full (the job), no orphan: the loaders point at real rows"
    expect_match "$(qd content "BEGIN; SET LOCAL floe.tenant_admin = on;
        INSERT INTO app.email_messages (id, tenant_id, campaign_id, template, subject, sent_at)
        SELECT 999998, tenant_id, 1, 1, 'x', now() FROM app.email_messages ORDER BY tenant_id DESC LIMIT 1; COMMIT" 2>&1 || true)" \
        "campaign_id\)=\([0-9a-f-]+, 1\) is not present in app.campaigns on server tier_oltp" \
        "content: a message of one tenant for another tenant's campaign is refused"
else
    echo "  ok - references: no postgres_fdw in this build, skipped"
fi
expect_eq "$(qd olap "SELECT count(*) FROM floe.matview_status WHERE last_result = 'succeeded'")" 2 \
    "olap: both dashboards refreshed"
expect_eq "$(qd olap "SELECT count(*) > 0 FROM app.tenant_dashboard")" t "olap: dashboard has rows"
expect_eq "$(qd queue "BEGIN; SET LOCAL floe.tenant_admin = on; SELECT count(*) > 0 FROM floe.queued_jobs; COMMIT")" t \
    "queue: backlog left after the tour's dequeue (admin mode: the jobs carry tenants)"
expect_eq "$(qd queue "SELECT count(*) FROM floe.queued_jobs WHERE tenant IS NOT NULL")" 0 \
    "queue: without a tenant context, no tenant's jobs are listed"

echo "# every tier as the application role platform_app: no superuser, no admin mode"
expect_eq "$(qd queue "SELECT bool_and(NOT r.rolsuper) FROM floe.queue_settings s JOIN pg_roles r ON r.oid = s.owner::regrole")" t \
    "queue: the queues belong to a role that is not a superuser"
login=$(qd oltp "SELECT domain FROM app.tenants WHERE id = '$tenant'")
expect_eq "$(qd oltp "SET ROLE platform_app; SELECT app.tenant_by_domain(upper('$login'))")" "$tenant" \
    "oltp: the login flow finds the tenant by its domain (app.tenant_by_domain)"
expect_match "$(qd oltp "SET ROLE platform_app; SELECT count(*) FROM app.tenants" 2>&1 || true)" "no tenant is set" \
    "oltp: and reads nothing else of the tenants without a tenant"
expect_eq "$(qd content "SET ROLE platform_app; BEGIN; SELECT floe.set_tenant('$tenant');
    INSERT INTO app.email_content (message_id, tenant_id, body) VALUES (999999, '$tenant', 'hello from the app');
    SELECT body FROM app.email_content_with_body WHERE message_id = 999999; ROLLBACK" | tail -1)" \
    "hello from the app" "content: the application stores a body and reads it back"
expect_eq "$(qd queue "SET ROLE platform_app; BEGIN; SELECT floe.set_tenant('$tenant');
    SELECT floe.enqueue('email_process', '{\"probe\": true}', 'critical', tenant => '$tenant') > 0; COMMIT" | tail -1)" \
    t "queue: the application enqueues for its tenant"
expect_match "$(qd queue "SET ROLE platform_app;
    SELECT count(floe.complete(id)) FROM floe.dequeue('email_process', 50)" | tail -1)" \
    "^[1-9][0-9]*$" "queue: its workers (no tenant context) dequeue and complete"
expect_eq "$(qd olap "SET ROLE platform_app; BEGIN; SELECT floe.set_tenant('$tenant');
    SELECT count(DISTINCT tenant_id) FROM app.campaign_analytics; COMMIT" | tail -1)" 1 \
    "olap: the application reads its tenant's analytics"

