-- floe references: cross-tier references declared over postgres_fdw servers
-- (floe.declared_references; each reference's foreign table floe.reference_<id>_target is
-- made by floe.declare_reference).
--
-- floe's functions write this table as the extension's owner after checking the caller owns
-- the referencing table (src/references/api.rs); roles read the rows of the tables they own.

CREATE TABLE floe.declared_references (
    id              integer     GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tbl             regclass    NOT NULL,
    columns         name[]      NOT NULL,
    target_server   name        NOT NULL,
    target_table    text        NOT NULL,   -- schema.table in the server's database
    target_columns  name[]      NOT NULL,
    mode            text        NOT NULL CHECK (mode IN ('scan', 'enforce')),
    tenant_column   name,                   -- NULL: not per tenant
    on_unreachable  text        NOT NULL CHECK (on_unreachable IN ('reject', 'allow')),
    declared_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    declared_by     name        NOT NULL,
    UNIQUE (tbl, columns)
);
COMMENT ON TABLE floe.declared_references IS
  'floe references: one row per declared cross-tier reference (floe.declare_reference): tbl (columns) points at target_table (target_columns) in the database of the postgres_fdw server target_server, per tenant_column.';
SELECT pg_catalog.pg_extension_config_dump('floe.declared_references', '');
SELECT pg_catalog.pg_extension_config_dump('floe.declared_references_id_seq', '');

-- A role reads the references of the tables it owns (has the owner's privileges of).
ALTER TABLE floe.declared_references ENABLE ROW LEVEL SECURITY;
CREATE POLICY declared_references_owner ON floe.declared_references FOR SELECT
    USING (pg_catalog.pg_has_role((SELECT c.relowner FROM pg_catalog.pg_class c
                                    WHERE c.oid OPERATOR(pg_catalog.=) tbl), 'USAGE'));
GRANT SELECT ON floe.declared_references TO PUBLIC;

COMMENT ON FUNCTION floe.declare_reference(regclass, name[], name, text, name[], text, name, text) IS
  'floe references: declares (or re-declares) that tbl (columns) point at target_table (target_columns) in the database of the postgres_fdw server target_server, per tenant (a row is satisfied by a target row of the same tenant_column value; NULL: not per tenant). Checks the server, both sides'' columns and types and a unique index on the target columns; keeps the target as the foreign table floe.reference_<id>_target. Returns the reference''s id.';
COMMENT ON FUNCTION floe.drop_reference(regclass, name[], boolean) IS
  'floe references: removes the declared reference of tbl (columns) and its foreign table. True when there was one; if_exists => true: false instead of an error.';

-- The scan's progress per reference (floe.scan_references; the built-in job floe.reference_scan).
CREATE TABLE floe.reference_scans (
    reference_id        integer     PRIMARY KEY,
    pass                bigint      NOT NULL DEFAULT 0,  -- the current (or last) pass, from 1
    cursor              text[],                 -- the last key of the pass in progress
    pass_started        timestamptz,            -- NULL: no pass in progress
    keys_checked        bigint      NOT NULL DEFAULT 0,  -- by the pass in progress
    last_pass_completed timestamptz,
    last_pass_keys      bigint,
    last_run            timestamptz,
    last_error          text,                   -- the last run's failure, until a page succeeds
    last_error_at       timestamptz
);
COMMENT ON TABLE floe.reference_scans IS
  'floe references: each declared reference''s scan: the pass in progress (cursor, pass_started, keys_checked), the last complete pass, and the last run''s error (a target that could not be reached: nothing was recorded or removed).';

-- Keys whose rows point at nothing, as the scan found them.
CREATE TABLE floe.reference_orphans (
    reference_id integer     NOT NULL,
    key          text[]      NOT NULL,  -- the tenant (per tenant), then the columns' values
    rows         bigint      NOT NULL,  -- rows of the referencing table with this key
    first_seen   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    last_seen    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    last_pass    bigint      NOT NULL DEFAULT 0,  -- the last pass that saw it
    PRIMARY KEY (reference_id, key)
);
COMMENT ON TABLE floe.reference_orphans IS
  'floe references: keys of referencing rows with no target row (as of last_seen), each with its row count and when the scan first found it. floe.repair_references acts on them.';

-- Keys written while the target could not be reached (on_unreachable => 'allow').
CREATE TABLE floe.reference_pending (
    reference_id integer     NOT NULL,
    key          text[]      NOT NULL,
    queued_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (reference_id, key)
);
COMMENT ON TABLE floe.reference_pending IS
  'floe references: keys an enforce check let through while the target could not be reached (on_unreachable => ''allow''); the next scan checks them first.';

-- Rows floe.repair_references(action => 'archive') removed.
CREATE TABLE floe.reference_archive (
    reference_id integer     NOT NULL,
    table_name   text        NOT NULL,  -- schema.table when archived (the rows outlive it)
    table_owner  regrole     NOT NULL,  -- who may read them
    key          text[]      NOT NULL,
    row_data     jsonb       NOT NULL,  -- the whole row (to_jsonb)
    archived_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    archived_by  name        NOT NULL
);
CREATE INDEX ON floe.reference_archive (table_name, archived_at);
COMMENT ON TABLE floe.reference_archive IS
  'floe references: rows removed by floe.repair_references(action => ''archive''), whole (to_jsonb), with the orphan key they held.';
SELECT pg_catalog.pg_extension_config_dump('floe.reference_archive', '');

-- A role reads the rows of the references it can see (those of the tables it owns: the
-- policy of floe.declared_references applies inside these policies too); the archive by the
-- owner its table had when the rows were archived.
ALTER TABLE floe.reference_scans ENABLE ROW LEVEL SECURITY;
CREATE POLICY reference_scans_owner ON floe.reference_scans FOR SELECT
    USING (reference_id IN (SELECT d.id FROM floe.declared_references d));
ALTER TABLE floe.reference_orphans ENABLE ROW LEVEL SECURITY;
CREATE POLICY reference_orphans_owner ON floe.reference_orphans FOR SELECT
    USING (reference_id IN (SELECT d.id FROM floe.declared_references d));
ALTER TABLE floe.reference_pending ENABLE ROW LEVEL SECURITY;
CREATE POLICY reference_pending_owner ON floe.reference_pending FOR SELECT
    USING (reference_id IN (SELECT d.id FROM floe.declared_references d));
ALTER TABLE floe.reference_archive ENABLE ROW LEVEL SECURITY;
CREATE POLICY reference_archive_owner ON floe.reference_archive FOR SELECT
    USING (pg_catalog.pg_has_role(table_owner, 'USAGE'));
GRANT SELECT ON floe.reference_scans, floe.reference_orphans, floe.reference_pending,
                floe.reference_archive TO PUBLIC;

COMMENT ON FUNCTION floe.scan_references(regclass, double precision, integer, integer) IS
  'floe references: scans the references of tbl (NULL: every reference due, as the built-in job floe.reference_scan does), resuming each pass where it stopped: keyset pages of page_size distinct keys, one query to the target per page, until max_pages or max_seconds. Records orphans in floe.reference_orphans; a target that cannot be reached is reported (error) and changes nothing. One row per reference scanned.';
COMMENT ON FUNCTION floe.repair_references(regclass, text, boolean, integer) IS
  'floe references: the recorded orphans of tbl''s references. action => ''report'' lists them; ''null'' clears the referencing columns of their rows, ''delete'' deletes the rows, ''archive'' moves them to floe.reference_archive, after asking the target again (keys present again are reported resolved). dry_run (true by default) reports what would be done and changes nothing. Runs as the caller, batch_size keys per statement.';
-- The trigger is floe's to place (declare_reference does, as the extension's owner): a role
-- placing it on a table of its own could ask another reference's target through floe's user
-- mapping. (It also checks that it fires on its reference's own table.)
REVOKE EXECUTE ON FUNCTION floe.reference_check() FROM PUBLIC;
COMMENT ON FUNCTION floe.reference_check() IS
  'floe references: the statement trigger of an enforce-mode reference (argument: its id): rejects keys the statement wrote that have no row in the target (23503), asking the target once per statement.';

-- The scan runs every minute and starts a new pass of a reference every
-- floe.reference_scan_interval; each run stops starting pages after 10 seconds.
INSERT INTO floe.jobs (jobid, name, schedule, command, builtin, next_run) OVERRIDING SYSTEM VALUE
VALUES (-7, 'floe.reference_scan', '1 minute', 'SELECT pg_catalog.count(*) FROM floe.scan_references()', true,
        pg_catalog.now() + interval '1 minute');
