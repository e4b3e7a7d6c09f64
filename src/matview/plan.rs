//! When a registered materialized view wants a refresh, and in which order views that read
//! each other refresh. Pure: no pgrx, no SPI.
//!
//! A view is refreshed when
//! - it changed (`on_change`: a write to one of its base tables marked it dirty) and
//!   `min_interval` has passed since its last refresh started (writes in a burst make one
//!   refresh, not one each);
//! - it has lagged its data for `max_staleness` (this overrides `min_interval`);
//! - `refresh_every` has passed since its last refresh started, unless change tracking says
//!   nothing changed (a clean view is never refreshed for nothing);
//! - and never while a refresh of it runs; after failures, not before a backoff.
//!
//! Views tracked by change (`on_change`) know whether they are dirty; the others
//! (`on_change => false`: base data that triggers cannot see, such as `now()` or foreign
//! tables) are treated as possibly stale since their last successful refresh.

use std::collections::{BTreeMap, BTreeSet};

/// Microseconds.
pub type Micros = i64;

/// Shortest pause before retrying a failed refresh (the refresher's default period): a
/// view with `min_interval => '0'` that fails is not retried on every tick.
pub const MIN_BACKOFF: Micros = 10_000_000;

/// Longest pause between retries of a failing view.
pub const MAX_BACKOFF: Micros = 3_600_000_000;

/// A registered view's refresh settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub refresh_every: Option<Micros>,
    pub on_change: bool,
    pub min_interval: Micros,
    pub max_staleness: Option<Micros>,
}

/// What the refresher knows of a view.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct State {
    /// The first write not yet reflected (on-change views; None: clean).
    pub dirty_since: Option<Micros>,
    /// When the last refresh (of any result) started.
    pub last_start: Option<Micros>,
    /// When the last successful refresh started: the view holds the data of that moment.
    pub last_success: Option<Micros>,
    /// Failed refreshes since the last success.
    pub failures: u32,
    /// A refresh of it is running now.
    pub running: bool,
}

/// Why a view is refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    /// Its data changed and `min_interval` has passed.
    Changed,
    /// It has lagged its data for `max_staleness`.
    Stale,
    /// `refresh_every` came round.
    Scheduled,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Changed => "changed",
            Reason::Stale => "stale",
            Reason::Scheduled => "scheduled",
        }
    }
}

/// The wait before retry number `failures` (1 = after the first failure):
/// `min_interval * 2^(failures - 1)` (at least [`MIN_BACKOFF`]), at most an hour.
pub fn backoff(failures: u32, min_interval: Micros) -> Micros {
    if failures == 0 {
        return 0;
    }
    let base = min_interval.max(MIN_BACKOFF);
    let factor = 1i64
        .checked_shl(failures.saturating_sub(1).min(40))
        .unwrap_or(i64::MAX);
    base.saturating_mul(factor).min(MAX_BACKOFF)
}

/// Since when the view may lag its data (None: it is known to be current).
pub fn stale_since(policy: &Policy, state: &State) -> Option<Micros> {
    if policy.on_change {
        state.dirty_since
    } else {
        // Unknown: possibly stale from its last successful refresh on (or forever).
        Some(state.last_success.unwrap_or(Micros::MIN))
    }
}

/// How far the view lags its data at `now` (0 when current).
pub fn staleness(policy: &Policy, state: &State, now: Micros) -> Micros {
    match stale_since(policy, state) {
        Some(since) => now.saturating_sub(since).max(0),
        None => 0,
    }
}

/// The earliest time the view wants a refresh, with the reason; None when it never will
/// until something changes. Ignores `running` (see [`decide`]).
pub fn next_due(policy: &Policy, state: &State) -> Option<(Micros, Reason)> {
    let mut due: Option<(Micros, Reason)> = None;
    let mut consider = |at: Micros, why: Reason| {
        if due.is_none_or(|(t, r)| (at, why) < (t, r)) {
            due = Some((at, why));
        }
    };
    let since_start = |interval: Micros| {
        state
            .last_start
            .map_or(Micros::MIN, |s| s.saturating_add(interval))
    };
    if policy.on_change {
        if let Some(dirty) = state.dirty_since {
            consider(dirty.max(since_start(policy.min_interval)), Reason::Changed);
        }
    }
    if let (Some(max), Some(since)) = (policy.max_staleness, stale_since(policy, state)) {
        consider(since.saturating_add(max), Reason::Stale);
    }
    if let Some(every) = policy.refresh_every {
        let clean = policy.on_change && state.dirty_since.is_none() && state.last_success.is_some();
        if !clean {
            consider(since_start(every), Reason::Scheduled);
        }
    }
    // After failures, nothing before the backoff.
    if state.failures > 0 {
        if let (Some((at, why)), Some(start)) = (due, state.last_start) {
            due = Some((
                at.max(start.saturating_add(backoff(state.failures, policy.min_interval))),
                why,
            ));
        }
    }
    due
}

/// Whether to refresh the view at `now`, and why.
pub fn decide(policy: &Policy, state: &State, now: Micros) -> Option<Reason> {
    if state.running {
        return None;
    }
    next_due(policy, state).and_then(|(at, why)| (at <= now).then_some(why))
}

/// A dependency cycle among registered views (Postgres forbids one; a broken registry could
/// still name one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle(pub Vec<u32>);

/// The views in an order where every view comes after the views it reads. `reads` holds
/// `(view, read_view)` pairs among `views`; ties are broken by id, so the order is stable.
pub fn refresh_order(views: &[u32], reads: &[(u32, u32)]) -> Result<Vec<u32>, Cycle> {
    let known: BTreeSet<u32> = views.iter().copied().collect();
    let mut waiting_on: BTreeMap<u32, usize> = known.iter().map(|&v| (v, 0)).collect();
    let mut readers: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for &(view, read) in reads {
        if view == read || !known.contains(&view) || !known.contains(&read) {
            continue;
        }
        *waiting_on.entry(view).or_default() += 1;
        readers.entry(read).or_default().push(view);
    }
    let mut ready: BTreeSet<u32> = waiting_on
        .iter()
        .filter(|(_, &n)| n == 0)
        .map(|(&v, _)| v)
        .collect();
    let mut order = Vec::with_capacity(known.len());
    while let Some(v) = ready.pop_first() {
        order.push(v);
        for &r in readers.get(&v).map(Vec::as_slice).unwrap_or(&[]) {
            if let Some(n) = waiting_on.get_mut(&r) {
                *n -= 1;
                if *n == 0 {
                    ready.insert(r);
                }
            }
        }
    }
    if order.len() < known.len() {
        let stuck = waiting_on
            .into_iter()
            .filter(|&(v, n)| n > 0 && !order.contains(&v))
            .map(|(v, _)| v)
            .collect();
        return Err(Cycle(stuck));
    }
    Ok(order)
}

/// The registered views that read `view`, directly or through others (they become dirty
/// when it is refreshed: a REFRESH fires no trigger).
pub fn readers_of(view: u32, reads: &[(u32, u32)]) -> BTreeSet<u32> {
    let mut found = BTreeSet::new();
    let mut todo = vec![view];
    while let Some(v) = todo.pop() {
        for &(reader, read) in reads {
            if read == v && reader != view && found.insert(reader) {
                todo.push(reader);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: Micros = 1_000_000;
    const MIN: Micros = 60 * S;

    fn on_change(min_interval: Micros) -> Policy {
        Policy {
            refresh_every: None,
            on_change: true,
            min_interval,
            max_staleness: None,
        }
    }

    #[test]
    fn clean_views_are_left_alone() {
        let p = Policy {
            refresh_every: Some(10 * MIN),
            ..on_change(MIN)
        };
        let s = State {
            last_start: Some(0),
            last_success: Some(0),
            ..Default::default()
        };
        assert_eq!(next_due(&p, &s), None);
        assert_eq!(decide(&p, &s, 100 * MIN), None);
        assert_eq!(staleness(&p, &s, 100 * MIN), 0);
    }

    #[test]
    fn writes_are_debounced_by_min_interval() {
        let p = on_change(MIN);
        let s = State {
            dirty_since: Some(10 * S),
            last_start: Some(0),
            last_success: Some(0),
            ..Default::default()
        };
        assert_eq!(decide(&p, &s, 30 * S), None);
        assert_eq!(decide(&p, &s, MIN), Some(Reason::Changed));
        assert_eq!(staleness(&p, &s, MIN), 50 * S);
        // Dirty long after the last refresh: at once.
        let s = State {
            dirty_since: Some(10 * MIN),
            ..s
        };
        assert_eq!(decide(&p, &s, 10 * MIN), Some(Reason::Changed));
    }

    #[test]
    fn staleness_bound_overrides_the_debounce() {
        let p = Policy {
            max_staleness: Some(30 * S),
            ..on_change(10 * MIN)
        };
        let s = State {
            dirty_since: Some(5 * MIN),
            last_start: Some(0),
            last_success: Some(0),
            ..Default::default()
        };
        assert_eq!(decide(&p, &s, 5 * MIN + 29 * S), None);
        assert_eq!(decide(&p, &s, 5 * MIN + 30 * S), Some(Reason::Stale));
    }

    #[test]
    fn untracked_views_follow_their_schedule() {
        let p = Policy {
            refresh_every: Some(15 * MIN),
            on_change: false,
            min_interval: MIN,
            max_staleness: None,
        };
        let never = State::default();
        assert_eq!(decide(&p, &never, 0), Some(Reason::Scheduled));
        let s = State {
            last_start: Some(0),
            last_success: Some(0),
            ..Default::default()
        };
        assert_eq!(decide(&p, &s, 14 * MIN), None);
        assert_eq!(decide(&p, &s, 15 * MIN), Some(Reason::Scheduled));
        assert_eq!(staleness(&p, &s, 15 * MIN), 15 * MIN);
    }

    #[test]
    fn failures_back_off_and_running_views_wait() {
        let p = on_change(MIN);
        let s = State {
            dirty_since: Some(0),
            last_start: Some(10 * MIN),
            last_success: Some(0),
            failures: 3,
            running: false,
        };
        // 1 min * 2^2 after the failed start.
        assert_eq!(backoff(3, MIN), 4 * MIN);
        assert_eq!(decide(&p, &s, 13 * MIN), None);
        assert_eq!(decide(&p, &s, 14 * MIN), Some(Reason::Changed));
        assert_eq!(backoff(40, MIN), MAX_BACKOFF);
        assert_eq!(backoff(1, 0), 10 * S);
        let running = State { running: true, ..s };
        assert_eq!(decide(&p, &running, 100 * MIN), None);
    }

    #[test]
    fn order_and_cycles() {
        // 3 reads 2, 2 reads 1; 4 reads 1.
        let reads = [(3, 2), (2, 1), (4, 1)];
        assert_eq!(refresh_order(&[4, 3, 2, 1], &reads), Ok(vec![1, 2, 3, 4]));
        assert_eq!(
            readers_of(1, &reads),
            [2, 3, 4].into_iter().collect::<BTreeSet<_>>()
        );
        assert!(readers_of(3, &reads).is_empty());
        assert_eq!(
            refresh_order(&[1, 2, 3], &[(1, 2), (2, 1), (3, 1)]),
            Err(Cycle(vec![1, 2, 3]))
        );
        // Edges to unregistered views are ignored.
        assert_eq!(refresh_order(&[5], &[(5, 99)]), Ok(vec![5]));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// For random DAGs (edges only from higher to lower ids), every view comes after
        /// the views it reads.
        #[test]
        fn order_respects_every_edge(n in 1u32..30, raw in prop::collection::vec((0u32..30, 0u32..30), 0..80)) {
            let views: Vec<u32> = (0..n).collect();
            let reads: Vec<(u32, u32)> = raw.into_iter()
                .filter(|&(a, b)| a < n && b < n && a > b)
                .collect();
            let order = refresh_order(&views, &reads).unwrap();
            prop_assert_eq!(order.len(), n as usize);
            let pos = |v: u32| order.iter().position(|&x| x == v).unwrap();
            for &(view, read) in &reads {
                prop_assert!(pos(read) < pos(view));
            }
        }

        /// Simulation: writes at random times, a refresher tick every `tick`. Every write is
        /// reflected within min_interval + tick; no two refreshes start closer than
        /// min_interval (without a staleness bound); without writes, nothing is refreshed.
        #[test]
        fn bursty_writes(writes in prop::collection::vec(0i64..7_200, 0..60),
                         min_s in 1i64..600, tick_s in 1i64..30) {
            let p = on_change(min_s * S);
            let tick = tick_s * S;
            let mut writes: Vec<Micros> = writes.into_iter().map(|w| w * S).collect();
            writes.sort_unstable();
            let mut s = State { last_start: Some(-10 * MIN * 60), last_success: Some(-10 * MIN * 60), ..Default::default() };
            let mut refreshes: Vec<Micros> = Vec::new();
            let mut next_write = 0;
            let mut now = 0;
            while now <= 3 * 3600 * S {
                while next_write < writes.len() && writes[next_write] <= now {
                    s.dirty_since.get_or_insert(writes[next_write]);
                    next_write += 1;
                }
                if decide(&p, &s, now).is_some() {
                    // The refresh takes the data of `now`, instantly.
                    refreshes.push(now);
                    s = State { dirty_since: None, last_start: Some(now), last_success: Some(now), ..s };
                }
                now += tick;
            }
            for w in &writes {
                let seen = refreshes.iter().find(|&&r| r >= *w);
                prop_assert!(seen.is_some(), "write at {} never refreshed", w);
                prop_assert!(seen.unwrap() - w <= min_s * S + tick, "write at {} waited {}", w, seen.unwrap() - w);
            }
            for pair in refreshes.windows(2) {
                prop_assert!(pair[1] - pair[0] >= min_s * S);
            }
            if writes.is_empty() {
                prop_assert!(refreshes.is_empty());
            }
        }
    }
}
