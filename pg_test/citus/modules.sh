#!/usr/bin/env bash
# floe's other modules on a Citus cluster (issue #25, items 4 and 5), as far as this round
# goes: the queue and the content store's functions live on the coordinator and serve the
# application there, tenant by tenant; a matview over distributed tables is refreshed by the
# coordinator's scheduler on a schedule (its on-change tracking cannot see the workers'
# writes, and says so); a managed content column of a distributed table keeps each body in
# the store of the node holding the row's shard. Auditing distributed tables: audit.sh.
source "$(dirname "$0")/../lib/citus.sh"

citus_cluster
"$FLOE_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$FLOE_TEST_DB" -f "$(dirname "$0")/platform.sql" >/dev/null
T1=00000000-0000-0000-0000-000000000001
T2=00000000-0000-0000-0000-000000000002
as_admin "INSERT INTO app.tenants (id, name) VALUES ('$T1', 'one'), ('$T2', 'two')" >/dev/null
as_admin "INSERT INTO app.leads (tenant_id, email, name) SELECT t, 'l' || g || '@x', 'l' FROM (VALUES ('$T1'::uuid), ('$T2')) v(t), generate_series(1, 10) g" >/dev/null

echo "# the queue, on the coordinator"
qc "CREATE ROLE workers; GRANT workers TO platform_app;
    SET ROLE workers; SELECT floe.create_queue('mail')" >/dev/null
for t in $T1 $T2; do
    as_tenant $t -c "SELECT floe.enqueue('mail', jsonb_build_object('for', '$t'), tenant => '$t') IS NOT NULL" \
        -c "SELECT floe.enqueue('mail', '{\"n\": 2}', tenant => '$t') IS NOT NULL" >/dev/null
done
expect_eq "$(as_tenant $T1 -c "SELECT count(*) FROM floe.queued_jobs")" "2" "a tenant sees its own queued jobs only"
expect_eq "$("$FLOE_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -U platform_app -d "$FLOE_TEST_DB" \
    -c "SET ROLE workers" -c "SELECT count(*) FROM (SELECT floe.complete(id) FROM floe.dequeue('mail', 10)) d")" \
    "4" "a worker process dequeues and completes every tenant's jobs through the coordinator"
expect_eq "$(qw1 "SELECT count(*) FROM floe.queues")" "0" "the queue lives on the coordinator only"

echo "# the content store's functions, on the coordinator"
hash=$(as_tenant $T1 -c "SELECT encode(floe.content_put('a body for tenant one'), 'hex')")
expect_eq "$(as_tenant $T1 -c "SELECT floe.content_get_text(decode('$hash', 'hex'))")" "a body for tenant one" \
    "a body put through the coordinator reads back byte for byte"
if out=$(as_tenant $T2 -c "SELECT floe.content_get_text(decode('$hash', 'hex'))" 2>&1); then
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

echo "# a managed content column of a distributed table: bodies beside their shards"
qc "ALTER TABLE app.leads ADD COLUMN notes text" >/dev/null
on_coordinator=$(qc "SELECT count(*) FROM floe.content")
as_admin "UPDATE app.leads SET notes = 'note of ' || email WHERE email = 'l1@x'" >/dev/null
expect_eq "$(as_admin "SELECT floe.manage_content('app.leads', 'notes')")" "2" "manage_content moves the existing bodies (one per tenant)"
qc "GRANT SELECT ON app.leads_with_notes TO platform_app" >/dev/null
expect_eq "$(qc "SELECT count(*) FROM app.leads WHERE notes IS NOT NULL")" "0" "the column holds no body any more"
expect_eq "$(qc "SELECT count(*) FROM floe.content")" "$on_coordinator" "the coordinator's store holds none of them (it has no shard of app.leads)"
expect_eq "$(qc "SELECT sum(w.result::int) FROM run_command_on_workers('SELECT count(*) FROM floe.content') w")" "2" \
    "the workers' stores hold them"
big=$(head -c 30000 /dev/urandom | base64 -w 0)
as_tenant $T1 -c "INSERT INTO app.leads (email, name, notes) VALUES ('big@x', 'B', '$big'), ('dup@x', 'D', '$big')" >/dev/null
expect_eq "$(as_tenant $T1 -c "SELECT md5(notes) FROM app.leads_with_notes WHERE email = 'big@x'")" "$(printf %s "$big" | md5sum | cut -d' ' -f1)" \
    "a 40 kB body written through the coordinator reads back byte for byte through the view"
expect_eq "$(as_tenant $T1 -c "SELECT notes FROM app.leads_with_notes WHERE email = 'l1@x'")" "note of l1@x" "a migrated body reads back"
expect_eq "$(as_tenant $T1 -c "EXPLAIN SELECT notes FROM app.leads_with_notes WHERE email = 'big@x'" | grep -c 'Task Count: 1')" "1" \
    "read on the tenant's one shard (floe's routing), where the body is"
expect_eq "$(as_tenant $T2 -c "SELECT count(*) FROM app.leads_with_notes WHERE notes = '$big'")" "0" "another tenant does not see it"
expect_eq "$(qc "SELECT sum(w.result::int) FROM run_command_on_workers('SELECT count(*) FROM floe.content') w")" "3" \
    "the same body twice for one tenant is stored once (dedup per tenant, on its node)"
as_tenant $T1 -c "DELETE FROM app.leads WHERE email IN ('big@x', 'dup@x')" >/dev/null
expect_eq "$(qc "SELECT sum(w.result::int) FROM run_command_on_workers('SELECT count(*) FROM floe.content WHERE refs = 0') w")" "1" \
    "deleting the rows releases the body on its node (kept for the grace period, then collected)"

echo "# the limit: a shard move carries the rows, not their bodies"
shard=$(qc "SELECT get_shard_id_for_distribution_column('app.leads', '$T1'::uuid)")
from=$(qc "SELECT nodeport FROM citus_shards WHERE shardid = $shard")
to=$(qc "SELECT nodeport FROM pg_dist_node WHERE noderole = 'primary' AND groupid > 0 AND nodeport <> $from")
qc "SELECT citus_move_shard_placement($shard, '127.0.0.1', $from, '127.0.0.1', $to, shard_transfer_mode => 'block_writes')" >/dev/null
if out=$(as_tenant $T1 -c "SELECT notes FROM app.leads_with_notes WHERE email = 'l1@x'" 2>&1); then
    fail "a moved row's body was read: $out"
fi
expect_match "$out" "content .* does not exist" "reading a moved row's body fails with floe's error, never another body (README: Limits)"
