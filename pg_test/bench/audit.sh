#!/usr/bin/env bash
# Write cost of auditing, in one run on one throwaway cluster: the same table and writes
#   none    no audit trigger
#   plain   a jsonb-row audit trigger as supa_audit writes it: PL/pgSQL, AFTER ROW,
#           to_jsonb(NEW) and to_jsonb(OLD) into a log with a bigserial key and a BRIN and a
#           B-tree index (supa_audit also computes a uuid record id; left out: the baseline
#           is the leaner for it)
#   floe    floe.enable_audit(redact => '{email}', classification => '{gdpr}'): changed
#           columns only, primary key, tenant, actor, client address, a keyed BLAKE3 hash of
#           the email, into the monthly partitioned append-only log (sealing is the job's,
#           off the write path; its cost is printed separately)
# 1. Bulk: INSERT of ROWS rows, UPDATE of two columns of every row, DELETE of every row, each
#    one statement; median of ROUNDS rounds (variants interleaved).
# 2. OLTP: pgbench, 2 clients, SECS seconds per variant and round, OLTP_ROUNDS rounds with
#    the variants interleaved: each transaction inserts a row and updates another. The cost
#    is a difference of two rates of about the same size, so a round's noise moves it a lot:
#    the table gives the medians per variant, and the median of the per-round ratios is
#    printed under it.
# Cost = time with the trigger - time without; the target is floe's cost <= 1.15x plain's
# (issue #27; it was 1.3x).
# The cluster is disposable (fsync and synchronous_commit off).
# Usage: pg_test/bench/audit.sh [rows, default 100000] [rounds, default 3] [seconds, default 5]
#        [OLTP rounds, default 9]
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/../lib/cluster.sh"
ROWS=${1:-100000}
ROUNDS=${2:-3}
SECS=${3:-5}
OLTP_ROUNDS=${4:-9}
WORK=$(mktemp -d /tmp/floe-bench-audit.XXXXXX)
if floe_is_root; then chown "$FLOE_OS_USER" "$WORK"; fi

cluster_throwaway yes "floe.max_workers = 0" "shared_buffers = '512MB'" "max_wal_size = '4GB'"
trap 'rm -rf "$WORK"; cluster_cleanup_all' EXIT
"$FLOE_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE bench"
PSQL=("$FLOE_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d bench)
"${PSQL[@]}" <<'SQL'
CREATE EXTENSION floe;
CREATE TABLE audit_plain (
    id         bigserial PRIMARY KEY,
    ts         timestamptz NOT NULL DEFAULT now(),
    op         text NOT NULL,
    table_oid  oid NOT NULL,
    table_schema name NOT NULL,
    table_name name NOT NULL,
    record     jsonb,
    old_record jsonb
);
CREATE INDEX audit_plain_ts ON audit_plain USING brin (ts);
CREATE INDEX audit_plain_table ON audit_plain (table_oid);
CREATE FUNCTION audit_plain_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit_plain (op, table_oid, table_schema, table_name, record, old_record)
    VALUES (TG_OP, TG_RELID, TG_TABLE_SCHEMA, TG_TABLE_NAME,
            CASE WHEN TG_OP IN ('INSERT', 'UPDATE') THEN to_jsonb(NEW) END,
            CASE WHEN TG_OP IN ('UPDATE', 'DELETE') THEN to_jsonb(OLD) END);
    RETURN NULL;
END $$;
CREATE TABLE results (variant text, phase text, round int, seconds float8);
SQL
for v in none plain floe; do
    "${PSQL[@]}" -c "CREATE TABLE leads_$v (id bigint PRIMARY KEY, tenant_id uuid NOT NULL,
        email text NOT NULL, name text NOT NULL, company text, score int NOT NULL,
        status text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now())"
done
"${PSQL[@]}" <<'SQL'
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON leads_plain
    FOR EACH ROW EXECUTE FUNCTION audit_plain_trigger();
SELECT floe.enable_audit('leads_floe', redact => '{email}', classification => '{gdpr}');
SQL

now() { date +%s.%N; }
timed() {   # variant phase round sql
    local t0 t1
    t0=$(now)
    "${PSQL[@]}" -c "$4" >/dev/null
    t1=$(now)
    "${PSQL[@]}" -c "INSERT INTO results VALUES ('$1', '$2', $3, $t1 - $t0)"
}

echo "# bulk: $ROWS rows, $ROUNDS rounds"
for r in $(seq 1 "$ROUNDS"); do
    for v in none plain floe; do
        "${PSQL[@]}" -c "CHECKPOINT" >/dev/null
        timed $v insert "$r" "INSERT INTO leads_$v (id, tenant_id, email, name, company, score, status)
            SELECT g, ('00000000-0000-4000-8000-00000000000' || (g % 8))::uuid, 'user' || g || '@example.com',
                   'Name ' || g, 'Company ' || (g % 1000), g % 100, 'new'
              FROM generate_series(1, $ROWS) g"
        timed $v update "$r" "UPDATE leads_$v SET score = score + 1, status = 'contacted', updated_at = now()"
        timed $v delete "$r" "DELETE FROM leads_$v"
        "${PSQL[@]}" -c "VACUUM leads_$v" >/dev/null
    done
    echo "  round $r done"
done
t0=$(now)
sealed=$("${PSQL[@]}" -c "SELECT floe.audit_seal()")
echo "  sealing $sealed entries: $(echo "$(now) - $t0" | bc) s"
t0=$(now)
"${PSQL[@]}" -c "SELECT count(*) FROM floe.verify_audit()" >/dev/null
echo "  verifying them: $(echo "$(now) - $t0" | bc) s"

echo "# OLTP: pgbench, 2 clients, ${SECS}s per variant, $OLTP_ROUNDS rounds"
for v in none plain floe; do
    cat >"$WORK/$v.sql" <<EOF
\set id random(1, 1000000000)
\set other random(1, 100000)
BEGIN;
INSERT INTO leads_$v (id, tenant_id, email, name, company, score, status)
VALUES (:id + 1000000, '00000000-0000-4000-8000-000000000001', 'u' || :id || '@example.com', 'Name', 'Co', 1, 'new')
ON CONFLICT (id) DO NOTHING;
UPDATE leads_$v SET score = score + 1, updated_at = now() WHERE id = :other;
COMMIT;
EOF
    "${PSQL[@]}" -c "INSERT INTO leads_$v (id, tenant_id, email, name, company, score, status)
        SELECT g, '00000000-0000-4000-8000-000000000001', 'user' || g || '@example.com', 'Name', 'Co', 0, 'new'
          FROM generate_series(1, 100000) g" >/dev/null
done
if floe_is_root; then chown -R "$FLOE_OS_USER" "$WORK"; fi
for r in $(seq 1 "$OLTP_ROUNDS"); do
    for v in none plain floe; do
        "${PSQL[@]}" -c "CHECKPOINT" >/dev/null
        tps=$(as_cluster_user "$FLOE_PG_BIN/pgbench" -n -c 2 -j 2 -T "$SECS" -f "$WORK/$v.sql" \
              -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" bench 2>/dev/null | awk '/^tps/ {print $3}')
        "${PSQL[@]}" -c "INSERT INTO results VALUES ('$v', 'oltp', $r, $tps)"
        echo "  round $r $v: $tps tps"
    done
done

echo
echo "| phase | no audit | plain trigger | floe | plain cost | floe cost | floe / plain cost |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
"${PSQL[@]}" -F ' | ' <<'SQL'
WITH m AS (
    SELECT phase, variant, percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS s
      FROM results WHERE phase <> 'oltp' GROUP BY phase, variant
), p AS (
    SELECT phase,
           max(s) FILTER (WHERE variant = 'none') AS none,
           max(s) FILTER (WHERE variant = 'plain') AS plain,
           max(s) FILTER (WHERE variant = 'floe') AS floe
      FROM m GROUP BY phase
)
SELECT '| ' || phase || ' (s)', round(none::numeric, 2), round(plain::numeric, 2), round(floe::numeric, 2),
       round((plain - none)::numeric, 2), round((floe - none)::numeric, 2),
       round(((floe - none) / nullif(plain - none, 0))::numeric, 2) || 'x |'
  FROM p ORDER BY array_position('{insert,update,delete}', phase);
WITH o AS (SELECT variant, percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS tps
             FROM results WHERE phase = 'oltp' GROUP BY variant)
SELECT '| oltp (tps; cost = ms per 1000 transactions)',
       round((SELECT tps FROM o WHERE variant = 'none')::numeric),
       round((SELECT tps FROM o WHERE variant = 'plain')::numeric),
       round((SELECT tps FROM o WHERE variant = 'floe')::numeric),
       round((1e6 / (SELECT tps FROM o WHERE variant = 'plain') - 1e6 / (SELECT tps FROM o WHERE variant = 'none'))::numeric, 1),
       round((1e6 / (SELECT tps FROM o WHERE variant = 'floe') - 1e6 / (SELECT tps FROM o WHERE variant = 'none'))::numeric, 1),
       round(((1e6 / (SELECT tps FROM o WHERE variant = 'floe') - 1e6 / (SELECT tps FROM o WHERE variant = 'none'))
            / nullif(1e6 / (SELECT tps FROM o WHERE variant = 'plain') - 1e6 / (SELECT tps FROM o WHERE variant = 'none'), 0))::numeric, 2) || 'x |';
SQL
echo
"${PSQL[@]}" -F ' ' <<'SQL'
WITH r AS (
    SELECT round, 1e6 / max(seconds) FILTER (WHERE variant = 'none') AS none,
           1e6 / max(seconds) FILTER (WHERE variant = 'plain') AS plain,
           1e6 / max(seconds) FILTER (WHERE variant = 'floe') AS floe
      FROM results WHERE phase = 'oltp' GROUP BY round
), q AS (SELECT round, (floe - none) / nullif(plain - none, 0) AS ratio FROM r)
SELECT 'OLTP floe / plain cost per round:',
       string_agg(round(ratio::numeric, 2)::text, ' ' ORDER BY round),
       '; median ' || round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ratio))::numeric, 2) || 'x'
  FROM q;
SQL
echo
"${PSQL[@]}" -F ' ' -c "SELECT 'log sizes: plain', pg_size_pretty(pg_total_relation_size('audit_plain')), 'floe', pg_size_pretty((SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('floe.audit_log')))"
