#!/usr/bin/env bash
# floe's queue on a Citus coordinator against one plain node (issue #25, item 5): the queue's
# tables are floe's own, local to the node that has them; on a coordinator every statement
# also passes Citus's planner and executor hooks. pgbench, CLIENTS clients, the median of
# ROUNDS interleaved runs of SECS seconds per node: enqueue (one job per transaction), and
# dequeue + complete (one job per transaction, from a backlog of BACKLOG jobs enqueued first,
# so that no dequeue finds the queue empty).
# Usage: pg_test/bench/citus_queue.sh [seconds per run, default 10] [rounds, default 3]
# (needs Citus and floe installed into FLOE_PG_BIN's PostgreSQL, as citus_tenant.sh)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/../lib/citus.sh"
SECS=${1:-10}
ROUNDS=${2:-3}
CLIENTS=${CLIENTS:-4}

# The plain node first (cluster_throwaway points PG* at the last cluster made).
cluster_throwaway yes "max_connections = 100"
PLAIN_HOST=$PGHOST PLAIN_PORT=$PGPORT
make_test_db
citus_cluster "max_connections = 100"
COORD_HOST=$PGHOST COORD_PORT=$PGPORT

WORK=$(mktemp -d /tmp/floe-bench.XXXXXX)
trap 'rm -rf "$WORK"; cluster_cleanup_all' EXIT
echo "\\set t random(1, 20)
SELECT floe.enqueue('bench', jsonb_build_object('n', :t));" >"$WORK/enqueue.sql"
echo "SELECT floe.complete(id) FROM floe.dequeue('bench', 1);" >"$WORK/dequeue.sql"
for node in plain coord; do
    if [ $node = plain ]; then h=$PLAIN_HOST p=$PLAIN_PORT; else h=$COORD_HOST p=$COORD_PORT; fi
    "$FLOE_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$h" -p "$p" -d "$FLOE_TEST_DB" \
        -c "SELECT floe.create_queue('bench')" \
        -c "SELECT count(*) FROM floe.enqueue_many('bench', (SELECT array_agg(jsonb_build_object('n', g)) FROM generate_series(1, ${BACKLOG:-300000}) g))" >/dev/null
done
run() { # node script -> tps
    local h p
    if [ "$1" = plain ]; then h=$PLAIN_HOST p=$PLAIN_PORT; else h=$COORD_HOST p=$COORD_PORT; fi
    "$FLOE_PG_BIN/pgbench" -n -M simple -h "$h" -p "$p" -c "$CLIENTS" -j 2 -T "$SECS" \
        -f "$WORK/$2.sql" "$FLOE_TEST_DB" 2>"$WORK/err" | awk '/^tps = / {print int($3)}'
}
for round in $(seq 1 "$ROUNDS"); do
    for kind in enqueue dequeue; do
        for node in plain coord; do
            tps=$(run $node $kind)
            [ -n "$tps" ] || { cat "$WORK/err" >&2; exit 1; }
            echo "$node $kind $tps" >>"$WORK/tps"
        done
    done
    echo "  round $round done"
done
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
printf '%-8s %10s %12s %8s\n' op "plain tps" "coord tps" ratio
for kind in enqueue dequeue; do
    a=$(awk -v k=$kind '$1 == "plain" && $2 == k {print $3}' "$WORK/tps" | median)
    b=$(awk -v k=$kind '$1 == "coord" && $2 == k {print $3}' "$WORK/tps" | median)
    awk -v k=$kind -v a="$a" -v b="$b" 'BEGIN { printf "%-8s %10d %12d %8.3f\n", k, a, b, b / a }'
done
