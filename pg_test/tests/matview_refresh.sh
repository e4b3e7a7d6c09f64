#!/usr/bin/env bash
# Materialized-view refresh with the scheduler worker on a preloaded cluster: a write is
# reflected within min_interval plus one scheduler period; no writes, no refresh; a failing
# view is recorded, backs off and does not hold the others back; a chain refreshes in order;
# a worker killed in the middle of a refresh leaves the view dirty and it is refreshed
# later; a restart marks every view dirty. Then, on a server without preload, the fallback
# (floe.matview_changes) keeps on-change refresh correct by hand.
source "$(dirname "$0")/../lib/testlib.sh"

cluster_throwaway yes
on_timeout() {
    qd olap "SELECT view, reason, result, started_at, error FROM floe.matview_refreshes ORDER BY id"
}

qd postgres "CREATE DATABASE olap"
qd olap "CREATE EXTENSION floe"
qd olap "CREATE TABLE sends (id bigint GENERATED ALWAYS AS IDENTITY, campaign int NOT NULL, divisor int NOT NULL DEFAULT 1)"
qd olap "CREATE MATERIALIZED VIEW per_campaign AS SELECT campaign, count(*) AS n FROM sends GROUP BY campaign"
qd olap "CREATE UNIQUE INDEX ON per_campaign (campaign)"
qd olap "CREATE MATERIALIZED VIEW total AS SELECT coalesce(sum(n), 0) AS n FROM per_campaign"
qd olap "CREATE UNIQUE INDEX ON total (n)"
qd olap "CREATE MATERIALIZED VIEW fragile AS SELECT coalesce(sum(100 / divisor), 0) AS w FROM sends"
qd olap "SELECT floe.register_matview('per_campaign', min_interval => '2 seconds')" >/dev/null
qd olap "SELECT floe.register_matview('total', min_interval => '2 seconds')" >/dev/null
qd olap "SELECT floe.register_matview('fragile', min_interval => '2 seconds', concurrently => false)" >/dev/null
period=$(qd olap "SELECT extract(epoch FROM schedule::interval)::int FROM floe.jobs WHERE name = 'floe.refresh_due'")
echo "# the refresher runs every ${period}s; min_interval is 2s"
wait_for $((period + 10)) "the worker refreshes new registrations" \
    qd olap "SELECT count(*) = 3 AND bool_and(dirty_since IS NULL) FROM floe.matview_status"

echo "# a write is reflected within min_interval + one period, the chain in order"
sleep 1
t0=$(qd olap "SELECT extract(epoch FROM clock_timestamp())")
qd olap "INSERT INTO sends (campaign) VALUES (1), (1), (2)"
wait_for $((period + 5)) "total reflects the write" qd olap "SELECT n = 3 FROM total"
lag=$(qd olap "SELECT round((extract(epoch FROM max(finished_at)) - $t0)::numeric, 1) FROM floe.matview_refreshes WHERE view = 'total'::regclass")
awk -v l="$lag" -v b="$((period + 2 + 3))" 'BEGIN { exit !(l <= b) }' ||
    fail "the write took ${lag}s to reach total (bound: min_interval 2s + period ${period}s + 3s)"
echo "  ok - the write reached the end of the chain in ${lag}s (bound $((period + 2))s + 3s)"
expect_eq "$(qd olap "SELECT string_agg(view::text, ',' ORDER BY id) FROM (SELECT * FROM floe.matview_refreshes ORDER BY id DESC LIMIT 3) r")" \
    "per_campaign,total,fragile" "one pass, per_campaign before total (fragile read sends too)"

echo "# no writes, no refresh"
before=$(qd olap "SELECT count(*) FROM floe.matview_refreshes")
runs_before=$(qd olap "SELECT count(*) FROM floe.job_runs WHERE job_name = 'floe.refresh_due' AND status = 'succeeded'")
sleep $((2 * period + 2))
runs_after=$(qd olap "SELECT count(*) FROM floe.job_runs WHERE job_name = 'floe.refresh_due' AND status = 'succeeded'")
[ $((runs_after - runs_before)) -ge 2 ] || fail "the refresher ran $((runs_after - runs_before)) times in $((2 * period + 2))s"
expect_eq "$(qd olap "SELECT count(*) FROM floe.matview_refreshes")" "$before" \
    "$((runs_after - runs_before)) refresher runs over idle data refreshed nothing"

echo "# a failing view: recorded, backed off, the others go on"
qd olap "UPDATE sends SET divisor = 0 WHERE campaign = 2"
wait_for $((period + 5)) "the failure is recorded" \
    qd olap "SELECT failures >= 1 AND last_error = 'division by zero' FROM floe.matview_status WHERE view = 'public.fragile'"
expect_eq "$(qd olap "SELECT n FROM total")" 3 "the other views are not held back (total still current)"
expect_eq "$(qd olap "SELECT status FROM floe.health() WHERE check_name = 'matview.failing'")" warn "health warns"
qd olap "UPDATE sends SET divisor = 1"
wait_for $((2 * period + 10)) "after the data is fixed the view recovers on its own" \
    qd olap "SELECT failures = 0 AND last_result = 'succeeded' FROM floe.matview_status WHERE view = 'public.fragile'"
expect_eq "$(qd olap "SELECT bool_and(started_at - prev >= interval '2 seconds') FROM (SELECT started_at, lag(started_at) OVER (ORDER BY id) AS prev, lag(result) OVER (ORDER BY id) AS prev_result FROM floe.matview_refreshes WHERE view = 'fragile'::regclass) r WHERE prev_result = 'failed'")" t \
    "retries of the failing view respect the backoff"

echo "# the worker killed in the middle of a refresh"
qd olap "CREATE FUNCTION slow_count() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM sends, pg_sleep(4)'"
qd olap "CREATE MATERIALIZED VIEW slow AS SELECT slow_count() AS n, 1 AS k"
qd olap "CREATE UNIQUE INDEX ON slow (k)"
qd olap "SELECT floe.register_matview('slow', on_change => false, refresh_every => '1 hour', min_interval => '0')" >/dev/null
qd olap "SELECT floe.alter_job('floe.refresh_due', schedule => '1 second')" >/dev/null
wait_for 10 "the worker is refreshing slow" \
    qd olap "SELECT running FROM floe.matview_status WHERE view = 'public.slow'"
pid=$(qd olap "SELECT pid FROM pg_stat_activity WHERE backend_type = 'floe scheduler' AND datname = 'olap'")
qd olap "SELECT pg_terminate_backend($pid)" >/dev/null
wait_for 10 "the killed worker is gone" qd olap "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $pid)"
# (a new worker may already be refreshing it again: slow takes 4 s)
expect_eq "$(qd olap "SELECT count(*) FROM floe.matview_refreshes WHERE view = 'slow'::regclass")" 0 \
    "the killed refresh left no trace (it was one transaction)"
expect_eq "$(qd olap "SELECT last_result IS NULL FROM floe.matview_status WHERE view = 'public.slow'")" t \
    "slow is still due"
wait_for 40 "a new worker refreshes slow" \
    qd olap "SELECT last_result = 'succeeded' FROM floe.matview_status WHERE view = 'public.slow'"
qd olap "SELECT floe.unregister_matview('slow')" >/dev/null

echo "# a restart marks every view dirty"
qd olap "SELECT floe.alter_job('floe.refresh_due', enabled => false)" >/dev/null
expect_eq "$(qd olap "SELECT count(*) FILTER (WHERE dirty_since IS NOT NULL) FROM floe.matview_status WHERE on_change")" 0 "clean before"
cluster_restart "$FLOE_TEST_DIR"
expect_eq "$(qd olap "SELECT count(*) FILTER (WHERE dirty_since IS NOT NULL) FROM floe.matview_status WHERE on_change")" 3 "dirty after"
qd olap "SELECT floe.alter_job('floe.refresh_due', enabled => true, schedule => '10 seconds')" >/dev/null

echo "# without preload: the change log keeps on-change refresh correct by hand"
cluster_throwaway no
qd postgres "CREATE DATABASE plain"
qd plain "CREATE EXTENSION floe"
qd plain "CREATE TABLE t (k int PRIMARY KEY)"
qd plain "CREATE MATERIALIZED VIEW v AS SELECT count(*) AS n FROM t"
qd plain "SELECT floe.register_matview('v', min_interval => '0', concurrently => false)" >/dev/null
expect_eq "$(qd plain "SELECT count(*) FROM floe.refresh_due()")" 1 "a new registration is refreshed"
expect_eq "$(qd plain "SELECT count(*) FROM floe.refresh_due()")" 0 "then it is clean"
qd plain "BEGIN; INSERT INTO t VALUES (1); ROLLBACK"
expect_eq "$(qd plain "SELECT count(*) FROM floe.refresh_due()")" 0 "a rolled-back write changes nothing"
qd plain "INSERT INTO t VALUES (1)"
qd plain "INSERT INTO t VALUES (2); INSERT INTO t VALUES (3)"  # one transaction
expect_eq "$(qd plain "SELECT count(*) FROM floe.matview_changes")" 2 "one log row per view and transaction (two transactions, three statements)"
expect_eq "$(qd plain "SELECT dirty_since IS NOT NULL FROM floe.matview_status")" t "status says dirty"
expect_eq "$(qd plain "SELECT count(*) FROM floe.refresh_due()")" 1 "a committed write is refreshed"
expect_eq "$(qd plain "SELECT n FROM v")" 3 "the view has the data"
expect_eq "$(qd plain "SELECT count(*) FROM floe.matview_changes")" 0 "the log is emptied"
expect_eq "$(qd plain "SELECT status FROM floe.health() WHERE check_name = 'scheduler.running'")" warn \
    "health says the scheduler is off"
echo "matview_refresh: all ok"
