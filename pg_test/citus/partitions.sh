#!/usr/bin/env bash
# floe partition sets on distributed tables (issue #25, items 3 and 6): a monthly set
# distributed by tenant_id, set up in both orders (distributed then managed, managed then
# distributed), tenant-isolated; floe's maintenance on the coordinator premakes distributed,
# co-located partitions, drains the default partition and retires old months (detach and
# drop) without breaking Citus's metadata; the workers' schedulers find no set and change
# nothing.
source "$(dirname "$0")/../lib/citus.sh"

citus_cluster
"$FLOE_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$FLOE_TEST_DB" -f "$(dirname "$0")/platform.sql" >/dev/null
# Every expectation counts months from now(): keep the run (about a minute and a half) away
# from a month's turn.
to_turn=$(qc "SELECT extract(epoch FROM date_trunc('month', now()) + interval '1 month' - now())::int")
if [ "$to_turn" -lt 300 ]; then
    echo "# waiting ${to_turn}s for the month to turn"
    sleep $((to_turn + 2))
fi
# The months relative to the clock (the sets start nine months back).
month() { qc "SELECT to_char(date_trunc('month', now()) + interval '$1 month', 'YYYY_MM')"; }

# Citus's view of a set: every partition distributed, co-located with the parent.
citus_consistent() {
    qc "SELECT count(*) FILTER (WHERE p.logicalrelid IS NULL) || ' undistributed, '
             || count(*) FILTER (WHERE p.colocationid IS DISTINCT FROM root.colocationid) || ' elsewhere'
          FROM pg_partition_tree('$1') t
          LEFT JOIN pg_dist_partition p ON p.logicalrelid = t.relid
          CROSS JOIN (SELECT colocationid FROM pg_dist_partition WHERE logicalrelid = '$1'::regclass) root"
}

for order in distribute-first manage-first; do
    t=app.messages_${order//-/_}
    if [ "$order" = distribute-first ]; then tenant=00000000-0000-0000-0000-000000000001; else tenant=00000000-0000-0000-0000-000000000002; fi
    echo "# $t: $order"
    qc "CREATE TABLE $t (tenant_id uuid NOT NULL, id bigint NOT NULL, sent_at timestamptz NOT NULL, subject text,
                         PRIMARY KEY (tenant_id, id, sent_at)) PARTITION BY RANGE (sent_at)" >/dev/null
    if [ "$order" = distribute-first ]; then
        qc "SELECT create_distributed_table('$t', 'tenant_id', colocate_with => 'app.companies')" >/dev/null
        qc "SELECT floe.create_parent('$t', 'sent_at', start => date_trunc('month', now()) - interval '9 months')" >/dev/null
    else
        qc "SELECT floe.create_parent('$t', 'sent_at', start => date_trunc('month', now()) - interval '9 months')" >/dev/null
        qc "SELECT create_distributed_table('$t', 'tenant_id', colocate_with => 'app.companies')" >/dev/null
    fi
    qc "SELECT count(*) FROM floe.enable_tenant_isolation('$t')" >/dev/null
    expect_eq "$(citus_consistent "$t")" "0 undistributed, 0 elsewhere" "every partition distributed and co-located"
    before=$(qc "SELECT count(*) FROM floe.partitions('$t') WHERE NOT is_default")
    expect_eq "$before" "14" "nine months back through four ahead: 14 months"

    # Rows in the months and one past the premade ones (into the default partition).
    as_admin "INSERT INTO app.tenants (id, name) VALUES ('$tenant', 'tenant') ON CONFLICT DO NOTHING" >/dev/null
    as_admin "INSERT INTO $t SELECT '$tenant', g,
                     date_trunc('month', now()) + (g - 9) * interval '1 month' + interval '1 day', 'm'
                FROM generate_series(0, 13) g" >/dev/null
    as_admin "INSERT INTO $t VALUES ('$tenant', 100,
                     date_trunc('month', now()) + interval '5 months' + interval '2 days', 'later')" >/dev/null
    expect_eq "$(as_admin "SELECT count(*) FROM ONLY ${t}_default")" "1" "a row past the premade months waits in the default"

    echo "  maintenance six months ahead, retention of three months (drop)"
    qc "SELECT floe.set_retention('$t', '3 months', 'drop')" >/dev/null
    qc "CALL floe.run_maintenance('$t', as_of => now() + interval '2 months')"
    expect_eq "$(qc "SELECT last_error IS NULL FROM floe.partition_sets WHERE parent::regclass = '$t'::regclass")" "t" \
        "maintenance succeeded"
    expect_eq "$(as_admin "SELECT count(*) FROM ONLY ${t}_default")" "0" "the default partition is drained"
    expect_eq "$(as_admin "SELECT count(*) FROM ${t}_$(month 5)")" "1" "the waiting row is in its new month"
    expect_eq "$(qc "SELECT to_regclass('${t}_$(month -9)') IS NULL AND to_regclass('${t}_$(month -4)') IS NULL
                        AND to_regclass('${t}_$(month -3)') IS NOT NULL")" "t" "months older than three dropped"
    expect_eq "$(citus_consistent "$t")" "0 undistributed, 0 elsewhere" \
        "after maintenance: every partition distributed and co-located"
    expect_eq "$(qc "SELECT count(*) FROM pg_dist_partition p WHERE p.logicalrelid::text LIKE '${t}_%'
                      AND to_regclass(p.logicalrelid::text) IS NULL")" "0" "no metadata of a dropped month"
    orphans=$(qw1 "SET citus.override_table_visibility TO off;
                   SELECT count(*) FROM pg_class WHERE relname LIKE '${t#app.}_$(month -9)_%'")
    expect_eq "$orphans" "0" "the dropped month's shards are gone from the workers"
    expect_eq "$(as_admin "SELECT count(*) FROM $t")" "9" "the rows of the kept months (three back through five ahead)"

    echo "  retention by detach"
    qc "SELECT floe.set_retention('$t', '2 months', 'detach')" >/dev/null
    qc "CALL floe.run_maintenance('$t')"
    expect_eq "$(qc "SELECT last_error IS NULL FROM floe.partition_sets WHERE parent::regclass = '$t'::regclass")" "t" \
        "maintenance with detach succeeded"
    expect_eq "$(qc "SELECT (SELECT count(*) FROM pg_inherits WHERE inhrelid = '${t}_$(month -3)'::regclass)
                    || ' ' || (SELECT count(*) FROM pg_dist_partition WHERE logicalrelid = '${t}_$(month -3)'::regclass)")" \
        "0 1" "the detached month is a distributed table of its own"
    expect_eq "$(as_admin "SELECT count(*) FROM ${t}_$(month -3)")" "1" "and keeps its row"
done

echo "# the coordinator's scheduler retires months of a set without a default partition"
# (where floe's worker would DETACH ... CONCURRENTLY, which Citus refuses: plain DETACH there)
t=app.messages_scheduled
qc "CREATE TABLE $t (tenant_id uuid NOT NULL, id bigint NOT NULL, sent_at timestamptz NOT NULL,
                     PRIMARY KEY (tenant_id, id, sent_at)) PARTITION BY RANGE (sent_at);
    SELECT create_distributed_table('$t', 'tenant_id', colocate_with => 'app.companies')" >/dev/null
qc "SELECT floe.create_parent('$t', 'sent_at', start => date_trunc('month', now()) - interval '9 months',
                              default_partition => false)" >/dev/null
qc "SELECT floe.set_retention('$t', '3 months', 'detach')" >/dev/null
qc "SELECT floe.alter_job('floe.partition_maintenance', schedule => '5 seconds')" >/dev/null
wait_for 60 "the scheduler's maintenance retired the old months" \
    qc "SELECT count(*) = 8 FROM pg_inherits WHERE inhparent = '$t'::regclass"
expect_eq "$(qc "SELECT coalesce(last_error, 'none') FROM floe.partition_sets WHERE parent::regclass = '$t'::regclass")" \
    "none" "the scheduler's maintenance succeeded"
expect_eq "$(citus_consistent "$t")" "0 undistributed, 0 elsewhere" "every partition distributed and co-located"
expect_eq "$(qc "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE '${t}_%'")" "14" \
    "the six detached months stay distributed tables"

echo "# the workers' schedulers"
for n in 1 2; do
    expect_eq "$(qn $n "SELECT count(*) FROM floe.partition_sets")" "0" "worker $n has no partition set"
done
before=$(qc "SELECT count(*) FROM pg_dist_partition")
qw1 "SELECT floe.alter_job('floe.partition_maintenance', schedule => '5 seconds')" >/dev/null
wait_for 30 "worker 1's scheduler ran its partition maintenance" \
    qw1 "SELECT count(*) > 0 FROM floe.job_runs r JOIN floe.jobs j USING (jobid)
          WHERE j.name = 'floe.partition_maintenance' AND r.status = 'succeeded'"
qw2 "CALL floe.run_maintenance()"
expect_eq "$(qc "SELECT count(*) FROM pg_dist_partition")" "$before" "the workers' maintenance changed no Citus table"
expect_eq "$(citus_consistent app.messages_distribute_first)" "0 undistributed, 0 elsewhere" \
    "and the sets are as the coordinator left them"
