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
sleep 4
expect_eq "$(qd postgres "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'floe scheduler'")" 1 \
    "one scheduler with floe.max_workers = 1"
expect_match "$(grep -c 'floe.max_workers = 1 reached' "$FLOE_TEST_DIR/postgres.log")" "^[1-9]" \
    "the launcher logs the cap"
expect_eq "$(qd one "SELECT status FROM floe.health() WHERE check_name = 'scheduler.running'")$(qd two "SELECT status FROM floe.health() WHERE check_name = 'scheduler.running'")" \
    "okwarn" "floe.health() shows which database has none"
echo "# raising the cap (a reload) starts the second"
qd postgres "ALTER SYSTEM SET floe.max_workers = 4"
qd postgres "SELECT pg_reload_conf()" >/dev/null
sleep 2
qd one "SELECT floe.wake_scheduler()" >/dev/null
sleep 3
expect_eq "$(qd postgres "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'floe scheduler'")" 2 \
    "both databases have a scheduler after the reload"
echo "# floe.databases = 'two': only two keeps a scheduler"
qd postgres "ALTER SYSTEM SET floe.databases = 'two'"
qd postgres "SELECT pg_reload_conf()" >/dev/null
sleep 7
expect_eq "$(qd postgres "SELECT string_agg(datname, ',') FROM pg_stat_activity WHERE backend_type = 'floe scheduler'")" two \
    "a database left out of floe.databases loses its scheduler"
