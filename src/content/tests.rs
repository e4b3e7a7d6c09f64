//! #[pg_test]s of the content store.
