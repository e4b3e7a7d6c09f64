#!/usr/bin/env bash
# The scheduler's background workers on a preloaded cluster: one worker per tier database,
# interval jobs on time, failures retried with backoff, max_runtime enforced, jobs run as
# their owner, kill -9 recovered (orphaned run marked failed, the job retried per its rules,
# not at once), DROP EXTENSION and
# DROP DATABASE never blocked.
source "$(dirname "$0")/../lib/testlib.sh"

cluster_throwaway yes
workers() { qd postgres "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_stat_activity WHERE backend_type = 'floe scheduler'"; }
on_timeout() {
    qd oltp "SELECT job_name, attempt, status, started_at FROM floe.job_runs ORDER BY runid"
}

echo "# four tier databases, each with its own worker"
for db in oltp content queue olap; do
    qd postgres "CREATE DATABASE $db"
    qd "$db" "CREATE EXTENSION floe"
done
wait_for 10 "a scheduler in each of oltp, content, queue, olap" \
    qd postgres "SELECT count(DISTINCT datname) = 4 FROM pg_stat_activity WHERE backend_type = 'floe scheduler' AND datname IN ('oltp', 'content', 'queue', 'olap')"
expect_eq "$(qd postgres "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'floe scheduler' AND datname = 'postgres'")" 0 \
    "no worker stays in a database without floe"
expect_eq "$(qd oltp "SELECT status FROM floe.health() WHERE check_name = 'scheduler.running'")" ok \
    "floe.health() sees the worker"

echo "# jobs"
qd oltp "CREATE TABLE ticks (at timestamptz DEFAULT clock_timestamp(), who name DEFAULT current_user)"
qd oltp "CREATE ROLE regress_worker_alice; GRANT INSERT ON ticks TO regress_worker_alice"
qd oltp "SELECT floe.schedule('tick', '1 second', 'INSERT INTO ticks DEFAULT VALUES')" >/dev/null
wait_for 15 "a 1-second job runs again and again" \
    qd oltp "SELECT count(*) >= 6 FROM floe.job_runs WHERE job_name = 'tick' AND status = 'succeeded'"
# Its pace, from the runs' own start times (a stalled test machine cannot make this fail):
# one a second on the whole (median gap), and never a run twice at once.
gaps=$(qd oltp "SELECT round(extract(epoch FROM min(gap))::numeric, 2) || ' ' ||
                       round(extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY gap))::numeric, 2)
                  FROM (SELECT started_at - lag(started_at) OVER (ORDER BY runid) AS gap
                          FROM floe.job_runs WHERE job_name = 'tick') r WHERE gap IS NOT NULL")
read -r min_gap median_gap <<<"$gaps"
awk -v m="$min_gap" -v d="$median_gap" 'BEGIN { exit !(m >= 0.05 && d >= 0.9 && d <= 1.2) }' ||
    fail "a 1-second job's runs are min ${min_gap}s, median ${median_gap}s apart"
echo "  ok - a 1-second job's runs are min ${min_gap}s, median ${median_gap}s apart"
qd oltp "SELECT floe.alter_job('tick', enabled => false)" >/dev/null
qd oltp "SELECT floe.schedule('div0', '1 hour', 'SELECT 1/0', retries => 2, retry_backoff => '1 second')" >/dev/null
qd oltp "UPDATE floe.jobs SET next_run = now() WHERE name = 'div0'"
qd oltp "SELECT floe.schedule('slow', '1 hour', 'SELECT pg_sleep(30)', max_runtime => '1 second')" >/dev/null
qd oltp "UPDATE floe.jobs SET next_run = now() WHERE name = 'slow'"
qd oltp "SET ROLE regress_worker_alice; SELECT floe.schedule('alice', '1 hour', 'INSERT INTO ticks (who) VALUES (current_user)')" >/dev/null
qd oltp "UPDATE floe.jobs SET next_run = now() WHERE name = 'alice'; SELECT floe.wake_scheduler()" >/dev/null
wait_for 15 "the due jobs ran" qd oltp "SELECT count(*) = 5 FROM floe.job_runs WHERE job_name IN ('div0', 'slow', 'alice') AND status <> 'running'" ||
    { qd oltp "SELECT job_name, attempt, status, error FROM floe.job_runs ORDER BY runid" >&2; exit 1; }
expect_eq "$(qd oltp "SELECT string_agg(attempt || ':' || status || ':' || error, ' | ' ORDER BY runid) FROM floe.job_runs WHERE job_name = 'div0'")" \
    "0:failed:division by zero | 1:failed:division by zero | 2:failed:division by zero" \
    "a failing job is recorded with its error and retried twice"
expect_eq "$(qd oltp "SELECT bool_and(started_at - lag >= interval '0.9 seconds') FROM (SELECT started_at, lag(started_at) OVER (ORDER BY runid) FROM floe.job_runs WHERE job_name = 'div0') r WHERE lag IS NOT NULL")" t \
    "retries wait for their backoff"
expect_eq "$(qd oltp "SELECT status || ':' || (duration < interval '5 seconds') FROM floe.job_runs WHERE job_name = 'slow'")" "timed out:true" \
    "a job over max_runtime is cancelled and recorded"
expect_eq "$(qd oltp "SELECT who FROM ticks WHERE who <> current_user")" regress_worker_alice \
    "a job runs as the role that scheduled it"

echo "# reload keeps the worker"
pid=$(qd postgres "SELECT pid FROM pg_stat_activity WHERE backend_type = 'floe scheduler' AND datname = 'oltp'")
qd postgres "SELECT pg_reload_conf()" >/dev/null
sleep 1
expect_eq "$(qd postgres "SELECT pid FROM pg_stat_activity WHERE backend_type = 'floe scheduler' AND datname = 'oltp'")" "$pid" \
    "SIGHUP reloads settings without restarting the worker"

echo "# kill -9 during a run"
qd oltp "SELECT floe.schedule('sleeper', '1 day', 'SELECT pg_sleep(60)', retries => 1, retry_backoff => '10 minutes')" >/dev/null
qd oltp "UPDATE floe.jobs SET next_run = now() WHERE name = 'sleeper'; SELECT floe.wake_scheduler()" >/dev/null
wait_for 10 "the long job is running" qd oltp "SELECT EXISTS (SELECT 1 FROM floe.job_runs WHERE job_name = 'sleeper' AND status = 'running')"
kill -9 "$pid"
wait_for 30 "the worker is back after the crash restart" \
    qd postgres "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'floe scheduler' AND datname = 'oltp' AND pid <> $pid)"
wait_for 10 "the orphaned run is marked failed" \
    qd oltp "SELECT status = 'failed' AND error LIKE '%scheduler stopped%' FROM floe.job_runs WHERE job_name = 'sleeper' ORDER BY runid LIMIT 1"
# The interrupted run counts as a failed attempt under the job's retry rules: the retry
# waits for its backoff (10 minutes) instead of running again at once, so a job that brings
# the server down cannot crash-loop.
sleep 2
expect_eq "$(qd oltp "SELECT count(*) FROM floe.job_runs WHERE job_name = 'sleeper'")" 1 \
    "the interrupted job was not run again at once"
expect_eq "$(qd oltp "SELECT attempt || ' ' || (next_run BETWEEN now() + interval '9 minutes' AND now() + interval '11 minutes')
                       || ' ' || last_status FROM floe.jobs WHERE name = 'sleeper'")" "1 true failed" \
    "its retry (attempt 1) waits for the 10-minute backoff"

echo "# DROP EXTENSION and DROP DATABASE"
qd content "SELECT floe.schedule('busy', '1 hour', 'SELECT pg_sleep(120)'); UPDATE floe.jobs SET next_run = now() WHERE name = 'busy'; SELECT floe.wake_scheduler()" >/dev/null
wait_for 10 "a long job runs in content" qd content "SELECT EXISTS (SELECT 1 FROM floe.job_runs WHERE job_name = 'busy' AND status = 'running')"
t0=$(date +%s.%N)
qd content "DROP EXTENSION floe"
expect_eq "$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { print (a - b < 5) ? "t" : "f" }')" t \
    "DROP EXTENSION does not wait for a running job"
wait_for 15 "DROP EXTENSION ends the database's worker" \
    qd postgres "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'floe scheduler' AND datname = 'content')"
qd queue "SELECT floe.schedule('busy', '1 hour', 'SELECT pg_sleep(120)'); UPDATE floe.jobs SET next_run = now() WHERE name = 'busy'; SELECT floe.wake_scheduler()" >/dev/null
wait_for 10 "a long job runs in queue" qd queue "SELECT EXISTS (SELECT 1 FROM floe.job_runs WHERE job_name = 'busy' AND status = 'running')"
t0=$(date +%s.%N)
qd postgres "DROP DATABASE queue"
expect_eq "$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { print (a - b < 5) ? "t" : "f" }')" t \
    "DROP DATABASE succeeds within seconds, even while its worker runs a job"
expect_eq "$(workers)" "olap,oltp" "the other databases keep their workers"
# (no clean-up: the cluster is thrown away; unscheduling 'sleeper' would wait for its run)
