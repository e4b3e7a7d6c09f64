#!/usr/bin/env bash
# Cross-tier references (issue #26), declaration: floe.declare_reference over a postgres_fdw
# server between two databases of one cluster (the content tier's messages pointing at the
# OLTP tier's leads and campaigns): a valid declaration, declared again (same id), dropped;
# every bad input refused with its SQLSTATE and nothing declared, no foreign table left.
source "$(dirname "$0")/../lib/testlib.sh"

cluster_throwaway no
qd postgres "CREATE DATABASE oltp"
qd postgres "CREATE DATABASE content"
qd oltp "CREATE SCHEMA app;
         CREATE TABLE app.leads (tenant_id uuid NOT NULL, id bigint NOT NULL, email text, PRIMARY KEY (tenant_id, id));
         CREATE TABLE app.campaigns (tenant_id uuid NOT NULL, id bigint NOT NULL, name text, UNIQUE (id));
         CREATE TABLE app.loose (tenant_id uuid NOT NULL, id bigint NOT NULL);
         CREATE TABLE app.partial (tenant_id uuid NOT NULL, id bigint NOT NULL);
         CREATE UNIQUE INDEX ON app.partial (tenant_id, id) WHERE id > 0;
         CREATE TABLE app.wide (tenant_id uuid NOT NULL, id bigint NOT NULL, v int NOT NULL, UNIQUE (tenant_id, id, v));
         CREATE TABLE app.\"we\"\"ird\" (\"tenant_id\" uuid NOT NULL, \"Id\" bigint NOT NULL, PRIMARY KEY (tenant_id, \"Id\"))"
qd content "CREATE EXTENSION floe; CREATE EXTENSION postgres_fdw;
            CREATE SERVER tier_oltp FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '$PGHOST', port '$PGPORT', dbname 'oltp');
            CREATE USER MAPPING FOR CURRENT_USER SERVER tier_oltp OPTIONS (user '$FLOE_DB_SUPERUSER');
            CREATE SERVER tier_down FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', port '9', dbname 'oltp', connect_timeout '2');
            CREATE USER MAPPING FOR CURRENT_USER SERVER tier_down;
            CREATE FOREIGN DATA WRAPPER other_fdw;
            CREATE SERVER not_pg FOREIGN DATA WRAPPER other_fdw;
            CREATE SCHEMA app;
            CREATE TABLE app.email_messages (tenant_id uuid NOT NULL, id bigint PRIMARY KEY, lead_id bigint,
                                             campaign_id bigint, small_id int, note text);
            CREATE ROLE someone; GRANT USAGE ON SCHEMA app TO someone"
c() { qd content "$@"; }
declared() { c "SELECT count(*) FROM floe.declared_references"; }
targets() { c "SELECT count(*) FROM pg_class WHERE relnamespace = 'floe'::regnamespace AND relkind = 'f'"; }

echo "# a declaration"
id=$(c "SELECT floe.declare_reference('app.email_messages', '{lead_id}', 'tier_oltp', 'app.leads', '{id}')")
expect_eq "$(c "SELECT columns::text || ' -> ' || target_table || ' ' || target_columns::text || ' ' || mode || ' ' || tenant_column || ' ' || on_unreachable
                 FROM floe.declared_references WHERE id = $id")" "{lead_id} -> app.leads {id} scan tenant_id reject" \
    "declared with its defaults: scan, per tenant_id, reject when unreachable"
expect_eq "$(c "SELECT count(*) FROM floe.reference_${id}_target")" "0" "its foreign table reads the target (empty)"
qd oltp "INSERT INTO app.leads VALUES ('00000000-0000-0000-0000-000000000001', 7, 'a@x')"
expect_eq "$(c "SELECT id FROM floe.reference_${id}_target")" "7" "and sees the target's rows"
expect_eq "$(c "SELECT floe.declare_reference('app.email_messages', '{lead_id}', 'tier_oltp', 'app.leads', '{id}', mode => 'enforce')")" "$id" \
    "declared again: the same id, settings updated"
expect_eq "$(c "SELECT mode FROM floe.declared_references WHERE id = $id")/$(targets)" "enforce/1" "one foreign table still"
id2=$(c "SELECT floe.declare_reference('app.email_messages', '{campaign_id}', 'tier_oltp', 'app.campaigns', '{id}')")
[ "$id2" != "$id" ] || fail "a second reference got the first one's id"
echo "  ok - a unique index on the target column alone makes (tenant_id, id) unique too"
expect_eq "$(declared)/$(targets)" "2/2" "two declarations, two foreign tables"

echo "# bad input: a clear error, nothing declared"
before="$(declared)/$(targets)"
refused() {
    local what=$1 state=$2 pattern=$3 sql=$4 out
    if out=$("$FLOE_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -d content -c "$sql" 2>&1); then
        fail "$what: accepted ($out)"
    fi
    expect_match "$out" "ERROR:  $state: " "$what: SQLSTATE $state"
    expect_match "$out" "$pattern" "$what: the message names it"
    expect_eq "$(declared)/$(targets)/$(c "SELECT count(*) FROM pg_namespace WHERE nspname = 'floe_reference_import'")" "$before/0" \
        "$what: nothing declared, no foreign table or scratch schema left"
}
call="SELECT floe.declare_reference('app.email_messages'"
refused "an unknown server" 42704 'foreign server "?nowhere' "$call, '{lead_id}', 'nowhere', 'app.leads', '{id}')"
refused "a server of another wrapper" 42809 "not_pg is a other_fdw server, not a postgres_fdw one" "$call, '{lead_id}', 'not_pg', 'app.leads', '{id}')"
refused "a column list of the wrong arity" 22023 'target_columns' "$call, '{lead_id,campaign_id}', 'tier_oltp', 'app.leads', '{id}')"
refused "an unknown local column" 42703 'lead' "$call, '{lead}', 'tier_oltp', 'app.leads', '{id}')"
refused "an unknown target column" 42703 'app.leads on server tier_oltp' "$call, '{lead_id}', 'tier_oltp', 'app.leads', '{ident}')"
refused "columns of other types" 42804 'column small_id of app.email_messages is integer, column id of app.leads on server tier_oltp is bigint' \
    "$call, '{small_id}', 'tier_oltp', 'app.leads', '{id}')"
refused "a tenant column that is not a uuid" 42804 'tenant column note of app.email_messages is text' \
    "$call, '{lead_id}', 'tier_oltp', 'app.leads', '{id}', tenant_column => 'note')"
refused "a target table that does not exist" 42P01 'table app.nothing does not exist on server tier_oltp' "$call, '{lead_id}', 'tier_oltp', 'app.nothing', '{id}')"
refused "a target without a unique index" 42830 'there is no unique index on \(id, tenant_id\) of app.loose' "$call, '{lead_id}', 'tier_oltp', 'app.loose', '{id}')"
refused "a partial unique index only" 42830 'no unique index' "$call, '{lead_id}', 'tier_oltp', 'app.partial', '{id}')"
refused "a unique index over more columns" 42830 'no unique index' "$call, '{lead_id}', 'tier_oltp', 'app.wide', '{id}')"
refused "an unreachable server" 08001 'could not connect to server "tier_down"' "$call, '{lead_id}', 'tier_down', 'app.leads', '{id}')"
refused "an unknown mode" 22023 "'scan' or 'enforce'" "$call, '{lead_id}', 'tier_oltp', 'app.leads', '{id}', mode => 'check')"
refused "an unknown on_unreachable" 22023 "'reject' or 'allow'" "$call, '{lead_id}', 'tier_oltp', 'app.leads', '{id}', on_unreachable => 'retry')"
refused "the tenant column among the columns" 22023 'without the tenant column' "$call, '{tenant_id}', 'tier_oltp', 'app.leads', '{id}')"
refused "a repeated column" 22023 'lead_id is named twice' "$call, '{lead_id,lead_id}', 'tier_oltp', 'app.leads', '{id,tenant_id}')"
refused "not the owner" 42501 'must be owner of table app.email_messages' \
    "SET ROLE someone; $call, '{lead_id}', 'tier_oltp', 'app.leads', '{id}')"

echo "# hostile names"
qd content "CREATE TABLE app.\"we\"\"ird\" (\"tenant_id\" uuid NOT NULL, \"Lead Id\" bigint)"
hid=$(c "SELECT floe.declare_reference('app.\"we\"\"ird\"', ARRAY['Lead Id']::name[], 'tier_oltp', 'app.\"we\"\"ird\"', ARRAY['Id']::name[])")
expect_eq "$(c "SELECT tbl::text || ' ' || target_table FROM floe.declared_references WHERE id = $hid")" "app.\"we\"\"ird\" app.\"we\"\"ird\"" \
    "quotes in both tables' names and a space in a column's: declared on exactly those"
c "SELECT floe.drop_reference('app.\"we\"\"ird\"', ARRAY['Lead Id']::name[])" >/dev/null

echo "# drop_reference"
expect_eq "$(c "SELECT floe.drop_reference('app.email_messages', '{lead_id}')")" "t" "dropped"
expect_eq "$(declared)/$(targets)" "1/1" "its row and its foreign table are gone"
expect_match "$(c "SELECT floe.drop_reference('app.email_messages', '{lead_id}')" 2>&1 || true)" 'reference "?app.email_messages \(lead_id\)' \
    "dropping it again: not found (42704)"
expect_eq "$(c "SELECT floe.drop_reference('app.email_messages', '{lead_id}', if_exists => true)")" "f" "if_exists => true: false"
