//! `#[pg_test]`s of the audit module.
