-- The reference platform, Queue tier: sending and processing queues on floe's queue, with its
-- five priority tiers (critical, high, normal, low, background) and aging (+1 tier per
-- aging_step waited), so no tier starves.
SELECT floe.create_queue('email_send', visibility_timeout => '2 minutes', aging_step => '10 minutes',
                         max_attempts => 5);
SELECT floe.create_queue('email_process', visibility_timeout => '5 minutes', aging_step => '5 minutes',
                         fair => true);
