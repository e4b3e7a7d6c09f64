-- The reference platform, OLTP tier: tenants and what they own. Every table with a tenant is
-- isolated (RLS that fails closed, guard trigger, tenant index); the tables holding personal
-- data are audited, their e-mail addresses logged only as a keyed hash.
-- Run in a database with CREATE EXTENSION floe; creates schema app.
CREATE SCHEMA app;

CREATE TABLE app.tenants (
    id         uuid PRIMARY KEY,
    name       text NOT NULL,
    domain     text UNIQUE,          -- the login domain: users of name@domain belong here
    plan       text NOT NULL CHECK (plan IN ('free', 'starter', 'growth', 'enterprise')),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE app.users (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  uuid NOT NULL REFERENCES app.tenants,
    email      text NOT NULL,
    name       text NOT NULL,
    role       text NOT NULL DEFAULT 'member',
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, email)
);
CREATE TABLE app.companies (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  uuid NOT NULL REFERENCES app.tenants,
    name       text NOT NULL,
    domain     text NOT NULL,
    UNIQUE (tenant_id, id)        -- the target of tenant-carrying foreign keys
);
CREATE TABLE app.campaigns (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  uuid NOT NULL REFERENCES app.tenants,
    name       text NOT NULL,
    status     text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'running', 'paused', 'done')),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id)
);
CREATE TABLE app.leads (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  uuid NOT NULL REFERENCES app.tenants,
    company_id bigint,
    campaign_id bigint,
    email      text NOT NULL,
    name       text NOT NULL,
    status     text NOT NULL DEFAULT 'new',
    score      int NOT NULL DEFAULT 0,
    -- Keys between tenant tables carry the tenant: a foreign key check bypasses row level
    -- security, so a key on company_id alone would let one tenant point at another's company
    -- (floe.tenant_coverage() names such keys).
    FOREIGN KEY (tenant_id, company_id) REFERENCES app.companies (tenant_id, id),
    FOREIGN KEY (tenant_id, campaign_id) REFERENCES app.campaigns (tenant_id, id)
);
CREATE TABLE app.email_accounts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES app.tenants,
    address     text NOT NULL,
    provider    text NOT NULL,
    daily_limit int NOT NULL DEFAULT 500
);

-- Tenant isolation: the tenants table is keyed by the tenant itself.
SELECT count(*) AS statements FROM floe.enable_tenant_isolation('app.tenants', tenant_column => 'id');
SELECT count(*) AS statements
  FROM unnest('{app.users,app.companies,app.campaigns,app.leads,app.email_accounts}'::regclass[]) t, LATERAL floe.enable_tenant_isolation(t);

-- Audit: personal data (GDPR), addresses as keyed hashes.
SELECT floe.enable_audit('app.users', redact => '{email}', classification => '{gdpr}');
SELECT floe.enable_audit('app.leads', redact => '{email}', classification => '{gdpr}');
SELECT floe.enable_audit('app.email_accounts', redact => '{address}', classification => '{gdpr}');

-- The application's role: it sees a tenant's rows once it says which tenant it serves.
DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'platform_app') THEN CREATE ROLE platform_app; END IF;
END $$;
GRANT USAGE ON SCHEMA app TO platform_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA app TO platform_app;

-- The login flow finds a tenant before it has one: by the login's domain, through this one
-- narrow function (the only cross-tenant read the application can do). It runs as the
-- schema's owner, in admin mode for its own transaction only, and returns the tenant's id,
-- nothing else; the auth service then mints that tenant's token (floe.mint_tenant_token).
CREATE FUNCTION app.tenant_by_domain(login_domain text) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET floe.tenant_admin = on
AS $$ SELECT t.id FROM app.tenants t WHERE t.domain = lower(login_domain) $$;
REVOKE EXECUTE ON FUNCTION app.tenant_by_domain(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.tenant_by_domain(text) TO platform_app;
