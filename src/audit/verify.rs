//! What `floe.verify_audit` concludes from a table's seals and the entries it finds. Pure.
//!
//! A seal lists the ids and digests of the entries of one table whose transaction ids fall in
//! `[lo, hi)`; the sealer only seals below the oldest running transaction, so no entry can
//! legitimately appear in a sealed range later. Comparing a seal with the entries found in
//! its range names every entry that was altered, inserted or removed since.

use super::record::{seal_hash, Digest, Seal, SealHash};
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Problem {
    /// Sealed, and still there, but its columns changed.
    Altered,
    /// In a sealed range (or below the newest seal), but no seal lists it.
    Inserted,
    /// Listed by a seal, gone from the log.
    Removed,
}

impl Problem {
    pub fn as_str(self) -> &'static str {
        match self {
            Problem::Altered => "altered",
            Problem::Inserted => "inserted",
            Problem::Removed => "removed",
        }
    }
}

/// Compares the entries a seal lists with the entries found in its range (digests computed
/// now). Findings are ordered by entry id.
pub fn compare(sealed: &[(i64, Digest)], found: &[(i64, Digest)]) -> Vec<(i64, Problem)> {
    let now: HashMap<i64, &Digest> = found.iter().map(|(id, d)| (*id, d)).collect();
    let then: HashMap<i64, &Digest> = sealed.iter().map(|(id, d)| (*id, d)).collect();
    let mut out: Vec<(i64, Problem)> = sealed
        .iter()
        .filter_map(|(id, d)| match now.get(id) {
            None => Some((*id, Problem::Removed)),
            Some(n) if *n != d => Some((*id, Problem::Altered)),
            Some(_) => None,
        })
        .collect();
    out.extend(
        found
            .iter()
            .filter(|(id, _)| !then.contains_key(id))
            .map(|(id, _)| (*id, Problem::Inserted)),
    );
    // Two entries found with one id (a copy inserted beside the original).
    let mut seen = HashMap::new();
    for (id, _) in found {
        *seen.entry(*id).or_insert(0) += 1;
    }
    out.extend(
        seen.into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(id, _)| (id, Problem::Inserted)),
    );
    out.sort();
    out.dedup();
    out
}

/// Whether a stored seal is intact: its hash is what its contents and `prev` give.
pub fn seal_intact(prev: &SealHash, seal: &Seal, stored: &SealHash) -> bool {
    &seal_hash(prev, seal) == stored
}

/// How a sealed month whose entries the log no longer holds (none of them) left the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonthGone {
    /// Retired by floe's retention (recorded in `floe.audit_retired`): expected.
    Retired,
    /// Its partition is still there but out of the log (DETACH by hand, or pending).
    Detached,
    /// Its partition is gone (DROP TABLE by hand, or moved away).
    Dropped,
    /// Its partition is attached but empty: each sealed entry is reported as removed.
    Emptied,
}

impl MonthGone {
    pub fn parse(s: &str) -> Option<MonthGone> {
        match s {
            "retired" => Some(MonthGone::Retired),
            "detached" => Some(MonthGone::Detached),
            "dropped" => Some(MonthGone::Dropped),
            "emptied" => Some(MonthGone::Emptied),
            _ => None,
        }
    }

    /// The finding for a whole month (status, detail), or `None` when the month is retired or
    /// its entries are compared one by one (emptied).
    pub fn finding(self, month: &str, entries: usize) -> Option<(&'static str, String)> {
        let month = month.get(..7).unwrap_or(month);
        match self {
            MonthGone::Retired | MonthGone::Emptied => None,
            MonthGone::Detached => Some((
                "detached",
                format!(
                    "the log's month {month} ({entries} sealed entries of this table) was detached from floe.audit_log by hand; floe's retention did not retire it"
                ),
            )),
            MonthGone::Dropped => Some((
                "removed",
                format!(
                    "the log's month {month} ({entries} sealed entries of this table) is gone: its partition was dropped, and floe's retention did not retire it"
                ),
            )),
        }
    }
}

/// Every status `floe.verify_audit` reports (`examine.rs`, `Problem`, `MonthGone::finding`:
/// keep in step), and `error` for a node that could not be asked (a worker's findings come
/// back as text; anything else becomes `error`).
pub const STATUSES: [&str; 10] = [
    "ok",
    "tampered",
    "broken_seal",
    "altered",
    "inserted",
    "removed",
    "detached",
    "disabled",
    "emptied",
    "error",
];

/// The status named `text`, or `error`.
pub fn status_named(text: &str) -> &'static str {
    STATUSES
        .iter()
        .find(|s| **s == text)
        .copied()
        .unwrap_or("error")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> Digest {
        [n; 16]
    }

    #[test]
    fn clean() {
        let s = vec![(1, d(1)), (2, d(2))];
        assert!(compare(&s, &s).is_empty());
        // Order does not matter.
        assert!(compare(&s, &[(2, d(2)), (1, d(1))]).is_empty());
    }

    #[test]
    fn names_each_problem() {
        let sealed = vec![(1, d(1)), (2, d(2)), (3, d(3))];
        let found = vec![(1, d(1)), (2, d(9)), (4, d(4))];
        assert_eq!(
            compare(&sealed, &found),
            vec![
                (2, Problem::Altered),
                (3, Problem::Removed),
                (4, Problem::Inserted)
            ]
        );
        // A duplicate of a sealed entry.
        let found = vec![(1, d(1)), (1, d(1)), (2, d(2)), (3, d(3))];
        assert_eq!(compare(&sealed, &found), vec![(1, Problem::Inserted)]);
        // Everything gone.
        assert_eq!(compare(&sealed, &[]).len(), 3);
        // Nothing sealed: everything found is inserted.
        assert_eq!(compare(&[], &sealed).len(), 3);
    }

    #[test]
    fn seals_check_their_hash() {
        let seal = Seal {
            relid: 5,
            run: 3,
            month: "2026-11-01".into(),
            lo: 10,
            hi: 20,
            entries: vec![(1, d(1))],
        };
        let h = seal_hash(&[0; 32], &seal);
        assert!(seal_intact(&[0; 32], &seal, &h));
        assert!(!seal_intact(&[1; 32], &seal, &h));
        let mut other = seal.clone();
        other.entries[0].1 = d(2);
        assert!(!seal_intact(&[0; 32], &other, &h));
    }

    #[test]
    fn a_month_gone_without_retention_is_named() {
        assert_eq!(MonthGone::Retired.finding("2026-11-01", 5), None);
        assert_eq!(status_named("removed"), "removed");
        assert_eq!(status_named("broken_seal"), "broken_seal");
        assert_eq!(status_named("no such status"), "error");
        assert_eq!(MonthGone::Emptied.finding("2026-11-01", 5), None);
        let (status, detail) = MonthGone::Detached.finding("2026-11-01", 5).unwrap();
        assert_eq!(status, "detached");
        assert!(detail.contains("2026-11 (5 sealed entries"), "{detail}");
        let (status, detail) = MonthGone::Dropped.finding("2026-11-01", 1).unwrap();
        assert_eq!(status, "removed");
        assert!(detail.contains("dropped"), "{detail}");
        for s in ["retired", "detached", "dropped", "emptied"] {
            assert!(MonthGone::parse(s).is_some(), "{s}");
        }
        assert_eq!(MonthGone::parse("ok"), None);
    }
}
