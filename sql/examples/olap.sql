-- The reference platform, OLAP tier: analytics partitioned by month, dashboards as
-- materialized views refreshed by floe when their data changes, billing audited (SOX).
CREATE SCHEMA app;

CREATE TABLE app.campaign_analytics (
    tenant_id   uuid NOT NULL,
    campaign_id bigint NOT NULL,
    day         date NOT NULL,
    sent        int NOT NULL,
    opened      int NOT NULL,
    clicked     int NOT NULL,
    PRIMARY KEY (tenant_id, campaign_id, day)
) PARTITION BY RANGE (day);
SELECT floe.create_parent('app.campaign_analytics', 'day', start => date_trunc('month', now()) - interval '2 months');

CREATE TABLE app.billing_analytics (
    id         bigint GENERATED ALWAYS AS IDENTITY,
    tenant_id  uuid NOT NULL,
    at         timestamptz NOT NULL,
    event      text NOT NULL,
    amount     numeric(12, 2) NOT NULL,
    PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);
SELECT floe.create_parent('app.billing_analytics', 'at', start => date_trunc('month', now()) - interval '2 months');
SELECT floe.set_retention('app.billing_analytics', '7 years', 'detach');

CREATE TABLE app.mailbox_analytics (
    tenant_id  uuid NOT NULL,
    account_id bigint NOT NULL,
    day        date NOT NULL,
    sent       int NOT NULL,
    bounced    int NOT NULL,
    PRIMARY KEY (tenant_id, account_id, day)
);

SELECT count(*) AS statements
  FROM unnest('{app.campaign_analytics,app.billing_analytics,app.mailbox_analytics}'::regclass[]) t, LATERAL floe.enable_tenant_isolation(t);
SELECT floe.enable_audit('app.billing_analytics', classification => '{sox}');

-- Dashboards (read by operators across tenants), refreshed when their tables change, at most
-- every 10 seconds, never staler than 5 minutes.
CREATE MATERIALIZED VIEW app.tenant_dashboard AS
SELECT tenant_id, sum(sent) AS sent, sum(opened) AS opened, sum(clicked) AS clicked,
       round(100.0 * sum(opened) / nullif(sum(sent), 0), 1) AS open_rate
  FROM app.campaign_analytics GROUP BY tenant_id;
CREATE UNIQUE INDEX ON app.tenant_dashboard (tenant_id);
CREATE MATERIALIZED VIEW app.billing_monthly AS
SELECT tenant_id, date_trunc('month', at) AS month, sum(amount) AS amount, count(*) AS events
  FROM app.billing_analytics GROUP BY 1, 2;
CREATE UNIQUE INDEX ON app.billing_monthly (tenant_id, month);
SELECT floe.register_matview('app.tenant_dashboard', on_change => true, min_interval => '10 seconds', max_staleness => '5 minutes');
SELECT floe.register_matview('app.billing_monthly', on_change => true, min_interval => '10 seconds', max_staleness => '5 minutes');

-- The application's role reads its tenant's analytics (the dashboards stay operators' only).
DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'platform_app') THEN CREATE ROLE platform_app; END IF;
END $$;
GRANT USAGE ON SCHEMA app TO platform_app;
GRANT SELECT ON app.campaign_analytics, app.billing_analytics, app.mailbox_analytics TO platform_app;
