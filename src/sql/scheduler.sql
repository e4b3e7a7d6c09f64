-- floe scheduler: what is scheduled (floe.jobs) and what ran (floe.job_runs).

CREATE TABLE floe.jobs (
    jobid          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name           text        NOT NULL UNIQUE,
    schedule       text        NOT NULL,
    command        text        NOT NULL,
    owner          name        NOT NULL DEFAULT CURRENT_USER,
    builtin        boolean     NOT NULL DEFAULT false,
    max_runtime    interval CHECK (max_runtime BETWEEN interval '0' AND interval '7 days'),
    retries        integer     NOT NULL DEFAULT 0 CHECK (retries BETWEEN 0 AND 100),
    retry_backoff  interval    NOT NULL DEFAULT '30 seconds'
                   CHECK (retry_backoff BETWEEN interval '0' AND interval '1 day'),
    overlap        text        NOT NULL DEFAULT 'skip' CHECK (overlap IN ('skip', 'queue')),
    enabled        boolean     NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- state, kept by the scheduler
    next_run       timestamptz CHECK (pg_catalog.isfinite(next_run)),
    anchor         timestamptz NOT NULL DEFAULT pg_catalog.now() CHECK (pg_catalog.isfinite(anchor)),
    attempt        integer     NOT NULL DEFAULT 0,
    last_start     timestamptz,
    last_finish    timestamptz,
    last_status    text,
    last_error     text
);
COMMENT ON TABLE floe.jobs IS
  'floe scheduler: one row per job (built-in maintenance and users'' SQL), with its next run and last result.';
CREATE INDEX jobs_due_idx ON floe.jobs (next_run) WHERE enabled;
-- Every job is dumped, the built-in ones too (their settings: alter_job); restoring a built-in
-- job updates the one CREATE EXTENSION made (floe.jobs_restore_builtin below). Built-in jobs
-- have fixed negative ids, users' jobs ids from the identity, which is dumped too.
SELECT pg_catalog.pg_extension_config_dump('floe.jobs', '');
SELECT pg_catalog.pg_extension_config_dump('floe.jobs_jobid_seq', '');

-- A built-in job inserted when one of that name exists (pg_restore's COPY, a plain dump's
-- COPY): its settings and state go to the existing row, which keeps the command and id of
-- the installed version.
CREATE FUNCTION floe.jobs_restore_builtin() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $fn$
BEGIN
    UPDATE floe.jobs j
       SET schedule = NEW.schedule, max_runtime = NEW.max_runtime, retries = NEW.retries,
           retry_backoff = NEW.retry_backoff, overlap = NEW.overlap, enabled = NEW.enabled,
           next_run = NEW.next_run, anchor = NEW.anchor, attempt = NEW.attempt,
           last_start = NEW.last_start, last_finish = NEW.last_finish,
           last_status = NEW.last_status, last_error = NEW.last_error
     WHERE j.name = NEW.name AND j.builtin;
    IF FOUND THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION floe.jobs_restore_builtin() IS
  'floe scheduler: trigger on floe.jobs; a built-in job inserted again (a restore) updates the installed one''s settings instead.';
CREATE TRIGGER floe_restore_builtin BEFORE INSERT ON floe.jobs
    FOR EACH ROW WHEN (NEW.builtin) EXECUTE FUNCTION floe.jobs_restore_builtin();

CREATE TABLE floe.job_runs (
    runid        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    jobid        bigint      NOT NULL,
    job_name     text        NOT NULL,
    owner        name        NOT NULL,
    attempt      integer     NOT NULL,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz,
    duration     interval GENERATED ALWAYS AS (finished_at - started_at) STORED,
    status       text        NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'timed out', 'skipped')),
    error        text,
    pid          integer
);
COMMENT ON TABLE floe.job_runs IS
  'floe scheduler: bounded history of job runs (floe.job_history_retention).';
CREATE INDEX job_runs_job_idx ON floe.job_runs (jobid, started_at);
CREATE INDEX job_runs_started_idx ON floe.job_runs (started_at);
CREATE INDEX job_runs_running_idx ON floe.job_runs (runid) WHERE status = 'running';

-- floe's functions run with the caller's rights; these policies make a role see and change
-- only the jobs (and runs) of roles it is a member of: a non-superuser cannot schedule, alter
-- or run a job as another role. The scheduler worker runs as the bootstrap superuser.
ALTER TABLE floe.jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE floe.job_runs ENABLE ROW LEVEL SECURITY;
-- (pg_has_role() on a dropped role's name would raise: test membership through pg_roles.)
CREATE POLICY jobs_own ON floe.jobs
    USING (EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
                    WHERE r.rolname = owner AND pg_catalog.pg_has_role(r.oid, 'MEMBER')))
    WITH CHECK (EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
                         WHERE r.rolname = owner AND pg_catalog.pg_has_role(r.oid, 'MEMBER'))
                AND NOT builtin);
CREATE POLICY job_runs_own ON floe.job_runs
    USING (EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
                    WHERE r.rolname = owner AND pg_catalog.pg_has_role(r.oid, 'MEMBER')))
    WITH CHECK (EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
                         WHERE r.rolname = owner AND pg_catalog.pg_has_role(r.oid, 'MEMBER'))
                -- a run belongs to a job of the same owner: no fake runs for others' jobs
                AND EXISTS (SELECT 1 FROM floe.jobs j
                             WHERE j.jobid = job_runs.jobid AND j.owner = job_runs.owner));
GRANT SELECT, INSERT, UPDATE, DELETE ON floe.jobs, floe.job_runs TO PUBLIC;

-- Built-in jobs are rows like any other: visible, pausable and retimable with alter_job.
INSERT INTO floe.jobs (jobid, name, schedule, command, builtin, next_run) OVERRIDING SYSTEM VALUE
VALUES (-1, 'floe.prune_job_history', '1 hour', 'SELECT floe.prune_job_history()', true,
        pg_catalog.now() + interval '1 hour');
