//! Which relid a newly audited table's entries carry (pure).
//!
//! Entries and seals name their table by a relid that the chain hashes cover. It is the
//! table's oid when auditing begins and is kept in `floe.audit_tables.log_relid` from then on,
//! so a restore, which gives every table a new oid, changes nothing in the chain. A new oid
//! can then equal the relid of history that belongs to another table (restored, or dropped
//! long ago): such a table gets a relid no history uses.

/// What the log already holds under a candidate relid.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct History {
    /// Another audited table carries it.
    pub claimed: bool,
    /// Seals carry it.
    pub sealed: bool,
    /// The `schema.table` names in the entries found under it (its last seal's and the
    /// unsealed ones).
    pub names: Vec<String>,
}

/// The relid for a table with oid `oid` named `name` (`schema.table`), given what the log holds
/// under `oid` and the largest relid anything in the log or registry carries. `None` when no
/// relid is left (the oid space is used up).
pub fn choose(oid: u32, name: &str, history: &History, max_known: u32) -> Option<u32> {
    let continues = if history.names.is_empty() {
        // Seals whose entries are gone (retired months) cannot say whose they were.
        !history.sealed
    } else {
        history.names.iter().all(|n| n == name)
    };
    if !history.claimed && continues {
        Some(oid)
    } else {
        max_known.max(oid).checked_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_new_table_keeps_its_oid() {
        assert_eq!(
            choose(16500, "app.leads", &History::default(), 17000),
            Some(16500)
        );
    }

    #[test]
    fn audited_again_the_table_continues_its_chain() {
        let h = History {
            sealed: true,
            names: names(&["app.leads"]),
            ..Default::default()
        };
        assert_eq!(choose(16500, "app.leads", &h, 17000), Some(16500));
    }

    #[test]
    fn another_tables_history_under_the_same_oid_is_not_taken_over() {
        // After a restore app.users may get the oid app.leads had.
        let h = History {
            sealed: true,
            names: names(&["app.leads"]),
            ..Default::default()
        };
        assert_eq!(choose(16500, "app.users", &h, 17000), Some(17001));
        let mixed = History {
            names: names(&["app.users", "app.leads"]),
            ..Default::default()
        };
        assert_eq!(choose(16500, "app.users", &mixed, 17000), Some(17001));
    }

    #[test]
    fn claimed_or_unknown_history_is_avoided() {
        let claimed = History {
            claimed: true,
            ..Default::default()
        };
        assert_eq!(choose(16500, "app.leads", &claimed, 16000), Some(16501));
        let retired = History {
            sealed: true,
            ..Default::default()
        };
        assert_eq!(choose(16500, "app.leads", &retired, 17000), Some(17001));
    }

    #[test]
    fn the_oid_space_can_run_out() {
        let claimed = History {
            claimed: true,
            ..Default::default()
        };
        assert_eq!(choose(7, "a.b", &claimed, u32::MAX), None);
    }

    proptest! {
        /// Whatever the history, the relid chosen is the oid itself only when nothing else
        /// uses it, and otherwise above every relid in use.
        #[test]
        fn chosen_relid_never_joins_foreign_history(
            oid in 1u32..100_000, max_known in 0u32..200_000,
            claimed: bool, sealed: bool,
            others in proptest::collection::vec(prop_oneof![Just("app.a"), Just("app.b")], 0..4),
        ) {
            let h = History { claimed, sealed, names: others.iter().map(|s| s.to_string()).collect() };
            let r = choose(oid, "app.a", &h, max_known).unwrap();
            if r == oid {
                prop_assert!(!claimed);
                prop_assert!(h.names.iter().all(|n| n == "app.a"));
                prop_assert!(!h.names.is_empty() || !sealed);
            } else {
                prop_assert!(r > max_known && r > oid);
            }
        }
    }
}
