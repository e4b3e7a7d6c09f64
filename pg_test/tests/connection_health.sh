#!/usr/bin/env bash
# floe.health()'s connection checks on a live server (issue #24): connections near
# max_connections, a session idle in a transaction, the oldest snapshot (a session's, a
# prepared transaction's) holding back VACUUM; each named by pid or gid, and ok again once
# it ends. Thresholds lowered with floe.health_idle_in_transaction / floe.health_xmin_age.
source "$(dirname "$0")/../lib/testlib.sh"

cluster_throwaway yes "max_connections = 20" "max_prepared_transactions = 2"
make_test_db
check() { q "SET floe.health_idle_in_transaction = '2s'; SET floe.health_xmin_age = '2s';
             SELECT status || ': ' || detail FROM floe.health() WHERE check_name = '$1'"; }

expect_match "$(check server.connections)" "^ok: [0-9]+ of 20 connections in use" "few connections: ok"
expect_eq "$(check server.idle_in_transaction)" "ok: no session idle in a transaction for 2 s or more" "no idle transaction: ok"
expect_match "$(check server.xmin_horizon)" "^ok: " "no old snapshot: ok"

echo "# a session idle in a transaction that holds a snapshot"
coproc IDLE { "$FLOE_PG_BIN/psql" -X -q -At -d "$FLOE_TEST_DB"; }
echo "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT pg_backend_pid(); SELECT count(*) FROM pg_class;" >&"${IDLE[1]}"
read -r idle_pid <&"${IDLE[0]}"
read -r _ <&"${IDLE[0]}"
sleep 3
expect_match "$(check server.idle_in_transaction)" "^warn: idle in a transaction for 2 s or more: pid $idle_pid for [0-9]+ s$" \
    "an idle transaction is named by pid"
expect_match "$(check server.xmin_horizon)" "^warn: the transaction of pid $idle_pid began [0-9]+ s ago" \
    "its snapshot is the xmin horizon, named by pid"
echo "COMMIT; SELECT 'committed';" >&"${IDLE[1]}"
read -r _ <&"${IDLE[0]}"   # (the COMMIT has been done once psql prints what follows it)
expect_eq "$(check server.idle_in_transaction)" "ok: no session idle in a transaction for 2 s or more" "committed: ok again"

echo "# a prepared transaction"
q "CREATE TABLE t (id int); BEGIN; INSERT INTO t VALUES (1); PREPARE TRANSACTION 'forgotten'"
sleep 3
expect_match "$(check server.xmin_horizon)" "prepared transaction forgotten is [0-9]+ s old" "a forgotten prepared transaction is named"
q "ROLLBACK PREPARED 'forgotten'"
expect_match "$(check server.xmin_horizon)" "^ok: " "rolled back: ok again"

echo "# connections near max_connections"
exec {IDLE[1]}>&-
pids=()
for _ in $(seq 1 15); do
    "$FLOE_PG_BIN/psql" -X -q -d "$FLOE_TEST_DB" -c "SELECT pg_sleep(30)" >/dev/null 2>&1 &
    pids+=($!)
done
wait_for 10 "15 sessions connected" q "SELECT count(*) >= 15 FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%'"
expect_eq "$(check server.connections)" "warn: 16 of 20 connections in use (80 %), 3 reserved for superusers" \
    "16 of 20 connections (the 15 and this one): warn"
"$FLOE_PG_BIN/psql" -X -q -d "$FLOE_TEST_DB" -c "SELECT pg_sleep(30)" >/dev/null 2>&1 &
pids+=($!)
wait_for 10 "16 sessions connected" q "SELECT count(*) >= 16 FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%'"
expect_eq "$(check server.connections)" "critical: 17 of 20 connections in use (85 %), 3 reserved for superusers" \
    "17 of 20: every slot open to ordinary roles taken: critical"
kill "${pids[@]}" 2>/dev/null || true
q "SELECT count(pg_terminate_backend(pid)) >= 0 FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%'" >/dev/null
wait_for 10 "connections back to ok" q "SELECT status = 'ok' FROM floe.health() WHERE check_name = 'server.connections'"
