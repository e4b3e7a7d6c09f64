//! What happens to a job that failed, and why a job is not yours to finish. Pure: no pgrx.

/// Microseconds.
pub type Micros = i64;

/// The delay before the retry after failed attempt `attempt` (1 = the first attempt failed):
/// `base * 2^(attempt - 1)` capped at `max`, with "equal jitter": a uniform draw in the upper
/// half, `[d/2, d]`, so retries of jobs that failed together spread out but never come
/// sooner than half the backoff. `unit` is a uniform draw in `[0, 1)`.
pub fn backoff(attempt: i32, base: Micros, max: Micros, unit: f64) -> Micros {
    let base = base.max(0);
    let max = max.max(base);
    let shift = attempt.saturating_sub(1).clamp(0, 62) as u32;
    let full = base
        .checked_mul(1i64.checked_shl(shift).unwrap_or(i64::MAX))
        .unwrap_or(i64::MAX)
        .min(max);
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let half = full / 2;
    half + ((full - half) as f64 * unit) as i64
}

/// What a failed attempt leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Scheduled again after this delay.
    Retry(Micros),
    /// Out of attempts: a dead letter.
    Dead,
}

/// After attempt `attempt` of `max_attempts` failed.
pub fn after_failure(
    attempt: i32,
    max_attempts: i32,
    base: Micros,
    max: Micros,
    unit: f64,
) -> AfterFailure {
    if attempt >= max_attempts {
        AfterFailure::Dead
    } else {
        AfterFailure::Retry(backoff(attempt, base, max, unit))
    }
}

/// Where a job is, as seen by a worker that wants to finish (complete, fail, extend) it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// In the live table.
    Live {
        state: String,
        /// Whether its visibility ended (running jobs only).
        expired: bool,
        /// Whether the caller's lease matches the job's (None: the caller gave none).
        lease_matches: Option<bool>,
        attempts: i32,
    },
    /// In the archive: completed, dead or cancelled.
    Finished { state: String },
    /// Nowhere (or past the archive's retention).
    Missing,
}

/// Why a worker cannot finish a job, or `None` when it can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NoSuchJob,
    NotInFlight { state: String },
    Expired,
    Redelivered { attempts: i32 },
    AlreadyFinished { state: String },
}

/// Whether a worker holding (or claiming to hold) a job may finish it.
pub fn may_finish(found: &Found) -> Option<Refusal> {
    match found {
        Found::Missing => Some(Refusal::NoSuchJob),
        Found::Finished { state } => Some(Refusal::AlreadyFinished {
            state: state.clone(),
        }),
        Found::Live {
            state,
            expired,
            lease_matches,
            attempts,
        } => {
            if state != "running" {
                Some(Refusal::NotInFlight {
                    state: state.clone(),
                })
            } else if *lease_matches == Some(false) {
                Some(Refusal::Redelivered {
                    attempts: *attempts,
                })
            } else if *expired {
                Some(Refusal::Expired)
            } else {
                None
            }
        }
    }
}

impl Refusal {
    /// The message for job `id`, and a hint.
    pub fn explain(&self, id: i64) -> (String, &'static str) {
        match self {
            Refusal::NoSuchJob => (
                format!("job {id} does not exist"),
                "It may be past the archive's retention; floe.queued_jobs and floe.finished_jobs list the jobs of your queues.",
            ),
            Refusal::NotInFlight { state } => (
                format!("job {id} is not in flight: it is {state}"),
                "Only a job handed out by floe.dequeue() can be completed, failed or extended; floe.cancel() removes a pending job.",
            ),
            Refusal::Expired => (
                format!("job {id}'s visibility timeout has passed: it will be delivered again"),
                "Call floe.extend() before the timeout for long jobs, or create the queue with a longer visibility_timeout.",
            ),
            Refusal::Redelivered { attempts } => (
                format!("job {id} was delivered again (attempt {attempts}) after this worker's visibility timeout passed"),
                "Another worker holds it now; this worker's result must be discarded.",
            ),
            Refusal::AlreadyFinished { state } => (
                format!("job {id} is already {state}"),
                "A job is finished once; see floe.finished_jobs.",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: Micros = 1_000_000;

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        assert_eq!(backoff(1, 10 * S, 3600 * S, 0.0), 5 * S);
        assert_eq!(backoff(1, 10 * S, 3600 * S, 0.999_999_9), 10 * S - 1);
        assert_eq!(backoff(3, 10 * S, 3600 * S, 0.0), 20 * S);
        assert_eq!(backoff(40, 10 * S, 3600 * S, 0.0), 1800 * S);
        assert_eq!(backoff(i32::MAX, 10 * S, 3600 * S, 1.0), 3600 * S);
        assert_eq!(backoff(0, 10 * S, 3600 * S, 1.0), 10 * S);
        assert_eq!(backoff(-5, 10 * S, 3600 * S, f64::NAN), 5 * S);
        assert_eq!(backoff(3, 0, 0, 0.5), 0);
    }

    #[test]
    fn dead_after_max_attempts() {
        assert_eq!(after_failure(5, 5, S, S, 0.0), AfterFailure::Dead);
        assert_eq!(after_failure(6, 5, S, S, 0.0), AfterFailure::Dead);
        assert!(matches!(
            after_failure(4, 5, S, 60 * S, 0.0),
            AfterFailure::Retry(_)
        ));
    }

    #[test]
    fn refusals() {
        let live = |state: &str, expired, lease_matches| Found::Live {
            state: state.into(),
            expired,
            lease_matches,
            attempts: 2,
        };
        assert_eq!(may_finish(&live("running", false, None)), None);
        assert_eq!(may_finish(&live("running", false, Some(true))), None);
        assert_eq!(
            may_finish(&live("running", false, Some(false))),
            Some(Refusal::Redelivered { attempts: 2 })
        );
        assert_eq!(
            may_finish(&live("running", true, Some(true))),
            Some(Refusal::Expired)
        );
        assert_eq!(
            may_finish(&live("ready", false, None)),
            Some(Refusal::NotInFlight {
                state: "ready".into()
            })
        );
        assert_eq!(may_finish(&Found::Missing), Some(Refusal::NoSuchJob));
        let done = Found::Finished {
            state: "completed".into(),
        };
        let (msg, _) = may_finish(&done).unwrap().explain(7);
        assert_eq!(msg, "job 7 is already completed");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The delay is within [d/2, d] of the capped exponential d, never negative, and
        /// never shorter for a later attempt at the same draw.
        #[test]
        fn backoff_bounds(attempt in 1i32..80, base in 0i64..100_000_000_000,
                          extra in 0i64..100_000_000_000, unit in 0.0f64..1.0) {
            let max = base + extra;
            let d = backoff(attempt, base, max, unit);
            let full = (base as i128 * (1i128 << (attempt - 1).min(100))).min(max as i128) as i64;
            prop_assert!(d >= full / 2 && d <= full, "{d} not in [{}, {full}]", full / 2);
            prop_assert!(backoff(attempt + 1, base, max, unit) >= d);
        }
    }
}
