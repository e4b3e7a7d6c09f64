#!/usr/bin/env bash
# Partition maintenance, floe vs pg_partman 4.7 (postgresql-15-partman), in one run on one
# throwaway cluster, one database per contestant with identical tables:
#   floe      floe.create_parent(), then CALL floe.run_maintenance()  (a transaction per step)
#   partman   partman.create_parent(native, monthly), then partman.run_maintenance()
#             (one transaction for all sets: what pg_partman 4's background worker runs)
#   partman_proc  the same sets, then CALL partman.run_maintenance_proc() (commits per set)
# Each database gets N monthly sets (start 12 months back, premake 4, a default partition,
# an index). "Advancing a month" is done the same way for all: more premade children and
# retention one month shorter (11 months first: one old child per set dropped), so
# maintenance does the work of a month boundary without a fake clock. pg_partman 4.7 makes
# two new children per set when its premake goes up by one (with infinite_time_partitions
# on; without it, it premakes nothing for sets without recent rows), so floe's premake goes
# up by two: both do 2 creates + 1 drop per set (the children column shows it). analyze is
# off for pg_partman (floe does not ANALYZE either).
# Month 1: maintenance alone on the machine, timed. Month 2: maintenance again while writers
# insert into 10 of the sets (pgbench, 2 clients; max insert latency) and a monitor polls
# pg_locks every ~2 ms for locks the maintenance session holds on any parent (longest hold
# of a writer-blocking mode: SHARE or stronger; and of any mode from SHARE UPDATE EXCLUSIVE
# up).
# Usage: [FLOE_CLUSTER_TMP=/dev/shm] pg_test/bench/partition_maint.sh [sets, default 100]   (needs floe and
# pg_partman; /dev/shm keeps the file system's inode allocation out of the comparison)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/../lib/cluster.sh"
N=${1:-100}
if [ ! -f /usr/share/postgresql/15/extension/pg_partman.control ]; then
    floe_is_root || { echo "pg_partman missing: apt-get install postgresql-15-partman" >&2; exit 1; }
    apt-get install -y -qq --no-install-recommends postgresql-15-partman >/dev/null
fi
work=$(mktemp -d /tmp/floe-bench-part.XXXXXX)
chmod 777 "$work"

cluster_throwaway yes "floe.max_workers = 0"
trap 'rm -rf "$work"; cluster_cleanup_all' EXIT
psql_db() { local db=$1; shift; "$FLOE_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }
now_ms() { date +%s%3N; }

for db in floe partman partman_proc; do
    psql_db postgres -c "CREATE DATABASE $db"
    if [ "$db" = floe ]; then
        psql_db "$db" -c "CREATE EXTENSION floe"
    else
        psql_db "$db" -c "CREATE SCHEMA partman" -c "CREATE EXTENSION pg_partman SCHEMA partman"
    fi
    psql_db "$db" -c "
      DO \$\$ BEGIN
        FOR i IN 1..$N LOOP
          EXECUTE format('CREATE TABLE public.t_%s (id bigserial, created_at timestamptz NOT NULL,
                          payload text) PARTITION BY RANGE (created_at)', i);
          EXECUTE format('CREATE INDEX ON public.t_%s (created_at)', i);
        END LOOP;
      END \$\$;"
    # The lock monitor's result table.
    psql_db "$db" -c "CREATE UNLOGGED TABLE lockwatch (relid oid, mode text, vxid text,
                        first_seen timestamptz, last_seen timestamptz, PRIMARY KEY (relid, mode, vxid))"
done

START="date_trunc('month', now()) - interval '12 months'"
declare -A CREATE_MS MAINT_MS LOCK_BLOCK LOCK_ANY WRITE_MAX CHILDREN_BEFORE CHILDREN_AFTER

create_sets() { # db
    local db=$1 t0
    t0=$(now_ms)
    if [ "$db" = floe ]; then
        psql_db "$db" -c "SELECT count(floe.create_parent(format('public.t_%s', i)::regclass, 'created_at',
                             premake => 4, start => $START)) FROM generate_series(1, $N) i" >/dev/null
    else
        psql_db "$db" -c "SELECT count(partman.create_parent(format('public.t_%s', i), 'created_at', 'native',
                             'monthly', p_premake => 4, p_start_partition => ($START)::text))
                            FROM generate_series(1, $N) i" >/dev/null
    fi
    CREATE_MS[$db]=$(($(now_ms) - t0))
}

advance_a_month() { # db
    local db=$1
    if [ "$db" = floe ]; then
        psql_db "$db" -c "UPDATE floe.partition_sets SET premake = premake + 2, retention_mode = 'drop',
                             retention = coalesce(retention - interval '1 month', interval '11 months')"
    else
        psql_db "$db" -c "UPDATE partman.part_config SET premake = premake + 1, retention_keep_table = false,
                             infinite_time_partitions = true,
                             retention = coalesce((retention::interval - interval '1 month')::text, '11 months')"
    fi
}

children() { # db
    psql_db "$1" -c "SELECT count(*) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent
                      WHERE p.relname ~ '^t_[0-9]+$'"
}

monitor() { # db  (runs until the session named 'maint' has come and gone)
    psql_db "$1" -c "
      DO \$\$
      DECLARE
        target int;
        t0 timestamptz := clock_timestamp();
      BEGIN
        LOOP
          PERFORM pg_stat_clear_snapshot();
          SELECT pid INTO target FROM pg_stat_activity WHERE application_name = 'maint';
          EXIT WHEN target IS NOT NULL OR clock_timestamp() - t0 > interval '60 s';
          PERFORM pg_sleep(0.001);
        END LOOP;
        WHILE target IS NOT NULL AND EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = target) LOOP
          PERFORM pg_stat_clear_snapshot();
          INSERT INTO lockwatch
          SELECT l.relation, l.mode, l.virtualtransaction, clock_timestamp(), clock_timestamp()
            FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
           WHERE l.pid = target AND l.granted AND c.relkind = 'p' AND c.relname ~ '^t_[0-9]+\$'
             AND l.mode IN ('ShareUpdateExclusiveLock', 'ShareLock', 'ShareRowExclusiveLock',
                            'ExclusiveLock', 'AccessExclusiveLock')
          ON CONFLICT (relid, mode, vxid) DO UPDATE SET last_seen = excluded.last_seen;
          PERFORM pg_sleep(0.002);
        END LOOP;
      END \$\$;"
}

run_maint() { # db
    case $1 in
    floe) PGAPPNAME=maint psql_db "$1" -c "CALL floe.run_maintenance()" ;;
    partman) PGAPPNAME=maint psql_db "$1" -c "SELECT partman.run_maintenance(p_analyze => false)" >/dev/null ;;
    partman_proc) PGAPPNAME=maint psql_db "$1" -c "CALL partman.run_maintenance_proc(p_analyze => false)" ;;
    esac
}

timed_maintenance() { # db: the month's maintenance alone on the machine
    local db=$1 t0
    t0=$(now_ms)
    run_maint "$db"
    MAINT_MS[$db]=$(($(now_ms) - t0))
}

loaded_maintenance() { # db: the next month's maintenance under write load, locks watched
    local db=$1 mon wr
    cat >"$work/write.sql" <<'EOF'
\set t random(1, 10)
INSERT INTO t_:t (created_at, payload) VALUES (now(), 'x');
EOF
    monitor "$db" &
    mon=$!
    (cd "$work" && "$FLOE_PG_BIN/pgbench" -n -c 2 -T 8 -f write.sql -l --log-prefix="w_$db" "$db" \
        >"$work/pgbench_$db.txt" 2>&1) &
    wr=$!
    sleep 2
    run_maint "$db"
    wait $mon
    wait $wr
    LOCK_BLOCK[$db]=$(psql_db "$db" -c "SELECT coalesce(round(max(extract(epoch FROM last_seen - first_seen)) * 1000), 0)
                                         FROM lockwatch WHERE mode <> 'ShareUpdateExclusiveLock'")
    LOCK_ANY[$db]=$(psql_db "$db" -c "SELECT coalesce(round(max(extract(epoch FROM last_seen - first_seen)) * 1000), 0)
                                       FROM lockwatch")
    WRITE_MAX[$db]=$(cat "$work"/w_"$db".* | awk 'BEGIN { m = 0 } { if ($3 > m) m = $3 } END { printf "%d", m / 1000 }')
    if grep -qE 'aborted|ERROR' "$work/pgbench_$db.txt"; then
        echo "writers failed in $db:" >&2
        grep -E 'aborted|ERROR' "$work/pgbench_$db.txt" >&2
        exit 1
    fi
}

for db in floe partman partman_proc; do
    echo "== $db: create $N sets"
    create_sets "$db"
    CHILDREN_BEFORE[$db]=$(children "$db")
    advance_a_month "$db"
    echo "== $db: maintenance (alone, timed)"
    timed_maintenance "$db"
    CHILDREN_AFTER[$db]=$(children "$db")
    advance_a_month "$db"
    echo "== $db: maintenance under write load (locks, writer latency)"
    loaded_maintenance "$db"
done

echo
echo "partition maintenance, $N monthly sets (17 children + default each), PostgreSQL 15, $(nproc) cores"
echo "(create_ms, maint_ms, children: month 1 alone; lock and write columns: month 2 under load)"
printf '%-13s %12s %10s %10s %16s %14s %14s\n' tool create_ms maint_ms children "parent_lock_ms*" "any_lock_ms*" write_max_ms
for db in floe partman partman_proc; do
    printf '%-13s %12s %10s %10s %16s %14s %14s\n' "$db" "${CREATE_MS[$db]}" "${MAINT_MS[$db]}" \
        "${CHILDREN_BEFORE[$db]}->${CHILDREN_AFTER[$db]}" "${LOCK_BLOCK[$db]}" "${LOCK_ANY[$db]}" "${WRITE_MAX[$db]}"
done
echo "* longest a lock on one parent was seen held by the maintenance session (polled every ~2 ms):"
echo "  parent_lock = SHARE or stronger (blocks writers), any_lock = SHARE UPDATE EXCLUSIVE or stronger"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
echo "maintenance time: pg_partman run_maintenance() / floe = $(ratio "${MAINT_MS[partman]}" "${MAINT_MS[floe]}")x," \
    "run_maintenance_proc() / floe = $(ratio "${MAINT_MS[partman_proc]}" "${MAINT_MS[floe]}")x"
echo "create_parent time: pg_partman / floe = $(ratio "${CREATE_MS[partman]}" "${CREATE_MS[floe]}")x"
