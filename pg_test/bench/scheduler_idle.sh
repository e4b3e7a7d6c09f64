#!/usr/bin/env bash
# Idle cost of floe's background workers: a preloaded cluster with the four tier databases
# (oltp, content, queue, olap) and floe in each, no due jobs. Measures the CPU time (user +
# system, from /proc) of the launcher and the four schedulers over a window and prints it as a
# share of one core. Target: under 1% in total.
# Usage: pg_test/bench/scheduler_idle.sh [seconds, default 60]
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/../lib/cluster.sh"
SECS=${1:-60}

cluster_throwaway yes
PSQL=("$FLOE_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1)
for db in oltp content queue olap; do
    "${PSQL[@]}" -d postgres -c "CREATE DATABASE $db"
    "${PSQL[@]}" -d "$db" -c "CREATE EXTENSION floe"
done
# one job per database, far in the future: the workers have something to look at
for db in oltp content queue olap; do
    "${PSQL[@]}" -d "$db" -c "SELECT floe.schedule('nightly', '0 3 * * *', 'SELECT 1')" >/dev/null
done
sleep 5
pids=$("${PSQL[@]}" -d postgres -c "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity WHERE backend_type IN ('floe launcher', 'floe scheduler')")
count=$(echo "$pids" | wc -w)
ticks() { # user + system clock ticks of the given pids
    local total=0 p
    for p in $1; do
        total=$((total + $(awk '{ print $14 + $15 }' "/proc/$p/stat")))
    done
    echo "$total"
}
hz=$(getconf CLK_TCK)
before=$(ticks "$pids")
sleep "$SECS"
after=$(ticks "$pids")
awk -v t=$((after - before)) -v hz="$hz" -v s="$SECS" -v n="$count" 'BEGIN {
    printf "floe workers idle: %d processes (launcher + schedulers), %.2f s CPU in %d s = %.3f%% of one core\n", n, t / hz, s, 100 * t / hz / s
}'
