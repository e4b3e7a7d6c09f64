//! `floe.tenant_coverage()`: which holes a relation or role has. Pure: the glue reads the
//! catalog into [`Facts`], this file names the problems.

/// What kind of object a coverage row describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Table,
    PartitionedTable,
    Partition,
    View,
    MaterializedView,
    Role,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Table => "table",
            Kind::PartitionedTable => "partitioned table",
            Kind::Partition => "partition",
            Kind::View => "view",
            Kind::MaterializedView => "materialized view",
            Kind::Role => "role",
        }
    }

    pub fn from_relkind(relkind: &str, is_partition: bool) -> Option<Kind> {
        match (relkind, is_partition) {
            ("r", false) => Some(Kind::Table),
            ("p", false) => Some(Kind::PartitionedTable),
            ("r" | "p", true) => Some(Kind::Partition),
            ("v", _) => Some(Kind::View),
            ("m", _) => Some(Kind::MaterializedView),
            _ => None,
        }
    }
}

/// One policy on a table: its name and deparsed expressions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub name: String,
    /// Permissive policies are OR-ed together; restrictive ones are AND-ed.
    pub permissive: bool,
    pub using: Option<String>,
    pub with_check: Option<String>,
}

/// What the catalog says about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub kind: Kind,
    /// True when the tenancy is through a foreign key (no guard needed).
    pub via: bool,
    /// Registered with floe with `force => false` deliberately.
    pub unforced_by_choice: bool,
    pub rls_enabled: bool,
    pub rls_forced: bool,
    pub policies: Vec<Policy>,
    pub guard: bool,
    pub tenant_index: bool,
    /// The column the index should lead with (tenant column or foreign key column).
    pub index_column: String,
    /// Views: whether `security_invoker` is set, and the tenant tables they read.
    pub security_invoker: bool,
    pub reads: Vec<String>,
    /// Roles (other than the owner) granted TRUNCATE, which ignores row level security.
    pub truncaters: Vec<String>,
    /// Foreign keys to another tenant table that do not pair this table's tenant column with
    /// the target's (`name → target`): foreign key checks bypass row level security.
    pub cross_tenant_fks: Vec<String>,
    /// The database has Citus: policies call the context function directly (Citus refuses
    /// sub-selects in policies), so that is no problem to report.
    pub citus: bool,
}

impl Facts {
    /// Facts for an object that is not a table (a view or a role): no RLS state of its own.
    pub fn non_table(kind: Kind, security_invoker: bool, reads: Vec<String>) -> Facts {
        Facts {
            kind,
            via: false,
            unforced_by_choice: false,
            rls_enabled: false,
            rls_forced: false,
            policies: vec![],
            guard: false,
            tenant_index: false,
            index_column: String::new(),
            security_invoker,
            reads,
            truncaters: vec![],
            cross_tenant_fks: vec![],
            citus: false,
        }
    }
}

/// The verdict for one coverage row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub policy_present: bool,
    pub policy_efficient: bool,
    pub problems: Vec<String>,
    /// Some problem lets one tenant see or change another's rows (not just slowness).
    pub leaks: bool,
}

pub fn judge(f: &Facts) -> Verdict {
    let policy_present = !f.policies.is_empty();
    let slow: Vec<&str> = f
        .policies
        .iter()
        .filter(|_| !f.citus)
        .filter(|p| {
            [&p.using, &p.with_check]
                .into_iter()
                .flatten()
                .any(|e| evaluates_per_row(e))
        })
        .map(|p| p.name.as_str())
        .collect();
    let mut problems = Vec::new();
    match f.kind {
        Kind::Role => problems.push(
            "role with BYPASSRLS that can log in or be reached with SET ROLE: it sees and changes every tenant's rows".to_string(),
        ),
        Kind::MaterializedView if !f.reads.is_empty() => problems.push(format!(
            "materialized view stores rows of tenant table(s) {} for every tenant and roles other than its owner may read it (materialized views cannot have row level security)",
            f.reads.join(", ")
        )),
        Kind::MaterializedView => {}
        Kind::View => {
            if !f.security_invoker && !f.reads.is_empty() {
                problems.push(format!(
                    "view without security_invoker reads tenant table(s) {} with its owner's rights, which bypass their policies",
                    f.reads.join(", ")
                ));
            }
        }
        Kind::Table | Kind::PartitionedTable | Kind::Partition => {
            if !f.rls_enabled {
                problems.push("row level security is not enabled".to_string());
            }
            if f.rls_enabled && !f.rls_forced && !f.unforced_by_choice {
                problems.push(
                    "row level security is not forced: the table owner bypasses every policy"
                        .to_string(),
                );
            }
            if !policy_present {
                problems.push("no tenant policy".to_string());
            }
            for p in f.policies.iter().filter(|p| p.permissive && !reads_tenant(p)) {
                problems.push(format!(
                    "permissive policy {} does not filter by tenant; Postgres ORs permissive policies, so it opens rows of every tenant",
                    p.name
                ));
            }
            for name in &slow {
                problems.push(format!(
                    "policy {name} evaluates the tenant context once per row; wrap it in a sub-select, e.g. (SELECT floe.current_tenant())"
                ));
            }
            if !f.via && !f.guard {
                problems.push("no tenant guard trigger".to_string());
            }
            if !f.tenant_index {
                problems.push(format!("no index led by {}", f.index_column));
            }
            for fk in &f.cross_tenant_fks {
                problems.push(format!(
                    "foreign key {fk} leaves out the tenant column: a row can point at another tenant's row (foreign key checks bypass row level security), which that tenant then cannot delete; make it (tenant_id, ...) REFERENCES the target's (tenant_id, ...)"
                ));
            }
            if !f.truncaters.is_empty() {
                problems.push(format!(
                    "TRUNCATE granted to {}: TRUNCATE ignores row level security and empties every tenant's rows",
                    f.truncaters.join(", ")
                ));
            }
        }
    }
    let slow_only = problems
        .iter()
        .filter(|p| p.starts_with("policy ") || p.starts_with("no index led by"))
        .count();
    Verdict {
        policy_present,
        policy_efficient: policy_present && slow.is_empty(),
        leaks: problems.len() > slow_only,
        problems,
    }
}

/// Whether a policy limits rows by the tenant context (floe's admin policy counts: it only
/// applies to members of floe_tenant_admin in admin mode).
fn reads_tenant(p: &Policy) -> bool {
    let mentions = |e: &Option<String>| {
        e.as_deref().is_some_and(|e| {
            let e = e.to_ascii_lowercase();
            e.contains("current_setting(")
                || e.contains("current_tenant(")
                || e.contains("tenant_admin_active(")
        })
    };
    mentions(&p.using) && (p.with_check.is_none() || mentions(&p.with_check))
}

/// Whether a deparsed policy expression reads the tenant context per row: a call of
/// `current_setting(` or `current_tenant(` that is not inside a `( SELECT ...)` sub-select
/// (the planner runs an uncorrelated sub-select once per statement, as an InitPlan).
pub fn evaluates_per_row(expr: &str) -> bool {
    const CALLS: [&str; 2] = ["current_setting(", "current_tenant("];
    let lower = expr.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    // One entry per open parenthesis: does the group start with SELECT?
    let mut groups: Vec<bool> = Vec::new();
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let c = bytes[i];
        if in_string {
            if c == b'\'' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        match c {
            b'\'' => in_string = true,
            b'(' => {
                let rest = lower[i + 1..].trim_start();
                let is_select = rest.starts_with("select")
                    && !rest[6..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
                groups.push(is_select);
            }
            b')' => {
                groups.pop();
            }
            _ => {
                if CALLS
                    .iter()
                    .any(|call| bytes[i..].starts_with(call.as_bytes()))
                    && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'))
                    && !groups.iter().any(|&s| s)
                {
                    return true;
                }
            }
        }
        i += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Facts {
        Facts {
            kind: Kind::Table,
            via: false,
            unforced_by_choice: false,
            rls_enabled: true,
            rls_forced: true,
            policies: vec![Policy {
                name: "floe_tenant_isolation".into(),
                permissive: true,
                using: Some(
                    "(tenant_id = ( SELECT floe.current_tenant() AS current_tenant))".into(),
                ),
                with_check: Some(
                    "(tenant_id = ( SELECT floe.current_tenant() AS current_tenant))".into(),
                ),
            }],
            guard: true,
            tenant_index: true,
            index_column: "tenant_id".into(),
            security_invoker: false,
            reads: vec![],
            truncaters: vec![],
            cross_tenant_fks: vec![],
            citus: false,
        }
    }

    #[test]
    fn citus_policies_call_the_function_directly() {
        let mut f = table();
        f.policies = vec![Policy {
            name: "floe_tenant_isolation".into(),
            permissive: true,
            using: Some("(tenant_id = floe.current_tenant())".into()),
            with_check: Some("(tenant_id = floe.current_tenant())".into()),
        }];
        assert!(
            !judge(&f).policy_efficient,
            "one node: a per-row call is reported"
        );
        f.citus = true;
        let v = judge(&f);
        assert!(v.policy_efficient && v.problems.is_empty(), "{v:?}");
    }

    #[test]
    fn a_foreign_key_without_the_tenant_column_is_a_leak() {
        let mut f = table();
        f.cross_tenant_fks = vec!["leads_company_id_fkey → app.companies".into()];
        let v = judge(&f);
        assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
        assert!(v.problems[0].contains("leads_company_id_fkey"));
        assert!(v.leaks, "another tenant's row can be referenced");
    }

    #[test]
    fn a_covered_table_has_no_problems() {
        let v = judge(&table());
        assert!(v.policy_present && v.policy_efficient);
        assert!(v.problems.is_empty(), "{:?}", v.problems);
    }

    #[test]
    fn each_hole_is_named() {
        let mut f = table();
        f.rls_enabled = false;
        f.rls_forced = false;
        f.policies.clear();
        f.guard = false;
        f.tenant_index = false;
        let p = judge(&f).problems;
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(p[0].contains("not enabled"));
        assert!(p.iter().any(|x| x.contains("no tenant policy")));
        assert!(p.iter().any(|x| x.contains("guard")));
        assert!(p.iter().any(|x| x.contains("no index led by tenant_id")));

        let mut f = table();
        f.rls_forced = false;
        assert!(judge(&f).problems[0].contains("not forced"));
        f.unforced_by_choice = true;
        assert!(judge(&f).problems.is_empty());

        let mut f = table();
        f.via = true;
        f.guard = false;
        assert!(judge(&f).problems.is_empty(), "via tables need no guard");
    }

    #[test]
    fn truncate_grants_are_a_leak() {
        let mut f = table();
        f.truncaters = vec!["app".into()];
        let v = judge(&f);
        assert!(v.leaks && v.problems[0].contains("TRUNCATE granted to app"));
    }

    #[test]
    fn per_row_policies() {
        let mut f = table();
        f.policies = vec![Policy {
            name: "jobs_tenant_isolation".into(),
            permissive: true,
            using: Some(
                "(tenant_id = (current_setting('app.current_tenant_id'::text))::uuid)".into(),
            ),
            with_check: None,
        }];
        let v = judge(&f);
        assert!(v.policy_present && !v.policy_efficient);
        assert!(v.problems[0].contains("jobs_tenant_isolation"));
        assert!(!v.leaks, "slow is not leaky");
    }

    #[test]
    fn an_extra_permissive_policy_is_a_leak() {
        let mut f = table();
        f.policies.push(Policy {
            name: "legacy_read".into(),
            permissive: true,
            using: Some("(payload IS NOT NULL)".into()),
            with_check: None,
        });
        let v = judge(&f);
        assert!(v.leaks);
        assert!(v.problems[0].contains("legacy_read"), "{:?}", v.problems);
        // The same expression as a restrictive policy only narrows: no problem.
        f.policies[1].permissive = false;
        assert!(judge(&f).problems.is_empty());
    }

    #[test]
    fn per_row_detection() {
        assert!(evaluates_per_row(
            "(tenant_id = (current_setting('app.current_tenant_id'::text))::uuid)"
        ));
        assert!(evaluates_per_row("(tenant_id = floe.current_tenant())"));
        assert!(
            !evaluates_per_row("(company_id IN ( SELECT companies.id FROM companies WHERE (companies.tenant_id = (current_setting('x'::text))::uuid)))"),
            "inside a sub-select: once per statement"
        );
        assert!(!evaluates_per_row(
            "(tenant_id = ( SELECT floe.current_tenant() AS current_tenant))"
        ));
        assert!(
            !evaluates_per_row("(note = 'current_setting(')"),
            "string contents are not calls"
        );
        assert!(!evaluates_per_row("(my_current_setting(1) > 0)"));
        assert!(evaluates_per_row(
            "((SELECT 1) = 1 AND t = current_tenant())"
        ));
        assert!(!evaluates_per_row("(selector = 1)"));
    }

    #[test]
    fn views_and_roles() {
        let mut f = table();
        f.kind = Kind::View;
        f.reads = vec![];
        assert!(
            judge(&f).problems.is_empty(),
            "reads nothing around a policy"
        );
        f.reads = vec!["public.jobs".into()];
        assert!(judge(&f).problems[0].contains("public.jobs"));
        assert!(judge(&f).leaks);
        f.security_invoker = true;
        assert!(judge(&f).problems.is_empty());
        f.kind = Kind::MaterializedView;
        assert!(judge(&f).problems[0].contains("cannot have row level security"));
        f.kind = Kind::Role;
        assert!(judge(&f).problems[0].contains("BYPASSRLS"));
    }

    proptest::proptest! {
        #[test]
        fn detection_never_panics(s in "\\PC{0,60}") {
            let _ = evaluates_per_row(&s);
        }
    }
}
