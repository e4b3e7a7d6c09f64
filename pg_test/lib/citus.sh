# shellcheck shell=bash
# A Citus cluster on this machine for floe's Citus layer (issue #25): a coordinator and two
# workers, each a throwaway cluster with `shared_preload_libraries = 'citus,floe'` (Citus must
# come first; floe's hooks then run ahead of Citus's), Citus in the test database of every
# node, the workers added, floe created on the coordinator (Citus propagates it).
#
#   citus_cluster [SETTING...]   start the three nodes (extra postgresql.conf lines)
#   qc SQL / qw1 SQL / qw2 SQL   one value per line from the coordinator / a worker
#   qn NODE SQL                  the same on node NODE (0 coordinator, 1, 2 workers)
#   as_admin SQL                 one transaction in floe's admin mode through the coordinator
source "$(dirname "${BASH_SOURCE[0]}")/testlib.sh"

CITUS_DIRS=()
CITUS_PORTS=()

qn() {
    local node=$1
    shift
    "$FLOE_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "${CITUS_DIRS[$node]}" \
        -p "${CITUS_PORTS[$node]}" -U "$FLOE_DB_SUPERUSER" -d "$FLOE_TEST_DB" -c "$*"
}
qc() { qn 0 "$@"; }
qw1() { qn 1 "$@"; }
qw2() { qn 2 "$@"; }

citus_cluster() {
    local settings=("shared_preload_libraries = 'citus,floe'" "max_worker_processes = 32"
        "citus.node_conninfo = 'sslmode=prefer'" "$@") i
    for i in 0 1 2; do
        cluster_throwaway no "${settings[@]}"
        CITUS_DIRS+=("$FLOE_TEST_DIR")
        CITUS_PORTS+=("$PGPORT")
        "$FLOE_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE $FLOE_TEST_DB"
        q "CREATE EXTENSION citus" >/dev/null
    done
    qc "SELECT citus_set_coordinator_host('127.0.0.1', ${CITUS_PORTS[0]})" >/dev/null
    qc "SELECT citus_add_node('127.0.0.1', ${CITUS_PORTS[1]})" >/dev/null
    qc "SELECT citus_add_node('127.0.0.1', ${CITUS_PORTS[2]})" >/dev/null
    qc "CREATE EXTENSION floe" >/dev/null
    # Everything not naming a node goes to the coordinator.
    PGHOST=${CITUS_DIRS[0]}
    PGPORT=${CITUS_PORTS[0]}
    export PGHOST PGPORT
}

# as_admin SQL: one transaction in floe's admin mode, as the superuser, through the
# coordinator; the settings forwarded to the workers (where the shards' guards and policies
# run), each SET LOCAL a statement of its own (Citus forwards a SET LOCAL's whole string).
as_admin() {
    "$FLOE_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$FLOE_TEST_DB" -c "BEGIN" \
        -c "SET LOCAL citus.propagate_set_commands = 'local'" -c "SET LOCAL floe.tenant_admin = on" \
        -c "$*" -c "COMMIT"
}

# as_tenant TENANT PSQL-ARGS...: one transaction as platform_app through the coordinator,
# the tenant set by floe.set_tenant(), then each `-c` of PSQL-ARGS; prints their output.
as_tenant() {
    local tenant=$1
    shift
    "$FLOE_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -U platform_app -d "$FLOE_TEST_DB" \
        -c "BEGIN" -c "SELECT floe.set_tenant('$tenant') IS NULL" "$@" -c "COMMIT" | sed '1d'
}
