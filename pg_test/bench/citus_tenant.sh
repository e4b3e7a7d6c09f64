#!/usr/bin/env bash
# Tenant-scoped queries through a Citus coordinator (issue #25, item 8): a coordinator and two
# workers on this machine (pg_test/lib/citus.sh), 32 shards, TENANTS tenants x ROWS rows, the
# same table shape four ways, measured side by side in one run:
#   plain     no RLS; the application writes WHERE tenant_id = T (the baseline)
#   plain_tx  the same inside BEGIN ... COMMIT: what a transaction block costs on Citus (the
#             coordinator opens one on the worker, BEGIN and COMMIT included), which every
#             way of giving the workers a tenant needs
#   floe      floe.enable_tenant_isolation(); the application writes no tenant filter: floe's
#             planner hook pins the tenant, Citus routes to one shard
#   filtered  floe's isolation and the application's own WHERE tenant_id = T
#   fanout    floe's isolation, no filter, floe.citus_tenant_routing = off: RLS alone, as Citus
#             users have it today (every shard asked, the workers' policies filter)
# Each transaction is one round trip (pgbench's \; joins the statements): floe's variants set
# the tenant with floe.set_tenant() in it, the plain one does not need to. pgbench TPS with
# CLIENTS clients, ROUNDS interleaved rounds of SECS seconds, the median per variant; the Task
# Count of each variant's plan. Prints the ratios to plain and floe's to filtered.
# Usage: pg_test/bench/citus_tenant.sh [seconds per run, default 10] [rounds, default 3]
# (needs Citus and floe installed into FLOE_PG_BIN's PostgreSQL: scripts/common.sh's
# use_test_prefix + ensure_citus + install_release "$FLOE_TEST_PREFIX")
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/../lib/citus.sh"
SECS=${1:-10}
ROUNDS=${2:-3}
CLIENTS=${CLIENTS:-4}
TENANTS=${TENANTS:-20}
ROWS=${ROWS:-500}

citus_cluster "citus.shard_count = 32" "max_connections = 200"
qc "CREATE ROLE bench_app LOGIN; CREATE ROLE bench_fanout LOGIN IN ROLE bench_app;
    ALTER ROLE bench_fanout SET floe.citus_tenant_routing = off" >/dev/null
for v in plain floe; do
    qc "CREATE TABLE b_$v (tenant_id uuid NOT NULL, id int NOT NULL, status text NOT NULL, score int NOT NULL,
                           PRIMARY KEY (tenant_id, id));
        SELECT create_distributed_table('b_$v', 'tenant_id');
        INSERT INTO b_$v SELECT ('00000000-0000-4000-8000-' || lpad(t::text, 12, '0'))::uuid, k,
                                CASE WHEN k % 4 = 0 THEN 'won' ELSE 'new' END, 0
                           FROM generate_series(1, $TENANTS) t, generate_series(1, $ROWS) k;
        GRANT SELECT, UPDATE ON b_$v TO bench_app" >/dev/null
done
qc "SELECT count(*) FROM floe.enable_tenant_isolation('b_floe')" >/dev/null
qc "VACUUM ANALYZE b_plain" >/dev/null
qc "VACUUM ANALYZE b_floe" >/dev/null

WORK=$(mktemp -d /tmp/floe-bench.XXXXXX)
trap 'rm -rf "$WORK"; cluster_cleanup_all' EXIT
tenant="('00000000-0000-4000-8000-' || lpad(:t::text, 12, '0'))::uuid"
# script VARIANT QUERY-KIND: the pgbench script of one transaction.
script() {
    local v=$1 kind=$2 table=b_floe filter="" set="SELECT floe.set_tenant($tenant) \\;"
    case $v in
    plain) table=b_plain filter="tenant_id = $tenant AND" set="" ;;
    plain_tx) table=b_plain filter="tenant_id = $tenant AND" set="BEGIN \\;" ;;
    filtered) filter="tenant_id = $tenant AND" ;;
    esac
    echo "\\set t random(1, $TENANTS)"
    echo "\\set k random(1, $ROWS)"
    case $kind in
    lookup) q="SELECT status, score FROM $table WHERE $filter id = :k" ;;
    aggregate) q="SELECT count(*), sum(score) FROM $table WHERE $filter status = 'new'" ;;
    update) q="UPDATE $table SET score = score + 1 WHERE $filter id = :k" ;;
    esac
    if [ "$v" = plain_tx ]; then echo "$set $q \\; COMMIT;"; else echo "$set $q;"; fi
}
role() { if [ "$1" = fanout ]; then echo bench_fanout; else echo bench_app; fi; }

VARIANTS=(plain plain_tx floe filtered fanout)
KINDS=(lookup aggregate update)
echo "# Task Count of each plan (tenant 1)"
for v in "${VARIANTS[@]}"; do
    for kind in "${KINDS[@]}"; do
        # The transaction's last statement, with tenant 1 and row 7.
        query=$(script "$v" "$kind" | tail -n 1 | sed -e 's/ \\; COMMIT;$//' -e 's/^.*\\; //' -e "s/:t\\b/1/g" -e "s/:k\\b/7/g" -e 's/;$//')
        set_tenant=()
        [ "${v%_tx}" = plain ] || set_tenant=(-c "SELECT floe.set_tenant('00000000-0000-4000-8000-000000000001')")
        tasks=$("$FLOE_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -U "$(role "$v")" -d "$FLOE_TEST_DB" \
            -c "BEGIN" "${set_tenant[@]}" -c "EXPLAIN (COSTS OFF) $query" -c "ROLLBACK" |
            grep -m1 -oE 'Task Count: [0-9]+' | grep -oE '[0-9]+$')
        printf '%-9s %-9s Task Count %s\n' "$v" "$kind" "$tasks"
        echo "$v $kind $tasks" >>"$WORK/tasks"
    done
done

for v in "${VARIANTS[@]}"; do for kind in "${KINDS[@]}"; do script "$v" "$kind" >"$WORK/$v-$kind.sql"; done; done
echo "# pgbench: $CLIENTS clients, $ROUNDS rounds x ${SECS}s, variants interleaved"
for round in $(seq 1 "$ROUNDS"); do
    for kind in "${KINDS[@]}"; do
        for v in "${VARIANTS[@]}"; do
            tps=$("$FLOE_PG_BIN/pgbench" -n -M simple -c "$CLIENTS" -j 2 -T "$SECS" -U "$(role "$v")" \
                -f "$WORK/$v-$kind.sql" "$FLOE_TEST_DB" 2>"$WORK/pgbench.err" |
                awk '/^tps = / {print int($3)}')
            if [ -z "$tps" ]; then cat "$WORK/pgbench.err" >&2; exit 1; fi
            echo "$v $kind $tps" >>"$WORK/tps"
        done
    done
    echo "  round $round done"
done

median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
echo
printf '%-10s %-9s %8s %6s %9s %12s %12s\n' query variant tps tasks "vs plain" "vs plain_tx" "vs filtered"
for kind in "${KINDS[@]}"; do
    base=$(awk -v k="$kind" '$1 == "plain" && $2 == k {print $3}' "$WORK/tps" | median)
    filt=$(awk -v k="$kind" '$1 == "filtered" && $2 == k {print $3}' "$WORK/tps" | median)
    tx=$(awk -v k="$kind" '$1 == "plain_tx" && $2 == k {print $3}' "$WORK/tps" | median)
    for v in "${VARIANTS[@]}"; do
        tps=$(awk -v v="$v" -v k="$kind" '$1 == v && $2 == k {print $3}' "$WORK/tps" | median)
        tasks=$(awk -v v="$v" -v k="$kind" '$1 == v && $2 == k {print $3}' "$WORK/tasks")
        awk -v k="$kind" -v v="$v" -v t="$tps" -v n="$tasks" -v b="$base" -v x="$tx" -v f="$filt" \
            'BEGIN { printf "%-10s %-9s %8d %6s %9.3f %12.3f %12.3f\n", k, v, t, n, t / b, t / x, t / f }'
    done
done
