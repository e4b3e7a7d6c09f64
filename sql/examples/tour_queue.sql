-- Tour of the Queue tier (scripts/platform.sh prints it).
\pset footer off
-- The job views show a role only jobs of no tenant and of its current tenant: an operator's
-- overview of every tenant's jobs is admin mode, set for the transaction.
BEGIN;
SET LOCAL floe.tenant_admin = on;
\echo '-- the backlog by priority: five tiers, each job waiting since its run_at'
SELECT queue, priority, count(*) AS jobs, max(now() - run_at)::interval(0) AS oldest_wait
  FROM floe.queued_jobs GROUP BY queue, priority
 ORDER BY queue, array_position('{critical,high,normal,low,background}', priority);
\echo '-- aging: a dequeue serves by urgency = tier + time waited (one tier per aging_step, 10 minutes'
\echo '-- here), so jobs that waited long in low tiers come out among the fresh critical ones'
SELECT priority, (now() - run_at)::interval(0) AS waited,
       round(5 - array_position('{critical,high,normal,low,background}', priority)
             + extract(epoch FROM now() - run_at)::numeric / 600, 2) AS urgency
  FROM floe.dequeue('email_send', batch => 8);
SELECT queue, state, count(*) AS jobs FROM floe.queued_jobs GROUP BY queue, state ORDER BY queue, state;
COMMIT;
