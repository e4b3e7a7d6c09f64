#!/usr/bin/env bash
# Tenant isolation cost, measured side by side in one run on one throwaway cluster:
#   plain    no RLS at all; the application filters by tenant_id itself (the baseline)
#   floe     floe.enable_tenant_isolation(): policy (SELECT floe.current_tenant()) + guards
#   lean     the same with guard_updates => false (no AFTER UPDATE OF tenant_id row trigger)
#   setting  the common hand-written policy: tenant_id = current_setting('app.current_tenant_id')::uuid
# Tenant-scoped SELECT and UPDATE, as an unprivileged role, measured two ways:
#  1. pgbench TPS (end to end, 1 client; each run interleaved with the other variants, median
#     of ROUNDS). On a shared 2-core VM single runs vary by +-15%, so this is indicative only.
#  2. server-side: a PL/pgSQL loop runs N statements (set the context, then the query through
#     EXECUTE, so each is parsed and planned like a simple-protocol query) and times them; the
#     fastest of ROUNDS interleaved rounds per variant. No client or network noise: this is
#     the cost of the policy itself, and the ratio the README quotes.
# Usage: pg_test/bench/tenant_rls.sh [seconds per run, default 10] [rounds, default 3]
# (needs floe installed)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/../lib/cluster.sh"
SECS=${1:-10}
ROUNDS=${2:-3}
LOOP_N=${LOOP_N:-20000}
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
  FOREACH v IN ARRAY ARRAY['plain', 'floe', 'lean', 'setting'] LOOP
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
SELECT count(*) FROM floe.enable_tenant_isolation('b_lean', guard_updates => false);
ALTER TABLE b_setting ENABLE ROW LEVEL SECURITY;
ALTER TABLE b_setting FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON b_setting
  USING (tenant_id = current_setting('app.current_tenant_id')::uuid)
  WITH CHECK (tenant_id = current_setting('app.current_tenant_id')::uuid);
VACUUM ANALYZE;
SQL

WORK=$(mktemp -d /tmp/floe-bench.XXXXXX)
trap '{ [ -s "$WORK/pgbench.log" ] && grep -iE "error|fatal" "$WORK/pgbench.log" | head -5; } || true; rm -rf "$WORK"; cluster_cleanup_all' EXIT
# Every variant sets the context the same way (set_config, as SET LOCAL does), so the
# difference is the policy alone. The plain variant filters by tenant in its own WHERE.
for variant in plain floe lean setting; do
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
    for variant in plain floe lean setting; do tps "$WORK/${op}_$variant.sql" >/dev/null; done # warm-up
    for round in $(seq 1 "$ROUNDS"); do
        order=(plain floe lean setting)
        [ $((round % 2)) -eq 0 ] && order=(setting lean floe plain)
        for variant in "${order[@]}"; do
            ALL[$op,$variant]+=" $(tps "$WORK/${op}_$variant.sql")"
        done
    done
done
declare -A R
for key in "${!ALL[@]}"; do R[$key]=$(echo ${ALL[$key]} | median); done

# Server-side loop: milliseconds for LOOP_N statements, as bench_app.
"${PSQL[@]}" <<SQL
CREATE FUNCTION public.bench_loop(variant text, op text, n int) RETURNS double precision
LANGUAGE plpgsql AS \$\$
DECLARE
    t0 timestamptz := clock_timestamp();
    filter text := CASE WHEN variant = 'plain'
                        THEN 'tenant_id = current_setting(''app.current_tenant_id'')::uuid AND ' ELSE '' END;
    k int;
BEGIN
    FOR i IN 1..n LOOP
        PERFORM set_config('app.current_tenant_id',
            '00000000-0000-4000-8000-' || lpad((1 + i % $TENANTS)::text, 12, '0'), true);
        k := 1 + (i * 7919) % ($ROWS_PER_TENANT - 20);
        IF op = 'select' THEN
            EXECUTE format('SELECT count(*), sum(v) FROM public.%I WHERE %s k BETWEEN %s AND %s',
                           'b_' || variant, filter, k, k + 20);
        ELSE
            EXECUTE format('UPDATE public.%I SET v = v + 1 WHERE %s k = %s', 'b_' || variant, filter, k);
        END IF;
    END LOOP;
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END
\$\$;
GRANT EXECUTE ON FUNCTION public.bench_loop(text, text, int) TO bench_app;
SQL
declare -A BEST LOOPS
for op in select update; do
    for round in $(seq 1 "$ROUNDS"); do
        order=(plain floe lean setting)
        [ $((round % 2)) -eq 0 ] && order=(setting lean floe plain)
        for variant in "${order[@]}"; do
            ms=$("$FLOE_PG_BIN/psql" -X -At -U bench_app -d bench -c "SELECT round(public.bench_loop('$variant', '$op', $LOOP_N)::numeric, 1)")
            LOOPS[$op,$variant]+=" $ms"
            cur=${BEST[$op,$variant]:-}
            if [ -z "$cur" ] || awk -v a="$ms" -v b="$cur" 'BEGIN { exit !(a < b) }'; then BEST[$op,$variant]=$ms; fi
        done
    done
done
# The median over rounds of plain time / variant time within the round: each round runs
# every variant back to back, so a slow spell of this VM weighs on both sides of a ratio.
round_ratio() { # op variant
    paste -d' ' <(echo ${LOOPS[$1,plain]} | tr ' ' '\n') <(echo ${LOOPS[$1,$2]} | tr ' ' '\n') |
        awk '{ printf "%.4f\n", $1 / $2 }' | median | awk '{ printf "%.3f", $1 }'
}

printf '\nTenant isolation (TPS): pgbench, 1 client, median of %s runs of %ss, %d tenants x %d rows, role bench_app\n' \
    "$ROUNDS" "$SECS" "$TENANTS" "$ROWS_PER_TENANT"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
printf '%-7s %10s %10s %10s %10s %11s %11s %13s\n' op plain floe lean setting floe/plain lean/plain setting/plain
for op in select update; do
    echo "  runs $op: plain${ALL[$op,plain]} / floe${ALL[$op,floe]} / lean${ALL[$op,lean]} / setting${ALL[$op,setting]}" >&2
    p=${R[$op,plain]} f=${R[$op,floe]} l=${R[$op,lean]} s=${R[$op,setting]}
    printf '%-7s %10s %10s %10s %10s %11s %11s %13s\n' "$op" "$p" "$f" "$l" "$s" \
        "$(ratio "$f" "$p")" "$(ratio "$l" "$p")" "$(ratio "$s" "$p")"
done
printf '\nServer-side: %s statements per run, fastest of %s interleaved rounds (ratio = plain time / variant time)\n' \
    "$LOOP_N" "$ROUNDS"
printf '%-7s %10s %10s %10s %10s %11s %11s %13s\n' op "plain ms" "floe ms" "lean ms" "setting ms" floe/plain lean/plain setting/plain
for op in select update; do
    p=${BEST[$op,plain]} f=${BEST[$op,floe]} l=${BEST[$op,lean]} s=${BEST[$op,setting]}
    printf '%-7s %10s %10s %10s %10s %11s %11s %13s\n' "$op" "$p" "$f" "$l" "$s" \
        "$(ratio "$p" "$f")" "$(ratio "$p" "$l")" "$(ratio "$p" "$s")"
done
printf '\nServer-side, median over the rounds of the ratio within each round\n'
printf '%-7s %11s %11s %13s\n' op floe/plain lean/plain setting/plain
for op in select update; do
    printf '%-7s %11s %11s %13s\n' "$op" "$(round_ratio "$op" floe)" "$(round_ratio "$op" lean)" \
        "$(round_ratio "$op" setting)"
    echo "  rounds $op (ms): plain${LOOPS[$op,plain]} / floe${LOOPS[$op,floe]} / lean${LOOPS[$op,lean]} / setting${LOOPS[$op,setting]}"
done
