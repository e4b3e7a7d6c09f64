#!/usr/bin/env bash
# The extension's life cycle as a DBA lives it (issue #24): DROP and CREATE EXTENSION (the
# scheduler is back within 2 s), CREATE DATABASE ... TEMPLATE of a database with floe (its
# scheduler steps aside for the copy; the copy gets its own scheduler and, if the template
# never audited, its own audit key), floe.max_workers followed on reload (down and up).
source "$(dirname "$0")/../lib/testlib.sh"

cluster_throwaway yes
schedulers() { qd postgres "SELECT coalesce(string_agg(datname, ',' ORDER BY datname), '') FROM pg_stat_activity WHERE backend_type = 'floe scheduler'"; }
on_timeout() { echo "schedulers: $(schedulers)"; tail -n 20 "$FLOE_TEST_DIR/postgres.log"; }

qd postgres "CREATE DATABASE eco"
qd eco "CREATE EXTENSION floe"
wait_for 5 "eco has its scheduler" qd postgres "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'floe scheduler' AND datname = 'eco'"

echo "# DROP EXTENSION, CREATE EXTENSION"
expect_match "$(qd eco "BEGIN; DROP EXTENSION floe CASCADE; SELECT 1/0; COMMIT" 2>&1 || true)" "division by zero" \
    "a DROP EXTENSION that rolls back (an error after it)"
wait_for 5 "its scheduler is back (the rollback wakes the launcher)" \
    qd postgres "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'floe scheduler' AND datname = 'eco'"
qd eco "DROP EXTENSION floe CASCADE"
wait_for 5 "the scheduler leaves with the extension" qd postgres "SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'floe scheduler' AND datname = 'eco'"
qd eco "CREATE EXTENSION floe"
wait_for 5 "CREATE EXTENSION again: the scheduler is back" \
    qd postgres "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'floe scheduler' AND datname = 'eco'"
expect_eq "$(qd eco "SELECT count(*) FROM floe.audit_key")" 0 "no audit key until something is audited"

echo "# CREATE DATABASE ... TEMPLATE"
qd eco "CREATE TABLE t (id int PRIMARY KEY, v text)"
qd postgres "CREATE DATABASE clone TEMPLATE eco"
echo "  ok - CREATE DATABASE clone TEMPLATE eco (eco's scheduler stepped aside)"
wait_for 5 "the clone gets its own scheduler, and eco's is back" \
    qd postgres "SELECT count(*) = 2 FROM pg_stat_activity WHERE backend_type = 'floe scheduler' AND datname IN ('eco', 'clone')"
qd eco "SELECT floe.enable_audit('t', redact => '{v}')" >/dev/null
qd clone "SELECT floe.enable_audit('t', redact => '{v}')" >/dev/null
expect_eq "$(qd eco "SELECT encode(key, 'hex') FROM floe.audit_key" | cut -c1-16 | grep -c -F "$(qd clone "SELECT encode(key, 'hex') FROM floe.audit_key" | cut -c1-16)")" 0 \
    "a clone of a database that never audited makes its own audit key"
qd eco "INSERT INTO t VALUES (1, 'secret')"
qd postgres "CREATE DATABASE clone2 TEMPLATE eco"
expect_eq "$(qd clone2 "SELECT encode(key, 'hex') FROM floe.audit_key")" "$(qd eco "SELECT encode(key, 'hex') FROM floe.audit_key")" \
    "a clone of a database that audits carries its key, as it carries its log (README: Backup and restore)"
qd clone2 "INSERT INTO t VALUES (2, 'more'); SELECT floe.audit_seal()" >/dev/null
expect_eq "$(qd clone2 "SELECT string_agg(table_name || ' ' || status, ',') FROM floe.verify_audit()")" "public.t ok" \
    "the clone's copy of the chain verifies and continues"

echo "# floe.max_workers on reload"
wait_for 5 "three schedulers" qd postgres "SELECT count(*) = 3 FROM pg_stat_activity WHERE backend_type = 'floe scheduler'"
qd postgres "ALTER SYSTEM SET floe.max_workers = 1"
qd postgres "SELECT pg_reload_conf()" >/dev/null
wait_for 5 "max_workers lowered to 1: two schedulers stop" \
    qd postgres "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'floe scheduler'"
qd postgres "ALTER SYSTEM SET floe.max_workers = 0"
qd postgres "SELECT pg_reload_conf()" >/dev/null
wait_for 5 "max_workers 0: no scheduler" qd postgres "SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'floe scheduler'"
sleep 2
expect_eq "$(schedulers)" "" "and none comes back"
qd postgres "ALTER SYSTEM RESET floe.max_workers"
qd postgres "SELECT pg_reload_conf()" >/dev/null
wait_for 5 "max_workers raised again: every scheduler is back within seconds" \
    qd postgres "SELECT count(*) = 3 FROM pg_stat_activity WHERE backend_type = 'floe scheduler'"
