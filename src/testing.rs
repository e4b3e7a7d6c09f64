//! Helpers shared by every module's `#[pg_test]`s (compiled only for tests).

use pgrx::prelude::*;

extension_sql!(
    r#"
CREATE SCHEMA IF NOT EXISTS tests;
-- Runs one statement and returns the error it raised (all NULL when it succeeded). The
-- EXCEPTION block is a subtransaction, so the failed statement leaves no trace.
CREATE FUNCTION tests.error_of(stmt text, OUT state text, OUT message text, OUT hint text)
LANGUAGE plpgsql AS $fn$
BEGIN
    EXECUTE stmt;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE,
                            message = MESSAGE_TEXT,
                            hint = PG_EXCEPTION_HINT;
END
$fn$;
"#,
    name = "test_error_of",
);

/// The error a statement raises: `(sqlstate, message, hint)`; panics if it succeeds.
pub fn error_of(stmt: &str) -> (String, String, String) {
    let row = Spi::connect(|c| {
        let t = c
            .select(
                "SELECT state, message, hint FROM tests.error_of($1)",
                Some(1),
                &[stmt.into()],
            )?
            .first();
        Ok::<_, pgrx::spi::SpiError>((
            t.get::<String>(1)?,
            t.get::<String>(2)?,
            t.get::<String>(3)?,
        ))
    })
    .unwrap_or_else(|e| panic!("tests.error_of failed: {e}"));
    match row {
        (Some(state), Some(message), hint) => (state, message, hint.unwrap_or_default()),
        _ => panic!("statement succeeded but an error was expected: {stmt}"),
    }
}
