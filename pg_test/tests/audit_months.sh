#!/usr/bin/env bash
# The audit log's months over time: entries written in three months (the server's clock moved
# back for the first two), sealed; retention retires the oldest month and records it in
# floe.audit_retired, and verify_audit() and floe.health() stay ok. A month removed any other
# way is named: a hand DETACH or DROP is refused, and with the event triggers switched off a
# detached month is reported detached, a dropped one removed, health critical.
source "$(dirname "$0")/../lib/testlib.sh"

shim=$(mktemp -d /tmp/floe-clock.XXXXXX)
trap 'cluster_cleanup_all; rm -rf "$shim"' EXIT
chmod 0755 "$shim"
gcc -O2 -shared -fPIC -o "$shim/clockshift.so" "$(dirname "$0")/../lib/clockshift.c" -ldl
export FLOE_CLOCK_SHIM=$shim/clockshift.so

# The 15th, noon UTC, N months before this month: the server's clock for each phase.
months_back() { date -u -d "$(date -u +%Y-%m-15) 12:00 UTC -$1 months" +%s; }
clock_at() {
    FLOE_CLOCK_OFFSET=$(($1 - $(date +%s)))
    export FLOE_CLOCK_OFFSET
}
month_of() { date -u -d "@$1" +%Y-%m; }
old=$(months_back 4)
mid=$(months_back 2)
now=$(months_back 0)

clock_at "$old"
cluster_throwaway no
trap 'cluster_cleanup_all; rm -rf "$shim"' EXIT
make_test_db
expect_eq "$(q "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM')")" "$(month_of "$old")" \
    "the server's clock is in the month four back"
q "CREATE TABLE leads (id int PRIMARY KEY, score int)"
q "SELECT floe.enable_audit('leads')" >/dev/null

write_and_seal() {
    q "INSERT INTO leads SELECT g, 0 FROM generate_series($1, $1 + 9) g"
    q "UPDATE leads SET score = score + 1 WHERE id BETWEEN $1 AND $1 + 4"
    q "SELECT floe.audit_seal()" >/dev/null
}

echo "# entries in three months: four back, two back, this one (server restarted with each clock)"
write_and_seal 1
clock_at "$mid"
cluster_restart "$FLOE_TEST_DIR"
write_and_seal 101
unset FLOE_CLOCK_OFFSET
cluster_restart "$FLOE_TEST_DIR"
q "CALL floe.run_maintenance('floe.audit_log')"
write_and_seal 201
expect_eq "$(q "SELECT string_agg(to_char(month, 'YYYY-MM'), ',' ORDER BY month) FROM (SELECT DISTINCT month FROM floe.audit_seals) m")" \
    "$(month_of "$old"),$(month_of "$mid"),$(month_of "$now")" "sealed months"
expect_eq "$(q "SELECT string_agg(status, ',') FROM floe.verify_audit()")" "ok" "verify_audit: ok"

echo "# retention: three months, drop; the month four back is retired and recorded"
q "SELECT floe.set_retention('floe.audit_log', '3 months', 'drop')" >/dev/null
q "CALL floe.run_maintenance('floe.audit_log')"
expect_eq "$(q "SELECT to_char(month, 'YYYY-MM') || ' ' || entries || ' ' || retention || ' ' || retired_by FROM floe.audit_retired")" \
    "$(month_of "$old") 15 3 mons $FLOE_DB_SUPERUSER" "floe.audit_retired: the month, its 15 entries, the retention, who"
expect_eq "$(q "SELECT count(*) FROM floe.audit_log WHERE to_char(logged_at AT TIME ZONE 'UTC', 'YYYY-MM') = '$(month_of "$old")'")" \
    "0" "its entries left with it"
expect_match "$(q "SELECT status || ': ' || detail FROM floe.verify_audit()")" \
    '^ok: 30 entries in [0-9]+ seals checked \(15 more in months retired by retention\), 0 problems' \
    "verify_audit: ok, the retired month's entries counted as retired"
expect_eq "$(q "SELECT status FROM floe.health() WHERE check_name = 'audit.chain'")" "ok" "health: audit.chain ok"
q "SELECT floe.set_retention('floe.audit_log', NULL)" >/dev/null
expect_match "$(q "UPDATE floe.audit_retired SET entries = 0" 2>&1 || true)" \
    'append-only' "floe.audit_retired is append-only"

mid_part="floe.audit_log_$(date -u -d "@$mid" +%Y_%m)"
echo "# by hand: DETACH and DROP of a sealed month are refused"
expect_match "$(q "ALTER TABLE floe.audit_log DETACH PARTITION $mid_part" 2>&1 || true)" \
    'detaching it is refused' "DETACH refused"
expect_match "$(q "DROP TABLE $mid_part" 2>&1 || true)" 'dropping it is refused' "DROP refused"
expect_eq "$(q "SELECT string_agg(status, ',') FROM floe.verify_audit()")" "ok" "nothing changed"

expect_match "$(q "ALTER TABLE floe.audit_log DETACH PARTITION floe.audit_log_default" 2>&1 || true)" \
    'detaching it is refused' "DETACH of the default partition refused (DETACH CONCURRENTLY cannot run: the log has a default partition)"

echo "# event triggers switched off (a superuser can): a detached month is reported detached"
q "ALTER EVENT TRIGGER floe_audit_on_ddl DISABLE; ALTER TABLE floe.audit_log DETACH PARTITION $mid_part; ALTER EVENT TRIGGER floe_audit_on_ddl ENABLE"
expect_match "$(q "SELECT status || ': ' || detail FROM floe.verify_audit() WHERE entry_id IS NULL ORDER BY status LIMIT 1")" \
    "^detached: the log's month $(month_of "$mid") \(15 sealed entries of this table\) was detached" \
    "verify_audit: the month is reported detached"
expect_match "$(q "SELECT status || ': ' || detail FROM floe.health() WHERE check_name = 'audit.chain'")" \
    "^critical: .*$(month_of "$mid") \(detached\)" "health: audit.chain critical, naming the month"

echo "# and a month dropped by hand is reported removed"
now_part="floe.audit_log_$(date -u -d "@$now" +%Y_%m)"
q "ALTER EVENT TRIGGER floe_audit_on_drop DISABLE; DROP TABLE $now_part; ALTER EVENT TRIGGER floe_audit_on_drop ENABLE"
expect_match "$(q "SELECT string_agg(status, ',' ORDER BY status) FROM floe.verify_audit() WHERE entry_id IS NULL")" \
    '^detached,removed,tampered$' "verify_audit: one month detached, one removed, the table tampered"
expect_match "$(q "SELECT detail FROM floe.health() WHERE check_name = 'audit.chain'")" \
    "$(month_of "$now") \(dropped\)" "health names the dropped month"
