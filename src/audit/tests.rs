//! `#[pg_test]`s of the audit module (run preloaded, see `lib.rs`; the regress suite
//! `pg_test/sql/audit.sql` and the isolation spec `audit_seal` have the rest).

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use crate::testing::error_of;
    use pgrx::prelude::*;

    /// Within one transaction: a row change is logged once its statement ends (the statement
    /// trigger's flush), a savepoint rolled back takes its entries along, and the
    /// append-only guard answers 42501 with a hint naming retention.
    #[pg_test]
    fn entries_follow_statements_and_savepoints() {
        Spi::run(
            "CREATE TABLE public.t_aud (id int PRIMARY KEY, secret text, n int);
             SELECT floe.enable_audit('public.t_aud', redact => '{secret}');
             INSERT INTO public.t_aud VALUES (1, 'pin 1234', 1), (2, 'pin 5678', 2);",
        )
        .unwrap();
        let count = || {
            Spi::get_one::<i64>("SELECT count(*) FROM floe.audit_log WHERE table_name = 't_aud'")
                .unwrap()
                .unwrap()
        };
        assert_eq!(count(), 2);
        let rolled_back = crate::subxact::try_run(|| {
            Spi::run("UPDATE public.t_aud SET n = n + 1").unwrap();
            Err::<(), ()>(())
        });
        assert!(matches!(rolled_back, Ok(Err(()))));
        assert_eq!(count(), 2, "the rolled-back UPDATE left no entry");
        Spi::run("UPDATE public.t_aud SET n = 10 WHERE id = 1").unwrap();
        let changed = Spi::get_one::<String>(
            "SELECT new_values::text FROM floe.audit_log WHERE table_name = 't_aud' AND op = 'UPDATE'",
        )
        .unwrap();
        assert_eq!(changed.as_deref(), Some("{\"n\": 10}"));
        assert_eq!(
            Spi::get_one::<i64>(
                "SELECT count(*) FROM floe.audit_log WHERE table_name = 't_aud' AND new_values::text LIKE '%pin %'"
            )
            .unwrap(),
            Some(0),
            "redacted values never reach the log"
        );
        let (state, message, hint) = error_of("DELETE FROM floe.audit_log");
        assert_eq!(state, "42501");
        assert!(message.contains("append-only"), "{message}");
        assert!(hint.contains("set_retention"), "{hint}");
    }

    /// Bad input is a clear error and changes nothing.
    #[pg_test]
    fn bad_input_changes_nothing() {
        Spi::run("CREATE TABLE public.t_aud2 (id int PRIMARY KEY); CREATE VIEW public.v_aud2 AS SELECT * FROM public.t_aud2;")
            .unwrap();
        assert_eq!(
            error_of("SELECT floe.enable_audit('public.v_aud2')").0,
            "42809"
        );
        assert_eq!(
            error_of("SELECT floe.enable_audit('public.t_aud2', redact => '{nope}')").0,
            "42703"
        );
        assert_eq!(
            error_of("SELECT floe.enable_audit('public.t_aud2', classification => '{\"a b\"}')").0,
            "22023"
        );
        assert_eq!(
            error_of("SELECT floe.disable_audit('public.t_aud2')").0,
            "42704"
        );
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM floe.audit_tables").unwrap(),
            Some(0)
        );
        assert_eq!(
            Spi::get_one::<i64>(
                "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.t_aud2'::regclass"
            )
            .unwrap(),
            Some(0)
        );
    }
}
