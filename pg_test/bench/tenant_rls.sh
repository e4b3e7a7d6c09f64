#!/usr/bin/env bash
# Tenant isolation cost, measured side by side in one run on one throwaway cluster:
#   plain    no RLS at all; the application filters by tenant_id itself (the baseline)
#   floe     floe.enable_tenant_isolation(): policy (SELECT floe.current_tenant()) + guard
#   setting  the common hand-written policy: tenant_id = current_setting('app.current_tenant_id')::uuid
# Tenant-scoped SELECT and UPDATE throughput with pgbench as an unprivileged role; prints
# TPS and the ratio of each RLS variant to the plain baseline.
# Each variant runs ROUNDS times, interleaved with the others (so drift hits all alike), with
# one client (the other core runs pgbench); the table shows the median TPS.
# Usage: pg_test/bench/tenant_rls.sh [seconds per run, default 10] [rounds, default 3]
# (needs floe installed)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/../lib/cluster.sh"
SECS=${1:-10}
ROUNDS=${2:-3}
TENANTS=100
ROWS_PER_TENANT=2000

cluster_throwaway yes
PSQL=("$FLOE_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d postgres)
"${PSQL[@]}" -c "CREATE DATABASE bench"
PSQL=("$FLOE_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d bench)
"${PSQL[@]}" <<SQL
CREATE EXTENSION floe;
CREATE ROLE bench_app LOGIN;
DO \$\$
DECLARE v text;
BEGIN
  FOREACH v IN ARRAY ARRAY['plain', 'floe', 'setting'] LOOP
    EXECUTE format('CREATE TABLE public.%I (id bigserial PRIMARY KEY, tenant_id uuid NOT NULL, k int NOT NULL, v int NOT NULL)', 'b_' || v);
    EXECUTE format('INSERT INTO public.%I (tenant_id, k, v)
                    SELECT (''00000000-0000-4000-8000-'' || lpad(t::text, 12, ''0''))::uuid, k, 0
                      FROM generate_series(1, $TENANTS) t, generate_series(1, $ROWS_PER_TENANT) k', 'b_' || v);
    EXECUTE format('CREATE INDEX ON public.%I (tenant_id, k)', 'b_' || v);
    EXECUTE format('GRANT SELECT, UPDATE ON public.%I TO bench_app', 'b_' || v);
  END LOOP;
END
\$\$;
SELECT count(*) FROM floe.enable_tenant_isolation('b_floe');
ALTER TABLE b_setting ENABLE ROW LEVEL SECURITY;
ALTER TABLE b_setting FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON b_setting
  USING (tenant_id = current_setting('app.current_tenant_id')::uuid)
  WITH CHECK (tenant_id = current_setting('app.current_tenant_id')::uuid);
VACUUM ANALYZE;
SQL

WORK=$(mktemp -d /tmp/floe-bench.XXXXXX)
trap '[ -s "$WORK/pgbench.log" ] && grep -iE "error|fatal" "$WORK/pgbench.log" | head -5; rm -rf "$WORK"; cluster_cleanup_all' EXIT
# Every variant sets the context the same way (set_config, as SET LOCAL does), so the
# difference is the policy alone. The plain variant filters by tenant in its own WHERE.
for variant in plain floe setting; do
    if [ "$variant" = plain ]; then filter="tenant_id = current_setting('app.current_tenant_id')::uuid AND"; else filter=""; fi
    cat >"$WORK/select_$variant.sql" <<PGB
\set t random(1, $TENANTS)
\set k random(1, $((ROWS_PER_TENANT - 20)))
BEGIN;
SELECT set_config('app.current_tenant_id', '00000000-0000-4000-8000-' || lpad(:t::text, 12, '0'), true);
SELECT count(*), sum(v) FROM b_$variant WHERE $filter k BETWEEN :k AND :k + 20;
END;
PGB
    cat >"$WORK/update_$variant.sql" <<PGB
\set t random(1, $TENANTS)
\set k random(1, $ROWS_PER_TENANT)
BEGIN;
SELECT set_config('app.current_tenant_id', '00000000-0000-4000-8000-' || lpad(:t::text, 12, '0'), true);
UPDATE b_$variant SET v = v + 1 WHERE $filter k = :k;
END;
PGB
done
chmod -R a+r "$WORK"

tps() {
    "$FLOE_PG_BIN/pgbench" -n -U bench_app -d bench -c 1 -j 1 -T "$SECS" -f "$1" >>"$WORK/pgbench.log" 2>&1 || true
    awk '/^tps = / { v = $3 } END { printf "%.0f", v }' "$WORK/pgbench.log"
}

median() { tr ' ' '\n' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

declare -A ALL
for op in select update; do
    for variant in plain floe setting; do tps "$WORK/${op}_$variant.sql" >/dev/null; done # warm-up
    for round in $(seq 1 "$ROUNDS"); do
        order=(plain floe setting)
        [ $((round % 2)) -eq 0 ] && order=(setting floe plain)
        for variant in "${order[@]}"; do
            ALL[$op,$variant]+=" $(tps "$WORK/${op}_$variant.sql")"
        done
    done
done
declare -A R
for key in "${!ALL[@]}"; do R[$key]=$(echo ${ALL[$key]} | median); done

printf '\nTenant isolation: pgbench, 1 client, median of %s runs of %ss, %d tenants x %d rows, role bench_app\n' \
    "$ROUNDS" "$SECS" "$TENANTS" "$ROWS_PER_TENANT"
printf '%-8s %12s %12s %12s %14s %16s\n' op "plain tps" "floe tps" "setting tps" "floe/plain" "setting/plain"
for op in select update; do
    echo "  runs $op: plain${ALL[$op,plain]} / floe${ALL[$op,floe]} / setting${ALL[$op,setting]}" >&2
    p=${R[$op,plain]} f=${R[$op,floe]} s=${R[$op,setting]}
    printf '%-8s %12s %12s %12s %14s %16s\n' "$op" "$p" "$f" "$s" \
        "$(awk -v a="$f" -v b="$p" 'BEGIN { printf "%.3f", a / b }')" \
        "$(awk -v a="$s" -v b="$p" 'BEGIN { printf "%.3f", a / b }')"
done
