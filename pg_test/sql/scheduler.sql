-- Scheduler, by hand (no worker involved): scheduling, validation, running due jobs with
-- errors, retries and max_runtime, ownership between roles, bounded history.
CREATE TABLE sched_log (n int, who name DEFAULT current_user);
GRANT INSERT, SELECT ON sched_log TO PUBLIC;

-- Valid schedules: a 5-field cron expression (UTC) or an interval.
SELECT floe.schedule('tick', '1 second', 'INSERT INTO sched_log (n) VALUES (1)') > 0 AS scheduled;
SELECT floe.schedule('nightly', '30 3 * * *', 'SELECT 1') > 0 AS scheduled;
SELECT floe.schedule('div0', '1 hour', 'SELECT 1/0', retries => 2, retry_backoff => '1 minute') > 0 AS scheduled;
SELECT floe.schedule('slow', '1 second', 'SELECT pg_sleep(5)', max_runtime => '200 ms') > 0 AS scheduled;
-- (next_run against the job's creation, not now(): the first run of an every-second job is
-- only a second away.)
SELECT name, schedule, retries, overlap, enabled, next_run > created_at AS next_in_future
  FROM floe.jobs ORDER BY name;

-- Bad input: clear errors, nothing scheduled.
SELECT floe.schedule('x', 'every tuesday', 'SELECT 1');
SELECT floe.schedule('x', '61 * * * *', 'SELECT 1');
SELECT floe.schedule('x', '500 ms', 'SELECT 1');
SELECT floe.schedule('x', '1 month', 'SELECT 1');
SELECT floe.schedule('x', '1 minute', 'SELECT 1', overlap => 'parallel');
SELECT floe.schedule('x', '1 minute', 'SELECT 1', retries => -1);
SELECT floe.schedule('x', '1 minute', '  ');
SELECT floe.schedule('x', '0 0 31 2 *', 'SELECT 1');
SELECT floe.schedule('x', '1 minute', 'SELECT 1', retry_backoff => '1000000 years');
SELECT floe.schedule('x', '1 minute', 'SELECT 1', retry_backoff => '-1 day');
SELECT floe.schedule('x', '1 minute', 'SELECT 1', max_runtime => '30 days');
SELECT floe.schedule('tick', '1 minute', 'SELECT 1');
\set VERBOSITY sqlstate
SELECT floe.schedule('tick', '1 minute', 'SELECT 1');
SELECT floe.unschedule('no_such_job');
SELECT floe.unschedule('floe.prune_job_history');
\set VERBOSITY default
-- built-in jobs can be paused and retimed, not removed or rewritten
SELECT floe.unschedule('floe.prune_job_history');
SELECT floe.alter_job('floe.prune_job_history', command => 'SELECT 1');
SELECT floe.alter_job('floe.prune_job_history', schedule => '30 minutes', enabled => false);
SELECT name, schedule, builtin, enabled FROM floe.jobs WHERE builtin ORDER BY name;
SELECT floe.alter_job('floe.prune_job_history', schedule => '1 hour', enabled => true);
SELECT count(*) AS jobs FROM floe.jobs;

-- Running by hand: status, recorded run, the schedule untouched.
SELECT floe.run_job('tick');
SELECT floe.run_job('div0');
SELECT floe.run_job('slow');
SELECT job_name, attempt, status, error FROM floe.job_runs ORDER BY runid;
SELECT name, attempt, last_status FROM floe.jobs WHERE last_status IS NOT NULL ORDER BY name;

-- Due jobs (make everything due now): failures are recorded and retried with backoff.
-- The built-in jobs are held off an hour so that every count below is this suite's jobs
-- alone, however slowly the suites before it ran (floe.refresh_due is due 10 s after
-- CREATE EXTENSION).
UPDATE floe.jobs SET next_run = now() + interval '1 hour' WHERE builtin;
UPDATE floe.jobs SET next_run = now() - interval '1 second' WHERE NOT builtin;
SELECT floe.run_due_jobs() AS ran;
-- div0 retries after its backoff (1 minute); slow has no retries and keeps its schedule.
SELECT name, attempt, last_status,
       next_run - last_finish BETWEEN interval '55 seconds' AND interval '65 seconds' AS retry_in_a_minute,
       next_run - last_finish <= interval '1 second' AS back_on_schedule
  FROM floe.jobs WHERE name IN ('div0', 'slow') ORDER BY name;
-- the second failure doubles the backoff; the other jobs (tick and slow run every second)
-- are held off an hour, so the runs below are div0's alone even when a step stalls.
UPDATE floe.jobs SET next_run = now() + interval '1 hour' WHERE NOT builtin AND name <> 'div0';
UPDATE floe.jobs SET next_run = now() - interval '1 second' WHERE name = 'div0';
SELECT floe.run_due_jobs() AS ran;
SELECT attempt, next_run - last_finish BETWEEN interval '115 seconds' AND interval '125 seconds' AS retry_in_two_minutes
  FROM floe.jobs WHERE name = 'div0';
-- after the last retry the job returns to its schedule, attempt 0
UPDATE floe.jobs SET next_run = now() - interval '1 second' WHERE name = 'div0';
SELECT floe.run_due_jobs() AS ran;
SELECT attempt, next_run - last_finish > interval '50 minutes' AS back_to_hourly FROM floe.jobs WHERE name = 'div0';
SELECT attempt, status FROM floe.job_runs WHERE job_name = 'div0' ORDER BY runid;
-- floe.health() names the failing jobs
SELECT check_name, status, detail FROM floe.health() WHERE check_name = 'scheduler.jobs';
SELECT count(*) AS tick_rows FROM sched_log;

-- alter_job: pause, retime, limits; an unknown job is 42704.
SELECT floe.alter_job('tick', enabled => false);
SELECT floe.alter_job('nightly', schedule => '0 4 * * *', max_runtime => '1 minute');
SELECT floe.alter_job('nightly', max_runtime => '0');
SELECT name, schedule, enabled, max_runtime FROM floe.jobs WHERE name IN ('tick', 'nightly') ORDER BY name;
SELECT floe.alter_job('no_such_job', enabled => false);
SELECT floe.alter_job('nightly', schedule => 'soon');

-- Jobs run as their owner; another role cannot see, alter, run or remove them.
CREATE ROLE regress_sched_alice;
CREATE ROLE regress_sched_bob;
SET ROLE regress_sched_alice;
SELECT floe.schedule('alice_job', '1 hour', 'INSERT INTO sched_log (n) VALUES (2)') > 0 AS scheduled;
SELECT floe.run_job('alice_job');
SELECT name, owner FROM floe.jobs ORDER BY name;
RESET ROLE;
SET ROLE regress_sched_bob;
SELECT floe.alter_job('alice_job', command => 'DROP TABLE sched_log');
SELECT floe.run_job('alice_job');
SELECT floe.unschedule('alice_job');
UPDATE floe.jobs SET command = 'DROP TABLE sched_log' WHERE name = 'alice_job';
INSERT INTO floe.jobs (name, schedule, command, owner) VALUES ('forged', '1 hour', 'SELECT 1', 'regress_sched_alice');
RESET ROLE;
SET ROLE regress_sched_alice;
-- nor can anyone but a superuser make a job look built in
INSERT INTO floe.jobs (name, schedule, command, builtin) VALUES ('fake_builtin', '1 hour', 'SELECT 1', true);
-- nor record runs for another role's job
INSERT INTO floe.job_runs (jobid, job_name, owner, attempt, started_at, status)
SELECT jobid, name, 'regress_sched_alice', 0, now(), 'succeeded' FROM floe.jobs WHERE name = 'alice_job'
UNION ALL SELECT 0, 'forged', 'regress_sched_alice', 0, now(), 'failed';
RESET ROLE;
SET ROLE regress_sched_bob;
SELECT count(*) AS visible_jobs FROM floe.jobs;
RESET ROLE;
SELECT n, who FROM sched_log WHERE n = 2;

-- A job cannot leave settings behind for the next one (or for the session that ran it).
SELECT floe.schedule('sets', '1 hour', 'SET search_path = evil, public; SET work_mem = ''64MB''; SELECT set_config(''app.x'', ''leak'', false)') > 0 AS scheduled;
SELECT floe.run_job('sets');
SELECT current_setting('search_path') AS search_path, current_setting('work_mem') AS work_mem,
       current_setting('app.x', true) IS DISTINCT FROM 'leak' AS no_leak;
-- nor change its role
SELECT floe.schedule('become', '1 hour', 'SET ROLE postgres') > 0 AS scheduled;
SELECT floe.run_job('become');
SELECT error FROM floe.job_runs WHERE job_name = 'become';
-- transaction control is not for jobs
SELECT floe.schedule('commits', '1 hour', 'COMMIT') > 0 AS scheduled;
SELECT floe.run_job('commits');
SELECT error FROM floe.job_runs WHERE job_name = 'commits';
SELECT floe.unschedule('sets');
SELECT floe.unschedule('become');
SELECT floe.unschedule('commits');

-- unschedule; history is pruned by age (floe.job_history_retention).
SELECT floe.unschedule('tick');
SELECT count(*) FILTER (WHERE job_name = 'tick') > 0 AS tick_history_kept FROM floe.job_runs;
UPDATE floe.job_runs SET started_at = now() - interval '30 days', finished_at = now() - interval '30 days';
SELECT floe.run_due_jobs() >= 0 AS ran;
SELECT count(*) AS old_runs_left FROM floe.job_runs WHERE started_at < now() - interval '8 days';

DELETE FROM floe.jobs WHERE NOT builtin;
DROP TABLE sched_log;
DROP ROLE regress_sched_alice, regress_sched_bob;
