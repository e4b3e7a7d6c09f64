#!/usr/bin/env bash
# Major-version upgrade as DBAs do it (issue #20, item 4): the reference platform on
# PostgreSQL 15 with every module in use, pg_upgrade to PostgreSQL $FLOE_UPGRADE_TO (18 by
# default; floe installed in both), then floe.health() all ok in every tier, the audit chain
# verifies, content bodies read back byte for byte, queue jobs complete, partition
# maintenance runs, the schedulers start.
# Needs FLOE_PG_BIN (15, with floe) and FLOE_NEW_PG_BIN (the new major, with floe).
source "$(dirname "$0")/../lib/testlib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
NEW_BIN=${FLOE_NEW_PG_BIN:?set FLOE_NEW_PG_BIN to the bin directory of the new major}
OLD_BIN=$FLOE_PG_BIN

cluster_throwaway yes
OLD=$FLOE_TEST_DIR
out=$(bash "$ROOT/scripts/platform.sh" 3 300 2>&1) || { echo "$out" | tail -40; fail "platform.sh failed"; }
echo "  ok - the reference platform on $("$OLD_BIN/postgres" --version)"
tenant=$(qd oltp "BEGIN; SET LOCAL floe.tenant_admin = on; SELECT id FROM app.tenants ORDER BY id LIMIT 1; COMMIT")
bodies="BEGIN; SET LOCAL floe.tenant_admin = on; SELECT count(*) || ' ' || md5(string_agg(body, '|' ORDER BY message_id)) FROM app.email_content_with_body; COMMIT"
before_bodies=$(qd content "$bodies" | tail -1)
before_jobs=$(qd queue "SELECT count(*) FROM floe.queue_jobs")
qd oltp "SELECT floe.audit_seal()" >/dev/null
# pg_upgrade refuses a cluster using a library the new major lacks: the PyPI builds of 16 and
# 18 have no postgres_fdw, so there the platform's cross-tier references are dropped first (as
# a DBA would, with the extension, until the new server has it).
if [ ! -e "$("$NEW_BIN/pg_config" --pkglibdir)/postgres_fdw.so" ]; then
    for db in content olap; do
        qd "$db" "SELECT count(floe.drop_reference(tbl, columns)) FROM floe.declared_references" >/dev/null
        qd "$db" "SET client_min_messages = warning; DROP EXTENSION IF EXISTS postgres_fdw CASCADE"
    done
    echo "  ok - (no postgres_fdw in the new major: the platform's references dropped before the upgrade)"
fi
before_audit=$(qd oltp "SELECT string_agg(table_name || ' ' || status || ' ' || split_part(detail, ' entries', 1), ', ' ORDER BY table_name) FROM floe.verify_audit()")
cluster_stop "$OLD"

echo "# pg_upgrade to $("$NEW_BIN/postgres" --version)"
NEW=$(mktemp -d /tmp/floe-cluster.XXXXXX)
FLOE_THROWAWAY_DIRS+=("$NEW")
own_dir "$NEW" 0700
nport=$(free_port)
# (Like the old cluster: PostgreSQL 18's initdb turns data checksums on by default, and
# pg_upgrade needs both alike.)
# The help text is read whole before it is searched: `initdb --help | grep -q` under pipefail
# fails when grep exits before initdb's last write (SIGPIPE), which left checksums on once.
checksums=--no-data-checksums
initdb_help=$("$NEW_BIN/initdb" --help)
grep -q -- --no-data-checksums <<<"$initdb_help" || checksums=
FLOE_PG_BIN=$NEW_BIN FLOE_INITDB_ARGS=$checksums cluster_create "$NEW" "$nport" no yes
work=$(mktemp -d /tmp/floe-upgrade.XXXXXX)
own_dir "$work" 0700
t0=$(date +%s.%N)
if ! (cd "$work" && as_cluster_user "$NEW_BIN/pg_upgrade" -b "$OLD_BIN" -B "$NEW_BIN" -d "$OLD/data" -D "$NEW/data" \
        -U "$PGUSER" -p "$(free_port)" -P "$(free_port)" --socketdir="$work" >"$work/out.txt" 2>&1); then
    cat "$work/out.txt"
    find "$NEW/data" -name '*.log' -path '*pg_upgrade_output.d*' -exec tail -n 30 {} \; 2>/dev/null
    fail "pg_upgrade failed"
fi
echo "  ok - pg_upgrade ($(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.1f", a - b }') s)"
echo "shared_preload_libraries = 'floe'" | as_cluster_user tee -a "$NEW/data/postgresql.conf" >/dev/null
FLOE_PG_BIN=$NEW_BIN cluster_start "$NEW"
export PGHOST=$NEW PGPORT=$nport FLOE_PG_BIN=$NEW_BIN
for db in oltp content queue olap; do
    expect_eq "$(qd "$db" "SELECT extversion FROM pg_extension WHERE extname = 'floe'")" "$(qd "$db" "SELECT floe.version()")" \
        "$db: the extension and the library are the same version on the new major"
    wait_for 20 "$db: floe.health() all ok" qd "$db" "SELECT count(*) = 0 FROM floe.health() WHERE status <> 'ok'"
done
expect_eq "$(qd postgres "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_stat_activity WHERE backend_type = 'floe scheduler'")" \
    "content,olap,oltp,queue" "a scheduler in every tier database"
expect_eq "$(qd oltp "SELECT string_agg(table_name || ' ' || status || ' ' || split_part(detail, ' entries', 1), ', ' ORDER BY table_name) FROM floe.verify_audit()")" \
    "$before_audit" "the audit chain verifies as before"
qd oltp "BEGIN; SET LOCAL floe.tenant_admin = on; UPDATE app.users SET name = name || '.' WHERE id = (SELECT min(id) FROM app.users); COMMIT"
qd oltp "SELECT floe.audit_seal()" >/dev/null
expect_eq "$(qd oltp "SELECT string_agg(DISTINCT status, ',') FROM floe.verify_audit()")" ok "and continues"
expect_eq "$(qd content "$bodies" | tail -1)" "$before_bodies" "every content body reads back byte for byte"
expect_eq "$(qd queue "SELECT count(*) FROM floe.queue_jobs")" "$before_jobs" "the jobs of the queue are there"
done_jobs=$(qd queue "SELECT count(*) FROM (SELECT floe.complete(id, lease) FROM floe.dequeue('email_process', batch => 50)) d")
expect_match "$done_jobs" "^[1-9][0-9]*$" "queue jobs dequeue and complete ($done_jobs)"
qd olap "CALL floe.run_maintenance()"
expect_eq "$(qd olap "SELECT count(*) FROM floe.health() WHERE check_name LIKE 'partition.%' AND status <> 'ok'")" 0 \
    "partition maintenance runs"
expect_match "$(qd oltp "SET ROLE platform_app; SELECT count(*) FROM app.leads" 2>&1 || true)" "no tenant is set" \
    "isolation holds for the application role"

echo "# the old major's build is refused by the new server"
old_lib=$("$OLD_BIN/pg_config" --pkglibdir)/floe.so
expect_match "$(qd postgres "LOAD '$old_lib'" 2>&1 || true)" "could not load library|incompatible library" \
    "LOAD of floe built for $("$OLD_BIN/pg_config" --version) fails; nothing of it runs"
