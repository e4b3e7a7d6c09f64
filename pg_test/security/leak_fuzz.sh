#!/usr/bin/env bash
# The tenant leak fuzzer: the reference platform's OLTP tier (sql/examples/oltp.sql) with three
# tenants whose every text value carries the tenant's marker word, jobs in a floe queue,
# bodies in the content store and per-tenant content policies; then several thousand random
# statements (pg_test/security/leak_fuzz.py: joins, CTEs, unions, aggregates, window
# functions, COPY, cursors, RETURNING writes, EXPLAIN, tablesample, floe's views and
# functions, tenant switches inside a transaction) as the application role platform_app, each
# in its own transaction under one tenant's context, set from that tenant's signed token
# (platform_app is restricted to tokens). In everything psql prints (rows, errors,
# notices) no other tenant's marker may appear, nor another tenant's uuid where the statement
# did not name it; prepared statements and held cursors made under one tenant and run under
# another show only the tenant they run for; and the data are as seeded afterwards.
source "$(dirname "$0")/../lib/testlib.sh"

SEED=${FLOE_FUZZ_SEED:-20261205}
PER_FILE=${FLOE_FUZZ_STATEMENTS:-600}
T=(00000000-0000-4000-8000-0000000000a1 00000000-0000-4000-8000-0000000000b2 00000000-0000-4000-8000-0000000000c3)
M=(Kappa7 Sigma3 Omega9)

if [ "${FLOE_FUZZ_CITUS:-no}" = yes ]; then
    # Pointed at a Citus coordinator (pg_test/citus/leak_fuzz.sh): the same tables,
    # distributed by tenant_id (pg_test/citus/platform.sql), two workers behind.
    source "$(dirname "$0")/../lib/citus.sh"
    citus_cluster
    schema=$(dirname "$0")/../citus/platform.sql
    echo "# on Citus, floe.citus_tenant_routing = ${FLOE_FUZZ_ROUTING:-on}"
else
    cluster_throwaway no
    make_test_db
    schema=$(dirname "$0")/../../sql/examples/oltp.sql
fi
work=$(mktemp -d /tmp/floe-fuzz.XXXXXX)
trap 'cluster_cleanup_all; rm -rf "$work"' EXIT
"$FLOE_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$FLOE_TEST_DB" \
    -c "SET client_min_messages = warning" -f "$schema" >/dev/null

tenants_values="('${T[0]}', '${M[0]}'), ('${T[1]}', '${M[1]}'), ('${T[2]}', '${M[2]}')"
"$FLOE_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$FLOE_TEST_DB" >/dev/null <<SQL
BEGIN;
SET LOCAL citus.propagate_set_commands = 'local';
SET LOCAL floe.tenant_admin = on;
CREATE TEMP TABLE tm (id uuid, m text);
INSERT INTO tm VALUES $tenants_values;
INSERT INTO app.tenants (id, name, plan) SELECT id, m || ' Inc', 'growth' FROM tm;
INSERT INTO app.users (tenant_id, email, name)
SELECT id, 'user' || g || '.' || m || '@mail.example', 'User ' || m || ' ' || g FROM tm, generate_series(1, 20) g;
INSERT INTO app.companies (tenant_id, name, domain)
SELECT id, 'Company ' || m || ' ' || g, lower(m) || g || '.example' FROM tm, generate_series(1, 20) g;
INSERT INTO app.campaigns (tenant_id, name) SELECT id, 'Campaign ' || m || ' ' || g FROM tm, generate_series(1, 5) g;
INSERT INTO app.leads (tenant_id, company_id, campaign_id, email, name)
SELECT c.tenant_id, c.id, (SELECT min(k.id) FROM app.campaigns k WHERE k.tenant_id = c.tenant_id),
       'lead' || c.id || '.' || tm.m || '@mail.example', 'Lead ' || tm.m || ' ' || c.id
  FROM app.companies c JOIN tm ON tm.id = c.tenant_id;
INSERT INTO app.email_accounts (tenant_id, address, provider)
SELECT id, 'box' || g || '.' || m || '@mail.example', 'smtp-' || m FROM tm, generate_series(1, 5) g;
SELECT floe.set_content_policy(id, warm_after => '2 days') FROM tm;
SELECT floe.content_put('a body of ' || m || ' number ' || g, id) FROM tm, generate_series(1, 5) g;
COMMIT;
CREATE ROLE fuzz_queue;
GRANT fuzz_queue TO platform_app;
SET ROLE fuzz_queue;
SELECT floe.create_queue('fuzz');
SELECT floe.enqueue('fuzz', jsonb_build_object('for', m, 'n', g), tenant => id)
  FROM (VALUES $tenants_values) t(i, m), LATERAL (SELECT i::uuid AS id) u, generate_series(1, 10) g;
SELECT floe.complete(id) FROM floe.dequeue('fuzz', 6);
RESET ROLE;
SQL

counts() { # rows per tenant and table, as the owner in admin mode (one statement per -c:
    # Citus forwards a SET LOCAL's whole query string to the workers)
    "$FLOE_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$FLOE_TEST_DB" -c "BEGIN" \
        -c "SET LOCAL citus.propagate_set_commands = 'local'" -c "SET LOCAL floe.tenant_admin = on" \
        -c "SELECT string_agg(format('%s:%s', t, n), ' ' ORDER BY t) FROM (
         SELECT 'users-' || tenant_id AS t, count(*) AS n FROM app.users GROUP BY 1
         UNION ALL SELECT 'companies-' || tenant_id, count(*) FROM app.companies GROUP BY 1
         UNION ALL SELECT 'leads-' || tenant_id, count(*) FROM app.leads GROUP BY 1
         UNION ALL SELECT 'accounts-' || tenant_id, count(*) FROM app.email_accounts GROUP BY 1
         UNION ALL SELECT 'jobs', count(*) FROM floe.queue_jobs) s" -c "COMMIT" | tail -n 1
}
before=$(counts)

# platform_app opens a tenant only with the tenant's signed token: the attack statements
# that name another tenant's uuid (set_tenant, SET LOCAL of the variable) must fail.
q "SELECT floe.require_tenant_token('platform_app')" >/dev/null
if [ "${FLOE_FUZZ_ROUTING:-on}" = off ]; then
    # The workers' policies alone judge every statement (every shard is asked).
    q "ALTER ROLE platform_app SET floe.citus_tenant_routing = off" >/dev/null
fi
tokens=()
for t in "${T[@]}"; do tokens+=("$(q "SELECT floe.mint_tenant_token('$t', '1 hour')")"); done
# A token of another database (its own keys, its name in the MAC) opens nothing here.
qd postgres "CREATE DATABASE other_tier" >/dev/null
qd other_tier "CREATE EXTENSION floe" >/dev/null
foreign_token=$(qd other_tier "SELECT floe.mint_tenant_token('${T[0]}', '1 hour')")
expect_match "$(q "SET ROLE platform_app; BEGIN; SELECT floe.set_tenant_token('$foreign_token'); COMMIT" 2>&1 || true)" \
    "key 1 is not a key of this database|signature does not match" \
    "a token minted by another database is refused (42501, floe.bad_token)"
python3 "$(dirname "$0")/leak_fuzz.py" "$work" "$SEED" "$PER_FILE" "$(IFS=,; echo "${T[*]}")" \
    "$(IFS=,; echo "${tokens[*]}")"
statements=$(cat "$work"/t*.sql | grep -c '^ROLLBACK;$')
echo "# seed $SEED: $statements statements as platform_app over 3 tenants, and the switch phase"
for f in "$work"/t*.sql "$work"/switch.sql; do
    "$FLOE_PG_BIN/psql" -X -q -v ON_ERROR_STOP=0 -d "$FLOE_TEST_DB" -f "$f" >"${f%.sql}.out" 2>&1 || true
done

leaks=0
own_seen=0
check_file() { # out-file tenant-index check-uuids(yes|no)
    local out=$1 i=$2 uuids=$3 j
    for j in 0 1 2; do
        if [ "$j" -eq "$i" ]; then
            n=$(grep -c -- "${M[$j]}" "$out" || true)
            own_seen=$((own_seen + n))
            continue
        fi
        if grep -q -- "${M[$j]}" "$out"; then
            echo "not ok - $(basename "$out"): tenant $((j + 1))'s marker ${M[$j]} in tenant $((i + 1))'s output:" >&2
            grep -m 3 -- "${M[$j]}" "$out" >&2
            leaks=$((leaks + 1))
        fi
        if [ "$uuids" = yes ] && grep -q -- "${T[$j]}" "$out"; then
            echo "not ok - $(basename "$out"): tenant $((j + 1))'s uuid in tenant $((i + 1))'s output:" >&2
            grep -m 3 -- "${T[$j]}" "$out" >&2
            leaks=$((leaks + 1))
        fi
    done
}
for i in 0 1 2; do
    check_file "$work/t$((i + 1))_blind.out" "$i" yes
    check_file "$work/t$((i + 1))_named.out" "$i" no
done
# The switch phase: split at the \echo lines, each part checked for the tenant it ran for.
awk -v dir="$work" '/^==tenant [0-9]==$/ { n = substr($2, 1, 1); next } n { print > (dir "/switch_" n ".part") }' \
    "$work/switch.out"
for i in 0 1 2; do
    [ -s "$work/switch_$((i + 1)).part" ] || fail "the switch phase printed nothing for tenant $((i + 1))"
    check_file "$work/switch_$((i + 1)).part" "$i" yes
done

errors=$(cat "$work"/*.out | grep -c 'ERROR:' || true)
token_refusals=$(cat "$work"/t*_named.out | grep -c 'must set its tenant with floe.set_tenant_token' || true)
echo "  ($errors statements refused, $token_refusals of them attempts to switch to another tenant without its token; $own_seen own-tenant values read back)"
[ "$token_refusals" -gt 10 ] || fail "only $token_refusals tenant switches by uuid were tried and refused"
echo "  ok - every switch to another tenant by its uuid alone was refused"
expect_eq "$(cat "$work"/t*_blind.out | grep -c 'must set its tenant' || true)" 0 \
    "the tenant's own token opened its context in every transaction"
expect_eq "$leaks" 0 "no other tenant's value or uuid in any result, error or notice"
[ "$own_seen" -gt 1000 ] || fail "the fuzzer read only $own_seen own-tenant values: it tests nothing"
echo "  ok - each tenant read its own rows ($own_seen values)"
expect_eq "$(cat "$work"/*.out | grep -c -E 'XX000|internal error|panicked' || true)" 0 \
    "no statement ended in an internal error"
expect_eq "$(counts)" "$before" "every tenant's data as seeded (the writes that went through were their own, rolled back)"
