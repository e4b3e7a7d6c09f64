//! What `floe.health()` says about partition sets. Pure: no pgrx, no SPI.

use crate::check::{Check, Status};

/// Facts about one set, as the glue collects them.
#[derive(Debug, Clone, Default)]
pub struct SetFacts {
    pub parent: String,
    pub parent_exists: bool,
    /// Children that start after now.
    pub future_children: i64,
    pub premake: i64,
    /// Whether a child covers now.
    pub has_current: bool,
    pub default_has_rows: bool,
    pub last_error: Option<String>,
}

/// `partition.premake`: every set has its current child and `premake` future ones.
pub fn premake_check(sets: &[SetFacts]) -> Check {
    let missing_now: Vec<&str> = sets
        .iter()
        .filter(|s| s.parent_exists && !s.has_current)
        .map(|s| s.parent.as_str())
        .collect();
    let short: Vec<String> = sets
        .iter()
        .filter(|s| s.parent_exists && s.has_current && s.future_children < s.premake)
        .map(|s| format!("{} ({} of {})", s.parent, s.future_children, s.premake))
        .collect();
    let gone: Vec<&str> = sets
        .iter()
        .filter(|s| !s.parent_exists)
        .map(|s| s.parent.as_str())
        .collect();
    let hint = "Run CALL floe.run_maintenance(); and see floe.partition_sets.last_error.";
    if !missing_now.is_empty() {
        return Check {
            name: "partition.premake",
            status: Status::Critical,
            detail: format!(
                "no partition for the current period: {} (rows go to the default partition, or fail without one)",
                missing_now.join(", ")
            ),
            hint: Some(hint.into()),
        };
    }
    if !short.is_empty() || !gone.is_empty() {
        let mut parts = Vec::new();
        if !short.is_empty() {
            parts.push(format!(
                "fewer future partitions than premake: {}",
                short.join(", ")
            ));
        }
        if !gone.is_empty() {
            parts.push(format!("parent table missing: {}", gone.join(", ")));
        }
        return Check {
            name: "partition.premake",
            status: Status::Warn,
            detail: parts.join("; "),
            hint: Some(if gone.is_empty() {
                hint.into()
            } else {
                "A renamed parent: UPDATE floe.partition_sets SET parent = '<schema>.<new name>'; a table dropped without floe's event trigger: DELETE the row.".into()
            }),
        };
    }
    Check {
        name: "partition.premake",
        status: Status::Ok,
        detail: format!(
            "{} partition set(s) have their partitions ahead",
            sets.len()
        ),
        hint: None,
    }
}

/// `partition.default_rows`: rows sitting in a default partition.
pub fn default_rows_check(sets: &[SetFacts]) -> Check {
    let with_rows: Vec<&str> = sets
        .iter()
        .filter(|s| s.default_has_rows)
        .map(|s| s.parent.as_str())
        .collect();
    if with_rows.is_empty() {
        return Check {
            name: "partition.default_rows",
            status: Status::Ok,
            detail: "no rows in default partitions".into(),
            hint: None,
        };
    }
    Check {
        name: "partition.default_rows",
        status: Status::Warn,
        detail: format!("rows in the default partition of: {}", with_rows.join(", ")),
        hint: Some(
            "SELECT * FROM floe.check_default(); rows for periods floe partitions are moved out by run_maintenance once their partition exists; rows older than the set's start stay."
                .into(),
        ),
    }
}

/// `partition.maintenance`: the last maintenance of each set succeeded.
pub fn maintenance_check(sets: &[SetFacts]) -> Check {
    let failing: Vec<String> = sets
        .iter()
        .filter_map(|s| s.last_error.as_ref().map(|e| format!("{}: {e}", s.parent)))
        .collect();
    if failing.is_empty() {
        return Check {
            name: "partition.maintenance",
            status: Status::Ok,
            detail: "last maintenance succeeded for every set".into(),
            hint: None,
        };
    }
    Check {
        name: "partition.maintenance",
        status: Status::Warn,
        detail: format!("maintenance failed for {}", failing.join("; ")),
        hint: Some("Fix the cause, then CALL floe.run_maintenance(); lock timeouts clear by themselves at the next run.".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(name: &str) -> SetFacts {
        SetFacts {
            parent: name.into(),
            parent_exists: true,
            future_children: 4,
            premake: 4,
            has_current: true,
            ..Default::default()
        }
    }

    #[test]
    fn statuses() {
        assert_eq!(premake_check(&[set("a")]).status, Status::Ok);
        let mut s = set("a");
        s.future_children = 2;
        assert_eq!(premake_check(&[s.clone()]).status, Status::Warn);
        s.has_current = false;
        assert_eq!(premake_check(&[s]).status, Status::Critical);
        let mut g = set("g");
        g.parent_exists = false;
        assert!(premake_check(&[g]).detail.contains("missing"));
        let mut d = set("d");
        d.default_has_rows = true;
        assert_eq!(default_rows_check(&[d]).status, Status::Warn);
        let mut e = set("e");
        e.last_error = Some("boom".into());
        assert!(maintenance_check(&[e]).detail.contains("e: boom"));
        assert_eq!(maintenance_check(&[set("x")]).status, Status::Ok);
    }
}
