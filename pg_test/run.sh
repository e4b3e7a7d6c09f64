#!/usr/bin/env bash
# Runs the server-side test layers against the installed floe, each on a throwaway cluster
# owned by an unprivileged user (Postgres refuses root):
#   1. pg_regress suites   pg_test/schedule, pg_test/sql/*.sql vs pg_test/expected/*.out
#   2. isolation specs     pg_test/isolation/schedule (pg_isolation_regress), when present
#   3. scenario tests      pg_test/tests/*.sh: multi-session, fault and worker tests that
#                          start their own clusters with pg_test/lib/cluster.sh
# Usage: pg_test/run.sh [regress|isolation|scenarios]... (default: all). Writes
# "<layer> <passed> <failed>" lines to $FLOE_COUNTS when that is set.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/lib/cluster.sh"

PGXS=$(dirname "$("$FLOE_PG_BIN/pg_config" --pgxs)")/..
PG_REGRESS=$PGXS/test/regress/pg_regress
PG_ISOLATION_REGRESS=$PGXS/test/isolation/pg_isolation_regress
LAYERS=("$@")
[ ${#LAYERS[@]} -gt 0 ] || LAYERS=(regress isolation scenarios)
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

# pg_regress's per-test lines end in "... ok" or "... FAILED"; count them.
count_and_record() {
    local layer=$1 out=$2 work=$3
    local passed failed
    passed=$(grep -cE '\.\.\. ok' "$out" || true)
    failed=$(grep -cE '\.\.\. FAILED|failed \(ignored\)' "$out" || true)
    if [ "$failed" -gt 0 ] || ! grep -qE 'All [0-9]+ tests passed' "$out"; then
        [ -f "$work/out/regression.diffs" ] && cat "$work/out/regression.diffs"
        # Keep the actual output for review (gitignored): pg_test/results/<layer>/
        rm -rf "$HERE/results/$layer"
        mkdir -p "$HERE/results/$layer"
        cp -r "$work/out/." "$HERE/results/$layer/" 2>/dev/null || true
        [ "$failed" -gt 0 ] || failed=1
    fi
    record "$layer" "$passed" "$failed"
}

run_regress() {
    # No scheduler workers: the suites run jobs by hand and must not race a worker.
    cluster_throwaway yes "floe.max_workers = 0"
    local work out
    work=$(stage "$HERE")
    out=$work/out.txt
    as_cluster_user "$PG_REGRESS" --inputdir="$work" --outputdir="$work/out" --bindir="$FLOE_PG_BIN" \
        --host="$PGHOST" --port="$PGPORT" --user="$PGUSER" --dbname=floe_regression \
        --load-extension=floe --schedule="$work/schedule" >"$out" 2>&1 || true
    cat "$out"
    count_and_record regress "$out" "$work"
    rm -rf "$work"
    cluster_cleanup_all
}

run_isolation() {
    if [ ! -s "$HERE/isolation/schedule" ]; then
        record isolation 0 0
        return
    fi
    cluster_throwaway yes "floe.max_workers = 0"
    local work out
    work=$(stage "$HERE/isolation")
    out=$work/out.txt
    as_cluster_user "$PG_ISOLATION_REGRESS" --inputdir="$work" --outputdir="$work/out" \
        --bindir="$FLOE_PG_BIN" --host="$PGHOST" --port="$PGPORT" --user="$PGUSER" \
        --dbname=floe_isolation --load-extension=floe --schedule="$work/schedule" >"$out" 2>&1 || true
    cat "$out"
    count_and_record isolation "$out" "$work"
    rm -rf "$work"
    cluster_cleanup_all
}

run_scenarios() {
    local t passed=0 failed=0
    for t in "$HERE"/tests/*.sh; do
        [ -e "$t" ] || continue
        echo "scenario $(basename "$t" .sh)"
        if timeout 600 bash "$t"; then
            passed=$((passed + 1))
        else
            echo "FAILED: $(basename "$t")"
            failed=$((failed + 1))
        fi
    done
    record scenarios "$passed" "$failed"
}

for layer in "${LAYERS[@]}"; do
    case $layer in
    regress) run_regress ;;
    isolation) run_isolation ;;
    scenarios) run_scenarios ;;
    *)
        echo "unknown layer $layer" >&2
        exit 2
        ;;
    esac
done
exit $FAILED
