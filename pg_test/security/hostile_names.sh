#!/usr/bin/env bash
# Hostile identifiers through every floe function that takes a table (or a role): a schema and
# tables whose names carry quotes, semicolons, comment starters, format specifiers, dots,
# spaces, newlines, upper case, non-ASCII letters and reserved words. Every table is a valid
# target, so each function must work on exactly the table named: nothing else changes (a
# canary table an injection would drop survives, floe's registries hold only what was asked),
# no call is refused, and none ends in XX000 or a crash.
source "$(dirname "$0")/../lib/testlib.sh"

cluster_throwaway no
make_test_db

# The names, as SQL identifiers (quoted where needed). Each table gets a tenant column, a
# timestamp column (range partitioned) and a primary key.
NAMES=(
    $'"Robert\'); DROP TABLE canary; --"'
    '"a""b"'
    '"semi;colon"'
    '"with space"'
    '"%I%s%L"'
    '"$1"'
    '"x.y"'
    '"--dash"'
    '"/*comment"'
    '"MiXeD"'
    '"ünïcødé"'
    '"select"'
    "\"$(printf 'new\nline')\""
    '"n2345678901234567890123456789012345678901234567890123456789012"'
)
SCHEMA=$'"sch\'ema; --"'

q "CREATE TABLE public.canary (id int)"
q "CREATE SCHEMA $SCHEMA"
q "CREATE ROLE \"role'); DROP TABLE canary; --\""
failures=0
xx=0
check_call() { # what sql
    local out
    if out=$(q "$2" 2>&1); then
        return 0
    fi
    if [[ $out == *XX000* || $out == *"internal error"* || $out == *panicked* ]]; then
        echo "not ok - $1: internal error: $out" >&2
        xx=$((xx + 1))
    fi
    # Every table here is a valid target: a refusal means floe mishandled the name.
    echo "not ok - $1: $(echo "$out" | head -n 1)" >&2
    failures=$((failures + 1))
}

n=0
for name in "${NAMES[@]}"; do
    n=$((n + 1))
    t="$SCHEMA.$name"
    q "CREATE TABLE $t (id bigint NOT NULL, tenant_id uuid NOT NULL, at timestamptz NOT NULL,
                        body text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)"
    # regclass text as Postgres quotes it: what the functions receive.
    reg=$(q "SELECT '$(echo "$t" | sed "s/'/''/g")'::regclass::text")
    lit=$(q "SELECT quote_literal('$(echo "$reg" | sed "s/'/''/g")')")
    check_call "create_parent $n" "SELECT floe.create_parent($lit, 'at', premake => 1)"
    check_call "set_retention $n" "SELECT floe.set_retention($lit, '1 year', 'drop')"
    check_call "partitions $n" "SELECT count(*) FROM floe.partitions($lit)"
    check_call "check_default $n" "SELECT count(*) FROM floe.check_default($lit)"
    check_call "run_maintenance $n" "CALL floe.run_maintenance($lit)"
    check_call "enable_tenant_isolation $n" "SELECT count(*) FROM floe.enable_tenant_isolation($lit)"
    check_call "tenant_apply_partitions $n" "SELECT floe.tenant_apply_partitions($lit)"
    check_call "enable_audit $n" "SELECT floe.enable_audit($lit, redact => '{body}')"
    check_call "audit_triggers_off $n" "SELECT count(*) FROM floe.audit_triggers_off($lit)"
    check_call "manage_content $n" "SELECT floe.manage_content($lit, 'body')"
    check_call "disable_audit $n" "SELECT floe.disable_audit($lit)"
    check_call "disable_tenant_isolation $n" "SELECT count(*) FROM floe.disable_tenant_isolation($lit)"
    check_call "remove_parent $n" "SELECT floe.remove_parent($lit)"
    # A plain table of the same hostile name for the conversion and the matview functions.
    p="$SCHEMA.\"p$n\""
    q "CREATE TABLE $p (id bigint, at timestamptz NOT NULL, PRIMARY KEY (id, at))"
    q "CREATE INDEX ON $p (at)"
    preg=$(q "SELECT quote_literal('$(echo "$p" | sed "s/'/''/g")'::regclass::text)")
    check_call "partition_existing $n" "SELECT floe.partition_existing($preg, 'at')"
    mv="$SCHEMA.$(echo "$name" | sed 's/^"/"mv /')"
    q "CREATE MATERIALIZED VIEW $mv AS SELECT 1 AS one"
    q "CREATE UNIQUE INDEX ON $mv (one)"
    mvreg=$(q "SELECT quote_literal('$(echo "$mv" | sed "s/'/''/g")'::regclass::text)")
    check_call "register_matview $n" "SELECT floe.register_matview($mvreg)"
    check_call "refresh $n" "SELECT floe.refresh($mvreg, force => true)"
    check_call "unregister_matview $n" "SELECT floe.unregister_matview($mvreg)"
done
check_call "require_tenant_token" \
    "SELECT floe.require_tenant_token('\"role''); DROP TABLE canary; --\"'); SELECT floe.require_tenant_token('\"role''); DROP TABLE canary; --\"', false)"

echo "# ${#NAMES[@]} hostile names through 17 table-taking functions and require_tenant_token"
expect_eq "$xx" 0 "no call ended in an internal error"
expect_eq "$(q "SELECT count(*) FROM public.canary")" 0 "the canary table is still there"
expect_eq "$(q "SELECT count(*) FROM pg_class c WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = 'sch''ema; --') AND c.relkind IN ('r', 'p') AND c.relname NOT LIKE 'p%' AND NOT c.relispartition AND c.relname NOT LIKE '%default'")" \
    "${#NAMES[@]}" "every hostile table is still there, under its own name"
expect_eq "$(q "SELECT count(*) FROM floe.partition_sets WHERE parent !~ '[.]p[0-9]+$' AND parent <> 'floe.audit_log'")" 0 \
    "remove_parent removed every set it was asked to (and no other was made; the audit log's is floe's)"
expect_eq "$(q "SELECT count(*) FROM floe.partition_sets WHERE parent ~ '[.]p[0-9]+$'")" "${#NAMES[@]}" \
    "partition_existing converted each plain table, and only those"
expect_eq "$(q "SELECT count(*) FROM floe.tenant_tables")" 0 "isolation registry back to empty"
expect_eq "$(q "SELECT count(*) FROM floe.audit_tables")" 0 "audit registry back to empty"
expect_eq "$(q "SELECT count(*) FROM floe.matviews")" 0 "matview registry back to empty"
expect_eq "$(q "SELECT count(*) FROM floe.content_columns")" "${#NAMES[@]}" \
    "manage_content managed one column per table"
expect_eq "$failures" 0 "every call on a hostile name succeeded"
