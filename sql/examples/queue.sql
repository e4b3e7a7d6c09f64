-- The reference platform, Queue tier: sending and processing queues on floe's queue, with its
-- five priority tiers (critical, high, normal, low, background) and aging (+1 tier per
-- aging_step waited), so no tier starves.
-- The queues belong to platform_queues, a role that owns nothing else and cannot log in; the
-- application (which enqueues and, in its workers, dequeues) is a member. No superuser is
-- involved in using them.
DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'platform_app') THEN CREATE ROLE platform_app; END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'platform_queues') THEN CREATE ROLE platform_queues NOLOGIN; END IF;
END $$;
GRANT platform_queues TO platform_app;
SET ROLE platform_queues;
SELECT floe.create_queue('email_send', visibility_timeout => '2 minutes', aging_step => '10 minutes',
                         max_attempts => 5);
SELECT floe.create_queue('email_process', visibility_timeout => '5 minutes', aging_step => '5 minutes',
                         fair => true);
RESET ROLE;
