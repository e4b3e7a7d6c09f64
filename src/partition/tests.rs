//! `#[pg_test]`s of the partition glue: bounds read back under any session time zone and
//! date style, error codes, and that a run inside the caller's transaction (the atomic path
//! of the procedure) is idempotent. The full behaviour is in pg_test/sql/partition.sql and
//! pg_test/tests/partition_concurrency.sh.

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use crate::testing::error_of;
    use pgrx::prelude::*;

    fn children(table: &str) -> i64 {
        Spi::get_one::<i64>(&format!(
            "SELECT count(*) FROM floe.partitions('{table}') WHERE NOT is_default"
        ))
        .unwrap()
        .unwrap_or(-1)
    }

    #[pg_test]
    fn bounds_survive_any_time_zone_and_date_style() {
        Spi::run("CREATE TABLE tz_events (at timestamptz NOT NULL) PARTITION BY RANGE (at)")
            .unwrap();
        Spi::run("SET LOCAL TimeZone = 'Asia/Kolkata'").unwrap();
        Spi::run("SET LOCAL DateStyle = 'SQL, DMY'").unwrap();
        let made = Spi::get_one::<i32>(
            "SELECT floe.create_parent('tz_events', 'at', premake => 2,
                                       start => now() - interval '1 month')",
        )
        .unwrap();
        assert_eq!(made, Some(4));
        // Children are named and bounded by UTC months whatever the session shows.
        let named_right = Spi::get_one::<bool>(
            "SELECT bool_and(c.relname = 'tz_events_' || to_char(lower(r) AT TIME ZONE 'UTC', 'YYYY_MM'))
               FROM (SELECT partition AS p, tstzrange(pg_catalog.btrim(lower_bound, '''')::timestamptz,
                                                      pg_catalog.btrim(upper_bound, '''')::timestamptz) AS r
                       FROM floe.partitions('tz_events') WHERE NOT is_default) x
               JOIN pg_class c ON c.oid = x.p",
        )
        .unwrap();
        assert_eq!(named_right, Some(true));
        let key = Spi::get_one::<String>("SELECT floe.partition_set_key('tz_events')").unwrap();
        assert!(key.is_some(), "key after create");
        // Another time zone reads the same bounds back: nothing to create, no overlap.
        Spi::run("SET LOCAL TimeZone = 'America/Los_Angeles'").unwrap();
        Spi::run("SET LOCAL DateStyle = 'Postgres, MDY'").unwrap();
        let key = Spi::get_one::<String>("SELECT floe.partition_set_key('tz_events')").unwrap();
        assert!(key.is_some(), "key before call");
        Spi::run("CALL floe.run_maintenance('tz_events')").unwrap();
        assert_eq!(children("tz_events"), 4);
        let error = Spi::get_one::<String>(
            "SELECT coalesce(last_error, 'none') FROM floe.partition_sets
              WHERE parent = floe.partition_set_key('tz_events')",
        )
        .unwrap();
        assert_eq!(error.as_deref(), Some("none"));
    }

    #[pg_test]
    fn date_and_timestamp_controls() {
        Spi::run("CREATE TABLE d_events (d date NOT NULL) PARTITION BY RANGE (d)").unwrap();
        Spi::run("CREATE TABLE ts_events (t timestamp NOT NULL) PARTITION BY RANGE (t)").unwrap();
        Spi::run(
            "SELECT floe.create_parent('d_events', 'd', part_interval => '1 week', premake => 1)",
        )
        .unwrap();
        Spi::run(
            "SELECT floe.create_parent('ts_events', 't', part_interval => '1 day', premake => 1)",
        )
        .unwrap();
        Spi::run("CALL floe.run_maintenance(as_of => now() + interval '14 days')").unwrap();
        assert_eq!(children("d_events"), 4);
        assert_eq!(children("ts_events"), 16);
        Spi::run("INSERT INTO d_events VALUES (current_date), (current_date + 14)").unwrap();
        Spi::run(
            "INSERT INTO ts_events VALUES (localtimestamp), (localtimestamp + interval '14 days')",
        )
        .unwrap();
    }

    #[pg_test]
    fn errors_carry_their_sqlstate() {
        Spi::run("CREATE TABLE plain_t (t timestamptz)").unwrap();
        assert_eq!(
            error_of("SELECT floe.create_parent('plain_t', 't')").0,
            "22023"
        );
        Spi::run("CREATE TABLE ov_t (t timestamptz NOT NULL) PARTITION BY RANGE (t)").unwrap();
        Spi::run(
            "CREATE TABLE ov_t_mine PARTITION OF ov_t
               FOR VALUES FROM (date_trunc('month', now()) + interval '3 days') TO (date_trunc('month', now()) + interval '50 days')",
        )
        .unwrap();
        let (state, message, hint) = error_of("SELECT floe.create_parent('ov_t', 't')");
        assert_eq!(state, "42P17");
        assert!(message.contains("ov_t_mine"), "{message}");
        assert!(hint.contains("Detach or drop"), "{hint}");
        assert_eq!(
            error_of("SELECT floe.set_retention('plain_t', '1 month')").0,
            "42704"
        );
        assert_eq!(error_of("CALL floe.run_maintenance('plain_t')").0, "42704");
        Spi::run("CREATE ROLE part_nobody").unwrap();
        Spi::run("GRANT USAGE ON SCHEMA tests TO part_nobody").unwrap();
        let oid = Spi::get_one::<pg_sys::Oid>("SELECT 'ov_t'::regclass::oid")
            .unwrap()
            .unwrap();
        Spi::run("SET LOCAL ROLE part_nobody").unwrap();
        let stmt = format!(
            "SELECT floe.create_parent({}::oid::regclass, 't')",
            oid.to_u32()
        );
        assert_eq!(error_of(&stmt).0, "42501");
    }

    #[pg_test]
    fn maintenance_in_a_transaction_is_idempotent() {
        Spi::run("CREATE TABLE idem (t timestamptz NOT NULL) PARTITION BY RANGE (t)").unwrap();
        Spi::run("SELECT floe.create_parent('idem', 't', premake => 1)").unwrap();
        for _ in 0..3 {
            Spi::run("CALL floe.run_maintenance('idem', as_of => now() + interval '2 months')")
                .unwrap();
        }
        assert_eq!(children("idem"), 4);
        let checks = Spi::get_one::<i64>(
            "SELECT count(*) FROM floe.health() WHERE check_name LIKE 'partition.%' AND status = 'ok'",
        )
        .unwrap();
        assert_eq!(checks, Some(3));
    }
}
