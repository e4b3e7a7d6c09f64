#!/usr/bin/env bash
# Upgrade path: every released version installs (from its kept install script in sql/) and
# ALTER EXTENSION floe UPDATE brings it to the current version with exactly the objects a
# fresh install has (functions and their bodies, tables, columns, constraints, indexes,
# policies, grants, comments, event triggers, built-in jobs, pg_dump configuration), and
# what the old version stored still works after the update.
source "$(dirname "$0")/../lib/testlib.sh"

cluster_throwaway yes "floe.max_workers = 0"
current=$(qd postgres "SELECT default_version FROM pg_available_extensions WHERE name = 'floe'")
echo "# current version $current"

# A description of every object of the extension, one line each, sorted.
signature() {
    qd "$1" "
SELECT line FROM (
  SELECT 'fn ' || p.oid::regprocedure || ' -> ' || coalesce(pg_get_function_result(p.oid), '') || ' '
         || p.prokind::text || p.provolatile::text || p.proisstrict::text || p.prosecdef::text || p.proparallel::text || ' '
         || coalesce(array_to_string(p.proconfig, ','), '') || ' ' || md5(p.prosrc) || ' '
         || coalesce(p.probin, '') || ' ' || coalesce(obj_description(p.oid, 'pg_proc'), '')
         || ' ' || coalesce(p.proacl::text, '') AS line
    FROM pg_proc p WHERE p.pronamespace = 'floe'::regnamespace
  UNION ALL
  SELECT 'rel ' || c.relname || ' ' || c.relkind::text || ' rls=' || c.relrowsecurity || ' '
         || coalesce(c.relacl::text, '') || ' ' || coalesce(obj_description(c.oid, 'pg_class'), '')
    FROM pg_class c WHERE c.relnamespace = 'floe'::regnamespace
  UNION ALL
  SELECT 'col ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
         || ' notnull=' || a.attnotnull || ' ' || a.attidentity::text || a.attgenerated::text || ' '
         || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
    FROM pg_class c
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
   WHERE c.relnamespace = 'floe'::regnamespace AND c.relkind IN ('r', 'p', 'v')
  UNION ALL
  SELECT 'con ' || conrelid::regclass || ' ' || pg_get_constraintdef(oid)
    FROM pg_constraint WHERE connamespace = 'floe'::regnamespace
  UNION ALL
  SELECT 'idx ' || pg_get_indexdef(i.indexrelid)
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
   WHERE c.relnamespace = 'floe'::regnamespace
  UNION ALL
  SELECT 'pol ' || polrelid::regclass || ' ' || polname || ' ' || polcmd::text || ' '
         || coalesce(pg_get_expr(polqual, polrelid), '') || ' '
         || coalesce(pg_get_expr(polwithcheck, polrelid), '')
    FROM pg_policy WHERE polrelid::regclass::text LIKE 'floe.%'
  UNION ALL
  SELECT 'evt ' || evtname || ' ' || evtevent || ' ' || evtfoid::regproc || ' '
         || coalesce(array_to_string(evttags, ','), '')
    FROM pg_event_trigger
  UNION ALL
  SELECT 'job ' || name || ' ' || schedule || ' ' || command || ' ' || owner
    FROM floe.jobs WHERE builtin
  UNION ALL
  SELECT 'dump ' || t::regclass || ' ' || coalesce(c, '')
    FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS u(t, c)
   WHERE e.extname = 'floe'
  UNION ALL
  SELECT 'members ' || count(*) FROM pg_depend
   WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
     AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'floe')
  UNION ALL
  SELECT 'role ' || rolname FROM pg_roles WHERE rolname LIKE 'floe%'
) s ORDER BY line"
}

qd postgres "CREATE DATABASE fresh"
qd fresh "CREATE EXTENSION floe"
signature fresh >"$FLOE_TEST_DIR/fresh.sig"

# Every release whose install script the repository keeps (sql/floe--A.sql) must be installed
# next to the current one, and is updated here.
kept=$(ls "$(dirname "$0")/../../sql/" | sed -n 's/^floe--\([0-9.]*\)\.sql$/\1/p' | sort -V | tr '\n' ' ')
available=$(ls "$("$FLOE_PG_BIN/pg_config" --sharedir)/extension/" | sed -n 's/^floe--\([0-9.]*\)\.sql$/\1/p' |
    grep -vxF "$current" | sort -V | tr '\n' ' ')
[ -n "$kept" ] || fail "no kept release in sql/"
expect_eq "$available" "$kept" "every kept release is installed beside $current"
updated=0
for old in $available; do
    echo "# $old -> $current"
    db="from_${old//./_}"
    qd postgres "CREATE DATABASE $db"
    qd "$db" "CREATE EXTENSION floe VERSION '$old'"
    # State the old version keeps: a tenant-isolated table with rows, a user job.
    qd "$db" "CREATE TABLE notes (id int, tenant_id uuid NOT NULL, body text)"
    qd "$db" "SELECT count(*) FROM floe.enable_tenant_isolation('notes')" >/dev/null
    qd "$db" "BEGIN; SELECT floe.set_tenant('00000000-0000-0000-0000-00000000000a');
              INSERT INTO notes VALUES (1, DEFAULT, 'kept'); COMMIT;" >/dev/null
    qd "$db" "SELECT floe.schedule('nightly', '0 3 * * *', 'SELECT 1')" >/dev/null
    qd "$db" "ALTER EXTENSION floe UPDATE"
    expect_eq "$(qd "$db" "SELECT extversion FROM pg_extension WHERE extname = 'floe'")" "$current" \
        "$old updated to $current"
    signature "$db" >"$FLOE_TEST_DIR/$db.sig"
    if ! diff -u "$FLOE_TEST_DIR/fresh.sig" "$FLOE_TEST_DIR/$db.sig"; then
        fail "$old -> $current: the updated extension differs from a fresh install (diff above)"
    fi
    echo "  ok - $old -> $current has exactly the objects of a fresh $current"
    expect_eq "$(qd "$db" "BEGIN; SELECT floe.set_tenant('00000000-0000-0000-0000-00000000000a');
                            SELECT body FROM notes; COMMIT;" | tail -n 1)" kept "old data readable under the old policy"
    expect_eq "$(qd "$db" "SELECT count(*) FROM floe.jobs WHERE name = 'nightly'")" 1 "old job kept"
    # The new version's features work in the updated database.
    qd "$db" "CREATE TABLE ev (at timestamptz NOT NULL) PARTITION BY RANGE (at)"
    expect_eq "$(qd "$db" "SELECT floe.create_parent('ev', 'at', premake => 1)")" 2 "create_parent after update"
    qd "$db" "CALL floe.run_maintenance(as_of => now() + interval '1 month')"
    expect_eq "$(qd "$db" "SELECT count(*) FROM floe.partitions('ev') WHERE NOT is_default")" 3 \
        "run_maintenance after update"
    qd "$db" "SELECT floe.create_queue('mail')" >/dev/null
    qd "$db" "SELECT floe.enqueue('mail', '{\"to\": 1}', 'high')" >/dev/null
    expect_eq "$(qd "$db" "SELECT priority FROM floe.dequeue('mail')")" high "dequeue after update"
    qd "$db" "SELECT floe.complete(id) FROM floe.queued_jobs" >/dev/null
    expect_eq "$(qd "$db" "SELECT state FROM floe.finished_jobs")" completed "complete after update"
    qd "$db" "CREATE MATERIALIZED VIEW ev_count AS SELECT count(*) AS n FROM ev" >/dev/null
    expect_eq "$(qd "$db" "SELECT floe.register_matview('ev_count', min_interval => '0', concurrently => false)")" 1 \
        "register_matview after update"
    qd "$db" "INSERT INTO ev VALUES (now())" >/dev/null
    expect_eq "$(qd "$db" "SELECT count(*) FROM floe.refresh_due()")" 1 "refresh_due after update"
    expect_eq "$(qd "$db" "SELECT n FROM ev_count")" 1 "matview refreshed after update"
    expect_eq "$(qd "$db" "BEGIN; SELECT floe.set_tenant('aaaaaaaa-0000-0000-0000-000000000001');
        SELECT floe.content_get_text(floe.content_put(repeat('body ', 100))) = repeat('body ', 100); COMMIT" | tail -1)" t \
        "content_put and content_get after update"
    qd "$db" "CREATE TABLE au (id int PRIMARY KEY, v text); SELECT floe.enable_audit('au');
        INSERT INTO au VALUES (1, 'a'); UPDATE au SET v = 'b'" >/dev/null
    expect_eq "$(qd "$db" "SELECT floe.audit_seal()")" 2 "audit entries sealed after update"
    expect_eq "$(qd "$db" "SELECT status FROM floe.verify_audit()")" ok "verify_audit after update"
    expect_eq "$(qd "$db" "SELECT count(*) FROM floe.health() WHERE status = 'critical'")" 0 "health has no critical check"
    updated=$((updated + 1))
done
expect_eq "$updated" "$(echo "$kept" | wc -w)" "every kept release was updated to $current"
