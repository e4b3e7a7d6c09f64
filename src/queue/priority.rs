//! Priority with aging, as an ordering that never needs an UPDATE. Pure: no pgrx, no SPI.
//!
//! A job of tier rank `r` (0 = critical … 4 = background) that became runnable at `run_at`
//! has, at time `now`, the effective priority
//!
//! ```text
//! urgency(now) = (4 - r) + (now - run_at) / step        (one tier per `step` waited, no cap)
//! ```
//!
//! Ordering by descending urgency is the same, at every `now`, as ordering by the
//! time-invariant key `run_at + r * step` ascending (multiply by `step`, negate, and the
//! `now` term is common to all jobs). Ties are broken by id in both. So the queue is a B-tree
//! on `(queue, sort_key, id)` and dequeue is `ORDER BY sort_key, id LIMIT n FOR UPDATE SKIP
//! LOCKED`. The max-wait guarantee follows: a job runnable from `t` is served before every
//! job whose key is larger, and every job that becomes runnable after `t + 4 * step` has a
//! larger key whatever its tier.
//!
//! Per-tenant fairness (an option per queue) extends the same idea with a virtual clock per
//! tenant: each job of a tenant starts where that tenant's previous job left off, so a tenant
//! that enqueues a flood pushes only its own jobs back, not the other tenants' at the same
//! tier.

use std::fmt;

/// Microseconds since the Unix epoch (or any fixed origin).
pub type Micros = i64;

/// The five tiers, most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    Critical,
    High,
    Normal,
    Low,
    Background,
}

impl Tier {
    pub const ALL: [Tier; 5] = [
        Tier::Critical,
        Tier::High,
        Tier::Normal,
        Tier::Low,
        Tier::Background,
    ];

    /// 0 for critical … 4 for background.
    pub fn rank(self) -> i64 {
        self as i64
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Critical => "critical",
            Tier::High => "high",
            Tier::Normal => "normal",
            Tier::Low => "low",
            Tier::Background => "background",
        }
    }

    /// Parses a tier name, ignoring case and surrounding blanks.
    pub fn parse(text: &str) -> Option<Tier> {
        let text = text.trim();
        Tier::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(text))
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The time-invariant dequeue key: `run_at + rank * step` (saturating).
pub fn sort_key(run_at: Micros, tier: Tier, step: Micros) -> Micros {
    run_at.saturating_add(tier.rank().saturating_mul(step))
}

/// The effective priority at `now`, as an exact fraction `(numerator, step)`:
/// `((4 - rank) * step + (now - run_at)) / step`. Larger is more urgent.
pub fn urgency_scaled(now: Micros, run_at: Micros, tier: Tier, step: Micros) -> i128 {
    (4 - tier.rank()) as i128 * step as i128 + (now as i128 - run_at as i128)
}

/// The latest time a job runnable from `run_at` can wait behind jobs that became runnable
/// later: every job runnable after `run_at + 4 * step` sorts after it, whatever its tier.
pub fn overtaking_horizon(run_at: Micros, step: Micros) -> Micros {
    run_at.saturating_add(4i64.saturating_mul(step))
}

/// Per-tenant virtual clocks for fair queues: a tenant's next job starts no earlier than
/// where its previous job's share ended.
#[derive(Debug, Clone, Default)]
pub struct FairClock {
    next_start: std::collections::HashMap<String, Micros>,
}

impl FairClock {
    /// The key of a new job of `tenant` runnable from `run_at`: its virtual start is
    /// `max(run_at, the tenant's clock)`, and the tenant's clock then moves on by `share`
    /// (the service time one job is worth). Returns the sort key.
    pub fn key(
        &mut self,
        tenant: &str,
        run_at: Micros,
        tier: Tier,
        step: Micros,
        share: Micros,
    ) -> Micros {
        let clock = self.next_start.entry(tenant.to_string()).or_insert(run_at);
        let start = run_at.max(*clock);
        *clock = start.saturating_add(share.max(1));
        sort_key(start, tier, step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BinaryHeap;

    const MIN: Micros = 60_000_000;

    #[test]
    fn tiers_round_trip() {
        for t in Tier::ALL {
            assert_eq!(Tier::parse(t.as_str()), Some(t));
            assert_eq!(
                Tier::parse(&format!(" {} ", t.as_str().to_uppercase())),
                Some(t)
            );
        }
        assert_eq!(Tier::parse("urgent"), None);
        assert_eq!(Tier::Critical.rank(), 0);
        assert_eq!(Tier::Background.rank(), 4);
    }

    #[test]
    fn one_tier_per_step_waited() {
        let step = 10 * MIN;
        // A normal job that waited 20 minutes ties a critical one that just arrived.
        assert_eq!(
            sort_key(0, Tier::Normal, step),
            sort_key(20 * MIN, Tier::Critical, step)
        );
        assert_eq!(
            urgency_scaled(20 * MIN, 0, Tier::Normal, step),
            urgency_scaled(20 * MIN, 20 * MIN, Tier::Critical, step)
        );
        assert_eq!(overtaking_horizon(0, step), 40 * MIN);
    }

    fn job_strategy() -> impl Strategy<Value = (i64, usize)> {
        (0i64..10_000_000_000, 0usize..5)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// For random jobs and any later `now`, ordering by the key equals ordering by
        /// effective priority (descending), ties by id.
        #[test]
        fn key_order_is_urgency_order(jobs in prop::collection::vec(job_strategy(), 1..60),
                                      step in 1i64..3_600_000_000,
                                      later in 0i64..10_000_000_000) {
            let now = 10_000_000_000 + later;
            // (run_at, id, tier)
            let mut by_key: Vec<(i64, usize, Tier)> = jobs.iter().enumerate()
                .map(|(id, &(run_at, t))| (run_at, id, Tier::ALL[t]))
                .collect();
            let mut by_urgency = by_key.clone();
            by_key.sort_by_key(|&(run_at, id, tier)| (sort_key(run_at, tier, step), id));
            by_urgency.sort_by(|a, b| {
                urgency_scaled(now, b.0, b.2, step)
                    .cmp(&urgency_scaled(now, a.0, a.2, step))
                    .then(a.1.cmp(&b.1))
            });
            let ids = |v: &[(i64, usize, Tier)]| v.iter().map(|j| j.1).collect::<Vec<_>>();
            prop_assert_eq!(ids(&by_key), ids(&by_urgency));
        }

        /// Fairness: at equal tier and time, a flood from one tenant does not delay another
        /// tenant's jobs by more than one job per flooding tenant.
        #[test]
        fn a_flood_does_not_starve_other_tenants(flood in 10usize..500, others in 1usize..10) {
            let step = 10 * MIN;
            let share = 1_000_000;
            let mut clock = FairClock::default();
            let mut keys: Vec<(Micros, usize, &str)> = Vec::new();
            let mut id = 0;
            for _ in 0..flood {
                keys.push((clock.key("a", 0, Tier::Normal, step, share), id, "a"));
                id += 1;
            }
            for _ in 0..others {
                keys.push((clock.key("b", 0, Tier::Normal, step, share), id, "b"));
                id += 1;
            }
            keys.sort();
            // The k-th job of b is served no later than position 2k+1.
            let mut seen_b = 0;
            for (pos, k) in keys.iter().enumerate() {
                if k.2 == "b" {
                    prop_assert!(pos <= 2 * seen_b + 1, "b's job {} at {}", seen_b, pos);
                    seen_b += 1;
                }
            }
        }
    }

    /// Discrete simulation: one worker serves one job per tick; critical jobs arrive at
    /// exactly the service rate (equal load, so the backlog never drains); one background job
    /// arrives at t0 behind a backlog. Its turn at equal load is after that backlog; it must
    /// be served within 4 * step beyond its turn, although critical jobs never stop coming.
    #[test]
    fn background_jobs_are_served_under_a_critical_flood() {
        let tick: Micros = 1_000_000; // one job served per second
        let step = 10 * MIN;
        let horizon_ticks = (6 * step / tick) as i64;
        // (reversed key, id, is_background, arrival)
        let mut heap: BinaryHeap<std::cmp::Reverse<(Micros, u64, bool, Micros)>> =
            BinaryHeap::new();
        let mut id = 0u64;
        // A backlog of criticals already waiting when the background job arrives.
        let backlog: i64 = 100;
        for _ in 0..backlog {
            heap.push(std::cmp::Reverse((
                sort_key(0, Tier::Critical, step),
                id,
                false,
                0,
            )));
            id += 1;
        }
        let t0 = 0;
        heap.push(std::cmp::Reverse((
            sort_key(t0, Tier::Background, step),
            id,
            true,
            t0,
        )));
        id += 1;
        let mut served_at = None;
        for n in 1..=horizon_ticks {
            let now = n * tick;
            // One new critical job per tick: the flood matches the service rate.
            heap.push(std::cmp::Reverse((
                sort_key(now, Tier::Critical, step),
                id,
                false,
                now,
            )));
            id += 1;
            let std::cmp::Reverse((_, _, is_bg, arrival)) = heap.pop().expect("queue never empty");
            if is_bg {
                served_at = Some(now - arrival);
                break;
            }
        }
        let waited = served_at.expect("the background job was never served");
        let turn = (backlog + 1) * tick;
        assert!(
            waited <= turn + 4 * step,
            "background job waited {waited} us, bound {} us",
            turn + 4 * step
        );
        // And the tiers still mean something: criticals that arrived before its horizon
        // went first.
        assert!(waited >= 4 * step);
    }
}
