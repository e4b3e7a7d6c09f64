#!/usr/bin/env bash
# Crash consistency (issue #24, item 5): the server is stopped with pg_ctl stop -m immediate
# (no shutdown checkpoint: a crash for every backend) in the middle of every module's write
# path, CRASH_ROUNDS times, each round with fresh load:
#   queue      2000 jobs; one consumer dequeues, completes and records in one transaction,
#              another dequeues in one and completes (and records) in the next (leases are
#              left at the crash)
#   audit      a writer inserts numbered rows into an audited table, one per transaction
#   content    the same writer stores a body per row (managed content), every 5th row deleted
#   partition  run_maintenance creating, draining and detaching daily partitions of a set
#              whose rows sit in its default partition, with retention by detach
#   matview    a slow refresh of a registered matview, again and again
#   scheduler  a job that sleeps 3 s, due every second
# After each restart: no job run stays 'running'; no queue job completed twice; audit entries
# exactly one per committed row and the chain verifies; content reference counts equal the
# referencing rows and every body reads back; the matview is readable and refreshes. At the
# end: maintenance finishes the interrupted detaches and drains the default partition, no
# partition row lost or doubled; the queue drained, every job completed exactly once.
source "$(dirname "$0")/../lib/testlib.sh"
ROUNDS=${CRASH_ROUNDS:-3}
JOBS=2000
ROWS=20000

cluster_throwaway yes
make_test_db
trap 'kill $(jobs -p) 2>/dev/null || true; cluster_cleanup_all' EXIT
q "CREATE TABLE events (n bigint PRIMARY KEY, tenant_id uuid NOT NULL DEFAULT '00000000-0000-0000-0000-0000000000aa', body text)"
q "SELECT floe.manage_content('events', 'body', 'tenant_id')" >/dev/null
q "SELECT floe.enable_audit('events')" >/dev/null
q "CREATE TABLE done (n int NOT NULL, at timestamptz DEFAULT clock_timestamp())"
q "SELECT floe.create_queue('crash', visibility_timeout => '1 second')" >/dev/null
q "SELECT count(floe.enqueue('crash', jsonb_build_object('n', g))) FROM generate_series(1, $JOBS) g" >/dev/null
q "CREATE TABLE metrics (id bigint NOT NULL, at timestamptz NOT NULL, v int, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)"
q "SELECT floe.create_parent('metrics', 'at', part_interval => '1 day', premake => 2, start => date_trunc('day', now()) - interval '40 days')" >/dev/null
q "INSERT INTO metrics SELECT g, date_trunc('day', now()) - interval '40 days' + (g % 80) * interval '1 day' + interval '1 hour', g FROM generate_series(1, $ROWS) g"
q "SELECT floe.set_retention('metrics', '20 days', 'detach')" >/dev/null
expect_eq "$(q "SELECT count(*) > 0 FROM metrics_default")" t "partition set: rows wait in the default partition"
q "CREATE MATERIALIZED VIEW mv AS SELECT n % 10 AS k, count(*) AS c, max(pg_sleep(0.0002)::text) AS s FROM events GROUP BY 1;
   CREATE UNIQUE INDEX ON mv (k)"
q "SELECT floe.register_matview('mv', on_change => false, refresh_every => '1 hour')" >/dev/null
q "SELECT floe.schedule('sleepy', '1 second', 'SELECT pg_sleep(3)')" >/dev/null

ADMIN="SET floe.tenant_admin = on"
writer() {
    local n
    n=$(q "SELECT coalesce(max(n), 0) FROM events")
    while :; do
        n=$((n + 1))
        q "BEGIN; SET LOCAL floe.tenant_admin = on; INSERT INTO events (n, body) VALUES ($n, 'body of ' || $n || repeat(' text', 30));
           DELETE FROM events WHERE n = $n - 3 AND n % 5 = 0; COMMIT" >/dev/null 2>&1 || return 0
    done
}
consumer_atomic() {
    while :; do
        q "INSERT INTO done (n) SELECT (d.payload->>'n')::int FROM floe.dequeue('crash', batch => 5) d,
               LATERAL (SELECT floe.complete(d.id, d.lease)) c" >/dev/null 2>&1 || return 0
    done
}
consumer_two_step() {
    local row id lease n
    while :; do
        row=$(q "SELECT id || ' ' || lease || ' ' || (payload->>'n') FROM floe.dequeue('crash')" 2>/dev/null) || return 0
        [ -n "$row" ] || { sleep 0.05; continue; }
        read -r id lease n <<<"$row"
        q "BEGIN; SELECT floe.complete($id, '$lease'); INSERT INTO done (n) VALUES ($n); COMMIT" >/dev/null 2>&1 || true
    done
}
maintainer() {
    local days=35
    while :; do
        q "CALL floe.run_maintenance('metrics', as_of => now() + interval '$days days')" >/dev/null 2>&1 || true
        days=$((days + 1))
        sleep 0.2
        q "SELECT 1" >/dev/null 2>&1 || return 0
    done
}
refresher() {
    while :; do
        q "SELECT floe.refresh('mv', force => true)" >/dev/null 2>&1 || { q "SELECT 1" >/dev/null 2>&1 || return 0; }
    done
}

check_after_restart() {
    local round=$1 restarted=$2
    wait_for 15 "round $round: no job run stays 'running' (the scheduler marked the interrupted one)" \
        q "SELECT count(*) = 0 FROM floe.job_runs WHERE status = 'running' AND started_at < '$restarted'"
    expect_eq "$(q "SELECT count(*) FROM (SELECT n FROM done GROUP BY n HAVING count(*) > 1) d")" 0 \
        "round $round: no queue job completed twice ($(q "SELECT count(*) FROM done") completed so far)"
    q "SELECT floe.audit_seal()" >/dev/null
    expect_eq "$(q "SELECT status FROM floe.verify_audit()")" ok "round $round: the audit chain verifies"
    expect_eq "$(q "SELECT count(*) FROM floe.audit_log WHERE op = 'INSERT'")" "$(q "SELECT coalesce(max(n), 0) FROM events")" \
        "round $round: one audit entry per committed row ($(q "SELECT coalesce(max(n), 0) FROM events") rows)"
    expect_eq "$(q "SELECT count(*) FROM floe.content c WHERE c.refs <> (SELECT count(*) FROM events e WHERE e.tenant_id = c.tenant AND e.body_hash = c.hash)")" 0 \
        "round $round: content reference counts equal the referencing rows"
    expect_eq "$(q "$ADMIN; SELECT count(*) FROM events_with_body WHERE body IS DISTINCT FROM 'body of ' || n || repeat(' text', 30)")" 0 \
        "round $round: every body reads back as written"
    expect_match "$(q "SELECT count(*) FROM mv")" "^[0-9]+$" "round $round: the matview is readable"
    expect_eq "$(q "SELECT floe.refresh('mv', force => true)")" t "round $round: and refreshes"
}

for round in $(seq 1 "$ROUNDS"); do
    echo "# round $round: load, then pg_ctl stop -m immediate"
    writer & consumer_atomic & consumer_two_step & maintainer & refresher &
    sleep "$(awk -v r="$round" 'BEGIN { srand(20261205 + r); printf "%.1f", 1.5 + rand() * 2 }')"
    as_cluster_user "$FLOE_PG_BIN/pg_ctl" --pgdata="$FLOE_TEST_DIR/data" --mode=immediate stop >/dev/null
    wait 2>/dev/null || true
    cluster_start "$FLOE_TEST_DIR"
    restarted=$(q "SELECT now()")
    echo "  ok - round $round: crashed and restarted"
    check_after_restart "$round" "$restarted"
done

echo "# after the last crash: maintenance and the queue finish the work"
q "CALL floe.run_maintenance('metrics', as_of => now() + interval '45 days')"
expect_eq "$(q "SELECT count(*) FROM pg_inherits WHERE inhdetachpending")" 0 "no detach left pending"
expect_eq "$(q "SELECT count(*) FROM metrics_default")" 0 "the default partition is drained"
q "CREATE FUNCTION all_metrics() RETURNS TABLE (n bigint, d bigint) LANGUAGE plpgsql AS \$\$
    BEGIN RETURN QUERY EXECUTE 'SELECT count(*), count(DISTINCT id) FROM ('
        || (SELECT string_agg('SELECT id FROM ' || c.oid::regclass, ' UNION ALL ')
              FROM pg_class c WHERE c.relkind = 'r' AND c.relname LIKE 'metrics%' AND c.relnamespace = 'public'::regnamespace)
        || ') x'; END \$\$"
expect_eq "$(q "SELECT n || ' ' || d FROM all_metrics()")" "$ROWS $ROWS" \
    "every partition row is in exactly one table (attached or detached by retention): none lost or doubled"
expect_match "$(q "SELECT count(*) FROM pg_class WHERE relname LIKE 'metrics\_2%' AND relkind = 'r' AND NOT relispartition")" "^[1-9][0-9]*$" \
    "retention detached days (and the detaches interrupted by crashes were finished)"
sleep 1.2
for _ in $(seq 1 100); do
    q "INSERT INTO done (n) SELECT (d.payload->>'n')::int FROM floe.dequeue('crash', batch => 100) d,
           LATERAL (SELECT floe.complete(d.id, d.lease)) c" >/dev/null
    [ "$(q "SELECT count(*) FROM floe.queue_jobs")" = 0 ] && break
    sleep 0.3
done
expect_eq "$(q "SELECT count(*) || ' ' || count(DISTINCT n) || ' ' || min(n) || ' ' || max(n) FROM done")" "$JOBS $JOBS 1 $JOBS" \
    "every one of the $JOBS queue jobs completed exactly once, none lost"
