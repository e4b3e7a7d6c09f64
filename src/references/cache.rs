//! The enforce check's memory of keys it found in their target (pure: no pgrx): per backend,
//! bounded in entries (least recently used leave first) and in age (an answer older than the
//! TTL is asked again). Only positive answers are kept: a missing key is asked every time,
//! so a target row created a moment later is accepted at once.
//!
//! A positive answer can outlive its target row by up to the TTL (a row deleted remotely
//! after it was seen): the enforce check is a check, not a lock, and the scan finds what it
//! let through.

use lru::LruCache;
use std::num::NonZeroUsize;

/// Microseconds, of whatever clock the caller passes (the backend's `GetCurrentTimestamp`).
pub type Micros = i64;

type Key = (i32, Vec<String>);

pub struct Positives {
    entries: Option<LruCache<Key, Micros>>,
    /// The target each reference had when its entries were made: a reference declared
    /// again over another target forgets them.
    targets: Vec<(i32, String)>,
}

impl Default for Positives {
    fn default() -> Self {
        Positives::new(0)
    }
}

impl Positives {
    /// A cache of at most `capacity` keys (0: none kept).
    pub fn new(capacity: usize) -> Positives {
        Positives {
            entries: NonZeroUsize::new(capacity).map(LruCache::new),
            targets: Vec::new(),
        }
    }

    /// Applies the current size setting: shrinking drops the least recently used keys.
    pub fn resize(&mut self, capacity: usize) {
        match (NonZeroUsize::new(capacity), self.entries.as_mut()) {
            (None, _) => self.entries = None,
            (Some(c), Some(lru)) if lru.cap() != c => lru.resize(c),
            (Some(_), Some(_)) => {}
            (Some(c), None) => self.entries = Some(LruCache::new(c)),
        }
    }

    /// Entries of `reference` are valid for `target` only: forgets them when it changed.
    pub fn bind(&mut self, reference: i32, target: &str) {
        match self.targets.iter_mut().find(|(r, _)| *r == reference) {
            Some((_, t)) if t == target => {}
            Some((_, t)) => {
                *t = target.to_string();
                if let Some(lru) = self.entries.as_mut() {
                    let stale: Vec<Key> = lru
                        .iter()
                        .filter(|((r, _), _)| *r == reference)
                        .map(|(k, _)| k.clone())
                        .collect();
                    for k in stale {
                        lru.pop(&k);
                    }
                }
            }
            None => self.targets.push((reference, target.to_string())),
        }
    }

    /// Whether `key` of `reference` was found in its target less than `ttl` ago (an older
    /// entry is dropped).
    pub fn seen(&mut self, reference: i32, key: &[String], now: Micros, ttl: Micros) -> bool {
        let Some(lru) = self.entries.as_mut() else {
            return false;
        };
        let k = (reference, key.to_vec());
        match lru.get(&k) {
            Some(&at) if now.saturating_sub(at) < ttl && now >= at => true,
            Some(_) => {
                lru.pop(&k);
                false
            }
            None => false,
        }
    }

    /// Records that `key` of `reference` was found in its target at `now`.
    pub fn found(&mut self, reference: i32, key: Vec<String>, now: Micros) {
        if let Some(lru) = self.entries.as_mut() {
            lru.put((reference, key), now);
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, |l| l.len())
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(v: &str) -> Vec<String> {
        vec!["t".into(), v.into()]
    }

    #[test]
    fn answers_expire_after_the_ttl() {
        let mut c = Positives::new(10);
        c.found(1, key("7"), 1_000);
        assert!(c.seen(1, &key("7"), 1_000 + 59, 60));
        assert!(!c.seen(1, &key("7"), 1_000 + 60, 60));
        assert!(c.is_empty(), "an expired entry is dropped");
    }

    #[test]
    fn a_clock_going_back_does_not_keep_an_answer() {
        let mut c = Positives::new(10);
        c.found(1, key("7"), 1_000);
        assert!(!c.seen(1, &key("7"), 900, 60));
    }

    #[test]
    fn references_do_not_share_keys() {
        let mut c = Positives::new(10);
        c.found(1, key("7"), 0);
        assert!(!c.seen(2, &key("7"), 1, 60));
        assert!(c.seen(1, &key("7"), 1, 60));
    }

    #[test]
    fn least_recently_used_leave_first() {
        let mut c = Positives::new(2);
        c.found(1, key("a"), 0);
        c.found(1, key("b"), 0);
        assert!(c.seen(1, &key("a"), 1, 60)); // a is now the most recent
        c.found(1, key("c"), 2);
        assert!(c.seen(1, &key("a"), 3, 60));
        assert!(!c.seen(1, &key("b"), 3, 60));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn size_zero_keeps_nothing_and_resizing_applies() {
        let mut c = Positives::new(0);
        c.found(1, key("a"), 0);
        assert!(!c.seen(1, &key("a"), 0, 60));
        c.resize(3);
        for v in ["a", "b", "c"] {
            c.found(1, key(v), 0);
        }
        c.resize(1);
        assert_eq!(c.len(), 1);
        c.resize(0);
        assert!(c.is_empty());
    }

    #[test]
    fn a_new_target_forgets_the_reference_only() {
        let mut c = Positives::new(10);
        c.bind(1, "a.leads@oltp");
        c.bind(2, "a.campaigns@oltp");
        c.found(1, key("7"), 0);
        c.found(2, key("7"), 0);
        c.bind(1, "a.leads@oltp");
        assert!(c.seen(1, &key("7"), 1, 60), "same target: kept");
        c.bind(1, "a.leads@other");
        assert!(!c.seen(1, &key("7"), 1, 60), "another target: forgotten");
        assert!(c.seen(2, &key("7"), 1, 60));
    }

    proptest! {
        #[test]
        fn never_holds_more_than_its_capacity(cap in 0usize..8, puts in proptest::collection::vec(0u8..20, 0..60)) {
            let mut c = Positives::new(cap);
            for (i, p) in puts.iter().enumerate() {
                c.found(1, key(&p.to_string()), i as i64);
                prop_assert!(c.len() <= cap);
            }
        }
    }
}
