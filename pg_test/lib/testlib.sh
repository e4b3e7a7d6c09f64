# shellcheck shell=bash
# Helpers for the scenario tests in pg_test/tests/: multi-session, fault and background-worker
# tests that need their own cluster. Source it, call cluster_throwaway, then use q/expect_*.
set -euo pipefail
# shellcheck source=cluster.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster.sh"

FLOE_TEST_DB=${FLOE_TEST_DB:-floe_test}

# q SQL...: one value per line, unaligned, against $FLOE_TEST_DB of the current cluster.
q() { "$FLOE_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$FLOE_TEST_DB" -c "$*"; }

# qd DB SQL...: the same against database DB.
qd() {
    local db=$1
    shift
    "$FLOE_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "$*"
}

# Creates the test database with floe in the current cluster.
make_test_db() {
    "$FLOE_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE $FLOE_TEST_DB"
    q "CREATE EXTENSION floe"
}

fail() {
    echo "not ok - $*" >&2
    exit 1
}

expect_eq() {
    local actual=$1 expected=$2 what=$3
    [ "$actual" = "$expected" ] || fail "$what: expected '$expected', got '$actual'"
    echo "  ok - $what"
}

expect_match() {
    local actual=$1 pattern=$2 what=$3
    [[ $actual =~ $pattern ]] || fail "$what: '$actual' does not match /$pattern/"
    echo "  ok - $what"
}

# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.1 s until it prints "t";
# on timeout calls the script's on_timeout function, if it has one (to print what it knows),
# and fails.
wait_for() {
    local secs=$1 what=$2 i
    shift 2
    for i in $(seq 1 $((secs * 10))); do
        [ "$("$@" 2>/dev/null)" = t ] && { echo "  ok - $what"; return 0; }
        sleep 0.1
    done
    if declare -F on_timeout >/dev/null; then on_timeout >&2 || true; fi
    fail "$what (waited ${secs}s)"
}
