#!/usr/bin/env bash
# Partition maintenance under load: writers insert into the parent (some rows into the
# default partition's future), a reader holds a long SELECT over the whole set, and
# maintenance creates partitions (drain + ATTACH) and retires old ones (DETACH), by hand
# and by the scheduler worker (DETACH CONCURRENTLY on a set without a default partition).
# Writers never see an error and never wait much longer than floe.partition_lock_timeout;
# maintenance that cannot get its lock gives up, records why, and finishes on a later run.
source "$(dirname "$0")/../lib/testlib.sh"

cluster_throwaway yes "floe.max_workers = 0"
make_test_db
work=$(mktemp -d /tmp/floe-partconc.XXXXXX)
trap 'rc=$?; [ $rc -eq 0 ] || tail -n 40 "$FLOE_TEST_DIR/postgres.log"; rm -rf "$work"; cluster_cleanup_all' EXIT

LOCK_MS=200
# A blocked writer would wait for the 4 s reader; scheduling noise of 2 clients per core on a
# busy 2-core machine stays well under this.
SLACK_MS=800
q "ALTER DATABASE $FLOE_TEST_DB SET floe.partition_lock_timeout = $LOCK_MS"
q "ALTER DATABASE $FLOE_TEST_DB SET floe.partition_lock_retries = 2"
q "CREATE TABLE events (id bigint GENERATED ALWAYS AS IDENTITY, at timestamptz NOT NULL, v text)
     PARTITION BY RANGE (at)"
q "CREATE INDEX ON events (at)"
q "SELECT floe.create_parent('events', 'at', premake => 2, start => now() - interval '9 months')" >/dev/null
q "SELECT floe.set_retention('events', '4 months', 'drop')"
q "CREATE TABLE metrics (at timestamptz NOT NULL, n int) PARTITION BY RANGE (at)"
q "SELECT floe.create_parent('metrics', 'at', premake => 2, start => now() - interval '9 months',
                              default_partition => false)" >/dev/null
q "SELECT floe.set_retention('metrics', '4 months', 'detach')"

# Writers: 9 in 10 rows for now, 1 in 10 three months ahead (the default partition until
# maintenance creates that month, then its new partition).
cat >"$work/write.sql" <<'EOF'
\set r random(1, 10)
INSERT INTO events (at, v) VALUES (CASE WHEN :r = 1 THEN now() + interval '3 months' ELSE now() END, 'w');
INSERT INTO metrics (at, n) VALUES (now(), :r);
EOF

writers() { # seconds tag
    (cd "$work" && "$FLOE_PG_BIN/pgbench" -n -c 4 -j 2 -T "$1" -f write.sql -l --log-prefix="$2" \
        "$FLOE_TEST_DB" >"$work/out_$2.txt" 2>&1)
}
max_latency_ms() { # tag
    cat "$work/$1".* | awk 'BEGIN { m = 0 } { if ($3 > m) m = $3 } END { printf "%d", m / 1000 }'
}
writer_errors() { # tag
    grep -E 'number of failed transactions|aborted|ERROR' "$work/out_$1.txt" | grep -vE 'failed transactions: 0 ' || true
}

echo "# by hand: a reader holds a 4 s SELECT while maintenance runs under write load"
writers 7 hand &
wpid=$!
sleep 1
q "SELECT count(*), pg_sleep(4) FROM events" >/dev/null &
rpid=$!
wait_for 3 "a reader holds events (4 s)" \
    q "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE query = 'SELECT count(*), pg_sleep(4) FROM events')"
start=$(date +%s%N)
q "CALL floe.run_maintenance(as_of => now() + interval '3 months')" 2>"$work/maint1.err"
took=$((($(date +%s%N) - start) / 1000000))
wait $rpid
wait $wpid
expect_eq "$(writer_errors hand)" "" "writers saw no error"
lat=$(max_latency_ms hand)
echo "  max insert latency ${lat} ms (lock_timeout ${LOCK_MS} ms), maintenance ${took} ms"
[ "$lat" -lt $((LOCK_MS + SLACK_MS)) ] || fail "a writer waited ${lat} ms, beyond lock_timeout ${LOCK_MS} ms"
echo "  ok - no writer waited beyond lock_timeout (+ scheduling slack)"
expect_match "$(q "SELECT last_error FROM floe.partition_sets WHERE parent = 'public.events'")" \
    "lock" "the blocked set recorded a lock timeout"

echo "# once the reader is gone, maintenance (with writers still running) completes"
writers 5 hand2 &
wpid=$!
sleep 1
q "CALL floe.run_maintenance(as_of => now() + interval '3 months')"
wait $wpid
expect_eq "$(writer_errors hand2)" "" "writers saw no error"
lat=$(max_latency_ms hand2)
echo "  max insert latency ${lat} ms"
[ "$lat" -lt $((LOCK_MS + SLACK_MS)) ] || fail "a writer waited ${lat} ms"
expect_eq "$(q "SELECT count(*) FILTER (WHERE last_error IS NULL) FROM floe.partition_sets")" 2 \
    "both sets maintained without error"
expect_eq "$(q "SELECT row_count FROM floe.check_default('events')")" 0 \
    "no rows left in the default partition (drained while writers wrote)"
# Kept: from now-4 (retention counts back from today, never from a future as_of) through
# as_of + 2 (now+5): 10 months, plus the default; now-9 .. now-5 retired.
expect_eq "$(q "SELECT count(*) FROM floe.partitions('events') WHERE NOT is_default")" 10 \
    "events: old months dropped, new ones premade"
expect_eq "$(q "SELECT count(*) FROM floe.partitions('metrics')")" 10 "metrics: old months detached"
expect_eq "$(q "SELECT count(*) FROM pg_class WHERE relname ~ '^metrics_[0-9]' AND NOT relispartition")" 5 \
    "detached metrics months stay as tables"

echo "# the worker: DETACH CONCURRENTLY (no default partition) while writers write"
q "SELECT floe.set_retention('metrics', '1 second', 'drop')"
q "UPDATE floe.jobs SET schedule = '2 seconds', next_run = now() WHERE name = 'floe.partition_maintenance'"
q "ALTER SYSTEM SET floe.max_workers = 2"
q "SELECT pg_reload_conf()" >/dev/null
q "SELECT floe.wake_scheduler()" >/dev/null
writers 8 worker &
wpid=$!
wait $wpid
expect_eq "$(writer_errors worker)" "" "writers saw no error"
lat=$(max_latency_ms worker)
echo "  max insert latency ${lat} ms"
[ "$lat" -lt $((LOCK_MS + SLACK_MS)) ] || fail "a writer waited ${lat} ms"
# Retention by real time now: every month that ended is retired (and dropped).
# (A wait, not a look: in the calendar runs a month may end during this phase, and the worker
# retires it at its next 2 s run.)
wait_for 10 "metrics: the worker retired the ended months (DETACH CONCURRENTLY)" \
    q "SELECT count(*) = 0 FROM floe.partitions('metrics')
        WHERE pg_catalog.btrim(upper_bound, '''')::timestamptz <= now() OR detach_pending"
expect_eq "$(q "SELECT count(*) FROM pg_class WHERE relname ~ '^metrics_[0-9]' AND NOT relispartition")" 5 \
    "worker-retired months were dropped (mode drop), earlier detached ones kept"
expect_eq "$(q "SELECT coalesce(last_error, 'none') FROM floe.partition_sets WHERE parent = 'public.metrics'")" \
    none "worker recorded success"

echo "# fault: a concurrent detach interrupted (a reader outlives lock_timeout in its wait) is finished next run"
# The worker runs every 2 s from the phase before: held off until the reader holds its lock,
# else a run between the CREATE and the reader's lock retires the month unhindered.
q "UPDATE floe.jobs SET next_run = now() + interval '1 hour' WHERE name = 'floe.partition_maintenance'"
q "CREATE TABLE metrics_y2000 PARTITION OF metrics FOR VALUES FROM ('2000-01-01 00:00+00') TO ('2000-02-01 00:00+00')"
"$FLOE_PG_BIN/psql" -X -q -d "$FLOE_TEST_DB" -c "BEGIN" -c "SELECT count(*) FROM metrics" \
    -c "SELECT pg_sleep(4)" -c "COMMIT" >/dev/null &
rpid=$!
wait_for 3 "a reader holds metrics (4 s)" q "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(4)')"
q "UPDATE floe.jobs SET next_run = now() WHERE name = 'floe.partition_maintenance'"
q "SELECT floe.wake_scheduler()" >/dev/null
wait_for 3 "the detach stopped half-way (pending) while the reader ran" \
    q "SELECT detach_pending FROM floe.partitions('metrics') WHERE partition::text = 'metrics_y2000'"
wait_for 3 "the interruption is recorded" \
    q "SELECT last_error ~ 'lock' FROM floe.partition_sets WHERE parent = 'public.metrics'"
expect_eq "$(q "INSERT INTO metrics VALUES (now(), 1) RETURNING n")" 1 "writers are not blocked meanwhile"
wait $rpid
q "UPDATE floe.jobs SET next_run = now() WHERE name = 'floe.partition_maintenance'"
q "SELECT floe.wake_scheduler()" >/dev/null
wait_for 10 "the next run finished it (DETACH ... FINALIZE) and dropped the table" \
    q "SELECT count(*) = 0 FROM pg_class WHERE relname = 'metrics_y2000'"
wait_for 5 "and recorded success" \
    q "SELECT last_error IS NULL FROM floe.partition_sets WHERE parent = 'public.metrics'"
