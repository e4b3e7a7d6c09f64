//! `#[pg_test]`s of the health glue, run in a preloaded cluster by `cargo pgrx test`.

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn check(name: &str) -> (String, String) {
        Spi::get_two_with_args::<String, String>(
            "SELECT status, detail FROM floe.health() WHERE check_name = $1",
            &[name.into()],
        )
        .map(|(s, d)| (s.unwrap_or_default(), d.unwrap_or_default()))
        .unwrap_or_else(|e| panic!("health check {name}: {e}"))
    }

    #[pg_test]
    fn version_matches_the_crate() {
        let v = Spi::get_one::<String>("SELECT floe.version()").unwrap();
        assert_eq!(v.as_deref(), Some(env!("CARGO_PKG_VERSION")));
        let (status, _) = check("core.version");
        assert_eq!(status, "ok");
    }

    #[pg_test]
    fn health_reports_preload_in_a_preloaded_cluster() {
        let (status, detail) = check("core.preload");
        assert_eq!(status, "ok", "{detail}");
        assert!(crate::preload::loaded_at_start());
    }

    #[pg_test]
    fn health_filters_by_min_status() {
        let all = Spi::get_one::<i64>("SELECT count(*) FROM floe.health()").unwrap();
        assert!(all.unwrap() >= 3);
        // (a background worker may start between two calls: check each result on its own)
        let warn_ok = Spi::get_one::<bool>(
            "SELECT coalesce(bool_and(status IN ('warn', 'critical')), true) FROM floe.health(min_status => 'WARN')",
        )
        .unwrap();
        assert_eq!(warn_ok, Some(true));
        let crit_ok = Spi::get_one::<bool>(
            "SELECT coalesce(bool_and(status = 'critical'), true) FROM floe.health('critical')",
        )
        .unwrap();
        assert_eq!(crit_ok, Some(true));
    }

    #[pg_test]
    fn bad_min_status_is_22023_with_a_hint() {
        let (state, message, hint) = crate::testing::error_of("SELECT * FROM floe.health('bogus')");
        assert_eq!(state, "22023");
        assert_eq!(
            message,
            "invalid value for argument \"min_status\": \"bogus\""
        );
        assert_eq!(hint, "Expected one of ok, warn, critical.");
    }
}
