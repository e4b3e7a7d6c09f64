#!/usr/bin/env bash
# Job queue throughput and dequeue cost, floe vs a textbook SKIP LOCKED queue and vs pgmq 1.5.1,
# in one run on one throwaway cluster, with the same clients and workload:
#   textbook  River's shape: one table, state + queue + priority + scheduled_at, the index
#             (state, queue, priority, scheduled_at, id); dequeue = UPDATE ... WHERE id IN
#             (SELECT ... ORDER BY priority, scheduled_at, id LIMIT n FOR UPDATE SKIP LOCKED);
#             complete = UPDATE state = 'completed' (rows stay, as River's do until its cleaner)
#   pgmq      pgmq 1.5.1's own SQL ($PGMQ_SQL, default ../shared/vendor/pgmq-1.5.1.sql),
#             loaded with psql -f, no CREATE EXTENSION; pgmq.send[_batch] / pgmq.read (vt 300 s,
#             floe's default visibility timeout) / pgmq.archive. archive, not delete: floe's
#             complete moves the job into its archive (DELETE + INSERT) and the textbook queue
#             keeps it, so pgmq.delete would measure less work; pgmq.archive is the same DELETE
#             + INSERT into the queue's archive table. pgmq has no priorities: FIFO by msg_id.
#   floe      floe.enqueue[_many] / floe.dequeue / floe.complete[_many] (aging order, leases,
#             membership checks, completed jobs moved to the monthly archive)
# and the two that finish a job and fetch the next in one statement, as a worker loop does:
#   floe_loop      floe.enqueue[_many] / floe.complete_and_dequeue(done => the previous jobs)
#   textbook_loop  the textbook queue's complete and dequeue as one statement (two UPDATEs in
#                  one WITH), the same saving of a round trip, so the loop is compared with a
#                  loop too; pgmq has no such call.
# 1. Throughput: each pgbench transaction enqueues a job (or 50), dequeues one (or 50) and
#    completes it (them): three statements, each its own transaction, as a worker runs them
#    (two for the loops: enqueue, then complete the previous and dequeue the next).
#    4 clients, priorities at random, a 10k backlog kept steady; median of ROUNDS interleaved
#    runs; jobs/s = transactions/s x batch.
# 2. Dequeue cost at a backlog of 10k and of 1M ready jobs (priorities at random, runnable
#    over the past hour): 1 client dequeues and completes 3000 jobs; pgbench's per-statement
#    latency of the dequeue.
# The cluster is disposable (fsync and synchronous_commit off): this measures the CPU and
# I/O of the queue itself, not the disk's flush time, which is the same for all three.
# Usage: pg_test/bench/queue.sh [seconds per run, default 15] [rounds, default 3]
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/../lib/cluster.sh"
SECS=${1:-15}
ROUNDS=${2:-3}
CLIENTS=4
PGMQ_SQL=${PGMQ_SQL:-$HERE/../../../shared/vendor/pgmq-1.5.1.sql}  # ../shared/vendor/ beside the checkout
WORK=$(mktemp -d /tmp/floe-bench-queue.XXXXXX)
if floe_is_root; then chown "$FLOE_OS_USER" "$WORK"; fi

cluster_throwaway yes "floe.max_workers = 0"
trap '{ [ -s "$WORK/pgbench.log" ] && grep -iE "error|fatal" "$WORK/pgbench.log" | head -5; } || true; rm -rf "$WORK"; cluster_cleanup_all' EXIT
# pgmq's SQL as plain SQL: without what only an extension script may hold (1.5.1's has none of
# it; its ALTER EXTENSION calls run only when pg_extension lists pgmq).
sed -e '/^\\echo/d' -e '/pg_extension_config_dump/d' -e 's/@extschema@/pgmq/g' \
    "$PGMQ_SQL" >"$WORK/pgmq.sql"
"$FLOE_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE bench"
PSQL=("$FLOE_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d bench)
"${PSQL[@]}" -f "$WORK/pgmq.sql"
"${PSQL[@]}" <<'SQL'
CREATE EXTENSION floe;
SELECT floe.create_queue('bench') \g /dev/null
SELECT pgmq.create('bench') \g /dev/null
CREATE TABLE tb_job (
    id           bigserial PRIMARY KEY,
    state        text        NOT NULL DEFAULT 'available',
    queue        text        NOT NULL,
    priority     smallint    NOT NULL DEFAULT 1,
    scheduled_at timestamptz NOT NULL DEFAULT now(),
    attempt      integer     NOT NULL DEFAULT 0,
    attempted_at timestamptz,
    finalized_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    args         jsonb       NOT NULL
);
CREATE INDEX tb_job_fetch ON tb_job (state, queue, priority, scheduled_at, id);
-- A backlog of n ready jobs in each queue: random priorities, runnable over the past hour.
CREATE PROCEDURE backlog(n int) LANGUAGE plpgsql AS $$
DECLARE
    done int := 0;
    chunk int;
BEGIN
    TRUNCATE tb_job;
    PERFORM floe.drop_queue('bench', force => true);
    PERFORM floe.create_queue('bench');
    PERFORM pgmq.drop_queue('bench');
    PERFORM pgmq.create('bench');
    WHILE done < n LOOP
        chunk := least(100000, n - done);
        INSERT INTO tb_job (queue, priority, scheduled_at, args)
        SELECT 'bench', (random() * 4)::int, now() - random() * interval '1 hour',
               '{"to": "lead@example.com", "template": 42, "campaign": 7}'
          FROM generate_series(1, chunk);
        PERFORM floe.enqueue_many('bench', array_fill('{"to": "lead@example.com", "template": 42, "campaign": 7}'::jsonb, ARRAY[chunk / 5]),
                                  p, now() - random() * interval '1 hour')
           FROM unnest(ARRAY['critical', 'high', 'normal', 'low', 'background']) p;
        PERFORM pgmq.send_batch('bench', array_fill('{"to": "lead@example.com", "template": 42, "campaign": 7}'::jsonb, ARRAY[chunk / 5]),
                                now() - random() * interval '1 hour')
           FROM generate_series(1, 5);
        done := done + chunk;
        COMMIT;
    END LOOP;
END
$$;
SQL

cat >"$WORK/floe_1.sql" <<'EOF'
\set p random(1, 5)
SELECT floe.enqueue('bench', '{"to": "lead@example.com", "template": 42, "campaign": 7}', (ARRAY['critical', 'high', 'normal', 'low', 'background'])[:p]);
SELECT id FROM floe.dequeue('bench') \gset
SELECT floe.complete(:id);
EOF
cat >"$WORK/textbook_1.sql" <<'EOF'
\set p random(0, 4)
INSERT INTO tb_job (queue, priority, args) VALUES ('bench', :p, '{"to": "lead@example.com", "template": 42, "campaign": 7}');
WITH j AS (UPDATE tb_job SET state = 'running', attempt = attempt + 1, attempted_at = now() WHERE id IN (SELECT id FROM tb_job WHERE state = 'available' AND queue = 'bench' AND scheduled_at <= now() ORDER BY priority, scheduled_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id) SELECT id FROM j \gset
UPDATE tb_job SET state = 'completed', finalized_at = now() WHERE id = :id;
EOF
cat >"$WORK/pgmq_1.sql" <<'EOF'
SELECT pgmq.send('bench', '{"to": "lead@example.com", "template": 42, "campaign": 7}');
SELECT msg_id AS id FROM pgmq.read('bench', 300, 1) \gset
SELECT pgmq.archive('bench', :id::bigint);
EOF
cat >"$WORK/floe_loop_1.sql" <<'EOF'
\set p random(1, 5)
SELECT floe.enqueue('bench', '{"to": "lead@example.com", "template": 42, "campaign": 7}', (ARRAY['critical', 'high', 'normal', 'low', 'background'])[:p]);
SELECT array_agg(id) AS ids FROM floe.complete_and_dequeue('bench', done => :ids::bigint[]) \gset
EOF
cat >"$WORK/textbook_loop_1.sql" <<'EOF'
\set p random(0, 4)
INSERT INTO tb_job (queue, priority, args) VALUES ('bench', :p, '{"to": "lead@example.com", "template": 42, "campaign": 7}');
WITH c AS (UPDATE tb_job SET state = 'completed', finalized_at = now() WHERE id = ANY (:ids::bigint[])), j AS (UPDATE tb_job SET state = 'running', attempt = attempt + 1, attempted_at = now() WHERE id IN (SELECT id FROM tb_job WHERE state = 'available' AND queue = 'bench' AND scheduled_at <= now() ORDER BY priority, scheduled_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id) SELECT array_agg(id) AS ids FROM j \gset
EOF
cat >"$WORK/floe_loop_50.sql" <<'EOF'
\set p random(1, 5)
SELECT count(*) FROM floe.enqueue_many('bench', array_fill('{"to": "lead@example.com", "template": 42, "campaign": 7}'::jsonb, ARRAY[50]), (ARRAY['critical', 'high', 'normal', 'low', 'background'])[:p]);
SELECT array_agg(id) AS ids FROM floe.complete_and_dequeue('bench', done => :ids::bigint[], batch => 50) \gset
EOF
cat >"$WORK/textbook_loop_50.sql" <<'EOF'
\set p random(0, 4)
INSERT INTO tb_job (queue, priority, args) SELECT 'bench', :p, '{"to": "lead@example.com", "template": 42, "campaign": 7}' FROM generate_series(1, 50);
WITH c AS (UPDATE tb_job SET state = 'completed', finalized_at = now() WHERE id = ANY (:ids::bigint[])), j AS (UPDATE tb_job SET state = 'running', attempt = attempt + 1, attempted_at = now() WHERE id IN (SELECT id FROM tb_job WHERE state = 'available' AND queue = 'bench' AND scheduled_at <= now() ORDER BY priority, scheduled_at, id LIMIT 50 FOR UPDATE SKIP LOCKED) RETURNING id) SELECT array_agg(id) AS ids FROM j \gset
EOF
cat >"$WORK/floe_50.sql" <<'EOF'
\set p random(1, 5)
SELECT count(*) FROM floe.enqueue_many('bench', array_fill('{"to": "lead@example.com", "template": 42, "campaign": 7}'::jsonb, ARRAY[50]), (ARRAY['critical', 'high', 'normal', 'low', 'background'])[:p]);
SELECT array_agg(id) AS ids FROM floe.dequeue('bench', 50) \gset
SELECT floe.complete_many(:ids);
EOF
cat >"$WORK/textbook_50.sql" <<'EOF'
\set p random(0, 4)
INSERT INTO tb_job (queue, priority, args) SELECT 'bench', :p, '{"to": "lead@example.com", "template": 42, "campaign": 7}' FROM generate_series(1, 50);
WITH j AS (UPDATE tb_job SET state = 'running', attempt = attempt + 1, attempted_at = now() WHERE id IN (SELECT id FROM tb_job WHERE state = 'available' AND queue = 'bench' AND scheduled_at <= now() ORDER BY priority, scheduled_at, id LIMIT 50 FOR UPDATE SKIP LOCKED) RETURNING id) SELECT array_agg(id) AS ids FROM j \gset
UPDATE tb_job SET state = 'completed', finalized_at = now() WHERE id = ANY (:ids);
EOF
cat >"$WORK/pgmq_50.sql" <<'EOF'
SELECT count(*) FROM pgmq.send_batch('bench', array_fill('{"to": "lead@example.com", "template": 42, "campaign": 7}'::jsonb, ARRAY[50]));
SELECT array_agg(msg_id) AS ids FROM pgmq.read('bench', 300, 50) \gset
SELECT count(*) FROM pgmq.archive('bench', :ids::bigint[]);
EOF
cat >"$WORK/floe_deq.sql" <<'EOF'
SELECT id FROM floe.dequeue('bench') \gset
SELECT floe.complete(:id);
EOF
cat >"$WORK/textbook_deq.sql" <<'EOF'
WITH j AS (UPDATE tb_job SET state = 'running', attempt = attempt + 1, attempted_at = now() WHERE id IN (SELECT id FROM tb_job WHERE state = 'available' AND queue = 'bench' AND scheduled_at <= now() ORDER BY priority, scheduled_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id) SELECT id FROM j \gset
UPDATE tb_job SET state = 'completed', finalized_at = now() WHERE id = :id;
EOF
cat >"$WORK/pgmq_deq.sql" <<'EOF'
SELECT msg_id AS id FROM pgmq.read('bench', 300, 1) \gset
SELECT pgmq.archive('bench', :id::bigint);
EOF
if floe_is_root; then chown -R "$FLOE_OS_USER" "$WORK"; fi

prepare() { # backlog size
    "${PSQL[@]}" -c "CALL backlog($1)" -c "VACUUM ANALYZE tb_job, floe.queue_jobs, pgmq.q_bench" -c "CHECKPOINT"
}
# tps of one script
run_tps() { # script
    # ids: the jobs a loop script completes in its first transaction (none).
    "$FLOE_PG_BIN/pgbench" -n -M prepared -d bench -c "$CLIENTS" -j 2 -T "$SECS" -D 'ids={}' -f "$WORK/$1" \
        >"$WORK/pgbench.log" 2>&1 || { cat "$WORK/pgbench.log"; exit 1; }
    grep -qE 'failed transactions: 0 ' "$WORK/pgbench.log" || { cat "$WORK/pgbench.log"; exit 1; }
    awk '/^tps = / { v = $3 } END { printf "%.0f", v }' "$WORK/pgbench.log"
}
median() { tr ' ' '\n' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

declare -A TPS
for round in $(seq 1 "$ROUNDS"); do
    for batch in 1 50; do
        for who in textbook textbook_loop pgmq floe floe_loop; do
            prepare 10000 >/dev/null
            TPS[$who.$batch]+="$(run_tps "${who}_$batch.sql") "
        done
    done
    echo "round $round done" >&2
done

# Dequeue latency (ms) at a backlog: 1 client, 3000 dequeue + complete; the dequeue's line.
deq_ms() { # who
    "$FLOE_PG_BIN/pgbench" -n -M prepared -r -d bench -c 1 -j 1 -t 3000 -f "$WORK/$1_deq.sql" \
        >"$WORK/pgbench.log" 2>&1 || { cat "$WORK/pgbench.log"; exit 1; }
    awk '/statement latencies/ { getline; printf "%.3f", $1 }' "$WORK/pgbench.log"
}
declare -A DEQ
for backlog in 10000 1000000; do
    prepare "$backlog" >/dev/null
    for who in textbook pgmq floe; do DEQ[$who.$backlog]=$(deq_ms "$who"); done
    echo "backlog $backlog done" >&2
done

printf '\nQueue throughput (jobs/s): enqueue + dequeue + complete, %s clients, median of %s runs of %ss\n' \
    "$CLIENTS" "$ROUNDS" "$SECS"
printf '%-6s %9s %9s %9s %9s %9s %9s %9s %9s %9s\n' batch textbook tb_loop pgmq floe floe_loop \
    f/tb fl/tb fl/tbl f/pgmq
declare -A JPS
for batch in 1 50; do
    for who in textbook textbook_loop pgmq floe floe_loop; do
        JPS[$who]=$(($(echo ${TPS[$who.$batch]} | median) * batch))
    done
    printf '%-6s %9s %9s %9s %9s %9s %9s %9s %9s %9s\n' "$batch" "${JPS[textbook]}" \
        "${JPS[textbook_loop]}" "${JPS[pgmq]}" "${JPS[floe]}" "${JPS[floe_loop]}" \
        "$(ratio "${JPS[floe]}" "${JPS[textbook]}")" "$(ratio "${JPS[floe_loop]}" "${JPS[textbook]}")" \
        "$(ratio "${JPS[floe_loop]}" "${JPS[textbook_loop]}")" "$(ratio "${JPS[floe]}" "${JPS[pgmq]}")"
done
printf '(f = floe, fl = floe_loop, tb = textbook, tbl = textbook_loop)\n'
printf '\nThe runs (transactions/s)\n'
for batch in 1 50; do
    for who in textbook textbook_loop pgmq floe floe_loop; do
        printf 'batch %-3s %-14s %s\n' "$batch" "$who" "${TPS[$who.$batch]}"
    done
done
printf '\nDequeue latency (ms per call, 1 client, batch 1) by backlog of ready jobs\n'
printf '%-9s %10s %10s %10s\n' who 10k 1M 1M/10k
for who in textbook pgmq floe; do
    a=${DEQ[$who.10000]}
    b=${DEQ[$who.1000000]}
    printf '%-9s %10s %10s %10s\n' "$who" "$a" "$b" "$(ratio "$b" "$a")"
done
