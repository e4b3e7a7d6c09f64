//! The scheduler's rows of `floe.health()`. Pure.

use crate::check::{Check, Status};

/// `scheduler.jobs`: jobs whose last run failed, and jobs overdue by more than a grace period.
pub fn jobs_check(
    total: usize,
    failing: &[String],
    overdue: &[String],
    scheduler_running: bool,
) -> Check {
    const NAME: &str = "scheduler.jobs";
    let list = |names: &[String]| {
        let mut shown: Vec<&str> = names.iter().take(5).map(String::as_str).collect();
        if names.len() > 5 {
            shown.push("...");
        }
        shown.join(", ")
    };
    let mut parts = Vec::new();
    if !failing.is_empty() {
        parts.push(format!("{} failing ({})", failing.len(), list(failing)));
    }
    if !overdue.is_empty() {
        parts.push(format!("{} overdue ({})", overdue.len(), list(overdue)));
    }
    if parts.is_empty() {
        return Check {
            name: NAME,
            status: Status::Ok,
            detail: format!("{total} job(s), none failing or overdue"),
            hint: None,
        };
    }
    let hint = if !overdue.is_empty() && !scheduler_running {
        "No scheduler runs jobs in this database: preload floe, or call floe.run_due_jobs() periodically. SELECT * FROM floe.job_runs ORDER BY runid DESC shows recent runs."
    } else {
        "SELECT name, last_status, last_error, next_run FROM floe.jobs shows each job; floe.job_runs has the history."
    };
    Check {
        name: NAME,
        status: Status::Warn,
        detail: format!("{total} job(s): {}", parts.join("; ")),
        hint: Some(hint.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states() {
        assert_eq!(jobs_check(3, &[], &[], true).status, Status::Ok);
        let names: Vec<String> = (0..7).map(|i| format!("j{i}")).collect();
        let c = jobs_check(9, &names, &[], true);
        assert_eq!(c.status, Status::Warn);
        assert!(
            c.detail.contains("7 failing (j0, j1, j2, j3, j4, ...)"),
            "{}",
            c.detail
        );
        let c = jobs_check(1, &[], &["late".to_string()], false);
        assert!(c.hint.unwrap().contains("run_due_jobs"));
    }
}
