#!/usr/bin/env bash
# README command 1: set up, build, install, start a local cluster with floe preloaded,
# create the four tier databases with the extension, run the demo, leave it running.
#
# Safe to re-run: installed pieces are skipped, the cluster is reused (and restarted so it
# loads the freshly installed library), databases and extensions are created only if missing.
#
# Settings (environment): FLOE_PORT (default 5488), FLOE_OS_USER (default floe),
# FLOE_OS_HOME (default /var/lib/floe; the cluster lives in $FLOE_OS_HOME/demo).

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

FLOE_PORT=${FLOE_PORT:-5488}
DEMO_DIR=$FLOE_OS_HOME/demo

floe_is_root || die "run this as root: it installs packages and the extension"
ensure_toolchain
install_release

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
