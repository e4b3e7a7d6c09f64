#!/usr/bin/env bash
# Runs the server-side test layers against the installed floe, each on a throwaway cluster
# owned by an unprivileged user (Postgres refuses root):
#   1. pg_regress suites   pg_test/schedule, pg_test/sql/*.sql vs pg_test/expected/*.out
#   2. isolation specs     pg_test/isolation/schedule (pg_isolation_regress), when present
#   3. scenario tests      pg_test/tests/*.sh: multi-session, fault and worker tests that
#                          start their own clusters with pg_test/lib/cluster.sh
#   4. security            pg_test/security/*.sh: the tenant leak fuzzer over the reference
#                          platform, hostile identifiers through every table-taking function
#   5. calendar            the regress suites, the isolation specs, the partition, queue and
#                          scheduler scenarios and pg_test/calendar/edge.sh, each with the
#                          servers' clock moved to just before a calendar edge (CALENDAR_POINTS)
#   major          (for PostgreSQL 16 and 18) the regress suites, the upgrade and platform
#                  scenarios, labelled with the major
#   major-upgrade  pg_test/majors/major_upgrade.sh: pg_upgrade from FLOE_PG_BIN to
#                  FLOE_NEW_PG_BIN
# Usage: pg_test/run.sh [regress|isolation|scenarios|security|calendar|major|major-upgrade]...
# (default: the first five). Writes
# "<layer> <passed> <failed>" lines to $FLOE_COUNTS when that is set, and what failed (names,
# the first lines of the diffs, a scenario's last lines) to $FLOE_FAILURES when that is set.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/lib/cluster.sh"

PGXS=$(dirname "$("$FLOE_PG_BIN/pg_config" --pgxs)")/..
PG_REGRESS=$PGXS/test/regress/pg_regress
PG_ISOLATION_REGRESS=$PGXS/test/isolation/pg_isolation_regress
LAYERS=("$@")
[ ${#LAYERS[@]} -gt 0 ] || LAYERS=(regress isolation scenarios security calendar)
FAILED=0

record() {
    echo "$1: $2 passed, $3 failed"
    if [ -n "${FLOE_COUNTS:-}" ]; then echo "$1 $2 $3" >>"$FLOE_COUNTS"; fi
    [ "$3" -eq 0 ] || FAILED=1
}

# Copies a suite where the cluster user can read it and write results next to it.
stage() {
    local src=$1 work
    work=$(mktemp -d /tmp/floe-suite.XXXXXX)
    cp -r "$src"/. "$work"/
    if floe_is_root; then chown -R "$FLOE_OS_USER" "$work"; fi
    echo "$work"
}

# pg_regress's per-test lines end in "... ok" or "... FAILED" (up to PostgreSQL 15), or are
# TAP lines "ok N - name" / "not ok N - name" (16 on); count them.
count_and_record() {
    local layer=$1 out=$2 work=$3
    local passed failed
    passed=$(grep -cE '\.\.\. ok|^ok [0-9]+ ' "$out" || true)
    failed=$(grep -cE '\.\.\. FAILED|failed \(ignored\)|^not ok [0-9]+ ' "$out" || true)
    if [ "$failed" -gt 0 ] || ! grep -qE 'All [0-9]+ tests passed' "$out"; then
        [ -f "$work/out/regression.diffs" ] && cat "$work/out/regression.diffs"
        if [ -n "${FLOE_FAILURES:-}" ]; then
            {
                echo "== $layer"
                grep -E '\.\.\. FAILED|failed \(ignored\)|^not ok [0-9]+ ' "$out" || tail -n 5 "$out"
                if [ -f "$work/out/regression.diffs" ]; then head -n 60 "$work/out/regression.diffs"; fi
            } >>"$FLOE_FAILURES"
        fi
        # Keep the actual output for review (gitignored): pg_test/results/<layer>/
        rm -rf "$HERE/results/$layer"
        mkdir -p "$HERE/results/$layer"
        cp -r "$work/out/." "$HERE/results/$layer/" 2>/dev/null || true
        [ "$failed" -gt 0 ] || failed=1
    fi
    record "$layer" "$passed" "$failed"
}

# run_regress [LABEL]
run_regress() {
    local label=${1:-regress}
    # No scheduler workers: the suites run jobs by hand and must not race a worker. No
    # autovacuum either: an auto-analyze holds a transaction id while it writes statistics,
    # and an audit seal takes only what is below every running transaction's id.
    cluster_throwaway yes "floe.max_workers = 0" "autovacuum = off"
    local work out
    work=$(stage "$HERE")
    out=$work/out.txt
    as_cluster_user "$PG_REGRESS" --inputdir="$work" --outputdir="$work/out" --bindir="$FLOE_PG_BIN" \
        --host="$PGHOST" --port="$PGPORT" --user="$PGUSER" --dbname=floe_regression \
        --load-extension=floe --schedule="$work/schedule" >"$out" 2>&1 || true
    cat "$out"
    count_and_record "$label" "$out" "$work"
    rm -rf "$work"
    cluster_cleanup_all
}

# run_isolation [LABEL]
run_isolation() {
    local label=${1:-isolation}
    if [ ! -s "$HERE/isolation/schedule" ]; then
        record "$label" 0 0
        return
    fi
    cluster_throwaway yes "floe.max_workers = 0" "autovacuum = off"
    local work out
    work=$(stage "$HERE/isolation")
    out=$work/out.txt
    as_cluster_user "$PG_ISOLATION_REGRESS" --inputdir="$work" --outputdir="$work/out" \
        --bindir="$FLOE_PG_BIN" --host="$PGHOST" --port="$PGPORT" --user="$PGUSER" \
        --dbname=floe_isolation --load-extension=floe --schedule="$work/schedule" >"$out" 2>&1 || true
    cat "$out"
    count_and_record "$label" "$out" "$work"
    rm -rf "$work"
    cluster_cleanup_all
}

# run_scenarios [LABEL SCRIPT...]: every pg_test/tests/*.sh by default.
run_scenarios() {
    local label=${1:-scenarios} t passed=0 failed=0 log
    local scripts=("${@:2}")
    [ ${#scripts[@]} -gt 0 ] || scripts=("$HERE"/tests/*.sh)
    for t in "${scripts[@]}"; do
        [ -e "$t" ] || { echo "no scenario $t" >&2; failed=$((failed + 1)); continue; }
        echo "scenario $(basename "$t" .sh)"
        # Into a file, then printed: a process a scenario leaves behind cannot hold a pipe.
        log=$(mktemp /tmp/floe-scenario.XXXXXX)
        if timeout 600 bash "$t" >"$log" 2>&1; then
            cat "$log"
            passed=$((passed + 1))
        else
            cat "$log"
            echo "FAILED: $(basename "$t")"
            failed=$((failed + 1))
            if [ -n "${FLOE_FAILURES:-}" ]; then
                { echo "== $label: $(basename "$t" .sh)"; grep -E '^ *not ok' "$log" | head -n 5 || true; tail -n 12 "$log"; } >>"$FLOE_FAILURES"
            fi
        fi
        rm -f "$log"
    done
    record "$label" "$passed" "$failed"
}

# name | the edge, a UTC instant on the hour | the servers' TimeZone
CALENDAR_POINTS=(
    "year_end|2028-01-01 00:00:00+00|UTC"
    "leap_day|2028-02-29 00:00:00+00|UTC"
    "no_leap_day|2027-03-01 00:00:00+00|UTC"
    "dst_spring|2027-03-28 01:00:00+00|Europe/Berlin"
    "dst_autumn|2027-10-31 01:00:00+00|Europe/Berlin"
)
CALENDAR_SCENARIOS=(partition_concurrency queue_concurrency scheduler_worker)

# clock_before EDGE SECONDS: every server started after this call runs SECONDS before the edge
# (and its clock keeps running).
clock_before() {
    FLOE_CLOCK_OFFSET=$(($(date -d "$1" +%s) - $2 - $(date +%s)))
    export FLOE_CLOCK_OFFSET
}

run_calendar() {
    local shim point name edge tz scenarios=() s
    shim=$(mktemp -d /tmp/floe-clock.XXXXXX)
    chmod 0755 "$shim"
    gcc -O2 -shared -fPIC -o "$shim/clockshift.so" "$HERE/lib/clockshift.c" -ldl
    export FLOE_CLOCK_SHIM=$shim/clockshift.so
    for s in "${CALENDAR_SCENARIOS[@]}"; do scenarios+=("$HERE/tests/$s.sh"); done
    for point in "${CALENDAR_POINTS[@]}"; do
        IFS='|' read -r name edge tz <<<"$point"
        echo "calendar $name: servers' clocks moved to just before $edge, TimeZone $tz"
        export FLOE_EXTRA_CONF="timezone = '$tz'" FLOE_CALENDAR_BOUNDARY=$edge
        # The suites take seconds: their servers start 6 s before the edge (initdb, the
        # start and pg_regress's own set-up take about 2 of them), so the edge passes while
        # the tests run.
        clock_before "$edge" 6
        run_regress "cal-$name"
        clock_before "$edge" 6
        run_isolation "cal-$name"
        # Each scenario starts its own cluster 30 s before the edge.
        for s in "$HERE/calendar/edge.sh" "${scenarios[@]}"; do
            clock_before "$edge" 30
            run_scenarios "cal-$name" "$s"
        done
    done
    unset FLOE_CLOCK_OFFSET FLOE_CLOCK_SHIM FLOE_EXTRA_CONF FLOE_CALENDAR_BOUNDARY
    rm -rf "$shim"
}

for layer in "${LAYERS[@]}"; do
    case $layer in
    regress) run_regress ;;
    isolation) run_isolation ;;
    scenarios) run_scenarios ;;
    security) run_scenarios security "$HERE"/security/*.sh ;;
    calendar) run_calendar ;;
    major)
        # Another major than 15: the suites with the same expected files, the upgrade from
        # every kept release and the reference platform.
        major=$("$FLOE_PG_BIN/pg_config" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
        run_regress "regress-pg$major"
        run_isolation "isolation-pg$major"
        run_scenarios "scenarios-pg$major" "$HERE/tests/upgrade.sh" "$HERE/tests/platform.sh" \
            "$HERE/tests/buffer_writes.sh"
        ;;
    citus)
        # A coordinator and two workers (Citus installed into FLOE_PG_BIN's PostgreSQL by
        # scripts/common.sh's ensure_citus).
        if [ -f "$("$FLOE_PG_BIN/pg_config" --pkglibdir)/citus.so" ]; then
            run_scenarios citus "$HERE"/citus/*.sh
        else
            echo "citus: skipped: no Citus in $FLOE_PG_BIN's PostgreSQL"
        fi
        ;;
    major-upgrade)
        # pg_upgrade from FLOE_PG_BIN (15) to FLOE_NEW_PG_BIN, floe installed in both.
        run_scenarios major-upgrade "$HERE/majors/major_upgrade.sh"
        ;;
    *)
        echo "unknown layer $layer" >&2
        exit 2
        ;;
    esac
done
exit $FAILED
