//! The statements a declared reference runs, assembled from its names (pure: no pgrx).
//!
//! Every identifier comes in already quoted (`quote_identifier` in the machinery) and every
//! type name as `format_type` spelled it under floe's pinned `search_path`; values are never
//! spliced in: keys travel as text arrays bound to `$n` and are cast to the columns' types in
//! SQL. A key is the tenant (when the reference is per tenant) followed by the referencing
//! columns, each as its type's text form, so one key type (`Vec<String>`) serves every
//! reference; text output and input round-trip any value exactly (as `pg_dump` relies on).

/// A declared reference's names, quoted, as its statements use them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// The referencing table, `schema.table`.
    pub table: String,
    /// The reference's foreign table over the target, `floe.reference_<id>_target`.
    pub target: String,
    /// The key columns of the referencing table: the tenant column first (per tenant), then
    /// the referencing columns.
    pub local: Vec<String>,
    /// The target's key columns, in the same order.
    pub remote: Vec<String>,
    /// The key columns' types, in the same order.
    pub types: Vec<String>,
    /// How many leading key columns are the tenant (0 or 1).
    pub tenant: usize,
}

impl Shape {
    fn width(&self) -> usize {
        self.local.len()
    }

    /// `ARRAY[p.a::text, p.b::text]` over the local columns of `prefix`.
    fn key_of(&self, prefix: &str) -> String {
        let parts: Vec<String> = self
            .local
            .iter()
            .map(|c| format!("{prefix}{c}::text"))
            .collect();
        format!("ARRAY[{}]", parts.join(", "))
    }

    /// `p.a IS NOT NULL AND p.b IS NOT NULL`: a key with a NULL is not checked (a foreign
    /// key's MATCH SIMPLE).
    fn not_null(&self, prefix: &str) -> String {
        self.local
            .iter()
            .map(|c| format!("{prefix}{c} IS NOT NULL"))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// `ROWS FROM (unnest($1::uuid[]), unnest($2::bigint[])) WITH ORDINALITY AS w(k0, k1, n)`:
    /// the keys bound as one text array per key column (parameters `$1`…), typed, each with
    /// its position `n` (from 1) in the arrays. Statements answer with positions, never with
    /// keys printed again: a value's text depends on the session's settings (`DateStyle`,
    /// `TimeZone`…), its position does not.
    fn keys_bound(&self) -> String {
        // ROWS FROM zips the arrays (a schema-qualified unnest takes one array only).
        let arrays: Vec<String> = self
            .types
            .iter()
            .enumerate()
            .map(|(i, t)| format!("pg_catalog.unnest(${}::{t}[])", i + 1))
            .collect();
        let names: Vec<String> = (0..self.width()).map(|i| format!("k{i}")).collect();
        format!(
            "ROWS FROM ({}) WITH ORDINALITY AS w({}, n)",
            arrays.join(", "),
            names.join(", ")
        )
    }

    /// `t.a OPERATOR(pg_catalog.=) w.k0 AND …`: the statements that run as the caller
    /// (whose `search_path` floe leaves alone, for the table's own triggers) spell the
    /// operator out.
    fn joins(&self, prefix: &str) -> String {
        self.local
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{prefix}{c} OPERATOR(pg_catalog.=) w.k{i}"))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// The positions (`bigint`, from 1) of the bound keys (one text array per key column,
    /// `$1`…) that have no row in the target. One remote query: the arrays reach
    /// `postgres_fdw` as init-plan parameters, so the `= ANY` conditions are sent to the
    /// target (which answers from its unique index), and the exact match is made here with
    /// the types' own equality.
    pub fn missing(&self) -> String {
        let remote_cols: Vec<String> = self
            .remote
            .iter()
            .enumerate()
            .map(|(i, c)| format!("f.{c} AS k{i}"))
            .collect();
        let any: Vec<String> = self
            .remote
            .iter()
            .zip(&self.types)
            .enumerate()
            .map(|(i, (c, t))| format!("f.{c} = ANY ((SELECT ${}::{t}[])::{t}[])", i + 1))
            .collect();
        let matched: Vec<String> = (0..self.width())
            .map(|i| format!("f.k{i} = w.k{i}"))
            .collect();
        format!(
            "WITH wanted AS MATERIALIZED (SELECT * FROM {unnest}),
     found AS MATERIALIZED (SELECT {remote_cols} FROM {target} f WHERE {any})
SELECT w.n FROM wanted w
 WHERE NOT EXISTS (SELECT 1 FROM found f WHERE {matched})",
            unnest = self.keys_bound(),
            remote_cols = remote_cols.join(", "),
            target = self.target,
            any = any.join(" AND "),
            matched = matched.join(" AND "),
        )
    }

    /// One page of the scan: the next `$2` distinct keys of the referencing table after the
    /// key `$1` (a `text[]`; the first page when `after` is false), in the key's order, each
    /// with its number of rows. Keyset paging: an index on the key columns (the one a
    /// foreign key's referencing side wants anyway) makes each page a short index range.
    pub fn page(&self, after: bool) -> String {
        let order: Vec<String> = self.local.iter().map(|c| format!("t.{c}")).collect();
        let cursor = if after {
            let bound: Vec<String> = self
                .types
                .iter()
                .enumerate()
                .map(|(i, ty)| format!("($1::text[])[{}]::{ty}", i + 1))
                .collect();
            format!(" AND ({}) > ({})", order.join(", "), bound.join(", "))
        } else {
            " AND $1::text[] IS NULL".to_string()
        };
        format!(
            "SELECT {key}, pg_catalog.count(*) FROM {table} t
 WHERE {not_null}{cursor}
 GROUP BY {order} ORDER BY {order} LIMIT $2",
            key = self.key_of("t."),
            table = self.table,
            not_null = self.not_null("t."),
            order = order.join(", "),
        )
    }

    /// The position of each bound key (`$1`…) that the referencing table has rows of, with
    /// their number.
    pub fn rows_of(&self) -> String {
        format!(
            "SELECT w.n, pg_catalog.count(*) FROM {table} t
  JOIN {unnest} ON {joins}
 GROUP BY w.n",
            table = self.table,
            unnest = self.keys_bound(),
            joins = self.joins("t."),
        )
    }

    /// Repair: the rows of the bound keys (`$1`…) lose their reference (the referencing
    /// columns, not the tenant, set to NULL); returns each row's key position.
    pub fn set_null(&self) -> String {
        let set: Vec<String> = self.local[self.tenant..]
            .iter()
            .map(|c| format!("{c} = NULL"))
            .collect();
        format!(
            "UPDATE {table} t SET {set}
  FROM {unnest}
 WHERE {joins}
RETURNING w.n",
            table = self.table,
            set = set.join(", "),
            unnest = self.keys_bound(),
            joins = self.joins("t."),
        )
    }

    /// Repair: the rows of the bound keys (`$1`…) are deleted; returns each row's key
    /// position and, for the archive, the row as `jsonb`.
    pub fn delete(&self) -> String {
        format!(
            "DELETE FROM {table} t
 USING {unnest}
 WHERE {joins}
RETURNING w.n, pg_catalog.to_jsonb(t.*)",
            table = self.table,
            unnest = self.keys_bound(),
            joins = self.joins("t."),
        )
    }
}

/// Splits keys into one array per key column, the form the statements bind (`$1`…).
pub fn columns_of(keys: &[Vec<String>], width: usize) -> Vec<Vec<String>> {
    let mut out = vec![Vec::with_capacity(keys.len()); width];
    for key in keys {
        for (column, value) in out.iter_mut().zip(key) {
            column.push(value.clone());
        }
    }
    out
}

/// `(tenant_id, lead_id)=(…, 42)`: a key as PostgreSQL's foreign-key errors show one.
pub fn describe_key(columns: &[String], key: &[String]) -> String {
    format!("({})=({})", columns.join(", "), key.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leads() -> Shape {
        Shape {
            table: "app.email_messages".into(),
            target: "floe.reference_1_target".into(),
            local: vec!["tenant_id".into(), "lead_id".into()],
            remote: vec!["tenant_id".into(), "id".into()],
            types: vec!["uuid".into(), "bigint".into()],
            tenant: 1,
        }
    }

    #[test]
    fn missing_sends_typed_arrays_through_init_plans() {
        let sql = leads().missing();
        assert!(
            sql.contains("ROWS FROM (pg_catalog.unnest($1::uuid[]), pg_catalog.unnest($2::bigint[])) WITH ORDINALITY AS w(k0, k1, n)"),
            "{sql}"
        );
        assert!(
            sql.contains("f.tenant_id = ANY ((SELECT $1::uuid[])::uuid[])"),
            "{sql}"
        );
        assert!(
            sql.contains("f.id = ANY ((SELECT $2::bigint[])::bigint[])"),
            "{sql}"
        );
        assert!(sql.contains("FROM floe.reference_1_target f"), "{sql}");
        assert!(sql.contains("WHERE f.k0 = w.k0 AND f.k1 = w.k1"), "{sql}");
        assert!(sql.contains("SELECT w.n FROM wanted w"), "{sql}");
    }

    #[test]
    fn pages_follow_the_key_order() {
        let first = leads().page(false);
        assert!(first.contains("AND $1::text[] IS NULL"), "{first}");
        let next = leads().page(true);
        assert!(
            next.contains(
                "(t.tenant_id, t.lead_id) > (($1::text[])[1]::uuid, ($1::text[])[2]::bigint)"
            ),
            "{next}"
        );
        assert!(
            next.ends_with(
                "GROUP BY t.tenant_id, t.lead_id ORDER BY t.tenant_id, t.lead_id LIMIT $2"
            ),
            "{next}"
        );
    }

    #[test]
    fn set_null_keeps_the_tenant() {
        let sql = leads().set_null();
        assert!(
            sql.starts_with("UPDATE app.email_messages t SET lead_id = NULL\n"),
            "{sql}"
        );
        assert!(sql.ends_with("RETURNING w.n"), "{sql}");
        assert!(
            sql.contains(
                "t.tenant_id OPERATOR(pg_catalog.=) w.k0 AND t.lead_id OPERATOR(pg_catalog.=) w.k1"
            ),
            "{sql}"
        );
        let mut global = leads();
        global.tenant = 0;
        global.local.remove(0);
        global.remote.remove(0);
        global.types.remove(0);
        assert!(global.set_null().contains("SET lead_id = NULL"));
    }

    #[test]
    fn delete_returns_the_rows() {
        let sql = leads().delete();
        assert!(
            sql.contains("RETURNING w.n, pg_catalog.to_jsonb(t.*)"),
            "{sql}"
        );
    }

    #[test]
    fn describe_key_reads_like_postgres() {
        assert_eq!(
            describe_key(
                &["tenant_id".into(), "lead_id".into()],
                &["t1".into(), "42".into()]
            ),
            "(tenant_id, lead_id)=(t1, 42)"
        );
    }

    proptest! {
        #[test]
        fn columns_of_transposes(keys in proptest::collection::vec(proptest::collection::vec("[a-z0-9]{0,4}", 3), 0..20)) {
            let cols = columns_of(&keys, 3);
            prop_assert_eq!(cols.len(), 3);
            for (i, key) in keys.iter().enumerate() {
                for (c, v) in key.iter().enumerate() {
                    prop_assert_eq!(&cols[c][i], v);
                }
            }
        }

        #[test]
        fn every_statement_binds_one_parameter_per_key_column(width in 1usize..5) {
            let shape = Shape {
                table: "s.t".into(),
                target: "floe.r".into(),
                local: (0..width).map(|i| format!("c{i}")).collect(),
                remote: (0..width).map(|i| format!("r{i}")).collect(),
                types: vec!["int".into(); width],
                tenant: 0,
            };
            for sql in [shape.missing(), shape.rows_of(), shape.set_null(), shape.delete()] {
                prop_assert!(sql.contains(&format!("${width}::int[]")), "{}", sql);
                let beyond = format!("${}", width + 1);
                prop_assert!(!sql.contains(&beyond), "{}", sql);
            }
        }
    }
}
