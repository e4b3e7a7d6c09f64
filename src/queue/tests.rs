//! `#[pg_test]`s of the queue (the regress suite `pg_test/sql/queue.sql` has the rest).

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    /// The order dequeue hands jobs out in is the order of effective priority computed by
    /// the pure model (`priority::urgency_scaled`), for jobs of every tier and age.
    #[pg_test]
    fn dequeue_follows_the_model() {
        use crate::queue::priority::{urgency_scaled, Tier};
        Spi::run("SELECT floe.create_queue('model', aging_step => '10 minutes')").unwrap();
        // 40 jobs: tier i % 5, runnable (i * 7 % 50) minutes ago.
        let mut jobs = Vec::new();
        for i in 0..40i64 {
            let tier = Tier::ALL[(i % 5) as usize];
            let ago = (i * 7) % 50;
            let id = Spi::get_one::<i64>(&format!(
                "SELECT floe.enqueue('model', '{{\"i\": {i}}}', '{}', now() - interval '{ago} minutes')",
                tier.as_str()
            ))
            .unwrap()
            .unwrap();
            jobs.push((id, tier, -ago * 60_000_000));
        }
        let now = 0;
        let step = 600_000_000;
        jobs.sort_by(|a, b| {
            urgency_scaled(now, b.2, b.1, step)
                .cmp(&urgency_scaled(now, a.2, a.1, step))
                .then(a.0.cmp(&b.0))
        });
        let expected: Vec<i64> = jobs.iter().map(|j| j.0).collect();
        let mut got = Vec::new();
        for _ in 0..8 {
            let batch = Spi::get_one::<Vec<i64>>(
                "SELECT array_agg(id ORDER BY ord) FROM floe.dequeue('model', 5) WITH ORDINALITY AS d(id, payload, priority, tenant, attempt, run_at, enqueued_at, visible_until, lease, dedup_key, ord)",
            )
            .unwrap()
            .unwrap();
            got.extend(batch);
        }
        assert_eq!(got, expected);
    }

    /// Payloads come back exactly as they went in: numbers beyond f64 precision, nesting,
    /// unicode, large documents (TOASTed).
    #[pg_test]
    fn payloads_round_trip() {
        Spi::run("SELECT floe.create_queue('payloads')").unwrap();
        Spi::run(
            "CREATE TEMP TABLE sent AS
             SELECT floe.enqueue('payloads', p) AS id, p
               FROM (VALUES ('{\"n\": 123456789012345678901234567890.123456789}'::jsonb),
                            ('[1, {\"a\": [null, true, \"ü∂\"]}]'),
                            ((SELECT jsonb_agg(md5(g::text)) FROM generate_series(1, 20000) g))) v(p)",
        )
        .unwrap();
        let same = Spi::get_one::<bool>(
            "SELECT bool_and(d.payload = s.p) AND count(*) = 3
               FROM floe.dequeue('payloads', 10) d JOIN sent s USING (id)",
        )
        .unwrap();
        assert_eq!(same, Some(true));
    }

    /// Bad input raises its SQLSTATE and changes nothing.
    #[pg_test]
    fn errors_have_sqlstates() {
        Spi::run("SELECT floe.create_queue('errs')").unwrap();
        let code = |sql: &str| crate::testing::error_of(&format!("SELECT {sql}")).0;
        assert_eq!(code("floe.enqueue('nope', '{}')"), "42704");
        assert_eq!(code("floe.enqueue('errs', '{}', 'urgent')"), "22023");
        assert_eq!(code("floe.enqueue('errs', NULL)"), "22023");
        assert_eq!(code("floe.dequeue('errs', 0)"), "22023");
        assert_eq!(code("floe.complete(424242)"), "42704");
        assert_eq!(code("floe.create_queue('errs')"), "42710");
        assert_eq!(code("floe.create_queue('bad name')"), "22023");
        assert_eq!(
            code("floe.create_queue('x', aging_step => '1 month')"),
            "22023"
        );
        let jobs = Spi::get_one::<i64>("SELECT count(*) FROM floe.queued_jobs").unwrap();
        assert_eq!(jobs, Some(0));
    }
}
