#!/usr/bin/env bash
# Installing a new build of floe under a running, busy server, the way floe's scripts do it
# (scripts/install.sh: every file replaced by rename, never written in place): a preloaded
# cluster with the scheduler busy in two databases (a job every second in each), a queue
# producer and consumer, an on-change materialized view; another build of floe.so is
# installed over it and the load goes on for 30 s. The postmaster must survive with the same
# workers still working and nothing in the log or the kernel log about crashes; after a
# restart the server runs the new file and floe.health() is all ok. Last, a stale library
# under newer control and SQL files: CREATE EXTENSION refuses with a clear error (55000) and
# creates nothing.
#
# Needs both builds that scripts/test.sh leaves: the release package (target/floe-package)
# and the debug build of cargo pgrx test (target/debug/libfloe.so). Runs on its own copy of
# the PostgreSQL tree, so the other tests' install is not touched.
source "$(dirname "$0")/../lib/testlib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/scripts/install.sh"

PG_MAJOR=$("$FLOE_PG_BIN/pg_config" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
RELEASE=$ROOT/target/floe-package/pg$PG_MAJOR
OTHER_SO=$ROOT/target/debug/libfloe.so
[ -f "$RELEASE/usr/lib/postgresql/$PG_MAJOR/lib/floe.so" ] || fail "no release package in $RELEASE (scripts/test.sh builds it)"
[ -f "$OTHER_SO" ] || fail "no debug build at $OTHER_SO (cargo pgrx test builds it)"
cmp -s "$OTHER_SO" "$RELEASE/usr/lib/postgresql/$PG_MAJOR/lib/floe.so" && fail "the two builds are the same file"

# A private PostgreSQL tree with the release build installed.
TREE=$(mktemp -d /tmp/floe-install-tree.XXXXXX)
chmod 0755 "$TREE"
trap 'cluster_cleanup_all; rm -rf "$TREE"' EXIT
bin=$FLOE_PG_BIN
prefix=${bin%/usr/lib/postgresql/*}
cp -a "$prefix/usr" "$TREE/"
export FLOE_PG_BIN=$TREE/usr/lib/postgresql/$PG_MAJOR/bin
libdir=$("$FLOE_PG_BIN/pg_config" --pkglibdir)
sharedir=$("$FLOE_PG_BIN/pg_config" --sharedir)
[ "$libdir" = "$TREE/usr/lib/postgresql/$PG_MAJOR/lib" ] || fail "the copied tree does not find its own lib directory ($libdir)"
install_tree "$RELEASE" "$TREE"

cluster_throwaway yes
trap 'cluster_cleanup_all; rm -rf "$TREE"' EXIT
log=$FLOE_TEST_DIR/postgres.log
postmaster=$(head -n 1 "$FLOE_TEST_DIR/data/postmaster.pid")
kernel_crashes() { dmesg 2>/dev/null | grep -cE 'segfault|trap invalid opcode|general protection' || true; }
kernel_before=$(kernel_crashes)
# The inode of floe.so that a process has mapped (from /proc/PID/maps).
mapped_inode() { awk '$6 ~ /\/floe\.so/ { print $5; exit }' "/proc/$1/maps"; }

echo "# load: a job every second in two databases, a queue consumer, an on-change matview"
for db in tier_a tier_b; do
    qd postgres "CREATE DATABASE $db"
    qd "$db" "CREATE EXTENSION floe"
    qd "$db" "CREATE TABLE ticks (at timestamptz DEFAULT clock_timestamp())"
    qd "$db" "SELECT floe.schedule('tick', '1 second', 'INSERT INTO ticks DEFAULT VALUES')" >/dev/null
done
qd tier_a "CREATE MATERIALIZED VIEW tick_count AS SELECT 1 AS k, count(*) AS n FROM ticks"
qd tier_a "CREATE UNIQUE INDEX ON tick_count (k)"
qd tier_a "SELECT floe.register_matview('tick_count', min_interval => '1 second')" >/dev/null
qd tier_b "SELECT floe.create_queue('work')" >/dev/null
wait_for 15 "a scheduler worker in each database" \
    qd postgres "SELECT count(DISTINCT datname) = 2 FROM pg_stat_activity WHERE backend_type = 'floe scheduler'"
workers_before=$(qd postgres "SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_stat_activity WHERE backend_type LIKE 'floe%'")

consumer_stop=$FLOE_TEST_DIR/consumer.stop
consumer() {
    while [ ! -e "$consumer_stop" ] && [ -d "$FLOE_TEST_DIR" ]; do
        qd tier_b "SELECT floe.enqueue('work', '{\"n\": 1}');
                   SELECT floe.complete(id) FROM floe.dequeue('work')" >/dev/null || echo "consumer: a call failed" >&2
        sleep 0.05
    done
}
consumer &
consumer_pid=$!
# On any exit (a failed check too), the consumer goes first.
trap 'kill "$consumer_pid" 2>/dev/null || true; cluster_cleanup_all; rm -rf "$TREE"' EXIT
sleep 3

echo "# install the other build over the running server"
old_inode=$(stat -c %i "$libdir/floe.so")
expect_eq "$(mapped_inode "$postmaster")" "$old_inode" "the postmaster has the installed floe.so mapped"
STAGE=$(mktemp -d /tmp/floe-other-build.XXXXXX)
cp -a "$RELEASE/." "$STAGE/"
install -m 0755 "$OTHER_SO" "$STAGE/usr/lib/postgresql/$PG_MAJOR/lib/floe.so"
installed_at=$(qd tier_a "SELECT clock_timestamp()")
install_tree "$STAGE" "$TREE"
rm -rf "$STAGE"
new_inode=$(stat -c %i "$libdir/floe.so")
[ "$new_inode" != "$old_inode" ] || fail "the install wrote floe.so in place (inode $old_inode kept)"
cmp -s "$OTHER_SO" "$libdir/floe.so" || fail "the other build is not what is installed"
echo "  ok - floe.so replaced by a new file (inode $old_inode -> $new_inode)"
ticks_at_install=$(qd tier_a "SELECT count(*) FROM ticks") || fail "the server stopped answering right after the install"
jobs_at_install=$(qd tier_b "SELECT count(*) FROM floe.finished_jobs")

sleep 30
touch "$consumer_stop"
wait "$consumer_pid"

echo "# after 30 s of load on the replaced file"
cluster_running "$FLOE_TEST_DIR" || fail "the server is down"
expect_eq "$(head -n 1 "$FLOE_TEST_DIR/data/postmaster.pid")" "$postmaster" "the same postmaster is running"
expect_eq "$(grep -cE 'terminated by signal|segfault|was terminated|server process .* exited|PANIC' "$log" || true)" 0 \
    "no crashed process in the server log"
expect_eq "$(kernel_crashes)" "$kernel_before" "no new crash in the kernel log"
expect_eq "$(qd postgres "SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_stat_activity WHERE backend_type LIKE 'floe%'")" \
    "$workers_before" "the same floe workers are running"
for db in tier_a tier_b; do
    n=$(qd "$db" "SELECT count(*) FROM ticks WHERE at > '$installed_at'")
    [ "$n" -ge 25 ] || fail "$db: the 1-second job ran $n times in the 30 s after the install"
    echo "  ok - $db: the 1-second job ran $n times in the 30 s after the install"
done
done_jobs=$(($(qd tier_b "SELECT count(*) FROM floe.finished_jobs") - jobs_at_install))
[ "$done_jobs" -ge 50 ] || fail "the queue consumer finished $done_jobs jobs in the 30 s after the install"
echo "  ok - the queue consumer finished $done_jobs jobs after the install"
expect_eq "$(qd tier_a "SELECT count(*) > 0 FROM floe.matview_refreshes WHERE view = 'tick_count'::regclass AND started_at > '$installed_at' AND result = 'succeeded'")" t \
    "the on-change matview was refreshed after the install"
expect_eq "$(qd tier_a "SELECT n >= $ticks_at_install FROM tick_count")" t "and it shows ticks written after the install"
# A backend reads its own memory map: the floe.so it runs is the old file.
expect_eq "$(qd tier_a "SELECT floe.version() IS NOT NULL,
                               (regexp_match(pg_read_file('/proc/self/maps'), '[0-9a-f-]+ \\S+ \\S+ \\S+ (\\d+) +[^\\n]*/floe\\.so'))[1]")" \
    "t|$old_inode" "a backend started after the install still runs the library its postmaster mapped"

echo "# restart: the new build is loaded"
cluster_restart "$FLOE_TEST_DIR"
postmaster=$(head -n 1 "$FLOE_TEST_DIR/data/postmaster.pid")
expect_eq "$(mapped_inode "$postmaster")" "$new_inode" "after the restart the postmaster maps the new floe.so"
for db in tier_a tier_b; do
    installed=$(qd "$db" "SELECT extversion FROM pg_extension WHERE extname = 'floe'")
    available=$(qd "$db" "SELECT default_version FROM pg_available_extensions WHERE name = 'floe'")
    [ "$installed" = "$available" ] || qd "$db" "ALTER EXTENSION floe UPDATE"
done
wait_for 15 "the scheduler workers are back" \
    qd postgres "SELECT count(DISTINCT datname) = 2 FROM pg_stat_activity WHERE backend_type = 'floe scheduler'"
for db in tier_a tier_b; do
    expect_eq "$(qd "$db" "SELECT coalesce(string_agg(check_name || '=' || status || ': ' || detail, '; '), '') FROM floe.health('warn')")" "" \
        "$db: floe.health() all ok on the new build"
done

echo "# a stale floe.so under a newer control file and script"
current=$(qd postgres "SELECT default_version FROM pg_available_extensions WHERE name = 'floe'")
sed "s/^default_version = .*/default_version = '99.0.0'/" "$sharedir/extension/floe.control" >"$TREE/floe.control.new"
cp "$sharedir/extension/floe--$current.sql" "$sharedir/extension/floe--99.0.0.sql"
mv -f "$TREE/floe.control.new" "$sharedir/extension/floe.control"
qd postgres "CREATE DATABASE stale"
err=$("$FLOE_PG_BIN/psql" -X -q -At -v VERBOSITY=verbose -d stale -c "CREATE EXTENSION floe" 2>&1 || true)
expect_match "$err" "ERROR:  55000: floe's library \(floe.so\) is version $current, older than the extension scripts \(version 99.0.0\)" \
    "CREATE EXTENSION refuses a stale library with 55000"
expect_match "$err" "HINT:  Install floe.so from the same build" "with a hint"
expect_eq "$(qd stale "SELECT count(*) FROM pg_extension WHERE extname = 'floe'")|$(qd stale "SELECT count(*) FROM pg_namespace WHERE nspname = 'floe'")" "0|0" \
    "and nothing was created"
expect_eq "$(qd stale "SELECT count(*) FROM pg_stat_activity WHERE pid = pg_backend_pid()")" 1 "the server is fine"
