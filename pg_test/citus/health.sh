#!/usr/bin/env bash
# floe.health() on a Citus cluster, and bad input (issue #25): every node ok once the platform
# is distributed and isolated (the workers hold Citus's copies of the tables and floe's
# policies without a sub-select, which is no problem there); a scheduler on every node; a
# distributed table with a tenant column left unisolated is named; floe's table functions
# refuse a shard's name; a worker that lost floe is named by the coordinator's citus.workers.
source "$(dirname "$0")/../lib/citus.sh"

citus_cluster
"$FLOE_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$FLOE_TEST_DB" -f "$(dirname "$0")/platform.sql" >/dev/null
not_ok() { qn "$1" "SELECT coalesce(string_agg(check_name || '=' || status || ': ' || detail, '; '), 'none') FROM floe.health() WHERE status <> 'ok'"; }

echo "# health on every node"
for n in 0 1 2; do
    wait_for 20 "node $n: a floe scheduler" qn $n "SELECT status = 'ok' FROM floe.health() WHERE check_name = 'scheduler.running'"
    expect_eq "$(not_ok $n)" "none" "node $n: floe.health() all ok"
done
expect_eq "$(qc "SELECT status || ': ' || detail FROM floe.health() WHERE check_name = 'citus.workers'")" \
    "ok: 2 worker(s), each with floe $(qc "SELECT extversion FROM pg_extension WHERE extname = 'floe'")" \
    "the coordinator checks floe on both workers"
expect_eq "$(qw1 "SELECT count(*) FROM floe.health() WHERE check_name = 'citus.workers'")" "0" \
    "a worker has no citus.workers check"

echo "# a distributed tenant table left unisolated"
qc "CREATE TABLE app.notes (tenant_id uuid NOT NULL, id bigint NOT NULL, body text, PRIMARY KEY (tenant_id, id));
    SELECT create_distributed_table('app.notes', 'tenant_id', colocate_with => 'app.companies')" >/dev/null
expect_match "$(not_ok 0)" "tenant.coverage=critical: .*notes" "the coordinator's health names it"
qc "SELECT count(*) FROM floe.enable_tenant_isolation('app.notes')" >/dev/null
expect_eq "$(not_ok 0)" "none" "isolated: all ok again"

echo "# floe's table functions on a shard"
shard=$(qw1 "SET citus.override_table_visibility TO off;
             SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relname ~ '^leads_[0-9]+$' ORDER BY 1 LIMIT 1")
[ -n "$shard" ] || fail "no shard of app.leads on worker 1"
for call in "floe.enable_tenant_isolation('$shard')" "floe.enable_audit('$shard')" \
    "floe.manage_content('$shard', 'name')" "floe.create_parent('$shard', 'id')"; do
    if out=$(qw1 "SET citus.override_table_visibility TO off; SELECT $call" 2>&1); then
        fail "$call on a shard went through: $out"
    fi
    expect_match "$out" "not a Citus shard: call it on the coordinator for the distributed table app.leads" \
        "${call%%(*} refuses a shard"
done

echo "# a worker at another floe version, a worker down"
# (DROP EXTENSION floe on a worker is refused: the shards' policies depend on its functions.)
qw2 "UPDATE pg_extension SET extversion = '0.9.0' WHERE extname = 'floe'" >/dev/null
expect_match "$(not_ok 0)" "citus.workers=warn: coordinator has floe [0-9.]+; 127.0.0.1:${CITUS_PORTS[2]} has floe 0.9.0" \
    "the coordinator names the worker at another version"
qw2 "UPDATE pg_extension SET extversion = '$(qc "SELECT extversion FROM pg_extension WHERE extname = 'floe'")' WHERE extname = 'floe'" >/dev/null
cluster_stop "${CITUS_DIRS[2]}"
expect_match "$(not_ok 0)" "citus.workers=critical: .*127.0.0.1:${CITUS_PORTS[2]} cannot be asked" \
    "the coordinator names the worker it cannot reach"
cluster_start "${CITUS_DIRS[2]}"
expect_eq "$(not_ok 0)" "none" "the worker back: all ok"
