-- Content store, by hand (no scheduler worker): the codec functions and their errors, the
-- store (dedup per tenant, reference counts, release and grace), tenant isolation, tiering
-- hot -> warm -> cold -> archive with a trained dictionary (read back identical at every
-- step), a dictionary in use that cannot be dropped, near-duplicates, managed columns,
-- policies, statistics and health. Bad input changes nothing.
CREATE ROLE ct_app;
CREATE ROLE ct_ops;
GRANT floe_tenant_admin TO ct_ops;
CREATE OR REPLACE FUNCTION error_of(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
GRANT EXECUTE ON FUNCTION error_of(text) TO PUBLIC;
-- A templated e-mail: the same markup around a name and a tracking token.
CREATE FUNCTION mail(name text, token int, lines int DEFAULT 40) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT '<html><body><p>Dear ' || name || ',</p>' ||
           string_agg('<tr><td style="padding:8px;color:#333">Our spring collection item ' || g ||
                      ' ships free on orders over fifty dollars.</td></tr>', E'\n') ||
           '<a href="https://t.example.com/u/' || md5(token::text) || '">Unsubscribe</a></body></html>'
      FROM generate_series(1, lines) g
$$;
GRANT EXECUTE ON FUNCTION mail(text, int, int) TO PUBLIC;

-- Codec functions ------------------------------------------------------------------------
SELECT codec, dictionary, raw_size, stored_size < raw_size / 5 AS shrunk
  FROM floe.frame_info(floe.compress(mail('Ana', 1), 'zstd'));
SELECT c AS codec, floe.decompress_text(floe.compress(mail('Ana', 1), c)) = mail('Ana', 1) AS round_trip,
       (floe.frame_info(floe.compress(mail('Ana', 1), c))).codec AS stored_as
  FROM unnest(ARRAY['none', 'lz4', 'zstd']) c;
SELECT floe.decompress(floe.compress('\x00ff10'::bytea, 'zstd', 19));
-- Incompressible bytes are stored as they are, a frame never grows beyond its 14-byte header.
SELECT (floe.frame_info(f)).codec, length(f) FROM (SELECT floe.compress('\x01020304'::bytea, 'lz4') f) x;
SELECT floe.compress(NULL::bytea) IS NULL AS null_in_null_out;
SELECT error_of($$SELECT floe.decompress('\x28b52ffd0000'::bytea)$$) AS zstd_frame_not_ours;
SELECT error_of($$SELECT floe.decompress('\xf20000'::bytea)$$) AS future_version;
SELECT error_of($$SELECT floe.decompress(substr(floe.compress(mail('Ana', 1), 'lz4'), 1, 40))$$) AS truncated;
SELECT error_of($$SELECT floe.decompress(overlay(floe.compress(mail('Ana', 1), 'zstd') PLACING '\x00'::bytea FROM 30))$$) AS flipped;
SELECT error_of($$SELECT floe.decompress(overlay(floe.compress(mail('Ana', 1), 'none') PLACING '\x41'::bytea FROM 20))$$) AS flipped_stored;
SELECT error_of($$SELECT floe.compress('x'::text, 'brotli')$$) AS unknown_codec;
SELECT error_of($$SELECT floe.compress('x'::text, 'zstd', 23)$$) AS bad_level;
SELECT error_of($$SELECT floe.compress('x'::text, 'lz4', dictionary => 1)$$) AS lz4_dictionary;
SELECT error_of($$SELECT floe.compress('x'::text, 'zstd', dictionary => 999)$$) AS no_dictionary;
SELECT error_of($$SELECT floe.frame_info(''::bytea)$$) AS empty;

-- The store ------------------------------------------------------------------------------
SET ROLE ct_app;
SELECT error_of($$SELECT floe.content_put('body'::text)$$) AS no_tenant;
BEGIN;
SELECT floe.set_tenant('aaaaaaaa-0000-0000-0000-000000000001');
CREATE TEMP TABLE h AS SELECT floe.content_put(mail('Ana', 1)) AS a;
-- The same body again: same hash, one row, two references.
SELECT floe.content_put(mail('Ana', 1)) = (SELECT a FROM h) AS same_hash;
SELECT tier, codec, raw_size, stored_size < raw_size / 5 AS shrunk, refs, puts, released_at IS NULL AS live
  FROM floe.content;
SELECT floe.content_get_text((SELECT a FROM h)) = mail('Ana', 1) AS reads_back;
SELECT floe.content_get((SELECT a FROM h)) = convert_to(mail('Ana', 1), 'UTF8') AS bytes_too;
SELECT floe.content_get(NULL) IS NULL AS null_hash;
SELECT error_of($$SELECT floe.content_get('\x00'::bytea)$$) AS short_hash;
SELECT error_of($$SELECT floe.content_get(decode(repeat('00', 32), 'hex'))$$) AS unknown_hash;
SELECT error_of($$SELECT floe.content_put('x'::text, 'bbbbbbbb-0000-0000-0000-000000000002')$$) AS other_tenant;
SELECT error_of($$SELECT floe.content_get((SELECT a FROM h), 'bbbbbbbb-0000-0000-0000-000000000002')$$) AS other_tenant_get;
SELECT error_of($$UPDATE floe.content SET refs = 7$$) AS no_direct_writes;
COMMIT;
-- Another tenant sees nothing of it, and cannot tell it exists (same error as no body at all).
BEGIN;
SELECT floe.set_tenant('bbbbbbbb-0000-0000-0000-000000000002');
SELECT count(*) AS rows_seen FROM floe.content;
SELECT error_of($$SELECT floe.content_get((SELECT a FROM h))$$) AS foreign_hash;
-- The same body for tenant b: stored again (dedup is per tenant: no cross-tenant side channel).
SELECT floe.content_put(mail('Ana', 1)) = (SELECT a FROM h) AS same_hash_own_row;
COMMIT;
RESET ROLE;
SELECT tenant, refs FROM floe.content ORDER BY tenant;

-- Release and grace.
SET ROLE ct_app;
BEGIN;
SELECT floe.set_tenant('aaaaaaaa-0000-0000-0000-000000000001');
SELECT floe.content_release((SELECT a FROM h)) AS left_1;
SELECT floe.content_release((SELECT a FROM h)) AS left_0;
SELECT error_of($$SELECT floe.content_release((SELECT a FROM h))$$) AS once_too_often;
-- Readable while in grace, and a put revives it.
SELECT floe.content_get_text((SELECT a FROM h)) = mail('Ana', 1) AS readable_in_grace;
SELECT floe.content_put(mail('Ana', 1)) IS NOT NULL AS revived;
SELECT refs, released_at IS NULL AS live FROM floe.content;
SELECT floe.content_release((SELECT a FROM h)) AS left_0_again;
COMMIT;
RESET ROLE;
SELECT floe.content_gc() AS removed_within_grace;
SET floe.content_gc_grace = 0;
SELECT floe.content_gc() AS removed_after_grace;
RESET floe.content_gc_grace;
SELECT tenant, refs FROM floe.content ORDER BY tenant;
SET ROLE ct_app;
SELECT error_of($$SELECT floe.content_gc()$$) AS gc_is_for_the_owner;
RESET ROLE;

-- Tiering --------------------------------------------------------------------------------
-- Tenant c: 40 near-copies of one template. Time is moved by editing last_read.
CREATE TABLE originals (n int PRIMARY KEY, body text, hash bytea);
GRANT ALL ON originals TO ct_app;
SET ROLE ct_app;
BEGIN;
SELECT floe.set_tenant('cccccccc-0000-0000-0000-000000000003');
SELECT floe.set_content_policy(tenant => floe.current_tenant(), warm_after => '1 hour',
                               cold_after => '1 day', archive_after => '2 days', retrain_min_rows => 10);
INSERT INTO originals SELECT n, mail('Customer ' || n, n, 30 + n), NULL FROM generate_series(1, 40) n;
UPDATE originals SET hash = floe.content_put(body);
SELECT tier, codec, count(*) FROM floe.content GROUP BY 1, 2;
COMMIT;
RESET ROLE;
CREATE FUNCTION read_back() RETURNS TABLE (tier text, codec text, dictionary boolean, bodies bigint, identical bigint)
LANGUAGE sql AS $$
    SELECT c.tier, c.codec, c.dictionary IS NOT NULL, count(*),
           count(*) FILTER (WHERE floe.decompress_text(c.data) = o.body)
      FROM originals o JOIN floe.content c ON c.hash = o.hash AND c.tenant = 'cccccccc-0000-0000-0000-000000000003'
     GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
$$;
-- Reads go through floe.decompress() of the stored frame: floe.content_get() would move
-- last_read, which the steps set by hand.
CREATE FUNCTION step(age interval) RETURNS bigint LANGUAGE sql AS $$
    UPDATE floe.content SET last_read = now() - age WHERE tenant = 'cccccccc-0000-0000-0000-000000000003';
    SELECT floe.content_tier();
$$;
GRANT ct_ops TO CURRENT_USER;
BEGIN;                                           -- admin mode is per transaction
SET LOCAL floe.tenant_admin = on;
SELECT * FROM read_back();                       -- hot: stored as is
SELECT step('2 hours') AS moved_to_warm;
SELECT * FROM read_back();
SELECT step('30 hours') AS moved_to_cold;
SELECT * FROM read_back();
SELECT step('3 days') AS moved_to_archive;       -- no dictionary yet: zstd at level 19
SELECT * FROM read_back();
SELECT floe.content_tier() AS nothing_left;
-- The maintenance job trains the dictionary (the tenant has archived bodies and at least
-- retrain_min_rows), and the next batch recompresses the archive with it.
SELECT removed, trained FROM floe.content_maintenance();
SELECT samples, size > 0 AS has_bytes FROM floe.content_dictionaries;
SELECT * FROM read_back();
SELECT sum(stored_size) < (SELECT sum(length(floe.compress(body, 'lz4'))) / 3 FROM originals)
       AS archive_3x_smaller_than_lz4
  FROM floe.content WHERE tenant = 'cccccccc-0000-0000-0000-000000000003';
-- A read moves last_read (once a day at most); the next batch brings the body back to hot.
SELECT length(floe.content_get_text(hash, 'cccccccc-0000-0000-0000-000000000003')) > 0 AS read
  FROM originals WHERE n = 1;
SELECT floe.content_tier() AS promoted;
SELECT c.tier, c.codec FROM originals o JOIN floe.content c ON c.hash = o.hash WHERE o.n = 1;
-- A dictionary in use cannot be dropped: not by floe, not behind its back.
SELECT error_of(format('SELECT floe.drop_dictionary(%s)', (SELECT id FROM floe.content_dictionaries)))
       AS drop_in_use;
SELECT error_of($$DELETE FROM floe.content_dictionaries$$) AS delete_in_use;
SELECT count(*) AS dictionaries FROM floe.content_dictionaries;
-- compress/decompress with a dictionary belong to its tenant.
SELECT floe.decompress_text(floe.compress(mail('Zoë', 7), 'zstd', 19, (SELECT id FROM floe.content_dictionaries)))
       = mail('Zoë', 7) AS dictionary_frame_round_trip;
SELECT id AS dict FROM floe.content_dictionaries \gset
COMMIT;
SET ROLE ct_app;
BEGIN;
SELECT floe.set_tenant('aaaaaaaa-0000-0000-0000-000000000001');
SELECT error_of(format('SELECT floe.compress(%L::text, %L, 3, %s)', 'x', 'zstd', :dict))
       AS other_tenants_dictionary;
COMMIT;
RESET ROLE;
-- Retraining (due: the dictionary is 8 days old and more than retrain_min_rows bodies came
-- since) keeps the current dictionary unless the candidate stores the held-out bodies at
-- least 5 % smaller: trained on the same 40 bodies, it is not, and the current one is
-- marked checked.
BEGIN;                                           -- admin mode is per transaction
SET LOCAL floe.tenant_admin = on;
UPDATE floe.content_dictionaries SET trained_at = now() - interval '8 days';
SELECT removed, trained FROM floe.content_maintenance();
SELECT count(*) AS dictionaries, bool_and(checked_at IS NOT NULL) AS checked FROM floe.content_dictionaries;
-- A dictionary trained by hand is kept as it is. The tiering then moves the archive onto the
-- newest dictionary (the hot body stays hot), and the old dictionary, unused, goes with GC.
SELECT floe.train_dictionary('cccccccc-0000-0000-0000-000000000003', sample_rows => 40) > :dict AS newer;
SELECT floe.content_tier() AS recompressed;
SELECT floe.content_tier() AS nothing_left;
SELECT count(*) FILTER (WHERE dictionary > :dict) AS on_the_new_dictionary
  FROM floe.content WHERE tier = 'archive';
SELECT * FROM read_back();
SELECT floe.content_gc() AS removed;
SELECT count(*) AS dictionaries, min(id) > :dict AS only_the_new_one FROM floe.content_dictionaries;
-- Then mail of another kind comes (40 invoices). The next retraining's candidate, trained
-- on both kinds, stores the held-out bodies (some invoices among them) clearly smaller than
-- the current dictionary, so it replaces it; the same maintenance moves the archive onto it,
-- and GC drops the old dictionary.
SELECT id AS dict2 FROM floe.content_dictionaries \gset
SELECT count(floe.content_put(format(E'INVOICE %s\naccount %s\n%s', n, md5(n::text),
           repeat(E'Consulting hours | rate EUR 120.00 | amount due net 30 days\n', 20 + n % 9)),
       'cccccccc-0000-0000-0000-000000000003')) AS invoices
  FROM generate_series(1, 40) n;
UPDATE floe.content_dictionaries SET trained_at = now() - interval '8 days', checked_at = NULL;
SELECT removed, moved, trained FROM floe.content_maintenance();
SELECT floe.content_gc() AS removed;
SELECT count(*) AS dictionaries, min(id) > :dict2 AS replaced FROM floe.content_dictionaries;
SELECT * FROM read_back();
-- A body no codec shrinks is stored as it is in the archive too, and only once: it is not a
-- candidate again because the tenant has a dictionary.
SELECT floe.content_put(decode(string_agg(md5(i::text || random()::text), ''), 'hex'),
                        'cccccccc-0000-0000-0000-000000000003') IS NOT NULL AS put
  FROM generate_series(1, 256) i;
UPDATE floe.content SET last_read = now() - interval '3 days'
 WHERE tenant = 'cccccccc-0000-0000-0000-000000000003' AND raw_size = 4096;
SELECT floe.content_tier() AS archived;
SELECT tier, codec, dictionary IS NULL AS no_dictionary FROM floe.content WHERE raw_size = 4096;
SELECT floe.content_tier() AS not_again;
COMMIT;

-- Near-duplicates ------------------------------------------------------------------------
BEGIN;                                           -- admin mode is per transaction
SET LOCAL floe.tenant_admin = on;
SELECT count(*) AS near_copies, min(similarity) >= 0.8 AS all_similar
  FROM floe.similar_content((SELECT hash FROM originals WHERE n = 20), tenant => 'cccccccc-0000-0000-0000-000000000003',
                            max_results => 100);
SELECT floe.content_put('Invoice 2291: three seats of the Pro plan, billed monthly; payment due in thirty days.'::text,
                        'cccccccc-0000-0000-0000-000000000003') IS NOT NULL AS invoice;
SELECT count(*) AS invoice_is_not_near
  FROM floe.similar_content((SELECT hash FROM originals WHERE n = 20), 0.8, 'cccccccc-0000-0000-0000-000000000003', 100) s
 WHERE s.raw_size < 200;
SELECT error_of($$SELECT * FROM floe.similar_content((SELECT hash FROM originals WHERE n = 20), 1.5, 'cccccccc-0000-0000-0000-000000000003')$$) AS bad_similarity;
COMMIT;

-- Managed columns ------------------------------------------------------------------------
CREATE TABLE public.email_content (id int PRIMARY KEY, tenant_id uuid NOT NULL, subject text, body text, size int);
INSERT INTO public.email_content VALUES (1, 'dddddddd-0000-0000-0000-000000000004', 'old', mail('Old', 1), 0);
GRANT ALL ON public.email_content TO ct_app;
SELECT error_of($$SELECT floe.manage_content('public.email_content', 'nope')$$) AS no_column;
SELECT error_of($$SELECT floe.manage_content('public.email_content', 'size')$$) AS int_column;
SELECT error_of($$SELECT floe.manage_content('public.email_content', 'body', tenant_column => 'subject')$$) AS text_tenant;
SELECT error_of($$SELECT floe.manage_content('floe.content_stats', 'tier')$$) AS a_view;
SELECT count(*) AS nothing_changed FROM information_schema.columns WHERE table_name = 'email_content' AND column_name LIKE '%hash';
-- The existing row belongs to tenant d: moving it needs that tenant (or admin mode).
SELECT error_of($$SELECT floe.manage_content('public.email_content', 'body', tenant_column => 'tenant_id')$$) AS migrate_needs_tenant;
BEGIN;
SELECT floe.set_tenant('dddddddd-0000-0000-0000-000000000004');
SELECT floe.manage_content('public.email_content', 'body', tenant_column => 'tenant_id') AS migrated;
COMMIT;
-- The view is the caller's, like any view: grant it as the table is granted.
GRANT SELECT ON public.email_content_with_body TO ct_app;
SET ROLE ct_app;
BEGIN;
SELECT floe.set_tenant('dddddddd-0000-0000-0000-000000000004');
INSERT INTO public.email_content (id, tenant_id, subject, body) VALUES
    (2, 'dddddddd-0000-0000-0000-000000000004', 'welcome', mail('Łukasz', 2)),
    (3, 'dddddddd-0000-0000-0000-000000000004', 'welcome again', mail('Łukasz', 2));
SELECT id, subject, body IS NULL AS moved, length(body_hash) AS hash_bytes FROM public.email_content ORDER BY id;
SELECT id, subject, body = CASE id WHEN 1 THEN mail('Old', 1) ELSE mail('Łukasz', 2) END AS reads_back
  FROM public.email_content_with_body ORDER BY id;
SELECT refs FROM floe.content WHERE hash = (SELECT body_hash FROM public.email_content WHERE id = 2);
UPDATE public.email_content SET body = mail('Old', 1) WHERE id = 3;
SELECT refs FROM floe.content WHERE hash = (SELECT body_hash FROM public.email_content WHERE id = 2);
CREATE TEMP TABLE lh AS SELECT body_hash FROM public.email_content WHERE id = 2;
DELETE FROM public.email_content WHERE id = 2;
SELECT refs, released_at IS NOT NULL AS released FROM floe.content WHERE hash = (SELECT body_hash FROM lh);
COMMIT;
RESET ROLE;

-- Policies -------------------------------------------------------------------------------
SET ROLE ct_app;
SELECT error_of($$SELECT floe.set_content_policy(warm_after => '1 day')$$) AS global_is_for_the_owner;
BEGIN;
SELECT floe.set_tenant('aaaaaaaa-0000-0000-0000-000000000001');
SELECT error_of($$SELECT floe.set_content_policy(floe.current_tenant(), cold_after => '1 day', archive_after => '1 hour')$$) AS out_of_order;
SELECT count(*) AS unchanged FROM floe.content_policies WHERE tenant IS NOT NULL;
SELECT error_of($$SELECT floe.set_content_policy('cccccccc-0000-0000-0000-000000000003', warm_after => '1 day')$$) AS other_tenant;
-- A tenant's policy row names the tenant: other tenants' rows are not visible (tenant c has one).
SELECT count(*) AS rows_seen, count(*) FILTER (WHERE tenant IS NOT NULL) AS tenant_rows_seen
  FROM floe.content_policies;
COMMIT;
SELECT count(*) AS rows_seen_without_a_tenant FROM floe.content_policies;
RESET ROLE;
SELECT count(*) FILTER (WHERE tenant IS NOT NULL) > 0 AS the_owner_sees_tenant_rows FROM floe.content_policies;
-- The owner sets the global policy; what it leaves out stays.
SELECT floe.set_content_policy(cold_after => '8 days');
SELECT warm_after, cold_after, archive_after, archive_level FROM floe.content_policies WHERE tenant IS NULL;
SELECT floe.set_content_policy(cold_after => '7 days');
BEGIN;                                           -- admin mode is per transaction
SET LOCAL floe.tenant_admin = on;
SELECT floe.reset_content_policy('cccccccc-0000-0000-0000-000000000003') AS reset;
COMMIT;

-- Statistics and health ------------------------------------------------------------------
BEGIN;                                           -- admin mode is per transaction
SET LOCAL floe.tenant_admin = on;
SELECT tenant, tier, bodies, refs, dedup_hits, raw_bytes >= stored_bytes AS compressed
  FROM floe.content_stats ORDER BY tenant NULLS LAST, tier NULLS LAST;
COMMIT;
-- Tenant c is back on the global policy (warm from the start, cold after 7 days): its
-- bodies last read 3 days ago wait for warm, and the health check says so until a batch runs.
SELECT check_name, status FROM floe.health() WHERE check_name LIKE 'content.%' ORDER BY 1;
SELECT floe.content_tier() AS moved_back_to_warm;
SELECT check_name, status FROM floe.health() WHERE check_name LIKE 'content.%' ORDER BY 1;
