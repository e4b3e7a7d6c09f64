//! What happens after a run: the next run time and attempt number. Pure.

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed,
    /// Cancelled by `max_runtime`.
    TimedOut,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timed out",
        }
    }
}

/// Longest wait between retries, whatever the backoff says.
pub const MAX_BACKOFF_US: i64 = 3_600_000_000;

/// Delay before retry `retry` (1 = first retry): `base * 2^(retry - 1)`, capped at an hour.
pub fn backoff(retry: u32, base_us: i64) -> i64 {
    let base = base_us.max(0);
    let factor = 1i64
        .checked_shl(retry.saturating_sub(1).min(40))
        .unwrap_or(i64::MAX);
    base.saturating_mul(factor).min(MAX_BACKOFF_US)
}

/// After a run that ended with `outcome` on attempt `attempt` (0 = the regular run, 1 = the
/// first retry...): when the job runs next and with which attempt number. A failure is retried
/// `retries` times with exponential backoff; after that (or after a success) the job returns
/// to its schedule (`next_regular`) with attempt 0.
pub fn after_run(
    outcome: Outcome,
    attempt: u32,
    retries: u32,
    now: i64,
    base_backoff_us: i64,
    next_regular: i64,
) -> (i64, u32) {
    match outcome {
        Outcome::Failed | Outcome::TimedOut if attempt < retries => {
            let retry = attempt + 1;
            let at = now.saturating_add(backoff(retry, base_backoff_us));
            // Never retry later than the next regular run would have happened anyway.
            (at.min(next_regular.max(now)), retry)
        }
        _ => (next_regular, 0),
    }
}

/// After a run that a crash, kill or restart interrupted (found `running` when a scheduler
/// starts): a run the schedule started (`was_due`: the job's `next_run` was not after the
/// run's start) counts as a failed attempt under the job's retry rules, so a job without
/// retries waits for its next regular time instead of running again at once, and one that
/// brings the server down cannot crash-loop. A manual run (`floe.run_job`) leaves the
/// schedule as it is (`None`).
pub fn after_interrupted(
    was_due: bool,
    attempt: u32,
    retries: u32,
    now: i64,
    base_backoff_us: i64,
    next_regular: i64,
) -> Option<(i64, u32)> {
    was_due.then(|| {
        after_run(
            Outcome::Failed,
            attempt,
            retries,
            now,
            base_backoff_us,
            next_regular,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1, 30_000_000), 30_000_000);
        assert_eq!(backoff(2, 30_000_000), 60_000_000);
        assert_eq!(backoff(3, 30_000_000), 120_000_000);
        assert_eq!(backoff(60, 30_000_000), MAX_BACKOFF_US);
        assert_eq!(backoff(1, -5), 0);
    }

    #[test]
    fn retries_then_back_to_schedule() {
        let (next, attempt) = after_run(Outcome::Failed, 0, 2, 1_000, 10, 1_000_000);
        assert_eq!((next, attempt), (1_010, 1));
        let (next, attempt) = after_run(Outcome::TimedOut, 1, 2, 2_000, 10, 1_000_000);
        assert_eq!((next, attempt), (2_020, 2));
        let (next, attempt) = after_run(Outcome::Failed, 2, 2, 3_000, 10, 1_000_000);
        assert_eq!((next, attempt), (1_000_000, 0), "retries exhausted");
        assert_eq!(
            after_run(Outcome::Succeeded, 1, 2, 3_000, 10, 9_000),
            (9_000, 0)
        );
        assert_eq!(
            after_run(Outcome::Failed, 0, 0, 3_000, 10, 9_000),
            (9_000, 0),
            "no retries"
        );
    }

    proptest! {
        #[test]
        fn next_run_is_never_in_the_past(
            attempt in 0u32..10, retries in 0u32..10, now in 0i64..1_000_000_000,
            base in 0i64..10_000_000_000, regular in 0i64..2_000_000_000, ok in any::<bool>(),
        ) {
            let outcome = if ok { Outcome::Succeeded } else { Outcome::Failed };
            let (next, next_attempt) = after_run(outcome, attempt, retries, now, base, regular.max(now));
            prop_assert!(next >= now);
            prop_assert!(next_attempt <= retries.max(attempt));
            if ok { prop_assert_eq!(next_attempt, 0); }
        }
    }

    #[test]
    fn an_interrupted_run_follows_the_retry_rules() {
        let now = 1_000_000_000_000;
        let hour = 3_600_000_000;
        // No retries: the next regular run, not now.
        assert_eq!(
            after_interrupted(true, 0, 0, now, 1_000_000, now + hour),
            Some((now + hour, 0))
        );
        // Retries left: after the backoff, as the next attempt.
        assert_eq!(
            after_interrupted(true, 0, 2, now, 1_000_000, now + hour),
            Some((now + 1_000_000, 1))
        );
        // The last retry interrupted too: back to the schedule.
        assert_eq!(
            after_interrupted(true, 2, 2, now, 1_000_000, now + hour),
            Some((now + hour, 0))
        );
        // A manual run leaves the schedule alone.
        assert_eq!(
            after_interrupted(false, 0, 2, now, 1_000_000, now + hour),
            None
        );
    }
}
