-- Randomized leak test: 8 tenants, related tables, a partitioned table and an analytics table
-- tenanted through a foreign key; 600 random statements (SELECT with filters, joins and
-- sub-queries, partitions queried directly, UPDATE, DELETE, foreign INSERT) as an
-- unprivileged role, each as a random tenant. Every row seen or touched must be the
-- tenant's own, and the per-tenant totals at the end must match what each tenant did.
SELECT setseed(0.42);
CREATE ROLE regress_leak_owner;
CREATE ROLE regress_leak_app;
CREATE SCHEMA leak AUTHORIZATION regress_leak_owner;
GRANT USAGE ON SCHEMA leak TO regress_leak_app;
SET ROLE regress_leak_owner;
CREATE TABLE leak.customers (id int PRIMARY KEY, tenant_id uuid NOT NULL, name text);
CREATE TABLE leak.orders (id int PRIMARY KEY, tenant_id uuid NOT NULL,
                          customer_id int REFERENCES leak.customers (id), amount int NOT NULL);
CREATE TABLE leak.events (id int, tenant_id uuid NOT NULL, at date NOT NULL, kind text)
    PARTITION BY RANGE (at);
CREATE TABLE leak.events_2026_09 PARTITION OF leak.events FOR VALUES FROM ('2026-09-01') TO ('2026-10-01');
CREATE TABLE leak.events_2026_10 PARTITION OF leak.events FOR VALUES FROM ('2026-10-01') TO ('2026-11-01');
CREATE TABLE leak.stats (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES leak.customers (id),
                         clicks int NOT NULL);
-- Ground truth for the analytics rows (not tenant-isolated: only the test reads it).
CREATE TABLE leak.stats_owner (stat_id int PRIMARY KEY, owner uuid NOT NULL);
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA leak TO regress_leak_app;
SELECT count(*) > 0 AS isolated FROM floe.enable_tenant_isolation('leak.customers');
SELECT count(*) > 0 AS isolated FROM floe.enable_tenant_isolation('leak.orders');
SELECT count(*) > 0 AS isolated FROM floe.enable_tenant_isolation('leak.events');
-- created after isolation: the DDL event trigger isolates it
CREATE TABLE leak.events_2026_11 PARTITION OF leak.events FOR VALUES FROM ('2026-11-01') TO ('2026-12-01');
GRANT SELECT, INSERT, UPDATE, DELETE ON leak.events_2026_11 TO regress_leak_app;
SELECT count(*) > 0 AS isolated FROM floe.enable_tenant_isolation('leak.stats', via => 'customer_id');
RESET ROLE;

-- Data, loaded by the superuser in admin mode.
CREATE TEMP TABLE tenants AS
SELECT i, ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid AS t FROM generate_series(1, 8) i;
BEGIN;
SET LOCAL floe.tenant_admin = on;
INSERT INTO leak.customers SELECT c, (SELECT t FROM tenants WHERE i = 1 + c % 8), 'c' || c
  FROM generate_series(1, 400) c;
INSERT INTO leak.orders SELECT o, cu.tenant_id, cu.id, (random() * 1000)::int
  FROM generate_series(1, 3000) o JOIN leak.customers cu ON cu.id = 1 + o % 400;
INSERT INTO leak.events SELECT e, (SELECT t FROM tenants WHERE i = 1 + e % 8),
       date '2026-09-01' + (e % 90), 'k' || (e % 5)
  FROM generate_series(1, 2000) e;
INSERT INTO leak.stats SELECT s, 1 + s % 400, s % 50 FROM generate_series(1, 1500) s;
INSERT INTO leak.stats_owner SELECT s.id, c.tenant_id FROM leak.stats s JOIN leak.customers c ON c.id = s.customer_id;
COMMIT;
CREATE TABLE leak.expected AS
SELECT t.t AS tenant,
       (SELECT count(*) FROM leak.orders o WHERE o.tenant_id = t.t) AS orders,
       (SELECT sum(amount) FROM leak.orders o WHERE o.tenant_id = t.t) AS amount,
       (SELECT count(*) FROM leak.events e WHERE e.tenant_id = t.t) AS events
  FROM tenants t;
GRANT ALL ON leak.expected TO regress_leak_app;
GRANT SELECT ON tenants TO regress_leak_app;

DO $leak$
DECLARE
    n_statements int := 0;
    n_rows int := 0;
    bad int := 0;
    me uuid;
    x int;
    ids int[];
    tids uuid[];
    pick int;
    foreign_t uuid;
BEGIN
    SET LOCAL ROLE regress_leak_app;
    FOR step IN 1..600 LOOP
        x := 1 + floor(random() * 8)::int;
        SELECT t INTO me FROM tenants WHERE i = x;
        PERFORM floe.set_tenant(me);
        x := floor(random() * 1000)::int;
        pick := floor(random() * 9)::int;
        tids := NULL;
        IF pick = 0 THEN
            SELECT array_agg(tenant_id) INTO tids FROM leak.orders WHERE amount < x;
        ELSIF pick = 1 THEN
            SELECT array_agg(t) INTO tids FROM (
                SELECT o.tenant_id AS t FROM leak.orders o JOIN leak.customers c ON c.id = o.customer_id
                 WHERE o.amount > x
                UNION ALL
                SELECT c.tenant_id FROM leak.orders o JOIN leak.customers c ON c.id = o.customer_id
                 WHERE o.amount > x) j;
        ELSIF pick = 2 THEN
            SELECT array_agg(tenant_id) INTO tids FROM leak.customers
             WHERE id IN (SELECT customer_id FROM leak.orders WHERE amount BETWEEN x AND x + 50);
        ELSIF pick = 3 THEN
            EXECUTE format('SELECT array_agg(tenant_id) FROM leak.%I',
                           (ARRAY['events_2026_09', 'events_2026_10', 'events_2026_11'])[1 + x % 3])
               INTO tids;
        ELSIF pick = 4 THEN
            WITH u AS (UPDATE leak.orders SET amount = amount + 1 WHERE amount < x / 10 RETURNING tenant_id)
            SELECT array_agg(tenant_id) INTO tids FROM u;
            UPDATE leak.expected SET amount = amount + coalesce(cardinality(tids), 0) WHERE tenant = me;
        ELSIF pick = 5 THEN
            WITH d AS (DELETE FROM leak.events WHERE id % 97 = x % 97 RETURNING tenant_id)
            SELECT array_agg(tenant_id) INTO tids FROM d;
            UPDATE leak.expected SET events = events - coalesce(cardinality(tids), 0) WHERE tenant = me;
        ELSIF pick = 6 THEN
            SELECT array_agg(id) INTO ids FROM leak.stats WHERE clicks < x % 50;
            SELECT array_agg(owner) INTO tids FROM leak.stats_owner WHERE stat_id = ANY (ids);
        ELSIF pick = 7 THEN
            SELECT array_agg(tenant_id) INTO tids FROM leak.events
             WHERE at >= date '2026-09-01' + x % 60 AND kind = 'k' || (x % 5);
        ELSE
            -- a row for another tenant must be refused and leave nothing behind
            SELECT t INTO foreign_t FROM tenants WHERE t <> me ORDER BY random() LIMIT 1;
            BEGIN
                INSERT INTO leak.orders VALUES (100000 + step, foreign_t, NULL, 1);
                bad := bad + 1;
            EXCEPTION WHEN insufficient_privilege THEN
                NULL;
            END;
            tids := NULL;
        END IF;
        n_statements := n_statements + 1;
        n_rows := n_rows + coalesce(cardinality(tids), 0);
        bad := bad + (SELECT count(*) FROM unnest(tids) u WHERE u IS DISTINCT FROM me);
    END LOOP;
    RESET ROLE;
    RAISE NOTICE 'statements: %, rows seen or touched: % (over 10000: %), foreign rows: %',
        n_statements, CASE WHEN n_rows > 10000 THEN 'many' ELSE 'few' END, n_rows > 10000, bad;
END
$leak$;

-- Per-tenant totals match exactly what each tenant's own statements did.
BEGIN;
SET LOCAL floe.tenant_admin = on;
SELECT count(*) AS tenants_checked,
       count(*) FILTER (WHERE e.orders = (SELECT count(*) FROM leak.orders o WHERE o.tenant_id = e.tenant)
                          AND e.amount = (SELECT sum(amount) FROM leak.orders o WHERE o.tenant_id = e.tenant)
                          AND e.events = (SELECT count(*) FROM leak.events v WHERE v.tenant_id = e.tenant))
         AS tenants_exact
  FROM leak.expected e;
COMMIT;

DROP TABLE tenants;
DROP SCHEMA leak CASCADE;
DROP ROLE regress_leak_owner, regress_leak_app;
