#!/usr/bin/env bash
# README command 2: every test layer, as an unprivileged user, from a fresh machine too.
#   0. cargo fmt --check, cargo clippy (-D warnings), scripts/layout_check.py
#   1. pure unit tests (#[test] + proptest) and #[pg_test]s: cargo pgrx test, in a preloaded
#      throwaway cluster run by $FLOE_OS_USER
#   2. floe installed (release build), then pg_test/run.sh: pg_regress suites, isolation
#      specs, scenario tests (multi-session, fault, preload, installing under load) and the
#      calendar layer (suites and scenarios with the servers' clock moved to year end, leap
#      day and DST switches), each on a throwaway cluster
#   3. Citus 13.2.2 (from the vendored source, when present): a coordinator and two workers
#   4. PostgreSQL 16 and 18 (private installs from PyPI wheels, see common.sh): the
#      #[pg_test]s, and with the release build the pg_regress suite, the upgrade test and the
#      reference platform
# Every layer runs against a private copy of PostgreSQL ($FLOE_TEST_PREFIX, see common.sh):
# nothing here writes into the system PostgreSQL, so servers running from it (the demo that
# scripts/setup.sh leaves running) are not touched.
# Re-runs skip whatever is installed already. Ends with "summary: N passed, M failed".

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

floe_is_root || die "run this as root: it installs packages and the extension (the servers it starts run as $FLOE_OS_USER)"
# pgbouncer and psycopg: the pooler test (pg_test/tests/pgbouncer.sh) runs Debian's pgbouncer
# as the cluster user, with clients in Debian's python3.
ensure_toolchain pgbouncer python3-psycopg
for major in $FLOE_EXTRA_MAJORS; do ensure_major "$major"; done
use_test_prefix
cd "$FLOE_ROOT"

# The tests install into a private copy of PostgreSQL only. What the system PostgreSQL has
# of floe (files, and the demo server of scripts/setup.sh if it runs) is compared at the end.
DEMO_DIR=$FLOE_OS_HOME/demo
# Running, not just a postmaster.pid: a server killed without a shutdown leaves its pid file.
demo_running() { [ -f "$DEMO_DIR/data/PG_VERSION" ] && FLOE_PG_BIN=$SYSTEM_PG_BIN cluster_running "$DEMO_DIR"; }
system_floe_state() {
    local f
    for f in "$SYSTEM_PG_BIN/../lib/floe.so" "/usr/share/postgresql/$PG_MAJOR/extension/"floe*; do
        if [ -e "$f" ]; then stat -c '%n inode %i mtime %Y size %s' "$f"; fi
    done
    if demo_running; then echo "demo postmaster $(head -n 1 "$DEMO_DIR/data/postmaster.pid") running"; fi
}
SYSTEM_BEFORE=$(system_floe_state)

COUNTS=$(mktemp /tmp/floe-counts.XXXXXX)
export FLOE_COUNTS=$COUNTS
# What failed, in short, printed again at the end: a CI log is often read from its tail.
FAILURES=$(mktemp /tmp/floe-failures.XXXXXX)
export FLOE_FAILURES=$FAILURES
FAILED=0

step "cargo fmt --check"
cargo fmt --check || FAILED=1

step "cargo clippy -- -D warnings"
cargo clippy --quiet --features pg15 -- -D warnings || FAILED=1
cargo clippy --quiet --all-targets --features "pg15 pg_test" -- -D warnings || FAILED=1

step "source layout (no file over 600 lines, no import circle)"
python3 scripts/layout_check.py src || FAILED=1
if [ $FAILED -ne 0 ]; then
    echo "lint: 0 passed, 1 failed"
    echo "== lint: cargo fmt, clippy or the layout check (see its step above)" >>"$FAILURES"
fi

# cargo_tests MAJOR LABEL: `cargo pgrx test pgMAJOR` in a preloaded throwaway cluster run by
# $FLOE_OS_USER; records cargo's own counts ("test result: ok. N passed; M failed; ...").
cargo_tests() {
    local major=$1 label=$2 data log cargo_rc cargo_passed cargo_failed
    data=$FLOE_OS_HOME/pgrx-test-pg$major
    [ "$major" = "$PG_MAJOR" ] && data=$FLOE_OS_HOME/pgrx-test
    own_dir "$data" 0700
    log=$(mktemp /tmp/floe-cargo-test.XXXXXX)
    set +e
    cargo pgrx test "pg$major" --runas "$FLOE_OS_USER" --pgdata "$data" 2>&1 | tee "$log" |
        grep --line-buffered -E '^test |^test result|panicked|^error'
    cargo_rc=${PIPESTATUS[0]}
    set -e
    read -r cargo_passed cargo_failed < <(awk '/^test result:/ {
            for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i }
        } END { print p + 0, f + 0 }' "$log")
    if [ "$cargo_rc" -ne 0 ] || [ "$cargo_failed" -gt 0 ]; then
        grep -A30 -E 'panicked|^error' "$log" | head -n 80 || true
        [ "$cargo_failed" -gt 0 ] || cargo_failed=1
        { echo "== $label"; grep -E '^test .*FAILED|panicked|^error' "$log" | head -n 20 || true; } >>"$FAILURES"
    fi
    echo "$label $cargo_passed $cargo_failed" >>"$COUNTS"
    rm -f "$log"
}

step "unit tests and #[pg_test]s (cargo pgrx test pg15, cluster run by $FLOE_OS_USER)"
cargo_tests "$PG_MAJOR" cargo

# cargo pgrx test leaves its debug build (with the pg_test feature) installed in the private
# copy; the server-side layers test the release build that users run.
install_release "$FLOE_TEST_PREFIX"

step "pg_regress, isolation and scenario tests (pg_test/run.sh)"
bash "$FLOE_ROOT/pg_test/run.sh" || true

# Citus (issue #25): a coordinator and two workers on this machine, when its source is
# vendored beside the project (built once per machine, cached by the tarball's hash).
if citus_source_present; then
    ensure_citus
    step "Citus: a coordinator and two workers (pg_test/run.sh citus)"
    bash "$FLOE_ROOT/pg_test/run.sh" citus || true
else
    echo "citus: skipped: no Citus source at $FLOE_CITUS_TARBALL"
fi

# The other majors (16, 18): the #[pg_test]s (pure unit tests ran above), then the release
# build installed into that major's private install and the pg_regress suite (the same
# expected files), the upgrade test and the reference platform against it.
for major in $FLOE_EXTRA_MAJORS; do
    step "PostgreSQL $major: #[pg_test]s (cargo pgrx test pg$major)"
    cargo_tests "$major" "cargo-pg$major"
    install_major "$major"
    step "PostgreSQL $major: pg_regress, upgrade, platform (pg_test/run.sh major)"
    FLOE_PG_BIN=$(major_root "$major")/bin bash "$FLOE_ROOT/pg_test/run.sh" major || true
done
# A major-version upgrade as DBAs do it: pg_upgrade from 15 to the newest, floe in both.
newest=$(echo "$FLOE_EXTRA_MAJORS" | tr ' ' '\n' | sort -n | tail -n 1)
if [ -n "$newest" ]; then
    step "pg_upgrade from PostgreSQL $PG_MAJOR to $newest (pg_test/majors/major_upgrade.sh)"
    FLOE_NEW_PG_BIN=$(major_root "$newest")/bin bash "$FLOE_ROOT/pg_test/run.sh" major-upgrade || true
fi

step "the system PostgreSQL and the demo server are as they were"
system_failed=0
if [ "$(system_floe_state)" != "$SYSTEM_BEFORE" ]; then
    diff <(echo "$SYSTEM_BEFORE") <(system_floe_state) || true
    system_failed=1
elif demo_running; then
    demo_problems=$("$SYSTEM_PG_BIN/psql" -X -At -h "$DEMO_DIR" -p "$(cluster_port "$DEMO_DIR")" \
        -U "$FLOE_DB_SUPERUSER" -d oltp -c "SELECT count(*) FROM floe.health('critical')" 2>&1) || true
    echo "demo server running, critical health checks in oltp: $demo_problems"
    [ "$demo_problems" = 0 ] || system_failed=1
fi
echo "system $((1 - system_failed)) $system_failed" >>"$COUNTS"
[ "$system_failed" -eq 0 ] || echo "== system: the system PostgreSQL or the demo server changed (see above)" >>"$FAILURES"

step "results"
awk '{ printf "  %-10s %4d passed, %d failed\n", $1, $2, $3; p += $2; f += $3 } END { }' "$COUNTS"
read -r total_passed total_failed < <(awk '{ p += $2; f += $3 } END { print p + 0, f + 0 }' "$COUNTS")
rm -f "$COUNTS"
if [ -s "$FAILURES" ]; then
    step "what failed (in full above)"
    cat "$FAILURES"
fi
rm -f "$FAILURES"
[ $FAILED -eq 0 ] || total_failed=$((total_failed + 1))
echo "summary: $total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
