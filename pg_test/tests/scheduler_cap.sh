#!/usr/bin/env bash
# floe.max_workers is respected and reported: with a cap of 1 and two databases with floe,
# one database gets a scheduler, the other none, and the launcher says why in the log.
# floe.databases narrows the databases that get one, on reload.
source "$(dirname "$0")/../lib/testlib.sh"

cluster_throwaway yes "floe.max_workers = 1"
for db in one two; do
    qd postgres "CREATE DATABASE $db"
    qd "$db" "CREATE EXTENSION floe"
done
cap_logged() { grep -q 'floe.max_workers = 1 reached' "$FLOE_TEST_DIR/postgres.log" && echo t; }
wait_for 15 "the launcher logs the cap" cap_logged
wait_for 10 "one scheduler with floe.max_workers = 1" \
    qd postgres "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'floe scheduler'"
expect_eq "$(qd one "SELECT status FROM floe.health() WHERE check_name = 'scheduler.running'")$(qd two "SELECT status FROM floe.health() WHERE check_name = 'scheduler.running'")" \
    "okwarn" "floe.health() shows which database has none"
echo "# raising the cap (a reload) starts the second"
qd postgres "ALTER SYSTEM SET floe.max_workers = 4"
qd postgres "SELECT pg_reload_conf()" >/dev/null
sleep 2
qd one "SELECT floe.wake_scheduler()" >/dev/null
wait_for 15 "both databases have a scheduler after the reload" \
    qd postgres "SELECT count(*) = 2 FROM pg_stat_activity WHERE backend_type = 'floe scheduler'"
echo "# floe.databases = 'two': only two keeps a scheduler"
qd postgres "ALTER SYSTEM SET floe.databases = 'two'"
qd postgres "SELECT pg_reload_conf()" >/dev/null
wait_for 20 "a database left out of floe.databases loses its scheduler" \
    qd postgres "SELECT string_agg(datname, ',') = 'two' FROM pg_stat_activity WHERE backend_type = 'floe scheduler'"
