#!/usr/bin/env bash
# Cross-tier references (issue #26), checked: the enforce trigger (23503 naming the key and
# the target, one remote query per statement, the session cache, tenants kept apart, updates
# checked on changed keys only, COPY), a target that cannot be reached (reject: 08001 and no
# row; allow: the row and a queued key), concurrent writers, the check-not-a-lock window, the
# scan (exactly the planted orphans, counted independently; paged and resumed; first_seen kept;
# resolved orphans removed; an unreachable target changes nothing), health, repair (dry run,
# null, delete, archive, audited, resolved keys, unreachable), hostile names, bad input, and
# DROP TABLE taking its references along.
source "$(dirname "$0")/../lib/testlib.sh"

cluster_throwaway no
T1=00000000-0000-0000-0000-000000000001
T2=00000000-0000-0000-0000-000000000002
qd postgres "CREATE DATABASE oltp"
qd postgres "CREATE DATABASE content"
# Tenant 1 has leads 1..200, tenant 2 leads 1..50: the same ids, other tenants.
qd oltp "CREATE SCHEMA app;
         CREATE TABLE app.leads (tenant_id uuid NOT NULL, id bigint NOT NULL, email text, PRIMARY KEY (tenant_id, id));
         INSERT INTO app.leads SELECT '$T1', g, 'l' || g FROM generate_series(1, 200) g;
         INSERT INTO app.leads SELECT '$T2', g, 'l' || g FROM generate_series(1, 50) g;
         CREATE TABLE app.\"Odd \"\"Leads\" (tenant_id uuid NOT NULL, \"Lead Id\" text NOT NULL, PRIMARY KEY (tenant_id, \"Lead Id\"));
         INSERT INTO app.\"Odd \"\"Leads\" VALUES ('$T1', 'a''b'), ('$T1', 'x y');
         CREATE TABLE app.countries (tenant_id uuid NOT NULL, code char(2) NOT NULL, PRIMARY KEY (tenant_id, code));
         INSERT INTO app.countries SELECT '$T1', c FROM unnest('{US,UK,UA,UY,DE,DK}'::text[]) c;
         CREATE TABLE app.regions (tenant_id uuid NOT NULL, code char(2) NOT NULL, PRIMARY KEY (tenant_id, code));
         ALTER DATABASE oltp SET log_statement = 'all'"
down_port=$(free_port)
qd content "CREATE EXTENSION floe; CREATE EXTENSION postgres_fdw;
            CREATE SERVER tier_oltp FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '$PGHOST', port '$PGPORT', dbname 'oltp');
            CREATE USER MAPPING FOR CURRENT_USER SERVER tier_oltp OPTIONS (user '$FLOE_DB_SUPERUSER');
            CREATE SCHEMA app;
            CREATE TABLE app.email_messages (tenant_id uuid NOT NULL, id bigserial PRIMARY KEY, lead_id bigint, note text);
            CREATE INDEX ON app.email_messages (tenant_id, lead_id);
            CREATE ROLE writer; GRANT USAGE ON SCHEMA app TO writer;
            GRANT INSERT, UPDATE, SELECT ON app.email_messages TO writer; GRANT USAGE ON SEQUENCE app.email_messages_id_seq TO writer;
            -- an independent view of the target, for counting orphans without floe
            CREATE SCHEMA truth;
            IMPORT FOREIGN SCHEMA app LIMIT TO (leads) FROM SERVER tier_oltp INTO truth"
c() { qd content "$@"; }
# The queries the target received that read app.leads (log_statement = all on oltp).
remote_reads() { grep -c 'FROM app.leads WHERE' "$FLOE_TEST_DIR/postgres.log" || true; }
# refused WHAT SQLSTATE PATTERN SQL: the statement fails with SQLSTATE and a message matching.
refused() {
    local what=$1 state=$2 pattern=$3 sql=$4 out
    if out=$("$FLOE_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -d content -c "$sql" 2>&1); then
        fail "$what: accepted ($out)"
    fi
    expect_match "$out" "ERROR:  $state: " "$what: SQLSTATE $state"
    expect_match "$out" "$pattern" "$what: the message names it"
}
messages() { c "SELECT count(*) FROM app.email_messages"; }

echo "# enforce: a statement's keys checked against the target"
id=$(c "SELECT floe.declare_reference('app.email_messages', '{lead_id}', 'tier_oltp', 'app.leads', '{id}', mode => 'enforce')")
expect_eq "$(c "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'app.email_messages'::regclass AND tgname LIKE 'floe_reference_${id}_%'")" "2" \
    "enforce mode: an insert and an update trigger"
c "INSERT INTO app.email_messages (tenant_id, lead_id) VALUES ('$T1', 5)"
expect_eq "$(messages)" "1" "a key the target has: accepted"
refused "a key the target lacks" 23503 "key \(tenant_id, lead_id\)=\($T1, 500\) is not present in app.leads on server tier_oltp" \
    "INSERT INTO app.email_messages (tenant_id, lead_id) VALUES ('$T1', 500)"
refused "another tenant's key" 23503 "\($T2, 80\) is not present" \
    "INSERT INTO app.email_messages (tenant_id, lead_id) VALUES ('$T2', 80)"
refused "one bad key among many" 23503 "\($T1, 999\)" \
    "INSERT INTO app.email_messages (tenant_id, lead_id) SELECT '$T1'::uuid, g FROM generate_series(1, 150) g UNION ALL SELECT '$T1', 999"
expect_eq "$(messages)" "1" "refused statements left no row"
before=$(remote_reads)
c "INSERT INTO app.email_messages (tenant_id, lead_id) SELECT '$T1'::uuid, g FROM generate_series(1, 200) g
   UNION ALL SELECT '$T2', g FROM generate_series(1, 50) g UNION ALL SELECT '$T1', 7"
expect_eq "$(messages)/$(( $(remote_reads) - before ))" "252/1" "251 rows of 250 distinct keys: accepted with one query to the target"
before=$(remote_reads)
c "SET floe.reference_cache_size = 0; INSERT INTO app.email_messages (tenant_id, lead_id) VALUES ('$T1', 8), ('$T1', 9)"
c "INSERT INTO app.email_messages (tenant_id, lead_id, note) VALUES ('$T1', 8, NULL), ('$T1', NULL, 'no lead')"
expect_eq "$(( $(remote_reads) - before ))" "2" "each statement asks once (no cache), NULL keys are not asked"
before=$(remote_reads)
c "INSERT INTO app.email_messages (tenant_id, lead_id) VALUES ('$T1', 8); INSERT INTO app.email_messages (tenant_id, lead_id) VALUES ('$T1', 8)"
expect_eq "$(( $(remote_reads) - before ))" "1" "a session asks for a key once within the cache's TTL"
before=$(remote_reads)
c "SET floe.reference_cache_ttl = 0; INSERT INTO app.email_messages (tenant_id, lead_id) VALUES ('$T1', 8); INSERT INTO app.email_messages (tenant_id, lead_id) VALUES ('$T1', 8)"
expect_eq "$(( $(remote_reads) - before ))" "2" "with a TTL of 0 it asks every time"
refused "an update to a missing key" 23503 "\($T1, 201\)" "UPDATE app.email_messages SET lead_id = 201 WHERE lead_id = 5"
qd oltp "DELETE FROM app.leads WHERE tenant_id = '$T1' AND id = 7"
c "UPDATE app.email_messages SET note = 'kept' WHERE lead_id = 7"
echo "  ok - an update leaving a (now dangling) key unchanged is not checked, as a foreign key's"
qd oltp "INSERT INTO app.leads VALUES ('$T1', 7, 'back')"
out=$(printf '%s\t%s\n' "$T1" 3 "$T1" 404 | "$FLOE_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -d content \
        -c "COPY app.email_messages (tenant_id, lead_id) FROM STDIN" 2>&1) && fail "COPY of a missing key accepted"
expect_match "$out" "23503: .*\($T1, 404\)" "COPY is checked too"
refused "the writer's own rights apply" 42501 "permission denied for table email_messages" \
    "SET ROLE writer; DELETE FROM app.email_messages"
c "SET ROLE writer; INSERT INTO app.email_messages (tenant_id, lead_id) VALUES ('$T2', 50)"
echo "  ok - a writer with no user mapping and no rights on floe's tables is checked (as floe's owner)"
refused "the writer's missing key" 23503 "\($T2, 51\)" "SET ROLE writer; INSERT INTO app.email_messages (tenant_id, lead_id) VALUES ('$T2', 51)"

echo "# concurrent writers: every bad key refused, every good one kept"
rows_before=$(messages)
for w in 1 2 3 4; do
    (
        for i in $(seq 1 25); do
            qd content "INSERT INTO app.email_messages (tenant_id, lead_id, note) VALUES ('$T1', $(( (w * 25 + i) % 200 + 1 )), 'w$w')" >/dev/null
            if qd content "INSERT INTO app.email_messages (tenant_id, lead_id, note) VALUES ('$T1', $(( 1000 + w * 25 + i )), 'bad')" >/dev/null 2>&1; then
                echo "accepted"
            fi
        done
    ) >"$FLOE_TEST_DIR/writer$w.out" &
done
wait
expect_eq "$(cat "$FLOE_TEST_DIR"/writer?.out | wc -l)/$(( $(messages) - rows_before ))/$(c "SELECT count(*) FROM app.email_messages WHERE note = 'bad'")" "0/100/0" \
    "4 writers x 25: 100 good rows in, 100 bad ones refused"

echo "# a check, not a lock: a target row deleted between check and commit"
coproc W { "$FLOE_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d content; }
w_pid=$W_PID   # (bash unsets W_PID once the coprocess has ended)
echo "BEGIN; INSERT INTO app.email_messages (tenant_id, lead_id, note) VALUES ('$T1', 150, 'race'); SELECT 'checked';" >&"${W[1]}"
read -r said <&"${W[0]}"
expect_eq "$said" "checked" "the insert passed its check"
qd oltp "DELETE FROM app.leads WHERE tenant_id = '$T1' AND id = 150"
echo "COMMIT; SELECT 'committed';" >&"${W[1]}"
read -r said <&"${W[0]}"
echo "\\q" >&"${W[1]}"
wait "$w_pid" 2>/dev/null || true
expect_eq "$said/$(c "SELECT count(*) FROM app.email_messages WHERE lead_id = 150 AND note = 'race'")" "committed/1" \
    "the target row was deleted after the check: the row is committed (no lock across databases); the scan finds it below"

echo "# the scan finds exactly the planted orphans"
c "INSERT INTO app.email_messages (tenant_id, lead_id, note) SELECT '$T1', g % 149 + 1, 'bulk' FROM generate_series(1, 3000) g" >/dev/null
# plant: leads 11..40 of tenant 1 and 1..5 of tenant 2 disappear from the target
qd oltp "DELETE FROM app.leads WHERE (tenant_id = '$T1' AND id BETWEEN 11 AND 40) OR (tenant_id = '$T2' AND id <= 5)"
truth() {
    c "SELECT count(DISTINCT (m.tenant_id, m.lead_id)) || '/' || count(*) FROM app.email_messages m
        WHERE m.lead_id IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM truth.leads l WHERE l.tenant_id = m.tenant_id AND l.id = m.lead_id)"
}
found() { c "SELECT count(*) || '/' || COALESCE(sum(rows), 0) FROM floe.reference_orphans WHERE reference_id = $id"; }
expected=$(truth)
[ "${expected%%/*}" -ge 36 ] || fail "the plant did not take: $expected"
runs=0
while :; do
    runs=$((runs + 1))
    done_=$(c "SELECT pass_complete FROM floe.scan_references('app.email_messages', page_size => 40, max_pages => 2)")
    [ "$done_" = t ] && break
    [ $runs -lt 50 ] || fail "the pass did not end in 50 runs"
done
[ $runs -gt 1 ] || fail "the pass ended in one run of 2 pages: the paging was not exercised"
echo "  ok - the pass took $runs runs of 2 pages of 40 keys, resuming each time"
expect_eq "$(found)" "$expected" "orphan keys/rows recorded = an independent anti-join's ($expected)"
expect_eq "$(c "SELECT count(*) FROM floe.reference_orphans WHERE reference_id = $id AND key = ARRAY['$T1', '150']")" "1" \
    "the row let through by the race is among them"
first=$(c "SELECT first_seen FROM floe.reference_orphans WHERE key = ARRAY['$T1', '11']")
qd oltp "INSERT INTO app.leads SELECT '$T1', g, 'back' FROM generate_series(31, 40) g"
c "SELECT pass_complete FROM floe.scan_references('app.email_messages', page_size => 1000)" >/dev/null
expected=$(truth)
expect_eq "$(found)" "$expected" "a second pass: orphans whose lead came back are gone ($expected left)"
expect_eq "$(c "SELECT first_seen FROM floe.reference_orphans WHERE key = ARRAY['$T1', '11']")" "$first" "first_seen is kept across passes"
expect_eq "$(c "SELECT check_name || ': ' || status FROM floe.health() WHERE check_name = 'references.orphans'")" "references.orphans: warn" \
    "health warns of the orphans"
expect_match "$(c "SELECT detail FROM floe.health() WHERE check_name = 'references.orphans'")" \
    "app.email_messages \(lead_id\) -> app.leads on server tier_oltp: ${expected%%/*} key\(s\), ${expected##*/} row\(s\)" "and counts them"

echo "# a target that cannot be reached"
c "ALTER SERVER tier_oltp OPTIONS (SET port '$down_port')"
rows_before=$(messages)
refused "reject: the write fails" 08001 "cannot check reference app.email_messages \(lead_id\) -> app.leads on server tier_oltp: its target cannot be reached" \
    "INSERT INTO app.email_messages (tenant_id, lead_id) VALUES ('$T1', 177)"
expect_eq "$(messages)" "$rows_before" "and left no row"
orphans_before=$(found)
expect_match "$(c "SELECT pass_complete || ' ' || error FROM floe.scan_references('app.email_messages')")" "^false could not connect to server" \
    "the scan reports the connection failure"
expect_eq "$(found)" "$orphans_before" "and records or removes nothing"
expect_match "$(c "SELECT status || ': ' || detail FROM floe.health() WHERE check_name = 'references.scan'")" "^warn: .*the last scan failed: could not connect" \
    "health reports the failed scan"
refused "repair needs the target" 08001 "cannot repair reference .*could not confirm the orphans" \
    "SELECT * FROM floe.repair_references('app.email_messages', action => 'delete', dry_run => false)"
expect_eq "$(messages)/$(found)" "$rows_before/$orphans_before" "repair changed nothing"
c "SELECT floe.declare_reference('app.email_messages', '{lead_id}', 'tier_oltp', 'app.leads', '{id}', mode => 'enforce', on_unreachable => 'allow')" >/dev/null 2>&1 \
    && fail "declared while the target is down" || echo "  ok - declaring needs the target (it reads its unique indexes)"
c "SET ROLE writer; UPDATE floe.declared_references SET on_unreachable = 'allow' WHERE id = $id" 2>/dev/null && fail "floe.declared_references is writable" || true
c "ALTER SERVER tier_oltp OPTIONS (SET port '$PGPORT')"
c "SELECT floe.declare_reference('app.email_messages', '{lead_id}', 'tier_oltp', 'app.leads', '{id}', mode => 'enforce', on_unreachable => 'allow')" >/dev/null
c "ALTER SERVER tier_oltp OPTIONS (SET port '$down_port')"
c "INSERT INTO app.email_messages (tenant_id, lead_id, note) VALUES ('$T1', 177, 'outage'), ('$T1', 901, 'outage')"
expect_eq "$(c "SELECT string_agg(key[2], ',' ORDER BY key[2]) FROM floe.reference_pending WHERE reference_id = $id")" "177,901" \
    "allow: the rows are written and their keys queued"
expect_match "$(c "SELECT detail FROM floe.health() WHERE check_name = 'references.scan'")" "2 key\(s\) written while the target was unreachable" \
    "health counts the queued keys"
c "ALTER SERVER tier_oltp OPTIONS (SET port '$PGPORT')"
c "SELECT pass_complete FROM floe.scan_references('app.email_messages')" >/dev/null
expect_eq "$(c "SELECT count(*) FROM floe.reference_pending")/$(c "SELECT count(*) FROM floe.reference_orphans WHERE key IN (ARRAY['$T1', '177'], ARRAY['$T1', '901'])")" "0/1" \
    "the next scan checks them: 901 is an orphan, 177 is not"
expect_eq "$(c "SELECT status FROM floe.health() WHERE check_name = 'references.scan'")" "ok" "health is ok again"

echo "# repair"
expected=$(truth)
expect_eq "$(c "SELECT count(*) || '/' || sum(rows) FROM floe.repair_references('app.email_messages')")" "$expected" \
    "report (the default) lists the recorded orphans"
rows_before=$(messages)
expect_eq "$(c "SELECT string_agg(DISTINCT action, ',') || ' ' || bool_or(applied) || ' ' || sum(rows) FROM floe.repair_references('app.email_messages', action => 'delete')")" \
    "delete false ${expected##*/}" "delete is a dry run by default: the rows it would delete"
expect_eq "$(messages)/$(found)" "$rows_before/$expected" "and nothing changed"
c "SELECT floe.enable_audit('app.email_messages')" >/dev/null
qd oltp "INSERT INTO app.leads VALUES ('$T2', 1, 'back')"
back_rows=$(c "SELECT count(*) FROM app.email_messages WHERE tenant_id = '$T2' AND lead_id = 1")
[ "$back_rows" -gt 0 ] || fail "no row of ($T2, 1) to test a resolved key with"
to_archive=$(( ${expected##*/} - back_rows ))
expect_eq "$(c "SELECT string_agg(action || ':' || rows || ':' || applied, ' ' ORDER BY action)
                 FROM (SELECT action, sum(rows) AS rows, bool_and(applied) AS applied
                         FROM floe.repair_references('app.email_messages', action => 'archive', dry_run => false, batch_size => 7)
                        GROUP BY action) a")" "archive:$to_archive:true resolved:0:true" \
    "archive: the target is asked again; the key whose lead came back is resolved, the others' rows archived"
expect_eq "$(messages)" "$(( rows_before - to_archive ))" "the archived rows left the table"
expect_eq "$(c "SELECT count(*) FROM floe.reference_archive WHERE reference_id = $id AND table_name = 'app.email_messages' AND row_data ? 'lead_id'")" "$to_archive" \
    "and are in floe.reference_archive, whole"
expect_eq "$(c "SELECT count(*) FROM floe.audit_log WHERE table_name = 'email_messages' AND op = 'DELETE'")" "$to_archive" \
    "the audit log has a DELETE entry for each"
expect_eq "$(found)" "0/0" "no orphan is left recorded"

qd oltp "DELETE FROM app.leads WHERE tenant_id = '$T1' AND id BETWEEN 41 AND 45"
c "SELECT floe.scan_references('app.email_messages')" >/dev/null
n_null=$(c "SELECT count(*) FROM app.email_messages WHERE tenant_id = '$T1' AND lead_id BETWEEN 41 AND 45")
nulls_before=$(c "SELECT count(*) FROM app.email_messages WHERE lead_id IS NULL")
expect_eq "$(c "SELECT sum(rows) FROM floe.repair_references('app.email_messages', action => 'null', dry_run => false)")" "$n_null" "null: the rows' references cleared"
expect_eq "$(c "SELECT count(*) FROM app.email_messages WHERE lead_id IS NULL")" "$(( nulls_before + n_null ))" "exactly those rows lost their lead"
qd oltp "DELETE FROM app.leads WHERE tenant_id = '$T1' AND id BETWEEN 46 AND 47"
c "SELECT floe.scan_references('app.email_messages')" >/dev/null
n_del=$(c "SELECT count(*) FROM app.email_messages WHERE tenant_id = '$T1' AND lead_id BETWEEN 46 AND 47")
rows_before=$(messages)
expect_eq "$(c "SELECT sum(rows) FROM floe.repair_references('app.email_messages', action => 'delete', dry_run => false)")" "$n_del" "delete: the rows deleted"
expect_eq "$(messages)/$(found)" "$(( rows_before - n_del ))/0/0" "exactly those"

echo "# a char(2) key (its type is bpchar in casts, not char(1))"
c "CREATE TABLE app.visits (tenant_id uuid NOT NULL, country char(2)); CREATE INDEX ON app.visits (tenant_id, country)"
cid=$(c "SELECT floe.declare_reference('app.visits', '{country}', 'tier_oltp', 'app.countries', '{code}', mode => 'enforce')")
c "INSERT INTO app.visits SELECT '$T1', c FROM unnest('{US,UK,UA,UY,DE,DK,US}'::text[]) c"
echo "  ok - keys of two characters sharing their first one are accepted"
refused "a missing two-character key" 23503 "\\($T1, UZ\\)" "INSERT INTO app.visits VALUES ('$T1', 'UZ')"
qd oltp "DELETE FROM app.countries WHERE code IN ('UA', 'DK')"
runs=0
while [ "$(c "SELECT pass_complete FROM floe.scan_references('app.visits', page_size => 1, max_pages => 2)")" != t ]; do
    runs=$((runs + 1)); [ $runs -lt 20 ] || fail "the char(2) pass did not end"
done
expect_eq "$(c "SELECT string_agg(key[2] || ':' || rows, ',' ORDER BY key[2]) FROM floe.reference_orphans WHERE reference_id = $cid")" "DK:1,UA:1" \
    "a scan in pages of one key finds exactly the two orphans"
c "SELECT floe.declare_reference('app.visits', '{country}', 'tier_oltp', 'app.regions', '{code}')" >/dev/null
expect_eq "$(c "SELECT count(*) FROM floe.reference_orphans WHERE reference_id = $cid")/$(c "SELECT count(*) FROM floe.reference_scans WHERE reference_id = $cid")" "0/0" \
    "declared again over another target: its orphans and scan state start afresh"
expect_eq "$(c "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'app.visits'::regclass AND tgname LIKE 'floe_reference_%'")" "0" \
    "and back in scan mode, without triggers"

echo "# one scan of a reference at a time"
coproc S { "$FLOE_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d content; }
s_pid=$S_PID
echo "BEGIN; SELECT pages > 0 FROM floe.scan_references('app.visits');" >&"${S[1]}"
read -r said <&"${S[0]}"
expect_eq "$said" "t" "a scan in an open transaction"
expect_eq "$(c "SELECT pages || ' ' || error FROM floe.scan_references('app.visits')")" "0 another scan of this reference is running; this one skipped it" \
    "a second scan meanwhile skips the reference"
echo "COMMIT;" >&"${S[1]}"
echo "\\q" >&"${S[1]}"
wait "$s_pid" 2>/dev/null || true

echo "# floe's user mapping is not lent"
c "CREATE ROLE owner2; GRANT CREATE, USAGE ON SCHEMA app TO owner2; SET ROLE owner2; CREATE TABLE app.owned2 (tenant_id uuid NOT NULL, lead_id bigint)"
refused "a server the caller may not use" 42501 "permission denied for foreign server tier_oltp" \
    "SET ROLE owner2; SELECT floe.declare_reference('app.owned2', '{lead_id}', 'tier_oltp', 'app.leads', '{id}')"
c "GRANT USAGE ON FOREIGN SERVER tier_oltp TO owner2"
c "SET ROLE owner2; SELECT floe.declare_reference('app.owned2', '{lead_id}', 'tier_oltp', 'app.leads', '{id}', mode => 'enforce')" >/dev/null
echo "  ok - with USAGE on the server, its tables' owner declares (and needs no user mapping)"
refused "placing floe's trigger by hand" 42501 "permission denied for function (floe\.)?reference_check" \
    "SET ROLE owner2; CREATE TRIGGER spy AFTER INSERT ON app.owned2 REFERENCING NEW TABLE AS n FOR EACH STATEMENT EXECUTE FUNCTION floe.reference_check('$id')"
c "CREATE TABLE app.elsewhere (tenant_id uuid NOT NULL, lead_id bigint);
   CREATE TRIGGER spy AFTER INSERT ON app.elsewhere REFERENCING NEW TABLE AS n FOR EACH STATEMENT EXECUTE FUNCTION floe.reference_check('$id')"
refused "floe's trigger on another table than its reference's" 42P17 "on another table than app.email_messages" \
    "INSERT INTO app.elsewhere VALUES ('$T1', 1)"

echo "# hostile names"
c "CREATE TABLE app.\"Mail \"\"Box\" (tenant_id uuid NOT NULL, \"Lead Id\" text)"
hid=$(c "SELECT floe.declare_reference('app.\"Mail \"\"Box\"', ARRAY['Lead Id']::name[], 'tier_oltp', 'app.\"Odd \"\"Leads\"', ARRAY['Lead Id']::name[], mode => 'enforce')")
c "INSERT INTO app.\"Mail \"\"Box\" VALUES ('$T1', 'a''b'), ('$T1', 'x y')"
refused "a missing key of a hostile table" 23503 "\(tenant_id, Lead Id\)=\($T1, a'b; DROP TABLE x\)" \
    "INSERT INTO app.\"Mail \"\"Box\" VALUES ('$T1', 'a''b; DROP TABLE x')"
qd oltp "DELETE FROM app.\"Odd \"\"Leads\" WHERE \"Lead Id\" = 'x y'"
c "SELECT floe.scan_references('app.\"Mail \"\"Box\"')" >/dev/null
expect_eq "$(c "SELECT key[2] FROM floe.reference_orphans WHERE reference_id = $hid")" "x y" "the scan quotes them too"
expect_eq "$(c "SELECT rows FROM floe.repair_references('app.\"Mail \"\"Box\"', action => 'delete', dry_run => false)")/$(c "SELECT count(*) FROM app.\"Mail \"\"Box\"")" "1/1" \
    "and the repair"

echo "# bad input"
refused "an unknown action" 22023 "'report', 'null', 'delete' or 'archive'" "SELECT * FROM floe.repair_references('app.email_messages', action => 'nuke')"
refused "a table without references" 42704 'reference "?on table app.nothing_here' \
    "CREATE TABLE app.nothing_here (id int); SELECT * FROM floe.repair_references('app.nothing_here')"
refused "repair by a non-owner" 42501 "must be owner of table app.email_messages" \
    "SET ROLE writer; SELECT * FROM floe.repair_references('app.email_messages')"
refused "scan by a non-owner" 42501 "must be owner of table app.email_messages" \
    "SET ROLE writer; SELECT * FROM floe.scan_references('app.email_messages')"
refused "a page size of 0" 22023 "page_size" "SELECT * FROM floe.scan_references(page_size => 0)"
refused "a batch size of 0" 22023 "batch_size" "SELECT * FROM floe.repair_references('app.email_messages', batch_size => 0)"
c "ALTER TABLE app.email_messages RENAME COLUMN lead_id TO lead"
refused "a column renamed since the declaration" 42703 'lead_id' "INSERT INTO app.email_messages (tenant_id, lead) VALUES ('$T1', 1)"
c "ALTER TABLE app.email_messages RENAME COLUMN lead TO lead_id"

echo "# the built-in job and DROP TABLE"
expect_eq "$(c "SELECT schedule || ' ' || command FROM floe.jobs WHERE name = 'floe.reference_scan'")" "1 minute SELECT pg_catalog.count(*) FROM floe.scan_references()" \
    "floe.reference_scan runs every minute"
c "SET ROLE writer; UPDATE floe.reference_scans SET last_pass_completed = now() WHERE reference_id = $id" 2>/dev/null && fail "reference_scans writable" || true
expect_eq "$(c "SELECT count(*) FROM floe.scan_references() WHERE reference_id = $id")" "0" "a reference scanned within the interval is not due"
c "DROP TABLE app.email_messages"
expect_eq "$(c "SELECT count(*) FROM floe.declared_references WHERE id = $id")/$(c "SELECT count(*) FROM floe.reference_scans WHERE reference_id = $id")/$(c "SELECT to_regclass('floe.reference_${id}_target') IS NULL")" \
    "0/0/t" "DROP TABLE takes the reference, its scan state and its foreign table along"
