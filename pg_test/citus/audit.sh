#!/usr/bin/env bash
# Auditing Citus tables (issue #25, item 4): `floe.enable_audit()` on the coordinator; the
# triggers Citus copies to the shards carry the table's settings; an entry is written on the
# node holding the changed row, in the change's own transaction, naming the table (not the
# shard); each node's scheduler seals its own chain; `floe.verify_audit()` on the coordinator
# checks every node's; one redaction key on every node.
source "$(dirname "$0")/../lib/citus.sh"

citus_cluster
"$FLOE_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$FLOE_TEST_DB" -f "$(dirname "$0")/platform.sql" >/dev/null
T1=00000000-0000-0000-0000-000000000001
T2=00000000-0000-0000-0000-000000000002
# The worker (1 or 2) holding a tenant's shard of app.leads.
node_of() {
    local port
    port=$(qc "SELECT nodeport FROM citus_shards
                WHERE shardid = get_shard_id_for_distribution_column('app.leads', '$1'::uuid)")
    [ "$port" = "${CITUS_PORTS[1]}" ] && echo 1 || echo 2
}
entries() { qn "$1" "SELECT count(*) FROM floe.audit_log WHERE schema_name = 'app' AND table_name = '$2'"; }
as_admin "INSERT INTO app.tenants (id, name) VALUES ('$T1', 'one'), ('$T2', 'two')" >/dev/null
N1=$(node_of $T1)
N2=$(node_of $T2)
[ "$N1" != "$N2" ] || fail "the fixture wants T1 and T2 on different workers (both on worker $N1)"

echo "# enable_audit on a distributed table"
qc "SELECT floe.enable_audit('app.leads', redact => '{email}', classification => '{gdpr}')" >/dev/null
expect_eq "$(qn "$N1" "SET citus.override_table_visibility = off; SELECT DISTINCT pg_get_triggerdef(t.oid) LIKE '%audit_trigger(''citus'', ''[\"email\"]'', ''[\"gdpr\"]'')'
                        FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                       WHERE c.relname LIKE 'leads\_%' AND t.tgfoid = 'floe.audit_trigger'::regproc")" "t" \
    "the shards' triggers carry the table's settings"
expect_eq "$(qc "SELECT count(*) FROM floe.audit_key k, run_command_on_workers('SELECT encode(key, ''hex'') FROM floe.audit_key') w
                  WHERE w.success AND w.result = encode(k.key, 'hex')")" "2" "both workers hold the coordinator's redaction key"

echo "# the application's changes, logged where the rows are"
as_tenant $T1 -c "INSERT INTO app.leads (email, name) VALUES ('same@x', 'A'), ('b@x', 'B')" \
    -c "UPDATE app.leads SET name = 'AA' WHERE email = 'same@x'" -c "DELETE FROM app.leads WHERE email = 'b@x'" >/dev/null
as_tenant $T2 -c "INSERT INTO app.leads (email, name) VALUES ('same@x', 'C')" >/dev/null
expect_eq "$(qn "$N1" "SELECT string_agg(op || ':' || tenant, ',' ORDER BY id) FROM floe.audit_log WHERE table_name = 'leads'")" \
    "INSERT:$T1,INSERT:$T1,UPDATE:$T1,DELETE:$T1" "T1's four changes on its worker, with its tenant"
expect_eq "$(qn "$N2" "SELECT string_agg(op || ':' || tenant, ',' ORDER BY id) FROM floe.audit_log WHERE table_name = 'leads'")" \
    "INSERT:$T2" "T2's insert on the other worker"
expect_eq "$(entries 0 leads)" "0" "nothing on the coordinator (it holds no shard of app.leads)"
expect_eq "$(qn "$N1" "SELECT count(*) FROM floe.audit_log WHERE table_name LIKE 'leads\_%'")" "0" "entries name the table, not the shard"
expect_eq "$(qn "$N1" "SELECT DISTINCT actor::text || ' ' || classification::text FROM floe.audit_log")" "platform_app {gdpr}" \
    "the application's role and the table's classification"
expect_eq "$(qn "$N1" "SELECT old_values->>'name' || '>' || (new_values->>'name') FROM floe.audit_log WHERE op = 'UPDATE'")" "A>AA" \
    "the update's changed column"
same1=$(qn "$N1" "SELECT new_values->>'email' FROM floe.audit_log WHERE op = 'INSERT' AND pk->>'id' = (SELECT min((pk->>'id')::int)::text FROM floe.audit_log)")
same2=$(qn "$N2" "SELECT new_values->>'email' FROM floe.audit_log WHERE op = 'INSERT'")
expect_match "$same1" "^blake3:" "the email is redacted"
expect_eq "$same2" "$same1" "the same email reads the same, redacted, on both workers (one key)"
for n in 0 1 2; do
    expect_eq "$(qn $n "SELECT count(*) FROM floe.audit_log WHERE new_values::text LIKE '%same@x%' OR old_values::text LIKE '%same@x%'")" "0" \
        "no plain email in node $n's log"
done

echo "# atomic with the change"
if as_tenant $T1 -c "INSERT INTO app.leads (email, name) VALUES ('gone@x', 'G')" -c "SELECT 1/0" >/dev/null 2>&1; then
    fail "the failing transaction committed"
fi
expect_eq "$(entries "$N1" leads)" "4" "a rolled-back change leaves no entry"
as_admin "UPDATE app.leads SET score = score + 1" >/dev/null
expect_eq "$(entries "$N1" leads)/$(entries "$N2" leads)" "5/2" \
    "one multi-shard UPDATE (admin mode): an entry on each node, in its one distributed transaction"

echo "# sealed by each node's scheduler, verified from the coordinator"
wait_for 90 "worker 1's scheduler sealed its entries" qw1 "SELECT count(*) > 0 FROM floe.audit_seals"
wait_for 90 "worker 2's scheduler sealed its entries" qw2 "SELECT count(*) > 0 FROM floe.audit_seals"
qn 1 "SELECT floe.audit_seal()" >/dev/null
qn 2 "SELECT floe.audit_seal()" >/dev/null
verify=$(qc "SELECT table_name || ' ' || status FROM floe.verify_audit()" | LC_ALL=C sort)
expect_eq "$verify" "$(printf '%s\n' "app.leads ok" "app.leads @ 127.0.0.1:${CITUS_PORTS[1]} ok" \
    "app.leads @ 127.0.0.1:${CITUS_PORTS[2]} ok" | LC_ALL=C sort)" "verify_audit() on the coordinator: its own chain and each worker's, ok"

qn "$N1" "ALTER TABLE floe.audit_log DISABLE TRIGGER floe_append_only;
          UPDATE floe.audit_log SET actor = 'mallory' WHERE op = 'DELETE';
          ALTER TABLE floe.audit_log ENABLE ALWAYS TRIGGER floe_append_only" >/dev/null
out=$(qc "SELECT table_name || ' ' || status FROM floe.verify_audit() WHERE status <> 'ok'")
expect_match "$out" "app.leads @ 127.0.0.1:${CITUS_PORTS[$N1]} altered" "an entry altered on a worker is named, with the worker"
expect_match "$out" "app.leads @ 127.0.0.1:${CITUS_PORTS[$N1]} tampered" "the worker's chain is tampered"
expect_eq "$(qn "$N1" "SELECT status FROM floe.health() WHERE check_name = 'audit.chain'")" "critical" \
    "the worker's own health says so"

echo "# a reference table: every node logs its copy"
qc "SELECT floe.enable_audit('app.tenants')" >/dev/null
as_admin "UPDATE app.tenants SET name = 'uno' WHERE id = '$T1'" >/dev/null
expect_eq "$(entries 0 tenants)/$(entries 1 tenants)/$(entries 2 tenants)" "1/1/1" \
    "one entry on each node holding a copy (coordinator and both workers)"

echo "# a distributed partitioned table; TRUNCATE"
qc "CREATE TABLE app.events (tenant_id uuid NOT NULL, id int NOT NULL, at timestamptz NOT NULL,
                             PRIMARY KEY (tenant_id, id, at)) PARTITION BY RANGE (at);
    CREATE TABLE app.events_2026 PARTITION OF app.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
    SELECT create_distributed_table('app.events', 'tenant_id', colocate_with => 'none', shard_count => 4);
    SELECT floe.enable_audit('app.events')" >/dev/null
qc "INSERT INTO app.events VALUES ('$T1', 1, '2026-06-01'), ('$T2', 2, '2026-06-01')" >/dev/null
expect_eq "$(($(entries 1 events) + $(entries 2 events)))" "2" "a row written into a partition's shard is logged under the partitioned table"
qc "TRUNCATE app.events" >/dev/null
expect_eq "$(qc "SELECT string_agg(table_name || ' ' || op, ',') FROM floe.audit_log WHERE op = 'TRUNCATE'")" "events TRUNCATE" \
    "TRUNCATE: one entry, on the coordinator (Citus truncates the shards from the table's own trigger)"
expect_eq "$(qc "SELECT string_agg(w.result, ',') FROM run_command_on_workers(\$\$SELECT count(*) FROM floe.audit_log WHERE op = 'TRUNCATE'\$\$) w")" \
    "0,0" "none on the workers"

echo "# a table audited before it was distributed"
qc "CREATE TABLE app.notes (tenant_id uuid NOT NULL, id int NOT NULL, body text, PRIMARY KEY (tenant_id, id));
    SELECT floe.enable_audit('app.notes')" >/dev/null
qc "SET citus.enable_unsafe_triggers = on; SELECT create_distributed_table('app.notes', 'tenant_id', colocate_with => 'app.companies')" >/dev/null
if out=$(qc "INSERT INTO app.notes VALUES ('$T1', 1, 'x')" 2>&1); then fail "a write went unlogged: $out"; fi
expect_match "$out" "app.notes was audited before it was distributed" "a write there is refused (fail closed), naming the table"
expect_match "$out" "floe.enable_audit\('app.notes'\)" "and the call that fixes it"
qc "SELECT floe.enable_audit('app.notes')" >/dev/null
qc "INSERT INTO app.notes VALUES ('$T1', 1, 'x')" >/dev/null
expect_eq "$(entries "$N1" notes)" "1" "after enable_audit again, logged on the shard's node"

echo "# bad input"
shard=$(qw1 "SET citus.override_table_visibility = off; SELECT relname FROM pg_class WHERE relname LIKE 'leads\_%' AND relkind = 'r' LIMIT 1")
if out=$(qw1 "SELECT floe.enable_audit('app.$shard')" 2>&1); then fail "a shard was audited: $out"; fi
expect_match "$out" "not a Citus shard: call it on the coordinator for the distributed table app.leads" "a shard's name is refused"
qc "CREATE TABLE public.plain (id int PRIMARY KEY)" >/dev/null
qc "CREATE TRIGGER forged AFTER INSERT ON public.plain FOR EACH ROW EXECUTE FUNCTION floe.audit_trigger('citus', '[]', '[]')" >/dev/null
if out=$(qc "INSERT INTO public.plain VALUES (1)" 2>&1); then fail "a hand-made trigger wrote an entry: $out"; fi
expect_match "$out" "is not audited: it is not a shard of a Citus table" "Citus arguments on a table Citus does not know: refused"
qc "CREATE OR REPLACE TRIGGER forged AFTER INSERT ON public.plain FOR EACH ROW EXECUTE FUNCTION floe.audit_trigger('citus', 'x')" >/dev/null
if out=$(qc "INSERT INTO public.plain VALUES (1)" 2>&1); then fail "malformed arguments were accepted: $out"; fi
expect_match "$out" "its trigger has unexpected arguments" "malformed trigger arguments: refused"
expect_eq "$(qc "SELECT string_agg(table_name, ',' ORDER BY id) FROM floe.audit_log")" "tenants,events" \
    "nothing written by either (the coordinator's log: the tenants update, the TRUNCATE)"

echo "# a shard moved to the other worker"
shard=$(qc "SELECT get_shard_id_for_distribution_column('app.leads', '$T1'::uuid)")
before=$(entries "$N2" leads)
qc "SELECT citus_move_shard_placement($shard, '127.0.0.1', ${CITUS_PORTS[$N1]}, '127.0.0.1', ${CITUS_PORTS[$N2]},
                                      shard_transfer_mode => 'block_writes')" >/dev/null
expect_eq "$(entries "$N2" leads)" "$before" "the moved rows are not logged again (Citus copies them without firing triggers)"
as_tenant $T1 -c "UPDATE app.leads SET name = 'moved' WHERE email = 'same@x'" >/dev/null
expect_eq "$(qn "$N2" "SELECT count(*) FROM floe.audit_log WHERE table_name = 'leads' AND tenant = '$T1' AND new_values->>'name' = 'moved'")" "1" \
    "T1's next change is logged on the shard's new node"

echo "# disable_audit"
qc "SELECT floe.disable_audit('app.leads')" >/dev/null
expect_eq "$(qc "SELECT string_agg(w.result, ',') FROM run_command_on_workers(\$\$SELECT count(*) FROM floe.audit_tables WHERE relid = 'app.leads'::regclass\$\$) w")" \
    "0,0" "the workers' registry rows are gone"
before=$(entries "$N2" leads)
as_tenant $T1 -c "INSERT INTO app.leads (email, name) VALUES ('late@x', 'L')" >/dev/null
expect_eq "$(entries "$N2" leads)" "$before" "changes are no longer logged (on the node that now holds T1's shard)"
expect_eq "$(qn "$N2" "SELECT status FROM floe.health() WHERE check_name = 'audit.capture'")" "ok" "the workers' health: no audited table without its triggers"
