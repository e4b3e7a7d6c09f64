#!/usr/bin/env bash
# The calendar edge itself, on a preloaded cluster (scheduler workers running) whose clock
# was moved by pg_test/calendar.sh to 30 s before FLOE_CALENDAR_BOUNDARY (a UTC instant on an
# hour: the turn of a year, a month, a day, or a DST switch in the servers' TimeZone):
#   - partitions: a row written 0.1 s before the boundary and one 0.1 s after land in the
#     partitions whose bounds hold them (monthly and daily sets), never in the default;
#     premake made the partition after the boundary before it was needed, and maintenance
#     after it premakes the next ones
#   - audit: the entries on both sides land in their own month's log partition, and after a
#     seal the chain verifies across the boundary
#   - queue: the dequeue key is run_at + tier * aging_step on both sides (no jump of an hour
#     at a DST switch), so a background job enqueued before the boundary still overtakes a
#     normal job enqueued after it, as aging promises
#   - scheduler: cron jobs fire exactly once at the boundary when it matches them, never
#     before it, and not at all when it does not; cron is UTC, so '0 2 * * *' is due at 02:00
#     UTC whatever the TimeZone (on DST days too)
source "$(dirname "$0")/../lib/testlib.sh"

B=${FLOE_CALENDAR_BOUNDARY:?set FLOE_CALENDAR_BOUNDARY to a UTC instant, e.g. 2028-01-01 00:00:00+00}
cluster_throwaway yes
make_test_db
on_timeout() {
    q "SELECT now(), current_setting('TimeZone')"
    q "SELECT job_name, status, started_at FROM floe.job_runs WHERE NOT job_name LIKE 'floe.%' ORDER BY runid"
}

bq() { q "SELECT $1 FROM (SELECT '$B'::timestamptz AS b) s"; }
expect_eq "$(bq "now() BETWEEN b - interval '60 seconds' AND b - interval '10 seconds'")" t \
    "the server's clock is just before $B (now $(q "SELECT now()"), TimeZone $(q "SHOW TimeZone"))"
wait_for 10 "the scheduler worker runs on the same moved clock" \
    q "SELECT count(*) = 1 AND bool_and(backend_start > '$B'::timestamptz - interval '90 seconds')
         FROM pg_stat_activity WHERE backend_type = 'floe scheduler' AND datname = current_database()"

q "CREATE SCHEMA edge;
   CREATE TABLE edge.monthly (at timestamptz NOT NULL, note text) PARTITION BY RANGE (at);
   CREATE TABLE edge.daily (at timestamptz NOT NULL, note text) PARTITION BY RANGE (at);
   CREATE TABLE edge.ledger (id int PRIMARY KEY, at timestamptz NOT NULL, note text);" >/dev/null
q "SELECT floe.create_parent('edge.monthly', 'at', premake => 1)" >/dev/null
q "SELECT floe.create_parent('edge.daily', 'at', part_interval => '1 day', premake => 1)" >/dev/null
q "SELECT floe.enable_audit('edge.ledger')" >/dev/null
q "SELECT floe.create_queue('edge', aging_step => '10 seconds')" >/dev/null
# A background job waiting from well before the boundary (key: run_at + 4 * 10 s).
q "SELECT floe.enqueue('edge', '{\"n\": \"background, before\"}', 'background', run_at => '$B'::timestamptz - interval '25 seconds')" >/dev/null
for job in "hourly|0 * * * *" "midnight|0 0 * * *" "first_of_month|0 0 1 * *" "one_utc|0 1 * * *" "two_utc|0 2 * * *"; do
    q "SELECT floe.schedule('${job%%|*}', '${job#*|}', 'SELECT 1')" >/dev/null
done

# The partition holding an instant exists before it is needed, in each set.
holds() {
    q "SELECT count(*) FROM floe.partitions('$1') p
        WHERE NOT p.is_default
          AND trim(both '''' FROM p.lower_bound)::timestamptz <= '$B'::timestamptz + interval '$2'
          AND '$B'::timestamptz + interval '$2' < trim(both '''' FROM p.upper_bound)::timestamptz"
}
for set in edge.monthly edge.daily floe.audit_log floe.queue_archive; do
    expect_eq "$(holds $set '0 seconds')" 1 "$set: the partition after the boundary exists before it (premake)"
done
expect_eq "$(bq "now() < b")" t "set-up finished before the boundary"

# Writes 2 s before and 2 s after the boundary, each in its own transaction (2 s, not less:
# psql may stall between its sleep and reading the clock). The three rows of a write share
# one instant, read once right after the sleep: a stall of the busy machine in the middle of
# a write cannot put its rows on different sides of the boundary.
write_at() {
    echo "SELECT pg_sleep_until('$B'::timestamptz + interval '$1');
SELECT clock_timestamp() AS at \gset
BEGIN;
INSERT INTO edge.monthly VALUES (:'at', '$2');
INSERT INTO edge.daily VALUES (:'at', '$2');
INSERT INTO edge.ledger VALUES ($3, :'at', '$2');
SELECT floe.enqueue('edge', '{\"n\": \"normal, $2\"}');
COMMIT;"
}
{ write_at '-2 seconds' before 1; write_at '2 seconds' after 2; } |
    "$FLOE_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$FLOE_TEST_DB" >/dev/null
expect_eq "$(q "SELECT string_agg(note || ':' || (at < '$B'::timestamptz), ',' ORDER BY at) FROM edge.ledger")" \
    "before:true,after:false" "one write on each side of the boundary"

# Each row in a non-default partition whose bounds hold it; two partitions exactly when the
# period changed at the boundary.
placed() {
    local set=$1 period=$2
    q "SELECT bool_and(NOT p.is_default AND trim(both '''' FROM p.lower_bound)::timestamptz <= r.at
                       AND r.at < trim(both '''' FROM p.upper_bound)::timestamptz)
              AND (count(DISTINCT r.tableoid) = 2) = (date_trunc('$period', min(r.at) AT TIME ZONE 'UTC')
                                                      <> date_trunc('$period', max(r.at) AT TIME ZONE 'UTC'))
              AND count(*) = 2
         FROM (SELECT tableoid, at FROM $set) r
         JOIN floe.partitions('$set') p ON p.partition = r.tableoid"
}
for s in "edge.monthly|month" "edge.daily|day"; do
    expect_eq "$(placed "${s%%|*}" "${s#*|}")" t \
        "${s%%|*}: each write in its own period's partition ($(q "SELECT string_agg(DISTINCT tableoid::regclass::text, ' ') FROM ${s%%|*}"))"
done
expect_eq "$(q "SELECT coalesce(sum(row_count), 0) FROM floe.check_default()")" 0 "no row in a default partition"

# Audit: the log partition of each entry holds its logged_at; the chain verifies.
expect_eq "$(q "SELECT bool_and(NOT p.is_default AND trim(both '''' FROM p.lower_bound)::timestamptz <= l.logged_at
                                 AND l.logged_at < trim(both '''' FROM p.upper_bound)::timestamptz)
                        AND count(*) = 2
                   FROM floe.audit_log l JOIN floe.partitions('floe.audit_log') p ON p.partition = l.tableoid
                  WHERE l.table_name = 'ledger'")" t \
    "audit entries in their month's log partition ($(q "SELECT string_agg(tableoid::regclass::text, ' ' ORDER BY id) FROM floe.audit_log WHERE table_name = 'ledger'"))"
# Seal until both entries are in (a seal takes what is below every running transaction's xid).
sealed() {
    q "SELECT floe.audit_seal()" >/dev/null
    q "SELECT detail LIKE '%; 0 entries not sealed yet' FROM floe.verify_audit() WHERE table_name = 'edge.ledger'"
}
wait_for 15 "both entries sealed" sealed
expect_eq "$(q "SELECT string_agg(status, ',') FROM floe.verify_audit() WHERE table_name = 'edge.ledger'")" ok \
    "the audit chain verifies across the boundary"
expect_eq "$(q "SELECT count(*) FROM floe.audit_seals s WHERE s.relid = 'edge.ledger'::regclass")" \
    "$(q "SELECT count(DISTINCT date_trunc('month', logged_at AT TIME ZONE 'UTC')) FROM floe.audit_log WHERE table_name = 'ledger'")" \
    "one seal per month the entries fall in"

# Queue: keys are run_at + tier * step on both sides; aging carries over the boundary.
expect_eq "$(q "SELECT bool_and(sort_key - run_at = interval '10 seconds' * array_position(ARRAY['critical', 'high', 'normal', 'low', 'background'], priority) - interval '10 seconds')
                   FROM floe.queued_jobs WHERE queue = 'edge'")" t "queue keys are run_at + tier * aging_step on both sides"
expect_eq "$(q "SELECT string_agg(payload->>'n', ',' ORDER BY ord) FROM floe.dequeue('edge', 3) WITH ORDINALITY AS d(id, payload, priority, tenant, attempt, ord)")" \
    "background, before,normal, before,normal, after" \
    "dequeue order: the background job waiting since 25 s before the edge (2 tiers aged) ahead of both normal jobs"

# Scheduler: what each cron job must do at this boundary (cron is UTC).
wait_for 20 "the cron jobs due at the boundary ran" \
    q "SELECT count(*) = (SELECT 1 + (extract(hour FROM b AT TIME ZONE 'UTC') = 0)::int
                                 + (extract(hour FROM b AT TIME ZONE 'UTC') = 0 AND extract(day FROM b AT TIME ZONE 'UTC') = 1)::int
                                 + (extract(hour FROM b AT TIME ZONE 'UTC') = 1)::int
                            FROM (SELECT '$B'::timestamptz AS b) s)
         FROM floe.job_runs WHERE job_name IN ('hourly', 'midnight', 'first_of_month', 'one_utc', 'two_utc') AND status = 'succeeded'"
# Let another scheduler round or two pass: a job fired twice would show now.
q "SELECT pg_sleep(3)" >/dev/null
runs() { q "SELECT count(*) FROM floe.job_runs WHERE job_name = '$1'"; }
expect_eq "$(runs hourly)" 1 "'0 * * * *' fired once"
expect_eq "$(runs midnight)" "$(bq "(extract(hour FROM b AT TIME ZONE 'UTC') = 0)::int")" "'0 0 * * *' fired once at 00:00 UTC, else not"
expect_eq "$(runs first_of_month)" "$(bq "(extract(hour FROM b AT TIME ZONE 'UTC') = 0 AND extract(day FROM b AT TIME ZONE 'UTC') = 1)::int")" \
    "'0 0 1 * *' fired once at the turn of the month, else not"
expect_eq "$(runs one_utc)" "$(bq "(extract(hour FROM b AT TIME ZONE 'UTC') = 1)::int")" "'0 1 * * *' fired once at 01:00 UTC, else not"
expect_eq "$(runs two_utc)" 0 "'0 2 * * *' did not fire"
expect_eq "$(q "SELECT bool_and(started_at >= '$B'::timestamptz) FROM floe.job_runs WHERE NOT job_name LIKE 'floe.%'")" t \
    "no cron job started before the boundary"
expect_eq "$(q "SELECT next_run = date_trunc('day', '$B'::timestamptz AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' + interval '2 hours' FROM floe.jobs WHERE name = 'two_utc'")" t \
    "'0 2 * * *' is next due at 02:00 UTC (in TimeZone $(q "SHOW TimeZone"): $(q "SELECT next_run FROM floe.jobs WHERE name = 'two_utc'"))"
expect_eq "$(q "SELECT next_run = '$B'::timestamptz + interval '1 hour' FROM floe.jobs WHERE name = 'hourly'")" t \
    "'0 * * * *' is next due an hour after the boundary"

# Maintenance after the boundary premakes from the new date and moves nothing to a default.
q "CALL floe.run_maintenance()"
for set in edge.monthly floe.audit_log; do
    expect_eq "$(holds $set '1 month')" 1 "$set: maintenance after the boundary premade the next month"
done
expect_eq "$(holds edge.daily '1 day')" 1 "edge.daily: maintenance after the boundary premade the next day"
expect_eq "$(q "SELECT coalesce(sum(row_count), 0) FROM floe.check_default()")" 0 "still no row in a default partition"
problems=$(q "SELECT string_agg(check_name || '=' || status || ': ' || detail, '; ') FROM floe.health('warn')")
expect_eq "$problems" "" "floe.health() all ok after the boundary"
