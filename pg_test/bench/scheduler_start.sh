#!/usr/bin/env bash
# How soon a database gets its scheduler after CREATE EXTENSION floe: on a preloaded
# throwaway cluster, N new databases one after another; for each, the time from the commit of
# CREATE EXTENSION (clock_timestamp() read right after it, in the same session) to the
# backend_start of the scheduler that serves it (read 2 s later: a worker started before the
# commit finds no floe and leaves; the one that stays is the one that counts). Prints each
# and the median and maximum. Each database is dropped after its measurement. The launcher also looks by itself once a second, so without a
# wakeup the figures spread over 0-1 s.
# Usage: pg_test/bench/scheduler_start.sh [databases, default 16]
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/../lib/cluster.sh"
N=${1:-16}

cluster_throwaway yes
PSQL=("$FLOE_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1)
ms=()
for i in $(seq 1 "$N"); do
    "${PSQL[@]}" -d postgres -c "CREATE DATABASE start_$i"
    t0=$("${PSQL[@]}" -d "start_$i" -c "CREATE EXTENSION floe" -c "SELECT extract(epoch FROM clock_timestamp())")
    sleep 2
    started=$("${PSQL[@]}" -d postgres -c "SELECT extract(epoch FROM backend_start) FROM pg_stat_activity
                                            WHERE backend_type = 'floe scheduler' AND datname = 'start_$i'")
    [ -n "$started" ] || { echo "start_$i: no scheduler after 2 s" >&2; exit 1; }
    ms+=("$(awk -v a="$started" -v b="$t0" 'BEGIN { printf "%d", (a - b) * 1000 }')")
    # dropped again: floe.max_workers (8) would leave later ones without a scheduler
    "${PSQL[@]}" -d postgres -c "DROP DATABASE start_$i"
done
printf 'CREATE EXTENSION commit -> scheduler start, ms: %s\n' "${ms[*]}"
printf '%s\n' "${ms[@]}" | sort -n | awk '{ v[NR] = $1 } END { printf "median %d ms, max %d ms over %d databases\n", v[int((NR + 1) / 2)], v[NR], NR }'
