//! `#[pg_test]`s of the tenant glue (see also pg_test/sql/tenant*.sql, run as an app role).

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn current_tenant_fails_closed() {
        let (state, message, hint) = crate::testing::error_of("SELECT floe.current_tenant()");
        assert_eq!(state, "42501");
        assert!(message.contains("no tenant is set"), "{message}");
        assert!(hint.contains("floe.set_tenant"), "{hint}");
    }
}
