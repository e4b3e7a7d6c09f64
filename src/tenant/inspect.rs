//! Coverage and health: reads every relation and role into the facts `coverage.rs` judges.

use super::coverage::{self, Facts, Kind, Policy, Verdict};
use crate::check::{Check, Status};
use crate::error::FloeError;
use crate::gucs;
use pgrx::prelude::*;

pub(super) const COVERAGE_TABLES: &str = "
WITH cand AS (
  SELECT c.oid, n.nspname::text AS schema_name, c.relname::text AS table_name,
         c.relkind::text AS relkind, c.relispartition, c.relrowsecurity, c.relforcerowsecurity,
         c.relacl, c.relowner,
         reg.tenant_column::text AS reg_column, reg.via_column::text AS reg_via, reg.force AS reg_force,
         reg.guard_updates AS reg_guard_updates,
         (SELECT a.attname::text FROM pg_catalog.pg_attribute a
           WHERE a.attrelid = c.oid AND a.attname = $1 AND a.attnum > 0 AND NOT a.attisdropped) AS own_column,
         (SELECT a.attname::text
            FROM pg_catalog.pg_constraint k
            JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
           WHERE k.conrelid = c.oid AND k.contype = 'f' AND pg_catalog.cardinality(k.conkey) = 1
             AND EXISTS (SELECT 1 FROM pg_catalog.pg_attribute pa
                          WHERE pa.attrelid = k.confrelid AND pa.attname = $1
                            AND pa.attnum > 0 AND NOT pa.attisdropped)
           ORDER BY k.conname LIMIT 1) AS fk_column
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN LATERAL (
      -- the table itself, then its ancestors (pg_partition_ancestors() is empty for a table
      -- outside any partition tree)
      SELECT t.tenant_column, t.via_column, t.force, t.guard_updates
        FROM (SELECT c.oid AS relid, 0::bigint AS ord
              UNION ALL
              SELECT a.relid, a.ord FROM pg_catalog.pg_partition_ancestors(c.oid) WITH ORDINALITY AS a(relid, ord)) an
        JOIN floe.tenant_tables t ON t.relid = an.relid
       ORDER BY an.ord LIMIT 1) reg ON true
   WHERE c.relkind IN ('r', 'p')
     AND n.nspname <> ALL ('{pg_catalog,information_schema}')
     AND n.nspname !~ '^pg_(toast|temp_)'
), cov AS (
  SELECT cand.*,
         COALESCE(reg_via, CASE WHEN reg_column IS NULL AND own_column IS NULL THEN fk_column END) AS via,
         CASE WHEN reg_via IS NOT NULL THEN NULL ELSE COALESCE(reg_column, own_column) END AS tenant_column
    FROM cand
   WHERE reg_column IS NOT NULL OR own_column IS NOT NULL OR fk_column IS NOT NULL
)
SELECT cov.oid, schema_name, table_name, relkind, relispartition, relrowsecurity, relforcerowsecurity,
       tenant_column, via, reg_force,
       ARRAY(SELECT p.polname::text || CASE WHEN p.polpermissive THEN '' ELSE ' (restrictive)' END
               FROM pg_catalog.pg_policy p WHERE p.polrelid = cov.oid ORDER BY p.polname),
       ARRAY(SELECT COALESCE(pg_catalog.pg_get_expr(p.polqual, p.polrelid), '')
               FROM pg_catalog.pg_policy p WHERE p.polrelid = cov.oid ORDER BY p.polname),
       ARRAY(SELECT COALESCE(pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid), '')
               FROM pg_catalog.pg_policy p WHERE p.polrelid = cov.oid ORDER BY p.polname),
       EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                WHERE t.tgrelid = cov.oid AND t.tgname = 'floe_tenant_guard_insert'
                  AND t.tgfoid = 'floe.tenant_guard()'::pg_catalog.regprocedure AND t.tgenabled <> 'D')
         AND (reg_guard_updates IS FALSE
              OR EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                          WHERE t.tgrelid = cov.oid AND t.tgname = 'floe_tenant_guard_update'
                            AND t.tgfoid = 'floe.tenant_guard()'::pg_catalog.regprocedure
                            AND t.tgenabled <> 'D')),
       EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                WHERE i.indrelid = cov.oid AND a.attname = COALESCE(via, tenant_column)),
       -- TRUNCATE ignores row level security
       ARRAY(SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                                  ELSE pg_catalog.pg_get_userbyid(a.grantee)::text END
               FROM pg_catalog.aclexplode(cov.relacl) a
              WHERE a.privilege_type = 'TRUNCATE' AND a.grantee <> cov.relowner
              ORDER BY 1),
       -- foreign keys to another tenant table that do not pair the tenant columns (checks of
       -- foreign keys bypass row level security); a partition's clones are the parent's
       ARRAY(SELECT k.conname::text || ' → ' || k.confrelid::pg_catalog.regclass::text
               FROM pg_catalog.pg_constraint k
               JOIN cov t ON t.oid = k.confrelid
              WHERE k.conrelid = cov.oid AND k.contype = 'f' AND k.conparentid = 0
                AND cov.tenant_column IS NOT NULL AND t.tenant_column IS NOT NULL
                AND NOT EXISTS (
                      SELECT 1 FROM ROWS FROM (pg_catalog.unnest(k.conkey), pg_catalog.unnest(k.confkey)) AS m(src, dst)
                       WHERE m.src = (SELECT a.attnum FROM pg_catalog.pg_attribute a
                                       WHERE a.attrelid = cov.oid AND a.attname = cov.tenant_column)
                         AND m.dst = (SELECT a.attnum FROM pg_catalog.pg_attribute a
                                       WHERE a.attrelid = k.confrelid AND a.attname = t.tenant_column))
              ORDER BY 1)
  FROM cov
 ORDER BY schema_name, table_name";

pub(super) const COVERAGE_VIEWS: &str = "
SELECT n.nspname::text, v.relname::text, v.relkind::text,
       COALESCE(v.reloptions, '{}')::text[],
       ARRAY(SELECT DISTINCT pg_catalog.quote_ident(bn.nspname) || '.' || pg_catalog.quote_ident(b.relname)
               FROM pg_catalog.pg_rewrite rw
               JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
                    AND d.objid = rw.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
               JOIN pg_catalog.pg_class b ON b.oid = d.refobjid
               JOIN pg_catalog.pg_namespace bn ON bn.oid = b.relnamespace
              WHERE rw.ev_class = v.oid AND b.oid <> v.oid AND b.oid = ANY ($1)
                -- a view reads with its owner's rights: that only leaks when the owner
                -- bypasses the table's policy. A materialized view stores every tenant's
                -- rows: that leaks when a role other than its owner may read it (an
                -- operators' dashboard nobody else is granted is fine).
                AND (CASE WHEN v.relkind = 'm'
                          THEN EXISTS (SELECT 1 FROM pg_catalog.aclexplode(
                                           COALESCE(v.relacl, pg_catalog.acldefault('r', v.relowner))) a
                                        WHERE a.privilege_type = 'SELECT' AND a.grantee <> v.relowner)
                          ELSE o.rolsuper OR o.rolbypassrls OR NOT b.relrowsecurity
                               OR (b.relowner = v.relowner AND NOT b.relforcerowsecurity)
                     END)
              ORDER BY 1) AS leaking_reads,
       EXISTS (SELECT 1 FROM pg_catalog.pg_rewrite rw
                 JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
                      AND d.objid = rw.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                WHERE rw.ev_class = v.oid AND d.refobjid <> v.oid AND d.refobjid = ANY ($1)) AS reads_tenant
  FROM pg_catalog.pg_class v
  JOIN pg_catalog.pg_namespace n ON n.oid = v.relnamespace
  JOIN pg_catalog.pg_roles o ON o.oid = v.relowner
 WHERE v.relkind IN ('v', 'm')
   AND n.nspname <> ALL ('{pg_catalog,information_schema}')
 ORDER BY 1, 2";

/// Roles that bypass RLS (and are not superusers) and can log in, or can be reached with
/// SET ROLE from a role that can log in.
pub(super) const COVERAGE_ROLES: &str = "
WITH RECURSIVE reach(roleid, via) AS (
    SELECT r.oid, r.oid FROM pg_catalog.pg_roles r WHERE r.rolcanlogin
  UNION
    SELECT m.roleid, reach.via FROM pg_catalog.pg_auth_members m JOIN reach ON m.member = reach.roleid
)
SELECT r.rolname::text FROM pg_catalog.pg_roles r
 WHERE r.rolbypassrls AND NOT r.rolsuper
   AND EXISTS (SELECT 1 FROM reach WHERE reach.roleid = r.oid)
 ORDER BY 1";

/// One row of `floe.tenant_coverage()`.
pub struct CoverageRow {
    pub schema: Option<String>,
    pub name: String,
    pub kind: Kind,
    pub tenant_column: Option<String>,
    pub via: Option<String>,
    pub rls_enabled: Option<bool>,
    pub rls_forced: Option<bool>,
    pub guard: Option<bool>,
    pub tenant_index: Option<bool>,
    pub verdict: Verdict,
}

impl CoverageRow {
    /// A row for a view or role: no table columns to report.
    pub(super) fn non_table(
        schema: Option<String>,
        name: String,
        kind: Kind,
        facts: &Facts,
    ) -> CoverageRow {
        CoverageRow {
            schema,
            name,
            kind,
            tenant_column: None,
            via: None,
            rls_enabled: None,
            rls_forced: None,
            guard: None,
            tenant_index: None,
            verdict: coverage::judge(facts),
        }
    }
}

pub(super) fn is_true_option(opt: &str, key: &str) -> bool {
    opt.split_once('=').is_some_and(|(k, v)| {
        k.eq_ignore_ascii_case(key)
            && matches!(v.to_ascii_lowercase().as_str(), "true" | "on" | "1" | "yes")
    })
}

pub fn coverage_rows(tenant_column: &str) -> Result<Vec<CoverageRow>, FloeError> {
    Spi::connect(|client| {
        let mut out = Vec::new();
        let mut tenant_oids: Vec<pg_sys::Oid> = Vec::new();
        let citus = crate::citus::present();
        for row in client.select(COVERAGE_TABLES, None, &[tenant_column.into()])? {
            let oid: pg_sys::Oid = row.get(1)?.unwrap_or(pg_sys::InvalidOid);
            tenant_oids.push(oid);
            let relkind: String = row.get(4)?.unwrap_or_default();
            let is_partition: bool = row.get(5)?.unwrap_or(false);
            let kind = Kind::from_relkind(&relkind, is_partition).unwrap_or(Kind::Table);
            let rls_enabled: bool = row.get(6)?.unwrap_or(false);
            let rls_forced: bool = row.get(7)?.unwrap_or(false);
            let column: Option<String> = row.get(8)?;
            let via: Option<String> = row.get(9)?;
            let reg_force: Option<bool> = row.get(10)?;
            let names: Vec<String> = row.get::<Vec<String>>(11)?.unwrap_or_default();
            let using: Vec<String> = row.get::<Vec<String>>(12)?.unwrap_or_default();
            let check: Vec<String> = row.get::<Vec<String>>(13)?.unwrap_or_default();
            let guard: bool = row.get(14)?.unwrap_or(false);
            let tenant_index: bool = row.get(15)?.unwrap_or(false);
            let truncaters: Vec<String> = row.get::<Vec<String>>(16)?.unwrap_or_default();
            let cross_tenant_fks: Vec<String> = row.get::<Vec<String>>(17)?.unwrap_or_default();
            let nonempty = |s: &String| (!s.is_empty()).then(|| s.clone());
            let policies = names
                .iter()
                .enumerate()
                .map(|(i, name)| Policy {
                    permissive: !name.ends_with(" (restrictive)"),
                    name: name.trim_end_matches(" (restrictive)").to_string(),
                    using: using.get(i).and_then(nonempty),
                    with_check: check.get(i).and_then(nonempty),
                })
                .collect();
            let facts = Facts {
                kind,
                via: via.is_some(),
                unforced_by_choice: reg_force == Some(false),
                rls_enabled,
                rls_forced,
                policies,
                guard,
                tenant_index,
                index_column: via.clone().or_else(|| column.clone()).unwrap_or_default(),
                security_invoker: false,
                reads: vec![],
                truncaters,
                cross_tenant_fks,
                citus,
            };
            out.push(CoverageRow {
                schema: row.get(2)?,
                name: row.get(3)?.unwrap_or_default(),
                kind,
                tenant_column: column,
                via,
                rls_enabled: Some(rls_enabled),
                rls_forced: Some(rls_forced),
                guard: Some(guard),
                tenant_index: Some(tenant_index),
                verdict: coverage::judge(&facts),
            });
        }
        for row in client.select(COVERAGE_VIEWS, None, &[tenant_oids.into()])? {
            // every view over a tenant table gets a row; a problem only when it leaks
            let reads: Vec<String> = row.get::<Vec<String>>(5)?.unwrap_or_default();
            if !row.get::<bool>(6)?.unwrap_or(false) {
                continue;
            }
            let options: Vec<String> = row.get::<Vec<String>>(4)?.unwrap_or_default();
            let kind = if row.get::<String>(3)?.as_deref() == Some("m") {
                Kind::MaterializedView
            } else {
                Kind::View
            };
            let invoker = options
                .iter()
                .any(|o| is_true_option(o, "security_invoker"));
            let facts = Facts::non_table(kind, invoker, reads);
            out.push(CoverageRow::non_table(
                row.get(1)?,
                row.get(2)?.unwrap_or_default(),
                kind,
                &facts,
            ));
        }
        for row in client.select(COVERAGE_ROLES, None, &[])? {
            let facts = Facts::non_table(Kind::Role, false, vec![]);
            out.push(CoverageRow::non_table(
                None,
                row.get(1)?.unwrap_or_default(),
                Kind::Role,
                &facts,
            ));
        }
        Ok(out)
    })
}

/// The tenant module's rows of `floe.health()`.
pub fn health_checks() -> Result<Vec<Check>, FloeError> {
    let rows = coverage_rows("tenant_id")?;
    let with_problems: Vec<&CoverageRow> = rows
        .iter()
        .filter(|r| !r.verdict.problems.is_empty())
        .collect();
    let leaking = with_problems.iter().filter(|r| r.verdict.leaks).count();
    let tables = rows
        .iter()
        .filter(|r| {
            matches!(
                r.kind,
                Kind::Table | Kind::PartitionedTable | Kind::Partition
            )
        })
        .count();
    let check = if with_problems.is_empty() {
        Check {
            name: "tenant.coverage",
            status: Status::Ok,
            detail: format!("{tables} tenant table(s), all isolated"),
            hint: None,
        }
    } else {
        let names: Vec<String> = with_problems
            .iter()
            .take(5)
            .map(|r| r.name.clone())
            .collect();
        Check {
            name: "tenant.coverage",
            status: if leaking > 0 { Status::Critical } else { Status::Warn },
            detail: format!(
                "{} object(s) with tenant isolation problems ({} can leak rows across tenants), e.g. {}",
                with_problems.len(),
                leaking,
                names.join(", ")
            ),
            hint: Some("SELECT * FROM floe.tenant_coverage() WHERE problems <> '{}' shows each problem and what fixes it.".into()),
        }
    };
    let bypass = Spi::connect(|client| {
        let mut names = Vec::new();
        for row in client.select(
            "SELECT r.rolname::text FROM pg_catalog.pg_roles r
              WHERE r.rolcanlogin AND r.rolsuper ORDER BY 1",
            None,
            &[],
        )? {
            names.push(row.get::<String>(1)?.unwrap_or_default());
        }
        Ok::<_, FloeError>(names)
    })?;
    // Role and database defaults that would give sessions a tenant or admin mode: floe
    // ignores them (both count only when set in the transaction), and floe.session_tenant
    // = on as a default lets session-wide tenants count again. Named without their values.
    let defaults = gucs::with_tenant_setting(|name| {
        Spi::connect(|client| {
            let mut found = Vec::new();
            for row in client.select(
                "SELECT coalesce(r.rolname::text, 'every role')
                        || coalesce(' in database ' || d.datname::text, '')
                        || ': ' || pg_catalog.split_part(c, '=', 1)
                   FROM pg_catalog.pg_db_role_setting s
                   LEFT JOIN pg_catalog.pg_roles r ON r.oid = s.setrole
                   LEFT JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase,
                        pg_catalog.unnest(s.setconfig) c
                  WHERE pg_catalog.lower(pg_catalog.split_part(c, '=', 1)) = pg_catalog.lower($1)
                     OR (pg_catalog.lower(pg_catalog.split_part(c, '=', 1))
                             IN ('floe.tenant_admin', 'floe.session_tenant')
                         AND pg_catalog.lower(pg_catalog.split_part(c, '=', 2))
                             NOT IN ('off', 'false', 'no', '0', 'f', 'n', 'of'))
                  ORDER BY 1",
                None,
                &[name.to_str().unwrap_or("").into()],
            )? {
                found.extend(row.get::<String>(1)?);
            }
            Ok::<_, FloeError>(found)
        })
    })?;
    let defaults_check = if defaults.is_empty() {
        Check {
            name: "tenant.defaults",
            status: Status::Ok,
            detail: "no role or database sets a default tenant, admin mode or floe.session_tenant"
                .into(),
            hint: None,
        }
    } else {
        Check {
            name: "tenant.defaults",
            status: Status::Warn,
            detail: format!(
                "ALTER ROLE/DATABASE ... SET of tenant settings ({}): a default tenant or admin mode is ignored (both count only when set in the transaction), and floe.session_tenant = on lets session-wide tenants count",
                defaults.join("; ")
            ),
            hint: Some("Remove them (SELECT * FROM pg_db_role_setting shows where: ALTER ROLE ... RESET ...), and set the tenant, or SET LOCAL floe.tenant_admin = on, in each transaction.".into()),
        }
    };
    let bypass_check = Check {
        name: "tenant.bypass",
        status: Status::Ok,
        detail: if bypass.is_empty() {
            "no superuser can log in".to_string()
        } else {
            format!(
                "superuser login role(s) {} bypass row level security when they read; floe's guard still requires a tenant or admin mode for their writes (BYPASSRLS roles appear in floe.tenant_coverage())",
                bypass.join(", ")
            )
        },
        hint: None,
    };
    Ok(vec![check, defaults_check, bypass_check])
}
