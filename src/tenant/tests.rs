//! `#[pg_test]`s of the tenant glue. The behaviour as an application role is tested in
//! pg_test/sql/tenant.sql and tenant_leak.sql (pg_tests run as a superuser).

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use crate::testing::error_of;
    use pgrx::prelude::*;

    const A: &str = "00000000-0000-4000-8000-00000000000a";

    #[pg_test]
    fn current_tenant_fails_closed() {
        let (state, message, hint) = error_of("SELECT floe.current_tenant()");
        assert_eq!(state, "42501");
        assert!(message.contains("no tenant is set"), "{message}");
        assert!(hint.contains("floe.set_tenant"), "{hint}");
    }

    #[pg_test]
    fn set_tenant_round_trips_through_the_setting() {
        Spi::run(&format!("SELECT floe.set_tenant('{A}')")).unwrap();
        let raw =
            Spi::get_one::<String>("SELECT current_setting('app.current_tenant_id')").unwrap();
        assert_eq!(raw.as_deref(), Some(A));
        let id = Spi::get_one::<String>("SELECT floe.current_tenant()::text").unwrap();
        assert_eq!(id.as_deref(), Some(A));
        Spi::run("SELECT floe.clear_tenant()").unwrap();
        assert_eq!(error_of("SELECT floe.current_tenant()").0, "42501");
    }

    #[pg_test]
    fn the_tenant_variable_is_configurable() {
        Spi::run("SET LOCAL floe.tenant_setting = 'myapp.tenant'").unwrap();
        Spi::run(&format!("SELECT floe.set_tenant('{A}')")).unwrap();
        let raw = Spi::get_one::<String>("SELECT current_setting('myapp.tenant')").unwrap();
        assert_eq!(raw.as_deref(), Some(A));
        let id = Spi::get_one::<String>("SELECT floe.current_tenant()::text").unwrap();
        assert_eq!(id.as_deref(), Some(A));
    }

    #[pg_test]
    fn a_bad_tenant_setting_name_is_22023() {
        for bad in ["nodot", "floe.tenant", "a.b;c"] {
            Spi::run(&format!("SET LOCAL floe.tenant_setting = '{bad}'")).unwrap();
            let (state, message, _) = error_of("SELECT floe.current_tenant()");
            assert_eq!(state, "22023", "{bad}: {message}");
            let (state, _, _) = error_of(&format!("SELECT floe.set_tenant('{A}')"));
            assert_eq!(state, "22023", "{bad}");
        }
    }

    #[pg_test]
    fn failed_enable_changes_nothing() {
        Spi::run("CREATE TABLE t_bad (id int, tenant_id text)").unwrap();
        let (state, _, hint) = error_of("SELECT floe.enable_tenant_isolation('t_bad')");
        assert_eq!(state, "22023");
        assert!(hint.contains("uuid"), "{hint}");
        let changed = Spi::get_one::<bool>(
            "SELECT relrowsecurity OR EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = c.oid)
                 OR EXISTS (SELECT 1 FROM pg_index WHERE indrelid = c.oid)
                 OR EXISTS (SELECT 1 FROM floe.tenant_tables WHERE relid = c.oid)
               FROM pg_class c WHERE c.relname = 't_bad'",
        )
        .unwrap();
        assert_eq!(changed, Some(false));
    }

    #[pg_test]
    fn enable_is_idempotent_and_disable_restores() {
        Spi::run("CREATE TABLE t_iso (id int, tenant_id uuid)").unwrap();
        let first =
            Spi::get_one::<i64>("SELECT count(*) FROM floe.enable_tenant_isolation('t_iso')")
                .unwrap();
        assert_eq!(first, Some(7));
        let second =
            Spi::get_one::<i64>("SELECT count(*) FROM floe.enable_tenant_isolation('t_iso')")
                .unwrap();
        assert_eq!(second, Some(0));
        Spi::run("SELECT floe.disable_tenant_isolation('t_iso')").unwrap();
        let left = Spi::get_one::<i64>(
            "SELECT (SELECT count(*) FROM pg_policy WHERE polrelid = 't_iso'::regclass)
                  + (SELECT count(*) FROM pg_trigger WHERE tgrelid = 't_iso'::regclass)
                  + (SELECT count(*) FROM pg_index WHERE indrelid = 't_iso'::regclass)
                  + (SELECT count(*) FROM pg_class WHERE oid = 't_iso'::regclass AND relrowsecurity)",
        )
        .unwrap();
        assert_eq!(left, Some(0));
    }

    #[pg_test]
    fn update_guard_can_be_declined() {
        Spi::run("CREATE TABLE t_lean (id int, tenant_id uuid)").unwrap();
        Spi::run("SELECT floe.enable_tenant_isolation('t_lean', guard_updates => false)").unwrap();
        let triggers = Spi::get_one::<Vec<String>>(
            "SELECT array_agg(tgname::text ORDER BY tgname) FROM pg_trigger WHERE tgrelid = 't_lean'::regclass",
        )
        .unwrap();
        assert_eq!(triggers, Some(vec!["floe_tenant_guard_insert".to_string()]));
        let (guard, problems) = Spi::get_two::<bool, Vec<String>>(
            "SELECT guard_present, problems FROM floe.tenant_coverage() WHERE table_name = 't_lean'",
        )
        .unwrap();
        assert_eq!(guard, Some(true), "declined deliberately: not a hole");
        assert_eq!(problems, Some(vec![]));
        // Asking again with the default puts the update guard back.
        Spi::run("SELECT floe.enable_tenant_isolation('t_lean')").unwrap();
        let n = Spi::get_one::<i64>(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 't_lean'::regclass",
        )
        .unwrap();
        assert_eq!(n, Some(2));
    }
}
