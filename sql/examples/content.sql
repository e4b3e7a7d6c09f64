-- The reference platform, Content tier: messages (partitioned by month) and their bodies,
-- which live compressed and deduplicated per tenant in floe's content store.
CREATE SCHEMA app;

CREATE TABLE app.email_messages (
    id          bigint NOT NULL,
    tenant_id   uuid NOT NULL,
    campaign_id bigint,            -- these three point at rows of the OLTP tier: declared as
    email_account_id bigint,       -- cross-tier references when the platform has its
    lead_id     bigint,            -- postgres_fdw server (sql/examples/content_references.sql)
    template    int NOT NULL,
    subject     text NOT NULL,
    sent_at     timestamptz NOT NULL,
    PRIMARY KEY (id, sent_at)
) PARTITION BY RANGE (sent_at);
SELECT floe.create_parent('app.email_messages', 'sent_at', start => date_trunc('month', now()) - interval '2 months');
-- The lead reference's scan reads keys in this order (as a foreign key's referencing side
-- wants an index on its columns).
CREATE INDEX ON app.email_messages (tenant_id, lead_id);

CREATE TABLE app.email_content (
    message_id  bigint PRIMARY KEY,
    tenant_id   uuid NOT NULL,
    body        text
);
-- Bodies go to the store: the column keeps NULL, body_hash the key, and the view
-- app.email_content_with_body reads them back.
SELECT floe.manage_content('app.email_content', 'body', 'tenant_id');

SELECT count(*) AS statements
  FROM unnest('{app.email_messages,app.email_content}'::regclass[]) t, LATERAL floe.enable_tenant_isolation(t);

-- The application's role: the tables (through their tenant policies) and the bodies' view.
DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'platform_app') THEN CREATE ROLE platform_app; END IF;
END $$;
GRANT USAGE ON SCHEMA app TO platform_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA app TO platform_app;
