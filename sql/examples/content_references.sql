-- The reference platform, Content tier: what its messages point at in the OLTP tier, declared
-- over the postgres_fdw server tier_oltp (scripts/platform.sh creates it and the user
-- mapping). Per tenant: a message's campaign must be a campaign of the message's tenant.
-- The application must not send from an account or for a campaign that does not exist: those
-- two are checked as rows are written (enforce). Leads are deleted in OLTP as a matter of
-- course (GDPR erasure, cleanups): the scan finds the messages left pointing at them.
SELECT floe.declare_reference('app.email_messages', '{campaign_id}', 'tier_oltp', 'app.campaigns', '{id}',
                              mode => 'enforce');
SELECT floe.declare_reference('app.email_messages', '{email_account_id}', 'tier_oltp', 'app.email_accounts', '{id}',
                              mode => 'enforce');
SELECT floe.declare_reference('app.email_messages', '{lead_id}', 'tier_oltp', 'app.leads', '{id}');
