//! What a declared cross-tier reference must satisfy (pure): its arguments, the local and
//! remote columns' types, and a unique key on the target.
//!
//! A reference `tbl (columns) -> target_table (target_columns)` over a `postgres_fdw` server
//! is satisfied by a target row with the same values, of the same tenant when the reference
//! is tenant-aware (`tenant_column`: a uuid column of that name on both sides). The target
//! columns (with the tenant column) must be unique on the target, as a foreign key's
//! referenced columns must be: a unique index whose columns are all among them.

/// When a reference is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only by the scheduler's scan for orphans.
    Scan,
    /// Also by every INSERT and UPDATE of the referencing columns (per statement).
    Enforce,
}

impl Mode {
    pub fn parse(text: &str) -> Option<Mode> {
        match text {
            "scan" => Some(Mode::Scan),
            "enforce" => Some(Mode::Enforce),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Scan => "scan",
            Mode::Enforce => "enforce",
        }
    }
}

/// What an enforced check does when the target's server cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnUnreachable {
    /// The write fails (08xxx).
    Reject,
    /// The write goes through; its rows wait for the next scan.
    Allow,
}

impl OnUnreachable {
    pub fn parse(text: &str) -> Option<OnUnreachable> {
        match text {
            "reject" => Some(OnUnreachable::Reject),
            "allow" => Some(OnUnreachable::Allow),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OnUnreachable::Reject => "reject",
            OnUnreachable::Allow => "allow",
        }
    }
}

/// A problem with a declaration's arguments, named for the argument.
#[derive(Debug, PartialEq, Eq)]
pub struct ArgError {
    pub argument: &'static str,
    pub value: String,
    pub expected: String,
}

fn arg_error(argument: &'static str, value: impl Into<String>, expected: &str) -> ArgError {
    ArgError {
        argument,
        value: value.into(),
        expected: expected.into(),
    }
}

/// Checks the column lists of a declaration: both non-empty, of one length, without
/// repeats, and without the tenant column (which the reference matches by itself).
pub fn check_columns(
    columns: &[String],
    target_columns: &[String],
    tenant_column: Option<&str>,
) -> Result<(), ArgError> {
    let list = |v: &[String]| format!("{{{}}}", v.join(","));
    if columns.is_empty() {
        return Err(arg_error("columns", "{}", "one or more columns of tbl"));
    }
    if columns.len() > 8 {
        return Err(arg_error("columns", list(columns), "at most 8 columns"));
    }
    if target_columns.len() != columns.len() {
        return Err(arg_error(
            "target_columns",
            list(target_columns),
            &format!(
                "{} column(s) of the target, one for each of columns {}",
                columns.len(),
                list(columns)
            ),
        ));
    }
    for (argument, v) in [("columns", columns), ("target_columns", target_columns)] {
        if let Some(c) = v.iter().find(|c| c.is_empty()) {
            return Err(arg_error(
                argument,
                list(v),
                &format!("column names ({c:?} is none)"),
            ));
        }
        let mut sorted: Vec<&String> = v.iter().collect();
        sorted.sort();
        if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(arg_error(
                argument,
                list(v),
                &format!("distinct columns ({} is named twice)", w[0]),
            ));
        }
        if let Some(t) = tenant_column.filter(|t| v.iter().any(|c| c == t)) {
            return Err(arg_error(
                argument,
                list(v),
                &format!("the referencing columns without the tenant column {t} (the reference matches it by itself)"),
            ));
        }
    }
    Ok(())
}

/// The first column whose local and remote types differ: (local column, its type, target
/// column, its type). Types are compared by name (`format_type`): a reference compares
/// values, and a bigint is no integer to an index.
pub fn type_mismatch<'a>(
    local: &'a [(String, String)],
    remote: &'a [(String, String)],
) -> Option<(&'a str, &'a str, &'a str, &'a str)> {
    local
        .iter()
        .zip(remote)
        .find(|((_, lt), (_, rt))| lt != rt)
        .map(|((lc, lt), (rc, rt))| (lc.as_str(), lt.as_str(), rc.as_str(), rt.as_str()))
}

/// Whether one of the target's unique indexes (each given by its key columns) makes `key`
/// unique: an index whose columns are all in `key`.
pub fn key_is_unique(key: &[String], unique_indexes: &[Vec<String>]) -> bool {
    unique_indexes
        .iter()
        .any(|index| !index.is_empty() && index.iter().all(|c| key.contains(c)))
}

/// The target table as `[schema, table]` from what `parse_ident` made of the argument
/// (`table` alone is in `public`).
pub fn target_parts(parts: &[String]) -> Option<(String, String)> {
    match parts {
        [table] => Some(("public".into(), table.clone())),
        [schema, table] => Some((schema.clone(), table.clone())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn modes_and_fallbacks() {
        assert_eq!(Mode::parse("enforce"), Some(Mode::Enforce));
        assert_eq!(Mode::parse("Enforce"), None);
        assert_eq!(
            OnUnreachable::parse("allow").map(|o| o.as_str()),
            Some("allow")
        );
        assert_eq!(OnUnreachable::parse(""), None);
    }

    #[test]
    fn column_lists() {
        let t = Some("tenant_id");
        assert!(check_columns(&v(&["lead_id"]), &v(&["id"]), t).is_ok());
        assert_eq!(
            check_columns(&v(&[]), &v(&[]), t).unwrap_err().argument,
            "columns"
        );
        let e = check_columns(&v(&["a", "b"]), &v(&["id"]), t).unwrap_err();
        assert_eq!(e.argument, "target_columns");
        assert!(e.expected.starts_with("2 column(s)"), "{e:?}");
        assert!(check_columns(&v(&["a", "a"]), &v(&["x", "y"]), t)
            .unwrap_err()
            .expected
            .contains("a is named twice"));
        assert_eq!(
            check_columns(&v(&["a"]), &v(&["tenant_id"]), t)
                .unwrap_err()
                .argument,
            "target_columns"
        );
        assert!(check_columns(&v(&["tenant_id"]), &v(&["x"]), None).is_ok());
        assert!(check_columns(&v(&[""]), &v(&["x"]), None).is_err());
    }

    #[test]
    fn types_compare_pairwise() {
        let l = vec![
            ("a".to_string(), "bigint".to_string()),
            ("b".into(), "uuid".into()),
        ];
        let same = vec![
            ("x".to_string(), "bigint".to_string()),
            ("y".into(), "uuid".into()),
        ];
        let other = vec![
            ("x".to_string(), "bigint".to_string()),
            ("y".into(), "text".into()),
        ];
        assert_eq!(type_mismatch(&l, &same), None);
        assert_eq!(type_mismatch(&l, &other), Some(("b", "uuid", "y", "text")));
    }

    #[test]
    fn unique_keys() {
        let key = v(&["tenant_id", "id"]);
        assert!(key_is_unique(&key, &[v(&["tenant_id", "id"])]));
        assert!(key_is_unique(&key, &[v(&["id"])]));
        assert!(key_is_unique(
            &key,
            &[v(&["email"]), v(&["id", "tenant_id"])]
        ));
        assert!(!key_is_unique(&key, &[v(&["tenant_id", "id", "email"])]));
        assert!(!key_is_unique(&key, &[]));
        assert!(!key_is_unique(&key, &[vec![]]));
    }

    #[test]
    fn target_names() {
        assert_eq!(
            target_parts(&v(&["leads"])),
            Some(("public".into(), "leads".into()))
        );
        assert_eq!(
            target_parts(&v(&["app", "leads"])),
            Some(("app".into(), "leads".into()))
        );
        assert_eq!(target_parts(&v(&["db", "app", "leads"])), None);
    }

    proptest! {
        /// An index over a subset of the key makes it unique; one with a column outside it
        /// does not.
        #[test]
        fn subsets_are_unique(key in proptest::collection::hash_set("[a-d]", 1..4),
                              extra in "[e-h]") {
            let key: Vec<String> = key.into_iter().collect();
            prop_assert!(key_is_unique(&key, &[key[..1].to_vec()]));
            let mut wider = key.clone();
            wider.push(extra);
            prop_assert!(!key_is_unique(&key, &[wider]));
        }
    }
}
