#!/usr/bin/env bash
# Hot standby and failover (issue #24, item 3): a streaming replica (pg_basebackup -R) of a
# preloaded primary with every module in use.
#   - on the standby: no floe worker runs (nothing writes, nothing loops, the log stays
#     quiet), reads work (content bodies, floe's views, tenant isolation), floe.health() says it
#     is a standby and what it checks there;
#   - the primary dies (pg_ctl stop -m immediate) while a job runs and queue jobs are leased;
#     pg_promote() on the standby: its scheduler starts within seconds, the run that was in
#     flight is marked failed and retried per the job's settings, the leased queue jobs are
#     handed out again when their leases end, the audit chain continues and verifies.
source "$(dirname "$0")/../lib/testlib.sh"

cluster_throwaway yes "wal_level = replica" "max_wal_senders = 4" "hot_standby = on"
PRIMARY=$FLOE_TEST_DIR
make_test_db
tenant=$(q "SELECT gen_random_uuid()")
q "CREATE TABLE notes (id bigserial PRIMARY KEY, tenant_id uuid NOT NULL, body text)"
q "SELECT count(*) FROM floe.enable_tenant_isolation('notes')" >/dev/null
q "SELECT floe.manage_content('notes', 'body', 'tenant_id')" >/dev/null
q "SELECT floe.enable_audit('notes')" >/dev/null
q "CREATE ROLE app; GRANT SELECT ON notes, notes_with_body TO app"
q "BEGIN; SET LOCAL floe.tenant_admin = on;
   INSERT INTO notes (tenant_id, body) SELECT '$tenant', repeat('body ' || g, 50) FROM generate_series(1, 20) g; COMMIT"
q "SELECT floe.create_queue('work', visibility_timeout => '3 seconds')" >/dev/null
q "SELECT count(floe.enqueue('work', jsonb_build_object('n', g))) FROM generate_series(1, 20) g" >/dev/null
q "CREATE TABLE ticks (at timestamptz DEFAULT clock_timestamp())"
q "SELECT floe.schedule('slow', '1 hour', 'SELECT pg_sleep(60)', retries => 1, retry_backoff => '2 seconds')" >/dev/null
q "SELECT floe.audit_seal()" >/dev/null

echo "# a streaming standby"
STANDBY=$(mktemp -d /tmp/floe-cluster.XXXXXX)
FLOE_THROWAWAY_DIRS+=("$STANDBY")
own_dir "$STANDBY" 0700
sport=$(free_port)
as_cluster_user "$FLOE_PG_BIN/pg_basebackup" -h "$PRIMARY" -p "$PGPORT" -U "$PGUSER" -D "$STANDBY/data" -R -X stream
echo "$sport" >"$STANDBY/port"
printf "port = %s\nunix_socket_directories = '%s'\n" "$sport" "$STANDBY" | as_cluster_user tee -a "$STANDBY/data/postgresql.conf" >/dev/null
cluster_start "$STANDBY"
sq() { "$FLOE_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$STANDBY" -p "$sport" -d "$FLOE_TEST_DB" -c "$*"; }
q "BEGIN; SET LOCAL floe.tenant_admin = on; INSERT INTO notes (tenant_id, body) VALUES ('$tenant', 'written before the standby caught up'); COMMIT"
wait_for 10 "the standby replays the primary" sq "SELECT count(*) = 21 FROM notes"
expect_eq "$(sq "SELECT pg_is_in_recovery()")" t "the standby is in recovery"
sleep 3
expect_eq "$(sq "SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'floe%'")" 0 \
    "no floe worker runs on the standby (launcher and schedulers start when recovery ends)"
grep -E "ERROR|FATAL|PANIC|WARNING|floe (launcher|scheduler)" "$STANDBY/postgres.log" && fail "the standby logs floe messages or errors"; echo "  ok - the standby's log has no floe message and no error"
body_sum="SELECT floe.set_tenant('$tenant'); SELECT count(*) || ' ' || md5(string_agg(body, '' ORDER BY id)) FROM notes_with_body"
expect_eq "$(sq "BEGIN; $body_sum; COMMIT" | tail -1)" "$(q "BEGIN; $body_sum; COMMIT" | tail -1)" \
    "the standby reads every body from the content store (content_get)"
expect_match "$(sq "SET ROLE app; SELECT count(*) FROM notes" 2>&1 || true)" "no tenant is set" "isolation holds on the standby: no tenant, no rows"
expect_eq "$(sq "SET ROLE app; BEGIN; SELECT floe.set_tenant('$tenant'); SELECT count(*) FROM notes; COMMIT" | tail -1)" 21 \
    "a tenant set on the standby (floe.set_tenant() takes no transaction id) reads its rows"
expect_eq "$(sq "SELECT count(*) FROM floe.queue_settings WHERE name = 'work'")" 1 "floe's views read on the standby"
expect_match "$(sq "SELECT status || ': ' || detail FROM floe.health() WHERE check_name = 'core.standby'")" "^ok: a hot standby" \
    "floe.health() says it is a standby"
expect_eq "$(sq "SELECT count(*) FROM floe.health() WHERE status <> 'ok'")" 0 "floe.health() on the standby: all ok"

echo "# failover while a job runs and queue jobs are leased"
q "UPDATE floe.jobs SET next_run = now() WHERE name = 'slow'; SELECT floe.wake_scheduler()" >/dev/null
wait_for 10 "the slow job is running on the primary" q "SELECT count(*) = 1 FROM floe.job_runs WHERE job_name = 'slow' AND status = 'running'"
leased=$(q "SELECT string_agg(id::text, ',' ORDER BY id) FROM floe.dequeue('work', batch => 5)")
q "BEGIN; SET LOCAL floe.tenant_admin = on; UPDATE notes SET body = 'changed on the primary' WHERE id = 1; COMMIT"
wait_for 10 "the standby has replayed it all" \
    sq "SELECT count(*) = 5 FROM floe.queue_jobs WHERE state = 'running'"
lsn=$(q "SELECT pg_current_wal_lsn()")
wait_for 10 "the standby is at the primary's last LSN" sq "SELECT pg_last_wal_replay_lsn() >= '$lsn'"
as_cluster_user "$FLOE_PG_BIN/pg_ctl" --pgdata="$PRIMARY/data" --mode=immediate stop >/dev/null
echo "  ok - the primary is gone (immediate stop)"
start=$(date +%s.%N)
expect_eq "$(sq "SELECT pg_promote()")" t "pg_promote() on the standby"
wait_for 10 "the new primary's scheduler started" sq "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'floe scheduler' AND datname = '$FLOE_TEST_DB'"
echo "    (promotion to scheduler: $(awk -v a="$(date +%s.%N)" -v b="$start" 'BEGIN { printf "%.1f", a - b }') s)"
wait_for 15 "the run in flight is marked failed and retried after its backoff" \
    sq "SELECT string_agg(attempt || ':' || status, ',' ORDER BY runid) IN ('0:failed,1:running', '0:failed,1:failed') FROM floe.job_runs WHERE job_name = 'slow'"
expect_match "$(sq "SELECT error FROM floe.job_runs WHERE job_name = 'slow' ORDER BY runid LIMIT 1")" "the scheduler stopped during this run" \
    "the interrupted run says so"
sq "SELECT floe.unschedule('slow')" >/dev/null
sleep 3
again=$(sq "WITH d AS (SELECT id, floe.complete(id, lease) FROM floe.dequeue('work', batch => 50))
             SELECT string_agg(id::text, ',' ORDER BY id) FROM d WHERE id IN ($leased)")
expect_eq "$again" "$leased" "the jobs leased on the old primary are handed out again once their leases end"
expect_eq "$(sq "SELECT count(*) FROM floe.queue_jobs")" 0 "every job of the queue completed on the new primary, none stays leased"
sq "BEGIN; SET LOCAL floe.tenant_admin = on; UPDATE notes SET body = 'changed on the new primary' WHERE id = 2; COMMIT"
sq "SELECT floe.audit_seal()" >/dev/null
expect_eq "$(sq "SELECT status FROM floe.verify_audit()")" ok "the audit chain continues and verifies on the new primary"
expect_eq "$(sq "SELECT count(*) FROM floe.health() WHERE status = 'critical'")" 0 "floe.health() on the new primary: nothing critical"
