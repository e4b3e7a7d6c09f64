//! What `floe.matview_status` and `floe.health()` say about registered views. Pure.

use super::plan::{staleness, Micros, Policy, State};
use crate::check::{Check, Status};
use crate::queue::checks::human;

/// Slack on top of `min_interval` for an on-change view: a scheduler period and a refresh.
const SLACK: Micros = 60_000_000;

/// Consecutive failures from which a failing view is critical.
pub const CRITICAL_FAILURES: u32 = 3;

/// How far a view may lag before it is called stale: `max_staleness` when set; otherwise
/// twice `min_interval` plus a minute for on-change views, and twice `refresh_every` for
/// scheduled ones (None: nothing promises a bound).
pub fn lag_bound(policy: &Policy) -> Option<Micros> {
    if let Some(max) = policy.max_staleness {
        return Some(max);
    }
    if policy.on_change {
        return Some(policy.min_interval.saturating_mul(2).saturating_add(SLACK));
    }
    policy.refresh_every.map(|e| e.saturating_mul(2))
}

/// The alarm of one view, if any: failing refreshes, or a lag beyond its bound.
pub fn alarm(policy: &Policy, state: &State, now: Micros) -> Option<String> {
    if state.failures > 0 {
        return Some(format!("{} failed refresh(es) in a row", state.failures));
    }
    let lag = staleness(policy, state, now);
    match lag_bound(policy) {
        Some(bound) if lag > bound => {
            Some(format!("stale for {}, beyond {}", human(lag), human(bound)))
        }
        _ => None,
    }
}

/// Facts about one view, as the glue collects them.
#[derive(Debug, Clone)]
pub struct ViewFacts {
    pub name: String,
    pub policy: Policy,
    pub state: State,
    pub last_error: Option<String>,
}

/// `matview.stale` and `matview.failing`.
pub fn view_checks(views: &[ViewFacts], now: Micros) -> Vec<Check> {
    let mut stale = Vec::new();
    let mut failing = Vec::new();
    let mut critical = false;
    for v in views {
        if v.state.failures > 0 {
            critical |= v.state.failures >= CRITICAL_FAILURES;
            failing.push(format!(
                "{} ({} in a row: {})",
                v.name,
                v.state.failures,
                v.last_error.as_deref().unwrap_or("no message")
            ));
        } else if let Some(a) = alarm(&v.policy, &v.state, now) {
            stale.push(format!("{}: {a}", v.name));
        }
    }
    let n = views.len();
    let stale_check = if stale.is_empty() {
        Check::ok(
            "matview.stale",
            format!("{n} registered view(s); none lags beyond its bound"),
        )
    } else {
        Check::warn(
            "matview.stale",
            stale.join("; "),
            "Is the scheduler running (floe.health() scheduler.running)? floe.matview_status \
             shows each view's next refresh; floe.refresh(view) refreshes one now.",
        )
    };
    let failing_check = if failing.is_empty() {
        Check::ok(
            "matview.failing",
            format!("{n} registered view(s); no failing refresh"),
        )
    } else {
        Check {
            status: if critical {
                Status::Critical
            } else {
                Status::Warn
            },
            ..Check::warn(
                "matview.failing",
                failing.join("; "),
                "floe.matview_refreshes has each error; fix the view's query or data, then \
                 SELECT floe.refresh(view, force => true).",
            )
        }
    };
    vec![stale_check, failing_check]
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Micros = 60_000_000;

    fn on_change() -> Policy {
        Policy {
            refresh_every: None,
            on_change: true,
            min_interval: MIN,
            max_staleness: None,
        }
    }

    #[test]
    fn bounds_follow_the_policy() {
        assert_eq!(lag_bound(&on_change()), Some(3 * MIN));
        let p = Policy {
            max_staleness: Some(10 * MIN),
            ..on_change()
        };
        assert_eq!(lag_bound(&p), Some(10 * MIN));
        let p = Policy {
            on_change: false,
            refresh_every: Some(5 * MIN),
            ..on_change()
        };
        assert_eq!(lag_bound(&p), Some(10 * MIN));
        let p = Policy {
            on_change: false,
            ..on_change()
        };
        assert_eq!(lag_bound(&p), None);
    }

    #[test]
    fn alarms_for_lag_and_failures() {
        let p = on_change();
        let clean = State::default();
        assert_eq!(alarm(&p, &clean, 100 * MIN), None);
        let dirty = State {
            dirty_since: Some(0),
            ..State::default()
        };
        assert_eq!(alarm(&p, &dirty, 2 * MIN), None);
        assert!(alarm(&p, &dirty, 4 * MIN)
            .unwrap()
            .starts_with("stale for 4 min"));
        let failing = State {
            failures: 2,
            ..State::default()
        };
        assert!(alarm(&p, &failing, 0).unwrap().contains("2 failed"));
    }

    #[test]
    fn checks_name_the_views() {
        let views = vec![
            ViewFacts {
                name: "public.ok".into(),
                policy: on_change(),
                state: State::default(),
                last_error: None,
            },
            ViewFacts {
                name: "public.late".into(),
                policy: on_change(),
                state: State {
                    dirty_since: Some(0),
                    ..State::default()
                },
                last_error: None,
            },
            ViewFacts {
                name: "public.broken".into(),
                policy: on_change(),
                state: State {
                    failures: 3,
                    ..State::default()
                },
                last_error: Some("division by zero".into()),
            },
        ];
        let checks = view_checks(&views, 10 * MIN);
        assert_eq!(checks[0].status, Status::Warn);
        assert!(checks[0].detail.contains("public.late"));
        assert!(!checks[0].detail.contains("public.ok"));
        assert_eq!(checks[1].status, Status::Critical);
        assert!(checks[1].detail.contains("division by zero"));
        let quiet = view_checks(&views[..1], 10 * MIN);
        assert!(quiet.iter().all(|c| c.status == Status::Ok));
    }
}
