-- The reference platform, OLAP tier: analytics rows name OLTP campaigns and tenants, declared
-- over the postgres_fdw server tier_oltp (scripts/platform.sh creates it). Analytics are
-- loaded in bulk by pipelines: they are scanned, not checked row by row.
SELECT floe.declare_reference('app.campaign_analytics', '{campaign_id}', 'tier_oltp', 'app.campaigns', '{id}');
-- The tenant column itself points at OLTP's tenants (so the reference is not per tenant).
SELECT floe.declare_reference('app.billing_analytics', '{tenant_id}', 'tier_oltp', 'app.tenants', '{id}',
                              tenant_column => NULL);
