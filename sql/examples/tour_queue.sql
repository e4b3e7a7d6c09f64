-- Tour of the Queue tier (scripts/platform.sh prints it).
\pset footer off
\echo '-- the backlog by priority: five tiers, each job waiting since its run_at'
SELECT queue, priority, count(*) AS jobs, max(now() - run_at)::interval(0) AS oldest_wait
  FROM floe.queued_jobs GROUP BY queue, priority
 ORDER BY queue, array_position('{critical,high,normal,low,background}', priority);
\echo '-- aging: a dequeue serves by urgency = tier + time waited (one tier per 10 minutes), so a'
\echo '-- background job that waited 39 minutes goes before a fresh critical one'
SELECT priority, (now() - run_at)::interval(0) AS waited FROM floe.dequeue('email_send', batch => 8);
SELECT queue, state, count(*) AS jobs FROM floe.queued_jobs GROUP BY queue, state ORDER BY queue, state;
