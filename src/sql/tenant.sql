-- floe tenant module: the registry of isolated tables, the admin role, and the event triggers
-- that isolate new partitions and forget dropped tables.

-- Cross-tenant maintenance is explicit: a member of this role must also SET LOCAL
-- floe.tenant_admin = on. Roles are cluster-wide, so the role outlives DROP EXTENSION.
DO $do$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'floe_tenant_admin') THEN
        CREATE ROLE floe_tenant_admin NOLOGIN;
    END IF;
END
$do$;
COMMENT ON ROLE floe_tenant_admin IS
  'floe: members may read and write every tenant''s rows after SET LOCAL floe.tenant_admin = on';

CREATE TABLE floe.tenant_tables (
    relid           regclass    PRIMARY KEY,
    tenant_column   name        NOT NULL,
    via_column      name,
    force           boolean     NOT NULL DEFAULT true,
    rls_was_enabled boolean     NOT NULL,
    rls_was_forced  boolean     NOT NULL,
    created_index   name,
    guard_updates   boolean     NOT NULL DEFAULT true,
    enabled_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    enabled_by      name        NOT NULL DEFAULT CURRENT_USER
);
COMMENT ON TABLE floe.tenant_tables IS
  'Tables isolated by floe.enable_tenant_isolation(): tenant column (or foreign key column in via_column), options, and the RLS state found before, so disabling restores it.';
SELECT pg_catalog.pg_extension_config_dump('floe.tenant_tables', '');

-- Everyone may read the registry (coverage needs it); only a table's owner may register or
-- unregister it, which the enable/disable functions do with the caller's rights.
GRANT SELECT, INSERT, UPDATE, DELETE ON floe.tenant_tables TO PUBLIC;
ALTER TABLE floe.tenant_tables ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_tables_read ON floe.tenant_tables FOR SELECT USING (true);
CREATE POLICY tenant_tables_owner_insert ON floe.tenant_tables FOR INSERT
    WITH CHECK (pg_catalog.pg_has_role((SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = relid), 'USAGE'));
CREATE POLICY tenant_tables_owner_update ON floe.tenant_tables FOR UPDATE
    USING (pg_catalog.pg_has_role((SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = relid), 'USAGE'))
    WITH CHECK (pg_catalog.pg_has_role((SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = relid), 'USAGE'));
CREATE POLICY tenant_tables_owner_delete ON floe.tenant_tables FOR DELETE
    USING (pg_catalog.pg_has_role((SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = relid), 'USAGE'));

-- A partition created or attached under an isolated table is isolated in the same
-- transaction, whoever creates it (floe's partition module, pg_partman or a person).
CREATE FUNCTION floe.tenant_on_ddl() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    r record;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM floe.tenant_tables) THEN
        RETURN;
    END IF;
    -- pg_dump output starts with SET check_function_bodies = false and restores floe's
    -- policies itself (after the registry rows): creating them here too would make its
    -- CREATE POLICY statements fail.
    IF pg_catalog.current_setting('check_function_bodies') = 'off' THEN
        RETURN;
    END IF;
    FOR r IN SELECT DISTINCT c.objid FROM pg_catalog.pg_event_trigger_ddl_commands() c
              WHERE c.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                AND c.object_type = 'table'
    LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE oid = r.objid
                    AND (relispartition OR relkind = 'p')) THEN
            PERFORM floe.tenant_apply_partitions(r.objid::pg_catalog.regclass);
        END IF;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION floe.tenant_on_ddl() IS
  'Event trigger: isolates partitions created or attached under a tenant-isolated table.';
CREATE EVENT TRIGGER floe_tenant_on_ddl ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE')
    EXECUTE FUNCTION floe.tenant_on_ddl();

-- Dropped tables leave floe's registries.
CREATE FUNCTION floe.on_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    gone integer;
BEGIN
    -- Most drops concern no registered table; skipping the joins keeps DROP TABLE (and
    -- partition retention) cheap.
    IF EXISTS (SELECT 1 FROM floe.tenant_tables) THEN
        DELETE FROM floe.tenant_tables t
         USING pg_catalog.pg_event_trigger_dropped_objects() d
         WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.objsubid = 0
           AND t.relid::pg_catalog.oid = d.objid;
    END IF;
    -- A dropped parent takes its partition set along (object_identity quotes like the key).
    IF EXISTS (SELECT 1 FROM floe.partition_sets) THEN
        DELETE FROM floe.partition_sets p
         USING pg_catalog.pg_event_trigger_dropped_objects() d
         WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.objsubid = 0 AND d.object_type = 'table'
           AND (p.relid = d.objid
                OR (p.relid IS NULL AND p.parent = d.object_identity));
    END IF;
    -- A dropped materialized view leaves the refresh registry (its sources go along), its
    -- history goes too, and change triggers no other view needs are removed.
    IF EXISTS (SELECT 1 FROM floe.matview_refreshes) THEN
        DELETE FROM floe.matview_refreshes h
         USING pg_catalog.pg_event_trigger_dropped_objects() d
         WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.objsubid = 0 AND h.view::pg_catalog.oid = d.objid;
    END IF;
    IF EXISTS (SELECT 1 FROM floe.matviews) THEN
        DELETE FROM floe.matviews m
         USING pg_catalog.pg_event_trigger_dropped_objects() d
         WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.objsubid = 0 AND m.view::pg_catalog.oid = d.objid;
        IF FOUND THEN
            PERFORM floe.matview_sync_triggers();
        END IF;
    END IF;
    -- A dropped table takes its declared references along (their triggers went with it):
    -- scan state, orphans, queued keys and the foreign table over the target.
    IF EXISTS (SELECT 1 FROM floe.declared_references) THEN
        FOR gone IN
            WITH r AS (DELETE FROM floe.declared_references f
                        USING pg_catalog.pg_event_trigger_dropped_objects() d
                        WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                          AND d.objsubid = 0 AND f.tbl::pg_catalog.oid = d.objid
                       RETURNING f.id)
            SELECT r.id FROM r
        LOOP
            DELETE FROM floe.reference_scans WHERE reference_id = gone;
            DELETE FROM floe.reference_orphans WHERE reference_id = gone;
            DELETE FROM floe.reference_pending WHERE reference_id = gone;
            EXECUTE pg_catalog.format('DROP FOREIGN TABLE IF EXISTS floe.%I', 'reference_' || gone || '_target');
        END LOOP;
    END IF;
END
$fn$;
COMMENT ON FUNCTION floe.on_sql_drop() IS
  'Event trigger: removes dropped tables from floe''s registries.';
CREATE EVENT TRIGGER floe_on_sql_drop ON sql_drop EXECUTE FUNCTION floe.on_sql_drop();

-- Signed tenant tokens (floe.set_tenant_token): the database's signing keys, readable and
-- rotated by the extension's owner only. The current key has retire_at NULL; a rotated one
-- is accepted until its retire_at.
CREATE TABLE floe.tenant_token_keys (
    id          integer     PRIMARY KEY,
    key         bytea       NOT NULL CHECK (pg_catalog.length(key) = 32),
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    retire_at   timestamptz
);
COMMENT ON TABLE floe.tenant_token_keys IS
  'floe tenant tokens: the keys that sign tenant tokens (32 random bytes each; the current one has retire_at NULL, a rotated one is accepted until retire_at). Readable by the extension''s owner only.';
REVOKE ALL ON floe.tenant_token_keys FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('floe.tenant_token_keys', '');

-- Roles whose sessions must set their tenant with a token (plain set_tenant and SET refused).
CREATE TABLE floe.tenant_token_roles (
    role        regrole     PRIMARY KEY,
    since       timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE floe.tenant_token_roles IS
  'floe tenant tokens: roles (and their members) that must set the tenant with floe.set_tenant_token(); floe.require_tenant_token() maintains it.';
GRANT SELECT ON floe.tenant_token_roles TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('floe.tenant_token_roles', '');
CREATE TRIGGER tenant_token_roles_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON floe.tenant_token_roles
    FOR EACH STATEMENT EXECUTE FUNCTION floe.tenant_token_roles_changed();

CREATE FUNCTION floe.require_tenant_token(role regrole, required boolean DEFAULT true)
RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog AS $fn$
    DELETE FROM floe.tenant_token_roles t
     WHERE t.role = require_tenant_token.role AND NOT require_tenant_token.required;
    INSERT INTO floe.tenant_token_roles (role)
    SELECT require_tenant_token.role WHERE require_tenant_token.required
        ON CONFLICT DO NOTHING;
$fn$;
COMMENT ON FUNCTION floe.require_tenant_token(regrole, boolean) IS
  'floe tenant tokens: from now on, role (and its members; superuser alone does not count) must set the tenant with floe.set_tenant_token(): floe.set_tenant() and SET of the tenant variable are refused for it. required => false lifts that.';
REVOKE EXECUTE ON FUNCTION floe.require_tenant_token(regrole, boolean) FROM PUBLIC;
