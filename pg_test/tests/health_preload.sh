#!/usr/bin/env bash
# floe.health() reports the preload state truthfully: a cluster without floe in
# shared_preload_libraries warns (and says what to do), a preloaded one is ok, and a cluster
# whose setting was changed without a restart says a restart is pending.
source "$(dirname "$0")/../lib/testlib.sh"

echo "# cluster without preload"
cluster_throwaway no
make_test_db
expect_eq "$(q "SELECT status FROM floe.health() WHERE check_name = 'core.preload'")" warn \
    "core.preload warns without preload"
expect_match "$(q "SELECT hint FROM floe.health() WHERE check_name = 'core.preload'")" \
    "shared_preload_libraries" "the hint says how to preload"
expect_eq "$(q "SELECT status FROM floe.health() WHERE check_name = 'scheduler.running'")" warn \
    "scheduler.running warns without preload"
# The prefix is reserved from the first floe call on, preloaded or not.
expect_match "$(q "SELECT floe.version(); SET floe.no_such_setting = 1" 2>&1 || true)" \
    'invalid configuration parameter name "floe.no_such_setting"' "floe.* prefix is reserved once loaded"

echo "# same cluster, preload configured but not yet restarted"
q "ALTER SYSTEM SET shared_preload_libraries = 'floe'"
q "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
expect_match "$(q "SELECT detail FROM floe.health() WHERE check_name = 'core.preload'")" \
    "not been restarted" "core.preload says a restart is pending"

echo "# same cluster after the restart"
cluster_restart "$FLOE_TEST_DIR"
expect_eq "$(q "SELECT status FROM floe.health() WHERE check_name = 'core.preload'")" ok \
    "core.preload is ok once preloaded"

echo "# a cluster preloaded from the start"
cluster_throwaway yes
make_test_db
expect_eq "$(q "SELECT status FROM floe.health() WHERE check_name = 'core.preload'")" ok \
    "core.preload is ok in a preloaded cluster"
expect_eq "$(q "SELECT status FROM floe.health() WHERE check_name = 'core.version'")" ok \
    "core.version is ok"
