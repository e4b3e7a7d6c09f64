//! Tests of `plan.rs` (pure, proptest included): `use super::*` reaches its items.

use super::*;
use proptest::prelude::*;

fn at(s: &str) -> i64 {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .unwrap()
        .and_utc()
        .timestamp_micros()
}

#[test]
fn intervals() {
    assert_eq!(Step::from_interval(1, 0, 0), Ok(Step::Months(1)));
    assert_eq!(Step::from_interval(0, 7, 0), Ok(Step::Days(7)));
    assert_eq!(
        Step::from_interval(0, 0, 6 * MICROS_PER_HOUR),
        Ok(Step::Hours(6))
    );
    assert_eq!(
        Step::from_interval(0, 0, 48 * MICROS_PER_HOUR),
        Ok(Step::Days(2))
    );
    assert!(Step::from_interval(1, 1, 0).is_err());
    assert!(Step::from_interval(0, 0, 5 * MICROS_PER_HOUR).is_err());
    assert!(Step::from_interval(0, 0, 90_000_000).is_err());
    assert!(Step::from_interval(-1, 0, 0).is_err());
    assert!(Step::from_interval(0, 0, 0).is_err());
    assert!(Step::Hours(1).check_control(ControlType::Date).is_err());
    assert!(Step::Days(1).check_control(ControlType::Date).is_ok());
}

#[test]
fn names_per_interval() {
    let t = at("2026-11-22 13:45:00");
    let name = |s: Step| child_name("events", &s.suffix(s.floor(t).unwrap()).unwrap());
    assert_eq!(name(Step::Months(1)), "events_2026_11");
    assert_eq!(name(Step::Months(3)), "events_2026_q4");
    assert_eq!(name(Step::Months(12)), "events_2026");
    assert_eq!(name(Step::Days(7)), "events_2026_w47");
    assert_eq!(name(Step::Days(1)), "events_2026_11_22");
    assert_eq!(name(Step::Hours(1)), "events_2026_11_22_13");
    assert_eq!(name(Step::Hours(6)), "events_2026_11_22_12");
    assert_eq!(name(Step::Months(6)), "events_2026_07");
    // ISO week years differ from calendar years around New Year.
    let s = Step::Days(7);
    let lo = s.floor(at("2027-01-01 00:00:00")).unwrap();
    assert_eq!(s.suffix(lo).unwrap(), "2026_w53");
    assert_eq!(lo, at("2026-12-28 00:00:00"));
}

/// The calendar layer's edges, to the microsecond: the last instant before the edge and
/// the first after it belong to adjacent periods, in UTC.
#[test]
fn calendar_edges() {
    let us = 1i64;
    for (edge, step, before, after) in [
        (
            "2028-01-01 00:00:00",
            Step::Months(1),
            "events_2027_12",
            "events_2028_01",
        ),
        (
            "2028-01-01 00:00:00",
            Step::Months(12),
            "events_2027",
            "events_2028",
        ),
        (
            "2028-01-01 00:00:00",
            Step::Months(3),
            "events_2027_q4",
            "events_2028_q1",
        ),
        (
            "2028-02-29 00:00:00",
            Step::Days(1),
            "events_2028_02_28",
            "events_2028_02_29",
        ),
        (
            "2028-03-01 00:00:00",
            Step::Days(1),
            "events_2028_02_29",
            "events_2028_03_01",
        ),
        (
            "2027-03-01 00:00:00",
            Step::Days(1),
            "events_2027_02_28",
            "events_2027_03_01",
        ),
        (
            "2027-03-01 00:00:00",
            Step::Months(1),
            "events_2027_02",
            "events_2027_03",
        ),
        (
            "2027-03-28 01:00:00",
            Step::Hours(1),
            "events_2027_03_28_00",
            "events_2027_03_28_01",
        ),
        (
            "2027-10-31 01:00:00",
            Step::Hours(1),
            "events_2027_10_31_00",
            "events_2027_10_31_01",
        ),
    ] {
        let t = at(edge);
        let name = |x: i64| child_name("events", &step.suffix(step.floor(x).unwrap()).unwrap());
        assert_eq!(name(t - us), before, "{edge} {step:?}");
        assert_eq!(name(t), after, "{edge} {step:?}");
        assert_eq!(
            step.floor(t),
            Ok(t),
            "{edge} {step:?}: the edge starts a period"
        );
        assert_eq!(
            step.next(step.floor(t - us).unwrap()),
            Ok(t),
            "{edge} {step:?}"
        );
    }
    // A leap February has 29 days, another 28.
    let m = Step::Months(1);
    assert_eq!(
        m.next(at("2028-02-01 00:00:00")),
        Ok(at("2028-03-01 00:00:00"))
    );
    assert_eq!(
        (at("2028-03-01 00:00:00") - at("2028-02-01 00:00:00")) / (24 * MICROS_PER_HOUR),
        29
    );
    assert_eq!(
        m.next(at("2027-02-01 00:00:00")),
        Ok(at("2027-03-01 00:00:00"))
    );
}

#[test]
fn long_names_keep_their_suffix() {
    let base = "é".repeat(40);
    let n = child_name(&base, "2026_11");
    assert!(n.len() <= MAX_IDENT);
    assert!(n.ends_with("_2026_11"));
}

#[test]
fn bounds_render_per_type() {
    let t = at("2026-11-01 00:00:00");
    assert_eq!(
        bound_text(t, ControlType::TimestampTz).unwrap(),
        "2026-11-01 00:00:00+00"
    );
    assert_eq!(
        bound_text(t, ControlType::Timestamp).unwrap(),
        "2026-11-01 00:00:00"
    );
    assert_eq!(bound_text(t, ControlType::Date).unwrap(), "2026-11-01");
    for c in [
        ControlType::TimestampTz,
        ControlType::Timestamp,
        ControlType::Date,
    ] {
        assert_eq!(ControlType::parse(c.sql_name()), Some(c));
    }
}

#[test]
fn value_suffixes_are_distinct() {
    let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        value_suffixes(&v(&["send", "Process-Bounce"])).unwrap(),
        vec!["send", "process_bounce"]
    );
    assert!(value_suffixes(&v(&["a b", "a-b"])).is_err());
    assert!(value_suffixes(&v(&["default"])).is_err());
    assert_eq!(value_suffix(""), "empty");
}

fn monthly(children: &[Child], start: &str, retain: Option<&str>) -> SetState<'static> {
    SetState {
        base: "events",
        step: Step::Months(1),
        premake: 2,
        start: at(start),
        retain_after: retain.map(at),
        children: Box::leak(children.to_vec().into_boxed_slice()),
    }
}

fn child(name: &str, lo: &str, hi: &str) -> Child {
    Child {
        name: name.into(),
        lo: Some(at(lo)),
        hi: Some(at(hi)),
        is_default: false,
    }
}

#[test]
fn premake_after_time_passes() {
    let s = monthly(&[], "2026-11-01 00:00:00", None);
    let p = plan(&s, at("2026-11-22 00:00:00")).unwrap();
    let names: Vec<_> = p.create.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["events_2026_11", "events_2026_12", "events_2027_01"]
    );
    // A month later one more is due; the existing ones are kept.
    let have: Vec<Child> = p
        .create
        .iter()
        .map(|r| Child {
            name: r.name.clone(),
            lo: Some(r.lo),
            hi: Some(r.hi),
            is_default: false,
        })
        .collect();
    let s = monthly(&have, "2026-11-01 00:00:00", None);
    let p = plan(&s, at("2026-12-05 00:00:00")).unwrap();
    let names: Vec<_> = p.create.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["events_2027_02"]);
    assert!(p.retire.is_empty());
}

#[test]
fn retention_and_overlap() {
    let have = [
        child(
            "events_2026_09",
            "2026-09-01 00:00:00",
            "2026-10-01 00:00:00",
        ),
        child(
            "events_2026_10",
            "2026-10-01 00:00:00",
            "2026-11-01 00:00:00",
        ),
        child(
            "events_2026_11",
            "2026-11-01 00:00:00",
            "2026-12-01 00:00:00",
        ),
        Child {
            name: "events_default".into(),
            lo: None,
            hi: None,
            is_default: true,
        },
    ];
    let s = monthly(&have, "2026-09-01 00:00:00", Some("2026-10-15 00:00:00"));
    let p = plan(&s, at("2026-11-22 00:00:00")).unwrap();
    assert_eq!(p.retire, ["events_2026_09"]);
    assert_eq!(p.create.len(), 2);
    assert!(p.complete);

    // A hand-made child with other bounds is never retired.
    let mut with_archive = have.to_vec();
    with_archive.push(Child {
        name: "events_before_2026".into(),
        lo: None,
        hi: Some(at("2026-09-01 00:00:00")),
        is_default: false,
    });
    with_archive.push(child(
        "events_two_months",
        "2026-07-01 00:00:00",
        "2026-09-01 00:00:00",
    ));
    let s = monthly(
        &with_archive,
        "2026-09-01 00:00:00",
        Some("2026-10-15 00:00:00"),
    );
    assert_eq!(
        plan(&s, at("2026-11-22 00:00:00")).unwrap().retire,
        ["events_2026_09"]
    );

    let odd = [child("mine", "2026-11-15 00:00:00", "2026-12-15 00:00:00")];
    let s = monthly(&odd, "2026-11-01 00:00:00", None);
    assert_eq!(
        plan(&s, at("2026-11-22 00:00:00")),
        Err(PlanError::Overlap {
            wanted: "events_2026_11".into(),
            existing: "mine".into()
        })
    );
}

#[test]
fn reach_counts_children_ahead_and_the_current_one() {
    let kids = [
        child(
            "events_2026_10",
            "2026-10-01 00:00:00",
            "2026-11-01 00:00:00",
        ),
        child(
            "events_2026_11",
            "2026-11-01 00:00:00",
            "2026-12-01 00:00:00",
        ),
        child(
            "events_2026_12",
            "2026-12-01 00:00:00",
            "2027-01-01 00:00:00",
        ),
        child(
            "events_2027_01",
            "2027-01-01 00:00:00",
            "2027-02-01 00:00:00",
        ),
        Child {
            name: "events_default".into(),
            lo: None,
            hi: None,
            is_default: true,
        },
    ];
    assert_eq!(reach(&kids, at("2026-11-22 00:00:00")), (2, true));
    assert_eq!(reach(&kids, at("2027-03-01 00:00:00")), (0, false));
    assert_eq!(reach(&[], at("2026-11-22 00:00:00")), (0, false));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Children tile time: each is aligned, next(floor(t)) > t >= floor(t), and
    /// prev(next(lo)) == lo.
    #[test]
    fn steps_tile_time(t in -2_000_000_000_000_000i64..4_000_000_000_000_000i64,
                       kind in 0usize..9) {
        let step = [Step::Hours(1), Step::Hours(6), Step::Days(1), Step::Days(7),
                    Step::Days(10), Step::Months(1), Step::Months(3), Step::Months(12),
                    Step::Months(5)][kind];
        let lo = step.floor(t).unwrap();
        let hi = step.next(lo).unwrap();
        prop_assert!(lo <= t && t < hi);
        prop_assert_eq!(step.floor(lo).unwrap(), lo);
        prop_assert_eq!(step.prev(hi).unwrap(), lo);
        prop_assert_eq!(step.floor(hi).unwrap(), hi);
        // Distinct children have distinct names.
        prop_assert_ne!(step.suffix(lo).unwrap(), step.suffix(hi).unwrap());
    }

    /// Planned children are contiguous, start no later than the current one, reach
    /// `premake` steps past it, and never overlap what exists.
    #[test]
    fn plans_are_contiguous(now in 0i64..3_000_000_000_000_000i64, premake in 0u32..12,
                            back in 0u32..6) {
        let step = Step::Months(1);
        let mut start = step.floor(now).unwrap();
        for _ in 0..back { start = step.prev(start).unwrap(); }
        let s = SetState { base: "t", step, premake, start, retain_after: None, children: &[] };
        let p = plan(&s, now).unwrap();
        prop_assert_eq!(p.create.len() as u32, back + premake + 1);
        for w in p.create.windows(2) { prop_assert_eq!(w[0].hi, w[1].lo); }
        prop_assert!(p.create[0].lo <= now);
        let have: Vec<Child> = p.create.iter().map(|r| Child {
            name: r.name.clone(), lo: Some(r.lo), hi: Some(r.hi), is_default: false }).collect();
        let s2 = SetState { children: &have, ..s };
        prop_assert!(plan(&s2, now).unwrap().create.is_empty());
    }
}
