#!/usr/bin/env bash
# Cost of checking a cross-tier reference as rows are written, in one run on one throwaway
# cluster with two databases (oltp holds LEADS leads per tenant for 8 tenants; content writes
# messages pointing at them through a postgres_fdw server over TCP):
#   none    no check
#   perrow  the usual hand-made check: a PL/pgSQL BEFORE ROW trigger that looks the row's key
#           up in a postgres_fdw foreign table (one remote query per row) and raises 23503
#   floe    floe.declare_reference(mode => 'enforce'): one remote query per statement for
#           the keys not in the session's cache (floe.reference_cache_size, _ttl defaults)
# 1. Bulk: one INSERT of ROWS rows (random leads; a fresh session, so an empty cache), median
#    of ROUNDS rounds, variants interleaved.
# 2. OLTP: pgbench, 2 clients, single-row INSERTs, SECS seconds per variant and round, median
#    of ROUNDS: "leads" draws the lead from all 8 x LEADS (mostly cache misses), "campaigns"
#    from 40 keys (after the first statements, cache hits).
# Cost = time with the check - time without. The cluster is disposable (fsync off).
# Usage: pg_test/bench/references.sh [rows, default 20000] [rounds, default 3] [seconds, default 10] [leads, default 10000]
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/../lib/cluster.sh"
ROWS=${1:-20000}
ROUNDS=${2:-3}
SECS=${3:-10}
LEADS=${4:-10000}
WORK=$(mktemp -d /tmp/floe-bench-references.XXXXXX)
if floe_is_root; then chown "$FLOE_OS_USER" "$WORK"; fi

cluster_throwaway no "shared_buffers = '256MB'"
trap 'rm -rf "$WORK"; cluster_cleanup_all' EXIT
P=("$FLOE_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1)
"${P[@]}" -d postgres -c "CREATE DATABASE oltp" -c "CREATE DATABASE content"
"${P[@]}" -d oltp <<SQL
CREATE TABLE leads (tenant_id uuid NOT NULL, id bigint NOT NULL, email text, PRIMARY KEY (tenant_id, id));
INSERT INTO leads SELECT ('00000000-0000-4000-8000-00000000000' || t)::uuid, g, 'l' || g || '@x.example'
  FROM generate_series(1, 8) t, generate_series(1, $LEADS) g;
CREATE TABLE campaigns (tenant_id uuid NOT NULL, id bigint NOT NULL, PRIMARY KEY (tenant_id, id));
INSERT INTO campaigns SELECT ('00000000-0000-4000-8000-00000000000' || t)::uuid, g
  FROM generate_series(1, 8) t, generate_series(1, 5) g;
VACUUM ANALYZE;
SQL
# Over TCP, as an application server would reach another database.
"${P[@]}" -d content <<SQL
CREATE EXTENSION floe;
CREATE EXTENSION postgres_fdw;
CREATE SERVER tier_oltp FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', port '$PGPORT', dbname 'oltp');
CREATE USER MAPPING FOR CURRENT_USER SERVER tier_oltp OPTIONS (user '$PGUSER');
CREATE SCHEMA remote;
IMPORT FOREIGN SCHEMA public LIMIT TO (leads, campaigns) FROM SERVER tier_oltp INTO remote;
CREATE FUNCTION perrow_check() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
    IF NEW.lead_id IS NOT NULL AND NOT EXISTS
         (SELECT 1 FROM remote.leads l WHERE l.tenant_id = NEW.tenant_id AND l.id = NEW.lead_id) THEN
        RAISE foreign_key_violation USING MESSAGE = 'lead ' || NEW.lead_id || ' does not exist';
    END IF;
    IF NEW.campaign_id IS NOT NULL AND NOT EXISTS
         (SELECT 1 FROM remote.campaigns c WHERE c.tenant_id = NEW.tenant_id AND c.id = NEW.campaign_id) THEN
        RAISE foreign_key_violation USING MESSAGE = 'campaign ' || NEW.campaign_id || ' does not exist';
    END IF;
    RETURN NEW;
END \$\$;
CREATE TABLE results (variant text, phase text, round int, value float8);
SQL
for v in none perrow floe; do
    "${P[@]}" -d content -c "CREATE TABLE messages_$v (id bigserial PRIMARY KEY, tenant_id uuid NOT NULL,
        lead_id bigint, campaign_id bigint, subject text NOT NULL, sent_at timestamptz NOT NULL DEFAULT now())"
done
"${P[@]}" -d content <<'SQL' >/dev/null
CREATE TRIGGER perrow BEFORE INSERT OR UPDATE ON messages_perrow FOR EACH ROW EXECUTE FUNCTION perrow_check();
SELECT floe.declare_reference('messages_floe', '{lead_id}', 'tier_oltp', 'public.leads', '{id}', mode => 'enforce');
SELECT floe.declare_reference('messages_floe', '{campaign_id}', 'tier_oltp', 'public.campaigns', '{id}', mode => 'enforce');
SQL

now() { date +%s.%N; }
echo "# bulk: one INSERT of $ROWS rows, $ROUNDS rounds"
for r in $(seq 1 "$ROUNDS"); do
    for v in none perrow floe; do
        t0=$(now)
        "${P[@]}" -d content -c "INSERT INTO messages_$v (tenant_id, lead_id, campaign_id, subject)
            SELECT ('00000000-0000-4000-8000-00000000000' || (1 + g % 8))::uuid, 1 + (g * 7919) % $LEADS, 1 + g % 5, 's'
              FROM generate_series(1, $ROWS) g"
        t1=$(now)
        "${P[@]}" -d content -c "INSERT INTO results VALUES ('$v', 'bulk', $r, $t1 - $t0); TRUNCATE messages_$v"
    done
    echo "  round $r done"
done

echo "# OLTP: pgbench, 2 clients, ${SECS}s per variant, $ROUNDS rounds"
for w in leads campaigns; do
    for v in none perrow floe; do
        if [ "$w" = leads ]; then
            lead="random(1, $LEADS)"
        else
            lead="random(1, 5)"   # 8 tenants x 5: 40 keys
        fi
        cat >"$WORK/${w}_$v.sql" <<EOF
\set t random(1, 8)
\set k $lead
INSERT INTO messages_$v (tenant_id, lead_id, campaign_id, subject)
VALUES (('00000000-0000-4000-8000-00000000000' || :t)::uuid, :k, 1 + :k % 5, 'pgbench');
EOF
    done
done
if floe_is_root; then chown -R "$FLOE_OS_USER" "$WORK"; fi
for r in $(seq 1 "$ROUNDS"); do
    for w in leads campaigns; do
        for v in none perrow floe; do
            tps=$(as_cluster_user "$FLOE_PG_BIN/pgbench" -n -c 2 -j 2 -T "$SECS" -f "$WORK/${w}_$v.sql" \
                  -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" content 2>/dev/null | awk '/^tps/ {print $3}')
            "${P[@]}" -d content -c "INSERT INTO results VALUES ('$v', 'oltp_$w', $r, $tps)"
        done
    done
    echo "  round $r done"
done

echo
echo "# results (median of $ROUNDS; bulk in seconds, OLTP in transactions per second)"
"${P[@]}" -d content -F ' | ' <<'SQL'
WITH m AS (
    SELECT phase, variant, percentile_cont(0.5) WITHIN GROUP (ORDER BY value) AS v
      FROM results GROUP BY phase, variant),
p AS (
    SELECT phase, max(v) FILTER (WHERE variant = 'none') AS none,
           max(v) FILTER (WHERE variant = 'perrow') AS perrow,
           max(v) FILTER (WHERE variant = 'floe') AS floe
      FROM m GROUP BY phase)
SELECT '| ' || phase, round(none::numeric, 3), round(perrow::numeric, 3), round(floe::numeric, 3),
       -- cost: extra seconds (bulk) or extra ms per 1000 transactions (OLTP)
       CASE WHEN phase = 'bulk' THEN round((perrow - none)::numeric, 3)
            ELSE round((1000000 / perrow - 1000000 / none)::numeric, 1) END,
       CASE WHEN phase = 'bulk' THEN round((floe - none)::numeric, 3)
            ELSE round((1000000 / floe - 1000000 / none)::numeric, 1) END,
       CASE WHEN phase = 'bulk' THEN round(((floe - none) / NULLIF(perrow - none, 0))::numeric, 3)
            ELSE round(((1000000 / floe - 1000000 / none) / NULLIF(1000000 / perrow - 1000000 / none, 0))::numeric, 3)
       END || 'x |'
  FROM p ORDER BY phase;
SQL
echo "(columns: phase | none | per-row fdw | floe | per-row cost | floe cost | floe / per-row cost)"
