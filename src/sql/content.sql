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
    data         bytea       NOT NULL,
    checked_at   timestamptz             -- the last retraining that kept this one (no better candidate)
);
ALTER SEQUENCE floe.content_dictionary_id_seq OWNED BY floe.content_dictionaries.id;
-- Dictionaries are already dense: no second compression by TOAST.
ALTER TABLE floe.content_dictionaries ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE INDEX content_dictionaries_tenant_idx ON floe.content_dictionaries (tenant, id);
COMMENT ON TABLE floe.content_dictionaries IS
  'floe content: zstd dictionaries trained per tenant (floe.train_dictionary), versioned by id; the archive tier moves to the newest, and a dictionary is never deleted while a body uses it. checked_at: the last retraining that found no candidate at least 5 % better and kept this one.';
SELECT pg_catalog.pg_extension_config_dump('floe.content_dictionaries', '');

CREATE TABLE floe.content (
    tenant       uuid        NOT NULL,
    hash         bytea       NOT NULL CHECK (pg_catalog.length(hash) = 32),   -- BLAKE3 of the raw bytes
    tier         text        NOT NULL CHECK (tier IN ('hot', 'warm', 'cold', 'archive')),
    codec        text        NOT NULL CHECK (codec IN ('none', 'lz4', 'zstd')),
    dictionary   integer,    -- a floe.content_dictionaries id, never deleted while used (trigger floe_in_use)
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

-- No foreign keys between floe's tables: pg_restore -j loads their data in parallel, in any
-- order, after CREATE EXTENSION made the tables (and would have made the keys). A dictionary
-- a body uses is kept by this trigger instead (content_gc() only drops unused ones, never a
-- tenant's newest, the one bodies are moved onto).
CREATE FUNCTION floe.content_dictionary_in_use() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $fn$
BEGIN
    IF EXISTS (SELECT 1 FROM floe.content c WHERE c.dictionary = OLD.id) THEN
        RAISE EXCEPTION 'content dictionary % is used by stored bodies', OLD.id
              USING ERRCODE = 'foreign_key_violation',
                    HINT = 'floe.content_gc() drops a dictionary once no body uses it.';
    END IF;
    RETURN OLD;
END
$fn$;
COMMENT ON FUNCTION floe.content_dictionary_in_use() IS
  'floe content: trigger on floe.content_dictionaries; refuses deleting a dictionary a stored body uses.';
CREATE TRIGGER floe_in_use BEFORE DELETE ON floe.content_dictionaries
    FOR EACH ROW EXECUTE FUNCTION floe.content_dictionary_in_use();

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
-- The global row is made here and dumped with the rest: restoring it (pg_restore's COPY)
-- updates the one CREATE EXTENSION made instead of failing on the unique tenant.
CREATE FUNCTION floe.content_policies_restore_global() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $fn$
BEGIN
    UPDATE floe.content_policies p
       SET warm_after = NEW.warm_after, cold_after = NEW.cold_after,
           archive_after = NEW.archive_after, cold_level = NEW.cold_level,
           archive_level = NEW.archive_level, retrain_every = NEW.retrain_every,
           retrain_min_rows = NEW.retrain_min_rows
     WHERE p.tenant IS NULL;
    IF FOUND THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION floe.content_policies_restore_global() IS
  'floe content: trigger on floe.content_policies; the global policy (tenant NULL) inserted again (a restore) updates the existing one instead.';
CREATE TRIGGER floe_restore_global BEFORE INSERT ON floe.content_policies
    FOR EACH ROW WHEN (NEW.tenant IS NULL) EXECUTE FUNCTION floe.content_policies_restore_global();

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
-- Every role reads the global policy and its own tenant's (a tenant's row names the tenant, so
-- other tenants' rows stay hidden); admins in admin mode read all.
CREATE POLICY content_policies_read ON floe.content_policies FOR SELECT
    USING (tenant IS NULL OR tenant = (SELECT floe.current_tenant_or_null())
           OR (SELECT floe.tenant_admin_active()));
GRANT SELECT ON floe.content, floe.content_dictionaries, floe.content_policies TO PUBLIC;
-- Which columns are managed is no secret of any tenant.
GRANT SELECT ON floe.content_columns TO PUBLIC;

-- Maintenance: every minute, remove released bodies past the grace period, move a batch of
-- bodies to the tier their last read calls for, and (re)train dictionaries that are due.
INSERT INTO floe.jobs (jobid, name, schedule, command, builtin, next_run) OVERRIDING SYSTEM VALUE
VALUES (-6, 'floe.content_maintenance', '1 minute', 'SELECT floe.content_maintenance()', true,
        pg_catalog.now() + interval '1 minute');
