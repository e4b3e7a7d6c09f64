#!/usr/bin/env bash
# Queue under concurrency: 6 worker sessions (pgbench) take jobs in batches, each in its own
# transaction, and complete them in the next; a seventh session takes 20 jobs and is killed
# mid-job; 10 poison jobs fail every attempt. Checks: every good job completed exactly once,
# no job handed to a second worker while its visibility held, the killed worker's jobs
# delivered again after the visibility timeout and completed, poison jobs dead letters after
# max_attempts, nothing left and nothing lost.
source "$(dirname "$0")/../lib/testlib.sh"

cluster_throwaway yes "floe.max_workers = 0"
make_test_db
work=$(mktemp -d /tmp/floe-queueconc.XXXXXX)
trap 'rc=$?; [ $rc -eq 0 ] || tail -n 40 "$FLOE_TEST_DIR/postgres.log"; rm -rf "$work"; cluster_cleanup_all' EXIT

JOBS=3000
q "SELECT floe.create_queue('work', visibility_timeout => '2 seconds', max_attempts => 3,
                            retry_base => '0', retry_max => '0')" >/dev/null
q "SELECT count(*) FROM floe.enqueue_many('work',
     (SELECT array_agg(jsonb_build_object('n', g) ORDER BY g) FROM generate_series(1, $JOBS) g),
     'normal')" >/dev/null
q "SELECT count(*) FROM floe.enqueue_many('work',
     (SELECT array_agg(jsonb_build_object('poison', true, 'n', g)) FROM generate_series(1, 10) g),
     'low')" >/dev/null
q "CREATE TABLE deliveries (job bigint, attempt int, worker int, at timestamptz, until timestamptz)"
q "CREATE TABLE completions (job bigint, worker int)"
q "CREATE TABLE late (job bigint, worker int, error text)"
q "CREATE PROCEDURE work(w int, batch int) LANGUAGE plpgsql AS \$\$
DECLARE
    good bigint[];
    bad bigint[];
    j bigint;
BEGIN
    WITH d AS (SELECT * FROM floe.dequeue('work', batch)),
         logged AS (INSERT INTO deliveries SELECT id, attempt, w, clock_timestamp(), visible_until FROM d)
    SELECT array_agg(id) FILTER (WHERE NOT payload ? 'poison'),
           array_agg(id) FILTER (WHERE payload ? 'poison')
      INTO good, bad FROM d;
    COMMIT;
    IF good IS NOT NULL THEN
        BEGIN
            PERFORM floe.complete_many(good);
            INSERT INTO completions SELECT unnest(good), w;
        EXCEPTION WHEN object_not_in_prerequisite_state THEN
            INSERT INTO late VALUES (NULL, w, SQLERRM);
        END;
    END IF;
    FOREACH j IN ARRAY coalesce(bad, '{}') LOOP
        PERFORM floe.fail(j, 'poison');
    END LOOP;
    COMMIT;
END \$\$"

echo "# a worker takes 20 jobs and is killed mid-job"
"$FLOE_PG_BIN/psql" -X -q -At -d "$FLOE_TEST_DB" -v ON_ERROR_STOP=1 \
    -c "SET application_name = 'doomed'" \
    -c "INSERT INTO deliveries SELECT id, attempt, 99, clock_timestamp(), visible_until FROM floe.dequeue('work', 20)" \
    -c "SELECT pg_sleep(60)" >/dev/null 2>&1 &
doomed=$!
for _ in $(seq 1 50); do
    [ "$(q "SELECT count(*) FROM deliveries WHERE worker = 99")" = 20 ] && break
    sleep 0.1
done
expect_eq "$(q "SELECT count(*) FROM deliveries WHERE worker = 99")" "20" "the doomed worker holds 20 jobs"
q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'doomed'" >/dev/null
wait $doomed || true

echo "# 6 workers, batches of 10, for 6 s (past the 2 s visibility of the killed worker's jobs)"
echo 'CALL work(:client_id, 10);' >"$work/work.sql"
(cd "$work" && "$FLOE_PG_BIN/pgbench" -n -c 6 -j 2 -T 6 -f work.sql "$FLOE_TEST_DB" >"$work/pgbench.txt" 2>&1) ||
    { cat "$work/pgbench.txt"; fail "pgbench failed"; }
errors=$(grep -E 'number of failed transactions|aborted|ERROR' "$work/pgbench.txt" | grep -vE 'failed transactions: 0 ' || true)
expect_eq "$errors" "" "workers saw no error"
echo "  ($(grep -E '^tps' "$work/pgbench.txt" | head -1))"

expect_eq "$(q "SELECT count(*) FROM completions")" "$JOBS" "every good job completed"
expect_eq "$(q "SELECT count(*) FROM (SELECT job FROM completions GROUP BY job HAVING count(*) > 1) s")" "0" \
    "no job completed twice"
expect_eq "$(q "SELECT count(*) FROM late")" "0" "no worker lost a lease it held"
expect_eq "$(q "SELECT count(*) FROM (
    SELECT at, lag(until) OVER (PARTITION BY job ORDER BY at) AS prev FROM deliveries
     WHERE job NOT IN (SELECT id FROM floe.dead_letters)) s
    WHERE at < prev")" "0" "no job handed out again while its visibility held"
expect_eq "$(q "SELECT count(*) || ' ' || count(DISTINCT (job, attempt)) FROM deliveries
    WHERE job IN (SELECT id FROM floe.dead_letters)")" "30 30" \
    "a failed job is handed out once per attempt (released by floe.fail, not by its timeout)"
expect_eq "$(q "SELECT count(DISTINCT job) || ' ' || min(attempt) FROM deliveries
    WHERE worker <> 99 AND job IN (SELECT job FROM deliveries WHERE worker = 99)")" "20 2" \
    "the killed worker's jobs were delivered again (attempt 2)"
expect_eq "$(q "SELECT count(*) FROM completions WHERE job IN (SELECT job FROM deliveries WHERE worker = 99)")" "20" \
    "and completed"
expect_eq "$(q "SELECT count(*) || ' ' || min(attempts) || ' ' || max(attempts) FROM floe.dead_letters")" "10 3 3" \
    "poison jobs are dead letters after 3 attempts"
expect_eq "$(q "SELECT count(*) FROM floe.queued_jobs")" "0" "nothing left in the queue"
expect_eq "$(q "SELECT count(*) FILTER (WHERE state = 'completed') || ' ' || count(*) FROM floe.finished_jobs")" \
    "$JOBS $((JOBS + 10))" "nothing lost: every job is in the archive"
echo "ok - queue concurrency"
