-- floe 0.4.0 -> 0.5.0: the content store (issue #6).
-- Assembled from the 0.5.0 install script: every object 0.5.0 adds (functions, the tables
-- floe.content, floe.content_dictionaries, floe.content_policies, floe.content_columns, the
-- views, the built-in job floe.content_maintenance). Nothing of 0.4.0 changes.
-- pg_test/tests/upgrade.sh checks that an updated database has exactly the objects of a
-- fresh 0.5.0 install.
\echo Use "ALTER EXTENSION floe UPDATE TO '0.5.0'" to load this file. \quit

-- floe::content::api::compress
CREATE  FUNCTION "compress"(
	"data" bytea, /* Option < & [u8] > */
	"codec" TEXT DEFAULT 'zstd', /* Option < & str > */
	"level" INT DEFAULT 3, /* Option < i32 > */
	"dictionary" INT DEFAULT NULL /* Option < i32 > */
) RETURNS bytea /* Result < :: std :: option :: Option < Vec < u8 > > , ErrorReport > */
STABLE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'compress_wrapper';

-- floe::content::api::compress
CREATE  FUNCTION "compress"(
	"data" TEXT, /* Option < & str > */
	"codec" TEXT DEFAULT 'zstd', /* Option < & str > */
	"level" INT DEFAULT 3, /* Option < i32 > */
	"dictionary" INT DEFAULT NULL /* Option < i32 > */
) RETURNS bytea /* Result < :: std :: option :: Option < Vec < u8 > > , ErrorReport > */
STABLE PARALLEL RESTRICTED 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'compress_text_wrapper';

-- floe::content::api::content_gc
CREATE  FUNCTION "content_gc"() RETURNS bigint /* Result < i64, ErrorReport > */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'content_gc_wrapper';

-- floe::content::api::content_maintenance
CREATE  FUNCTION "content_maintenance"() RETURNS TABLE (
	"removed" bigint,  /* i64 */
	"moved" bigint,  /* i64 */
	"trained" bigint  /* i64 */
)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'content_maintenance_wrapper';

-- floe::content::api::content_retrain
CREATE  FUNCTION "content_retrain"() RETURNS bigint /* Result < i64, ErrorReport > */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'content_retrain_wrapper';

-- floe::content::api::content_tier
CREATE  FUNCTION "content_tier"(
	"batch" INT DEFAULT NULL /* Option < i32 > */
) RETURNS bigint /* Result < i64, ErrorReport > */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'content_tier_wrapper';

-- floe::content::api::content_release
CREATE  FUNCTION "content_release"(
	"hash" bytea, /* Option < & [u8] > */
	"tenant" uuid DEFAULT floe.current_tenant() /* Option < Uuid > */
) RETURNS bigint /* Result < i64, ErrorReport > */
VOLATILE PARALLEL UNSAFE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'content_release_wrapper';

-- floe::content::api::content_put
CREATE  FUNCTION "content_put"(
	"body" TEXT, /* Option < & str > */
	"tenant" uuid DEFAULT floe.current_tenant() /* Option < Uuid > */
) RETURNS bytea /* Result < :: std :: option :: Option < Vec < u8 > > , ErrorReport > */
VOLATILE PARALLEL UNSAFE  
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'content_put_text_wrapper';

-- floe::content::api::content_get_text
CREATE  FUNCTION "content_get_text"(
	"hash" bytea, /* Option < & [u8] > */
	"tenant" uuid DEFAULT floe.current_tenant() /* Option < Uuid > */
) RETURNS TEXT /* Result < Option < String > , ErrorReport > */
VOLATILE PARALLEL UNSAFE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'content_get_text_wrapper';

-- floe::content::api::content_get
CREATE  FUNCTION "content_get"(
	"hash" bytea, /* Option < & [u8] > */
	"tenant" uuid DEFAULT floe.current_tenant() /* Option < Uuid > */
) RETURNS bytea /* Result < :: std :: option :: Option < Vec < u8 > > , ErrorReport > */
VOLATILE PARALLEL UNSAFE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'content_get_wrapper';

-- floe::content::api::content_put
CREATE  FUNCTION "content_put"(
	"body" bytea, /* Option < & [u8] > */
	"tenant" uuid DEFAULT floe.current_tenant() /* Option < Uuid > */
) RETURNS bytea /* Result < :: std :: option :: Option < Vec < u8 > > , ErrorReport > */
VOLATILE PARALLEL UNSAFE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'content_put_wrapper';

-- floe::content::api::decompress
CREATE  FUNCTION "decompress"(
	"frame" bytea /* & [u8] */
) RETURNS bytea /* Result < Vec < u8 > , ErrorReport > */
STRICT STABLE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'decompress_wrapper';

-- floe::content::api::decompress_text
CREATE  FUNCTION "decompress_text"(
	"frame" bytea /* & [u8] */
) RETURNS TEXT /* Result < String, ErrorReport > */
STRICT STABLE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'decompress_text_wrapper';

-- floe::content::api::drop_dictionary
CREATE  FUNCTION "drop_dictionary"(
	"id" INT /* Option < i32 > */
) RETURNS bool /* Result < bool, ErrorReport > */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'drop_dictionary_wrapper';

-- floe::content::api::frame_info
CREATE  FUNCTION "frame_info"(
	"frame" bytea /* & [u8] */
) RETURNS TABLE (
	"version" INT,  /* i32 */
	"codec" TEXT,  /* String */
	"dictionary" INT,  /* Option < i32 > */
	"raw_size" bigint,  /* i64 */
	"stored_size" bigint  /* i64 */
)
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'frame_info_wrapper';

-- floe::content::api::manage_content
CREATE  FUNCTION "manage_content"(
	"tbl" regclass, /* Option < PgRelation > */
	"column" name, /* Option < Name > */
	"tenant_column" name DEFAULT NULL, /* Option < Name > */
	"migrate" bool DEFAULT true /* Option < bool > */
) RETURNS bigint /* Result < i64, ErrorReport > */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'manage_content_wrapper';

-- floe::content::api::reset_content_policy
CREATE  FUNCTION "reset_content_policy"(
	"tenant" uuid /* Option < Uuid > */
) RETURNS bool /* Result < bool, ErrorReport > */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'reset_content_policy_wrapper';

-- floe::content::api::set_content_policy
CREATE  FUNCTION "set_content_policy"(
	"tenant" uuid DEFAULT NULL, /* Option < Uuid > */
	"warm_after" interval DEFAULT NULL, /* Option < Interval > */
	"cold_after" interval DEFAULT NULL, /* Option < Interval > */
	"archive_after" interval DEFAULT NULL, /* Option < Interval > */
	"cold_level" INT DEFAULT NULL, /* Option < i32 > */
	"archive_level" INT DEFAULT NULL, /* Option < i32 > */
	"retrain_every" interval DEFAULT NULL, /* Option < Interval > */
	"retrain_min_rows" INT DEFAULT NULL /* Option < i32 > */
) RETURNS VOID /* Result < (), ErrorReport > */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'set_content_policy_wrapper';

-- floe::content::api::similar_content
CREATE  FUNCTION "similar_content"(
	"hash" bytea, /* Option < & [u8] > */
	"min_similarity" real DEFAULT 0.8, /* Option < f32 > */
	"tenant" uuid DEFAULT floe.current_tenant(), /* Option < Uuid > */
	"max_results" INT DEFAULT 10 /* Option < i32 > */
) RETURNS TABLE (
	"hash" bytea,  /* Vec < u8 > */
	"similarity" real,  /* f32 */
	"raw_size" INT,  /* i32 */
	"tier" TEXT  /* String */
)
VOLATILE PARALLEL UNSAFE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'similar_content_wrapper';


-- floe content store: bodies compressed and deduplicated per tenant (floe.content), the
-- tenants' zstd dictionaries (floe.content_dictionaries), the tiering policies
-- (floe.content_policies), and the maintenance job.
--
-- floe's functions write these tables as the extension's owner after checking the tenant
-- context (src/content/api.rs); a role reads the rows of its tenant under row level security
-- (members of floe_tenant_admin, in admin mode, read every tenant's).

CREATE SEQUENCE floe.content_dictionary_id_seq AS integer;
SELECT pg_catalog.pg_extension_config_dump('floe.content_dictionary_id_seq', '');

CREATE TABLE floe.content_dictionaries (
    id           integer     PRIMARY KEY DEFAULT pg_catalog.nextval('floe.content_dictionary_id_seq'),
    tenant       uuid        NOT NULL,
    trained_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    samples      integer     NOT NULL,   -- bodies the trainer saw
    sample_bytes bigint      NOT NULL,
    size         integer     NOT NULL,   -- bytes of the dictionary
    data         bytea       NOT NULL
);
ALTER SEQUENCE floe.content_dictionary_id_seq OWNED BY floe.content_dictionaries.id;
-- Dictionaries are already dense: no second compression by TOAST.
ALTER TABLE floe.content_dictionaries ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE INDEX content_dictionaries_tenant_idx ON floe.content_dictionaries (tenant, id);
COMMENT ON TABLE floe.content_dictionaries IS
  'floe content: zstd dictionaries trained per tenant (floe.train_dictionary), versioned by id; a dictionary is never deleted while a body uses it.';
SELECT pg_catalog.pg_extension_config_dump('floe.content_dictionaries', '');

CREATE TABLE floe.content (
    tenant       uuid        NOT NULL,
    hash         bytea       NOT NULL CHECK (pg_catalog.length(hash) = 32),   -- BLAKE3 of the raw bytes
    tier         text        NOT NULL CHECK (tier IN ('hot', 'warm', 'cold', 'archive')),
    codec        text        NOT NULL CHECK (codec IN ('none', 'lz4', 'zstd')),
    dictionary   integer     REFERENCES floe.content_dictionaries (id),       -- NO ACTION: never deleted while used
    raw_size     integer     NOT NULL CHECK (raw_size >= 0),
    stored_size  integer     NOT NULL CHECK (stored_size >= 0),              -- the frame, header included
    refs         bigint      NOT NULL CHECK (refs >= 0),
    puts         bigint      NOT NULL DEFAULT 1,                             -- every put; dedup hits = puts - 1
    simhash      bigint      NOT NULL,                                       -- near-duplicate signature
    created_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    last_read    timestamptz NOT NULL DEFAULT pg_catalog.now(),              -- moved at most once a day
    released_at  timestamptz,                                                -- when refs reached 0
    data         bytea       NOT NULL,                                       -- a floe frame
    PRIMARY KEY (tenant, hash)
);
-- The frame is compressed already: TOAST stores it out of line as it is.
ALTER TABLE floe.content ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE INDEX content_dictionary_idx ON floe.content (dictionary) WHERE dictionary IS NOT NULL;
CREATE INDEX content_released_idx ON floe.content (released_at) WHERE refs = 0;
COMMENT ON TABLE floe.content IS
  'floe content: one row per distinct body per tenant (key: tenant and the BLAKE3 hash of the raw bytes), stored as a floe frame in its tier''s codec, with a reference count.';
SELECT pg_catalog.pg_extension_config_dump('floe.content', '');

-- Tiering and retraining policy: the row with tenant NULL is the global policy; a tenant's
-- row overrides the columns it sets (NULL = the global value).
CREATE TABLE floe.content_policies (
    tenant            uuid     UNIQUE NULLS NOT DISTINCT,
    warm_after        interval CHECK (warm_after >= interval '0'),
    cold_after        interval CHECK (cold_after >= interval '0'),
    archive_after     interval CHECK (archive_after >= interval '0'),
    cold_level        integer,
    archive_level     integer,
    retrain_every     interval CHECK (retrain_every >= interval '1 hour'),
    retrain_min_rows  integer  CHECK (retrain_min_rows >= 10),
    CHECK (tenant IS NOT NULL OR (warm_after IS NOT NULL AND cold_after IS NOT NULL AND archive_after IS NOT NULL
                                  AND cold_level IS NOT NULL AND archive_level IS NOT NULL
                                  AND retrain_every IS NOT NULL AND retrain_min_rows IS NOT NULL))
);
COMMENT ON TABLE floe.content_policies IS
  'floe content: tiering by time since last read (hot: as is, warm: lz4, cold: zstd, archive: zstd + the tenant''s dictionary) and dictionary retraining; tenant NULL is the global policy, a tenant''s row overrides what it sets.';
INSERT INTO floe.content_policies
VALUES (NULL, interval '0', interval '7 days', interval '30 days', 3, 19, interval '7 days', 1000);
SELECT pg_catalog.pg_extension_config_dump('floe.content_policies', '');

-- Columns whose bodies live in the store (floe.manage_content).
CREATE TABLE floe.content_columns (
    relid          regclass NOT NULL,
    column_name    name     NOT NULL,
    hash_column    name     NOT NULL,
    tenant_column  name,             -- NULL: the tenant context
    view           regclass,         -- <table>_with_<column>, which reads the bodies back
    PRIMARY KEY (relid, column_name)
);
COMMENT ON TABLE floe.content_columns IS
  'floe content: table columns whose bodies a trigger moves into the content store (floe.manage_content), with the hash column and the view that reads them back.';
SELECT pg_catalog.pg_extension_config_dump('floe.content_columns', '');

-- The tier each body's last read calls for. The CASE walks the tiers as Policy::tier_for
-- does (a tier is reached only through the ones before it); a tenant's policy row overrides
-- the global one column by column. Internal (the tiering job and the health check).
CREATE VIEW floe.content_tier_targets AS
SELECT c.tenant, c.hash, c.tier, c.last_read, c.dictionary,
       CASE WHEN a.age >= p.warm_after AND a.age >= p.cold_after AND a.age >= p.archive_after THEN 'archive'
            WHEN a.age >= p.warm_after AND a.age >= p.cold_after THEN 'cold'
            WHEN a.age >= p.warm_after THEN 'warm'
            ELSE 'hot' END AS target,
       p.warm_after, p.cold_after, p.archive_after
  FROM floe.content c
 CROSS JOIN LATERAL (SELECT pg_catalog.now() OPERATOR(pg_catalog.-) c.last_read AS age) a
 CROSS JOIN LATERAL (
       SELECT coalesce(t.warm_after, g.warm_after) AS warm_after,
              coalesce(t.cold_after, g.cold_after) AS cold_after,
              coalesce(t.archive_after, g.archive_after) AS archive_after
         FROM floe.content_policies g
         LEFT JOIN floe.content_policies t ON t.tenant OPERATOR(pg_catalog.=) c.tenant
        WHERE g.tenant IS NULL) p;
COMMENT ON VIEW floe.content_tier_targets IS
  'floe content (internal): each body''s tier and the tier its last read calls for under its tenant''s policy.';
REVOKE ALL ON floe.content_tier_targets FROM PUBLIC;

-- What the store holds and saves, per tenant and tier (tier NULL: the tenant's total;
-- tenant and tier NULL: everything you can see). Under the tenant policies of floe.content.
CREATE VIEW floe.content_stats WITH (security_invoker = true) AS
SELECT tenant, tier,
       count(*)                                        AS bodies,
       coalesce(sum(refs), 0)::bigint                  AS refs,
       coalesce(sum(puts), 0)::bigint                  AS puts,
       coalesce(sum(puts - 1), 0)::bigint              AS dedup_hits,
       coalesce(sum(raw_size::bigint * puts), 0)::bigint AS logical_bytes,
       coalesce(sum(raw_size), 0)::bigint              AS raw_bytes,
       coalesce(sum(stored_size), 0)::bigint           AS stored_bytes,
       round(sum(raw_size)::numeric / nullif(sum(stored_size), 0), 2)                AS ratio,
       round(sum(raw_size::numeric * puts) / nullif(sum(stored_size), 0), 2)         AS ratio_with_dedup,
       count(*) FILTER (WHERE refs = 0)                AS released
  FROM floe.content
 GROUP BY GROUPING SETS ((tenant, tier), (tenant), ());
COMMENT ON VIEW floe.content_stats IS
  'floe content: bodies, references, puts and dedup hits, logical (as put), raw (distinct) and stored bytes, compression ratio with and without dedup, per tenant and tier (NULL tier: the tenant''s total; NULL tenant and tier: the total you can see).';
GRANT SELECT ON floe.content_stats TO PUBLIC;

-- Row level security: a tenant reads its own rows; admins in admin mode read all.
ALTER TABLE floe.content ENABLE ROW LEVEL SECURITY;
ALTER TABLE floe.content FORCE ROW LEVEL SECURITY;
ALTER TABLE floe.content_dictionaries ENABLE ROW LEVEL SECURITY;
ALTER TABLE floe.content_dictionaries FORCE ROW LEVEL SECURITY;
ALTER TABLE floe.content_policies ENABLE ROW LEVEL SECURITY;
CREATE POLICY floe_tenant_isolation ON floe.content FOR SELECT
    USING (tenant = (SELECT floe.current_tenant()));
CREATE POLICY floe_tenant_admin ON floe.content FOR SELECT TO floe_tenant_admin
    USING ((SELECT floe.tenant_admin_active()));
CREATE POLICY floe_tenant_isolation ON floe.content_dictionaries FOR SELECT
    USING (tenant = (SELECT floe.current_tenant()));
CREATE POLICY floe_tenant_admin ON floe.content_dictionaries FOR SELECT TO floe_tenant_admin
    USING ((SELECT floe.tenant_admin_active()));
-- Policies say nothing about content; every role may read the global one and its tenant's.
CREATE POLICY content_policies_read ON floe.content_policies FOR SELECT USING (true);
GRANT SELECT ON floe.content, floe.content_dictionaries, floe.content_policies TO PUBLIC;
-- Which columns are managed is no secret of any tenant.
GRANT SELECT ON floe.content_columns TO PUBLIC;

-- Maintenance: every minute, remove released bodies past the grace period, move a batch of
-- bodies to the tier their last read calls for, and (re)train dictionaries that are due.
INSERT INTO floe.jobs (name, schedule, command, builtin, next_run)
VALUES ('floe.content_maintenance', '1 minute', 'SELECT floe.content_maintenance()', true,
        pg_catalog.now() + interval '1 minute');

-- floe::content::api::train_dictionary
CREATE  FUNCTION "train_dictionary"(
	"tenant" uuid DEFAULT floe.current_tenant(), /* Option < Uuid > */
	"sample_rows" INT DEFAULT 1000, /* Option < i32 > */
	"dict_size" INT DEFAULT 112640 /* Option < i32 > */
) RETURNS INT /* Result < i32, ErrorReport > */
VOLATILE PARALLEL UNSAFE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'train_dictionary_wrapper';

-- floe::content::api::content_managed
CREATE FUNCTION "content_managed"()
	RETURNS TRIGGER
	LANGUAGE c
	AS 'MODULE_PATHNAME', 'content_managed_wrapper';



REVOKE EXECUTE ON FUNCTION floe.content_gc(), floe.content_tier(integer), floe.content_retrain(),
                           floe.content_maintenance() FROM PUBLIC;
COMMENT ON FUNCTION floe.compress(bytea, text, integer, integer) IS
  'floe content: compresses bytes into a self-describing floe frame (codec none, lz4 or zstd; level for zstd, -7 to 22; dictionary: the id of one of your tenant''s zstd dictionaries). A codec that does not shrink the bytes stores them as they are.';
COMMENT ON FUNCTION floe.compress(text, text, integer, integer) IS
  'floe content: compresses text into a floe frame (see floe.compress(bytea, ...)).';
COMMENT ON FUNCTION floe.decompress(bytea) IS
  'floe content: the bytes of a floe frame. A value that is not a floe frame raises 22P03; a damaged frame (truncated, altered, wrong dictionary) raises XX001.';
COMMENT ON FUNCTION floe.decompress_text(bytea) IS
  'floe content: the text of a floe frame (22021 if the bytes are not valid UTF-8).';
COMMENT ON FUNCTION floe.frame_info(bytea) IS
  'floe content: what a frame''s header says: format version, codec, dictionary id, raw size, stored size (the frame''s own length).';
COMMENT ON FUNCTION floe.content_put(bytea, uuid) IS
  'floe content: stores one reference to a body for the tenant (default: the current one) and returns its BLAKE3 hash. A body the tenant stored already is not stored twice: its reference count goes up.';
COMMENT ON FUNCTION floe.content_put(text, uuid) IS
  'floe content: floe.content_put() for text.';
COMMENT ON FUNCTION floe.content_get(bytea, uuid) IS
  'floe content: the body stored under this hash for the tenant (default: the current one), checked against its hash. NULL for a NULL hash.';
COMMENT ON FUNCTION floe.content_get_text(bytea, uuid) IS
  'floe content: floe.content_get() as text.';
COMMENT ON FUNCTION floe.content_release(bytea, uuid) IS
  'floe content: drops one reference to a body and returns the references left; a body at zero is removed after floe.content_gc_grace unless put again.';
COMMENT ON FUNCTION floe.similar_content(bytea, real, uuid, integer) IS
  'floe content: the tenant''s bodies most like this one by SimHash over 4-word shingles (similarity = 1 - differing bits / 64; unrelated texts score about 0.5), best first.';
COMMENT ON FUNCTION floe.train_dictionary(uuid, integer, integer) IS
  'floe content: trains a zstd dictionary over the tenant''s newest sample_rows bodies (at most dict_size bytes) and returns its id; the archive tier compresses with the newest one.';
COMMENT ON FUNCTION floe.drop_dictionary(integer) IS
  'floe content: drops one of your tenant''s dictionaries; refused (55000) while a stored body uses it. False if there is no such dictionary.';
COMMENT ON FUNCTION floe.set_content_policy(uuid, interval, interval, interval, integer, integer, interval, integer) IS
  'floe content: sets the tiering and retraining policy of a tenant (tenant NULL: the global policy, for the extension owner). Arguments left NULL keep their value (a tenant''s: the global one). A tier is switched off with a long interval such as ''100 years''.';
COMMENT ON FUNCTION floe.reset_content_policy(uuid) IS
  'floe content: removes a tenant''s own policy, so the global one applies. True if it had one.';
COMMENT ON FUNCTION floe.content_gc() IS
  'floe content: removes bodies without references for longer than floe.content_gc_grace, replaced dictionaries no body uses, and registrations of dropped tables. Returns the bodies removed.';
COMMENT ON FUNCTION floe.content_tier(integer) IS
  'floe content: moves up to batch (default floe.content_tier_batch) bodies to the tier their last read calls for; each is recompressed, verified by a round trip and swapped in this transaction. Returns the bodies moved.';
COMMENT ON FUNCTION floe.content_retrain() IS
  'floe content: trains a new dictionary for each tenant whose policy says it is due (retrain_every, retrain_min_rows) and that has archived bodies. Returns the dictionaries trained.';
COMMENT ON FUNCTION floe.content_maintenance() IS
  'floe content: floe.content_gc(), floe.content_retrain() and one floe.content_tier() batch; the built-in job floe.content_maintenance runs it every minute.';
COMMENT ON FUNCTION floe.content_managed() IS
  'floe content: row trigger of a managed column (floe.manage_content): moves the body into the store, keeps its hash, releases replaced and deleted bodies.';
COMMENT ON FUNCTION floe.manage_content(regclass, name, name, boolean) IS
  'floe content: keeps the bodies of a text or bytea column in the content store: adds <column>_hash, a trigger that stores each written body and clears the column, and the view <table>_with_<column> that reads the bodies back. tenant_column defaults to the table''s floe tenant column (else the tenant context); migrate moves the rows already there. Returns the rows moved.';
