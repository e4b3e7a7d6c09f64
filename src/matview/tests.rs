//! `#[pg_test]`s of the matview module (run preloaded, see `lib.rs`; the regress suite
//! `pg_test/sql/matview.sql` and the scenario `pg_test/tests/matview_refresh.sh` have the rest).

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn due() -> Vec<String> {
        Spi::connect(|c| {
            c.select("SELECT view FROM floe.refresh_due() ORDER BY 1", None, &[])
                .unwrap()
                .map(|r| r.get::<String>(1).unwrap().unwrap())
                .collect()
        })
    }

    /// Within one transaction (a #[pg_test] never commits): the refresher sees this
    /// transaction's own writes and its own refreshes, though neither is published before
    /// commit.
    #[pg_test]
    fn a_transaction_sees_its_own_writes_and_refreshes() {
        Spi::run(
            "CREATE TABLE public.t_src (k int PRIMARY KEY, v int);
             CREATE MATERIALIZED VIEW public.t_mv AS SELECT k, v FROM public.t_src;
             CREATE UNIQUE INDEX ON public.t_mv (k);
             SELECT floe.register_matview('public.t_mv', min_interval => '0');",
        )
        .unwrap();
        assert_eq!(due(), vec!["public.t_mv"], "registered: dirty");
        assert!(due().is_empty(), "refreshed in this transaction: clean");
        Spi::run("INSERT INTO public.t_src VALUES (1, 1)").unwrap();
        assert_eq!(due(), vec!["public.t_mv"], "own write: dirty");
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM public.t_mv").unwrap(),
            Some(1)
        );
        assert!(due().is_empty());
        // A savepoint rolled back takes its refresh along: the write counts again.
        Spi::run("INSERT INTO public.t_src VALUES (2, 2)").unwrap();
        let refreshed = crate::subxact::try_run(|| {
            Spi::run("SELECT floe.refresh('public.t_mv')").unwrap();
            Err::<(), ()>(())
        });
        assert!(matches!(refreshed, Ok(Err(()))));
        assert_eq!(due(), vec!["public.t_mv"]);
    }

    /// A REFRESH that fails inside refresh_due is recorded and leaves the view dirty; the
    /// error names the cause and nothing panics.
    #[pg_test]
    fn a_failed_refresh_keeps_the_view_dirty() {
        Spi::run(
            "CREATE TABLE f_src (d int);
             INSERT INTO f_src VALUES (1);
             CREATE MATERIALIZED VIEW f_mv AS SELECT 10 / d AS q FROM f_src;
             SELECT floe.register_matview('f_mv', min_interval => '0', concurrently => false);
             UPDATE f_src SET d = 0;",
        )
        .unwrap();
        let err = Spi::get_one::<String>("SELECT error FROM floe.refresh_due()")
            .unwrap()
            .unwrap();
        assert_eq!(err, "division by zero");
        assert_eq!(
            Spi::get_one::<bool>(
                "SELECT dirty_since IS NOT NULL AND failures = 1 AND alarm IS NOT NULL
                   FROM floe.matview_status"
            )
            .unwrap(),
            Some(true)
        );
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM f_mv").unwrap(),
            Some(1),
            "the old contents stay"
        );
    }
}
