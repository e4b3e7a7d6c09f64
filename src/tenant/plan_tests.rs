//! Tests of `plan.rs` (pure, proptest included): `use super::*` reaches its items.

use super::*;
use proptest::prelude::*;

fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn col() -> Tenancy {
    Tenancy::Column {
        column: "tenant_id".into(),
    }
}

fn t(name: &str) -> QualName {
    QualName::new("public", name)
}

#[test]
fn fresh_table_gets_everything() {
    let steps = enable_steps(
        &t("jobs"),
        &RelState::default(),
        &[],
        &col(),
        "i",
        Options {
            force: true,
            refresh_policies: false,
            guard_updates: true,
            partitioned: false,
        },
    );
    let sql: Vec<String> = steps
        .iter()
        .map(|s| render(s, &col(), PolicyStyle::InitPlan, &q))
        .collect();
    assert_eq!(
        sql,
        vec![
            r#"ALTER TABLE "public"."jobs" ENABLE ROW LEVEL SECURITY"#,
            r#"ALTER TABLE "public"."jobs" FORCE ROW LEVEL SECURITY"#,
            r#"CREATE POLICY "floe_tenant_isolation" ON "public"."jobs" AS PERMISSIVE FOR ALL TO PUBLIC USING ("tenant_id" = (SELECT floe.current_tenant())) WITH CHECK ("tenant_id" = (SELECT floe.current_tenant()))"#,
            r#"CREATE POLICY "floe_tenant_admin" ON "public"."jobs" AS PERMISSIVE FOR ALL TO "floe_tenant_admin" USING ((SELECT floe.tenant_admin_active())) WITH CHECK ((SELECT floe.tenant_admin_active()))"#,
            r#"CREATE TRIGGER "floe_tenant_guard_insert" BEFORE INSERT ON "public"."jobs" FOR EACH ROW EXECUTE FUNCTION floe.tenant_guard('tenant_id')"#,
            r#"CREATE TRIGGER "floe_tenant_guard_update" AFTER UPDATE OF "tenant_id" ON "public"."jobs" FOR EACH ROW WHEN (OLD."tenant_id" IS DISTINCT FROM NEW."tenant_id") EXECUTE FUNCTION floe.tenant_guard('tenant_id')"#,
            r#"CREATE INDEX "i" ON "public"."jobs" ("tenant_id")"#,
        ]
    );
}

#[test]
fn citus_style_has_no_sub_select_and_rewrites_the_other_style() {
    let mut state = complete(true);
    state.style_matches = false;
    let opts = Options {
        force: true,
        refresh_policies: false,
        guard_updates: true,
        partitioned: false,
    };
    let steps = enable_steps(&t("leads"), &state, &[], &col(), "i", opts);
    let sql: Vec<String> = steps
        .iter()
        .map(|s| render(s, &col(), PolicyStyle::Plain, &q))
        .collect();
    assert_eq!(
        sql,
        vec![
            r#"ALTER POLICY "floe_tenant_isolation" ON "public"."leads" USING ("tenant_id" = floe.current_tenant()) WITH CHECK ("tenant_id" = floe.current_tenant())"#,
            r#"ALTER POLICY "floe_tenant_admin" ON "public"."leads" USING (floe.tenant_admin_active()) WITH CHECK (floe.tenant_admin_active())"#,
        ]
    );
    let fresh = enable_steps(&t("leads"), &RelState::default(), &[], &col(), "i", opts);
    let fresh: Vec<String> = fresh
        .iter()
        .map(|s| render(s, &col(), PolicyStyle::Plain, &q))
        .collect();
    assert!(fresh.iter().all(|s| !s.contains("SELECT")), "{fresh:?}");
    assert!(enable_steps(&t("leads"), &complete(true), &[], &col(), "i", opts).is_empty());
}

#[test]
fn via_policy_uses_an_indexable_array() {
    let via = Tenancy::Via {
        fk_column: "company_id".into(),
        parent: t("companies"),
        parent_key: "id".into(),
        parent_tenant: "tenant_id".into(),
    };
    assert_eq!(
        via.policy_expr(PolicyStyle::InitPlan, &q),
        r#""company_id" = ANY (ARRAY(SELECT p."id" FROM "public"."companies" p WHERE p."tenant_id" = (SELECT floe.current_tenant())))"#
    );
    let steps = enable_steps(
        &t("stats"),
        &RelState::default(),
        &[],
        &via,
        "i",
        Options {
            force: true,
            refresh_policies: false,
            guard_updates: true,
            partitioned: false,
        },
    );
    assert!(
        !steps.iter().any(|s| matches!(s, Step::Guard { .. })),
        "no tenant column, no guard"
    );
    assert!(steps.contains(&Step::CreateIndex {
        table: t("stats"),
        index: "i".into()
    }));
}

fn complete(force: bool) -> RelState {
    RelState {
        rls_enabled: true,
        rls_forced: force,
        has_policy: true,
        policy_matches: true,
        has_admin_policy: true,
        has_guard_insert: true,
        has_guard_update: true,
        guard_update_by_column: true,
        has_tenant_index: true,
        style_matches: true,
    }
}

#[test]
fn second_run_does_nothing_unless_the_tenancy_changed() {
    let parts = vec![(t("jobs_2026_11"), complete(true))];
    assert!(enable_steps(
        &t("jobs"),
        &complete(true),
        &parts,
        &col(),
        "i",
        Options {
            force: true,
            refresh_policies: false,
            guard_updates: true,
            partitioned: false,
        }
    )
    .is_empty());
    let steps = enable_steps(
        &t("jobs"),
        &complete(true),
        &parts,
        &col(),
        "i",
        Options {
            force: true,
            refresh_policies: true,
            guard_updates: true,
            partitioned: false,
        },
    );
    assert_eq!(
        steps,
        vec![
            Step::Policy {
                table: t("jobs"),
                exists: true
            },
            Step::Policy {
                table: t("jobs_2026_11"),
                exists: true
            },
        ]
    );
}

#[test]
fn partitions_are_completed_whatever_they_lack() {
    let parts = vec![
        (t("jobs_2026_09"), complete(true)),
        (
            t("jobs_2026_10"),
            RelState {
                rls_enabled: false,
                policy_matches: false,
                ..complete(true)
            },
        ),
        (t("jobs_2026_11"), RelState::default()),
    ];
    let steps = new_partition_steps(&parts, true);
    assert!(!steps
        .iter()
        .any(|s| format!("{s:?}").contains("jobs_2026_09")));
    // re-attached with RLS off and a tampered policy: enabled again, policy rewritten
    assert!(steps.contains(&Step::EnableRls(t("jobs_2026_10"))));
    assert!(steps.contains(&Step::Policy {
        table: t("jobs_2026_10"),
        exists: true
    }));
    let new_one = steps
        .iter()
        .filter(|s| format!("{s:?}").contains("jobs_2026_11"))
        .count();
    assert_eq!(new_one, 4);
}

#[test]
fn update_guard_is_optional() {
    let steps = enable_steps(
        &t("jobs"),
        &complete(true),
        &[],
        &col(),
        "i",
        Options {
            force: true,
            refresh_policies: false,
            guard_updates: false,
            partitioned: false,
        },
    );
    assert_eq!(
        steps,
        vec![Step::DropGuard {
            table: t("jobs"),
            update: true
        }]
    );
    let fresh = enable_steps(
        &t("jobs"),
        &RelState::default(),
        &[],
        &col(),
        "i",
        Options {
            force: true,
            refresh_policies: false,
            guard_updates: false,
            partitioned: false,
        },
    );
    assert!(!fresh.contains(&Step::Guard {
        table: t("jobs"),
        update: true,
        before: false
    }));
    assert!(fresh.contains(&Step::Guard {
        table: t("jobs"),
        update: false,
        before: true
    }));
}

#[test]
fn partitions_get_rls_and_policies_but_not_triggers() {
    let parts = vec![(t("jobs_2026_11"), RelState::default())];
    let steps = enable_steps(
        &t("jobs"),
        &complete(true),
        &parts,
        &col(),
        "i",
        Options {
            force: true,
            refresh_policies: false,
            guard_updates: true,
            partitioned: false,
        },
    );
    assert!(steps.contains(&Step::EnableRls(t("jobs_2026_11"))));
    assert!(steps.contains(&Step::ForceRls(t("jobs_2026_11"))));
    assert!(steps.contains(&Step::AdminPolicy {
        table: t("jobs_2026_11"),
        exists: false
    }));
    assert!(!steps
        .iter()
        .any(|s| matches!(s, Step::Guard { table, .. } if table.name == "jobs_2026_11")));
}

#[test]
fn disable_restores_the_previous_state() {
    let reg = Registration {
        rls_was_enabled: true,
        rls_was_forced: false,
        created_index: Some(t("jobs_tenant_id_floe_idx")),
    };
    let steps = disable_steps(&t("jobs"), &complete(true), &[], &reg);
    assert!(steps.contains(&Step::NoForceRls(t("jobs"))));
    assert!(
        !steps.contains(&Step::DisableRls(t("jobs"))),
        "RLS was on before floe"
    );
    assert!(steps.contains(&Step::DropIndex(t("jobs_tenant_id_floe_idx"))));
    let none = disable_steps(
        &t("jobs"),
        &complete(true),
        &[],
        &Registration {
            rls_was_enabled: true,
            rls_was_forced: true,
            created_index: None,
        },
    );
    assert!(
        !none.iter().any(|s| matches!(s, Step::DropIndex(_))),
        "a user's index is kept"
    );
}

#[test]
fn trigger_argument_literals_are_safe() {
    assert_eq!(sql_literal("tenant_id"), "'tenant_id'");
    assert_eq!(sql_literal("it's"), "'it''s'");
    assert_eq!(
        sql_literal("x\\'); DROP TABLE t; --"),
        "E'x\\\\''); DROP TABLE t; --'"
    );
}

#[test]
fn partitioned_tables_get_a_before_update_guard() {
    let opts = Options {
        force: true,
        refresh_policies: false,
        guard_updates: true,
        partitioned: true,
    };
    let steps = enable_steps(&t("ev"), &RelState::default(), &[], &col(), "i", opts);
    let sql: Vec<String> = steps
        .iter()
        .map(|s| render(s, &col(), PolicyStyle::InitPlan, &q))
        .collect();
    assert!(sql.iter().any(|s| s.contains("BEFORE UPDATE")), "{sql:?}");
}

#[test]
fn index_names_fit() {
    assert_eq!(index_name("jobs", "tenant_id"), "jobs_tenant_id_floe_idx");
    let long = "x".repeat(80);
    assert!(index_name(&long, "tenant_id").len() <= 63);
    assert!(index_name("t", &long).len() <= 63);
    assert!(index_name(&"é".repeat(40), "tenant_id").len() <= 63);
}

proptest! {
    #[test]
    fn enable_then_state_is_fixed_point(
        rls in any::<bool>(), forced in any::<bool>(), pol in any::<bool>(), adm in any::<bool>(),
        gi in any::<bool>(), gu in any::<bool>(), idx in any::<bool>(), force in any::<bool>(),
        guard_updates in any::<bool>(), pm in any::<bool>(), sm in any::<bool>(), gc in any::<bool>(),
    ) {
        let state = RelState { rls_enabled: rls, rls_forced: forced, has_policy: pol, policy_matches: pm, has_admin_policy: adm,
            has_guard_insert: gi, has_guard_update: gu, guard_update_by_column: gc, has_tenant_index: idx, style_matches: sm };
        let steps = enable_steps(&t("x"), &state, &[], &col(), "i", Options { force, refresh_policies: false, guard_updates, partitioned: false });
        // Apply the steps to the state: the result must be complete.
        let mut s = state.clone();
        for step in &steps {
            match step {
                Step::EnableRls(_) => s.rls_enabled = true,
                Step::ForceRls(_) => s.rls_forced = true,
                Step::NoForceRls(_) => s.rls_forced = false,
                Step::Policy { .. } => { s.has_policy = true; s.policy_matches = true; s.style_matches = true; }
                Step::AdminPolicy { .. } => s.has_admin_policy = true,
                Step::Guard { update: false, .. } => s.has_guard_insert = true,
                Step::Guard { update: true, .. } => {
                    prop_assert!(!s.has_guard_update, "a guard is created only where none is left");
                    s.has_guard_update = true;
                    s.guard_update_by_column = true;
                }
                Step::DropGuard { update: true, .. } => {
                    s.has_guard_update = false;
                    s.guard_update_by_column = false;
                }
                Step::CreateIndex { .. } => s.has_tenant_index = true,
                other => prop_assert!(false, "enable produced {:?}", other),
            }
        }
        // a guard that stays is in the current form (without one, the flag is moot)
        let by_column = guard_updates || s.guard_update_by_column;
        prop_assert_eq!(s, RelState {
            has_guard_update: guard_updates,
            guard_update_by_column: by_column,
            ..complete(force)
        });
    }

    #[test]
    fn index_name_always_fits(table in "\\PC{0,70}", column in "\\PC{0,70}") {
        let n = index_name(&table, &column);
        prop_assert!(n.len() <= 63);
    }
}
