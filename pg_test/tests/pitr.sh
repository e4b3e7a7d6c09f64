#!/usr/bin/env bash
# Physical backup and point-in-time recovery (issue #24, item 2): the reference platform
# (FLOE_PITR_TENANTS x FLOE_PITR_EMAILS; the demo's 6 x 3000 by default) on a preloaded
# primary with WAL archiving; pg_basebackup taken while writers (audited, isolated rows with
# content bodies), an enqueuer and a queue consumer run; a named restore point while they
# still run; then a mistake (a table dropped). The backup is restored to the restore point:
#   - every row committed before the restore point is there, none of the mistake;
#   - floe.health() all ok in the four tiers, the schedulers run on the restored cluster;
#   - the audit chain verifies and continues; content reference counts equal the referencing
#     rows and every body reads back; each queue job enqueued before the point is either
#     completed once or still queued, and completing the rest leaves none lost or doubled;
#   - the time it took (copy, replay to the point, promotion): the RTO of the data set.
source "$(dirname "$0")/../lib/testlib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TENANTS=${FLOE_PITR_TENANTS:-6}
EMAILS=${FLOE_PITR_EMAILS:-3000}

ARCH=$(mktemp -d /tmp/floe-archive.XXXXXX)
own_dir "$ARCH" 0700
cluster_throwaway yes "wal_level = replica" "archive_mode = on" "archive_command = 'cp %p $ARCH/%f'" "max_wal_senders = 4"
PRIMARY=$FLOE_TEST_DIR
trap 'kill $(jobs -p) 2>/dev/null || true; cluster_cleanup_all; rm -rf "$ARCH"' EXIT
started=$(date +%s)
out=$(bash "$ROOT/scripts/platform.sh" "$TENANTS" "$EMAILS" 2>&1) || { echo "$out" | tail -40; fail "platform.sh failed"; }
echo "  ok - the reference platform, $TENANTS tenants and $EMAILS emails ($(($(date +%s) - started)) s)"
tenant=$(qd oltp "BEGIN; SET LOCAL floe.tenant_admin = on; SELECT id FROM app.tenants ORDER BY id LIMIT 1; COMMIT")
qd oltp "CREATE TABLE app.ledger (n bigint PRIMARY KEY, tenant_id uuid NOT NULL, at timestamptz DEFAULT clock_timestamp());
         GRANT SELECT, INSERT ON app.ledger TO platform_app"
qd oltp "SELECT count(*) FROM floe.enable_tenant_isolation('app.ledger')" >/dev/null
qd oltp "SELECT floe.enable_audit('app.ledger')" >/dev/null
# max_attempts high: the consumer abandons a lease on purpose every round, and the same job
# can be handed to the abandoning dequeue five times in the ~10 s of load (the default
# max_attempts), which dead-letters it, as it should; this test is about leases surviving a
# restore, not about dead letters, so no job may run out of attempts here.
qd queue "SELECT floe.create_queue('pitr', visibility_timeout => '2 seconds', max_attempts => 1000, archive_completed => true)" >/dev/null

echo "# load: writers (oltp ledger, content bodies), an enqueuer, a queue consumer"
writer() {   # numbered, audited, isolated rows, one transaction each
    local n=0
    while :; do
        n=$((n + 1))
        qd oltp "BEGIN; SELECT floe.set_tenant('$tenant'); INSERT INTO app.ledger (n, tenant_id) VALUES ($n, '$tenant'); COMMIT" >/dev/null 2>&1 || return 0
    done
}
bodies() {
    local n=900000
    while :; do
        n=$((n + 1))
        qd content "BEGIN; SELECT floe.set_tenant('$tenant');
            INSERT INTO app.email_content (message_id, tenant_id, body) VALUES ($n, '$tenant', 'body ' || $n || repeat(' text', 40)); COMMIT" >/dev/null 2>&1 || return 0
    done
}
enqueuer() {
    local n=0
    while :; do
        n=$((n + 1))
        qd queue "SELECT floe.enqueue('pitr', jsonb_build_object('n', $n))" >/dev/null 2>&1 || return 0
    done
}
consumer() {   # dequeue in one transaction, complete in the next: leases are real
    while :; do
        qd queue "SELECT floe.complete(id, lease) FROM (SELECT * FROM floe.dequeue('pitr', batch => 3)) d" >/dev/null 2>&1 || return 0
        qd queue "SELECT count(*) FROM floe.dequeue('pitr')" >/dev/null 2>&1 || return 0   # left leased
    done
}
writer & bodies & enqueuer & consumer &
sleep 2

echo "# pg_basebackup while they run"
BACKUP=$(mktemp -d /tmp/floe-backup.XXXXXX)
FLOE_THROWAWAY_DIRS+=("$BACKUP")
own_dir "$BACKUP" 0700
t0=$(date +%s.%N)
as_cluster_user "$FLOE_PG_BIN/pg_basebackup" -h "$PRIMARY" -p "$PGPORT" -U "$PGUSER" -D "$BACKUP/base" -X none -c fast
backup_secs=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.1f", a - b }')
backup_size=$(du -sh "$BACKUP/base" | cut -f1)
echo "  ok - base backup: $backup_size in $backup_secs s"
sleep 2
before=$(qd oltp "SELECT coalesce(max(n), 0) FROM app.ledger")
qd postgres "SELECT pg_create_restore_point('before_the_mistake')" >/dev/null
after=$(qd oltp "SELECT coalesce(max(n), 0) FROM app.ledger")
sleep 2
kill $(jobs -p) 2>/dev/null || true
wait 2>/dev/null || true
qd oltp "DROP TABLE app.email_accounts CASCADE"
echo "  ok - the mistake: app.email_accounts dropped after the restore point"
lsn=$(qd postgres "SELECT pg_current_wal_lsn()")
qd postgres "SELECT pg_switch_wal()" >/dev/null
wait_for 20 "the WAL up to the mistake is archived" \
    qd postgres "SELECT last_archived_wal >= pg_walfile_name('$lsn') FROM pg_stat_archiver"
as_cluster_user "$FLOE_PG_BIN/pg_ctl" --pgdata="$PRIMARY/data" --mode=fast stop >/dev/null
echo "  ok - the primary is stopped (restores go to a new cluster)"

echo "# restore to the restore point"
RESTORED=$(mktemp -d /tmp/floe-cluster.XXXXXX)
FLOE_THROWAWAY_DIRS+=("$RESTORED")
own_dir "$RESTORED" 0700
rport=$(free_port)
t0=$(date +%s.%N)
as_cluster_user cp -a "$BACKUP/base" "$RESTORED/data"
{
    echo "port = $rport"
    echo "unix_socket_directories = '$RESTORED'"
    echo "archive_mode = off"
    echo "restore_command = 'cp $ARCH/%f %p'"
    echo "recovery_target_name = 'before_the_mistake'"
    echo "recovery_target_action = 'promote'"
} | as_cluster_user tee -a "$RESTORED/data/postgresql.conf" >/dev/null
as_cluster_user touch "$RESTORED/data/recovery.signal"
echo "$rport" >"$RESTORED/port"
cluster_start "$RESTORED"
export PGHOST=$RESTORED PGPORT=$rport
wait_for 120 "recovery reaches the restore point and promotes" qd postgres "SELECT NOT pg_is_in_recovery()"
restore_secs=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.1f", a - b }')
wait_for 10 "the schedulers start on the restored cluster" \
    qd postgres "SELECT count(DISTINCT datname) = 4 FROM pg_stat_activity WHERE backend_type = 'floe scheduler'"
echo "    restore time (copy $backup_size, replay the archived WAL to the point, promote): $restore_secs s"
echo "    (base backup under load: $backup_secs s)"

got=$(qd oltp "SELECT coalesce(max(n), 0) || ' ' || count(*) FROM app.ledger")
expect_eq "$(echo "$got" | awk -v b="$before" -v a="$after" '{ print ($1 >= b && $1 <= a && $2 == $1) ? "yes" : "no: " $0 }')" yes \
    "every ledger row committed before the point is there, none after ($before <= ${got% *} <= $after, no gap)"
expect_eq "$(qd oltp "SELECT to_regclass('app.email_accounts') IS NOT NULL")" t "the mistake is undone"
for db in oltp content queue olap; do
    wait_for 20 "$db: floe.health() all ok" qd "$db" "SELECT count(*) = 0 FROM floe.health() WHERE status <> 'ok' AND check_name <> 'queue.dead_letters'"
done
qd oltp "BEGIN; SELECT floe.set_tenant('$tenant'); INSERT INTO app.ledger (n, tenant_id) VALUES (-1, '$tenant'); COMMIT" >/dev/null
qd oltp "SELECT floe.audit_seal()" >/dev/null
expect_eq "$(qd oltp "SELECT string_agg(DISTINCT status, ',') FROM floe.verify_audit()")" ok "the audit chain verifies and continues"
expect_eq "$(qd oltp "SELECT count(*) FROM floe.audit_log WHERE table_name = 'ledger' AND op = 'INSERT'")" "$(qd oltp "BEGIN; SET LOCAL floe.tenant_admin = on; SELECT count(*) FROM app.ledger; COMMIT" | tail -1)" \
    "every committed ledger row has exactly one audit entry"
expect_eq "$(qd content "SELECT count(*) FROM floe.content c
    WHERE c.refs <> (SELECT count(*) FROM app.email_content e WHERE e.tenant_id = c.tenant AND e.body_hash = c.hash)")" 0 \
    "content reference counts equal the referencing rows"
expect_eq "$(qd content "BEGIN; SET LOCAL floe.tenant_admin = on; SELECT count(*) FROM app.email_content_with_body WHERE body IS NULL; COMMIT" | tail -1)" 0 \
    "every body reads back (and decodes to its hash)"
enq=$(qd queue "SELECT count(*) FROM (SELECT payload->>'n' FROM floe.queue_jobs j JOIN floe.queues q ON q.id = j.queue_id WHERE q.name = 'pitr'
    UNION ALL SELECT payload->>'n' FROM floe.queue_archive a JOIN floe.queues q ON q.id = a.queue_id WHERE q.name = 'pitr') x")
sleep 2.5
for _ in $(seq 1 50); do
    [ "$(qd queue "SELECT count(*) FROM (SELECT floe.complete(id, lease) FROM floe.dequeue('pitr', batch => 100)) d")" = 0 ] &&
        [ "$(qd queue "SELECT count(*) FROM floe.queue_jobs j JOIN floe.queues q ON q.id = j.queue_id WHERE q.name = 'pitr'")" = 0 ] && break
    sleep 0.5
done
expect_eq "$(qd queue "SELECT count(*) FILTER (WHERE a.state = 'completed') || ' ' || count(DISTINCT payload->>'n') || ' ' || max((payload->>'n')::int)
        || coalesce(' ' || string_agg(a.state || ' ' || (payload->>'n') || ' after ' || a.attempts, ', ') FILTER (WHERE a.state <> 'completed'), '')
    FROM floe.queue_archive a JOIN floe.queues q ON q.id = a.queue_id WHERE q.name = 'pitr'")" "$enq $enq $enq" \
    "each of the $enq jobs enqueued before the point completed exactly once (leases of the old cluster expired and were handed out again)"
