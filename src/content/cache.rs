//! A small least-recently-used cache bounded by entry count and by the memory its values
//! report (pure). The content store keeps prepared zstd dictionaries in one per backend:
//! their memory grows after insertion (an encoder per level is prepared on first use), so
//! the bound is checked on every insertion against what the values hold then.

use std::collections::HashMap;
use std::hash::Hash;

/// What a cached value holds, in bytes (may grow while cached).
pub trait Weigh {
    fn weight(&self) -> usize;
}

pub struct Lru<K, V> {
    entries: HashMap<K, (V, u64)>,
    clock: u64,
    max_entries: usize,
    max_bytes: usize,
}

impl<K: Hash + Eq + Copy, V: Clone + Weigh> Lru<K, V> {
    pub fn new(max_entries: usize, max_bytes: usize) -> Lru<K, V> {
        Lru {
            entries: HashMap::new(),
            clock: 0,
            max_entries: max_entries.max(1),
            max_bytes,
        }
    }

    /// The value under `key`, which becomes the most recently used.
    pub fn get(&mut self, key: &K) -> Option<V> {
        self.clock += 1;
        let clock = self.clock;
        self.entries.get_mut(key).map(|(v, used)| {
            *used = clock;
            v.clone()
        })
    }

    /// Adds `value` after evicting the least recently used entries while the cache is full
    /// by count or holds `max_bytes` or more. The new value itself is always kept.
    pub fn insert(&mut self, key: K, value: V) {
        self.entries.remove(&key);
        let mut bytes: usize = self.entries.values().map(|(v, _)| v.weight()).sum();
        while !self.entries.is_empty()
            && (self.entries.len() >= self.max_entries || bytes >= self.max_bytes)
        {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| *k)
            else {
                break;
            };
            if let Some((v, _)) = self.entries.remove(&oldest) {
                bytes = bytes.saturating_sub(v.weight());
            }
        }
        self.clock += 1;
        self.entries.insert(key, (value, self.clock));
    }
}

#[cfg(test)]
impl<K: Hash + Eq, V> Lru<K, V> {
    fn len(&self) -> usize {
        self.entries.len()
    }

    fn contains(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cell::Cell;
    use std::rc::Rc;

    /// A value whose weight can change after insertion, like a dictionary that prepares an
    /// encoder.
    #[derive(Clone)]
    struct Blob(Rc<Cell<usize>>);

    impl Weigh for Blob {
        fn weight(&self) -> usize {
            self.0.get()
        }
    }

    fn blob(n: usize) -> Blob {
        Blob(Rc::new(Cell::new(n)))
    }

    #[test]
    fn evicts_the_least_recently_used_by_count() {
        let mut c = Lru::new(2, usize::MAX);
        c.insert(1, blob(1));
        c.insert(2, blob(1));
        assert!(c.get(&1).is_some());
        c.insert(3, blob(1));
        assert!(c.contains(&1) && c.contains(&3) && !c.contains(&2));
    }

    #[test]
    fn evicts_by_memory_including_growth_after_insertion() {
        let mut c = Lru::new(64, 100);
        let a = blob(10);
        c.insert(1, a.clone());
        c.insert(2, blob(10));
        a.0.set(95); // 1 prepared an encoder
        c.insert(3, blob(10));
        assert!(!c.contains(&1), "the oldest, now heavy, goes");
        assert!(c.contains(&2) && c.contains(&3));
    }

    #[test]
    fn a_value_heavier_than_the_bound_is_still_kept() {
        let mut c = Lru::new(64, 10);
        c.insert(1, blob(5));
        c.insert(2, blob(500));
        assert!(c.contains(&2));
        c.insert(3, blob(1));
        assert!(!c.contains(&2) && c.contains(&3) && c.len() == 1);
    }

    #[test]
    fn reinserting_a_key_replaces_it() {
        let mut c = Lru::new(2, usize::MAX);
        c.insert(1, blob(1));
        c.insert(1, blob(2));
        assert_eq!(c.len(), 1);
        assert_eq!(c.get(&1).map(|b| b.weight()), Some(2));
    }

    proptest! {
        /// Whatever the access pattern: never more than max_entries, the bytes before an
        /// insertion bounded unless one entry alone exceeds them, the latest insert kept.
        #[test]
        fn bounds_hold(ops in proptest::collection::vec((0u8..20, 0usize..50, any::<bool>()), 0..300)) {
            let mut c = Lru::new(8, 120);
            for (k, w, get) in ops {
                if get {
                    let _ = c.get(&k);
                } else {
                    c.insert(k, blob(w));
                    prop_assert!(c.contains(&k));
                }
                prop_assert!(c.len() <= 8);
                let bytes: usize = c.entries.values().map(|(v, _)| v.weight()).sum();
                // Before the last insertion the rest weighed under 120; the last adds < 50.
                prop_assert!(bytes < 120 + 50);
            }
        }
    }
}
