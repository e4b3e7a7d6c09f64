//! Tiering and retraining decisions. Pure.
//!
//! A body's tier follows the time since it was last read: hot (stored as is) → warm (lz4)
//! → cold (zstd) → archive (zstd with the tenant's dictionary, at a high level). The
//! thresholds come from the tenant's policy, or the global one. A new body is written in
//! the tier the policy gives for age zero, so with the default `warm_after = 0` bodies are
//! lz4 from the start (lz4 costs less CPU than writing the bytes it saves).

use super::codec::{Codec, Spec};
use std::fmt;

pub type Micros = i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    Hot,
    Warm,
    Cold,
    Archive,
}

impl Tier {
    pub const ALL: [Tier; 4] = [Tier::Hot, Tier::Warm, Tier::Cold, Tier::Archive];

    pub fn name(self) -> &'static str {
        match self {
            Tier::Hot => "hot",
            Tier::Warm => "warm",
            Tier::Cold => "cold",
            Tier::Archive => "archive",
        }
    }

    pub fn parse(s: &str) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.name() == s)
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A tiering policy. `None` thresholds mean "never".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub warm_after: Option<Micros>,
    pub cold_after: Option<Micros>,
    pub archive_after: Option<Micros>,
    pub cold_level: i32,
    pub archive_level: i32,
}

pub const DAY: Micros = 86_400_000_000;

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            warm_after: Some(0),
            cold_after: Some(7 * DAY),
            archive_after: Some(30 * DAY),
            cold_level: 3,
            archive_level: 19,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    Negative(&'static str),
    OutOfOrder {
        earlier: &'static str,
        later: &'static str,
    },
    Level(&'static str, i32),
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::Negative(what) => write!(f, "{what} must not be negative"),
            PolicyError::OutOfOrder { earlier, later } => {
                write!(f, "{later} must not be shorter than {earlier}")
            }
            PolicyError::Level(what, l) => write!(f, "{what} {l} is not a zstd level"),
        }
    }
}

impl Policy {
    /// Checks that the thresholds are non-negative and in tier order (a missing threshold
    /// is "never", so later ones must be missing too or are unreachable but harmless).
    pub fn validate(&self) -> Result<(), PolicyError> {
        let named = [
            ("warm_after", self.warm_after),
            ("cold_after", self.cold_after),
            ("archive_after", self.archive_after),
        ];
        for (name, v) in named {
            if v.is_some_and(|v| v < 0) {
                return Err(PolicyError::Negative(name));
            }
        }
        for i in 0..named.len() {
            for j in i + 1..named.len() {
                if let (Some(a), Some(b)) = (named[i].1, named[j].1) {
                    if b < a {
                        return Err(PolicyError::OutOfOrder {
                            earlier: named[i].0,
                            later: named[j].0,
                        });
                    }
                }
            }
        }
        for (name, l) in [
            ("cold_level", self.cold_level),
            ("archive_level", self.archive_level),
        ] {
            if Spec::new(Codec::Zstd, l).is_err() {
                return Err(PolicyError::Level(name, l));
            }
        }
        Ok(())
    }

    /// The tier of a body last read `age` ago. A tier is reached only through the ones
    /// before it: a body is never archived while "warm" is switched off.
    pub fn tier_for(&self, age: Micros) -> Tier {
        let reached = |t: Option<Micros>| t.is_some_and(|t| age >= t);
        if !reached(self.warm_after) {
            Tier::Hot
        } else if !reached(self.cold_after) {
            Tier::Warm
        } else if !reached(self.archive_after) {
            Tier::Cold
        } else {
            Tier::Archive
        }
    }

    /// How bodies of `tier` are encoded. Archive uses the dictionary when there is one.
    pub fn spec(&self, tier: Tier) -> Spec {
        match tier {
            Tier::Hot => Spec {
                codec: Codec::None,
                level: 0,
            },
            Tier::Warm => Spec {
                codec: Codec::Lz4,
                level: 0,
            },
            Tier::Cold => Spec {
                codec: Codec::Zstd,
                level: self.cold_level,
            },
            Tier::Archive => Spec {
                codec: Codec::Zstd,
                level: self.archive_level,
            },
        }
    }
}

/// When a tenant's dictionary should be (re)trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retrain {
    /// Train only with at least this many bodies to sample.
    pub min_rows: i64,
    /// Retrain when the newest dictionary is older than this and enough new bodies came.
    pub every: Micros,
}

impl Default for Retrain {
    fn default() -> Retrain {
        Retrain {
            min_rows: 1000,
            every: 7 * DAY,
        }
    }
}

impl Retrain {
    /// `rows`: the tenant's bodies; `since_last`: bodies stored since the newest dictionary
    /// (None: it has none); `age`: that dictionary's age.
    pub fn due(&self, rows: i64, since_last: Option<i64>, age: Micros) -> bool {
        match since_last {
            None => rows >= self.min_rows,
            Some(new) => age >= self.every && new >= self.min_rows,
        }
    }
}

/// A retraining replaces the tenant's dictionary only when the candidate stores the held-out
/// bodies at least this much smaller: every replacement makes the tiering recompress the
/// tenant's whole archive (so that the old dictionary can go), which only a clear gain pays.
pub const MIN_GAIN_PERCENT: u64 = 5;

/// Whether a candidate dictionary that stores the held-out bodies in `candidate` bytes
/// replaces the current one that needs `current` bytes for them.
pub fn worth_replacing(candidate: u64, current: u64) -> bool {
    u128::from(candidate) * 100 <= u128::from(current) * u128::from(100 - MIN_GAIN_PERCENT)
}

/// Most bodies held out of a retraining to judge the candidate against the current dictionary.
pub const HELD_OUT_MAX: usize = 200;

/// Whether the `i`-th sample (newest first) is held out of training to judge the candidate:
/// every tenth, at most [`HELD_OUT_MAX`].
pub fn held_out(i: usize) -> bool {
    i.is_multiple_of(10) && i / 10 < HELD_OUT_MAX
}

/// Whether a dictionary is trained on the text samples only: when at least half of the
/// sampled bodies are text (valid UTF-8), the rest (attachments: PDFs, images, archives)
/// would only dilute a dictionary meant for the mail; a tenant that stores mostly binary
/// content trains on all of it.
pub fn train_on_text_only(text: usize, total: usize) -> bool {
    text > 0 && text * 2 >= total
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_candidate_must_be_clearly_better() {
        assert!(worth_replacing(95, 100));
        assert!(!worth_replacing(96, 100));
        assert!(!worth_replacing(100, 100));
        assert!(
            worth_replacing(0, 0),
            "nothing to compare: no reason to refuse"
        );
        assert!(!worth_replacing(u64::MAX, u64::MAX));
    }

    #[test]
    fn text_bodies_are_the_samples_when_they_are_the_bulk() {
        assert!(train_on_text_only(30, 60));
        assert!(train_on_text_only(1, 1));
        assert!(!train_on_text_only(29, 60));
        assert!(!train_on_text_only(0, 0));
        assert!(!train_on_text_only(0, 10));
    }

    #[test]
    fn every_tenth_sample_is_held_out_up_to_a_limit() {
        let held: Vec<usize> = (0..5000).filter(|&i| held_out(i)).collect();
        assert_eq!(held.len(), HELD_OUT_MAX);
        assert_eq!(&held[..3], &[0, 10, 20]);
        assert_eq!((0..40).filter(|&i| held_out(i)).count(), 4);
    }

    #[test]
    fn default_policy_walks_the_tiers() {
        let p = Policy::default();
        p.validate().unwrap();
        assert_eq!(p.tier_for(0), Tier::Warm);
        assert_eq!(p.tier_for(7 * DAY - 1), Tier::Warm);
        assert_eq!(p.tier_for(7 * DAY), Tier::Cold);
        assert_eq!(p.tier_for(30 * DAY), Tier::Archive);
        assert_eq!(
            p.spec(Tier::Archive),
            Spec {
                codec: Codec::Zstd,
                level: 19
            }
        );
    }

    #[test]
    fn switched_off_tiers_stop_the_walk() {
        let p = Policy {
            warm_after: Some(DAY),
            cold_after: None,
            ..Policy::default()
        };
        p.validate().unwrap();
        assert_eq!(p.tier_for(0), Tier::Hot);
        assert_eq!(p.tier_for(100 * DAY), Tier::Warm);
    }

    #[test]
    fn bad_policies() {
        let p = Policy {
            cold_after: Some(DAY),
            archive_after: Some(0),
            ..Policy::default()
        };
        assert_eq!(
            p.validate(),
            Err(PolicyError::OutOfOrder {
                earlier: "cold_after",
                later: "archive_after"
            })
        );
        let p = Policy {
            warm_after: Some(-1),
            ..Policy::default()
        };
        assert_eq!(p.validate(), Err(PolicyError::Negative("warm_after")));
        let p = Policy {
            archive_level: 40,
            ..Policy::default()
        };
        assert_eq!(p.validate(), Err(PolicyError::Level("archive_level", 40)));
    }

    #[test]
    fn retraining() {
        let r = Retrain::default();
        assert!(!r.due(999, None, 0));
        assert!(r.due(1000, None, 0));
        assert!(!r.due(5000, Some(5000), DAY), "too recent");
        assert!(!r.due(5000, Some(10), 30 * DAY), "too few new bodies");
        assert!(r.due(5000, Some(1000), 7 * DAY));
    }

    proptest! {
        #[test]
        fn tiers_only_get_colder_with_age(w in 0i64..100, c in 0i64..100, a in 0i64..100,
                                          x in 0i64..400, y in 0i64..400) {
            let mut t = [w, c, a];
            t.sort();
            let p = Policy { warm_after: Some(t[0]), cold_after: Some(t[1]), archive_after: Some(t[2]), ..Policy::default() };
            p.validate().unwrap();
            let (young, old) = (x.min(y), x.max(y));
            prop_assert!(p.tier_for(young) <= p.tier_for(old));
        }
    }
}
