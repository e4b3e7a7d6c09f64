#!/usr/bin/env bash
# floe's other modules on a Citus cluster (issue #25, items 4 and 5), as far as this round
# goes: the queue and the content store's functions live on the coordinator and serve the
# application there, tenant by tenant; a matview over distributed tables is refreshed by the
# coordinator's scheduler on a schedule (its on-change tracking cannot see the workers'
# writes, and says so); auditing and managed content columns of distributed tables are
# refused with a clear error, nothing changed.
source "$(dirname "$0")/../lib/citus.sh"

citus_cluster
"$FLOE_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$FLOE_TEST_DB" -f "$(dirname "$0")/platform.sql" >/dev/null
as_app() {
    local tenant=$1
    shift
    "$FLOE_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -U platform_app -d "$FLOE_TEST_DB" \
        -c "BEGIN" -c "SELECT floe.set_tenant('$tenant') IS NULL" "$@" -c "COMMIT" | sed '1d'
}
T1=00000000-0000-0000-0000-000000000001
T2=00000000-0000-0000-0000-000000000002
as_admin "INSERT INTO app.tenants (id, name) VALUES ('$T1', 'one'), ('$T2', 'two')" >/dev/null
as_admin "INSERT INTO app.leads (tenant_id, email, name) SELECT t, 'l' || g || '@x', 'l' FROM (VALUES ('$T1'::uuid), ('$T2')) v(t), generate_series(1, 10) g" >/dev/null

echo "# the queue, on the coordinator"
qc "CREATE ROLE workers; GRANT workers TO platform_app;
    SET ROLE workers; SELECT floe.create_queue('mail')" >/dev/null
for t in $T1 $T2; do
    as_app $t -c "SELECT floe.enqueue('mail', jsonb_build_object('for', '$t'), tenant => '$t') IS NOT NULL" \
        -c "SELECT floe.enqueue('mail', '{\"n\": 2}', tenant => '$t') IS NOT NULL" >/dev/null
done
expect_eq "$(as_app $T1 -c "SELECT count(*) FROM floe.queued_jobs")" "2" "a tenant sees its own queued jobs only"
expect_eq "$("$FLOE_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -U platform_app -d "$FLOE_TEST_DB" \
    -c "SET ROLE workers" -c "SELECT count(*) FROM (SELECT floe.complete(id) FROM floe.dequeue('mail', 10)) d")" \
    "4" "a worker process dequeues and completes every tenant's jobs through the coordinator"
expect_eq "$(qw1 "SELECT count(*) FROM floe.queues")" "0" "the queue lives on the coordinator only"

echo "# the content store's functions, on the coordinator"
hash=$(as_app $T1 -c "SELECT encode(floe.content_put('a body for tenant one'), 'hex')")
expect_eq "$(as_app $T1 -c "SELECT floe.content_get_text(decode('$hash', 'hex'))")" "a body for tenant one" \
    "a body put through the coordinator reads back byte for byte"
if out=$(as_app $T2 -c "SELECT floe.content_get_text(decode('$hash', 'hex'))" 2>&1); then
    [ -z "$out" ] || fail "another tenant read the body: $out"
fi
echo "  ok - another tenant does not read it"

echo "# a matview over distributed tables: scheduled refresh"
qc "CREATE MATERIALIZED VIEW app.lead_counts AS SELECT tenant_id, count(*) AS n FROM app.leads GROUP BY tenant_id;
    CREATE UNIQUE INDEX ON app.lead_counts (tenant_id)" >/dev/null
if out=$(qc "SELECT floe.register_matview('app.lead_counts')" 2>&1); then
    fail "on-change refresh over a distributed table was registered: $out"
fi
expect_match "$out" "on-change refresh of the Citus table app.leads is not supported" "on_change over a distributed table is refused"
expect_match "$out" "on_change => false and refresh_every" "naming the scheduled way"
expect_eq "$(qc "SELECT count(*) FROM floe.matviews")" "0" "nothing registered"
qc "SELECT floe.register_matview('app.lead_counts', on_change => false, refresh_every => '2 seconds', min_interval => '0')" >/dev/null
as_admin "INSERT INTO app.leads (tenant_id, email, name) SELECT '$T1', 'more' || g || '@x', 'm' FROM generate_series(1, 5) g" >/dev/null
wait_for 40 "the coordinator's scheduler refreshed the view" \
    qc "SELECT n = 15 FROM app.lead_counts WHERE tenant_id = '$T1'"
expect_eq "$(qc "SELECT status FROM floe.health() WHERE check_name = 'matview.failing'")" "ok" "no failing refresh"

echo "# refused: audit and managed content of distributed tables"
if out=$(qc "SELECT floe.enable_audit('app.leads')" 2>&1); then fail "auditing a distributed table went through"; fi
expect_match "$out" "auditing of the Citus table app.leads is not supported" "enable_audit refuses a distributed table"
expect_eq "$(qc "SELECT count(*) FROM floe.audit_tables")" "0" "nothing registered"
expect_eq "$(qc "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'app.leads'::regclass AND tgname LIKE 'floe_audit%'")" "0" \
    "no audit trigger"
if out=$(qc "SELECT floe.manage_content('app.leads', 'name')" 2>&1); then fail "managing content of a distributed table went through"; fi
expect_match "$out" "a managed content column of the Citus table app.leads is not supported" \
    "manage_content refuses a distributed table"
