-- Queue, by hand: settings, priorities and aging, delays, visibility and redelivery, retries
-- and dead letters, fairness, bulk enqueue, dedup, rights between roles, health, and bad
-- input that changes nothing. Times are relative (run_at in the past simulates waiting).
CREATE ROLE q_owner;
CREATE ROLE q_worker IN ROLE q_owner;
CREATE ROLE q_other;
CREATE OR REPLACE FUNCTION error_of(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
GRANT EXECUTE ON FUNCTION error_of(text) TO PUBLIC;

SET ROLE q_owner;
SELECT floe.create_queue('mail', visibility_timeout => '1 minute', max_attempts => 3,
                         retry_base => '0', retry_max => '0');
SELECT floe.create_queue('mail', if_not_exists => true);
SELECT name, owner, visibility_timeout, max_attempts, aging_step, max_wait, retry_base,
       fair, fair_share, archive_completed
  FROM floe.queue_settings;
-- The archive became a monthly partition set with the first queue.
RESET ROLE;
SELECT parent, control, part_interval, premake, default_partition, retention, retention_mode
  FROM floe.partition_sets WHERE parent = 'floe.queue_archive';
SELECT count(*) >= 3 AS partitions FROM floe.partitions('floe.queue_archive');

-- Bad settings and names: clear errors, nothing created.
SET ROLE q_owner;
SELECT error_of($$SELECT floe.create_queue('mail')$$);
SELECT error_of($$SELECT floe.create_queue('bad name')$$);
SELECT error_of($$SELECT floe.create_queue(NULL)$$);
SELECT error_of($$SELECT floe.create_queue('x', aging_step => '1 month')$$);
SELECT error_of($$SELECT floe.create_queue('x', visibility_timeout => '0')$$);
SELECT error_of($$SELECT floe.create_queue('x', max_attempts => 0)$$);
SELECT error_of($$SELECT floe.create_queue('x', retry_base => '1 minute', retry_max => '1 second')$$);
SELECT count(*) AS queues FROM floe.queue_settings;

-- Priorities and aging: the order is tier + one tier per aging_step (10 minutes) waited.
SELECT floe.enqueue('mail', '{"n": "normal, new"}');
SELECT floe.enqueue('mail', '{"n": "critical, new"}', 'critical');
SELECT floe.enqueue('mail', '{"n": "background, waited 45 min"}', 'background', now() - interval '45 minutes');
SELECT floe.enqueue('mail', '{"n": "low, waited 15 min"}', 'LOW', now() - interval '15 minutes');
SELECT floe.enqueue('mail', '{"n": "high, new"}', 'high');
SELECT floe.enqueue('mail', '{"n": "normal, in an hour"}', run_at => now() + interval '1 hour');
SELECT queue, state, priority, payload->>'n' AS job FROM floe.queued_jobs ORDER BY id;
-- Handed out by effective priority; the delayed job does not age before it is due.
SELECT id, payload->>'n' AS job, priority, attempt, lease IS NOT NULL AS has_lease,
       visible_until > now() AS hidden
  FROM floe.dequeue('mail', batch => 10);
SELECT count(*) AS in_flight FROM floe.queued_jobs WHERE state = 'running';
SELECT id, state FROM floe.queued_jobs WHERE state <> 'running';
SELECT * FROM floe.dequeue('mail');

-- Finishing: complete, fail (retry, then dead letter), extend, twice is refused.
SELECT floe.complete(2);
SELECT error_of($$SELECT floe.complete(2)$$);
SELECT floe.extend(1, '2 minutes') > now() + interval '110 seconds' AS extended;
SELECT floe.fail(1, 'smtp 451');
SELECT id, state, attempts, last_error FROM floe.queued_jobs WHERE id = 1;
SELECT error_of($$SELECT floe.complete(1)$$);
-- A retry is scheduled (backoff 0 here): it is ready at the next dequeue.
SELECT id, attempt FROM floe.dequeue('mail');
SELECT floe.fail(1, 'smtp 451');
SELECT id, attempt FROM floe.dequeue('mail');
SELECT floe.fail(1, 'smtp 550 for good');
SELECT id, queue, priority, attempts, last_error FROM floe.dead_letters;
SELECT floe.complete_many(ARRAY[3, 4, 5]);
SELECT id, state, waited >= interval '0' AS waited FROM floe.finished_jobs ORDER BY id;

-- Dead letters go back with fresh attempts.
SELECT floe.redrive('mail');
SELECT id, state, attempts, last_error FROM floe.queued_jobs WHERE id = 1;
SELECT count(*) AS dead_letters FROM floe.dead_letters;

-- Two dead letters with the same dedup key: redrive puts one back, the other stays dead
-- (the key can be live only once); nothing fails, nothing is lost.
SELECT floe.create_queue('twice', max_attempts => 1);
SELECT floe.enqueue('twice', '{"try": 1}', dedup_key => 'k') > 0 AS enqueued;
SELECT floe.fail(id, 'first') FROM floe.dequeue('twice');
SELECT floe.enqueue('twice', '{"try": 2}', dedup_key => 'k') > 0 AS enqueued;
SELECT floe.fail(id, 'second') FROM floe.dequeue('twice');
SELECT count(*) AS dead FROM floe.dead_letters WHERE queue = 'twice';
SELECT floe.redrive('twice') AS redriven;
SELECT (SELECT count(*) FROM floe.queued_jobs WHERE queue = 'twice') AS live,
       (SELECT count(*) FROM floe.dead_letters WHERE queue = 'twice') AS still_dead;
SELECT floe.drop_queue('twice', force => true);

-- Cancel a pending job; a running one cannot be cancelled.
SELECT floe.cancel(6);
SELECT id, attempt FROM floe.dequeue('mail');
SELECT error_of($$SELECT floe.cancel(1)$$);
SELECT floe.complete(1);
SELECT id, state, last_error FROM floe.finished_jobs WHERE id IN (1, 6) ORDER BY id;

-- Visibility: a job not finished in time is delivered again (attempt 2); the first
-- worker's lease is then refused, with or without it; the second worker's is accepted.
SELECT floe.enqueue('mail', '{"n": "slow"}') AS slow \gset
SELECT lease AS lease1 FROM floe.dequeue('mail', visibility_timeout => '50 ms') \gset
SELECT pg_sleep(0.1);
SELECT error_of(format('SELECT floe.complete(%s)', :slow));
SELECT error_of(format('SELECT floe.extend(%s)', :slow));
SELECT attempt, lease AS lease2 FROM floe.dequeue('mail') \gset
SELECT :attempt AS attempt;
SELECT error_of(format('SELECT floe.complete(%s, %L)', :slow, :'lease1'));
SELECT error_of(format('SELECT floe.fail(%s, %L, %L)', :slow, 'late', :'lease1'));
SELECT floe.complete(:slow, :'lease2');
-- Out of attempts while in flight: the maintenance job makes it a dead letter.
SELECT floe.create_queue('once', visibility_timeout => '50 ms', max_attempts => 1);
SELECT floe.enqueue('once', '{}');
SELECT count(*) AS delivered FROM floe.dequeue('once');
SELECT pg_sleep(0.1);
SELECT count(*) AS redelivered FROM floe.dequeue('once');
SELECT returned, dead FROM floe.queue_maintenance();
SELECT queue, attempts, last_error FROM floe.dead_letters;

-- Dedup: a pending job with the key is returned instead of a new one; once it is done,
-- the key is free again.
SELECT floe.enqueue('mail', '{"n": "digest"}', dedup_key => 'digest:42') AS d1 \gset
SELECT floe.enqueue('mail', '{"n": "digest again"}', dedup_key => 'digest:42') = :d1 AS same_job;
SELECT id = :d1 AS same, attempt FROM floe.dequeue('mail');
SELECT floe.enqueue('mail', '{"n": "digest while running"}', dedup_key => 'digest:42') = :d1 AS same_job;
SELECT floe.complete(:d1);
SELECT floe.enqueue('mail', '{"n": "digest, next day"}', dedup_key => 'digest:42') AS d2 \gset
SELECT :d2 > :d1 AS new_job;

-- Bulk: ids in input order; a pending key gives its job's id; a NULL key means none.
SELECT ids[1] = :d2 AND ids[3] = :d2 AND ids[2] > :d2 AND ids[4] > ids[2] AS in_order
  FROM (SELECT array_agg(id ORDER BY n) AS ids
          FROM floe.enqueue_many('mail', ARRAY['{"b": 1}', '{"b": 2}', '{"b": 3}', '{"b": 4}']::jsonb[],
                                 'low', dedup_keys => ARRAY['digest:42', NULL, 'digest:42', 'b4'])
               WITH ORDINALITY AS e(id, n)) s;
SELECT count(*) AS none FROM floe.enqueue_many('mail', ARRAY[]::jsonb[]);
SELECT error_of($$SELECT floe.enqueue_many('mail', ARRAY['{}', NULL]::jsonb[])$$);
SELECT error_of($$SELECT floe.enqueue_many('mail', ARRAY['{}']::jsonb[], dedup_keys => ARRAY['a', 'b'])$$);

-- Fairness: tenant A floods 20 normal jobs, then B enqueues 2: B's jobs are served among
-- the first, not after A's flood (the same happens without fairness to each tier's order).
-- (A share of a minute: the order below holds however long the steps between take.)
SELECT floe.create_queue('fair', fair => true, fair_share => '1 minute');
SELECT count(*) FROM (SELECT floe.enqueue('fair', jsonb_build_object('t', 'A', 'i', i),
                                          tenant => '00000000-0000-0000-0000-00000000000a')
                        FROM generate_series(1, 20) i) s;
SELECT count(*) FROM floe.enqueue_many('fair', ARRAY['{"t": "B", "i": 1}', '{"t": "B", "i": 2}']::jsonb[],
                                       tenant => '00000000-0000-0000-0000-00000000000b');
SELECT string_agg(payload->>'t', '' ORDER BY ord) AS first_six
  FROM floe.dequeue('fair', 6) WITH ORDINALITY AS d(id, payload, priority, tenant, attempt, run_at,
                                                   enqueued_at, visible_until, lease, dedup_key, ord);
-- A's critical job is not held back by A's own normal flood.
SELECT floe.enqueue('fair', '{"t": "A", "urgent": true}', 'critical',
                    tenant => '00000000-0000-0000-0000-00000000000a') AS urgent \gset
SELECT id = :urgent AS urgent_first FROM floe.dequeue('fair');
-- Jobs name their tenant: floe.queued_jobs shows only jobs of no tenant and of the current
-- tenant (every tenant's in admin mode), so no tenant context lists another tenant's jobs.
SELECT count(*) AS fair_jobs_seen_without_a_tenant FROM floe.queued_jobs WHERE queue = 'fair';
BEGIN;
SELECT floe.set_tenant('00000000-0000-0000-0000-00000000000b');
SELECT count(*) AS jobs_seen,
       count(*) FILTER (WHERE tenant IS DISTINCT FROM '00000000-0000-0000-0000-00000000000b') AS other_tenants_jobs
  FROM floe.queued_jobs WHERE queue = 'fair';
-- dequeue is a worker's function (it hands out every tenant's jobs): refused under a tenant.
SELECT error_of($$SELECT * FROM floe.dequeue('fair')$$) AS dequeue_under_a_tenant;
SELECT error_of($$SELECT * FROM floe.complete_and_dequeue('fair')$$) AS loop_under_a_tenant;
COMMIT;
RESET ROLE;
BEGIN;
SET LOCAL floe.tenant_admin = on;
SELECT count(*) AS fair_jobs_seen_in_admin_mode FROM floe.queued_jobs WHERE queue = 'fair';
COMMIT;
SET ROLE q_owner;

-- Rights: the owner role's members use a queue; others get 42501 and change nothing.
SET ROLE q_worker;
SELECT floe.enqueue('mail', '{"n": "from a member"}') > 0 AS enqueued;
SELECT count(*) > 0 AS sees_jobs FROM floe.queued_jobs;
-- A member is not the owner: if_not_exists does not adopt a queue another role made.
SELECT error_of($$SELECT floe.create_queue('mail', if_not_exists => true)$$);
RESET ROLE;
SELECT error_of($$SELECT floe.create_queue('mail', if_not_exists => true)$$);
SET ROLE q_other;
SELECT count(*) AS sees_nothing FROM floe.queued_jobs;
SELECT count(*) AS sees_no_queue FROM floe.queue_settings;
SELECT error_of($$SELECT floe.enqueue('mail', '{}')$$);
SELECT error_of($$SELECT floe.dequeue('mail')$$);
SELECT error_of(format('SELECT floe.complete(%s)', :d2));
SELECT error_of(format('SELECT floe.cancel(%s)', :d2));
SELECT error_of($$SELECT floe.drop_queue('mail')$$);
SELECT error_of($$SELECT floe.alter_queue('mail', max_attempts => 9)$$);
SELECT error_of($$SELECT floe.redrive('mail')$$);
SELECT error_of($$SELECT * FROM floe.queue_health('mail')$$);
SELECT error_of($$SELECT * FROM floe.queue_jobs$$);
SELECT error_of($$UPDATE floe.queues SET max_attempts = 1$$);
SET ROLE q_owner;

-- Bad input: clear errors, nothing changed.
SELECT count(*) AS live_before FROM floe.queued_jobs \gset
SELECT error_of($$SELECT floe.enqueue('nope', '{}')$$);
SELECT error_of($$SELECT floe.enqueue('mail', '{}', 'urgent')$$);
SELECT error_of($$SELECT floe.enqueue('mail', NULL)$$);
SELECT error_of($$SELECT floe.enqueue(NULL, '{}')$$);
SELECT error_of($$SELECT floe.dequeue('nope')$$);
SELECT error_of($$SELECT floe.dequeue('mail', 0)$$);
SELECT error_of($$SELECT floe.dequeue('mail', visibility_timeout => '-1 s')$$);
SELECT error_of($$SELECT floe.complete(999999)$$);
SELECT error_of($$SELECT floe.complete(NULL)$$);
SELECT error_of($$SELECT floe.complete_many(ARRAY[1, 1])$$);
SELECT error_of(format('SELECT floe.complete_many(ARRAY[%s, 999999])', :d2));
SELECT error_of($$SELECT floe.fail(999999)$$);
SELECT error_of($$SELECT floe.extend(999999)$$);
SELECT error_of($$SELECT floe.redrive('nope')$$);
SELECT error_of($$SELECT floe.drop_queue('nope')$$);
SELECT error_of($$SELECT * FROM floe.queue_health('nope')$$);
SELECT error_of($$SELECT * FROM floe.queue_health(lookback => '0')$$);
SELECT count(*) = :live_before AS unchanged FROM floe.queued_jobs;

-- A worker's loop in one call: complete what it finished and dequeue the next, in one
-- transaction. The first call has nothing to complete.
SELECT floe.create_queue('loop');
SELECT count(*) AS enqueued FROM floe.enqueue_many('loop', ARRAY['{"n": 1}', '{"n": 2}', '{"n": 3}']::jsonb[]);
SELECT id AS l1, lease AS loop_lease, payload->>'n' AS n FROM floe.complete_and_dequeue('loop') \gset
SELECT :'n' AS first;
SELECT id AS l2, payload->>'n' AS n
  FROM floe.complete_and_dequeue('loop', done => ARRAY[:l1]::bigint[], lease => :'loop_lease') \gset
SELECT :'n' AS second, (SELECT state FROM floe.finished_jobs WHERE id = :l1) AS first_is;
-- All or nothing: a job that cannot be completed (l1, finished) is named, l2 is not completed
-- and nothing is dequeued; so with a lease and two jobs, a repeated id, a bad batch, an
-- unknown queue.
SELECT error_of(format('SELECT * FROM floe.complete_and_dequeue(%L, done => ARRAY[%s, %s])', 'loop', :l2, :l1)) ~ ('job ' || :l1 || ' is already completed') AS names_l1;
SELECT error_of(format('SELECT * FROM floe.complete_and_dequeue(%L, done => ARRAY[%s, %s], lease => %L)', 'loop', :l2, :l2 + 1, :'loop_lease'));
SELECT error_of(format('SELECT * FROM floe.complete_and_dequeue(%L, done => ARRAY[%s, %s])', 'loop', :l2, :l2));
SELECT error_of(format('SELECT * FROM floe.complete_and_dequeue(%L, done => ARRAY[%s], batch => 0)', 'loop', :l2));
SELECT error_of(format('SELECT * FROM floe.complete_and_dequeue(%L, done => ARRAY[%s])', 'nope', :l2));
SELECT payload->>'n' AS n, state FROM floe.queued_jobs WHERE queue = 'loop' ORDER BY id;
SELECT id AS l3 FROM floe.complete_and_dequeue('loop', done => ARRAY[:l2]::bigint[], batch => 5) \gset
SELECT count(*) AS nothing_left FROM floe.complete_and_dequeue('loop', done => ARRAY[:l3]::bigint[]);
SELECT payload->>'n' AS n, state FROM floe.finished_jobs WHERE queue = 'loop' ORDER BY id;
SELECT floe.drop_queue('loop');

-- Health: a job waiting beyond max_wait raises the queue's alarm and floe.health()'s check.
SELECT floe.create_queue('late', aging_step => '1 minute');
SELECT floe.enqueue('late', '{}', 'background', now() - interval '10 minutes');
SELECT queue, priority, ready, in_flight, oldest_wait > interval '9 minutes' AS old,
       alarm IS NOT NULL AS alarm
  FROM floe.queue_health('late');
SELECT check_name, status FROM floe.health() WHERE check_name LIKE 'queue.%';
SELECT count(*) AS late_jobs FROM floe.dequeue('late');
SELECT check_name, status FROM floe.health() WHERE check_name = 'queue.max_wait';
SELECT queue, priority, ready, scheduled, in_flight, completed, dead_letters
  FROM floe.queue_health() WHERE ready + scheduled + in_flight + completed + dead_letters > 0;
SELECT count(*) > 0 AS metrics FROM floe.queue_metrics;

-- Settings change; dropping refuses live jobs unless forced.
SELECT floe.alter_queue('mail', max_attempts => 7, visibility_timeout => '30 seconds');
SELECT max_attempts, visibility_timeout FROM floe.queue_settings WHERE name = 'mail';
SELECT error_of($$SELECT floe.drop_queue('mail')$$);
SELECT floe.drop_queue('mail', force => true) > 0 AS discarded;
SELECT floe.drop_queue('late', force => true);
SELECT name FROM floe.queue_settings ORDER BY name;
RESET ROLE;
