#!/usr/bin/env bash
# Tenant isolation on Citus (issue #25, items 1 and 2): a coordinator and two workers, floe
# created on the coordinator and propagated, the reference platform's OLTP tables
# distributed by tenant_id (pg_test/citus/platform.sql). As the application role through the
# coordinator, with the tenant set by floe.set_tenant(): reads, writes, joins, multi-shard
# aggregates and COPY see and touch only that tenant's rows; without a tenant, nothing; a
# query without a tenant filter is routed to the tenant's one shard (Task Count 1).
source "$(dirname "$0")/../lib/citus.sh"

citus_cluster
echo "# floe on every node"
version=$(qc "SELECT extversion FROM pg_extension WHERE extname = 'floe'")
for n in 1 2; do
    expect_eq "$(qn $n "SELECT extversion FROM pg_extension WHERE extname = 'floe'")" "$version" \
        "worker $n has floe $version (propagated from the coordinator)"
done

echo "# the platform distributed and isolated (both orders)"
"$FLOE_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$FLOE_TEST_DB" -f "$(dirname "$0")/platform.sql" >/dev/null
expect_eq "$(qc "SELECT string_agg(logicalrelid::text || ':' || partmethod::text, ',' ORDER BY logicalrelid::text) FROM pg_dist_partition")" \
    "app.campaigns:h,app.companies:h,app.email_accounts:h,app.leads:h,app.tenants:n,app.users:h" "distributed as planned"
expect_eq "$(qc "SELECT count(*) FROM floe.tenant_tables")" "6" "six tables isolated"
for n in 1 2; do
    expect_match "$(qn $n "SET citus.override_table_visibility TO off; SELECT count(*) FROM pg_policies WHERE policyname = 'floe_tenant_isolation' AND tablename LIKE 'leads\_%'")" \
        "^[1-9][0-9]*$" "worker $n: the shards of leads carry floe's policy"
done

echo "# 4 tenants x 100 leads"
as_admin "INSERT INTO app.tenants (id, name, domain)
    SELECT ('00000000-0000-0000-0000-00000000000' || g)::uuid, 'tenant ' || g, 't' || g || '.example'
      FROM generate_series(1, 4) g" >/dev/null
as_admin "INSERT INTO app.companies (tenant_id, name, domain)
    SELECT t.id, 'co ' || c, 'co' || c || '.example' FROM app.tenants t, generate_series(1, 5) c" >/dev/null
as_admin "INSERT INTO app.leads (tenant_id, company_id, email, name)
    SELECT c.tenant_id, c.id, 'l' || g || '@' || c.domain, 'lead ' || g
      FROM app.companies c, generate_series(1, 20) g" >/dev/null
T1=00000000-0000-0000-0000-000000000001
T2=00000000-0000-0000-0000-000000000002

# as_app TENANT SQL: one transaction as platform_app through the coordinator.
as_app() {
    local tenant=$1
    shift
    as_tenant "$tenant" -c "$*"
}

echo "# reads"
expect_eq "$(as_app $T1 "SELECT count(*) FROM app.leads")" "100" "a tenant sees its 100 leads"
expect_eq "$(as_app $T1 "SELECT count(DISTINCT tenant_id) FROM app.leads")" "1" "and only its own"
expect_eq "$(as_app $T1 "SELECT count(*) FROM app.leads l JOIN app.companies c USING (tenant_id) WHERE c.id = l.company_id")" \
    "100" "a join of co-located tables"
expect_eq "$(as_app $T1 "SELECT count(*) FROM app.leads l JOIN app.tenants t ON t.id = l.tenant_id")" "100" \
    "a join with the reference table"
expect_eq "$(as_app $T1 "SELECT string_agg(DISTINCT t.name, ',') FROM app.tenants t")" "tenant 1" \
    "the tenants reference table shows its own row"
expect_eq "$(as_app $T1 "SELECT count(*) FROM app.leads WHERE tenant_id = '$T2'")" "0" \
    "naming another tenant finds nothing"

echo "# routing: no tenant filter, one shard"
plan=$(as_app $T1 "EXPLAIN (COSTS OFF) SELECT count(*) FROM app.leads WHERE status = 'new'")
expect_match "$plan" "Task Count: 1" "a tenant-scoped query without a tenant filter goes to one shard"

echo "# writes"
expect_eq "$(as_app $T1 "WITH u AS (UPDATE app.leads SET score = score + 1 RETURNING tenant_id) SELECT count(*) FROM u")" \
    "100" "UPDATE touches the tenant's 100 rows"
expect_eq "$(as_admin "SELECT count(*) FILTER (WHERE score = 1) || '/' || count(*) FROM app.leads")" "100/400" \
    "no other tenant's row was updated"
expect_eq "$(as_app $T1 "INSERT INTO app.leads (tenant_id, email, name) VALUES ('$T1', 'new@t1.example', 'new') RETURNING tenant_id")" \
    "$T1" "INSERT of the tenant's row"
if out=$(as_app $T1 "INSERT INTO app.leads (tenant_id, email, name) VALUES ('$T2', 'x@t2.example', 'x')" 2>&1); then
    fail "an INSERT for another tenant went through: $out"
fi
expect_match "$out" "new row for app.leads belongs to another tenant" \
    "an INSERT for another tenant is refused, naming the table (not the shard)"
expect_eq "$(as_app $T1 "INSERT INTO app.leads (email, name) VALUES ('filled@t1.example', 'f') RETURNING tenant_id")" \
    "$T1" "an INSERT without the tenant column gets the current tenant (as the guard fills it on one node)"
expect_eq "$(as_app $T1 "INSERT INTO app.leads (email, name) SELECT 'bulk' || g || '@t1.example', 'b' FROM generate_series(1, 3) g RETURNING tenant_id" | sort -u)" \
    "$T1" "INSERT ... SELECT without the tenant column too"
expect_eq "$(as_admin "SELECT count(*) FROM app.leads WHERE email LIKE 'bulk%' OR email LIKE 'filled%'")" "4" \
    "the filled rows are stored as the tenant's"
as_admin "DELETE FROM app.leads WHERE email LIKE 'bulk%' OR email LIKE 'filled%'" >/dev/null
expect_eq "$(as_app $T1 "WITH d AS (DELETE FROM app.leads WHERE email = 'new@t1.example' RETURNING 1) SELECT count(*) FROM d")" \
    "1" "DELETE of the tenant's row"
expect_eq "$(as_app $T1 "WITH d AS (DELETE FROM app.leads WHERE tenant_id = '$T2' RETURNING 1) SELECT count(*) FROM d")" \
    "0" "a DELETE naming another tenant deletes nothing"

echo "# fail closed"
if out=$("$FLOE_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -U platform_app -d "$FLOE_TEST_DB" \
    -c "SELECT count(*) FROM app.leads" 2>&1); then
    fail "no tenant, yet rows: $out"
fi
expect_match "$out" "no tenant is set" "no tenant: refused with floe's error"

echo "# COPY"
expect_eq "$(as_app $T1 "COPY app.leads (tenant_id) TO STDOUT" | sort | uniq -c | awk '{print $1 " " $2}')" "100 $T1" \
    "COPY table TO STDOUT: the tenant's 100 rows, no other"
expect_eq "$(as_app $T1 "COPY (SELECT tenant_id FROM app.leads) TO STDOUT" | sort -u)" "$T1" "COPY (query) TO STDOUT"
if out=$(printf '%s,c@t1.example,c\n' "$T1" | "$FLOE_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -U platform_app -d "$FLOE_TEST_DB" \
    -c "BEGIN" -c "SELECT floe.set_tenant('$T1')" -c "COPY app.leads (tenant_id, email, name) FROM STDIN (FORMAT csv)" 2>&1); then
    fail "COPY FROM into an isolated table went through: $out"
fi
expect_match "$out" "COPY FROM not supported with row-level security" "COPY FROM is refused, as on one node"

echo "# multi-shard: floe.citus_tenant_routing off"
multi() {
    "$FLOE_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -U platform_app -d "$FLOE_TEST_DB" -c "BEGIN" \
        -c "SELECT floe.set_tenant('$1') IS NULL" -c "$2" -c "COMMIT" | sed '1d'
}
qc "ALTER ROLE platform_app SET floe.citus_tenant_routing = off" >/dev/null
expect_match "$(multi $T1 "EXPLAIN (COSTS OFF) SELECT count(*) FROM app.leads")" "Task Count: 32" \
    "without routing the query goes to all 32 shards"
expect_eq "$(multi $T1 "SELECT count(*) || '/' || count(DISTINCT tenant_id) FROM app.leads")" "100/1" \
    "and the workers' policies return the tenant's rows only"
expect_eq "$(multi $T2 "SELECT count(*) FROM app.leads l JOIN app.companies c ON c.tenant_id = l.tenant_id AND c.id = l.company_id")" \
    "100" "a multi-shard join of co-located tables"
if out=$("$FLOE_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -U platform_app -d "$FLOE_TEST_DB" \
    -c "SELECT count(*) FROM app.leads" 2>&1); then
    fail "no tenant, routing off, yet rows: $out"
fi
expect_match "$out" "no tenant is set" "no tenant, routing off: the workers refuse (fail closed)"
qc "ALTER ROLE platform_app RESET floe.citus_tenant_routing" >/dev/null

echo "# a role restricted to signed tokens"
qc "SELECT floe.require_tenant_token('platform_app')" >/dev/null
token=$(qc "SELECT floe.mint_tenant_token('$T1')")
with_token() {
    "$FLOE_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -U platform_app -d "$FLOE_TEST_DB" -c "BEGIN" \
        -c "SELECT floe.set_tenant_token('$token') IS NULL" "$@" -c "COMMIT" | sed '1d'
}
expect_eq "$(with_token -c "SELECT count(*) FROM app.leads")" "100" "the token's tenant sees its rows"
if out=$(with_token -c "SET LOCAL app.current_tenant_id = '$T2'" -c "INSERT INTO app.leads (tenant_id, email, name) VALUES ('$T2', 'z', 'z')" 2>&1); then
    fail "a token role's SET LOCAL reached the workers: $out"
fi
expect_match "$out" "SET LOCAL app.current_tenant_id is refused for this role on Citus" \
    "a token role's SET LOCAL of the tenant (which Citus would forward) is refused"
if out=$(with_token -c "SELECT set_config('app.current_tenant_id', '$T2', true) IS NULL" -c "SELECT count(*) FROM app.leads" 2>&1); then
    fail "a token role read with an unverified tenant: $out"
fi
expect_match "$out" "must set its tenant with floe.set_tenant_token" "an unverified tenant is refused on the coordinator"
expect_eq "$(as_admin "SELECT count(*) FROM app.leads WHERE email = 'z'")" "0" "nothing was written for the other tenant"
