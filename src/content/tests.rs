//! `#[pg_test]`s of the content store (run preloaded, see `lib.rs`; the regress suite
//! `pg_test/sql/content.sql` and the isolation spec `content_put` have the rest).

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use crate::testing::error_of;
    use pgrx::prelude::*;

    const TENANT: &str = "aaaaaaaa-7777-0000-0000-000000000001";

    fn one<T: IntoDatum + FromDatum>(sql: &str) -> Option<T> {
        Spi::get_one::<T>(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn samples_of(dictionary: Option<i32>) -> Option<i32> {
        let id = dictionary.expect("train_dictionary returns an id");
        one::<i32>(&format!(
            "SELECT samples FROM floe.content_dictionaries WHERE id = {id}"
        ))
    }

    /// Puts `count` random 2 KB binaries (not UTF-8), different for each `salt`.
    fn put_binaries(count: i32, salt: &str) {
        Spi::run(&format!(
            "SELECT count(floe.content_put(b, '{TENANT}')) FROM (
                 SELECT decode(string_agg(md5(n::text || '{salt}' || i), ''), 'hex') || '\\xff'::bytea AS b
                   FROM generate_series(1, {count}) n, generate_series(1, 64) i GROUP BY n) x"
        ))
        .unwrap();
    }

    /// A dictionary is trained on the tenant's text bodies when they are the bulk of the
    /// sample: 40 mails and 20 random binaries (attachments) give a dictionary of 40 samples;
    /// a tenant with mostly binaries trains on everything.
    #[pg_test]
    fn dictionaries_are_trained_on_text_bodies() {
        Spi::run(&format!(
            "SET floe.tenant_admin = on;
             SELECT count(floe.content_put(format('<p>Dear customer %s,</p>%s', n,
                        repeat('<tr><td>Our spring collection ships free.</td></tr>', 20 + n)), '{TENANT}'))
               FROM generate_series(1, 40) n"
        ))
        .unwrap();
        put_binaries(20, "-");
        assert_eq!(
            samples_of(one::<i32>(&format!(
                "SELECT floe.train_dictionary('{TENANT}', sample_rows => 100)"
            ))),
            Some(40)
        );
        put_binaries(60, "+");
        assert_eq!(
            samples_of(one::<i32>(&format!(
                "SELECT floe.train_dictionary('{TENANT}', sample_rows => 200)"
            ))),
            Some(120),
            "mostly binary: every body is a sample"
        );
    }

    /// The managed-column trigger inside one transaction: a written body moves to the store
    /// (the column keeps NULL, the hash column the key), the same body twice is one stored
    /// row with two references, an UPDATE releases the old body, a DELETE the last one, and the
    /// view reads every body back.
    #[pg_test]
    fn managed_column_moves_and_releases_bodies() {
        Spi::run(&format!(
            "SELECT floe.set_tenant('{TENANT}');
             CREATE TABLE public.t_mail (id int PRIMARY KEY, tenant_id uuid NOT NULL, body text);
             SELECT floe.manage_content('public.t_mail', 'body', 'tenant_id');
             INSERT INTO public.t_mail VALUES (1, '{TENANT}', repeat('hello ', 500)),
                                              (2, '{TENANT}', repeat('hello ', 500)),
                                              (3, '{TENANT}', repeat('other ', 500));"
        ))
        .unwrap();
        assert_eq!(
            one::<i64>("SELECT count(*) FROM public.t_mail WHERE body IS NOT NULL"),
            Some(0)
        );
        assert_eq!(
            one::<i64>("SELECT count(DISTINCT body_hash) FROM public.t_mail"),
            Some(2)
        );
        assert_eq!(
            one::<i64>(&format!(
                "SELECT refs FROM floe.content WHERE tenant = '{TENANT}'
                  AND hash = (SELECT body_hash FROM public.t_mail WHERE id = 1)"
            )),
            Some(2)
        );
        assert_eq!(
            one::<bool>(
                "SELECT bool_and(body = CASE WHEN id < 3 THEN repeat('hello ', 500) ELSE repeat('other ', 500) END)
                   FROM public.t_mail_with_body"
            ),
            Some(true)
        );
        Spi::run("UPDATE public.t_mail SET body = repeat('third ', 500) WHERE id = 2").unwrap();
        assert_eq!(
            one::<i64>(&format!(
                "SELECT refs FROM floe.content WHERE tenant = '{TENANT}'
                  AND hash = (SELECT body_hash FROM public.t_mail WHERE id = 1)"
            )),
            Some(1),
            "the update released the old body"
        );
        Spi::run("DELETE FROM public.t_mail WHERE id = 3").unwrap();
        assert_eq!(
            one::<i64>(&format!(
                "SELECT count(*) FROM floe.content WHERE tenant = '{TENANT}' AND refs = 0"
            )),
            Some(1),
            "the delete released the last reference of 'other'"
        );
    }

    /// Codec errors carry their documented SQLSTATEs and never panic.
    #[pg_test]
    fn frame_errors_have_their_sqlstates() {
        assert_eq!(
            error_of("SELECT floe.decompress('\\x00'::bytea)").0,
            "22P03"
        );
        assert_eq!(
            error_of(
                "SELECT floe.decompress(substr(floe.compress(repeat('abc', 1000), 'zstd'), 1, 20))"
            )
            .0,
            "XX001"
        );
        assert_eq!(
            error_of("SELECT floe.compress('x'::text, 'brotli')").0,
            "22023"
        );
        assert_eq!(error_of("SELECT floe.content_put('x'::text)").0, "42501");
    }
}
