-- floe 0.10.0 -> 0.11.0: cross-tier references, declaration (issue #26):
-- floe.declared_references, floe.declare_reference, floe.drop_reference.
--
-- First, as every update from 0.8.0 on: refuse a library older than these scripts (a stale
-- floe.so, or a preloaded server not restarted after the install).
CREATE FUNCTION floe.library_version_during_install() RETURNS text
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'version_wrapper';
DO $check$
DECLARE
    library text := floe.library_version_during_install();
    scripts text := (SELECT e.extversion FROM pg_catalog.pg_extension e WHERE e.extname = 'floe');
BEGIN
    IF pg_catalog.string_to_array(library, '.')::int[] < pg_catalog.string_to_array(scripts, '.')::int[] THEN
        RAISE EXCEPTION 'floe''s library (floe.so) is version %, older than the extension scripts (version %)', library, scripts
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'The floe.so in $libdir (pg_config --pkglibdir), or the copy this server process has loaded, comes from an earlier build than floe.control and the SQL files.',
                  HINT = 'Install floe.so from the same build as the control and SQL files; if the server preloads floe (shared_preload_libraries), restart it so it loads the new library, then retry.';
    END IF;
END
$check$;
DROP FUNCTION floe.library_version_during_install();

-- The catalog (as src/sql/references.sql makes it) ------------------------------------------
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

-- The functions (as pgrx generates them) ---------------------------------------------------
CREATE FUNCTION floe."declare_reference"(
	"tbl" regclass, /* Option < PgRelation > */
	"columns" name[], /* Option < Names > */
	"target_server" name, /* Option < Name > */
	"target_table" TEXT, /* Option < String > */
	"target_columns" name[], /* Option < Names > */
	"mode" TEXT DEFAULT 'scan', /* Option < String > */
	"tenant_column" name DEFAULT 'tenant_id', /* Option < Name > */
	"on_unreachable" TEXT DEFAULT 'reject' /* Option < String > */
) RETURNS INT /* Result < i32, ErrorReport > */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'declare_reference_wrapper';

CREATE FUNCTION floe."drop_reference"(
	"tbl" regclass, /* Option < PgRelation > */
	"columns" name[], /* Option < Names > */
	"if_exists" bool DEFAULT false /* Option < bool > */
) RETURNS bool /* Result < bool, ErrorReport > */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'drop_reference_wrapper';

COMMENT ON FUNCTION floe.declare_reference(regclass, name[], name, text, name[], text, name, text) IS
  'floe references: declares (or re-declares) that tbl (columns) point at target_table (target_columns) in the database of the postgres_fdw server target_server, per tenant (a row is satisfied by a target row of the same tenant_column value; NULL: not per tenant). Checks the server, both sides'' columns and types and a unique index on the target columns; keeps the target as the foreign table floe.reference_<id>_target. Returns the reference''s id.';
COMMENT ON FUNCTION floe.drop_reference(regclass, name[], boolean) IS
  'floe references: removes the declared reference of tbl (columns) and its foreign table. True when there was one; if_exists => true: false instead of an error.';
