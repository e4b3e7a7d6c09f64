-- floe audit: the append-only log of row changes (floe.audit_log, partitioned by month with
-- floe's partition manager from the first floe.enable_audit), its seals (the hash chain), the
-- tables that are audited, and the sealing job.
--
-- Writers only append: the audit trigger inserts an entry as the extension's owner and reads
-- nothing back. Every minute the job floe.audit_seal seals the entries of transactions that
-- have ended (below the oldest running one), per table, each seal hashing the previous one.
-- UPDATE, DELETE and TRUNCATE of the log and of the seals are refused by triggers that fire
-- for every role, the owner and superusers included (ENABLE ALWAYS: also under
-- session_replication_role = replica); only retention removes whole months.

DO $do$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'floe_auditor') THEN
        CREATE ROLE floe_auditor NOLOGIN;
    END IF;
END
$do$;
COMMENT ON ROLE floe_auditor IS
  'floe: members may read floe.audit_log and its seals and run floe.verify_audit()';

CREATE TABLE floe.audit_tables (
    relid          regclass    PRIMARY KEY,
    redact         text[]      NOT NULL DEFAULT '{}',
    classification text[]      NOT NULL DEFAULT '{}',
    enabled_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    enabled_by     name        NOT NULL DEFAULT CURRENT_USER,
    -- The relid the table's entries and seals carry (and its chain hashes cover): its oid
    -- when auditing began. It stays when a restore gives the table a new oid.
    log_relid      oid         NOT NULL UNIQUE
);
COMMENT ON TABLE floe.audit_tables IS
  'floe audit: the audited tables (floe.enable_audit), the columns logged only as a keyed BLAKE3 hash, and the classification stamped on their entries; log_relid is the relid their entries and seals carry (the table''s oid when auditing began, kept through dump and restore).';
SELECT pg_catalog.pg_extension_config_dump('floe.audit_tables', '');
GRANT SELECT ON floe.audit_tables TO PUBLIC;

-- The database's key for redaction hashes (so a hash of a guessable value cannot be looked
-- up with another key). 256 bits from pg_strong_random(), through gen_random_uuid(), made by
-- the first floe.enable_audit() (not here: a restore brings the old key back, and a
-- database cloned from a template that never audited gets its own).
CREATE TABLE floe.audit_key (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    key      bytea   NOT NULL CHECK (pg_catalog.length(key) = 32)
);
COMMENT ON TABLE floe.audit_key IS
  'floe audit: the key of the redaction hashes, made by the first floe.enable_audit() (readable by the extension''s owner only; never changes; dump and restore keep it).';
SELECT pg_catalog.pg_extension_config_dump('floe.audit_key', '');

CREATE SEQUENCE floe.audit_log_id_seq AS bigint;
CREATE TABLE floe.audit_log (
    id             bigint      NOT NULL DEFAULT pg_catalog.nextval('floe.audit_log_id_seq'),
    logged_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    xid            xid8        NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
    relid          oid         NOT NULL,
    schema_name    name        NOT NULL,
    table_name     name        NOT NULL,
    op             text        NOT NULL,   -- INSERT | UPDATE | DELETE | TRUNCATE
    tenant         uuid,
    actor          name        NOT NULL,   -- current_user of the change
    app_actor      text,                   -- floe.actor, set by the application
    client_addr    inet,
    pk             jsonb,                  -- the row's primary key (replica identity) columns
    old_values     jsonb,                  -- UPDATE: the changed columns before; DELETE: the row
    new_values     jsonb,                  -- UPDATE: the changed columns after; INSERT: the row
    redacted       text[],                 -- columns whose values are hashes
    classification text[]
) PARTITION BY RANGE (logged_at);
ALTER SEQUENCE floe.audit_log_id_seq OWNED BY floe.audit_log.id;
-- The months are ordinary tables that pg_dump dumps with their data: the ids go on after a
-- restore. (The index on xid is made on each month by floe.complete_own_partitions().)
SELECT pg_catalog.pg_extension_config_dump('floe.audit_log_id_seq', '');
COMMENT ON TABLE floe.audit_log IS
  'floe audit: one entry per audited row change (and TRUNCATE), append-only, partitioned by month; sealed into a hash chain per table by floe.audit_seal(); check with floe.verify_audit().';
GRANT SELECT ON floe.audit_log TO floe_auditor;

-- One row per sealing run: every entry of a transaction below `horizon` is sealed.
CREATE TABLE floe.audit_seal_runs (
    run        bigint      PRIMARY KEY,
    horizon    xid8        NOT NULL,
    sealed_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    entries    bigint      NOT NULL
);
COMMENT ON TABLE floe.audit_seal_runs IS
  'floe audit: the sealing runs; after run N every entry of a transaction below its horizon is sealed.';
SELECT pg_catalog.pg_extension_config_dump('floe.audit_seal_runs', '');

-- A seal: the entries of one table and (UTC) month from transactions in [lo, hi), their ids
-- and digests in order, and the chain hash over the table's previous seal. Retention drops
-- whole months of the log; the seals of a dropped month stay (their chain still checks) and
-- are no longer compared with entries.
CREATE TABLE floe.audit_seals (
    relid          oid         NOT NULL,
    run            bigint      NOT NULL,   -- a floe.audit_seal_runs run (no foreign key: pg_restore -j)
    month          date        NOT NULL,
    lo             xid8        NOT NULL,
    hi             xid8        NOT NULL,
    entry_ids      bigint[]    NOT NULL,
    digests        bytea       NOT NULL,   -- 16 bytes of BLAKE3 per entry, in entry_ids order
    min_logged_at  timestamptz NOT NULL,
    max_logged_at  timestamptz NOT NULL,
    prev_hash      bytea       NOT NULL,
    hash           bytea       NOT NULL,
    PRIMARY KEY (relid, run, month)
);
ALTER TABLE floe.audit_seals ALTER COLUMN digests SET STORAGE EXTERNAL;
-- The sealed months (verify_audit() and health look for months gone from the log).
CREATE INDEX audit_seals_month_idx ON floe.audit_seals (month);
COMMENT ON TABLE floe.audit_seals IS
  'floe audit: the hash chain, one seal per table and sealing run; the hash covers the previous seal of the table and the ids and digests of the entries sealed.';
SELECT pg_catalog.pg_extension_config_dump('floe.audit_seals', '');
GRANT SELECT ON floe.audit_seal_runs, floe.audit_seals TO floe_auditor;

-- The months that floe's retention retired from the log (run_maintenance on floe.audit_log,
-- mode drop), written by floe as it drops them. verify_audit() counts a sealed month whose
-- entries are gone as retired only when it is here; any other way out of the log (DETACH,
-- DROP TABLE) is refused by the event triggers below, and named by verify_audit() and
-- floe.health() when it happens anyway (event triggers disabled).
CREATE TABLE floe.audit_retired (
    month       date        PRIMARY KEY,
    retired_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    retention   interval,               -- the log's retention that retired it
    entries     bigint,                 -- the entries it held (NULL: retired before floe 0.9.0)
    retired_by  name        NOT NULL DEFAULT CURRENT_USER
);
COMMENT ON TABLE floe.audit_retired IS
  'floe audit: the months floe''s retention dropped from the audit log, with the entries they held; append-only. A sealed month missing from the log and from here was removed behind floe''s back (verify_audit() names it).';
SELECT pg_catalog.pg_extension_config_dump('floe.audit_retired', '');
GRANT SELECT ON floe.audit_retired TO floe_auditor;

-- Append-only, for everyone: row triggers (cloned to every partition) and TRUNCATE triggers
-- (on every partition too: floe.complete_own_partitions() adds them as months are made).
CREATE TRIGGER floe_append_only BEFORE UPDATE OR DELETE ON floe.audit_log
    FOR EACH ROW EXECUTE FUNCTION floe.audit_append_only();
CREATE TRIGGER floe_append_only_truncate BEFORE TRUNCATE ON floe.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION floe.audit_append_only();
ALTER TABLE floe.audit_log ENABLE ALWAYS TRIGGER floe_append_only;
ALTER TABLE floe.audit_log ENABLE ALWAYS TRIGGER floe_append_only_truncate;
CREATE TRIGGER floe_append_only BEFORE UPDATE OR DELETE ON floe.audit_seals
    FOR EACH ROW EXECUTE FUNCTION floe.audit_append_only();
CREATE TRIGGER floe_append_only_truncate BEFORE TRUNCATE ON floe.audit_seals
    FOR EACH STATEMENT EXECUTE FUNCTION floe.audit_append_only();
ALTER TABLE floe.audit_seals ENABLE ALWAYS TRIGGER floe_append_only;
ALTER TABLE floe.audit_seals ENABLE ALWAYS TRIGGER floe_append_only_truncate;
CREATE TRIGGER floe_append_only BEFORE UPDATE OR DELETE ON floe.audit_seal_runs
    FOR EACH ROW EXECUTE FUNCTION floe.audit_append_only();
CREATE TRIGGER floe_append_only_truncate BEFORE TRUNCATE ON floe.audit_seal_runs
    FOR EACH STATEMENT EXECUTE FUNCTION floe.audit_append_only();
ALTER TABLE floe.audit_seal_runs ENABLE ALWAYS TRIGGER floe_append_only;
ALTER TABLE floe.audit_seal_runs ENABLE ALWAYS TRIGGER floe_append_only_truncate;
CREATE TRIGGER floe_append_only BEFORE UPDATE OR DELETE ON floe.audit_key
    FOR EACH ROW EXECUTE FUNCTION floe.audit_append_only();
CREATE TRIGGER floe_append_only_truncate BEFORE TRUNCATE ON floe.audit_key
    FOR EACH STATEMENT EXECUTE FUNCTION floe.audit_append_only();
ALTER TABLE floe.audit_key ENABLE ALWAYS TRIGGER floe_append_only;
ALTER TABLE floe.audit_key ENABLE ALWAYS TRIGGER floe_append_only_truncate;
CREATE TRIGGER floe_append_only BEFORE UPDATE OR DELETE ON floe.audit_retired
    FOR EACH ROW EXECUTE FUNCTION floe.audit_append_only();
CREATE TRIGGER floe_append_only_truncate BEFORE TRUNCATE ON floe.audit_retired
    FOR EACH STATEMENT EXECUTE FUNCTION floe.audit_append_only();
ALTER TABLE floe.audit_retired ENABLE ALWAYS TRIGGER floe_append_only;
ALTER TABLE floe.audit_retired ENABLE ALWAYS TRIGGER floe_append_only_truncate;

CREATE FUNCTION floe.audit_on_ddl() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $fn$
BEGIN
    -- A month of the log detached by this statement: refused (floe's retention stands aside).
    -- (A detach is an ALTER TABLE of the log itself.)
    IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() c
               WHERE c.command_tag = 'ALTER TABLE' AND c.classid = 'pg_class'::regclass
                 AND c.objid = 'floe.audit_log'::regclass) THEN
        PERFORM floe.audit_guard_months('ddl_command_end');
    END IF;
END
$fn$;
COMMENT ON FUNCTION floe.audit_on_ddl() IS
  'Event trigger: refuses detaching a month of floe.audit_log (only floe''s retention retires months).';
CREATE EVENT TRIGGER floe_audit_on_ddl ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE')
    EXECUTE FUNCTION floe.audit_on_ddl();

-- A dropped table leaves the audit registry (its entries and seals stay: the log outlives it).
CREATE FUNCTION floe.audit_on_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    -- A month of the log dropped by hand: refused (floe's retention stands aside).
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger_dropped_objects() d
                WHERE d.object_type = 'table' AND d.schema_name = 'floe'
                  AND d.object_name ~ '^audit_log_') THEN
        PERFORM floe.audit_guard_months('sql_drop');
    END IF;
    IF EXISTS (SELECT 1 FROM floe.audit_tables) THEN
        DELETE FROM floe.audit_tables a
         USING pg_catalog.pg_event_trigger_dropped_objects() d
         WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.objsubid = 0
           AND a.relid::pg_catalog.oid = d.objid;
    END IF;
END
$fn$;
COMMENT ON FUNCTION floe.audit_on_drop() IS
  'Event trigger: refuses dropping a month of floe.audit_log by hand (only floe''s retention retires months); removes dropped tables from floe.audit_tables (their audit entries stay).';
CREATE EVENT TRIGGER floe_audit_on_drop ON sql_drop EXECUTE FUNCTION floe.audit_on_drop();

-- The audit triggers that do not fire: an owner can switch them off (ALTER TABLE ... DISABLE
-- TRIGGER), so verify_audit(), health and inventory() ask here instead of trusting the registry.
CREATE FUNCTION floe.audit_triggers_off(tbl regclass)
RETURNS TABLE (relation regclass, trigger_name name, state text)
LANGUAGE sql STABLE STRICT SET search_path = pg_catalog AS $fn$
    SELECT r.relid::regclass, t.name::name,
           CASE g.tgenabled WHEN 'D' THEN 'disabled' WHEN 'R' THEN 'replica only' ELSE 'missing' END
      FROM (SELECT audit_triggers_off.tbl::oid AS relid, true AS top
            UNION ALL
            SELECT p.relid::oid, false FROM pg_partition_tree(audit_triggers_off.tbl) p
             WHERE p.relid <> audit_triggers_off.tbl) r
     CROSS JOIN (VALUES ('floe_audit'), ('floe_audit_flush'), ('floe_audit_truncate')) t(name)
      LEFT JOIN pg_trigger g ON g.tgrelid = r.relid AND g.tgname = t.name
     WHERE (r.top OR t.name = 'floe_audit')   -- partitions carry the row trigger's clone only
       AND (g.oid IS NULL OR g.tgenabled IN ('D', 'R'))
     ORDER BY 1, 2
$fn$;
COMMENT ON FUNCTION floe.audit_triggers_off(regclass) IS
  'floe audit: the audit triggers of tbl (and the row trigger''s clones on its partitions) that do not fire: missing, disabled, or replica only; empty when auditing works.';

-- The sealer: every minute, the entries of transactions that have ended.
INSERT INTO floe.jobs (jobid, name, schedule, command, builtin, next_run) OVERRIDING SYSTEM VALUE
VALUES (-4, 'floe.audit_seal', '1 minute', 'SELECT floe.audit_seal()', true,
        pg_catalog.now() + interval '1 minute');

-- Who may run what: sealing is the job's (and the owner's); verification is for auditors.
REVOKE EXECUTE ON FUNCTION floe.audit_seal() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION floe.verify_audit(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION floe.verify_audit(timestamptz) TO floe_auditor;

COMMENT ON FUNCTION floe.enable_audit(regclass, text[], text[]) IS
  'floe audit: logs every INSERT, UPDATE, DELETE (changed columns only) and TRUNCATE of tbl into floe.audit_log, the redact columns as a keyed BLAKE3 hash, stamped with classification; run by the table''s owner; again to change the settings.';
COMMENT ON FUNCTION floe.disable_audit(regclass, boolean) IS
  'floe audit: stops logging tbl (its entries stay); returns false when it was not audited and if_exists.';
COMMENT ON FUNCTION floe.audit_seal() IS
  'floe audit: seals the entries of every ended transaction, one chained seal per table (what the job floe.audit_seal runs every minute); returns the entries sealed.';
COMMENT ON FUNCTION floe.verify_audit(timestamptz) IS
  'floe audit: recomputes every entry digest and seal hash (of seals ending at or after since) and names each altered, inserted or removed entry and each changed seal; one summary row per table.';
COMMENT ON FUNCTION floe.audit_trigger() IS
  'floe audit: the trigger floe.enable_audit() puts on a table (row: the entry; statement: writes the statement''s entries).';
COMMENT ON FUNCTION floe.audit_guard_months(text) IS
  'floe audit: called by the event triggers floe_audit_on_ddl and floe_audit_on_drop; refuses (42501) a month of floe.audit_log detached or dropped by this transaction unless floe''s own retention is retiring it.';
REVOKE EXECUTE ON FUNCTION floe.audit_guard_months(text) FROM PUBLIC;
COMMENT ON FUNCTION floe.audit_append_only() IS
  'floe audit: refuses UPDATE, DELETE and TRUNCATE of the audit log, its seals and key, for every role.';
