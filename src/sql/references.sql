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
