#!/usr/bin/env bash
# Content store against TOAST, in one run on one throwaway cluster.
#
# Corpus: gen_corpus.py (36 templates x 8 tenants, personalised names, links, signatures;
# 2-50 KB bodies, about 20% exact duplicates within a tenant), loaded once into a staging
# table that stores it uncompressed. Every variant is then filled from that staging table
# with INSERT ... SELECT (the same read cost for all), and measured:
#   toast_pglz   text column, COMPRESSION pglz (Postgres's default)
#   toast_lz4    text column, COMPRESSION lz4
#   floe_lz4     bytea column STORAGE EXTERNAL holding floe.compress(body, 'lz4')
#   floe_zstd    ... floe.compress(body, 'zstd', 3)
#   floe_dict    ... floe.compress(body, 'zstd', 3, <the tenant's trained dictionary>)
#   store_warm   floe.content_put() (dedup per tenant, lz4: the default warm tier), with the
#                user table keeping (id, tenant, hash)
#   store_archive the same store after floe.content_tier() moved every body to the archive
#                tier (zstd 19 + the tenant's dictionary); "ingest" is the tiering rate
# Stored bytes = table + TOAST + indexes (for the store: the user table, floe.content and
# the dictionaries); payload bytes = the bodies' own bytes as stored (compressed values,
# frames, dictionaries) without the rows, pages and indexes around them. content_get
# latency: 2000 reads of random bodies of 18-22 KB, timed inside the server (clock_timestamp
# around each call in PL/pgSQL; no network), against the same read from the TOAST lz4 table
# (index lookup + detoast).
# Usage: pg_test/bench/content.sh [rows, default 100000]
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/../lib/cluster.sh"
ROWS=${1:-100000}
DICT_SIZE=${DICT_SIZE:-}   # bytes; empty: floe.train_dictionary's default
WORK=$(mktemp -d /tmp/floe-bench-content.XXXXXX)
if floe_is_root; then chown "$FLOE_OS_USER" "$WORK"; fi

echo "# generating $ROWS rows"
python3 "$HERE/gen_corpus.py" --rows "$ROWS" --out "$WORK/corpus.tsv"
if floe_is_root; then chown "$FLOE_OS_USER" "$WORK/corpus.tsv"; fi

cluster_throwaway yes "floe.max_workers = 0" "shared_buffers = '1GB'" "max_wal_size = '8GB'"
trap 'rm -rf "$WORK"; cluster_cleanup_all' EXIT
"$FLOE_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE bench"
PSQL=("$FLOE_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d bench)
"${PSQL[@]}" <<SQL
CREATE EXTENSION floe;
CREATE TABLE staging (id int PRIMARY KEY, tenant uuid NOT NULL, template int NOT NULL, body text NOT NULL);
ALTER TABLE staging ALTER COLUMN body SET STORAGE EXTERNAL;
COPY staging FROM '$WORK/corpus.tsv';
VACUUM ANALYZE staging;
CREATE TABLE results (variant text PRIMARY KEY, seconds float8, bytes bigint, rows bigint, payload bigint);
SQL
echo "# staging: $("${PSQL[@]}" -c "SELECT count(*) || ' rows, ' || pg_size_pretty(sum(octet_length(body))) || ' raw' FROM staging")"

now() { date +%s.%N; }
# The bodies' own bytes, as stored (compressed values, frames and dictionaries), without
# the rows, pages and indexes around them.
payload_of() {
    case $1 in
        store*) echo "(SELECT sum(pg_column_size(data)) FROM floe.content)
                      + (SELECT coalesce(sum(size), 0) FROM floe.content_dictionaries)" ;;
        *) echo "(SELECT sum(pg_column_size(body)) FROM $1)" ;;
    esac
}
# run VARIANT RELATIONS SQL: times SQL, then records the size of the relations.
run() {
    local variant=$1 rels=$2 sql=$3 t0 t1
    "${PSQL[@]}" -c "CHECKPOINT" >/dev/null
    t0=$(now)
    if [[ $sql == DO* ]]; then
        "${PSQL[@]}" -c "$sql" >/dev/null   # commits inside: sets admin mode itself
    else
        "${PSQL[@]}" "${ADMIN[@]}" -c "$sql" -c "COMMIT" >/dev/null
    fi
    t1=$(now)
    "${PSQL[@]}" -c "INSERT INTO results SELECT '$variant', $t1 - $t0,
        (SELECT sum(pg_total_relation_size(r)) FROM unnest('$rels'::regclass[]) r), $ROWS,
        $(payload_of "$variant")"
    echo "  $variant: $(echo "$t1 - $t0" | bc) s"
}

echo "# loading"
"${PSQL[@]}" <<'SQL'
CREATE TABLE toast_pglz (id int PRIMARY KEY, tenant uuid NOT NULL, body text COMPRESSION pglz NOT NULL);
CREATE TABLE toast_lz4  (id int PRIMARY KEY, tenant uuid NOT NULL, body text COMPRESSION lz4 NOT NULL);
CREATE TABLE floe_lz4   (id int PRIMARY KEY, tenant uuid NOT NULL, body bytea NOT NULL);
CREATE TABLE floe_zstd  (id int PRIMARY KEY, tenant uuid NOT NULL, body bytea NOT NULL);
CREATE TABLE floe_dict  (id int PRIMARY KEY, tenant uuid NOT NULL, body bytea NOT NULL);
CREATE TABLE store      (id int PRIMARY KEY, tenant uuid NOT NULL, hash bytea NOT NULL);
ALTER TABLE floe_lz4 ALTER COLUMN body SET STORAGE EXTERNAL;
ALTER TABLE floe_zstd ALTER COLUMN body SET STORAGE EXTERNAL;
ALTER TABLE floe_dict ALTER COLUMN body SET STORAGE EXTERNAL;
SQL
# The store's functions work across tenants here: cross-tenant admin mode, which is per
# transaction (a session-wide or ALTER ROLE ... SET is ignored), around each statement.
ADMIN=(-c "BEGIN" -c "SET LOCAL floe.tenant_admin = on")
run toast_pglz '{toast_pglz}' "INSERT INTO toast_pglz SELECT id, tenant, body FROM staging"
run toast_lz4 '{toast_lz4}' "INSERT INTO toast_lz4 SELECT id, tenant, body FROM staging"
run floe_lz4 '{floe_lz4}' "INSERT INTO floe_lz4 SELECT id, tenant, floe.compress(body, 'lz4') FROM staging"
run floe_zstd '{floe_zstd}' "INSERT INTO floe_zstd SELECT id, tenant, floe.compress(body, 'zstd', 3) FROM staging"
run store_warm '{store,floe.content,floe.content_dictionaries}' \
    "INSERT INTO store SELECT id, tenant, floe.content_put(body, tenant) FROM staging"
# One dictionary per tenant, trained over its newest 4000 bodies (512 KiB each; the defaults) in the store.
t0=$(now)
"${PSQL[@]}" "${ADMIN[@]}" -c "SELECT count(floe.train_dictionary(t${DICT_SIZE:+, dict_size => $DICT_SIZE})) FROM (SELECT DISTINCT tenant AS t FROM staging) x" -c "COMMIT" >/dev/null
echo "  training 8 dictionaries: $(echo "$(now) - $t0" | bc) s"
run floe_dict '{floe_dict}' "INSERT INTO floe_dict SELECT s.id, s.tenant, floe.compress(s.body, 'zstd', 3, d.id)
    FROM staging s JOIN (SELECT tenant, max(id) AS id FROM floe.content_dictionaries GROUP BY tenant) d USING (tenant)"
"${PSQL[@]}" "${ADMIN[@]}" -c "SELECT floe.set_content_policy(warm_after => '0', cold_after => '0', archive_after => '0')" -c "COMMIT" >/dev/null
run store_archive '{store,floe.content,floe.content_dictionaries}' "DO \$\$ BEGIN
    PERFORM set_config('floe.tenant_admin', 'on', true);
    WHILE floe.content_tier(5000) > 0 LOOP
        COMMIT;
        PERFORM set_config('floe.tenant_admin', 'on', true);
    END LOOP; END \$\$"
# The archive's steady size: the tiering's old row versions are garbage (VACUUM frees them
# for reuse by later writes; VACUUM FULL gives the files back, which is what is measured).
"${PSQL[@]}" -c "VACUUM FULL floe.content" -c "VACUUM ANALYZE" >/dev/null
"${PSQL[@]}" -c "UPDATE results SET bytes = (SELECT sum(pg_total_relation_size(r))
    FROM unnest('{store,floe.content,floe.content_dictionaries}'::regclass[]) r) WHERE variant = 'store_archive'"

echo "# content_get latency (2000 reads of 18-22 KB bodies, in-server)"
"${PSQL[@]}" <<'SQL'
CREATE TABLE sample AS
SELECT s.id, s.tenant, s.hash FROM store s JOIN floe.content c ON c.tenant = s.tenant AND c.hash = s.hash
 WHERE c.raw_size BETWEEN 18000 AND 22000 ORDER BY random() LIMIT 2000;
CREATE TABLE lat (variant text, us float8);
CREATE FUNCTION time_reads(variant text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE r record; t0 timestamptz; v bytea; s text;
BEGIN
    FOR r IN SELECT * FROM sample LOOP
        t0 := clock_timestamp();
        IF variant = 'toast_lz4' THEN
            SELECT body INTO s FROM toast_lz4 WHERE id = r.id;
            PERFORM length(s);
        ELSE
            v := floe.content_get(r.hash, r.tenant);
        END IF;
        INSERT INTO lat VALUES (variant, extract(epoch FROM clock_timestamp() - t0) * 1e6);
    END LOOP;
END $$;
BEGIN;
SET LOCAL floe.tenant_admin = on;
SELECT time_reads('toast_lz4'), time_reads('store_archive');   -- warm-up
TRUNCATE lat;
SELECT time_reads('toast_lz4'), time_reads('store_archive');
COMMIT;
SQL

echo
echo "| variant | stored bytes | vs TOAST lz4 | payload bytes | payload vs TOAST lz4 | ingest rows/s | get p50 µs | get p99 µs |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
"${PSQL[@]}" -F ' | ' <<'SQL'
SELECT '| ' || r.variant, pg_size_pretty(r.bytes),
       round((SELECT bytes FROM results WHERE variant = 'toast_lz4')::numeric / r.bytes, 2) || 'x smaller',
       pg_size_pretty(r.payload),
       round((SELECT payload FROM results WHERE variant = 'toast_lz4')::numeric / r.payload, 2) || 'x smaller',
       round(r.rows / r.seconds),
       coalesce(round(percentile_cont(0.5) WITHIN GROUP (ORDER BY l.us)::numeric)::text, ''),
       coalesce(round(percentile_cont(0.99) WITHIN GROUP (ORDER BY l.us)::numeric)::text, '') || ' |'
  FROM results r LEFT JOIN lat l ON l.variant = r.variant
 GROUP BY r.variant, r.bytes, r.rows, r.seconds, r.payload
 ORDER BY r.bytes DESC;
SQL
echo
echo "# where the archive's bytes are"
"${PSQL[@]}" -F ' ' <<'SQL'
SELECT what, pg_size_pretty(bytes) FROM (VALUES
    ('frames (payload of floe.content)', (SELECT sum(pg_column_size(data)) FROM floe.content)),
    ('dictionaries', (SELECT pg_total_relation_size('floe.content_dictionaries'))),
    ('user table (id, tenant, hash) + key', (SELECT pg_total_relation_size('store'))),
    ('floe.content heap + TOAST', (SELECT pg_table_size('floe.content'))),
    ('  of which rows without the frame (tuple headers, key, tier, sizes, counts, SimHash, times)',
       (SELECT sum(pg_column_size(c.*) - pg_column_size(c.data) + 4) FROM floe.content c)),
    ('floe.content indexes', (SELECT pg_indexes_size('floe.content')))) v(what, bytes);
SQL
echo
"${PSQL[@]}" -F ' ' -c "SELECT 'raw bytes:', pg_size_pretty(sum(octet_length(body))), 'distinct bodies:', count(DISTINCT (tenant, md5(body))) FROM staging"
"${PSQL[@]}" -F ' ' -c "SELECT 'store:', bodies, 'bodies,', dedup_hits, 'dedup hits, ratio with dedup', ratio_with_dedup FROM floe.content_stats WHERE tenant IS NULL AND tier IS NULL"
