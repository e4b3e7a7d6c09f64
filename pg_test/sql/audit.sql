-- Audit trail, by hand (no scheduler worker): enabling (and the errors that change nothing),
-- what an entry records (changed columns only, primary key, tenant from the row or the
-- context, actor and floe.actor, redaction as a keyed BLAKE3 hash, classification), entries
-- of rolled-back work vanish with it, the log is append-only for its owner too, sealing and
-- verification, and a tamper test: a superuser edits, deletes and forges entries behind
-- floe's back (triggers disabled) and floe.verify_audit() names each one.
CREATE ROLE au_app;
CREATE ROLE au_other;
-- Errors name the log partition they hit (floe.audit_log_<year>_<month> of the clock): the
-- month is printed as _YYYY_MM so the suite passes in any month.
CREATE OR REPLACE FUNCTION error_of(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, 'audit_log_\d{4}_\d{2}\M', 'audit_log_YYYY_MM', 'g');
END
$$;
GRANT EXECUTE ON FUNCTION error_of(text) TO PUBLIC;
-- Entries, numbered from this suite's first one (ids come from a sequence).
CREATE VIEW entries AS
SELECT id - (SELECT min(id) FROM floe.audit_log) + 1 AS n, table_name, op, tenant, actor, app_actor,
       pk, old_values, new_values, redacted, classification
  FROM floe.audit_log;

CREATE TABLE leads (
    id        bigint PRIMARY KEY,
    tenant_id uuid NOT NULL,
    email     text NOT NULL,
    name      text,
    score     int NOT NULL DEFAULT 0,
    tags      text[],
    meta      jsonb,
    active    boolean DEFAULT true
);
ALTER TABLE leads OWNER TO au_app;
CREATE VIEW leads_view AS SELECT * FROM leads;
CREATE TABLE events (at timestamptz NOT NULL, id int, what text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE events_other PARTITION OF events DEFAULT;

-- Bad input: a clear error, and nothing changes ----------------------------------------
SELECT error_of($$SELECT floe.enable_audit('leads_view')$$) AS a_view;
SELECT error_of($$SELECT floe.enable_audit('floe.jobs')$$) AS a_floe_table;
SELECT error_of($$SELECT floe.enable_audit('events_2026')$$) AS a_partition;
SELECT error_of($$SELECT floe.enable_audit('leads', redact => '{e_mail}')$$) AS unknown_column;
SELECT error_of($$SELECT floe.enable_audit('leads', classification => '{"pci dss"}')$$) AS bad_flag;
SET ROLE au_other;
SELECT error_of($$SELECT floe.enable_audit('leads')$$) AS not_owner;
RESET ROLE;
SELECT error_of($$SELECT floe.disable_audit('leads')$$) AS not_audited;
SELECT floe.disable_audit('leads', if_exists => true) AS removed;
SELECT count(*) AS audited_tables FROM floe.audit_tables;
SELECT count(*) AS audit_triggers FROM pg_trigger WHERE tgname LIKE 'floe_audit%';

-- Enabling -------------------------------------------------------------------------------
SET ROLE au_app;
SELECT floe.enable_audit('leads', redact => '{email}', classification => '{GDPR, sox, gdpr}');
RESET ROLE;
SELECT relid, redact, classification, enabled_by FROM floe.audit_tables;
SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'leads'::regclass ORDER BY tgname;
-- The log is a monthly partition set now, with a default partition.
SELECT parent, control, part_interval, default_partition FROM floe.partition_sets WHERE parent = 'floe.audit_log';
-- Calling it again changes the settings.
SELECT floe.enable_audit('leads', redact => '{email}', classification => '{gdpr,sox}');
SELECT floe.enable_audit('events');
SELECT relid, redact, classification FROM floe.audit_tables ORDER BY relid::text;

-- What an entry records ------------------------------------------------------------------
SET floe.actor = 'alice@app.example';
INSERT INTO leads (id, tenant_id, email, name, tags, meta)
VALUES (1, 'aaaaaaaa-0000-0000-0000-000000000001', 'ann@example.com', 'Ann "A" O''Neil', '{x,y}', '{"src": "web", "n": 2}'),
       (2, 'aaaaaaaa-0000-0000-0000-000000000002', 'bob@example.com', NULL, NULL, NULL);
UPDATE leads SET score = 5, email = 'ann@example.org' WHERE id = 1;
UPDATE leads SET name = name WHERE id = 1;          -- nothing changed: logged with no columns
UPDATE leads SET name = 'Bob', active = false WHERE id = 2;
DELETE FROM leads WHERE id = 2;
RESET floe.actor;
-- (Redaction hashes are keyed by the database's own random key: shown as blake3:….)
SELECT n, table_name, op, tenant, actor, app_actor, pk,
       regexp_replace(old_values::text, 'blake3:[0-9a-f]{32}', 'blake3:…', 'g') AS old_values,
       regexp_replace(new_values::text, 'blake3:[0-9a-f]{32}', 'blake3:…', 'g') AS new_values,
       redacted, classification
  FROM entries ORDER BY n;
-- Redaction: the address is nowhere in the log; equal values hash alike.
SELECT count(*) AS plaintext_anywhere FROM floe.audit_log a WHERE a::text LIKE '%@example.%';
SELECT (SELECT new_values->>'email' FROM entries WHERE n = 1) ~ '^blake3:[0-9a-f]{32}$' AS hashed,
       (SELECT new_values->>'email' FROM entries WHERE n = 1) = (SELECT old_values->>'email' FROM entries WHERE n = 3) AS same_value_same_hash,
       (SELECT old_values->>'email' FROM entries WHERE n = 3) <> (SELECT new_values->>'email' FROM entries WHERE n = 3) AS changed_value_other_hash;
-- A table with no tenant column takes the context's tenant; a partitioned table logs under
-- its own name, whichever partition the row is in.
BEGIN;
SELECT floe.set_tenant('aaaaaaaa-0000-0000-0000-000000000009');
INSERT INTO events VALUES ('2026-05-01', 1, 'open'), ('2030-01-01', 2, 'click');
COMMIT;
-- Straight into a partition (no statement trigger there): written at commit.
INSERT INTO events_2026 VALUES ('2026-06-01', 3, 'direct');
SELECT n, table_name, op, tenant, pk FROM entries WHERE table_name = 'events' ORDER BY n;
-- A tenant-isolated table: the tenant comes from the row.
CREATE TABLE notes (id int PRIMARY KEY, tenant_id uuid NOT NULL, body text);
SELECT floe.enable_tenant_isolation('notes');
SELECT floe.enable_audit('notes');
BEGIN;
SELECT floe.set_tenant('aaaaaaaa-0000-0000-0000-000000000003');
INSERT INTO notes (id, body) VALUES (1, 'hello');
COMMIT;
SELECT table_name, op, tenant, new_values FROM entries WHERE table_name = 'notes';
-- TRUNCATE is one entry.
CREATE TABLE scratch (id int PRIMARY KEY);
SELECT floe.enable_audit('scratch');
INSERT INTO scratch SELECT generate_series(1, 3);
TRUNCATE scratch;
SELECT op, count(*) FROM entries WHERE table_name = 'scratch' GROUP BY op ORDER BY op;

-- Rolled-back work leaves no entry ---------------------------------------------------------
BEGIN;
INSERT INTO scratch VALUES (10);
SAVEPOINT s;
INSERT INTO scratch VALUES (11);
ROLLBACK TO SAVEPOINT s;
INSERT INTO scratch VALUES (12);
COMMIT;
BEGIN;
INSERT INTO scratch VALUES (20);
ROLLBACK;
SELECT error_of($$INSERT INTO scratch VALUES (30), (12)$$) AS duplicate_key;
SELECT new_values FROM entries WHERE table_name = 'scratch' AND op = 'INSERT' AND n > 5 ORDER BY n;
-- Many rows in one statement (flushed in batches of 1000).
INSERT INTO scratch SELECT generate_series(100, 2599);
SELECT count(*) AS bulk_entries FROM floe.audit_log WHERE table_name = 'scratch' AND (new_values->>'id')::int >= 100;

-- Append-only, for the owner (a superuser) too ----------------------------------------------
SELECT error_of($$UPDATE floe.audit_log SET actor = 'x'$$) AS update_log;
SELECT error_of($$DELETE FROM floe.audit_log$$) AS delete_log;
SELECT error_of($$TRUNCATE floe.audit_log$$) AS truncate_log;
SELECT error_of(format('TRUNCATE %s', (SELECT c.oid::regclass FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                                         WHERE i.inhparent = 'floe.audit_log'::regclass ORDER BY c.relname LIMIT 1)))
       AS truncate_a_partition;
SELECT error_of($$UPDATE floe.audit_key SET key = key$$) AS change_key;
SET session_replication_role = replica;
SELECT error_of($$DELETE FROM floe.audit_log$$) AS delete_as_replica;
RESET session_replication_role;
SELECT count(*) > 0 AS entries_still_there FROM floe.audit_log;

-- Sealing and verification -----------------------------------------------------------------
SELECT floe.audit_seal() AS sealed;
SELECT floe.audit_seal() AS nothing_new;
SELECT error_of($$DELETE FROM floe.audit_seals$$) AS delete_seals;
SELECT error_of($$UPDATE floe.audit_seal_runs SET entries = 0$$) AS change_runs;
-- A run writes one seal per table and month, chained to the table's seal before it: summed
-- per table, and seal counts printed as S, so that a month turning during the suite (the
-- calendar layer) changes nothing here.
SELECT relid::regclass, run, sum(array_length(entry_ids, 1)) AS entries, sum(length(digests) / 16) AS digests,
       min(length(hash)) AS hash_bytes, bool_or(prev_hash = '\x0000000000000000000000000000000000000000000000000000000000000000') AS first
  FROM floe.audit_seals GROUP BY relid, run ORDER BY relid::regclass::text, run;
SELECT table_name, status, entry_id, regexp_replace(detail, '\d+ seals', 'S seals') AS detail
  FROM floe.verify_audit() ORDER BY table_name, status;
UPDATE leads SET score = 6 WHERE id = 1;     -- not sealed yet
SELECT table_name, status, regexp_replace(detail, '\d+ seals', 'S seals') AS detail
  FROM floe.verify_audit() WHERE table_name = 'public.leads';
SELECT floe.audit_seal() AS sealed;
SELECT relid::regclass, run, prev_hash = (SELECT hash FROM floe.audit_seals s2 WHERE s2.relid = s.relid AND s2.run = 1
                                           ORDER BY s2.month DESC LIMIT 1) AS chained
  FROM floe.audit_seals s WHERE run = (SELECT max(run) FROM floe.audit_seal_runs);
SELECT check_name, status FROM floe.health() WHERE check_name LIKE 'audit.%';

-- Months leave the log only by floe's retention ---------------------------------------------
-- The month of the newest seal: detaching or dropping it by hand is refused, for a superuser
-- too, and so is a retention that would leave months behind as ordinary tables.
SELECT format('floe.audit_log_%s', to_char(max(month), 'YYYY_MM')) AS sealed_month FROM floe.audit_seals \gset
SELECT error_of(format('ALTER TABLE floe.audit_log DETACH PARTITION %s', :'sealed_month')) AS detach_month;
SELECT error_of(format('DROP TABLE %s', :'sealed_month')) AS drop_month;
SELECT error_of($$SELECT floe.set_retention('floe.audit_log', '1 month', 'detach')$$) AS retention_by_detach;
SELECT error_of($$SELECT floe.set_retention('floe.audit_log', '1 month', 'archive', 'public')$$) AS retention_by_archive;
SELECT c.relispartition AS month_still_in_log, s.retention IS NULL AS no_retention_set
  FROM pg_class c, floe.partition_sets s WHERE c.oid = :'sealed_month'::regclass AND s.parent = 'floe.audit_log';
-- A superuser can switch the event triggers off; the month is still named: verify_audit()
-- reports it detached (then dropped), and floe.health() goes critical. (Rolled back.)
BEGIN;
ALTER EVENT TRIGGER floe_audit_on_ddl DISABLE;
SELECT error_of(format('ALTER TABLE floe.audit_log DETACH PARTITION %s', :'sealed_month')) AS detached_by_hand;
SELECT count(*) FILTER (WHERE status = 'detached' AND entry_id IS NULL) > 0 AS month_reported_detached,
       count(*) FILTER (WHERE status = 'tampered') > 0 AS tables_tampered,
       count(*) FILTER (WHERE status = 'removed') AS entries_reported_one_by_one
  FROM floe.verify_audit();
SELECT check_name, status, detail ~ '\d{4}-\d{2} \(detached\)' AS names_the_month
  FROM floe.health() WHERE check_name = 'audit.chain';
ROLLBACK;
BEGIN;
ALTER EVENT TRIGGER floe_audit_on_drop DISABLE;
SELECT error_of(format('DROP TABLE %s', :'sealed_month')) AS dropped_by_hand;
SELECT count(*) FILTER (WHERE status = 'removed' AND entry_id IS NULL) > 0 AS month_reported_removed,
       bool_and(detail ~ 'partition was dropped') FILTER (WHERE status = 'removed') AS says_dropped
  FROM floe.verify_audit();
SELECT check_name, status, detail ~ '\d{4}-\d{2} \(dropped\)' AS names_the_month
  FROM floe.health() WHERE check_name = 'audit.chain';
ROLLBACK;
SELECT count(*) FILTER (WHERE status <> 'ok') AS problems_after_rollback FROM floe.verify_audit();

-- Auditing switched off by a table's owner is named ---------------------------------------
ALTER TABLE leads DISABLE TRIGGER USER;           -- every user trigger, as its owner may
ALTER TABLE events_other DISABLE TRIGGER floe_audit;   -- one partition's clone of the row trigger
SELECT * FROM floe.audit_triggers_off('leads');
SELECT * FROM floe.audit_triggers_off('events');
SELECT table_name, status, detail FROM floe.verify_audit() WHERE status <> 'ok' ORDER BY table_name, detail;
SELECT check_name, status, detail, hint IS NOT NULL AS has_hint FROM floe.health() WHERE check_name = 'audit.capture';
SELECT table_name, audited FROM floe.inventory() WHERE relid IN ('leads'::regclass, 'events'::regclass) ORDER BY 1;
ALTER TABLE leads ENABLE TRIGGER USER;
ALTER TABLE events_other ENABLE TRIGGER floe_audit;
SELECT count(*) AS triggers_off FROM floe.audit_triggers_off('leads');
SELECT check_name, status FROM floe.health() WHERE check_name = 'audit.capture';

-- Tampering behind floe's back ---------------------------------------------------------------
ALTER TABLE floe.audit_log DISABLE TRIGGER floe_append_only;
-- Edit: the UPDATE of entry 3 now claims another actor.
UPDATE floe.audit_log SET actor = 'mallory' WHERE id = (SELECT min(id) + 2 FROM floe.audit_log);
-- Delete: the DELETE of lead 2 (entry 6) disappears.
DELETE FROM floe.audit_log WHERE id = (SELECT min(id) + 5 FROM floe.audit_log);
-- Forge: an entry slipped into an already sealed range of transactions.
INSERT INTO floe.audit_log (id, xid, relid, schema_name, table_name, op, actor, new_values)
SELECT 900000, xid, relid, schema_name, table_name, 'INSERT', 'mallory', '{"id": 99}'
  FROM floe.audit_log WHERE id = (SELECT min(id) FROM floe.audit_log);
ALTER TABLE floe.audit_log ENABLE ALWAYS TRIGGER floe_append_only;
SELECT table_name, status, entry_id - (SELECT min(id) FROM floe.audit_log) + 1 AS entry, detail ~ 'run \d' AS names_the_run
  FROM floe.verify_audit() WHERE status <> 'ok' ORDER BY table_name, entry_id NULLS LAST;
-- A changed seal breaks the chain.
ALTER TABLE floe.audit_seals DISABLE TRIGGER floe_append_only;
UPDATE floe.audit_seals SET digests = set_byte(digests, 0, get_byte(digests, 0) # 255) WHERE relid = 'scratch'::regclass AND run = 1;
ALTER TABLE floe.audit_seals ENABLE ALWAYS TRIGGER floe_append_only;
SELECT table_name, status, detail ~ '^(entry \d+ differs from what run 1 sealed|the seal of run 1 |\d+ entries in 1 seals checked, 2 problems)' AS detail_as_expected
  FROM floe.verify_audit()
 WHERE table_name = 'public.scratch' AND status <> 'ok' ORDER BY status;
SELECT check_name, status, detail LIKE '%leads%' AS names_leads FROM floe.health() WHERE check_name = 'audit.chain';
-- verify_audit is for auditors.
SET ROLE au_other;
SELECT error_of($$SELECT * FROM floe.verify_audit()$$) AS not_an_auditor;
SELECT error_of($$SELECT * FROM floe.audit_log$$) AS log_not_public;
RESET ROLE;

-- Disabling ----------------------------------------------------------------------------------
SET ROLE au_app;
SELECT floe.disable_audit('leads');
RESET ROLE;
INSERT INTO leads (id, tenant_id, email) VALUES (3, 'aaaaaaaa-0000-0000-0000-000000000001', 'c@example.com');
SELECT count(*) AS entries_of_lead_3 FROM floe.audit_log WHERE table_name = 'leads' AND pk = '{"id": 3}';
SELECT count(*) AS audit_triggers_left FROM pg_trigger WHERE tgrelid = 'leads'::regclass AND tgname LIKE 'floe_audit%';
SELECT relid FROM floe.audit_tables ORDER BY relid::text;
-- A dropped table leaves the registry; its entries stay.
CREATE TABLE gone (id int PRIMARY KEY);
SELECT floe.enable_audit('gone');
INSERT INTO gone VALUES (1);
DROP TABLE gone;
SELECT count(*) AS registered, (SELECT count(*) FROM floe.audit_log WHERE table_name = 'gone') AS entries
  FROM floe.audit_tables WHERE relid::text = 'gone';

-- Inventory: one row per user table, with what floe does to it ------------------------------
ANALYZE scratch;
SELECT table_name, kind, tenant_isolation, partition_set, partitions, audited, classification,
       content_columns, matviews, row_estimate, total_bytes > 0 AS has_bytes
  FROM floe.inventory()
 WHERE relid IN ('leads'::regclass, 'events'::regclass, 'scratch'::regclass, 'notes'::regclass)
 ORDER BY table_name;

-- Retention takes whole months and counts back from today: a future as_of (a preview, planning
-- ahead) premakes months but retires none, however short the retention. (Retiring months, and
-- what verify_audit() says of them, is tested with a moved clock: pg_test/tests/audit_months.sh.)
SELECT count(*) AS entries_before FROM floe.audit_log \gset
SELECT floe.set_retention('floe.audit_log', '1 month', 'drop');
CALL floe.run_maintenance('floe.audit_log', as_of => now() + interval '3 months');
SELECT count(*) = :entries_before AS nothing_retired FROM floe.audit_log;
SELECT floe.set_retention('floe.audit_log', NULL);

-- Written straight into the month, or through SQL: the same entries -------------------------
-- floe writes entries into the month's heap and indexes itself, building their jsonb in
-- memory; a month with an INSERT trigger (or a rule, row security, a column floe does not
-- fill) is written through SQL instead, from the entries' JSON text, and the trigger runs.
-- The same statements on twin tables, one written each way, log the same entries: strings
-- with quotes, escapes, control characters and non-ASCII; numbers as numeric keeps them
-- (1.50, -0, 1e-7, NaN, infinities); booleans; NULLs; json values; dates; arrays; key order.
CREATE TABLE twin_a (id int PRIMARY KEY, "é" text, a_rather_long_column_name numeric, f float8,
                     b bool, t text, j jsonb, ts timestamptz, d date, arr int[], u uuid);
CREATE TABLE twin_b (LIKE twin_a INCLUDING ALL);
SELECT floe.enable_audit('twin_a', redact => '{t}', classification => '{gdpr}'),
       floe.enable_audit('twin_b', redact => '{t}', classification => '{gdpr}');
CREATE TABLE twin_rows AS SELECT * FROM (VALUES
    (1, 'plain', 1.50, 1.5::float8, true, 'secret', NULL::jsonb, '2026-01-02 03:04:05.678+00'::timestamptz,
     '2024-02-29'::date, '{1,2,NULL}'::int[], 'aaaaaaaa-0000-0000-0000-000000000001'::uuid),
    (2, E'quote " backslash \\ newline \n tab \t bell \x07 é 😀', -0.0, 'NaN', false, '', '{"a": [1, {"b": null}], "c": "x"}',
     NULL, NULL, '{}', NULL),
    (3, '', 'NaN', '-Infinity', NULL, 'secret', '"x"', 'infinity', 'infinity', NULL, NULL),
    (4, '{"not": "json"}', 1e-7, 1e30, true, NULL, '5', '1999-12-31 23:59:59.999999+00', '0001-01-01 BC', '{{1,2},{3,4}}', NULL),
    (5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
  ) v(id, "é", a_rather_long_column_name, f, b, t, j, ts, d, arr, u);
CREATE FUNCTION twin_changes(tbl text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('INSERT INTO %I SELECT * FROM twin_rows', tbl);
    EXECUTE format($s$INSERT INTO %I (id, "é", a_rather_long_column_name) VALUES (6, 'one row', 'Infinity')$s$, tbl);
    EXECUTE format($s$UPDATE %I SET "é" = "é" || '!', f = f * 2, t = 'other' WHERE id <= 2$s$, tbl);
    EXECUTE format($s$UPDATE %I SET j = '{"k": [true, null]}', b = NOT b WHERE id IN (3, 4)$s$, tbl);
    EXECUTE format('UPDATE %I SET a_rather_long_column_name = 2.000 WHERE id = 5', tbl);
    EXECUTE format('DELETE FROM %I WHERE id IN (1, 4)', tbl);
END $$;
SELECT twin_changes('twin_a');
-- An INSERT trigger on the log (so on every month): floe writes through SQL, and the trigger
-- sees every entry.
CREATE TABLE twin_fired (n int);
CREATE FUNCTION twin_fired() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO twin_fired VALUES (1); RETURN NEW; END $$;
CREATE TRIGGER twin_fired BEFORE INSERT ON floe.audit_log FOR EACH ROW EXECUTE FUNCTION twin_fired();
SELECT twin_changes('twin_b');
DROP TRIGGER twin_fired ON floe.audit_log;
SELECT count(*) AS entries_through_sql FROM twin_fired;
CREATE VIEW twins AS
SELECT table_name, row_number() OVER (PARTITION BY table_name ORDER BY id) AS n, schema_name, op, tenant,
       actor, app_actor, client_addr, pk, old_values, new_values, redacted, classification,
       relid = table_name::regclass AS relid_ok
  FROM floe.audit_log WHERE table_name IN ('twin_a', 'twin_b');
SELECT count(*) AS entries,
       count(*) FILTER (WHERE (a.schema_name, a.op, a.tenant, a.actor, a.app_actor, a.client_addr, a.redacted,
                               a.classification, a.relid_ok, a.pk::text, a.old_values::text, a.new_values::text)
                              IS NOT DISTINCT FROM
                              (b.schema_name, b.op, b.tenant, b.actor, b.app_actor, b.client_addr, b.redacted,
                               b.classification, b.relid_ok, b.pk::text, b.old_values::text, b.new_values::text)
                          AND a.pk IS NOT DISTINCT FROM b.pk AND a.old_values IS NOT DISTINCT FROM b.old_values
                          AND a.new_values IS NOT DISTINCT FROM b.new_values) AS the_same
  FROM (SELECT * FROM twins WHERE table_name = 'twin_a') a
  FULL JOIN (SELECT * FROM twins WHERE table_name = 'twin_b') b USING (n);
-- What they say (twin_a's), for the record (redaction hashes shown as blake3:….).
SELECT n, regexp_replace(op || ' ' || pk::text || ': ' || coalesce(old_values::text, '') || ' -> '
                         || coalesce(new_values::text, ''), 'blake3:[0-9a-f]{32}', 'blake3:…', 'g') AS entry
  FROM twins WHERE table_name = 'twin_a' ORDER BY n;
-- A jsonb value reads back as one: its keys are found (jsonb's lookup relies on their order).
SELECT new_values -> 'a_rather_long_column_name' AS long_key, new_values -> 'é' AS short_key,
       new_values ? 'arr' AS has_arr, jsonb_typeof(new_values -> 'f') AS f_type
  FROM twins WHERE table_name = 'twin_a' AND op = 'INSERT' ORDER BY n;
