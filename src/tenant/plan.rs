//! The DDL that isolates one table, and that undoes it. Pure: facts in, statements out.
//!
//! `enable_tenant_isolation` reads the state of the table (and of each partition, for a
//! partitioned table) into [`RelState`], asks [`enable_steps`] what is missing, and runs the
//! rendered statements; running it twice yields no steps the second time. Identifiers reach
//! SQL only through the `quote` function the caller passes (Postgres's `quote_ident`).

/// A schema-qualified relation name, unquoted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QualName {
    pub schema: String,
    pub name: String,
}

impl QualName {
    pub fn new(schema: &str, name: &str) -> QualName {
        QualName {
            schema: schema.to_string(),
            name: name.to_string(),
        }
    }

    pub fn quoted(&self, quote: &dyn Fn(&str) -> String) -> String {
        format!("{}.{}", quote(&self.schema), quote(&self.name))
    }
}

/// How a table's rows belong to a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tenancy {
    /// The table has a uuid tenant column.
    Column { column: String },
    /// The table's `fk_column` references `parent(parent_key)`, whose `parent_tenant` column
    /// holds the tenant (e.g. `campaign_analytics.company_id -> companies(id).tenant_id`).
    Via {
        fk_column: String,
        parent: QualName,
        parent_key: String,
        parent_tenant: String,
    },
}

impl Tenancy {
    /// The column an index must lead with for the policy to be cheap.
    pub fn indexed_column(&self) -> &str {
        match self {
            Tenancy::Column { column } => column,
            Tenancy::Via { fk_column, .. } => fk_column,
        }
    }

    /// The policy expression. In the [`PolicyStyle::InitPlan`] style the context is read in
    /// an uncorrelated sub-select, which the planner turns into an InitPlan: evaluated once
    /// per statement, and usable as an index condition (`tenant_id = $0`, `company_id = ANY
    /// ($0)`). In the [`PolicyStyle::Plain`] style (Citus, which refuses sub-selects in
    /// policies) the stable function is called directly: still an index condition, evaluated
    /// once per scan.
    pub fn policy_expr(&self, style: PolicyStyle, quote: &dyn Fn(&str) -> String) -> String {
        match self {
            Tenancy::Column { column } => match style {
                PolicyStyle::InitPlan => {
                    format!("{} = (SELECT floe.current_tenant())", quote(column))
                }
                PolicyStyle::Plain => format!("{} = floe.current_tenant()", quote(column)),
            },
            Tenancy::Via {
                fk_column,
                parent,
                parent_key,
                parent_tenant,
            } => format!(
                "{} = ANY (ARRAY(SELECT p.{} FROM {} p WHERE p.{} = (SELECT floe.current_tenant())))",
                quote(fk_column),
                quote(parent_key),
                parent.quoted(quote),
                quote(parent_tenant)
            ),
        }
    }
}

/// How floe's policies read the tenant context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyStyle {
    /// In a sub-select (an InitPlan): once per statement. The default.
    InitPlan,
    /// A direct call of the stable function: in databases with Citus, which propagates
    /// policies to the shards and refuses sub-selects in them. Tenancy through a parent
    /// table (`via`) needs a sub-select and is refused there.
    Plain,
}

pub const POLICY: &str = "floe_tenant_isolation";
pub const ADMIN_POLICY: &str = "floe_tenant_admin";
pub const ADMIN_ROLE: &str = "floe_tenant_admin";
pub const GUARD_INSERT: &str = "floe_tenant_guard_insert";
pub const GUARD_UPDATE: &str = "floe_tenant_guard_update";

/// What is already in place on one relation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelState {
    pub rls_enabled: bool,
    pub rls_forced: bool,
    pub has_policy: bool,
    /// The floe policy's expressions are the ones floe wrote (same as on the isolated root).
    pub policy_matches: bool,
    pub has_admin_policy: bool,
    pub has_guard_insert: bool,
    /// floe's update guard is there (in any form).
    pub has_guard_update: bool,
    /// ... and fires only for an UPDATE whose SET list names the tenant column (`UPDATE OF`),
    /// the form floe writes since 0.13.0; an older guard is replaced by the next enable.
    pub guard_update_by_column: bool,
    /// Some index (or partitioned index) has the tenant column as its first key.
    pub has_tenant_index: bool,
    /// floe's policies on it (if any) are in the style asked for (a sub-select or not).
    pub style_matches: bool,
}

/// One DDL statement of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    EnableRls(QualName),
    DisableRls(QualName),
    ForceRls(QualName),
    NoForceRls(QualName),
    /// Creates the policy, or rewrites its expressions if it exists (repairs drift).
    Policy {
        table: QualName,
        exists: bool,
    },
    /// Creates the admin policy, or rewrites its expressions if it exists (another style).
    AdminPolicy {
        table: QualName,
        exists: bool,
    },
    DropPolicy {
        table: QualName,
        policy: &'static str,
    },
    /// A guard trigger: the INSERT one (always BEFORE) or the UPDATE one (AFTER, or BEFORE
    /// on a partitioned table).
    Guard {
        table: QualName,
        update: bool,
        before: bool,
    },
    DropGuard {
        table: QualName,
        update: bool,
    },
    CreateIndex {
        table: QualName,
        index: String,
    },
    DropIndex(QualName),
}

/// The choices of `enable_tenant_isolation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// FORCE row level security (the owner is filtered too).
    pub force: bool,
    /// Rewrite existing floe policies (the tenant column or `via` changed).
    pub refresh_policies: bool,
    /// Keep the AFTER UPDATE guard that rejects a change of the tenant column even in admin
    /// mode; without it, the policy's WITH CHECK still rejects it for every role it applies to.
    pub guard_updates: bool,
    /// The root is partitioned: its update guard must be a BEFORE trigger, because an UPDATE
    /// that moves a row to another partition fires no AFTER UPDATE trigger.
    pub partitioned: bool,
}

/// The steps that make `root` (and every relation in `partitions`, for a partitioned table)
/// isolated. Triggers and the index go on the root only: Postgres clones row triggers and
/// cascades indexes to partitions; RLS flags and policies are per relation, so every
/// partition gets its own (a partition queried directly is then isolated too).
pub fn enable_steps(
    root: &QualName,
    root_state: &RelState,
    partitions: &[(QualName, RelState)],
    tenancy: &Tenancy,
    index_name: &str,
    opts: Options,
) -> Vec<Step> {
    let Options {
        force,
        refresh_policies,
        guard_updates,
        partitioned,
    } = opts;
    let mut steps = Vec::new();
    for (rel, state) in
        std::iter::once((root, root_state)).chain(partitions.iter().map(|(r, s)| (r, s)))
    {
        steps.extend(rls_steps(rel, state, force, refresh_policies));
    }
    if let Tenancy::Column { .. } = tenancy {
        if !root_state.has_guard_insert {
            steps.push(Step::Guard {
                table: root.clone(),
                update: false,
                before: true,
            });
        }
        let (exists, current) = (
            root_state.has_guard_update,
            root_state.has_guard_update && root_state.guard_update_by_column,
        );
        if exists && !(guard_updates && current) {
            steps.push(Step::DropGuard {
                table: root.clone(),
                update: true,
            });
        }
        if guard_updates && !current {
            steps.push(Step::Guard {
                table: root.clone(),
                update: true,
                before: partitioned,
            });
        }
    }
    if !root_state.has_tenant_index {
        steps.push(Step::CreateIndex {
            table: root.clone(),
            index: index_name.to_string(),
        });
    }
    steps
}

/// The steps that complete the partitions of an isolated tree (created or attached after
/// isolation): whatever a partition lacks, RLS flags or a faithful floe policy, it gets.
/// A table attached with RLS off, or with a tampered policy of floe's name, is fixed too.
pub fn new_partition_steps(partitions: &[(QualName, RelState)], force: bool) -> Vec<Step> {
    partitions
        .iter()
        .flat_map(|(rel, state)| rls_steps(rel, state, force, false))
        .collect()
}

/// RLS flags and policies for one relation. An existing policy is rewritten only when
/// `refresh_policy` is set (the tenancy changed): ALTER POLICY takes an ACCESS EXCLUSIVE lock.
pub fn rls_steps(rel: &QualName, state: &RelState, force: bool, refresh_policy: bool) -> Vec<Step> {
    let mut steps = Vec::new();
    if !state.rls_enabled {
        steps.push(Step::EnableRls(rel.clone()));
    }
    match (force, state.rls_forced) {
        (true, false) => steps.push(Step::ForceRls(rel.clone())),
        (false, true) => steps.push(Step::NoForceRls(rel.clone())),
        _ => {}
    }
    if !state.has_policy || !state.policy_matches || !state.style_matches || refresh_policy {
        steps.push(Step::Policy {
            table: rel.clone(),
            exists: state.has_policy,
        });
    }
    if !state.has_admin_policy || !state.style_matches {
        steps.push(Step::AdminPolicy {
            table: rel.clone(),
            exists: state.has_admin_policy,
        });
    }
    steps
}

/// What floe recorded when it isolated a table, so that disabling restores exactly that.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registration {
    pub rls_was_enabled: bool,
    pub rls_was_forced: bool,
    /// The index floe created, if it created one.
    pub created_index: Option<QualName>,
}

/// The steps that undo `enable_steps`: floe's policies and triggers go, the index goes if
/// floe created it, and RLS flags return to what they were before floe.
pub fn disable_steps(
    root: &QualName,
    root_state: &RelState,
    partitions: &[(QualName, RelState)],
    reg: &Registration,
) -> Vec<Step> {
    let mut steps = Vec::new();
    if root_state.has_guard_insert {
        steps.push(Step::DropGuard {
            table: root.clone(),
            update: false,
        });
    }
    if root_state.has_guard_update {
        steps.push(Step::DropGuard {
            table: root.clone(),
            update: true,
        });
    }
    for (rel, state) in
        std::iter::once((root, root_state)).chain(partitions.iter().map(|(r, s)| (r, s)))
    {
        if state.has_policy {
            steps.push(Step::DropPolicy {
                table: rel.clone(),
                policy: POLICY,
            });
        }
        if state.has_admin_policy {
            steps.push(Step::DropPolicy {
                table: rel.clone(),
                policy: ADMIN_POLICY,
            });
        }
        if state.rls_forced && !reg.rls_was_forced {
            steps.push(Step::NoForceRls(rel.clone()));
        }
        if state.rls_enabled && !reg.rls_was_enabled {
            steps.push(Step::DisableRls(rel.clone()));
        }
    }
    if let Some(index) = &reg.created_index {
        steps.push(Step::DropIndex(index.clone()));
    }
    steps
}

/// Renders one step as SQL, floe's policies in `style`.
pub fn render(
    step: &Step,
    tenancy: &Tenancy,
    style: PolicyStyle,
    quote: &dyn Fn(&str) -> String,
) -> String {
    let q = |n: &QualName| n.quoted(quote);
    match step {
        Step::EnableRls(t) => format!("ALTER TABLE {} ENABLE ROW LEVEL SECURITY", q(t)),
        Step::DisableRls(t) => format!("ALTER TABLE {} DISABLE ROW LEVEL SECURITY", q(t)),
        Step::ForceRls(t) => format!("ALTER TABLE {} FORCE ROW LEVEL SECURITY", q(t)),
        Step::NoForceRls(t) => format!("ALTER TABLE {} NO FORCE ROW LEVEL SECURITY", q(t)),
        Step::Policy { table, exists } => {
            let expr = tenancy.policy_expr(style, quote);
            if *exists {
                format!(
                    "ALTER POLICY {} ON {} USING ({expr}) WITH CHECK ({expr})",
                    quote(POLICY),
                    q(table)
                )
            } else {
                format!(
                    "CREATE POLICY {} ON {} AS PERMISSIVE FOR ALL TO PUBLIC USING ({expr}) WITH CHECK ({expr})",
                    quote(POLICY),
                    q(table)
                )
            }
        }
        Step::AdminPolicy { table, exists } => {
            let expr = match style {
                PolicyStyle::InitPlan => "(SELECT floe.tenant_admin_active())",
                PolicyStyle::Plain => "floe.tenant_admin_active()",
            };
            if *exists {
                format!(
                    "ALTER POLICY {} ON {} USING ({expr}) WITH CHECK ({expr})",
                    quote(ADMIN_POLICY),
                    q(table)
                )
            } else {
                format!(
                    "CREATE POLICY {} ON {} AS PERMISSIVE FOR ALL TO {} USING ({expr}) WITH CHECK ({expr})",
                    quote(ADMIN_POLICY),
                    q(table),
                    quote(ADMIN_ROLE)
                )
            }
        }
        Step::DropPolicy { table, policy } => {
            format!("DROP POLICY IF EXISTS {} ON {}", quote(policy), q(table))
        }
        Step::Guard {
            table,
            update,
            before,
        } => {
            let column = quote(tenancy.indexed_column());
            if *update {
                // AFTER, not BEFORE: a BEFORE ROW UPDATE trigger makes the executor fetch and
                // lock every target row once more (GetTupleForTrigger), even when its WHEN
                // clause is false. `UPDATE OF` the tenant column: an UPDATE whose SET list
                // leaves the column out cannot change it (only a BEFORE trigger of the
                // table's owner could), and Postgres then skips the WHEN clause, which it
                // would otherwise parse and prepare for every statement.
                format!(
                    "CREATE TRIGGER {} {} UPDATE OF {column} ON {} FOR EACH ROW \
                     WHEN (OLD.{column} IS DISTINCT FROM NEW.{column}) \
                     EXECUTE FUNCTION floe.tenant_guard({})",
                    quote(GUARD_UPDATE),
                    if *before { "BEFORE" } else { "AFTER" },
                    q(table),
                    sql_literal(tenancy.indexed_column())
                )
            } else {
                format!(
                    "CREATE TRIGGER {} BEFORE INSERT ON {} FOR EACH ROW EXECUTE FUNCTION floe.tenant_guard({})",
                    quote(GUARD_INSERT),
                    q(table),
                    sql_literal(tenancy.indexed_column())
                )
            }
        }
        Step::DropGuard { table, update } => format!(
            "DROP TRIGGER IF EXISTS {} ON {}",
            quote(if *update { GUARD_UPDATE } else { GUARD_INSERT }),
            q(table)
        ),
        Step::CreateIndex { table, index } => format!(
            "CREATE INDEX {} ON {} ({})",
            quote(index),
            q(table),
            quote(tenancy.indexed_column())
        ),
        Step::DropIndex(index) => format!("DROP INDEX IF EXISTS {}", q(index)),
    }
}

/// A trigger argument is a string literal in CREATE TRIGGER. As Postgres's quote_literal
/// does: quotes doubled, and a backslash makes it an E'' literal with backslashes doubled, so
/// the result means the same whatever standard_conforming_strings says.
fn sql_literal(text: &str) -> String {
    let body = text.replace('\'', "''");
    if text.contains('\\') {
        format!("E'{}'", body.replace('\\', "\\\\"))
    } else {
        format!("'{body}'")
    }
}

/// The name of the index floe creates: `<table>_<column>_floe_idx`, cut to fit NAMEDATALEN
/// (63 bytes) on a character boundary.
pub fn index_name(table: &str, column: &str) -> String {
    let suffix = format!("_{column}_floe_idx");
    let mut name = String::new();
    for c in table.chars() {
        if name.len() + c.len_utf8() + suffix.len() > 63 {
            break;
        }
        name.push(c);
    }
    name.push_str(&suffix);
    if name.len() > 63 {
        // A very long column name: keep a prefix of the whole name.
        let mut cut = 63;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name.truncate(cut);
    }
    name
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
