#!/usr/bin/env bash
# Materialized-view refresh, in one run on one throwaway cluster (preloaded, no worker:
# the script drives the refresher itself so both sides see the same clock):
# 1. Write overhead of the change trigger: pgbench inserts one row per transaction into a
#    base table (4 clients), with no registered view (no trigger) and with an on-change
#    view registered (floe's statement trigger), interleaved with the order alternating,
#    the table emptied and a checkpoint before every run, median of ROUNDS runs.
#    Also 100-row inserts, where the statement trigger's cost spreads over the rows.
# 2. Refreshes over a mixed workload: CYCLES cycles of a write burst (BURST s at ~200
#    inserts/s) then an idle period (IDLE s). Time is scaled: a "minute" is TICK s.
#      blind  REFRESH MATERIALIZED VIEW CONCURRENTLY every TICK s (cron's every minute)
#      floe   floe.refresh_due() every second, the view registered with
#             min_interval => TICK s (at most one refresh per "minute", none when clean)
#    Both views have the same definition over the same table; printed: refreshes and their
#    total time for each, and the worst staleness floe allowed.
# The cluster is disposable (fsync and synchronous_commit off): the trigger's CPU cost is
# not hidden behind a disk flush.
# Usage: pg_test/bench/matview.sh [seconds per write run, default 10] [rounds, default 5]
#                                 [cycles, default 3] [tick seconds, default 10]
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/../lib/cluster.sh"
SECS=${1:-10}
ROUNDS=${2:-5}
CYCLES=${3:-3}
TICK=${4:-10}
BURST=$((2 * TICK))
IDLE=$((4 * TICK))
CLIENTS=4
WORK=$(mktemp -d /tmp/floe-bench-matview.XXXXXX)
if floe_is_root; then chown "$FLOE_OS_USER" "$WORK"; fi

cluster_throwaway yes "floe.max_workers = 0"
trap 'rm -rf "$WORK"; cluster_cleanup_all' EXIT
"$FLOE_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE bench"
PSQL=("$FLOE_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d bench)
"${PSQL[@]}" <<SQL
CREATE EXTENSION floe;
CREATE TABLE sends (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, campaign int NOT NULL,
                    opened boolean NOT NULL, sent_at timestamptz NOT NULL DEFAULT now());
INSERT INTO sends (campaign, opened)
SELECT g % 500, g % 3 = 0 FROM generate_series(1, 300000) g;
CREATE INDEX ON sends (campaign);
CREATE MATERIALIZED VIEW stats AS
    SELECT campaign, count(*) AS sends, count(*) FILTER (WHERE opened) AS opens FROM sends GROUP BY campaign;
CREATE UNIQUE INDEX ON stats (campaign);
CREATE MATERIALIZED VIEW stats_blind AS
    SELECT campaign, count(*) AS sends, count(*) FILTER (WHERE opened) AS opens FROM sends GROUP BY campaign;
CREATE UNIQUE INDEX ON stats_blind (campaign);
CREATE TABLE blind_log (started timestamptz, finished timestamptz);
-- The write test's own table, emptied before every run so that no run inherits a bigger one.
CREATE TABLE w (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, campaign int NOT NULL,
                opened boolean NOT NULL, sent_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX ON w (campaign);
CREATE MATERIALIZED VIEW w_stats AS SELECT campaign, count(*) AS n FROM w GROUP BY campaign;
CREATE UNIQUE INDEX ON w_stats (campaign);
VACUUM ANALYZE;
SQL

cat >"$WORK/one.sql" <<'EOF'
\set c random(0, 499)
INSERT INTO w (campaign, opened) VALUES (:c, false);
EOF
cat >"$WORK/hundred.sql" <<'EOF'
\set c random(0, 499)
INSERT INTO w (campaign, opened) SELECT :c, false FROM generate_series(1, 100);
EOF
cat >"$WORK/burst.sql" <<'EOF'
\set c random(0, 499)
INSERT INTO sends (campaign, opened) VALUES (:c, false);
EOF

run_tps() { # script
    "${PSQL[@]}" -c "TRUNCATE w" -c "CHECKPOINT" >/dev/null
    "$FLOE_PG_BIN/pgbench" -n -M prepared -d bench -c "$CLIENTS" -j 2 -T "$SECS" -f "$WORK/$1" \
        >"$WORK/pgbench.log" 2>&1 || { cat "$WORK/pgbench.log"; exit 1; }
    awk '/^tps = / { v = $3 } END { printf "%.0f", v }' "$WORK/pgbench.log"
}
median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }

declare -A TPS
for r in $(seq 1 "$ROUNDS"); do
    # Alternate which side goes first, so that drift (caches, autovacuum) favours neither.
    order="plain trigger"
    [ $((r % 2)) -eq 0 ] && order="trigger plain"
    for mode in $order; do
        if [ $mode = trigger ]; then
            "${PSQL[@]}" -c "SELECT floe.register_matview('w_stats', min_interval => '1 hour')" >/dev/null
        else
            "${PSQL[@]}" -c "SELECT floe.unregister_matview('w_stats', if_exists => true)" >/dev/null
        fi
        for script in one hundred; do
            TPS[$mode.$script.$r]=$(run_tps $script.sql)
            TPS[$mode.$script]+="${TPS[$mode.$script.$r]} "
        done
    done
    # Paired: the two runs of a round are adjacent in time, so drift cancels in their ratio.
    for script in one hundred; do
        TPS[ratio.$script]+="$(ratio "${TPS[trigger.$script.$r]}" "${TPS[plain.$script.$r]}") "
    done
done

printf '\nWrite throughput on the base table (transactions/s, %s clients, median of %s runs of %ss)\n' \
    "$CLIENTS" "$ROUNDS" "$SECS"
printf '%-22s %10s %10s %14s %10s   %s\n' insert plain trigger "paired ratio" overhead "per-round ratios (trigger / plain)"
for script in one hundred; do
    p=$(echo "${TPS[plain.$script]}" | median)
    t=$(echo "${TPS[trigger.$script]}" | median)
    m=$(echo "${TPS[ratio.$script]}" | median)
    label=$([ $script = one ] && echo "1 row per transaction" || echo "100 rows per statement")
    printf '%-22s %10s %10s %14s %9s%%   %s\n' "$label" "$p" "$t" "$m" \
        "$(awk -v m="$m" 'BEGIN { printf "%.1f", (1 - m) * 100 }')" "${TPS[ratio.$script]}"
done

# 2. Mixed workload.
"${PSQL[@]}" -c "SELECT floe.unregister_matview('w_stats', if_exists => true)" >/dev/null
"${PSQL[@]}" -c "SELECT floe.register_matview('stats', min_interval => '$TICK seconds')" >/dev/null
"${PSQL[@]}" -c "SELECT count(*) FROM floe.refresh_due()" >/dev/null
"${PSQL[@]}" -c "TRUNCATE floe.matview_refreshes" >/dev/null
TOTAL=$((CYCLES * (BURST + IDLE)))
start=$(date +%s)
worst=0
for cycle in $(seq 1 "$CYCLES"); do
    "$FLOE_PG_BIN/pgbench" -n -M prepared -d bench -c 2 -j 1 -R 200 -T "$BURST" -f "$WORK/burst.sql" \
        >"$WORK/burst.log" 2>&1 &
    burst_pid=$!
    for s in $(seq 1 $((BURST + IDLE))); do
        sleep 1
        "${PSQL[@]}" -c "SELECT count(*) FROM floe.refresh_due()" >/dev/null
        elapsed=$(($(date +%s) - start))
        if [ $((elapsed / TICK)) -gt "$(("${PSQL[@]}" -c "SELECT count(*) FROM blind_log") || echo 0)" ]; then
            "${PSQL[@]}" -c "INSERT INTO blind_log (started) VALUES (clock_timestamp())" \
                -c "REFRESH MATERIALIZED VIEW CONCURRENTLY stats_blind" \
                -c "UPDATE blind_log SET finished = clock_timestamp() WHERE finished IS NULL" >/dev/null
        fi
        lag=$("${PSQL[@]}" -c "SELECT coalesce(extract(epoch FROM staleness)::int, 0) FROM floe.matview_status WHERE view = 'public.stats'")
        [ "$lag" -gt "$worst" ] && worst=$lag
    done
    wait "$burst_pid" || { cat "$WORK/burst.log"; exit 1; }
done
read -r fn ft < <("${PSQL[@]}" -F ' ' -c "SELECT count(*), round(coalesce(extract(epoch FROM sum(duration)), 0)::numeric, 2) FROM floe.matview_refreshes WHERE result = 'succeeded'")
read -r bn bt < <("${PSQL[@]}" -F ' ' -c "SELECT count(*), round(coalesce(extract(epoch FROM sum(finished - started)), 0)::numeric, 2) FROM blind_log")
printf '\nMixed workload: %s cycles of %ss writes (~200/s) + %ss idle = %ss; a "minute" is %ss\n' \
    "$CYCLES" "$BURST" "$IDLE" "$TOTAL" "$TICK"
printf '%-34s %10s %14s\n' who refreshes "total time (s)"
printf '%-34s %10s %14s\n' "blind REFRESH every ${TICK}s" "$bn" "$bt"
printf '%-34s %10s %14s\n' "floe on change, min_interval ${TICK}s" "$fn" "$ft"
printf 'floe / blind: refreshes %s, time %s; worst staleness floe allowed: %ss (bound: min_interval + 1s tick)\n' \
    "$(ratio "$fn" "$bn")" "$(ratio "$ft" "$bt")" "$worst"
