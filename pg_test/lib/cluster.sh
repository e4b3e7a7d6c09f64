# shellcheck shell=bash
# Throwaway and long-lived PostgreSQL clusters for floe, run as an unprivileged OS user.
#
# Source this file, then:
#   cluster_create DIR PORT PRELOAD [TRUST_TCP]   initdb into DIR/data (PRELOAD: yes|no)
#   cluster_start DIR / cluster_stop DIR / cluster_restart DIR
#   cluster_psql DIR DB [psql args...]           psql -X -v ON_ERROR_STOP=1 into DB
#   cluster_throwaway PRELOAD                    create + start a cluster on a free port in a
#                                                fresh temp dir, export PGHOST/PGPORT/PGUSER,
#                                                and stop + remove it when the shell exits
#
# Postgres refuses to run as root: when this runs as root, every server-side command runs as
# $FLOE_OS_USER (created on demand); otherwise as the calling user.
#
# The calendar layer (pg_test/run.sh calendar) moves the servers' clock: with FLOE_CLOCK_OFFSET
# (seconds) and FLOE_CLOCK_SHIM (pg_test/lib/clockshift.c, built) set, every server started
# here runs with its wall clock moved by that offset, background workers included; with
# FLOE_EXTRA_CONF set, its lines are added to every new cluster's postgresql.conf.

FLOE_PG_BIN=${FLOE_PG_BIN:-/usr/lib/postgresql/15/bin}
FLOE_OS_USER=${FLOE_OS_USER:-floe}
FLOE_OS_HOME=${FLOE_OS_HOME:-/var/lib/floe}
# The database superuser of floe's clusters. Not "floe": a role named like the schema floe
# would put every unqualified CREATE TABLE of that role into schema floe ("$user" in the
# default search_path).
FLOE_DB_SUPERUSER=${FLOE_DB_SUPERUSER:-postgres}

floe_is_root() { [ "$(id -u)" -eq 0 ]; }

# The OS user (and so the database superuser) that owns clusters.
floe_cluster_user() {
    if floe_is_root; then echo "$FLOE_OS_USER"; else id -un; fi
}

ensure_os_user() {
    floe_is_root || return 0
    if ! id -u "$FLOE_OS_USER" >/dev/null 2>&1; then
        useradd --system --home-dir "$FLOE_OS_HOME" --shell /bin/bash "$FLOE_OS_USER"
    fi
    install -d -o "$FLOE_OS_USER" -g "$(id -gn "$FLOE_OS_USER")" -m 0755 "$FLOE_OS_HOME"
}

# Runs a command as the cluster owner.
as_cluster_user() {
    if floe_is_root; then
        runuser -u "$FLOE_OS_USER" -- "$@"
    else
        "$@"
    fi
}

# Makes DIR owned by the cluster user.
own_dir() {
    local dir=$1 mode=${2:-0700}
    if floe_is_root; then
        install -d -o "$FLOE_OS_USER" -g "$(id -gn "$FLOE_OS_USER")" -m "$mode" "$dir"
    else
        install -d -m "$mode" "$dir"
    fi
}

# A TCP port on 127.0.0.1 that nothing is listening on, below the kernel's ephemeral range
# (32768-60999 by default): an outgoing connection (Citus's between its nodes, the tests'
# own) holds its local port there, and a server could not bind it.
free_port() {
    local port
    for _ in $(seq 1 200); do
        port=$((10000 + RANDOM % 22000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    echo "no free port found" >&2
    return 1
}

cluster_port() { cat "$1/port"; }

# cluster_create DIR PORT PRELOAD [TRUST_TCP]
#   PRELOAD: yes puts floe in shared_preload_libraries.
#   TRUST_TCP: yes (throwaway test clusters) trusts 127.0.0.1; otherwise TCP needs a password.
cluster_create() {
    local dir=$1 port=$2 preload=$3 trust_tcp=${4:-no}
    local host_auth=scram-sha-256
    [ "$trust_tcp" = yes ] && host_auth=trust
    own_dir "$dir" 0700
    # shellcheck disable=SC2086 # FLOE_INITDB_ARGS: extra initdb options, word-split
    as_cluster_user "$FLOE_PG_BIN/initdb" --pgdata="$dir/data" --username="$FLOE_DB_SUPERUSER" \
        --auth-local=trust --auth-host="$host_auth" --encoding=UTF8 --locale=C.UTF-8 ${FLOE_INITDB_ARGS:-} >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; return 1; }
    echo "$port" >"$dir/port"
    {
        echo "# added by floe's cluster.sh"
        echo "port = $port"
        echo "listen_addresses = '127.0.0.1'"
        echo "unix_socket_directories = '$dir'"
        echo "unix_socket_permissions = 0700"
        echo "max_worker_processes = 16"
        echo "log_line_prefix = '%m [%p] %q%u@%d '"
        if [ "$preload" = yes ]; then echo "shared_preload_libraries = 'floe'"; fi
        if [ -n "${FLOE_EXTRA_CONF:-}" ]; then echo "$FLOE_EXTRA_CONF"; fi
    } | as_cluster_user tee -a "$dir/data/postgresql.conf" >/dev/null
}

# Settings that make a throwaway cluster fast and are wrong for real data.
cluster_make_disposable() {
    {
        echo "fsync = off"
        echo "synchronous_commit = off"
        echo "full_page_writes = off"
    } | as_cluster_user tee -a "$1/data/postgresql.conf" >/dev/null
}

cluster_running() { as_cluster_user "$FLOE_PG_BIN/pg_ctl" --pgdata="$1/data" status >/dev/null 2>&1; }

# pg_ctl as the cluster user, in the environment every server of these scripts gets.
# Without RUST_BACKTRACE: pgrx would append Rust backtraces to the DETAIL of errors, which
# makes test output depend on the caller's shell.
cluster_pg_ctl() {
    local clock=()
    if [ -n "${FLOE_CLOCK_OFFSET:-}" ]; then
        clock=("LD_PRELOAD=$FLOE_CLOCK_SHIM" "FLOE_CLOCK_OFFSET=$FLOE_CLOCK_OFFSET")
    fi
    as_cluster_user env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE "${clock[@]}" "$FLOE_PG_BIN/pg_ctl" "$@"
}

cluster_start() {
    local dir=$1
    cluster_running "$dir" && return 0
    cluster_pg_ctl --pgdata="$dir/data" --log="$dir/postgres.log" --wait --timeout=60 start >/dev/null ||
        { tail -n 30 "$dir/postgres.log" >&2; return 1; }
}

cluster_stop() {
    local dir=$1
    cluster_running "$dir" || return 0
    as_cluster_user "$FLOE_PG_BIN/pg_ctl" --pgdata="$dir/data" --mode=fast --wait --timeout=60 stop >/dev/null
}

cluster_restart() {
    local dir=$1
    if cluster_running "$dir"; then
        cluster_pg_ctl --pgdata="$dir/data" --log="$dir/postgres.log" --mode=fast --wait --timeout=60 restart >/dev/null ||
            { tail -n 30 "$dir/postgres.log" >&2; return 1; }
    else
        cluster_start "$dir"
    fi
}

# cluster_psql DIR DB [psql args...]
cluster_psql() {
    local dir=$1 db=$2
    shift 2
    "$FLOE_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$(cluster_port "$dir")" \
        -U "$FLOE_DB_SUPERUSER" -d "$db" "$@"
}

FLOE_THROWAWAY_DIRS=()
cluster_cleanup_all() {
    local dir
    for dir in "${FLOE_THROWAWAY_DIRS[@]}"; do
        cluster_stop "$dir" || true
        rm -rf "$dir"
    done
    FLOE_THROWAWAY_DIRS=()
}

# cluster_throwaway PRELOAD [SETTING...]: a started, disposable cluster on a free port in a
# fresh temp dir, with extra postgresql.conf lines (e.g. "floe.max_workers = 0"). Sets
# FLOE_TEST_DIR and exports PGHOST/PGPORT/PGUSER for it (a second call points them at the
# second cluster); every throwaway cluster is stopped and removed when the shell exits.
# FLOE_CLUSTER_TMP (default /tmp) is where its directory goes: benchmarks that create
# thousands of files run on /dev/shm there, so the file system's inode allocation (seen at
# 40 % of a create_parent profile on this VM's ext4, varying 2x from run to run) does not
# swamp what they compare.
cluster_throwaway() {
    local preload=$1 dir port setting
    shift
    ensure_os_user
    dir=$(mktemp -d "${FLOE_CLUSTER_TMP:-/tmp}/floe-cluster.XXXXXX")
    FLOE_THROWAWAY_DIRS+=("$dir")
    trap cluster_cleanup_all EXIT
    port=$(free_port)
    cluster_create "$dir" "$port" "$preload" yes
    cluster_make_disposable "$dir"
    for setting in "$@"; do
        echo "$setting" | as_cluster_user tee -a "$dir/data/postgresql.conf" >/dev/null
    done
    cluster_start "$dir"
    FLOE_TEST_DIR=$dir
    PGHOST=$dir
    PGPORT=$port
    PGUSER=$FLOE_DB_SUPERUSER
    export FLOE_TEST_DIR PGHOST PGPORT PGUSER
}
