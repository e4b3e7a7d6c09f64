#!/usr/bin/env bash
# floe behind pgbouncer in transaction mode (issue #24, item 4): Debian's pgbouncer, started
# here as the unprivileged cluster user on a local port, 4 server connections for 12 clients.
#   - 8 clients as the application role, 250 transactions each, a random tenant set with
#     floe.set_tenant() per transaction: no foreign row seen, no row written under another
#     tenant; every 7th transaction forgets the tenant and must fail closed, also on a server
#     connection another client just used, and after other clients left a session-wide
#     tenant (SET without LOCAL) on the server connections;
#   - 4 queue workers dequeue and complete 400 jobs through the pooler: each exactly once;
#   - prepared statements: psycopg's defaults fail through pgbouncer 1.18 (protocol-level
#     prepared statements need pgbouncer 1.21 and max_prepared_statements); with
#     prepare_threshold=None every test above runs (README: pgbouncer).
source "$(dirname "$0")/../lib/testlib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3   # Debian's, with python3-psycopg
command -v pgbouncer >/dev/null || fail "pgbouncer is not installed (scripts/test.sh installs Debian's)"
"$PY" -c "import psycopg" 2>/dev/null || fail "python3-psycopg is not installed (scripts/test.sh installs it)"

cluster_throwaway yes
make_test_db
q "CREATE ROLE app LOGIN; CREATE ROLE workers NOLOGIN; GRANT workers TO app"
q "CREATE TABLE notes (id bigserial PRIMARY KEY, tenant_id uuid NOT NULL, note text NOT NULL)"
q "SELECT count(*) FROM floe.enable_tenant_isolation('notes')" >/dev/null
q "GRANT SELECT, INSERT ON notes TO app; GRANT USAGE ON SEQUENCE notes_id_seq TO app"
tenants=$(q "SELECT string_agg(gen_random_uuid()::text, ',') FROM generate_series(1, 3)")
q "BEGIN; SET LOCAL floe.tenant_admin = on;
   INSERT INTO notes (tenant_id, note) SELECT t::uuid, t FROM unnest(string_to_array('$tenants', ',')) t, generate_series(1, 50); COMMIT"
q "SET ROLE workers; SELECT floe.create_queue('work', visibility_timeout => '1 minute')" >/dev/null
q "SELECT count(floe.enqueue('work', jsonb_build_object('n', g))) FROM generate_series(1, 400) g" >/dev/null

echo "# pgbouncer $(pgbouncer --version | head -n 1 | cut -d' ' -f2), transaction mode, 4 server connections"
bdir=$FLOE_TEST_DIR/pgbouncer
own_dir "$bdir" 0700
bport=$(free_port)
{
    echo "[databases]"
    echo "floe_test = host=$FLOE_TEST_DIR port=$PGPORT dbname=floe_test"
    echo "[pgbouncer]"
    echo "listen_addr = 127.0.0.1"
    echo "listen_port = $bport"
    echo "unix_socket_dir ="
    echo "auth_type = trust"
    echo "auth_file = $bdir/users.txt"
    echo "pool_mode = transaction"
    echo "default_pool_size = 4"
    echo "max_client_conn = 100"
    echo "logfile = $bdir/pgbouncer.log"
    echo "pidfile = $bdir/pgbouncer.pid"
} | as_cluster_user tee "$bdir/pgbouncer.ini" >/dev/null
echo '"app" ""' | as_cluster_user tee "$bdir/users.txt" >/dev/null
as_cluster_user pgbouncer -d "$bdir/pgbouncer.ini"
trap 'kill "$(cat "$bdir/pgbouncer.pid" 2>/dev/null)" 2>/dev/null || true; cluster_cleanup_all' EXIT
wait_for 10 "pgbouncer listens on 127.0.0.1:$bport" \
    "$FLOE_PG_BIN/psql" -X -At -h 127.0.0.1 -p "$bport" -U app -d floe_test -c "SELECT true"
DSN="host=127.0.0.1 port=$bport dbname=floe_test user=app"

echo "# 8 tenant clients x 250 transactions"
out=$("$PY" "$HERE/../lib/pooler_clients.py" "$DSN" tenants "$tenants" 250)
val() { echo "$out" | sed -n "s/^$1=//p"; }
echo "$out" | sed 's/^/    /'
expect_eq "$(val errors)" 0 "no unexpected error"
expect_eq "$(val foreign_rows)" 0 "no foreign-tenant row seen in $(val transactions) transactions"
expect_eq "$(val leaked)" 0 "no transaction without its own tenant read a row"
expect_eq "$(val failed_closed)" "$(val forgotten)" "every forgotten tenant failed closed ($(val forgotten)), $(val session_sets) session-wide tenants left on server connections meanwhile"
expect_eq "$(q "SELECT count(*) FROM notes WHERE note <> tenant_id::text")" 0 "no row written under another tenant"
expect_eq "$(q "SELECT count(*) - 150 FROM notes")" "$(val written)" "every write is there"
expect_eq "$(q "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND backend_type = 'client backend'")" 4 \
    "the clients shared 4 server connections"

echo "# 4 queue workers through the pooler"
out=$("$PY" "$HERE/../lib/pooler_clients.py" "$DSN" queue)
expect_eq "$(val completed) $(val distinct)" "400 400" "400 jobs completed, each exactly once"
expect_eq "$(q "SELECT count(*) FROM floe.queue_jobs")" 0 "the queue is empty"

echo "# prepared statements"
out=$("$PY" "$HERE/../lib/pooler_clients.py" "$DSN" prepared)
expect_match "$(val prepared)" "prepared statement \"_pg3_[0-9]+\" (already exists|does not exist)" \
    "psycopg's default prepared statements fail through pgbouncer 1.18 (use prepare_threshold=None, or pgbouncer 1.21+)"
